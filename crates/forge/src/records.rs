//! What the bot records on pull requests and commits through the REST API: reactions,
//! statuses, check runs and labels, plus reading files at a ref. None of these send webhooks
//! (tickbot does not subscribe to `status`, `check_run` or `label` events).

use super::Forge;
use super::git::PathContent;
use super::state::{CheckRun, CommitStatus, ForgeError, Reaction};
use chrono::Utc;
use serde_json::json;
use tickbot_syntax::ids::{CommitSha, PrNumber, RepoName};

/// GitHub's limit on a commit status description, in characters: longer ones are refused
/// with 422 "description is too long (maximum is 140 characters)". From GitHub's documented
/// behaviour, not the bot's constant, so a bot that sends more is caught here.
pub const MAX_STATUS_DESCRIPTION: usize = 140;

/// The reactions GitHub accepts.
pub const REACTIONS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];

impl Forge {
    /// Adds a reaction; the same user and content twice gives the existing one (`false`).
    pub(crate) fn react(
        &self,
        repo: &RepoName,
        comment: u64,
        content: &str,
        user: &str,
    ) -> Result<(Reaction, bool), ForgeError> {
        if !REACTIONS.contains(&content) {
            return Err(ForgeError::Validation {
                resource: "Reaction",
                field: "content",
                code: "invalid",
                message: format!("content must be one of {}", REACTIONS.join(", ")),
            });
        }
        let mut st = self.state();
        let id = st.next_id();
        let c = st.repo_mut(repo)?.comment_mut(comment)?;
        if let Some(r) = c
            .reactions
            .iter()
            .find(|r| r.user == user && r.content == content)
        {
            return Ok((r.clone(), false));
        }
        let r = Reaction {
            id,
            user: user.to_string(),
            content: content.to_string(),
            created_at: Utc::now(),
        };
        c.reactions.push(r.clone());
        Ok((r, true))
    }

    /// Resolves a branch, `refs/pull/N/head` or SHA to a commit, as the commits endpoints do.
    pub(crate) async fn resolve(&self, repo: &RepoName, reference: &str) -> Option<CommitSha> {
        let known = self.state().repo(repo).ok()?.resolve_known(reference);
        match known {
            Some(sha) => Some(sha),
            None => self.inner.git.resolve(repo, reference).await,
        }
    }

    pub(crate) async fn read_path(
        &self,
        repo: &RepoName,
        reference: Option<&str>,
        path: &str,
    ) -> Result<(CommitSha, PathContent), ForgeError> {
        let reference = match reference {
            Some(r) => r.to_string(),
            None => self.state().repo(repo)?.default_branch.clone(),
        };
        let sha = self
            .resolve(repo, &reference)
            .await
            .ok_or(ForgeError::NotFound)?;
        let content = self
            .inner
            .git
            .read_path(repo, &sha, path)
            .await
            .map_err(|e| ForgeError::Git(format!("{e:#}")))?
            .ok_or(ForgeError::NotFound)?;
        Ok((sha, content))
    }

    pub(crate) fn add_status(
        &self,
        repo: &RepoName,
        sha: CommitSha,
        state: &str,
        context: &str,
        description: Option<String>,
        target_url: Option<String>,
    ) -> Result<CommitStatus, ForgeError> {
        if !["pending", "success", "failure", "error"].contains(&state) {
            return Err(ForgeError::Validation {
                resource: "Status",
                field: "state",
                code: "invalid",
                message: format!("state is not included in the list ({state})"),
            });
        }
        // GitHub refuses longer descriptions rather than truncating them.
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > MAX_STATUS_DESCRIPTION)
        {
            return Err(ForgeError::Validation {
                resource: "Status",
                field: "description",
                code: "custom",
                message: format!(
                    "description is too long (maximum is {MAX_STATUS_DESCRIPTION} characters)"
                ),
            });
        }
        let mut st = self.state();
        let id = st.next_id();
        let status = CommitStatus {
            id,
            sha,
            state: state.to_string(),
            context: context.to_string(),
            description,
            target_url,
            creator: self.inner.opts.bot_login.clone(),
            created_at: Utc::now(),
        };
        st.repo_mut(repo)?.statuses.push(status.clone());
        Ok(status)
    }

    pub(crate) fn upsert_check_run(
        &self,
        repo: &RepoName,
        id: Option<u64>,
        update: impl FnOnce(&mut CheckRun),
        head_sha: Option<CommitSha>,
    ) -> Result<CheckRun, ForgeError> {
        let mut st = self.state();
        let new_id = st.next_id();
        let r = st.repo_mut(repo)?;
        let run = match (id, head_sha) {
            (Some(id), _) => r
                .check_runs
                .iter_mut()
                .find(|c| c.id == id)
                .ok_or(ForgeError::NotFound)?,
            (None, Some(sha)) => {
                r.check_runs.push(CheckRun {
                    id: new_id,
                    head_sha: sha,
                    name: String::new(),
                    status: "queued".into(),
                    conclusion: None,
                    details_url: None,
                    external_id: None,
                    output: json!({ "title": null, "summary": null, "text": null }),
                    actions: Vec::new(),
                    started_at: Utc::now(),
                    completed_at: None,
                    creator: self.inner.opts.bot_login.clone(),
                });
                r.check_runs.last_mut().ok_or(ForgeError::NotFound)?
            }
            (None, None) => return Err(ForgeError::NotFound),
        };
        update(run);
        if run.conclusion.is_some() {
            run.status = "completed".into();
            run.completed_at.get_or_insert_with(Utc::now);
        }
        Ok(run.clone())
    }

    /// Adds labels to a pull request (creating unknown labels); returns all its labels.
    pub(crate) fn add_labels(
        &self,
        repo: &RepoName,
        n: PrNumber,
        names: &[String],
    ) -> Result<Vec<String>, ForgeError> {
        let mut st = self.state();
        let mut ids: Vec<u64> = names.iter().map(|_| st.next_id()).collect();
        let r = st.repo_mut(repo)?;
        r.pull(n.0)?;
        for name in names {
            let fresh = ids.pop().unwrap_or_default();
            r.labels.entry(name.clone()).or_insert(fresh);
        }
        let pr = r.pull_mut(n.0)?;
        for name in names {
            if !pr.labels.contains(name) {
                pr.labels.push(name.clone());
            }
        }
        Ok(pr.labels.clone())
    }

    /// Removes one label (`Some`) or all (`None`); a missing label is GitHub's 404.
    pub(crate) fn remove_label(
        &self,
        repo: &RepoName,
        n: PrNumber,
        name: Option<&str>,
    ) -> Result<Vec<String>, ForgeError> {
        let mut st = self.state();
        let pr = st.repo_mut(repo)?.pull_mut(n.0)?;
        match name {
            Some(name) => {
                let before = pr.labels.len();
                pr.labels.retain(|l| l != name);
                if pr.labels.len() == before {
                    return Err(ForgeError::NotFound);
                }
            }
            None => pr.labels.clear(),
        }
        Ok(pr.labels.clone())
    }
}
