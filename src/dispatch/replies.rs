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
        "tickbot has not queued the tasks of this pull request: {reason}.\n\n\
         A trusted person can approve the current head commit ({sha}) and its task list by \
         commenting `/ok-to-test`. A later push, or a task added or changed by an untrusted \
         person, needs a new approval.",
        sha = head.short(),
    )
}

pub fn approval_refused(reason: &str) -> String {
    format!(
        "tickbot ignored `/ok-to-test`: {reason}. Only a trusted person can approve a pull \
         request for testing."
    )
}

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
