//! The dispatcher (`tickbot dispatch`): the brain, and the only writer of PR bodies, comments
//! and statuses (design §1), so bot writes to one PR never race each other.
//!
//! It consumes `tickbot.events` as the single active consumer, one event at a time, and acks an
//! event only after acting on it; a crash means redelivery, and acting twice is harmless because
//! every decision is re-derived from the PR's current state (body, head statuses). At start it
//! reconciles the open PRs of the configured repositories, for webhooks missed while it was down;
//! the reconcile request travels through the events queue like an event, so only the active
//! dispatcher acts on it.
//!
//! Publishing a job comes before setting its `Not yet tested` status: a crash in between leaves
//! no status, so the item is planned again and the job published again under the same
//! deterministic job id ([`crate::job::job_id`]) — never a pending status without a job.

mod comments;
pub mod contexts;
pub mod plan;
mod replies;
pub mod report;
pub mod results;
pub mod summary;
mod testing;
pub mod trust;

use crate::checklist;
use crate::event::{self, Envelope, Event, PullRequestEvent};
use crate::github::{CommitStatus, GitHub, GitHubError, PullRequest, StatusState};
use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::job::{self, ItemRef, Job, JobKind, SecretGrant};
use crate::queue::{Broker, Outgoing, QueueError, QueueKind};
use crate::repo_config::{self, RepoConfig, RepoConfigError};
use results::BodyWrite;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trust::Trust;

/// The event name of the dispatcher's own reconcile request; never accepted from webhooks.
const RECONCILE_EVENT: &str = "tickbot/reconcile";

/// Status context that records a trusted person's `/ok-to-test` for one head commit.
pub const APPROVAL_CONTEXT: &str = "tickbot/ok-to-test";

pub struct DispatcherSettings {
    pub logs_url: String,
    pub repositories: Vec<RepoName>,
    pub bot_login: Option<String>,
    pub pools: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Queue(#[from] QueueError),
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

/// `.tickbot.toml` at one commit, as far as the dispatcher cares.
#[derive(Clone)]
enum ConfigAt {
    Missing,
    Invalid(RepoConfigError),
    Valid(Arc<RepoConfig>),
}

/// A pull request, as the key of the dispatcher's per-PR memory.
type PrKey = (RepoName, PrNumber);

/// A bounded set of recent ids (deliveries, finished jobs): oldest forgotten first.
#[derive(Default)]
struct RecentSet(Mutex<(VecDeque<String>, HashSet<String>)>);

impl RecentSet {
    /// Adds `id`; false if it was there already.
    fn insert(&self, id: &str) -> bool {
        let mut recent = lock(&self.0);
        let (order, set) = &mut *recent;
        if !set.insert(id.to_string()) {
            return false;
        }
        order.push_back(id.to_string());
        if order.len() > RECENT_DELIVERIES
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    fn contains(&self, id: &str) -> bool {
        let recent = lock(&self.0);
        recent.1.contains(id)
    }

    fn remove(&self, id: &str) {
        let mut recent = lock(&self.0);
        let (order, set) = &mut *recent;
        if set.remove(id) {
            // Also from the order, or its old entry would later evict a re-added id early.
            order.retain(|o| o != id);
        }
    }
}

/// Which message a delivery came from.
enum Inbox {
    Events,
    Results,
    DeadNotices,
}

pub struct Dispatcher {
    github: GitHub,
    broker: Broker,
    settings: DispatcherSettings,
    trust: Trust,
    /// Configurations by commit: a commit never changes, so neither does its file.
    configs: Mutex<HashMap<(RepoName, CommitSha), ConfigAt>>,
    /// Hidden markers of the bot's comments per PR, so each reply is posted once.
    posted: Mutex<HashMap<(RepoName, PrNumber), HashSet<String>>>,
    /// Recently handled delivery ids (a second line of defence behind the intake's check).
    recent: RecentSet,
    /// Jobs whose reports said they finished: a redelivered report changes nothing.
    finished: RecentSet,
    /// Jobs cancelled (their status says so already): their reports change nothing, and a
    /// `Started` one means a worker missed the cancellation, which is sent again.
    cancelled: RecentSet,
    /// Per PR, the task job queued or running (context, item). Its result commit moves the
    /// head before its report arrives; without this, an event in between would plan at the
    /// new head, find the item still to do and queue it a second time.
    in_flight: Mutex<HashMap<PrKey, (String, ItemRef)>>,
    /// Per PR, the summary comment's id and text, or `None` when the PR is known to have none
    /// (see `results`).
    summaries: Mutex<HashMap<PrKey, Option<(u64, String)>>>,
    /// Check run ids, when states are check runs (see `report`).
    check_runs: report::CheckRunIds,
    /// Per PR, the dispatcher's last body write (see `results`).
    writes: Mutex<HashMap<PrKey, BodyWrite>>,
    /// Per PR whose body the dispatcher wrote, the latest body it knows; an event carrying
    /// another body may predate the write and is re-read before planning.
    known: Mutex<HashMap<PrKey, String>>,
}

const RECENT_DELIVERIES: usize = 4096;

/// Longest pause before a failed message is tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(300);

/// Refusal comments posted for one event at most (each is posted once per item and reason).
const MAX_REFUSALS_PER_EVENT: usize = 5;

impl Dispatcher {
    pub fn new(github: GitHub, broker: Broker, settings: DispatcherSettings) -> Arc<Self> {
        let trust = Trust::new(github.clone(), settings.bot_login.clone());
        Arc::new(Self {
            github,
            broker,
            settings,
            trust,
            configs: Mutex::new(HashMap::new()),
            posted: Mutex::new(HashMap::new()),
            recent: RecentSet::default(),
            finished: RecentSet::default(),
            cancelled: RecentSet::default(),
            in_flight: Mutex::new(HashMap::new()),
            check_runs: report::CheckRunIds::default(),
            summaries: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        })
    }

    fn in_flight(&self, repo: RepoName, pr: PrNumber, context: &str, item: &ItemRef) {
        lock(&self.in_flight).insert((repo, pr), (context.to_string(), item.clone()));
    }

    fn done_in_flight(&self, key: &PrKey, context: &str) {
        let mut map = lock(&self.in_flight);
        if map.get(key).is_some_and(|(c, _)| c == context) {
            map.remove(key);
        }
    }

    fn record_write(&self, key: &PrKey, write: BodyWrite) {
        let mut writes = lock(&self.writes);
        if writes.len() > 10_000 {
            writes.clear(); // only loses the restore of an edit overwritten long ago
        }
        writes.insert(key.clone(), write);
    }

    fn last_write(&self, key: &PrKey) -> Option<BodyWrite> {
        lock(&self.writes).get(key).cloned()
    }

    fn know_body(&self, key: &PrKey, body: &str) {
        let mut known = lock(&self.known);
        if known.len() > 10_000 {
            // Forgetting a PR only matters if an event that predates a tick of it is still
            // queued, which cannot be the case for 10,000 PRs written since.
            known.clear();
        }
        known.insert(key.clone(), body.to_string());
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
        self.request_reconcile().await?;
        let mut events = self.broker.consume(&QueueKind::Events, 1).await?;
        let mut results = self.broker.consume(&QueueKind::Results, 1).await?;
        let mut dead = self.broker.consume(&QueueKind::DeadNotices, 1).await?;
        tracing::info!("dispatcher ready");
        loop {
            let (inbox, delivery) = tokio::select! {
                d = events.next() => (Inbox::Events, d),
                d = results.next() => (Inbox::Results, d),
                d = dead.next() => (Inbox::DeadNotices, d),
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
                    results = self.broker.consume(&QueueKind::Results, 1).await?;
                    continue;
                }
                (Err(e), Inbox::DeadNotices) => {
                    tracing::error!(error = %e, "dead-letter notices queue failed; reconnecting");
                    dead = self.broker.consume(&QueueKind::DeadNotices, 1).await?;
                    continue;
                }
            };
            let outcome = match inbox {
                Inbox::Events => self.handle_message(&delivery.body).await,
                Inbox::Results => self.handle_report(&delivery.body).await,
                Inbox::DeadNotices => self.handle_dead(&delivery.body, delivery.attempt).await,
            };
            let settled = match outcome {
                Ok(()) => delivery.ack().await,
                Err(e) if e.is_transient() => {
                    // Wait before the retry: GitHub being down or rate-limited is not fixed by
                    // asking again at once, and every delivery counts towards the dead letter.
                    let pause = e.retry_after(delivery.attempt);
                    tracing::warn!(error = %e, attempt = delivery.attempt, pause_secs = pause.as_secs(), "message failed; it will be retried");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => delivery.retry().await,
                        // Unsettled, the message comes back to whoever consumes next.
                        _ = shutdown.changed() => break,
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
        }
        tracing::info!("dispatcher stopped");
        Ok(())
    }

    /// Queues a reconcile request behind the pending events. Whichever dispatcher is the
    /// active consumer handles it, in order with the events, so two dispatchers starting
    /// together never plan the same PR at the same time.
    async fn request_reconcile(&self) -> Result<(), DispatchError> {
        let delivery = format!("reconcile-{}", uuid::Uuid::new_v4());
        self.broker
            .publish(
                &QueueKind::Events,
                Outgoing {
                    body: event::envelope(&delivery, RECONCILE_EVENT, b"{}"),
                    message_id: delivery,
                    priority: 0,
                },
            )
            .await?;
        Ok(())
    }

    /// Plans every open PR of the configured repositories (webhooks missed while down). A
    /// failure fails the whole request, which is retried later; PRs planned already are
    /// planned again harmlessly.
    pub async fn reconcile(&self) -> Result<(), DispatchError> {
        let mut failed = None;
        for repo in &self.settings.repositories {
            let prs = match self.github.open_pull_requests(repo).await {
                Ok(prs) => prs,
                Err(e) => {
                    tracing::error!(%repo, error = %e, "cannot list open pull requests to reconcile");
                    failed = Some(DispatchError::from(e));
                    continue;
                }
            };
            tracing::info!(%repo, count = prs.len(), "reconciling open pull requests");
            for pr in prs {
                let number = pr.number;
                let planned = match self.plan_tests(&pr, testing::Trigger::Automatic).await {
                    Ok(_) => self.plan_pr(pr).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = planned {
                    tracing::error!(%repo, pr = %number, error = %e, "reconcile failed for this pull request");
                    failed = Some(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Handles one message of the events queue.
    pub async fn handle_message(&self, body: &[u8]) -> Result<(), DispatchError> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|e| DispatchError::BadEvent {
                delivery: "(unreadable)".into(),
                reason: format!("not an event envelope: {e}"),
            })?;
        if !self.first_time(&envelope.delivery) {
            tracing::info!(delivery = %envelope.delivery, "duplicate delivery ignored");
            return Ok(());
        }
        if envelope.event == RECONCILE_EVENT {
            let result = self.reconcile().await;
            if result.is_err() {
                self.forget(&envelope.delivery);
            }
            return result;
        }
        let parsed =
            event::parse(&envelope.event, envelope.payload.get().as_bytes()).map_err(|e| {
                DispatchError::BadEvent {
                    delivery: envelope.delivery.clone(),
                    reason: e.to_string(),
                }
            });
        let result = match parsed? {
            Event::PullRequest(pr) => self.on_pull_request(*pr).await,
            Event::IssueComment(c) => self.on_comment(c).await,
            Event::CheckRun(c) => self.on_check_run(c).await,
            Event::Other { event, action } => {
                tracing::debug!(event, ?action, "event not acted on");
                Ok(())
            }
        };
        if result.is_err() {
            // Let the redelivery through the duplicate check.
            self.forget(&envelope.delivery);
        }
        result
    }

    fn first_time(&self, delivery: &str) -> bool {
        self.recent.insert(delivery)
    }

    fn forget(&self, delivery: &str) {
        self.recent.remove(delivery)
    }

    async fn on_pull_request(&self, pr: PullRequestEvent) -> Result<(), DispatchError> {
        match pr.action.as_str() {
            "edited" if self.is_bot(&pr.sender) => {
                // The bot planned after its own edit already; what is left is to notice a
                // person's edit that the write overwrote.
                let pull = &pr.pull;
                self.on_own_edit(
                    &pull.repo,
                    pull.number,
                    &pull.body,
                    pr.body_before.as_deref(),
                )
                .await
            }
            "edited" => {
                self.check_editor(&pr).await?;
                let pull = self.fresh(pr).await?;
                self.plan_pr(pull).await
            }
            "opened" | "reopened" | "synchronize" | "ready_for_review" => {
                if pr.pull.comments == Some(0) {
                    self.no_comments_yet(&pr.pull);
                }
                if let Some(before) = &pr.before {
                    self.supersede(&pr.pull, before).await?;
                }
                let pull = self.fresh(pr).await?;
                self.plan_tests(&pull, testing::Trigger::Automatic).await?;
                self.plan_pr(pull).await
            }
            "closed" => {
                let pull = &pr.pull;
                lock(&self.in_flight).remove(&(pull.repo.clone(), pull.number));
                self.cancel_pending(
                    &pull.repo,
                    &pull.head_sha,
                    |_| true,
                    "Cancelled: pull request closed",
                )
                .await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A push replaced the head: the old head's test jobs are cancelled. A task still to do
    /// keeps running: its worker rebases the result onto the new head (design §8).
    async fn supersede(&self, pull: &PullRequest, before: &CommitSha) -> Result<(), DispatchError> {
        if before == &pull.head_sha {
            return Ok(());
        }
        let checklist = checklist::parse(&pull.body);
        let is_task = |context: &str| {
            checklist
                .tasks
                .iter()
                .any(|t| t.state == checklist::TaskState::Todo && t.context() == context)
        };
        let reason = format!("Cancelled: superseded by {}", pull.head_sha.short());
        self.cancel_pending(&pull.repo, before, |s| !is_task(&s.context), &reason)
            .await?;
        Ok(())
    }

    /// Design §5: tasks added or changed by an untrusted editor (someone else than the author)
    /// do not run. The PR's approval status turns to failure, so nothing runs at this commit
    /// until a trusted person's `/ok-to-test` approves the task list as it now is.
    async fn check_editor(&self, event: &PullRequestEvent) -> Result<(), DispatchError> {
        let pull = &event.pull;
        let Some(before) = &event.body_before else {
            return Ok(());
        };
        if event.sender == pull.author {
            return Ok(()); // the author's own trust decides, in plan_pr
        }
        let after = approval_note(&checklist::parse(&pull.body));
        if approval_note(&checklist::parse(before)) == after {
            return Ok(()); // ticks and prose only
        }
        let verdict = self
            .trust
            .check(&pull.repo, &pull.default_branch, &event.sender, "")
            .await?;
        if verdict.trusted {
            return Ok(());
        }
        self.set_state(
            &pull.repo,
            &pull.head_sha,
            &CommitStatus {
                context: APPROVAL_CONTEXT.into(),
                state: StatusState::Failure,
                description: Some(format!(
                    "Tasks changed by @{}, who is not trusted; /ok-to-test approves",
                    event.sender
                )),
                target_url: None,
            },
        )
        .await?;
        Ok(())
    }

    /// The event's pull request, or a fresh read when its body may predate one of the
    /// dispatcher's writes (events queued before a tick carry the unticked body; planning on
    /// it would queue a finished item again).
    async fn fresh(&self, event: PullRequestEvent) -> Result<PullRequest, DispatchError> {
        let pull = event.pull;
        let key: PrKey = (pull.repo.clone(), pull.number);
        let Some(known) = lock(&self.known).get(&key).cloned() else {
            return Ok(pull); // the dispatcher never wrote this body
        };
        let follows = pull.body == known
            || (event.action == "edited" && event.body_before.as_deref() == Some(&known));
        if follows {
            self.know_body(&key, &pull.body);
            return Ok(pull);
        }
        let fresh = self.github.pull_request(&pull.repo, pull.number).await?;
        self.know_body(&key, &fresh.body);
        Ok(fresh)
    }

    /// The payload says the PR has no comments: no summary comment to look for when the first
    /// result arrives. (Not used for replies: a redelivered event carries the count from before
    /// the reply its first delivery may have posted; a summary is only posted for a report,
    /// after the event was acknowledged.)
    fn no_comments_yet(&self, pull: &PullRequest) {
        let key: PrKey = (pull.repo.clone(), pull.number);
        lock(&self.summaries).entry(key).or_insert(None);
    }

    /// Whether the PR's author may run code (`[trust]` on the default branch; cached).
    async fn author_trust(&self, pr: &PullRequest) -> Result<trust::Verdict, GitHubError> {
        self.trust
            .check(
                &pr.repo,
                &pr.default_branch,
                &pr.author,
                &pr.author_association,
            )
            .await
    }

    fn is_bot(&self, login: &str) -> bool {
        self.settings.bot_login.as_deref() == Some(login)
    }

    async fn config_at(&self, repo: &RepoName, sha: &CommitSha) -> Result<ConfigAt, GitHubError> {
        let key = (repo.clone(), sha.clone());
        if let Some(c) = lock(&self.configs).get(&key) {
            return Ok(c.clone());
        }
        let config = match self
            .github
            .file_at(repo, repo_config::FILE_NAME, &sha.0)
            .await?
        {
            None => ConfigAt::Missing,
            Some(text) => match RepoConfig::parse(&text) {
                Ok(c) => ConfigAt::Valid(Arc::new(c)),
                Err(e) => ConfigAt::Invalid(e),
            },
        };
        let mut configs = lock(&self.configs);
        if configs.len() > 1000 {
            configs.clear();
        }
        configs.insert(key, config.clone());
        Ok(config)
    }

    /// Decides and acts for one PR: refuse what cannot run, queue the next item.
    pub async fn plan_pr(&self, pr: PullRequest) -> Result<(), DispatchError> {
        if !pr.state_open {
            return Ok(());
        }
        let checklist = checklist::parse(&pr.body);
        if checklist.tasks.is_empty() && checklist.refused.is_empty() {
            return Ok(());
        }
        let config = match self.config_at(&pr.repo, &pr.head_sha).await? {
            // A repository without `.tickbot.toml` has not asked for tickbot: stay silent.
            ConfigAt::Missing => return Ok(()),
            ConfigAt::Invalid(e) => {
                let text = replies::bad_config(&pr.head_sha, &e);
                self.post_once(&pr, &format!("bad-config:{}", pr.head_sha), &text)
                    .await?;
                return Ok(());
            }
            ConfigAt::Valid(c) => c,
        };
        let (candidate, refused) = plan::candidates(&checklist, &config, &self.settings.pools);
        let Some(next) = candidate else {
            return self.refuse_items(&pr, &refused).await;
        };
        let running = lock(&self.in_flight)
            .get(&(pr.repo.clone(), pr.number))
            .cloned();
        if let Some((context, item)) = running
            && results_pending(&checklist, &context, &item)
        {
            tracing::debug!(repo = %pr.repo, pr = %pr.number, %context, "waiting for the job's report");
            return self.refuse_items(&pr, &refused).await;
        }
        let statuses = self.states(&pr.repo, &pr.head_sha).await?;
        if let Some(busy) = plan::busy_with(&checklist, &statuses) {
            tracing::debug!(repo = %pr.repo, pr = %pr.number, busy, "waiting for the running task");
            return self.refuse_items(&pr, &refused).await;
        }
        let approval = approval_note(&checklist);
        let approval_status = statuses.iter().find(|s| s.context == APPROVAL_CONTEXT);
        let approved = approval_status.is_some_and(|s| {
            s.state == StatusState::Success
                && s.description
                    .as_deref()
                    .is_some_and(|d| d.ends_with(&approval))
        });
        let mut verdict = self.author_trust(&pr).await?;
        // An untrusted editor changed the tasks (see `check_editor`): even a trusted author's
        // PR waits for an approval.
        if let Some(blocked) = approval_status.filter(|s| s.state == StatusState::Failure) {
            verdict = trust::Verdict {
                trusted: false,
                reason: blocked
                    .description
                    .clone()
                    .unwrap_or_else(|| "the task list needs an approval".into()),
            };
        }
        if !verdict.trusted && !approved {
            // Nothing else is said to an untrusted author: no refusals to spam the PR with.
            let waiting = statuses.iter().any(|s| {
                s.context == next.context && s.description.as_deref() == Some(plan::MANUAL)
            });
            let manual: &[&str] = match waiting {
                true => &[],
                false => &[next.context.as_str()],
            };
            return self.ask_for_approval(&pr, &verdict.reason, manual).await;
        }
        self.refuse_items(&pr, &refused).await?;
        // A finished run of this item at this commit (a person removed `FAIL:`): the re-run is
        // a new job, whose id derives from the last one.
        let previous = statuses
            .iter()
            .find(|s| s.context == next.context && s.state != StatusState::Pending)
            .and_then(contexts::job_of);
        self.queue_task(&pr, &config, next, previous, verdict.trusted)
            .await
    }

    /// An untrusted author's PR without an approval: one comment (per head and task list)
    /// says why and how to approve, and each of `contexts` gets `Manual testing required`.
    async fn ask_for_approval(
        &self,
        pr: &PullRequest,
        reason: &str,
        contexts: &[&str],
    ) -> Result<(), DispatchError> {
        let text = replies::untrusted(reason, &pr.head_sha);
        let approval = approval_note(&checklist::parse(&pr.body));
        self.post_once(pr, &format!("untrusted:{}:{approval}", pr.head_sha), &text)
            .await?;
        for context in contexts {
            let status = CommitStatus {
                context: (*context).to_string(),
                state: StatusState::Pending,
                description: Some(plan::MANUAL.into()),
                target_url: None,
            };
            self.set_state(&pr.repo, &pr.head_sha, &status).await?;
        }
        Ok(())
    }

    /// One comment per item that cannot run (each posted once), at most a few per event, so
    /// a body full of bogus lines cannot make the bot flood the PR.
    async fn refuse_items(
        &self,
        pr: &PullRequest,
        refused: &[plan::RefusedItem],
    ) -> Result<(), DispatchError> {
        for r in refused.iter().take(MAX_REFUSALS_PER_EVENT) {
            let text = replies::refused_item(r, &pr.head_sha);
            self.post_once(pr, &replies::refusal_key(r), &text).await?;
        }
        Ok(())
    }

    /// Publishes the job, then sets its `Not yet tested` status. Secrets and network are only
    /// for a trusted author's PR (an approval runs the code, but hands it no secrets), and only
    /// secrets the default branch defines.
    async fn queue_task(
        &self,
        pr: &PullRequest,
        config: &RepoConfig,
        next: plan::NextTask,
        previous: Option<&str>,
        trusted_author: bool,
    ) -> Result<(), DispatchError> {
        let Some(task) = config.tasks.get(&next.item.verb) else {
            return Ok(()); // plan only returns known verbs
        };
        let Some(clone_url) = pr.head_clone_url.clone() else {
            let text = replies::head_repo_gone();
            self.post_once(pr, &format!("head-gone:{}", pr.head_sha), text)
                .await?;
            return Ok(());
        };
        let job_id = job::job_id(
            &pr.repo,
            pr.number,
            &pr.head_sha,
            &next.context,
            next.occurrence(),
            previous,
        );
        let item = ItemRef::from(&next.item);
        let mut secrets = Vec::new();
        if trusted_author && !task.secrets.is_empty() {
            let defined = self.trust.secrets(&pr.repo, &pr.default_branch).await?;
            for name in &task.secrets {
                match defined.get(name) {
                    Some(def) => secrets.push(SecretGrant {
                        name: name.clone(),
                        env: def.env.clone(),
                    }),
                    None => {
                        tracing::warn!(repo = %pr.repo, secret = %name, "task asks for a secret the default branch does not define; not granted")
                    }
                }
            }
        }
        let job = Job {
            schema: job::JOB_SCHEMA,
            job_id: job_id.clone(),
            kind: JobKind::Task,
            repo: pr.repo.clone(),
            pr: pr.number,
            head_sha: pr.head_sha.clone(),
            head_ref: pr.head_ref.clone(),
            base_ref: pr.base_ref.clone(),
            clone_url,
            base_clone_url: pr.base_clone_url.clone(),
            context: next.context.clone(),
            item: Some(item.clone()),
            argv: job::expand_argv(&task.command, &next.item.args),
            image: task.image.clone(),
            build: task.build.clone(),
            timeout_secs: task.timeout.as_secs(),
            commit: task.commit,
            message: task
                .message
                .as_ref()
                .map(|m| m.replace("{args}", &next.item.args.join(" "))),
            secrets,
            network: task.network && trusted_author,
            pool: task.pool.clone(),
            priority: task.priority,
            created_at: chrono::Utc::now(),
            checkouts: Vec::new(),
            main: None,
            note: None,
        };
        self.publish_job(&job).await?;
        self.in_flight(pr.repo.clone(), pr.number, &next.context, &item);
        self.set_queued(&job).await?;
        tracing::info!(repo = %pr.repo, pr = %pr.number, context = %next.context, job = %job_id, "task queued");
        Ok(())
    }

    /// Publishes a job to its pool's queue (confirmed).
    async fn publish_job(&self, job: &Job) -> Result<(), DispatchError> {
        let body = serde_json::to_vec(job).map_err(|e| DispatchError::BadEvent {
            delivery: job.job_id.clone(),
            reason: format!("cannot encode the job: {e}"),
        })?;
        let message = Outgoing {
            message_id: job.job_id.clone(),
            body,
            priority: job.priority,
        };
        self.broker
            .publish(&QueueKind::Jobs(job.pool.clone()), message)
            .await?;
        Ok(())
    }

    /// The `Not yet tested` state of a published job, linking to its log.
    async fn set_queued(&self, job: &Job) -> Result<(), DispatchError> {
        let status = CommitStatus {
            context: job.context.clone(),
            state: StatusState::Pending,
            description: Some(testing::with_note(plan::QUEUED, job.note.as_deref())),
            target_url: Some(self.log_url(&job.job_id)),
        };
        self.set_state(&job.repo, &job.head_sha, &status).await?;
        Ok(())
    }

    /// Posts `text` unless a comment with the same hidden marker exists on the PR already.
    async fn post_once(&self, pr: &PullRequest, key: &str, text: &str) -> Result<(), GitHubError> {
        let marker = replies::marker(key);
        let pr_key = (pr.repo.clone(), pr.number);
        let known = lock(&self.posted).get(&pr_key).map(|m| m.contains(&marker));
        let already = match known {
            Some(k) => k,
            None => {
                // First reply to this PR in this process: learn what earlier runs posted.
                // Only the bot's own comments count: anyone can paste a marker.
                let bot = self.settings.bot_login.as_deref();
                let markers: HashSet<String> = self
                    .github
                    .comments(&pr.repo, pr.number)
                    .await?
                    .iter()
                    .filter(|c| bot.is_none_or(|b| c.author == b))
                    .flat_map(|c| replies::markers_in(&c.body))
                    .collect();
                let already = markers.contains(&marker);
                let mut posted = lock(&self.posted);
                if posted.len() > 10_000 {
                    posted.clear(); // forgetting costs one comment listing per PR, no duplicate
                }
                posted.insert(pr_key.clone(), markers);
                already
            }
        };
        if already {
            return Ok(());
        }
        if let Err(e) = self
            .github
            .post_comment(&pr.repo, pr.number, &format!("{marker}\n{text}"))
            .await
        {
            if e.outcome_unknown() {
                // It may have been posted: look at the PR's comments again before a retry.
                lock(&self.posted).remove(&pr_key);
            }
            return Err(e);
        }
        lock(&self.posted).entry(pr_key).or_default().insert(marker);
        Ok(())
    }
}

/// Whether the in-flight job's item is still to do in this body: then its report is still to
/// come (a person ticking or removing the item by hand takes it out of the sequence).
fn results_pending(checklist: &checklist::Checklist, context: &str, item: &ItemRef) -> bool {
    checklist
        .tasks
        .iter()
        .filter(|t| t.context() == context)
        .nth(item.occurrence)
        .is_some_and(|t| t.state == checklist::TaskState::Todo)
}

/// The dispatcher's memory holds no invariant a panicking holder could break.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an `/ok-to-test` approves besides the head commit: the task lines as they were. An
/// untrusted author who adds or changes a task after the approval needs a new one (design §5),
/// while ticking boxes (state only) keeps it.
fn approval_note(checklist: &checklist::Checklist) -> String {
    use sha2::{Digest, Sha256};
    let mut lines: Vec<String> = checklist.tasks.iter().map(|t| t.context()).collect();
    lines.sort();
    let digest = Sha256::digest(lines.join("\n"));
    // The whole digest: a shorter one could be matched by a made-up task list.
    format!("(tasks {})", hex::encode(digest))
}
