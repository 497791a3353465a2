//! How a call goes out: the client and credential for its scope (the token, or the App
//! installation of the repository's owner, looked up once and kept), the channel through our
//! retry policy and budget, and the rate limit left.

use super::request::{self, Request, Response};
use super::types::WireInstallation;
use super::{Clients, GitHub, GitHubError, RateLimit, Scope, lock};
use crate::ids::RepoName;
use octocrab::Octocrab;
use std::sync::Arc;

impl GitHub {
    /// Sends a call about `repo` and fails unless GitHub reported success.
    pub(super) async fn send_ok(
        &self,
        repo: &RepoName,
        req: &Request,
    ) -> Result<Response, GitHubError> {
        self.send(Scope::Repo(repo), req).await?.ok(&req.what)
    }

    pub(super) async fn send(
        &self,
        scope: Scope<'_>,
        req: &Request,
    ) -> Result<Response, GitHubError> {
        let credential = self.credential(&scope);
        let client = self.client_for(scope).await?;
        request::send(&self.channel(&client, &credential), req).await
    }

    pub(super) fn channel<'a>(
        &'a self,
        client: &'a Octocrab,
        credential: &'a str,
    ) -> request::Channel<'a> {
        request::Channel {
            client,
            policy: &self.inner.policy,
            timeout: self.inner.timeout,
            budget: &self.inner.budget,
            credential,
        }
    }

    /// Whose rate limit a call in `scope` counts against: the token's, or the installation's
    /// (by lowercased owner).
    pub(super) fn credential(&self, scope: &Scope<'_>) -> String {
        match (&self.inner.clients, scope) {
            (Clients::Token(_), _) => "token".into(),
            (Clients::App { .. }, Scope::Repo(repo)) => repo.owner().to_ascii_lowercase(),
            (Clients::App { .. }, Scope::Org(org)) => org.to_ascii_lowercase(),
        }
    }

    /// The rate limit left for calls about `repo`, as GitHub's last answer said, while its
    /// window lasts.
    pub fn rate_limit(&self, repo: &RepoName) -> Option<RateLimit> {
        let credential = self.credential(&Scope::Repo(repo));
        self.inner
            .budget
            .rate_limit(&credential, chrono::Utc::now())
    }

    pub(super) async fn get_all<T: serde::de::DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        first: String,
        what: &str,
        field: Option<&str>,
    ) -> Result<Vec<T>, GitHubError> {
        let credential = self.credential(&scope);
        let client = self.client_for(scope).await?;
        let channel = self.channel(&client, &credential);
        request::get_all(&channel, &self.inner.base, first, what, field).await
    }

    /// The client to use for `scope`: the token client, or the App installation's client,
    /// looked up on first use and cached per owner.
    pub(super) async fn client_for(&self, scope: Scope<'_>) -> Result<Arc<Octocrab>, GitHubError> {
        let (app, installations) = match &self.inner.clients {
            Clients::Token(client) => return Ok(client.clone()),
            Clients::App { app, installations } => (app, installations),
        };
        let owner = match scope {
            Scope::Repo(repo) => repo.owner(),
            Scope::Org(org) => org,
        };
        let key = owner.to_ascii_lowercase();
        if let Some(client) = lock(installations).get(&key) {
            return Ok(client.clone());
        }
        // Two tasks may look up the same installation concurrently; both get the same id and
        // the second insert is harmless, which beats holding a lock across an HTTP call.
        let (path, what) = match scope {
            Scope::Repo(repo) => (
                format!("/repos/{repo}/installation"),
                format!("GET GitHub App installation for {repo} (is the App installed there?)"),
            ),
            Scope::Org(org) => (
                format!("/orgs/{}/installation", urlencoding::encode(org)),
                format!(
                    "GET GitHub App installation for organization {org} (is the App installed there?)"
                ),
            ),
        };
        let req = Request::get(path, what.clone());
        let resp = request::send(&self.channel(app, "app"), &req).await?;
        let installation: WireInstallation = resp.ok(&what)?.json(&what)?;
        self.installation_client(&key, installation.id, &what)
    }

    /// The App's client for installation `id` on the owner `key` (lowercased): the cached one,
    /// whose installation token is reused while it lasts, or a new one, then cached.
    pub(super) fn installation_client(
        &self,
        key: &str,
        id: u64,
        what: &str,
    ) -> Result<Arc<Octocrab>, GitHubError> {
        let Clients::App { app, installations } = &self.inner.clients else {
            return Err(GitHubError::Config(format!(
                "{what}: only a GitHub App has installations"
            )));
        };
        if let Some(client) = lock(installations).get(key) {
            return Ok(client.clone());
        }
        let client = app
            .installation(octocrab::models::InstallationId(id))
            .map_err(|e| GitHubError::Config(format!("{what}: {e}")))?;
        let client = Arc::new(client);
        lock(installations).insert(key.to_string(), client.clone());
        Ok(client)
    }
}
