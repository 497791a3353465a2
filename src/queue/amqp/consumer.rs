//! Consuming from RabbitMQ: a consumer that resubscribes after connection loss, and the
//! settle handle of each delivery it hands out.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tracing::{debug, info, warn};

use super::{AmqpBroker, BACKOFF_MAX, BACKOFF_MIN, header_u32, reply_code, short};
use crate::queue::{ATTEMPT_HEADER, Delivery, QueueError, Settle};

/// Consumes one queue on its own channel; resubscribes after connection loss.
pub struct AmqpConsumer {
    pub(super) broker: AmqpBroker,
    pub(super) queue: String,
    pub(super) prefetch: u16,
    pub(super) active: Option<Active>,
    pub(super) backoff: Duration,
}

pub(super) struct Active {
    channel: Channel,
    consumer: lapin::Consumer,
}

impl Drop for Active {
    fn drop(&mut self) {
        // Closing the channel is what returns its unacknowledged messages to the queue.
        let channel = self.channel.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if channel.status().connected() {
                    let _ = channel.close(200, "consumer dropped".into()).await;
                }
            });
        }
    }
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("subscribed", &self.active.is_some())
            .finish()
    }
}

impl AmqpConsumer {
    pub(super) async fn subscribe(&self) -> Result<Active, QueueError> {
        let broker = &self.broker;
        let live = broker.live().await?;
        let channel = live
            .conn
            .create_channel()
            .await
            .map_err(|e| broker.unreachable(format!("opening a consumer channel: {e}")))?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| broker.amqp_err(format!("setting prefetch on {}", self.queue), e))?;
        let tag = format!("tickbot-{}", uuid::Uuid::new_v4());
        let consumer = channel
            .basic_consume(
                short(&self.queue, "queue name")?,
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| match reply_code(&e) {
                Some(404) => QueueError::NotDeclared {
                    queue: self.queue.clone(),
                },
                _ => broker.amqp_err(format!("consuming from {}", self.queue), e),
            })?;
        debug!(queue = %self.queue, %tag, "subscribed");
        Ok(Active { channel, consumer })
    }

    pub(in crate::queue) async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        loop {
            let Some(active) = self.active.as_mut() else {
                match self.subscribe().await {
                    Ok(active) => {
                        info!(queue = %self.queue, "consumer resubscribed");
                        self.active = Some(active);
                        self.backoff = BACKOFF_MIN;
                    }
                    Err(err @ QueueError::NotDeclared { .. }) => return Some(Err(err)),
                    Err(err) => {
                        warn!(queue = %self.queue, error = %err, retry_in = ?self.backoff, "cannot resubscribe yet");
                        // Waiting for the broker to come back, not for a test to settle.
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    }
                }
                continue;
            };
            match active.consumer.next().await {
                Some(Ok(delivery)) => {
                    if let Some(delivery) = self.accept(delivery) {
                        return Some(Ok(delivery));
                    }
                }
                Some(Err(err)) => {
                    warn!(queue = %self.queue, error = %err, "consumer lost its channel; resubscribing");
                    self.active = None;
                }
                None => {
                    warn!(queue = %self.queue, "consumer cancelled by the broker; resubscribing");
                    self.active = None;
                }
            }
        }
    }

    /// Turns a lapin delivery into ours; a redelivered one is first re-published with its
    /// attempt advanced (see the parent module) and `None` returned.
    fn accept(&self, d: lapin::message::Delivery) -> Option<Delivery> {
        let attempt = header_u32(&d.properties, ATTEMPT_HEADER)
            .unwrap_or(1)
            .max(1);
        let message_id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let priority = d.properties.priority().unwrap_or(0);
        let settle = AmqpSettle {
            broker: self.broker.clone(),
            acker: Some(d.acker),
            queue: self.queue.clone(),
        };
        if d.redelivered {
            debug!(queue = %self.queue, %message_id, attempt, "redelivered: counting a failed attempt");
            // In a task of its own, so that a caller dropping `next()` (e.g. in a `select!`)
            // cannot cut it between "copy published" and "original acked". Until it is done the
            // message holds a prefetch slot, as it should.
            let queue = self.queue.clone();
            tokio::spawn(async move {
                if let Err(err) = settle
                    .retry(Message {
                        message_id: &message_id,
                        body: &d.data,
                        priority,
                        attempt,
                    })
                    .await
                {
                    warn!(%queue, %message_id, error = %err, "could not count a redelivery; the broker will deliver it again");
                }
            });
            return None;
        }
        Some(Delivery {
            message_id,
            body: d.data,
            priority,
            attempt,
            settle: Settle::Amqp(settle),
        })
    }
}

/// Settles one AMQP delivery; dropping it unsettled requeues the message.
/// A delivered message as it is published again: to its queue for a retry, or to the dead
/// letter queues.
#[derive(Clone, Copy)]
pub(in crate::queue) struct Message<'a> {
    pub message_id: &'a str,
    pub body: &'a [u8],
    pub priority: u8,
    pub attempt: u32,
}

pub struct AmqpSettle {
    broker: AmqpBroker,
    /// `None` once settled.
    acker: Option<lapin::Acker>,
    queue: String,
}

impl std::fmt::Debug for AmqpSettle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettle")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Drop for AmqpSettle {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        // Unsettled: give it back now rather than when the channel closes, so it does not block
        // a prefetch slot. It returns `redelivered`, which counts as a failed attempt.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await;
            });
        }
    }
}

impl AmqpSettle {
    pub(in crate::queue) async fn ack(mut self, message_id: &str) -> Result<(), QueueError> {
        let Some(acker) = self.acker.as_ref() else {
            return Ok(());
        };
        match acker.ack(BasicAckOptions::default()).await {
            Ok(true) => {
                self.acker = None;
                Ok(())
            }
            Ok(false) => Err(QueueError::SettleFailed {
                message_id: message_id.to_string(),
                reason: "its channel closed (RabbitMQ restarted or the consumer was dropped)"
                    .to_string(),
            }),
            Err(e) => Err(QueueError::SettleFailed {
                message_id: message_id.to_string(),
                reason: format!(
                    "ack to RabbitMQ at {} failed: {e}",
                    self.broker.inner.endpoint
                ),
            }),
        }
    }

    pub(in crate::queue) async fn retry(self, m: Message<'_>) -> Result<(), QueueError> {
        // Messages already in a dead-letter queue are never dead-lettered again (no loop).
        let dead_letter_queues = crate::queue::dead_letter_queues(&self.broker.inner.prefix);
        if m.attempt >= self.broker.inner.max_deliveries
            && !dead_letter_queues.contains(&self.queue)
        {
            return self.dead_letter(m).await;
        }
        self.broker
            .publish_raw(
                &self.queue,
                m.message_id,
                m.body,
                m.priority,
                m.attempt.saturating_add(1),
                None,
            )
            .await?;
        self.ack(m.message_id).await
    }

    pub(in crate::queue) async fn dead_letter(self, m: Message<'_>) -> Result<(), QueueError> {
        let (message_id, attempt) = (m.message_id, m.attempt);
        warn!(queue = %self.queue, %message_id, attempt, "dead-lettering message");
        // Straight to each dead letter queue through the default exchange: a confirmed publish
        // (broker-side dead-lettering of classic queues is not confirmed), and a missing queue
        // comes back as an error instead of closing the channel.
        for dead in crate::queue::dead_letter_queues(&self.broker.inner.prefix) {
            if dead == self.queue {
                continue;
            }
            self.broker
                .publish_raw(
                    &dead,
                    message_id,
                    m.body,
                    m.priority,
                    attempt,
                    Some(&self.queue),
                )
                .await?;
        }
        self.ack(message_id).await
    }
}
