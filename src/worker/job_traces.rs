//! What a job leaves for people to read, wherever the worker runs: its log shipped to the
//! `[logs] store` as it is written, its files in `artifacts/`, and its record (started,
//! finished, how), stored and broadcast so the dashboard of any intake shows it at once.

use super::job_log::JobLog;
use super::lock;
use crate::job::{Job, Outcome};
use crate::logs::shipper::LogShipper;
use crate::logs::{JobRecord, LogStore};
use crate::queue::Broker;
use std::path::Path;
use std::sync::Mutex;

pub struct JobTraces {
    store: LogStore,
    broker: Broker,
    shipper: Mutex<Option<LogShipper>>,
    /// Set when the job starts; its artifacts are added as they are stored.
    record: Mutex<Option<JobRecord>>,
    max_artifacts: u64,
}

impl JobTraces {
    /// Starts shipping the log of `job`.
    pub fn new(store: &LogStore, broker: &Broker, job: &Job, max_artifacts: u64) -> JobTraces {
        JobTraces {
            store: store.clone(),
            broker: broker.clone(),
            shipper: Mutex::new(Some(LogShipper::start(store, &job.job_id))),
            record: Mutex::new(None),
            max_artifacts,
        }
    }

    /// The job started on `worker`: its record says so.
    pub async fn started(&self, job: &Job, worker: &str) {
        let record = JobRecord::started(job, worker);
        *lock(&self.record) = Some(record.clone());
        self.publish(&record).await;
    }

    /// Stores the files the job left in `artifacts/` of `tree`, saying in the log what was not.
    pub async fn keep_artifacts(&self, job: &Job, tree: &Path, log: &JobLog) {
        match self
            .store
            .put_artifacts(&job.job_id, tree, self.max_artifacts)
            .await
        {
            Ok(stored) => {
                for skipped in &stored.skipped {
                    log.line(&format!("tickbot: artifact not kept: {skipped}"));
                }
                if !stored.paths.is_empty() {
                    log.line(&format!(
                        "tickbot: kept {} artifact(s) from artifacts/",
                        stored.paths.len()
                    ));
                }
                if let Some(record) = lock(&self.record).as_mut() {
                    record.artifacts = stored.paths;
                }
            }
            Err(e) => log.line(&format!("tickbot: cannot keep the job's artifacts: {e}")),
        }
    }

    /// The job ended with `outcome`: the whole log is stored (before the report that links
    /// it), then the record says how it ended.
    pub async fn finished(&self, job: &Job, outcome: &Outcome) {
        let shipper = lock(&self.shipper).take();
        if let Some(shipper) = shipper
            && let Err(e) = shipper.finish().await
        {
            tracing::error!(job = %job.job_id, error = %e, "cannot store the job's whole log");
        }
        let started = lock(&self.record).take();
        if let Some(record) = started {
            self.publish(&record.finished(outcome)).await;
        }
    }

    /// Stores the record and tells every intake; neither failing stops the job.
    async fn publish(&self, record: &JobRecord) {
        if let Err(e) = self.store.put_record(record).await {
            tracing::warn!(job = %record.job_id, error = %e, "cannot store the job's record");
        }
        match serde_json::to_vec(record) {
            Ok(body) => {
                if let Err(e) = self.broker.broadcast(body).await {
                    tracing::warn!(job = %record.job_id, error = %e, "cannot broadcast the job's record");
                }
            }
            Err(e) => {
                tracing::warn!(job = %record.job_id, error = %e, "cannot encode the job's record")
            }
        }
    }
}
