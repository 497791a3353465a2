//! What the handlers read besides the event itself: a commit's `.tickbot.toml` (cached by
//! commit, which never changes) and whether a PR's author is trusted (cached for minutes by
//! [`super::trust`]). The states of a commit are read through [`super::writes`], which needs
//! them to know which check run to update.

use super::Dispatcher;
use super::memory::ConfigAt;
use super::trust::Verdict;
use crate::github::{GitHubError, PullRequest};
use crate::ids::{CommitSha, RepoName};
use crate::repo_config::{self, RepoConfig};
use std::sync::Arc;

impl Dispatcher {
    /// `.tickbot.toml` at `sha`.
    pub(super) async fn config_at(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
    ) -> Result<ConfigAt, GitHubError> {
        if let Some(c) = self.memory.config(repo, sha) {
            return Ok(c);
        }
        let Some(text) = self
            .github
            .file_at(repo, repo_config::FILE_NAME, &sha.0)
            .await?
        else {
            self.memory.remember_config(repo, sha, ConfigAt::Missing, 0);
            return Ok(ConfigAt::Missing);
        };
        // Any PR's head, an untrusted author's too: parsed off the async threads (bounded by
        // `repo_config`'s limits, but milliseconds), so no other event waits for it.
        let limits = self.settings.limits;
        let size = text.len();
        let parsed =
            tokio::task::spawn_blocking(move || RepoConfig::parse_within(&text, &limits)).await;
        let config = match parsed {
            Ok(Ok(c)) => ConfigAt::Valid(Arc::new(c)),
            Ok(Err(e)) => ConfigAt::Invalid(e),
            Err(e) => {
                tracing::error!(%repo, %sha, error = %e, "parsing .tickbot.toml panicked");
                ConfigAt::Invalid(repo_config::RepoConfigError {
                    line: None,
                    column: None,
                    message: "tickbot failed while reading this file: a bug in tickbot, \
                              please report it"
                        .into(),
                })
            }
        };
        let weight = match &config {
            ConfigAt::Valid(c) => c.retained_bytes(size),
            _ => size,
        };
        self.memory
            .remember_config(repo, sha, config.clone(), weight);
        Ok(config)
    }

    /// Whether the PR's author may run code (`[trust]` on the default branch).
    pub(super) async fn author_trust(&self, pr: &PullRequest) -> Result<Verdict, GitHubError> {
        self.trust
            .check(
                &pr.repo,
                &pr.default_branch,
                &pr.author,
                &pr.author_association,
            )
            .await
    }
}
