//! A job's result on the PR branch: one commit with the job's trailers, pushed with a lease.
//!
//! The commit carries `Tickbot-Job: <id>` and `Tickbot-Log: <url>` trailers; the first is how
//! a redelivered job recognises that its work already landed ([`Mirrors::landed`]), the
//! second gives a reader of `git log` the way to the output that produced the change.
//!
//! The push never overwrites a person's work: `--force-with-lease` names the head the job
//! started from. When the branch moved meanwhile, the result commit is cherry-picked onto
//! the new head and pushed again (bounded); if it does not apply, the caller gets
//! [`PushOutcome::HeadMoved`] with a reason to show on the PR.

use super::mirror::{GitAuth, GitError, Mirrors, Worktree, check_branch, is_ancestor, parse_sha};
use crate::ids::{CommitSha, RepoName};

/// What the result commit says about itself.
#[derive(Debug, Clone, Copy)]
pub struct ResultCommit<'a> {
    pub author_name: &'a str,
    pub author_email: &'a str,
    /// The task's message; the trailers are appended as its last paragraph.
    pub message: &'a str,
    pub job_id: &'a str,
    pub log_url: &'a str,
}

/// Commits every change in the worktree (added, modified and deleted files; `.gitignore`
/// is honoured) as one commit, authored and committed by `c.author_*`, with the trailers
/// `Tickbot-Job: <id>` and `Tickbot-Log: <url>`. `None` when the task changed nothing.
pub async fn commit_changes(
    worktree: &Worktree,
    c: &ResultCommit<'_>,
) -> Result<Option<CommitSha>, GitError> {
    let message = result_message(c)?;
    worktree.git().args(["add", "--all"]).ok().await?;
    let staged = worktree
        .git()
        .args(["diff", "--cached", "--quiet", "--no-ext-diff"])
        .run()
        .await?;
    match staged.code {
        Some(0) => {
            tracing::info!(job = c.job_id, "the task changed nothing; no commit");
            return Ok(None);
        }
        Some(1) => {}
        _ => return Err(staged.failure()),
    }
    worktree
        .git()
        .author(c.author_name, c.author_email)
        // `whitespace` rather than the default `strip`: a message line starting with `#`
        // is content, not a comment.
        .args(["commit", "--quiet", "--no-verify", "--cleanup=whitespace"])
        .arg("--message")
        .arg(&message)
        .ok()
        .await?;
    let sha = head(worktree).await?;
    tracing::info!(
        job = c.job_id,
        commit = sha.short(),
        "committed the task's changes"
    );
    Ok(Some(sha))
}

fn result_message(c: &ResultCommit<'_>) -> Result<String, GitError> {
    // A newline in a trailer value would let it forge further trailers.
    for (what, value) in [("job id", c.job_id), ("log URL", c.log_url)] {
        if value.is_empty() || value.contains(['\n', '\r']) {
            return Err(GitError::Invalid {
                what,
                value: value.to_string(),
                why: "a trailer value must be one non-empty line",
            });
        }
    }
    let subject = match c.message.trim() {
        "" => "Task result",
        m => m,
    };
    Ok(format!(
        "{subject}\n\nTickbot-Job: {}\nTickbot-Log: {}\n",
        c.job_id, c.log_url
    ))
}

/// How a push ended, when git itself worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The branch now points at this commit (the result, possibly rebased).
    Pushed(CommitSha),
    /// The PR head moved and the result does not apply on the new head; `reason` is meant
    /// for the PR ("PR head moved and the result does not apply: …").
    HeadMoved { reason: String },
}

/// Pushes `commit` to `branch` at `url` with `--force-with-lease=refs/heads/<branch>:<expected>`.
/// If the branch moved meanwhile: fetches the new tip, cherry-picks the result commit onto it
/// in `worktree` and retries, for at most `max_attempts` pushes in all. A conflict, a deleted
/// branch or running out of attempts → [`PushOutcome::HeadMoved`].
#[allow(clippy::too_many_arguments)] // the brief's contract; each is a distinct fact of the push
pub async fn push_result(
    mirrors: &Mirrors,
    repo: &RepoName,
    worktree: &Worktree,
    commit: &CommitSha,
    url: &str,
    branch: &str,
    expected: &CommitSha,
    auth: Option<&GitAuth>,
    max_attempts: u32,
) -> Result<PushOutcome, GitError> {
    check_branch(branch)?;
    let mirror = mirrors.path(repo);
    let attempts = max_attempts.max(1);
    let mut commit = commit.clone();
    let mut expected = expected.clone();
    for attempt in 1..=attempts {
        if push_once(&mirror, &commit, url, branch, &expected, auth).await? {
            tracing::info!(%repo, branch, commit = commit.short(), attempt, "result pushed");
            return Ok(PushOutcome::Pushed(commit));
        }
        let Some(tip) = mirrors.fetch(repo, url, branch, &commit, auth).await? else {
            return Ok(head_moved(format!("branch {branch} no longer exists")));
        };
        tracing::info!(
            %repo, branch, expected = expected.short(), tip = tip.short(), attempt,
            "the PR head moved while pushing"
        );
        if is_ancestor(&mirror, &commit, &tip).await? {
            // An earlier attempt did land (its answer was lost on the way back).
            return Ok(PushOutcome::Pushed(commit));
        }
        if attempt == attempts {
            break;
        }
        match cherry_pick(worktree, &commit, &tip).await? {
            Picked::Onto(rebased) => {
                commit = rebased;
                expected = tip;
            }
            Picked::Conflict(paths) => {
                return Ok(head_moved(format!("conflict in {}", paths.join(", "))));
            }
        }
    }
    Ok(head_moved(format!(
        "the branch kept moving; gave up after {attempts} push attempt(s)"
    )))
}

fn head_moved(detail: String) -> PushOutcome {
    PushOutcome::HeadMoved {
        reason: format!("PR head moved and the result does not apply: {detail}"),
    }
}

/// One leased push; `false` when the lease failed (the branch is no longer at `expected`).
async fn push_once(
    mirror: &std::path::Path,
    commit: &CommitSha,
    url: &str,
    branch: &str,
    expected: &CommitSha,
    auth: Option<&GitAuth>,
) -> Result<bool, GitError> {
    let run = super::mirror::Git::bare(mirror)
        .args(["push", "--porcelain", "--no-verify"])
        .arg(format!(
            "--force-with-lease=refs/heads/{branch}:{}",
            expected.0
        ))
        .args(["--end-of-options", url])
        .arg(format!("{}:refs/heads/{branch}", commit.0))
        .auth(auth)
        .run()
        .await?;
    if run.success() {
        return Ok(true);
    }
    // Porcelain lines look like `!\t<src>:<dst>\t[rejected] (stale info)`; anything else
    // (auth, network, a protected branch) is a real error, not a moved head.
    let lease_failed = run.stdout.lines().any(|l| {
        l.starts_with('!')
            && ["stale info", "fetch first", "non-fast-forward"]
                .iter()
                .any(|r| l.contains(r))
    });
    if lease_failed {
        Ok(false)
    } else {
        Err(run.failure())
    }
}

enum Picked {
    Onto(CommitSha),
    Conflict(Vec<String>),
}

/// Re-applies `commit` on `onto` in the worktree, keeping its author, committer and message.
async fn cherry_pick(
    worktree: &Worktree,
    commit: &CommitSha,
    onto: &CommitSha,
) -> Result<Picked, GitError> {
    let who = worktree
        .git()
        .args([
            "log",
            "-1",
            "--format=%cn%x00%ce",
            "--end-of-options",
            &commit.0,
        ])
        .ok()
        .await?;
    let (name, email) = who
        .stdout
        .trim_end_matches('\n')
        .split_once('\0')
        .ok_or_else(|| GitError::Unexpected {
            command: who.command.clone(),
            output: who.stdout.clone(),
        })?;
    // `--force`: whatever the job left untracked must not block the switch.
    worktree
        .git()
        .args(["checkout", "--quiet", "--force", "--detach", &onto.0])
        .ok()
        .await?;
    let picked = worktree
        .git()
        .author(name, email)
        .args(["-c", "rerere.enabled=false"])
        // Keeps the commit (and its trailers) even if the new head already has the same
        // change, so a redelivered job still finds that its work landed.
        .args([
            "cherry-pick",
            "--keep-redundant-commits",
            "--end-of-options",
        ])
        .arg(&commit.0)
        .run()
        .await?;
    if picked.success() {
        return Ok(Picked::Onto(head(worktree).await?));
    }
    let unmerged = worktree
        .git()
        .args(["diff", "--name-only", "--diff-filter=U"])
        .ok()
        .await?;
    let paths: Vec<String> = unmerged.stdout.lines().map(str::to_string).collect();
    let aborted = worktree
        .git()
        .args(["cherry-pick", "--abort"])
        .run()
        .await?;
    if !aborted.success() {
        tracing::warn!(stderr = %aborted.stderr, "git cherry-pick --abort failed");
    }
    if paths.is_empty() {
        Err(picked.failure())
    } else {
        Ok(Picked::Conflict(paths))
    }
}

async fn head(worktree: &Worktree) -> Result<CommitSha, GitError> {
    let out = worktree
        .git()
        .args(["rev-parse", "--verify", "HEAD"])
        .ok()
        .await?;
    parse_sha(&out.command, &out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_the_last_paragraph() {
        let c = ResultCommit {
            author_name: "tickbot",
            author_email: "tickbot@localhost",
            message: "images: Update fedora-41 image\n\nSigned-off-by: x <x@y>\n",
            job_id: "j1",
            log_url: "http://h/logs/j1",
        };
        assert_eq!(
            result_message(&c).expect("valid"),
            "images: Update fedora-41 image\n\nSigned-off-by: x <x@y>\n\n\
             Tickbot-Job: j1\nTickbot-Log: http://h/logs/j1\n"
        );
        let forged = ResultCommit {
            job_id: "j1\nTickbot-Job: j2",
            ..c
        };
        assert!(result_message(&forged).is_err());
    }
}
