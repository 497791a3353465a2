//! The retry policy for GitHub API calls, as pure decisions (no I/O), so every rule is unit-tested.
//!
//! octocrab's own retry layer is switched off: it repeats POSTs blindly, and a repeated "create
//! comment" after a 502 can post the comment twice. Instead, after each attempt [`decide`] says
//! whether to hand the response to the caller, wait and try again, or give up.
//!
//! The rules, from GitHub's documentation on rate limits and on server errors:
//! * 429, and 403 with `X-RateLimit-Remaining: 0` or a `Retry-After` header, mean "rate limited":
//!   GitHub did **not** process the request, so any request (POST included) may be repeated after
//!   `Retry-After` seconds, or after the `X-RateLimit-Reset` epoch second; if that is further away
//!   than the remaining wait budget, the call fails at once with [`Verdict::RateLimited`].
//! * 5xx and transport errors may come after GitHub processed the request, so only idempotent
//!   requests ([`Repeat::Safe`]) are repeated, with exponential backoff and jitter.
//! * A write computed from an earlier read ([`Repeat::Never`], the PR body) is not repeated at
//!   all, not even after a rate-limit wait: by then a person may have changed what was read, and
//!   only the caller can re-read and recompute.
//! * Everything else is the caller's to interpret (404 → "not found", 422 → refused input, …).

use chrono::{DateTime, Utc};
use hyper::{HeaderMap, StatusCode};
use std::time::Duration;

/// How persistent a client is; built from [`super::GitHubSettings`].
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Total time one call may spend waiting between attempts.
    pub max_wait: Duration,
    /// Backoff before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
}

/// Upper bound of one backoff step, so a large `max_attempts` does not produce hour-long sleeps.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// GitHub's reset time has second granularity and our clock may run slightly ahead of GitHub's;
/// waiting this much longer avoids a retry that is a few milliseconds too early.
const RESET_SLACK: Duration = Duration::from_millis(500);

/// Whether a request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Idempotent (reads, setting a status): repeat after any transient failure.
    Safe,
    /// Not idempotent (creating a comment or PR): repeat only when GitHub certainly did not
    /// process it, i.e. after a rate-limit answer.
    IfNotProcessed,
    /// Derived from state that may change meanwhile: never repeat; the caller re-reads.
    Never,
}

/// What happened on one attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    /// GitHub answered.
    Answer(StatusCode, &'a HeaderMap),
    /// No answer: connection reset, timeout. The request may or may not have arrived.
    Transport,
    /// No connection could be made, so the request certainly did not arrive.
    NotSent,
}

/// What to do after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand the answer to the caller (success or an error it interprets).
    Done,
    /// Wait this long, then repeat the request.
    Retry(Duration),
    /// Rate limited beyond what the budget allows: fail now, GitHub accepts requests again `until`.
    RateLimited { until: DateTime<Utc> },
    /// A failure that must not (or can no longer) be repeated: report it.
    GiveUp,
}

/// Decides what follows attempt number `attempt` (1-based), after `waited` has already been spent
/// sleeping for this call. `jitter` is a random number in `[0, 1)`, passed in to keep this pure.
pub(crate) fn decide(
    policy: &Policy,
    attempt: u32,
    waited: Duration,
    repeat: Repeat,
    outcome: Outcome<'_>,
    now: DateTime<Utc>,
    jitter: f64,
) -> Verdict {
    let attempts_left = attempt < policy.max_attempts;
    let budget = policy.max_wait.saturating_sub(waited);
    match outcome {
        Outcome::Answer(status, headers) if is_rate_limited(status, headers) => {
            let wait =
                rate_limit_wait(headers, now).unwrap_or_else(|| backoff(policy, attempt, jitter));
            if repeat != Repeat::Never && attempts_left && wait <= budget {
                Verdict::Retry(wait)
            } else {
                // A huge Retry-After or reset must not overflow (it comes from a response header).
                let until = chrono::Duration::from_std(wait)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                Verdict::RateLimited { until }
            }
        }
        Outcome::Answer(status, headers) if status.is_server_error() => {
            // GitHub sometimes asks for a pause on 503 as well; honour it when it does.
            let wait =
                retry_after(headers, now).unwrap_or_else(|| backoff(policy, attempt, jitter));
            if repeat == Repeat::Safe && attempts_left && wait <= budget {
                Verdict::Retry(wait)
            } else {
                Verdict::GiveUp
            }
        }
        Outcome::Answer(..) => Verdict::Done,
        Outcome::Transport | Outcome::NotSent => {
            let wait = backoff(policy, attempt, jitter);
            let may_repeat = match outcome {
                Outcome::NotSent => repeat != Repeat::Never,
                _ => repeat == Repeat::Safe,
            };
            if may_repeat && attempts_left && wait <= budget {
                Verdict::Retry(wait)
            } else {
                Verdict::GiveUp
            }
        }
    }
}

/// Primary rate limit (403 or 429 with no requests remaining) or secondary rate limit (403/429
/// with `Retry-After`). A plain 403 is a permission problem and is not repeated.
pub(crate) fn is_rate_limited(status: StatusCode, headers: &HeaderMap) -> bool {
    match status {
        StatusCode::TOO_MANY_REQUESTS => true,
        StatusCode::FORBIDDEN => {
            header_str(headers, "x-ratelimit-remaining").map(str::trim) == Some("0")
                || headers.contains_key("retry-after")
        }
        _ => false,
    }
}

/// How long GitHub asked us to wait: `Retry-After` first (GitHub's documented precedence), then
/// the time until `X-RateLimit-Reset`.
fn rate_limit_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(wait) = retry_after(headers, now) {
        return Some(wait);
    }
    let reset: i64 = header_str(headers, "x-ratelimit-reset")?
        .trim()
        .parse()
        .ok()?;
    let reset = DateTime::<Utc>::from_timestamp(reset, 0)?;
    let until_reset = (reset - now).to_std().unwrap_or(Duration::ZERO);
    Some(until_reset + RESET_SLACK)
}

/// `Retry-After` as delta-seconds (what GitHub sends) or as an HTTP date (what RFC 9110 allows).
fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = header_str(headers, "retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Exponential backoff with "equal jitter": half the step is fixed, half random, so parallel
/// clients that failed together do not retry in lockstep, yet nobody retries immediately.
fn backoff(policy: &Policy, attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    let step = policy
        .initial_backoff
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF);
    let half = step / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Repeat::{IfNotProcessed, Never, Safe};
    use hyper::header::HeaderValue;

    fn policy() -> Policy {
        Policy {
            max_attempts: 4,
            max_wait: Duration::from_secs(60),
            initial_backoff: Duration::from_secs(1),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("test header"));
        }
        map
    }

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
    }

    fn decide_answer(status: u16, h: &HeaderMap, repeat: Repeat, attempt: u32) -> Verdict {
        let status = StatusCode::from_u16(status).expect("status");
        let outcome = Outcome::Answer(status, h);
        decide(
            &policy(),
            attempt,
            Duration::ZERO,
            repeat,
            outcome,
            now(),
            0.5,
        )
    }

    #[test]
    fn answers_that_are_not_failures_go_to_the_caller() {
        for status in [200, 201, 204, 302, 304, 404, 422] {
            assert_eq!(
                decide_answer(status, &HeaderMap::new(), IfNotProcessed, 1),
                Verdict::Done
            );
        }
        // A 403 without rate-limit headers is a permission problem: repeating it cannot help.
        assert_eq!(
            decide_answer(403, &HeaderMap::new(), Safe, 1),
            Verdict::Done
        );
    }

    #[test]
    fn server_errors_are_retried_only_when_safe() {
        let h = HeaderMap::new();
        assert!(matches!(decide_answer(502, &h, Safe, 1), Verdict::Retry(_)));
        assert_eq!(decide_answer(502, &h, IfNotProcessed, 1), Verdict::GiveUp);
        assert_eq!(
            decide_answer(502, &h, Safe, 4),
            Verdict::GiveUp,
            "attempts exhausted"
        );
        let transport = |repeat| {
            decide(
                &policy(),
                1,
                Duration::ZERO,
                repeat,
                Outcome::Transport,
                now(),
                0.0,
            )
        };
        assert!(matches!(transport(Safe), Verdict::Retry(_)));
        assert_eq!(transport(IfNotProcessed), Verdict::GiveUp);
        assert_eq!(transport(Never), Verdict::GiveUp);
        // A request that never left (connection refused) cannot have been processed.
        let not_sent = |repeat| {
            let outcome = Outcome::NotSent;
            decide(&policy(), 1, Duration::ZERO, repeat, outcome, now(), 0.0)
        };
        assert!(matches!(not_sent(IfNotProcessed), Verdict::Retry(_)));
        assert_eq!(not_sent(Never), Verdict::GiveUp);
        assert_eq!(decide_answer(502, &h, Never, 1), Verdict::GiveUp);
    }

    #[test]
    fn rate_limits_are_retried_even_for_posts_and_honour_the_headers() {
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            decide_answer(429, &h, IfNotProcessed, 1),
            Verdict::Retry(Duration::from_secs(7))
        );
        assert_eq!(
            decide_answer(403, &h, IfNotProcessed, 1),
            Verdict::Retry(Duration::from_secs(7))
        );

        let reset = (now().timestamp() + 10).to_string();
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]);
        assert_eq!(
            decide_answer(403, &h, IfNotProcessed, 1),
            Verdict::Retry(Duration::from_secs(10) + RESET_SLACK)
        );
    }

    #[test]
    fn a_write_derived_from_a_read_is_never_repeated_even_when_rate_limited() {
        let h = headers(&[("retry-after", "1")]);
        assert!(matches!(
            decide_answer(429, &h, Never, 1),
            Verdict::RateLimited { .. }
        ));
    }

    #[test]
    fn a_reset_beyond_the_budget_fails_at_once_and_says_until_when() {
        let reset = now().timestamp() + 3600;
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset.to_string()),
        ]);
        match decide_answer(403, &h, Safe, 1) {
            Verdict::RateLimited { until } => assert!(until.timestamp() >= reset),
            other => panic!("expected RateLimited, got {other:?}"),
        }
        // The budget counts what earlier attempts already waited.
        let h = headers(&[("retry-after", "30")]);
        let status = StatusCode::TOO_MANY_REQUESTS;
        let verdict = decide(
            &policy(),
            2,
            Duration::from_secs(45),
            Safe,
            Outcome::Answer(status, &h),
            now(),
            0.0,
        );
        assert!(
            matches!(verdict, Verdict::RateLimited { .. }),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_absurd_retry_after_gives_rate_limited_instead_of_a_panic() {
        let h = headers(&[("retry-after", "18446744073709551615")]);
        assert!(matches!(
            decide_answer(429, &h, Safe, 1),
            Verdict::RateLimited { .. }
        ));
    }

    #[test]
    fn retry_after_may_be_an_http_date() {
        let h = headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:25 GMT")]);
        assert_eq!(
            decide_answer(429, &h, Safe, 1),
            Verdict::Retry(Duration::from_secs(5))
        );
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&p, 3, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(&p, 40, 1.0), MAX_BACKOFF);
    }
}
