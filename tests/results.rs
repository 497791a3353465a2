//! End-to-end: worker reports turned into what a user sees. The local forge (real HTTP, HMAC
//! webhooks, real git), the intake, the dispatcher and real RabbitMQ; the test plays the
//! worker: it takes jobs from the job queue, pushes result commits as the bot and publishes
//! `JobReport`s on the results queue.

mod common;

use common::world::World;
use common::{WAIT, redact, wait_for};
use tickbot::dispatch::summary;
use tickbot::forge::CallMatch;
use tickbot::ids::{CommitSha, PrNumber};
use tickbot::job::{Job, JobReport, Outcome, ReportState};
use tickbot::queue::{Outgoing, QueueKind};

const TASKS_TOML: &str = r#"
[tasks.image-refresh]
command = ["./image-refresh", "{args}"]
args = "^[a-z0-9][a-z0-9.-]*$"
commit = true
message = "images: Update {args} image"

[tasks.lint]
command = ["make", "lint"]
"#;

const TWO_TASKS: &str =
    "Refresh two images.\n\n- [ ] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
const FIRST_TICKED: &str =
    "Refresh two images.\n\n- [x] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";

/// A status as a user sees it in the list of a commit: state, description, link.
type Seen = (String, String, Option<String>);

/// `TASKS_TOML` on `main`, and the test as the worker.
async fn world() -> World {
    let mut w = World::new(&[(".tickbot.toml", TASKS_TOML)]).await;
    w.tap_jobs().await;
    w
}

/// A PR with [`TWO_TASKS`] whose first item a worker finished with a result commit.
struct FirstDone {
    pr: PrNumber,
    head: CommitSha,
    first: Job,
    result: CommitSha,
}

async fn first_done(w: &mut World) -> FirstDone {
    let (pr, head) = w.open_pr("alice", &[], TWO_TASKS).await;
    let first = w.next_job().await;
    assert_eq!(
        (first.context.as_str(), &first.head_sha),
        ("image-refresh/fedora-41", &head)
    );
    w.report(&first, ReportState::Started).await;
    w.wait_status(
        &head,
        "image-refresh/fedora-41",
        "pending",
        "In progress [w1]",
    )
    .await;
    let result = w.push_result(&first, "images/fedora-41").await;
    w.report(&first, success(Some(&result), 65)).await;
    FirstDone {
        pr,
        head,
        first,
        result,
    }
}

fn success(commit: Option<&CommitSha>, duration_secs: u64) -> ReportState {
    ReportState::Finished {
        outcome: Outcome::Success,
        commit: commit.cloned(),
        duration_secs,
    }
}

fn failure(reason: &str, duration_secs: u64) -> ReportState {
    ReportState::Finished {
        outcome: Outcome::Failure {
            reason: reason.into(),
        },
        commit: None,
        duration_secs,
    }
}

fn seen(state: &str, description: &str, url: &str) -> Seen {
    (
        state.to_string(),
        description.to_string(),
        Some(url.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_ticks_its_box_and_the_next_one_runs_on_the_new_head() {
    let mut w = world().await;
    let FirstDone {
        pr,
        head,
        first,
        result,
    } = first_done(&mut w).await;

    let second = w.next_job().await;
    assert_eq!(
        (second.context.as_str(), &second.head_sha),
        ("image-refresh/centos-9", &result),
        "the second item is queued for the new head, the result commit"
    );
    let log1 = w.log_url(&first);
    assert_eq!(
        w.statuses(&head, "image-refresh/fedora-41"),
        vec![
            seen("pending", "Not yet tested", &log1),
            seen("pending", "In progress [w1]", &log1),
            seen("success", "Success [w1]", &log1),
        ]
    );
    assert_eq!(w.body(pr), FIRST_TICKED);
    wait_for("the summary", || w.bot_comments(pr).pop()).await;
    let comments = w.bot_comments(pr);
    assert_eq!(comments.len(), 1, "one summary comment");
    insta::assert_snapshot!(redact(&comments[0]));
    // The table's rows are also kept, hidden, in the comment, for the next edit.
    assert_eq!(
        summary::parse(&comments[0]),
        vec![summary::Row {
            context: "image-refresh/fedora-41".into(),
            occurrence: 0,
            text: "image-refresh fedora-41".into(),
            result: "Success [w1]".into(),
            duration_secs: 65,
            log_url: log1,
            commit: Some(result.0.clone()),
        }]
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_report_changes_nothing() {
    let mut w = world().await;
    let done = first_done(&mut w).await;
    w.next_job().await;
    let comments = wait_for("the summary", || {
        Some(w.bot_comments(done.pr)).filter(|c| !c.is_empty())
    })
    .await;

    w.report(&done.first, success(Some(&done.result), 65)).await;
    w.barrier_reports(&done.result, done.pr).await;
    assert_eq!(w.statuses(&done.head, "image-refresh/fedora-41").len(), 3);
    assert_eq!(w.body(done.pr), FIRST_TICKED);
    assert_eq!(w.bot_comments(done.pr), comments);
    assert_eq!(w.jobs_for(done.pr).await.len(), 2, "no job queued again");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_gets_fail_and_its_reason_and_the_summary_is_edited_in_place() {
    let mut w = world().await;
    let FirstDone { pr, result, .. } = first_done(&mut w).await;
    let second = w.next_job().await;
    let summary_id = wait_for("the summary", || w.bot_comments_with_ids(pr).pop())
        .await
        .0;

    w.report(&second, ReportState::Started).await;
    w.wait_status(
        &result,
        "image-refresh/centos-9",
        "pending",
        "In progress [w1]",
    )
    .await;
    w.report(&second, failure("Exit code 1", 3)).await;
    let failed = "Refresh two images.\n\n- [x] image-refresh fedora-41\n- [ ] FAIL: image-refresh centos-9\n";
    wait_for("the FAIL: prefix", || (w.body(pr) == failed).then_some(())).await;
    w.wait_status(
        &result,
        "image-refresh/centos-9",
        "failure",
        "Exit code 1 [w1]",
    )
    .await;
    let log2 = w.log_url(&second);
    assert_eq!(
        w.statuses(&result, "image-refresh/centos-9"),
        vec![
            seen("pending", "Not yet tested", &log2),
            seen("pending", "In progress [w1]", &log2),
            seen("failure", "Exit code 1 [w1]", &log2),
        ]
    );
    let comments = wait_for("the summary's second row", || {
        let c = w.bot_comments_with_ids(pr);
        (c.len() == 1 && c[0].1.contains("centos-9")).then_some(c)
    })
    .await;
    assert_eq!(comments[0].0, summary_id, "edited in place");
    insta::assert_snapshot!(redact(&comments[0].1));
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_fail_runs_the_item_again() {
    let mut w = world().await;
    let FirstDone { pr, result, .. } = first_done(&mut w).await;
    let second = w.next_job().await;
    w.report(&second, failure("Exit code 1", 3)).await;
    wait_for("the FAIL: prefix", || {
        w.body(pr).contains("FAIL:").then_some(())
    })
    .await;

    w.edit(pr, FIRST_TICKED, "alice").await;
    let again = w.next_job().await;
    assert_eq!(
        (again.context.as_str(), &again.head_sha),
        ("image-refresh/centos-9", &result)
    );
    assert_ne!(again.job_id, second.job_id, "a new job");
    w.wait_pending(&result, "image-refresh/centos-9").await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_during_the_tick_is_never_lost() {
    let mut w = world().await;
    let (pr, _) = w.open_pr("alice", &[], TWO_TASKS).await;
    let first = w.next_job().await;

    // The person edits after the worker pushed, before the dispatcher ticks: the re-read sees it.
    let result = w.push_result(&first, "images/fedora-41").await;
    let theirs = format!("{TWO_TASKS}\nNotes from alice.\n");
    w.forge()
        .edit_pr_body(&w.repo, pr, &theirs, "alice")
        .await
        .expect("edit");
    w.report(&first, success(Some(&result), 1)).await;
    let second = w.next_job().await;
    assert_eq!(
        (second.context.as_str(), &second.head_sha),
        ("image-refresh/centos-9", &result),
        "the first item did not run again"
    );
    let ticked = theirs.replacen(
        "[ ] image-refresh fedora-41",
        "[x] image-refresh fedora-41",
        1,
    );
    assert_eq!(w.body(pr), ticked);

    // The person edits in the middle of the tick, after the dispatcher read the body and
    // before its write: the write overwrites it, and the dispatcher puts it back, ticked.
    let result2 = w.push_result(&second, "images/centos-9").await;
    let edited = format!("More notes.\n\n{ticked}");
    let (forge, repo, text) = (w.forge().clone(), w.repo.clone(), edited.clone());
    w.forge().faults().before_next_call(
        CallMatch::method("PATCH", &format!("/repos/{}/pulls/{}", w.repo, pr.0)),
        move || async move {
            forge
                .edit_pr_body(&repo, pr, &text, "alice")
                .await
                .expect("the person's edit");
        },
    );
    w.report(&second, success(Some(&result2), 1)).await;
    let expected = edited.replacen(
        "[ ] image-refresh centos-9",
        "[x] image-refresh centos-9",
        1,
    );
    wait_for("the person's edit, restored and ticked", || {
        (w.body(pr) == expected).then_some(())
    })
    .await;
    w.wait_status(
        &second.head_sha,
        "image-refresh/centos-9",
        "success",
        "Success [w1]",
    )
    .await;

    // Nothing runs again, and the body stays as it is.
    w.barrier_reports(&result2, pr).await;
    assert_eq!(w.body(pr), expected);
    let edits = w
        .forge()
        .deliveries()
        .into_iter()
        .filter(|d| d.event == "pull_request" && d.action.as_deref() == Some("edited"))
        .count();
    assert_eq!(
        edits, 5,
        "alice twice, the bot twice for the ticks and once to restore"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_an_untrusted_person_added_wait_for_their_edit_event_even_when_read_first() {
    let mut w = world().await;
    let (pr, _) = w
        .open_pr("alice", &[], "- [ ] image-refresh fedora-41\n")
        .await;
    let first = w.next_job().await;
    // carol, no collaborator, adds a task to alice's PR, and GitHub is slow to say so: the
    // dispatcher reads her body when it ticks the first box, before her event arrives.
    w.forge().hold_webhooks_from("carol");
    let hers = "- [ ] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
    w.edit(pr, hers, "carol").await;
    let result = w.push_result(&first, "images/fedora-41").await;
    w.report(&first, success(Some(&result), 1)).await;
    let ticked = hers.replacen("[ ]", "[x]", 1);
    w.wait_body(pr, "the first box ticked", &ticked).await;
    w.barrier_reports(&result, pr).await;
    assert_eq!(
        w.jobs_for(pr).await,
        vec![first],
        "her task waits for her event"
    );

    // Her event arrives: her change needs an approval, on the head as it is now.
    w.forge().release_webhooks();
    wait_for("the explanation", || {
        w.bot_comments(pr)
            .into_iter()
            .find(|c| c.contains("@carol"))
    })
    .await;
    w.wait_status(
        &result,
        "image-refresh/centos-9",
        "pending",
        "Manual testing required",
    )
    .await;
    w.barrier().await;
    assert_eq!(
        w.jobs_for(pr).await.len(),
        1,
        "nothing ran without an approval"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_ends_as_it_starts_never_shows_in_progress() {
    let mut w = world().await;
    let (pr, head) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    let job = w.next_job().await;
    // The dispatcher is busy with a comment while the job starts and ends: both reports wait
    // in its inbox and are handled together.
    let mut reaction = w.forge().faults().hold_next_call(CallMatch::method(
        "POST",
        "/repos/acme/images/issues/comments/",
    ));
    w.forge()
        .comment(&w.repo, pr, "/help", "alice")
        .await
        .expect("comment");
    reaction
        .entered()
        .await
        .expect("the dispatcher reacts to the comment");
    w.report(&job, ReportState::Started).await;
    w.report(&job, success(None, 1)).await;
    reaction.release();

    w.wait_status(&head, "lint", "success", "Success [w1]")
        .await;
    w.barrier_reports(&head, pr).await;
    let log = w.log_url(&job);
    assert_eq!(
        w.statuses(&head, "lint"),
        vec![
            seen("pending", "Not yet tested", &log),
            seen("success", "Success [w1]", &log),
        ]
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_for_removed_items_and_old_heads_set_statuses_and_tick_only_what_is_to_do() {
    let mut w = world().await;
    let (pr, head) = w.open_pr("alice", &[], TWO_TASKS).await;
    let first = w.next_job().await;

    // The person removes the running item: the next one starts; the report only sets the status.
    let without = "Refresh two images.\n\n- [ ] image-refresh centos-9\n";
    w.forge()
        .edit_pr_body(&w.repo, pr, without, "alice")
        .await
        .expect("edit");
    let second = w.next_job().await;
    assert_eq!(
        (second.context.as_str(), &second.head_sha),
        ("image-refresh/centos-9", &head)
    );
    w.report(&first, success(None, 1)).await;
    w.wait_status(&head, "image-refresh/fedora-41", "success", "Success [w1]")
        .await;
    assert_eq!(w.body(pr), without);

    // A person pushes while the second item runs: nothing is queued again at their commit,
    // and the report for the old head sets the status there and ticks the item.
    let theirs = w.push(pr, &[("more.txt", "x\n")], "alice").await;
    let rebased = w.push_result(&second, "images/centos-9").await;
    w.report(&second, success(Some(&rebased), 1)).await;
    w.wait_status(&head, "image-refresh/centos-9", "success", "Success [w1]")
        .await;
    wait_for("the ticked box", || {
        (w.body(pr) == "Refresh two images.\n\n- [x] image-refresh centos-9\n").then_some(())
    })
    .await;
    assert!(w.statuses(&theirs, "image-refresh/centos-9").is_empty());
    w.barrier_reports(&rebased, pr).await;
    assert!(w.statuses(&rebased, "image-refresh/centos-9").is_empty());
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infrastructure_error_is_marked_failed_and_a_late_start_leaves_nothing_pending() {
    let mut w = world().await;
    let (pr, head) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    let job = w.next_job().await;
    let log = w.log_url(&job);
    w.report(&job, ReportState::Started).await;
    w.wait_status(&head, "lint", "pending", "In progress [w1]")
        .await;
    w.report(
        &job,
        ReportState::Finished {
            outcome: Outcome::Error {
                reason: "Internal error: the container runtime failed".into(),
            },
            commit: None,
            duration_secs: 2,
        },
    )
    .await;
    wait_for("the FAIL: prefix", || {
        (w.body(pr) == "- [ ] FAIL: lint\n").then_some(())
    })
    .await;
    // A redelivered `Started` after the end must not make the job look running again.
    w.report(&job, ReportState::Started).await;
    w.barrier_reports(&head, pr).await;
    assert_eq!(
        w.statuses(&head, "lint"),
        vec![
            seen("pending", "Not yet tested", &log),
            seen("pending", "In progress [w1]", &log),
            seen(
                "error",
                "Internal error: the container runtime failed [w1]",
                &log
            ),
        ]
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_worker_could_finish_ends_as_an_error_not_in_progress() {
    // The test is the worker whose every delivery crashed: the queue dead-letters the job.
    let mut w = World::new(&[(".tickbot.toml", TASKS_TOML)]).await;
    let mut jobs = w
        .stack
        .broker
        .consume(&QueueKind::Jobs("default".into()), 1)
        .await
        .expect("consume the job queue");
    let (pr, head) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    let delivery = tokio::time::timeout(WAIT, jobs.next())
        .await
        .expect("a job within the wait")
        .expect("the job queue is open")
        .expect("a delivery");
    let job: Job = serde_json::from_slice(&delivery.body).expect("a job message");
    delivery.dead_letter().await.expect("dead-letter the job");

    wait_for("the FAIL: prefix", || {
        (w.body(pr) == "- [ ] FAIL: lint\n").then_some(())
    })
    .await;
    let log = w.log_url(&job);
    w.wait_status(
        &head,
        "lint",
        "error",
        "Internal error: no worker finished the job in 1 deliveries [tickbot]",
    )
    .await;
    assert_eq!(
        w.statuses(&head, "lint").last(),
        Some(&seen(
            "error",
            "Internal error: no worker finished the job in 1 deliveries [tickbot]",
            &log
        ))
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_every_delivery_was_interrupted_still_ends_its_job() {
    let mut w = world().await;
    let (pr, head) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    let job = w.next_job().await;
    // A dispatcher killed again and again while it held the Finished report: the queue
    // dead-letters the report, and the dispatcher gets the notice.
    let report = JobReport::new(&job, "w1", w.log_url(&job), success(None, 1));
    w.stack
        .broker
        .publish(
            &QueueKind::DeadNotices,
            Outgoing {
                message_id: format!("{}-finished", job.job_id),
                body: serde_json::to_vec(&report).expect("encode"),
                priority: 0,
            },
        )
        .await
        .expect("publish the notice");
    w.wait_body(pr, "the tick", "- [x] lint\n").await;
    w.wait_status(&head, "lint", "success", "Success [w1]")
        .await;
    w.stack.shutdown().await;
}
