//! Fault injection and the API call log.
//!
//! Tests use these to see how the bot behaves when GitHub is slow, failing or rate limiting,
//! and to count the REST calls it makes. Both are consulted by the REST middleware in
//! [`super::api`] for every call; git traffic and the `/_forge` control API are not affected.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// Which REST calls a fault applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMatch {
    /// `GET`, `PATCH`…; `None` matches every method.
    #[serde(default)]
    pub method: Option<String>,
    /// Prefix of the path (without query), e.g. `/repos/acme/widgets/statuses`.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

impl CallMatch {
    /// Every call.
    pub fn any() -> Self {
        Self::default()
    }
    /// Calls whose path starts with `prefix`.
    pub fn path(prefix: &str) -> Self {
        CallMatch {
            method: None,
            path_prefix: Some(prefix.to_string()),
        }
    }
    /// Calls with this method whose path starts with `prefix`.
    pub fn method(method: &str, prefix: &str) -> Self {
        CallMatch {
            method: Some(method.to_ascii_uppercase()),
            path_prefix: Some(prefix.to_string()),
        }
    }
    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

/// How a rate-limited call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RateLimitKind {
    /// Primary limit: 403, `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` this many seconds ahead.
    Primary { reset_after_secs: u64 },
    /// Secondary limit: 429 with `Retry-After`.
    Secondary { retry_after_secs: u64 },
}

/// The answer the middleware gives instead of calling the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    Error(u16),
    RateLimited(RateLimitKind),
}

#[derive(Debug, Clone)]
struct Rule {
    remaining: u32,
    matcher: CallMatch,
    answer: Injected,
}

#[derive(Debug, Default)]
struct FaultState {
    latency: Duration,
    rules: Vec<Rule>,
    share: Option<Share>,
}

/// A share of all matching calls failing at random, for as long as it is set.
#[derive(Debug)]
struct Share {
    percent: u32,
    matcher: CallMatch,
    answers: Vec<Injected>,
    rng: rand::rngs::StdRng,
}

/// Something a test runs just before the forge handles a call, e.g. a person's edit that must
/// land between the bot's read and its write. Boxed so any async closure fits.
pub type BeforeCall = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Hooks waiting for their call; not `Debug` by nature, so summarised.
#[derive(Default)]
struct Hooks(Vec<(CallMatch, BeforeCall)>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} hooks", self.0.len())
    }
}

/// Faults to inject into the next REST calls. Shared by every clone of the forge.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultState>,
    hooks: Mutex<Hooks>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A panic while holding this lock cannot leave the rules inconsistent, so go on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next `n` matching calls answer `status` (e.g. 500, 502) with GitHub's error JSON.
    pub fn inject_errors(&self, n: u32, status: u16, matching: CallMatch) {
        self.lock().rules.push(Rule {
            remaining: n,
            matcher: matching,
            answer: Injected::Error(status),
        });
    }

    /// The next `n` matching calls are rate limited.
    pub fn rate_limit(&self, n: u32, kind: RateLimitKind, matching: CallMatch) {
        self.lock().rules.push(Rule {
            remaining: n,
            matcher: matching,
            answer: Injected::RateLimited(kind),
        });
    }

    /// From now on, `percent` % of the matching calls (drawn at random from `seed`, so a run
    /// can be repeated) are answered with one of `answers`, until [`clear`](Self::clear).
    pub fn fail_share(&self, percent: u32, answers: Vec<Injected>, matching: CallMatch, seed: u64) {
        use rand::SeedableRng;
        self.lock().share = (!answers.is_empty()).then(|| Share {
            percent: percent.min(100),
            matcher: matching,
            answers,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        });
    }

    /// Runs `hook` (once) right before the forge handles the next call that matches, and only
    /// then handles the call. This makes races deterministic: a person's edit of a PR body
    /// "between the bot's GET and its PATCH" is a hook on the PATCH.
    pub fn before_next_call<F, Fut>(&self, matching: CallMatch, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: BeforeCall = Box::new(move || Box::pin(hook()));
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .push((matching, hook));
    }

    /// Holds the next call that matches until [`HeldCall::release`]: a client (or a process a
    /// test will kill) is then stuck in that call, e.g. the dispatcher busy while reports
    /// pile up in its inbox.
    pub fn hold_next_call(&self, matching: CallMatch) -> HeldCall {
        let (arrived, entered) = tokio::sync::oneshot::channel();
        let (release, released) = tokio::sync::oneshot::channel();
        self.before_next_call(matching, move || async move {
            let _ = arrived.send(());
            let _ = released.await;
        });
        HeldCall { entered, release }
    }

    /// Removes and returns the first hook that matches this call.
    pub(crate) fn take_hook(&self, method: &str, path: &str) -> Option<BeforeCall> {
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        let at = hooks.0.iter().position(|(m, _)| m.matches(method, path))?;
        Some(hooks.0.remove(at).1)
    }

    /// Extra delay before every REST call is answered.
    pub fn latency(&self, delay: Duration) {
        self.lock().latency = delay;
    }

    /// Removes every pending fault, hook and the latency.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clear();
    }

    pub(crate) fn current_latency(&self) -> Duration {
        self.lock().latency
    }

    /// Consumes one use of the first matching rule, if any; else, draws from the failing share.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<Injected> {
        use rand::Rng;
        let mut st = self.lock();
        if let Some(rule) = st
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.matcher.matches(method, path))
        {
            rule.remaining -= 1;
            let answer = rule.answer;
            st.rules.retain(|r| r.remaining > 0);
            return Some(answer);
        }
        let share = st
            .share
            .as_mut()
            .filter(|s| s.matcher.matches(method, path))?;
        if share.rng.gen_range(0..100) >= share.percent {
            return None;
        }
        let pick = share.rng.gen_range(0..share.answers.len());
        Some(share.answers[pick])
    }
}

/// One REST call as the forge saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    pub method: String,
    /// Path with query string, e.g. `/repos/acme/widgets/pulls?state=open`.
    pub path: String,
    pub status: u16,
    pub at: DateTime<Utc>,
}

/// Every REST call, in order.
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<Vec<ApiCall>>,
}

impl CallLog {
    pub fn record(&self, call: ApiCall) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }
    pub fn all(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn clear(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A call the forge holds (see [`Faults::hold_next_call`]).
pub struct HeldCall {
    entered: tokio::sync::oneshot::Receiver<()>,
    release: tokio::sync::oneshot::Sender<()>,
}

impl HeldCall {
    /// Returns once the call has arrived and is being held; an error if the hook was dropped
    /// unrun (the faults were cleared).
    pub async fn entered(&mut self) -> Result<(), tokio::sync::oneshot::error::RecvError> {
        (&mut self.entered).await
    }

    /// Lets the call go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up_in_order_and_only_when_matching() {
        let f = Faults::default();
        f.inject_errors(1, 502, CallMatch::method("PATCH", "/repos/a/b/pulls"));
        f.inject_errors(2, 500, CallMatch::any());
        assert_eq!(
            f.take("GET", "/repos/a/b/pulls/1"),
            Some(Injected::Error(500))
        );
        assert_eq!(
            f.take("PATCH", "/repos/a/b/pulls/1"),
            Some(Injected::Error(502))
        );
        assert_eq!(f.take("PATCH", "/x"), Some(Injected::Error(500)));
        assert_eq!(f.take("PATCH", "/x"), None);
    }

    #[test]
    fn a_failing_share_fails_about_that_share_the_same_way_for_a_seed() {
        let draws = |seed| {
            let faults = Faults::default();
            faults.fail_share(20, vec![Injected::Error(502)], CallMatch::any(), seed);
            (0..1000)
                .map(|_| faults.take("GET", "/repos/a/b").is_some())
                .collect::<Vec<_>>()
        };
        let failed = draws(7).iter().filter(|f| **f).count();
        assert!((150..250).contains(&failed), "{failed} of 1000 failed");
        assert_eq!(draws(7), draws(7));
        let faults = Faults::default();
        faults.fail_share(100, vec![Injected::Error(502)], CallMatch::path("/x"), 1);
        assert_eq!(
            faults.take("GET", "/repos/a/b"),
            None,
            "only matching calls"
        );
        faults.clear();
        assert_eq!(faults.take("GET", "/x"), None, "cleared");
    }
}
