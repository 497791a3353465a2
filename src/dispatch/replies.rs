//! Everything tickbot says in PR comments, rendered here and nowhere else. Every refusal is a
//! [`Refusal`] value (what was refused and why, as data) until it is written; every comment is
//! a [`Comment`] with the hidden key that makes the dispatcher post it once, however often the
//! PR is planned again. Each text says why and what to do.

use super::contexts::Skipped;
use super::plan::RefusedItem;
use crate::ids::{CommitSha, RepoName};
use crate::repo_config::RepoConfigError;
use sha2::{Digest, Sha256};
use std::fmt;

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

/// Something a person asked for that tickbot will not do, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A command line the comment parser could not read.
    BadCommandLine {
        line: usize,
        reason: String,
    },
    NotTrusted {
        command: String,
        reason: String,
    },
    CommandOnClosedPr {
        command: String,
    },
    TestOnClosedPr,
    NoConfig {
        head: CommitSha,
    },
    InvalidConfig {
        head: CommitSha,
    },
    NoTestContexts,
    NoneApplies {
        skipped: Vec<Skipped>,
    },
    NothingToRetest {
        head: CommitSha,
    },
    NotATestContext {
        context: String,
    },
    AlreadyActive {
        context: String,
    },
    NoWorkers {
        context: String,
        pool: String,
        pools: Vec<String>,
    },
    UnknownContext {
        context: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    UnknownDependency {
        context: String,
        dep: String,
        known: Vec<String>,
    },
    BadDependencyRepo {
        dep: String,
        repo: String,
    },
    NoSuchPr {
        context: String,
        repo: RepoName,
        number: u64,
    },
    DependencyBranchGone {
        context: String,
        repo: RepoName,
        number: u64,
    },
    BadProject {
        context: String,
        project: String,
    },
    ProjectNotVisible {
        context: String,
        repo: RepoName,
    },
    NoBranch {
        context: String,
        repo: RepoName,
        branch: String,
    },
    ProjectWithoutConfig {
        context: String,
        repo: RepoName,
        branch: String,
    },
    ProjectConfigInvalid {
        context: String,
        repo: RepoName,
        branch: String,
        error: String,
    },
    UnknownProjectContext {
        context: String,
        name: String,
        repo: RepoName,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    ProjectWithoutDep {
        context: String,
        repo: RepoName,
        branch: String,
        this: RepoName,
    },
    HeadRepoGone,
    NothingToCancel {
        contexts: Vec<String>,
        head: CommitSha,
    },
    TaskDoesNotFit {
        text: String,
    },
    DescriptionKeptChanging {
        text: String,
    },
    ButtonNotTrusted {
        context: String,
        reason: String,
    },
    NothingToRerun {
        context: String,
    },
    CannotRerun {
        context: String,
        error: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Refusal::*;
        match self {
            BadCommandLine { line, reason } => write!(f, "line {line}: {reason}"),
            NotTrusted { command, reason } => write!(
                f,
                "`/{command}` refused: {reason}. A trusted person can run it for you."
            ),
            CommandOnClosedPr { command } => write!(
                f,
                "`/{command}` refused: this pull request is closed; reopen it first"
            ),
            TestOnClosedPr => f.write_str("this pull request is closed; reopen it to test it"),
            NoConfig { head } => write!(
                f,
                "there is no `.tickbot.toml` at {}, so there are no test contexts",
                head.short()
            ),
            InvalidConfig { head } => write!(
                f,
                "`.tickbot.toml` at {} is invalid (see the comment above)",
                head.short()
            ),
            NoTestContexts => f.write_str("`.tickbot.toml` defines no test contexts"),
            NoneApplies { skipped } => {
                let why: Vec<String> = skipped
                    .iter()
                    .map(|s| format!("`{}`: {}", s.context, s.reason))
                    .collect();
                write!(
                    f,
                    "no test context applies to this pull request ({})",
                    why.join("; ")
                )
            }
            NothingToRetest { head } => write!(
                f,
                "nothing failed at {} to retest; `/test <context>` runs a context again",
                head.short()
            ),
            NotATestContext { context } => {
                write!(f, "`{context}` is not a test context of this repository")
            }
            AlreadyActive { context } => write!(f, "`{context}` is queued or running already"),
            NoWorkers {
                context,
                pool,
                pools,
            } => write!(
                f,
                "`{context}` runs in pool `{pool}`, which has no workers here (pools: {})",
                pools.join(", ")
            ),
            UnknownContext {
                context,
                suggestion,
                known,
            } => write!(
                f,
                "unknown context `{context}`: {}",
                did_you_mean(suggestion.as_deref(), known)
            ),
            UnknownDependency {
                context,
                dep,
                known,
            } => write!(
                f,
                "`{context}`: `{dep}` is not a dependency in `[deps]` of `.tickbot.toml` ({})",
                match known.is_empty() {
                    true => "it defines none".to_string(),
                    false => format!("known: {}", quoted(known)),
                }
            ),
            BadDependencyRepo { dep, repo } => {
                write!(f, "`[deps.{dep}] repo = \"{repo}\"` is not `owner/name`")
            }
            NoSuchPr {
                context,
                repo,
                number,
            } => write!(f, "`{context}`: {repo} has no pull request #{number}"),
            DependencyBranchGone {
                context,
                repo,
                number,
            } => write!(f, "`{context}`: the branch of {repo}#{number} was deleted"),
            BadProject { context, project } => {
                write!(f, "`{context}`: `{project}` is not `owner/repo`")
            }
            ProjectNotVisible { context, repo } => {
                write!(f, "`{context}`: tickbot cannot see the repository {repo}")
            }
            NoBranch {
                context,
                repo,
                branch,
            } => write!(f, "`{context}`: {repo} has no branch `{branch}`"),
            ProjectWithoutConfig {
                context,
                repo,
                branch,
            } => write!(
                f,
                "`{context}`: {repo} has no `.tickbot.toml` on `{branch}`"
            ),
            ProjectConfigInvalid {
                context,
                repo,
                branch,
                error,
            } => write!(
                f,
                "`{context}`: the `.tickbot.toml` of {repo} on `{branch}` is invalid: {error}"
            ),
            UnknownProjectContext {
                context,
                name,
                repo,
                suggestion,
                known,
            } => write!(
                f,
                "`{context}`: unknown context `{name}` in {repo}: {}",
                did_you_mean(suggestion.as_deref(), known)
            ),
            ProjectWithoutDep {
                context,
                repo,
                branch,
                this,
            } => write!(
                f,
                "`{context}`: {repo} has no `[deps]` entry with `repo = \"{this}\"` on `{branch}`, \
                 so it does not say where this pull request's code goes"
            ),
            HeadRepoGone => f.write_str(HEAD_REPO_GONE),
            NothingToCancel { contexts, head } => {
                let what = match contexts.is_empty() {
                    true => String::new(),
                    false => format!(" of {}", quoted(contexts)),
                };
                write!(f, "nothing{what} is queued or running at {}", head.short())
            }
            TaskDoesNotFit { text } => write!(
                f,
                "`/task {text}`: cannot add it to the description (it would exceed GitHub's \
                 65,536-character limit, or not be a task item)"
            ),
            DescriptionKeptChanging { text } => write!(
                f,
                "`/task {text}`: the description kept changing while tickbot added the task; \
                 add the line `- [ ] {text}` by hand"
            ),
            ButtonNotTrusted { context, reason } => {
                write!(f, "`{context}` not changed: {reason}")
            }
            NothingToRerun { context } => write!(
                f,
                "`{context}` is not a failed task or a test context, so there is nothing to run again"
            ),
            CannotRerun { context, error } => write!(f, "`{context}` cannot run again: {error}"),
        }
    }
}

/// One line of a reply to a comment: a refusal, or an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Refused(Refusal),
    Help,
    Explanation(String),
}

impl From<Refusal> for Note {
    fn from(r: Refusal) -> Self {
        Note::Refused(r)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Refused(r) => r.fmt(f),
            Note::Help => f.write_str(HELP),
            Note::Explanation(text) => f.write_str(text),
        }
    }
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
    /// The one reply to a comment (`key` names the comment or the button press).
    Reply {
        to: &'a str,
        key: String,
        notes: &'a [Note],
    },
}

impl Comment<'_> {
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

const HEAD_REPO_GONE: &str = "tickbot cannot run the tasks of this pull request: the \
     repository its branch came from was deleted, so there is nowhere to fetch the code from or \
     push results to. Push the branch again from an existing fork and open a new pull request.";

const HELP: &str = "commands (one per line, at the start of the line):\n\
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

/// `did you mean `x`? known contexts: …`, or just the known ones.
fn did_you_mean(suggestion: Option<&str>, known: &[String]) -> String {
    let known = match known.is_empty() {
        true => "`.tickbot.toml` defines no test contexts".to_string(),
        false => format!("known contexts: {}", quoted(known)),
    };
    match suggestion {
        Some(s) => format!("did you mean `{s}`? {known}"),
        None => known,
    }
}

pub fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
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

    fn sha() -> CommitSha {
        CommitSha("0123456789abcdef0123456789abcdef01234567".into())
    }

    fn repo(name: &str) -> RepoName {
        name.parse().expect("valid")
    }

    /// Every refusal, as a person reads it in a reply.
    #[test]
    fn every_refusal_as_written() {
        use Refusal::*;
        let ctx = || "unit@acme/app/main".to_string();
        let refusals = vec![
            BadCommandLine {
                line: 3,
                reason: "unknown command `/tset`: did you mean `/test`?".into(),
            },
            NotTrusted {
                command: "test".into(),
                reason: "@mallory is not a collaborator".into(),
            },
            CommandOnClosedPr {
                command: "retest".into(),
            },
            TestOnClosedPr,
            NoConfig { head: sha() },
            InvalidConfig { head: sha() },
            NoTestContexts,
            NoneApplies {
                skipped: vec![Skipped {
                    context: "docs".into(),
                    reason: "no changed file matches `paths` (docs/**)".into(),
                }],
            },
            NothingToRetest { head: sha() },
            NotATestContext {
                context: "image-refresh/a".into(),
            },
            AlreadyActive {
                context: "unit".into(),
            },
            NoWorkers {
                context: "big".into(),
                pool: "large".into(),
                pools: vec!["default".into(), "arm".into()],
            },
            UnknownContext {
                context: "unt".into(),
                suggestion: Some("unit".into()),
                known: vec!["lint".into(), "unit".into()],
            },
            UnknownDependency {
                context: "unit@cli#3".into(),
                dep: "cli".into(),
                known: vec![],
            },
            BadDependencyRepo {
                dep: "bots".into(),
                repo: "bots".into(),
            },
            NoSuchPr {
                context: "unit@bots#9".into(),
                repo: repo("acme/bots"),
                number: 9,
            },
            DependencyBranchGone {
                context: "unit@bots#9".into(),
                repo: repo("acme/bots"),
                number: 9,
            },
            BadProject {
                context: ctx(),
                project: "acme".into(),
            },
            ProjectNotVisible {
                context: ctx(),
                repo: repo("acme/app"),
            },
            NoBranch {
                context: ctx(),
                repo: repo("acme/app"),
                branch: "main".into(),
            },
            ProjectWithoutConfig {
                context: ctx(),
                repo: repo("acme/app"),
                branch: "main".into(),
            },
            ProjectConfigInvalid {
                context: ctx(),
                repo: repo("acme/app"),
                branch: "main".into(),
                error: "line 2, column 1: expected `=`".into(),
            },
            UnknownProjectContext {
                context: ctx(),
                name: "unit".into(),
                repo: repo("acme/app"),
                suggestion: None,
                known: vec![],
            },
            ProjectWithoutDep {
                context: ctx(),
                repo: repo("acme/app"),
                branch: "main".into(),
                this: repo("acme/lib"),
            },
            HeadRepoGone,
            NothingToCancel {
                contexts: vec!["unit".into()],
                head: sha(),
            },
            TaskDoesNotFit {
                text: "lint".into(),
            },
            DescriptionKeptChanging {
                text: "lint".into(),
            },
            ButtonNotTrusted {
                context: "unit".into(),
                reason: "@mallory is not a collaborator".into(),
            },
            NothingToRerun {
                context: "lint".into(),
            },
            CannotRerun {
                context: "a b".into(),
                error: "bad context `a b`".into(),
            },
        ];
        let notes: Vec<Note> = refusals.into_iter().map(Note::from).collect();
        let reply = Comment::Reply {
            to: "alice",
            key: "reply:1".into(),
            notes: &notes,
        };
        insta::assert_snapshot!(reply.text());
    }

    #[test]
    fn help_as_written() {
        let reply = Comment::Reply {
            to: "alice",
            key: "reply:1".into(),
            notes: &[Note::Help],
        };
        insta::assert_snapshot!(reply.text());
    }

    #[test]
    fn stand_alone_comments_as_written() {
        let item = RefusedItem {
            line: 4,
            text: "image-refrsh fedora-41".into(),
            reason: "unknown task `image-refrsh`: did you mean `image-refresh`? known tasks are `image-refresh`".into(),
        };
        let error = crate::repo_config::RepoConfig::parse("[tasks.lint]\ncommand = 5\n")
            .expect_err("invalid");
        let head = sha();
        let comments = [
            Comment::ItemRefused {
                item: &item,
                head: &head,
            },
            Comment::BadConfig {
                head: &head,
                error: &error,
            },
            Comment::Untrusted {
                reason: "@mallory is not a collaborator of acme/app",
                head: &head,
                tasks: "(tasks 00)",
            },
            Comment::HeadRepoGone { head: &head },
        ];
        let shown: Vec<String> = comments
            .iter()
            .map(|c| format!("[{}]\n{}", c.key(), c.text()))
            .collect();
        insta::assert_snapshot!(shown.join("\n\n"));
    }
}
