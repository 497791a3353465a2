//! Issues that are not pull requests: create, list, read, close, as GitHub's issues API does
//! (tickbot's scheduler keeps one issue per failing refresh). On GitHub a pull request is an
//! issue too: the list shows both (pull requests with a `pull_request` key), `/issues/{n}`
//! answers for both, and their numbers share one sequence. The forge sends no `issues`
//! webhooks (tickbot does not subscribe to them); comments on issues are sent as GitHub does.

use super::api::{
    ApiError, ApiResult, Params, RepoPath, RepoRoutes, ok, opt_str, paginate, params, parse_body,
    parse_state, required_str, with_link,
};
use super::state::{ForgeError, Issue, PullState};
use super::{Forge, json, lock};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;
use tickbot_syntax::ids::RepoName;

pub(crate) fn routes() -> Router<Forge> {
    Router::new().repo_route("/issues", get(list_issues).post(create_issue))
}

/// `GET /repos/{o}/{r}/issues`: issues and pull requests, newest first; `state` (`open` by
/// default, `closed`, `all`) and `creator` filter as on GitHub.
async fn list_issues(State(f): State<Forge>, RepoPath(repo): RepoPath, q: Params) -> ApiResult {
    let q = params(q)?;
    let want = q.get("state").map_or("open", String::as_str);
    let creator = q.get("creator");
    let all = {
        let st = f.state();
        let r = st.repo(&repo)?;
        let urls = &f.inner.urls;
        let wanted = |state: PullState, author: &str| {
            (want == "all" || state.as_str() == want) && creator.is_none_or(|c| c == author)
        };
        // Only what is listed is rendered; newest first, as on GitHub.
        let mut listed: Vec<(u64, Value)> = Vec::new();
        for p in r.pulls.values().filter(|p| wanted(p.state, &p.author)) {
            listed.push((p.number.0, json::issue(urls, &st, r, p)));
        }
        for i in r.issues.values().filter(|i| wanted(i.state, &i.author)) {
            listed.push((i.number, json::plain_issue(urls, &st, r, i)));
        }
        listed.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        listed.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    };
    let (page, link) = paginate(&f, &format!("/repos/{repo}/issues"), &q, all);
    with_link(Value::Array(page), link)
}

async fn create_issue(State(f): State<Forge>, RepoPath(repo): RepoPath, body: Bytes) -> ApiResult {
    let v = parse_body(&body)?;
    let title = required_str(&v, "Issue", "title")?;
    let text = opt_str(&v, "Issue", "body")?.unwrap_or_default();
    let n = f.create_issue(&repo, &title, &text, f.bot_login())?;
    ok(StatusCode::CREATED, plain_json(&f, &repo, n)?)
}

/// The issue `n` (not a pull request) as the API shows it.
pub(crate) fn plain_json(f: &Forge, repo: &RepoName, n: u64) -> Result<Value, ApiError> {
    super::api::render(f, repo, |urls, st, r| {
        Ok(json::plain_issue(urls, st, r, r.issue(n)?))
    })
}

/// `PATCH /issues/{n}` of an issue that is not a pull request: title, body, state.
pub(crate) fn patch_plain(f: &Forge, repo: &RepoName, n: u64, v: &Value) -> ApiResult {
    let state = parse_state(v)?;
    let (title, body) = (opt_str(v, "Issue", "title")?, opt_str(v, "Issue", "body")?);
    {
        let mut st = f.state();
        let issue = st
            .repo_mut(repo)?
            .issues
            .get_mut(&n)
            .ok_or(ForgeError::NotFound)?;
        let now = Utc::now();
        if let Some(title) = title {
            issue.title = title;
        }
        if let Some(body) = body {
            issue.body = body;
        }
        if let Some(state) = state.filter(|s| *s != issue.state) {
            issue.state = state;
            issue.closed_at = (state == PullState::Closed).then_some(now);
        }
        issue.updated_at = now;
    }
    ok(StatusCode::OK, plain_json(f, repo, n)?)
}

impl Forge {
    /// Opens an issue; returns its number.
    pub fn create_issue(
        &self,
        repo: &RepoName,
        title: &str,
        body: &str,
        author: &str,
    ) -> Result<u64, ForgeError> {
        if title.trim().is_empty() {
            return Err(ForgeError::Validation {
                resource: "Issue",
                field: "title",
                code: "missing_field",
                message: String::new(),
            });
        }
        let mut st = self.state();
        let id = st.next_id();
        let r = st.repo_mut(repo)?;
        let number = r.next_number();
        let now = Utc::now();
        r.issues.insert(
            number,
            Issue {
                number,
                id,
                title: title.to_string(),
                body: body.to_string(),
                author: author.to_string(),
                state: PullState::Open,
                created_at: now,
                updated_at: now,
                closed_at: None,
            },
        );
        Ok(number)
    }

    /// Every issue of `repo` that is not a pull request, by number.
    pub fn issues(&self, repo: &RepoName) -> Vec<Issue> {
        let st = lock(&self.inner.state);
        st.repo(repo)
            .map(|r| r.issues.values().cloned().collect())
            .unwrap_or_default()
    }
}
