//! The control API under `/_forge/...`, for driving a standalone forge (`tickbot forge`) by hand
//! or from scripts. Each route maps onto the same [`Forge`] method a Rust test would call; it is
//! not authenticated and not in the API call log.
//!
//! | route | does |
//! |---|---|
//! | `POST /_forge/repos` `{repo, default_branch?, files?:{path:content}}` | create a repository |
//! | `POST /_forge/repos/{o}/{r}/commits` `{branch, from?, files, message?, author}` | commit and push |
//! | `POST /_forge/repos/{o}/{r}/pulls` `{head, base?, title, body?, author}` | open a PR |
//! | `PATCH /_forge/repos/{o}/{r}/pulls/{n}` `{body?, state?, editor}` | edit, close, reopen |
//! | `POST /_forge/repos/{o}/{r}/pulls/{n}/comments` `{body, author}` | comment |
//! | `PUT /_forge/repos/{o}/{r}/collaborators/{user}` `{permission}` | add a collaborator |
//! | `PUT /_forge/orgs/{org}/members/{user}` | add an org member |
//! | `PUT /_forge/webhook` `{url, secret}` | set the webhook target (sends `ping`) |
//! | `POST /_forge/faults` `{errors?:{n,status,method?,path_prefix?}, rate_limit?:{n,kind,…}, latency_ms?}`, `DELETE` clears | faults |
//! | `GET`/`DELETE /_forge/calls` | the API call log |
//! | `GET /_forge/deliveries`, `POST /_forge/deliveries/{id}/redeliver` | webhook deliveries |

use super::Forge;
use super::faults::{CallMatch, RateLimitKind};
use super::ops::PullPatch;
use super::state::PullState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tickbot_syntax::ids::{PrNumber, RepoName};

type Reply = Result<Response, (StatusCode, axum::Json<Value>)>;

fn fail(status: StatusCode, e: impl std::fmt::Display) -> (StatusCode, axum::Json<Value>) {
    (status, axum::Json(json!({ "message": e.to_string() })))
}

fn done(v: Value) -> Reply {
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

fn body<T: for<'de> Deserialize<'de>>(b: &Bytes) -> Result<T, (StatusCode, axum::Json<Value>)> {
    serde_json::from_slice(b).map_err(|e| fail(StatusCode::BAD_REQUEST, e))
}

fn repo(o: &str, r: &str) -> Result<RepoName, (StatusCode, axum::Json<Value>)> {
    RepoName::new(o, r).map_err(|e| fail(StatusCode::NOT_FOUND, e))
}

fn unprocessable(e: anyhow::Error) -> (StatusCode, axum::Json<Value>) {
    fail(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}"))
}

pub(crate) fn routes() -> Router<Forge> {
    Router::new()
        .route("/repos", post(create_repo))
        .route("/repos/{owner}/{repo}/commits", post(commit))
        .route("/repos/{owner}/{repo}/pulls", post(open_pr))
        .route(
            "/repos/{owner}/{repo}/pulls/{n}",
            axum::routing::patch(edit_pr),
        )
        .route("/repos/{owner}/{repo}/pulls/{n}/comments", post(comment))
        .route(
            "/repos/{owner}/{repo}/collaborators/{user}",
            put(collaborator),
        )
        .route("/orgs/{org}/members/{user}", put(org_member))
        .route("/webhook", put(webhook))
        .route("/faults", post(faults).delete(clear_faults))
        .route("/calls", get(calls).delete(clear_calls))
        .route("/deliveries", get(deliveries))
        .route("/deliveries/{id}/redeliver", post(redeliver))
}

#[derive(Deserialize)]
struct NewRepo {
    repo: String,
    #[serde(default = "main")]
    default_branch: String,
    #[serde(default)]
    files: BTreeMap<String, String>,
}

fn main() -> String {
    "main".into()
}

fn file_list(files: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect()
}

async fn create_repo(State(f): State<Forge>, b: Bytes) -> Reply {
    let req: NewRepo = body(&b)?;
    let name: RepoName = req
        .repo
        .parse()
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    let sha = f
        .create_repo(&name, &req.default_branch, &file_list(&req.files))
        .await
        .map_err(unprocessable)?;
    done(json!({ "sha": sha, "clone_url": f.clone_url(&name) }))
}

#[derive(Deserialize)]
struct NewCommit {
    branch: String,
    from: Option<String>,
    files: BTreeMap<String, String>,
    #[serde(default)]
    message: Option<String>,
    author: String,
}

async fn commit(State(f): State<Forge>, Path((o, r)): Path<(String, String)>, b: Bytes) -> Reply {
    let req: NewCommit = body(&b)?;
    let message = req.message.unwrap_or_else(|| "Update files".into());
    let sha = f
        .commit_files(
            &repo(&o, &r)?,
            &req.branch,
            req.from.as_deref(),
            &file_list(&req.files),
            &message,
            &req.author,
        )
        .await
        .map_err(unprocessable)?;
    done(json!({ "sha": sha }))
}

#[derive(Deserialize)]
struct NewPull {
    head: String,
    base: Option<String>,
    title: String,
    #[serde(default)]
    body: String,
    author: String,
}

async fn open_pr(State(f): State<Forge>, Path((o, r)): Path<(String, String)>, b: Bytes) -> Reply {
    let req: NewPull = body(&b)?;
    let name = repo(&o, &r)?;
    let base = match req.base {
        Some(b) => b,
        None => f
            .state()
            .repo(&name)
            .map(|r| r.default_branch.clone())
            .map_err(|e| fail(StatusCode::NOT_FOUND, e))?,
    };
    let n = f
        .open_pr(&name, &req.head, &base, &req.title, &req.body, &req.author)
        .await
        .map_err(unprocessable)?;
    done(json!({ "number": n.0 }))
}

#[derive(Deserialize)]
struct EditPull {
    body: Option<String>,
    title: Option<String>,
    state: Option<String>,
    editor: String,
}

async fn edit_pr(
    State(f): State<Forge>,
    Path((o, r, n)): Path<(String, String, u64)>,
    b: Bytes,
) -> Reply {
    let req: EditPull = body(&b)?;
    let state = match req.state.as_deref() {
        None => None,
        Some("open") => Some(PullState::Open),
        Some("closed") => Some(PullState::Closed),
        Some(other) => return Err(fail(StatusCode::BAD_REQUEST, format!("bad state {other}"))),
    };
    let patch = PullPatch {
        title: req.title,
        body: req.body,
        state,
        base: None,
    };
    f.update_pull(&repo(&o, &r)?, PrNumber(n), patch, &req.editor)
        .map_err(|e| unprocessable(e.into()))?;
    done(json!({}))
}

#[derive(Deserialize)]
struct NewComment {
    body: String,
    author: String,
}

async fn comment(
    State(f): State<Forge>,
    Path((o, r, n)): Path<(String, String, u64)>,
    b: Bytes,
) -> Reply {
    let req: NewComment = body(&b)?;
    let id = f
        .comment(&repo(&o, &r)?, PrNumber(n), &req.body, &req.author)
        .await
        .map_err(unprocessable)?;
    done(json!({ "id": id }))
}

#[derive(Deserialize)]
struct Permission {
    permission: String,
}

async fn collaborator(
    State(f): State<Forge>,
    Path((o, r, user)): Path<(String, String, String)>,
    b: Bytes,
) -> Reply {
    let req: Permission = body(&b)?;
    f.add_collaborator(&repo(&o, &r)?, &user, &req.permission);
    done(json!({}))
}

async fn org_member(State(f): State<Forge>, Path((org, user)): Path<(String, String)>) -> Reply {
    f.add_org_member(&org, &user);
    done(json!({}))
}

#[derive(Deserialize)]
struct Hook {
    url: String,
    secret: String,
}

async fn webhook(State(f): State<Forge>, b: Bytes) -> Reply {
    let req: Hook = body(&b)?;
    f.set_webhook(&req.url, &req.secret).await;
    done(json!({}))
}

#[derive(Deserialize)]
struct ErrorFault {
    n: u32,
    status: u16,
    #[serde(flatten)]
    matching: CallMatch,
}

#[derive(Deserialize)]
struct RateFault {
    n: u32,
    #[serde(flatten)]
    kind: RateLimitKind,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path_prefix: Option<String>,
}

#[derive(Deserialize)]
struct FaultRequest {
    errors: Option<ErrorFault>,
    rate_limit: Option<RateFault>,
    latency_ms: Option<u64>,
}

async fn faults(State(f): State<Forge>, b: Bytes) -> Reply {
    let req: FaultRequest = body(&b)?;
    if let Some(e) = req.errors {
        f.faults().inject_errors(e.n, e.status, e.matching);
    }
    if let Some(r) = req.rate_limit {
        let matching = CallMatch {
            method: r.method,
            path_prefix: r.path_prefix,
        };
        f.faults().rate_limit(r.n, r.kind, matching);
    }
    if let Some(ms) = req.latency_ms {
        f.faults().latency(Duration::from_millis(ms));
    }
    done(json!({}))
}

async fn clear_faults(State(f): State<Forge>) -> Reply {
    f.faults().clear();
    done(json!({}))
}

async fn calls(State(f): State<Forge>) -> Reply {
    done(json!(f.api_calls()))
}

async fn clear_calls(State(f): State<Forge>) -> Reply {
    f.clear_api_calls();
    done(json!({}))
}

async fn deliveries(State(f): State<Forge>) -> Reply {
    done(json!(f.deliveries()))
}

async fn redeliver(State(f): State<Forge>, Path(id): Path<String>) -> Reply {
    let status = f.redeliver(&id).await.map_err(unprocessable)?;
    done(json!({ "status": status }))
}
