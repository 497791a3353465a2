//! A job's record: what the dashboard shows about it. The worker writes it beside the log
//! when the job starts and when it ends, and broadcasts it, so an intake on any machine sees
//! running jobs at once and finds every job in the store after a restart.

use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::job::{Job, Outcome};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the record's JSON.
pub const RECORD_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub record_schema: u32,
    pub job_id: String,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub head_sha: CommitSha,
    pub context: String,
    pub pool: String,
    pub worker: String,
    /// From a private repository: shown only with `[dashboard] private = true`.
    pub private: bool,
    pub queued_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub state: RecordState,
    /// How it ended, in a person's words (`exited with 1`).
    #[serde(default)]
    pub description: Option<String>,
    /// Files the job left in `artifacts/`, by their path there.
    #[serde(default)]
    pub artifacts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    Running,
    Success,
    Failure,
    Error,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Running => "running",
            RecordState::Success => "success",
            RecordState::Failure => "failure",
            RecordState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<RecordState> {
        [
            RecordState::Running,
            RecordState::Success,
            RecordState::Failure,
            RecordState::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl JobRecord {
    /// The record of `job` starting now on `worker`.
    pub fn started(job: &Job, worker: &str) -> JobRecord {
        JobRecord {
            record_schema: RECORD_SCHEMA,
            job_id: job.job_id.clone(),
            repo: job.repo.clone(),
            pr: job.pr,
            head_sha: job.head_sha.clone(),
            context: job.context.clone(),
            pool: job.pool.clone(),
            worker: worker.to_string(),
            private: job.private,
            queued_at: job.created_at,
            started_at: Utc::now(),
            finished_at: None,
            state: RecordState::Running,
            description: None,
            artifacts: Vec::new(),
        }
    }

    /// This record, ended now with `outcome`.
    pub fn finished(mut self, outcome: &Outcome) -> JobRecord {
        let (state, description) = match outcome {
            Outcome::Success => (RecordState::Success, None),
            Outcome::Failure { reason } => (RecordState::Failure, Some(reason.clone())),
            Outcome::Error { reason } => (RecordState::Error, Some(reason.clone())),
        };
        self.state = state;
        self.description = description;
        self.finished_at = Some(Utc::now());
        self
    }
}
