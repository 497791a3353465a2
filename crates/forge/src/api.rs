//! The REST subset of GitHub's API that tickbot uses: repositories, pull requests, issue
//! comments, reactions and labels (commits, statuses, check runs, contents and permissions are
//! in [`super::api_commits`]), plus the middleware every REST call passes: call log, injected
//! latency and faults, and token authentication. Paths outside the API go to git's smart HTTP.

use super::api_commits;
use super::faults::{ApiCall, Injected, RateLimitKind};
use super::git_http::{fallback, git_path};
use super::ops::PullPatch;
use super::state::{ForgeError, PullState, State as ForgeState};
use super::{Forge, control, json};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use tickbot_syntax::ids::{CommitSha, PrNumber, RepoName};

pub(crate) type ApiResult = Result<Response, ApiError>;
pub(crate) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// A request the API refuses, rendered as GitHub's JSON error.
#[derive(Debug)]
pub(crate) enum ApiError {
    Forge(ForgeError),
    Status(StatusCode, String),
}

impl From<ForgeError> for ApiError {
    fn from(e: ForgeError) -> Self {
        ApiError::Forge(e)
    }
}

impl ApiError {
    pub fn not_found() -> Self {
        ApiError::Forge(ForgeError::NotFound)
    }
    pub fn bad_json() -> Self {
        ApiError::Status(StatusCode::BAD_REQUEST, "Problems parsing JSON".into())
    }
    pub fn missing(resource: &'static str, field: &'static str) -> Self {
        ApiError::Forge(ForgeError::Validation {
            resource,
            field,
            code: "missing_field",
            message: String::new(),
        })
    }
}

pub(crate) fn gh_error(status: StatusCode, message: &str, extra: Value) -> Response {
    let mut body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.as_u16().to_string(),
    });
    super::webhooks::merge(&mut body, extra);
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Status(status, message) => gh_error(status, &message, json!({})),
            ApiError::Forge(ForgeError::NotFound) => {
                gh_error(StatusCode::NOT_FOUND, "Not Found", json!({}))
            }
            ApiError::Forge(ForgeError::Validation {
                resource,
                field,
                code,
                message,
            }) => {
                let mut error = json!({ "resource": resource, "code": code, "field": field });
                if !message.is_empty() {
                    error["message"] = json!(message);
                }
                let extra = json!({ "errors": [error] });
                gh_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed", extra)
            }
            ApiError::Forge(ForgeError::Unprocessable(message)) => {
                gh_error(StatusCode::UNPROCESSABLE_ENTITY, &message, json!({}))
            }
            ApiError::Forge(ForgeError::NotMergeable(message)) => {
                gh_error(StatusCode::METHOD_NOT_ALLOWED, &message, json!({}))
            }
            ApiError::Forge(ForgeError::HeadModified(message)) => {
                gh_error(StatusCode::CONFLICT, &message, json!({}))
            }
            ApiError::Forge(ForgeError::Git(e)) => {
                tracing::error!(error = %e, "forge git failure");
                gh_error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", json!({}))
            }
        }
    }
}

pub(crate) fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

pub(crate) fn repo_name(owner: &str, name: &str) -> Result<RepoName, ApiError> {
    RepoName::new(owner, name).map_err(|_| ApiError::not_found())
}

pub(crate) fn number(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found())
}

/// A `/repos/{owner}/{repo}` path's repository; a name that is not one is a 404.
pub(crate) struct RepoPath(pub RepoName);

impl<S: Send + Sync> FromRequestParts<S> for RepoPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path((o, r)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(RepoPath(
            repo_name(&o, &r).map_err(IntoResponse::into_response)?,
        ))
    }
}

/// A `/repos/{owner}/{repo}/…/{n}` path's repository and its last segment parsed as `T`
/// (a number, a SHA, a login); a name or segment that does not parse is a 404.
pub(crate) struct RepoAnd<T>(pub RepoName, pub T);

impl<S: Send + Sync, T: std::str::FromStr> FromRequestParts<S> for RepoAnd<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path((o, r, last)) = Path::<(String, String, String)>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let parsed = || -> Result<Self, ApiError> {
            let last = last.parse().map_err(|_| ApiError::not_found())?;
            Ok(RepoAnd(repo_name(&o, &r)?, last))
        };
        parsed().map_err(IntoResponse::into_response)
    }
}

/// Routes under `/repos/{owner}/{repo}`: `suffix` is the rest of the path.
pub(crate) trait RepoRoutes {
    fn repo_route(self, suffix: &str, route: MethodRouter<Forge>) -> Self;
}

impl RepoRoutes for Router<Forge> {
    fn repo_route(self, suffix: &str, route: MethodRouter<Forge>) -> Self {
        self.route(&format!("/repos/{{owner}}/{{repo}}{suffix}"), route)
    }
}

pub(crate) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::bad_json())?;
    if v.is_object() || v.is_array() {
        Ok(v)
    } else {
        Err(ApiError::bad_json())
    }
}

/// An optional string field; a value of the wrong type is a 422 like GitHub's.
pub(crate) fn opt_str(
    v: &Value,
    resource: &'static str,
    field: &'static str,
) -> Result<Option<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::Forge(ForgeError::Validation {
            resource,
            field,
            code: "invalid",
            message: format!("{field} is not a string"),
        })),
    }
}

/// A string field the resource cannot do without: absent is a 422 `missing_field`.
pub(crate) fn required_str(
    v: &Value,
    resource: &'static str,
    field: &'static str,
) -> Result<String, ApiError> {
    opt_str(v, resource, field)?.ok_or(ApiError::missing(resource, field))
}

pub(crate) fn params(q: Params) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::Status(StatusCode::BAD_REQUEST, e.body_text()))
}

/// Builds the forge's router: REST, control API, and git as the fallback.
pub(crate) fn router(forge: Forge) -> Router {
    Router::new()
        .repo_route("", get(get_repo))
        .repo_route("/pulls", get(list_pulls).post(create_pull))
        .repo_route("/pulls/{n}", get(get_pull).patch(patch_pull))
        .repo_route("/pulls/{n}/files", get(list_pull_files))
        .repo_route("/pulls/{n}/merge", put(merge_pull))
        .repo_route("/issues/{n}", get(get_issue).patch(patch_issue))
        .repo_route(
            "/issues/{n}/comments",
            get(list_comments).post(create_comment),
        )
        .repo_route(
            "/issues/comments/{id}",
            get(get_comment).patch(patch_comment),
        )
        .repo_route("/issues/comments/{id}/reactions", post(create_reaction))
        .repo_route(
            "/issues/{n}/labels",
            get(list_labels).post(add_labels).delete(clear_labels),
        )
        .repo_route(
            "/issues/{n}/labels/{name}",
            axum::routing::delete(remove_label),
        )
        .merge(api_commits::routes())
        .merge(super::issues::routes())
        .merge(super::app::routes())
        .nest("/_forge", control::routes())
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(forge.clone(), rest_layer))
        .with_state(forge)
}

/// Call log, latency, faults and authentication, for REST calls only.
async fn rest_layer(State(forge): State<Forge>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // `/repos/…` is always the REST API (a repository may be named `x.git`): only other paths
    // can be git's smart HTTP.
    let rest = path.starts_with("/repos/")
        || path.starts_with("/orgs/")
        || path.starts_with("/app/")
        || path.starts_with("/installation/")
        || path == "/user";
    if (!rest && git_path(&path).is_some()) || path.starts_with("/_forge/") {
        return next.run(req).await;
    }
    // GitHub finishes what it was asked even when the client goes away: the call runs in a
    // task of its own, so a client killed mid-call does not cancel it halfway (PR stored,
    // webhook never sent).
    tokio::spawn(rest_call(forge, req, next, path))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "forge REST call panicked");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
}

async fn rest_call(forge: Forge, req: Request, next: Next, path: String) -> Response {
    let method = req.method().to_string();
    let path_q = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.to_string());
    if let Some(hook) = forge.faults().take_hook(&method, &path) {
        hook().await;
    }
    let credential = super::limits::credential(req.headers());
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let http_method = req.method().clone();
    let latency = forge.faults().current_latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = if let Some(fault) = forge.faults().take(&method, &path) {
        injected(fault)
    } else if let Some(refusal) = authenticate(&forge, &path, req.headers()) {
        refusal
    } else if let Some(spent) = super::limits::refuse_if_spent(&forge.inner.limits, &credential) {
        spent
    } else {
        let resp = next.run(req).await;
        super::limits::conditional(&http_method, if_none_match.as_ref(), resp).await
    };
    let mut resp = resp;
    super::limits::account(&forge.inner.limits, &credential, &mut resp);
    tracing::debug!(%method, path = %path_q, status = resp.status().as_u16(), "forge api call");
    forge.inner.calls.record(ApiCall {
        method,
        path: path_q,
        status: resp.status().as_u16(),
        at: chrono::Utc::now(),
    });
    resp
}

/// `None` when the bot's token (or a valid installation token of the app, or for the app's own
/// endpoints its JWT) was given, else GitHub's 401.
fn authenticate(forge: &Forge, path: &str, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("token ")
                .or_else(|| v.strip_prefix("Bearer "))
                .or_else(|| v.strip_prefix("bearer "))
        });
    let app = forge.inner.opts.app.as_ref();
    let message = match (given.map(str::trim), app) {
        (Some(t), Some(app)) if super::app::wants_jwt(path) => {
            match super::app::check_jwt(app, t) {
                Ok(()) => return None,
                Err(m) => m,
            }
        }
        (Some(t), _) if t == forge.bot_token() => return None,
        (Some(t), Some(_)) if forge.installation_token_valid(t) => return None,
        (Some(_), _) => "Bad credentials",
        (None, _) => "Requires authentication",
    };
    Some(gh_error(StatusCode::UNAUTHORIZED, message, json!({})))
}

fn injected(fault: Injected) -> Response {
    match fault {
        Injected::Error(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            gh_error(status, "Server Error", json!({}))
        }
        Injected::RateLimited(RateLimitKind::Primary { reset_after_secs }) => {
            let mut resp = gh_error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
                json!({}),
            );
            let reset = chrono::Utc::now() + chrono::Duration::seconds(reset_after_secs as i64);
            let spent = super::limits::Left {
                limit: 5000,
                used: 5000,
                reset,
            };
            super::limits::add_headers(resp.headers_mut(), &spent);
            resp
        }
        Injected::RateLimited(RateLimitKind::Secondary { retry_after_secs }) => {
            let mut resp = gh_error(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                json!({}),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            resp
        }
    }
}

/// `per_page`/`page` slicing with GitHub's `Link` header.
pub(crate) fn paginate<T>(
    forge: &Forge,
    path: &str,
    q: &HashMap<String, String>,
    items: Vec<T>,
) -> (Vec<T>, Option<String>) {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let mut others: Vec<(&String, &String)> = q.iter().filter(|(k, _)| *k != "page").collect();
    others.sort();
    let url = |p: usize| {
        let mut query: Vec<String> = others
            .iter()
            .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
            .collect();
        if !q.contains_key("per_page") {
            query.push(format!("per_page={per_page}"));
        }
        query.push(format!("page={p}"));
        format!("<{}{path}?{}>", forge.api_url(), query.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    let slice = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    (slice, (!links.is_empty()).then(|| links.join(", ")))
}

pub(crate) fn with_link(body: Value, link: Option<String>) -> ApiResult {
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

pub(crate) fn render<R>(
    forge: &Forge,
    repo: &RepoName,
    f: impl FnOnce(&json::Urls, &ForgeState, &super::state::Repo) -> Result<R, ForgeError>,
) -> Result<R, ApiError> {
    let st = forge.state();
    let r = st.repo(repo)?;
    Ok(f(&forge.inner.urls, &st, r)?)
}

async fn get_repo(State(f): State<Forge>, RepoPath(repo): RepoPath) -> ApiResult {
    ok(
        StatusCode::OK,
        render(&f, &repo, |u, _, r| Ok(json::repository(u, r)))?,
    )
}

async fn list_pulls(State(f): State<Forge>, RepoPath(repo): RepoPath, q: Params) -> ApiResult {
    let q = params(q)?;
    let want = q.get("state").map_or("open", String::as_str);
    let head = q
        .get("head")
        .map(|h| h.split_once(':').map_or(h.as_str(), |x| x.1));
    let base = q.get("base");
    let pulls = render(&f, &repo, |u, st, r| {
        // GitHub's default order: newest first.
        Ok(r.pulls
            .values()
            .rev()
            .filter(|p| want == "all" || p.state.as_str() == want)
            .filter(|p| head.is_none_or(|h| p.head_ref == h))
            .filter(|p| base.is_none_or(|b| &p.base_ref == b))
            .map(|p| json::pull(u, st, r, p))
            .collect::<Vec<_>>())
    })?;
    let (page, link) = paginate(&f, &format!("/repos/{repo}/pulls"), &q, pulls);
    with_link(Value::Array(page), link)
}

fn pull_json(f: &Forge, repo: &RepoName, n: u64) -> Result<Value, ApiError> {
    render(f, repo, |u, st, r| Ok(json::pull(u, st, r, r.pull(n)?)))
}

/// Whether `n` is an issue that is not a pull request.
fn is_plain_issue(f: &Forge, repo: &RepoName, n: u64) -> bool {
    f.state()
        .repo(repo)
        .is_ok_and(|r| r.issues.contains_key(&n))
}

fn issue_json(f: &Forge, repo: &RepoName, n: u64) -> Result<Value, ApiError> {
    render(f, repo, |u, st, r| Ok(json::issue(u, st, r, r.pull(n)?)))
}

async fn get_pull(State(f): State<Forge>, RepoAnd(repo, n): RepoAnd<u64>) -> ApiResult {
    ok(StatusCode::OK, pull_json(&f, &repo, n)?)
}

/// `GET /repos/{o}/{r}/pulls/{n}/files`: the changed files, paginated like GitHub.
async fn list_pull_files(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    q: Params,
) -> ApiResult {
    let q = params(q)?;
    let (base, head) = {
        let st = f.state();
        let rp = st.repo(&repo)?;
        let pr = rp.pull(n)?;
        let base = rp
            .branches
            .get(&pr.base_ref)
            .cloned()
            .ok_or_else(ApiError::not_found)?;
        (base, pr.head_sha.clone())
    };
    let files = f
        .inner
        .git
        .changed_files(&repo, &base, &head)
        .await
        .map_err(|e| ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let all: Vec<Value> = files
        .into_iter()
        .map(|(name, status)| json!({ "filename": name, "status": status }))
        .collect();
    let path = format!("/repos/{repo}/pulls/{}/files", n);
    let (page, link) = paginate(&f, &path, &q, all);
    with_link(Value::Array(page), link)
}

async fn get_issue(State(f): State<Forge>, RepoAnd(repo, n): RepoAnd<u64>) -> ApiResult {
    if is_plain_issue(&f, &repo, n) {
        return ok(StatusCode::OK, super::issues::plain_json(&f, &repo, n)?);
    }
    ok(StatusCode::OK, issue_json(&f, &repo, n)?)
}

async fn create_pull(State(f): State<Forge>, RepoPath(repo): RepoPath, body: Bytes) -> ApiResult {
    let v = parse_body(&body)?;
    let field = |name| opt_str(&v, "PullRequest", name);
    let head = required_str(&v, "PullRequest", "head")?;
    let base = required_str(&v, "PullRequest", "base")?;
    let title = required_str(&v, "PullRequest", "title")?;
    let text = field("body")?.unwrap_or_default();
    let draft = v.get("draft").and_then(Value::as_bool).unwrap_or(false);
    let n = f
        .create_pull(&repo, &head, &base, &title, &text, draft, f.bot_login())
        .await?;
    ok(StatusCode::CREATED, pull_json(&f, &repo, n.0)?)
}

/// An issue's (or pull request's) `state` field of a PATCH: `open`, `closed` or absent.
pub(crate) fn parse_state(v: &Value) -> Result<Option<PullState>, ApiError> {
    match opt_str(v, "Issue", "state")?.as_deref() {
        None => Ok(None),
        Some("open") => Ok(Some(PullState::Open)),
        Some("closed") => Ok(Some(PullState::Closed)),
        Some(_) => Err(ApiError::Forge(ForgeError::Validation {
            resource: "Issue",
            field: "state",
            code: "invalid",
            message: String::new(),
        })),
    }
}

fn parse_patch(v: &Value) -> Result<PullPatch, ApiError> {
    let state = parse_state(v)?;
    Ok(PullPatch {
        title: opt_str(v, "Issue", "title")?,
        body: opt_str(v, "Issue", "body")?,
        state,
        base: opt_str(v, "PullRequest", "base")?,
    })
}

async fn patch_pull(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let patch = parse_patch(&parse_body(&body)?)?;
    f.update_pull(&repo, PrNumber(n), patch, f.bot_login())?;
    ok(StatusCode::OK, pull_json(&f, &repo, n)?)
}

/// `PUT /pulls/{n}/merge`: a merge commit onto the base, guarded by `sha` when given.
async fn merge_pull(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = if body.is_empty() {
        json!({})
    } else {
        parse_body(&body)?
    };
    let sha = v
        .get("sha")
        .and_then(Value::as_str)
        .map(|s| CommitSha(s.to_string()));
    let merged = f
        .merge_pr(&repo, PrNumber(n), sha.as_ref(), f.bot_login())
        .await?;
    let body =
        json!({ "sha": merged.0, "merged": true, "message": "Pull Request successfully merged" });
    ok(StatusCode::OK, body)
}

async fn patch_issue(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = parse_body(&body)?;
    if is_plain_issue(&f, &repo, n) {
        return super::issues::patch_plain(&f, &repo, n, &v);
    }
    let mut patch = parse_patch(&v)?;
    patch.base = None; // not an issue field
    f.update_pull(&repo, PrNumber(n), patch, f.bot_login())?;
    ok(StatusCode::OK, issue_json(&f, &repo, n)?)
}

async fn list_comments(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    q: Params,
) -> ApiResult {
    let q = params(q)?;
    let all = render(&f, &repo, |u, st, r| {
        if !r.has_issue_or_pull(n) {
            return Err(ForgeError::NotFound);
        }
        Ok(r.comments
            .iter()
            .filter(|c| c.issue.0 == n)
            .map(|c| json::comment(u, st, r, c))
            .collect::<Vec<_>>())
    })?;
    let (page, link) = paginate(&f, &format!("/repos/{repo}/issues/{n}/comments"), &q, all);
    with_link(Value::Array(page), link)
}

fn comment_json(f: &Forge, repo: &RepoName, id: u64) -> Result<Value, ApiError> {
    render(f, repo, |u, st, r| {
        let c = r
            .comments
            .iter()
            .find(|c| c.id == id)
            .ok_or(ForgeError::NotFound)?;
        Ok(json::comment(u, st, r, c))
    })
}

async fn create_comment(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = parse_body(&body)?;
    let text = required_str(&v, "IssueComment", "body")?;
    let id = f.add_comment(&repo, PrNumber(n), &text, f.bot_login())?;
    ok(StatusCode::CREATED, comment_json(&f, &repo, id)?)
}

async fn get_comment(State(f): State<Forge>, RepoAnd(repo, id): RepoAnd<u64>) -> ApiResult {
    ok(StatusCode::OK, comment_json(&f, &repo, id)?)
}

async fn patch_comment(
    State(f): State<Forge>,
    RepoAnd(repo, id): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = parse_body(&body)?;
    let text = required_str(&v, "IssueComment", "body")?;
    f.edit_comment(&repo, id, &text, f.bot_login())?;
    ok(StatusCode::OK, comment_json(&f, &repo, id)?)
}

async fn create_reaction(
    State(f): State<Forge>,
    RepoAnd(repo, id): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = parse_body(&body)?;
    let content = required_str(&v, "Reaction", "content")?;
    let (reaction, created) = f.react(&repo, id, &content, f.bot_login())?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    ok(status, json::reaction(&f.inner.urls, &reaction))
}

fn labels_json(f: &Forge, repo: &RepoName, names: &[String]) -> Result<Value, ApiError> {
    render(f, repo, |u, _, r| {
        Ok(Value::Array(
            names.iter().map(|l| json::label(u, r, l)).collect(),
        ))
    })
}

async fn list_labels(State(f): State<Forge>, RepoAnd(repo, n): RepoAnd<u64>) -> ApiResult {
    let names = render(&f, &repo, |_, _, r| Ok(r.pull(n)?.labels.clone()))?;
    ok(StatusCode::OK, labels_json(&f, &repo, &names)?)
}

async fn add_labels(
    State(f): State<Forge>,
    RepoAnd(repo, n): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = parse_body(&body)?;
    // GitHub takes `{"labels": [...]}` or a bare array.
    let list = v.get("labels").unwrap_or(&v);
    let names: Vec<String> = list
        .as_array()
        .ok_or(ApiError::missing("Label", "labels"))?
        .iter()
        .map(|l| l.as_str().or_else(|| l.get("name").and_then(Value::as_str)))
        .collect::<Option<Vec<&str>>>()
        .ok_or(ApiError::bad_json())?
        .into_iter()
        .map(str::to_string)
        .collect();
    let all = f.add_labels(&repo, PrNumber(n), &names)?;
    ok(StatusCode::OK, labels_json(&f, &repo, &all)?)
}

async fn remove_label(
    State(f): State<Forge>,
    Path((o, r, n, name)): Path<(String, String, String, String)>,
) -> ApiResult {
    let (repo, n) = (repo_name(&o, &r)?, number(&n)?);
    let left = f.remove_label(&repo, PrNumber(n), Some(&name))?;
    ok(StatusCode::OK, labels_json(&f, &repo, &left)?)
}

async fn clear_labels(State(f): State<Forge>, RepoAnd(repo, n): RepoAnd<u64>) -> ApiResult {
    f.remove_label(&repo, PrNumber(n), None)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
