//! The job message: everything a worker needs to run one task or test, and nothing it
//! would have to ask GitHub for. Workers hold no GitHub API logic (reference §1).

use crate::ids::{CommitSha, PrNumber, RepoName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Bumped when a field changes meaning; workers refuse versions they don't know.
pub const JOB_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Task,
    Test,
    /// Builds an `[images.*]` image from the PR's checkout and pushes it (`image/<name>`).
    Build,
}

/// What a build job builds: `context` of the checkout, pushed as `repository:tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuild {
    pub name: String,
    pub context: String,
    pub repository: String,
    /// The git tree id of `context` at the job's commit: the image's identity.
    pub tree: String,
    /// Tags to move to the image once it is in the registry (a build for a landed tree).
    #[serde(default)]
    pub publish: Vec<String>,
}

impl ImageBuild {
    /// `repository:tree`, the tag the build pushes and every job using the image looks up.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tree)
    }
}

/// The checkbox item a task job came from, so the result can tick the right box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub verb: String,
    pub args: Vec<String>,
    pub line: usize,
    /// Which occurrence of the same `verb args` text in the body (0 = first).
    pub occurrence: usize,
}

impl From<&crate::checklist::TaskItem> for ItemRef {
    fn from(t: &crate::checklist::TaskItem) -> Self {
        ItemRef {
            verb: t.verb.clone(),
            args: t.args.clone(),
            line: t.line,
            occurrence: t.occurrence,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub schema: u32,
    pub job_id: String,
    pub kind: JobKind,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub head_sha: CommitSha,
    pub head_ref: String,
    pub base_ref: String,
    /// Where to fetch the head commit from (the fork for fork PRs).
    pub clone_url: String,
    /// The base repository, where results are pushed when the head is in the same repository.
    pub base_clone_url: String,
    pub context: String,
    pub item: Option<ItemRef>,
    pub argv: Vec<String>,
    pub image: String,
    pub timeout_secs: u64,
    pub commit: bool,
    pub message: Option<String>,
    /// Secrets granted by the default branch's `[secrets]` to a trusted PR; the worker fills
    /// in the values from its own environment. Never the bot's token.
    pub secrets: Vec<SecretGrant>,
    pub network: bool,
    pub pool: String,
    pub priority: u8,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Other repositories checked out inside the job's tree (`[deps]`, `ctx@bots#123`, and
    /// the PR itself when another project's test runs against it).
    #[serde(default)]
    pub checkouts: Vec<Checkout>,
    /// The tree the command runs in when it is not the PR's own: another project's test run
    /// against this PR (`ctx@owner/repo`), which then is one of `checkouts`.
    #[serde(default)]
    pub main: Option<Checkout>,
    /// Shown after the status description, e.g. `bots#123 at 1a2b3c4`: what else was tested.
    #[serde(default)]
    pub note: Option<String>,
    /// For a [`JobKind::Build`]: the image to build.
    #[serde(default)]
    pub image_build: Option<ImageBuild>,
    /// A test run on the PR merged onto this commit of its base branch (`merge = true`).
    #[serde(default)]
    pub merge: Option<MergeBase>,
    /// From a private repository: its record stays off the public dashboard.
    #[serde(default = "unknown_is_private")]
    pub private: bool,
    /// `/debug <ctx>`: if this run fails, its container is kept for `[worker] debug_hold`.
    #[serde(default)]
    pub debug_hold: bool,
}

/// What a message that does not say whether its repository is private is taken for.
pub fn unknown_is_private() -> bool {
    true
}

/// The base branch's head a test merges the PR onto.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeBase {
    pub branch: String,
    pub sha: CommitSha,
}

impl Job {
    /// A job of `kind` for `context` at the PR's head, fetched from `clone_url`: the fields
    /// every job of a PR shares. The caller fills in what to run (`argv`, `image`, …); the
    /// rest starts empty (no secrets, no network, no commit, the default pool).
    pub fn at_head(
        pr: &crate::github::PullRequest,
        clone_url: String,
        kind: JobKind,
        context: &str,
        job_id: String,
    ) -> Job {
        Job {
            schema: JOB_SCHEMA,
            job_id,
            kind,
            repo: pr.repo.clone(),
            pr: pr.number,
            head_sha: pr.head_sha.clone(),
            head_ref: pr.head_ref.clone(),
            base_ref: pr.base_ref.clone(),
            clone_url,
            base_clone_url: pr.base_clone_url.clone(),
            context: context.to_string(),
            item: None,
            argv: Vec::new(),
            image: String::new(),
            timeout_secs: 0,
            commit: false,
            message: None,
            secrets: Vec::new(),
            network: false,
            pool: "default".into(),
            priority: 0,
            created_at: chrono::Utc::now(),
            checkouts: Vec::new(),
            main: None,
            note: None,
            image_build: None,
            merge: None,
            private: pr.private,
            debug_hold: false,
        }
    }
}

/// One more checkout inside the job's tree: `repo` at `sha`, fetched from `clone_url`
/// (`git_ref` is the branch or `refs/pull/N/head` that holds it), put at `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    pub repo: RepoName,
    pub clone_url: String,
    pub git_ref: String,
    pub sha: CommitSha,
    /// Relative to the job's tree; checked by the dispatcher to stay inside it.
    pub path: String,
}

/// A broadcast to every worker: stop these jobs (queued or running) and report them finished
/// with `reason` (an `error` status, e.g. `Cancelled: superseded by 1a2b3c4`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub schema: u32,
    pub job_ids: Vec<String>,
    pub reason: String,
}

/// What goes over the control exchange to every worker and intake.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Broadcast {
    Cancel(Cancel),
    Release(ReleaseHolds),
    /// A job started or ended somewhere (for the dashboard).
    Record(Box<crate::logs::JobRecord>),
}

/// A secret a job may use: inside the container, variable `container_var` gets the value of
/// the worker's environment variable `server_var`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretGrant {
    pub name: String,
    pub env: BTreeMap<String, String>,
}

/// The same item at the same head commit always gets the same id, so a job published twice
/// (a dispatcher that died between publishing and setting its status) is recognisable as one
/// job. `previous` is the job id of the item's last finished run at this commit (a person
/// removed `FAIL:` to run it again), so a re-run is a new job.
pub fn job_id(
    repo: &RepoName,
    pr: PrNumber,
    head: &CommitSha,
    context: &str,
    occurrence: usize,
    previous: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        repo.to_string().as_bytes(),
        &pr.0.to_be_bytes(),
        head.0.as_bytes(),
        context.as_bytes(),
        &occurrence.to_be_bytes(),
        previous.unwrap_or_default().as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    format!("j{}", &hex::encode(h.finalize())[..20])
}

/// Expands `{args}` in a task's command: an element that is exactly `{args}` becomes one argv
/// entry per argument (never a shell string); inside a longer element, the arguments joined by
/// spaces.
pub fn expand_argv(command: &[String], args: &[String]) -> Vec<String> {
    let mut argv = Vec::with_capacity(command.len() + args.len());
    for part in command {
        if part == "{args}" {
            argv.extend(args.iter().cloned());
        } else {
            argv.push(part.replace("{args}", &args.join(" ")));
        }
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_become_separate_argv_entries() {
        let cmd = vec![
            "./image-refresh".to_string(),
            "{args}".into(),
            "--tag={args}".into(),
        ];
        let args = vec!["fedora-41".to_string(), "; rm -rf /".into()];
        assert_eq!(
            expand_argv(&cmd, &args),
            vec![
                "./image-refresh",
                "fedora-41",
                "; rm -rf /",
                "--tag=fedora-41 ; rm -rf /"
            ]
        );
    }

    #[test]
    fn job_ids_are_stable_and_distinct() {
        let repo: RepoName = "o/r".parse().expect("valid");
        let sha = CommitSha("a".repeat(40));
        let id = |pr, occurrence, previous| {
            job_id(
                &repo,
                PrNumber(pr),
                &sha,
                "image-refresh/fedora-41",
                occurrence,
                previous,
            )
        };
        let a = id(1, 0, None);
        assert_eq!(a, id(1, 0, None), "the same item at the same commit");
        assert_ne!(a, id(1, 1, None), "the same line written twice");
        assert_ne!(a, id(2, 0, None), "another PR");
        assert_ne!(a, id(1, 0, Some(a.as_str())), "a re-run after a failure");
        assert!(a.starts_with('j') && a.len() == 21);
    }
}

/// What a worker tells the dispatcher about a job, on `<prefix>.results`. The dispatcher turns
/// it into statuses, ticked boxes and the summary comment; the worker never calls the GitHub API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub schema: u32,
    pub job_id: String,
    pub repo: RepoName,
    pub pr: PrNumber,
    pub head_sha: CommitSha,
    pub context: String,
    pub item: Option<ItemRef>,
    /// Which worker (host name and slot), shown in statuses as `[<worker>]`.
    pub worker: String,
    /// Where the live log is served.
    pub log_url: String,
    pub state: ReportState,
    /// The job's [`Job::note`].
    #[serde(default)]
    pub note: Option<String>,
    /// The end of the log of a job that did not succeed, for check runs' summaries.
    #[serde(default)]
    pub log_tail: Option<String>,
    /// A build job's pushed image, `sha256:…`.
    #[serde(default)]
    pub image_digest: Option<String>,
    /// A failed run kept for debugging (`/debug`): where, and until when.
    #[serde(default)]
    pub held: Option<HeldContainer>,
}

/// A failed job's container kept on its worker for a person to enter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldContainer {
    pub container: String,
    pub until: chrono::DateTime<chrono::Utc>,
}

/// Tells workers that a PR closed: the containers held for debugging its runs are removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseHolds {
    pub schema: u32,
    pub release_holds_of: RepoName,
    pub pr: PrNumber,
}

impl JobReport {
    /// A report about `job` by `worker`, its log at `log_url`.
    pub fn new(job: &Job, worker: &str, log_url: String, state: ReportState) -> JobReport {
        JobReport {
            schema: JOB_SCHEMA,
            job_id: job.job_id.clone(),
            repo: job.repo.clone(),
            pr: job.pr,
            head_sha: job.head_sha.clone(),
            context: job.context.clone(),
            item: job.item.clone(),
            worker: worker.to_string(),
            log_url,
            state,
            note: job.note.clone(),
            log_tail: None,
            image_digest: None,
            held: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ReportState {
    /// The command is about to start.
    Started,
    /// The job is over; nothing more comes for this job id.
    Finished {
        outcome: Outcome,
        /// The result commit pushed to the PR's head branch, if the task committed one.
        commit: Option<CommitSha>,
        duration_secs: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// The task's own failure: exit code, timeout, a result that does not apply.
    Failure {
        reason: String,
    },
    /// Not the task's fault and worth retrying: cancelled, infrastructure trouble.
    Error {
        reason: String,
    },
}
