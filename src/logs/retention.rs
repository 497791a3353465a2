//! `[logs] keep`: a job's log, record and artifacts are deleted from the store once the
//! newest of them was written longer ago than this, by each process that uses the store (a
//! worker writes, the intake serves), at start and every hour; spool files a worker left in
//! its state directory go the same way. A log still being written is fresh, so never deleted.

use super::{LogStore, LogStoreError};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How often a process sweeps its logs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Deletes the `*.log` files of `dir` last written more than `keep` before `now`; returns how
/// many. Other files, and files that vanish meanwhile, are left alone.
pub fn sweep(dir: &Path, keep: Duration, now: SystemTime) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let Ok(written) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        let age = now.duration_since(written).unwrap_or_default();
        if age > keep && std::fs::remove_file(&path).is_ok() {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes every object of each job whose newest object was written more than `keep` before
/// `now`; returns how many jobs.
pub async fn sweep_store(
    store: &LogStore,
    keep: Duration,
    now: SystemTime,
) -> Result<usize, LogStoreError> {
    let cutoff = chrono::DateTime::<chrono::Utc>::from(now - keep);
    let mut jobs: HashMap<String, (chrono::DateTime<chrono::Utc>, Vec<_>)> = HashMap::new();
    for meta in store.list("").await? {
        let Some(first) = meta.location.parts().next() else {
            continue;
        };
        let job = first
            .as_ref()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string();
        let entry = jobs.entry(job).or_insert((meta.last_modified, Vec::new()));
        entry.0 = entry.0.max(meta.last_modified);
        entry.1.push(meta.location);
    }
    let mut deleted = 0;
    for (newest, keys) in jobs.into_values() {
        if newest >= cutoff {
            continue;
        }
        for key in &keys {
            store.delete(key).await?;
        }
        deleted += 1;
    }
    Ok(deleted)
}

/// Sweeps the store (and, with an object store, the spool) now and every [`SWEEP_EVERY`]
/// until `shutdown`.
pub async fn keep_swept(
    store: LogStore,
    keep: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match sweep_store(&store, keep, SystemTime::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, store = ?store, "old job logs deleted ([logs] keep)"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep old job logs; trying again in an hour")
            }
        }
        if !store.is_local() {
            let (dir, now) = (store.spool_dir().to_path_buf(), SystemTime::now());
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || sweep(&dir, keep, now)).await {
                tracing::warn!(error = %e, "cannot sweep old spooled logs; trying again in an hour")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_older_than_keep_are_deleted_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let write = |name: &str, age: Duration| {
            let path = dir.path().join(name);
            std::fs::write(&path, "log\n").expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(now - age).expect("set mtime");
        };
        write("old.log", 91 * day);
        write("recent.log", 89 * day);
        write("running.log", Duration::ZERO);
        write("old.txt", 200 * day);
        assert_eq!(sweep(dir.path(), 90 * day, now).expect("sweep"), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["old.txt", "recent.log", "running.log"]);
        let missing = dir.path().join("missing");
        assert_eq!(sweep(&missing, day, now).expect("no directory"), 0);
    }
}
