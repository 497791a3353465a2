//! Pull requests the scheduler looks back at and closes: its refresh PRs, found by branch.

use super::request::Request;
use super::retry::Repeat;
use super::{GitHub, GitHubError, Scope};
use crate::ids::{PrNumber, RepoName};
use chrono::{DateTime, Utc};
use hyper::Method;
use serde_json::json;

/// A closed pull request, as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPull {
    pub number: PrNumber,
    pub closed_at: Option<DateTime<Utc>>,
    pub merged: bool,
}

impl GitHub {
    /// The closed pull requests from branch `head` of `repo`, newest first (GitHub's first
    /// page: the newest hundred).
    pub async fn closed_pulls_from(
        &self,
        repo: &RepoName,
        head: &str,
    ) -> Result<Vec<ClosedPull>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Wire {
            number: u64,
            closed_at: Option<DateTime<Utc>>,
            merged_at: Option<DateTime<Utc>>,
        }
        let what = format!("GET closed pull requests from {head} in {repo}");
        let head = format!("{}:{head}", repo.owner());
        let path = format!(
            "/repos/{repo}/pulls?state=closed&head={}&per_page=100",
            urlencoding::encode(&head)
        );
        let req = Request::get(path, what.clone());
        let wire: Vec<Wire> = self
            .send(Scope::Repo(repo), &req)
            .await?
            .ok(&what)?
            .json(&what)?;
        Ok(wire
            .into_iter()
            .map(|w| ClosedPull {
                number: PrNumber(w.number),
                closed_at: w.closed_at,
                merged: w.merged_at.is_some(),
            })
            .collect())
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
