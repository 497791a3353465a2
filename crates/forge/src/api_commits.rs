//! REST routes about commits and people: contents, commit statuses (and the combined status),
//! check runs, collaborator permissions and org membership.

use super::api::{
    ApiError, ApiResult, Params, RepoAnd, RepoRoutes, ok, opt_str, paginate, params, parse_body,
    repo_name, required_str, with_link,
};
use super::git::PathContent;
use super::state::{CheckRun, ForgeError, combined_state};
use super::{Forge, json};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub(crate) fn routes() -> Router<Forge> {
    Router::new()
        .repo_route("/contents/", get(get_root_contents))
        .repo_route("/contents/{*path}", get(get_contents))
        .repo_route("/statuses/{sha}", post(create_status))
        // One wildcard: octocrab names branches `heads/<branch>`, so a ref may contain `/`.
        .repo_route("/commits/{*rest}", get(commit_route))
        .repo_route("/check-runs", post(create_check_run))
        .repo_route(
            "/check-runs/{id}",
            get(get_check_run).patch(patch_check_run),
        )
        .repo_route("/collaborators/{user}/permission", get(permission))
        .route("/orgs/{org}/members/{user}", get(org_member))
        .route("/user", get(current_user))
}

async fn get_root_contents(
    State(f): State<Forge>,
    Path((o, r)): Path<(String, String)>,
    q: Params,
) -> ApiResult {
    contents(f, o, r, String::new(), q).await
}

async fn get_contents(
    State(f): State<Forge>,
    Path((o, r, path)): Path<(String, String, String)>,
    q: Params,
) -> ApiResult {
    contents(f, o, r, path, q).await
}

/// A file answers an object with base64 `content` wrapped at 60 columns like GitHub's;
/// a directory answers an array of entries without content.
async fn contents(f: Forge, o: String, r: String, path: String, q: Params) -> ApiResult {
    let repo = repo_name(&o, &r)?;
    let q = params(q)?;
    let (sha, content) = f
        .read_path(&repo, q.get("ref").map(String::as_str), &path)
        .await?;
    let api = f.inner.urls.api_repo(&repo);
    let html = f.inner.urls.html_repo(&repo);
    let entry = |p: &str, kind: &str, oid: &str, size: u64| {
        let name = p.rsplit('/').next().unwrap_or(p);
        json!({
            "type": kind,
            "size": size,
            "name": name,
            "path": p,
            "sha": oid,
            "url": format!("{api}/contents/{p}?ref={sha}"),
            "git_url": format!("{api}/git/{}/{oid}", if kind == "dir" { "trees" } else { "blobs" }),
            "html_url": format!("{html}/blob/{sha}/{p}"),
            "download_url": if kind == "file" { json!(format!("{html}/raw/{sha}/{p}")) } else { Value::Null },
            "_links": {
                "self": format!("{api}/contents/{p}?ref={sha}"),
                "git": format!("{api}/git/blobs/{oid}"),
                "html": format!("{html}/blob/{sha}/{p}"),
            },
        })
    };
    let path = path.trim_matches('/');
    match content {
        PathContent::File { blob, data } => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
            let wrapped: Vec<String> = encoded
                .as_bytes()
                .chunks(60)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let mut v = entry(path, "file", &blob, data.len() as u64);
            v["content"] = json!(wrapped.join("\n") + "\n");
            v["encoding"] = json!("base64");
            ok(StatusCode::OK, v)
        }
        PathContent::Dir(children) => {
            let list = children
                .iter()
                .map(|(name, kind, oid, size)| {
                    let p = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    };
                    entry(&p, kind, oid, *size)
                })
                .collect();
            ok(StatusCode::OK, Value::Array(list))
        }
    }
}

async fn create_status(
    State(f): State<Forge>,
    Path((o, r, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let repo = repo_name(&o, &r)?;
    let v = parse_body(&body)?;
    let state = required_str(&v, "Status", "state")?;
    let context = opt_str(&v, "Status", "context")?.unwrap_or_else(|| "default".into());
    let description = opt_str(&v, "Status", "description")?;
    let target_url = opt_str(&v, "Status", "target_url")?;
    let Some(sha) = f.resolve(&repo, &sha).await else {
        return Err(ForgeError::Unprocessable(format!("No commit found for SHA: {sha}")).into());
    };
    let status = f.add_status(&repo, sha, &state, &context, description, target_url)?;
    let r = f.state();
    ok(
        StatusCode::CREATED,
        json::status(&f.inner.urls, r.repo(&repo)?, &status),
    )
}

async fn resolve_ref(
    f: &Forge,
    o: &str,
    r: &str,
    reference: &str,
) -> Result<
    (
        tickbot_syntax::ids::RepoName,
        tickbot_syntax::ids::CommitSha,
    ),
    ApiError,
> {
    let repo = repo_name(o, r)?;
    let sha = f.resolve(&repo, reference).await.ok_or_else(|| {
        ForgeError::Unprocessable(format!("No commit found for SHA: {reference}"))
    })?;
    Ok((repo, sha))
}

async fn commit_route(
    State(f): State<Forge>,
    Path((o, r, rest)): Path<(String, String, String)>,
    q: Params,
) -> ApiResult {
    let path = (o, r);
    if let Some(reference) = rest.strip_suffix("/status") {
        combined_status(f, (path.0, path.1, reference.to_string())).await
    } else if let Some(reference) = rest.strip_suffix("/statuses") {
        list_statuses(f, (path.0, path.1, reference.to_string()), q).await
    } else if let Some(reference) = rest.strip_suffix("/check-runs") {
        list_check_runs(f, (path.0, path.1, reference.to_string())).await
    } else {
        // `GET /repos/{o}/{r}/commits/{ref}`: the commit a branch or SHA names (its `sha` is
        // all tickbot reads).
        let (repo, sha) = resolve_ref(&f, &path.0, &path.1, &rest).await?;
        let api = f.inner.urls.api_repo(&repo);
        ok(
            StatusCode::OK,
            json!({ "sha": sha, "url": format!("{api}/commits/{sha}") }),
        )
    }
}

async fn combined_status(f: Forge, (o, r, reference): (String, String, String)) -> ApiResult {
    let (repo, sha) = resolve_ref(&f, &o, &r, &reference).await?;
    let urls = &f.inner.urls;
    let st = f.state();
    let rp = st.repo(&repo)?;
    let latest = rp.latest_statuses(&sha);
    let api = urls.api_repo(&repo);
    ok(
        StatusCode::OK,
        json!({
            "state": combined_state(&latest),
            "statuses": latest.iter().map(|s| json::status(urls, rp, s)).collect::<Vec<_>>(),
            "sha": sha,
            "total_count": latest.len(),
            "repository": json::repository(urls, rp),
            "commit_url": format!("{api}/commits/{sha}"),
            "url": format!("{api}/commits/{sha}/status"),
        }),
    )
}

async fn list_statuses(
    f: Forge,
    (o, r, reference): (String, String, String),
    q: Params,
) -> ApiResult {
    let q = params(q)?;
    let (repo, sha) = resolve_ref(&f, &o, &r, &reference).await?;
    let all: Vec<Value> = {
        let st = f.state();
        let rp = st.repo(&repo)?;
        // Newest first, as GitHub lists them.
        rp.statuses
            .iter()
            .rev()
            .filter(|s| s.sha == sha)
            .map(|s| json::status(&f.inner.urls, rp, s))
            .collect()
    };
    let path = format!("/repos/{repo}/commits/{reference}/statuses");
    let (page, link) = paginate(&f, &path, &q, all);
    with_link(Value::Array(page), link)
}

async fn list_check_runs(f: Forge, (o, r, reference): (String, String, String)) -> ApiResult {
    let (repo, sha) = resolve_ref(&f, &o, &r, &reference).await?;
    let st = f.state();
    let rp = st.repo(&repo)?;
    let runs: Vec<Value> = rp
        .check_runs
        .iter()
        .rev()
        .filter(|c| c.head_sha == sha)
        .map(|c| json::check_run(&f.inner.urls, rp, c))
        .collect();
    ok(
        StatusCode::OK,
        json!({ "total_count": runs.len(), "check_runs": runs }),
    )
}

fn time_field(v: &Value, field: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
    opt_str(v, "CheckRun", field)?
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::Forge(ForgeError::Validation {
                        resource: "CheckRun",
                        field,
                        code: "invalid",
                        message: format!("{field} is not an ISO 8601 timestamp"),
                    })
                })
        })
        .transpose()
}

/// Applies the writable check-run fields of a create or update request.
fn check_run_update(v: &Value) -> Result<impl FnOnce(&mut CheckRun), ApiError> {
    let field = |name| opt_str(v, "CheckRun", name);
    let (name, status, conclusion) = (field("name")?, field("status")?, field("conclusion")?);
    let (details_url, external_id) = (field("details_url")?, field("external_id")?);
    let (started_at, completed_at) = (time_field(v, "started_at")?, time_field(v, "completed_at")?);
    if let Some(s) = &status
        && ![
            "queued",
            "in_progress",
            "completed",
            "waiting",
            "requested",
            "pending",
        ]
        .contains(&s.as_str())
    {
        return Err(ApiError::Forge(ForgeError::Validation {
            resource: "CheckRun",
            field: "status",
            code: "invalid",
            message: String::new(),
        }));
    }
    let output = v.get("output").cloned();
    let actions = match v.get("actions") {
        None => None,
        Some(Value::Array(a)) if a.len() <= 3 => Some(a.clone()),
        Some(_) => {
            return Err(ApiError::Forge(ForgeError::Validation {
                resource: "CheckRun",
                field: "actions",
                code: "invalid",
                message: "at most 3 actions".into(),
            }));
        }
    };
    Ok(move |run: &mut CheckRun| {
        if let Some(x) = actions {
            run.actions = x;
        }
        if let Some(x) = name {
            run.name = x;
        }
        if let Some(x) = status {
            run.status = x;
        }
        if conclusion.is_some() {
            run.conclusion = conclusion;
        }
        if details_url.is_some() {
            run.details_url = details_url;
        }
        if external_id.is_some() {
            run.external_id = external_id;
        }
        if let Some(x) = started_at {
            run.started_at = x;
        }
        if completed_at.is_some() {
            run.completed_at = completed_at;
        }
        if let Some(x) = output {
            run.output = x;
        }
    })
}

async fn create_check_run(
    State(f): State<Forge>,
    Path((o, r)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let repo = repo_name(&o, &r)?;
    let v = parse_body(&body)?;
    if opt_str(&v, "CheckRun", "name")?.is_none() {
        return Err(ApiError::missing("CheckRun", "name"));
    }
    let head = required_str(&v, "CheckRun", "head_sha")?;
    let (_, sha) = resolve_ref(&f, &o, &r, &head).await?;
    let run = f.upsert_check_run(&repo, None, check_run_update(&v)?, Some(sha))?;
    let st = f.state();
    ok(
        StatusCode::CREATED,
        json::check_run(&f.inner.urls, st.repo(&repo)?, &run),
    )
}

async fn patch_check_run(
    State(f): State<Forge>,
    RepoAnd(repo, id): RepoAnd<u64>,
    body: Bytes,
) -> ApiResult {
    let v = parse_body(&body)?;
    let run = f.upsert_check_run(&repo, Some(id), check_run_update(&v)?, None)?;
    let st = f.state();
    ok(
        StatusCode::OK,
        json::check_run(&f.inner.urls, st.repo(&repo)?, &run),
    )
}

async fn get_check_run(State(f): State<Forge>, RepoAnd(repo, id): RepoAnd<u64>) -> ApiResult {
    let st = f.state();
    let rp = st.repo(&repo)?;
    ok(
        StatusCode::OK,
        json::check_run(&f.inner.urls, rp, rp.check_run(id)?),
    )
}

async fn permission(State(f): State<Forge>, RepoAnd(repo, user): RepoAnd<String>) -> ApiResult {
    let st = f.state();
    let rp = st.repo(&repo)?;
    let (permission, role) = st.permission(rp, &user);
    ok(
        StatusCode::OK,
        json!({
            "permission": permission,
            "role_name": role,
            "user": json::user(&f.inner.urls, &user),
        }),
    )
}

async fn org_member(
    State(f): State<Forge>,
    Path((org, user)): Path<(String, String)>,
) -> ApiResult {
    if f.state().is_org_member(&org, &user) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

async fn current_user(State(f): State<Forge>) -> ApiResult {
    ok(StatusCode::OK, json::user(&f.inner.urls, f.bot_login()))
}
