//! The dispatcher (`tickbot dispatch`): the brain, and the only writer of PR bodies, comments
//! and states (reference §1), so bot writes to one PR never race each other.
//!
//! It consumes `tickbot.events`, `tickbot.results` and the dead-letter notices as the single
//! active consumer, one message at a time, and acks a message only after acting on it; a crash
//! means redelivery, and acting twice is harmless because every decision is re-derived from the
//! PR's current state (body, head states).
//!
//! How the code is layered (calls go down, never sideways):
//!
//! * this file: the inbox loop, and the routing of each message to its handler;
//! * the handlers, one per event family: [`pull_requests`] (PR events, plan and reconcile
//!   requests: the only place that plans tasks), [`comments`] (comment commands),
//!   [`check_runs`] (Re-run, Retry and Cancel buttons), [`reports`] (workers' reports and
//!   dead-lettered jobs);
//! * below them: [`tests`] (which test contexts to queue, for PR events and commands alike),
//!   [`reads`] (configuration and trust, cached), and the pure deciders [`plan`],
//!   [`contexts`], [`state`], [`summary`], [`replies`];
//! * at the bottom: [`writes`], which performs every write to GitHub and the queue, and
//!   [`memory`], which holds everything the dispatcher remembers.
//!
//! A handler that changes what a PR should run next (a finished task, an approval, a new
//! task) does not plan it itself: it asks for a plan through the events queue
//! ([`writes::Writes::request_plan`]), which [`pull_requests`] handles like any PR event.

mod check_runs;
mod comments;
pub mod contexts;
mod images;
mod memory;
pub mod plan;
mod pull_requests;
mod reads;
pub mod replies;
mod reports;
pub mod state;
pub mod summary;
mod tests;
pub mod trust;
mod writes;

use crate::event::{self, Envelope, Event};
use crate::github::{GitHub, GitHubError, PullRequest};
use crate::ids::RepoName;
use crate::queue::{Broker, Delivery, QueueError, QueueKind};
use images::Images;
use memory::Memory;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trust::Trust;
use writes::Writes;

/// The event name of the dispatcher's own reconcile request; never accepted from webhooks.
const RECONCILE_EVENT: &str = "tickbot/reconcile";
/// The event name of a handler's request to plan a PR again (the payload is the PR).
const PLAN_EVENT: &str = "tickbot/plan";

/// Longest pause before a failed message is tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(300);

pub struct DispatcherSettings {
    pub logs_url: String,
    pub repositories: Vec<RepoName>,
    pub bot_login: Option<String>,
    pub pools: Vec<String>,
    /// Where `[images.*]` are looked up.
    pub registry: crate::registry::Registry,
    /// Where `/rollback` keeps its clones of repositories.
    pub images_dir: std::path::PathBuf,
    /// Author and committer of the commits `/rollback` makes.
    pub git_author: (String, String),
    /// What a repository's `.tickbot.toml` may ask for.
    pub limits: crate::repo_config::Limits,
    /// `[dispatch] merge`: tests run on the PR merged onto its base unless they say otherwise.
    pub merge_by_default: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("event {delivery}: {reason}")]
    BadEvent { delivery: String, reason: String },
    #[error("the dispatcher stopped: {0}")]
    Stopped(String),
}

impl DispatchError {
    /// Worth another delivery of the same event later.
    fn is_transient(&self) -> bool {
        match self {
            DispatchError::GitHub(e) => e.is_transient(),
            // A missing or differently declared queue needs an operator, not another try.
            DispatchError::Queue(
                QueueError::NotDeclared { .. }
                | QueueError::TopologyMismatch { .. }
                | QueueError::InvalidName { .. },
            ) => false,
            DispatchError::Queue(_) => true,
            // An unreachable or failing registry may come back; a bad reference will not.
            DispatchError::Registry(e) => {
                !matches!(e, crate::registry::RegistryError::BadReference { .. })
            }
            DispatchError::BadEvent { .. } | DispatchError::Stopped(_) => false,
        }
    }

    /// How long to wait before the next delivery of a message that failed this way.
    fn retry_after(&self, attempt: u32) -> Duration {
        if let DispatchError::GitHub(GitHubError::RateLimited { until, .. }) = self {
            let wait = (*until - chrono::Utc::now()).to_std().unwrap_or_default();
            return wait.min(MAX_RETRY_PAUSE);
        }
        Duration::from_secs(1u64 << attempt.min(6)).min(MAX_RETRY_PAUSE)
    }
}

/// How long a burst of reports waits for more before its held-back writes are made and its
/// messages acked: a job that finishes within it never shows "In progress", and a PR's summary
/// comment is edited once for all of its results. Shorter than any container job (a podman
/// start alone takes longer), so people see "In progress" for everything that runs a while.
const LINGER: Duration = Duration::from_millis(100);
/// The longest a report's held-back writes wait, however many reports keep coming.
const MAX_LINGER: Duration = Duration::from_secs(1);
/// Reports the broker may hand over before they are acked: the size of a burst.
const RESULTS_PREFETCH: u16 = 64;

/// Reports acted on whose messages wait to be acked until the writes they held back (in
/// [`Memory`], see `reports::flush_reports`) are made. Unacked, a crash redelivers them, and
/// acting on a report twice is harmless.
#[derive(Default)]
struct Burst {
    deliveries: Vec<Delivery>,
    first: Option<Instant>,
    /// When to flush; `None` while there is nothing to flush.
    due: Option<Instant>,
    /// Flushes that failed in a row.
    failures: u32,
}

impl Burst {
    fn add(&mut self, delivery: Delivery) {
        let now = Instant::now();
        let first = *self.first.get_or_insert(now);
        self.deliveries.push(delivery);
        if self.failures == 0 {
            self.due = Some((now + LINGER).min(first + MAX_LINGER));
        }
    }
}

/// Sleeps until `due`; forever without one (its `select!` branch is disabled then).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Which queue a delivery came from.
enum Inbox {
    Events,
    Results,
    DeadNotices,
}

pub struct Dispatcher {
    /// For reads only: every write goes through `writes`.
    github: GitHub,
    writes: Writes,
    memory: Arc<Memory>,
    broker: Broker,
    settings: DispatcherSettings,
    trust: Trust,
    images: Images,
}

impl Dispatcher {
    pub fn new(github: GitHub, broker: Broker, settings: DispatcherSettings) -> Arc<Self> {
        let trust = Trust::new(github.clone(), settings.bot_login.clone());
        let memory = Arc::new(Memory::default());
        let writes = Writes::new(
            github.clone(),
            broker.clone(),
            memory.clone(),
            settings.logs_url.clone(),
            settings.bot_login.clone(),
        );
        let images = Images::new(github.clone(), writes.clone(), &settings);
        Arc::new(Self {
            github,
            images,
            writes,
            memory,
            broker,
            settings,
            trust,
        })
    }

    /// Declares the queues, reconciles open PRs, then handles events and worker reports, one
    /// message at a time, until `shutdown` fires.
    ///
    /// Both queues are single-active-consumer. The events consumer is registered first: with
    /// several dispatchers, the one that subscribed first becomes active on events, and since
    /// each dispatcher subscribes to events before results, the first one is also first on
    /// results, so the same process handles both and its writes to one PR stay serialized.
    /// (Two dispatchers starting within the same few milliseconds could interleave their two
    /// subscriptions and split the queues; RabbitMQ does not tell a consumer whether it is the
    /// active one, so this is not detected.)
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), DispatchError> {
        self.broker.declare(&self.settings.pools).await?;
        self.writes.request_reconcile().await?;
        let mut events = self.broker.consume(&QueueKind::Events, 1).await?;
        let mut results = self
            .broker
            .consume(&QueueKind::Results, RESULTS_PREFETCH)
            .await?;
        let mut dead = self.broker.consume(&QueueKind::DeadNotices, 1).await?;
        let mut burst = Burst::default();
        tracing::info!("dispatcher ready");
        loop {
            let due = burst.due;
            let (inbox, delivery) = tokio::select! {
                d = events.next() => (Inbox::Events, d),
                d = results.next() => (Inbox::Results, d),
                d = dead.next() => (Inbox::DeadNotices, d),
                _ = sleep_until(due), if due.is_some() => {
                    self.flush(&mut burst).await;
                    continue;
                }
                _ = shutdown.changed() => break,
            };
            let Some(delivery) = delivery else {
                return Err(DispatchError::Stopped(
                    "a queue consumer ended; restart the dispatcher".into(),
                ));
            };
            let delivery = match (delivery, &inbox) {
                (Ok(d), _) => d,
                (Err(e), Inbox::Events) => {
                    tracing::error!(error = %e, "event queue failed; reconnecting");
                    events = self.broker.consume(&QueueKind::Events, 1).await?;
                    continue;
                }
                (Err(e), Inbox::Results) => {
                    tracing::error!(error = %e, "results queue failed; reconnecting");
                    results = self
                        .broker
                        .consume(&QueueKind::Results, RESULTS_PREFETCH)
                        .await?;
                    continue;
                }
                (Err(e), Inbox::DeadNotices) => {
                    tracing::error!(error = %e, "dead-letter notices queue failed; reconnecting");
                    dead = self.broker.consume(&QueueKind::DeadNotices, 1).await?;
                    continue;
                }
            };
            if self
                .handle(inbox, delivery, &mut burst, &mut shutdown)
                .await
                .is_break()
            {
                break;
            }
        }
        if burst.due.is_some() {
            // A last flush; what it cannot write comes back with its unacked messages.
            self.flush(&mut burst).await;
        }
        tracing::info!("dispatcher stopped");
        Ok(())
    }

    /// Acts on one message and settles it: an event is acked at once, a report joins the
    /// burst. Breaks when shutdown came while waiting to retry.
    async fn handle(
        &self,
        inbox: Inbox,
        delivery: Delivery,
        burst: &mut Burst,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> ControlFlow<()> {
        let outcome = match inbox {
            Inbox::Events => self.on_event(&delivery.body).await,
            Inbox::Results => self.on_report(&delivery.body, delivery.attempt).await,
            Inbox::DeadNotices => self.on_dead_notice(&delivery.body, delivery.attempt).await,
        };
        let settled = match outcome {
            Ok(()) => match inbox {
                Inbox::Events => delivery.ack().await,
                Inbox::Results | Inbox::DeadNotices => {
                    burst.add(delivery);
                    Ok(())
                }
            },
            Err(e) if e.is_transient() => {
                // Wait before the retry: GitHub being down or rate-limited is not fixed by
                // asking again at once, and every delivery counts towards the dead letter.
                let pause = e.retry_after(delivery.attempt);
                tracing::warn!(error = %e, attempt = delivery.attempt, pause_secs = pause.as_secs(), "message failed; it will be retried");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => delivery.retry().await,
                    // Unsettled, the message comes back to whoever consumes next.
                    _ = shutdown.changed() => return ControlFlow::Break(()),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "message cannot be handled; moved to the dead-letter queue");
                delivery.dead_letter().await
            }
        };
        if let Err(e) = settled {
            tracing::error!(error = %e, "cannot settle a message; the broker will redeliver it");
        }
        ControlFlow::Continue(())
    }

    /// Makes the burst's held-back writes, then acks its messages. A transient failure keeps
    /// both for another try after a pause; any other is logged and the messages acked (as a
    /// report that fails so is dead-lettered: trying again would not help).
    async fn flush(&self, burst: &mut Burst) {
        match self.flush_reports().await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                burst.failures += 1;
                let pause = e.retry_after(burst.failures);
                tracing::warn!(error = %e, pause_secs = pause.as_secs(), "held-back report writes failed; they will be retried");
                burst.due = Some(Instant::now() + pause);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "held-back report writes failed and are dropped");
                self.memory.take_deferred();
            }
        }
        for delivery in std::mem::take(burst).deliveries {
            if let Err(e) = delivery.ack().await {
                tracing::error!(error = %e, "cannot settle a message; the broker will redeliver it");
            }
        }
    }

    /// A message that failed its last delivery. An event is handled once more: it got there
    /// because its deliveries kept being interrupted (a dispatcher killed again and again) or
    /// failing, and dropping it would lose what a person did. A notice that fails for good is
    /// moved to the dead-letter queue; one that crashes the dispatcher every time is redelivered
    /// without end (this queue never dead-letters a crash), as job notices already were.
    /// Jobs and reports go to [`reports`].
    async fn on_dead_notice(&self, body: &[u8], attempts: u32) -> Result<(), DispatchError> {
        match serde_json::from_slice::<Envelope>(body) {
            Ok(envelope) => {
                tracing::warn!(delivery = %envelope.delivery, event = %envelope.event, attempts, "an event was dead-lettered; handling it once more");
                self.on_event(body).await
            }
            Err(_) => self.on_dead_letter(body, attempts).await,
        }
    }

    /// Handles one message of the events queue: a webhook, or the dispatcher's own reconcile
    /// or plan request.
    async fn on_event(&self, body: &[u8]) -> Result<(), DispatchError> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|e| DispatchError::BadEvent {
                delivery: "(unreadable)".into(),
                reason: format!("not an event envelope: {e}"),
            })?;
        if !self.memory.deliveries.insert(&envelope.delivery) {
            tracing::info!(delivery = %envelope.delivery, "duplicate delivery ignored");
            return Ok(());
        }
        let payload = envelope.payload.get().as_bytes();
        let bad = |reason: String| DispatchError::BadEvent {
            delivery: envelope.delivery.clone(),
            reason,
        };
        let result = match envelope.event.as_str() {
            RECONCILE_EVENT => self.reconcile().await,
            PLAN_EVENT => match serde_json::from_slice::<PullRequest>(payload) {
                Ok(pull) => self.on_plan_request(pull).await,
                Err(e) => Err(bad(format!("not a pull request: {e}"))),
            },
            name => match event::parse(name, payload).map_err(|e| bad(e.to_string()))? {
                Event::PullRequest(pr) => self.on_pull_request(*pr).await,
                Event::IssueComment(c) => self.on_comment(c).await,
                Event::CheckRun(c) => self.on_check_run(c).await,
                Event::Other { event, action } => {
                    tracing::debug!(event, ?action, "event not acted on");
                    Ok(())
                }
            },
        };
        if result.is_err() {
            // Let the redelivery through the duplicate check.
            self.memory.deliveries.remove(&envelope.delivery);
        }
        result
    }

    fn is_bot(&self, login: &str) -> bool {
        self.settings.bot_login.as_deref() == Some(login)
    }
}
