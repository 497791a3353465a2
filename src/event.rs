//! The webhook events tickbot acts on, reduced to the fields it reads.
//!
//! Our own tolerant structs rather than octocrab's models: GitHub adds actions to known events
//! (octocrab then fails to parse the whole payload), and a webhook must never be lost over a
//! field we don't read. Unknown actions stay strings; unknown events become [`Event::Other`].

use crate::github::{PullRequest, WirePullRequest};
use crate::ids::{CommitSha, PrNumber, RepoName};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// What the intake publishes on the events queue: the verified delivery, payload untouched.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub schema: u32,
    pub delivery: String,
    pub event: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub payload: Box<RawValue>,
}

pub const ENVELOPE_SCHEMA: u32 = 1;

/// An [`Envelope`] as queued, built by concatenation so the payload bytes are carried untouched.
pub fn envelope(delivery: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let head = serde_json::json!({
        "schema": ENVELOPE_SCHEMA,
        "delivery": delivery,
        "event": event,
        "received_at": chrono::Utc::now(),
    })
    .to_string();
    let mut out = Vec::with_capacity(head.len() + payload.len() + 16);
    // `head` is a JSON object: reopen it before its closing brace.
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload);
    out.push(b'}');
    out
}

/// Events the dispatcher handles; the intake answers 202 and drops every other kind.
pub const HANDLED_EVENTS: &[&str] = &["pull_request", "issue_comment", "check_run"];

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PullRequest(Box<PullRequestEvent>),
    IssueComment(CommentEvent),
    CheckRun(CheckRunEvent),
    Other {
        event: String,
        action: Option<String>,
    },
}

/// A `pull_request` event: the pull request (the same object GitHub's REST API returns, so it
/// is read by the same code as [`crate::github::GitHub::pull_request`]) and who did what.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequestEvent {
    pub action: String,
    pub pull: PullRequest,
    pub sender: String,
    /// For `edited`: the body before the edit.
    pub body_before: Option<String>,
    /// For `synchronize`: the head commit before the push.
    pub before: Option<CommitSha>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommentEvent {
    pub action: String,
    pub repo: RepoName,
    pub number: PrNumber,
    pub on_pull_request: bool,
    pub comment_id: u64,
    pub body: String,
    pub author: String,
    pub author_association: String,
}

/// A `check_run` event: someone clicked Re-run (`rerequested`) or one of the run's buttons
/// (`requested_action`, with its identifier).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRunEvent {
    pub action: String,
    pub repo: RepoName,
    /// The run's name: the context.
    pub name: String,
    pub head_sha: CommitSha,
    /// The open PRs whose head is that commit.
    pub pulls: Vec<PrNumber>,
    pub sender: String,
    pub identifier: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the {event} payload is not what GitHub sends: {source}")]
    Shape {
        event: String,
        source: serde_json::Error,
    },
    #[error("the {event} payload has an unusable pull request: {reason}")]
    Pull { event: String, reason: String },
    #[error("the {event} payload names an invalid repository: {source}")]
    Repo {
        event: String,
        source: crate::ids::InvalidRepoName,
    },
}

#[derive(Deserialize)]
struct RawUser {
    login: String,
}

#[derive(Deserialize)]
struct RawRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct RawPullRequestEvent {
    action: String,
    pull_request: WirePullRequest,
    repository: RawRepo,
    sender: RawUser,
    #[serde(default)]
    changes: Option<RawChanges>,
    #[serde(default)]
    before: Option<String>,
}

#[derive(Deserialize)]
struct RawChanges {
    body: Option<RawFrom>,
}

#[derive(Deserialize)]
struct RawFrom {
    from: Option<String>,
}

#[derive(Deserialize)]
struct RawIssue {
    number: u64,
    #[serde(default)]
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawComment {
    id: u64,
    body: Option<String>,
    user: RawUser,
    #[serde(default)]
    author_association: String,
}

#[derive(Deserialize)]
struct RawCommentEvent {
    action: String,
    issue: RawIssue,
    comment: RawComment,
    repository: RawRepo,
}

#[derive(Deserialize)]
struct RawCheckRunEvent {
    action: String,
    check_run: RawCheckRun,
    repository: RawRepo,
    sender: RawUser,
    #[serde(default)]
    requested_action: Option<RawRequestedAction>,
}

#[derive(Deserialize)]
struct RawCheckRun {
    name: String,
    head_sha: String,
    #[serde(default)]
    pull_requests: Vec<RawIssue>,
}

#[derive(Deserialize)]
struct RawRequestedAction {
    identifier: String,
}

#[derive(Deserialize)]
struct RawAction {
    action: Option<String>,
}

/// Reads the fields tickbot uses from a webhook body (`event` is `X-GitHub-Event`).
pub fn parse(event: &str, payload: &[u8]) -> Result<Event, EventError> {
    let shape = |source| EventError::Shape {
        event: event.to_string(),
        source,
    };
    let repo = |name: &str| {
        name.parse::<RepoName>().map_err(|source| EventError::Repo {
            event: event.to_string(),
            source,
        })
    };
    match event {
        "pull_request" => {
            let raw: RawPullRequestEvent = serde_json::from_slice(payload).map_err(shape)?;
            let pull = raw
                .pull_request
                .into_domain(&repo(&raw.repository.full_name)?)
                .map_err(|reason| EventError::Pull {
                    event: event.to_string(),
                    reason,
                })?;
            Ok(Event::PullRequest(Box::new(PullRequestEvent {
                action: raw.action,
                pull,
                sender: raw.sender.login,
                body_before: raw.changes.and_then(|c| c.body).and_then(|b| b.from),
                before: raw
                    .before
                    .filter(|b| b.len() == 40 && b.bytes().all(|c| c.is_ascii_hexdigit()))
                    .map(CommitSha),
            })))
        }
        "issue_comment" => {
            let raw: RawCommentEvent = serde_json::from_slice(payload).map_err(shape)?;
            Ok(Event::IssueComment(CommentEvent {
                action: raw.action,
                repo: repo(&raw.repository.full_name)?,
                number: PrNumber(raw.issue.number),
                on_pull_request: raw.issue.pull_request.is_some(),
                comment_id: raw.comment.id,
                body: raw.comment.body.unwrap_or_default(),
                author: raw.comment.user.login,
                author_association: raw.comment.author_association,
            }))
        }
        "check_run" => {
            let raw: RawCheckRunEvent = serde_json::from_slice(payload).map_err(shape)?;
            Ok(Event::CheckRun(CheckRunEvent {
                action: raw.action,
                repo: repo(&raw.repository.full_name)?,
                name: raw.check_run.name,
                head_sha: CommitSha(raw.check_run.head_sha),
                pulls: raw
                    .check_run
                    .pull_requests
                    .iter()
                    .map(|p| PrNumber(p.number))
                    .collect(),
                sender: raw.sender.login,
                identifier: raw.requested_action.map(|a| a.identifier),
            }))
        }
        _ => {
            let raw: RawAction = serde_json::from_slice(payload).map_err(shape)?;
            Ok(Event::Other {
                event: event.to_string(),
                action: raw.action,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(path: &str) -> Vec<u8> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/github-webhooks")
            .join(path);
        std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
    }

    #[test]
    fn real_pull_request_payloads_parse() {
        for name in [
            "opened.payload.json",
            "opened.with-null-body.json",
            "synchronize.payload.json",
            "closed.payload.json",
            "reopened.payload.json",
            "ready_for_review.payload.json",
            "labeled.payload.json",
        ] {
            let ev = parse("pull_request", &fixture(&format!("pull_request/{name}")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let Event::PullRequest(pr) = ev else {
                panic!("{name}: not a pull request event")
            };
            let pr = pr.pull;
            assert_eq!(pr.repo.to_string(), "Codertocat/Hello-World", "{name}");
            assert_eq!(pr.head_sha.0.len(), 40, "{name}");
            assert!(!pr.base_ref.is_empty() && !pr.author.is_empty(), "{name}");
        }
        let Event::PullRequest(pr) =
            parse("pull_request", &fixture("pull_request/opened.payload.json")).expect("parses")
        else {
            panic!("not a PR")
        };
        assert_eq!(pr.action, "opened");
        assert_eq!(pr.pull.number, PrNumber(2));
        assert!(pr.pull.state_open);
        assert_eq!(pr.pull.default_branch, "master");
    }

    #[test]
    fn real_comment_payloads_parse() {
        let ev = parse(
            "issue_comment",
            &fixture("issue_comment/created.payload.json"),
        )
        .expect("parses");
        let Event::IssueComment(c) = ev else {
            panic!("not a comment")
        };
        assert_eq!(c.action, "created");
        assert!(!c.body.is_empty());
        assert!(c.comment_id > 0);
    }

    #[test]
    fn real_check_run_payloads_parse() {
        let ev = parse(
            "check_run",
            &fixture("check_run/requested_action.payload.json"),
        )
        .expect("parses");
        let Event::CheckRun(c) = ev else {
            panic!("not a check run")
        };
        assert_eq!(
            (c.action.as_str(), c.name.as_str(), c.pulls.as_slice()),
            ("requested_action", "API Review", &[PrNumber(26764)][..])
        );
        assert_eq!(c.identifier.as_deref(), Some("lgtm|26764"));
        assert_eq!(c.head_sha.0.len(), 40);
        for f in [
            "rerequested",
            "rerequested.with-organization",
            "completed",
            "created",
        ] {
            let ev = parse(
                "check_run",
                &fixture(&format!("check_run/{f}.payload.json")),
            );
            assert!(matches!(ev, Ok(Event::CheckRun(_))), "{f}: {ev:?}");
        }
    }

    #[test]
    fn future_actions_and_events_do_not_fail() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("pull_request/opened.payload.json")).expect("json");
        v["action"] = "some_future_action".into();
        let body = serde_json::to_vec(&v).expect("json");
        assert!(
            matches!(parse("pull_request", &body), Ok(Event::PullRequest(pr)) if pr.action == "some_future_action")
        );
        assert!(matches!(
            parse("star", br#"{"action":"created"}"#),
            Ok(Event::Other { .. })
        ));
        assert!(parse("pull_request", b"{}").is_err());
    }
}
