//! The local forge: a stateful stand-in for the part of GitHub tickbot uses.
//!
//! One axum server on 127.0.0.1 answers three kinds of traffic:
//! * GitHub's REST paths and JSON shapes ([`api`]), so octocrab with a custom base URL works;
//! * git's smart HTTP at GitHub's clone URL shape `{base}/{owner}/{repo}.git` ([`git`]);
//! * a small control API under `/_forge/...` for standalone use ([`control`]).
//!
//! Tests (and `tickbot demo`) act like people through [`Forge`]'s methods (`open_pr`,
//! `edit_pr_body`, `comment`, `commit_files`…) and observe what the bot did through snapshots
//! (`pr`, `statuses`, `comments`, `api_calls`, `deliveries`). Every state change a person or the
//! bot makes is announced with a signed webhook ([`webhooks`]). Faults can be injected
//! ([`faults`]). State is in memory behind one mutex; git objects are on disk under `dir`.

mod api;
mod api_commits;
mod app;
mod control;
mod faults;
mod git;
mod git_http;
mod issues;
mod json;
mod limits;
mod ops;
mod records;
mod state;
mod webhooks;

pub use faults::{ApiCall, CallMatch, Faults, HeldCall, Injected, RateLimitKind};
pub use ops::PullPatch;
pub use state::{
    CheckRun, CommitStatus, ForgeError, Issue, IssueComment, MAX_BODY_CHARS, PullRequest,
    PullState, Reaction,
};
pub use webhooks::{DeliveryRecord, sign as sign_webhook};

use anyhow::Context;
pub use app::ForgeApp;
use faults::CallLog;
use git::GitStore;
use json::Urls;
use state::State;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tickbot_syntax::ids::{CommitSha, PrNumber, RepoName};
use webhooks::{HookTarget, Webhooks};

/// How to run a forge.
#[derive(Debug, Clone)]
pub struct ForgeOptions {
    /// Where bare repositories are kept.
    pub dir: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The only token the REST API accepts.
    pub bot_token: String,
    /// Who that token belongs to, e.g. `tickbot[bot]`.
    pub bot_login: String,
    /// A GitHub App whose installation tokens are accepted like the bot's token.
    pub app: Option<ForgeApp>,
}

impl ForgeOptions {
    /// Options for a test: a fresh port on 127.0.0.1, repositories under `dir`.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        ForgeOptions {
            dir: dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bot_token: "forge-bot-token".into(),
            bot_login: "tickbot[bot]".into(),
            app: None,
        }
    }
}

struct Inner {
    opts: ForgeOptions,
    urls: Urls,
    state: Mutex<State>,
    git: GitStore,
    hooks: Webhooks,
    faults: Faults,
    calls: CallLog,
    limits: limits::RateLimits,
    /// Installation tokens handed out, with their expiry.
    installation_tokens: Mutex<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>>,
    /// Serializes "diff branches against git and announce what moved", so two pushes landing
    /// together never announce the same move twice or miss one.
    sync_lock: tokio::sync::Mutex<()>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A running forge; clones share it.
#[derive(Clone)]
pub struct Forge {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forge")
            .field("url", &self.inner.urls.base)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the state consistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Forge {
    /// Binds the listener and serves until [`Forge::shutdown`].
    pub async fn start(opts: ForgeOptions) -> anyhow::Result<Forge> {
        let git_root = opts.dir.join("git");
        tokio::fs::create_dir_all(&git_root)
            .await
            .with_context(|| format!("creating {}", git_root.display()))?;
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let forge = Forge {
            inner: Arc::new(Inner {
                urls: Urls {
                    base: format!("http://{addr}"),
                },
                opts,
                state: Mutex::new(State::default()),
                git: GitStore::new(git_root),
                hooks: Webhooks::start(),
                faults: Faults::default(),
                calls: CallLog::default(),
                limits: limits::RateLimits::default(),
                installation_tokens: Mutex::new(std::collections::HashMap::new()),
                sync_lock: tokio::sync::Mutex::new(()),
                stop: Mutex::new(Some(stop_tx)),
                server: Mutex::new(None),
            }),
        };
        let app = api::router(forge.clone());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stop_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "forge server failed");
            }
        });
        *lock(&forge.inner.server) = Some(server);
        tracing::info!(url = %forge.inner.urls.base, "forge listening");
        Ok(forge)
    }

    /// Stops the server and the webhook sender.
    pub async fn shutdown(self) {
        if let Some(stop) = lock(&self.inner.stop).take() {
            let _ = stop.send(());
        }
        let server = lock(&self.inner.server).take();
        if let Some(server) = server {
            // Open keep-alive connections could hold a graceful shutdown forever; bound it.
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::warn!("forge server did not stop within 5s");
            }
        }
        self.inner.hooks.shutdown();
    }

    /// Base URL for octocrab (`base_uri`) and other REST clients.
    pub fn api_url(&self) -> String {
        self.inner.urls.base.clone()
    }

    /// The smart-HTTP clone URL, `{base}/{owner}/{repo}.git`.
    pub fn clone_url(&self, repo: &RepoName) -> String {
        self.inner.urls.clone_url(repo)
    }

    /// `Authorization: Basic …` with the bot's token, for `git -c http.extraHeader=…`, the way
    /// actions/checkout pushes. git only sends URL credentials after a 401 challenge, and the
    /// forge never challenges (anonymous pushes count as the owner's), so this is how a push
    /// is attributed to the bot.
    pub fn bot_git_auth_header(&self) -> String {
        use base64::Engine;
        let pair = format!("x-access-token:{}", self.inner.opts.bot_token);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        format!("Authorization: Basic {encoded}")
    }

    pub fn bot_login(&self) -> &str {
        &self.inner.opts.bot_login
    }

    pub fn bot_token(&self) -> &str {
        &self.inner.opts.bot_token
    }

    /// Where the bare repository lives on disk (for `file://` access).
    pub fn repo_path(&self, repo: &RepoName) -> PathBuf {
        self.inner.git.repo_path(repo)
    }

    /// Points webhooks at `url`, signed with `secret`, and sends a `ping`.
    pub async fn set_webhook(&self, url: &str, secret: &str) {
        self.inner.hooks.set_target(HookTarget {
            url: url.to_string(),
            secret: secret.to_string(),
        });
        self.inner.hooks.send("ping", &webhooks::ping_event(url));
    }

    /// Holds back the webhooks of events `login` causes until [`Forge::release_webhooks`].
    pub fn hold_webhooks_from(&self, login: &str) {
        self.inner.hooks.hold_from(login);
    }

    pub fn release_webhooks(&self) {
        self.inner.hooks.release();
    }

    /// Every webhook attempt so far, in order.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner.hooks.records()
    }

    /// Sends a recorded delivery again with the same `X-GitHub-Delivery` id.
    pub async fn redeliver(&self, id: &str) -> anyhow::Result<u16> {
        self.inner.hooks.redeliver(id).await
    }

    /// Waits until every webhook queued so far has been attempted.
    pub async fn flush_webhooks(&self, timeout: Duration) -> anyhow::Result<()> {
        self.inner.hooks.flush(timeout).await
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.inner.calls.all()
    }

    pub fn clear_api_calls(&self) {
        self.inner.calls.clear()
    }

    /// Allows `limit` REST calls per hour per credential from now on (every count starts
    /// again); a `304 Not Modified` does not count, as on GitHub.
    pub fn set_rate_limit(&self, limit: u64) {
        self.inner.limits.set_limit(limit);
    }

    /// Gives `user` a permission (`admin`, `maintain`, `write`, `triage`, `read`) on `repo`.
    pub fn add_collaborator(&self, repo: &RepoName, user: &str, permission: &str) {
        let mut st = lock(&self.inner.state);
        if let Ok(r) = st.repo_mut(repo) {
            r.collaborators
                .insert(user.to_string(), permission.to_string());
        }
    }

    pub fn add_org_member(&self, org: &str, user: &str) {
        lock(&self.inner.state)
            .org_members
            .entry(org.to_string())
            .or_default()
            .insert(user.to_string());
    }

    pub fn pr(&self, repo: &RepoName, pr: PrNumber) -> Option<PullRequest> {
        let st = lock(&self.inner.state);
        st.repo(repo).ok()?.pulls.get(&pr.0).cloned()
    }

    pub fn pulls(&self, repo: &RepoName) -> Vec<PullRequest> {
        let st = lock(&self.inner.state);
        st.repo(repo)
            .map(|r| r.pulls.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Statuses on `sha`, in creation order.
    pub fn statuses(&self, repo: &RepoName, sha: &CommitSha) -> Vec<CommitStatus> {
        let st = lock(&self.inner.state);
        st.repo(repo)
            .map(|r| {
                r.statuses
                    .iter()
                    .filter(|s| &s.sha == sha)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Check runs on `sha`, in creation order.
    pub fn check_runs(&self, repo: &RepoName, sha: &CommitSha) -> Vec<CheckRun> {
        let st = lock(&self.inner.state);
        st.repo(repo)
            .map(|r| {
                r.check_runs
                    .iter()
                    .filter(|c| &c.head_sha == sha)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Comments on a pull request, oldest first.
    pub fn comments(&self, repo: &RepoName, pr: PrNumber) -> Vec<IssueComment> {
        let st = lock(&self.inner.state);
        st.repo(repo)
            .map(|r| {
                r.comments
                    .iter()
                    .filter(|c| c.issue == pr)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tip of a branch, as the forge last saw it.
    pub fn branch_sha(&self, repo: &RepoName, branch: &str) -> Option<CommitSha> {
        let st = lock(&self.inner.state);
        st.repo(repo).ok()?.branches.get(branch).cloned()
    }

    /// Reads a file at a branch or SHA straight from git.
    pub async fn file(&self, repo: &RepoName, rev: &str, path: &str) -> Option<String> {
        let sha = self.inner.git.resolve(repo, rev).await?;
        match self.inner.git.read_path(repo, &sha, path).await.ok()?? {
            git::PathContent::File { data, .. } => String::from_utf8(data).ok(),
            git::PathContent::Dir(_) => None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }
}
