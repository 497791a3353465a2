//! Issues that are not pull requests: the scheduler keeps one per failing refresh, found by
//! its title.

use super::request::Request;
use super::retry::Repeat;
use super::{GitHub, GitHubError};
use crate::ids::{PrNumber, RepoName};
use hyper::Method;
use serde_json::json;

/// An open issue as the scheduler looks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIssue {
    pub number: PrNumber,
    pub title: String,
    pub body: String,
}

impl GitHub {
    /// The newest hundred open issues of `repo` (pull requests left out).
    pub async fn open_issues(&self, repo: &RepoName) -> Result<Vec<OpenIssue>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Wire {
            number: u64,
            title: String,
            body: Option<String>,
            /// Present on pull requests, which the issues API lists too.
            pull_request: Option<serde_json::Value>,
        }
        let what = format!("GET open issues of {repo}");
        let path = format!("/repos/{repo}/issues?state=open&per_page=100");
        let wire: Vec<Wire> = self.first_page(repo, path, &what).await?;
        Ok(wire
            .into_iter()
            .filter(|w| w.pull_request.is_none())
            .map(|w| OpenIssue {
                number: PrNumber(w.number),
                title: w.title,
                body: w.body.unwrap_or_default(),
            })
            .collect())
    }

    /// Opens an issue; returns its number. Never repeated after a server or network error (a
    /// second issue would appear), like a comment.
    pub async fn create_issue(
        &self,
        repo: &RepoName,
        title: &str,
        body: &str,
    ) -> Result<PrNumber, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Wire {
            number: u64,
        }
        let what = format!("POST issue {title:?} in {repo}");
        let req = Request::write(
            Method::POST,
            format!("/repos/{repo}/issues"),
            json!({ "title": title, "body": body }),
            what.clone(),
            Repeat::IfNotProcessed,
        );
        let wire: Wire = self.send_ok(repo, &req).await?.json(&what)?;
        Ok(PrNumber(wire.number))
    }

    /// Closes an issue (repeating it is harmless).
    pub async fn close_issue(&self, repo: &RepoName, issue: PrNumber) -> Result<(), GitHubError> {
        let what = format!("PATCH close issue {repo}{issue}");
        let req = Request::write(
            Method::PATCH,
            format!("/repos/{repo}/issues/{}", issue.0),
            json!({ "state": "closed" }),
            what,
            Repeat::Safe,
        );
        self.send_ok(repo, &req).await?;
        Ok(())
    }
}
