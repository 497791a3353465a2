//! GitHub's conditional requests and rate limit, as the REST layer applies them to every call.
//!
//! * A successful GET answer carries an `ETag` (a hash of its body); a GET whose
//!   `If-None-Match` names the current tag is answered `304 Not Modified` without a body, and,
//!   as on GitHub, does not count against the rate limit.
//! * Each credential (the token given) has `limit` calls per hour; every answer says what is
//!   left (`X-RateLimit-*`), and a call past the limit is refused with GitHub's 403. The
//!   default limit is high enough that no story meets it unless it sets one
//!   ([`super::Forge::set_rate_limit`]).

use super::api::gh_error;
use crate::lock;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use http_body_util::BodyExt;
use serde_json::json;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Mutex;

/// Calls per hour per credential unless a story sets a limit.
pub const DEFAULT_LIMIT: u64 = 1_000_000;

struct Window {
    started: DateTime<Utc>,
    used: u64,
}

/// The hourly limit and the calls used per credential in its current hour.
pub(crate) struct RateLimits(Mutex<(u64, HashMap<String, Window>)>);

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits(Mutex::new((DEFAULT_LIMIT, HashMap::new())))
    }
}

/// What is left for one credential, as the headers say it.
pub(crate) struct Left {
    pub limit: u64,
    pub used: u64,
    pub reset: DateTime<Utc>,
}

impl RateLimits {
    pub fn set_limit(&self, limit: u64) {
        *lock(&self.0) = (limit, HashMap::new());
    }

    /// What `credential` has used in its current hour, after counting one call if `count`.
    fn use_calls(&self, credential: &str, count: bool) -> Left {
        let now = Utc::now();
        let mut guard = lock(&self.0);
        let (limit, used) = &mut *guard;
        let limit = *limit;
        let window = used.entry(credential.to_string()).or_insert(Window {
            started: now,
            used: 0,
        });
        if now >= window.started + Duration::hours(1) {
            *window = Window {
                started: now,
                used: 0,
            };
        }
        if count {
            window.used += 1;
        }
        Left {
            limit,
            used: window.used,
            reset: window.started + Duration::hours(1),
        }
    }
}

/// The credential a request presents (a digest of its token), or `anonymous`.
pub(crate) fn credential(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map_or("anonymous".into(), |v| {
            let digest = sha2::Sha256::digest(v.as_bytes());
            hex::encode(&digest[..8])
        })
}

/// GitHub's 403 for a call when the credential's hour is spent.
pub(crate) fn refuse_if_spent(limits: &RateLimits, credential: &str) -> Option<Response> {
    let left = limits.use_calls(credential, false);
    if left.used < left.limit {
        return None;
    }
    let mut resp = gh_error(
        StatusCode::FORBIDDEN,
        "API rate limit exceeded for installation ID 1.",
        json!({}),
    );
    add_headers(resp.headers_mut(), &left);
    Some(resp)
}

/// Counts an answered call (a 304 is free) and says what is left; an injected fault brings
/// its own headers and is not counted.
pub(crate) fn account(limits: &RateLimits, credential: &str, resp: &mut Response) {
    if resp.headers().contains_key("x-ratelimit-remaining") {
        return;
    }
    let count = resp.status() != StatusCode::NOT_MODIFIED;
    let left = limits.use_calls(credential, count);
    add_headers(resp.headers_mut(), &left);
}

/// `X-RateLimit-*` as GitHub sends them.
pub(crate) fn add_headers(h: &mut HeaderMap, left: &Left) {
    h.insert("x-ratelimit-limit", HeaderValue::from(left.limit));
    h.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(left.limit.saturating_sub(left.used)),
    );
    h.insert("x-ratelimit-used", HeaderValue::from(left.used));
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    h.insert(
        "x-ratelimit-reset",
        HeaderValue::from(left.reset.timestamp().max(0) as u64),
    );
}

/// Whether a GET's `If-None-Match` names `etag` (a list of tags, or `*`).
fn matches(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(given) = if_none_match.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    given
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag.trim_start_matches("W/"))
}

/// Gives a successful GET answer its `ETag`, or answers 304 when the client holds it already.
pub(crate) async fn conditional(
    method: &Method,
    if_none_match: Option<&HeaderValue>,
    resp: Response,
) -> Response {
    if *method != Method::GET || resp.status() != StatusCode::OK {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await else {
        return gh_error(StatusCode::INTERNAL_SERVER_ERROR, "Server Error", json!({}));
    };
    let bytes = collected.to_bytes();
    let digest = sha2::Sha256::digest(&bytes);
    let etag = format!("W/\"{}\"", hex::encode(&digest[..16]));
    let value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("W/\"\""));
    if matches(if_none_match, &etag) {
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        not_modified.headers_mut().insert(header::ETAG, value);
        return not_modified;
    }
    parts.headers.insert(header::ETAG, value);
    Response::from_parts(parts, Body::from(bytes))
}
