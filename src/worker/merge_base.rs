//! `merge = true` (reference §4): a test runs on the PR's head merged onto its base branch's
//! head, in the checkout, before the command runs.

use super::executor::JobError;
use super::job_log::JobLog;
use super::mirror::{GitAuth, Mirrors, Worktree};
use crate::job::{Job, MergeBase, Outcome};

/// Merges `base` (the job's `merge`) into the checkout of the job's head, as `author`.
/// `Some(failure)` when they do not merge cleanly: the merge is aborted (the reused checkout
/// stays clean) and the log lists the conflicting paths.
pub(super) async fn merge(
    mirrors: &Mirrors,
    job: &Job,
    base: &MergeBase,
    auth: &GitAuth,
    (name, email): (&str, &str),
    worktree: &Worktree,
    log: &JobLog,
) -> Result<Option<Outcome>, JobError> {
    let url = &job.base_clone_url;
    (mirrors)
        .fetch(&job.repo, url, &base.branch, &base.sha, Some(auth))
        .await?;
    let head = job.head_sha.short();
    let message = format!("Merge {head} into {} for testing", base.branch);
    let merged = (worktree.git())
        .author(name, email)
        .args(["merge", "--no-ff", "--no-edit", "--quiet", "-m", &message])
        .arg(&base.sha.0)
        .run()
        .await?;
    let at = format!("{} at {}", base.branch, base.sha.short());
    if merged.success() {
        log.line(&format!("tickbot: testing {head} merged onto {at}"));
        return Ok(None);
    }
    let conflicts = (worktree.git())
        .args(["diff", "--name-only", "--diff-filter=U"])
        .run()
        .await?;
    (worktree.git()).args(["merge", "--abort"]).run().await?;
    log.line(&format!(
        "tickbot: {head} does not merge cleanly with {at}; conflicts in:"
    ));
    for path in conflicts.stdout.lines() {
        log.line(&format!("  {path}"));
    }
    // The state's note names the base: "does not merge cleanly [w1] (with `main` at …)".
    let reason = "does not merge cleanly".to_string();
    Ok(Some(Outcome::Failure { reason }))
}
