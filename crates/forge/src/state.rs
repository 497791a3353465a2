//! The forge's in-memory model of GitHub: repositories, pull requests, comments, statuses,
//! check runs, labels, collaborators and org members.
//!
//! Git objects live on disk (see [`super::git`]); everything else lives here, behind one
//! `std::sync::Mutex` owned by [`super::Forge`]. Nothing in this module does I/O, so a lock is
//! never held across an `await`.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use tickbot_syntax::ids::{CommitSha, PrNumber, RepoName};

/// GitHub's limit on issue, pull request and comment bodies, in characters: the REST API
/// answers 422 "body is too long (maximum is 65536 characters)". Written here from GitHub's
/// documented behaviour, not taken from the bot, so a wrong limit in the bot shows up in tests.
pub const MAX_BODY_CHARS: usize = 65_536;

/// Why a forge operation was refused; the REST layer maps each to GitHub's status and JSON.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForgeError {
    #[error("Not Found")]
    NotFound,
    /// GitHub's 422 "Validation Failed" with one entry in `errors`.
    #[error("Validation Failed: {resource}.{field}: {message}")]
    Validation {
        resource: &'static str,
        field: &'static str,
        code: &'static str,
        message: String,
    },
    /// A 422 whose explanation is the top-level message (e.g. a duplicate pull request).
    #[error("{0}")]
    Unprocessable(String),
    #[error("git: {0}")]
    Git(String),
    /// GitHub's 405 on a merge: closed, or conflicts with its base.
    #[error("{0}")]
    NotMergeable(String),
    /// GitHub's 409 on a merge whose `sha` is no longer the head.
    #[error("{0}")]
    HeadModified(String),
}

impl ForgeError {
    /// The error GitHub gives for a body over [`MAX_BODY_CHARS`].
    pub fn body_too_long(resource: &'static str) -> Self {
        ForgeError::Validation {
            resource,
            field: "body",
            code: "custom",
            message: format!("body is too long (maximum is {MAX_BODY_CHARS} characters)"),
        }
    }
}

/// Refuses a body GitHub would refuse; `resource` is `Issue` or `IssueComment`.
pub fn check_body(body: &str, resource: &'static str) -> Result<(), ForgeError> {
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(ForgeError::body_too_long(resource));
    }
    Ok(())
}

/// `open` or `closed`, as GitHub spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    Open,
    Closed,
}

impl PullState {
    pub fn as_str(self) -> &'static str {
        match self {
            PullState::Open => "open",
            PullState::Closed => "closed",
        }
    }
}

/// A pull request as the forge stores it; also the snapshot tests read.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub number: PrNumber,
    pub id: u64,
    pub title: String,
    pub body: String,
    pub author: String,
    pub head_ref: String,
    pub head_sha: CommitSha,
    pub base_ref: String,
    pub state: PullState,
    pub draft: bool,
    pub labels: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The merge commit and who merged, once merged.
    pub merged: Option<(CommitSha, String)>,
}

/// An issue that is not a pull request (on GitHub both are issues and share numbers).
#[derive(Debug, Clone)]
pub struct Issue {
    pub number: u64,
    pub id: u64,
    pub title: String,
    pub body: String,
    pub author: String,
    pub state: PullState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// One reaction on a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub id: u64,
    pub user: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

/// A comment on a pull request's conversation.
#[derive(Debug, Clone)]
pub struct IssueComment {
    pub id: u64,
    pub issue: PrNumber,
    pub author: String,
    pub body: String,
    pub reactions: Vec<Reaction>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A commit status, in creation order.
#[derive(Debug, Clone)]
pub struct CommitStatus {
    pub id: u64,
    pub sha: CommitSha,
    pub state: String,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub creator: String,
    pub created_at: DateTime<Utc>,
}

/// A check run (the GitHub App flavour of a status).
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub id: u64,
    pub head_sha: CommitSha,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub output: serde_json::Value,
    /// The requested actions (buttons) the app offers.
    pub actions: Vec<serde_json::Value>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub creator: String,
}

/// One repository's non-git state.
#[derive(Debug, Clone)]
pub struct Repo {
    pub id: u64,
    pub name: RepoName,
    pub default_branch: String,
    /// Branch tips as last seen; diffing against git after a push tells what moved.
    pub branches: BTreeMap<String, CommitSha>,
    pub pulls: BTreeMap<u64, PullRequest>,
    /// Issues that are not pull requests.
    pub issues: BTreeMap<u64, Issue>,
    pub comments: Vec<IssueComment>,
    pub statuses: Vec<CommitStatus>,
    pub check_runs: Vec<CheckRun>,
    /// Label name → id; labels spring into existence when first used, as GitHub's API allows.
    pub labels: BTreeMap<String, u64>,
    /// login → permission as given (`admin`, `maintain`, `write`, `triage`, `read`).
    pub collaborators: BTreeMap<String, String>,
    /// People with commits on the default branch (GitHub's CONTRIBUTOR association).
    pub contributors: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub pushed_at: DateTime<Utc>,
}

/// Everything behind the forge's mutex.
#[derive(Debug, Default)]
pub struct State {
    pub repos: BTreeMap<RepoName, Repo>,
    /// org → members.
    pub org_members: BTreeMap<String, BTreeSet<String>>,
    next_id: u64,
}

impl State {
    /// A fresh id, unique across every kind of object (GitHub's ids are too, in practice).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        1_000 + self.next_id
    }

    pub fn repo(&self, name: &RepoName) -> Result<&Repo, ForgeError> {
        self.repos.get(name).ok_or(ForgeError::NotFound)
    }

    pub fn repo_mut(&mut self, name: &RepoName) -> Result<&mut Repo, ForgeError> {
        self.repos.get_mut(name).ok_or(ForgeError::NotFound)
    }

    pub fn is_org_member(&self, org: &str, user: &str) -> bool {
        self.org_members
            .get(org)
            .is_some_and(|members| members.contains(user))
    }

    /// GitHub's `author_association` of `login` towards `repo`.
    pub fn association(&self, repo: &Repo, login: &str) -> &'static str {
        if repo.name.owner() == login {
            "OWNER"
        } else if self.is_org_member(repo.name.owner(), login) {
            "MEMBER"
        } else if repo.collaborators.contains_key(login) {
            "COLLABORATOR"
        } else if repo.contributors.contains(login) {
            "CONTRIBUTOR"
        } else {
            "NONE"
        }
    }

    /// The legacy `permission` field of the collaborator-permission endpoint, and the role.
    pub fn permission(&self, repo: &Repo, login: &str) -> (&'static str, String) {
        if repo.name.owner() == login {
            return ("admin", "admin".into());
        }
        match repo.collaborators.get(login).map(String::as_str) {
            Some(role @ "admin") => ("admin", role.into()),
            Some(role @ ("maintain" | "write")) => ("write", role.into()),
            Some(role @ ("triage" | "read")) => ("read", role.into()),
            _ => ("none", "none".into()),
        }
    }
}

impl Repo {
    pub fn new(id: u64, name: RepoName, default_branch: &str) -> Self {
        let now = Utc::now();
        Repo {
            id,
            name,
            default_branch: default_branch.to_string(),
            branches: BTreeMap::new(),
            pulls: BTreeMap::new(),
            issues: BTreeMap::new(),
            comments: Vec::new(),
            statuses: Vec::new(),
            check_runs: Vec::new(),
            labels: BTreeMap::new(),
            collaborators: BTreeMap::new(),
            contributors: BTreeSet::new(),
            created_at: now,
            pushed_at: now,
        }
    }

    pub fn pull(&self, number: u64) -> Result<&PullRequest, ForgeError> {
        self.pulls.get(&number).ok_or(ForgeError::NotFound)
    }

    pub fn pull_mut(&mut self, number: u64) -> Result<&mut PullRequest, ForgeError> {
        self.pulls.get_mut(&number).ok_or(ForgeError::NotFound)
    }

    pub fn check_run(&self, id: u64) -> Result<&CheckRun, ForgeError> {
        self.check_runs
            .iter()
            .find(|c| c.id == id)
            .ok_or(ForgeError::NotFound)
    }

    pub fn comment_mut(&mut self, id: u64) -> Result<&mut IssueComment, ForgeError> {
        self.comments
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or(ForgeError::NotFound)
    }

    /// Pull request and issue numbers share one sequence, as on GitHub.
    pub fn next_number(&self) -> u64 {
        let last_pull = self.pulls.keys().next_back().copied();
        let last_issue = self.issues.keys().next_back().copied();
        last_pull.max(last_issue).map_or(1, |n| n + 1)
    }

    /// GitHub's `open_issues_count`: open issues and pull requests.
    pub fn open_issues(&self) -> usize {
        let pulls = self.pulls.values().filter(|p| p.state == PullState::Open);
        let issues = self.issues.values().filter(|i| i.state == PullState::Open);
        pulls.count() + issues.count()
    }

    pub fn issue(&self, number: u64) -> Result<&Issue, ForgeError> {
        self.issues.get(&number).ok_or(ForgeError::NotFound)
    }

    /// Whether `number` is an issue or a pull request (both take comments).
    pub fn has_issue_or_pull(&self, number: u64) -> bool {
        self.pulls.contains_key(&number) || self.issues.contains_key(&number)
    }

    /// Resolves a branch name or a full SHA without touching git; `None` means "ask git".
    pub fn resolve_known(&self, reference: &str) -> Option<CommitSha> {
        if reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(CommitSha(reference.to_ascii_lowercase()));
        }
        // `refs/heads/x` and octocrab's `heads/x` both name branch `x`.
        let branch = reference
            .strip_prefix("refs/heads/")
            .or_else(|| reference.strip_prefix("heads/"))
            .unwrap_or(reference);
        self.branches.get(branch).cloned()
    }

    /// The combined state GitHub computes from the latest status per context.
    pub fn latest_statuses(&self, sha: &CommitSha) -> Vec<&CommitStatus> {
        let mut latest: BTreeMap<&str, &CommitStatus> = BTreeMap::new();
        for s in self.statuses.iter().filter(|s| &s.sha == sha) {
            latest.insert(&s.context, s);
        }
        let mut out: Vec<_> = latest.into_values().collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.id));
        out
    }
}

/// `failure` beats `pending` beats `success`; no statuses at all is `pending`, as on GitHub.
pub fn combined_state(statuses: &[&CommitStatus]) -> &'static str {
    if statuses
        .iter()
        .any(|s| s.state == "failure" || s.state == "error")
    {
        "failure"
    } else if statuses.is_empty() || statuses.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_limit_counts_characters_not_bytes() {
        let ok = "é".repeat(MAX_BODY_CHARS);
        assert!(check_body(&ok, "Issue").is_ok());
        let long = "a".repeat(MAX_BODY_CHARS + 1);
        assert!(matches!(
            check_body(&long, "Issue"),
            Err(ForgeError::Validation { field: "body", .. })
        ));
    }

    #[test]
    fn associations_follow_githubs_order() {
        let mut st = State::default();
        let name: RepoName = "acme/widgets".parse().expect("valid");
        let mut repo = Repo::new(1, name, "main");
        repo.collaborators.insert("carol".into(), "write".into());
        repo.contributors.insert("dave".into());
        st.org_members
            .entry("acme".into())
            .or_default()
            .insert("mia".into());
        assert_eq!(st.association(&repo, "acme"), "OWNER");
        assert_eq!(st.association(&repo, "mia"), "MEMBER");
        assert_eq!(st.association(&repo, "carol"), "COLLABORATOR");
        assert_eq!(st.association(&repo, "dave"), "CONTRIBUTOR");
        assert_eq!(st.association(&repo, "eve"), "NONE");
        assert_eq!(st.permission(&repo, "carol").0, "write");
        assert_eq!(st.permission(&repo, "eve").0, "none");
    }
}
