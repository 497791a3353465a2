//! What the end-to-end test binaries share: bounded waiting, the RabbitMQ under test, and the
//! lock that keeps a broker restart away from the other tests of a binary.

#![allow(dead_code)] // each test binary uses its own part of this

pub mod browser;
pub mod cli;
pub mod registry;
pub mod s3;
pub mod served;
pub mod tap;
pub mod world;

use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::RwLock;

/// How long a story waits for an effect it expects. A bound, not a pause: a passing wait ends
/// as soon as the effect shows. Generous because the binary's RabbitMQ-restart story leaves
/// the broker slow for a few seconds for whichever story runs next.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn amqp_url() -> String {
    std::env::var("TICKBOT_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Sends tickbot's logs to the test harness, which prints them only for a failing test: a story
/// that timed out then shows what the dispatcher and workers did meanwhile. `RUST_LOG` narrows
/// or widens them.
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tickbot=debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A test that restarts RabbitMQ takes this for writing; every other test for reading.
pub fn broker_lock() -> &'static RwLock<()> {
    static LOCK: OnceLock<RwLock<()>> = OnceLock::new();
    LOCK.get_or_init(|| RwLock::new(()))
}

/// Polls `check` until it returns Some, failing the test with `what` after `within`.
pub async fn wait_within<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_within`] the default [`WAIT`].
pub async fn wait_for<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_within(WAIT, what, check).await
}

/// The status code of `GET <base><path>` (plain HTTP on loopback), or `None` when there is no
/// answer.
pub fn http_status(base: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let host = base.strip_prefix("http://")?;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The podman configuration this project's tests use (see tasks/podman-containers.conf).
pub fn containers_conf() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tasks/podman-containers.conf")
}

/// The podman runtime with this project's test configuration.
pub fn podman() -> tickbot::worker::runtime::Runtime {
    tickbot::worker::runtime::Runtime::Podman {
        containers_conf: Some(containers_conf()),
    }
}

/// Names of the containers podman knows, running or not.
pub fn containers() -> Vec<String> {
    let out = podman_output(&["ps", "-a", "--format", "{{.Names}}"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `text` with what changes from run to run replaced by placeholders (commit ids, job ids,
/// comment ids), so a comment can be asserted whole with a snapshot.
pub fn redact(text: &str) -> String {
    let rules = [
        (r"\b[0-9a-f]{40}\b", "<sha>"),
        (r"\b[0-9a-f]{7}\b", "<short-sha>"),
        (r"/logs/[0-9a-z]+", "/logs/<job>"),
        (r"tickbot:reply:\d+", "tickbot:reply:<comment>"),
        (r"\(tasks [0-9a-f]+\)", "(tasks <digest>)"),
        (r"http://127\.0\.0\.1:\d+", "http://<intake>"),
        (
            r"tickbot:summary-data [A-Za-z0-9+/=]+",
            "tickbot:summary-data <rows>",
        ),
    ];
    rules
        .iter()
        .fold(text.to_string(), |text, (pattern, with)| {
            let re = regex::Regex::new(pattern).expect("a valid pattern");
            re.replace_all(&text, *with).into_owned()
        })
}

/// The body of `GET http://<addr><path>` (HTTP/1.1, the connection closed after it).
pub fn http_get(addr: &str, path: &str) -> String {
    try_http_get(addr, path).unwrap_or_else(|| panic!("no answer from {addr}{path}"))
}

/// [`http_get`], or `None` while nothing answers (a server still starting).
pub fn try_http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

/// The body of `GET <url>` with curl, which reads chunked (streamed) answers as a browser does.
pub fn curl_get(url: &str) -> String {
    run("curl", &["-sf", url])
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// `podman <args>` with this project's test configuration, its output captured.
pub fn podman_output(args: &[&str]) -> std::process::Output {
    std::process::Command::new("podman")
        .env("CONTAINERS_CONF", containers_conf())
        .args(args)
        .output()
        .expect("podman (install podman: apt-get install podman runc)")
}

/// The value of the Prometheus sample `name` whose labels include `labels`, in `text`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (series, value) = rest.rsplit_once(' ')?;
        let has = |(k, v): &(&str, &str)| series.contains(&format!("{k}=\"{v}\""));
        let named = series.is_empty() || series.starts_with('{');
        (named && labels.iter().all(has)).then(|| value.parse().ok())?
    })
}
