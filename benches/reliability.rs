//! Failure figures that need a whole stack (docs/reliability.md): GitHub answering 5xx or
//! rate-limited on a share of its REST calls while PRs are opened, and whether every job still
//! reaches a final state. `cargo bench --bench reliability [-- PRS PERCENT]` (RabbitMQ at
//! 127.0.0.1:5672; workers use the host runtime: the figure does not depend on the container).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::start_stack;
use tickbot::forge::{CallMatch, Forge, Injected, RateLimitKind};
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::worker::runtime::Runtime;

/// A task and a default test on every PR, both done at once.
const TICKBOT_TOML: &str = r#"
[tasks.lint]
command = ["true"]

[tests.unit]
command = ["true"]
default = true
"#;

/// How long the stack may take to bring every PR to final states.
const SETTLE: Duration = Duration::from_secs(900);

#[tokio::main]
async fn main() {
    let args = support::requested_sections();
    let prs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let percent: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    github_failing(prs, percent).await;
}

async fn github_failing(count: usize, percent: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = start_stack(dir.path(), "faults", None).await;
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    s.forge
        .create_repo(&repo, "main", &[(".tickbot.toml", TICKBOT_TOML)])
        .await
        .expect("repo");
    s.forge.add_collaborator(&repo, "alice", "write");
    let settings = s.worker_settings("w1", Runtime::Host, 4);
    s.start_worker(settings);

    s.forge.faults().fail_share(
        percent,
        vec![
            Injected::Error(500),
            Injected::Error(502),
            Injected::RateLimited(RateLimitKind::Secondary {
                retry_after_secs: 1,
            }),
        ],
        CallMatch::any(),
        11,
    );
    let started = Instant::now();
    let mut heads = Vec::new();
    for i in 0..count {
        let branch = format!("b{i}");
        let head = s
            .forge
            .commit_files(
                &repo,
                &branch,
                Some("main"),
                &[("f", &format!("{i}"))],
                "c",
                "alice",
            )
            .await
            .expect("push");
        let pr = s
            .forge
            .open_pr(&repo, &branch, "main", "t", "- [ ] lint\n", "alice")
            .await
            .expect("open");
        heads.push((pr, head));
    }
    let (settled, last) = settle(&s.forge, &repo, &heads).await;
    let took = started.elapsed();
    s.forge.faults().clear();
    let calls = s.forge.api_calls();
    let failed = calls
        .iter()
        .filter(|c| c.status >= 500 || c.status == 429)
        .count();
    let pending: Vec<String> = last
        .iter()
        .filter(|(_, states)| states.iter().any(|s| s == "pending" || s == "none"))
        .map(|(pr, states)| format!("#{}: {states:?}", pr.0))
        .collect();
    println!(
        "GitHub failing {percent} % of REST calls (500, 502, 429 Retry-After 1 s), {count} PRs \
         with a task and a default test: {settled} of {count} PRs with both contexts final \
         after {:.0} s; {} REST calls, {failed} of them failed ({:.1} %); not final: {}",
        took.as_secs_f64(),
        calls.len(),
        100.0 * failed as f64 / calls.len().max(1) as f64,
        if pending.is_empty() {
            "none".to_string()
        } else {
            pending.join(", ")
        }
    );
    s.shutdown().await;
}

/// Waits until every PR's head has a final `lint` and `unit` state (or [`SETTLE`] passed);
/// how many did, and each PR's latest states of the two.
async fn settle(
    forge: &Forge,
    repo: &RepoName,
    heads: &[(PrNumber, CommitSha)],
) -> (usize, BTreeMap<PrNumber, Vec<String>>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut last = BTreeMap::new();
        for (pr, head) in heads {
            let mut latest: BTreeMap<String, String> = BTreeMap::new();
            for status in forge.statuses(repo, head) {
                latest.insert(status.context, status.state);
            }
            let states = ["lint", "unit"]
                .iter()
                .map(|c| latest.get(*c).cloned().unwrap_or_else(|| "none".into()))
                .collect::<Vec<_>>();
            last.insert(*pr, states);
        }
        let settled = last
            .values()
            .filter(|states| states.iter().all(|s| s != "pending" && s != "none"))
            .count();
        if settled == heads.len() || Instant::now() > deadline {
            return (settled, last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
