//! What the rest of tickbot gets from GitHub: small domain types, mapped from GitHub's JSON here
//! so no other module depends on the shape of GitHub's payloads.

use crate::ids::{CommitSha, PrNumber, RepoName};
use serde::{Deserialize, Serialize};

/// The parts of a pull request that the dispatcher and workers decide on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub repo: RepoName,
    pub number: PrNumber,
    pub title: String,
    /// The description; GitHub sends `null` for an empty one, mapped to "".
    pub body: String,
    pub state_open: bool,
    pub draft: bool,
    /// Login of the PR's author.
    pub author: String,
    pub head_sha: CommitSha,
    pub head_ref: String,
    /// `None` when the fork the PR came from was deleted.
    pub head_repo: Option<RepoName>,
    pub head_clone_url: Option<String>,
    pub base_ref: String,
    pub base_clone_url: String,
    /// The base repository's default branch, where `[trust]` and `[secrets]` are read.
    pub default_branch: String,
    /// GitHub's `author_association` (`OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `NONE`…).
    pub author_association: String,
    /// How many comments the PR had when GitHub sent this (`None` if not given): a PR with none
    /// has no summary or reply of the bot to look for.
    pub comments: Option<u64>,
    /// The merge commit of a merged PR (`None` while open or when closed unmerged).
    #[serde(default)]
    pub merge_commit: Option<CommitSha>,
    /// The base repository is private (unknown counts as private: its jobs stay off the
    /// public dashboard).
    #[serde(default = "crate::job::unknown_is_private")]
    pub private: bool,
}

/// A commit status state, spelled as GitHub spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    /// As GitHub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// One commit status: the latest one for its `context`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub context: String,
    pub state: StatusState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// A comment on a pull request (an issue comment, in GitHub's terms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    /// Login of the comment's author.
    pub author: String,
    pub body: String,
}

/// A user's permission on a repository, ordered from least to most, so callers can write
/// `permission >= Permission::Write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    /// GitHub's `role_name` is the precise role (it knows `maintain` and `triage`); `permission`
    /// is the legacy coarse one (`admin`/`write`/`read`/`none`), used when the role is custom.
    pub(crate) fn from_github(role_name: Option<&str>, permission: &str) -> Permission {
        let parse = |s: &str| match s {
            "admin" => Some(Permission::Admin),
            "maintain" => Some(Permission::Maintain),
            "write" | "push" => Some(Permission::Write),
            "triage" => Some(Permission::Triage),
            "read" | "pull" => Some(Permission::Read),
            "none" => Some(Permission::None),
            _ => None,
        };
        role_name
            .and_then(parse)
            .or_else(|| parse(permission))
            .unwrap_or(Permission::None)
    }
}

// ---- GitHub's wire format: only the fields we read. ----

#[derive(Deserialize)]
pub(crate) struct WirePullRequest {
    number: u64,
    #[serde(default)]
    title: String,
    body: Option<String>,
    state: String,
    #[serde(default)]
    draft: Option<bool>,
    user: Option<WireUser>,
    head: WireRef,
    base: WireRef,
    #[serde(default)]
    author_association: Option<String>,
    #[serde(default)]
    comments: Option<u64>,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
}

#[derive(Deserialize)]
struct WireRef {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<WireRepo>,
}

#[derive(Deserialize)]
struct WireRepo {
    full_name: Option<String>,
    clone_url: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    private: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct WireUser {
    login: String,
}

impl WirePullRequest {
    /// `repo` is the repository asked about; GitHub's own name for it may differ in case or after
    /// a rename, and callers key their state by the name they use.
    pub(crate) fn into_domain(self, repo: &RepoName) -> Result<PullRequest, String> {
        let base_repo = self.base.repo.ok_or("the pull request has no base.repo")?;
        let default_branch = base_repo
            .default_branch
            .unwrap_or_else(|| self.base.git_ref.clone());
        let private = base_repo.private.unwrap_or(true);
        let base_clone_url = base_repo
            .clone_url
            .ok_or("the pull request has no base.repo.clone_url")?;
        let (head_repo, head_clone_url) = match self.head.repo {
            Some(r) => (
                r.full_name.and_then(|n| n.parse::<RepoName>().ok()),
                r.clone_url,
            ),
            None => (None, None),
        };
        Ok(PullRequest {
            repo: repo.clone(),
            number: PrNumber(self.number),
            title: self.title,
            body: self.body.unwrap_or_default(),
            state_open: self.state == "open",
            draft: self.draft.unwrap_or(false),
            author: self.user.map(|u| u.login).unwrap_or_default(),
            head_sha: CommitSha(self.head.sha),
            head_ref: self.head.git_ref,
            head_repo,
            head_clone_url,
            base_ref: self.base.git_ref,
            base_clone_url,
            default_branch,
            author_association: self.author_association.unwrap_or_default(),
            comments: self.comments,
            // GitHub fills `merge_commit_sha` for open PRs too (a test merge): only a merged
            // PR's is the commit that landed.
            merge_commit: match self.merged {
                Some(true) => self.merge_commit_sha.map(CommitSha),
                _ => None,
            },
            private,
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct WireComment {
    id: u64,
    user: Option<WireUser>,
    body: Option<String>,
}

impl From<WireComment> for Comment {
    fn from(c: WireComment) -> Comment {
        Comment {
            id: c.id,
            // A deleted account ("ghost") comes back as `user: null`.
            author: c.user.map(|u| u.login).unwrap_or_default(),
            body: c.body.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct WirePermission {
    pub permission: String,
    pub role_name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireContent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireInstallation {
    pub id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_prefers_the_precise_role() {
        assert_eq!(
            Permission::from_github(Some("maintain"), "write"),
            Permission::Maintain
        );
        assert_eq!(
            Permission::from_github(Some("triage"), "read"),
            Permission::Triage
        );
        assert_eq!(
            Permission::from_github(Some("custom-role"), "write"),
            Permission::Write
        );
        assert_eq!(Permission::from_github(None, "admin"), Permission::Admin);
        assert_eq!(Permission::from_github(None, "bogus"), Permission::None);
        assert!(Permission::Maintain >= Permission::Write);
        assert!(Permission::Triage < Permission::Write);
    }

    #[test]
    fn status_state_is_lowercase_on_the_wire() {
        let json = serde_json::to_string(&StatusState::Failure).expect("serialize");
        assert_eq!(json, "\"failure\"");
    }
}

/// What tickbot needs to know of a repository that is not the PR's own (`/test ctx@owner/repo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RepoInfo {
    pub default_branch: String,
    pub clone_url: String,
}

/// A check run as tickbot writes it (the fields of `POST`/`PATCH …/check-runs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRunWrite {
    pub name: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    /// With `completed`: `success`, `failure`, `cancelled`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub output: CheckOutput,
    /// Buttons GitHub shows on the run ("requested actions"), at most three.
    pub actions: Vec<CheckAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutput {
    pub title: Option<String>,
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckAction {
    pub label: String,
    pub description: String,
    pub identifier: String,
}

/// A check run as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireCheckRun {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub output: Option<CheckOutput>,
}

impl From<WireCheckRun> for CheckRun {
    fn from(w: WireCheckRun) -> Self {
        CheckRun {
            id: w.id,
            name: w.name,
            status: w.status,
            conclusion: w.conclusion,
            details_url: w.details_url,
            title: w.output.and_then(|o| o.title),
        }
    }
}
