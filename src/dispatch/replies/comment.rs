//! The comments tickbot posts on a PR besides the summary and the replies' notes: each is
//! posted once per its hidden [`Comment::key`].

use super::Note;
use crate::dispatch::plan::RefusedItem;
use crate::ids::CommitSha;
use crate::repo_config::RepoConfigError;
use sha2::{Digest, Sha256};

/// The innermost variant name of a refusal's `Debug` text: `Command(NotTrusted { … })` →
/// `NotTrusted`.
fn variant(debug: &str) -> String {
    let mut name = "";
    for part in debug.split('(') {
        let ident = part
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default();
        if ident.is_empty() {
            break;
        }
        name = ident;
        if part.len() != ident.len() {
            break; // a `{` or `,` ends the chain of tuple variants
        }
    }
    name.to_string()
}

/// A comment tickbot posts on a PR, once per [`Comment::key`].
pub enum Comment<'a> {
    /// A checkbox item that cannot run.
    ItemRefused {
        item: &'a RefusedItem,
        head: &'a CommitSha,
    },
    BadConfig {
        head: &'a CommitSha,
        error: &'a RepoConfigError,
    },
    /// An untrusted author's PR; `tasks` is the digest of the task list waiting for approval.
    Untrusted {
        reason: &'a str,
        head: &'a CommitSha,
        tasks: &'a str,
    },
    HeadRepoGone {
        head: &'a CommitSha,
    },
    /// A run asked for with `/debug` failed: its container is kept.
    DebugHeld {
        context: &'a str,
        head: &'a CommitSha,
        worker: &'a str,
        held: &'a crate::job::HeldContainer,
    },
    /// The one reply to a comment (`key` names the comment or the button press).
    Reply {
        to: &'a str,
        key: String,
        notes: &'a [Note],
    },
}

impl Comment<'_> {
    /// Why tickbot refused something in this comment, one stable name per refusal (for the
    /// `tickbot_refusals_total{reason}` metric): the refusal's kind, e.g. `NotTrusted`.
    pub fn refusal_reasons(&self) -> Vec<String> {
        match self {
            Comment::ItemRefused { item, .. } => vec![variant(&format!("{:?}", item.reason))],
            Comment::BadConfig { .. } => vec!["InvalidConfig".into()],
            Comment::Untrusted { .. } => vec!["UntrustedAuthor".into()],
            Comment::HeadRepoGone { .. } => vec!["HeadRepoGone".into()],
            Comment::DebugHeld { .. } => Vec::new(),
            Comment::Reply { notes, .. } => notes
                .iter()
                .filter_map(|n| match n {
                    Note::Refused(r) => Some(variant(&format!("{r:?}"))),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The hidden key: the same comment is posted once per PR.
    pub fn key(&self) -> String {
        match self {
            // One key per item text and reason: fixing the line (or the config) makes a new
            // refusal possible, repeating the same mistake does not repeat the comment.
            Comment::ItemRefused { item, .. } => {
                let digest = Sha256::digest(format!("{}\n{}", item.text, item.reason));
                format!("refused:{}", &hex::encode(digest)[..16])
            }
            Comment::BadConfig { head, .. } => format!("bad-config:{head}"),
            Comment::Untrusted { head, tasks, .. } => format!("untrusted:{head}:{tasks}"),
            Comment::HeadRepoGone { head } => format!("head-gone:{head}"),
            Comment::DebugHeld { held, .. } => format!("debug-held:{}", held.container),
            Comment::Reply { key, .. } => key.clone(),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Comment::ItemRefused { item, head } => format!(
                "tickbot cannot run the task on line {line}, `{text}`: {reason}.\n\n\
                 The items after it still run. Edit the line to fix it (tasks are defined in \
                 `.tickbot.toml` at {sha}), or remove it.",
                line = item.line,
                text = item.text,
                reason = item.reason,
                sha = head.short(),
            ),
            Comment::BadConfig { head, error } => format!(
                "tickbot cannot read `.tickbot.toml` at {sha}: {error}\n\n\
                 Nothing runs for this commit. Push a fix to the file and tickbot reads it again.",
                sha = head.short(),
            ),
            Comment::Untrusted { reason, head, .. } => format!(
                "tickbot has not run the tests or tasks of this pull request: {reason}.\n\n\
                 A trusted person can approve the current head commit ({sha}) and its task list \
                 by commenting `/ok-to-test`. A later push, or a task added or changed by an \
                 untrusted person, needs a new approval.",
                sha = head.short(),
            ),
            Comment::HeadRepoGone { .. } => HEAD_REPO_GONE.to_string(),
            Comment::DebugHeld {
                context,
                head,
                worker,
                held,
            } => format!(
                "`{context}` failed at {sha}; as asked with `/debug`, its container is kept for \
                 debugging until {until} UTC. On the worker `{worker}`, enter it with\n\n\
                 ```\npodman exec -it {container} sh\n```\n\n\
                 The job's tree, as the failed run left it, is in `/work`. The container is \
                 removed then, or when this pull request is closed.",
                sha = head.short(),
                until = held.until.format("%Y-%m-%d %H:%M"),
                container = held.container,
            ),
            Comment::Reply { to, notes, .. } => {
                let mut text = format!("@{to}:\n");
                for n in notes.iter() {
                    text.push_str(&format!("\n* {n}"));
                }
                text.push('\n');
                text
            }
        }
    }
}

pub(super) const HEAD_REPO_GONE: &str = "tickbot cannot run the tasks of this pull request: the \
     repository its branch came from was deleted, so there is nowhere to fetch the code from or \
     push results to. Push the branch again from an existing fork and open a new pull request.";
