//! Reused checkouts: each repository keeps a few worktrees (slots) that jobs borrow in turn,
//! so starting a job rewrites only the files that differ from the slot's last commit instead
//! of writing the whole tree (`git worktree add` of a 10,000-file repository takes most of a
//! second on a disk).
//!
//! The job before may have written anything in its tree, git's own files included, so a slot
//! is handed out only once it is proved equal to a fresh checkout of the new commit:
//!
//! 1. the slot's `.git` file is written again from the worker's own record of its admin
//!    directory (kept beside the slot, out of the job's reach); whatever the job put there
//!    (a directory with a crafted config, a symlink) is deleted unread;
//! 2. every git command names that admin directory and the slot explicitly, with hooks and
//!    fsmonitor off (see [`Git`]), so nothing the job wrote is read as configuration;
//! 3. `checkout --force --detach <sha>` rewrites every tracked path that differs (a symlink
//!    where a directory belongs is removed, not followed), `clean -ffdx` deletes everything
//!    untracked or ignored, nested repositories included;
//! 4. `status --porcelain --ignored --untracked-files=all` must print nothing and `HEAD` must be
//!    the commit. Git compares each file's size, mode, mtime, ctime and inode with the index,
//!    which the job cannot reach (it lives in the admin directory); a job cannot set ctime, so
//!    any change it made is seen.
//!
//! Any step failing, the slot is deleted and checked out afresh. Slots live under
//! `<work dir>/pool/<owner>/<name>/` and are never shared across repositories; a slot in use
//! is held by an exclusive `flock`, so a killed worker's slot is free (and verified) again.

use super::{Git, GitError, Mirrors, Worktree, add_worktree, create_dir, has_commit};
use crate::ids::{CommitSha, RepoName};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Slots per repository at most (one per job running at once across the workers sharing the
/// state directory).
const MAX_SLOTS: usize = 256;

impl Mirrors {
    /// A checkout of `repo` at `sha` (detached HEAD) under `pool`, reused when a free slot
    /// holds one: see the module documentation. [`Worktree::remove`] gives the slot back.
    pub async fn checkout(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        pool: &Path,
    ) -> Result<Worktree, GitError> {
        super::check_sha(sha)?;
        let mirror = self.path(repo);
        if !has_commit(&mirror, sha).await? {
            return Err(GitError::Invalid {
                what: "a checkout at",
                value: sha.0.clone(),
                why: "the commit is not in the mirror; fetch it first",
            });
        }
        let slots = pool.join(repo.owner()).join(repo.name());
        create_dir(&slots).await?;
        let (index, lock) = free_slot(&slots).await?;
        let dir = slots.join(index.to_string());
        let record = slots.join(format!("{index}.gitdir"));
        if let Some(admin) = recorded_admin(&record, &dir).await {
            match reset(&admin, &dir, sha).await {
                Ok(()) => {
                    tracing::debug!(%repo, sha = sha.short(), dir = %dir.display(), "checkout reused");
                    let path =
                        tokio::fs::canonicalize(&dir)
                            .await
                            .map_err(|source| GitError::Io {
                                what: "resolving",
                                path: dir.clone(),
                                source,
                            })?;
                    return Ok(Worktree::pooled(path, admin, mirror, lock, true));
                }
                Err(e) => {
                    tracing::warn!(%repo, dir = %dir.display(), error = %e, "a reused checkout could not be proved clean; checking out afresh");
                }
            }
        }
        // Whatever is there goes: git forgets the slot once its directory is gone.
        let _ = tokio::fs::remove_file(&record).await;
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(GitError::Io {
                    what: "removing the checkout slot",
                    path: dir,
                    source: e,
                });
            }
            _ => {}
        }
        Git::bare(&mirror).args(["worktree", "prune"]).ok().await?;
        let (path, admin) = add_worktree(repo, &mirror, sha, &dir).await?;
        write_file(&record, admin.to_string_lossy().as_bytes()).await?;
        Ok(Worktree::pooled(path, admin, mirror, lock, false))
    }
}

/// The first slot no one holds, locked; its number.
async fn free_slot(slots: &Path) -> Result<(usize, std::fs::File), GitError> {
    for index in 0..MAX_SLOTS {
        let path = slots.join(format!("{index}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| GitError::Io {
                what: "opening the slot lock",
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own; LOCK_NB never blocks.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok((index, file));
        }
    }
    Err(GitError::Invalid {
        what: "checkout slots in",
        value: slots.display().to_string(),
        why: "all of them are in use; are that many jobs of one repository running?",
    })
}

/// The admin directory recorded for slot `dir`, if it still is that slot's: a prune (after the
/// job deleted the slot's `.git`) may have removed it, and another worktree may have its name.
async fn recorded_admin(record: &Path, dir: &Path) -> Option<PathBuf> {
    let text = tokio::fs::read_to_string(record).await.ok()?;
    let admin = PathBuf::from(text.trim());
    let back = tokio::fs::read_to_string(admin.join("gitdir")).await.ok()?;
    let ours = tokio::fs::canonicalize(dir).await.ok()?.join(".git");
    (Path::new(back.trim()) == ours).then_some(admin)
}

/// Makes the slot `dir` (admin directory `admin`) a clean checkout of `sha`, and proves it.
async fn reset(admin: &Path, dir: &Path, sha: &CommitSha) -> Result<(), GitError> {
    let dot_git = dir.join(".git");
    match tokio::fs::symlink_metadata(&dot_git).await {
        Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&dot_git).await,
        Ok(_) => tokio::fs::remove_file(&dot_git).await,
        Err(e) => Err(e),
    }
    .or_else(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    })
    .map_err(|source| GitError::Io {
        what: "removing the job's .git of",
        path: dir.to_path_buf(),
        source,
    })?;
    let link = format!("gitdir: {}\n", admin.display());
    write_file(&dot_git, link.as_bytes()).await?;
    let git = || {
        Git::new()
            .arg("--git-dir")
            .arg(admin)
            .arg("--work-tree")
            .arg(dir)
            .current_dir(dir)
    };
    git()
        .args([
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            "--end-of-options",
        ])
        .arg(&sha.0)
        .ok()
        .await?;
    git().args(["clean", "-ffdxq"]).ok().await?;
    let status = git()
        .args([
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=all",
        ])
        .ok()
        .await?;
    let head = git().args(["rev-parse", "HEAD"]).ok().await?;
    if !status.stdout.trim().is_empty() || head.stdout.trim() != sha.0 {
        return Err(GitError::Unexpected {
            command: "git status --porcelain --ignored (after checkout --force and clean)".into(),
            output: format!("{}HEAD {}", status.stdout, head.stdout.trim()),
        });
    }
    Ok(())
}

async fn write_file(path: &Path, contents: &[u8]) -> Result<(), GitError> {
    tokio::fs::write(path, contents)
        .await
        .map_err(|source| GitError::Io {
            what: "writing",
            path: path.to_path_buf(),
            source,
        })
}
