//! What the API costs: conditional requests and the rate limit left.
//!
//! * Every successful GET answer with an `ETag` is kept (path → tag, link header, body); the
//!   next GET of the path sends `If-None-Match`, and GitHub's `304 Not Modified`, which does
//!   not count against the rate limit, is answered from the copy. The copies are bounded: past
//!   [`MAX_ENTRIES`] the oldest half is dropped.
//! * Every answer's `X-RateLimit-Remaining`/`-Limit`/`-Reset` are kept per credential (the
//!   token, or an App installation), so a caller that can wait (the scheduler) pauses while
//!   little is left and leaves it to what people wait for (the dispatcher).

use super::request::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::{HeaderMap, StatusCode, header};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Kept answers at most (a quiet scheduler pass over 1,000 repositories reads ~3,000 paths).
const MAX_ENTRIES: usize = 20_000;

/// The rate limit of one credential, as its last answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub remaining: u64,
    pub limit: u64,
    pub reset: DateTime<Utc>,
}

impl RateLimit {
    /// Whether a caller that can wait should: less than a fifth of the hour's calls left.
    pub fn is_low(&self) -> bool {
        self.remaining.saturating_mul(5) < self.limit
    }
}

struct Kept {
    etag: header::HeaderValue,
    link: Option<header::HeaderValue>,
    body: Bytes,
}

#[derive(Default)]
struct Copies {
    by_path: HashMap<String, Kept>,
    /// Insertion order, for dropping the oldest.
    order: VecDeque<String>,
}

/// The client's conditional-request copies and rate limits; one per [`super::GitHub`].
#[derive(Default)]
pub(crate) struct Budget {
    copies: Mutex<Copies>,
    limits: Mutex<HashMap<String, RateLimit>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Budget {
    /// The `If-None-Match` header for a GET of `path`, if an answer is kept.
    pub fn condition(&self, path: &str) -> Option<HeaderMap> {
        let copies = lock(&self.copies);
        let kept = copies.by_path.get(path)?;
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, kept.etag.clone());
        Some(headers)
    }

    /// Takes in a GET answer: a 304 becomes the kept answer (with the fresh headers), a 200
    /// with an `ETag` is kept.
    pub fn conditional(&self, path: &str, mut resp: Response) -> Response {
        let mut copies = lock(&self.copies);
        if resp.status == StatusCode::NOT_MODIFIED {
            if let Some(kept) = copies.by_path.get(path) {
                metrics::counter!("tickbot_github_api_not_modified_total").increment(1);
                resp.status = StatusCode::OK;
                resp.body = kept.body.clone();
                if let Some(link) = &kept.link {
                    resp.headers.insert(header::LINK, link.clone());
                }
            }
            return resp;
        }
        let Some(etag) = resp
            .headers
            .get(header::ETAG)
            .filter(|_| resp.status == StatusCode::OK)
        else {
            return resp;
        };
        let kept = Kept {
            etag: etag.clone(),
            link: resp.headers.get(header::LINK).cloned(),
            body: resp.body.clone(),
        };
        if copies.by_path.insert(path.to_string(), kept).is_none() {
            copies.order.push_back(path.to_string());
        }
        if copies.order.len() > MAX_ENTRIES {
            for _ in 0..MAX_ENTRIES / 2 {
                if let Some(old) = copies.order.pop_front() {
                    copies.by_path.remove(&old);
                }
            }
        }
        resp
    }

    /// Notes the rate limit an answer for `credential` reports.
    pub fn observe(&self, credential: &str, headers: &HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let (Some(remaining), Some(limit), Some(reset)) = (
            number("x-ratelimit-remaining"),
            number("x-ratelimit-limit"),
            number("x-ratelimit-reset"),
        ) else {
            return;
        };
        let reset = i64::try_from(reset)
            .ok()
            .and_then(|r| DateTime::<Utc>::from_timestamp(r, 0))
            .unwrap_or_default();
        metrics::gauge!("tickbot_github_rate_limit_remaining", "credential" => credential.to_string())
            .set(remaining as f64);
        let seen = RateLimit {
            remaining,
            limit,
            reset,
        };
        lock(&self.limits).insert(credential.to_string(), seen);
    }

    /// The rate limit of `credential` as last seen, while its window lasts.
    pub fn rate_limit(&self, credential: &str, now: DateTime<Utc>) -> Option<RateLimit> {
        lock(&self.limits)
            .get(credential)
            .copied()
            .filter(|l| l.reset > now)
    }
}
