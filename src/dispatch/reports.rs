//! Workers' reports (`<prefix>.results`) and dead-lettered jobs, turned into what a user sees
//! (reference §7): the context's state, the ticked or `FAIL:`-marked box, the summary comment,
//! and a request to plan the PR's next item.
//!
//! Reports may arrive twice (redelivery): finished job ids are remembered, and every edit is
//! idempotent anyway (a ticked box is not ticked again, an unchanged body is not written).

use super::replies::Comment;
use super::state::{self, Cancellation, Phase, State};
use super::summary::Row;
use super::writes::BodyEdit;
use super::{DispatchError, Dispatcher};
use crate::ids::CommitSha;
use crate::job::{Job, JobReport, Outcome, ReportState};

/// Bumped when a report field changes meaning; older ones are still read.
pub const REPORT_SCHEMA: u32 = 1;

impl Dispatcher {
    /// Handles one message of the results queue.
    pub(super) async fn on_report(&self, body: &[u8], attempt: u32) -> Result<(), DispatchError> {
        let report: JobReport =
            serde_json::from_slice(body).map_err(|e| DispatchError::BadEvent {
                delivery: "(report)".into(),
                reason: format!("not a job report: {e}"),
            })?;
        self.act_on_report(report, attempt > 1).await
    }

    /// A worker's report (or the dispatcher's own for a dead-lettered job), read.
    /// `redelivered`: an earlier delivery may have been acted on by a dispatcher that is gone.
    async fn act_on_report(
        &self,
        report: JobReport,
        redelivered: bool,
    ) -> Result<(), DispatchError> {
        if report.schema > REPORT_SCHEMA {
            return Err(DispatchError::BadEvent {
                delivery: report.job_id,
                reason: format!(
                    "report schema {} is newer than this dispatcher",
                    report.schema
                ),
            });
        }
        if self.memory.cancelled.contains(&report.job_id) {
            if matches!(report.state, ReportState::Started) {
                // This worker missed the cancellation (it was down when it was sent).
                self.writes
                    .broadcast_cancel(vec![report.job_id.clone()], &Cancellation::Repeated)
                    .await?;
            } else {
                self.memory
                    .end_flight(&(report.repo.clone(), report.pr), &report.context);
            }
            tracing::info!(job = %report.job_id, "report of a cancelled job ignored");
            return Ok(());
        }
        if self.memory.finished.contains(&report.job_id) {
            // A redelivered or late report of a finished job: it must not set a pending state
            // again, tick twice or post twice.
            tracing::info!(job = %report.job_id, "report of a finished job ignored");
            return Ok(());
        }
        match &report.state {
            ReportState::Started => self.on_started(&report, redelivered).await,
            ReportState::Finished {
                outcome,
                commit,
                duration_secs,
            } => {
                self.on_finished(&report, outcome, commit.as_ref(), *duration_secs)
                    .await?;
                self.memory.finished.insert(&report.job_id);
                Ok(())
            }
        }
    }

    /// A job or report that ended in the dead-letter queue. A job there will never report
    /// (its workers crashed or were killed on every delivery), so it is finished here as an
    /// error: its state leaves "In progress" and its box gets `FAIL:`. A report there is acted
    /// on once more (acting twice is harmless; dropping a `Finished` would leave its job
    /// "In progress"). Other messages are only logged.
    pub(super) async fn on_dead_letter(
        &self,
        body: &[u8],
        attempts: u32,
    ) -> Result<(), DispatchError> {
        if let Ok(report) = serde_json::from_slice::<JobReport>(body) {
            tracing::warn!(job = %report.job_id, attempts, "a report was dead-lettered; acting on it once more");
            return self.act_on_report(report, true).await;
        }
        let Ok(job) = serde_json::from_slice::<Job>(body) else {
            tracing::error!(
                bytes = body.len(),
                "a message was dead-lettered; an operator can inspect it in the dead-letter queue"
            );
            return Ok(());
        };
        tracing::error!(job = %job.job_id, repo = %job.repo, pr = %job.pr, attempts, "a job was dead-lettered");
        let state = ReportState::Finished {
            outcome: Outcome::Error {
                reason: format!(
                    "Internal error: no worker finished the job in {attempts} deliveries"
                ),
            },
            commit: None,
            duration_secs: 0,
        };
        let report = JobReport::new(&job, "tickbot", self.writes.log_url(&job.job_id), state);
        self.act_on_report(report, false).await
    }

    async fn on_started(&self, report: &JobReport, redelivered: bool) -> Result<(), DispatchError> {
        if redelivered && self.ended_already(report).await? {
            // Its Finished was acted on before this Started came back (a dispatcher stopped
            // while holding both): "In progress" now would never be replaced.
            tracing::info!(job = %report.job_id, "a redelivered Started of a job that ended is ignored");
            return Ok(());
        }
        if let Some(item) = &report.item {
            self.memory
                .start_flight((report.repo.clone(), report.pr), &report.context, item);
        }
        let running = State::Running {
            worker: &report.worker,
            note: report.note.as_deref(),
        };
        let status = running.on(&report.context, Some(report.log_url.clone()));
        self.memory
            .defer_running(&report.job_id, &report.repo, &report.head_sha, status);
        Ok(())
    }

    /// Whether the context's state at the head says this job ended.
    async fn ended_already(&self, report: &JobReport) -> Result<bool, DispatchError> {
        let states = self.writes.states(&report.repo, &report.head_sha).await?;
        Ok(states.iter().any(|s| {
            s.context == report.context
                && state::job_of(s) == Some(report.job_id.as_str())
                && Phase::of(s).is_finished()
        }))
    }

    /// Makes the writes a burst of reports held back: each PR's summary rows in one edit, then
    /// the "In progress" state of each job still running (unless cancelled meanwhile).
    /// What a failure leaves unwritten is kept for the next try.
    pub(super) async fn flush_reports(&self) -> Result<(), DispatchError> {
        let mut deferred = self.memory.take_deferred();
        while let Some(((repo, number), rows)) = deferred.rows.pop_front() {
            if let Err(e) = self.writes.update_summary(&repo, number, &rows).await {
                deferred.rows.push_front(((repo, number), rows));
                self.memory.put_back(deferred);
                return Err(e);
            }
        }
        while let Some((job, repo, sha, status)) = deferred.running.pop_front() {
            if self.memory.cancelled.contains(&job) || self.memory.finished.contains(&job) {
                continue;
            }
            if let Err(e) = self.writes.set_state(&repo, &sha, &status, None).await {
                deferred.running.push_front((job, repo, sha, status));
                self.memory.put_back(deferred);
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn on_finished(
        &self,
        report: &JobReport,
        outcome: &Outcome,
        commit: Option<&CommitSha>,
        duration_secs: u64,
    ) -> Result<(), DispatchError> {
        self.memory.drop_running(&report.job_id);
        let finished = State::Finished {
            outcome,
            worker: &report.worker,
            note: report.note.as_deref(),
        };
        let status = finished.on(&report.context, Some(report.log_url.clone()));
        let pr = match &report.item {
            // An `Error` is not the task's fault, but marked `FAIL:` too: left to do, the next
            // plan would run it again at once, and again, while the infrastructure is broken.
            // A person removing `FAIL:` retries it.
            Some(item) => {
                let edit = match outcome {
                    Outcome::Success => BodyEdit::Done(item.clone()),
                    Outcome::Failure { .. } | Outcome::Error { .. } => {
                        BodyEdit::Failed(item.clone())
                    }
                };
                let edited = self
                    .writes
                    .edit_body(&report.repo, report.pr, &edit)
                    .await?;
                Some(edited.pull())
            }
            None => None,
        };
        self.writes
            .set_state(
                &report.repo,
                &report.head_sha,
                &status,
                report.log_tail.as_deref(),
            )
            .await?;
        if let Some(held) = &report.held {
            let pull = self.github.pull_request(&report.repo, report.pr).await?;
            let comment = Comment::DebugHeld {
                context: &report.context,
                head: &report.head_sha,
                worker: &report.worker,
                held,
            };
            self.writes.post_once(&pull, &comment).await?;
        }
        let (text, occurrence) = match &report.item {
            Some(item) => {
                let words = std::iter::once(&item.verb).chain(&item.args);
                let text: Vec<&str> = words.map(String::as_str).collect();
                (text.join(" "), item.occurrence)
            }
            None => (report.context.clone(), 0),
        };
        let row = Row {
            context: report.context.clone(),
            occurrence,
            text,
            result: status.description.clone().unwrap_or_default(),
            duration_secs,
            log_url: report.log_url.clone(),
            commit: commit.map(|c| c.0.clone()),
        };
        self.memory.defer_row((report.repo.clone(), report.pr), row);
        // An image build: the jobs that waited for it go on (or end) now.
        self.images.built(report, outcome).await?;
        let Some(pr) = pr else {
            return Ok(()); // a test: nothing waits for it
        };
        self.memory
            .end_flight(&(report.repo.clone(), report.pr), &report.context);
        // The worker's push moved the head: the next item is planned (and queued) there.
        self.writes.request_plan(&pr).await
    }
}
