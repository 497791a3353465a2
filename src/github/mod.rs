//! The one place that talks to the GitHub REST API.
//!
//! Everything else in tickbot calls domain operations here ([`GitHub::pull_request`],
//! [`GitHub::post_comment`], [`GitHub::set_status`], …) and never builds a REST path. The client
//! works against api.github.com, GitHub Enterprise (`https://host/api/v3`) or the local forge,
//! chosen by [`GitHubSettings::api_url`].
//!
//! * Authentication: a token ([`Auth::Token`]), or a GitHub App ([`Auth::App`]), in which case
//!   each repository's calls use that installation's token (looked up once per owner, then cached
//!   and refreshed by octocrab).
//! * Retries follow our own policy (module `retry`): rate limits are waited out when the wait
//!   fits the budget; server and network errors are repeated only for requests that are safe to
//!   repeat. Creating a comment is never repeated after a 5xx, because GitHub may already have
//!   created it; the error then says so ([`GitHubError::outcome_unknown`]). A PR body write is
//!   never repeated at all (see [`GitHub::set_pr_body`]).
//! * Every attempt is logged (`debug`, retries at `warn`) and counted in the metric
//!   `tickbot_github_api_attempts_total{method, outcome}`.
//! * Tokens never appear in errors, logs or `Debug` output.

mod budget;
mod calls;
mod error;
mod installations;
mod issues;
mod pulls;
mod request;
mod retry;
mod trees;
mod types;

pub use budget::RateLimit;
pub use error::GitHubError;
pub use issues::OpenIssue;
pub use pulls::RecentPull;
pub use types::{
    CheckAction, CheckOutput, CheckRun, CheckRunWrite, Comment, CommitStatus, Permission,
    PullRequest, RepoInfo, StatusState,
};

use crate::ids::{CommitSha, PrNumber, RepoName};
use base64::Engine as _;
use hyper::header::HeaderName;
use hyper::{Method, StatusCode, Uri};
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use request::Request;
use retry::Repeat;
use serde_json::json;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub(crate) use types::WirePullRequest;
use types::{WireCheckRun, WireComment, WireContent, WirePermission};

/// How tickbot authenticates to GitHub.
#[derive(Clone)]
pub enum Auth {
    /// A personal access token (or any token GitHub accepts as `Bearer`).
    Token(String),
    /// A GitHub App: the app's id and its private key (PEM). Installation tokens are obtained
    /// per repository owner as needed.
    App {
        app_id: u64,
        private_key_pem: String,
    },
}

/// Redacted, so settings can be logged without leaking a secret.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::App { app_id, .. } => {
                write!(f, "App {{ app_id: {app_id}, private_key_pem: <redacted> }}")
            }
        }
    }
}

/// Everything the client needs; built from the `[github]` section of the server configuration.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// `https://api.github.com`, `https://host/api/v3` for GitHub Enterprise, or the forge's URL.
    pub api_url: String,
    pub auth: Auth,
    /// Attempts per call, the first one included.
    pub max_attempts: u32,
    /// Longest total wait between attempts of one call; a rate limit that resets later fails
    /// the call with [`GitHubError::RateLimited`] instead of blocking the dispatcher.
    pub max_wait: Duration,
    /// Pause before the first repetition after a server or network error; doubles each time.
    pub initial_backoff: Duration,
    /// Longest time one attempt may take.
    pub request_timeout: Duration,
}

impl GitHubSettings {
    /// Settings with the defaults: 4 attempts, at most 60 s of waiting per call.
    pub fn new(api_url: impl Into<String>, auth: Auth) -> GitHubSettings {
        GitHubSettings {
            api_url: api_url.into(),
            auth,
            max_attempts: 4,
            max_wait: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A GitHub API client. Cheap to clone; clones share connections and cached App tokens.
#[derive(Clone)]
pub struct GitHub {
    inner: Arc<Inner>,
}

struct Inner {
    base: Uri,
    policy: retry::Policy,
    timeout: Duration,
    clients: Clients,
    /// The token, kept only for [`GitHub::git_token`] (workers push over https with it).
    token: Option<String>,
    budget: budget::Budget,
}

enum Clients {
    Token(Arc<Octocrab>),
    App {
        app: Arc<Octocrab>,
        /// Installation clients by lowercased owner login. Held in an `Arc` because cloning an
        /// installation `Octocrab` copies its token cache instead of sharing it.
        installations: Mutex<HashMap<String, Arc<Octocrab>>>,
    },
}

/// Whose installation a call needs (GitHub App authentication only).
enum Scope<'a> {
    Repo(&'a RepoName),
    Org(&'a str),
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match self.inner.clients {
            Clients::Token(_) => "token",
            Clients::App { .. } => "app",
        };
        f.debug_struct("GitHub")
            .field("api_url", &self.inner.base.to_string())
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// GitHub limits a status description to 140 characters and refuses longer ones with a 422.
pub const MAX_STATUS_DESCRIPTION: usize = 140;

impl GitHub {
    /// Builds the client. Must be called inside a tokio runtime (octocrab spawns a worker task).
    pub fn new(settings: GitHubSettings) -> Result<GitHub, GitHubError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(GitHubError::Config(
                "the GitHub client must be created inside the tokio runtime".into(),
            ));
        }
        let api_url = settings.api_url.trim().trim_end_matches('/');
        let base: Uri = api_url.parse().map_err(|_| bad_url(api_url))?;
        if !matches!(base.scheme_str(), Some("http" | "https")) || base.authority().is_none() {
            return Err(bad_url(api_url));
        }
        let builder = Octocrab::builder()
            .base_uri(base.clone())
            .map_err(|_| bad_url(api_url))?
            // Our own policy in `retry` replaces octocrab's, which would repeat POSTs blindly.
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(settings.request_timeout.min(Duration::from_secs(10))))
            .set_read_timeout(Some(settings.request_timeout))
            .add_header(
                HeaderName::from_static("x-github-api-version"),
                "2022-11-28".into(),
            );
        let build_error =
            |e: octocrab::Error| GitHubError::Config(format!("cannot build the HTTP client: {e}"));
        let (clients, token) = match &settings.auth {
            Auth::Token(token) => {
                if token.trim().is_empty() {
                    return Err(GitHubError::Config(
                        "the GitHub token is empty: set [github] token or token_file".into(),
                    ));
                }
                let client = builder.personal_token(token.trim().to_string()).build();
                (
                    Clients::Token(Arc::new(client.map_err(build_error)?)),
                    Some(token.trim().to_string()),
                )
            }
            Auth::App {
                app_id,
                private_key_pem,
            } => {
                let app = builder
                    .app_from_rsa_pem(octocrab::models::AppId(*app_id), private_key_pem.as_bytes())
                    .map_err(|_| {
                        GitHubError::Config(format!(
                            "the private key of GitHub App {app_id} is not an RSA key in PEM format: \
                             check [github] private_key_file"
                        ))
                    })?
                    .build()
                    .map_err(build_error)?;
                let installations = Mutex::new(HashMap::new());
                (
                    Clients::App {
                        app: Arc::new(app),
                        installations,
                    },
                    None,
                )
            }
        };
        Ok(GitHub {
            inner: Arc::new(Inner {
                base,
                policy: retry::Policy {
                    max_attempts: settings.max_attempts.max(1),
                    max_wait: settings.max_wait,
                    initial_backoff: settings.initial_backoff,
                },
                timeout: settings.request_timeout,
                clients,
                token,
                budget: budget::Budget::default(),
            }),
        })
    }

    /// One pull request.
    pub async fn pull_request(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<PullRequest, GitHubError> {
        let what = format!("GET pull request {repo}{pr}");
        let req = Request::get(format!("/repos/{repo}/pulls/{}", pr.0), what.clone());
        let wire: WirePullRequest = self.send_ok(repo, &req).await?.json(&what)?;
        wire.into_domain(repo)
            .map_err(|reason| invalid(&what, reason))
    }

    /// All open pull requests of a repository (every page).
    pub async fn open_pull_requests(
        &self,
        repo: &RepoName,
    ) -> Result<Vec<PullRequest>, GitHubError> {
        let what = format!("GET open pull requests of {repo}");
        let path = format!("/repos/{repo}/pulls?state=open&per_page=100");
        let wire: Vec<WirePullRequest> = self.get_all(Scope::Repo(repo), path, &what, None).await?;
        wire.into_iter()
            .map(|pr| {
                pr.into_domain(repo)
                    .map_err(|reason| invalid(&what, reason))
            })
            .collect()
    }

    /// The text of the file at `path` as of `git_ref` (branch, tag or SHA); `None` if there is no
    /// such file. Used to read `.tickbot.toml` at a PR's head or on the default branch.
    ///
    /// GitHub answers 404 alike for a missing file, a missing ref and a repository the bot cannot
    /// see; all three read as `None` here.
    pub async fn file_at(
        &self,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<String>, GitHubError> {
        let what = format!("GET file {path} at {git_ref} in {repo}");
        let Some(value) = self.contents(repo, path, git_ref, &what).await? else {
            return Ok(None);
        };
        if value.is_array() {
            return Err(invalid(&what, "this is a directory, not a file".into()));
        }
        let content: WireContent =
            serde_json::from_value(value).map_err(|e| invalid(&what, e.to_string()))?;
        if content.kind != "file" {
            return Err(invalid(
                &what,
                format!("this is a {}, not a file", content.kind),
            ));
        }
        let (Some("base64"), Some(encoded)) = (content.encoding.as_deref(), content.content) else {
            // GitHub leaves `content` out (encoding "none") for files over 1 MB.
            return Err(invalid(
                &what,
                "the file is too large for GitHub's contents API".into(),
            ));
        };
        // GitHub wraps the base64 text at 60 columns.
        let compact: String = encoded
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| invalid(&what, format!("the content is not valid base64: {e}")))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| invalid(&what, "the file is not UTF-8 text".into()))
    }

    /// The paths a pull request changes (every page; GitHub lists at most 3,000 files).
    pub async fn changed_files(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<Vec<String>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct WireFile {
            filename: String,
        }
        let what = format!("GET changed files of {repo}{pr}");
        let path = format!("/repos/{repo}/pulls/{}/files?per_page=100", pr.0);
        let files: Vec<WireFile> = self.get_all(Scope::Repo(repo), path, &what, None).await?;
        Ok(files.into_iter().map(|f| f.filename).collect())
    }

    /// A repository's default branch and clone URL; `None` if it does not exist, or the bot
    /// cannot see it (as an App: is not installed there).
    pub async fn repository(&self, repo: &RepoName) -> Result<Option<RepoInfo>, GitHubError> {
        let what = format!("GET repository {repo}");
        let req = Request::get(format!("/repos/{repo}"), what.clone());
        let resp = match self.send(Scope::Repo(repo), &req).await {
            Err(GitHubError::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.ok(&what)?.json(&what).map(Some)
    }

    /// The commit a branch (or tag, or SHA) names; `None` if there is no such ref.
    pub async fn commit_of(
        &self,
        repo: &RepoName,
        git_ref: &str,
    ) -> Result<Option<CommitSha>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct WireCommit {
            sha: String,
        }
        let what = format!("GET commit {git_ref} of {repo}");
        let req = Request::get(
            format!("/repos/{repo}/commits/{}", urlencoding::encode(git_ref)),
            what.clone(),
        );
        let resp = self.send(Scope::Repo(repo), &req).await?;
        if matches!(
            resp.status,
            StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
        ) {
            return Ok(None);
        }
        let commit: WireCommit = resp.ok(&what)?.json(&what)?;
        Ok(Some(CommitSha(commit.sha)))
    }

    /// Sets the commit status for `status.context` on `sha`, replacing the previous one of that
    /// context. Repeating it is harmless, so it is retried like a read.
    pub async fn set_status(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), GitHubError> {
        let what = format!("POST status {:?} on {repo}@{}", status.context, sha.short());
        let mut status = status.clone();
        if let Some(description) = &mut status.description {
            truncate_chars(description, MAX_STATUS_DESCRIPTION);
        }
        let body = serde_json::to_value(&status).map_err(|e| invalid(&what, e.to_string()))?;
        let req = Request::write(
            Method::POST,
            format!("/repos/{repo}/statuses/{}", urlencoding::encode(&sha.0)),
            body,
            what.clone(),
            Repeat::Safe,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }

    /// The current status of every context on `sha` (GitHub's combined status: the latest per
    /// context), every page.
    pub async fn statuses(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
    ) -> Result<Vec<CommitStatus>, GitHubError> {
        let what = format!("GET statuses of {repo}@{}", sha.short());
        let path = format!(
            "/repos/{repo}/commits/{}/status?per_page=100",
            urlencoding::encode(&sha.0)
        );
        self.get_all(Scope::Repo(repo), path, &what, Some("statuses"))
            .await
    }

    /// Creates a check run (GitHub App only); returns its id. Not repeated after a server or
    /// network error (a second run of the same name would appear), like a comment.
    pub async fn create_check_run(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        run: &CheckRunWrite,
    ) -> Result<u64, GitHubError> {
        let what = format!("POST check run {:?} on {repo}@{}", run.name, sha.short());
        let mut body = serde_json::to_value(run).map_err(|e| invalid(&what, e.to_string()))?;
        body["head_sha"] = json!(sha.0);
        let req = Request::write(
            Method::POST,
            format!("/repos/{repo}/check-runs"),
            body,
            what.clone(),
            Repeat::IfNotProcessed,
        );
        let created: WireCheckRun = self.send_ok(repo, &req).await?.json(&what)?;
        Ok(created.id)
    }

    /// Updates a check run; setting the same fields twice is harmless, so it is retried.
    pub async fn update_check_run(
        &self,
        repo: &RepoName,
        id: u64,
        run: &CheckRunWrite,
    ) -> Result<(), GitHubError> {
        let what = format!("PATCH check run {:?} ({id}) in {repo}", run.name);
        let body = serde_json::to_value(run).map_err(|e| invalid(&what, e.to_string()))?;
        let req = Request::write(
            Method::PATCH,
            format!("/repos/{repo}/check-runs/{id}"),
            body,
            what.clone(),
            Repeat::Safe,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }

    /// Every check run on `sha` (all apps'), every page.
    pub async fn check_runs(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
    ) -> Result<Vec<CheckRun>, GitHubError> {
        let what = format!("GET check runs of {repo}@{}", sha.short());
        let path = format!(
            "/repos/{repo}/commits/{}/check-runs?per_page=100",
            urlencoding::encode(&sha.0)
        );
        let wire: Vec<WireCheckRun> = self
            .get_all(Scope::Repo(repo), path, &what, Some("check_runs"))
            .await?;
        Ok(wire.into_iter().map(CheckRun::from).collect())
    }

    /// Whether this client is a GitHub App's (which can publish check runs).
    pub fn is_app(&self) -> bool {
        matches!(self.inner.clients, Clients::App { .. })
    }

    /// Posts a comment on a pull request. Never repeated after a server or network error, since
    /// GitHub may have posted it already: such errors report [`GitHubError::outcome_unknown`].
    pub async fn post_comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        body: &str,
    ) -> Result<Comment, GitHubError> {
        let what = format!("POST comment on {repo}{pr}");
        let req = Request::write(
            Method::POST,
            format!("/repos/{repo}/issues/{}/comments", pr.0),
            json!({ "body": body }),
            what.clone(),
            Repeat::IfNotProcessed,
        );
        let wire: WireComment = self.send_ok(repo, &req).await?.json(&what)?;
        Ok(wire.into())
    }

    /// All comments on a pull request, oldest first, every page.
    pub async fn comments(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<Vec<Comment>, GitHubError> {
        let what = format!("GET comments of {repo}{pr}");
        let path = format!("/repos/{repo}/issues/{}/comments?per_page=100", pr.0);
        let wire: Vec<WireComment> = self.get_all(Scope::Repo(repo), path, &what, None).await?;
        Ok(wire.into_iter().map(Comment::from).collect())
    }

    /// Replaces the text of a comment (setting the same text twice is harmless, so it is retried).
    pub async fn edit_comment(
        &self,
        repo: &RepoName,
        id: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let what = format!("PATCH comment {id} in {repo}");
        let req = Request::write(
            Method::PATCH,
            format!("/repos/{repo}/issues/comments/{id}"),
            json!({ "body": body }),
            what.clone(),
            Repeat::Safe,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }

    /// Replaces a pull request's description.
    ///
    /// GitHub has no compare-and-swap, so the caller builds `body` from a fresh read. For the same
    /// reason this is never repeated, not even after a rate-limit wait: by then a person may have
    /// edited the description, and repeating would overwrite their edit. On any error (a 5xx has
    /// [`GitHubError::outcome_unknown`]) the caller re-reads the PR and decides again.
    pub async fn set_pr_body(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        body: &str,
    ) -> Result<(), GitHubError> {
        let what = format!("PATCH description of {repo}{pr}");
        let req = Request::write(
            Method::PATCH,
            format!("/repos/{repo}/pulls/{}", pr.0),
            json!({ "body": body }),
            what.clone(),
            Repeat::Never,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }

    /// Opens a pull request from branch `head` (in `repo`, or `owner:branch` for a fork) into
    /// `base`; the scheduler's refresh PRs. Never repeated after a server or network error,
    /// since GitHub may have opened it already: look for it by head branch before trying again.
    pub async fn create_pull_request(
        &self,
        repo: &RepoName,
        title: &str,
        head: &str,
        base: &str,
        body: &str,
    ) -> Result<PullRequest, GitHubError> {
        let what = format!("POST pull request {head} → {base} in {repo}");
        let req = Request::write(
            Method::POST,
            format!("/repos/{repo}/pulls"),
            json!({ "title": title, "head": head, "base": base, "body": body }),
            what.clone(),
            Repeat::IfNotProcessed,
        );
        let wire: WirePullRequest = self.send_ok(repo, &req).await?.json(&what)?;
        wire.into_domain(repo)
            .map_err(|reason| invalid(&what, reason))
    }

    /// Adds a reaction (`+1`, `-1`, `laugh`, `confused`, `heart`, `hooray`, `rocket`, `eyes`) to
    /// a comment: the quick acknowledgement of a command. GitHub answers an existing reaction with
    /// 200 instead of adding a second one, so this is retried like a read.
    pub async fn add_reaction(
        &self,
        repo: &RepoName,
        comment_id: u64,
        content: &str,
    ) -> Result<(), GitHubError> {
        let what = format!("POST reaction {content:?} on comment {comment_id} in {repo}");
        let req = Request::write(
            Method::POST,
            format!("/repos/{repo}/issues/comments/{comment_id}/reactions"),
            json!({ "content": content }),
            what.clone(),
            Repeat::Safe,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }

    /// `user`'s permission on `repo`; [`Permission::None`] for someone who is not a collaborator.
    pub async fn permission(&self, repo: &RepoName, user: &str) -> Result<Permission, GitHubError> {
        let what = format!("GET permission of {user} on {repo}");
        let req = Request::get(
            format!(
                "/repos/{repo}/collaborators/{}/permission",
                urlencoding::encode(user)
            ),
            what.clone(),
        );
        let resp = self.send(Scope::Repo(repo), &req).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(Permission::None);
        }
        let wire: WirePermission = resp.ok(&what)?.json(&what)?;
        Ok(Permission::from_github(
            wire.role_name.as_deref(),
            &wire.permission,
        ))
    }

    /// Whether `user` is a member of `org`. GitHub answers 204 for a member, 404 for a
    /// non-member, and 302 (to the public-member check) when the bot itself cannot see the
    /// organization's private membership; octocrab follows that redirect, so public members
    /// count and private ones need the bot to be an org member or an App with member access.
    pub async fn is_org_member(&self, org: &str, user: &str) -> Result<bool, GitHubError> {
        let what = format!("GET membership of {user} in organization {org}");
        let req = Request::get(
            format!(
                "/orgs/{}/members/{}",
                urlencoding::encode(org),
                urlencoding::encode(user)
            ),
            what.clone(),
        );
        let resp = self.send(Scope::Org(org), &req).await?;
        match resp.status {
            StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND | StatusCode::FOUND => Ok(false),
            _ => Err(request::api_error(&what, &resp, false)),
        }
    }

    /// A token with which a worker can push to `repo` over https (as user `x-access-token`):
    /// the configured token, or a fresh installation token of the App. Handle with care: never
    /// log it, and never hand it to a job's container.
    pub async fn git_token(&self, repo: &RepoName) -> Result<String, GitHubError> {
        if let Some(token) = &self.inner.token {
            return Ok(token.clone());
        }
        let client = self.client_for(Scope::Repo(repo)).await?;
        let token = client.installation_token().await.map_err(|e| {
            request::from_octocrab(e, &format!("GET App installation token for {repo}"))
        })?;
        Ok(octocrab::secrecy::ExposeSecret::expose_secret(&token).to_string())
    }
}

/// The cache holds no invariant a panicking holder could break, so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn bad_url(url: &str) -> GitHubError {
    GitHubError::Config(format!(
        "[github] api_url {url:?} is not an http(s) URL such as https://api.github.com"
    ))
}

fn invalid(what: &str, reason: String) -> GitHubError {
    GitHubError::InvalidResponse {
        what: what.to_string(),
        reason,
    }
}

fn truncate_chars(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        // Leave room for the ellipsis so the result stays within `max` characters.
        let keep = text.char_indices().nth(max - 1).map_or(cut, |(i, _)| i);
        text.truncate(keep);
        text.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_descriptions_are_cut_to_github_s_limit() {
        let mut text = "é".repeat(200);
        truncate_chars(&mut text, 140);
        assert_eq!(text.chars().count(), 140);
        assert!(text.ends_with('…'));
        let mut short = "Success [worker-1]".to_string();
        truncate_chars(&mut short, 140);
        assert_eq!(short, "Success [worker-1]");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let settings =
            GitHubSettings::new("https://api.github.com", Auth::Token("ghp_secret".into()));
        assert!(!format!("{settings:?}").contains("ghp_secret"));
        let app = Auth::App {
            app_id: 1,
            private_key_pem: "-----BEGIN".into(),
        };
        assert!(!format!("{app:?}").contains("BEGIN"));
    }
}
