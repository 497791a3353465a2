//! Exactly one scheduler acts (reference §12): the replica holding a token of the
//! single-active-consumer queue `<prefix>.scheduler` is the one. RabbitMQ delivers to one
//! consumer of that queue at a time; the holder never settles its token, so when its process
//! dies (or stops) the token goes back to the queue and the next replica's consumer receives it.
//! The holder keeps one spare token ready for that handover.

use crate::queue::{Broker, Consumer, Delivery, Outgoing, QueueError, QueueKind};
use tokio::sync::watch;

/// Held while this replica is the active scheduler; dropping it hands over.
pub struct Lease {
    broker: Broker,
    // Settled by nobody: held, then returned to the queue when dropped.
    _token: Delivery,
    _consumer: Consumer,
}

impl Lease {
    /// Waits until this replica holds the lease, or `shutdown` (then `None`).
    pub async fn acquire(
        broker: &Broker,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Lease>, QueueError> {
        // Its own queue at least (idempotent): the scheduler may start before the dispatcher.
        broker.declare(&[]).await?;
        // Its own queue at least (idempotent): the scheduler may start before the dispatcher.
        broker.declare(&[]).await?;
        top_up(broker).await?;
        let mut consumer = broker.consume(&QueueKind::SchedulerLease, 1).await?;
        tracing::info!("scheduler waiting for the lease");
        let token = tokio::select! {
            token = consumer.next() => token,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(None),
        };
        match token {
            Some(Ok(token)) => {
                tracing::info!("scheduler holds the lease");
                Ok(Some(Lease {
                    broker: broker.clone(),
                    _token: token,
                    _consumer: consumer,
                }))
            }
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    /// Keeps a spare token ready for the replica that takes over (called each pass).
    pub async fn keep_spare(&self) -> Result<(), QueueError> {
        top_up(&self.broker).await
    }
}

/// One ready token unless there is one: the tokens stay bounded however often replicas start.
async fn top_up(broker: &Broker) -> Result<(), QueueError> {
    if broker.ready_count(&QueueKind::SchedulerLease).await? > 0 {
        return Ok(());
    }
    let token = Outgoing {
        message_id: format!("lease-{}", uuid::Uuid::new_v4()),
        body: b"scheduler lease".to_vec(),
        priority: 0,
    };
    broker.publish(&QueueKind::SchedulerLease, token).await
}
