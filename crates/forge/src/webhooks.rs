//! Signed webhook deliveries: payload builders shaped like the real fixtures, and one sender
//! task that delivers in order, records each attempt and can redeliver with the same id.
//!
//! The forge enqueues a delivery only after the state change is visible through the REST API,
//! so a bot that re-reads on receipt always sees what the webhook announced.

use super::git::CommitInfo;
use super::json::{self, Urls};
use super::state::{ForgeError, Repo, State};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tickbot_syntax::ids::PrNumber;
use tokio::sync::{mpsc, oneshot, watch};

/// GitHub gives a receiver 10 seconds before it records a timeout.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where webhooks go and the secret they are signed with.
#[derive(Debug, Clone)]
pub struct HookTarget {
    pub url: String,
    pub secret: String,
}

/// One delivery attempt, as GitHub's "Recent Deliveries" would show it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    /// The `X-GitHub-Delivery` id; a redelivery keeps it.
    pub id: String,
    pub event: String,
    pub action: Option<String>,
    /// The receiver's HTTP status; `None` when the request failed.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub redelivery: bool,
    /// The exact bytes that were signed and sent.
    pub body: String,
    pub delivered_at: DateTime<Utc>,
}

struct Outgoing {
    id: String,
    event: String,
    action: Option<String>,
    body: Bytes,
    target: HookTarget,
    redelivery: bool,
    reply: Option<oneshot::Sender<Option<u16>>>,
}

/// The webhook sender: the target, the queue and the delivery log.
pub struct Webhooks {
    target: Mutex<Option<HookTarget>>,
    records: Arc<Mutex<Vec<DeliveryRecord>>>,
    tx: mpsc::UnboundedSender<Outgoing>,
    enqueued: AtomicU64,
    done: watch::Receiver<u64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Deliveries of events sent by this login wait here (GitHub delivering late).
    held: Mutex<Option<(String, Vec<Outgoing>)>>,
}

/// `sha256=<hex>` over the exact body, as in `X-Hub-Signature-256`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Webhooks {
    /// Starts the sender task; it ends when the `Webhooks` is dropped or shut down.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done) = watch::channel(0);
        let records = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(send_loop(rx, records.clone(), done_tx));
        Webhooks {
            target: Mutex::new(None),
            records,
            tx,
            enqueued: AtomicU64::new(0),
            done,
            task: Mutex::new(Some(task)),
            held: Mutex::new(None),
        }
    }

    pub fn set_target(&self, target: HookTarget) {
        *lock(&self.target) = Some(target);
    }

    pub fn records(&self) -> Vec<DeliveryRecord> {
        lock(&self.records).clone()
    }

    /// Queues an event for delivery; without a target there is nobody to tell.
    pub fn send(&self, event: &str, payload: &Value) {
        let Some(target) = lock(&self.target).clone() else {
            return;
        };
        let action = payload["action"].as_str().map(str::to_string);
        let body = Bytes::from(payload.to_string());
        let out = Outgoing {
            id: uuid::Uuid::new_v4().to_string(),
            event: event.to_string(),
            action,
            body,
            target,
            redelivery: false,
            reply: None,
        };
        let mut held = lock(&self.held);
        match held.as_mut() {
            Some((login, waiting)) if payload["sender"]["login"].as_str() == Some(login) => {
                waiting.push(out)
            }
            _ => self.enqueue(out),
        }
    }

    /// Holds back the events `login` causes until [`Webhooks::release`], as when GitHub
    /// delivers one late: what others do meanwhile is delivered first.
    pub fn hold_from(&self, login: &str) {
        *lock(&self.held) = Some((login.to_string(), Vec::new()));
    }

    /// Sends the held deliveries, in order, and stops holding.
    pub fn release(&self) {
        let mut held = lock(&self.held);
        for out in held.take().map(|(_, w)| w).unwrap_or_default() {
            self.enqueue(out);
        }
    }

    fn enqueue(&self, out: Outgoing) {
        self.enqueued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(out).is_err() {
            tracing::warn!("webhook sender stopped; delivery dropped");
        }
    }

    /// Sends a recorded delivery again, same id and body, and returns the receiver's status.
    pub async fn redeliver(&self, id: &str) -> anyhow::Result<u16> {
        // A receiver may hold the delivery before its attempt is recorded; let it land first.
        self.flush(DELIVERY_TIMEOUT * 2).await?;
        let original = lock(&self.records)
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no delivery with id {id}"))?;
        let target = lock(&self.target)
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no webhook target configured"))?;
        let (reply, answer) = oneshot::channel();
        self.enqueue(Outgoing {
            id: original.id,
            event: original.event,
            action: original.action,
            body: Bytes::from(original.body),
            target,
            redelivery: true,
            reply: Some(reply),
        });
        answer
            .await?
            .ok_or_else(|| anyhow::anyhow!("redelivery of {id} failed to reach the receiver"))
    }

    /// Waits until everything queued so far has been attempted.
    pub async fn flush(&self, timeout: Duration) -> anyhow::Result<()> {
        let want = self.enqueued.load(Ordering::SeqCst);
        let mut done = self.done.clone();
        tokio::time::timeout(timeout, done.wait_for(|d| *d >= want))
            .await
            .map_err(|_| anyhow::anyhow!("webhooks not delivered within {timeout:?}"))?
            .map_err(|_| anyhow::anyhow!("webhook sender stopped"))?;
        Ok(())
    }

    pub fn shutdown(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

async fn send_loop(
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    records: Arc<Mutex<Vec<DeliveryRecord>>>,
    done: watch::Sender<u64>,
) {
    // No pooled connections: a receiver that closes an idle connection would otherwise turn
    // the next delivery into a spurious failure. A fresh local connection costs nothing.
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    while let Some(out) = rx.recv().await {
        let result = tokio::time::timeout(DELIVERY_TIMEOUT, deliver(&client, &out)).await;
        let (status, error) = match result {
            Ok(Ok(s)) => (Some(s), None),
            Ok(Err(e)) => (None, Some(format!("{e:#}"))),
            Err(_) => (None, Some("timed out".to_string())),
        };
        tracing::debug!(id = %out.id, event = %out.event, ?status, ?error, "webhook delivered");
        lock(&records).push(DeliveryRecord {
            id: out.id,
            event: out.event,
            action: out.action,
            status,
            error,
            redelivery: out.redelivery,
            body: String::from_utf8_lossy(&out.body).into_owned(),
            delivered_at: Utc::now(),
        });
        if let Some(reply) = out.reply {
            let _ = reply.send(status);
        }
        done.send_modify(|d| *d += 1);
    }
}

async fn deliver(
    client: &Client<HttpConnector, Full<Bytes>>,
    out: &Outgoing,
) -> anyhow::Result<u16> {
    let req = hyper::Request::post(&out.target.url)
        .header("Content-Type", "application/json")
        .header("User-Agent", "GitHub-Hookshot/forge")
        .header("X-GitHub-Event", &out.event)
        .header("X-GitHub-Delivery", &out.id)
        .header("X-GitHub-Hook-ID", "1")
        .header("X-GitHub-Hook-Installation-Target-Type", "repository")
        .header("X-Hub-Signature-256", sign(&out.target.secret, &out.body))
        .body(Full::new(out.body.clone()))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    // Read the answer to the end so the connection can be reused.
    let _ = resp.into_body().collect().await;
    Ok(status)
}

/// What every repository event payload is rendered from.
pub struct Scene<'a> {
    pub urls: &'a Urls,
    pub st: &'a State,
    pub repo: &'a Repo,
}

/// What a repository event is about.
#[derive(Clone, Copy)]
pub enum Subject {
    /// `pull_request`.
    Pull(PrNumber),
    /// `issue_comment`, for a comment (by id) on a pull request.
    Comment(u64),
    /// `check_run` (by id), as sent to the app.
    CheckRun(u64),
}

/// The webhook event (its name and payload) with `action` about `subject` in the scene's
/// repository, by `sender`; `extra` fields override the rest.
pub fn repo_event(
    s: &Scene<'_>,
    subject: Subject,
    action: &str,
    sender: &str,
    extra: Value,
) -> Result<(&'static str, Value), ForgeError> {
    let (event, fields) = match subject {
        Subject::Pull(n) => {
            let pr = s.repo.pull(n.0)?;
            let fields = json!({
                "number": pr.number.0,
                "pull_request": json::pull(s.urls, s.st, s.repo, pr),
            });
            ("pull_request", fields)
        }
        Subject::Comment(id) => {
            let c = (s.repo.comments.iter())
                .find(|c| c.id == id)
                .ok_or(ForgeError::NotFound)?;
            let issue = match s.repo.issues.get(&c.issue.0) {
                Some(plain) => json::plain_issue(s.urls, s.st, s.repo, plain),
                None => json::issue(s.urls, s.st, s.repo, s.repo.pull(c.issue.0)?),
            };
            let fields = json!({
                "issue": issue,
                "comment": json::comment(s.urls, s.st, s.repo, c),
            });
            ("issue_comment", fields)
        }
        Subject::CheckRun(id) => {
            let fields = json!({
                "check_run": json::check_run(s.urls, s.repo, s.repo.check_run(id)?),
                "installation": { "id": super::app::INSTALLATION },
            });
            ("check_run", fields)
        }
    };
    let mut v = json!({
        "action": action,
        "repository": json::repository(s.urls, s.repo),
        "sender": json::user(s.urls, sender),
    });
    merge(&mut v, fields);
    merge(&mut v, extra);
    Ok((event, v))
}

/// What moved in a push.
pub struct PushInfo<'a> {
    pub branch: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub forced: bool,
    pub commits: &'a [CommitInfo],
    pub pusher: &'a str,
}

pub fn push_event(urls: &Urls, repo: &Repo, push: &PushInfo<'_>) -> Value {
    let zero = "0".repeat(40);
    let before = push.before.unwrap_or(&zero);
    let after = push.after.unwrap_or(&zero);
    let html = urls.html_repo(&repo.name);
    let commit = |c: &CommitInfo| {
        json!({
            "id": c.sha,
            "tree_id": "",
            "distinct": true,
            "message": c.message,
            "timestamp": c.timestamp,
            "url": format!("{html}/commit/{}", c.sha),
            "author": { "name": c.author_name, "email": c.author_email, "username": c.author_name },
            "committer": { "name": c.author_name, "email": c.author_email, "username": c.author_name },
            "added": c.added,
            "removed": c.removed,
            "modified": c.modified,
        })
    };
    let commits: Vec<Value> = push.commits.iter().rev().map(commit).collect();
    let head_commit = push.commits.first().map(commit);
    let mut repository = json::repository(urls, repo);
    // Push payloads spell a few repository fields differently (see fixtures/push/*.json).
    repository["created_at"] = json!(repo.created_at.timestamp());
    repository["pushed_at"] = json!(repo.pushed_at.timestamp());
    repository["master_branch"] = json!(repo.default_branch);
    repository["stargazers"] = json!(0);
    repository["url"] = json!(html);
    repository["owner"]["name"] = json!(repo.name.owner());
    repository["owner"]["email"] = json!(format!(
        "{}@users.noreply.forge.localhost",
        repo.name.owner()
    ));
    json!({
        "ref": format!("refs/heads/{}", push.branch),
        "before": before,
        "after": after,
        "created": push.before.is_none(),
        "deleted": push.after.is_none(),
        "forced": push.forced,
        "base_ref": null,
        "compare": format!("{html}/compare/{}...{}", &before[..12.min(before.len())], &after[..12.min(after.len())]),
        "commits": commits,
        "head_commit": head_commit,
        "repository": repository,
        "pusher": { "name": push.pusher, "email": format!("{}@users.noreply.forge.localhost", push.pusher) },
        "sender": json::user(urls, push.pusher),
    })
}

/// The `ping` sent when a webhook target is configured.
pub fn ping_event(url: &str) -> Value {
    json!({
        "zen": "Keep it logically awesome.",
        "hook_id": 1,
        "hook": {
            "type": "Repository",
            "id": 1,
            "name": "web",
            "active": true,
            "events": ["*"],
            "config": { "content_type": "json", "url": url, "insecure_ssl": "0" },
        },
    })
}

pub(super) fn merge(into: &mut Value, extra: Value) {
    if let (Some(obj), Value::Object(more)) = (into.as_object_mut(), extra) {
        obj.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" page.
        assert_eq!(
            sign("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
