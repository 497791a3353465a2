//! Issue 12's dispatcher figure (docs/benchmarks.md "One dispatcher's event rate"): how many PR
//! events per second one dispatcher handles when every GitHub call takes 50 ms (the forge adds
//! the latency to each REST call), and with none.
//!
//! 100 PRs are opened at once, each with a checkbox task; an event is handled when its task's
//! `Not yet tested` status is set. `cargo bench --bench dispatch` (RabbitMQ at 127.0.0.1:5672).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use tickbot::ids::RepoName;

const PRS: usize = 100;

async fn run(latency: Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    let stack = support::start_stack(dir.path(), "bench-dispatch", None).await;
    let forge = &stack.forge;
    let config = "[tasks.lint]\ncommand = [\"make\", \"lint\"]\n";
    forge
        .create_repo(&repo, "main", &[(".tickbot.toml", config)])
        .await
        .expect("repo");
    forge.add_collaborator(&repo, "alice", "write");
    let mut heads = Vec::new();
    for i in 0..PRS {
        let files = [("f", i.to_string())];
        let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        let sha = forge
            .commit_files(
                &repo,
                &format!("b{i}"),
                Some("main"),
                &files,
                "change",
                "alice",
            )
            .await
            .expect("push");
        heads.push(sha);
    }
    forge
        .flush_webhooks(Duration::from_secs(10))
        .await
        .expect("flushed");
    forge.faults().latency(latency);
    forge.clear_api_calls();
    let start = Instant::now();
    for i in 0..PRS {
        forge
            .open_pr(
                &repo,
                &format!("b{i}"),
                "main",
                "t",
                "- [ ] lint\n",
                "alice",
            )
            .await
            .expect("open");
    }
    let opened = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut handled_at = Vec::new();
    for sha in &heads {
        while forge.statuses(&repo, sha).is_empty() {
            assert!(
                Instant::now() < deadline,
                "an event was not handled in 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        handled_at.push(start.elapsed());
    }
    let all = handled_at.iter().max().copied().unwrap_or_default();
    let calls = forge.api_calls().len();
    println!(
        "GitHub latency {:>3} ms: {PRS} opened events in {:.2} s → {:.1} events/s; {} REST calls ({:.1} per event); the PRs were opened within {:.2} s",
        latency.as_millis(),
        all.as_secs_f64(),
        PRS as f64 / all.as_secs_f64(),
        calls,
        calls as f64 / PRS as f64,
        opened.as_secs_f64()
    );
    forge.faults().clear();
    stack.shutdown().await;
}

#[tokio::main]
async fn main() {
    for latency in [Duration::ZERO, Duration::from_millis(50)] {
        run(latency).await;
    }
}
