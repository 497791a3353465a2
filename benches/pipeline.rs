//! Benchmarks for the numbers in docs/benchmarks.md (run: `cargo bench --bench pipeline`).
//!
//! 1. Raw RabbitMQ publish-with-confirm of the same payloads (one at a time; ≤ 64 in flight).
//! 2. Intake throughput and latency: `tickbot serve` (the release binary, its own process)
//!    against RabbitMQ, signed ~8 KB `pull_request` payloads from this process over loopback,
//!    at concurrency 1 and 32.
//! 3. Webhook → pending status visible at the forge, at low load (one PR at a time).
//! 4. GitHub API calls per PR event in steady state, from the forge's call log.
//! 5. Idle RSS of `tickbot all`.
//!
//! Every loop is bounded in count and time; all traffic stays on 127.0.0.1.

#[path = "support/mod.rs"]
mod support;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::procfs::{cpu_seconds, rabbitmq_pid, rss_kib};
use support::stats::{format_ms, percentile};
use support::{AMQP, free_port, fresh_prefix, requested_sections, section_wanted, start_stack};
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, RepoName};

/// Publishes `count` persistent messages with confirms, ≤ `in_flight` unconfirmed: msg/s.
async fn raw_publish(body: &[u8], count: usize, in_flight: usize) -> f64 {
    let conn = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("RabbitMQ at 127.0.0.1:5672");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let queue = fresh_prefix("bench-raw");
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare");
    let rabbit = rabbitmq_pid();
    let cpu_before = (rabbit.map(cpu_seconds), cpu_seconds(std::process::id()));
    let started = Instant::now();
    let mut pending = futures_util::stream::FuturesUnordered::new();
    for _ in 0..count {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        pending.push(confirm);
        while pending.len() >= in_flight {
            let c = pending.next().await.expect("confirm").expect("confirm");
            assert!(c.is_ack());
        }
    }
    while let Some(c) = pending.next().await {
        assert!(c.expect("confirm").is_ack());
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let per_msg = |now: f64, then: f64| (now - then) / count as f64 * 1e6;
    println!(
        "raw RabbitMQ confirmed publish, ≤{in_flight:>2} in flight: {rate:>8.0} msg/s\n    \
         CPU per message: RabbitMQ {}, publisher {:.0} µs",
        match (rabbit, cpu_before.0) {
            (Some(pid), Some(then)) => format!("{:.0} µs", per_msg(cpu_seconds(pid), then)),
            _ => "?".into(),
        },
        per_msg(cpu_seconds(std::process::id()), cpu_before.1)
    );
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(0, "done".into()).await;
    rate
}

/// A running `tickbot` process, killed when dropped.
struct Served {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release binary with `role` and waits until /healthz answers.
async fn start_tickbot(role: &str, amqp: Option<&str>, prefix: &str, api_url: &str) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tickbot"));
    cmd.arg("--config")
        .arg(dir.path().join("none.toml"))
        .arg(role)
        .env("RUST_LOG", "warn")
        .env("TICKBOT__WEBHOOK__SECRET", "bench-secret")
        .env("TICKBOT__WEBHOOK__LISTEN", format!("127.0.0.1:{port}"))
        .env("TICKBOT__STATE__DIR", dir.path())
        .env("TICKBOT__AMQP__PREFIX", prefix)
        .env("TICKBOT__GITHUB__API_URL", api_url)
        .env("TICKBOT__GITHUB__TOKEN", "forge-bot-token")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = amqp {
        cmd.env("TICKBOT__AMQP__URL", url);
    }
    let child = cmd.spawn().expect("start tickbot");
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = hyper::Request::get(format!("{url}/healthz"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        if client.request(req).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "tickbot {role} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Served {
        child,
        url,
        _dir: dir,
    }
}

/// Posts `total` signed deliveries from `concurrency` clients: requests/s, p50, p99.
async fn intake_load(
    url: &str,
    body: &[u8],
    total: usize,
    concurrency: usize,
) -> (f64, Duration, Duration) {
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<Full<Bytes>>();
    let signature = tickbot::intake::sign(b"bench-secret", body);
    let body = Bytes::copy_from_slice(body);
    let per_worker = total / concurrency;
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let client = client.clone();
        let body = body.clone();
        let signature = signature.clone();
        let url = format!("{url}/webhook");
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let req = hyper::Request::post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "pull_request")
                    .header(
                        "x-github-delivery",
                        format!("bench-{w}-{i}-{}", uuid::Uuid::new_v4()),
                    )
                    .header("x-hub-signature-256", &signature)
                    .body(Full::new(body.clone()))
                    .expect("request");
                let t = Instant::now();
                let resp = client.request(req).await.expect("response");
                assert_eq!(resp.status(), 202, "the intake accepted the delivery");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (rate, percentile(&all, 0.5), percentile(&all, 0.99))
}

/// Waits until `sha` has `n` statuses (bounded).
async fn wait_statuses(forge: &Forge, repo: &RepoName, sha: &CommitSha, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while forge.statuses(repo, sha).len() < n {
        assert!(Instant::now() < deadline, "status {n} not set");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Deletes the queues a killed `tickbot` declared, so runs leave nothing behind in RabbitMQ.
fn delete_queues(prefix: &str) {
    // The names the library declares, so this list cannot go stale.
    let specs = tickbot::queue::topology(prefix, &["default".to_string()]).unwrap_or_default();
    for spec in specs {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_queue", &spec.name])
            .output();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench --bench pipeline -- intake memory` runs only those sections
    // (intake, latency, memory); no argument runs all.
    let only = requested_sections();
    let run = |section: &str| section_wanted(&only, section);
    let body = support::fixtures::pull_request_opened();
    println!(
        "payload: {} bytes (signed pull_request.opened)\n",
        body.len()
    );
    // 1 + 2, in the same run so they compare.
    if run("intake") {
        intake_against_raw(&body).await;
    }
    // 3 + 4: the in-process stack over real HTTP, HMAC and RabbitMQ.
    if run("latency") {
        latency_and_calls().await;
    }
    // 5: idle memory of every role in one process, embedded queue and RabbitMQ.
    if run("memory") {
        idle_memory().await;
    }
}

/// Confirmed raw RabbitMQ publishes, then `tickbot serve`'s intake at concurrency 1 and 32,
/// compared with them.
async fn intake_against_raw(body: &[u8]) {
    let raw_1 = raw_publish(body, 3_000, 1).await;
    let raw_32 = raw_publish(body, 20_000, 32).await;
    let raw_64 = raw_publish(body, 20_000, 64).await;

    let prefix = fresh_prefix("bench");
    let served = start_tickbot("serve", Some(AMQP), &prefix, "http://127.0.0.1:9").await;
    let _ = intake_load(&served.url, body, 500, 8).await; // warm-up
    let rabbit = rabbitmq_pid();
    for (concurrency, total) in [(1, 3_000), (32, 20_000)] {
        let me = std::process::id();
        let before = (
            cpu_seconds(served.child.id()),
            rabbit.map(cpu_seconds),
            cpu_seconds(me),
        );
        let (rate, p50, p99) = intake_load(&served.url, body, total, concurrency).await;
        let per_request = |now: f64, then: f64| (now - then) / total as f64 * 1e6;
        let same_depth = if concurrency == 1 { raw_1 } else { raw_32 };
        println!(
            "intake, concurrency {concurrency:>2}: {rate:>8.0} req/s  p50 {}  p99 {}  \
             ({:.0}% of raw ≤64, {:.0}% of raw at the same depth)\n    \
             CPU per request: tickbot {:.0} µs, RabbitMQ {}, load generator {:.0} µs",
            format_ms(p50, 2),
            format_ms(p99, 2),
            100.0 * rate / raw_64,
            100.0 * rate / same_depth,
            per_request(cpu_seconds(served.child.id()), before.0),
            match (rabbit, before.1) {
                (Some(pid), Some(then)) => format!("{:.0} µs", per_request(cpu_seconds(pid), then)),
                _ => "?".into(),
            },
            per_request(cpu_seconds(me), before.2),
        );
    }
    drop(served);
    delete_queues(&prefix);
}

/// RSS of an idle `tickbot all`, with the embedded queue and with RabbitMQ.
async fn idle_memory() {
    for amqp in [None, Some(AMQP)] {
        let prefix = fresh_prefix("bench");
        let served = start_tickbot("all", amqp, &prefix, "http://127.0.0.1:9").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!(
            "tickbot all idle RSS ({}): {:.1} MiB",
            if amqp.is_some() {
                "RabbitMQ"
            } else {
                "embedded queue"
            },
            rss_kib(served.child.id()) as f64 / 1024.0
        );
        drop(served);
        delete_queues(&prefix);
    }
}

/// Webhook → pending status at low load, and API calls per event in steady state.
async fn latency_and_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    let stack = start_stack(dir.path(), "bench", None).await;
    let forge = &stack.forge;
    forge
        .create_repo(
            &repo,
            "main",
            &[(
                ".tickbot.toml",
                "[tasks.lint]\ncommand = [\"make\", \"lint\"]\n",
            )],
        )
        .await
        .expect("repo");
    forge.add_collaborator(&repo, "alice", "write");
    pending_status_latency(forge, &repo).await;
    steady_state_calls(forge, &repo).await;
    stack.shutdown().await; // deletes the stack's queues
}

/// 60 PRs one at a time (the first 10 warm up): webhook → pending status p50/p99, and the
/// API calls of the first two `opened` events (cold, then warm caches).
async fn pending_status_latency(forge: &Forge, repo: &RepoName) {
    let mut latencies = Vec::new();
    for i in 0..60 {
        let branch = format!("b{i}");
        let sha = forge
            .commit_files(
                repo,
                &branch,
                Some("main"),
                &[("f", &i.to_string())],
                "change",
                "alice",
            )
            .await
            .expect("push");
        forge
            .flush_webhooks(Duration::from_secs(5))
            .await
            .expect("flush");
        forge.clear_api_calls();
        let t = Instant::now();
        forge
            .open_pr(repo, &branch, "main", "t", "- [ ] lint\n", "alice")
            .await
            .expect("open");
        let deadline = Instant::now() + Duration::from_secs(10);
        while forge.statuses(repo, &sha).is_empty() {
            assert!(Instant::now() < deadline, "no status");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        if i >= 10 {
            latencies.push(t.elapsed());
        }
        if i < 2 {
            let calls = logged_calls(forge);
            println!(
                "opened event, {} caches: {} API calls: {calls:?}",
                if i == 0 { "cold" } else { "warm" },
                calls.len()
            );
        }
    }
    latencies.sort();
    println!(
        "\nwebhook → pending status at the forge (50 PRs, one at a time): p50 {}  p99 {}",
        format_ms(percentile(&latencies, 0.5), 2),
        format_ms(percentile(&latencies, 0.99), 2)
    );
}

/// Steady state: the same PR edited again (new item after the running one is ticked); the
/// API calls of each `edited` event.
async fn steady_state_calls(forge: &Forge, repo: &RepoName) {
    let branch = "steady";
    let sha = forge
        .commit_files(repo, branch, Some("main"), &[("g", "x")], "change", "alice")
        .await
        .expect("push");
    let pr = forge
        .open_pr(repo, branch, "main", "t", "- [ ] lint\n", "alice")
        .await
        .expect("open");
    wait_statuses(forge, repo, &sha, 1).await;
    // Distinct arguments: a status is per context, so each item needs its own context.
    let mut body = "- [x] lint\n".to_string();
    for i in 1..=5 {
        body.push_str(&format!("- [ ] lint part-{i}\n"));
        forge
            .flush_webhooks(Duration::from_secs(5))
            .await
            .expect("flush");
        forge.clear_api_calls();
        forge
            .edit_pr_body(repo, pr, &body, "alice")
            .await
            .expect("edit");
        wait_statuses(forge, repo, &sha, i + 1).await;
        // The status is the last call of the event; give the log a moment to record it.
        forge
            .flush_webhooks(Duration::from_secs(5))
            .await
            .expect("flush");
        let calls = logged_calls(forge);
        println!(
            "edited event #{i} (queues the next item): {} API calls: {calls:?}",
            calls.len()
        );
        body = body.replace("- [ ] lint", "- [x] lint"); // done: the next edit adds one more
    }
}

/// The forge's call log as `METHOD path` lines, as the results print them.
fn logged_calls(forge: &Forge) -> Vec<String> {
    forge
        .api_calls()
        .into_iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}
