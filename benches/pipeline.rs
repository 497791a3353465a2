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
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tickbot::ids::RepoName;
use tickbot::stack::{Stack, StackOptions};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn payload() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-webhooks/pull_request/opened.payload.json");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("_url"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    let base = serde_json::to_vec(&v).expect("json").len();
    let pad = 8192usize.saturating_sub(base + 40);
    v["pull_request"]["body"] = format!(
        "- [ ] image-refresh fedora-41\n{}",
        "Some description text. ".repeat(pad / 23)
    )
    .into();
    serde_json::to_vec(&v).expect("json")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn raw_publish(body: &[u8], count: usize, in_flight: usize) -> f64 {
    let conn = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("RabbitMQ at 127.0.0.1:5672");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let queue = format!("bench-raw-{}", uuid::Uuid::new_v4());
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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

async fn wait_statuses(
    forge: &tickbot::forge::Forge,
    repo: &RepoName,
    sha: &tickbot::ids::CommitSha,
    n: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while forge.statuses(repo, sha).len() < n {
        assert!(Instant::now() < deadline, "status {n} not set");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn delete_queues(prefix: &str) {
    // The names the library declares, so this list cannot go stale.
    let specs = tickbot::queue::topology(prefix, &["default".to_string()]).unwrap_or_default();
    for spec in specs {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_queue", &spec.name])
            .output();
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some(after.get(11)?.parse::<u64>().ok()? + after.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

fn rabbitmq_pid() -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "beam.smp"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench --bench pipeline -- intake memory` runs only those sections
    // (intake, latency, memory); no argument runs all.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    let body = payload();
    println!(
        "payload: {} bytes (signed pull_request.opened)\n",
        body.len()
    );

    // 1 + 2, in the same run so they compare.
    if run("intake") {
        let raw_1 = raw_publish(&body, 3_000, 1).await;
        let raw_32 = raw_publish(&body, 20_000, 32).await;
        let raw_64 = raw_publish(&body, 20_000, 64).await;

        let prefix = format!("bench-{}", uuid::Uuid::new_v4());
        let served = start_tickbot("serve", Some(AMQP), &prefix, "http://127.0.0.1:9").await;
        let _ = intake_load(&served.url, &body, 500, 8).await; // warm-up
        let rabbit = rabbitmq_pid();
        for (concurrency, total) in [(1, 3_000), (32, 20_000)] {
            let me = std::process::id();
            let before = (
                cpu_seconds(served.child.id()),
                rabbit.map(cpu_seconds),
                cpu_seconds(me),
            );
            let (rate, p50, p99) = intake_load(&served.url, &body, total, concurrency).await;
            let per_request = |now: f64, then: f64| (now - then) / total as f64 * 1e6;
            let same_depth = if concurrency == 1 { raw_1 } else { raw_32 };
            println!(
                "intake, concurrency {concurrency:>2}: {rate:>8.0} req/s  p50 {}  p99 {}  \
                 ({:.0}% of raw ≤64, {:.0}% of raw at the same depth)\n    \
                 CPU per request: tickbot {:.0} µs, RabbitMQ {}, load generator {:.0} µs",
                ms(p50),
                ms(p99),
                100.0 * rate / raw_64,
                100.0 * rate / same_depth,
                per_request(cpu_seconds(served.child.id()), before.0),
                match (rabbit, before.1) {
                    (Some(pid), Some(then)) =>
                        format!("{:.0} µs", per_request(cpu_seconds(pid), then)),
                    _ => "?".into(),
                },
                per_request(cpu_seconds(me), before.2),
            );
        }
        drop(served);
        delete_queues(&prefix);
    }
    if !run("latency") && !run("memory") {
        return;
    }

    // 3 + 4: the in-process stack over real HTTP, HMAC and RabbitMQ.
    if run("latency") {
        latency_and_calls().await;
    }
    if !run("memory") {
        return;
    }
    // 5: idle memory of every role in one process, embedded queue and RabbitMQ.
    for amqp in [None, Some(AMQP)] {
        let prefix = format!("bench-{}", uuid::Uuid::new_v4());
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
    let stack = Stack::start(StackOptions {
        dir: dir.path().to_path_buf(),
        amqp_url: Some(AMQP.into()),
        prefix: format!("bench-{}", uuid::Uuid::new_v4()),
        repositories: vec![],
        app: None,
    })
    .await
    .expect("stack");
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
    let mut latencies = Vec::new();
    for i in 0..60 {
        let branch = format!("b{i}");
        let sha = forge
            .commit_files(
                &repo,
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
            .open_pr(&repo, &branch, "main", "t", "- [ ] lint\n", "alice")
            .await
            .expect("open");
        let deadline = Instant::now() + Duration::from_secs(10);
        while forge.statuses(&repo, &sha).is_empty() {
            assert!(Instant::now() < deadline, "no status");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        if i >= 10 {
            latencies.push(t.elapsed());
        }
        if i < 2 {
            let calls: Vec<String> = forge
                .api_calls()
                .into_iter()
                .map(|c| format!("{} {}", c.method, c.path))
                .collect();
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
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    );

    // Steady state: the same PR edited again (new item after the running one is ticked).
    let branch = "steady";
    let sha = forge
        .commit_files(
            &repo,
            branch,
            Some("main"),
            &[("g", "x")],
            "change",
            "alice",
        )
        .await
        .expect("push");
    let pr = forge
        .open_pr(&repo, branch, "main", "t", "- [ ] lint\n", "alice")
        .await
        .expect("open");
    wait_statuses(forge, &repo, &sha, 1).await;
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
            .edit_pr_body(&repo, pr, &body, "alice")
            .await
            .expect("edit");
        wait_statuses(forge, &repo, &sha, i + 1).await;
        // The status is the last call of the event; give the log a moment to record it.
        forge
            .flush_webhooks(Duration::from_secs(5))
            .await
            .expect("flush");
        let calls: Vec<String> = forge
            .api_calls()
            .into_iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect();
        println!(
            "edited event #{i} (queues the next item): {} API calls: {calls:?}",
            calls.len()
        );
        body = body.replace("- [ ] lint", "- [x] lint"); // done: the next edit adds one more
    }
    stack.shutdown().await; // deletes the stack's queues
}
