//! The state machine of one context on one commit (reference §7), in one type: [`State`]
//! renders every description tickbot sets and the check run that shows it, and [`Phase`]
//! reads GitHub's states (commit statuses or check runs) back. Nothing else in the dispatcher
//! looks at description texts.
//!
//! ```text
//! Queued ─▶ Running [w] ─▶ Succeeded [w] | Failed <reason> [w] | Errored <reason> [w]
//!   │           │
//!   └───────────┴─▶ Cancelled: superseded by <sha> | pull request closed | by @someone
//! AwaitingApproval (an untrusted author's PR) ─▶ Queued, after `/ok-to-test`
//! ```

use crate::checklist::Checklist;
use crate::github::{CheckAction, CheckOutput, CheckRun, CheckRunWrite, CommitStatus, StatusState};
use crate::ids::CommitSha;
use crate::job::Outcome;
use std::fmt;

/// Status context that records a trusted person's `/ok-to-test` for one head commit.
pub const APPROVAL_CONTEXT: &str = "tickbot/ok-to-test";

/// Requested action of a check run that runs its context again.
pub const RETRY: &str = "retry";
/// Requested action of a check run that cancels its queued or running job.
pub const CANCEL: &str = "cancel";
/// The check run action "Keep for debugging" (as `/debug <its context>`).
pub const DEBUG: &str = "debug";

const QUEUED: &str = "Not yet tested";
const AWAITING_APPROVAL: &str = "Manual testing required";
const RUNNING: &str = "In progress";
const CANCELLED: &str = "Cancelled";
const WAITING_FOR_IMAGE: &str = "Waiting for ";

/// Why a queued or running job was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancellation {
    /// A push replaced the head the job was testing.
    Superseded(CommitSha),
    Closed,
    /// `/cancel` or a check run's Cancel button.
    By(String),
    /// Sent again to a worker that missed the first cancellation.
    Repeated,
}

impl fmt::Display for Cancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cancellation::Superseded(sha) => {
                write!(f, "{CANCELLED}: superseded by {}", sha.short())
            }
            Cancellation::Closed => write!(f, "{CANCELLED}: pull request closed"),
            Cancellation::By(login) => write!(f, "{CANCELLED} by @{login}"),
            Cancellation::Repeated => f.write_str(CANCELLED),
        }
    }
}

/// A state tickbot sets on a context. `note` says what else was tested with it (another
/// project's branch, a dependency's PR) and ends every description of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<'a> {
    Queued {
        note: Option<&'a str>,
    },
    AwaitingApproval,
    /// The job's image is being built; `image` is the build's context, `image/<name>`.
    WaitingForImage {
        image: &'a str,
    },
    Running {
        worker: &'a str,
        note: Option<&'a str>,
    },
    Finished {
        outcome: &'a Outcome,
        worker: &'a str,
        note: Option<&'a str>,
    },
    Cancelled(&'a Cancellation),
    /// `tickbot/ok-to-test`: approved, with the digest of the task list it approves.
    Approved {
        by: &'a str,
        tasks: &'a str,
    },
    /// `tickbot/ok-to-test`: an untrusted person changed the tasks.
    Unapproved {
        editor: &'a str,
    },
    /// `image/<name>` on a landed commit: its `tags` now point at the image of `tree`.
    Published {
        tags: &'a str,
        digest: &'a str,
        tree: &'a str,
    },
}

impl State<'_> {
    fn github_state(&self) -> StatusState {
        match self {
            State::Queued { .. }
            | State::AwaitingApproval
            | State::WaitingForImage { .. }
            | State::Running { .. } => StatusState::Pending,
            State::Finished { outcome, .. } => match outcome {
                Outcome::Success => StatusState::Success,
                Outcome::Failure { .. } => StatusState::Failure,
                Outcome::Error { .. } => StatusState::Error,
            },
            State::Cancelled(_) => StatusState::Error,
            State::Approved { .. } | State::Published { .. } => StatusState::Success,
            State::Unapproved { .. } => StatusState::Failure,
        }
    }

    fn description(&self) -> String {
        let (text, note) = match self {
            State::Queued { note } => (QUEUED.to_string(), *note),
            State::AwaitingApproval => (AWAITING_APPROVAL.to_string(), None),
            State::WaitingForImage { image } => (format!("{WAITING_FOR_IMAGE}{image}"), None),
            State::Running { worker, note } => (format!("{RUNNING} [{worker}]"), *note),
            State::Finished {
                outcome,
                worker,
                note,
            } => {
                let text = match outcome {
                    Outcome::Success => format!("Success [{worker}]"),
                    Outcome::Failure { reason } | Outcome::Error { reason } => {
                        format!("{reason} [{worker}]")
                    }
                };
                (text, *note)
            }
            State::Cancelled(why) => (why.to_string(), None),
            State::Approved { by, tasks } => (format!("Approved by @{by} {tasks}"), None),
            State::Published { tags, digest, tree } => (
                format!(
                    "Published {tags}: {} (tree {})",
                    short(digest.trim_start_matches("sha256:")),
                    short(tree)
                ),
                None,
            ),
            State::Unapproved { editor } => (
                format!("Tasks changed by @{editor}, who is not trusted; /ok-to-test approves"),
                None,
            ),
        };
        match note {
            Some(n) => format!("{text} ({n})"),
            None => text,
        }
    }

    /// This state on `context`, linking to `log` (a job's log) when given.
    pub fn on(&self, context: &str, log: Option<String>) -> CommitStatus {
        CommitStatus {
            context: context.to_string(),
            state: self.github_state(),
            description: Some(self.description()),
            target_url: log,
        }
    }
}

/// The first 12 characters, as registries and git show ids.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Where a context stands, read back from GitHub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    AwaitingApproval,
    /// Not queued yet: planned again when the dispatcher that held it restarted.
    WaitingForImage,
    Running,
    Succeeded,
    Failed,
    Errored,
    Cancelled,
}

impl Phase {
    /// The one place that reads a description back.
    pub fn of(status: &CommitStatus) -> Phase {
        let description = status.description.as_deref().unwrap_or("");
        match status.state {
            StatusState::Pending if description == AWAITING_APPROVAL => Phase::AwaitingApproval,
            StatusState::Pending if description.starts_with(RUNNING) => Phase::Running,
            StatusState::Pending if description.starts_with(WAITING_FOR_IMAGE) => {
                Phase::WaitingForImage
            }
            StatusState::Pending => Phase::Queued,
            StatusState::Success => Phase::Succeeded,
            StatusState::Failure => Phase::Failed,
            StatusState::Error if description.starts_with(CANCELLED) => Phase::Cancelled,
            StatusState::Error => Phase::Errored,
        }
    }

    /// A job is queued or running (not one waiting for `/ok-to-test`).
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Queued | Phase::Running)
    }

    /// Not run yet at this head: waiting for an approval or for its image (a PR event plans it
    /// again).
    pub fn is_waiting(self) -> bool {
        matches!(self, Phase::AwaitingApproval | Phase::WaitingForImage)
    }

    /// A finished run that `/retest` runs again.
    pub fn is_failed(self) -> bool {
        matches!(self, Phase::Failed | Phase::Errored | Phase::Cancelled)
    }

    /// A finished run of any outcome.
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            Phase::Queued | Phase::Running | Phase::AwaitingApproval | Phase::WaitingForImage
        )
    }
}

/// The PR's task list: the context of each item, sorted (ticks and prose do not change it).
pub fn task_list(checklist: &Checklist) -> Vec<String> {
    let mut contexts: Vec<String> = checklist.tasks.iter().map(|t| t.context()).collect();
    contexts.sort();
    contexts
}

/// What an `/ok-to-test` approves besides the head commit: the task lines as they were. An
/// untrusted author who adds or changes a task after the approval needs a new one (reference
/// §5), while ticking boxes (state only) keeps it.
pub fn approved_tasks(checklist: &Checklist) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(task_list(checklist).join("\n"));
    // The whole digest: a shorter one could be matched by a made-up task list.
    format!("(tasks {})", hex::encode(digest))
}

/// Whether `status` (of [`APPROVAL_CONTEXT`]) approves the head with this task list.
pub fn approves(status: &CommitStatus, tasks: &str) -> bool {
    status.state == StatusState::Success
        && status
            .description
            .as_deref()
            .is_some_and(|d| d.ends_with(tasks))
}

/// The job id a state points at (its link is the job's log, `…/logs/<job>`).
pub fn job_of(status: &CommitStatus) -> Option<&str> {
    status
        .target_url
        .as_deref()
        .and_then(|u| u.rsplit_once("/logs/"))
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The latest state of every context on `sha`: commit statuses, or with a GitHub App the
/// newest check run of each name, which `seen` is also shown.
pub async fn latest_states(
    github: &crate::github::GitHub,
    repo: &crate::ids::RepoName,
    sha: &crate::ids::CommitSha,
    seen: impl FnOnce(&std::collections::BTreeMap<String, CheckRun>),
) -> Result<Vec<CommitStatus>, crate::github::GitHubError> {
    if !github.is_app() {
        return github.statuses(repo, sha).await;
    }
    let latest = newest_runs(github.check_runs(repo, sha).await?);
    seen(&latest);
    Ok(latest.into_values().map(from_check_run).collect())
}

/// The newest check run of each name (a context's runs: the latest counts, as on GitHub).
fn newest_runs(runs: Vec<CheckRun>) -> std::collections::BTreeMap<String, CheckRun> {
    let mut newest: std::collections::BTreeMap<String, CheckRun> = Default::default();
    for run in runs {
        if newest.get(&run.name).is_none_or(|n| n.id < run.id) {
            newest.insert(run.name.clone(), run);
        }
    }
    newest
}

/// A check run read back as the state it stands for.
pub fn from_check_run(run: CheckRun) -> CommitStatus {
    let state = match (run.status.as_str(), run.conclusion.as_deref()) {
        ("completed", Some("success" | "neutral" | "skipped")) => StatusState::Success,
        ("completed", Some("failure" | "timed_out" | "action_required")) => StatusState::Failure,
        ("completed", _) => StatusState::Error,
        _ => StatusState::Pending,
    };
    CommitStatus {
        context: run.name,
        state,
        description: run.title,
        target_url: run.details_url,
    }
}

/// The check run that shows `status`, with the end of a failed job's log when given.
pub fn to_check_run(status: &CommitStatus, log_tail: Option<&str>) -> CheckRunWrite {
    let description = status.description.clone().unwrap_or_default();
    let action = |label: &str, identifier: &str, description: &str| CheckAction {
        label: label.into(),
        identifier: identifier.into(),
        description: description.into(),
    };
    let cancel = || vec![action("Cancel", CANCEL, "Stop this run")];
    let retry = || vec![action("Retry", RETRY, "Run it again")];
    let debug = || {
        let keep = "Rerun, keep the container if it fails";
        vec![
            action("Retry", RETRY, "Run it again"),
            action("Keep for debugging", DEBUG, keep),
        ]
    };
    let (run_status, conclusion, mut actions) = match Phase::of(status) {
        Phase::AwaitingApproval => ("queued", None, vec![]),
        Phase::Queued | Phase::WaitingForImage => ("queued", None, cancel()),
        Phase::Running => ("in_progress", None, cancel()),
        Phase::Succeeded => ("completed", Some("success"), vec![]),
        Phase::Failed | Phase::Errored => ("completed", Some("failure"), debug()),
        Phase::Cancelled => ("completed", Some("cancelled"), retry()),
    };
    if status.context == APPROVAL_CONTEXT {
        actions.clear(); // an approval is given by `/ok-to-test`, not by a button
    }
    let mut summary = description.clone();
    if let Some(url) = &status.target_url {
        summary.push_str(&format!("\n\n[Full log]({url})"));
    }
    CheckRunWrite {
        name: status.context.clone(),
        status: run_status.into(),
        conclusion: conclusion.map(str::to_string),
        details_url: status.target_url.clone(),
        external_id: job_of(status).map(str::to_string),
        output: CheckOutput {
            title: Some(description),
            summary: Some(summary),
            text: log_tail.map(|t| format!("The end of the log:\n\n```\n{t}\n```")),
        },
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "http://x/logs/jabc";

    fn every_state() -> Vec<CommitStatus> {
        let failure = Outcome::Failure {
            reason: "Exit code 1".into(),
        };
        let error = Outcome::Error {
            reason: "Timeout after 1h".into(),
        };
        let by = Cancellation::By("alice".into());
        let superseded = Cancellation::Superseded(CommitSha("1234567890abcdef".into()));
        [
            State::Queued { note: None },
            State::Queued {
                note: Some("bots#12 at 1a2b3c4"),
            },
            State::AwaitingApproval,
            State::Running {
                worker: "w1",
                note: None,
            },
            State::Finished {
                outcome: &Outcome::Success,
                worker: "w1",
                note: Some("acme/app/main at 1a2b3c4"),
            },
            State::Finished {
                outcome: &failure,
                worker: "w1",
                note: None,
            },
            State::Finished {
                outcome: &error,
                worker: "w2",
                note: None,
            },
            State::Cancelled(&by),
            State::Cancelled(&superseded),
            State::Cancelled(&Cancellation::Closed),
        ]
        .iter()
        .map(|s| s.on("unit", Some(LOG.into())))
        .collect()
    }

    #[test]
    fn every_description_tickbot_sets_and_how_it_reads_back() {
        let shown: Vec<String> = every_state()
            .iter()
            .map(|s| {
                let description = s.description.as_deref().unwrap_or("");
                format!("{:?}: {description} → {:?}", s.state, Phase::of(s))
            })
            .collect();
        insta::assert_snapshot!(shown.join("\n"), @r"
        Pending: Not yet tested → Queued
        Pending: Not yet tested (bots#12 at 1a2b3c4) → Queued
        Pending: Manual testing required → AwaitingApproval
        Pending: In progress [w1] → Running
        Success: Success [w1] (acme/app/main at 1a2b3c4) → Succeeded
        Failure: Exit code 1 [w1] → Failed
        Error: Timeout after 1h [w2] → Errored
        Error: Cancelled by @alice → Cancelled
        Error: Cancelled: superseded by 1234567 → Cancelled
        Error: Cancelled: pull request closed → Cancelled
        ");
    }

    #[test]
    fn every_state_reads_back_as_itself_from_a_check_run() {
        for s in every_state() {
            let w = to_check_run(&s, None);
            let back = from_check_run(CheckRun {
                id: 1,
                name: w.name,
                status: w.status,
                conclusion: w.conclusion,
                details_url: w.details_url,
                title: w.output.title,
            });
            // A check run has no "error" conclusion: an errored run reads back as failed, which
            // is the same for every decision (both are retried by `/retest`, neither blocks).
            let expected = match Phase::of(&s) {
                Phase::Errored => Phase::Failed,
                p => p,
            };
            assert_eq!(Phase::of(&back), expected, "{s:?}");
            assert_eq!(back.description, s.description);
            assert_eq!(back.target_url, s.target_url);
        }
    }

    #[test]
    fn failures_offer_retry_running_jobs_cancel_and_show_the_log() {
        let failed = &every_state()[5];
        let run = to_check_run(failed, Some("boom"));
        assert_eq!(run.actions[0].identifier, RETRY);
        assert_eq!(run.external_id.as_deref(), Some("jabc"));
        assert_eq!(
            run.output.text.as_deref(),
            Some("The end of the log:\n\n```\nboom\n```")
        );
        let running = to_check_run(&every_state()[3], None);
        assert_eq!(
            (
                running.status.as_str(),
                running.actions[0].identifier.as_str()
            ),
            ("in_progress", CANCEL)
        );
        assert!(to_check_run(&every_state()[2], None).actions.is_empty());
        let cancelled = to_check_run(&every_state()[7], None);
        assert_eq!(cancelled.conclusion.as_deref(), Some("cancelled"));
    }
}
