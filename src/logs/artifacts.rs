//! Files a job leaves in `artifacts/` of its tree, stored beside its log and linked from the
//! log page. Only regular files are taken (a symlink could point anywhere on the worker), and
//! at most [`MAX_FILES`] files and `max_bytes` in all: the job's own output bounds nothing.

use super::{LogRead, LogStore, LogStoreError};
use bytes::Bytes;
use object_store::path::Path as Key;
use std::path::Path;

/// The directory of a job's tree whose files are kept.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// At most this many files are kept of one job.
pub const MAX_FILES: usize = 1000;

/// What was stored, and what was left out and why (for the job's log).
#[derive(Debug, Default)]
pub struct Stored {
    pub paths: Vec<String>,
    pub skipped: Vec<String>,
}

/// The regular files under `dir`, by their path relative to it, in name order.
fn files(dir: &Path) -> Vec<(String, std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            // `file_type` does not follow symlinks.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if let Ok(rel) = path.strip_prefix(dir) {
                    found.push((rel.to_string_lossy().into_owned(), path, size));
                }
            }
        }
    }
    found.sort();
    found
}

/// A stored name is plain: no empty, `.` or `..` parts, no control characters.
fn plain(rel: &str) -> bool {
    !rel.is_empty()
        && rel
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.starts_with('#'))
        && !rel.chars().any(|c| c.is_control() || c == '\\')
}

impl LogStore {
    /// Stores the files of `<tree>/artifacts/` for `job`, up to `max_bytes` in all.
    pub async fn put_artifacts(
        &self,
        job: &str,
        tree: &Path,
        max_bytes: u64,
    ) -> Result<Stored, LogStoreError> {
        let dir = tree.join(ARTIFACTS_DIR);
        let found = tokio::task::spawn_blocking(move || files(&dir))
            .await
            .unwrap_or_default();
        let mut stored = Stored::default();
        let mut total = 0;
        for (rel, path, size) in found {
            if !plain(&rel) {
                stored
                    .skipped
                    .push(format!("{rel:?} (not a plain file name)"));
                continue;
            }
            if stored.paths.len() >= MAX_FILES || total + size > max_bytes {
                stored.skipped.push(format!(
                    "{rel} (over the limit of {MAX_FILES} files or [worker] max_log bytes)"
                ));
                continue;
            }
            let Ok(bytes) = tokio::fs::read(&path).await else {
                stored.skipped.push(format!("{rel} (unreadable)"));
                continue;
            };
            total += size;
            self.put(&format!("{job}.artifacts/{rel}"), Bytes::from(bytes))
                .await?;
            stored.paths.push(rel);
        }
        Ok(stored)
    }

    /// An artifact of `job`; `None` if there is none by that path.
    pub async fn read_artifact(
        &self,
        job: &str,
        rel: &str,
    ) -> Result<Option<LogRead>, LogStoreError> {
        if !plain(rel) {
            return Ok(None);
        }
        self.get_from(&Key::from(format!("{job}.artifacts/{rel}")), 0)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_are_stored_or_served() {
        assert!(plain("report.html"));
        assert!(plain("screens/login.png"));
        for bad in [
            "",
            "../etc/passwd",
            "a/../../b",
            "./x",
            "a//b",
            "a\nb",
            "#tmp",
            "a\\b",
        ] {
            assert!(!plain(bad), "{bad:?} accepted");
        }
    }
}
