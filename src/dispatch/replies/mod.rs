//! Everything tickbot says in PR comments, rendered here and nowhere else. Every refusal is a
//! [`Refusal`] value (what was refused and why, as data) until it is written; every comment is
//! a [`Comment`] with the hidden key that makes the dispatcher post it once, however often the
//! PR is planned again. Each text says why and what to do.

use super::contexts::Skipped;
use super::plan::{ItemRefusal, RefusedItem};
use crate::ids::{CommitSha, RepoName};
use std::fmt;

mod comment;
mod refresh;
pub use comment::Comment;
use comment::HEAD_REPO_GONE;
pub use refresh::RefreshExplained;

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
    Command(CommandRefusal),
    Test(TestRefusal),
    Dependency(DependencyRefusal),
    Project(ProjectRefusal),
}

/// A comment command or a button that cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRefusal {
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
    /// "Keep for debugging" on a task's check run: holds are for test contexts.
    DebugNotATest {
        context: String,
    },
    CannotRerun {
        context: String,
        error: String,
    },
    /// `/rollback` on a PR that did not land on the default branch.
    RollbackNotLanded,
    /// `/rollback` on a PR that changed no image's directory (or not the one named).
    RollbackNoImage {
        asked: Option<String>,
        images: Vec<String>,
    },
    RollbackFailed {
        image: String,
        reason: String,
    },
}

/// A test context of this repository that cannot run (`/test`, `/retest`, Re-run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestRefusal {
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
    HeadRepoGone,
}

/// A dependency's pull request (`ctx@dep#N`) that cannot be checked out with the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyRefusal {
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
}

/// Another project's context (`ctx@owner/repo[/branch]`) that cannot run against this PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRefusal {
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
}

impl From<CommandRefusal> for Refusal {
    fn from(r: CommandRefusal) -> Self {
        Refusal::Command(r)
    }
}

impl From<TestRefusal> for Refusal {
    fn from(r: TestRefusal) -> Self {
        Refusal::Test(r)
    }
}

impl From<DependencyRefusal> for Refusal {
    fn from(r: DependencyRefusal) -> Self {
        Refusal::Dependency(r)
    }
}

impl From<ProjectRefusal> for Refusal {
    fn from(r: ProjectRefusal) -> Self {
        Refusal::Project(r)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Command(r) => r.fmt(f),
            Refusal::Test(r) => r.fmt(f),
            Refusal::Dependency(r) => r.fmt(f),
            Refusal::Project(r) => r.fmt(f),
        }
    }
}

impl fmt::Display for CommandRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CommandRefusal::*;
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
            DebugNotATest { context } => write!(
                f,
                "`{context}` is a task: only test contexts keep their container for debugging; \
                 press Retry to run it again"
            ),
            RollbackNotLanded => f.write_str(
                "`/rollback` rolls back the images a pull request landed on the default branch; \
                 this one has not landed there",
            ),
            RollbackNoImage { asked, images } => {
                let what = match asked {
                    Some(name) => format!("did not change image `{name}`"),
                    None => "changed no image's directory".to_string(),
                };
                match images.is_empty() {
                    true => write!(
                        f,
                        "this pull request {what}; `.tickbot.toml` on the default branch defines no `[images.*]`"
                    ),
                    false => write!(f, "this pull request {what} (images: {})", quoted(images)),
                }
            }
            RollbackFailed { image, reason } => {
                write!(f, "cannot roll back `{image}`: {reason}")
            }
        }
    }
}

impl fmt::Display for TestRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TestRefusal::*;
        match self {
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
                let why = why.join("; ");
                write!(f, "no test context applies to this pull request ({why})")
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
            } => {
                let hint = did_you_mean(suggestion.as_deref(), known);
                write!(f, "unknown context `{context}`: {hint}")
            }
            HeadRepoGone => f.write_str(HEAD_REPO_GONE),
        }
    }
}

impl fmt::Display for DependencyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DependencyRefusal::*;
        match self {
            UnknownDependency {
                context,
                dep,
                known,
            } => {
                let known = match known.is_empty() {
                    true => "it defines none".to_string(),
                    false => format!("known: {}", quoted(known)),
                };
                write!(
                    f,
                    "`{context}`: `{dep}` is not a dependency in `[deps]` of `.tickbot.toml` ({known})"
                )
            }
            BadDependencyRepo { dep, repo } => {
                write!(f, "`[deps.{dep}] repo = \"{repo}\"` is not `owner/name`")
            }
            NoSuchPr {
                context,
                repo,
                number,
            } => {
                write!(f, "`{context}`: {repo} has no pull request #{number}")
            }
            DependencyBranchGone {
                context,
                repo,
                number,
            } => {
                write!(f, "`{context}`: the branch of {repo}#{number} was deleted")
            }
        }
    }
}

impl fmt::Display for ProjectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProjectRefusal::*;
        match self {
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
            } => {
                write!(f, "`{context}`: {repo} has no branch `{branch}`")
            }
            ProjectWithoutConfig {
                context,
                repo,
                branch,
            } => {
                write!(
                    f,
                    "`{context}`: {repo} has no `.tickbot.toml` on `{branch}`"
                )
            }
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
            } => {
                let hint = did_you_mean(suggestion.as_deref(), known);
                write!(f, "`{context}`: unknown context `{name}` in {repo}: {hint}")
            }
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
        }
    }
}

impl fmt::Display for ItemRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemRefusal::Unreadable(reason) => f.write_str(reason),
            ItemRefusal::UnknownTask { verb, known, .. } if known.is_empty() => {
                write!(f, "unknown task `{verb}`: `.tickbot.toml` defines no tasks")
            }
            ItemRefusal::UnknownTask {
                verb,
                suggestion,
                known,
            } => {
                let hint = suggestion
                    .as_ref()
                    .map(|v| format!("did you mean `{v}`? "))
                    .unwrap_or_default();
                let known = quoted(known);
                write!(f, "unknown task `{verb}`: {hint}known tasks are {known}")
            }
            ItemRefusal::SlashInArgument { arg } => write!(
                f,
                "argument `{arg}` contains `/`, which separates arguments in the status context"
            ),
            ItemRefusal::ArgumentMismatch { arg, verb, pattern } => write!(
                f,
                "argument `{arg}` of `{verb}` does not match `{pattern}` (the `args` pattern in `.tickbot.toml`)"
            ),
            ItemRefusal::NoWorkers { verb, pool, pools } => write!(
                f,
                "task `{verb}` runs in pool `{pool}`, which has no workers here (pools: {})",
                pools.join(", ")
            ),
        }
    }
}

/// One line of a reply to a comment: a refusal, or an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Refused(Refusal),
    Help,
    Explanation(Explanation),
    /// `/debug ctx` queued a run that is kept if it fails.
    DebugAsked {
        context: String,
        head: CommitSha,
    },
    /// `/rollback` opened a revert PR.
    RolledBack {
        image: String,
        pr: crate::ids::PrNumber,
        tree: String,
    },
}

/// The answer to `/explain`: what runs for a PR at its head, what does not, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    Closed { head: CommitSha },
    NoConfig { head: CommitSha },
    InvalidConfig { head: CommitSha, error: String },
    Plan(Box<PlanExplained>),
}

/// What runs for an open PR with a valid `.tickbot.toml`. States are the contexts'
/// descriptions at the head (`None`: no state yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanExplained {
    pub head: CommitSha,
    /// Why the author is or is not trusted.
    pub trust: String,
    pub trusted: bool,
    /// The `tickbot/ok-to-test` state's description, if any.
    pub approval: Option<String>,
    pub draft: bool,
    /// The test contexts that apply, with their states.
    pub tests: Vec<(String, Option<String>)>,
    pub skipped: Vec<Skipped>,
    /// The next task's text and state.
    pub next: Option<(String, Option<String>)>,
    pub no_tasks: bool,
    pub refused: Vec<RefusedItem>,
    /// Every test context `.tickbot.toml` defines.
    pub known: Vec<String>,
    /// On a refresh PR's branch: its `[[schedule]]` entry.
    pub refresh: Option<RefreshExplained>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match self {
            Explanation::Closed { head }
            | Explanation::NoConfig { head }
            | Explanation::InvalidConfig { head, .. } => head,
            Explanation::Plan(p) => &p.head,
        };
        writeln!(
            f,
            "what tickbot does for this pull request at {}:",
            head.short()
        )?;
        match self {
            Explanation::Closed { .. } => f.write_str("\n  * it is closed: nothing runs"),
            Explanation::NoConfig { .. } => {
                f.write_str("\n  * there is no `.tickbot.toml`: nothing runs")
            }
            Explanation::InvalidConfig { error, .. } => {
                write!(
                    f,
                    "\n  * `.tickbot.toml` is invalid, so nothing runs: {error}"
                )
            }
            Explanation::Plan(p) => p.fmt(f),
        }
    }
}

impl fmt::Display for PlanExplained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NO_STATE: &str = "no status yet";
        write!(f, "\n  * trust: {}", self.trust)?;
        match &self.approval {
            Some(said) => write!(f, "; `{}`: {said}", super::state::APPROVAL_CONTEXT)?,
            None if !self.trusted => {
                f.write_str("; nothing runs until a trusted person comments `/ok-to-test`")?
            }
            None => {}
        }
        if self.draft {
            f.write_str(
                "\n  * it is a draft: tests run on `/test` or when it is ready for review",
            )?;
        }
        for (name, state) in &self.tests {
            let state = state.as_deref().unwrap_or(NO_STATE);
            write!(f, "\n  * test `{name}`: {state}")?;
        }
        for s in &self.skipped {
            let (name, reason) = (&s.context, &s.reason);
            write!(
                f,
                "\n  * test `{name}` does not run automatically: {reason}"
            )?;
        }
        match &self.next {
            Some((text, state)) => {
                let state = state.as_deref().unwrap_or(NO_STATE);
                write!(f, "\n  * next task: `{text}`: {state}")?
            }
            None if self.no_tasks => f.write_str("\n  * no tasks in the description")?,
            None => f.write_str("\n  * no task left to run")?,
        }
        for r in &self.refused {
            let (line, text, reason) = (r.line, &r.text, &r.reason);
            write!(f, "\n  * task on line {line} `{text}` cannot run: {reason}")?;
        }
        let known = match self.known.is_empty() {
            true => "`.tickbot.toml` defines no test contexts".to_string(),
            false => format!("known contexts: {}", quoted(&self.known)),
        };
        write!(f, "\n  * `/test <context>` runs any of them; {known}")?;
        match &self.refresh {
            Some(refresh) => refresh.fmt(f),
            None => Ok(()),
        }
    }
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
            Note::Explanation(e) => e.fmt(f),
            Note::DebugAsked { context, head } => write!(
                f,
                "`{context}` runs again at {}; if it fails, its worker keeps the container for \
                 debugging and a comment here says where and how to enter it",
                head.short()
            ),
            Note::RolledBack { image, pr, tree } => write!(
                f,
                "opened #{} to roll back `{image}` to tree `{}`, the image before this pull \
                 request: its jobs run in that image at once, and landing it moves the published \
                 tags back",
                pr.0,
                tree.get(..12).unwrap_or(tree)
            ),
        }
    }
}

const HELP: &str = "commands (one per line, at the start of the line):\n\
\n| command | does |\n|---|---|\n\
| `/test` | runs the test contexts that apply to this pull request again |\n\
| `/test ctx…` | runs these contexts; `ctx@bots#123` with dependency `bots` at its PR #123, `ctx@owner/repo[/branch]` runs that project's context against this PR |\n\
| `/retest` | runs the failed and errored test contexts again |\n\
| `/ok-to-test` | approves the current head commit of an untrusted author's PR for testing |\n\
| `/cancel [ctx…]` | cancels the queued and running jobs (of these contexts) |\n\
| `/debug ctx` | runs the context again and, if it fails, keeps its container for debugging (a comment says where) |\n\
| `/task <verb> <args…>` | adds the task to the description, where it runs like any checkbox |\n\
| `/rollback [image]` | on a merged pull request: opens a pull request that restores the images it changed as they were before |\n\
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

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
