//! The intake under fire: `tickbot serve` as its own process (the embedded queue, so the
//! process's memory is the intake's), probed over raw TCP the way a slow, silent or greedy
//! client would, while GitHub's signed deliveries must still get their answer in time.

mod common;

use common::served::{
    Served, answer, deliver, deliver_ping, send_chunked, status_line, webhook_head,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// GitHub gives up on a delivery after 10 s: an answer later than that is a lost delivery.
const GITHUB_GIVES_UP: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_do_not_keep_githubs_deliveries_waiting() {
    let served = Served::start(&[]);
    // What the probe did: connections that sent a signed head and hold the body back, and
    // connections that send nothing at all.
    let mut held = Vec::new();
    for i in 0..200 {
        let mut stream = served.connect();
        let head = webhook_head("ping", &format!("slow-{i}"), b"{}", Some(1_000_000));
        stream.write_all(head.as_bytes()).expect("send a head");
        held.push(stream);
    }
    held.extend((0..200).map(|_| served.connect()));

    for n in 0..5 {
        let (status, took) = deliver_ping(&served, &format!("real-{n}"));
        assert_eq!(status, "HTTP/1.1 200 OK", "delivery {n}");
        assert!(
            took < GITHUB_GIVES_UP,
            "delivery {n} was answered after {took:?}, when GitHub had given up"
        );
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let served = Served::start(&[]);
    let mut stream = served.connect();
    let head = webhook_head(
        "ping",
        "too-big",
        b"{}",
        Some(tickbot::intake::MAX_BODY + 1),
    );
    stream.write_all(head.as_bytes()).expect("send a head");
    // Not a byte of the body follows: the answer comes from the head alone.
    assert_eq!(
        answer(&mut stream),
        (
            "HTTP/1.1 413 Payload Too Large".into(),
            "the body is over GitHub's 25 MiB limit\n".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_are_cut_off_at_their_timeouts() {
    let served = Served::start(&[
        ("TICKBOT__WEBHOOK__HEADER_TIMEOUT", "1s"),
        ("TICKBOT__WEBHOOK__BODY_TIMEOUT", "1s"),
    ]);

    // Half a head, then silence: the connection is closed without an answer.
    let mut half_head = served.connect();
    half_head
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: intake\r\n")
        .expect("send half a head");
    let started = Instant::now();
    assert_eq!(status_line(&mut half_head), "");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A whole head, half the body: the sender is told why.
    let mut half_body = served.connect();
    let body = br#"{"zen":"Half"}"#;
    half_body
        .write_all(webhook_head("ping", "half-body", body, Some(body.len())).as_bytes())
        .and_then(|()| half_body.write_all(&body[..5]))
        .expect("send half a delivery");
    assert_eq!(
        answer(&mut half_body),
        (
            "HTTP/1.1 408 Request Timeout".into(),
            "the body did not arrive within 1s ([webhook] body_timeout)\n".into()
        )
    );

    // Both were closed, and a delivery still gets through.
    assert_eq!(deliver_ping(&served, "after").0, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_oversized_uploads_stays_within_a_few_hundred_megabytes() {
    let served = Served::start(&[]);
    let before = served.peak_mib();
    // 64 uploads of 26 MiB without a declared length, sent as fast as loopback allows.
    let uploads: Vec<_> = (0..64)
        .map(|i| {
            let mut stream = served.connect();
            std::thread::spawn(move || {
                let head = webhook_head("ping", &format!("flood-{i}"), b"{}", None);
                // The intake may answer and close before the whole upload is sent.
                let _ = send_chunked(&mut stream, &head, 26);
                status_line(&mut stream)
            })
        })
        .collect();
    for upload in uploads {
        let status = upload.join().expect("an upload thread");
        assert!(
            [
                "HTTP/1.1 413 Payload Too Large",
                "HTTP/1.1 408 Request Timeout",
                "HTTP/1.1 503 Service Unavailable",
                ""
            ]
            .contains(&status.as_str()),
            "an oversized upload was answered {status:?}"
        );
    }
    let peak = served.peak_mib();
    assert!(
        peak < 400,
        "the intake peaked at {peak} MiB (it started at {before} MiB)"
    );
    assert_eq!(deliver_ping(&served, "after-flood").0, "HTTP/1.1 200 OK");
}

/// A small tmpfs, unmounted when dropped: a disk that can really fill up.
struct SmallDisk(TempDir);

impl SmallDisk {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            mounted.success(),
            "this test mounts a small tmpfs to fill it up: run the suite as root"
        );
        Self(dir)
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.0.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_503_never_a_2xx_it_cannot_keep_and_recovers() {
    let disk = SmallDisk::new("8m");
    let state = tempfile::tempdir_in(disk.0.path()).expect("state dir on the small disk");
    let served = Served::start_in(state, &[]);
    let event = std::fs::read("tests/fixtures/github-webhooks/pull_request/opened.payload.json")
        .expect("fixture");
    assert_eq!(
        deliver(&served, "pull_request", "before", &event).0,
        "HTTP/1.1 202 Accepted"
    );

    let filler = disk.fill();
    for n in 0..3 {
        let (status, _) = deliver(&served, "pull_request", &format!("full-{n}"), &event);
        assert_eq!(
            status, "HTTP/1.1 503 Service Unavailable",
            "delivery {n} on a full disk"
        );
    }

    std::fs::remove_file(filler).expect("free the disk");
    // GitHub redelivers the failed deliveries: now they are kept, once.
    for n in 0..3 {
        let (status, _) = deliver(&served, "pull_request", &format!("full-{n}"), &event);
        assert_eq!(status, "HTTP/1.1 202 Accepted", "delivery {n} redelivered");
    }
    assert_eq!(
        deliver(&served, "pull_request", "full-0", &event).0,
        "HTTP/1.1 200 OK",
        "a delivery kept once is a duplicate after"
    );
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_readers_of_a_large_log_cost_a_buffer_each_not_the_log() {
    let state = tempfile::tempdir().expect("state dir");
    let logs = state.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let line = "tickbot: a line of a very long log, repeated to make it large\n";
    let size = 100 * 1024 * 1024;
    std::fs::write(logs.join("jbig.log"), line.repeat(size / line.len())).expect("a large log");
    let served = Served::start_in(state, &[]);
    let before = served.peak_mib();
    let addr = served.addr;
    let readers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .write_all(
                        b"GET /logs/jbig HTTP/1.1\r\nHost: intake\r\nConnection: close\r\n\r\n",
                    )
                    .expect("ask for the log");
                let mut read = 0;
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    read += n;
                }
                read
            })
        })
        .collect();
    for reader in readers {
        let read = reader.join().expect("a reader");
        assert!(
            read > size - line.len(),
            "a reader got {read} bytes of {size}"
        );
    }
    let peak = served.peak_mib();
    assert!(
        peak < before + 100,
        "8 readers of a 100 MiB log took the intake from {before} to {peak} MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_older_than_logs_keep_are_deleted_when_the_intake_starts() {
    let state = tempfile::tempdir().expect("state dir");
    let logs = state.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let week = Duration::from_secs(7 * 86_400);
    for (name, age) in [("jold.log", 2 * week), ("jnew.log", Duration::ZERO)] {
        let path = logs.join(name);
        std::fs::write(&path, "tickbot: a log\n").expect("a log");
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_modified(std::time::SystemTime::now() - age)
            .expect("set its time");
    }
    let _served = Served::start_in(state, &[("TICKBOT__LOGS__KEEP", "7d")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while logs.join("jold.log").exists() {
        assert!(Instant::now() < deadline, "the old log was not deleted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(logs.join("jnew.log").exists(), "a recent log is kept");
}
