//! A bare clone of a served repository, for what reads its history rather than one commit:
//! `tickbot image` (what an image has been) and the scheduler (when an item was last
//! refreshed). Every branch is fetched with tickbot's credentials, which git gets through its
//! environment and never prints.

use crate::github::{GitHub, GitHubError};
use crate::ids::RepoName;
use crate::worker::mirror::{Git, GitAuth, GitError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Git(#[from] GitError),
}

pub struct RepoClone {
    dir: PathBuf,
    url: String,
    auth: GitAuth,
}

impl RepoClone {
    /// The clone of `repo` (from `url`) under `work`, brought up to date.
    pub async fn open(
        github: &GitHub,
        repo: &RepoName,
        url: &str,
        work: &Path,
    ) -> Result<RepoClone, CloneError> {
        let clone = RepoClone {
            dir: work.join(format!("{repo}.git")),
            url: url.to_string(),
            auth: GitAuth::token(&github.git_token(repo).await?),
        };
        if !clone.dir.join("HEAD").exists() {
            Git::new()
                .args(["init", "--bare", "--quiet"])
                .arg(&clone.dir)
                .ok()
                .await?;
        }
        Git::bare(&clone.dir)
            .args(["fetch", "--quiet", "--prune"])
            .arg(&clone.url)
            .arg("+refs/heads/*:refs/heads/*")
            .auth(Some(&clone.auth))
            .ok()
            .await?;
        Ok(clone)
    }

    /// A git command on the clone.
    pub(crate) fn git(&self) -> Git {
        Git::bare(&self.dir)
    }

    /// `git push <url> <refspec>` with the credentials.
    pub(crate) async fn push(&self, refspec: &str) -> Result<(), GitError> {
        self.git()
            .arg("push")
            .arg(&self.url)
            .arg(refspec)
            .auth(Some(&self.auth))
            .ok()
            .await?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The id `rev` names (e.g. `main:containers/tasks`), if it exists.
    pub(crate) async fn resolve(&self, rev: &str) -> Result<Option<String>, GitError> {
        let run = self
            .git()
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(rev)
            .run()
            .await?;
        let id = run.stdout.trim();
        Ok((run.success() && !id.is_empty()).then(|| id.to_string()))
    }
}
