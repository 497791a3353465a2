//! Where job logs, job records and artifacts live (`[logs] store`): the state directory's
//! `logs/` (the default, for one machine) or any S3-compatible object store (for workers on
//! several machines). Both are one [`object_store::ObjectStore`], so every reader and writer
//! has one code path, checked by one conformance suite (`tests/logs.rs`).
//!
//! A worker always writes a job's log to `<state>/logs/<job>.log` as it runs (the spool).
//! With the local store the spool *is* the stored log. With an object store the
//! [`shipper`] sends what was added every quarter second as a piece (`<job>.parts/<offset>`),
//! so a running job's log can be read from any machine, and at the end the whole log
//! (`<job>.log`) replaces the pieces.
//!
//! Keys under the store's root (a job id has only letters, digits and `-`, never a `.`):
//!
//! * `<job>.log`: the finished log (local store: also the running one);
//! * `<job>.parts/<offset>`: pieces of a running log, named by their first byte's offset;
//! * `<job>.json`: the job's [`JobRecord`], written when it starts and when it ends;
//! * `<job>.artifacts/<path>`: files the job left in `artifacts/` of its tree.

pub mod artifacts;
pub mod record;
pub mod retention;
pub mod shipper;

pub use record::{JobRecord, RecordState};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the log store; each names the store and what failed.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("[logs] store = {store:?}: {reason}")]
    Config { store: String, reason: String },
    #[error("log store {store}: {op} failed: {source}")]
    Store {
        store: String,
        op: String,
        #[source]
        source: object_store::Error,
    },
    #[error("log store {store}: the record {key} is unreadable: {reason}")]
    BadRecord {
        store: String,
        key: String,
        reason: String,
    },
}

/// How to reach an object store: `[logs] store = "s3://bucket/prefix"` and its keys.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<crate::config::Secret>,
}

/// The store of job logs, records and artifacts; cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    store: Arc<dyn ObjectStore>,
    /// Where workers spool logs as they are written (`<state>/logs`).
    spool_dir: PathBuf,
    /// The spool is the store (the local directory store): nothing to ship.
    local: bool,
    /// For messages: `file` or the `s3://…` URL.
    name: String,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A log read from some offset on: its whole length so far, where the bytes start, and the
/// bytes from there to the end.
pub struct LogRead {
    pub len: u64,
    pub start: u64,
    pub bytes: BoxStream<'static, Result<Bytes, LogStoreError>>,
}

impl LogStore {
    /// The store `[logs] store` names: `file` (under `state_dir`) or `s3://bucket[/prefix]`.
    pub fn open(store: &str, s3: &S3Settings, state_dir: &Path) -> Result<LogStore, LogStoreError> {
        let spool_dir = state_dir.join("logs");
        if store == "file" || store.is_empty() {
            return Self::local(spool_dir);
        }
        let Some(rest) = store.strip_prefix("s3://") else {
            return Err(config_error(
                store,
                "expected \"file\" or \"s3://bucket/prefix\"",
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(config_error(store, "the URL names no bucket"));
        }
        // The TLS of the store's client uses the process's crypto provider: ring, as the rest
        // of tickbot (another role may have installed it already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(s3.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &s3.endpoint {
            // Plain HTTP only where nothing crosses a network (a store on this machine).
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| endpoint.starts_with(p));
            builder = builder.with_endpoint(endpoint).with_allow_http(loopback);
        }
        if let (Some(id), Some(key)) = (&s3.access_key_id, &s3.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(key.expose());
        }
        let s3_store = builder
            .build()
            .map_err(|e| config_error(store, &e.to_string()))?;
        let prefix = prefix.trim_matches('/');
        let store_impl: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3_store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3_store, prefix))
        };
        Ok(LogStore {
            store: store_impl,
            spool_dir,
            local: false,
            name: store.to_string(),
        })
    }

    /// The local directory store at `dir` (also the spool).
    pub fn local(dir: PathBuf) -> Result<LogStore, LogStoreError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| config_error("file", &format!("cannot create {}: {e}", dir.display())))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| config_error("file", &e.to_string()))?;
        Ok(LogStore {
            store: Arc::new(fs),
            spool_dir: dir,
            local: true,
            name: "file".into(),
        })
    }

    /// Whether workers' spool files are the stored logs (nothing to ship).
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Where a worker writes the log of `job` as it runs.
    pub fn spool_path(&self, job: &str) -> PathBuf {
        self.spool_dir.join(format!("{job}.log"))
    }

    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    fn error(&self, op: impl Into<String>) -> impl FnOnce(object_store::Error) -> LogStoreError {
        let (store, op) = (self.name.clone(), op.into());
        move |source| LogStoreError::Store { store, op, source }
    }

    pub(crate) async fn put(&self, key: &str, bytes: Bytes) -> Result<(), LogStoreError> {
        self.store
            .put(&Key::from(key), PutPayload::from_bytes(bytes))
            .await
            .map_err(self.error(format!("writing {key}")))?;
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &Key) -> Result<(), LogStoreError> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(format!("deleting {key}"))(e)),
        }
    }

    /// Everything under `prefix` (all keys if empty): key, size, last written.
    pub async fn list(&self, prefix: &str) -> Result<Vec<object_store::ObjectMeta>, LogStoreError> {
        let prefix = (!prefix.is_empty()).then(|| Key::from(prefix));
        self.store
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(self.error(format!("listing {}", prefix.unwrap_or_default())))
    }

    /// The bytes of `key` from `from` on, and its length; `None` if there is no such object.
    /// The bytes of `key` from `from` on, and its length; `None` if there is no such object.
    pub(crate) async fn get_from(
        &self,
        key: &Key,
        from: u64,
    ) -> Result<Option<LogRead>, LogStoreError> {
        self.get_range(key, (from > 0).then_some(GetRange::Offset(from)))
            .await
    }

    /// The bytes of `key` in `range` (all without one); `None` if there is no such object.
    async fn get_range(
        &self,
        key: &Key,
        range: Option<GetRange>,
    ) -> Result<Option<LogRead>, LogStoreError> {
        let options = GetOptions {
            range: range.clone(),
            ..GetOptions::default()
        };
        match self.store.get_opts(key, options).await {
            Ok(got) => {
                let (len, start) = (got.meta.size, got.range.start);
                let (store, op) = (self.name.clone(), format!("reading {key}"));
                let bytes = got
                    .into_stream()
                    .map_err(move |source| LogStoreError::Store {
                        store: store.clone(),
                        op: op.clone(),
                        source,
                    })
                    .boxed();
                Ok(Some(LogRead { len, start, bytes }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            // Asked past the end: nothing new yet.
            Err(object_store::Error::NotModified { .. }) => Ok(None),
            // A range an object cannot satisfy (past its end, or of an empty one): nothing.
            Err(e) => match self.store.head(key).await {
                Ok(meta) if range.is_some_and(|r| unsatisfiable(&r, meta.size)) => {
                    Ok(Some(LogRead {
                        len: meta.size,
                        start: meta.size,
                        bytes: futures_util::stream::empty().boxed(),
                    }))
                }
                _ => Err(self.error(format!("reading {key}"))(e)),
            },
        }
    }

    /// The log of `job` from byte `from` on, finished or still being written; `None` if
    /// nothing of it was stored yet.
    pub async fn read_log(&self, job: &str, from: u64) -> Result<Option<LogRead>, LogStoreError> {
        self.read_log_in(job, Wanted::From(from)).await
    }

    /// The last `max` bytes of the log of `job` (all of a shorter one), in one read.
    pub async fn read_log_end(
        &self,
        job: &str,
        max: u64,
    ) -> Result<Option<LogRead>, LogStoreError> {
        self.read_log_in(job, Wanted::Last(max)).await
    }

    async fn read_log_in(
        &self,
        job: &str,
        wanted: Wanted,
    ) -> Result<Option<LogRead>, LogStoreError> {
        let whole = Key::from(format!("{job}.log"));
        if let Some(read) = self.get_range(&whole, wanted.range()).await? {
            return Ok(Some(read));
        }
        let parts = self.list(&format!("{job}.parts")).await?;
        if parts.is_empty() {
            // The whole log may have replaced the pieces since the first look.
            return self.get_range(&whole, wanted.range()).await;
        }
        let (pieces, len) = contiguous(parts);
        Ok(Some(self.read_pieces(pieces, len, wanted.start(len))))
    }

    /// A running log from its contiguous pieces, from byte `from` on.
    fn read_pieces(
        &self,
        pieces: Vec<(u64, object_store::ObjectMeta)>,
        len: u64,
        from: u64,
    ) -> LogRead {
        let wanted: Vec<(u64, Key)> = pieces
            .into_iter()
            .filter(|(offset, meta)| offset + meta.size > from)
            .map(|(offset, meta)| (from.saturating_sub(offset), meta.location))
            .collect();
        let store = self.clone();
        let bytes = futures_util::stream::iter(wanted)
            .then(move |(skip, key)| {
                let store = store.clone();
                async move {
                    match store.get_from(&key, skip).await? {
                        Some(read) => Ok(read.bytes),
                        None => Ok(futures_util::stream::empty().boxed()),
                    }
                }
            })
            .try_flatten()
            .boxed();
        LogRead {
            len,
            start: from.min(len),
            bytes,
        }
    }

    /// Writes the record of a job (replacing an earlier one).
    pub async fn put_record(&self, record: &JobRecord) -> Result<(), LogStoreError> {
        let body = serde_json::to_vec(record).map_err(|e| LogStoreError::BadRecord {
            store: self.name.clone(),
            key: format!("{}.json", record.job_id),
            reason: e.to_string(),
        })?;
        self.put(&format!("{}.json", record.job_id), body.into())
            .await
    }

    /// The record at `key`.
    pub async fn get_record(&self, key: &Key) -> Result<Option<JobRecord>, LogStoreError> {
        let got = match self.store.get(key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error(format!("reading {key}"))(e)),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(self.error(format!("reading {key}")))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LogStoreError::BadRecord {
                store: self.name.clone(),
                key: key.to_string(),
                reason: e.to_string(),
            })
    }

    /// The keys of every job record, with when each was written.
    pub async fn record_keys(&self) -> Result<Vec<object_store::ObjectMeta>, LogStoreError> {
        // Only the top level: not the pieces and artifacts under each job.
        let mut top = self
            .store
            .list_with_delimiter(None)
            .await
            .map_err(self.error("listing the job records"))?
            .objects;
        top.retain(|meta| {
            meta.location
                .filename()
                .is_some_and(|name| name.ends_with(".json"))
        });
        Ok(top)
    }
}

/// Which part of a log a reader wants.
#[derive(Clone, Copy)]
enum Wanted {
    From(u64),
    Last(u64),
}

impl Wanted {
    fn range(self) -> Option<GetRange> {
        match self {
            Wanted::From(0) => None,
            Wanted::From(from) => Some(GetRange::Offset(from)),
            Wanted::Last(max) => Some(GetRange::Suffix(max)),
        }
    }

    fn start(self, len: u64) -> u64 {
        match self {
            Wanted::From(from) => from,
            Wanted::Last(max) => len.saturating_sub(max),
        }
    }
}

/// Whether `range` asks for nothing of an object of `size` bytes.
fn unsatisfiable(range: &GetRange, size: u64) -> bool {
    match range {
        GetRange::Offset(from) => size <= *from,
        GetRange::Suffix(_) => size == 0,
        GetRange::Bounded(r) => size <= r.start,
    }
}

/// The pieces of a running log, each named by its first byte's offset, in order, and the length
/// of their contiguous run from 0: a piece still being written leaves a gap, and what follows
/// it is not read yet.
fn contiguous(parts: Vec<object_store::ObjectMeta>) -> (Vec<(u64, object_store::ObjectMeta)>, u64) {
    let mut pieces: Vec<(u64, object_store::ObjectMeta)> = parts
        .into_iter()
        .filter_map(|meta| {
            let offset = meta.location.filename()?.parse::<u64>().ok()?;
            Some((offset, meta))
        })
        .collect();
    pieces.sort_by_key(|(offset, _)| *offset);
    let mut len = 0;
    let mut run = Vec::new();
    for (offset, meta) in pieces {
        if offset != len {
            break;
        }
        len = offset + meta.size;
        run.push((offset, meta));
    }
    (run, len)
}

fn config_error(store: &str, reason: &str) -> LogStoreError {
    LogStoreError::Config {
        store: store.to_string(),
        reason: reason.to_string(),
    }
}
