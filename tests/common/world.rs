//! The one full-stack world the end-to-end tests share: the local forge (real HTTP, HMAC-signed
//! webhooks, real git), the intake, the dispatcher and real RabbitMQ, with a repository
//! `acme/images` on the forge (alice may write, bob may read). A test then either starts real
//! workers in podman ([`World::start_worker`]) or plays the worker itself ([`World::tap_jobs`],
//! [`World::report`]).

use super::tap::JobTap;
use super::{amqp_url, containers_conf, wait_for, wait_within};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::stack::{Stack, StackApp, StackOptions};

pub const LONG: Duration = Duration::from_secs(60);

/// The job a status links to (`.../logs/<job>`).
pub fn job_of(url: &str) -> &str {
    url.rsplit_once("/logs/").map_or(url, |(_, job)| job)
}

pub struct World {
    pub stack: Stack,
    pub repo: RepoName,
    pub dir: tempfile::TempDir,
    branches: usize,
    /// The jobs queue, when the test plays the worker.
    pub tap: Option<JobTap>,
}

impl World {
    /// A stack on real RabbitMQ with `acme/images` holding `files` on `main`; alice may write.
    pub async fn new(files: &[(&str, &str)]) -> World {
        World::with(files, None, None).await
    }

    /// Like [`new`](Self::new), with the intake reading logs from `logs` (an object store).
    pub async fn with_logs(files: &[(&str, &str)], logs: tickbot::logs::LogStore) -> World {
        World::with(files, None, Some(logs)).await
    }

    /// Like [`new`](Self::new), with tickbot authenticating as a GitHub App whose
    /// installation tokens live `token_ttl` (so it reports with check runs).
    pub async fn with_app(files: &[(&str, &str)], token_ttl: Duration) -> World {
        let app = StackApp::generate(4242, token_ttl).expect("an RSA key pair for the app");
        World::with(files, Some(app), None).await
    }

    async fn with(
        files: &[(&str, &str)],
        app: Option<StackApp>,
        logs: Option<tickbot::logs::LogStore>,
    ) -> World {
        super::capture_logs();
        let dir = tempfile::tempdir().expect("tempdir");
        let repo: RepoName = "acme/images".parse().expect("valid");
        let mut stack = Stack::start(StackOptions {
            dir: dir.path().to_path_buf(),
            amqp_url: Some(amqp_url()),
            prefix: format!("e2e-{}", uuid::Uuid::new_v4()),
            repositories: vec![repo.clone()],
            app,
            logs,
        })
        .await
        .expect("RabbitMQ at 127.0.0.1:5672 must be running (rabbitmq-server -detached)");
        // The repository exists before the dispatcher's reconcile at start, as in production.
        stack.stop_dispatcher().await;
        stack
            .forge
            .create_repo(&repo, "main", files)
            .await
            .expect("create repo");
        stack.forge.add_collaborator(&repo, "alice", "write");
        stack.forge.add_collaborator(&repo, "bob", "read");
        stack.start_dispatcher();
        // The dispatcher reconciles the open PRs when it starts. A story's PR changed before
        // that listing would be planned from its body alone, not from the event that says who
        // changed it (an untrusted editor's task would be queued): stories start after it.
        let listing = format!("/repos/{repo}/pulls?state=open");
        super::wait_for("the dispatcher's reconcile at start", || {
            stack
                .forge
                .api_calls()
                .iter()
                .any(|c| c.method == "GET" && c.status == 200 && c.path.starts_with(&listing))
                .then_some(())
        })
        .await;
        // GitHub does not retry a delivery the intake refused (503 while it cannot reach the
        // broker, e.g. right after another story restarted RabbitMQ): a story starts once the
        // intake says it can take events.
        let intake = stack.intake_url.clone();
        super::wait_for("the intake ready (/readyz)", || {
            super::http_status(&intake, "/readyz").filter(|s| *s == 200)
        })
        .await;
        World {
            stack,
            repo,
            dir,
            branches: 0,
            tap: None,
        }
    }

    pub fn forge(&self) -> &Forge {
        &self.stack.forge
    }

    /// The container of the job a status links to (`<queue prefix>-<job>`).
    pub fn container_of(&self, url: &str) -> String {
        tickbot::worker::executor::container_name(self.stack.prefix(), job_of(url))
    }

    pub fn start_worker(&mut self, name: &str, secrets: &[(&str, &str)]) {
        let mut settings = self.stack.worker_settings(name, super::podman(), 1);
        settings.secret_values = Arc::new(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        );
        self.stack.start_worker(settings);
    }

    /// `author` pushes a branch changing `files` and opens a PR with `body`.
    pub async fn open_pr(
        &mut self,
        author: &str,
        files: &[(&str, &str)],
        body: &str,
    ) -> (PrNumber, CommitSha) {
        self.open(author, files, body, false).await
    }

    /// Like [`open_pr`](Self::open_pr), as a draft.
    pub async fn open_draft_pr(
        &mut self,
        author: &str,
        files: &[(&str, &str)],
        body: &str,
    ) -> (PrNumber, CommitSha) {
        self.open(author, files, body, true).await
    }

    async fn open(
        &mut self,
        author: &str,
        files: &[(&str, &str)],
        body: &str,
        draft: bool,
    ) -> (PrNumber, CommitSha) {
        self.branches += 1;
        let branch = format!("topic-{}", self.branches);
        let change = format!("{branch}.txt");
        let files = match files.is_empty() {
            true => &[(change.as_str(), "change\n")][..],
            false => files,
        };
        let sha = self
            .forge()
            .commit_files(&self.repo, &branch, Some("main"), files, "A change", author)
            .await
            .expect("push");
        let forge = self.forge();
        let (repo, title) = (&self.repo, "A change");
        let pr = forge
            .create_pull(repo, &branch, "main", title, body, draft, author)
            .await
            .expect("open PR");
        (pr, sha)
    }

    /// Returns once every event sent before the call has been handled, so a test can assert
    /// that something did *not* happen without sleeping. The dispatcher handles events one at
    /// a time, in order: once a `/help` posted now is answered, every earlier event was. The
    /// `/help` goes to a draft PR of its own, so nothing runs and no other PR gets a comment.
    pub async fn barrier(&mut self) {
        let (pr, _) = self
            .open_draft_pr("alice", &[("barrier.txt", "barrier\n")], "")
            .await;
        self.forge()
            .comment(&self.repo, pr, "/help", "alice")
            .await
            .expect("comment");
        wait_for("the barrier's /help reply", || {
            self.bot_comments(pr)
                .into_iter()
                .find(|c| c.contains("/help"))
        })
        .await;
        if let Some(tap) = &self.tap {
            // And every job queued so far reached the test's worker.
            tap.barrier(&self.stack.broker).await;
        }
    }

    /// `editor` replaces the PR's description.
    pub async fn edit(&self, pr: PrNumber, body: &str, editor: &str) {
        self.forge()
            .edit_pr_body(&self.repo, pr, body, editor)
            .await
            .expect("edit the body");
    }

    /// The latest (state, description) of `context` on `sha`.
    pub fn status(&self, sha: &CommitSha, context: &str) -> Option<(String, Option<String>)> {
        self.latest(sha, context)
            .map(|(state, description, _)| (state, Some(description)))
    }

    /// Waits until the context's latest status is `pending` `Not yet tested`.
    pub async fn wait_pending(&self, sha: &CommitSha, context: &str) {
        self.wait_status(sha, context, "pending", "Not yet tested")
            .await;
    }

    /// `author` pushes a commit changing `files` to the PR's branch; returns the new head.
    pub async fn push(&self, pr: PrNumber, files: &[(&str, &str)], author: &str) -> CommitSha {
        let branch = self.forge().pr(&self.repo, pr).expect("the PR").head_ref;
        self.forge()
            .commit_files(&self.repo, &branch, None, files, "Another change", author)
            .await
            .expect("push")
    }

    /// The latest (state, description, target_url) of `context` on `sha`.
    pub fn latest(
        &self,
        sha: &CommitSha,
        context: &str,
    ) -> Option<(String, String, Option<String>)> {
        self.statuses(sha, context).pop()
    }

    /// The bot's comments on the PR (replies and the summary).
    pub fn bot_comments(&self, pr: PrNumber) -> Vec<String> {
        self.bot_comments_with_ids(pr)
            .into_iter()
            .map(|(_, body)| body)
            .collect()
    }

    /// The bot's comments on the PR with their ids.
    pub fn bot_comments_with_ids(&self, pr: PrNumber) -> Vec<(u64, String)> {
        let bot = self.forge().bot_login().to_string();
        self.forge()
            .comments(&self.repo, pr)
            .into_iter()
            .filter(|c| c.author == bot)
            .map(|c| (c.id, c.body))
            .collect()
    }

    pub fn body(&self, pr: PrNumber) -> String {
        self.forge().pr(&self.repo, pr).expect("the PR").body
    }

    pub fn head(&self, pr: PrNumber) -> CommitSha {
        self.forge().pr(&self.repo, pr).expect("the PR").head_sha
    }

    /// (state, description, target_url) of every status set on `sha` for `context`, in order.
    pub fn statuses(
        &self,
        sha: &CommitSha,
        context: &str,
    ) -> Vec<(String, String, Option<String>)> {
        self.forge()
            .statuses(&self.repo, sha)
            .into_iter()
            .filter(|s| s.context == context)
            .map(|s| (s.state, s.description.unwrap_or_default(), s.target_url))
            .collect()
    }

    /// Waits until the context's latest status on `sha` is `state` `description`; returns
    /// its link. (The dispatcher ticks the box before it sets the final status.)
    pub async fn wait_status(
        &self,
        sha: &CommitSha,
        context: &str,
        state: &str,
        description: &str,
    ) -> Option<String> {
        wait_for(&format!("{context}: {state} {description}"), || {
            self.statuses(sha, context)
                .pop()
                .filter(|s| s.0 == state && s.1 == description)
                .map(|s| s.2)
        })
        .await
    }

    /// Waits until `context` runs at `sha` (`In progress [<worker>]`); returns its log link.
    pub async fn wait_in_progress(&self, sha: &CommitSha, context: &str) -> String {
        wait_within(LONG, &format!("{context} in progress"), || {
            self.statuses(sha, context)
                .pop()
                .filter(|s| s.0 == "pending" && s.1.starts_with("In progress"))
                .and_then(|s| s.2)
        })
        .await
    }

    /// Waits until one of the bot's comments on `pr` contains `needle`; returns it.
    pub async fn wait_comment(&self, pr: PrNumber, needle: &str) -> String {
        wait_within(LONG, &format!("a comment saying {needle:?}"), || {
            self.bot_comments(pr)
                .into_iter()
                .find(|c| c.contains(needle))
        })
        .await
    }

    /// Waits until the PR's description contains `part`.
    pub async fn wait_body_containing(&self, pr: PrNumber, part: &str) {
        let what = format!("the description to contain {part:?}");
        wait_within(LONG, &what, || self.body(pr).contains(part).then_some(())).await;
    }

    pub async fn wait_body(&self, pr: PrNumber, what: &str, want: &str) {
        wait_within(LONG, what, || (self.body(pr) == want).then_some(())).await;
    }

    /// `git log` of the PR branch since `base`: (subject, body) per commit, oldest first.
    pub fn commits_since(&self, base: &CommitSha, pr: PrNumber) -> Vec<(String, String, String)> {
        let git_dir = self.forge().repo_path(&self.repo);
        let range = format!("{}..{}", base.0, self.head(pr).0);
        let out = super::run(
            "git",
            &[
                "--git-dir",
                git_dir.to_str().expect("utf-8"),
                "log",
                "--reverse",
                "--format=%an%x1f%s%x1f%b%x1e",
                &range,
            ],
        );
        out.split('\u{1e}')
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                let mut parts = c.trim_start().splitn(3, '\u{1f}');
                let mut next = || parts.next().unwrap_or_default().trim().to_string();
                (next(), next(), next())
            })
            .collect()
    }

    pub fn file(&self, pr: PrNumber, path: &str) -> String {
        let git_dir = self.forge().repo_path(&self.repo);
        super::run(
            "git",
            &[
                "--git-dir",
                git_dir.to_str().expect("utf-8"),
                "show",
                &format!("{}:{path}", self.head(pr).0),
            ],
        )
    }

    pub async fn log(&self, url: &str) -> String {
        let path = self
            .dir
            .path()
            .join("logs")
            .join(format!("{}.log", job_of(url)));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// `tickbot work` as its own process against this stack, for the kill tests.
    pub fn worker_process(&self, name: &str) -> Child {
        self.worker_process_with(name, &[])
    }

    /// [`worker_process`](Self::worker_process) with more `TICKBOT__…` settings.
    pub fn worker_process_with(&self, name: &str, settings: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_tickbot"))
            .args(["--config", "/nonexistent/tickbot.toml", "work"])
            .env("TICKBOT__AMQP__URL", amqp_url())
            .env("TICKBOT__AMQP__PREFIX", self.stack.prefix())
            .env("TICKBOT__STATE__DIR", self.dir.path())
            .env("TICKBOT__GITHUB__TOKEN", self.forge().bot_token())
            .env("TICKBOT__LOGS__PUBLIC_URL", &self.stack.intake_url)
            .env("TICKBOT__WORKER__NAME", name)
            .env("TICKBOT__WORKER__STOP_GRACE", "30s")
            .env("TICKBOT__WORKER__CONTAINERS_CONF", containers_conf())
            .envs(settings.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tickbot work")
    }
}
