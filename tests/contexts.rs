//! Test contexts end to end (issue 4): PRs on the local forge, tickbot's intake and dispatcher,
//! real RabbitMQ, and real workers running the PR's own code in podman. Each test reads what a
//! PR's people see: statuses, reactions, replies, the summary comment, the job logs.

mod common;

use common::world::{LONG, World};
use common::{broker_lock, containers, redact, sample, wait_within};
use tickbot::ids::{CommitSha, PrNumber, RepoName};

const TICKBOT_TOML: &str = r#"
[tests.unit]
command = ["sh", "./check"]
image = "localhost/tickbot-test:latest"
timeout = "1m"
default = true

[tests.docs]
command = ["sh", "-c", "echo docs checked"]
image = "localhost/tickbot-test:latest"
default = true
paths = ["doc/**"]

[tests.slow]
command = ["sh", "-c", "echo started; sleep 120"]
image = "localhost/tickbot-test:latest"

[tests.with-bots]
command = ["sh", "-c", "echo bots says: $(cat bots/VERSION)"]
image = "localhost/tickbot-test:latest"

[deps.bots]
repo = "acme/bots"
path = "bots"

[tasks.stamp]
command = ["sh", "-c", "echo stamped > stamped.txt"]
image = "localhost/tickbot-test:latest"
commit = true
message = "Stamp"

[tasks.broken]
command = ["sh", "-c", "echo the task broke; exit 2"]
image = "localhost/tickbot-test:latest"

[secrets.upload]
env = { S3_KEY = "TEST_UPLOAD_KEY" }
"#;

/// The test script on the default branch; PRs change it, and their version is what runs.
const CHECK: &str = "echo checking on main; env\n";

const SECRET: &str = "s3cr3t-upload-key";

async fn world() -> World {
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML), ("check", CHECK)]).await;
    w.start_worker("w1", &[("TEST_UPLOAD_KEY", SECRET)]);
    w
}

/// (state, description) of the context's latest status.
fn state(w: &World, sha: &CommitSha, context: &str) -> Option<(String, String)> {
    w.latest(sha, context).map(|(s, d, _)| (s, d))
}

async fn wait_state(w: &World, sha: &CommitSha, context: &str, want: (&str, &str)) -> String {
    wait_within(LONG, &format!("{context}: {want:?}"), || {
        w.latest(sha, context)
            .filter(|(s, d, _)| (s.as_str(), d.as_str()) == want)
            .map(|(_, _, url)| url.unwrap_or_default())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_contexts_run_for_each_head_and_a_push_cancels_the_running_one() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;

    // A draft does not run; ready for review does.
    let (pr, first) = w
        .open_draft_pr("alice", &[("check", "echo slow check; sleep 120\n")], "")
        .await;
    w.barrier().await;
    assert_eq!(state(&w, &first, "unit"), None, "drafts wait");
    w.forge()
        .mark_ready(&w.repo, pr, "alice")
        .await
        .expect("ready");
    let url = wait_state(&w, &first, "unit", ("pending", "In progress [w1]")).await;
    let container = w.container_of(&url);
    wait_within(LONG, "the test's container", || {
        containers().contains(&container).then_some(())
    })
    .await;
    assert_eq!(
        state(&w, &first, "docs"),
        None,
        "docs only runs when doc/ changes"
    );

    // A push while it runs: the old head's job is cancelled, its container removed, and the
    // new head tested (with the PR's new script).
    let second = w
        .push(pr, &[("check", "echo quick check from the PR\n")], "alice")
        .await;
    wait_state(
        &w,
        &first,
        "unit",
        (
            "error",
            &format!("Cancelled: superseded by {}", second.short()),
        ),
    )
    .await;
    wait_within(LONG, "the cancelled job's container to go", || {
        (!containers().contains(&container)).then_some(())
    })
    .await;
    let url = wait_state(&w, &second, "unit", ("success", "Success [w1]")).await;
    let log = w.log(&url).await;
    assert!(log.contains("quick check from the PR"), "{log}");
    let mut states: Vec<String> = w
        .statuses(&second, "unit")
        .into_iter()
        .map(|(s, d, _)| format!("{s} {d}"))
        .collect();
    // A job that ends within the dispatcher's burst of reports (other contexts report at the
    // same time) never shows In progress; one that runs longer does.
    states.retain(|s| s != "pending In progress [w1]");
    assert_eq!(states, ["pending Not yet tested", "success Success [w1]"]);

    // One summary comment with the test's row; closing cancels nothing left (all finished).
    let summary = w.wait_comment(pr, "| unit | Success [w1] |").await;
    assert!(summary.contains("[log]("), "{summary}");
    w.stack.shutdown().await;
}

/// alice's PR, whose default context `unit` ran.
async fn pr_tested(w: &mut World) -> (PrNumber, CommitSha) {
    let (pr, head) = w.open_pr("alice", &[("README", "hello\n")], "").await;
    wait_state(w, &head, "unit", ("success", "Success [w1]")).await;
    (pr, head)
}

/// `acme/bots`, the dependency, with a PR whose head has a VERSION file: (PR, head).
async fn bots_pr(w: &World) -> (PrNumber, CommitSha) {
    let bots: RepoName = "acme/bots".parse().expect("valid");
    let forge = w.forge();
    forge
        .create_repo(&bots, "main", &[("VERSION", "1.0\n")])
        .await
        .expect("bots repo");
    let files = [("VERSION", "2.0-pr\n")];
    let head = forge
        .commit_files(&bots, "new-image", Some("main"), &files, "Bump", "bob")
        .await
        .expect("bots push");
    let pr = forge
        .open_pr(&bots, "new-image", "main", "Bump", "", "bob")
        .await
        .expect("bots PR");
    (pr, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_is_acknowledged_and_its_commands_run() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (bots_pr, bots_head) = bots_pr(&w).await;
    let (pr, head) = pr_tested(&mut w).await;

    // Three commands and a typo in one comment; quoted and fenced ones are not commands.
    let text = format!(
        "Let's see.\n\n/test docs\n/tset unit\n/test with-bots@bots#{}\n\n> /test slow\n\n```\n/test slow\n```\n",
        bots_pr.0
    );
    let id = w
        .forge()
        .comment(&w.repo, pr, &text, "alice")
        .await
        .expect("comment");
    wait_within(LONG, "the 👀 acknowledgement", || {
        w.forge()
            .comments(&w.repo, pr)
            .into_iter()
            .find(|c| c.id == id)
            .filter(|c| c.reactions.iter().any(|r| r.content == "eyes"))
    })
    .await;
    let reply = w.wait_comment(pr, "did you mean /test?").await;
    insta::assert_snapshot!("typo_in_a_comment", redact(&reply));
    wait_state(&w, &head, "docs", ("success", "Success [w1]")).await;
    let dep = format!("with-bots@bots#{}", bots_pr.0);
    let note = format!("(bots#{} at {})", bots_pr.0, bots_head.short());
    let done = format!("Success [w1] {note}");
    let url = wait_state(&w, &head, &dep, ("success", &done)).await;
    assert_eq!(
        w.statuses(&head, &dep)[0].1,
        format!("Not yet tested {note}")
    );
    let log = w.log(&url).await;
    assert!(log.contains("bots says: 2.0-pr"), "{log}");
    w.barrier().await;
    assert_eq!(
        state(&w, &head, "slow"),
        None,
        "quoted and fenced commands don't run"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_why_and_what_to_do() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, head) = pr_tested(&mut w).await;
    w.forge()
        .comment(&w.repo, pr, "/test nosuch\n/retest", "alice")
        .await
        .expect("comment");
    let reply = w.wait_comment(pr, "unknown context `nosuch`").await;
    insta::assert_snapshot!("refusals_of_test_and_retest", redact(&reply));

    w.forge()
        .comment(&w.repo, pr, "/test slow\n/help", "mallory")
        .await
        .expect("comment");
    let reply = w
        .wait_comment(pr, "`/test` refused: @mallory is not trusted")
        .await;
    // Help is for everyone.
    insta::assert_snapshot!("untrusted_test_and_help", redact(&reply));
    w.barrier().await;
    assert_eq!(state(&w, &head, "slow"), None);
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alone_runs_the_contexts_that_apply_again_as_new_jobs() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, head) = pr_tested(&mut w).await;
    let first_run = w.statuses(&head, "unit")[0].2.clone();
    w.forge()
        .comment(&w.repo, pr, "/test", "alice")
        .await
        .expect("comment");
    wait_within(LONG, "unit run again", || {
        let runs = w.statuses(&head, "unit");
        (runs.iter().filter(|s| s.1 == "Success [w1]").count() == 2).then_some(())
    })
    .await;
    assert_ne!(
        w.latest(&head, "unit").and_then(|s| s.2),
        first_run,
        "a new job"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_what_runs_and_why_the_rest_does_not() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, _) = pr_tested(&mut w).await;
    w.forge()
        .comment(&w.repo, pr, "/explain", "mallory")
        .await
        .expect("comment");
    let reply = w
        .wait_comment(pr, "what tickbot does for this pull request")
        .await;
    insta::assert_snapshot!("explain", redact(&reply));
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_pr_runs_only_after_ok_to_test_and_never_sees_a_secret() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, head) = w
        .open_pr("mallory", &[("check", "echo mallory was here; env\n")], "")
        .await;
    wait_state(&w, &head, "unit", ("pending", "Manual testing required")).await;
    let comment = w.wait_comment(pr, "not trusted").await;
    assert!(comment.contains("`/ok-to-test`"), "{comment}");
    w.barrier().await;
    assert_eq!(
        w.statuses(&head, "unit").len(),
        1,
        "no job runs for an untrusted author"
    );

    w.forge()
        .comment(&w.repo, pr, "/ok-to-test", "alice")
        .await
        .expect("comment");
    let url = wait_state(&w, &head, "unit", ("success", "Success [w1]")).await;
    let log = w.log(&url).await;
    assert!(log.contains("mallory was here"), "{log}");
    assert!(!log.contains(SECRET), "no secret inside: {log}");
    assert!(
        !log.contains(w.forge().bot_token()),
        "no token inside: {log}"
    );

    // A later push by the untrusted author needs a new approval.
    let second = w.push(pr, &[("check", "echo again\n")], "mallory").await;
    wait_state(&w, &second, "unit", ("pending", "Manual testing required")).await;
    let untrusted = w
        .bot_comments(pr)
        .into_iter()
        .filter(|c| c.contains("not trusted"))
        .count();
    assert_eq!(untrusted, 2, "one comment per head that needs approval");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_close_stop_jobs_and_task_adds_a_checkbox_that_runs() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, head) = w.open_pr("alice", &[("README", "x\n")], "").await;
    wait_state(&w, &head, "unit", ("success", "Success [w1]")).await;

    w.forge()
        .comment(&w.repo, pr, "/test slow", "alice")
        .await
        .expect("comment");
    let url = wait_state(&w, &head, "slow", ("pending", "In progress [w1]")).await;
    w.forge()
        .comment(&w.repo, pr, "/cancel slow", "alice")
        .await
        .expect("comment");
    wait_state(&w, &head, "slow", ("error", "Cancelled by @alice")).await;
    let container = w.container_of(&url);
    wait_within(LONG, "the cancelled container to go", || {
        (!containers().contains(&container)).then_some(())
    })
    .await;
    w.forge()
        .comment(&w.repo, pr, "/cancel", "alice")
        .await
        .expect("comment");
    w.wait_comment(pr, "nothing is queued or running at").await;

    // `/task` adds the line; it runs like any checkbox and gets ticked.
    w.forge()
        .comment(&w.repo, pr, "/task stamp", "alice")
        .await
        .expect("comment");
    wait_within(LONG, "the task ticked", || {
        w.body(pr).contains("- [x] stamp").then_some(())
    })
    .await;
    assert_eq!(w.file(pr, "stamped.txt"), "stamped\n");

    // Closing cancels what still runs.
    let head = w.head(pr);
    w.forge()
        .comment(&w.repo, pr, "/test slow", "alice")
        .await
        .expect("comment");
    wait_state(&w, &head, "slow", ("pending", "In progress [w1]")).await;
    w.forge()
        .close_pr(&w.repo, pr, "alice")
        .await
        .expect("close");
    wait_state(
        &w,
        &head,
        "slow",
        ("error", "Cancelled: pull request closed"),
    )
    .await;
    w.forge()
        .comment(&w.repo, pr, "/test unit", "alice")
        .await
        .expect("comment");
    w.wait_comment(pr, "this pull request is closed; reopen it first")
        .await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_projects_context_runs_against_this_pr() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    // acme/app tests with acme/images checked out at `images/`.
    let app: RepoName = "acme/app".parse().expect("valid");
    let app_toml = r#"
[tests.integration]
command = ["sh", "-c", "echo app runs with: $(cat images/marker)"]
image = "localhost/tickbot-test:latest"

[deps.images]
repo = "acme/images"
path = "images"
"#;
    let app_main = w
        .forge()
        .create_repo(&app, "main", &[(".tickbot.toml", app_toml)])
        .await
        .expect("app repo");
    let (pr, head) = w
        .open_pr("alice", &[("marker", "the PR's marker\n")], "")
        .await;
    w.forge()
        .comment(
            &w.repo,
            pr,
            "/test integration@acme/app\n/test integration@acme/nosuch",
            "alice",
        )
        .await
        .expect("comment");
    let context = "integration@acme/app";
    let note = format!("(acme/app/main at {})", app_main.short());
    let url = wait_state(
        &w,
        &head,
        context,
        ("success", &format!("Success [w1] {note}")),
    )
    .await;
    let log = w.log(&url).await;
    assert!(log.contains("app runs with: the PR's marker"), "{log}");
    w.wait_comment(pr, "tickbot cannot see the repository acme/nosuch")
        .await;
    w.stack.shutdown().await;
}

/// tickbot as a GitHub App, with installation tokens that live 31 s: octocrab renews a token
/// 30 s before it expires, so each serves for a second, a story needs several, and none may
/// ever be refused.
async fn app_world() -> World {
    let files = [(".tickbot.toml", TICKBOT_TOML), ("check", CHECK)];
    let mut w = World::with_app(&files, std::time::Duration::from_secs(31)).await;
    w.start_worker("w1", &[]);
    w
}

/// The check runs of `name` on `head`, oldest first.
fn check_runs(w: &World, head: &CommitSha, name: &str) -> Vec<tickbot::forge::CheckRun> {
    w.forge()
        .check_runs(&w.repo, head)
        .into_iter()
        .filter(|r| r.name == name)
        .collect()
}

/// Waits for the latest check run of `name` to conclude `conclusion`.
async fn wait_check_run(
    w: &World,
    head: &CommitSha,
    name: &str,
    conclusion: &str,
) -> tickbot::forge::CheckRun {
    wait_within(LONG, &format!("{name}: {conclusion}"), || {
        check_runs(w, head, name)
            .pop()
            .filter(|r| r.conclusion.as_deref() == Some(conclusion))
    })
    .await
}

/// Every API call was made with a valid installation token, renewed before it expired.
fn assert_tokens_never_refused(w: &World) {
    let calls = w.forge().api_calls();
    let refused: Vec<_> = calls.iter().filter(|c| c.status == 401).collect();
    assert!(refused.is_empty(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_app_a_failed_test_is_a_check_run_with_the_logs_tail_and_rerun_and_retry() {
    let _shared = broker_lock().read().await;
    let mut w = app_world().await;
    let files = [("check", "echo boom from the PR; exit 1\n")];
    let (_, head) = w.open_pr("alice", &files, "").await;
    let failed = wait_check_run(&w, &head, "unit", "failure").await;
    assert_eq!(failed.output["title"], "Exit code 1 [w1]");
    let details = failed.details_url.clone().expect("details link to the log");
    assert!(details.contains("/logs/j"), "{details}");
    let text = failed.output["text"].as_str().unwrap_or_default();
    assert!(text.contains("boom from the PR"), "the log's tail: {text}");
    assert_eq!(failed.actions[0]["identifier"], "retry");
    assert!(
        w.forge()
            .statuses(&w.repo, &head)
            .iter()
            .all(|s| s.context != "unit"),
        "an App reports with check runs, not statuses"
    );

    // Re-run makes a new run of the same context, which runs a new job.
    w.forge()
        .rerun_check_run(&w.repo, failed.id, "alice")
        .await
        .expect("re-run");
    let second = wait_within(LONG, "the re-run to fail again", || {
        check_runs(&w, &head, "unit")
            .into_iter()
            .find(|r| r.id != failed.id && r.conclusion.as_deref() == Some("failure"))
    })
    .await;
    assert_ne!(second.details_url, failed.details_url, "a new job");
    // Retry does the same.
    w.forge()
        .click_check_run_action(&w.repo, second.id, "retry", "alice")
        .await
        .expect("retry");
    wait_within(LONG, "the retry's run", || {
        (check_runs(&w, &head, "unit").len() == 3).then_some(())
    })
    .await;
    assert_tokens_never_refused(&w);
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_app_a_failed_tasks_rerun_removes_its_fail_and_runs_it_again() {
    let _shared = broker_lock().read().await;
    let mut w = app_world().await;
    let (pr, head) = w.open_pr("alice", &[], "- [ ] broken\n").await;
    let task_run = wait_check_run(&w, &head, "broken", "failure").await;
    w.wait_body(pr, "the task marked FAIL:", "- [ ] FAIL: broken\n")
        .await;
    w.forge()
        .rerun_check_run(&w.repo, task_run.id, "alice")
        .await
        .expect("re-run the task");
    wait_within(LONG, "the task's second run to fail", || {
        let runs = check_runs(&w, &head, "broken");
        (runs.len() == 2 && runs[1].conclusion.as_deref() == Some("failure")).then_some(())
    })
    .await;
    w.wait_body(pr, "the task marked FAIL: again", "- [ ] FAIL: broken\n")
        .await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_app_cancel_stops_a_running_check_run() {
    let _shared = broker_lock().read().await;
    let mut w = app_world().await;
    let (pr, head) = w.open_pr("alice", &[], "").await;
    w.forge()
        .comment(&w.repo, pr, "/test slow", "alice")
        .await
        .expect("comment");
    let running = wait_within(LONG, "slow in progress", || {
        check_runs(&w, &head, "slow")
            .pop()
            .filter(|r| r.status == "in_progress")
    })
    .await;
    assert_eq!(running.actions[0]["identifier"], "cancel");
    w.forge()
        .click_check_run_action(&w.repo, running.id, "cancel", "alice")
        .await
        .expect("cancel");
    let cancelled = wait_check_run(&w, &head, "slow", "cancelled").await;
    assert_eq!(cancelled.output["title"], "Cancelled by @alice");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_app_workers_fetch_and_push_with_installation_tokens() {
    let _shared = broker_lock().read().await;
    // Tokens that live 30 s: octocrab renews any token within 30 s of its end, so every use
    // renews it, however fast the story runs (with 31 s it renewed only a story slower than
    // one second).
    let files = [(".tickbot.toml", TICKBOT_TOML), ("check", CHECK)];
    let mut w = World::with_app(&files, std::time::Duration::from_secs(30)).await;
    w.start_worker("w1", &[]);
    let (pr, _) = w
        .open_pr("alice", &[("README", "y\n")], "- [ ] stamp\n")
        .await;
    w.wait_body(pr, "the task pushed and ticked", "- [x] stamp\n")
        .await;
    assert_eq!(w.file(pr, "stamped.txt"), "stamped\n");
    let pushers: Vec<String> = w
        .forge()
        .deliveries()
        .into_iter()
        .filter(|d| d.action.as_deref() == Some("synchronize"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(&d.body).ok())
        .map(|v| {
            v["sender"]["login"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        pushers,
        [w.forge().bot_login()],
        "pushed as the app (an installation token), not anonymously"
    );
    let tokens = w
        .forge()
        .api_calls()
        .iter()
        .filter(|c| c.path.starts_with("/app/installations/"))
        .count();
    assert!(tokens >= 2, "installation tokens renewed: {tokens}");
    assert_tokens_never_refused(&w);
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_base_run_sees_the_base_branchs_newer_file_and_a_conflict_fails_with_why() {
    let _shared = broker_lock().read().await;
    let toml = r#"
[tests.merged]
command = ["sh", "-c", "cat shared; cat newer"]
image = "localhost/tickbot-test:latest"
merge = true
"#;
    let files = [(".tickbot.toml", toml), ("shared", "from main\n")];
    let mut w = World::new(&files).await;
    w.start_worker("w1", &[]);
    let (clean, clean_head) = w.open_pr("alice", &[("mine", "a file\n")], "").await;
    let (conflicting, conflicting_head) = w.open_pr("alice", &[("shared", "theirs\n")], "").await;
    // The base branch moves on after both PRs were opened.
    let newer = [("newer", "only on main\n"), ("shared", "changed on main\n")];
    let base = w
        .forge()
        .commit_files(&w.repo, "main", None, &newer, "Newer on main", "alice")
        .await
        .expect("main moves");
    let at = &base.0[..7];

    for pr in [clean, conflicting] {
        w.forge()
            .comment(&w.repo, pr, "/test merged", "alice")
            .await
            .expect("comment");
    }
    let passed = format!("Success [w1] (with `main` at {at})");
    let log = wait_state(&w, &clean_head, "merged", ("success", &passed)).await;
    let shown = w.log(&log).await;
    assert!(shown.contains("changed on main\nonly on main\n"), "{shown}");
    let failed = format!("does not merge cleanly [w1] (with `main` at {at})");
    let log = wait_state(&w, &conflicting_head, "merged", ("failure", &failed)).await;
    let shown = w.log(&log).await;
    let said = format!("does not merge cleanly with main at {at}; conflicts in:\n  shared\n");
    assert!(shown.contains(&said), "{shown}");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_job_times_outcomes_and_refusals_from_metrics() {
    let _shared = broker_lock().read().await;
    let toml = r#"
[tests.metered]
command = ["sh", "-c", "echo metered"]
image = "localhost/tickbot-test:latest"
default = true
"#;
    let mut w = World::new(&[(".tickbot.toml", toml)]).await;
    // A worker as its own process, serving its own `/metrics`.
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut worker = w.worker_process_with("w1", &[("TICKBOT__METRICS__LISTEN", &addr)]);
    let (pr, head) = w.open_pr("alice", &[("change", "a change\n")], "").await;
    wait_state(&w, &head, "metered", ("success", "Success [w1]")).await;
    let scraped = wait_within(LONG, "the worker's metrics", || {
        let text = common::try_http_get(&addr, "/metrics")?;
        text.contains("tickbot_jobs_total").then_some(text)
    })
    .await;
    let series = [("pool", "default"), ("context", "metered")];
    let ended = [series[0], series[1], ("outcome", "success")];
    assert_eq!(
        sample(&scraped, "tickbot_jobs_total", &ended),
        Some(1.0),
        "{scraped}"
    );
    for name in [
        "tickbot_job_queue_wait_seconds_count",
        "tickbot_job_run_seconds_count",
    ] {
        assert_eq!(
            sample(&scraped, name, &series),
            Some(1.0),
            "{name}: {scraped}"
        );
    }
    let running = sample(&scraped, "tickbot_jobs_running", &series[..1]);
    assert_eq!(running, Some(0.0), "{scraped}");

    // A refusal people see is counted by its kind (the dispatcher runs in this process, whose
    // `/metrics` the intake serves).
    let intake = w.stack.intake_url.trim_start_matches("http://").to_string();
    let refused = |text: &str| {
        sample(text, "tickbot_refusals_total", &[("reason", "NotTrusted")]).unwrap_or(0.0)
    };
    let before = refused(&common::http_get(&intake, "/metrics"));
    w.forge()
        .comment(&w.repo, pr, "/test metered", "mallory")
        .await
        .expect("comment");
    w.wait_comment(pr, "not trusted").await;
    let after = refused(&common::http_get(&intake, "/metrics"));
    assert!(after >= before + 1.0, "{before} → {after}");
    worker.kill().expect("stop the worker");
    worker.wait().expect("reaped");
    w.stack.shutdown().await;
}
