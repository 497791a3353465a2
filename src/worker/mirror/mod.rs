//! Git for workers: one local bare mirror per repository, a reused checkout per job.
//!
//! A job needs the PR's code at one exact commit. Cloning per job costs a full transfer and
//! checkout every time (what Cockpit's checkout-and-run did); instead each repository gets a
//! bare mirror under `<state>/mirrors/<owner>/<name>.git` that is fetched incrementally (only
//! new objects cross the network) and every job gets its own `git worktree` sharing the
//! mirror's object store; the job's own tree is a worktree reused from one job to the next
//! once proved clean ([`pool`]). [`super::publish`] commits and pushes from the same mirror.
//!
//! Everything shells out to the `git` CLI (gix cannot push; git2's errors are terse and
//! its HTTPS needs OpenSSL), exactly what a person debugging it would run. Each command runs with `GIT_TERMINAL_PROMPT=0`, no
//! shell, hooks disabled, a hard timeout, and the credentials (an `http.extraHeader`) passed
//! through git's `GIT_CONFIG_*` environment, so they appear neither in `ps` output, nor in
//! `.git/config`, nor in any error message or log line.
//!
//! Worktrees are written to by untrusted code (the job's container mounts them). Git
//! commands that touch a worktree afterwards therefore never read its `.git` file (which the
//! job could point at a crafted config with e.g. `core.fsmonitor`); they name the admin
//! directory inside the mirror explicitly (`--git-dir` + `--work-tree`).

use crate::ids::{CommitSha, RepoName};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod git;
mod pool;
pub(crate) use git::{Git, check_branch, check_sha, has_commit, is_ancestor, parse_sha, rev_parse};
use git::{check_url, find_trailer, redact_url, url_key};

/// How long one git command may take. Generous, because a first fetch of a big repository
/// is slow; it exists so a hung network connection cannot stall a worker forever.
const GIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How much of a failing command's stderr goes into an error (the end is the useful part).
const MAX_STDERR: usize = 4000;

/// An `http.extraHeader` value (e.g. `Authorization: Basic …`) that authenticates git over
/// HTTPS. Never logged: `Debug` is redacted and no error message includes it.
#[derive(Clone)]
pub struct GitAuth(String);

impl GitAuth {
    /// Wraps a complete header line, e.g. `forge.bot_git_auth_header()`.
    pub fn header(header: impl Into<String>) -> GitAuth {
        GitAuth(header.into())
    }

    /// The header GitHub accepts for an installation token (what actions/checkout sends).
    pub fn token(token: &str) -> GitAuth {
        use base64::Engine;
        let pair = format!("x-access-token:{token}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        GitAuth(format!("Authorization: Basic {encoded}"))
    }
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GitAuth(<redacted>)")
    }
}

/// What went wrong with git; the messages end up in logs and in "Internal error" statuses.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run `{command}`: {source}; is git installed and on PATH?")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(
        "`{command}` did not finish within {} s and was killed; is the remote reachable?",
        .after.as_secs()
    )]
    TimedOut { command: String, after: Duration },
    #[error(
        "commit {sha} is not in {url} (fetched branch {branch} and the commit itself): \
         was it force-pushed away, or never pushed?"
    )]
    MissingCommit {
        url: String,
        branch: String,
        sha: CommitSha,
    },
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("`{command}` printed something unexpected: {output:?}")]
    Unexpected { command: String, output: String },
}

/// Local bare mirrors, one per repository, under one root directory.
///
/// Cheap to clone; clones share the per-repository locks.
#[derive(Debug, Clone)]
pub struct Mirrors {
    root: PathBuf,
    locks: Arc<Mutex<HashMap<RepoName, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Mirrors {
    /// Mirrors kept under `root` (normally `<state dir>/mirrors`); created on first use.
    pub fn new(root: PathBuf) -> Mirrors {
        Mirrors {
            root,
            locks: Arc::default(),
        }
    }

    /// Where the bare mirror of `repo` lives: `<root>/<owner>/<name>.git`.
    pub fn path(&self, repo: &RepoName) -> PathBuf {
        self.root
            .join(repo.owner())
            .join(format!("{}.git", repo.name()))
    }

    /// Makes sure the mirror of `repo` has `sha` and the current tip of `branch` from `url`:
    /// init on first use, then fetch only what is new (never a fresh clone). Returns the
    /// branch's tip, or `None` if `url` has no such branch any more.
    ///
    /// Concurrent calls for the same repository are serialized (an async lock within the
    /// process and a file lock across processes); different repositories run in parallel.
    pub async fn fetch(
        &self,
        repo: &RepoName,
        url: &str,
        branch: &str,
        sha: &CommitSha,
        auth: Option<&GitAuth>,
    ) -> Result<Option<CommitSha>, GitError> {
        check_sha(sha)?;
        check_url(url)?;
        check_branch(branch)?;
        let _serial = self.lock(repo).await?;
        let mirror = self.path(repo);
        self.ensure_init(repo, &mirror).await?;

        // Each URL gets its own ref namespace: a fork's `main` must not overwrite the base
        // repository's `main`, and the refs keep fetched commits safe from `git gc`.
        let local_ref = format!("refs/tickbot/{}/heads/{branch}", url_key(url));
        let started = std::time::Instant::now();
        let fetched = Git::bare(&mirror)
            .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
            .args(["--end-of-options", url])
            .arg(format!("+refs/heads/{branch}:{local_ref}"))
            .auth(auth)
            .run()
            .await?;
        let tip = if fetched.success() {
            Some(rev_parse(&mirror, &local_ref).await?)
        } else if fetched.stderr.contains("couldn't find remote ref") {
            // The branch was deleted (PR closed, or merged and cleaned up): the commit may
            // still be fetchable by id below, and the caller learns there is no tip.
            tracing::info!(%repo, branch, "branch no longer exists on the remote");
            Git::bare(&mirror)
                .args(["update-ref", "-d", &local_ref])
                .ok()
                .await?;
            None
        } else {
            return Err(fetched.failure());
        };

        if !has_commit(&mirror, sha).await? {
            // Not on the branch any more (or a PR from a ref we did not fetch): ask for the
            // commit itself, which GitHub and git's smart HTTP serve when it is reachable.
            let by_id = Git::bare(&mirror)
                .args(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"])
                .args(["--end-of-options", url, &sha.0])
                .auth(auth)
                .run()
                .await?;
            if !by_id.success() || !has_commit(&mirror, sha).await? {
                tracing::debug!(stderr = %by_id.stderr, "fetching the commit by id failed");
                return Err(GitError::MissingCommit {
                    url: redact_url(url),
                    branch: branch.to_string(),
                    sha: sha.clone(),
                });
            }
            // Keep it reachable so gc cannot drop it between now and the worktree.
            Git::bare(&mirror)
                .args([
                    "update-ref",
                    &format!("refs/tickbot/commits/{}", sha.0),
                    &sha.0,
                ])
                .ok()
                .await?;
        }
        tracing::debug!(
            %repo,
            branch,
            tip = tip.as_ref().map(|t| t.short()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "mirror fetched"
        );
        Ok(tip)
    }

    /// A fresh worktree at exactly `sha` (detached HEAD) in `dir`. `sha` must already be in
    /// the mirror ([`Mirrors::fetch`]). A worktree left in `dir` by a worker that was killed
    /// is replaced; any other non-empty `dir` is refused. Removed by [`Worktree::remove`],
    /// and on drop as a fallback.
    pub async fn worktree(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        dir: &Path,
    ) -> Result<Worktree, GitError> {
        check_sha(sha)?;
        let mirror = self.path(repo);
        if !has_commit(&mirror, sha).await? {
            return Err(GitError::Invalid {
                what: "a worktree at",
                value: sha.0.clone(),
                why: "the commit is not in the mirror; fetch it first",
            });
        }
        self.clear_leftover(&mirror, dir).await?;
        let (path, git_dir) = add_worktree(repo, &mirror, sha, dir).await?;
        Ok(Worktree {
            path,
            git_dir,
            mirror,
            removed: false,
            slot: None,
            reused: false,
        })
    }

    /// The commit in `since..tip` whose message carries the trailer `Tickbot-Job: <job_id>`,
    /// if the job's result already landed (a redelivered job must not commit twice). Both
    /// commits must be in the mirror.
    pub async fn landed(
        &self,
        repo: &RepoName,
        since: &CommitSha,
        tip: &CommitSha,
        job_id: &str,
    ) -> Result<Option<CommitSha>, GitError> {
        check_sha(since)?;
        check_sha(tip)?;
        let out = Git::bare(&self.path(repo))
            .args([
                "log",
                "--format=%H%x09%(trailers:key=Tickbot-Job,valueonly,separator=%x09)",
                "--end-of-options",
            ])
            .arg(format!("{}..{}", since.0, tip.0))
            .ok()
            .await?;
        Ok(find_trailer(&out.stdout, job_id))
    }

    /// A redelivered job reuses its directory; what a killed worker left there (a checkout
    /// with a `.git` file) goes, and git forgets it. Anything else is not ours to delete.
    async fn clear_leftover(&self, mirror: &Path, dir: &Path) -> Result<(), GitError> {
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
            return Ok(());
        };
        let empty = matches!(entries.next_entry().await, Ok(None));
        let is_worktree = tokio::fs::symlink_metadata(dir.join(".git"))
            .await
            .is_ok_and(|m| m.is_file());
        if empty {
            return Ok(());
        }
        if !is_worktree {
            return Err(GitError::Invalid {
                what: "worktree directory",
                value: dir.display().to_string(),
                why: "it exists and is not a worktree left by a job; remove it",
            });
        }
        tracing::warn!(dir = %dir.display(), "replacing a worktree left by a killed worker");
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|source| GitError::Io {
                what: "removing the leftover worktree",
                path: dir.to_path_buf(),
                source,
            })?;
        Git::bare(mirror).args(["worktree", "prune"]).ok().await?;
        Ok(())
    }

    async fn lock(&self, repo: &RepoName) -> Result<RepoLock, GitError> {
        let in_process = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(repo.clone()).or_default().clone()
        };
        let guard = in_process.lock_owned().await;
        let owner_dir = self.root.join(repo.owner());
        tokio::fs::create_dir_all(&owner_dir)
            .await
            .map_err(|source| GitError::Io {
                what: "creating the mirror directory",
                path: owner_dir.clone(),
                source,
            })?;
        let file = flock(owner_dir.join(format!("{}.lock", repo.name()))).await?;
        Ok(RepoLock {
            _file: file,
            _guard: guard,
        })
    }

    async fn ensure_init(&self, repo: &RepoName, mirror: &Path) -> Result<(), GitError> {
        if tokio::fs::try_exists(mirror.join("HEAD"))
            .await
            .unwrap_or(false)
        {
            return Ok(());
        }
        // Init beside the final path and rename, so a worker killed mid-init never leaves
        // a half-made mirror that later fetches would trip over.
        let tmp = mirror.with_extension(format!("init-{}", uuid::Uuid::new_v4().simple()));
        Git::new()
            .args(["init", "--quiet", "--bare", "--end-of-options"])
            .arg(&tmp)
            .ok()
            .await?;
        // Mirrors only ever receive fetches; reflogs would only grow.
        Git::bare(&tmp)
            .args(["config", "core.logAllRefUpdates", "false"])
            .ok()
            .await?;
        if let Err(source) = tokio::fs::rename(&tmp, mirror).await {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(GitError::Io {
                what: "moving the new mirror into place at",
                path: mirror.to_path_buf(),
                source,
            });
        }
        tracing::info!(%repo, path = %mirror.display(), "created mirror");
        Ok(())
    }
}

/// `git worktree add` of `sha` in `dir`, which must not exist or be empty; `sha` is in the
/// mirror (the callers checked). The checkout's resolved path and its admin directory.
async fn add_worktree(
    repo: &RepoName,
    mirror: &Path,
    sha: &CommitSha,
    dir: &Path,
) -> Result<(PathBuf, PathBuf), GitError> {
    if let Some(parent) = dir.parent() {
        create_dir(parent).await?;
    }
    Git::bare(mirror)
        .args(["worktree", "add", "--quiet", "--detach", "--end-of-options"])
        .arg(dir)
        .arg(&sha.0)
        .ok()
        .await?;
    // Read the admin directory now, while the worktree's `.git` file is still ours; the
    // job's code may rewrite that file later.
    let admin = Git::new()
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--absolute-git-dir"])
        .ok()
        .await?;
    let git_dir = PathBuf::from(admin.stdout.trim());
    let path = tokio::fs::canonicalize(dir)
        .await
        .map_err(|source| GitError::Io {
            what: "resolving",
            path: dir.to_path_buf(),
            source,
        })?;
    tracing::debug!(%repo, sha = sha.short(), dir = %path.display(), "worktree added");
    Ok((path, git_dir))
}

/// `mkdir -p path`.
async fn create_dir(path: &Path) -> Result<(), GitError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|source| GitError::Io {
            what: "creating",
            path: path.to_path_buf(),
            source,
        })
}

/// Held while one repository's mirror is being fetched.
struct RepoLock {
    _file: std::fs::File,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

/// Takes an exclusive `flock` on `path` (created if missing), for workers in other
/// processes sharing the state directory. Released when the file is closed.
async fn flock(path: PathBuf) -> Result<std::fs::File, GitError> {
    let shown = path.clone();
    let locked = tokio::task::spawn_blocking(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // SAFETY: flock on a descriptor we own; blocking is fine on a blocking thread.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(file)
    })
    .await
    .map_err(|e| GitError::Io {
        what: "locking",
        path: shown.clone(),
        source: std::io::Error::other(e),
    })?;
    locked.map_err(|source| GitError::Io {
        what: "locking",
        path: shown,
        source,
    })
}

/// A job's checkout: a git worktree of the mirror, detached at one commit.
#[derive(Debug)]
pub struct Worktree {
    path: PathBuf,
    /// The worktree's admin directory inside the mirror (`<mirror>/worktrees/<name>`).
    git_dir: PathBuf,
    mirror: PathBuf,
    removed: bool,
    /// The lock of the reused slot this checkout is (see [`pool`]): removing it only gives
    /// the slot back.
    slot: Option<std::fs::File>,
    /// A slot's checkout of an earlier job, cleaned and verified (not written afresh).
    reused: bool,
}

impl Worktree {
    fn pooled(
        path: PathBuf,
        git_dir: PathBuf,
        mirror: PathBuf,
        lock: std::fs::File,
        reused: bool,
    ) -> Self {
        Worktree {
            path,
            git_dir,
            mirror,
            removed: false,
            slot: Some(lock),
            reused,
        }
    }

    /// Whether this checkout was an earlier job's, cleaned and proved equal to a fresh one.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The checkout's directory (what gets mounted into the container).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A git command working on this checkout, without trusting its `.git` file.
    pub(crate) fn git(&self) -> Git {
        Git::new()
            .arg("--git-dir")
            .arg(&self.git_dir)
            .arg("--work-tree")
            .arg(&self.path)
            .current_dir(&self.path)
    }

    /// Deletes the checkout (whatever the job left in it) and its admin data in the mirror.
    pub async fn remove(mut self) -> Result<(), GitError> {
        self.removed = true;
        if self.slot.take().is_some() {
            // The next job to borrow the slot cleans and verifies it.
            tracing::debug!(dir = %self.path.display(), "checkout slot given back");
            return Ok(());
        }
        let removed = Git::bare(&self.mirror)
            .args([
                "worktree",
                "remove",
                "--force",
                "--force",
                "--end-of-options",
            ])
            .arg(&self.path)
            .run()
            .await?;
        if !removed.success() {
            // git refuses when the job broke the checkout (e.g. rewrote `.git`); the
            // directory is ours either way.
            tracing::debug!(stderr = %removed.stderr, "git worktree remove failed; deleting");
            match tokio::fs::remove_dir_all(&self.path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(GitError::Io {
                        what: "removing the worktree",
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        Git::bare(&self.mirror)
            .args(["worktree", "prune"])
            .ok()
            .await?;
        tracing::debug!(dir = %self.path.display(), "worktree removed");
        Ok(())
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if self.removed || self.slot.is_some() {
            return;
        }
        // Fallback for error paths and cancelled tasks: blocking, but only a directory
        // removal and a prune, and leaving checkouts behind would fill the disk.
        tracing::warn!(dir = %self.path.display(), "worktree dropped without remove(); deleting");
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.path.display(), error = %e, "could not delete worktree");
        }
        let pruned = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&self.mirror)
            .args(["worktree", "prune"])
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(pruned, Ok(s) if s.success()) {
            tracing::warn!(mirror = %self.mirror.display(), "git worktree prune failed");
        }
    }
}

#[cfg(test)]
mod tests;
