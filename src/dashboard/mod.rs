//! The operator's view, served by the intake (reference §13): `/` (queue depth per pool,
//! running jobs, finished jobs with filters), `/pr/<owner>/<name>/<n>` (a PR's tasks and tests
//! with their history), `/jobs/<job>` (a log page that follows a running job and marks the
//! failure of a finished one), and the raw `/logs/<job>` with its artifacts.
//!
//! Jobs come from their records ([`crate::logs::JobRecord`]), kept in an [`index`] that the
//! records workers broadcast keep current; logs are read from the `[logs] store`, wherever the
//! worker ran. Private repositories' jobs are left out unless `[dashboard] private = true`.

pub mod index;
pub mod pages;

use crate::job::Broadcast;
use crate::logs::{LogStore, LogStoreError, RecordState};
use crate::queue::{Broker, QueueKind};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use index::{Filter, JobIndex};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// How often the index is checked against the records in the store.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// A log page shows at most this much of the log's end (the raw log has all of it).
const PAGE_LOG_BYTES: u64 = 1024 * 1024;

#[derive(Clone)]
pub struct Dashboard {
    pub index: JobIndex,
    pub store: LogStore,
    broker: Broker,
    pools: Vec<String>,
    private: bool,
}

impl Dashboard {
    pub fn new(
        index: JobIndex,
        store: LogStore,
        broker: Broker,
        pools: Vec<String>,
        private: bool,
    ) -> Dashboard {
        Dashboard {
            index,
            store,
            broker,
            pools,
            private,
        }
    }

    /// The dashboard of an intake whose state directory is `state_dir` (its index lives there).
    pub fn open(
        state_dir: &std::path::Path,
        store: LogStore,
        broker: Broker,
        pools: Vec<String>,
        private: bool,
    ) -> anyhow::Result<Dashboard> {
        use anyhow::Context;
        let path = state_dir.join("dashboard.sqlite3");
        let index = JobIndex::open(&path)
            .with_context(|| format!("cannot open the dashboard's job index {}", path.display()))?;
        Ok(Dashboard::new(index, store, broker, pools, private))
    }

    pub fn router<S>(self) -> Router<S> {
        Router::new()
            .route("/", get(front))
            .route("/pr/{owner}/{name}/{number}", get(pull_request))
            .route("/jobs/{job}", get(log_page))
            .route("/logs/{job}", get(raw_log))
            .route("/logs/{job}/artifacts/{*path}", get(artifact))
            .with_state(self)
    }

    /// Keeps the index current until `shutdown`: every broadcast record at once, and the
    /// store's records now and every [`RECONCILE_EVERY`].
    pub async fn follow(self, mut shutdown: watch::Receiver<bool>) {
        let mut broadcasts = match self.broker.subscribe_broadcasts().await {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: no live job records; reading the store each minute");
                None
            }
        };
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.reconcile().await,
                Some(body) = async { broadcasts.as_mut()?.recv().await }, if broadcasts.is_some() => {
                    if let Ok(Broadcast::Record(record)) = serde_json::from_slice(&body) {
                        self.upsert(*record).await;
                    }
                }
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() {
                    return;
                },
            }
        }
    }

    async fn upsert(&self, record: crate::logs::JobRecord) {
        let index = self.index.clone();
        let job = record.job_id.clone();
        match tokio::task::spawn_blocking(move || index.upsert(&record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%job, error = %e, "dashboard: cannot index a job record"),
            Err(e) => tracing::error!(error = %e, "dashboard: indexing panicked"),
        }
    }

    /// Indexes every record in the store that the index does not have as it is.
    pub async fn reconcile(&self) {
        let keys = match self.store.record_keys().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: cannot list job records; trying again in a minute");
                return;
            }
        };
        // A finished job's record does not change again.
        let index = self.index.clone();
        let finished = tokio::task::spawn_blocking(move || index.finished_ids())
            .await
            .unwrap_or_default();
        for meta in keys {
            let job = meta.location.filename().unwrap_or_default();
            if finished.contains(job.trim_end_matches(".json")) {
                continue;
            }
            match self.store.get_record(&meta.location).await {
                Ok(Some(record)) => self.upsert(record).await,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "dashboard: a job record is skipped"),
            }
        }
    }

    /// A job's record, if the dashboard may show it.
    async fn shown(&self, job: &str) -> Option<crate::logs::JobRecord> {
        let (index, job) = (self.index.clone(), job.to_string());
        let record = tokio::task::spawn_blocking(move || index.get(&job))
            .await
            .ok()??;
        (self.private || !record.private).then_some(record)
    }
}

fn valid_job(job: &str) -> bool {
    !job.is_empty() && job.len() <= 64 && job.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

async fn front(State(d): State<Dashboard>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let filter = Filter {
        repo: get("repo").map(str::to_string),
        pr: get("pr").and_then(|p| p.trim_start_matches('#').parse().ok()),
        state: get("state").and_then(RecordState::parse),
    };
    // Each pool's depth is a round trip to the broker: asked together.
    let depths = d.pools.iter().map(|pool| {
        let (queue, broker) = (QueueKind::Jobs(pool.clone()), &d.broker);
        async move { (pool.clone(), broker.ready_count(&queue).await.ok()) }
    });
    let queues = futures_util::future::join_all(depths).await;
    let (index, private, f) = (d.index.clone(), d.private, filter.clone());
    let lists =
        tokio::task::spawn_blocking(move || (index.running(private), index.finished(&f, private)))
            .await;
    let Ok((running, finished)) = lists else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the job index failed\n").into_response();
    };
    let form = pages::filter_form(
        get("repo").unwrap_or_default(),
        get("pr").unwrap_or_default(),
        filter.state,
    );
    Html(pages::front(
        &queues,
        &running,
        &finished,
        &form,
        chrono::Utc::now(),
    ))
    .into_response()
}

async fn pull_request(
    State(d): State<Dashboard>,
    Path((owner, name, number)): Path<(String, String, u64)>,
) -> Response {
    let repo = format!("{owner}/{name}");
    let (index, private, r) = (d.index.clone(), d.private, repo.clone());
    let Ok(jobs) = tokio::task::spawn_blocking(move || index.of_pr(&r, number, private)).await
    else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the job index failed\n").into_response();
    };
    Html(pages::pull_request(
        &repo,
        number,
        &jobs,
        chrono::Utc::now(),
    ))
    .into_response()
}

async fn log_page(State(d): State<Dashboard>, Path(job): Path<String>) -> Response {
    if !valid_job(&job) {
        return not_found("no such job");
    }
    let Some(record) = d.shown(&job).await else {
        return not_found("no such job");
    };
    let (text, len) = match log_end(&d.store, &job).await {
        Ok(Some(end)) => end,
        Ok(None) => (String::new(), 0),
        Err(e) => {
            tracing::warn!(%job, error = %e, "cannot read a job's log");
            (format!("(the log cannot be read now: {e})"), 0)
        }
    };
    Html(pages::log_page(&record, &text, len, chrono::Utc::now())).into_response()
}

/// The last [`PAGE_LOG_BYTES`] of a log, from a line's start, and the offset the page's
/// follower goes on from; only that end is read.
async fn log_end(store: &LogStore, job: &str) -> Result<Option<(String, u64)>, LogStoreError> {
    let Some(end) = store.read_log_end(job, PAGE_LOG_BYTES).await? else {
        return Ok(None);
    };
    let from = end.start;
    let mut bytes = Vec::new();
    let mut pieces = end.bytes;
    while let Some(piece) = pieces.next().await {
        bytes.extend_from_slice(&piece?);
    }
    let len = from + bytes.len() as u64;
    let start = match from {
        0 => 0,
        _ => bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(0, |nl| nl + 1),
    };
    Ok(Some((
        String::from_utf8_lossy(&bytes[start..]).into_owned(),
        len,
    )))
}

/// The log as text, from byte `?from=` on; `X-Tickbot-Log-Length` says how long it is now and
/// `X-Tickbot-Job-State` whether the job still runs (for the log page's follower).
async fn raw_log(
    State(d): State<Dashboard>,
    Path(job): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !valid_job(&job) {
        return not_found("no such job");
    }
    let from = q.get("from").and_then(|f| f.parse().ok()).unwrap_or(0);
    let (index, id) = (d.index.clone(), job.clone());
    let state = tokio::task::spawn_blocking(move || index.state(&id))
        .await
        .ok()
        .flatten()
        .map_or("unknown", RecordState::as_str);
    match d.store.read_log(&job, from).await {
        Ok(Some(read)) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::HeaderName::from_static("x-tickbot-log-length"),
                    read.len.to_string(),
                ),
                (
                    header::HeaderName::from_static("x-tickbot-job-state"),
                    state.to_string(),
                ),
            ],
            Body::from_stream(read.bytes),
        )
            .into_response(),
        Ok(None) => not_found("no log for this job (yet)"),
        Err(e) => {
            tracing::warn!(%job, error = %e, "cannot read a job's log");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the log store cannot be read now: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn artifact(
    State(d): State<Dashboard>,
    Path((job, path)): Path<(String, String)>,
) -> Response {
    if !valid_job(&job) {
        return not_found("no such job");
    }
    match d.store.read_artifact(&job, &path).await {
        Ok(Some(read)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment"),
            ],
            Body::from_stream(read.bytes),
        )
            .into_response(),
        Ok(None) => not_found("no such artifact"),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the log store cannot be read now: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_logs_page_shows_its_end_from_a_line_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::local(dir.path().join("logs")).expect("store");
        let line = "x".repeat(99) + "\n";
        let log = line.repeat(15_000) + "the end\n";
        std::fs::write(store.spool_path("j1"), &log).expect("a log");
        let (text, len) = log_end(&store, "j1").await.expect("read").expect("there");
        assert_eq!(len, log.len() as u64, "the follower goes on from the end");
        assert!(text.len() as u64 <= PAGE_LOG_BYTES && text.len() > 1_000_000);
        assert!(text.starts_with(&line) && text.ends_with("the end\n"));
        let short = log_end(&store, "none").await.expect("read");
        assert_eq!(short, None);
    }
}
