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

pub mod plan;
mod replies;
pub mod trust;

use crate::checklist;
use crate::commands;
use crate::event::{self, CommentEvent, Envelope, Event, PullRequestEvent};
use crate::github::{CommitStatus, GitHub, GitHubError, PullRequest, StatusState};
use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::job::{self, ItemRef, Job, JobKind};
use crate::queue::{Broker, Outgoing, QueueError, QueueKind};
use crate::repo_config::{self, RepoConfig, RepoConfigError};
use plan::Plan;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
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
}

impl DispatchError {
    /// Worth another delivery of the same event later.
    fn is_transient(&self) -> bool {
        match self {
            DispatchError::GitHub(e) => e.is_transient(),
            DispatchError::Queue(_) => true,
            DispatchError::BadEvent { .. } => false,
        }
    }
}

/// `.tickbot.toml` at one commit, as far as the dispatcher cares.
#[derive(Clone)]
enum ConfigAt {
    Missing,
    Invalid(RepoConfigError),
    Valid(Arc<RepoConfig>),
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
    recent: Mutex<(VecDeque<String>, HashSet<String>)>,
}

const RECENT_DELIVERIES: usize = 4096;

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
            recent: Mutex::new((VecDeque::new(), HashSet::new())),
        })
    }

    /// Declares the queues, reconciles open PRs, then handles events until `shutdown` fires.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), DispatchError> {
        self.broker.declare(&self.settings.pools).await?;
        self.request_reconcile().await?;
        let mut consumer = self.broker.consume(&QueueKind::Events, 1).await?;
        tracing::info!("dispatcher ready");
        loop {
            let delivery = tokio::select! {
                d = consumer.next() => d,
                _ = shutdown.changed() => break,
            };
            let Some(delivery) = delivery else { break };
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "event queue failed; reconnecting");
                    consumer = self.broker.consume(&QueueKind::Events, 1).await?;
                    continue;
                }
            };
            let outcome = self.handle_message(&delivery.body).await;
            let settled = match outcome {
                Ok(()) => delivery.ack().await,
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, attempt = delivery.attempt, "event failed; it will be retried");
                    delivery.retry().await
                }
                Err(e) => {
                    tracing::error!(error = %e, "event cannot be handled; moved to the dead-letter queue");
                    delivery.dead_letter().await
                }
            };
            if let Err(e) = settled {
                tracing::error!(error = %e, "cannot settle an event; the broker will redeliver it");
            }
        }
        tracing::info!("dispatcher stopped");
        Ok(())
    }

    /// Queues a reconcile request behind the pending events. Whichever dispatcher is the
    /// active consumer handles it, in order with the events, so two dispatchers starting
    /// together never plan the same PR at the same time.
    async fn request_reconcile(&self) -> Result<(), DispatchError> {
        let envelope = serde_json::json!({
            "schema": event::ENVELOPE_SCHEMA,
            "delivery": format!("reconcile-{}", uuid::Uuid::new_v4()),
            "event": RECONCILE_EVENT,
            "received_at": chrono::Utc::now(),
            "payload": {},
        });
        self.broker
            .publish(
                &QueueKind::Events,
                Outgoing {
                    message_id: envelope["delivery"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    body: envelope.to_string().into_bytes(),
                    priority: 0,
                },
            )
            .await?;
        Ok(())
    }

    /// Plans every open PR of the configured repositories (webhooks missed while down).
    pub async fn reconcile(&self) {
        for repo in &self.settings.repositories {
            let prs = match self.github.open_pull_requests(repo).await {
                Ok(prs) => prs,
                Err(e) => {
                    tracing::error!(%repo, error = %e, "cannot list open pull requests to reconcile");
                    continue;
                }
            };
            tracing::info!(%repo, count = prs.len(), "reconciling open pull requests");
            for pr in prs {
                let number = pr.number;
                if let Err(e) = self.plan_pr(pr).await {
                    tracing::error!(%repo, pr = %number, error = %e, "reconcile failed for this pull request");
                }
            }
        }
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
            self.reconcile().await;
            return Ok(());
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
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let (order, set) = &mut *recent;
        if !set.insert(delivery.to_string()) {
            return false;
        }
        order.push_back(delivery.to_string());
        if order.len() > RECENT_DELIVERIES
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    fn forget(&self, delivery: &str) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.1.remove(delivery);
    }

    async fn on_pull_request(&self, pr: PullRequestEvent) -> Result<(), DispatchError> {
        match pr.action.as_str() {
            "opened" | "reopened" | "edited" | "synchronize" | "ready_for_review" => {
                if self.is_bot(&pr.sender) && pr.action == "edited" {
                    // The bot's own body edits (ticking a box) are planned by the bot already.
                    return Ok(());
                }
                self.plan_pr(pr.pull).await
            }
            _ => Ok(()),
        }
    }

    fn is_bot(&self, login: &str) -> bool {
        self.settings.bot_login.as_deref() == Some(login)
    }

    async fn on_comment(&self, c: CommentEvent) -> Result<(), DispatchError> {
        if c.action != "created" || !c.on_pull_request || self.is_bot(&c.author) {
            return Ok(());
        }
        let parsed = commands::parse(&c.body);
        if !parsed.commands.iter().any(|cmd| cmd.name == "ok-to-test") {
            return Ok(());
        }
        self.github
            .add_reaction(&c.repo, c.comment_id, "eyes")
            .await?;
        let pr = self.github.pull_request(&c.repo, c.number).await?;
        let verdict = self
            .trust
            .check(
                &pr.repo,
                &pr.default_branch,
                &c.author,
                &c.author_association,
            )
            .await?;
        if !verdict.trusted {
            let text = replies::approval_refused(&verdict.reason);
            self.post_once(&pr, &format!("approval-refused:{}", c.comment_id), &text)
                .await?;
            return Ok(());
        }
        self.github
            .set_status(
                &pr.repo,
                &pr.head_sha,
                &CommitStatus {
                    context: APPROVAL_CONTEXT.into(),
                    state: StatusState::Success,
                    description: Some(format!(
                        "Approved by @{} {}",
                        c.author,
                        approval_note(&checklist::parse(&pr.body))
                    )),
                    target_url: None,
                },
            )
            .await?;
        self.plan_pr(pr).await
    }

    async fn config_at(&self, repo: &RepoName, sha: &CommitSha) -> Result<ConfigAt, GitHubError> {
        let key = (repo.clone(), sha.clone());
        if let Some(c) = self
            .configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
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
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
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
        let (candidate, refused) = plan::candidates(&checklist, &config);
        for r in &refused {
            let text = replies::refused_item(r, &pr.head_sha);
            self.post_once(&pr, &replies::refusal_key(r), &text).await?;
        }
        if candidate.is_none() {
            return Ok(());
        }
        let statuses = self.github.statuses(&pr.repo, &pr.head_sha).await?;
        let Plan {
            next, busy_with, ..
        } = plan::plan(&checklist, &config, &statuses);
        let Some(next) = next else {
            tracing::debug!(repo = %pr.repo, pr = %pr.number, ?busy_with, "waiting for the running task");
            return Ok(());
        };
        let approval = approval_note(&checklist);
        let approved = statuses.iter().any(|s| {
            s.context == APPROVAL_CONTEXT
                && s.state == StatusState::Success
                && s.description
                    .as_deref()
                    .is_some_and(|d| d.ends_with(&approval))
        });
        if !approved {
            let verdict = self
                .trust
                .check(
                    &pr.repo,
                    &pr.default_branch,
                    &pr.author,
                    &pr.author_association,
                )
                .await?;
            if !verdict.trusted {
                let text = replies::untrusted(&verdict.reason, &pr.head_sha);
                self.post_once(&pr, &format!("untrusted:{}:{approval}", pr.head_sha), &text)
                    .await?;
                return Ok(());
            }
        }
        self.queue_task(&pr, &config, next).await
    }

    async fn queue_task(
        &self,
        pr: &PullRequest,
        config: &RepoConfig,
        next: plan::NextTask,
    ) -> Result<(), DispatchError> {
        let Some(task) = config.tasks.get(&next.item.verb) else {
            return Ok(()); // plan only returns known verbs
        };
        let job_id = job::job_id(
            &pr.repo,
            pr.number,
            &pr.head_sha,
            &next.context,
            next.occurrence,
        );
        let job = Job {
            schema: job::JOB_SCHEMA,
            job_id: job_id.clone(),
            kind: JobKind::Task,
            repo: pr.repo.clone(),
            pr: pr.number,
            head_sha: pr.head_sha.clone(),
            head_ref: pr.head_ref.clone(),
            base_ref: pr.base_ref.clone(),
            clone_url: pr
                .head_clone_url
                .clone()
                .unwrap_or_else(|| pr.base_clone_url.clone()),
            base_clone_url: pr.base_clone_url.clone(),
            context: next.context.clone(),
            item: Some(ItemRef {
                verb: next.item.verb.clone(),
                args: next.item.args.clone(),
                line: next.item.line,
                occurrence: next.occurrence,
            }),
            argv: job::expand_argv(&task.command, &next.item.args),
            image: task.image.clone(),
            build: task.build.clone(),
            timeout_secs: task.timeout.as_secs(),
            commit: task.commit,
            message: task
                .message
                .as_ref()
                .map(|m| m.replace("{args}", &next.item.args.join(" "))),
            secrets: task.secrets.clone(),
            network: task.network,
            pool: task.pool.clone(),
            priority: task.priority,
            created_at: chrono::Utc::now(),
        };
        let body = serde_json::to_vec(&job).map_err(|e| DispatchError::BadEvent {
            delivery: job_id.clone(),
            reason: format!("cannot encode the job: {e}"),
        })?;
        self.broker
            .publish(
                &QueueKind::Jobs(task.pool.clone()),
                Outgoing {
                    message_id: job_id.clone(),
                    body,
                    priority: task.priority,
                },
            )
            .await?;
        self.github
            .set_status(
                &pr.repo,
                &pr.head_sha,
                &CommitStatus {
                    context: next.context.clone(),
                    state: StatusState::Pending,
                    description: Some(plan::QUEUED.into()),
                    target_url: Some(format!(
                        "{}/logs/{job_id}",
                        self.settings.logs_url.trim_end_matches('/')
                    )),
                },
            )
            .await?;
        tracing::info!(repo = %pr.repo, pr = %pr.number, context = %next.context, job = %job_id, "task queued");
        Ok(())
    }

    /// Posts `text` unless a comment with the same hidden marker exists on the PR already.
    async fn post_once(&self, pr: &PullRequest, key: &str, text: &str) -> Result<(), GitHubError> {
        let marker = replies::marker(key);
        let pr_key = (pr.repo.clone(), pr.number);
        let known = self
            .posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pr_key)
            .map(|m| m.contains(&marker));
        let already = match known {
            Some(k) => k,
            None => {
                // First reply to this PR in this process: learn what earlier runs posted.
                let markers: HashSet<String> = self
                    .github
                    .comments(&pr.repo, pr.number)
                    .await?
                    .iter()
                    .flat_map(|c| replies::markers_in(&c.body))
                    .collect();
                let already = markers.contains(&marker);
                self.posted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(pr_key.clone(), markers);
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
                self.posted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&pr_key);
            }
            return Err(e);
        }
        self.posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pr_key)
            .or_default()
            .insert(marker);
        Ok(())
    }
}

/// What an `/ok-to-test` approves besides the head commit: the task lines as they were. An
/// untrusted author who adds or changes a task after the approval needs a new one (design §5),
/// while ticking boxes (state only) keeps it.
fn approval_note(checklist: &checklist::Checklist) -> String {
    use sha2::{Digest, Sha256};
    let mut lines: Vec<String> = checklist.tasks.iter().map(|t| t.context()).collect();
    lines.sort();
    let digest = Sha256::digest(lines.join("\n"));
    format!("(tasks {})", &hex::encode(digest)[..8])
}
