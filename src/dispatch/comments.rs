//! What people ask for: comment commands (design §6) and check runs' buttons. Every comment
//! with a command gets a 👀 reaction first (the acknowledgement), then the commands are acted
//! on in order, and whatever a person should know (a refusal and its reason, an answer to
//! `/explain` or `/help`) goes into one reply per comment. A check run's Re-run and Retry
//! buttons act like `/test <its context>`, its Cancel button like `/cancel <its context>`.

use super::results::Mark;
use super::testing::Trigger;
use super::{APPROVAL_CONTEXT, ConfigAt, DispatchError, Dispatcher, PrKey, approval_note, plan};
use super::{contexts, replies, report};
use crate::checklist::{self, TaskState};
use crate::commands::{self, ContextSpec};
use crate::event::{CheckRunEvent, CommentEvent};
use crate::github::{CommitStatus, PullRequest, StatusState};
use crate::job::ItemRef;

/// Read-write-verify rounds for `/task` before giving up (a person kept editing meanwhile).
const APPEND_ATTEMPTS: usize = 3;

impl Dispatcher {
    pub(super) async fn on_comment(&self, c: CommentEvent) -> Result<(), DispatchError> {
        if c.action != "created" || !c.on_pull_request || self.is_bot(&c.author) {
            return Ok(());
        }
        let parsed = commands::parse(&c.body);
        if parsed.commands.is_empty() && parsed.refused.is_empty() {
            return Ok(());
        }
        self.github
            .add_reaction(&c.repo, c.comment_id, "eyes")
            .await?;
        let mut pr = self.github.pull_request(&c.repo, c.number).await?;
        let mut notes: Vec<String> = parsed
            .refused
            .iter()
            .map(|r| format!("line {}: {}", r.line, r.reason))
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
            let name = cmd.name.as_str();
            if name == "help" {
                notes.push(replies::HELP.into());
                continue;
            }
            if name == "explain" {
                notes.push(self.explain(&pr).await?);
                continue;
            }
            if let Some(v) = verdict.as_ref().filter(|v| !v.trusted) {
                notes.push(format!(
                    "`/{name}` refused: {}. A trusted person can run it for you.",
                    v.reason
                ));
                continue;
            }
            if !pr.state_open {
                notes.push(format!(
                    "`/{name}` refused: this pull request is closed; reopen it first"
                ));
                continue;
            }
            match name {
                "ok-to-test" => self.approve(&pr, &c.author).await?,
                "test" if cmd.args.is_empty() => {
                    notes.extend(self.plan_tests(&pr, Trigger::Defaults).await?)
                }
                "test" => {
                    // The parser accepted every argument as a context already.
                    let specs: Vec<ContextSpec> = cmd
                        .args
                        .iter()
                        .filter_map(|a| commands::parse_context(a).ok())
                        .collect();
                    notes.extend(self.plan_tests(&pr, Trigger::Named(&specs)).await?)
                }
                "retest" => notes.extend(self.plan_tests(&pr, Trigger::Failed).await?),
                "cancel" => notes.extend(self.cancel_command(&pr, &cmd.args, &c.author).await?),
                "task" => match self.add_task(&pr, &cmd.args.join(" ")).await? {
                    Ok(updated) => pr = updated,
                    Err(note) => notes.push(note),
                },
                _ => {}
            }
        }
        if !notes.is_empty() {
            let text = replies::command_reply(&c.author, &notes);
            self.post_once(&pr, &format!("reply:{}", c.comment_id), &text)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn on_check_run(&self, e: CheckRunEvent) -> Result<(), DispatchError> {
        let retry = match (e.action.as_str(), e.identifier.as_deref()) {
            ("rerequested", _) | ("requested_action", Some(report::RETRY)) => true,
            ("requested_action", Some(report::CANCEL)) => false,
            _ => return Ok(()),
        };
        let Some(number) = e.pulls.first() else {
            tracing::info!(repo = %e.repo, context = %e.name, "check run of a commit that is no open PR's head; ignored");
            return Ok(());
        };
        let pr = self.github.pull_request(&e.repo, *number).await?;
        if pr.head_sha != e.head_sha || !pr.state_open {
            tracing::info!(repo = %e.repo, pr = %number, context = %e.name, "check run of an old head; ignored");
            return Ok(());
        }
        let verdict = self
            .trust
            .check(&pr.repo, &pr.default_branch, &e.sender, "")
            .await?;
        let mut notes = Vec::new();
        let checklist = checklist::parse(&pr.body);
        let failed_task = checklist
            .tasks
            .iter()
            .find(|t| t.context() == e.name && t.state == TaskState::Failed);
        let is_task = checklist.tasks.iter().any(|t| t.context() == e.name);
        if !verdict.trusted {
            notes.push(format!("`{}` not changed: {}", e.name, verdict.reason));
        } else if !retry {
            self.cancel_command(&pr, std::slice::from_ref(&e.name), &e.sender)
                .await?;
        } else if let Some(t) = failed_task {
            // As if a person removed `FAIL:`: the item is to do again and runs in its turn.
            let pr = self
                .edit_item(&pr.repo, pr.number, &ItemRef::from(t), Mark::Todo)
                .await?;
            self.plan_pr(pr).await?;
        } else if is_task || e.name == APPROVAL_CONTEXT {
            notes.push(format!(
                "`{}` is not a failed task or a test context, so there is nothing to run again",
                e.name
            ));
        } else {
            match commands::parse_context(&e.name) {
                Ok(spec) => notes.extend(
                    self.plan_tests(&pr, Trigger::Named(std::slice::from_ref(&spec)))
                        .await?,
                ),
                Err(err) => notes.push(format!("`{}` cannot run again: {err}", e.name)),
            }
        }
        if !notes.is_empty() {
            let key = format!("check-run:{}:{}:{}", e.name, e.head_sha, e.sender);
            let text = replies::command_reply(&e.sender, &notes);
            self.post_once(&pr, &key, &text).await?;
        }
        Ok(())
    }

    /// `/ok-to-test` by a trusted person: approves this head commit and its task list, then
    /// runs what waited for it.
    async fn approve(&self, pr: &PullRequest, by: &str) -> Result<(), DispatchError> {
        self.set_state(
            &pr.repo,
            &pr.head_sha,
            &CommitStatus {
                context: APPROVAL_CONTEXT.into(),
                state: StatusState::Success,
                description: Some(format!(
                    "Approved by @{by} {}",
                    approval_note(&checklist::parse(&pr.body))
                )),
                target_url: None,
            },
        )
        .await?;
        self.plan_tests(pr, Trigger::Automatic).await?;
        self.plan_pr(pr.clone()).await
    }

    /// `/cancel [ctx…]`: the queued and running jobs of this head (of these contexts). A
    /// cancelled task gets `FAIL:`, so it does not start again by itself.
    async fn cancel_command(
        &self,
        pr: &PullRequest,
        only: &[String],
        by: &str,
    ) -> Result<Vec<String>, DispatchError> {
        let reason = format!("Cancelled by @{by}");
        let cancelled = self
            .cancel_pending(
                &pr.repo,
                &pr.head_sha,
                |s| only.is_empty() || only.contains(&s.context),
                &reason,
            )
            .await?;
        if cancelled.is_empty() {
            let what = match only.is_empty() {
                true => String::new(),
                false => format!(" of {}", quoted(only)),
            };
            return Ok(vec![format!(
                "nothing{what} is queued or running at {}",
                pr.head_sha.short()
            )]);
        }
        let key: PrKey = (pr.repo.clone(), pr.number);
        let checklist = checklist::parse(&pr.body);
        for context in &cancelled {
            self.done_in_flight(&key, context);
            let todo = checklist
                .tasks
                .iter()
                .find(|t| t.context() == *context && t.state == TaskState::Todo);
            if let Some(t) = todo {
                self.edit_item(&pr.repo, pr.number, &ItemRef::from(t), Mark::Failed)
                    .await?;
            }
        }
        Ok(Vec::new())
    }

    /// `/task <verb> <args…>`: appends the checkbox line to the description (read, append,
    /// write, read again to verify), then plans the PR, which runs or refuses it like any item.
    async fn add_task(
        &self,
        pr: &PullRequest,
        text: &str,
    ) -> Result<Result<PullRequest, String>, DispatchError> {
        let mut current = pr.clone();
        for _ in 0..APPEND_ATTEMPTS {
            let Some((body, _)) = checklist::append_task(&current.body, text) else {
                return Ok(Err(format!(
                    "`/task {text}`: cannot add it to the description (it would exceed GitHub's \
                     65,536-character limit, or not be a task item)"
                )));
            };
            self.github
                .set_pr_body(&current.repo, current.number, &body)
                .await?;
            current = self.github.pull_request(&pr.repo, pr.number).await?;
            if current.body == body {
                self.know_body(&(pr.repo.clone(), pr.number), &body);
                self.plan_pr(current.clone()).await?;
                return Ok(Ok(current));
            }
        }
        Ok(Err(format!(
            "`/task {text}`: the description kept changing while tickbot added the task; \
             add the line `- [ ] {text}` by hand"
        )))
    }

    /// `/explain`: who is trusted, what runs next, what does not and why.
    async fn explain(&self, pr: &PullRequest) -> Result<String, DispatchError> {
        let sha = pr.head_sha.short();
        let mut out = format!("what tickbot does for this pull request at {sha}:\n");
        if !pr.state_open {
            out.push_str("\n  * it is closed: nothing runs");
            return Ok(out);
        }
        let config = match self.config_at(&pr.repo, &pr.head_sha).await? {
            ConfigAt::Valid(c) => c,
            ConfigAt::Missing => {
                out.push_str("\n  * there is no `.tickbot.toml`: nothing runs");
                return Ok(out);
            }
            ConfigAt::Invalid(e) => {
                out.push_str(&format!(
                    "\n  * `.tickbot.toml` is invalid, so nothing runs: {e}"
                ));
                return Ok(out);
            }
        };
        let statuses = self.states(&pr.repo, &pr.head_sha).await?;
        let verdict = self.author_trust(pr).await?;
        let approval = statuses.iter().find(|s| s.context == APPROVAL_CONTEXT);
        out.push_str(&format!("\n  * trust: {}", verdict.reason));
        if let Some(a) = approval {
            out.push_str(&format!(
                "; `{APPROVAL_CONTEXT}`: {}",
                a.description.as_deref().unwrap_or("")
            ));
        } else if !verdict.trusted {
            out.push_str("; nothing runs until a trusted person comments `/ok-to-test`");
        }
        if pr.draft {
            out.push_str(
                "\n  * it is a draft: tests run on `/test` or when it is ready for review",
            );
        }
        let state_of = |context: &str| {
            statuses
                .iter()
                .find(|s| s.context == context)
                .and_then(|s| s.description.clone())
                .unwrap_or_else(|| "no status yet".into())
        };
        let (run, skipped) = self.applicable(pr, &config).await?;
        for name in &run {
            out.push_str(&format!("\n  * test `{name}`: {}", state_of(name)));
        }
        for s in &skipped {
            out.push_str(&format!(
                "\n  * test `{}` does not run automatically: {}",
                s.context, s.reason
            ));
        }
        let checklist = checklist::parse(&pr.body);
        let (next, refused) = plan::candidates(&checklist, &config, &self.settings.pools);
        match next {
            Some(n) => out.push_str(&format!(
                "\n  * next task: `{}`: {}",
                n.item.text,
                state_of(&n.context)
            )),
            None if checklist.tasks.is_empty() => out.push_str("\n  * no tasks in the description"),
            None => out.push_str("\n  * no task left to run"),
        }
        for r in &refused {
            out.push_str(&format!(
                "\n  * task on line {} `{}` cannot run: {}",
                r.line, r.text, r.reason
            ));
        }
        let known = contexts::known(&config);
        out.push_str(&format!(
            "\n  * `/test <context>` runs any of them; {known}"
        ));
        Ok(out)
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
