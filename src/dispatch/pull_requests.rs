//! Pull request events, and the dispatcher's own plan and reconcile requests: the one place
//! that plans a PR's checkbox tasks (reference §5). Items run in order, one at a time per PR:
//! the first to-do item that can run is queued, unless a task of this PR is still queued or
//! running; items that cannot run are explained once and skipped.

use super::images::ImageSource;
use super::memory::{ConfigAt, PrKey};
use super::replies::Comment;
use super::state::{self, APPROVAL_CONTEXT, Cancellation, Phase, State};
use super::tests::Trigger;
use super::trust::Verdict;
use super::{DispatchError, Dispatcher, plan};
use crate::checklist::{self, Checklist, TaskState};
use crate::event::PullRequestEvent;
use crate::github::{PullRequest, StatusState};
use crate::ids::CommitSha;
use crate::job::{self, ItemRef, Job, JobKind, SecretGrant};
use crate::repo_config::RepoConfig;

/// Refusal comments posted for one event at most (each is posted once per item and reason).
const MAX_REFUSALS_PER_EVENT: usize = 5;

impl Dispatcher {
    pub(super) async fn on_pull_request(
        &self,
        event: PullRequestEvent,
    ) -> Result<(), DispatchError> {
        let pull = &event.pull;
        match event.action.as_str() {
            "edited" if self.is_bot(&event.sender) => {
                // The bot planned after its own edit already; what is left is to notice a
                // person's edit that the write overwrote.
                let restored = self
                    .writes
                    .restore_overwritten(
                        &pull.repo,
                        pull.number,
                        &pull.body,
                        event.body_before.as_deref(),
                    )
                    .await?;
                match restored {
                    // Their edit may have added or changed items.
                    Some(pr) => self.plan_tasks(pr).await,
                    None => Ok(()),
                }
            }
            "edited" => {
                let listed = checklist::parse(&pull.body);
                self.check_editor(&event, &listed).await?;
                self.attribute(pull, &listed);
                let pull = self.fresh(event.pull, event.body_before.as_deref()).await?;
                self.plan_tasks(pull).await
            }
            "opened" | "reopened" | "synchronize" | "ready_for_review" => {
                if pull.comments == Some(0) {
                    // No summary comment to look for when the first result arrives. (Not used
                    // for replies: a redelivered event carries the count from before the reply
                    // its first delivery may have posted.)
                    self.memory.no_summary_yet((pull.repo.clone(), pull.number));
                }
                let listed = checklist::parse(&pull.body);
                if event.action == "opened" {
                    self.attribute(pull, &listed);
                }
                if let Some(before) = &event.before {
                    self.supersede(pull, before, &listed).await?;
                    self.carry_unapproval(pull, before, &listed).await?;
                }
                let pull = self.fresh(event.pull, None).await?;
                self.plan_tests(&pull, Trigger::Automatic).await?;
                self.plan_tasks(pull).await
            }
            "closed" => {
                self.memory.forget_flight(&(pull.repo.clone(), pull.number));
                let why = Cancellation::Closed;
                self.writes
                    .cancel_pending(&pull.repo, &pull.head_sha, |_| true, &why)
                    .await?;
                self.writes.release_holds(&pull.repo, pull.number).await?;
                if let Some(merge) = &pull.merge_commit
                    && pull.base_ref == pull.default_branch
                    && let ConfigAt::Valid(config) = self.config_at(&pull.repo, merge).await?
                {
                    self.images.landed(pull, merge, &config).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A handler's request to plan `pull` again (see [`super::writes::Writes::request_plan`]).
    pub(super) async fn on_plan_request(&self, pull: PullRequest) -> Result<(), DispatchError> {
        let pull = self.fresh(pull, None).await?;
        self.plan_tasks(pull).await
    }

    /// Plans every open PR of the configured repositories (webhooks missed while down). A
    /// failure fails the whole request, which is retried later; PRs planned already are
    /// planned again harmlessly.
    pub(super) async fn reconcile(&self) -> Result<(), DispatchError> {
        let mut failed = None;
        for repo in &self.settings.repositories {
            let prs = match self.github.open_pull_requests(repo).await {
                Ok(prs) => prs,
                Err(e) => {
                    tracing::error!(%repo, error = %e, "cannot list open pull requests to reconcile");
                    failed = Some(DispatchError::from(e));
                    continue;
                }
            };
            tracing::info!(%repo, count = prs.len(), "reconciling open pull requests");
            for pr in prs {
                let number = pr.number;
                let planned = match self.plan_tests(&pr, Trigger::Automatic).await {
                    Ok(_) => self.plan_tasks(pr).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = planned {
                    tracing::error!(%repo, pr = %number, error = %e, "reconcile failed for this pull request");
                    failed = Some(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// A push replaced the head: the old head's test jobs are cancelled. A task still to do
    /// keeps running: its worker rebases the result onto the new head (reference §8).
    async fn supersede(
        &self,
        pull: &PullRequest,
        before: &CommitSha,
        checklist: &Checklist,
    ) -> Result<(), DispatchError> {
        if before == &pull.head_sha {
            return Ok(());
        }
        let is_task = |context: &str| {
            checklist
                .tasks
                .iter()
                .any(|t| t.state == TaskState::Todo && t.context() == context)
        };
        let why = Cancellation::Superseded(pull.head_sha.clone());
        self.writes
            .cancel_pending(&pull.repo, before, |s| !is_task(&s.context), &why)
            .await?;
        Ok(())
    }

    /// A push does not clear an untrusted editor's change of the tasks: the failed approval
    /// moves to the new head (an approval, by contrast, is for its head only). Read only for a
    /// PR with tasks, so other pushes cost no call.
    async fn carry_unapproval(
        &self,
        pull: &PullRequest,
        before: &CommitSha,
        checklist: &Checklist,
    ) -> Result<(), DispatchError> {
        if before == &pull.head_sha || checklist.tasks.is_empty() {
            return Ok(());
        }
        let states = self.writes.states(&pull.repo, before).await?;
        let unapproved = states
            .into_iter()
            .find(|s| s.context == APPROVAL_CONTEXT && s.state == StatusState::Failure);
        if let Some(status) = unapproved {
            self.writes
                .set_state(&pull.repo, &pull.head_sha, &status, None)
                .await?;
        }
        Ok(())
    }

    /// Reference §5: tasks added or changed by an untrusted editor (someone else than the
    /// author) do not run. The PR's approval turns to failure, so nothing runs at this commit
    /// until a trusted person's `/ok-to-test` approves the task list as it now is.
    async fn check_editor(
        &self,
        event: &PullRequestEvent,
        after: &Checklist,
    ) -> Result<(), DispatchError> {
        let pull = &event.pull;
        let Some(before) = &event.body_before else {
            return Ok(());
        };
        if event.sender == pull.author {
            return Ok(()); // the author's own trust decides, in plan_tasks
        }
        let after = state::approved_tasks(after);
        if state::approved_tasks(&checklist::parse(before)) == after {
            return Ok(()); // ticks and prose only
        }
        let verdict = self
            .trust
            .check(&pull.repo, &pull.default_branch, &event.sender, "")
            .await?;
        if verdict.trusted {
            return Ok(());
        }
        let unapproved = State::Unapproved {
            editor: &event.sender,
        };
        let status = unapproved.on(APPROVAL_CONTEXT, None);
        // On the head as it is now: a late event's head may have been replaced since.
        let head = self
            .github
            .pull_request(&pull.repo, pull.number)
            .await?
            .head_sha;
        self.writes
            .set_state(&pull.repo, &head, &status, None)
            .await?;
        Ok(())
    }

    /// `pull`, or a fresh read when its body may predate one of the dispatcher's writes (events
    /// queued before a tick carry the unticked body; planning on it would queue a finished item
    /// again). `body_before` is an `edited` event's previous body.
    async fn fresh(
        &self,
        pull: PullRequest,
        body_before: Option<&str>,
    ) -> Result<PullRequest, DispatchError> {
        let key: PrKey = (pull.repo.clone(), pull.number);
        let Some(known) = self.memory.known_body(&key) else {
            return Ok(pull); // the dispatcher never wrote this body
        };
        if pull.body == known || body_before == Some(known.as_str()) {
            self.memory.know_body(key, &pull.body);
            return Ok(pull);
        }
        let fresh = self.github.pull_request(&pull.repo, pull.number).await?;
        self.memory.know_body(key, &fresh.body);
        Ok(fresh)
    }

    /// Decides and acts for one PR: refuse what cannot run, queue the next item.
    async fn plan_tasks(&self, pr: PullRequest) -> Result<(), DispatchError> {
        if !pr.state_open {
            return Ok(());
        }
        let checklist = checklist::parse(&pr.body);
        if checklist.tasks.is_empty() && checklist.refused.is_empty() {
            return Ok(());
        }
        let config = match self.config_at(&pr.repo, &pr.head_sha).await? {
            // A repository without `.tickbot.toml` has not asked for tickbot: stay silent.
            ConfigAt::Missing => return Ok(()),
            ConfigAt::Invalid(error) => {
                let comment = Comment::BadConfig {
                    head: &pr.head_sha,
                    error: &error,
                };
                self.writes.post_once(&pr, &comment).await?;
                return Ok(());
            }
            ConfigAt::Valid(c) => c,
        };
        let (candidate, refused) = plan::candidates(&checklist, &config, &self.settings.pools);
        let Some(next) = candidate else {
            return self.refuse_items(&pr, &refused).await;
        };
        let key: PrKey = (pr.repo.clone(), pr.number);
        if let Some((context, item)) = self.memory.in_flight(&key)
            && report_pending(&checklist, &context, &item)
        {
            tracing::debug!(repo = %pr.repo, pr = %pr.number, %context, "waiting for the job's report");
            return self.refuse_items(&pr, &refused).await;
        }
        let statuses = self.writes.states(&pr.repo, &pr.head_sha).await?;
        if let Some(busy) = plan::busy_with(&checklist, &statuses) {
            tracing::debug!(repo = %pr.repo, pr = %pr.number, busy, "waiting for the running task");
            return self.refuse_items(&pr, &refused).await;
        }
        let verdict = self.task_trust(&pr, &checklist, &statuses).await?;
        if let Err(reason) = verdict {
            // Nothing else is said to an untrusted author: no refusals to spam the PR with.
            let waiting = statuses
                .iter()
                .any(|s| s.context == next.context && Phase::of(s) == Phase::AwaitingApproval);
            let manual: &[&str] = match waiting {
                true => &[],
                false => &[next.context.as_str()],
            };
            return self.writes.ask_for_approval(&pr, &reason, manual).await;
        }
        if verdict == Ok(true) && !self.attributed(&pr, &checklist) {
            tracing::info!(repo = %pr.repo, pr = %pr.number, "the task list changed in an edit whose event has not been handled; waiting for it");
            return Ok(());
        }
        self.refuse_items(&pr, &refused).await?;
        // A finished run of this item at this commit (a person removed `FAIL:`): the re-run is
        // a new job, whose id derives from the last one.
        let previous = statuses
            .iter()
            .find(|s| s.context == next.context && Phase::of(s).is_finished())
            .and_then(state::job_of);
        let trusted_author = verdict.unwrap_or(false);
        self.queue_task(&pr, &config, next, previous, trusted_author)
            .await
    }

    /// Records the task list of an `opened` or `edited` event's body: the sender of the
    /// change has been checked (`check_editor`), so the list is theirs.
    fn attribute(&self, pull: &PullRequest, checklist: &Checklist) {
        let tasks = state::task_list(checklist);
        self.memory
            .attribute_tasks((pull.repo.clone(), pull.number), tasks);
    }

    /// Whether every task of `checklist` came in an event whose sender was checked. A body
    /// read for another reason (a reconcile, a plan request, a re-read) may hold an edit whose
    /// event is still on its way: its tasks wait for it, else an untrusted person's edit would
    /// run on the author's trust. A PR not seen in an event since the dispatcher started is
    /// taken as it is (GitHub's REST API does not say who edited a body).
    fn attributed(&self, pr: &PullRequest, checklist: &Checklist) -> bool {
        let key: PrKey = (pr.repo.clone(), pr.number);
        let tasks = state::task_list(checklist);
        match self.memory.attributed_tasks(&key) {
            Some(seen) => seen == tasks,
            None => {
                self.memory.attribute_tasks(key, tasks);
                true
            }
        }
    }

    /// Whether the PR's tasks may run: `Ok(true)` for a trusted author, `Ok(false)` for an
    /// untrusted one whose head and task list were approved, `Err(reason)` otherwise. An
    /// untrusted editor's change of the tasks (see `check_editor`) makes even a trusted
    /// author's PR wait for an approval.
    async fn task_trust(
        &self,
        pr: &PullRequest,
        checklist: &Checklist,
        statuses: &[crate::github::CommitStatus],
    ) -> Result<Result<bool, String>, DispatchError> {
        let approval = statuses.iter().find(|s| s.context == APPROVAL_CONTEXT);
        let approved =
            approval.is_some_and(|s| state::approves(s, &state::approved_tasks(checklist)));
        let mut verdict = self.author_trust(pr).await?;
        if let Some(blocked) = approval.filter(|s| s.state == StatusState::Failure) {
            verdict = Verdict {
                trusted: false,
                reason: blocked
                    .description
                    .clone()
                    .unwrap_or_else(|| "the task list needs an approval".into()),
            };
        }
        Ok(match (verdict.trusted, approved) {
            (true, _) => Ok(true),
            (false, true) => Ok(false),
            (false, false) => Err(verdict.reason),
        })
    }

    /// One comment per item that cannot run (each posted once), at most a few per event, so
    /// a body full of bogus lines cannot make the bot flood the PR.
    async fn refuse_items(
        &self,
        pr: &PullRequest,
        refused: &[plan::RefusedItem],
    ) -> Result<(), DispatchError> {
        for item in refused.iter().take(MAX_REFUSALS_PER_EVENT) {
            let comment = Comment::ItemRefused {
                item,
                head: &pr.head_sha,
            };
            self.writes.post_once(pr, &comment).await?;
        }
        Ok(())
    }

    /// Queues the task's job. Secrets and network are only for a trusted author's PR (an
    /// approval runs the code, but hands it no secrets), and only secrets the default branch
    /// defines.
    async fn queue_task(
        &self,
        pr: &PullRequest,
        config: &RepoConfig,
        next: plan::NextTask,
        previous: Option<&str>,
        trusted_author: bool,
    ) -> Result<(), DispatchError> {
        let Some(task) = config.tasks.get(&next.item.verb) else {
            return Ok(()); // plan only returns known verbs
        };
        let Some(clone_url) = pr.head_clone_url.clone() else {
            let comment = Comment::HeadRepoGone { head: &pr.head_sha };
            self.writes.post_once(pr, &comment).await?;
            return Ok(());
        };
        let mut secrets = Vec::new();
        if trusted_author && !task.secrets.is_empty() {
            let defined = self.trust.secrets(&pr.repo, &pr.default_branch).await?;
            for name in &task.secrets {
                match defined.get(name) {
                    Some(def) => secrets.push(SecretGrant {
                        name: name.clone(),
                        env: def.env.clone(),
                    }),
                    None => {
                        tracing::warn!(repo = %pr.repo, secret = %name, "task asks for a secret the default branch does not define; not granted")
                    }
                }
            }
        }
        let item = ItemRef::from(&next.item);
        let job_id = job::job_id(
            &pr.repo,
            pr.number,
            &pr.head_sha,
            &next.context,
            next.occurrence(),
            previous,
        );
        let message = task.message.as_ref();
        let job = Job {
            item: Some(item.clone()),
            argv: job::expand_argv(&task.command, &next.item.args),
            image: task.image.clone(),
            timeout_secs: task.timeout.as_secs(),
            commit: task.commit,
            message: message.map(|m| m.replace("{args}", &next.item.args.join(" "))),
            secrets,
            network: task.network && trusted_author,
            pool: task.pool.clone(),
            priority: task.priority,
            ..Job::at_head(pr, clone_url, JobKind::Task, &next.context, job_id.clone())
        };
        let source = config.image_of(&task.image).map(|def| ImageSource {
            def,
            repo: &pr.repo,
            sha: &pr.head_sha,
            network: def.network && trusted_author,
        });
        self.images.queue(job, source).await?;
        self.memory
            .start_flight((pr.repo.clone(), pr.number), &next.context, &item);
        tracing::info!(repo = %pr.repo, pr = %pr.number, context = %next.context, job = %job_id, "task queued");
        Ok(())
    }
}

/// Whether the in-flight job's item is still to do in this body: then its report is still to
/// come (a person ticking or removing the item by hand takes it out of the sequence).
fn report_pending(checklist: &Checklist, context: &str, item: &ItemRef) -> bool {
    checklist
        .tasks
        .iter()
        .filter(|t| t.context() == context)
        .nth(item.occurrence)
        .is_some_and(|t| t.state == TaskState::Todo)
}
