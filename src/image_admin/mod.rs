//! `tickbot image history|rollback|gc NAME` (reference §2, §8): what an `[images.*]` image of
//! the default branch has been, a reviewed way back to an earlier one, and deleting the images
//! nothing uses.
//!
//! The history is git's: the commits of the default branch's first-parent line that changed the
//! image's directory, each with the tree (the image's identity) it left behind. The registry
//! says whether that image still exists; the commit's statuses say whether its tags were
//! published, and the merged PR's head says how its tests went. A bare clone of the repository
//! under `work` holds the history (fetched with the bot's credentials, never printed).

mod gc;
mod rollback;

pub use gc::{GcEntry, GcVerdict, render_gc};
pub use rollback::RolledBack;

use crate::github::{GitHub, GitHubError, StatusState};
use crate::ids::{CommitSha, RepoName};
use crate::registry::{Registry, RegistryError};
use crate::repo_clone::{CloneError, RepoClone};
use crate::repo_config::{self, ImageDef, RepoConfig};
use crate::worker::mirror::GitError;
use chrono::{DateTime, TimeZone, Utc};
use std::path::Path;

/// History entries read at most (newest first).
const MAX_HISTORY: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Git(#[from] GitError),
    /// What was asked cannot be done as asked (exit code 2).
    #[error("{0}")]
    Usage(String),
}

impl From<CloneError> for AdminError {
    fn from(e: CloneError) -> Self {
        match e {
            CloneError::GitHub(e) => AdminError::GitHub(e),
            CloneError::Git(e) => AdminError::Git(e),
        }
    }
}

/// An image the default branch landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub commit: CommitSha,
    pub time: DateTime<Utc>,
    /// The tree id of the image's directory after this commit.
    pub tree: String,
    /// `None` once the image is no longer in the registry.
    pub digest: Option<String>,
    /// The PR this commit merged, read from GitHub's merge message (`Merge pull request #N`)
    /// or a squash's subject (`… (#N)`).
    pub pr: Option<u64>,
    /// The states of the merged PR's head (context, state), its tests.
    pub results: Vec<(String, StatusState)>,
    /// The `image/<name>` description on the commit, when its tags were moved.
    pub published: Option<String>,
}

pub struct ImageAdmin {
    github: GitHub,
    registry: Registry,
    repo: RepoName,
    default_branch: String,
    def: ImageDef,
    clone: RepoClone,
}

impl ImageAdmin {
    /// Reads image `name` from `repo`'s default branch and brings the clone under `work` up to
    /// date.
    pub async fn open(
        github: GitHub,
        registry: Registry,
        repo: RepoName,
        name: &str,
        work: &Path,
    ) -> Result<ImageAdmin, AdminError> {
        let Some(info) = github.repository(&repo).await? else {
            return Err(AdminError::Usage(format!(
                "{repo} is not visible with tickbot's credentials"
            )));
        };
        let branch = info.default_branch;
        let text = github
            .file_at(&repo, repo_config::FILE_NAME, &branch)
            .await?
            .ok_or_else(|| AdminError::Usage(format!("{repo} has no .tickbot.toml on {branch}")))?;
        let config = RepoConfig::parse(&text)
            .map_err(|e| AdminError::Usage(format!("{repo}: .tickbot.toml on {branch}: {e}")))?;
        let Some(def) = config.images.get(name).cloned() else {
            let known: Vec<&str> = config.images.keys().map(String::as_str).collect();
            return Err(AdminError::Usage(format!(
                "{repo} has no [images.{name}] on {branch} (images: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        };
        let clone = RepoClone::open(&github, &repo, &info.clone_url, work).await?;
        Ok(ImageAdmin {
            github,
            registry,
            repo,
            default_branch: branch,
            def,
            clone,
        })
    }

    pub fn image(&self) -> &ImageDef {
        &self.def
    }

    pub fn default_branch(&self) -> &str {
        &self.default_branch
    }

    /// The tree of the image's directory at `rev`, if it exists there.
    async fn tree_at(&self, rev: &str) -> Result<Option<String>, AdminError> {
        let rev = format!("{rev}:{}", self.def.context);
        Ok(self.clone.resolve(&rev).await?)
    }

    /// When `commit` (a merge on the default branch) changed the image's directory: the tree
    /// it had before (in the commit's first parent).
    pub async fn changed_by(&self, commit: &CommitSha) -> Result<Option<String>, AdminError> {
        let after = self.tree_at(&commit.0).await?;
        let before = self.tree_at(&format!("{}^1", commit.0)).await?;
        Ok(before.filter(|b| Some(b) != after.as_ref()))
    }

    /// The images the default branch landed, newest first.
    pub async fn history(&self) -> Result<Vec<Landed>, AdminError> {
        let log = self
            .clone
            .git()
            .args(["log", "--first-parent", "--format=%H%x00%ct%x00%P%x00%s"])
            .arg(format!("-{MAX_HISTORY}"))
            .arg(format!("refs/heads/{}", self.default_branch))
            .arg("--")
            .arg(&self.def.context)
            .ok()
            .await?;
        let mut landed = Vec::new();
        for line in log.stdout.lines() {
            let mut fields = line.split('\0');
            let (Some(sha), Some(time), Some(parents), Some(subject)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(tree) = self.tree_at(sha).await? else {
                continue; // the commit removed the directory
            };
            let commit = CommitSha(sha.to_string());
            let time = time
                .parse::<i64>()
                .ok()
                .and_then(|t| Utc.timestamp_opt(t, 0).single())
                .unwrap_or_default();
            let reference = format!("{}:{tree}", self.def.repository);
            let digest = self.registry.digest(&reference).await?;
            let merged_head = parents.split(' ').nth(1).map(|p| CommitSha(p.to_string()));
            let results = match &merged_head {
                Some(head) => self
                    .github
                    .statuses(&self.repo, head)
                    .await?
                    .into_iter()
                    .map(|s| (s.context, s.state))
                    .collect(),
                None => Vec::new(),
            };
            let context = self.def.status_context();
            let published = self
                .github
                .statuses(&self.repo, &commit)
                .await?
                .into_iter()
                .find(|s| s.context == context && s.state == StatusState::Success)
                .and_then(|s| s.description);
            landed.push(Landed {
                commit,
                time,
                tree,
                digest,
                pr: pr_of(subject),
                results,
                published,
            });
        }
        Ok(landed)
    }
}

/// The PR number in GitHub's merge subject (`Merge pull request #12 from …`) or a squash
/// subject (`Do a thing (#12)`).
fn pr_of(subject: &str) -> Option<u64> {
    let digits = |s: &str| -> Option<u64> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    if let Some(rest) = subject.strip_prefix("Merge pull request #") {
        return digits(rest);
    }
    let open = subject.trim_end().strip_suffix(')')?.rfind("(#")?;
    digits(&subject[open + 2..])
}

/// `tickbot image history` as a person reads it: one line per landed image, newest first.
pub fn render_history(def: &ImageDef, branch: &str, landed: &[Landed]) -> String {
    let mut out = format!(
        "{}: {} on {branch}, newest first\n",
        def.name, def.repository
    );
    if landed.is_empty() {
        out.push_str("(the default branch never changed its directory)\n");
    }
    for l in landed {
        let digest = l
            .digest
            .as_deref()
            .map_or("(not in the registry)".to_string(), |d| {
                short(d.trim_start_matches("sha256:")).to_string()
            });
        let pr = l.pr.map_or("-".to_string(), |n| format!("#{n}"));
        let results = match l.results.is_empty() {
            true => "no results".to_string(),
            false => l
                .results
                .iter()
                .map(|(c, s)| format!("{c} {}", s.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        out.push_str(&format!(
            "{}  {}  tree {}  {digest}  {pr}  {results}",
            l.time.format("%Y-%m-%d %H:%M"),
            l.commit.short(),
            short(&l.tree),
        ));
        if let Some(p) = &l.published {
            out.push_str(&format!("  [{p}]"));
        }
        out.push('\n');
    }
    out
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::pr_of;

    #[test]
    fn the_merged_pr_is_read_from_githubs_subjects() {
        assert_eq!(pr_of("Merge pull request #12 from acme/topic"), Some(12));
        assert_eq!(pr_of("images: Update tasks (#7)"), Some(7));
        assert_eq!(pr_of("images: Update tasks"), None);
        assert_eq!(pr_of("Fix (#x)"), None);
    }
}
