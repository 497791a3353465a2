//! `tickbot serve` as its own process (the embedded queue, so the process's memory is the
//! intake's), spoken to over raw TCP as GitHub or a slow, silent or greedy client would. Shared
//! by `tests/intake.rs` and `benches/hostile.rs` (included there by path).
#![allow(dead_code)] // each includer uses its own part of this

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const SECRET: &str = "intake-test-secret";

/// `tickbot serve` on a port of its own, stopped when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    _state: TempDir,
}

impl Served {
    /// Starts the intake with `settings` (`TICKBOT__WEBHOOK__…` variables) and waits until it
    /// answers `/readyz`.
    pub fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("state dir"), settings)
    }

    /// Like [`start`](Self::start), with its state in `state`.
    pub fn start_in(state: TempDir, settings: &[(&str, &str)]) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_tickbot"))
            .args(["--config", "/nonexistent/tickbot.toml", "serve"])
            .env("TICKBOT__STATE__DIR", state.path())
            .env("TICKBOT__WEBHOOK__SECRET", SECRET)
            .env("TICKBOT__WEBHOOK__LISTEN", addr.to_string())
            .envs(settings.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start tickbot serve");
        let served = Self {
            child,
            addr,
            _state: state,
        };
        // A bound, not a pause: the wait ends as soon as the intake answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !served.ready() {
            assert!(
                Instant::now() < deadline,
                "the intake did not answer /readyz"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        served
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.addr) else {
            return false;
        };
        let asked =
            stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: intake\r\nConnection: close\r\n\r\n");
        asked.is_ok() && answer(&mut stream).0 == "HTTP/1.1 200 OK"
    }

    /// The most memory the process has used so far (its peak resident set), in MiB.
    pub fn peak_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the intake's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status");
        kib / 1024
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to the intake");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The head of a signed delivery of `event` with `body`, declaring `length` bytes (none:
/// chunked).
pub fn webhook_head(event: &str, delivery: &str, body: &[u8], length: Option<usize>) -> String {
    let framing = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    format!(
        "POST /webhook HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: {event}\r\nX-GitHub-Delivery: {delivery}\r\n\
         X-Hub-Signature-256: {}\r\n{framing}Connection: close\r\n\r\n",
        tickbot::intake::sign(SECRET.as_bytes(), body)
    )
}

/// The status line of the answer on `stream` (empty when the intake closed it unanswered).
pub fn status_line(stream: &mut TcpStream) -> String {
    answer(stream).0
}

/// The status line and the body of the answer on `stream`.
pub fn answer(stream: &mut TcpStream) -> (String, String) {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// A signed `ping` delivery as GitHub sends it; the status line and how long it took.
pub fn deliver_ping(served: &Served, delivery: &str) -> (String, Duration) {
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    deliver(served, "ping", delivery, body)
}

/// A signed delivery of `event`; the status line and how long it took.
pub fn deliver(served: &Served, event: &str, delivery: &str, body: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = served.connect();
    stream
        .write_all(webhook_head(event, delivery, body, Some(body.len())).as_bytes())
        .and_then(|()| stream.write_all(body))
        .expect("send the delivery");
    (status_line(&mut stream), started.elapsed())
}

/// Sends `head`, then `mib` chunks of 1 MiB and the end of a chunked body; stops at the first
/// write the intake refuses (it may answer and close before the whole body is sent).
pub fn send_chunked(stream: &mut TcpStream, head: &str, mib: usize) -> std::io::Result<()> {
    let chunk = vec![b' '; 1024 * 1024];
    stream.write_all(head.as_bytes())?;
    for _ in 0..mib {
        write!(stream, "{:x}\r\n", chunk.len())?;
        stream.write_all(&chunk)?;
        stream.write_all(b"\r\n")?;
    }
    stream.write_all(b"0\r\n\r\n")
}
