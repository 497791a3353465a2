//! Git trees through the contents API: the identity of an `[images.*]` context directory.

use super::request::Request;
use super::{GitHub, GitHubError, Scope, invalid};
use crate::ids::RepoName;
use hyper::StatusCode;

impl GitHub {
    /// The git tree id of directory `path` at `git_ref`, or `None` when there is no such
    /// directory. GitHub lists a directory's entries with their object ids, so the tree id
    /// of `a/b` is the id of entry `b` in the listing of `a`.
    pub async fn tree_id(
        &self,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<String>, GitHubError> {
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            #[serde(rename = "type")]
            kind: String,
            sha: String,
        }
        let what = format!("GET tree {path} at {git_ref} in {repo}");
        let path = path.trim_matches('/');
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let encoded: Vec<String> = parent
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| urlencoding::encode(s).into_owned())
            .collect();
        let req = Request::get(
            format!(
                "/repos/{repo}/contents/{}?ref={}",
                encoded.join("/"),
                urlencoding::encode(git_ref)
            ),
            what.clone(),
        );
        let resp = self.send(Scope::Repo(repo), &req).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let value: serde_json::Value = resp.ok(&what)?.json(&what)?;
        if !value.is_array() {
            return Ok(None); // the parent is a file
        }
        let entries: Vec<Entry> =
            serde_json::from_value(value).map_err(|e| invalid(&what, e.to_string()))?;
        Ok(entries
            .into_iter()
            .find(|e| e.name == name && e.kind == "dir")
            .map(|e| e.sha))
    }
}
