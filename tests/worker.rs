//! End-to-end with real workers: a person's PR on the local forge, tickbot's intake and
//! dispatcher, real RabbitMQ, and workers running the PR's own code in real podman containers
//! and pushing results over real git. Each test asserts what the PR's people would see:
//! commits on the branch, the description, statuses in order, the logs.

mod common;

use common::world::{LONG, World};
use common::{broker_lock, containers, wait_for, wait_within};
use tickbot::ids::{CommitSha, PrNumber};

const TICKBOT_TOML: &str = r#"
[tasks.stamp]
command = ["sh", "./stamp", "{args}"]
args = "^[a-z0-9-]+$"
image = "localhost/tickbot-test:latest"
timeout = "1m"
commit = true
message = "stamps: Add {args}"

[tasks.slow]
command = ["sh", "-c", "echo starting; sleep 6; echo done > slow.txt"]
image = "localhost/tickbot-test:latest"
commit = true
message = "slow: done"

[tasks.hang]
command = ["sleep", "300"]
image = "localhost/tickbot-test:latest"
timeout = "2s"

[tasks.secret]
command = ["sh", "-c", "echo key-length=${#S3_KEY}; env | grep -c forge-bot-token || true"]
image = "localhost/tickbot-test:latest"
secrets = ["upload"]

[tasks.leak]
command = ["sh", "-c", "echo key=$S3_KEY; printf %s user:$S3_KEY | base64; echo $S3_KEY | base64; exit 1"]
image = "localhost/tickbot-test:latest"
secrets = ["upload"]

[secrets.upload]
env = { S3_KEY = "TEST_UPLOAD_KEY" }
"#;

/// The task's script on the default branch; PRs change it, and their version is what runs.
const STAMP: &str = r#"#!/bin/sh
set -eu
if [ "$1" = fail ]; then echo "failing on purpose"; exit 3; fi
mkdir -p stamps
{ echo "$1 from main"; ls /sys/class/net; } > "stamps/$1"
echo "stamped $1"
"#;

/// How many summary comments the PR has, once one of them contains `row`.
async fn summaries_once(w: &World, pr: PrNumber, row: &str) -> usize {
    wait_for("the summary row", || {
        let summaries: Vec<_> = w
            .forge()
            .comments(&w.repo, pr)
            .into_iter()
            .filter(|c| c.body.contains("**tickbot**"))
            .collect();
        summaries
            .iter()
            .any(|c| c.body.contains(row))
            .then_some(summaries.len())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prs_own_code_runs_in_a_container_and_its_results_land_on_the_branch() {
    let _shared = broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)]).await;
    w.start_worker("w1", &[]);
    // The PR changes the task's script: its version is the one that runs.
    let pr_stamp = STAMP.replace("from main", "from the PR");
    let body = "Stamps.\n\n- [ ] stamp one\n- [ ] stamp two\n";
    let (pr, base) = w.open_pr("alice", &[("stamp", &pr_stamp)], body).await;

    w.wait_body(
        pr,
        "both boxes ticked",
        "Stamps.\n\n- [x] stamp one\n- [x] stamp two\n",
    )
    .await;

    // Statuses, in order, each linking to the live log of its job.
    let one = w.statuses(&base, "stamp/one");
    let states: Vec<(&str, &str)> = one
        .iter()
        .map(|(s, d, _)| (s.as_str(), d.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("pending", "Not yet tested"),
            ("pending", "In progress [w1]"),
            ("success", "Success [w1]")
        ]
    );
    let log_url = one[1].2.clone().expect("In progress links to the log");
    assert!(
        log_url.starts_with(&format!("{}/logs/j", w.stack.intake_url)),
        "{log_url}"
    );
    let log = w.log(&log_url).await;
    assert!(
        log.contains("$ sh ./stamp one") && log.contains("stamped one"),
        "{log}"
    );

    // Two result commits, each with its job's trailers, on top of alice's.
    let commits = w.commits_since(&base, pr);
    assert_eq!(commits.len(), 2, "{commits:?}");
    for ((author, subject, trailers), arg) in commits.iter().zip(["one", "two"]) {
        assert_eq!(author, "tickbot");
        assert_eq!(subject, &format!("stamps: Add {arg}"));
        assert!(trailers.contains("Tickbot-Job: j"), "{trailers}");
        assert!(
            trailers.contains(&format!("Tickbot-Log: {}/logs/j", w.stack.intake_url)),
            "{trailers}"
        );
    }
    // The second item ran on the first one's result; both ran the PR's script without network.
    assert_eq!(w.file(pr, "stamps/one"), "one from the PR\nlo\n");
    assert_eq!(w.file(pr, "stamps/two"), "two from the PR\nlo\n");
    let two_head = w.forge().pr(&w.repo, pr).expect("PR");
    let two_base = CommitSha(commits_parent(&w, &two_head.head_sha));
    w.wait_status(&two_base, "stamp/two", "success", "Success [w1]")
        .await;

    // One summary comment, edited in place (after the state it summarises is written).
    assert_eq!(
        summaries_once(&w, pr, "| stamp two | Success [w1] |").await,
        1
    );
    let container = w.container_of(&log_url);
    assert!(
        !containers().contains(&container),
        "no container is left behind: {container}"
    );
    w.stack.shutdown().await;
}

/// The parent of a commit on the forge (the commit a result was made on).
fn commits_parent(w: &World, sha: &CommitSha) -> String {
    let git_dir = w.forge().repo_path(&w.repo);
    common::run(
        "git",
        &[
            "--git-dir",
            git_dir.to_str().expect("utf-8"),
            "rev-parse",
            &format!("{}^", sha.0),
        ],
    )
    .trim()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_or_timeout_is_marked_and_removing_fail_runs_it_again() {
    let _shared = broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)]).await;
    w.start_worker("w1", &[]);
    let (pr, head) = w
        .open_pr(
            "alice",
            &[("notes", "x\n")],
            "- [ ] stamp fail\n- [ ] hang\n",
        )
        .await;

    w.wait_body(
        pr,
        "the failure marked",
        "- [ ] FAIL: stamp fail\n- [ ] FAIL: hang\n",
    )
    .await;
    let log_url = w
        .wait_status(&head, "stamp/fail", "failure", "Exit code 3 [w1]")
        .await
        .expect("log link");
    let log = w.log(&log_url).await;
    assert!(log.contains("failing on purpose"), "{log}");
    let hung = w
        .wait_status(&head, "hang", "failure", "Timeout after 2s [w1]")
        .await
        .expect("log link");
    let container = w.container_of(&hung);
    assert!(
        !containers().contains(&container),
        "the timed-out container is gone: {container}"
    );
    assert!(
        w.commits_since(&head, pr).is_empty(),
        "a failed task commits nothing"
    );

    // Removing `FAIL:` by hand runs the item again, as a new job.
    w.forge()
        .edit_pr_body(&w.repo, pr, "- [ ] stamp fail\n- [ ] FAIL: hang\n", "alice")
        .await
        .expect("edit");
    w.wait_body(
        pr,
        "the re-run marked",
        "- [ ] FAIL: stamp fail\n- [ ] FAIL: hang\n",
    )
    .await;
    // Each run is a job of its own with its own log (a short one may never show In progress).
    let runs = wait_for("the second run's failure", || {
        let mut runs: Vec<_> = w
            .statuses(&head, "stamp/fail")
            .into_iter()
            .filter(|s| s.1 == "Exit code 3 [w1]")
            .map(|s| s.2)
            .collect();
        runs.dedup();
        (runs.len() >= 2).then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 2, "ran twice, each with its own log: {runs:?}");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_only_a_trusted_prs_container_and_the_bot_token_never_does() {
    let _shared = broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)]).await;
    w.start_worker("w1", &[("TEST_UPLOAD_KEY", "s3cr3t")]);
    let (pr, head) = w.open_pr("alice", &[("a", "a\n")], "- [ ] secret\n").await;
    w.wait_body(pr, "the trusted run", "- [x] secret\n").await;
    let url = w.statuses(&head, "secret")[0].2.clone().expect("log link");
    let log = w.log(&url).await;
    assert!(
        log.contains("key-length=6"),
        "the granted secret is there: {log}"
    );
    assert!(
        log.lines().any(|l| l == "0"),
        "no trace of the bot's token: {log}"
    );

    // mallory is not trusted; alice's approval runs her code, without the secret.
    let (pr, head) = w
        .open_pr("mallory", &[("b", "b\n")], "- [ ] secret\n")
        .await;
    wait_for("the manual-testing status", || {
        w.statuses(&head, "secret")
            .iter()
            .any(|s| s.1 == "Manual testing required")
            .then_some(())
    })
    .await;
    w.forge()
        .comment(&w.repo, pr, "/ok-to-test", "alice")
        .await
        .expect("comment");
    w.wait_body(pr, "the approved run", "- [x] secret\n").await;
    let url = w
        .statuses(&head, "secret")
        .into_iter()
        .find_map(|s| s.2)
        .expect("log link");
    let log = w.log(&url).await;
    assert!(
        log.contains("key-length=0"),
        "no secret for an untrusted author: {log}"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_a_job_prints_is_masked_in_its_log_also_when_encoded() {
    use base64::Engine;
    let _shared = broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)]).await;
    let secret = "s3cr3t-value-42";
    w.start_worker("w1", &[("TEST_UPLOAD_KEY", secret)]);
    let (pr, head) = w.open_pr("alice", &[("a", "a\n")], "- [ ] leak\n").await;
    w.wait_body(pr, "the failed run", "- [ ] FAIL: leak\n")
        .await;
    let url = w.statuses(&head, "leak")[0].2.clone().expect("log link");
    let log = w.log(&url).await;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    for clear in [secret, &b64(secret), &b64(&format!("user:{secret}"))] {
        assert!(!log.contains(clear), "{clear} is in the log: {log}");
    }
    let printed: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("$ sh -c"))
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(printed[0], "key=***", "{log}");
    assert!(printed[1..].iter().all(|l| l.contains("***")), "{log}");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_leaves_nothing_pending_and_nothing_twice() {
    let _shared = broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)]).await;
    let mut victim = w.worker_process("victim");
    let (pr, head) = w.open_pr("alice", &[("c", "c\n")], "- [ ] slow\n").await;
    let container = wait_within(LONG, "the victim to start the job", || {
        w.statuses(&head, "slow")
            .into_iter()
            .find(|s| s.1 == "In progress [victim]")
            .and_then(|s| s.2)
            .map(|url| w.container_of(&url))
    })
    .await;
    wait_within(LONG, "the job's container to run", || {
        containers().contains(&container).then_some(())
    })
    .await;
    let _ = victim.kill(); // SIGKILL
    let _ = victim.wait();
    assert!(
        containers().contains(&container),
        "SIGKILL leaves the container running: the next worker must clean it up"
    );

    // The job comes back to another worker and finishes once.
    w.start_worker("rescuer", &[]);
    wait_within(LONG, "the job to finish", || {
        (w.body(pr) != "- [ ] slow\n").then_some(())
    })
    .await;
    let url = w.statuses(&head, "slow")[0].2.clone().expect("log link");
    assert_eq!(w.body(pr), "- [x] slow\n", "log: {}", w.log(&url).await);
    let commits = w.commits_since(&head, pr);
    assert_eq!(commits.len(), 1, "one result commit: {commits:?}");
    wait_for("the rescuer's success", || {
        w.statuses(&head, "slow")
            .iter()
            .any(|s| s.0 == "success" && s.1 == "Success [rescuer]")
            .then_some(())
    })
    .await;
    wait_for("the leftover container removed", || {
        (!containers().contains(&container)).then_some(())
    })
    .await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_takes_no_more_and_exits_zero() {
    let _shared = broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)]).await;
    let mut worker = w.worker_process("leaving");
    let (pr1, head1) = w.open_pr("alice", &[("d", "d\n")], "- [ ] slow\n").await;
    wait_within(LONG, "the job to start", || {
        w.statuses(&head1, "slow")
            .iter()
            .any(|s| s.1 == "In progress [leaving]")
            .then_some(())
    })
    .await;
    let (pr2, head2) = w.open_pr("alice", &[("e", "e\n")], "- [ ] slow\n").await;
    wait_for("the second job queued", || {
        (!w.statuses(&head2, "slow").is_empty()).then_some(())
    })
    .await;

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    w.wait_body(pr1, "the first box", "- [x] slow\n").await;
    wait_for("the running job's success", || {
        w.statuses(&head1, "slow")
            .iter()
            .any(|s| s.1 == "Success [leaving]")
            .then_some(())
    })
    .await;
    assert_eq!(
        w.statuses(&head2, "slow")
            .iter()
            .map(|s| s.1.as_str())
            .collect::<Vec<_>>(),
        vec!["Not yet tested"],
        "the second job was not taken"
    );
    // Another worker takes it.
    w.start_worker("next", &[]);
    w.wait_body(pr2, "the second box", "- [x] slow\n").await;
    w.stack.shutdown().await;
}
