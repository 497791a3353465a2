//! The forge test world: a local forge with one repository and a webhook receiver, plain HTTP
//! calls, the git CLI, and the comparison of webhook payloads with GitHub's real fixtures.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tickbot::forge::{Forge, ForgeOptions, sign_webhook};
use tickbot::ids::{PrNumber, RepoName};
use tokio::sync::mpsc;

pub const SECRET: &str = "hook-secret";
pub const WAIT: Duration = Duration::from_secs(15);

/// One delivery as the receiver saw it.
#[derive(Debug)]
pub struct Received {
    pub event: String,
    pub delivery: String,
    pub signature_ok: bool,
    pub user_agent: String,
    pub body: Value,
}

/// A forge with one repository and a webhook receiver, like a test world for a bot.
pub struct World {
    _dir: tempfile::TempDir,
    pub forge: Forge,
    pub repo: RepoName,
    pub hooks: mpsc::UnboundedReceiver<Received>,
}

async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let _ = tx.send(Received {
                    event: h("x-github-event"),
                    delivery: h("x-github-delivery"),
                    signature_ok: h("x-hub-signature-256") == sign_webhook(SECRET, &body)
                        && h("content-type") == "application/json",
                    user_agent: h("user-agent"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let forge = Forge::start(ForgeOptions::local(dir.path()))
            .await
            .expect("forge starts");
        let (url, mut hooks) = receiver().await;
        forge.set_webhook(&url, SECRET).await;
        let ping = next(&mut hooks, "ping", None).await;
        assert!(ping.signature_ok);
        let repo: RepoName = "acme/widgets".parse().expect("valid");
        forge
            .create_repo(
                &repo,
                "main",
                &[
                    (".tickbot.toml", "[tasks.lint]\ncommand = [\"true\"]\n"),
                    ("README.md", "hi\n"),
                ],
            )
            .await
            .expect("create repo");
        World {
            _dir: dir,
            forge,
            repo,
            hooks,
        }
    }

    /// `author` pushes branch `branch` from main and opens a PR.
    pub async fn pr(&self, branch: &str, body: &str, author: &str) -> PrNumber {
        self.forge
            .commit_files(
                &self.repo,
                branch,
                Some("main"),
                &[("f.txt", branch)],
                "change",
                author,
            )
            .await
            .expect("push");
        self.forge
            .open_pr(&self.repo, branch, "main", "A change", body, author)
            .await
            .expect("open")
    }

    /// A world where alice has opened PR "A change" from branch `topic` with `body`.
    pub async fn with_pr(body: &str) -> (World, PrNumber) {
        let w = World::new().await;
        let pr = w.pr("topic", body, "alice").await;
        (w, pr)
    }

    pub fn octocrab(&self) -> octocrab::Octocrab {
        octocrab::Octocrab::builder()
            .base_uri(self.forge.api_url())
            .expect("base uri")
            .personal_token(self.forge.bot_token().to_string())
            .build()
            .expect("octocrab")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/repos/{}{path}", self.forge.api_url(), self.repo)
    }
}

/// The next delivery of `event` (and `action`), skipping others; bounded by [`WAIT`].
pub async fn next(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    event: &str,
    action: Option<&str>,
) -> Received {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(r) = rx.recv().await {
            if r.event == event && action.is_none_or(|a| r.body["action"] == a) {
                return Some(r);
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no {event} {action:?} webhook within {WAIT:?}"))
}

/// A plain HTTP call; returns status, headers and the JSON body (Null when not JSON).
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, axum::http::HeaderMap, Value) {
    call_with(method, url, token, body, &[]).await
}

/// [`call`] with more request headers.
pub async fn call_with(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, axum::http::HeaderMap, Value) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("token {t}"));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = req.body(Full::new(Bytes::from(payload))).expect("request");
    let resp = tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("answer in time")
        .expect("http");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github-webhooks")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Every key the real payload has under `fixture` exists in ours with the same JSON type
/// (`null` is compatible with anything: GitHub's nullable fields). Arrays compare their first
/// elements when both have one. Returns the differences as `path: problem`.
fn shape_diff(fixture: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    match (fixture, ours) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(f), Value::Object(o)) => {
            for (k, fv) in f {
                let p = format!("{path}.{k}");
                match o.get(k) {
                    Some(ov) => shape_diff(fv, ov, &p, out),
                    None => out.push(format!("{p}: missing")),
                }
            }
        }
        (Value::Array(f), Value::Array(o)) => {
            if let (Some(fv), Some(ov)) = (f.first(), o.first()) {
                shape_diff(fv, ov, &format!("{path}[0]"), out);
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (f, o) => out.push(format!("{path}: fixture {f} vs ours {o}")),
    }
}

/// Compares the parts of a payload a bot reads (everything except GitHub App `installation`).
pub fn assert_shaped_like(fixture_name: &str, ours: &Value) {
    let real = fixture(fixture_name);
    let mut diffs = Vec::new();
    for key in [
        "action",
        "number",
        "pull_request",
        "issue",
        "comment",
        "check_run",
        "requested_action",
        "repository",
        "sender",
    ] {
        if let Some(f) = real.get(key) {
            match ours.get(key) {
                Some(o) => shape_diff(f, o, key, &mut diffs),
                None => diffs.push(format!("{key}: missing")),
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{fixture_name} differs:\n{}",
        diffs.join("\n")
    );
}

/// Runs the git CLI off the async threads: the forge answering it shares this runtime.
pub async fn git(dir: &Path, args: &[&str]) -> String {
    let (dir, args): (PathBuf, Vec<String>) = (
        dir.to_path_buf(),
        args.iter().map(|a| a.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || git_blocking(&dir, &args))
        .await
        .expect("git thread")
}

fn git_blocking(dir: &Path, args: &[String]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=alice@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether anything answers a GET of `url` (a connection refused is no answer); bounded by
/// [`WAIT`].
pub async fn answers(url: &str) -> bool {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    tokio::time::timeout(WAIT, client.request(req))
        .await
        .expect("bounded")
        .is_ok()
}
