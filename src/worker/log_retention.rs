//! `[logs] keep`: finished job logs older than this are deleted from the state directory's
//! `logs/`, by each process that keeps logs there (a worker writes them, the intake serves
//! them), at start and every hour. A log still being written is fresh, so never deleted.

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

/// Sweeps `dir` now and every [`SWEEP_EVERY`] until `shutdown`.
pub async fn keep_swept(
    dir: std::path::PathBuf,
    keep: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (dir2, now) = (dir.clone(), SystemTime::now());
        match tokio::task::spawn_blocking(move || sweep(&dir2, keep, now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(deleted = n, dir = %dir.display(), "old job logs deleted ([logs] keep)")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot sweep old job logs; trying again in an hour")
            }
            Err(e) => tracing::error!(error = %e, "the log sweep panicked"),
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
