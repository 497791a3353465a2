//! Sends a running job's log from the worker's spool file to an object store: what was added
//! is stored every [`SHIP_EVERY`] as a piece named by its offset, so a reader anywhere sees the
//! log at most that much behind; at the end the whole log replaces the pieces.
//!
//! With the local store the spool is the stored log, and nothing is shipped.

use super::{LogStore, LogStoreError};
use bytes::Bytes;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a running log's new bytes are shipped.
pub const SHIP_EVERY: Duration = Duration::from_millis(250);

/// A piece holds at most this much: a burst of output is shipped in several.
const MAX_PIECE: u64 = 8 * 1024 * 1024;

/// Ships one job's log until [`LogShipper::finish`].
pub struct LogShipper {
    task: Option<(watch::Sender<bool>, JoinHandle<u64>)>,
    store: LogStore,
    job: String,
}

impl LogShipper {
    /// Starts shipping the spool of `job` (nothing happens with the local store).
    pub fn start(store: &LogStore, job: &str) -> LogShipper {
        let task = (!store.is_local()).then(|| {
            let (stop, stopped) = watch::channel(false);
            let piece = Pieces {
                store: store.clone(),
                job: job.to_string(),
                spool: store.spool_path(job),
                shipped: 0,
            };
            (stop, tokio::spawn(piece.ship_until(stopped)))
        });
        LogShipper {
            task,
            store: store.clone(),
            job: job.to_string(),
        }
    }

    /// Stores the whole log and removes its pieces and the spool; the log is complete in the
    /// store when this returns `Ok`.
    pub async fn finish(mut self) -> Result<(), LogStoreError> {
        let Some((stop, task)) = self.task.take() else {
            return Ok(());
        };
        let _ = stop.send(true);
        let _ = task.await;
        let spool = self.store.spool_path(&self.job);
        let whole = tokio::fs::read(&spool).await.unwrap_or_default();
        self.store
            .put(&format!("{}.log", self.job), Bytes::from(whole))
            .await?;
        for piece in self.store.list(&format!("{}.parts", self.job)).await? {
            self.store.delete(&piece.location).await?;
        }
        let _ = tokio::fs::remove_file(&spool).await;
        Ok(())
    }
}

impl Drop for LogShipper {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.task {
            let _ = stop.send(true);
        }
    }
}

struct Pieces {
    store: LogStore,
    job: String,
    spool: PathBuf,
    /// Bytes of the spool already stored.
    shipped: u64,
}

impl Pieces {
    async fn ship_until(mut self, mut stopped: watch::Receiver<bool>) -> u64 {
        loop {
            if let Err(e) = self.ship_new().await {
                // The next round tries again from the same offset; the end stores it all.
                tracing::warn!(job = %self.job, error = %e, "cannot ship a running log; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(SHIP_EVERY) => {}
                _ = stopped.wait_for(|stop| *stop) => return self.shipped,
            }
        }
    }

    /// Stores what the spool gained since the last round, as pieces.
    async fn ship_new(&mut self) -> Result<(), LogStoreError> {
        let Ok(mut file) = tokio::fs::File::open(&self.spool).await else {
            return Ok(());
        };
        let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        while self.shipped < len {
            let size = (len - self.shipped).min(MAX_PIECE);
            let mut piece = vec![0; size as usize];
            let read = async {
                file.seek(std::io::SeekFrom::Start(self.shipped)).await?;
                file.read_exact(&mut piece).await
            };
            if read.await.is_err() {
                return Ok(());
            }
            let key = format!("{}.parts/{:020}", self.job, self.shipped);
            self.store.put(&key, Bytes::from(piece)).await?;
            self.shipped += size;
        }
        Ok(())
    }
}
