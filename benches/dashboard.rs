//! Issue 12's dashboard numbers (docs/benchmarks.md "Logs and the dashboard"):
//!
//! * a log line written by a job → readable at `/logs/<job>?from=…` of the intake (what the
//!   live log page asks for), p50/p99, with the local store and with an S3 store (moto's
//!   server as its own process): read as fast as possible (every 10 ms), and as the page
//!   reads it (every 500 ms);
//! * the dashboard's pages with 10,000 finished jobs in the index: server time per page,
//!   p50/p99 over 200 requests each.
//!
//! `cargo bench --bench dashboard` (RabbitMQ at 127.0.0.1:5672 for the queue depths; moto's
//! `moto_server` from `$TICKBOT_TEST_MOTO` or the `PATH`).

#[path = "support/mod.rs"]
mod support;

/// moto's S3 server as its own process, as the tests start it.
#[path = "../tests/common/s3.rs"]
mod s3;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::stats::{format_ms, percentile};
use tickbot::dashboard::Dashboard;
use tickbot::dashboard::index::JobIndex;
use tickbot::logs::shipper::LogShipper;
use tickbot::logs::{JobRecord, LogStore};
use tickbot::queue::{Broker, BrokerSettings};
use tickbot::worker::job_log::JobLog;

const LINES: usize = 200;

/// The dashboard served as the intake serves it (its connection handling and timeouts).
async fn serve(dashboard: Dashboard) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let timeouts = tickbot::config::WebhookConfig::default().timeouts();
    let app = dashboard.router::<()>();
    tokio::spawn(tickbot::intake::serve(
        listener,
        app,
        timeouts,
        std::future::pending(),
    ));
    url
}

async fn broker(dir: &std::path::Path) -> Broker {
    let mut settings = BrokerSettings::new(Some(support::AMQP.into()), dir.join("queue"));
    settings.prefix = support::fresh_prefix("bench-dash");
    let broker = Broker::open(&settings)
        .await
        .expect("RabbitMQ at 127.0.0.1:5672");
    broker.declare(&["default".into()]).await.expect("declared");
    broker
}

fn record(i: usize, finished: bool) -> JobRecord {
    let now = chrono::Utc::now() - chrono::Duration::seconds((10_000 - i as i64) * 30);
    serde_json::from_value(serde_json::json!({
        "record_schema": 1, "job_id": format!("j{i:08}"), "repo": format!("acme/repo-{}", i % 50),
        "pr": i % 400 + 1, "head_sha": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "context": format!("ctx-{}", i % 7), "pool": "default", "worker": format!("w{}", i % 4),
        "private": false, "queued_at": now, "started_at": now,
        "finished_at": finished.then_some(now + chrono::Duration::seconds(95)),
        "state": if !finished { "running" } else if i.is_multiple_of(5) { "failure" } else { "success" }
    }))
    .expect("a record")
}

/// Writes [`LINES`] lines to a job's log at 20 lines/s while two readers poll the intake;
/// returns, per reader, how long after its writing each line was first read.
async fn live_latency(store: LogStore, url: &str, job: &str) -> [Vec<Duration>; 2] {
    let written: Arc<Mutex<Vec<Instant>>> = Arc::default();
    // As the worker does before a job's first line.
    std::fs::create_dir_all(store.spool_dir()).expect("the spool directory");
    let shipper = LogShipper::start(&store, job);
    let log = JobLog::new(store.spool_path(job));
    let client = reqwest::Client::new();
    let mut readers = Vec::new();
    for every in [Duration::from_millis(10), Duration::from_millis(500)] {
        let (client, written) = (client.clone(), written.clone());
        let logs = format!("{url}/logs/{job}");
        readers.push(tokio::spawn(async move {
            let (mut seen, mut len) = (Vec::new(), 0usize);
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < LINES {
                assert!(
                    Instant::now() < deadline,
                    "the log did not arrive in a minute"
                );
                let got = client.get(format!("{logs}?from={len}")).send().await;
                if let Ok(answer) = got
                    && answer.status().is_success()
                    && let Ok(text) = answer.text().await
                {
                    let now = Instant::now();
                    len += text.len();
                    let lines = text.matches('\n').count();
                    let at = written.lock().expect("lock").clone();
                    let new = at.iter().skip(seen.len()).take(lines);
                    let waited: Vec<Duration> = new.map(|w| now - *w).collect();
                    seen.extend(waited);
                }
                tokio::time::sleep(every).await;
            }
            seen
        }));
    }
    for i in 0..LINES {
        written.lock().expect("lock").push(Instant::now());
        log.line(&format!("line {i} of the job's output"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut out = [Vec::new(), Vec::new()];
    for (slot, reader) in out.iter_mut().zip(readers) {
        *slot = reader.await.expect("a reader");
        slot.sort();
    }
    shipper.finish().await.expect("finished");
    out
}

async fn page_times(url: &str, path: &str) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let answer = client
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("an answer");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.bytes().await.expect("the page");
        times.push(start.elapsed());
    }
    times.sort();
    times
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker(dir.path()).await;
    let index = JobIndex::open(&dir.path().join("dashboard.sqlite3")).expect("index");
    for i in 0..10_000 {
        index.upsert(&record(i, true)).expect("indexed");
    }
    for i in 10_000..10_010 {
        index.upsert(&record(i, false)).expect("indexed");
    }

    println!("## a log line → readable at the intake ({LINES} lines at 20/s)");
    let local = LogStore::local(dir.path().join("logs")).expect("local store");
    let moto = s3::TestS3::start();
    let s3 = moto.store("bench", &dir.path().join("worker"));
    for (name, store) in [("local directory", local.clone()), ("S3 (moto)", s3)] {
        let dashboard = Dashboard::new(
            index.clone(),
            store.clone(),
            broker.clone(),
            vec!["default".into()],
            false,
        );
        let url = serve(dashboard).await;
        let [fast, page] = live_latency(store, &url, &format!("live-{}", name.len())).await;
        println!(
            "{name}: polled every 10 ms p50 {} p99 {}; as the page polls (500 ms) p50 {} p99 {}",
            format_ms(percentile(&fast, 0.5), 1),
            format_ms(percentile(&fast, 0.99), 1),
            format_ms(percentile(&page, 0.5), 1),
            format_ms(percentile(&page, 0.99), 1)
        );
    }

    println!("## pages with 10,000 finished jobs (200 requests each, loopback HTTP)");
    let dashboard = Dashboard::new(index, local, broker, vec!["default".into()], false);
    let url = serve(dashboard).await;
    for path in [
        "/",
        "/?state=failure",
        "/?repo=acme/repo-7&pr=8",
        "/pr/acme/repo-7/8",
        "/jobs/j00009999",
    ] {
        let times = page_times(&url, path).await;
        println!(
            "{path}: p50 {} p99 {}",
            format_ms(percentile(&times, 0.5), 2),
            format_ms(percentile(&times, 0.99), 2)
        );
    }
}
