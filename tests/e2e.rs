//! End-to-end: a person using the local forge, tickbot's intake over real HTTP with real HMAC
//! signatures, the dispatcher, and real RabbitMQ. Each test tells one user story and asserts
//! what that user would see: statuses, comments and the job messages queued for workers.

mod common;

use common::world::World;
use common::{WAIT, broker_lock, redact, run, wait_for};
use std::time::Duration;
use tickbot::ids::{CommitSha, PrNumber};

const TASKS_TOML: &str = r#"
[tasks.image-refresh]
command = ["./image-refresh", "{args}"]
args = "^[a-z0-9][a-z0-9.-]*$"
image = "localhost/tasks:latest"
timeout = "2h"
commit = true
message = "images: Update {args} image"
priority = 7
secrets = ["image-upload"]

[tasks.lint]
command = ["make", "lint"]

[secrets.image-upload]
env = { S3_KEY = "IMAGE_UPLOAD_KEY" }
"#;

/// The world of these stories: `TASKS_TOML` on `main`, and the test as the worker.
async fn world() -> World {
    let files = [(".tickbot.toml", TASKS_TOML), ("README.md", "widgets\n")];
    let mut w = World::new(&files).await;
    w.tap_jobs().await;
    w
}

const TWO_TASKS: &str =
    "Refresh two images.\n\n- [ ] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_with_two_tasks_queues_the_first_and_the_second_waits() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha) = w.open_pr("alice", &[], TWO_TASKS).await;

    w.wait_pending(&sha, "image-refresh/fedora-41").await;
    let jobs = w.jobs().wait_count(1, "the first task's job").await;
    let job = &jobs[0];
    assert_eq!(job.schema, tickbot::job::JOB_SCHEMA);
    assert_eq!(job.repo, w.repo);
    assert_eq!(job.pr, pr);
    assert_eq!(job.head_sha, sha);
    assert_eq!(job.head_ref, "topic-1");
    assert_eq!(job.base_ref, "main");
    assert_eq!(job.clone_url, w.forge().clone_url(&w.repo));
    assert_eq!(job.context, "image-refresh/fedora-41");
    let item = job.item.as_ref().expect("a task job names its item");
    assert_eq!(
        (item.verb.as_str(), item.args.clone(), item.line),
        ("image-refresh", vec!["fedora-41".to_string()], 3)
    );
    assert_eq!(job.argv, vec!["./image-refresh", "fedora-41"]);
    assert_eq!(job.image, "localhost/tasks:latest");
    assert_eq!(job.timeout_secs, 7200);
    assert_eq!(
        job.secrets,
        vec![tickbot::job::SecretGrant {
            name: "image-upload".into(),
            env: [("S3_KEY".to_string(), "IMAGE_UPLOAD_KEY".to_string())].into(),
        }],
        "a trusted author's task gets the secret the default branch defines"
    );
    assert_eq!(
        job.message.as_deref(),
        Some("images: Update fedora-41 image")
    );
    assert_eq!(job.priority, 7);
    assert!(job.commit);
    let target = w
        .forge()
        .statuses(&w.repo, &sha)
        .into_iter()
        .find_map(|s| s.target_url)
        .expect("the status links to the log");
    assert_eq!(
        target,
        format!("{}/logs/{}", w.stack.intake_url, job.job_id)
    );

    w.barrier().await;
    assert_eq!(
        w.status(&sha, "image-refresh/centos-9"),
        None,
        "the second item waits"
    );
    assert_eq!(w.jobs_for(pr).await.len(), 1);
    assert!(w.bot_comments(pr).is_empty(), "nothing to complain about");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_description_changes_the_plan() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha) = w.open_pr("alice", &[], TWO_TASKS).await;
    w.wait_pending(&sha, "image-refresh/fedora-41").await;

    // Ticking the first box by hand: the second item runs.
    w.edit(
        pr,
        &TWO_TASKS.replacen(
            "[ ] image-refresh fedora-41",
            "[x] image-refresh fedora-41",
            1,
        ),
        "alice",
    )
    .await;
    w.wait_pending(&sha, "image-refresh/centos-9").await;

    // A typo, a bad argument and a task inside a code block; a new item before the others.
    let body = "- [ ] lint\n- [x] image-refresh fedora-41\n- [ ] image-refresh centos-9\n\
                - [ ] image-refrsh debian-12\n- [ ] image-refresh Debian_12\n\
                ```\n- [ ] image-refresh in-a-code-block\n```\n";
    w.edit(pr, body, "alice").await;
    let comments = wait_for("two refusal comments", || {
        let c = w.bot_comments(pr);
        (c.len() >= 2).then_some(c)
    })
    .await;
    insta::assert_snapshot!("refused_typo", redact(&comments[0]));
    insta::assert_snapshot!("refused_argument", redact(&comments[1]));

    // `lint` is first now but `centos-9` is still queued: one task at a time per PR.
    w.barrier().await;
    assert_eq!(w.status(&sha, "lint"), None);

    // The same mistakes again get no second comment; code blocks never count.
    w.edit(pr, &format!("{body}\nmore words\n"), "alice").await;
    w.barrier().await;
    assert_eq!(w.bot_comments(pr).len(), 2);
    let contexts: Vec<String> = w
        .jobs_for(pr)
        .await
        .into_iter()
        .map(|j| j.context)
        .collect();
    assert_eq!(
        contexts,
        vec!["image-refresh/fedora-41", "image-refresh/centos-9"]
    );
    assert!(w.status(&sha, "image-refresh/in-a-code-block").is_none());

    // Removing the running item from the list lets the next one (lint, now first) run.
    w.edit(pr, "- [ ] lint\n- [x] image-refresh fedora-41\n", "alice")
        .await;
    w.wait_pending(&sha, "lint").await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_and_dispatcher_restarts_queue_nothing_twice() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha) = w.open_pr("alice", &[], TWO_TASKS).await;
    w.wait_pending(&sha, "image-refresh/fedora-41").await;

    // GitHub delivering the same event again is answered "duplicate" and not queued.
    let opened = w
        .forge()
        .deliveries()
        .into_iter()
        .find(|d| d.event == "pull_request" && d.action.as_deref() == Some("opened"))
        .expect("the opened delivery");
    let status = w.forge().redeliver(&opened.id).await.expect("redeliver");
    assert_eq!(
        status, 200,
        "a duplicate delivery is acknowledged, not queued"
    );

    // A dispatcher restart reconciles open PRs and finds the job already queued.
    w.stack.stop_dispatcher().await;
    w.stack.start_dispatcher();
    w.barrier().await;
    assert_eq!(w.jobs_for(pr).await.len(), 1, "queued once");
    let pending: Vec<_> = w
        .forge()
        .statuses(&w.repo, &sha)
        .into_iter()
        .filter(|s| s.context == "image-refresh/fedora-41")
        .collect();
    assert_eq!(pending.len(), 1, "one status, set once");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_missed_while_the_dispatcher_was_down_are_reconciled_at_start() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    w.stack.stop_dispatcher().await;
    // The intake is down too: GitHub's delivery fails and is never retried by GitHub.
    w.forge()
        .set_webhook("http://127.0.0.1:9/webhook", "unused")
        .await;
    let (pr, sha) = w.open_pr("alice", &[], TWO_TASKS).await;
    assert_eq!(w.status(&sha, "image-refresh/fedora-41"), None);

    w.stack.start_dispatcher();
    w.wait_pending(&sha, "image-refresh/fedora-41").await;
    let jobs = w.jobs().wait_count(1, "the reconciled job").await;
    assert_eq!(jobs[0].pr, pr);
    w.stack.shutdown().await;
}

/// What an untrusted author's PR shows while it waits.
fn manual() -> Option<(String, Option<String>)> {
    Some((
        "pending".to_string(),
        Some("Manual testing required".to_string()),
    ))
}

/// mallory (no collaborator) opens a PR with [`TWO_TASKS`]; it waits for an approval.
async fn untrusted_pr(w: &mut World) -> (PrNumber, CommitSha, String) {
    let (pr, sha) = w.open_pr("mallory", &[], TWO_TASKS).await;
    let comment = wait_for("the not-trusted comment", || w.bot_comments(pr).pop()).await;
    wait_for("the manual-testing status", || {
        w.status(&sha, "image-refresh/fedora-41")
            .filter(|s| Some(s) == manual().as_ref())
    })
    .await;
    (pr, sha, comment)
}

/// alice, who has write access, approves the PR.
async fn approve(w: &World, pr: PrNumber, sha: &CommitSha) {
    w.forge()
        .comment(&w.repo, pr, "Looks fine.\n/ok-to-test", "alice")
        .await
        .expect("comment");
    w.wait_pending(sha, "image-refresh/fedora-41").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_author_gets_an_explanation_and_a_reader_cannot_approve() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha, comment) = untrusted_pr(&mut w).await;
    assert!(comment.contains(sha.short()), "{comment}");
    insta::assert_snapshot!("untrusted_author", redact(&comment));

    // bob can read but not write: his approval is refused with a reason.
    w.forge()
        .comment(&w.repo, pr, "/ok-to-test", "bob")
        .await
        .expect("comment");
    let refusal = wait_for("the refused approval", || {
        w.bot_comments(pr)
            .into_iter()
            .find(|c| c.contains("`/ok-to-test` refused"))
    })
    .await;
    insta::assert_snapshot!("reader_cannot_approve", redact(&refusal));
    w.barrier().await;
    assert!(
        w.jobs_for(pr).await.is_empty(),
        "nothing runs for an untrusted author"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_approval_runs_the_code_without_secrets_or_network() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha, _) = untrusted_pr(&mut w).await;
    approve(&w, pr, &sha).await;
    assert_eq!(
        w.status(&sha, "tickbot/ok-to-test").map(|s| s.0),
        Some("success".to_string())
    );
    let jobs = w.jobs().wait_count(1, "the approved job").await;
    assert_eq!(
        (jobs[0].pr, jobs[0].context.as_str()),
        (pr, "image-refresh/fedora-41")
    );
    assert!(
        jobs[0].secrets.is_empty() && !jobs[0].network,
        "an approval runs the code but hands it no secrets and no network"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_covers_the_task_list_as_it_was() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha, _) = untrusted_pr(&mut w).await;
    approve(&w, pr, &sha).await;

    // mallory ticking the running item by hand lets the second one run…
    let ticked = TWO_TASKS.replacen(
        "[ ] image-refresh fedora-41",
        "[x] image-refresh fedora-41",
        1,
    );
    w.edit(pr, &ticked, "mallory").await;
    w.wait_pending(&sha, "image-refresh/centos-9").await;
    // …but a task she adds afterwards needs a new approval.
    let added = ticked.replacen(
        "[ ] image-refresh centos-9",
        "[x] image-refresh centos-9",
        1,
    ) + "- [ ] lint\n";
    w.edit(pr, &added, "mallory").await;
    let again = wait_for("a second not-trusted comment", || {
        let c: Vec<String> = w
            .bot_comments(pr)
            .into_iter()
            .filter(|c| c.contains("@mallory is not trusted"))
            .collect();
        (c.len() == 2).then_some(c)
    })
    .await;
    assert!(again[1].contains("needs a new approval"), "{}", again[1]);
    w.barrier().await;
    assert_eq!(
        w.status(&sha, "lint"),
        manual(),
        "the added task waits for approval"
    );
    assert!(!w.jobs_for(pr).await.iter().any(|j| j.context == "lint"));
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_loses_nothing() {
    let _exclusive = broker_lock().write().await;
    let mut w = world().await;
    let (pr1, sha1) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    w.wait_pending(&sha1, "lint").await;

    let _ = run("rabbitmqctl", &["stop_app"]);
    // While RabbitMQ is down the intake answers 503, so GitHub records a failed delivery.
    let (pr2, sha2) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    let failed = wait_for("the failed delivery", || {
        w.forge()
            .deliveries()
            .into_iter()
            .find(|d| d.event == "pull_request" && d.status == Some(503))
    })
    .await;
    let _ = run("rabbitmqctl", &["start_app"]);
    let _ = run("rabbitmqctl", &["await_startup"]);

    // Redelivering it (as a person would from GitHub's settings) is accepted once the broker
    // is back, and the queued job from before the restart is still there.
    let status = wait_for_async_ok(|| w.forge().redeliver(&failed.id)).await;
    assert_eq!(status, 202);
    w.wait_pending(&sha2, "lint").await;
    let jobs = w.jobs().wait_count(2, "both jobs").await;
    assert!(jobs.iter().any(|j| j.pr == pr1));
    assert!(jobs.iter().any(|j| j.pr == pr2));
    w.stack.shutdown().await;
}

async fn wait_for_async_ok<F, Fut>(mut f: F) -> u16
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u16>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(202) = f().await {
            return 202;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the intake did not recover after RabbitMQ came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_intake_answers_per_contract() {
    let _shared = broker_lock().read().await;
    let w = world().await;
    let client = reqwest_like::Client::new(&w.stack.intake_url);
    let secret = w.stack.webhook_secret.clone();
    let body = br#"{"action":"opened"}"#.to_vec();

    assert_eq!(
        client.post("pull_request", "d-1", &body, None).await,
        401,
        "unsigned"
    );
    assert_eq!(
        client
            .post("pull_request", "d-1", &body, Some("wrong"))
            .await,
        401,
        "wrong secret"
    );
    assert_eq!(
        client
            .post("pull_request", "d-1", b"{not json", Some(&secret))
            .await,
        400
    );
    assert_eq!(client.post("ping", "d-2", b"{}", Some(&secret)).await, 200);
    assert_eq!(
        client.post("star", "d-3", b"{}", Some(&secret)).await,
        202,
        "unknown events are ignored"
    );
    let declared = client
        .post_declaring("d-4", 26 * 1024 * 1024, &secret)
        .await;
    assert_eq!(declared, 413);
    assert_eq!(client.get("/healthz").await, 200);
    assert_eq!(client.get("/readyz").await, 200);
    let metrics = client.get_text("/metrics").await;
    assert!(
        metrics.contains("tickbot_webhook_deliveries_total"),
        "{metrics}"
    );
    w.stack.shutdown().await;
}

/// A minimal HTTP client for the intake contract test (hyper, no extra dependency).
mod reqwest_like {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::Response;
    use hyper::body::Incoming;
    use hyper_util::client::legacy::{Client as HyperClient, Error};
    use hyper_util::rt::TokioExecutor;

    pub struct Client {
        base: String,
        http: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    }

    impl Client {
        pub fn new(base: &str) -> Self {
            Self {
                base: base.to_string(),
                http: HyperClient::builder(TokioExecutor::new())
                    // A refused 26 MB upload leaves its connection unusable: never reuse one.
                    .pool_max_idle_per_host(0)
                    .build_http(),
            }
        }

        pub async fn post(
            &self,
            event: &str,
            delivery: &str,
            body: &[u8],
            secret: Option<&str>,
        ) -> u16 {
            let mut req = hyper::Request::post(format!("{}/webhook", self.base))
                .header("content-type", "application/json")
                .header("x-github-event", event)
                .header("x-github-delivery", delivery);
            if let Some(s) = secret {
                req = req.header(
                    "x-hub-signature-256",
                    tickbot::intake::sign(s.as_bytes(), body),
                );
            }
            let req = req
                .body(Full::new(Bytes::copy_from_slice(body)))
                .expect("request");
            status_or_zero(self.http.request(req).await)
        }

        /// A delivery whose head declares `length` bytes, without sending any: the status,
        /// answered from the head alone (sending a body the intake refuses would race its
        /// answer against the closing connection).
        pub async fn post_declaring(&self, delivery: &str, length: usize, secret: &str) -> u16 {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let addr = self.base.trim_start_matches("http://");
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let signature = tickbot::intake::sign(secret.as_bytes(), b"");
            let head = format!(
                "POST /webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 x-github-event: pull_request\r\nx-github-delivery: {delivery}\r\n\
                 x-hub-signature-256: {signature}\r\ncontent-length: {length}\r\n\r\n"
            );
            stream
                .write_all(head.as_bytes())
                .await
                .expect("send the head");
            let mut answer = vec![0; 64];
            let n = stream.read(&mut answer).await.expect("an answer");
            let line = String::from_utf8_lossy(&answer[..n]).into_owned();
            line.split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0)
        }

        pub async fn get(&self, path: &str) -> u16 {
            status_or_zero(self.send_get(path).await)
        }

        pub async fn get_text(&self, path: &str) -> String {
            let resp = self.send_get(path).await.expect("response");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        }

        async fn send_get(&self, path: &str) -> Result<Response<Incoming>, Error> {
            let req = hyper::Request::get(format!("{}{path}", self.base))
                .body(Full::new(Bytes::new()))
                .expect("request");
            self.http.request(req).await
        }
    }

    /// The answer's status code; 0 when there was no answer (the connection failed).
    fn status_or_zero(answer: Result<Response<Incoming>, Error>) -> u16 {
        answer.map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fields_tickbot_reads_parse_from_the_forges_payloads_as_from_githubs() {
    use tickbot::event::{self, Event};
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha) = w.open_pr("alice", &[], TWO_TASKS).await;
    w.edit(pr, "- [ ] lint\n", "alice").await;
    w.forge()
        .comment(&w.repo, pr, "/ok-to-test", "bob")
        .await
        .expect("comment");
    w.forge().flush_webhooks(WAIT).await.expect("webhooks sent");

    let mut seen = Vec::new();
    for d in w.forge().deliveries() {
        match event::parse(&d.event, d.body.as_bytes()).expect("the forge's payload parses") {
            Event::PullRequest(p) => {
                let pull = &p.pull;
                assert_eq!(pull.repo, w.repo);
                assert_eq!(pull.number, pr);
                assert_eq!(pull.head_sha, sha);
                assert_eq!(
                    (pull.head_ref.as_str(), pull.base_ref.as_str()),
                    ("topic-1", "main")
                );
                assert_eq!(pull.author, "alice");
                assert_eq!(pull.default_branch, "main");
                assert_eq!(pull.base_clone_url, w.forge().clone_url(&w.repo));
                assert_eq!(
                    pull.head_clone_url.as_deref(),
                    Some(w.forge().clone_url(&w.repo).as_str())
                );
                if p.action == "edited" {
                    assert_eq!(pull.body, "- [ ] lint\n");
                    assert_eq!(p.body_before.as_deref(), Some(TWO_TASKS));
                }
                seen.push(p.action);
            }
            Event::IssueComment(c) => {
                assert_eq!((c.number, c.on_pull_request), (pr, true));
                assert_eq!((c.author.as_str(), c.body.as_str()), ("bob", "/ok-to-test"));
                seen.push(format!("comment {}", c.action));
            }
            Event::CheckRun(c) => seen.push(format!("check run {}", c.action)),
            Event::Other { .. } => {}
        }
    }
    assert_eq!(seen, vec!["opened", "edited", "comment created"]);
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_added_by_an_untrusted_editor_wait_for_an_approval() {
    let _shared = broker_lock().read().await;
    let mut w = world().await;
    let (pr, sha) = w.open_pr("alice", &[], "- [x] lint\n").await;
    // carol is no collaborator; she adds a task to alice's PR.
    w.edit(pr, "- [x] lint\n- [ ] image-refresh fedora-41\n", "carol")
        .await;
    let comment = wait_for("the explanation", || {
        w.bot_comments(pr)
            .into_iter()
            .find(|c| c.contains("@carol"))
    })
    .await;
    assert!(
        comment.contains(
            "tickbot has not run the tests or tasks of this pull request: Tasks changed by @carol, \
             who is not trusted; /ok-to-test approves."
        ),
        "{comment}"
    );
    // The comment comes first, then the status.
    let manual = (
        "pending".to_string(),
        Some("Manual testing required".to_string()),
    );
    wait_for("the manual-testing status", || {
        w.status(&sha, "image-refresh/fedora-41")
            .filter(|s| *s == manual)
    })
    .await;
    w.barrier().await;
    assert!(w.jobs_for(pr).await.is_empty(), "nothing ran");

    // alice pushes: her new commit does not clear carol's unapproved change.
    let pushed = w.push(pr, &[("more.txt", "more\n")], "alice").await;
    wait_for("the manual-testing status on the new head", || {
        w.status(&pushed, "image-refresh/fedora-41")
            .filter(|s| *s == manual)
    })
    .await;
    w.barrier().await;
    assert!(
        w.jobs_for(pr).await.is_empty(),
        "nothing ran after the push"
    );

    // alice approves the list as it now is.
    w.forge()
        .comment(&w.repo, pr, "/ok-to-test", "alice")
        .await
        .expect("comment");
    w.wait_pending(&pushed, "image-refresh/fedora-41").await;
    w.stack.shutdown().await;
}
