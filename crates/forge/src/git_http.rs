//! git's smart HTTP at GitHub's clone URL shape, `{base}/{owner}/{name}.git/...`: requests are
//! handed to `git http-backend` ([`super::git::http_backend`]); after a successful push the
//! forge announces what moved ([`Forge::sync_refs`]) before answering, so when `git push`
//! returns, the REST API already shows the new PR head.

use super::Forge;
use super::api::ApiError;
use super::git::{self, CgiRequest};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tickbot_syntax::ids::RepoName;

/// `/{owner}/{name}.git/...`: git's smart HTTP; everything else is an unknown API path.
pub(crate) fn git_path(path: &str) -> Option<(RepoName, &str)> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (owner, name) = (parts.next()?, parts.next()?);
    let name = name.strip_suffix(".git")?;
    Some((RepoName::new(owner, name).ok()?, parts.next().unwrap_or("")))
}

/// Unknown API paths get GitHub's 404; clone URLs get git.
pub(crate) async fn fallback(State(forge): State<Forge>, req: Request) -> Response {
    let Some((repo, _)) = git_path(req.uri().path()) else {
        return ApiError::not_found().into_response();
    };
    match serve_git(&forge, repo, req).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "git over http failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "git failed\n").into_response()
        }
    }
}

/// Who is pushing: the bot when its token is the password, else the user name given,
/// else the owner (the forge trusts whoever talks to it; it is a test stand-in).
fn pusher(forge: &Forge, repo: &RepoName, headers: &HeaderMap) -> String {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((_, pass)) if pass == forge.bot_token() || forge.installation_token_valid(pass) => {
            forge.bot_login().to_string()
        }
        Some((user, _)) if !user.is_empty() => user.to_string(),
        _ => repo.owner().to_string(),
    }
}

async fn serve_git(forge: &Forge, repo: RepoName, req: Request) -> anyhow::Result<Response> {
    if !forge.state().repos.contains_key(&repo) {
        return Ok((StatusCode::NOT_FOUND, "Repository not found.\n").into_response());
    }
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let who = pusher(forge, &repo, &parts.headers);
    let body = axum::body::to_bytes(body, 1 << 30).await?;
    let path = parts.uri.path();
    let is_push = parts.method == Method::POST && path.ends_with("/git-receive-pack");
    let cgi = git::http_backend(
        &forge.inner.git,
        CgiRequest {
            method: parts.method.as_str(),
            path_info: path,
            query: parts.uri.query().unwrap_or(""),
            content_type: header("content-type"),
            content_encoding: header("content-encoding"),
            git_protocol: header("git-protocol"),
            remote_user: &who,
            body,
        },
    )
    .await?;
    if is_push && cgi.status == 200 {
        // Before answering, so that when `git push` returns the forge already shows the move.
        forge.sync_refs(&repo, &who).await?;
    }
    let mut resp = Response::builder().status(cgi.status);
    for (k, v) in &cgi.headers {
        resp = resp.header(k.as_str(), v.as_str());
    }
    Ok(resp.body(Body::from(cgi.body))?)
}
