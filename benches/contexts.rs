//! Issue 4's numbers (docs/benchmarks.md "Test contexts"), on real RabbitMQ and the local forge:
//!
//! * comment → 👀 acknowledgement visible at the forge, p50/p99, one comment at a time and at
//!   50 comments/s (each comment a `/test unit` on one of 50 PRs);
//! * GitHub API calls for a PR with 10 default contexts, from `opened` until all 10 are
//!   reported and in the summary comment: with a token (statuses) and as a GitHub App (check
//!   runs), by kind of call.
//!
//! `cargo bench --bench contexts` (RabbitMQ at 127.0.0.1:5672). Workers use the host runtime
//! here: the calls and the acknowledgement do not depend on the container.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tickbot::forge::Forge;
use tickbot::ids::{PrNumber, RepoName};
use tickbot::stack::{Stack, StackApp, StackOptions};
use tickbot::worker::runtime::Runtime;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().max(1) as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn stack(dir: &std::path::Path, app: Option<StackApp>) -> Stack {
    Stack::start(StackOptions {
        dir: dir.to_path_buf(),
        amqp_url: Some(AMQP.into()),
        prefix: format!("bench-{}", uuid::Uuid::new_v4()),
        repositories: vec![],
        app,
    })
    .await
    .expect("a stack (is RabbitMQ running?)")
}

/// `.tickbot.toml` with `n` default test contexts that succeed at once.
fn contexts(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("[tests.ctx-{i}]\ncommand = [\"true\"]\nimage = \"localhost/tickbot-test:latest\"\ndefault = true\n")
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

async fn comment_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = stack(dir.path(), None).await;
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    s.forge
        .create_repo(&repo, "main", &[(".tickbot.toml", &contexts(1))])
        .await
        .expect("repo");
    s.forge.add_collaborator(&repo, "alice", "write");
    let mut prs = Vec::new();
    for i in 0..50 {
        let branch = format!("b{i}");
        s.forge
            .commit_files(&repo, &branch, Some("main"), &[("f", "x")], "c", "alice")
            .await
            .expect("push");
        prs.push(
            s.forge
                .open_pr(&repo, &branch, "main", "t", "", "alice")
                .await
                .expect("open"),
        );
    }
    s.forge
        .flush_webhooks(Duration::from_secs(30))
        .await
        .expect("flush");
    tokio::time::sleep(Duration::from_secs(2)).await; // the opened events are handled

    // One at a time.
    let mut low = Vec::new();
    for i in 0..60 {
        let pr = prs[i % prs.len()];
        let at = Utc::now();
        let id = s
            .forge
            .comment(&repo, pr, "/test ctx-0", "alice")
            .await
            .expect("comment");
        let lat = acknowledged(&s.forge, &repo, &[(pr, id, at)]).await;
        if i >= 10 {
            low.extend(lat);
        }
    }
    low.sort();
    println!(
        "comment → 👀 at the forge, one at a time (50 comments): p50 {}  p99 {}",
        ms(percentile(&low, 0.5)),
        ms(percentile(&low, 0.99))
    );

    // 50 comments/s for 10 s, round robin over the 50 PRs.
    let mut sent = Vec::new();
    let start = Instant::now();
    for i in 0..500u32 {
        let due = start + Duration::from_millis(20) * i;
        tokio::time::sleep_until(due.into()).await;
        let pr = prs[i as usize % prs.len()];
        let at = Utc::now();
        let id = s
            .forge
            .comment(&repo, pr, "/test ctx-0", "alice")
            .await
            .expect("comment");
        sent.push((pr, id, at));
    }
    let offered = 500.0 / start.elapsed().as_secs_f64();
    let mut loaded = acknowledged(&s.forge, &repo, &sent).await;
    loaded.sort();
    println!(
        "comment → 👀 at the forge, {offered:.0} comments/s for 10 s (500 comments): p50 {}  p99 {}  max {}",
        ms(percentile(&loaded, 0.5)),
        ms(percentile(&loaded, 0.99)),
        ms(loaded.last().copied().unwrap_or_default())
    );
    s.shutdown().await;
}

/// Calls from `opened` to 10 contexts reported, by kind.
async fn api_calls(app: Option<StackApp>) {
    let label = if app.is_some() {
        "GitHub App (check runs)"
    } else {
        "token (statuses)"
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = stack(dir.path(), app).await;
    let settings = s.worker_settings("w1", Runtime::Host, 4);
    s.start_worker(settings);
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    s.forge
        .create_repo(&repo, "main", &[(".tickbot.toml", &contexts(10))])
        .await
        .expect("repo");
    s.forge.add_collaborator(&repo, "alice", "write");
    for round in 0..2 {
        let branch = format!("topic-{round}");
        let sha = s
            .forge
            .commit_files(&repo, &branch, Some("main"), &[("f", "x")], "c", "alice")
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
            .open_pr(&repo, &branch, "main", "t", "", "alice")
            .await
            .expect("open");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let done = if s.github.is_app() {
                let runs = s.forge.check_runs(&repo, &sha);
                runs.len() == 10 && runs.iter().all(|r| r.status == "completed")
            } else {
                let st = s.forge.statuses(&repo, &sha);
                (0..10).all(|i| {
                    st.iter()
                        .rev()
                        .find(|x| x.context == format!("ctx-{i}"))
                        .is_some_and(|x| x.state == "success")
                })
            };
            let summarized = s
                .forge
                .comments(&repo, pr)
                .iter()
                .any(|c| c.body.matches("| Success [w1] |").count() == 10);
            if done && summarized {
                break;
            }
            assert!(Instant::now() < deadline, "not all reported");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = t.elapsed();
        let calls = s.forge.api_calls();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for c in &calls {
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
        println!(
            "\n{label}, {} caches: {} API calls from `opened` to 10 contexts reported and summarized ({}):",
            if round == 0 { "cold" } else { "warm" },
            calls.len(),
            ms(took)
        );
        for (kind, n) in kinds {
            println!("  {n:>3}  {kind}");
        }
    }
    s.shutdown().await;
}

#[tokio::main]
async fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    if run("ack") {
        comment_acknowledgement().await;
    }
    if run("calls") {
        api_calls(None).await;
        api_calls(Some(
            StackApp::generate(4242, Duration::from_secs(3600)).expect("app keys"),
        ))
        .await;
    }
}
