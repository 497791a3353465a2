//! The contents API (`file_at` reads files through it) and git trees: the identity of an
//! `[images.*]` context directory.

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
        let Some(value) = self.contents(repo, parent, git_ref, &what).await? else {
            return Ok(None);
        };
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

    /// `GET …/contents/<path>?ref=<git_ref>`: a file's object, a directory's array of entries,
    /// or `None` when GitHub answers 404 (no such path, ref or visible repository).
    pub(super) async fn contents(
        &self,
        repo: &RepoName,
        path: &str,
        git_ref: &str,
        what: &str,
    ) -> Result<Option<serde_json::Value>, GitHubError> {
        let encoded_path = path
            .trim_matches('/')
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| urlencoding::encode(segment).into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let req = Request::get(
            format!(
                "/repos/{repo}/contents/{encoded_path}?ref={}",
                urlencoding::encode(git_ref)
            ),
            what.to_string(),
        );
        let resp = self.send(Scope::Repo(repo), &req).await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.ok(what)?.json(what).map(Some)
    }
}
