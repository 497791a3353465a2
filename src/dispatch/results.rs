//! Worker reports (`<prefix>.results`) turned into what a user sees (design §7): the status of
//! the job's context, the ticked or `FAIL:`-marked box, the summary comment, and the next item.
//!
//! PR bodies have no compare-and-swap, so every body edit is: read the body, change only the
//! bytes of one marker/prefix, write, read again to verify (redo from the fresh body if a
//! concurrent edit lost it). An edit that lands between the read and the write is overwritten
//! by the write; the `edited` webhook of the bot's own write then carries the person's text in
//! `changes.body.from`, which differs from the body the write was based on, and
//! [`Dispatcher::on_own_edit`] re-applies the edit to the person's text, so it comes back.
//!
//! Reports may arrive twice (redelivery): finished job ids are remembered, and every edit is
//! idempotent anyway (a ticked box is not ticked again, an unchanged body is not written).

use super::summary::{self, Row};
use super::testing::with_note;
use super::{DispatchError, Dispatcher, PrKey, lock};
use crate::checklist::{self, TaskItem, TaskState};
use crate::github::GitHubError;
use crate::github::{CommitStatus, PullRequest, StatusState};
use crate::ids::{PrNumber, RepoName};
use crate::job::{ItemRef, JobReport, Outcome, ReportState};

/// Read-edit-verify rounds before giving up on a body edit (each lost round means a person
/// edited the body in the few milliseconds between our write and our re-read).
const EDIT_ATTEMPTS: usize = 4;

/// Bumped when a report field changes meaning; older ones are still read.
pub const REPORT_SCHEMA: u32 = 1;

/// Which edit the dispatcher makes to a task item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    Done,
    Failed,
    /// To do again (`FAIL:` removed): a Re-run of the task's check run.
    Todo,
}

/// The dispatcher's last write of a PR body: what it read, what it wrote, and why, so its
/// own `edited` webhook can tell whether the write overwrote a person's edit.
#[derive(Debug, Clone)]
pub(super) struct BodyWrite {
    pub base: String,
    pub written: String,
    pub item: ItemRef,
    pub mark: Mark,
}

/// What applying a [`Mark`] to a body gives.
enum Applied {
    /// The item is no longer in the body (removed by hand): only the status is set.
    Gone,
    /// Nothing to change: already in that state, or ticked by a person meanwhile.
    Already,
    Changed(String),
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

fn apply(body: &str, item: &ItemRef, mark: Mark) -> Applied {
    let Some(now) = locate(body, item) else {
        return Applied::Gone;
    };
    let edited = match (mark, now.state) {
        (Mark::Done, TaskState::Done) => return Applied::Already,
        (Mark::Done, _) => checklist::mark_done(body, &now),
        // A person ticked it or failed it already: their word stands.
        (Mark::Failed, TaskState::Done | TaskState::Failed) => return Applied::Already,
        (Mark::Failed, TaskState::Todo) => checklist::mark_failed(body, &now),
        (Mark::Todo, TaskState::Failed) => checklist::mark_todo(body, &now),
        (Mark::Todo, TaskState::Todo | TaskState::Done) => return Applied::Already,
    };
    match edited {
        Some(b) if b != body => Applied::Changed(b),
        // The edit cannot be made (e.g. the body would exceed GitHub's limit): leave the body;
        // the status still tells the result.
        _ => Applied::Already,
    }
}

impl Dispatcher {
    /// Handles one message of the results queue.
    /// A message that ended in the dead-letter queue. A job there will never report (its
    /// workers crashed or were killed on every delivery), so it is finished here as an error:
    /// its status leaves "In progress" and its box gets `FAIL:`. Other messages are only logged.
    pub async fn handle_dead(&self, body: &[u8], attempts: u32) -> Result<(), DispatchError> {
        let Ok(job) = serde_json::from_slice::<crate::job::Job>(body) else {
            tracing::error!(
                bytes = body.len(),
                "a message was dead-lettered; an operator can inspect it in the dead-letter queue"
            );
            return Ok(());
        };
        tracing::error!(job = %job.job_id, repo = %job.repo, pr = %job.pr, attempts, "a job was dead-lettered");
        let log_url = self.log_url(&job.job_id);
        let state = crate::job::ReportState::Finished {
            outcome: crate::job::Outcome::Error {
                reason: format!(
                    "Internal error: no worker finished the job in {attempts} deliveries"
                ),
            },
            commit: None,
            duration_secs: 0,
        };
        let report = JobReport::new(&job, "tickbot", log_url, state);
        let body = serde_json::to_vec(&report).map_err(|e| DispatchError::BadEvent {
            delivery: job.job_id.clone(),
            reason: format!("cannot encode a report: {e}"),
        })?;
        self.handle_report(&body).await
    }

    pub async fn handle_report(&self, body: &[u8]) -> Result<(), DispatchError> {
        let report: JobReport =
            serde_json::from_slice(body).map_err(|e| DispatchError::BadEvent {
                delivery: "(report)".into(),
                reason: format!("not a job report: {e}"),
            })?;
        if report.schema > REPORT_SCHEMA {
            return Err(DispatchError::BadEvent {
                delivery: report.job_id,
                reason: format!(
                    "report schema {} is newer than this dispatcher",
                    report.schema
                ),
            });
        }
        if self.cancelled.contains(&report.job_id) {
            if matches!(report.state, ReportState::Started) {
                // This worker missed the cancellation (it was down when it was sent).
                self.broadcast_cancel(vec![report.job_id.clone()], "Cancelled")
                    .await?;
            } else {
                self.done_in_flight(&(report.repo.clone(), report.pr), &report.context);
            }
            tracing::info!(job = %report.job_id, "report of a cancelled job ignored");
            return Ok(());
        }
        if self.finished.contains(&report.job_id) {
            // A redelivered or late report of a finished job: it must not set a pending status
            // again, tick twice or post twice.
            tracing::info!(job = %report.job_id, "report of a finished job ignored");
            return Ok(());
        }
        match &report.state {
            ReportState::Started => self.on_started(&report).await,
            ReportState::Finished {
                outcome,
                commit,
                duration_secs,
            } => {
                self.on_finished(&report, outcome, commit.as_ref(), *duration_secs)
                    .await?;
                self.finished.insert(&report.job_id);
                Ok(())
            }
        }
    }

    async fn on_started(&self, report: &JobReport) -> Result<(), DispatchError> {
        if let Some(item) = &report.item {
            self.in_flight(report.repo.clone(), report.pr, &report.context, item);
        }
        self.set_state(
            &report.repo,
            &report.head_sha,
            &CommitStatus {
                context: report.context.clone(),
                state: StatusState::Pending,
                description: Some(with_note(
                    &format!("In progress [{}]", report.worker),
                    report.note.as_deref(),
                )),
                target_url: Some(report.log_url.clone()),
            },
        )
        .await?;
        Ok(())
    }

    async fn on_finished(
        &self,
        report: &JobReport,
        outcome: &Outcome,
        commit: Option<&crate::ids::CommitSha>,
        duration_secs: u64,
    ) -> Result<(), DispatchError> {
        let (state, description, mark) = match outcome {
            Outcome::Success => (
                StatusState::Success,
                format!("Success [{}]", report.worker),
                Mark::Done,
            ),
            Outcome::Failure { reason } => (
                StatusState::Failure,
                format!("{reason} [{}]", report.worker),
                Mark::Failed,
            ),
            // Not the task's fault, but marked `FAIL:` too: left to do, the next plan would
            // run it again at once, and again, while the infrastructure is broken. A person
            // removing `FAIL:` retries it.
            Outcome::Error { reason } => (
                StatusState::Error,
                format!("{reason} [{}]", report.worker),
                Mark::Failed,
            ),
        };
        let description = with_note(&description, report.note.as_deref());
        let pr = match &report.item {
            Some(item) => Some(self.edit_item(&report.repo, report.pr, item, mark).await?),
            None => None,
        };
        self.set_state_with_log(
            &report.repo,
            &report.head_sha,
            &CommitStatus {
                context: report.context.clone(),
                state,
                description: Some(description.clone()),
                target_url: Some(report.log_url.clone()),
            },
            report.log_tail.as_deref(),
        )
        .await?;
        let (text, occurrence) = match &report.item {
            Some(item) => (
                std::iter::once(item.verb.as_str())
                    .chain(item.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                item.occurrence,
            ),
            None => (report.context.clone(), 0),
        };
        let row = Row {
            context: report.context.clone(),
            occurrence,
            text,
            result: description,
            duration_secs,
            log_url: report.log_url.clone(),
            commit: commit.map(|c| c.0.clone()),
        };
        self.update_summary(&report.repo, report.pr, row).await?;
        let Some(pr) = pr else {
            return Ok(()); // a test: nothing waits for it
        };
        self.done_in_flight(&(report.repo.clone(), report.pr), &report.context);
        // The worker's push moved the head: the next item is planned (and queued) there.
        self.plan_pr(pr).await
    }

    /// Ticks or fails `item` in the PR body: read, edit the one marker, write, re-read to
    /// verify; redone from the fresh body when a concurrent edit lost it. Returns the PR as
    /// last read.
    pub(super) async fn edit_item(
        &self,
        repo: &RepoName,
        number: PrNumber,
        item: &ItemRef,
        mark: Mark,
    ) -> Result<PullRequest, DispatchError> {
        let key: PrKey = (repo.clone(), number);
        let mut pr = self.github.pull_request(repo, number).await?;
        for attempt in 1..=EDIT_ATTEMPTS {
            let Applied::Changed(new) = apply(&pr.body, item, mark) else {
                self.know_body(&key, &pr.body);
                return Ok(pr);
            };
            self.record_write(
                &key,
                BodyWrite {
                    base: pr.body.clone(),
                    written: new.clone(),
                    item: item.clone(),
                    mark,
                },
            );
            if let Err(e) = self.github.set_pr_body(repo, number, &new).await {
                // Never repeated blindly (a person may have edited meanwhile): read again.
                tracing::warn!(%repo, pr = %number, attempt, error = %e, "body edit failed; reading the body again");
                if !e.is_transient() && !e.outcome_unknown() {
                    return Err(e.into());
                }
            }
            pr = self.github.pull_request(repo, number).await?;
            if !matches!(apply(&pr.body, item, mark), Applied::Changed(_)) {
                self.know_body(&key, &pr.body);
                return Ok(pr);
            }
            tracing::info!(%repo, pr = %number, attempt, "a concurrent edit lost the box edit; redoing it");
        }
        tracing::error!(%repo, pr = %number, "the box edit kept being overwritten; giving up on it");
        Ok(pr)
    }

    /// The bot's own `edited` webhook. If `from` (the body just before the write) is not the
    /// body the write was based on, a person's edit landed in between and was overwritten:
    /// put it back with the box edit applied to it.
    pub(super) async fn on_own_edit(
        &self,
        repo: &RepoName,
        number: PrNumber,
        body: &str,
        from: Option<&str>,
    ) -> Result<(), DispatchError> {
        let key: PrKey = (repo.clone(), number);
        let Some(write) = self.last_write(&key) else {
            return Ok(());
        };
        let Some(theirs) = from else { return Ok(()) };
        if write.written != body || write.base == theirs {
            return Ok(());
        }
        let current = self.github.pull_request(repo, number).await?;
        if current.body != write.written {
            // Someone edited after our write; they saw our text, so theirs is the latest word.
            tracing::warn!(%repo, pr = %number, "an overwritten edit was followed by another edit; not restoring it");
            return Ok(());
        }
        let restored = match apply(theirs, &write.item, write.mark) {
            Applied::Changed(b) => b,
            Applied::Gone | Applied::Already => theirs.to_string(),
        };
        tracing::info!(%repo, pr = %number, "restoring a person's edit that the bot's body edit overwrote");
        self.record_write(
            &key,
            BodyWrite {
                base: current.body.clone(),
                written: restored.clone(),
                ..write
            },
        );
        self.github.set_pr_body(repo, number, &restored).await?;
        self.know_body(&key, &restored);
        let pr = PullRequest {
            body: restored,
            ..current
        };
        // Their edit may have added or changed items.
        self.plan_pr(pr).await
    }

    /// Edits the PR's one summary comment in place (posts it the first time). The comment's
    /// id and text are remembered: the dispatcher is its only writer, so the next row costs one
    /// edit, not a listing of the PR's comments too. A comment deleted meanwhile is found
    /// missing by the edit and posted again.
    async fn update_summary(
        &self,
        repo: &RepoName,
        number: PrNumber,
        row: Row,
    ) -> Result<(), DispatchError> {
        let key: PrKey = (repo.clone(), number);
        let remembered = lock(&self.summaries).get(&key).cloned();
        let existing = match remembered {
            Some(known) => known,
            None => {
                let bot = self.settings.bot_login.as_deref();
                self.github
                    .comments(repo, number)
                    .await?
                    .into_iter()
                    .find(|c| {
                        c.body.starts_with(summary::MARKER) && bot.is_none_or(|b| c.author == b)
                    })
                    .map(|c| (c.id, c.body))
            }
        };
        let mut rows = existing
            .as_ref()
            .map(|(_, body)| summary::parse(body))
            .unwrap_or_default();
        summary::upsert(&mut rows, row.clone());
        let text = summary::render(&rows);
        let id = match existing {
            Some((id, body)) if body == text => id,
            Some((id, _)) => match self.github.edit_comment(repo, id, &text).await {
                Ok(()) => id,
                Err(GitHubError::NotFound { .. }) => {
                    lock(&self.summaries).remove(&key);
                    return Box::pin(self.update_summary(repo, number, row)).await;
                }
                Err(e) => {
                    lock(&self.summaries).remove(&key);
                    return Err(e.into());
                }
            },
            None => self.github.post_comment(repo, number, &text).await?.id,
        };
        let mut summaries = lock(&self.summaries);
        if summaries.len() > 10_000 {
            summaries.clear(); // costs one listing per PR
        }
        summaries.insert(key, Some((id, text)));
        Ok(())
    }
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
            changed(apply(body, &item("a", 1), Mark::Done)).as_deref(),
            Some("New intro line.\n\n- [ ] image-refresh a\n- [x] image-refresh a\n")
        );
        assert_eq!(
            changed(apply(body, &item("a", 0), Mark::Failed)).as_deref(),
            Some("New intro line.\n\n- [ ] FAIL: image-refresh a\n- [ ] image-refresh a\n")
        );
    }

    #[test]
    fn repeated_or_overtaken_edits_change_nothing() {
        assert!(matches!(
            apply("- [x] image-refresh a\n", &item("a", 0), Mark::Done),
            Applied::Already
        ));
        assert!(matches!(
            apply("- [ ] FAIL: image-refresh a\n", &item("a", 0), Mark::Failed),
            Applied::Already
        ));
        // A person ticked it while it failed: their word stands.
        assert!(matches!(
            apply("- [x] image-refresh a\n", &item("a", 0), Mark::Failed),
            Applied::Already
        ));
        // Removed by hand: only the status is set.
        assert!(matches!(
            apply("- [ ] image-refresh b\n", &item("a", 0), Mark::Done),
            Applied::Gone
        ));
    }

    #[test]
    fn a_rerun_removes_only_the_prefix() {
        assert_eq!(
            changed(apply(
                "Intro\n- [ ] FAIL: image-refresh a\n",
                &item("a", 0),
                Mark::Todo
            ))
            .as_deref(),
            Some("Intro\n- [ ] image-refresh a\n")
        );
        assert!(matches!(
            apply("- [x] image-refresh a\n", &item("a", 0), Mark::Todo),
            Applied::Already
        ));
    }

    #[test]
    fn a_failed_item_that_succeeds_loses_its_prefix() {
        assert_eq!(
            changed(apply(
                "- [ ] FAIL: image-refresh a\n",
                &item("a", 0),
                Mark::Done
            ))
            .as_deref(),
            Some("- [x] image-refresh a\n")
        );
    }
}
