//! A job's log: tickbot's own lines and the output of the job's commands, as it is written,
//! with the values of the job's secrets masked and its size capped (`[worker] max_log`).
//!
//! Logs are served without authentication and their end is copied into check runs, so
//! nothing reaches the file unmasked: output is read from the commands' pipes line by line
//! and masked before it is written. Once the cap is reached, the rest of the output is
//! dropped except its last lines, which are written at the end after a marker, so a failure
//! at the end of a huge log is still explained.

use base64::Engine;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The default of `[worker] max_log`.
pub const DEFAULT_MAX_LOG: u64 = 64 * 1024 * 1024;

/// A line longer than this is written in pieces (a command that never writes a newline
/// must not fill the worker's memory).
const MAX_LINE: usize = 64 * 1024;

/// Of the output dropped past the cap, this much of its end is kept for the log's end.
const KEPT_END: usize = 16 * 1024;

/// Secret values shorter than this are not masked: they would hide every occurrence of
/// common text (`true`, `1`) and tell the reader what the secret is.
pub const MIN_MASKED: usize = 4;

/// What replaces a secret's value.
const MASK: &[u8] = b"***";

/// A job's log file; cheap to clone (clones write to the same file and share the cap).
#[derive(Clone)]
pub struct JobLog {
    path: PathBuf,
    inner: Arc<Mutex<Sink>>,
    mask: Arc<Mask>,
}

impl JobLog {
    /// The log at `path`, capped at [`DEFAULT_MAX_LOG`], masking nothing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::capped(path, DEFAULT_MAX_LOG, &[])
    }

    /// The log at `path`, capped at `max` bytes of output, with `secrets` masked.
    pub fn capped(path: impl Into<PathBuf>, max: u64, secrets: &[String]) -> Self {
        Self {
            path: path.into(),
            inner: Arc::new(Mutex::new(Sink {
                file: None,
                written: 0,
                max,
                dropped: 0,
                kept: VecDeque::new(),
            })),
            mask: Arc::new(Mask::new(secrets)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a line of tickbot's own (always written, even past the cap).
    pub fn line(&self, text: &str) {
        let mut line = self.mask.apply(text.as_bytes());
        line.push(b'\n');
        self.sink().append(&self.path, &line);
    }

    /// Copies a command's output into the log until both pipes close, then writes what the
    /// cap held back.
    pub async fn capture(self, stdout: impl AsyncRead + Unpin, stderr: impl AsyncRead + Unpin) {
        tokio::join!(self.pump(stdout), self.pump(stderr));
        self.sink().finish(&self.path);
    }

    async fn pump(&self, mut from: impl AsyncRead + Unpin) {
        let mut pending = Vec::new();
        let mut chunk = vec![0u8; 8192];
        loop {
            let n = match from.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            while let Some(end) = line_end(&pending) {
                let rest = pending.split_off(end);
                self.output(&pending);
                pending = rest;
            }
        }
        if !pending.is_empty() {
            self.output(&pending);
        }
    }

    fn output(&self, piece: &[u8]) {
        let masked = self.mask.apply(piece);
        self.sink().write_output(&self.path, &masked);
    }

    fn sink(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where the first line of `pending` ends (after its newline), or where a line too long to
/// wait for is cut.
fn line_end(pending: &[u8]) -> Option<usize> {
    match pending.iter().position(|b| *b == b'\n') {
        Some(nl) => Some(nl + 1),
        None if pending.len() >= MAX_LINE => Some(MAX_LINE),
        None => None,
    }
}

struct Sink {
    file: Option<std::fs::File>,
    /// Bytes of output written (tickbot's own lines are not counted).
    written: u64,
    max: u64,
    /// Bytes of output dropped past the cap.
    dropped: u64,
    /// The end of the dropped output, written when the command ends.
    kept: VecDeque<u8>,
}

impl Sink {
    fn write_output(&mut self, path: &Path, bytes: &[u8]) {
        if self.dropped == 0 && self.written + bytes.len() as u64 <= self.max {
            self.written += bytes.len() as u64;
            self.append(path, bytes);
            return;
        }
        if self.dropped == 0 {
            let marker = format!(
                "\ntickbot: the log reached its limit of {} ([worker] max_log): the output from \
                 here on is dropped, except its end, which follows when the command ends\n",
                format_size(self.max)
            );
            self.append(path, marker.as_bytes());
        }
        self.dropped += bytes.len() as u64;
        self.kept.extend(bytes);
        let over = self.kept.len().saturating_sub(KEPT_END);
        self.kept.drain(..over);
    }

    /// Writes the end of the dropped output, from a line start, after saying how much went.
    fn finish(&mut self, path: &Path) {
        if self.dropped == 0 {
            return;
        }
        let kept: Vec<u8> = self.kept.drain(..).collect();
        let from = match kept.iter().position(|b| *b == b'\n') {
            Some(nl) if (kept.len() as u64) < self.dropped => nl + 1,
            _ => 0,
        };
        let marker = format!(
            "tickbot: {} of output dropped; its last {}:\n",
            format_size(self.dropped),
            format_size((kept.len() - from) as u64)
        );
        self.append(path, marker.as_bytes());
        self.append(path, &kept[from..]);
        self.dropped = 0;
    }

    fn append(&mut self, path: &Path, bytes: &[u8]) {
        if self.file.is_none() {
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            match opened {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open the job log");
                    return;
                }
            }
        }
        if let Some(Err(e)) = self.file.as_mut().map(|f| f.write_all(bytes)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the job log");
        }
    }
}

/// The secrets' values and their common encodings, replaced by `***`.
struct Mask(Option<regex::bytes::Regex>);

impl Mask {
    fn new(secrets: &[String]) -> Self {
        let mut forms: Vec<Vec<u8>> = secrets.iter().flat_map(|s| encodings(s)).collect();
        forms.retain(|f| f.len() >= MIN_MASKED);
        // Longest first: a value is masked whole, not just a shorter value inside it.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        if forms.is_empty() {
            return Self(None);
        }
        let pattern = forms
            .iter()
            .map(|f| regex::escape(&String::from_utf8_lossy(f)))
            .collect::<Vec<_>>()
            .join("|");
        // Values are escaped literals, so the only way this fails is a size limit.
        match regex::bytes::RegexBuilder::new(&pattern)
            .unicode(false)
            .size_limit(64 << 20)
            .build()
        {
            Ok(re) => Self(Some(re)),
            Err(e) => {
                tracing::error!(error = %e, "cannot mask the job's secrets; its log is withheld");
                Self(Some(
                    regex::bytes::Regex::new(r"(?s-u).+")
                        .unwrap_or_else(|_| unreachable!("a constant pattern")),
                ))
            }
        }
    }

    fn apply(&self, text: &[u8]) -> Vec<u8> {
        match &self.0 {
            Some(re) => re.replace_all(text, MASK).into_owned(),
            None => text.to_vec(),
        }
    }
}

/// What a secret's value may look like in output: as is, each of its lines, percent-encoded,
/// and base64-encoded (standard and URL-safe) at each of the three alignments it can have
/// inside a longer encoded text (the characters that depend only on the value).
fn encodings(value: &str) -> Vec<Vec<u8>> {
    let mut forms = vec![value.as_bytes().to_vec()];
    forms.extend(value.lines().map(|l| l.trim().as_bytes().to_vec()));
    forms.push(urlencoding::encode(value).into_owned().into_bytes());
    let bytes = value.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        forms.push(engine.encode(bytes).into_bytes());
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            let start = (offset * 8).div_ceil(6);
            let end = (shifted.len() * 8) / 6;
            if start < end {
                forms.push(encoded.as_bytes()[start..end].to_vec());
            }
        }
    }
    forms
}

fn format_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// The end of the log file at `path` (only its last [`LOG_TAIL_BYTES`] + 1 bytes are read:
/// failing logs can be large); `None` if it cannot be read.
pub fn read_log_tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    // One byte more than kept, so a tail that starts mid-line is still cut at a line start.
    let start = len.saturating_sub(LOG_TAIL_BYTES as u64 + 1);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(log_tail(&bytes))
}

/// The last lines of a log, at most [`LOG_TAIL_BYTES`], cut at a line start.
fn log_tail(log: &[u8]) -> String {
    let start = log.len().saturating_sub(LOG_TAIL_BYTES);
    let tail = String::from_utf8_lossy(&log[start..]);
    match (start, tail.find('\n')) {
        (0, _) | (_, None) => tail.trim_end().to_string(),
        (_, Some(nl)) => tail[nl + 1..].trim_end().to_string(),
    }
}

/// How much of a failed job's log goes into its report (GitHub shows it in the check run).
const LOG_TAIL_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_starts_at_a_line_and_keeps_the_end() {
        assert_eq!(log_tail(b"a\nb\n"), "a\nb");
        let long = format!("{}\nlast line\n", "x".repeat(LOG_TAIL_BYTES));
        assert_eq!(log_tail(long.as_bytes()), "last line");
    }

    fn masked(secrets: &[&str], text: &str) -> String {
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        String::from_utf8(Mask::new(&secrets).apply(text.as_bytes())).expect("utf-8")
    }

    #[test]
    fn secret_values_and_their_encodings_are_masked() {
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let secret = "hunter2-s3cr3t";
        assert_eq!(masked(&[secret], "key=hunter2-s3cr3t;"), "key=***;");
        assert_eq!(masked(&[secret], &b64(secret)), "***");
        // Inside a longer encoded text, at each alignment, as `echo user:$KEY | base64` does.
        for prefix in ["", "u", "us", "user:"] {
            let encoded = b64(&format!("{prefix}{secret}\n"));
            assert!(
                masked(&[secret], &encoded).contains("***"),
                "{prefix:?}: {encoded}"
            );
        }
        assert_eq!(
            masked(&[secret], "https://x/?k=hunter2-s3cr3t%20"),
            "https://x/?k=***%20"
        );
        assert_eq!(
            masked(&["a b/c&d"], "q=a%20b%2Fc%26d"),
            "q=***",
            "percent-encoded"
        );
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line_and_short_ones_not_at_all() {
        let key = "-----BEGIN KEY-----\nMIIEabcdefgh\n-----END KEY-----";
        assert_eq!(masked(&[key], "got MIIEabcdefgh here"), "got *** here");
        assert_eq!(masked(&["abc"], "abc"), "abc");
        assert_eq!(masked(&[], "nothing to hide"), "nothing to hide");
    }

    #[tokio::test]
    async fn output_past_the_cap_is_dropped_but_its_end_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = JobLog::capped(dir.path().join("job.log"), 100, &["s3cret-value".into()]);
        log.line("tickbot: starting");
        let mut out = String::new();
        for i in 0..3000 {
            out.push_str(&format!("line {i} s3cret-value\n"));
        }
        log.clone().capture(out.as_bytes(), &b""[..]).await;
        log.line("tickbot: finished");
        let text = std::fs::read_to_string(log.path()).expect("log");
        assert!(!text.contains("s3cret-value"), "{text}");
        assert!(
            text.starts_with("tickbot: starting\nline 0 ***\nline 1 ***\n"),
            "{text}"
        );
        assert!(
            text.contains("line 2999 ***\ntickbot: finished\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\ntickbot: the log reached its limit of 100 B ([worker] max_log): the output \
                 from here on is dropped, except its end, which follows when the command ends\n"
            ),
            "{text}"
        );
        let (_, end) = text
            .split_once(" of output dropped; its last ")
            .expect("the end of the dropped output");
        let kept = end.split_once(":\n").expect("the kept lines").1;
        assert!(kept.starts_with("line "), "cut at a line start: {kept}");
        assert!(text.len() < 100 + KEPT_END + 1024, "{}", text.len());
    }
}
