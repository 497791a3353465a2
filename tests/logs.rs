//! The log store (`[logs] store`): one conformance suite run on the local directory store and
//! on a real S3-protocol server (moto's, as its own process), then workers on two machines'
//! worth of state directories whose logs one intake serves, live and after.

mod common;

use common::s3::TestS3;
use futures_util::StreamExt;
use std::time::{Duration, SystemTime};
use tickbot::logs::shipper::{LogShipper, SHIP_EVERY};
use tickbot::logs::{JobRecord, LogStore, RecordState};

async fn read_all(store: &LogStore, job: &str, from: u64) -> Option<(u64, String)> {
    let read = store
        .read_log(job, from)
        .await
        .expect("the store answers")?;
    let mut text = Vec::new();
    let mut bytes = read.bytes;
    while let Some(piece) = bytes.next().await {
        text.extend_from_slice(&piece.expect("a piece of the log"));
    }
    Some((read.len, String::from_utf8(text).expect("utf-8")))
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("spool dir");
    let mut f = std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .expect("spool");
    f.write_all(text.as_bytes()).expect("append");
}

/// Polls `check` until it gives a value, failing after a second (the live-log promise).
async fn within_a_second<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1) + SHIP_EVERY;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not readable within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What every store must do, checked the same way on each.
async fn conformance(store: LogStore, job: &str) {
    live_then_whole(&store, job).await;
    records(&store, job).await;
    artifacts(&store, job).await;
    retention(&store, job).await;
}

/// A running log is readable while it grows, then whole.
async fn live_then_whole(store: &LogStore, job: &str) {
    let store = store.clone();
    assert!(
        read_all(&store, job, 0).await.is_none(),
        "no log before the job"
    );

    // A running log is readable while it grows, within a second, from any offset.
    let shipper = LogShipper::start(&store, job);
    append(&store.spool_path(job), "line one\n");
    let first = within_a_second("the first line", || {
        let store = store.clone();
        async move {
            read_all(&store, job, 0)
                .await
                .filter(|(_, t)| t.contains("line one"))
        }
    })
    .await;
    assert_eq!(first, (9, "line one\n".to_string()));
    append(&store.spool_path(job), "line two\n");
    let rest = within_a_second("the second line", || {
        let store = store.clone();
        async move { read_all(&store, job, 9).await.filter(|(len, _)| *len == 18) }
    })
    .await;
    assert_eq!(
        rest.1, "line two\n",
        "read from an offset gives only what follows"
    );
    assert_eq!(
        read_all(&store, job, 18).await.map(|r| r.1),
        Some(String::new())
    );

    // Finished: the whole log, and nothing of the running one's pieces.
    append(&store.spool_path(job), "last line\n");
    shipper.finish().await.expect("the whole log stored");
    let (len, text) = read_all(&store, job, 0).await.expect("the finished log");
    assert_eq!(
        (len, text.as_str()),
        (28, "line one\nline two\nlast line\n")
    );
}

/// The record of `job` of acme/widgets#7's `unit` on w1, in `state`.
fn record(job: &str, state: &str, finished: Option<&str>) -> JobRecord {
    serde_json::from_value(serde_json::json!({
        "record_schema": 1, "job_id": job, "repo": "acme/widgets", "pr": 7,
        "head_sha": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", "context": "unit",
        "pool": "default", "worker": "w1", "private": false,
        "queued_at": "2026-12-07T10:00:00Z", "started_at": "2026-12-07T10:00:01Z",
        "finished_at": finished, "state": state
    }))
    .expect("a record")
}

/// Records: written, replaced, listed.
async fn records(store: &LogStore, job: &str) {
    let record = record(job, "running", None);
    store.put_record(&record).await.expect("stored");
    let done = JobRecord {
        state: RecordState::Failure,
        ..record.clone()
    };
    store.put_record(&done).await.expect("replaced");
    let keys = store.record_keys().await.expect("listed");
    assert_eq!(keys.len(), 1);
    let back = store.get_record(&keys[0].location).await.expect("read");
    assert_eq!(back, Some(done));
}

/// Artifacts: regular files in artifacts/, nothing outside it, nothing by a strange name.
async fn artifacts(store: &LogStore, job: &str) {
    let tree = tempfile::tempdir().expect("tree");
    let art = tree.path().join("artifacts");
    std::fs::create_dir_all(art.join("shots")).expect("dirs");
    std::fs::write(art.join("report.txt"), "all good\n").expect("write");
    std::fs::write(art.join("shots/login.png"), [0x89u8, b'P', b'N', b'G']).expect("write");
    std::fs::write(art.join("big.bin"), vec![0u8; 4096]).expect("write");
    std::os::unix::fs::symlink("/etc/passwd", art.join("passwd")).expect("symlink");
    let stored = store
        .put_artifacts(job, tree.path(), 1024)
        .await
        .expect("artifacts stored");
    assert_eq!(stored.paths, ["report.txt", "shots/login.png"]);
    assert_eq!(
        stored.skipped,
        ["big.bin (over the limit of 1000 files or [worker] max_log bytes)"],
        "the symlink is not even looked at"
    );
    let got = store
        .read_artifact(job, "shots/login.png")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(got.len, 4);
    for missing in ["passwd", "../logs", "big.bin"] {
        assert!(
            store
                .read_artifact(job, missing)
                .await
                .expect("read")
                .is_none(),
            "{missing}"
        );
    }
}

/// Retention: kept while young, then every object of the job goes.
async fn retention(store: &LogStore, job: &str) {
    let day = Duration::from_secs(86_400);
    let swept = tickbot::logs::retention::sweep_store(store, day, SystemTime::now())
        .await
        .expect("swept");
    assert_eq!(swept, 0);
    assert!(read_all(store, job, 0).await.is_some());
    let later = SystemTime::now() + 2 * day;
    let swept = tickbot::logs::retention::sweep_store(store, day, later)
        .await
        .expect("swept");
    assert_eq!(swept, 1);
    assert!(read_all(store, job, 0).await.is_none());
    assert!(
        store.list("").await.expect("listed").is_empty(),
        "nothing of the job is left"
    );
}

#[tokio::test]
async fn the_local_directory_store_conforms() {
    let state = tempfile::tempdir().expect("tempdir");
    let store = LogStore::local(state.path().join("logs")).expect("the local store");
    conformance(store, "job-local-1").await;
}

#[tokio::test]
async fn an_s3_store_conforms_and_the_worker_spool_is_removed_once_stored() {
    let s3 = TestS3::start();
    let state = tempfile::tempdir().expect("tempdir");
    let store = s3.store("ci/logs", state.path());
    conformance(store.clone(), "job-s3-1").await;
    assert!(
        !store.spool_path("job-s3-1").exists(),
        "the spool of a shipped log is removed"
    );
}

const TWO_TESTS: &str = r#"
[tests.left]
command = ["sh", "-c", "echo left begins; mkdir -p artifacts; echo left report > artifacts/report.txt; sleep 4; echo left ends"]
image = "localhost/tickbot-test:latest"
default = true

[tests.right]
command = ["sh", "-c", "echo right begins; sleep 4; echo 'error: the widget broke'; exit 1"]
image = "localhost/tickbot-test:latest"
default = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_without_a_shared_disk_have_their_logs_served_by_one_intake_live_and_after() {
    let _broker = common::broker_lock().read().await;
    let s3 = TestS3::start();
    let prefix = format!("deploy-{}", uuid::Uuid::new_v4());
    let intake_state = tempfile::tempdir().expect("tempdir");
    let mut w = common::world::World::with_logs(
        &[(".tickbot.toml", TWO_TESTS)],
        s3.store(&prefix, intake_state.path()),
    )
    .await;
    let _machines = two_machines(&mut w, &s3, &prefix);
    let (_pr, sha) = w.open_pr("alice", &[], "Two tests").await;
    let left = w.wait_in_progress(&sha, "left").await;
    let right = w.wait_in_progress(&sha, "right").await;
    let base = w.stack.intake_url.clone();
    let path = |url: &str| url.trim_start_matches(&base).to_string();
    let get = |path: &str| get(&base, path);

    // Live: each log shows its first line while the job still runs, wherever it runs.
    for (url, begins, ends) in [
        (&left, "left begins", "left ends\n"),
        (&right, "right begins", "broke\n"),
    ] {
        let live = common::wait_for("the live log", || {
            let log = get(&path(url));
            log.contains(begins).then_some(log)
        })
        .await;
        assert!(!live.contains(ends), "read while running: {live}");
    }
    let front = get("/");
    let running = front
        .split("id=\"finished\"")
        .next()
        .expect("the running part");
    assert!(
        running.contains(">w1<") && running.contains(">w2<"),
        "both workers' jobs run: {front}"
    );

    common::wait_within(common::world::LONG, "left to succeed", || {
        w.statuses(&sha, "left").pop().filter(|s| s.0 == "success")
    })
    .await;
    finished_pages(&w, &left, &right).await;
    assert!(
        !intake_state
            .path()
            .join("logs")
            .join(format!("{}.log", common::world::job_of(&right)))
            .exists(),
        "nothing on the intake's disk"
    );

    // Finished logs outlive the workers.
    w.stack.stop_workers().await;
    let after = get(&path(&right));
    assert!(
        after.contains("right begins\n") && after.contains("error: the widget broke\n"),
        "{after}"
    );
    w.stack.shutdown().await;
}

/// Two machines: each worker has its own state directory and checkouts, and the one store.
fn two_machines(w: &mut common::world::World, s3: &TestS3, prefix: &str) -> [tempfile::TempDir; 2] {
    let machines = [
        tempfile::tempdir().expect("w1"),
        tempfile::tempdir().expect("w2"),
    ];
    for (name, dir) in ["w1", "w2"].iter().zip(&machines) {
        let mut settings = w.stack.worker_settings(name, common::podman(), 1);
        settings.state_dir = dir.path().to_path_buf();
        settings.work_dir = dir.path().join("work");
        settings.logs = s3.store(prefix, dir.path());
        w.stack.start_worker(settings);
    }
    machines
}

fn get(base: &str, path: &str) -> String {
    common::curl_get(&format!("{base}{path}"))
}

/// After: finished logs, the failure marked, the artifact linked.
async fn finished_pages(w: &common::world::World, left: &str, right: &str) {
    let base = w.stack.intake_url.clone();
    let path = |url: &str| url.trim_start_matches(&base).to_string();
    let get = |path: &str| get(&base, path);
    let left_log = get(&path(left));
    assert!(left_log.contains("left ends\n"), "{left_log}");
    let job = common::world::job_of(right);
    common::wait_for("the failed job's record", || {
        w.stack
            .dashboard
            .index
            .get(job)
            .filter(|r| r.finished_at.is_some())
    })
    .await;
    let page = get(&format!("/jobs/{job}"));
    assert!(
        page.contains("<mark id=\"failure\">error: the widget broke</mark>"),
        "{page}"
    );
    let left_job = common::world::job_of(left);
    let left_page = get(&format!("/jobs/{left_job}"));
    let artifact = format!("/logs/{left_job}/artifacts/report.txt");
    assert!(
        left_page.contains(&format!("href=\"{artifact}\"")),
        "{left_page}"
    );
    assert_eq!(get(&artifact), "left report\n");
}

/// An intake that was down when jobs started and ended finds them in the store.
#[tokio::test]
async fn an_intake_finds_the_jobs_it_missed_in_the_store() {
    let state = tempfile::tempdir().expect("tempdir");
    let store = LogStore::local(state.path().join("logs")).expect("the local store");
    store
        .put_record(&record("j-running", "running", None))
        .await
        .expect("stored");
    let ended = record("j-ended", "failure", Some("2026-12-07T10:02:00Z"));
    store.put_record(&ended).await.expect("stored");
    let settings = tickbot::queue::BrokerSettings::new(None, state.path().join("queue"));
    let broker = tickbot::queue::Broker::open(&settings)
        .await
        .expect("the embedded queue");
    let index = tickbot::dashboard::index::JobIndex::open(&state.path().join("dashboard.sqlite3"))
        .expect("the index");
    let pools = vec!["default".to_string()];
    let dashboard = tickbot::dashboard::Dashboard::new(index.clone(), store, broker, pools, false);
    dashboard.reconcile().await;
    let ids = |records: Vec<JobRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.job_id).collect()
    };
    assert_eq!(ids(index.running(false)), ["j-running"]);
    let all = tickbot::dashboard::index::Filter::default();
    assert_eq!(ids(index.finished(&all, false)), ["j-ended"]);
}
