//! Comment commands (reference §6). Every comment with a command gets a 👀 reaction first (the
//! acknowledgement), then the commands are acted on in order, and whatever a person should know
//! (a refusal and its reason, an answer to `/explain` or `/help`) goes into one reply per
//! comment.

use super::memory::ConfigAt;
use super::replies::{
    CommandRefusal, Comment, Explanation, Note, PlanExplained, RefreshExplained, Refusal,
};
use super::state::{self, APPROVAL_CONTEXT, State};
use super::tests::Trigger;
use super::writes::{BodyEdit, Edited};
use super::{DispatchError, Dispatcher, contexts, plan};
use crate::checklist;
use crate::commands::{self, Command, ContextSpec};
use crate::event::CommentEvent;
use crate::github::PullRequest;
use crate::repo_config::{self, REFRESH_BRANCH_PREFIX, RepoConfig, Target};

impl Dispatcher {
    pub(super) async fn on_comment(&self, c: CommentEvent) -> Result<(), DispatchError> {
        if c.action != "created" || !c.on_pull_request || self.is_bot(&c.author) {
            return Ok(());
        }
        let parsed = commands::parse(&c.body);
        if parsed.commands.is_empty() && parsed.refused.is_empty() {
            return Ok(());
        }
        self.writes.react(&c.repo, c.comment_id, "eyes").await?;
        let pr = self.github.pull_request(&c.repo, c.number).await?;
        let mut notes: Vec<Note> = parsed
            .refused
            .iter()
            .map(|r| {
                Note::from(Refusal::from(CommandRefusal::BadCommandLine {
                    line: r.line,
                    reason: r.reason.clone(),
                }))
            })
            .collect();
        let open_to_all = |name: &str| matches!(name, "help" | "explain");
        let verdict = match parsed.commands.iter().any(|cmd| !open_to_all(&cmd.name)) {
            true => Some(
                self.trust
                    .check(
                        &pr.repo,
                        &pr.default_branch,
                        &c.author,
                        &c.author_association,
                    )
                    .await?,
            ),
            false => None,
        };
        for cmd in &parsed.commands {
            let command = cmd.name.clone();
            if open_to_all(&command) {
                notes.push(match command.as_str() {
                    "help" => Note::Help,
                    _ => Note::Explanation(self.explain(&pr).await?),
                });
            } else if let Some(v) = verdict.as_ref().filter(|v| !v.trusted) {
                let reason = v.reason.clone();
                notes.push(Refusal::from(CommandRefusal::NotTrusted { command, reason }).into());
            } else if command == "rollback" {
                // On a merged (so closed) PR, unlike the others.
                notes.extend(self.roll_back(&pr, cmd.args.first()).await?);
            } else if !pr.state_open {
                notes.push(Refusal::from(CommandRefusal::CommandOnClosedPr { command }).into());
            } else if command == "debug" {
                notes.extend(self.debug(&pr, cmd).await?);
            } else {
                let refusals = self.run_command(&pr, cmd, &c.author).await?;
                notes.extend(refusals.into_iter().map(Note::from));
            }
        }
        if !notes.is_empty() {
            let reply = Comment::Reply {
                to: &c.author,
                key: format!("reply:{}", c.comment_id),
                notes: &notes,
            };
            self.writes.post_once(&pr, &reply).await?;
        }
        Ok(())
    }

    /// `/rollback [image]` by a trusted person on a PR that landed on the default branch.
    async fn roll_back(
        &self,
        pr: &PullRequest,
        image: Option<&String>,
    ) -> Result<Vec<Note>, DispatchError> {
        let landed = pr
            .merge_commit
            .as_ref()
            .filter(|_| pr.base_ref == pr.default_branch);
        let Some(merge) = landed else {
            return Ok(vec![
                Refusal::from(CommandRefusal::RollbackNotLanded).into(),
            ]);
        };
        let config = match self.config_at(&pr.repo, merge).await? {
            ConfigAt::Valid(config) => config,
            ConfigAt::Missing | ConfigAt::Invalid(_) => {
                let images = Vec::new();
                let refusal = CommandRefusal::RollbackNoImage {
                    asked: image.cloned(),
                    images,
                };
                return Ok(vec![Refusal::from(refusal).into()]);
            }
        };
        let asked = image.map(String::as_str);
        self.images.roll_back(pr, merge, &config, asked).await
    }

    /// `/debug ctx` by a trusted person: runs the context again; if that run fails, its
    /// worker keeps the container and says here where to enter it.
    async fn debug(&self, pr: &PullRequest, cmd: &Command) -> Result<Vec<Note>, DispatchError> {
        // The parser accepted exactly one context.
        let Some((arg, spec)) = cmd
            .args
            .first()
            .and_then(|a| Some((a, commands::parse_context(a).ok()?)))
        else {
            return Ok(Vec::new());
        };
        let refusals = self.plan_tests(pr, Trigger::Debug(&spec)).await?;
        Ok(match refusals.is_empty() {
            true => vec![Note::DebugAsked {
                context: arg.clone(),
                head: pr.head_sha.clone(),
            }],
            false => refusals.into_iter().map(Note::from).collect(),
        })
    }

    /// One command of a trusted person on an open PR; returns its refusals.
    async fn run_command(
        &self,
        pr: &PullRequest,
        cmd: &Command,
        author: &str,
    ) -> Result<Vec<Refusal>, DispatchError> {
        match cmd.name.as_str() {
            "ok-to-test" => {
                self.approve(pr, author).await?;
                Ok(Vec::new())
            }
            "test" if cmd.args.is_empty() => self.plan_tests(pr, Trigger::Defaults).await,
            "test" => {
                // The parser accepted every argument as a context already.
                let specs: Vec<ContextSpec> = cmd
                    .args
                    .iter()
                    .filter_map(|a| commands::parse_context(a).ok())
                    .collect();
                self.plan_tests(pr, Trigger::Named(&specs)).await
            }
            "retest" => self.plan_tests(pr, Trigger::Failed).await,
            "cancel" => {
                let cancelled = self.writes.cancel_contexts(pr, &cmd.args, author).await?;
                Ok(match cancelled.is_empty() {
                    true => vec![Refusal::from(CommandRefusal::NothingToCancel {
                        contexts: cmd.args.clone(),
                        head: pr.head_sha.clone(),
                    })],
                    false => Vec::new(),
                })
            }
            "task" => self.add_task(pr, &cmd.args.join(" ")).await,
            _ => Ok(Vec::new()),
        }
    }

    /// `/ok-to-test` by a trusted person: approves this head commit and its task list, then
    /// runs what waited for it.
    async fn approve(&self, pr: &PullRequest, by: &str) -> Result<(), DispatchError> {
        let checklist = checklist::parse(&pr.body);
        let tasks = state::approved_tasks(&checklist);
        let key = (pr.repo.clone(), pr.number);
        self.memory
            .attribute_tasks(key, state::task_list(&checklist));
        let approved = State::Approved { by, tasks: &tasks };
        let status = approved.on(APPROVAL_CONTEXT, None);
        self.writes
            .set_state(&pr.repo, &pr.head_sha, &status, None)
            .await?;
        self.plan_tests(pr, Trigger::Automatic).await?;
        self.writes.request_plan(pr).await
    }

    /// `/task <verb> <args…>`: appends the checkbox line to the description, then asks for a
    /// plan, which runs or refuses it like any item.
    async fn add_task(&self, pr: &PullRequest, text: &str) -> Result<Vec<Refusal>, DispatchError> {
        let edit = BodyEdit::append(&pr.body, text);
        let text = text.to_string();
        match self.writes.edit_body(&pr.repo, pr.number, &edit).await? {
            Edited::Done(pr) => {
                // A trusted person wrote this line: it runs without waiting for the event.
                let added = checklist::parse(&format!("- [ ] {text}\n"));
                let written = state::task_list(&checklist::parse(&pr.body));
                let key = (pr.repo.clone(), pr.number);
                for context in state::task_list(&added) {
                    let count = written.iter().filter(|c| **c == context).count();
                    self.memory.attribute_added(&key, &context, count);
                }
                self.writes.request_plan(&pr).await?;
                Ok(Vec::new())
            }
            Edited::Impossible(_) => {
                Ok(vec![Refusal::from(CommandRefusal::TaskDoesNotFit { text })])
            }
            Edited::GaveUp(_) => Ok(vec![Refusal::from(
                CommandRefusal::DescriptionKeptChanging { text },
            )]),
        }
    }

    /// `/explain`: who is trusted, what runs next, what does not and why.
    async fn explain(&self, pr: &PullRequest) -> Result<Explanation, DispatchError> {
        let head = pr.head_sha.clone();
        if !pr.state_open {
            return Ok(Explanation::Closed { head });
        }
        let config = match self.config_at(&pr.repo, &pr.head_sha).await? {
            ConfigAt::Valid(c) => c,
            ConfigAt::Missing => return Ok(Explanation::NoConfig { head }),
            ConfigAt::Invalid(e) => {
                let error = e.to_string();
                return Ok(Explanation::InvalidConfig { head, error });
            }
        };
        let statuses = self.writes.states(&pr.repo, &pr.head_sha).await?;
        let verdict = self.author_trust(pr).await?;
        let state_of = |context: &str| {
            statuses
                .iter()
                .find(|s| s.context == context)
                .and_then(|s| s.description.clone())
        };
        let (run, skipped) = self.applicable(pr, &config).await?;
        let checklist = checklist::parse(&pr.body);
        let (next, refused) = plan::candidates(&checklist, &config, &self.settings.pools);
        Ok(Explanation::Plan(Box::new(PlanExplained {
            head,
            trust: verdict.reason,
            trusted: verdict.trusted,
            approval: state_of(APPROVAL_CONTEXT),
            draft: pr.draft,
            tests: run
                .iter()
                .map(|name| (name.clone(), state_of(name)))
                .collect(),
            skipped,
            next: next.map(|n| (n.item.text.clone(), state_of(&n.context))),
            no_tasks: checklist.tasks.is_empty(),
            refused,
            known: contexts::names(&config),
            refresh: self.refresh_explained(pr).await?,
        })))
    }

    /// On a refresh PR's branch, its entry in the default branch's `[[schedule]]`.
    async fn refresh_explained(
        &self,
        pr: &PullRequest,
    ) -> Result<Option<RefreshExplained>, DispatchError> {
        let own_branch = pr.head_repo.as_ref() == Some(&pr.repo);
        if !own_branch || !pr.head_ref.starts_with(REFRESH_BRANCH_PREFIX) {
            return Ok(None);
        }
        let default_branch = pr.default_branch.clone();
        let text = (self.github)
            .file_at(&pr.repo, repo_config::FILE_NAME, &default_branch)
            .await?;
        let config = text.and_then(|t| RepoConfig::parse(&t).ok());
        let Some((def, item)) = config.as_ref().and_then(|c| c.refresh_on(&pr.head_ref)) else {
            return Ok(Some(RefreshExplained::Unscheduled { default_branch }));
        };
        Ok(Some(RefreshExplained::Scheduled {
            label: def.label(item),
            every: repo_config::format_duration(def.every),
            default_branch,
            task: matches!(def.target, Target::Task { .. }),
            automerge: def.automerge,
            tests: def.tests.clone(),
            failure_title: def.failure_title(item),
        }))
    }
}
