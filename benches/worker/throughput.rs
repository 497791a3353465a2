//! Section 3, `throughput`: 40 PRs with one trivial task each, N = 1, 2, 4 in-process workers;
//! jobs/s and a check that no job was lost or run twice.

use crate::samples::between;
use crate::trace::{Ev, Recorder, disrupted};
use crate::{podman_runtime, wait_success, wait_ticked, work_root};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::stack::Stack;

/// PRs per worker count.
const PRS: usize = 40;

/// Runs the PRs through 1, 2 and 4 workers (or those picked with `-- n1 n2 n4`).
pub async fn throughput(stack: &mut Stack, repo: &RepoName, recorder: &Recorder, logs: &Path) {
    let picked: Vec<usize> = std::env::args()
        .filter_map(|a| a.strip_prefix('n').and_then(|n| n.parse().ok()))
        .collect();
    for n in [1usize, 2, 4] {
        if !picked.is_empty() && !picked.contains(&n) {
            continue;
        }
        let branches = push_branches(stack, repo, n).await;
        restart_workers(stack, n).await;
        let logs_before = std::fs::read_dir(logs).map(|d| d.count()).unwrap_or(0);
        recorder.take();
        let (start, last, prs) = open_and_finish(stack, repo, &branches).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = recorder.take();
        let mut outcome = count_outcomes(stack, repo, &prs, &events);
        outcome.new_logs = std::fs::read_dir(logs).map(|d| d.count()).unwrap_or(0) - logs_before;
        report(
            n,
            between(start, last).as_secs_f64(),
            outcome,
            disrupted(&events),
        );
    }
    stack.stop_workers().await;
}

/// What happened to the PRs' jobs, to tell whether any was lost or run twice.
#[derive(Default)]
struct Outcome {
    runs: usize,
    distinct_jobs: usize,
    started: usize,
    successes: usize,
    new_logs: usize,
    per_worker: Vec<(String, usize)>,
}

/// Pushes one branch per PR for the `n`-worker round (before anything is timed).
async fn push_branches(stack: &Stack, repo: &RepoName, n: usize) -> Vec<(String, CommitSha)> {
    let mut branches = Vec::new();
    for i in 0..PRS {
        let branch = format!("tp-{n}-{i}");
        let sha = stack
            .forge
            .commit_files(
                repo,
                &branch,
                Some("main"),
                &[(&format!("tp-{n}-{i}.txt"), "x\n")],
                "A change",
                "alice",
            )
            .await
            .expect("push a branch");
        branches.push((branch, sha));
    }
    stack
        .forge
        .flush_webhooks(Duration::from_secs(60))
        .await
        .expect("flush");
    branches
}

/// Replaces the running workers with `n` new ones of concurrency 1.
async fn restart_workers(stack: &mut Stack, n: usize) {
    stack.stop_workers().await;
    for w in 0..n {
        let mut settings = stack.worker_settings(&format!("tp{n}-w{w}"), podman_runtime(), 1);
        settings.work_dir = work_root(&settings.state_dir).join("work");
        stack.start_worker(settings);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Opens all PRs at once and waits for every Success status and ticked box: when the first
/// was opened, the last Success status's time, and the PRs.
async fn open_and_finish(
    stack: &Stack,
    repo: &RepoName,
    branches: &[(String, CommitSha)],
) -> (DateTime<Utc>, DateTime<Utc>, Vec<(PrNumber, CommitSha)>) {
    let start = Utc::now();
    let mut prs = Vec::new();
    for (branch, sha) in branches {
        let pr = stack
            .forge
            .open_pr(repo, branch, "main", "t", "- [ ] noop\n", "alice")
            .await
            .expect("open");
        prs.push((pr, sha.clone()));
    }
    let mut last = start;
    for (pr, sha) in &prs {
        let at = wait_success(&stack.forge, repo, sha, "noop").await;
        wait_ticked(&stack.forge, repo, *pr, "noop").await;
        last = last.max(at);
    }
    (start, last, prs)
}

/// Counts commands run (from the events) and statuses set (at the forge), per worker too.
fn count_outcomes(
    stack: &Stack,
    repo: &RepoName,
    prs: &[(PrNumber, CommitSha)],
    events: &[Ev],
) -> Outcome {
    let mut jobs: Vec<String> = events
        .iter()
        .filter(|e| e.msg == "job command started")
        .map(|e| e.fields["name"].clone())
        .collect();
    let runs = jobs.len();
    jobs.sort();
    jobs.dedup();
    let mut per_worker: HashMap<String, usize> = HashMap::new();
    let (mut started, mut successes) = (0, 0);
    for (_, sha) in prs {
        for s in stack.forge.statuses(repo, sha) {
            let d = s.description.unwrap_or_default();
            if d.starts_with("In progress") {
                started += 1;
                *per_worker.entry(d).or_default() += 1;
            } else if s.state == "success" {
                successes += 1;
            }
        }
    }
    let mut per_worker: Vec<_> = per_worker.into_iter().collect();
    per_worker.sort();
    Outcome {
        runs,
        distinct_jobs: jobs.len(),
        started,
        successes,
        per_worker,
        ..Outcome::default()
    }
}

/// Prints jobs/s for `n` workers and whether every PR's job ran exactly once.
fn report(n: usize, secs: f64, o: Outcome, disrupted: bool) {
    let (successes, started, runs, new_logs) = (o.successes, o.started, o.runs, o.new_logs);
    let spread = o.per_worker;
    println!(
        "\nthroughput, {n} worker(s) × concurrency 1, {PRS} PRs with `- [ ] noop`: \
         {:.2} jobs/s ({secs:.2} s from the first PR opened to the last Success)\n  \
         boxes ticked {PRS}/{PRS}, Success statuses {successes}, In-progress (Started) \
         statuses {started}, commands run {runs} ({} distinct jobs), job logs {new_logs}\n  \
         per worker: {spread:?}\n  → {}",
        PRS as f64 / secs,
        o.distinct_jobs,
        match (
            successes == PRS && started == PRS && runs == PRS && o.distinct_jobs == PRS,
            disrupted
        ) {
            (true, false) => "none lost, none duplicated",
            (true, true) => "none lost, none duplicated (but RabbitMQ went away meanwhile)",
            (false, false) => "MISMATCH",
            (false, true) => "MISMATCH (RabbitMQ went away meanwhile)",
        }
    );
}
