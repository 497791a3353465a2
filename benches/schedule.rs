//! Issue 10's numbers (docs/benchmarks.md "Scheduler"), on the local forge in-process and real
//! RabbitMQ:
//!
//! * `quiet`: passes over 1,000 repositories × 5 schedules with nothing due: wall time and REST
//!   calls per pass, the first (which clones every repository) and the next two, and how many
//!   of those calls counted against the rate limit (a 304 does not);
//! * `due`: one never-refreshed item: the pass that opens its PR, then until the dispatcher has
//!   queued its task (`Not yet tested` on the PR's head), with the REST calls of each part.
//!
//! `cargo bench --bench schedule [quiet|due] [repositories]` (RabbitMQ at 127.0.0.1:5672).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::stats::format_ms;
use support::{requested_sections, section_wanted, start_stack};
use tickbot::forge::Forge;
use tickbot::ids::{PrNumber, RepoName};
use tickbot::scheduler::{self, Acted, Limits};

/// Repositories of the quiet passes unless a number is given.
const REPOS: usize = 1_000;
const SCHEDULES: usize = 5;
const LIMITS: Limits = Limits {
    max_open: 5,
    max_per_hour: 2,
};

/// `.tickbot.toml` with `SCHEDULES` tasks, each scheduled for one item every week.
fn schedules() -> String {
    (0..SCHEDULES)
        .map(|i| {
            format!(
                "[tasks.refresh-{i}]\ncommand = [\"true\"]\ncommit = true\n\
                 message = \"refresh-{i}: {{args}}\"\n\
                 [[schedule]]\ntask = \"refresh-{i}\"\nitems = [\"x\"]\nevery = \"7d\"\n"
            )
        })
        .collect()
}

/// A repository whose every item was refreshed just now.
async fn fresh_repository(forge: &Forge, repo: &RepoName, toml: &str) {
    forge
        .create_repo(repo, "main", &[(".tickbot.toml", toml)])
        .await
        .expect("repo");
    for i in 0..SCHEDULES {
        let file = format!("refresh-{i}.txt");
        let message = format!("refresh-{i}: x");
        forge
            .commit_files(
                repo,
                "main",
                None,
                &[(file.as_str(), "x\n")],
                &message,
                "tickbot",
            )
            .await
            .expect("a landed refresh");
    }
}

/// One scheduler pass over `repo`, as the bot: its items' plans and what it did.
async fn one_pass(
    stack: &tickbot::stack::Stack,
    repo: &RepoName,
    work: &std::path::Path,
    times: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
) -> (scheduler::RepoPlan, Vec<Acted>) {
    scheduler::pass(&stack.github, repo, work, times, ("tickbot", "t@x"), LIMITS)
        .await
        .expect("a pass")
}

async fn quiet(repos: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = start_stack(dir.path(), "bench-schedule", None).await;
    let toml = schedules();
    let repos: Vec<RepoName> = (0..repos)
        .map(|i| format!("acme/repo-{i}").parse().expect("valid"))
        .collect();
    for repo in &repos {
        fresh_repository(&stack.forge, repo, &toml).await;
    }
    let work = dir.path().join("schedule");
    let count = repos.len();
    for name in ["first pass (clones)", "second pass", "third pass"] {
        stack.forge.clear_api_calls();
        let now = chrono::Utc::now();
        let start = Instant::now();
        let mut opened = 0;
        for repo in &repos {
            let times = (now, now - chrono::Duration::minutes(1));
            let (_, acted) = one_pass(&stack, repo, &work, times).await;
            opened += acted
                .iter()
                .filter(|a| matches!(a, Acted::Opened(_)))
                .count();
        }
        let elapsed = start.elapsed();
        let calls = stack.forge.api_calls();
        let refused = calls
            .iter()
            .filter(|c| c.status == 403 || c.status == 429)
            .count();
        // GitHub counts every call but a 304 against the rate limit.
        let counted = calls.iter().filter(|c| c.status != 304).count();
        println!(
            "quiet, {name}: {count} repositories × {SCHEDULES} schedules in {} ({:.1} ms per \
             repository); REST calls {} ({:.1} per repository), counted against the rate limit \
             {counted}, refused {refused}; PRs opened {opened}",
            format_ms(elapsed, 0),
            elapsed.as_secs_f64() * 1000.0 / count as f64,
            calls.len(),
            calls.len() as f64 / count as f64
        );
    }
    stack.shutdown().await;
}

async fn due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = start_stack(dir.path(), "bench-schedule", None).await;
    let repo: RepoName = "acme/images".parse().expect("valid");
    let toml = "[tasks.image-refresh]\ncommand = [\"true\", \"{args}\"]\ncommit = true\n\
                message = \"images: Update {args} image\"\n\
                [[schedule]]\ntask = \"image-refresh\"\nitems = [\"fedora-41\"]\nevery = \"7d\"\n";
    stack
        .forge
        .create_repo(&repo, "main", &[(".tickbot.toml", toml)])
        .await
        .expect("repo");
    let work = dir.path().join("schedule");
    stack.forge.clear_api_calls();
    let now = chrono::Utc::now();
    let start = Instant::now();
    let times = (now, now - chrono::Duration::minutes(1));
    let (_, acted) = one_pass(&stack, &repo, &work, times).await;
    let opened_in = start.elapsed();
    let pass_calls = stack.forge.api_calls().len();
    assert_eq!(acted, vec![Acted::Opened(PrNumber(1))]);
    let head = stack.forge.pr(&repo, PrNumber(1)).expect("the PR").head_sha;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stack.forge.statuses(&repo, &head).iter().any(|s| {
        s.context == "image-refresh/fedora-41" && s.description.as_deref() == Some("Not yet tested")
    }) {
        assert!(Instant::now() < deadline, "the task was never queued");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let queued_in = start.elapsed();
    let all_calls = stack.forge.api_calls().len();
    println!(
        "due: the pass opened the refresh PR in {} ({pass_calls} REST calls, the clone's git \
         fetch and push not counted); its task queued {} after the pass began ({} more REST \
         calls by the dispatcher)",
        format_ms(opened_in, 0),
        format_ms(queued_in, 0),
        all_calls - pass_calls
    );
    stack.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // A number among the arguments is the repository count, the rest are sections.
    let (numbers, sections): (Vec<String>, Vec<String>) = requested_sections()
        .into_iter()
        .partition(|a| a.parse::<usize>().is_ok());
    let repos = numbers
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(REPOS);
    if section_wanted(&sections, "quiet") {
        quiet(repos).await;
    }
    if section_wanted(&sections, "due") {
        due().await;
    }
}
