//! The dashboard's index of job records: a SQLite file in the intake's state directory, fed by
//! the records workers broadcast and, at start and every minute, by the records in the store
//! (so a broadcast missed while the intake was down is found). Only the index is queried
//! while a page is made; the store is read for logs.

use crate::logs::{JobRecord, RecordState};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// How many finished jobs a page lists.
pub const PAGE: usize = 50;

#[derive(Clone)]
pub struct JobIndex {
    db: Arc<Mutex<Connection>>,
}

/// What the list of finished jobs is narrowed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub repo: Option<String>,
    pub pr: Option<u64>,
    pub state: Option<RecordState>,
}

impl JobIndex {
    pub fn open(path: &Path) -> rusqlite::Result<JobIndex> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS jobs (
                 job_id TEXT PRIMARY KEY,
                 repo TEXT NOT NULL,
                 pr INTEGER NOT NULL,
                 state TEXT NOT NULL,
                 private INTEGER NOT NULL,
                 started_at TEXT NOT NULL,
                 finished_at TEXT,
                 record TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
             CREATE INDEX IF NOT EXISTS jobs_pr ON jobs (repo, pr, started_at);",
        )?;
        Ok(JobIndex {
            db: Arc::new(Mutex::new(db)),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or updates a job; a finished job's record is never replaced by a running one.
    pub fn upsert(&self, record: &JobRecord) -> rusqlite::Result<()> {
        let json = serde_json::to_string(record).unwrap_or_default();
        self.db().execute(
            "INSERT INTO jobs (job_id, repo, pr, state, private, started_at, finished_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (job_id) DO UPDATE SET
                 state = excluded.state, started_at = excluded.started_at,
                 finished_at = excluded.finished_at, record = excluded.record
             WHERE jobs.finished_at IS NULL OR excluded.finished_at IS NOT NULL",
            params![
                record.job_id,
                record.repo.to_string(),
                record.pr.0 as i64,
                record.state.as_str(),
                record.private,
                record.started_at.to_rfc3339(),
                record.finished_at.map(|t| t.to_rfc3339()),
                json,
            ],
        )?;
        Ok(())
    }

    fn query(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Vec<JobRecord> {
        let db = self.db();
        let Ok(mut stmt) = db.prepare_cached(sql) else {
            return Vec::new();
        };
        let rows = stmt.query_map(args, |row| row.get::<_, String>(0));
        rows.map(|rows| {
            rows.flatten()
                .filter_map(|json| serde_json::from_str(&json).ok())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Jobs running now, oldest first.
    pub fn running(&self, private: bool) -> Vec<JobRecord> {
        self.query(
            "SELECT record FROM jobs WHERE finished_at IS NULL AND (private = 0 OR ?1)
             ORDER BY started_at",
            &[&private],
        )
    }

    /// The newest [`PAGE`] finished jobs that pass `filter`.
    pub fn finished(&self, filter: &Filter, private: bool) -> Vec<JobRecord> {
        let state = filter.state.map(RecordState::as_str);
        self.query(
            "SELECT record FROM jobs WHERE finished_at IS NOT NULL AND (private = 0 OR ?1)
               AND (?2 IS NULL OR repo = ?2) AND (?3 IS NULL OR pr = ?3)
               AND (?4 IS NULL OR state = ?4)
             ORDER BY finished_at DESC LIMIT ?5",
            &[
                &private,
                &filter.repo,
                &filter.pr.map(|p| p as i64),
                &state,
                &(PAGE as i64),
            ],
        )
    }

    /// Every job of one PR, newest first.
    pub fn of_pr(&self, repo: &str, pr: u64, private: bool) -> Vec<JobRecord> {
        self.query(
            "SELECT record FROM jobs WHERE repo = ?1 AND pr = ?2 AND (private = 0 OR ?3)
             ORDER BY started_at DESC",
            &[&repo, &(pr as i64), &private],
        )
    }

    /// The jobs that ended (their records do not change again).
    pub fn finished_ids(&self) -> std::collections::HashSet<String> {
        let db = self.db();
        let Ok(mut stmt) =
            db.prepare_cached("SELECT job_id FROM jobs WHERE finished_at IS NOT NULL")
        else {
            return Default::default();
        };
        let ids = stmt.query_map([], |row| row.get::<_, String>(0));
        ids.map(|ids| ids.flatten().collect()).unwrap_or_default()
    }

    /// A job's state, without reading its whole record.
    pub fn state(&self, job: &str) -> Option<RecordState> {
        let state: Option<String> = self
            .db()
            .query_row("SELECT state FROM jobs WHERE job_id = ?1", [job], |row| {
                row.get(0)
            })
            .optional()
            .ok()
            .flatten();
        state.as_deref().and_then(RecordState::parse)
    }

    pub fn get(&self, job: &str) -> Option<JobRecord> {
        let json: Option<String> = self
            .db()
            .query_row("SELECT record FROM jobs WHERE job_id = ?1", [job], |row| {
                row.get(0)
            })
            .optional()
            .ok()
            .flatten();
        json.and_then(|j| serde_json::from_str(&j).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(job: &str, pr: u64, private: bool, state: RecordState) -> JobRecord {
        serde_json::from_value(serde_json::json!({
            "record_schema": 1, "job_id": job, "repo": "acme/widgets", "pr": pr,
            "head_sha": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", "context": "unit",
            "pool": "default", "worker": "w1", "private": private,
            "queued_at": "2026-12-07T10:00:00Z", "started_at": format!("2026-12-07T10:00:0{pr}Z"),
            "finished_at": (state != RecordState::Running).then_some(format!("2026-12-07T10:05:0{pr}Z")),
            "state": state.as_str()
        }))
        .expect("a record")
    }

    fn ids(records: &[JobRecord]) -> Vec<&str> {
        records.iter().map(|r| r.job_id.as_str()).collect()
    }

    #[test]
    fn private_jobs_are_shown_only_when_allowed_and_finished_records_stay_finished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = JobIndex::open(&dir.path().join("index.sqlite3")).expect("open");
        index
            .upsert(&record("pub-run", 1, false, RecordState::Running))
            .expect("upsert");
        index
            .upsert(&record("priv-run", 2, true, RecordState::Running))
            .expect("upsert");
        index
            .upsert(&record("pub-fail", 3, false, RecordState::Failure))
            .expect("upsert");
        index
            .upsert(&record("pub-ok", 4, false, RecordState::Success))
            .expect("upsert");
        assert_eq!(ids(&index.running(false)), ["pub-run"]);
        assert_eq!(ids(&index.running(true)), ["pub-run", "priv-run"]);
        assert_eq!(
            ids(&index.of_pr("acme/widgets", 2, false)),
            Vec::<&str>::new()
        );

        // A late "running" record (a redelivered broadcast) does not undo an end.
        index
            .upsert(&record("pub-fail", 3, false, RecordState::Running))
            .expect("upsert");
        let all = Filter::default();
        assert_eq!(ids(&index.finished(&all, false)), ["pub-ok", "pub-fail"]);
        let failed = Filter {
            state: Some(RecordState::Failure),
            ..Filter::default()
        };
        assert_eq!(ids(&index.finished(&failed, false)), ["pub-fail"]);
        let by_pr = Filter {
            repo: Some("acme/widgets".into()),
            pr: Some(4),
            state: None,
        };
        assert_eq!(ids(&index.finished(&by_pr, false)), ["pub-ok"]);
    }
}
