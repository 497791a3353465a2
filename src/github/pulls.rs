//! Pull requests the scheduler looks back at and closes: its refresh PRs, found by branch.

use super::request::Request;
use super::retry::Repeat;
use super::{GitHub, GitHubError, Scope};
use crate::ids::{PrNumber, RepoName};
use chrono::{DateTime, Utc};
use hyper::Method;
use serde_json::json;

/// A pull request from the newest hundred, open or closed, as the scheduler looks back at them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentPull {
    pub number: PrNumber,
    pub head_ref: String,
    pub created_at: Option<DateTime<Utc>>,
    /// `None` while open.
    pub closed_at: Option<DateTime<Utc>>,
    pub merged: bool,
}

impl GitHub {
    /// The newest hundred pull requests of `repo`, open or closed.
    pub async fn recent_pulls(&self, repo: &RepoName) -> Result<Vec<RecentPull>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(rename = "ref")]
            git_ref: String,
        }
        #[derive(serde::Deserialize)]
        struct Wire {
            number: u64,
            head: Head,
            created_at: Option<DateTime<Utc>>,
            closed_at: Option<DateTime<Utc>>,
            merged_at: Option<DateTime<Utc>>,
        }
        let what = format!("GET recent pull requests of {repo}");
        let path =
            format!("/repos/{repo}/pulls?state=all&sort=created&direction=desc&per_page=100");
        let wire: Vec<Wire> = self.first_page(repo, path, &what).await?;
        Ok(wire
            .into_iter()
            .map(|w| RecentPull {
                number: PrNumber(w.number),
                head_ref: w.head.git_ref,
                created_at: w.created_at,
                closed_at: w.closed_at,
                merged: w.merged_at.is_some(),
            })
            .collect())
    }

    /// Merges a pull request if its head is still `sha` (GitHub's REST merge, a merge commit).
    /// `Ok(Err(reason))` when GitHub refuses: not mergeable (405) or the head moved (409).
    pub async fn merge_pull_request(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        sha: &crate::ids::CommitSha,
    ) -> Result<Result<(), String>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Refusal {
            message: Option<String>,
        }
        let what = format!("PUT merge {repo}{pr}");
        let req = Request::write(
            Method::PUT,
            format!("/repos/{repo}/pulls/{}/merge", pr.0),
            json!({ "sha": sha.0 }),
            what.clone(),
            Repeat::Never,
        );
        let resp = self.send(Scope::Repo(repo), &req).await?;
        match resp.status.as_u16() {
            405 | 409 => {
                let refusal: Refusal = resp.json(&what)?;
                Ok(Err(refusal.message.unwrap_or_else(|| "refused".into())))
            }
            _ => {
                resp.ok(&what)?;
                Ok(Ok(()))
            }
        }
    }

    /// The first page of a list (GitHub's newest first): what the scheduler looks back at.
    pub(super) async fn first_page<T: serde::de::DeserializeOwned>(
        &self,
        repo: &RepoName,
        path: String,
        what: &str,
    ) -> Result<Vec<T>, GitHubError> {
        let req = Request::get(path, what.to_string());
        self.send(Scope::Repo(repo), &req)
            .await?
            .ok(what)?
            .json(what)
    }

    /// Closes a pull request (repeating it is harmless).
    pub async fn close_pull_request(
        &self,
        repo: &RepoName,
        pr: PrNumber,
    ) -> Result<(), GitHubError> {
        let what = format!("PATCH close {repo}{pr}");
        let req = Request::write(
            Method::PATCH,
            format!("/repos/{repo}/pulls/{}", pr.0),
            json!({ "state": "closed" }),
            what,
            Repeat::Safe,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }
}
