//! Sending one API request with our retry policy, and reading paginated lists.
//!
//! Requests go out through octocrab's raw `_get`/`_post`/… calls, which hand back the status and
//! headers that the policy in [`super::retry`] needs. Paths are always relative to the configured
//! API URL: octocrab only attaches credentials to relative requests (or to api.github.com), and a
//! relative path works unchanged for api.github.com, GitHub Enterprise and the local forge.

use super::budget::Budget;
use super::error::GitHubError;
use super::retry::{self, Outcome, Policy, Repeat, Verdict};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use octocrab::Octocrab;
use rand::Rng;
use serde::de::DeserializeOwned;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One API call, described well enough to be repeated and to be named in an error.
pub(crate) struct Request {
    pub method: Method,
    /// Path and query relative to the API URL, starting with `/`.
    pub path: String,
    pub body: Option<serde_json::Value>,
    /// What the call does, for errors and logs, e.g. "POST comment on owner/repo#12".
    pub what: String,
    /// When the request may be sent again.
    pub repeat: Repeat,
}

impl Request {
    pub fn get(path: String, what: String) -> Request {
        Request {
            method: Method::GET,
            path,
            body: None,
            what,
            repeat: Repeat::Safe,
        }
    }

    /// A call that sends `body` and changes something; `repeat` says when it may be sent again.
    pub fn write(
        method: Method,
        path: String,
        body: serde_json::Value,
        what: String,
        repeat: Repeat,
    ) -> Request {
        Request {
            method,
            path,
            body: Some(body),
            what,
            repeat,
        }
    }
}

/// GitHub's complete answer; bodies are small JSON documents, so they are read whole.
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// Fails unless GitHub reported success; 404 becomes [`GitHubError::NotFound`].
    pub fn ok(self, what: &str) -> Result<Response, GitHubError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(api_error(what, &self, false))
        }
    }

    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, GitHubError> {
        serde_json::from_slice(&self.body).map_err(|e| GitHubError::InvalidResponse {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }
}

/// How a call is sent: the client, the retry policy and time limit, and the budget that
/// keeps conditional copies and the rate limit of the client's `credential`.
pub(crate) struct Channel<'a> {
    pub client: &'a Octocrab,
    pub policy: &'a Policy,
    pub timeout: Duration,
    pub budget: &'a Budget,
    pub credential: &'a str,
}

/// Why an attempt produced no response.
enum Failure {
    /// Network trouble or timeout after the request may have gone out: maybe worth repeating.
    Transport(BoxError),
    /// No connection could be made: the request certainly did not reach GitHub.
    NotSent(BoxError),
    /// A failure that repeating cannot fix (bad key, bad URL); reported as is.
    Fatal(GitHubError),
}

/// Sends `req`, repeating it as [`retry::decide`] allows. Returns any answer that is not a
/// retryable failure, including 4xx ones, for the caller to interpret.
pub(crate) async fn send(channel: &Channel<'_>, req: &Request) -> Result<Response, GitHubError> {
    let (policy, timeout) = (channel.policy, channel.timeout);
    let mut waited = Duration::ZERO;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        // octocrab's read timeout covers a silent socket; this also bounds a slow trickle.
        let result = match tokio::time::timeout(timeout, attempt_once(channel, req)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Transport(
                format!("no complete answer within {}s", timeout.as_secs_f32()).into(),
            )),
        };
        // A fatal failure ends the call; what remains is an answer or a transport error.
        let (result, sent) = match result {
            Ok(resp) => (Ok(resp), true),
            Err(Failure::Transport(source)) => (Err(source), true),
            Err(Failure::NotSent(source)) => (Err(source), false),
            Err(Failure::Fatal(error)) => {
                record_attempt(req, attempt, "fatal");
                return Err(error);
            }
        };
        let outcome = match &result {
            Ok(resp) => Outcome::Answer(resp.status, &resp.headers),
            Err(_) if sent => Outcome::Transport,
            Err(_) => Outcome::NotSent,
        };
        let status_label = match &result {
            Ok(resp) => resp.status.as_str().to_string(),
            Err(_) if sent => "transport".to_string(),
            Err(_) => "connect_failed".to_string(),
        };
        record_attempt(req, attempt, &status_label);

        let jitter = rand::thread_rng().r#gen::<f64>();
        let verdict = retry::decide(
            policy,
            attempt,
            waited,
            req.repeat,
            outcome,
            Utc::now(),
            jitter,
        );
        match verdict {
            Verdict::Done => return result.map_err(|source| transport_error(req, source, sent)),
            Verdict::Retry(wait) => {
                tracing::warn!(
                    what = %req.what,
                    attempt,
                    outcome = %status_label,
                    wait_ms = wait.as_millis() as u64,
                    "GitHub API call failed; retrying"
                );
                tokio::time::sleep(wait).await;
                waited += wait;
            }
            Verdict::RateLimited { until } => {
                tracing::warn!(what = %req.what, attempt, %until, "GitHub rate limit; giving up");
                return Err(GitHubError::RateLimited {
                    what: req.what.clone(),
                    until,
                });
            }
            Verdict::GiveUp => {
                return Err(match result {
                    Ok(resp) => {
                        let unknown = req.repeat != Repeat::Safe && resp.status.is_server_error();
                        api_error(&req.what, &resp, unknown)
                    }
                    Err(source) => transport_error(req, source, sent),
                });
            }
        }
    }
}

/// Counts every attempt, as a log line and as a metric, so retries are visible in production.
fn record_attempt(req: &Request, attempt: u32, outcome: &str) {
    tracing::debug!(
        method = %req.method,
        what = %req.what,
        attempt,
        outcome,
        "GitHub API attempt"
    );
    metrics::counter!(
        "tickbot_github_api_attempts_total",
        "method" => req.method.to_string(),
        "outcome" => outcome.to_string()
    )
    .increment(1);
}

async fn attempt_once(channel: &Channel<'_>, req: &Request) -> Result<Response, Failure> {
    let (client, budget) = (channel.client, channel.budget);
    let path = req.path.as_str();
    let body = req.body.as_ref();
    let (condition, sent) = match req.method {
        Method::GET => budget.condition(path).unzip(),
        _ => (None, None),
    };
    let result = match req.method {
        Method::GET => client._get_with_headers(path, condition).await,
        Method::POST => client._post(path, body).await,
        Method::PATCH => client._patch(path, body).await,
        Method::PUT => client._put(path, body).await,
        Method::DELETE => client._delete(path, body).await,
        _ => {
            return Err(Failure::Fatal(GitHubError::Config(format!(
                "{}: HTTP method {} is not supported",
                req.what, req.method
            ))));
        }
    };
    let response = result.map_err(|e| classify(e, &req.what))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| classify(e, &req.what))?
        .to_bytes();
    budget.observe(channel.credential, &parts.headers);
    let resp = Response {
        status: parts.status,
        headers: parts.headers,
        body,
    };
    Ok(match req.method {
        Method::GET => budget.conditional(path, resp, sent),
        _ => resp,
    })
}

/// Sorts octocrab's errors into "the network failed" (maybe retry) and everything else.
fn classify(error: octocrab::Error, what: &str) -> Failure {
    if is_connect_error(&error) {
        return Failure::NotSent(Box::new(error));
    }
    match error {
        octocrab::Error::Hyper { .. }
        | octocrab::Error::Service { .. }
        | octocrab::Error::Encoder { .. }
        | octocrab::Error::Other { .. } => Failure::Transport(Box::new(error)),
        // Only raised by octocrab itself when it fetches an App installation token.
        octocrab::Error::GitHub { source, .. } => Failure::Fatal(GitHubError::Api {
            what: format!("{what} (getting a GitHub App installation token)"),
            status: source.status_code.as_u16(),
            message: source.message,
            outcome_unknown: false,
        }),
        octocrab::Error::JWT { source, .. } => Failure::Fatal(GitHubError::Config(format!(
            "{what}: cannot sign the GitHub App token with the configured private key: {source}"
        ))),
        // Also only from the installation token exchange: its answer did not parse.
        error @ octocrab::Error::Json { .. } => Failure::Fatal(GitHubError::InvalidResponse {
            what: format!("{what} (getting a GitHub App installation token)"),
            reason: error.to_string(),
        }),
        other => Failure::Fatal(GitHubError::Config(format!(
            "{what}: could not build the request: {other}"
        ))),
    }
}

/// An error from a call made through octocrab's own API (outside [`send`]), as our error.
pub(crate) fn from_octocrab(error: octocrab::Error, what: &str) -> GitHubError {
    match classify(error, what) {
        Failure::Fatal(error) => error,
        Failure::Transport(source) | Failure::NotSent(source) => GitHubError::Transport {
            what: what.to_string(),
            outcome_unknown: false,
            source,
        },
    }
}

/// Whether the connection itself failed (refused, unreachable, connect timeout): hyper reports
/// every connector failure as a "connect" error, and nothing was sent in that case.
fn is_connect_error(error: &octocrab::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(client_error) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client_error.is_connect();
        }
        current = e.source();
    }
    false
}

/// `sent`: whether the request may have reached GitHub (false after a failed connect).
fn transport_error(req: &Request, source: BoxError, sent: bool) -> GitHubError {
    GitHubError::Transport {
        what: req.what.clone(),
        outcome_unknown: sent && req.repeat != Repeat::Safe,
        source,
    }
}

/// Turns an unsuccessful answer into an error carrying GitHub's own message.
pub(crate) fn api_error(what: &str, resp: &Response, outcome_unknown: bool) -> GitHubError {
    if resp.status == StatusCode::NOT_FOUND {
        return GitHubError::NotFound {
            what: what.to_string(),
        };
    }
    let message = serde_json::from_slice::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&resp.body);
            let text: String = text.chars().take(300).collect();
            if text.trim().is_empty() {
                resp.status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_string()
            } else {
                text
            }
        });
    GitHubError::Api {
        what: what.to_string(),
        status: resp.status.as_u16(),
        message,
        outcome_unknown,
    }
}

/// Upper bound on pages per list: 100 pages of 100 items is far beyond any PR or comment list we
/// serve, and a misbehaving server cannot keep us in a loop.
const MAX_PAGES: usize = 100;

/// GETs `first` and every following page (GitHub's `Link: <…>; rel="next"`), collecting the
/// items; `field` names the array inside an object answer (e.g. `statuses`), `None` for arrays.
pub(crate) async fn get_all<T: DeserializeOwned>(
    channel: &Channel<'_>,
    base: &Uri,
    first: String,
    what: &str,
    field: Option<&str>,
) -> Result<Vec<T>, GitHubError> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(GitHubError::InvalidResponse {
                what: what.to_string(),
                reason: format!("more than {MAX_PAGES} pages"),
            });
        }
        let req = Request::get(path, what.to_string());
        let resp = send(channel, &req).await?.ok(what)?;
        let page: Vec<T> = match field {
            None => resp.json(what)?,
            Some(field) => {
                let mut object: serde_json::Value = resp.json(what)?;
                let list = object
                    .get_mut(field)
                    .map(serde_json::Value::take)
                    .ok_or_else(|| GitHubError::InvalidResponse {
                        what: what.to_string(),
                        reason: format!("the answer has no `{field}` list"),
                    })?;
                serde_json::from_value(list).map_err(|e| GitHubError::InvalidResponse {
                    what: what.to_string(),
                    reason: e.to_string(),
                })?
            }
        };
        items.extend(page);
        next = next_page(&resp.headers, base).map_err(|reason| GitHubError::InvalidResponse {
            what: what.to_string(),
            reason,
        })?;
    }
    Ok(items)
}

/// The `rel="next"` target of a `Link` header, as a path relative to the API URL.
///
/// A link to another host is refused rather than followed: the credentials are only sent to the
/// configured API host, and a list silently cut short would be worse than an error.
pub(crate) fn next_page(headers: &HeaderMap, base: &Uri) -> Result<Option<String>, String> {
    let Some(link) = headers.get("link").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    for part in link.split(',') {
        let Some((target, params)) = part.trim().split_once(';') else {
            continue;
        };
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        if !is_next {
            continue;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let uri: Uri = target
            .parse()
            .map_err(|_| format!("the next-page link {target:?} is not a URL"))?;
        if let Some(authority) = uri.authority()
            && Some(authority) != base.authority()
        {
            return Err(format!(
                "the next-page link points to {authority}, not to the configured API host"
            ));
        }
        return Ok(uri.path_and_query().map(|pq| pq.as_str().to_string()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn link(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("link", HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn next_page_is_taken_from_the_link_header() {
        let base: Uri = "https://ghe.example.com/api/v3".parse().expect("uri");
        let h = link(
            "<https://ghe.example.com/api/v3/repositories/1/pulls?page=2>; rel=\"next\", \
             <https://ghe.example.com/api/v3/repositories/1/pulls?page=5>; rel=\"last\"",
        );
        assert_eq!(
            next_page(&h, &base),
            Ok(Some("/api/v3/repositories/1/pulls?page=2".to_string()))
        );
        let last_page = link("<https://ghe.example.com/api/v3/x?page=1>; rel=\"first\"");
        assert_eq!(next_page(&last_page, &base), Ok(None));
        assert_eq!(next_page(&HeaderMap::new(), &base), Ok(None));
    }

    #[test]
    fn next_page_on_another_host_is_refused() {
        let base: Uri = "https://api.github.com".parse().expect("uri");
        let h = link("<https://evil.example.com/steal?page=2>; rel=\"next\"");
        assert!(next_page(&h, &base).is_err());
    }
}
