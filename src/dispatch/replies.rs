//! What tickbot says in PR comments. Every reply says why and what to do; each carries a hidden
//! marker so the dispatcher posts it once, however often the PR is re-planned.

use super::plan::RefusedItem;
use crate::ids::CommitSha;
use crate::repo_config::RepoConfigError;
use sha2::{Digest, Sha256};

const MARKER_PREFIX: &str = "<!-- tickbot:";

pub fn marker(key: &str) -> String {
    format!("{MARKER_PREFIX}{key} -->")
}

pub fn markers_in(body: &str) -> Vec<String> {
    body.match_indices(MARKER_PREFIX)
        .filter_map(|(start, _)| {
            let end = body[start..].find("-->")? + start + 3;
            Some(body[start..end].to_string())
        })
        .collect()
}

/// One key per item text and reason: fixing the line (or the config) makes a new refusal
/// possible, repeating the same mistake does not repeat the comment.
pub fn refusal_key(r: &RefusedItem) -> String {
    let digest = Sha256::digest(format!("{}\n{}", r.text, r.reason));
    format!("refused:{}", &hex::encode(digest)[..16])
}

pub fn refused_item(r: &RefusedItem, head: &CommitSha) -> String {
    format!(
        "tickbot cannot run the task on line {line}, `{text}`: {reason}.\n\n\
         The items after it still run. Edit the line to fix it (tasks are defined in \
         `.tickbot.toml` at {sha}), or remove it.",
        line = r.line,
        text = r.text,
        reason = r.reason,
        sha = head.short(),
    )
}

pub fn bad_config(head: &CommitSha, e: &RepoConfigError) -> String {
    format!(
        "tickbot cannot read `.tickbot.toml` at {sha}: {e}\n\n\
         Nothing runs for this commit. Push a fix to the file and tickbot reads it again.",
        sha = head.short(),
    )
}

pub fn untrusted(reason: &str, head: &CommitSha) -> String {
    format!(
        "tickbot has not run the tests or tasks of this pull request: {reason}.\n\n\
         A trusted person can approve the current head commit ({sha}) and its task list by \
         commenting `/ok-to-test`. A later push, or a task added or changed by an untrusted \
         person, needs a new approval.",
        sha = head.short(),
    )
}

/// The one reply to a comment's commands: each refusal or answer, as a list.
pub fn command_reply(author: &str, notes: &[String]) -> String {
    let mut text = format!("@{author}:\n");
    for n in notes {
        text.push_str(&format!("\n* {n}"));
    }
    text.push('\n');
    text
}

pub const HELP: &str = "commands (one per line, at the start of the line):\n\
\n| command | does |\n|---|---|\n\
| `/test` | runs the test contexts that apply to this pull request again |\n\
| `/test ctx…` | runs these contexts; `ctx@bots#123` with dependency `bots` at its PR #123, `ctx@owner/repo[/branch]` runs that project's context against this PR |\n\
| `/retest` | runs the failed and errored test contexts again |\n\
| `/ok-to-test` | approves the current head commit of an untrusted author's PR for testing |\n\
| `/cancel [ctx…]` | cancels the queued and running jobs (of these contexts) |\n\
| `/task <verb> <args…>` | adds the task to the description, where it runs like any checkbox |\n\
| `/explain` | says what runs for this PR, what does not, and why |\n\
| `/help` | this text |\n\
\nEveryone may use `/help` and `/explain`; the others need a trusted person (see `[trust]` in `.tickbot.toml`).";

pub fn head_repo_gone() -> &'static str {
    "tickbot cannot run the tasks of this pull request: the repository its branch came from \
     was deleted, so there is nowhere to fetch the code from or push results to. Push the \
     branch again from an existing fork and open a new pull request."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_again_in_posted_comments() {
        let body = format!("{}\nsome text {}", marker("a:1"), marker("b"));
        assert_eq!(markers_in(&body), vec![marker("a:1"), marker("b")]);
        assert!(markers_in("<!-- tickbot:unterminated").is_empty());
    }
}
