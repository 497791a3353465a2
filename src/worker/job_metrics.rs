//! What operators ask of the workers, as metrics (reference §10): how long jobs waited in the
//! queue and how long they ran, per pool and context, how they ended, how many run now, and
//! how many ran past their timeout (the kill at the timeout did not take). A task's context is
//! its verb (`image-refresh`, not one series per item).

use crate::job::{Job, JobKind, Outcome};
use std::time::Duration;

/// A job this worker has taken; dropping it counts it as no longer running.
pub(super) struct Running {
    pool: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        metrics::gauge!("tickbot_jobs_running", "pool" => self.pool.clone()).decrement(1.0);
    }
}

/// The context a job's series are named by.
fn context(job: &Job) -> String {
    match (&job.kind, &job.item) {
        (JobKind::Task, Some(item)) => item.verb.clone(),
        _ => job.context.clone(),
    }
}

/// A job taken from the queue: how long it waited since it was queued.
pub(super) fn taken(job: &Job) -> Running {
    let waited = (chrono::Utc::now() - job.created_at)
        .to_std()
        .unwrap_or_default();
    let (pool, context) = (job.pool.clone(), context(job));
    metrics::histogram!("tickbot_job_queue_wait_seconds", "pool" => pool.clone(), "context" => context)
        .record(waited.as_secs_f64());
    metrics::gauge!("tickbot_jobs_running", "pool" => pool.clone()).increment(1.0);
    Running { pool }
}

/// A job that ended after running `ran`.
pub(super) fn ended(job: &Job, outcome: &Outcome, ran: Duration) {
    let (pool, context) = (job.pool.clone(), context(job));
    let ended = match outcome {
        Outcome::Success => "success",
        Outcome::Failure { .. } => "failure",
        Outcome::Error { .. } => "error",
    };
    metrics::histogram!("tickbot_job_run_seconds", "pool" => pool.clone(), "context" => context.clone())
        .record(ran.as_secs_f64());
    metrics::counter!("tickbot_jobs_total", "pool" => pool.clone(), "context" => context.clone(), "outcome" => ended)
        .increment(1);
    // A minute's grace: the kill at the timeout, the container's removal and the report.
    if ran > Duration::from_secs(job.timeout_secs) + Duration::from_secs(60) {
        metrics::counter!("tickbot_jobs_past_timeout_total", "pool" => pool, "context" => context)
            .increment(1);
    }
}
