//! What the API costs: conditional requests and the rate limit left.
//!
//! * Every successful GET answer with an `ETag` is kept (path → tag, link header, body); the
//!   next GET of the path sends `If-None-Match`, and GitHub's `304 Not Modified`, which does
//!   not count against the rate limit, is answered from the copy. The copies are bounded in
//!   bytes ([`MAX_BYTES`]): the oldest are dropped first, and a dropped one is read whole
//!   again (and counted) the next time.
//! * Every answer's `X-RateLimit-Remaining`/`-Limit`/`-Reset` are kept per credential (the
//!   token, or an App installation), so a caller that can wait (the scheduler) pauses while
//!   little is left and leaves it to what people wait for (the dispatcher).

use super::lock;
use super::request::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::{HeaderMap, StatusCode, header};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Bytes of kept answers at most. A repository's list of its newest hundred PRs is the
/// largest read (on GitHub up to ~2 MB); most are a few KB.
const MAX_BYTES: usize = 128 * 1024 * 1024;

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

/// A kept answer; cloning it is cheap (the body is shared).
#[derive(Clone)]
pub(crate) struct Kept {
    etag: header::HeaderValue,
    link: Option<header::HeaderValue>,
    body: Bytes,
}

#[derive(Default)]
struct Copies {
    by_path: HashMap<String, Kept>,
    /// Insertion order, for dropping the oldest (a path kept again is moved to the back).
    order: VecDeque<String>,
    /// Bytes of the kept bodies.
    bytes: usize,
}

/// The client's conditional-request copies and rate limits; one per [`super::GitHub`].
pub(crate) struct Budget {
    copies: Mutex<Copies>,
    limits: Mutex<HashMap<String, RateLimit>>,
    max_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::with_room(MAX_BYTES)
    }
}

impl Budget {
    /// A budget keeping at most `max_bytes` of answers.
    pub fn with_room(max_bytes: usize) -> Self {
        Budget {
            copies: Mutex::default(),
            limits: Mutex::default(),
            max_bytes,
        }
    }

    /// The kept answer of `path`, if any, and the `If-None-Match` header naming it. The copy
    /// goes with the request: a 304 is answered from it even if it was dropped meanwhile.
    pub fn condition(&self, path: &str) -> Option<(HeaderMap, Kept)> {
        let copies = lock(&self.copies);
        let kept = copies.by_path.get(path)?.clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, kept.etag.clone());
        Some((headers, kept))
    }

    /// Takes in a GET answer: a 304 becomes `sent`, the copy the request named (with the
    /// fresh headers); a 200 with an `ETag` is kept.
    pub fn conditional(&self, path: &str, mut resp: Response, sent: Option<Kept>) -> Response {
        if resp.status == StatusCode::NOT_MODIFIED {
            if let Some(kept) = sent {
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
        if resp.body.len() > self.max_bytes / 16 {
            return resp; // one answer may not push out everything else
        }
        let mut copies = lock(&self.copies);
        let kept = Kept {
            etag: etag.clone(),
            link: resp.headers.get(header::LINK).cloned(),
            body: resp.body.clone(),
        };
        copies.bytes += kept.body.len();
        if let Some(old) = copies.by_path.insert(path.to_string(), kept) {
            copies.bytes -= old.body.len();
            copies.order.retain(|p| p != path);
        }
        copies.order.push_back(path.to_string());
        while copies.bytes > self.max_bytes {
            let Some(oldest) = copies.order.pop_front() else {
                break;
            };
            if let Some(dropped) = copies.by_path.remove(&oldest) {
                copies.bytes -= dropped.body.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, etag: Option<&str>, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(tag) = etag {
            headers.insert(
                header::ETAG,
                header::HeaderValue::from_str(tag).expect("tag"),
            );
        }
        Response {
            status,
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn a_304_is_answered_from_the_copy_the_request_named_even_once_dropped() {
        let budget = Budget::with_room(16 * 10);
        budget.conditional(
            "/a",
            answer(StatusCode::OK, Some("\"a1\""), "aaaaaaaaa"),
            None,
        );
        let (headers, sent) = budget.condition("/a").expect("kept");
        assert_eq!(headers[header::IF_NONE_MATCH], "\"a1\"");
        // Newer answers push `/a` out (10 bytes each, 160 bytes of room).
        for i in 0..16 {
            let path = format!("/b{i}");
            budget.conditional(
                &path,
                answer(StatusCode::OK, Some("\"b\""), "bbbbbbbbbb"),
                None,
            );
        }
        assert!(budget.condition("/a").is_none(), "the oldest was dropped");
        let not_modified = answer(StatusCode::NOT_MODIFIED, None, "");
        let resp = budget.conditional("/a", not_modified, Some(sent));
        assert_eq!(
            (resp.status, &resp.body[..]),
            (StatusCode::OK, &b"aaaaaaaaa"[..])
        );
    }

    #[test]
    fn the_copies_stay_within_their_bytes_and_a_changed_answer_replaces_its_copy() {
        let budget = Budget::with_room(16 * 10);
        for i in 0..40 {
            let path = format!("/p{}", i % 20);
            let body = format!("{i:0>10}");
            budget.conditional(&path, answer(StatusCode::OK, Some("\"t\""), &body), None);
        }
        let copies = lock(&budget.copies);
        assert!(copies.bytes <= 160, "{} bytes kept", copies.bytes);
        assert_eq!(
            copies.bytes,
            copies.by_path.values().map(|k| k.body.len()).sum::<usize>()
        );
        assert_eq!(copies.order.len(), copies.by_path.len());
        // The newest answer of each path kept is the one kept.
        assert_eq!(&copies.by_path["/p19"].body[..], b"0000000039");
    }
}
