//! End-to-end: worker reports turned into what a user sees. The local forge (real HTTP, HMAC
//! webhooks, real git), the intake, the dispatcher and real RabbitMQ; the test plays the
//! worker: it takes jobs from the job queue, pushes result commits as the bot and publishes
//! `JobReport`s on the results queue.

mod common;

use common::{WAIT, amqp_url, wait_for};
use tickbot::dispatch::summary;
use tickbot::forge::{CallMatch, Forge};
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::job::{Job, JobReport, Outcome, ReportState};
use tickbot::queue::{Consumer, Outgoing, QueueKind};
use tickbot::stack::{Stack, StackOptions};

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

/// A status as a user sees it in the list of a commit: state, description, link.
type Seen = (String, Option<String>, Option<String>);

struct World {
    stack: Stack,
    repo: RepoName,
    jobs: Consumer,
    barriers: usize,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo: RepoName = "acme/widgets".parse().expect("valid");
        let mut stack = Stack::start(StackOptions {
            dir: dir.path().to_path_buf(),
            amqp_url: Some(amqp_url()),
            prefix: format!("results-{}", uuid::Uuid::new_v4()),
            repositories: vec![repo.clone()],
            app: None,
        })
        .await
        .expect("RabbitMQ at 127.0.0.1:5672 must be running (rabbitmq-server -detached)");
        stack.stop_dispatcher().await;
        stack
            .forge
            .create_repo(&repo, "main", &[(".tickbot.toml", TASKS_TOML)])
            .await
            .expect("create repo");
        stack.forge.add_collaborator(&repo, "alice", "write");
        stack.start_dispatcher();
        let jobs = stack
            .broker
            .consume(&QueueKind::Jobs("default".into()), 1)
            .await
            .expect("consume the job queue");
        World {
            stack,
            repo,
            jobs,
            barriers: 0,
            _dir: dir,
        }
    }

    fn forge(&self) -> &Forge {
        &self.stack.forge
    }

    async fn open_pr(&self, branch: &str, body: &str) -> (PrNumber, CommitSha) {
        let sha = self
            .forge()
            .commit_files(
                &self.repo,
                branch,
                Some("main"),
                &[(&format!("{branch}.txt"), "change\n")],
                "A change",
                "alice",
            )
            .await
            .expect("push a branch");
        let pr = self
            .forge()
            .open_pr(&self.repo, branch, "main", "A change", body, "alice")
            .await
            .expect("open a PR");
        (pr, sha)
    }

    fn body(&self, pr: PrNumber) -> String {
        self.forge().pr(&self.repo, pr).expect("the PR").body
    }

    /// The next job a worker would take (acked: the test is that worker).
    async fn next_job(&mut self) -> Job {
        let delivery = tokio::time::timeout(WAIT, self.jobs.next())
            .await
            .expect("a job within the wait")
            .expect("the job queue is open")
            .expect("a delivery");
        let job: Job = serde_json::from_slice(&delivery.body).expect("a job message");
        delivery.ack().await.expect("ack the job");
        job
    }

    /// The worker's result commit, pushed to the PR branch as the bot.
    async fn push_result(&self, job: &Job, file: &str) -> CommitSha {
        self.forge()
            .commit_files(
                &self.repo,
                &job.head_ref,
                None,
                &[(file, "refreshed\n")],
                job.message.as_deref().unwrap_or("result"),
                self.forge().bot_login(),
            )
            .await
            .expect("push the result commit")
    }

    fn log_url(&self, job: &Job) -> String {
        format!("{}/logs/{}", self.stack.intake_url, job.job_id)
    }

    async fn report(&self, job: &Job, state: ReportState) {
        let report = JobReport::new(job, "w1", self.log_url(job), state);
        self.stack
            .broker
            .publish(
                &QueueKind::Results,
                Outgoing {
                    message_id: format!("{}-{}", job.job_id, uuid::Uuid::new_v4()),
                    body: serde_json::to_vec(&report).expect("encode"),
                    priority: 0,
                },
            )
            .await
            .expect("publish the report");
    }

    fn statuses(&self, sha: &CommitSha, context: &str) -> Vec<Seen> {
        self.forge()
            .statuses(&self.repo, sha)
            .into_iter()
            .filter(|s| s.context == context)
            .map(|s| (s.state, s.description, s.target_url))
            .collect()
    }

    async fn wait_status(&self, sha: &CommitSha, context: &str, description: &str) {
        wait_for(&format!("{context}: {description}"), || {
            let last = self.statuses(sha, context).pop()?;
            (last.1.as_deref() == Some(description)).then_some(())
        })
        .await;
    }

    fn bot_comments(&self, pr: PrNumber) -> Vec<(u64, String)> {
        self.forge()
            .comments(&self.repo, pr)
            .into_iter()
            .filter(|c| c.author == self.forge().bot_login())
            .map(|c| (c.id, c.body))
            .collect()
    }

    /// Every report and event sent before this has been handled: a report for a made-up
    /// context is handled after the earlier reports (the results queue is one-at-a-time and
    /// in order), and a fresh PR's job arrives after every job queued earlier.
    async fn barrier(&mut self, sha: &CommitSha, pr: PrNumber) {
        self.barriers += 1;
        let context = format!("barrier-{}", self.barriers);
        let fake = Job {
            context: context.clone(),
            item: None,
            pr,
            head_sha: sha.clone(),
            job_id: format!("jbarrier{}", self.barriers),
            ..self.any_job_template()
        };
        // `Started`: a finished test would add a row to the PR's summary comment.
        self.report(&fake, ReportState::Started).await;
        self.wait_status(sha, &context, "In progress [w1]").await;
        let (other, _) = self
            .open_pr(&format!("barrier-{}", self.barriers), "- [ ] lint\n")
            .await;
        let job = self.next_job().await;
        assert_eq!(
            (job.pr, job.context.as_str()),
            (other, "lint"),
            "no other job was queued before the barrier's"
        );
    }

    fn any_job_template(&self) -> Job {
        Job {
            schema: tickbot::job::JOB_SCHEMA,
            job_id: String::new(),
            kind: tickbot::job::JobKind::Task,
            repo: self.repo.clone(),
            pr: PrNumber(0),
            head_sha: CommitSha(String::new()),
            head_ref: String::new(),
            base_ref: "main".into(),
            clone_url: String::new(),
            base_clone_url: String::new(),
            context: String::new(),
            item: None,
            argv: vec![],
            image: String::new(),
            build: None,
            timeout_secs: 0,
            commit: false,
            message: None,
            secrets: vec![],
            network: false,
            pool: "default".into(),
            priority: 0,
            created_at: chrono::Utc::now(),
            checkouts: Vec::new(),
            main: None,
            note: None,
        }
    }
}

fn success(commit: Option<&CommitSha>, duration_secs: u64) -> ReportState {
    ReportState::Finished {
        outcome: Outcome::Success,
        commit: commit.cloned(),
        duration_secs,
    }
}

fn seen(state: &str, description: &str, url: &str) -> Seen {
    (
        state.to_string(),
        Some(description.to_string()),
        Some(url.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_ticks_its_box_and_the_next_one_runs_on_the_new_head() {
    let mut w = World::new().await;
    let (pr, head) = w.open_pr("topic", TWO_TASKS).await;
    let first = w.next_job().await;
    assert_eq!(
        (first.context.as_str(), &first.head_sha),
        ("image-refresh/fedora-41", &head)
    );
    let log1 = w.log_url(&first);

    w.report(&first, ReportState::Started).await;
    w.wait_status(&head, "image-refresh/fedora-41", "In progress [w1]")
        .await;
    let result = w.push_result(&first, "images/fedora-41").await;
    w.report(&first, success(Some(&result), 65)).await;

    // The second item is queued for the new head, the result commit.
    let second = w.next_job().await;
    assert_eq!(
        (second.context.as_str(), &second.head_sha),
        ("image-refresh/centos-9", &result)
    );
    assert_eq!(
        w.statuses(&head, "image-refresh/fedora-41"),
        vec![
            seen("pending", "Not yet tested", &log1),
            seen("pending", "In progress [w1]", &log1),
            seen("success", "Success [w1]", &log1),
        ]
    );
    let ticked =
        "Refresh two images.\n\n- [x] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
    assert_eq!(w.body(pr), ticked);
    let row1 = format!(
        "| image-refresh fedora-41 | Success [w1] | 1m 05s | [log]({log1}) | {} |\n",
        &result.0[..7]
    );
    let comments = w.bot_comments(pr);
    assert_eq!(comments.len(), 1, "one summary comment");
    let (summary_id, text) = &comments[0];
    assert_eq!(
        text.split("\n\n<!-- tickbot:summary-data").next(),
        Some(
            format!(
                "{}\n**tickbot**\n\n| Task or test | Result | Duration | Log | Commit |\n|---|---|---|---|---|\n{row1}",
                summary::MARKER
            )
            .trim_end()
        )
    );

    // The table's rows are also kept, hidden, in the comment, for the next edit.
    assert_eq!(
        summary::parse(text),
        vec![summary::Row {
            context: "image-refresh/fedora-41".into(),
            occurrence: 0,
            text: "image-refresh fedora-41".into(),
            result: "Success [w1]".into(),
            duration_secs: 65,
            log_url: log1.clone(),
            commit: Some(result.0.clone()),
        }]
    );
    assert_eq!(text, &summary::render(&summary::parse(text)));

    // A redelivered report changes nothing: no second tick, comment or status, no job.
    w.report(&first, success(Some(&result), 65)).await;
    w.barrier(&result, pr).await;
    assert_eq!(w.statuses(&head, "image-refresh/fedora-41").len(), 3);
    assert_eq!(w.body(pr), ticked);
    assert_eq!(w.bot_comments(pr), comments);

    // The second item fails: `FAIL:`, the reason in the status, the summary edited in place.
    let log2 = w.log_url(&second);
    w.report(&second, ReportState::Started).await;
    w.report(
        &second,
        ReportState::Finished {
            outcome: Outcome::Failure {
                reason: "Exit code 1".into(),
            },
            commit: None,
            duration_secs: 3,
        },
    )
    .await;
    let failed = "Refresh two images.\n\n- [x] image-refresh fedora-41\n- [ ] FAIL: image-refresh centos-9\n";
    wait_for("the FAIL: prefix", || (w.body(pr) == failed).then_some(())).await;
    w.wait_status(&result, "image-refresh/centos-9", "Exit code 1 [w1]")
        .await;
    assert_eq!(
        w.statuses(&result, "image-refresh/centos-9"),
        vec![
            seen("pending", "Not yet tested", &log2),
            seen("pending", "In progress [w1]", &log2),
            seen("failure", "Exit code 1 [w1]", &log2),
        ]
    );
    let comments = wait_for("the summary's second row", || {
        let c = w.bot_comments(pr);
        (c.len() == 1 && c[0].1.contains("centos-9")).then_some(c)
    })
    .await;
    assert_eq!(&comments[0].0, summary_id, "edited in place");
    assert_eq!(
        comments[0].1.split("\n\n<!-- tickbot:summary-data").next(),
        Some(
            format!(
                "{}\n**tickbot**\n\n| Task or test | Result | Duration | Log | Commit |\n|---|---|---|---|---|\n{row1}\
                 | image-refresh centos-9 | Exit code 1 [w1] | 3s | [log]({log2}) |  |",
                summary::MARKER
            )
            .as_str()
        )
    );

    // A person removing `FAIL:` runs it again.
    w.forge()
        .edit_pr_body(&w.repo, pr, ticked, "alice")
        .await
        .expect("edit");
    let again = w.next_job().await;
    assert_eq!(
        (again.context.as_str(), &again.head_sha),
        ("image-refresh/centos-9", &result)
    );
    w.wait_status(&result, "image-refresh/centos-9", "Not yet tested")
        .await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_during_the_tick_is_never_lost() {
    let mut w = World::new().await;
    let (pr, _) = w.open_pr("topic", TWO_TASKS).await;
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
    w.wait_status(&second.head_sha, "image-refresh/centos-9", "Success [w1]")
        .await;

    // Nothing runs again, and the body stays as it is.
    w.barrier(&result2, pr).await;
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
async fn reports_for_removed_items_and_old_heads_set_statuses_and_tick_only_what_is_to_do() {
    let mut w = World::new().await;
    let (pr, head) = w.open_pr("topic", TWO_TASKS).await;
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
    w.wait_status(&head, "image-refresh/fedora-41", "Success [w1]")
        .await;
    assert_eq!(w.body(pr), without);

    // A person pushes while the second item runs: nothing is queued again at their commit,
    // and the report for the old head sets the status there and ticks the item.
    let theirs = w
        .forge()
        .commit_files(
            &w.repo,
            "topic",
            None,
            &[("more.txt", "x\n")],
            "More",
            "alice",
        )
        .await
        .expect("push");
    let rebased = w.push_result(&second, "images/centos-9").await;
    w.report(&second, success(Some(&rebased), 1)).await;
    w.wait_status(&head, "image-refresh/centos-9", "Success [w1]")
        .await;
    wait_for("the ticked box", || {
        (w.body(pr) == "Refresh two images.\n\n- [x] image-refresh centos-9\n").then_some(())
    })
    .await;
    assert!(w.statuses(&theirs, "image-refresh/centos-9").is_empty());
    w.barrier(&rebased, pr).await;
    assert!(w.statuses(&rebased, "image-refresh/centos-9").is_empty());
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infrastructure_error_is_marked_failed_and_a_late_start_leaves_nothing_pending() {
    let mut w = World::new().await;
    let (pr, head) = w.open_pr("topic", "- [ ] lint\n").await;
    let job = w.next_job().await;
    let log = w.log_url(&job);
    w.report(&job, ReportState::Started).await;
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
    w.barrier(&head, pr).await;
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
    let mut w = World::new().await;
    let (pr, head) = w.open_pr("topic", "- [ ] lint\n").await;
    // Its workers crashed on every delivery: the queue dead-letters it.
    let delivery = tokio::time::timeout(WAIT, w.jobs.next())
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
