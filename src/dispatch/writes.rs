//! Every write the dispatcher makes, to GitHub and to the queue, and the reads those writes
//! depend on (a context's state, to know which check run to update; the body, to verify an
//! edit). Handlers decide; this module acts.
//!
//! * States go to commit statuses with a token, to check runs with a GitHub App (reference
//!   §7): a check run is updated in place while its job runs, and a new run of a finished
//!   context creates a new check run, as GitHub's own Re-run does; the latest per name counts.
//! * Comments are posted once per hidden key ([`replies::Comment::key`]).
//! * PR bodies have no compare-and-swap, so every body write is: read, edit only the bytes the
//!   edit needs, record what was read and written, write, read again to verify (redone from
//!   the fresh body when a concurrent edit lost it). A person's edit that lands between the
//!   read and the write is overwritten; the bot's own `edited` webhook then carries their text
//!   in `changes.body.from`, and [`Writes::restore_overwritten`] applies the edit to it.
//! * Jobs are published before their `Not yet tested` state is set: a crash in between leaves
//!   no state, so the item is planned and published again under the same job id — never a
//!   pending state without a job.

use super::memory::{Memory, PrKey};
use super::replies::{self, Comment};
use super::state::{self, Cancellation, State};
use super::summary::{self, Row};
use super::{DispatchError, PLAN_EVENT, RECONCILE_EVENT};
use crate::checklist::{self, TaskItem, TaskState};
use crate::event;
use crate::github::{CommitStatus, GitHub, GitHubError, PullRequest, StatusState};
use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::job::{self, Cancel, ItemRef, Job, JobReport};
use crate::queue::{Broker, Outgoing, QueueKind};
use std::collections::HashSet;
use std::sync::Arc;

/// Read-edit-verify rounds before giving up on a body edit (each lost round means a person
/// edited the body in the few milliseconds between our write and our re-read).
const EDIT_ATTEMPTS: usize = 4;

/// What the dispatcher does to a PR body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEdit {
    /// Ticks the item's box.
    Done(ItemRef),
    /// Marks the item `FAIL:`.
    Failed(ItemRef),
    /// Removes the item's `FAIL:` (a Re-run of a failed task), so it runs again.
    Todo(ItemRef),
    /// Appends `- [ ] <text>` (`/task`); `present` items of that text were there before.
    Append { text: String, present: usize },
}

impl BodyEdit {
    /// `/task <text>` on `body`.
    pub fn append(body: &str, text: &str) -> BodyEdit {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let present = count_items(body, &text);
        BodyEdit::Append { text, present }
    }
}

/// The dispatcher's last write of a PR body: what it read, what it wrote, and which edit, so
/// its own `edited` webhook can tell whether the write overwrote a person's edit.
#[derive(Debug, Clone)]
pub struct BodyWrite {
    base: String,
    written: String,
    edit: BodyEdit,
}

/// How a body edit ended.
pub enum Edited {
    /// Made, or not needed (already so, or the item is gone); the PR as last read.
    Done(PullRequest),
    /// It cannot be made (the body would exceed GitHub's limit, or not hold the task).
    Impossible(PullRequest),
    /// Concurrent edits kept overwriting it.
    GaveUp(PullRequest),
}

impl Edited {
    pub fn pull(self) -> PullRequest {
        match self {
            Edited::Done(p) | Edited::Impossible(p) | Edited::GaveUp(p) => p,
        }
    }
}

#[derive(Clone)]
pub struct Writes {
    github: GitHub,
    broker: Broker,
    memory: Arc<Memory>,
    logs_url: String,
    bot_login: Option<String>,
}

impl Writes {
    pub fn new(
        github: GitHub,
        broker: Broker,
        memory: Arc<Memory>,
        logs_url: String,
        bot_login: Option<String>,
    ) -> Writes {
        Writes {
            github,
            broker,
            memory,
            logs_url,
            bot_login,
        }
    }

    pub fn log_url(&self, job_id: &str) -> String {
        format!("{}/logs/{job_id}", self.logs_url.trim_end_matches('/'))
    }

    /// The latest state of every context on `sha`.
    pub async fn states(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
    ) -> Result<Vec<CommitStatus>, GitHubError> {
        state::latest_states(&self.github, repo, sha, |latest| {
            let runs = latest.values();
            let runs = runs.map(|r| (r.name.clone(), r.id, r.status == "completed"));
            self.memory.learn_check_runs(repo, sha, runs);
        })
        .await
    }

    /// Sets a state; a check run also shows `log_tail` (the end of a failed job's log).
    pub async fn set_state(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
        log_tail: Option<&str>,
    ) -> Result<(), GitHubError> {
        if !self.github.is_app() {
            return self.github.set_status(repo, sha, status).await;
        }
        let run = state::to_check_run(status, log_tail);
        if !self.memory.check_runs_listed(repo, sha) {
            self.states(repo, sha).await?;
        }
        let completed = run.status == "completed";
        let id = match self.memory.check_run(repo, sha, &status.context) {
            // A new run of a finished context is a new check run.
            Some((id, was_completed)) if !was_completed || completed => {
                self.github.update_check_run(repo, id, &run).await?;
                id
            }
            _ => self.github.create_check_run(repo, sha, &run).await?,
        };
        self.memory
            .remember_check_run(repo, sha, &status.context, id, completed);
        Ok(())
    }

    /// Publishes a job to its pool's queue (confirmed), then sets its `Not yet tested` state.
    pub async fn queue_job(&self, job: &Job) -> Result<(), DispatchError> {
        let message = Outgoing {
            message_id: job.job_id.clone(),
            body: encode(&job.job_id, job)?,
            priority: job.priority,
        };
        self.broker
            .publish(&QueueKind::Jobs(job.pool.clone()), message)
            .await?;
        let queued = State::Queued {
            note: job.note.as_deref(),
        };
        let status = queued.on(&job.context, Some(self.log_url(&job.job_id)));
        self.set_state(&job.repo, &job.head_sha, &status, None)
            .await?;
        Ok(())
    }

    /// Asks the dispatcher to plan `pull` again, behind the events already queued: a handler
    /// that changed what a PR should run next (a finished task, a new task, an approval) asks
    /// for a plan instead of planning itself, so planning happens in one place.
    pub async fn request_plan(&self, pull: &PullRequest) -> Result<(), DispatchError> {
        let payload = encode("(plan)", pull)?;
        self.publish_event(PLAN_EVENT, &payload).await
    }

    /// Queues a reconcile request behind the pending events. Whichever dispatcher is the
    /// active consumer handles it, in order with the events, so two dispatchers starting
    /// together never plan the same PR at the same time.
    pub async fn request_reconcile(&self) -> Result<(), DispatchError> {
        self.publish_event(RECONCILE_EVENT, b"{}").await
    }

    /// Publishes the dispatcher's own report about a job that could not run (its image is
    /// missing or failed to build), handled in order with the workers' reports.
    pub async fn report(&self, report: &JobReport) -> Result<(), DispatchError> {
        let message = Outgoing {
            message_id: format!("{}-{}", report.job_id, uuid::Uuid::new_v4()),
            body: encode(&report.job_id, report)?,
            priority: 0,
        };
        self.broker.publish(&QueueKind::Results, message).await?;
        Ok(())
    }

    async fn publish_event(&self, event: &str, payload: &[u8]) -> Result<(), DispatchError> {
        let delivery = format!("{event}-{}", uuid::Uuid::new_v4());
        let message = Outgoing {
            body: event::envelope(&delivery, event, payload),
            message_id: delivery,
            priority: 0,
        };
        self.broker.publish(&QueueKind::Events, message).await?;
        Ok(())
    }

    /// Ends the queued and running contexts at `sha` that `which` selects: the workers are
    /// told first, then each state becomes `Cancelled`. Returns the contexts cancelled.
    pub async fn cancel_pending(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        which: impl Fn(&CommitStatus) -> bool,
        why: &Cancellation,
    ) -> Result<Vec<String>, DispatchError> {
        let statuses = self.states(repo, sha).await?;
        let pending: Vec<&CommitStatus> = statuses
            .iter()
            .filter(|s| {
                s.state == StatusState::Pending && s.context != state::APPROVAL_CONTEXT && which(s)
            })
            .collect();
        // The workers first: if a state write fails, the retry finds the context still
        // pending and sends the (harmless) cancellation again. An image build is never
        // cancelled from one PR: other PRs may wait for it (a job waiting for it links it).
        let shared = |s: &&&CommitStatus| {
            s.context.starts_with("image/") || state::Phase::of(s) == state::Phase::WaitingForImage
        };
        let jobs: Vec<String> = pending
            .iter()
            .filter(|s| !shared(s))
            .filter_map(|s| state::job_of(s))
            .map(str::to_string)
            .collect();
        for id in &jobs {
            self.memory.cancelled.insert(id);
        }
        if !jobs.is_empty() {
            self.broadcast_cancel(jobs, why).await?;
        }
        let mut cancelled = Vec::new();
        for s in pending {
            let status = State::Cancelled(why).on(&s.context, s.target_url.clone());
            self.set_state(repo, sha, &status, None).await?;
            cancelled.push(s.context.clone());
        }
        Ok(cancelled)
    }

    /// `/cancel [ctx…]` or a Cancel button: the queued and running jobs of the PR's head (of
    /// these contexts). A cancelled task gets `FAIL:`, so it does not start again by itself.
    pub async fn cancel_contexts(
        &self,
        pr: &PullRequest,
        only: &[String],
        by: &str,
    ) -> Result<Vec<String>, DispatchError> {
        let why = Cancellation::By(by.to_string());
        let which = |s: &CommitStatus| only.is_empty() || only.contains(&s.context);
        let cancelled = self
            .cancel_pending(&pr.repo, &pr.head_sha, which, &why)
            .await?;
        let key: PrKey = (pr.repo.clone(), pr.number);
        let checklist = checklist::parse(&pr.body);
        for context in &cancelled {
            self.memory.end_flight(&key, context);
            let todo = checklist
                .tasks
                .iter()
                .find(|t| t.context() == *context && t.state == TaskState::Todo);
            if let Some(t) = todo {
                let edit = BodyEdit::Failed(ItemRef::from(t));
                self.edit_body(&pr.repo, pr.number, &edit).await?;
            }
        }
        Ok(cancelled)
    }

    pub async fn broadcast_cancel(
        &self,
        job_ids: Vec<String>,
        why: &Cancellation,
    ) -> Result<(), DispatchError> {
        tracing::info!(jobs = ?job_ids, reason = %why, "cancelling jobs");
        let cancel = Cancel {
            schema: job::JOB_SCHEMA,
            job_ids,
            reason: why.to_string(),
        };
        self.broker.broadcast(encode("(cancel)", &cancel)?).await?;
        Ok(())
    }

    /// Tells the workers that the PR closed: the containers kept for debugging its runs go.
    pub async fn release_holds(&self, repo: &RepoName, pr: PrNumber) -> Result<(), DispatchError> {
        let release = job::ReleaseHolds {
            schema: job::JOB_SCHEMA,
            release_holds_of: repo.clone(),
            pr,
        };
        self.broker
            .broadcast(encode("(release)", &release)?)
            .await?;
        Ok(())
    }

    /// A reaction on a comment (👀 acknowledges a command at once).
    pub async fn react(
        &self,
        repo: &RepoName,
        comment: u64,
        emoji: &str,
    ) -> Result<(), GitHubError> {
        self.github.add_reaction(repo, comment, emoji).await
    }

    /// An untrusted author's PR without an approval: one comment (per head and task list)
    /// says why and how to approve, and each of `contexts` gets `Manual testing required`.
    pub async fn ask_for_approval(
        &self,
        pr: &PullRequest,
        reason: &str,
        contexts: &[&str],
    ) -> Result<(), DispatchError> {
        let tasks = state::approved_tasks(&checklist::parse(&pr.body));
        let comment = Comment::Untrusted {
            reason,
            head: &pr.head_sha,
            tasks: &tasks,
        };
        self.post_once(pr, &comment).await?;
        for context in contexts {
            let status = State::AwaitingApproval.on(context, None);
            self.set_state(&pr.repo, &pr.head_sha, &status, None)
                .await?;
        }
        Ok(())
    }

    /// Posts `comment` unless a comment with the same hidden key exists on the PR already.
    pub async fn post_once(
        &self,
        pr: &PullRequest,
        comment: &Comment<'_>,
    ) -> Result<(), GitHubError> {
        let marker = replies::marker(&comment.key());
        let key: PrKey = (pr.repo.clone(), pr.number);
        let posted = match self.memory.has_posted(&key, &marker) {
            Some(posted) => posted,
            None => {
                // First comment on this PR in this process: learn what earlier runs posted.
                // Only the bot's own comments count: anyone can paste a marker.
                let markers: HashSet<String> = self
                    .bot_comments(&pr.repo, pr.number)
                    .await?
                    .iter()
                    .flat_map(|(_, body)| replies::markers_in(body))
                    .collect();
                let posted = markers.contains(&marker);
                self.memory.learn_posted(key.clone(), markers);
                posted
            }
        };
        if posted {
            return Ok(());
        }
        let text = format!("{marker}\n{}", comment.text());
        if let Err(e) = self.github.post_comment(&pr.repo, pr.number, &text).await {
            if e.outcome_unknown() {
                // It may have been posted: look at the PR's comments again before a retry.
                self.memory.forget_posted(&key);
            }
            return Err(e);
        }
        self.memory.add_posted(key, marker);
        for reason in comment.refusal_reasons() {
            metrics::counter!("tickbot_refusals_total", "reason" => reason).increment(1);
        }
        Ok(())
    }

    /// The bot's own comments on a PR (id and body).
    async fn bot_comments(
        &self,
        repo: &RepoName,
        number: PrNumber,
    ) -> Result<Vec<(u64, String)>, GitHubError> {
        let bot = self.bot_login.as_deref();
        Ok(self
            .github
            .comments(repo, number)
            .await?
            .into_iter()
            .filter(|c| bot.is_none_or(|b| c.author == b))
            .map(|c| (c.id, c.body))
            .collect())
    }

    /// Makes `edit` to the PR body: read, edit, record, write, re-read to verify; redone from
    /// the fresh body when a concurrent edit lost it. A body write is never repeated blindly.
    pub async fn edit_body(
        &self,
        repo: &RepoName,
        number: PrNumber,
        edit: &BodyEdit,
    ) -> Result<Edited, DispatchError> {
        let key: PrKey = (repo.clone(), number);
        let mut pr = self.github.pull_request(repo, number).await?;
        for attempt in 1..=EDIT_ATTEMPTS {
            let new = match apply(&pr.body, edit) {
                Applied::Changed(new) => new,
                Applied::Impossible => return Ok(Edited::Impossible(pr)),
                Applied::Gone | Applied::Already => {
                    self.memory.know_body(key, &pr.body);
                    return Ok(Edited::Done(pr));
                }
            };
            let write = BodyWrite {
                base: pr.body.clone(),
                written: new.clone(),
                edit: edit.clone(),
            };
            self.memory.record_write(key.clone(), write);
            if let Err(e) = self.github.set_pr_body(repo, number, &new).await {
                tracing::warn!(%repo, pr = %number, attempt, error = %e, "body edit failed; reading the body again");
                if !e.is_transient() && !e.outcome_unknown() {
                    return Err(e.into());
                }
            }
            pr = self.github.pull_request(repo, number).await?;
            if !matches!(apply(&pr.body, edit), Applied::Changed(_)) {
                self.memory.know_body(key, &pr.body);
                return Ok(Edited::Done(pr));
            }
            tracing::info!(%repo, pr = %number, attempt, "a concurrent edit lost the body edit; redoing it");
        }
        tracing::error!(%repo, pr = %number, "the body edit kept being overwritten; giving up on it");
        Ok(Edited::GaveUp(pr))
    }

    /// The bot's own `edited` webhook. If `from` (the body just before the write) is not the
    /// body the write was based on, a person's edit landed in between and was overwritten: it
    /// is put back with the bot's edit applied to it. Returns the PR as restored.
    pub async fn restore_overwritten(
        &self,
        repo: &RepoName,
        number: PrNumber,
        body: &str,
        from: Option<&str>,
    ) -> Result<Option<PullRequest>, DispatchError> {
        let key: PrKey = (repo.clone(), number);
        let (Some(write), Some(theirs)) = (self.memory.last_write(&key), from) else {
            return Ok(None);
        };
        if write.written != body || write.base == theirs {
            return Ok(None);
        }
        let current = self.github.pull_request(repo, number).await?;
        if current.body != write.written {
            // Someone edited after our write; they saw our text, so theirs is the latest word.
            tracing::warn!(%repo, pr = %number, "an overwritten edit was followed by another edit; not restoring it");
            return Ok(None);
        }
        let restored = match apply(theirs, &write.edit) {
            Applied::Changed(b) => b,
            Applied::Gone | Applied::Already | Applied::Impossible => theirs.to_string(),
        };
        tracing::info!(%repo, pr = %number, "restoring a person's edit that the bot's body edit overwrote");
        let record = BodyWrite {
            base: current.body.clone(),
            written: restored.clone(),
            edit: write.edit,
        };
        self.memory.record_write(key.clone(), record);
        self.github.set_pr_body(repo, number, &restored).await?;
        // Read again to verify, as every body write: a person who edited in between has seen
        // our text, so their body stands and is what is planned.
        let written = self.github.pull_request(repo, number).await?;
        if written.body != restored {
            tracing::warn!(%repo, pr = %number, "the description changed again while a person's edit was restored; keeping the newer one");
        }
        self.memory.know_body(key, &written.body);
        Ok(Some(written))
    }

    /// Adds `rows` to the PR's one summary comment, edited in place (posted the first time).
    /// Its id and text are remembered: the dispatcher is its only writer, so the next rows cost
    /// one edit, not a listing of the PR's comments too. A comment deleted meanwhile is posted
    /// again.
    pub async fn update_summary(
        &self,
        repo: &RepoName,
        number: PrNumber,
        new_rows: &[Row],
    ) -> Result<(), DispatchError> {
        let key: PrKey = (repo.clone(), number);
        let existing = match self.memory.summary(&key) {
            Some(known) => known,
            None => self
                .bot_comments(repo, number)
                .await?
                .into_iter()
                .find(|(_, body)| body.starts_with(summary::MARKER)),
        };
        let mut rows = existing
            .as_ref()
            .map(|(_, body)| summary::parse(body))
            .unwrap_or_default();
        for row in new_rows {
            summary::upsert(&mut rows, row.clone());
        }
        let text = summary::render(&rows);
        let id = match existing {
            Some((id, body)) if body == text => id,
            Some((id, _)) => match self.github.edit_comment(repo, id, &text).await {
                Ok(()) => id,
                Err(GitHubError::NotFound { .. }) => {
                    self.memory.forget_summary(&key);
                    return Box::pin(self.update_summary(repo, number, new_rows)).await;
                }
                Err(e) => {
                    self.memory.forget_summary(&key);
                    return Err(e.into());
                }
            },
            None => self.github.post_comment(repo, number, &text).await?.id,
        };
        self.memory.remember_summary(key, Some((id, text)));
        Ok(())
    }
}

/// The JSON of a message tickbot publishes.
fn encode(what: &str, value: &impl serde::Serialize) -> Result<Vec<u8>, DispatchError> {
    serde_json::to_vec(value).map_err(|e| DispatchError::BadEvent {
        delivery: what.to_string(),
        reason: format!("cannot encode a message: {e}"),
    })
}

/// What applying a [`BodyEdit`] to a body gives.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// The item is no longer in the body (removed by hand): only its state is set.
    Gone,
    /// Nothing to change: already so, or a person's word stands (they ticked or failed it).
    Already,
    Impossible,
    Changed(String),
}

fn apply(body: &str, edit: &BodyEdit) -> Applied {
    let item = match edit {
        BodyEdit::Append { text, present } if count_items(body, text) > *present => {
            return Applied::Already;
        }
        BodyEdit::Append { text, .. } => {
            return match checklist::append_task(body, text) {
                Some((b, _)) => Applied::Changed(b),
                None => Applied::Impossible,
            };
        }
        BodyEdit::Done(item) | BodyEdit::Failed(item) | BodyEdit::Todo(item) => item,
    };
    let Some(now) = locate(body, item) else {
        return Applied::Gone;
    };
    let edited = match (edit, now.state) {
        (BodyEdit::Done(_), TaskState::Done)
        | (BodyEdit::Failed(_), TaskState::Done | TaskState::Failed)
        | (BodyEdit::Todo(_), TaskState::Todo | TaskState::Done) => return Applied::Already,
        (BodyEdit::Done(_), _) => checklist::mark_done(body, &now),
        (BodyEdit::Failed(_), _) => checklist::mark_failed(body, &now),
        _ => checklist::mark_todo(body, &now),
    };
    match edited {
        Some(b) if b != body => Applied::Changed(b),
        // The edit cannot be made (e.g. the body would exceed GitHub's limit): the body stays;
        // the state still tells the result.
        _ => Applied::Already,
    }
}

/// The item a job came from, found again in `body` (by verb, arguments and occurrence).
fn locate(body: &str, item: &ItemRef) -> Option<TaskItem> {
    // An impossible marker makes `find_again` go by occurrence: the job's body is gone.
    let probe = TaskItem {
        line: item.line,
        verb: item.verb.clone(),
        args: item.args.clone(),
        state: TaskState::Todo,
        marker: usize::MAX..usize::MAX,
        prefix: None,
        text: String::new(),
        occurrence: item.occurrence,
    };
    checklist::find_again(body, &probe)
}

fn count_items(body: &str, text: &str) -> usize {
    checklist::parse(body)
        .tasks
        .iter()
        .filter(|t| t.text == text)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(args: &str, occurrence: usize) -> ItemRef {
        ItemRef {
            verb: "image-refresh".into(),
            args: vec![args.into()],
            line: 1,
            occurrence,
        }
    }

    fn changed(a: Applied) -> Option<String> {
        match a {
            Applied::Changed(b) => Some(b),
            _ => None,
        }
    }

    #[test]
    fn the_item_is_found_again_after_lines_moved_and_only_its_marker_changes() {
        let body = "New intro line.\n\n- [ ] image-refresh a\n- [ ] image-refresh a\n";
        assert_eq!(
            changed(apply(body, &BodyEdit::Done(item("a", 1)))).as_deref(),
            Some("New intro line.\n\n- [ ] image-refresh a\n- [x] image-refresh a\n")
        );
        assert_eq!(
            changed(apply(body, &BodyEdit::Failed(item("a", 0)))).as_deref(),
            Some("New intro line.\n\n- [ ] FAIL: image-refresh a\n- [ ] image-refresh a\n")
        );
    }

    #[test]
    fn repeated_or_overtaken_edits_change_nothing() {
        let done = |b: &str| apply(b, &BodyEdit::Done(item("a", 0)));
        let failed = |b: &str| apply(b, &BodyEdit::Failed(item("a", 0)));
        assert_eq!(done("- [x] image-refresh a\n"), Applied::Already);
        assert_eq!(failed("- [ ] FAIL: image-refresh a\n"), Applied::Already);
        // A person ticked it while it failed: their word stands.
        assert_eq!(failed("- [x] image-refresh a\n"), Applied::Already);
        // Removed by hand: only the state is set.
        assert_eq!(done("- [ ] image-refresh b\n"), Applied::Gone);
    }

    #[test]
    fn a_rerun_removes_only_the_prefix_and_a_success_too() {
        let todo = BodyEdit::Todo(item("a", 0));
        assert_eq!(
            changed(apply("Intro\n- [ ] FAIL: image-refresh a\n", &todo)).as_deref(),
            Some("Intro\n- [ ] image-refresh a\n")
        );
        assert_eq!(apply("- [x] image-refresh a\n", &todo), Applied::Already);
        assert_eq!(
            changed(apply(
                "- [ ] FAIL: image-refresh a\n",
                &BodyEdit::Done(item("a", 0))
            ))
            .as_deref(),
            Some("- [x] image-refresh a\n")
        );
    }

    #[test]
    fn an_append_is_made_once_even_on_a_body_edited_since() {
        let edit = BodyEdit::append("Intro\n- [ ] lint\n", "image-refresh  a");
        let once = changed(apply("Intro\n- [ ] lint\n", &edit)).expect("appended");
        assert_eq!(once, "Intro\n- [ ] lint\n- [ ] image-refresh a\n");
        assert_eq!(apply(&once, &edit), Applied::Already);
        // A person's edit overwritten by the append gets the line too.
        assert_eq!(
            changed(apply("Their intro\n- [ ] lint\n", &edit)).as_deref(),
            Some("Their intro\n- [ ] lint\n- [ ] image-refresh a\n")
        );
        let huge = "x".repeat(checklist::GITHUB_BODY_LIMIT);
        assert_eq!(
            apply(&huge, &BodyEdit::append(&huge, "lint")),
            Applied::Impossible
        );
    }
}
