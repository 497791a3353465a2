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

    /// Moves `branch` to `commit` with a forced push, unless GitHub's branch is no longer at
    /// `expected` (someone pushed since): then git refuses and nothing changes.
    pub(crate) async fn push_replacing(
        &self,
        branch: &str,
        commit: &str,
        expected: &str,
    ) -> Result<(), GitError> {
        self.git()
            .arg("push")
            .arg(format!("--force-with-lease=refs/heads/{branch}:{expected}"))
            .arg(&self.url)
            .arg(format!("{commit}:refs/heads/{branch}"))
            .auth(Some(&self.auth))
            .ok()
            .await?;
        Ok(())
    }

    /// A private index (removed when dropped) and an empty work tree, for building a tree in
    /// the bare clone: `rm --cached`, `read-tree --prefix` and `update-index` insist on a work
    /// tree, and nothing is ever checked out into this one.
    pub(crate) fn scratch(&self, name: &str) -> std::io::Result<Scratch<'_>> {
        let empty = self.dir.join(format!("{name}-empty"));
        std::fs::create_dir_all(&empty)?;
        let index = self
            .dir
            .join(format!("{name}-{}.index", std::process::id()));
        Ok(Scratch {
            clone: self,
            index,
            empty,
        })
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

/// See [`RepoClone::scratch`].
pub(crate) struct Scratch<'a> {
    clone: &'a RepoClone,
    index: PathBuf,
    empty: PathBuf,
}

impl Scratch<'_> {
    /// A git command on the clone, with the private index and the empty work tree.
    pub(crate) fn git(&self) -> Git {
        self.clone
            .git()
            .arg(format!("--work-tree={}", self.empty.display()))
            .index(&self.index)
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.index);
    }
}
