//! The worker loop (`tickbot work`): takes jobs from `<prefix>.jobs.<pool>`, runs each one from
//! a fresh checkout of the PR's exact head ([`super::mirror`]), in its container
//! ([`super::runtime`]), commits and pushes the result ([`super::publish`]) and tells the
//! dispatcher through `<prefix>.results` ([`JobReport`]). Its only GitHub API call is for an
//! App's installation token to fetch and push with ([`WorkerSettings::github`]).
//!
//! A job is acknowledged only after its `Finished` report is confirmed by the queue: a worker
//! killed mid-job leaves the job unacknowledged, the queue hands it to another worker, and the
//! `Tickbot-Job:` trailer on the PR branch tells that worker when the result already landed, so
//! nothing is committed twice. On shutdown the worker stops taking jobs, lets the running ones
//! finish within a grace period, then cancels the rest, which go back to the queue.

use super::debug_hold::Holds;
use super::images::{BuildRun, Built};
use super::job_log::JobLog;
use super::job_traces::JobTraces;
use super::lock;
use super::merge_base;
use super::mirror::{GitAuth, GitError, Mirrors, Worktree};
use super::publish::{self, PushOutcome, ResultCommit};
use super::runtime::{RunOutcome, RunSpec, Runtime, RuntimeError};
use crate::ids::CommitSha;
use crate::job::{Broadcast, Cancel, JOB_SCHEMA, Job, JobReport, Outcome, ReportState};
use crate::queue::{Broker, Delivery, Outgoing, QueueError, QueueKind};
use crate::repo_config::format_duration;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often a result push is rebased onto a moved PR head before giving up.
const PUSH_ATTEMPTS: u32 = 3;

pub struct WorkerSettings {
    /// Shown in statuses as `In progress [<name>]`.
    pub name: String,
    pub pool: String,
    pub concurrency: u16,
    /// Git mirrors live here.
    pub state_dir: PathBuf,
    /// Where job logs, records and artifacts go (`[logs] store`).
    pub logs: crate::logs::LogStore,
    /// Job checkouts (worktrees) go here, one directory per job.
    pub work_dir: PathBuf,
    pub runtime: Runtime,
    /// Base of the log links (`<logs_url>/logs/<job>`).
    pub logs_url: String,
    pub author_name: String,
    pub author_email: String,
    /// Where git credentials for fetching and pushing come from: the configured token, or as
    /// an App the repository's installation token (fetched, cached and renewed before it
    /// expires by the client: the only API call a worker makes). They never enter a container.
    pub github: crate::github::GitHub,
    pub memory: String,
    pub pids_limit: u32,
    /// On shutdown, how long running jobs may take to finish before they are cancelled.
    pub stop_grace: Duration,
    /// Where granted secrets get their values: the worker's environment, read once at start.
    pub secret_values: Arc<HashMap<String, String>>,
    /// Where built images are pushed and pulled from, with the server's credentials.
    pub registry: crate::registry::Registry,
    /// A job's log is cut at this many bytes of output (`[worker] max_log`).
    pub max_log: u64,
    /// How long a failed run asked for with `/debug` keeps its container (`[worker] debug_hold`).
    pub debug_hold: Duration,
    /// The queue prefix (`[amqp] prefix`): job containers are named `<prefix>-<job>`, so two
    /// deployments on one machine never remove each other's containers.
    pub prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Trouble of ours while running a job (not the job's fault), kept typed until it is
/// reported, as an `error` state `Internal error: …` on the job's context.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("no git credentials for {repo}: {source}")]
    Credentials {
        repo: crate::ids::RepoName,
        source: crate::github::GitHubError,
    },
    #[error("secret {secret}: the worker has no environment variable {variable}")]
    MissingSecret { secret: String, variable: String },
    #[error("checkout path `{path}` of {repo} must be a relative path inside the tree")]
    CheckoutOutsideTree {
        path: String,
        repo: crate::ids::RepoName,
    },
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("{0}")]
    Image(String),
    #[error("cannot create {}: {source}", dir.display())]
    LogDirectory {
        dir: PathBuf,
        source: std::io::Error,
    },
}

pub struct Worker {
    broker: Broker,
    settings: WorkerSettings,
    mirrors: Mirrors,
    /// The jobs in hand, with the switch that stops each one.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Jobs the dispatcher cancelled, with the reason: one still queued is skipped when it
    /// arrives, one running is reported with the reason instead of going back to the queue.
    cancelled: Mutex<(VecDeque<String>, HashMap<String, String>)>,
    /// Failed runs kept for debugging (`/debug`).
    holds: Holds,
}

/// Cancellations remembered for jobs that may still arrive.
const REMEMBERED_CANCELS: usize = 10_000;

/// How one job ended for this worker.
enum Executed {
    /// Report this and acknowledge the job.
    Finished {
        outcome: Outcome,
        commit: Option<CommitSha>,
    },
    /// A build job's image is in the registry with this digest.
    Built(String),
    /// Shutdown interrupted it: back to the queue, for another worker.
    Cancelled,
}

/// The container of a job is named after it (under the deployment's queue prefix), so a
/// redelivered job can remove a leftover one.
pub fn container_name(prefix: &str, job_id: &str) -> String {
    // A queue prefix may start with `-`, `_` or `.`; a container name may not.
    let prefix = prefix.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let prefix = if prefix.is_empty() { "tickbot" } else { prefix };
    format!("{prefix}-{job_id}")
}

impl Worker {
    pub fn new(broker: Broker, settings: WorkerSettings) -> Arc<Worker> {
        let mirrors = Mirrors::new(settings.state_dir.join("mirrors"));
        let holds = Holds::new(
            settings.runtime.clone(),
            settings.debug_hold,
            settings.memory.clone(),
            settings.pids_limit,
        );
        Arc::new(Worker {
            broker,
            settings,
            mirrors,
            running: Mutex::new(HashMap::new()),
            cancelled: Mutex::new((VecDeque::new(), HashMap::new())),
            holds,
        })
    }

    /// Stops `job_ids` if running here, and remembers them in case they are still queued.
    fn cancel(&self, cancel: &Cancel) {
        let mut cancelled = lock(&self.cancelled);
        let (order, reasons) = &mut *cancelled;
        for id in &cancel.job_ids {
            if reasons.insert(id.clone(), cancel.reason.clone()).is_none() {
                order.push_back(id.clone());
            }
            if order.len() > REMEMBERED_CANCELS
                && let Some(old) = order.pop_front()
            {
                reasons.remove(&old);
            }
            if let Some(stop) = lock(&self.running).get(id) {
                tracing::info!(job = %id, reason = %cancel.reason, "cancelling a running job");
                let _ = stop.send(true);
            }
        }
    }

    fn cancel_reason(&self, job_id: &str) -> Option<String> {
        lock(&self.cancelled).1.get(job_id).cloned()
    }

    /// Takes and runs jobs until `shutdown` fires; then finishes or requeues the running ones.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), WorkerError> {
        let concurrency = usize::from(self.settings.concurrency.max(1));
        let queue = QueueKind::Jobs(self.settings.pool.clone());
        // Prefetch = concurrency: the broker never hands this worker a job it cannot start.
        let mut consumer = self
            .broker
            .consume(&queue, self.settings.concurrency.max(1))
            .await?;
        let mut broadcasts = self.broker.subscribe_broadcasts().await?;
        let mut running = JoinSet::new();
        tracing::info!(worker = %self.settings.name, pool = %self.settings.pool, concurrency, "worker ready");
        loop {
            tokio::select! {
                next = consumer.next(), if running.len() < concurrency => match next {
                    Some(Ok(delivery)) => {
                        running.spawn(Arc::clone(&self).handle(delivery));
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "job queue trouble; waiting for it"),
                    None => break,
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
                Some(body) = broadcasts.recv() => match serde_json::from_slice::<Broadcast>(&body) {
                    Ok(Broadcast::Cancel(cancel)) => self.cancel(&cancel),
                    Ok(Broadcast::Release(r)) => self.holds.release_pr(&r.release_holds_of, r.pr),
                    Ok(Broadcast::Record(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable broadcast ignored"),
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        // Stop taking jobs (the consumer stays open, so jobs in hand are not handed out again
        // behind our back), let the running ones finish, cancel what outlives the grace.
        tracing::info!(running = running.len(), "worker stopping: no new jobs");
        self.holds.release_all();
        let grace = tokio::time::sleep(self.settings.stop_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                done = running.join_next() => if done.is_none() { break },
                _ = &mut grace => {
                    tracing::warn!(running = running.len(), "grace period over: cancelling running jobs");
                    for stop in lock(&self.running).values() {
                        let _ = stop.send(true);
                    }
                    while running.join_next().await.is_some() {}
                    break;
                }
            }
        }
        drop(consumer);
        tracing::info!("worker stopped");
        Ok(())
    }

    async fn handle(self: Arc<Self>, delivery: Delivery) {
        let job: Job = match serde_json::from_slice::<Job>(&delivery.body) {
            Ok(job) if job.schema == JOB_SCHEMA => job,
            Ok(job) => {
                tracing::error!(job = %job.job_id, schema = job.schema, "job message of an unknown schema; dead-lettered");
                let _ = delivery.dead_letter().await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "unreadable job message; dead-lettered");
                let _ = delivery.dead_letter().await;
                return;
            }
        };
        let started = Instant::now();
        let running = super::job_metrics::taken(&job);
        let log = self.job_log(&job);
        let traces = JobTraces::new(
            &self.settings.logs,
            &self.broker,
            &job,
            self.settings.max_log,
        );
        let (stop, stopped) = watch::channel(false);
        lock(&self.running).insert(job.job_id.clone(), stop);
        let executed = match self.cancel_reason(&job.job_id) {
            // Cancelled while it waited in the queue: never started.
            Some(reason) => Executed::Finished {
                outcome: Outcome::Error { reason },
                commit: None,
            },
            None => match self
                .execute(&job, (&log, &traces), delivery.attempt, stopped)
                .await
            {
                Ok(executed) => executed,
                Err(error) => {
                    tracing::error!(job = %job.job_id, %error, "the job could not be run");
                    Executed::Finished {
                        outcome: Outcome::Error {
                            reason: format!("Internal error: {error}"),
                        },
                        commit: None,
                    }
                }
            },
        };
        lock(&self.running).remove(&job.job_id);
        // Stopped because the dispatcher cancelled it (not because this worker shuts down):
        // that is its end, reported like any other.
        let executed = match (executed, self.cancel_reason(&job.job_id)) {
            (Executed::Cancelled, Some(reason)) => Executed::Finished {
                outcome: Outcome::Error { reason },
                commit: None,
            },
            (executed, _) => executed,
        };
        // Not running from here on: what follows is its report (and its end's metrics).
        drop(running);
        self.settle(&job, delivery, executed, (&log, &traces), started)
            .await;
        // A held run keeps its place in this worker's concurrency until the hold ends.
        if let Some((inner, worktree)) = self.holds.wait(&job.job_id).await {
            remove_checkouts(&job, inner, worktree).await;
        }
    }

    /// Settles a job's delivery by how it ended: back to the queue when this worker cancelled
    /// it, acknowledged once its report is queued when it finished.
    async fn settle(
        &self,
        job: &Job,
        delivery: Delivery,
        executed: Executed,
        (log, traces): (&JobLog, &JobTraces),
        started: Instant,
    ) {
        let (outcome, commit, image_digest) = match executed {
            Executed::Cancelled => {
                log.line("tickbot: cancelled by worker shutdown; the job goes back to the queue");
                if let Err(e) = delivery.retry().await {
                    tracing::error!(job = %job.job_id, error = %e, "cannot requeue a cancelled job; the queue will redeliver it");
                }
                return;
            }
            Executed::Built(digest) => (Outcome::Success, None, Some(digest)),
            Executed::Finished { outcome, commit } => (outcome, commit, None),
        };
        log.line(&format!("tickbot: finished: {outcome:?}"));
        super::job_metrics::ended(job, &outcome, started.elapsed());
        let tail = (outcome != Outcome::Success)
            .then(|| super::job_log::read_log_tail(log.path()))
            .flatten();
        traces.finished(job, &outcome).await;
        let state = ReportState::Finished {
            outcome,
            commit,
            duration_secs: started.elapsed().as_secs(),
        };
        // Acknowledged only once the dispatcher's report is safely queued: otherwise the
        // job comes back, and the trailer check finds a result that already landed.
        match self.report_with_log(job, state, tail, image_digest).await {
            Ok(()) => {
                if let Err(e) = delivery.ack().await {
                    tracing::error!(job = %job.job_id, error = %e, "cannot acknowledge a finished job; it may be delivered again");
                }
            }
            Err(e) => {
                tracing::error!(job = %job.job_id, error = %e, "cannot report a finished job; leaving it to be delivered again");
            }
        }
    }

    /// The git credentials for `repo` (asked for each fetch and push: a job may outlive an
    /// installation token).
    async fn git_auth(&self, repo: &crate::ids::RepoName) -> Result<GitAuth, JobError> {
        let token = self.settings.github.git_token(repo).await;
        token
            .map(|t| GitAuth::token(&t))
            .map_err(|source| JobError::Credentials {
                repo: repo.clone(),
                source,
            })
    }

    fn log_url(&self, job: &Job) -> String {
        format!(
            "{}/logs/{}",
            self.settings.logs_url.trim_end_matches('/'),
            job.job_id
        )
    }

    async fn report(&self, job: &Job, state: ReportState) -> Result<(), QueueError> {
        self.report_with_log(job, state, None, None).await
    }

    /// Reports `state`, with the end of the log of a job that did not succeed.
    async fn report_with_log(
        &self,
        job: &Job,
        state: ReportState,
        log_tail: Option<String>,
        image_digest: Option<String>,
    ) -> Result<(), QueueError> {
        let mut report = JobReport::new(job, &self.settings.name, self.log_url(job), state);
        report.log_tail = log_tail;
        report.image_digest = image_digest;
        report.held = self.holds.of(&job.job_id);
        let body = serde_json::to_vec(&report).map_err(|e| QueueError::Amqp {
            endpoint: "results".into(),
            op: "encoding a job report".into(),
            reason: e.to_string(),
        })?;
        self.broker
            .publish(
                &QueueKind::Results,
                Outgoing {
                    message_id: format!("{}-{}", job.job_id, uuid::Uuid::new_v4()),
                    body,
                    priority: 0,
                },
            )
            .await
    }

    /// Runs one job; `Err` is trouble of ours (git, podman), reported as an `error` status.
    async fn execute(
        &self,
        job: &Job,
        (log, traces): (&JobLog, &JobTraces),
        attempt: u32,
        cancel: watch::Receiver<bool>,
    ) -> Result<Executed, JobError> {
        let name = container_name(&self.settings.prefix, &job.job_id);
        self.start(job, log, attempt, &name).await?;
        traces.started(job, &self.settings.name).await;

        // The tree to run in: the PR's head, or another project's (then the PR is a checkout).
        let (tree_repo, tree_url, tree_ref, tree_sha) = match &job.main {
            Some(m) => (&m.repo, &m.clone_url, &m.git_ref, &m.sha),
            None => (&job.repo, &job.clone_url, &job.head_ref, &job.head_sha),
        };
        let auth = self.git_auth(tree_repo).await?;
        let auth = Some(&auth);
        let tip = self
            .mirrors
            .fetch(tree_repo, tree_url, tree_ref, tree_sha, auth)
            .await?;
        if job.commit
            && let Some(tip) = &tip
            && tip != &job.head_sha
            && let Some(landed) = self
                .mirrors
                .landed(&job.repo, &job.head_sha, tip, &job.job_id)
                .await?
        {
            log.line(&format!(
                "tickbot: the result of this job already landed as {landed}; not running it again"
            ));
            return Ok(Executed::Finished {
                outcome: Outcome::Success,
                commit: Some(landed),
            });
        }

        // A reused checkout, proved clean (a killed worker's slot is free again).
        let pool = self.settings.work_dir.join("pool");
        let worktree = self.mirrors.checkout(tree_repo, tree_sha, &pool).await?;
        let dir = worktree.path().to_path_buf();
        let mut inner = Vec::new();
        let merged = match &job.merge {
            Some(base) => {
                let auth = self.git_auth(&job.repo).await?;
                let author = (&*self.settings.author_name, &*self.settings.author_email);
                merge_base::merge(&self.mirrors, job, base, &auth, author, &worktree, log).await
            }
            None => Ok(None),
        };
        let prepared = match merged {
            Ok(None) => self
                .check_out_more(job, &dir, log, &mut inner)
                .await
                .map(|()| None),
            other => other,
        };
        let result = match prepared {
            Ok(None) => self.run_in(job, &worktree, log, &name, cancel).await,
            Ok(Some(outcome)) => Ok(Executed::Finished {
                outcome,
                commit: None,
            }),
            Err(e) => Err(e),
        };
        traces.keep_artifacts(job, worktree.path(), log).await;
        let failed = matches!(
            result,
            Ok(Executed::Finished {
                outcome: Outcome::Failure { .. },
                ..
            })
        );
        self.hold_or_remove(job, failed, (inner, worktree), log, &name)
            .await;
        result
    }

    /// A failed run asked for with `/debug` keeps its trees (and gets a held container);
    /// otherwise the job's checkouts are given back now.
    async fn hold_or_remove(
        &self,
        job: &Job,
        failed: bool,
        trees: (Vec<Worktree>, Worktree),
        log: &JobLog,
        name: &str,
    ) {
        let trees = match job.debug_hold && failed {
            true => match self.holds.start(job, name, trees, log).await {
                Ok(()) => return,
                Err(trees) => trees,
            },
            false => trees,
        };
        remove_checkouts(job, trees.0, trees.1).await;
    }

    /// Opens the job's log, tells the dispatcher it started and clears a container left by a
    /// killed worker, before anything is fetched.
    async fn start(
        &self,
        job: &Job,
        log: &JobLog,
        attempt: u32,
        name: &str,
    ) -> Result<(), JobError> {
        if let Some(dir) = log.path().parent() {
            std::fs::create_dir_all(dir).map_err(|source| JobError::LogDirectory {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        log.line(&format!(
            "tickbot: job {} ({}) attempt {attempt} on {} at {}",
            job.job_id, job.context, self.settings.name, job.head_sha
        ));
        self.report(job, ReportState::Started).await?;

        // A worker killed with SIGKILL leaves its container running: take it down first.
        self.settings.runtime.remove(name).await?;
        Ok(())
    }

    /// The job's other checkouts (`[deps]`), each at its exact commit inside the tree.
    async fn check_out_more(
        &self,
        job: &Job,
        dir: &Path,
        log: &JobLog,
        done: &mut Vec<Worktree>,
    ) -> Result<(), JobError> {
        for c in &job.checkouts {
            let inside = Path::new(&c.path);
            if c.path.is_empty()
                || !inside
                    .components()
                    .all(|p| matches!(p, std::path::Component::Normal(_)))
            {
                return Err(JobError::CheckoutOutsideTree {
                    path: c.path.clone(),
                    repo: c.repo.clone(),
                });
            }
            let auth = self.git_auth(&c.repo).await?;
            self.mirrors
                .fetch(&c.repo, &c.clone_url, &c.git_ref, &c.sha, Some(&auth))
                .await?;
            let at = dir.join(inside);
            done.push(self.mirrors.worktree(&c.repo, &c.sha, &at).await?);
            log.line(&format!(
                "tickbot: {} at {} checked out in {}",
                c.repo, c.sha, c.path
            ));
        }
        Ok(())
    }

    async fn run_in(
        &self,
        job: &Job,
        worktree: &Worktree,
        log: &JobLog,
        name: &str,
        cancel: watch::Receiver<bool>,
    ) -> Result<Executed, JobError> {
        let images = BuildRun {
            runtime: &self.settings.runtime,
            registry: &self.settings.registry,
            checkout: worktree.path(),
            network: job.network,
            timeout: Duration::from_secs(job.timeout_secs),
            log,
        };
        if let Some(build) = &job.image_build {
            return Ok(match images.build(build, cancel).await? {
                Built::Pushed(digest) => Executed::Built(digest),
                Built::Failed(reason) => Executed::Finished {
                    outcome: Outcome::Failure { reason },
                    commit: None,
                },
                Built::Cancelled => Executed::Cancelled,
            });
        }
        if job.image.contains("@sha256:") {
            images.pull(&job.image).await?;
        }
        let env = self.secret_env(job)?;
        let spec = RunSpec {
            name: name.to_string(),
            image: job.image.clone(),
            argv: job.argv.clone(),
            workdir: worktree.path().to_path_buf(),
            env,
            network: job.network,
            timeout: Duration::from_secs(job.timeout_secs),
            memory: self.settings.memory.clone(),
            pids_limit: self.settings.pids_limit,
        };
        log.line(&format!("$ {}", shell_words(&job.argv)));
        let failed = |reason: String| {
            Ok(Executed::Finished {
                outcome: Outcome::Failure { reason },
                commit: None,
            })
        };
        match self.settings.runtime.run(&spec, log, cancel).await? {
            RunOutcome::Exited(0) => {}
            RunOutcome::Exited(code) => return failed(format!("Exit code {code}")),
            RunOutcome::TimedOut => {
                return failed(format!("Timeout after {}", format_duration(spec.timeout)));
            }
            RunOutcome::Cancelled => return Ok(Executed::Cancelled),
        }
        if !job.commit {
            return Ok(Executed::Finished {
                outcome: Outcome::Success,
                commit: None,
            });
        }
        self.commit_and_push(job, worktree, log).await
    }

    /// The job's log, masking the values of the secrets granted to it.
    fn job_log(&self, job: &Job) -> JobLog {
        let secrets: Vec<String> = job
            .secrets
            .iter()
            .flat_map(|grant| grant.env.values())
            .filter_map(|var| self.settings.secret_values.get(var).cloned())
            .collect();
        if secrets.iter().any(|s| s.len() < super::job_log::MIN_MASKED) {
            tracing::warn!(job = %job.job_id, "a secret granted to the job is too short to be masked in its log");
        }
        let path = self.settings.logs.spool_path(&job.job_id);
        JobLog::capped(path, self.settings.max_log, &secrets)
    }

    /// The container's environment: each granted secret's variables, from the worker's own.
    fn secret_env(&self, job: &Job) -> Result<Vec<(String, String)>, JobError> {
        let mut env = Vec::new();
        for grant in &job.secrets {
            for (container_var, server_var) in &grant.env {
                let Some(value) = self.settings.secret_values.get(server_var) else {
                    return Err(JobError::MissingSecret {
                        secret: grant.name.clone(),
                        variable: server_var.clone(),
                    });
                };
                env.push((container_var.clone(), value.clone()));
            }
        }
        Ok(env)
    }

    /// Commits what a successful job changed and pushes it to the PR branch.
    async fn commit_and_push(
        &self,
        job: &Job,
        worktree: &Worktree,
        log: &JobLog,
    ) -> Result<Executed, JobError> {
        let log_url = self.log_url(job);
        let message = job
            .message
            .clone()
            .unwrap_or_else(|| format!("{}: tickbot result", job.context));
        let commit = publish::commit_changes(
            worktree,
            &ResultCommit {
                author_name: &self.settings.author_name,
                author_email: &self.settings.author_email,
                message: &message,
                job_id: &job.job_id,
                log_url: &log_url,
            },
        )
        .await?;
        let Some(commit) = commit else {
            log.line("tickbot: the task changed nothing; no commit");
            return Ok(Executed::Finished {
                outcome: Outcome::Success,
                commit: None,
            });
        };
        let auth = self.git_auth(&job.repo).await?;
        match publish::push_result(
            &self.mirrors,
            &job.repo,
            worktree,
            &commit,
            &job.clone_url,
            &job.head_ref,
            &job.head_sha,
            Some(&auth),
            PUSH_ATTEMPTS,
        )
        .await?
        {
            PushOutcome::Pushed(pushed) => {
                log.line(&format!("tickbot: pushed {pushed} to {}", job.head_ref));
                Ok(Executed::Finished {
                    outcome: Outcome::Success,
                    commit: Some(pushed),
                })
            }
            PushOutcome::HeadMoved { reason } => Ok(Executed::Finished {
                outcome: Outcome::Failure { reason },
                commit: None,
            }),
        }
    }
}

/// Removes a job's checkouts whatever happened in them; a failure only leaves a warning.
async fn remove_checkouts(job: &Job, inner: Vec<Worktree>, worktree: Worktree) {
    // Inner checkouts first: they live inside the job's tree.
    for checkout in inner.into_iter().rev() {
        if let Err(e) = checkout.remove().await {
            tracing::warn!(job = %job.job_id, error = %e, "cannot remove a dependency checkout");
        }
    }
    if let Err(e) = worktree.remove().await {
        tracing::warn!(job = %job.job_id, error = %e, "cannot remove the job's worktree");
    }
}

/// The command as a person would type it, for the log: arguments with spaces or quotes quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_logged_as_a_person_would_type_them() {
        let argv = ["sh", "-c", "echo it's; ls", "./run"].map(String::from);
        assert_eq!(shell_words(&argv), "sh -c 'echo it'\\''s; ls' ./run");
    }
}
