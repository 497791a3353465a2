//! GitHub App authentication, as GitHub does it: the app signs a JWT (RS256, `iss` = app id)
//! with its private key; with it, it may only look up installations and exchange one for an
//! installation token (`ghs_…`), which then works like the bot's token until it expires.

use super::Forge;
use super::api::{ApiError, ApiResult, ok, repo_name};
use super::json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

/// The one GitHub App the forge knows, installed on every repository.
#[derive(Debug, Clone)]
pub struct ForgeApp {
    pub id: u64,
    /// The app's public key (PEM), to check its JWTs.
    pub public_key_pem: String,
    /// How long an installation token lives (GitHub: one hour).
    pub token_ttl: Duration,
}

/// The installation id every repository has.
pub(super) const INSTALLATION: u64 = 1;

pub(crate) fn routes() -> Router<Forge> {
    Router::new()
        .route("/repos/{owner}/{repo}/installation", get(repo_installation))
        .route("/orgs/{org}/installation", get(org_installation))
        .route(
            "/app/installations/{id}/access_tokens",
            post(create_installation_token),
        )
        .route("/app/installations", get(list_installations))
        .route("/installation/repositories", get(installation_repositories))
}

/// `GET /app/installations`: the one installation (its account is the forge's first owner).
async fn list_installations(State(f): State<Forge>) -> ApiResult {
    let owner = f.state().repos.keys().next().map(|r| r.owner().to_string());
    let one = installation_json(&f, owner.as_deref().unwrap_or("forge"))?;
    ok(StatusCode::OK, json!([one]))
}

/// `GET /installation/repositories` with an installation token: every repository.
async fn installation_repositories(State(f): State<Forge>) -> ApiResult {
    let repos: Vec<serde_json::Value> = {
        let st = f.state();
        st.repos
            .values()
            .map(|r| json::repository(&f.inner.urls, r))
            .collect()
    };
    ok(
        StatusCode::OK,
        json!({ "total_count": repos.len(), "repositories": repos }),
    )
}

/// Whether `path` is one a JWT (not a token) is for.
pub(crate) fn wants_jwt(path: &str) -> bool {
    path.starts_with("/app/") || path.ends_with("/installation")
}

/// `Ok` if `jwt` is the app's and not expired; else GitHub's message.
pub(crate) fn check_jwt(app: &ForgeApp, jwt: &str) -> Result<(), &'static str> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: serde_json::Value,
    }
    let key =
        jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes()).map_err(|e| {
            tracing::warn!(error = %e, "forge: the app public key is unusable");
            "A JSON web token could not be decoded"
        })?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is checked below: GitHub's is the app id as a number, which jsonwebtoken's own
    // check does not read.
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Claims>(jwt, &key, &validation).map_err(|e| {
        tracing::info!(error = %e, "forge: app JWT refused");
        "A JSON web token could not be decoded"
    })?;
    let iss = match &data.claims.iss {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if iss != app.id.to_string() {
        return Err("Integration not found");
    }
    Ok(())
}

fn installation_json(f: &Forge, account: &str) -> Result<serde_json::Value, ApiError> {
    let Some(app) = &f.inner.opts.app else {
        return Err(ApiError::not_found());
    };
    Ok(json!({
        "id": INSTALLATION,
        "app_id": app.id,
        "account": json::user(&f.inner.urls, account),
        "target_type": "Organization",
        "permissions": { "checks": "write", "statuses": "write", "pull_requests": "write",
                         "issues": "write", "contents": "write" },
    }))
}

fn installation(f: &Forge, account: &str) -> ApiResult {
    ok(StatusCode::OK, installation_json(f, account)?)
}

async fn repo_installation(
    State(f): State<Forge>,
    Path((o, r)): Path<(String, String)>,
) -> ApiResult {
    let repo = repo_name(&o, &r)?;
    f.state().repo(&repo)?;
    installation(&f, repo.owner())
}

async fn org_installation(State(f): State<Forge>, Path(org): Path<String>) -> ApiResult {
    installation(&f, &org)
}

async fn create_installation_token(State(f): State<Forge>, Path(id): Path<String>) -> ApiResult {
    let Some(app) = &f.inner.opts.app else {
        return Err(ApiError::not_found());
    };
    if id != INSTALLATION.to_string() {
        return Err(ApiError::not_found());
    }
    let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
    let ttl = chrono::Duration::from_std(app.token_ttl).unwrap_or(chrono::Duration::hours(1));
    let expires = Utc::now() + ttl;
    f.remember_installation_token(&token, expires);
    ok(
        StatusCode::CREATED,
        json!({ "token": token, "expires_at": json::time(expires), "permissions": {} }),
    )
}

impl Forge {
    fn remember_installation_token(&self, token: &str, expires: DateTime<Utc>) {
        let mut tokens = super::lock(&self.inner.installation_tokens);
        tokens.retain(|_, exp| *exp > Utc::now());
        tokens.insert(token.to_string(), expires);
    }

    /// Whether `token` is an installation token that has not expired.
    pub(crate) fn installation_token_valid(&self, token: &str) -> bool {
        super::lock(&self.inner.installation_tokens)
            .get(token)
            .is_some_and(|exp| *exp > Utc::now())
    }
}
