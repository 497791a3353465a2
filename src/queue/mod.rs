//! tickbot's message queues: one interface, two engines.
//!
//! Every role talks to its queues through [`Broker`]: intake publishes webhook events to
//! `<prefix>.events`, the dispatcher consumes them (single active consumer) and publishes jobs
//! to `<prefix>.jobs.<pool>` (priorities 0–9), workers consume jobs and publish results to
//! `<prefix>.results`. Messages that keep failing end in `<prefix>.dead`.
//!
//! Two engines implement the same semantics, checked by one conformance suite
//! (`tests/queue_conformance.rs`):
//!
//! * [`amqp`]: RabbitMQ (when `[amqp] url` is set). One connection per process, publishes
//!   pipelined on a small pool of confirm channels, reconnects by itself after a broker restart.
//! * [`embedded`]: a durable on-disk queue (sqlite in WAL mode, `synchronous=FULL`) under the
//!   `[state] dir`, for a single machine. Concurrent publishes share one fsync.
//!
//! # Guarantees
//!
//! * [`Broker::publish`] resolves `Ok` only once the message is durable (publisher confirm from
//!   RabbitMQ, or a committed fsync), so a 2xx from intake means "nothing lost".
//! * Delivery is at-least-once: a message is removed only by [`Delivery::ack`] (or moved by
//!   [`Delivery::retry`] / [`Delivery::dead_letter`]). Consumers must tolerate duplicates.
//! * Prefetch bounds how many unacknowledged messages one [`Consumer`] holds.
//!
//! # Counting failed deliveries
//!
//! RabbitMQ classic queues do not count deliveries (only a boolean `redelivered` flag), and
//! priorities need classic queues, so the count lives in the message itself: the header
//! `x-tickbot-attempt` (absent = 1) is the number of the delivery the message is on. A delivery
//! fails in one of two ways, and both advance the count by exactly one:
//!
//! * explicitly, [`Delivery::retry`]: a copy with `attempt + 1` is published (and confirmed)
//!   and only then the original is acknowledged;
//! * implicitly, the consumer vanished without settling (process crash, dropped
//!   [`Consumer`]/[`Delivery`], lost connection): the broker hands the message out again with
//!   `redelivered` set. The library does not pass such a message to the application; it first
//!   republishes it with `attempt + 1` (confirmed) and acknowledges the original, and the
//!   application receives the copy. A boolean flag cannot say *how often* a message was
//!   redelivered, but this way every crash is written into the header before the next try, so a
//!   poison message that kills its consumer reaches the limit after N crashes.
//!
//! With RabbitMQ the crash is written into the header when the message next arrives at a
//! consumer (the broker only keeps the flag until then); the embedded engine does it at once.
//! Either way the application never sees the message again with a stale count.
//!
//! When a failed delivery was number `max_deliveries` (default 5), the message goes to the dead
//! letter queue instead (published to the `<prefix>.dead` exchange with confirm, then the
//! original acked; the `x-dead-letter-exchange` queue argument catches anything rejected by
//! other tools). A crash between "copy confirmed" and "original acked" yields a duplicate, which
//! at-least-once delivery allows. A re-published message goes to the back of its priority level.
//!
//! The embedded engine keeps the same count in its table and advances it the same way: when a
//! lease is returned without ack (dropped [`Delivery`] or [`Consumer`]), and, on open, for
//! every message a previous process had handed out and not acknowledged (it died).
//!
//! Messages carry their schema version in the body (owned by the message types), so this module
//! treats bodies as opaque bytes.

pub mod amqp;
pub mod embedded;

use std::path::PathBuf;

/// Header that carries the delivery attempt (see the module documentation).
pub const ATTEMPT_HEADER: &str = "x-tickbot-attempt";
/// Header set on dead-lettered messages: the queue the message failed in.
pub const DEAD_FROM_HEADER: &str = "x-tickbot-dead-from";
/// Highest message priority; higher values are capped to it (as RabbitMQ does).
pub const MAX_PRIORITY: u8 = 9;
/// `x-max-priority` of the job queues (RabbitMQ allows `0..=x-max-priority`).
pub const JOB_QUEUE_MAX_PRIORITY: i32 = 10;
/// Default for [`BrokerSettings::max_deliveries`].
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Default for [`BrokerSettings::prefix`].
pub const DEFAULT_PREFIX: &str = "tickbot";

/// What [`Broker::open`] needs; built from `[amqp]` and `[state]` of the server config.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    /// RabbitMQ URL; `None` selects the embedded queue under `state_dir`.
    pub amqp_url: Option<String>,
    /// Directory of the embedded queue (`<state_dir>/queue.sqlite3`).
    pub state_dir: PathBuf,
    /// First part of every queue and exchange name (`tickbot`).
    pub prefix: String,
    /// A message is dead-lettered after this many failed deliveries.
    pub max_deliveries: u32,
}

impl BrokerSettings {
    /// Settings with the defaults of the server configuration.
    pub fn new(amqp_url: Option<String>, state_dir: PathBuf) -> BrokerSettings {
        BrokerSettings {
            amqp_url,
            state_dir,
            prefix: DEFAULT_PREFIX.to_string(),
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        }
    }
}

/// Errors of the queue layer; each says what failed and what an operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "RabbitMQ at {endpoint} is unreachable: {reason} (is rabbitmq-server running? check [amqp] url)"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error("RabbitMQ at {endpoint}: {op} failed: {reason}")]
    Amqp {
        endpoint: String,
        op: String,
        reason: String,
    },
    #[error("invalid [amqp] url {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "queue {queue} does not exist; declare the topology first (tickbot declares it at start, or import queue/definitions.json)"
    )]
    NotDeclared { queue: String },
    #[error(
        "queue {queue} already exists with different arguments ({reason}); delete it (rabbitmqctl delete_queue {queue}) or import queue/definitions.json"
    )]
    TopologyMismatch { queue: String, reason: String },
    #[error(
        "RabbitMQ refused to store a message for {queue} (publisher confirm was a nack); the broker may be out of disk or memory, retry later"
    )]
    Nacked { queue: String },
    #[error(
        "could not settle message {message_id}: {reason}; it was not acknowledged and will be delivered again"
    )]
    SettleFailed { message_id: String, reason: String },
    #[error("embedded queue at {path}: {op} failed: {reason}")]
    Embedded {
        path: String,
        op: String,
        reason: String,
    },
    #[error(
        "embedded queue at {path} is in use by another tickbot process; stop it or point [state] dir elsewhere"
    )]
    EmbeddedLocked { path: String },
    #[error(
        "the embedded queue at {path} has shut down (its storage thread stopped); restart tickbot"
    )]
    EmbeddedStopped { path: String },
}

/// A logical queue; [`Broker::queue_name`] gives the real name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// Webhook events from intake to the dispatcher (single active consumer).
    Events,
    /// Worker results and progress to the dispatcher (single active consumer).
    Results,
    /// Jobs for the workers of one pool (priorities 0–9).
    Jobs(String),
    /// Messages that failed `max_deliveries` times, kept for an operator.
    Dead,
    /// A copy of every dead-lettered message, for the dispatcher: a job that ends there gets
    /// an error status instead of staying "In progress" (single active consumer).
    DeadNotices,
    /// The scheduler's lease: the replica that holds a token from it (unsettled) is the one
    /// scheduler that acts (single active consumer, no dead-lettering).
    SchedulerLease,
}

impl QueueKind {
    /// The real queue name under `prefix`, e.g. `tickbot.jobs.default`.
    pub fn name(&self, prefix: &str) -> String {
        match self {
            QueueKind::Events => format!("{prefix}.events"),
            QueueKind::Results => format!("{prefix}.results"),
            QueueKind::Jobs(pool) => format!("{prefix}.jobs.{pool}"),
            QueueKind::Dead => format!("{prefix}.dead"),
            QueueKind::DeadNotices => format!("{prefix}.dead.notices"),
            QueueKind::SchedulerLease => format!("{prefix}.scheduler"),
        }
    }
}

/// How a queue is declared; the single source for `declare`, the embedded engine and
/// `queue/definitions.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    /// `x-max-priority`; `None` = FIFO regardless of message priority.
    pub max_priority: Option<i32>,
    /// `x-single-active-consumer`.
    pub single_active: bool,
    /// `x-dead-letter-exchange`, for every queue but the dead letter queue itself.
    pub dead_letter_exchange: Option<String>,
}

/// The queues of a deployment; the two bound to the dead-letter exchange last.
pub fn topology(prefix: &str, pools: &[String]) -> Result<Vec<QueueSpec>, QueueError> {
    validate_name_part(prefix)?;
    let mut kinds = vec![QueueKind::Events, QueueKind::Results];
    for pool in pools {
        validate_name_part(pool)?;
        kinds.push(QueueKind::Jobs(pool.clone()));
    }
    kinds.extend([
        QueueKind::SchedulerLease,
        QueueKind::Dead,
        QueueKind::DeadNotices,
    ]);
    Ok(kinds.iter().map(|k| spec(prefix, k)).collect())
}

/// The queues bound to the dead-letter exchange `<prefix>.dead`: each gets every message.
pub fn dead_letter_queues(prefix: &str) -> [String; 2] {
    [
        QueueKind::Dead.name(prefix),
        QueueKind::DeadNotices.name(prefix),
    ]
}

/// The fanout exchange of broadcasts (job cancellations): every subscribed worker gets each
/// message; nobody subscribed means nobody needs it (see [`Broker::broadcast`]).
pub fn control_exchange(prefix: &str) -> String {
    format!("{prefix}.control")
}

/// The declaration of one queue.
pub fn spec(prefix: &str, kind: &QueueKind) -> QueueSpec {
    let dead = QueueKind::Dead.name(prefix);
    QueueSpec {
        name: kind.name(prefix),
        max_priority: matches!(kind, QueueKind::Jobs(_)).then_some(JOB_QUEUE_MAX_PRIORITY),
        // The dispatcher consumes events and results one message at a time, so its writes to
        // a PR never race; with several dispatchers, single-active-consumer on both queues
        // (events subscribed first) makes the same one active on both.
        single_active: matches!(
            kind,
            QueueKind::Events
                | QueueKind::Results
                | QueueKind::DeadNotices
                | QueueKind::SchedulerLease
        ),
        dead_letter_exchange: (!matches!(
            kind,
            QueueKind::Dead | QueueKind::DeadNotices | QueueKind::SchedulerLease
        ))
        .then_some(dead),
    }
}

/// Queue and exchange names end up in `rabbitmqctl` commands and AMQP short strings, so keep
/// them to a conservative alphabet.
fn validate_name_part(part: &str) -> Result<(), QueueError> {
    let ok = !part.is_empty()
        && part.len() <= 100
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidName {
            name: part.to_string(),
            reason: "use 1–100 characters from a-z, A-Z, 0-9, '-', '_', '.'".to_string(),
        })
    }
}

/// The topology in RabbitMQ's definitions format (`rabbitmqctl import_definitions`); what
/// `queue/definitions.json` holds for the default prefix and pool.
pub fn definitions_json(prefix: &str, pools: &[String]) -> Result<serde_json::Value, QueueError> {
    let specs = topology(prefix, pools)?;
    let dead = QueueKind::Dead.name(prefix);
    let exchanges = [dead.clone(), control_exchange(prefix)];
    let queues: Vec<serde_json::Value> = specs
        .iter()
        .map(|s| {
            let mut args = serde_json::Map::new();
            if let Some(p) = s.max_priority {
                args.insert("x-max-priority".into(), p.into());
            }
            if s.single_active {
                args.insert("x-single-active-consumer".into(), true.into());
            }
            if let Some(dlx) = &s.dead_letter_exchange {
                args.insert("x-dead-letter-exchange".into(), dlx.clone().into());
            }
            serde_json::json!({
                "name": s.name, "vhost": "/", "durable": true, "auto_delete": false,
                "arguments": args,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "queues": queues,
        "exchanges": exchanges.iter().map(|name| serde_json::json!({
            "name": name, "vhost": "/", "type": "fanout", "durable": true,
            "auto_delete": false, "internal": false, "arguments": {}
        })).collect::<Vec<_>>(),
        "bindings": dead_letter_queues(prefix).iter().map(|q| serde_json::json!({
            "source": dead, "vhost": "/", "destination": q, "destination_type": "queue",
            "routing_key": "", "arguments": {}
        })).collect::<Vec<_>>()
    }))
}

/// A message to publish.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Stable id (e.g. the `X-GitHub-Delivery` or job id), kept across retries.
    pub message_id: String,
    pub body: Vec<u8>,
    /// 0–9, higher first; only job queues order by it.
    pub priority: u8,
}

/// The queue engine of this process; cheap to clone (all clones share one connection).
#[derive(Clone, Debug)]
pub enum Broker {
    Amqp(amqp::AmqpBroker),
    Embedded(embedded::EmbeddedBroker),
}

impl Broker {
    /// Connects to RabbitMQ, or opens the embedded queue when no URL is configured.
    pub async fn open(settings: &BrokerSettings) -> Result<Broker, QueueError> {
        validate_name_part(&settings.prefix)?;
        let max_deliveries = settings.max_deliveries.max(1);
        match &settings.amqp_url {
            Some(url) => Ok(Broker::Amqp(
                amqp::AmqpBroker::connect(url, &settings.prefix, max_deliveries).await?,
            )),
            None => Ok(Broker::Embedded(
                embedded::EmbeddedBroker::open(
                    &settings.state_dir,
                    &settings.prefix,
                    max_deliveries,
                )
                .await?,
            )),
        }
    }

    /// The real name of a queue, e.g. for logs and metrics.
    pub fn queue_name(&self, queue: &QueueKind) -> String {
        queue.name(self.prefix())
    }

    fn prefix(&self) -> &str {
        match self {
            Broker::Amqp(b) => b.prefix(),
            Broker::Embedded(b) => b.prefix(),
        }
    }

    /// Declares events, results, one job queue per pool and the dead letter queue; idempotent.
    pub async fn declare(&self, pools: &[String]) -> Result<(), QueueError> {
        let specs = topology(self.prefix(), pools)?;
        match self {
            Broker::Amqp(b) => b.declare(&specs).await,
            Broker::Embedded(b) => b.declare(&specs).await,
        }
    }

    /// Deletes the queues `declare(pools)` created, with their messages (tests, decommissioning).
    pub async fn delete(&self, pools: &[String]) -> Result<(), QueueError> {
        let specs = topology(self.prefix(), pools)?;
        match self {
            Broker::Amqp(b) => b.delete(&specs).await,
            Broker::Embedded(b) => b.delete(&specs).await,
        }
    }

    /// Publishes durably: `Ok` only after the broker confirmed (or the fsync committed).
    pub async fn publish(&self, queue: &QueueKind, msg: Outgoing) -> Result<(), QueueError> {
        let msg = Outgoing {
            priority: msg.priority.min(MAX_PRIORITY),
            ..msg
        };
        let name = self.checked_name(queue)?;
        match self {
            Broker::Amqp(b) => b.publish(&name, &msg, 1).await,
            Broker::Embedded(b) => b.publish(&name, msg).await,
        }
    }

    /// Starts consuming with at most `prefetch` unacknowledged messages (at least 1).
    pub async fn consume(&self, queue: &QueueKind, prefetch: u16) -> Result<Consumer, QueueError> {
        let name = self.checked_name(queue)?;
        let prefetch = prefetch.max(1);
        let inner = match self {
            Broker::Amqp(b) => ConsumerInner::Amqp(Box::new(b.consume(&name, prefetch).await?)),
            Broker::Embedded(b) => ConsumerInner::Embedded(b.consume(&name, prefetch).await?),
        };
        Ok(Consumer { inner })
    }

    /// Sends `body` to every current subscriber of [`subscribe_broadcasts`](Self::subscribe_broadcasts),
    /// at most once each, without storing it: a subscriber that is down misses it. For
    /// advisory messages whose sender repeats them when they matter (job cancellations).
    pub async fn broadcast(&self, body: Vec<u8>) -> Result<(), QueueError> {
        match self {
            Broker::Amqp(b) => b.broadcast(&body).await,
            Broker::Embedded(b) => b.broadcast(body),
        }
    }

    /// Broadcasts from now on. RabbitMQ: a private queue bound to the control exchange,
    /// re-subscribed after a connection loss (what was sent meanwhile is missed).
    pub async fn subscribe_broadcasts(
        &self,
    ) -> Result<tokio::sync::mpsc::Receiver<Vec<u8>>, QueueError> {
        match self {
            Broker::Amqp(b) => b.subscribe_broadcasts().await,
            Broker::Embedded(b) => Ok(b.subscribe_broadcasts()),
        }
    }

    /// Messages ready for delivery (not counting unacknowledged ones); for tests and metrics.
    pub async fn ready_count(&self, queue: &QueueKind) -> Result<u64, QueueError> {
        let name = self.checked_name(queue)?;
        match self {
            Broker::Amqp(b) => b.ready_count(&name).await,
            Broker::Embedded(b) => b.ready_count(&name).await,
        }
    }

    /// Whether publishing can work right now (for `/readyz`); reconnects if needed.
    pub async fn is_ready(&self) -> bool {
        match self {
            Broker::Amqp(b) => b.is_ready().await,
            Broker::Embedded(b) => b.is_ready().await,
        }
    }

    fn checked_name(&self, queue: &QueueKind) -> Result<String, QueueError> {
        if let QueueKind::Jobs(pool) = queue {
            validate_name_part(pool)?;
        }
        Ok(self.queue_name(queue))
    }
}

/// A stream of deliveries from one queue.
#[derive(Debug)]
pub struct Consumer {
    inner: ConsumerInner,
}

#[derive(Debug)]
enum ConsumerInner {
    // Boxed: lapin's consumer is large, and a Consumer is moved around by its owner.
    Amqp(Box<amqp::AmqpConsumer>),
    Embedded(embedded::EmbeddedConsumer),
}

impl Consumer {
    /// The next delivery. Waits across RabbitMQ restarts (reconnecting by itself); `Some(Err)`
    /// reports a problem that needs attention (e.g. the queue was deleted), `None` means the
    /// broker shut down for good. Cancel-safe: it may be raced in `tokio::select!`.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        match &mut self.inner {
            ConsumerInner::Amqp(c) => c.next().await,
            ConsumerInner::Embedded(c) => c.next().await,
        }
    }
}

/// One delivered message. Settle it with [`ack`](Self::ack), [`retry`](Self::retry) or
/// [`dead_letter`](Self::dead_letter); dropping it unsettled counts as a failed delivery and
/// returns it to the queue.
#[derive(Debug)]
pub struct Delivery {
    pub message_id: String,
    pub body: Vec<u8>,
    pub priority: u8,
    /// 1 on the first delivery; see the module documentation.
    pub attempt: u32,
    settle: Settle,
}

#[derive(Debug)]
enum Settle {
    Amqp(amqp::AmqpSettle),
    Embedded(embedded::EmbeddedSettle),
}

/// What becomes of a delivery that failed.
enum Failed {
    /// Delivered again later, or dead-lettered after the last attempt.
    Retry,
    /// Moved to the dead letter queues right away.
    DeadLetter,
}

impl Delivery {
    /// Done: removes the message.
    pub async fn ack(self) -> Result<(), QueueError> {
        match self.settle {
            Settle::Amqp(s) => s.ack(&self.message_id).await,
            Settle::Embedded(s) => s.ack(&self.message_id).await,
        }
    }

    /// Failed: delivers it again later with `attempt + 1`, or dead-letters it when this was
    /// delivery number `max_deliveries`.
    pub async fn retry(self) -> Result<(), QueueError> {
        self.settle_failed(Failed::Retry).await
    }

    /// Hopeless (e.g. malformed): moves it to the dead letter queue right away.
    pub async fn dead_letter(self) -> Result<(), QueueError> {
        self.settle_failed(Failed::DeadLetter).await
    }

    async fn settle_failed(self, how: Failed) -> Result<(), QueueError> {
        let m = amqp::Message {
            message_id: &self.message_id,
            body: &self.body,
            priority: self.priority,
            attempt: self.attempt,
        };
        match (self.settle, how) {
            (Settle::Amqp(s), Failed::Retry) => s.retry(m).await,
            (Settle::Amqp(s), Failed::DeadLetter) => s.dead_letter(m).await,
            (Settle::Embedded(s), Failed::Retry) => s.retry(&self.message_id).await,
            (Settle::Embedded(s), Failed::DeadLetter) => s.dead_letter(&self.message_id).await,
        }
    }
}
