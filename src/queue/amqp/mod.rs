//! The RabbitMQ engine behind [`super::Broker`].
//!
//! One AMQP connection per process. Publishes from any number of tasks are pipelined on a small
//! pool of confirm-mode channels: each caller sends its frames and then waits only for its own
//! confirm, so many publishes share one broker fsync. Every consumer gets its own channel (its
//! prefetch is a channel setting, and closing the channel is how unacked messages go back).
//!
//! Reconnection is ours, not lapin's auto-recovery: the connection is replaced on demand when it
//! is found closed (a publish fails fast while RabbitMQ is down, intake answers 503; the next
//! publish after it is back reconnects), and consumers resubscribe by themselves with a backoff.
//! Doing it here keeps the failure visible to callers and the attempt counting exact: messages
//! a lost channel held come back `redelivered`, which counts as a failed attempt (see the
//! parent module).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tracing::{debug, info, warn};

use super::{ATTEMPT_HEADER, DEAD_FROM_HEADER, QueueError, QueueKind, QueueSpec};

mod consumer;
pub(in crate::queue) use consumer::Message;
pub use consumer::{AmqpConsumer, AmqpSettle};

/// Publish channels per connection. One channel lets RabbitMQ batch the confirms of all
/// concurrent publishes (measured: 4 channels gave ~15% less intake throughput at 32 concurrent
/// requests, see docs/benchmarks.md); the pool stays so the number can change in one place.
const PUBLISH_CHANNELS: usize = 1;
/// A connect attempt that takes longer than this is treated as "unreachable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed connect, callers get the same error for this long instead of each trying
/// again, so a down broker is not hammered by every webhook.
const RECONNECT_THROTTLE: Duration = Duration::from_millis(250);
/// A publish not confirmed within this is reported as failed (RabbitMQ blocks publishers on a
/// disk or memory alarm; intake must answer 503 rather than hang). It may still be stored, which
/// at-least-once delivery and intake's duplicate check allow.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);
/// Consumer resubscribe backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Handle to the RabbitMQ connection; clones share it.
#[derive(Clone)]
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    /// Contains the password: never log or display it; use `endpoint`.
    url: String,
    endpoint: String,
    prefix: String,
    max_deliveries: u32,
    current: RwLock<Option<Arc<Live>>>,
    /// Serialises reconnects; holds the last failure for [`RECONNECT_THROTTLE`].
    reconnect: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("endpoint", &self.inner.endpoint)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// One established connection and its publish channels.
struct Live {
    conn: Connection,
    publishers: Vec<Publisher>,
    next: AtomicUsize,
}

struct Publisher {
    channel: Channel,
    /// lapin numbers a publish (for its confirm) and queues its frames under two different
    /// locks; two threads publishing at once on one channel could swap the order, and a confirm
    /// would then resolve the wrong caller. Holding this across that synchronous first step
    /// keeps numbering and wire order the same.
    order: Mutex<()>,
}

impl Live {
    fn usable(&self) -> bool {
        self.conn.status().connected()
            && self
                .publishers
                .iter()
                .all(|p| p.channel.status().connected())
    }
}

/// `host:port/vhost` of an AMQP URL, safe to print.
fn endpoint_of(url: &str) -> Result<String, QueueError> {
    let uri: lapin::uri::AMQPUri = url.parse().map_err(|reason| QueueError::InvalidUrl {
        url: redact(url),
        reason,
    })?;
    Ok(format!(
        "{}:{}/{}",
        uri.authority.host, uri.authority.port, uri.vhost
    ))
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn short(s: &str, what: &str) -> Result<ShortString, QueueError> {
    ShortString::try_new(s).map_err(|_| QueueError::InvalidName {
        name: s.chars().take(40).collect(),
        reason: format!("{what} must be at most 255 bytes"),
    })
}

/// The broker's reply code of a channel/connection error, if it is one.
fn reply_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

fn header_u32(props: &BasicProperties, key: &str) -> Option<u32> {
    let value = props.headers().as_ref()?.inner().get(key)?;
    let n: i64 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => *v,
        _ => return None,
    };
    u32::try_from(n).ok()
}

/// The properties of a persistent message, with the attempt headers only where they are needed.
fn message_properties(
    message_id: &str,
    priority: u8,
    attempt: u32,
    dead_from: Option<&str>,
) -> Result<BasicProperties, QueueError> {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_priority(priority)
        .with_message_id(short(message_id, "message id")?);
    // A first delivery carries no header (absent = 1): less for the broker to store on the
    // hot path of every webhook.
    if attempt > 1 || dead_from.is_some() {
        let mut headers = FieldTable::default();
        headers.insert(
            ATTEMPT_HEADER.into(),
            AMQPValue::LongLongInt(attempt.into()),
        );
        if let Some(from) = dead_from {
            headers.insert(DEAD_FROM_HEADER.into(), AMQPValue::LongString(from.into()));
        }
        props = props.with_headers(headers);
    }
    Ok(props)
}

impl AmqpBroker {
    /// Connects now, so a wrong URL or a stopped broker is reported at start.
    pub async fn connect(
        url: &str,
        prefix: &str,
        max_deliveries: u32,
    ) -> Result<AmqpBroker, QueueError> {
        let endpoint = endpoint_of(url)?;
        let broker = AmqpBroker {
            inner: Arc::new(Inner {
                url: url.to_string(),
                endpoint,
                prefix: prefix.to_string(),
                max_deliveries,
                current: RwLock::new(None),
                reconnect: tokio::sync::Mutex::new(None),
            }),
        };
        broker.live().await?;
        info!(endpoint = %broker.inner.endpoint, "connected to RabbitMQ");
        Ok(broker)
    }

    pub(super) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn current(&self) -> Option<Arc<Live>> {
        match self.inner.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_current(&self, live: Option<Arc<Live>>) {
        match self.inner.current.write() {
            Ok(mut guard) => *guard = live,
            Err(poisoned) => *poisoned.into_inner() = live,
        }
    }

    fn unreachable(&self, err: impl std::fmt::Display) -> QueueError {
        QueueError::Unreachable {
            endpoint: self.inner.endpoint.clone(),
            reason: err.to_string(),
        }
    }

    fn amqp_err(&self, op: impl Into<String>, err: impl std::fmt::Display) -> QueueError {
        QueueError::Amqp {
            endpoint: self.inner.endpoint.clone(),
            op: op.into(),
            reason: err.to_string(),
        }
    }

    /// The working connection, reconnecting if the last one closed.
    async fn live(&self) -> Result<Arc<Live>, QueueError> {
        if let Some(live) = self.current()
            && live.usable()
        {
            return Ok(live);
        }
        let mut last_failure = self.inner.reconnect.lock().await;
        // Another task may have reconnected while this one waited for the lock.
        let stale = match self.current() {
            Some(live) if live.usable() => return Ok(live),
            other => other,
        };
        if let Some((at, reason)) = last_failure.as_ref()
            && at.elapsed() < RECONNECT_THROTTLE
        {
            return Err(self.unreachable(reason));
        }
        if let Some(stale) = stale {
            // Half-broken (a publish channel died): close it so its consumers resubscribe on
            // the new connection instead of lingering.
            if stale.conn.status().connected() {
                let _ = stale.conn.close(200, "tickbot reconnects".into()).await;
            }
            self.set_current(None);
            warn!(endpoint = %self.inner.endpoint, "RabbitMQ connection lost; reconnecting");
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, self.open_live()).await {
            Ok(Ok(live)) => {
                *last_failure = None;
                let live = Arc::new(live);
                self.set_current(Some(live.clone()));
                Ok(live)
            }
            Ok(Err(err)) => {
                *last_failure = Some((Instant::now(), err.to_string()));
                Err(self.unreachable(err))
            }
            Err(_) => {
                let reason = format!("no answer within {CONNECT_TIMEOUT:?}");
                *last_failure = Some((Instant::now(), reason.clone()));
                Err(self.unreachable(reason))
            }
        }
    }

    async fn open_live(&self) -> Result<Live, lapin::Error> {
        let conn = Connection::connect(&self.inner.url, ConnectionProperties::default()).await?;
        let mut publishers = Vec::with_capacity(PUBLISH_CHANNELS);
        for _ in 0..PUBLISH_CHANNELS {
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            publishers.push(Publisher {
                channel,
                order: Mutex::new(()),
            });
        }
        debug!(endpoint = %self.inner.endpoint, "AMQP connection open");
        Ok(Live {
            conn,
            publishers,
            next: AtomicUsize::new(0),
        })
    }

    /// A fresh channel: short-lived for topology operations (a failing declare closes its
    /// channel), or a broadcast subscription's own.
    async fn admin_channel(&self) -> Result<Channel, QueueError> {
        let live = self.live().await?;
        live.conn
            .create_channel()
            .await
            .map_err(|e| self.amqp_err("opening a channel", e))
    }

    async fn declare_fanout(&self, channel: &Channel, name: &str) -> Result<(), QueueError> {
        channel
            .exchange_declare(
                short(name, "exchange name")?,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.amqp_err(format!("declaring exchange {name}"), e))
    }

    pub(super) async fn declare(&self, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let channel = self.admin_channel().await?;
        let dead = QueueKind::Dead.name(&self.inner.prefix);
        self.declare_fanout(&channel, &dead).await?;
        self.declare_fanout(&channel, &super::control_exchange(&self.inner.prefix))
            .await?;
        for spec in specs {
            let mut args = FieldTable::default();
            if let Some(p) = spec.max_priority {
                args.insert("x-max-priority".into(), AMQPValue::LongInt(p));
            }
            if spec.single_active {
                args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            }
            if let Some(dlx) = &spec.dead_letter_exchange {
                args.insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(dlx.as_str().into()),
                );
            }
            channel
                .queue_declare(
                    short(&spec.name, "queue name")?,
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args,
                )
                .await
                .map_err(|e| match reply_code(&e) {
                    Some(406) => QueueError::TopologyMismatch {
                        queue: spec.name.clone(),
                        reason: e.to_string(),
                    },
                    _ => self.amqp_err(format!("declaring queue {}", spec.name), e),
                })?;
        }
        for queue in super::dead_letter_queues(&self.inner.prefix) {
            channel
                .queue_bind(
                    short(&queue, "queue name")?,
                    short(&dead, "exchange name")?,
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.amqp_err(format!("binding {queue}"), e))?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    pub(super) async fn delete(&self, specs: &[QueueSpec]) -> Result<(), QueueError> {
        let channel = self.admin_channel().await?;
        for spec in specs {
            channel
                .queue_delete(
                    short(&spec.name, "queue name")?,
                    QueueDeleteOptions::default(),
                )
                .await
                .map_err(|e| self.amqp_err(format!("deleting queue {}", spec.name), e))?;
        }
        for exchange in [
            QueueKind::Dead.name(&self.inner.prefix),
            super::control_exchange(&self.inner.prefix),
        ] {
            channel
                .exchange_delete(
                    short(&exchange, "exchange name")?,
                    ExchangeDeleteOptions::default(),
                )
                .await
                .map_err(|e| self.amqp_err(format!("deleting exchange {exchange}"), e))?;
        }
        let _ = channel.close(200, "deleted".into()).await;
        Ok(())
    }

    /// Publishes to the control exchange on a short-lived channel; rare, so not pipelined.
    pub(super) async fn broadcast(&self, body: &[u8]) -> Result<(), QueueError> {
        let exchange = super::control_exchange(&self.inner.prefix);
        let channel = self.admin_channel().await?;
        let sent = channel
            .basic_publish(
                short(&exchange, "exchange name")?,
                "".into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await;
        let _ = channel.close(200, "broadcast sent".into()).await;
        sent.map_err(|e| self.amqp_err(format!("publishing to {exchange}"), e))?;
        Ok(())
    }

    /// A server-named, exclusive queue bound to the control exchange, fed into the returned
    /// channel by a task that re-subscribes after a connection loss and ends with the receiver.
    pub(super) async fn subscribe_broadcasts(
        &self,
    ) -> Result<tokio::sync::mpsc::Receiver<Vec<u8>>, QueueError> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let mut consumer = self.broadcast_consumer().await?;
        let broker = self.clone();
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            loop {
                tokio::select! {
                    next = consumer.next() => match next {
                        Some(Ok(d)) => {
                            backoff = BACKOFF_MIN;
                            if tx.send(d.data).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Some(Err(e)) => warn!(error = %e, "broadcast subscription lost"),
                        None => {}
                    },
                    _ = tx.closed() => return,
                }
                loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    if tx.is_closed() {
                        return;
                    }
                    match broker.broadcast_consumer().await {
                        Ok(c) => {
                            consumer = c;
                            break;
                        }
                        Err(e) => debug!(error = %e, "cannot re-subscribe to broadcasts yet"),
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn broadcast_consumer(&self) -> Result<lapin::Consumer, QueueError> {
        let exchange = super::control_exchange(&self.inner.prefix);
        let channel = self.admin_channel().await?;
        self.declare_fanout(&channel, &exchange).await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.amqp_err("declaring a broadcast queue", e))?;
        channel
            .queue_bind(
                queue.name().clone(),
                short(&exchange, "exchange name")?,
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.amqp_err(format!("binding to {exchange}"), e))?;
        channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.amqp_err("consuming broadcasts", e))
    }

    pub(super) async fn ready_count(&self, queue: &str) -> Result<u64, QueueError> {
        let channel = self.admin_channel().await?;
        let declared = channel
            .queue_declare(
                short(queue, "queue name")?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| match reply_code(&e) {
                Some(404) => QueueError::NotDeclared {
                    queue: queue.to_string(),
                },
                _ => self.amqp_err(format!("inspecting queue {queue}"), e),
            })?;
        let _ = channel.close(200, "inspected".into()).await;
        Ok(declared.message_count().into())
    }

    pub(super) async fn is_ready(&self) -> bool {
        self.live().await.is_ok()
    }

    /// Publishes to `queue` with the given attempt number and waits for the confirm.
    pub(super) async fn publish(
        &self,
        queue: &str,
        msg: &super::Outgoing,
        attempt: u32,
    ) -> Result<(), QueueError> {
        self.publish_raw(
            queue,
            &msg.message_id,
            &msg.body,
            msg.priority,
            attempt,
            None,
        )
        .await
    }

    async fn publish_raw(
        &self,
        queue: &str,
        message_id: &str,
        body: &[u8],
        priority: u8,
        attempt: u32,
        dead_from: Option<&str>,
    ) -> Result<(), QueueError> {
        let live = self.live().await?;
        let props = message_properties(message_id, priority, attempt, dead_from)?;
        let routing_key = short(queue, "queue name")?;
        let publisher =
            &live.publishers[live.next.fetch_add(1, Ordering::Relaxed) % live.publishers.len()];
        // `mandatory`: a message for a missing queue comes back instead of vanishing.
        let mut send = Box::pin(publisher.channel.basic_publish(
            "".into(),
            routing_key,
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            props,
        ));
        // The first poll numbers the publish and queues its frames (see `Publisher::order`).
        let first = std::future::poll_fn(|cx| {
            let _order = publisher
                .order
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Poll::Ready(send.as_mut().poll(cx))
        })
        .await;
        let confirmed = tokio::time::timeout(CONFIRM_TIMEOUT, async {
            let sent = match first {
                Poll::Ready(sent) => sent,
                Poll::Pending => send.await,
            };
            let confirm =
                sent.map_err(|e| self.unreachable(format!("publishing to {queue}: {e}")))?;
            confirm
                .await
                .map_err(|e| self.unreachable(format!("waiting for the confirm of {queue}: {e}")))
        })
        .await;
        let confirmation = confirmed.map_err(|_| {
            self.amqp_err(
                format!("publishing to {queue}"),
                format!(
                    "no confirm within {CONFIRM_TIMEOUT:?} (is the broker blocked by a disk or memory alarm? see rabbitmqctl status)"
                ),
            )
        })??;
        self.confirmed_outcome(queue, confirmation)
    }

    /// Maps the broker's confirm of a publish to its outcome for the caller.
    fn confirmed_outcome(&self, queue: &str, confirmation: Confirmation) -> Result<(), QueueError> {
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(QueueError::NotDeclared {
                queue: queue.to_string(),
            }),
            Confirmation::Nack(_) => Err(QueueError::Nacked {
                queue: queue.to_string(),
            }),
            Confirmation::NotRequested => Err(self.amqp_err(
                format!("publishing to {queue}"),
                "the channel is not in confirm mode",
            )),
        }
    }

    pub(super) async fn consume(
        &self,
        queue: &str,
        prefetch: u16,
    ) -> Result<AmqpConsumer, QueueError> {
        let mut consumer = AmqpConsumer {
            broker: self.clone(),
            queue: queue.to_string(),
            prefetch,
            active: None,
            backoff: BACKOFF_MIN,
        };
        // Subscribe now so a missing queue or a down broker is reported to the caller.
        consumer.active = Some(consumer.subscribe().await?);
        Ok(consumer)
    }
}
