//! The embedded engine behind [`super::Broker`]: a durable on-disk queue for a single machine,
//! used when no `[amqp] url` is configured.
//!
//! Storage is one sqlite file, `<state dir>/queue.sqlite3`, in WAL mode with
//! `synchronous=FULL` (a commit is on disk when it returns) and `locking_mode=EXCLUSIVE` (one
//! process owns the queue; a second one gets [`QueueError::EmbeddedLocked`]).
//!
//! One storage thread owns the database and all queue state; everything else talks to it over
//! a channel. The thread takes whatever commands are waiting, applies them in one transaction,
//! hands out deliveries, commits once and only then answers: concurrent publishes (and acks)
//! share one fsync, which is the group commit RabbitMQ does too.
//!
//! Semantics match the RabbitMQ engine (the conformance suite runs both):
//! * priorities on job queues (higher first, FIFO within a priority), FIFO elsewhere;
//! * a handed-out message is leased to its consumer; the lease is in memory, plus a durable
//!   `delivered` mark written before the message leaves the thread. Dropping a [`Delivery`] or
//!   its [`Consumer`](super::Consumer) unsettled returns the message with `attempt + 1`, and on
//!   open every message still marked `delivered` (its process died) does the same; the message
//!   goes to the dead letter queue instead when that was delivery number `max_deliveries`;
//! * prefetch per consumer, single active consumer on queues declared so (the first living
//!   consumer gets everything; when it goes, the next takes over).

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{Delivery, Outgoing, QueueError, QueueSpec, Settle};

mod store;
use store::Store;

/// Handle to the embedded queue; clones share the storage thread.
#[derive(Clone)]
pub struct EmbeddedBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("path", &self.shared.path)
            .field("prefix", &self.shared.prefix)
            .finish()
    }
}

struct Shared {
    path: String,
    prefix: String,
    /// Broadcasts stay in the process: one process owns the embedded queue.
    broadcasts: tokio::sync::broadcast::Sender<Vec<u8>>,
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Close the command channel and wait for the thread, so the database lock is released
        // when the last handle is gone (reopening the same directory must work right away).
        drop(self.tx.take());
        let handle = match self.thread.get_mut() {
            Ok(h) => h.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

impl Shared {
    fn stopped(&self) -> QueueError {
        QueueError::EmbeddedStopped {
            path: self.path.clone(),
        }
    }

    fn send(&self, cmd: Cmd) -> Result<(), QueueError> {
        match &self.tx {
            Some(tx) => tx.send(cmd).map_err(|_| self.stopped()),
            None => Err(self.stopped()),
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, QueueError>>) -> Cmd,
    ) -> Result<T, QueueError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply))?;
        rx.await.map_err(|_| self.stopped())?
    }
}

type Reply<T> = oneshot::Sender<Result<T, QueueError>>;

enum Cmd {
    Declare(Vec<QueueSpec>, Reply<()>),
    Delete(Vec<String>, Reply<()>),
    Publish(String, Outgoing, Reply<()>),
    Consume(String, u16, Reply<(u64, mpsc::UnboundedReceiver<Handout>)>),
    Cancel(u64),
    Ack(u64, Reply<()>),
    Retry(u64, Reply<()>),
    DeadLetter(u64, Reply<()>),
    Release(u64),
    Count(String, Reply<u64>),
    Ping(Reply<()>),
}

/// What the storage thread sends a consumer.
type Handout = Result<Raw, QueueError>;

struct Raw {
    lease: u64,
    message_id: String,
    body: Vec<u8>,
    priority: u8,
    attempt: u32,
}

impl EmbeddedBroker {
    /// Opens (creating if needed) the queue under `state_dir` and recovers what a previous
    /// process left unacknowledged.
    pub async fn open(
        state_dir: &Path,
        prefix: &str,
        max_deliveries: u32,
    ) -> Result<EmbeddedBroker, QueueError> {
        let file = state_dir.join("queue.sqlite3");
        let path = file.display().to_string();
        std::fs::create_dir_all(state_dir).map_err(|e| QueueError::Embedded {
            path: path.clone(),
            op: format!("creating the directory {}", state_dir.display()),
            reason: e.to_string(),
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let store_path = path.clone();
        let [dead, notices] = super::dead_letter_queues(prefix);
        let thread = std::thread::Builder::new()
            .name("tickbot-queue".to_string())
            .spawn(
                move || match Store::open(&file, store_path, dead, notices, max_deliveries) {
                    Ok(store) => {
                        let _ = ready_tx.send(Ok(()));
                        store.run(rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                },
            )
            .map_err(|e| QueueError::Embedded {
                path: path.clone(),
                op: "starting the storage thread".to_string(),
                reason: e.to_string(),
            })?;
        let shared = Arc::new(Shared {
            path: path.clone(),
            prefix: prefix.to_string(),
            broadcasts: tokio::sync::broadcast::channel(1024).0,
            tx: Some(tx),
            thread: Mutex::new(Some(thread)),
        });
        ready_rx.await.map_err(|_| shared.stopped())??;
        info!(%path, "embedded queue open");
        Ok(EmbeddedBroker { shared })
    }

    pub(super) fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    pub(super) fn broadcast(&self, body: Vec<u8>) -> Result<(), QueueError> {
        // No subscriber is not an error: nobody runs anything to cancel.
        let _ = self.shared.broadcasts.send(body);
        Ok(())
    }

    pub(super) fn subscribe_broadcasts(&self) -> mpsc::Receiver<Vec<u8>> {
        let mut rx = self.shared.broadcasts.subscribe();
        let (tx, out) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(body) => {
                        if tx.send(body).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "a broadcast subscriber fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        out
    }

    pub(super) async fn declare(&self, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let specs = specs.to_vec();
        self.shared.call(|r| Cmd::Declare(specs, r)).await
    }

    pub(super) async fn delete(&self, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let names = specs.iter().map(|s| s.name.clone()).collect();
        self.shared.call(|r| Cmd::Delete(names, r)).await
    }

    pub(super) async fn publish(&self, queue: &str, msg: Outgoing) -> Result<(), QueueError> {
        let queue = queue.to_string();
        self.shared.call(|r| Cmd::Publish(queue, msg, r)).await
    }

    pub(super) async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<EmbeddedConsumer, QueueError> {
        let queue = queue.to_string();
        let (id, rx) = self
            .shared
            .call(|r| Cmd::Consume(queue, prefetch, r))
            .await?;
        Ok(EmbeddedConsumer {
            shared: self.shared.clone(),
            id,
            rx,
        })
    }

    pub(super) async fn ready_count(&self, queue: &str) -> Result<u64, QueueError> {
        let queue = queue.to_string();
        self.shared.call(|r| Cmd::Count(queue, r)).await
    }

    pub(super) async fn is_ready(&self) -> bool {
        self.shared.call(Cmd::Ping).await.is_ok()
    }
}

/// Receives the deliveries the storage thread hands this consumer.
pub struct EmbeddedConsumer {
    shared: Arc<Shared>,
    id: u64,
    rx: mpsc::UnboundedReceiver<Handout>,
}

impl std::fmt::Debug for EmbeddedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedConsumer")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        // Returns everything this consumer still holds, buffered or being processed.
        let _ = self.shared.send(Cmd::Cancel(self.id));
    }
}

impl EmbeddedConsumer {
    pub(super) async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let raw = match self.rx.recv().await? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Delivery {
            message_id: raw.message_id,
            body: raw.body,
            priority: raw.priority,
            attempt: raw.attempt,
            settle: Settle::Embedded(EmbeddedSettle {
                shared: self.shared.clone(),
                lease: Some(raw.lease),
            }),
        }))
    }
}

/// Settles one embedded delivery; dropping it unsettled returns the message.
pub struct EmbeddedSettle {
    shared: Arc<Shared>,
    /// `None` once a settle command was sent.
    lease: Option<u64>,
}

impl std::fmt::Debug for EmbeddedSettle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedSettle")
            .field("lease", &self.lease)
            .finish()
    }
}

impl Drop for EmbeddedSettle {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            let _ = self.shared.send(Cmd::Release(lease));
        }
    }
}

impl EmbeddedSettle {
    async fn settle(
        mut self,
        message_id: &str,
        make: fn(u64, Reply<()>) -> Cmd,
    ) -> Result<(), QueueError> {
        let Some(lease) = self.lease.take() else {
            return Ok(());
        };
        self.shared
            .call(|r| make(lease, r))
            .await
            .map_err(|e| match e {
                QueueError::SettleFailed { reason, .. } => QueueError::SettleFailed {
                    message_id: message_id.to_string(),
                    reason,
                },
                other => other,
            })
    }

    pub(super) async fn ack(self, message_id: &str) -> Result<(), QueueError> {
        self.settle(message_id, Cmd::Ack).await
    }

    pub(super) async fn retry(self, message_id: &str) -> Result<(), QueueError> {
        self.settle(message_id, Cmd::Retry).await
    }

    pub(super) async fn dead_letter(self, message_id: &str) -> Result<(), QueueError> {
        self.settle(message_id, Cmd::DeadLetter).await
    }
}
