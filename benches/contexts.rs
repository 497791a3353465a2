//! Issue 4's numbers (docs/benchmarks.md "Test contexts"), on real RabbitMQ and the local forge:
//!
//! * comment → 👀 acknowledgement visible at the forge, p50/p99, one comment at a time and at
//!   50 comments/s (each comment a `/test unit` on one of 50 PRs);
//! * GitHub API calls for a PR with 10 default contexts, from `opened` until all 10 are
//!   reported and in the summary comment: with a token (statuses) and as a GitHub App (check
//!   runs), by kind of call; for contexts that end at once and for contexts of 2 s.
//!
//! `cargo bench --bench contexts` (RabbitMQ at 127.0.0.1:5672). Workers use the host runtime
//! here: the calls and the acknowledgement do not depend on the container.

#[path = "support/mod.rs"]
mod support;

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::stats::{format_ms, percentile};
use support::{requested_sections, section_wanted, start_stack};
use tickbot::forge::{ApiCall, Forge};
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::stack::{Stack, StackApp};
use tickbot::worker::runtime::Runtime;

/// `.tickbot.toml` with `n` default test contexts that succeed after `secs` seconds.
fn contexts(n: usize, secs: u32) -> String {
    (0..n)
        .map(|i| {
            format!("[tests.ctx-{i}]\ncommand = [\"sleep\", \"{secs}\"]\nimage = \"localhost/tickbot-test:latest\"\ndefault = true\n")
        })
        .collect()
}

/// How long after its comment each 👀 was stored at the forge (the reaction's own timestamp,
/// against the wall clock when the comment was made).
async fn acknowledged(
    forge: &Forge,
    repo: &RepoName,
    sent: &[(PrNumber, u64, DateTime<Utc>)],
) -> Vec<Duration> {
    let mut waiting: BTreeMap<u64, (PrNumber, DateTime<Utc>)> =
        sent.iter().map(|(pr, id, at)| (*id, (*pr, *at))).collect();
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiting.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} comments never acknowledged",
            waiting.len()
        );
        let prs: BTreeSet<PrNumber> = waiting.values().map(|(p, _)| *p).collect();
        for pr in prs {
            for c in forge.comments(repo, pr) {
                let Some((_, at)) = waiting.get(&c.id).copied() else {
                    continue;
                };
                if let Some(r) = c.reactions.iter().find(|r| r.content == "eyes") {
                    latencies.push((r.created_at - at).to_std().unwrap_or_default());
                    waiting.remove(&c.id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies
}

/// Comment → 👀 latency, one comment at a time and then at 50 comments/s.
async fn comment_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start_stack(dir.path(), "bench", None).await;
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    let prs = open_prs(&s.forge, &repo, 50).await;
    acknowledged_one_at_a_time(&s.forge, &repo, &prs).await;
    acknowledged_under_load(&s.forge, &repo, &prs).await;
    s.shutdown().await;
}

/// A repository with one default context and `n` open PRs whose `opened` events are handled.
async fn open_prs(forge: &Forge, repo: &RepoName, n: usize) -> Vec<PrNumber> {
    forge
        .create_repo(repo, "main", &[(".tickbot.toml", &contexts(1, 0))])
        .await
        .expect("repo");
    forge.add_collaborator(repo, "alice", "write");
    let mut prs = Vec::new();
    for i in 0..n {
        let branch = format!("b{i}");
        forge
            .commit_files(repo, &branch, Some("main"), &[("f", "x")], "c", "alice")
            .await
            .expect("push");
        prs.push(
            forge
                .open_pr(repo, &branch, "main", "t", "", "alice")
                .await
                .expect("open"),
        );
    }
    forge
        .flush_webhooks(Duration::from_secs(30))
        .await
        .expect("flush");
    tokio::time::sleep(Duration::from_secs(2)).await; // the opened events are handled
    prs
}

/// Comments `/test ctx-0` on `pr`; the comment's id and when it was made.
async fn test_comment(
    forge: &Forge,
    repo: &RepoName,
    pr: PrNumber,
) -> (PrNumber, u64, DateTime<Utc>) {
    let at = Utc::now();
    let id = forge
        .comment(repo, pr, "/test ctx-0", "alice")
        .await
        .expect("comment");
    (pr, id, at)
}

/// 60 comments one at a time (the first 10 warm up); prints p50/p99 of the other 50.
async fn acknowledged_one_at_a_time(forge: &Forge, repo: &RepoName, prs: &[PrNumber]) {
    let mut low = Vec::new();
    for i in 0..60 {
        let sent = test_comment(forge, repo, prs[i % prs.len()]).await;
        let lat = acknowledged(forge, repo, &[sent]).await;
        if i >= 10 {
            low.extend(lat);
        }
    }
    low.sort();
    println!(
        "comment → 👀 at the forge, one at a time (50 comments): p50 {}  p99 {}",
        format_ms(percentile(&low, 0.5), 1),
        format_ms(percentile(&low, 0.99), 1)
    );
}

/// 50 comments/s for 10 s, round robin over the PRs; prints p50/p99/max.
async fn acknowledged_under_load(forge: &Forge, repo: &RepoName, prs: &[PrNumber]) {
    let mut sent = Vec::new();
    let start = Instant::now();
    for i in 0..500u32 {
        let due = start + Duration::from_millis(20) * i;
        tokio::time::sleep_until(due.into()).await;
        sent.push(test_comment(forge, repo, prs[i as usize % prs.len()]).await);
    }
    let offered = 500.0 / start.elapsed().as_secs_f64();
    let mut loaded = acknowledged(forge, repo, &sent).await;
    loaded.sort();
    println!(
        "comment → 👀 at the forge, {offered:.0} comments/s for 10 s (500 comments): p50 {}  p99 {}  max {}",
        format_ms(percentile(&loaded, 0.5), 1),
        format_ms(percentile(&loaded, 0.99), 1),
        format_ms(loaded.last().copied().unwrap_or_default(), 1)
    );
}

/// Calls from `opened` to 10 contexts reported, by kind, with cold and then warm caches.
async fn api_calls(app: Option<StackApp>, secs: u32) {
    let label = if app.is_some() {
        "GitHub App (check runs)"
    } else {
        "token (statuses)"
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = start_stack(dir.path(), "bench", app).await;
    let settings = s.worker_settings("w1", Runtime::Host, 4);
    s.start_worker(settings);
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    s.forge
        .create_repo(&repo, "main", &[(".tickbot.toml", &contexts(10, secs))])
        .await
        .expect("repo");
    s.forge.add_collaborator(&repo, "alice", "write");
    for round in 0..2 {
        let (calls, took) = calls_until_reported(&s, &repo, &format!("topic-{round}")).await;
        println!(
            "\n{label}, contexts of {secs} s, {} caches: {} API calls from `opened` to 10 contexts reported and summarized ({}):",
            if round == 0 { "cold" } else { "warm" },
            calls.len(),
            format_ms(took, 1)
        );
        for (kind, n) in calls_by_kind(&calls) {
            println!("  {n:>3}  {kind}");
        }
    }
    s.shutdown().await;
}

/// Pushes `branch`, opens its PR and waits until all 10 contexts are reported and summarized:
/// the API calls made meanwhile, and how long it took.
async fn calls_until_reported(
    s: &Stack,
    repo: &RepoName,
    branch: &str,
) -> (Vec<ApiCall>, Duration) {
    let sha = s
        .forge
        .commit_files(repo, branch, Some("main"), &[("f", "x")], "c", "alice")
        .await
        .expect("push");
    s.forge
        .flush_webhooks(Duration::from_secs(10))
        .await
        .expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.forge.clear_api_calls();
    let t = Instant::now();
    let pr = s
        .forge
        .open_pr(repo, branch, "main", "t", "", "alice")
        .await
        .expect("open");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(all_reported(s, repo, &sha) && summarized(&s.forge, repo, pr)) {
        assert!(Instant::now() < deadline, "not all reported");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (s.forge.api_calls(), t.elapsed())
}

/// Whether all 10 contexts are final at `sha`: check runs as an App, statuses with a token.
fn all_reported(s: &Stack, repo: &RepoName, sha: &CommitSha) -> bool {
    if s.github.is_app() {
        let runs = s.forge.check_runs(repo, sha);
        runs.len() == 10 && runs.iter().all(|r| r.status == "completed")
    } else {
        let st = s.forge.statuses(repo, sha);
        (0..10).all(|i| {
            st.iter()
                .rev()
                .find(|x| x.context == format!("ctx-{i}"))
                .is_some_and(|x| x.state == "success")
        })
    }
}

/// Whether the PR's summary comment lists all 10 contexts as succeeded.
fn summarized(forge: &Forge, repo: &RepoName, pr: PrNumber) -> bool {
    forge
        .comments(repo, pr)
        .iter()
        .any(|c| c.body.matches("| Success [w1] |").count() == 10)
}

/// Counts calls by method and path, with shas and numbers replaced by `{sha}` and `{n}`.
fn calls_by_kind(calls: &[ApiCall]) -> BTreeMap<String, usize> {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls {
        let path = c.path.split('?').next().unwrap_or_default();
        let kind = path
            .split('/')
            .map(|seg| {
                if seg.len() == 40 && seg.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "{sha}"
                } else if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                    "{n}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        *kinds.entry(format!("{} {kind}", c.method)).or_default() += 1;
    }
    kinds
}

#[tokio::main]
async fn main() {
    let only = requested_sections();
    let run = |section: &str| section_wanted(&only, section);
    if run("ack") {
        comment_acknowledgement().await;
    }
    if run("calls") {
        // Contexts that end at once, and contexts that run a while (each shows In progress).
        for secs in [0, 2] {
            api_calls(None, secs).await;
            let app = StackApp::generate(4242, Duration::from_secs(3600)).expect("app keys");
            api_calls(Some(app), secs).await;
        }
    }
}
