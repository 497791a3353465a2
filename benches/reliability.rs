//! Failure figures that need a whole stack (docs/reliability.md), on RabbitMQ at 127.0.0.1:5672
//! with workers on the host runtime (no figure depends on the container):
//!
//! * `faults [PRS] [PERCENT]`: GitHub answering 5xx or rate-limited on a share of its REST calls
//!   while PRs are opened; does every job still reach a final state?
//! * `races [PRS]`: each PR's tick races a person's edit of the same description (the edit lands
//!   between the bot's read and its write); is any edit lost?
//! * `webhooks [N]`: N `/help` comments (each a signed webhook the bot answers with one reply)
//!   while RabbitMQ is restarted twice; does every delivery that got a 2xx get exactly one reply,
//!   and every one refused get it once redelivered?
//!
//! * `kills [JOBS] [DISPATCHER_KILLS]`: workers and the dispatcher SIGKILLed while PRs run
//!   committing tasks in podman (see `reliability/kills.rs`).
//!
//! `cargo bench --bench reliability -- faults 200 20` / `-- races 100` / `-- webhooks 10000` /
//! `-- kills 100 50`.

#[path = "support/mod.rs"]
mod support;

#[path = "reliability/kills.rs"]
mod kills;

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
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args = support::requested_sections();
    let number =
        |at: usize, default: usize| args.get(at).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("races") => ticks_racing_edits(number(1, 100)).await,
        Some("webhooks") => webhooks_across_broker_restarts(number(1, 10_000)).await,
        Some("kills") => kills::workers_and_dispatcher_killed(number(1, 100), number(2, 50)).await,
        _ => github_failing(number(1, 200), number(2, 20) as u32).await,
    }
}

/// A stack with a repository whose `.tickbot.toml` is [`TICKBOT_TOML`], and a worker.
async fn stack_with_repo(dir: &std::path::Path) -> (tickbot::stack::Stack, RepoName) {
    let mut s = start_stack(dir, "reliability", None).await;
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    s.forge
        .create_repo(&repo, "main", &[(".tickbot.toml", TICKBOT_TOML)])
        .await
        .expect("repo");
    s.forge.add_collaborator(&repo, "alice", "write");
    let settings = s.worker_settings("w1", Runtime::Host, 4);
    s.start_worker(settings);
    (s, repo)
}

/// Opens PR number `i` with `body`, on a branch of its own; its number and head.
async fn open(forge: &Forge, repo: &RepoName, i: usize, body: &str) -> (PrNumber, CommitSha) {
    let branch = format!("b{i}");
    let files = [("f", format!("{i}"))];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let head = forge
        .commit_files(repo, &branch, Some("main"), &files, "c", "alice")
        .await
        .expect("push");
    let pr = forge
        .open_pr(repo, &branch, "main", "t", body, "alice")
        .await
        .expect("open");
    (pr, head)
}

async fn ticks_racing_edits(count: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, repo) = stack_with_repo(dir.path()).await;
    // Hooks match paths by prefix: PRs #100 to #999 make `/pulls/<N>` name one PR each.
    assert!(count <= 900, "at most 900 PRs");
    for i in 0..99 {
        open(&s.forge, &repo, 1000 + i, "no tasks here\n").await;
    }
    let mut prs = Vec::new();
    for i in 0..count {
        // The person's edit lands right before the bot's write of this PR's body.
        let pr = PrNumber(s.forge.pulls(&repo).len() as u64 + 1);
        let theirs = format!("- [ ] lint\n\nNotes from alice on #{}.\n", pr.0);
        let (forge, r, text) = (s.forge.clone(), repo.clone(), theirs.clone());
        s.forge.faults().before_next_call(
            CallMatch::method("PATCH", &format!("/repos/{repo}/pulls/{}", pr.0)),
            move || async move {
                let _ = forge.edit_pr_body(&r, pr, &text, "alice").await;
            },
        );
        let (opened, _) = open(&s.forge, &repo, i, "- [ ] lint\n").await;
        assert_eq!(opened, pr, "PR numbers are given in order");
        prs.push((pr, theirs.replacen("[ ]", "[x]", 1)));
    }
    let started = Instant::now();
    let kept = poll(started + SETTLE, || {
        let kept = prs
            .iter()
            .filter(|(pr, expected)| s.forge.pr(&repo, *pr).is_some_and(|p| &p.body == expected))
            .count();
        (kept == prs.len(), kept)
    })
    .await;
    let lost: Vec<String> = prs
        .iter()
        .filter_map(|(pr, expected)| {
            let body = s.forge.pr(&repo, *pr)?.body;
            (&body != expected).then(|| format!("#{}: {body:?}", pr.0))
        })
        .collect();
    println!(
        "{count} ticks, each racing a person's edit of the same description (between the bot's \
         read and its write): {kept} of {count} descriptions hold the edit and the tick after \
         {:.0} s; edits lost or ticks missing: {}",
        started.elapsed().as_secs_f64(),
        if lost.is_empty() {
            "none".to_string()
        } else {
            lost.join(", ")
        }
    );
    s.shutdown().await;
}

async fn github_failing(count: usize, percent: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, repo) = stack_with_repo(dir.path()).await;

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
        heads.push(open(&s.forge, &repo, i, "- [ ] lint\n").await);
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
    poll(Instant::now() + SETTLE, || {
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
        (settled == heads.len(), (settled, last))
    })
    .await
}

/// Calls `check` every half second until it says it is done or `deadline` passed; its last
/// answer.
async fn poll<T>(deadline: Instant, mut check: impl FnMut() -> (bool, T)) -> T {
    loop {
        let (done, answer) = check();
        if done || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `rabbitmqctl <args>`, which must succeed.
fn rabbitmqctl(args: &[&str]) {
    let ok = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "rabbitmqctl {args:?} failed");
}

async fn webhooks_across_broker_restarts(count: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, repo) = stack_with_repo(dir.path()).await;
    let mut prs = Vec::new();
    for i in 0..20 {
        prs.push(open(&s.forge, &repo, i, "no tasks here\n").await.0);
    }
    s.forge
        .flush_webhooks(Duration::from_secs(60))
        .await
        .expect("flush");
    let started = Instant::now();
    let comments = comment_across_restarts(&s.forge, &repo, &prs, count).await;
    let sent = started.elapsed();

    // What GitHub recorded: each comment's delivery, accepted (2xx) or not (the bot's own
    // replies are delivered too, and ignored by it: they are left out).
    let people: std::collections::BTreeSet<u64> = comments.iter().copied().collect();
    let records: Vec<_> = s
        .forge
        .deliveries()
        .into_iter()
        .filter(|d| d.event == "issue_comment")
        .filter(|d| comment_id(d).is_some_and(|id| people.contains(&id)))
        .collect();
    let accepted = comment_ids(&records, true);
    let refused: Vec<String> = records
        .iter()
        .filter(|d| !d.status.is_some_and(|c| (200..300).contains(&c)))
        .map(|d| d.id.clone())
        .collect();
    // The accepted ones are answered without any help.
    let deadline = Instant::now() + Duration::from_secs(180);
    let unanswered = wait_answered(&s.forge, &repo, &prs, &accepted, deadline).await;
    // The refused ones, redelivered as a person does from GitHub's settings.
    for id in &refused {
        while !matches!(s.forge.redeliver(id).await, Ok(code) if (200..300).contains(&code)) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let never = wait_answered(&s.forge, &repo, &prs, &comments, deadline).await;
    let replies = replies(&s.forge, &repo, &prs);
    let twice = replies.values().filter(|n| **n > 1).count();
    println!(
        "{count} /help comments over {:.0} s with RabbitMQ stopped twice for 2 s: {} \
         deliveries accepted (2xx), {} refused; accepted but never answered: {unanswered}; after \
         redelivering the refused ones: {} of {count} answered, {never} never, {twice} answered \
         more than once; {:.0} s in all",
        sent.as_secs_f64(),
        accepted.len(),
        refused.len(),
        replies.len(),
        started.elapsed().as_secs_f64()
    );
    s.shutdown().await;
}

/// A person's `/help` comments, `count` of them round robin over `prs`, with RabbitMQ stopped
/// for two seconds at a third and at two thirds of them; their ids.
async fn comment_across_restarts(
    forge: &Forge,
    repo: &RepoName,
    prs: &[PrNumber],
    count: usize,
) -> Vec<u64> {
    let mut comments = Vec::new();
    for i in 0..count {
        if i == count / 3 || i == 2 * count / 3 {
            tokio::task::spawn_blocking(|| {
                rabbitmqctl(&["stop_app"]);
                std::thread::sleep(Duration::from_secs(2));
                rabbitmqctl(&["start_app"]);
                rabbitmqctl(&["await_startup"]);
            });
        }
        let pr = prs[i % prs.len()];
        comments.push(
            forge
                .comment(repo, pr, "/help", "alice")
                .await
                .expect("comment"),
        );
        if i % 50 == 49 {
            // Keeps the forge's webhook queue short, as GitHub's pace would.
            forge
                .flush_webhooks(Duration::from_secs(60))
                .await
                .expect("flush");
        }
    }
    forge
        .flush_webhooks(Duration::from_secs(120))
        .await
        .expect("flush");
    comments
}

/// The bot's replies on `prs`, counted by the id of the comment each answers.
fn replies(forge: &Forge, repo: &RepoName, prs: &[PrNumber]) -> BTreeMap<u64, usize> {
    let mut replies = BTreeMap::new();
    for pr in prs {
        for c in forge.comments(repo, *pr) {
            let answered = c
                .body
                .split("tickbot:reply:")
                .nth(1)
                .and_then(|t| t.split(|ch: char| !ch.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok());
            if let Some(id) = answered {
                *replies.entry(id).or_insert(0) += 1;
            }
        }
    }
    replies
}

/// Waits until each of `ids` has a reply, or `deadline`; how many have none.
async fn wait_answered(
    forge: &Forge,
    repo: &RepoName,
    prs: &[PrNumber],
    ids: &[u64],
    deadline: Instant,
) -> usize {
    poll(deadline, || {
        let replies = replies(forge, repo, prs);
        let missing = ids.iter().filter(|id| !replies.contains_key(id)).count();
        (missing == 0, missing)
    })
    .await
}

/// The comment ids of the `issue_comment` deliveries that were (or were not) accepted.
fn comment_ids(records: &[tickbot::forge::DeliveryRecord], accepted: bool) -> Vec<u64> {
    records
        .iter()
        .filter(|d| d.status.is_some_and(|c| (200..300).contains(&c)) == accepted)
        .filter_map(comment_id)
        .collect()
}

/// The id of the comment an `issue_comment` delivery is about.
fn comment_id(delivery: &tickbot::forge::DeliveryRecord) -> Option<u64> {
    let payload: serde_json::Value = serde_json::from_str(&delivery.body).ok()?;
    payload["comment"]["id"].as_u64()
}
