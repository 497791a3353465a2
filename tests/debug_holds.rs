//! Debug holds (`/debug <ctx>`, issue 12): a trusted person asks, the next run of the context
//! fails, and its container stays on the worker exactly as long as `[worker] debug_hold`
//! says (or until the PR closes), taking the worker's place meanwhile. Real podman.

mod common;

use common::world::{LONG, World};
use common::{broker_lock, containers, redact, wait_within};
use std::time::{Duration, Instant};

const TICKBOT_TOML: &str = r#"
[tests.flaky]
command = ["sh", "-c", "echo state > left-behind.txt; echo 'error: flaky broke'; exit 1"]
image = "localhost/tickbot-test:latest"

[tests.quick]
command = ["sh", "-c", "echo quick"]
image = "localhost/tickbot-test:latest"
"#;

async fn world(hold: Duration) -> World {
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML)]).await;
    let mut settings = w.stack.worker_settings("w1", common::podman(), 1);
    settings.debug_hold = hold;
    w.stack.start_worker(settings);
    w
}

/// The held container's name, from the comment that announces it.
fn held_container(comment: &str) -> String {
    let start = comment.find("podman exec -it ").expect("the command") + "podman exec -it ".len();
    comment[start..]
        .split_whitespace()
        .next()
        .expect("a name")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_kept_exactly_as_long_as_asked_in_the_workers_place() {
    let _shared = broker_lock().read().await;
    let hold = Duration::from_secs(5);
    let mut w = world(hold).await;
    let (pr, head) = w.open_pr("alice", &[], "A change").await;

    // Someone who may not run tests may not keep containers either.
    w.forge()
        .comment(&w.repo, pr, "/debug flaky", "bob")
        .await
        .expect("comment");
    let refused = w.wait_comment(pr, "@bob").await;
    assert!(
        refused.contains("`/debug` refused: @bob is not trusted"),
        "{refused}"
    );

    w.forge()
        .comment(&w.repo, pr, "/debug flaky", "alice")
        .await
        .expect("comment");
    let asked = w.wait_comment(pr, "runs again at").await;
    insta::assert_snapshot!("debug_asked", redact(&asked));
    let held = w.wait_comment(pr, "is kept for debugging until").await;
    let failed_seen = Instant::now();
    let until = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d").expect("a pattern");
    let container = held_container(&held);
    let text = redact(&held).replace(&container, "<container>");
    insta::assert_snapshot!("debug_held", until.replace_all(&text, "<time>"));
    assert_eq!(
        w.statuses(&head, "flaky").pop().map(|s| s.0),
        Some("failure".into())
    );

    // The person enters it and finds the tree as the failed run left it.
    let inside = common::podman_output(&["exec", &container, "cat", "/work/left-behind.txt"]);
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout),
        "state\n",
        "{inside:?}"
    );

    // The held run takes the worker's only place: another test waits until the hold ends.
    w.forge()
        .comment(&w.repo, pr, "/test quick", "alice")
        .await
        .expect("comment");
    let gone = wait_within(LONG, "the hold to end", || {
        let running = w
            .statuses(&head, "quick")
            .iter()
            .any(|s| s.1.starts_with("In progress") || s.0 == "success");
        let exists = containers().contains(&container);
        assert!(
            !(exists && running),
            "quick ran while the hold took the worker's place"
        );
        (!exists).then(Instant::now)
    })
    .await;
    let kept = gone - failed_seen;
    assert!(
        kept >= hold - Duration::from_secs(2) && kept <= hold + Duration::from_secs(5),
        "kept {kept:?} for a hold of {hold:?}"
    );
    wait_within(LONG, "quick to run after the hold", || {
        w.statuses(&head, "quick")
            .pop()
            .filter(|s| s.0 == "success")
    })
    .await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_pr_ends_its_hold_at_once() {
    let _shared = broker_lock().read().await;
    let mut w = world(Duration::from_secs(600)).await;
    let (pr, _) = w.open_pr("alice", &[], "A change").await;
    w.forge()
        .comment(&w.repo, pr, "/debug flaky", "alice")
        .await
        .expect("comment");
    let held = w.wait_comment(pr, "is kept for debugging until").await;
    let container = held_container(&held);
    assert!(containers().contains(&container));
    w.forge()
        .close_pr(&w.repo, pr, "alice")
        .await
        .expect("closed");
    wait_within(LONG, "the held container removed", || {
        (!containers().contains(&container)).then_some(())
    })
    .await;
    w.stack.shutdown().await;
}
