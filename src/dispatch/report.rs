//! Where states go (design §7): commit statuses with a token, check runs with a GitHub App
//! (one per context, named after it, linking to the log, with the tail of the log on failure,
//! GitHub's Re-run, and the requested actions "Retry" and "Cancel"). The rest of the
//! dispatcher reads and writes states as [`CommitStatus`] values through here, so planning is
//! the same for both.
//!
//! A check run is updated in place while its job runs; a new run of a context (a re-run)
//! creates a new check run, as GitHub's own Re-run does, and the latest one per name counts.
//! Check run ids are remembered per (repository, commit, name), and the runs of a commit are
//! listed at most once per process, so each transition costs one call, as with statuses.

use super::{APPROVAL_CONTEXT, Dispatcher, contexts, lock, plan};
use crate::github::{
    CheckAction, CheckOutput, CheckRun, CheckRunWrite, CommitStatus, GitHubError, StatusState,
};
use crate::ids::{CommitSha, RepoName};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Requested action that runs a context again.
pub const RETRY: &str = "retry";
/// Requested action that cancels a queued or running context.
pub const CANCEL: &str = "cancel";

/// Entries remembered before the memory starts over (costing one listing per commit).
const REMEMBERED: usize = 50_000;

type RunKey = (RepoName, CommitSha, String);

#[derive(Default)]
pub(super) struct CheckRunIds {
    /// The latest run per context: its id and whether it is completed.
    ids: Mutex<HashMap<RunKey, (u64, bool)>>,
    /// Commits whose runs were listed: a context missing from `ids` has no run yet.
    listed: Mutex<HashSet<(RepoName, CommitSha)>>,
}

impl Dispatcher {
    /// The latest state of every context on `sha`.
    pub(super) async fn states(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
    ) -> Result<Vec<CommitStatus>, GitHubError> {
        if !self.github.is_app() {
            return self.github.statuses(repo, sha).await;
        }
        let mut latest: BTreeMap<String, CheckRun> = BTreeMap::new();
        for run in self.github.check_runs(repo, sha).await? {
            if latest.get(&run.name).is_none_or(|l| l.id < run.id) {
                latest.insert(run.name.clone(), run);
            }
        }
        {
            let mut ids = lock(&self.check_runs.ids);
            let mut listed = lock(&self.check_runs.listed);
            if ids.len() > REMEMBERED || listed.len() > REMEMBERED {
                ids.clear();
                listed.clear();
            }
            for run in latest.values() {
                let key = (repo.clone(), sha.clone(), run.name.clone());
                ids.insert(key, (run.id, run.status == "completed"));
            }
            listed.insert((repo.clone(), sha.clone()));
        }
        Ok(latest.into_values().map(as_status).collect())
    }

    pub(super) async fn set_state(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
    ) -> Result<(), GitHubError> {
        self.set_state_with_log(repo, sha, status, None).await
    }

    /// Sets a state; a check run also shows `log_tail` (the end of a failed job's log).
    pub(super) async fn set_state_with_log(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        status: &CommitStatus,
        log_tail: Option<&str>,
    ) -> Result<(), GitHubError> {
        if !self.github.is_app() {
            return self.github.set_status(repo, sha, status).await;
        }
        let run = check_run(status, log_tail);
        let key: RunKey = (repo.clone(), sha.clone(), status.context.clone());
        let listed = lock(&self.check_runs.listed).contains(&(repo.clone(), sha.clone()));
        if !listed {
            self.states(repo, sha).await?;
        }
        let known = lock(&self.check_runs.ids).get(&key).copied();
        let completed = run.status == "completed";
        let id = match known {
            // A new run of a finished context is a new check run.
            Some((id, was_completed)) if !was_completed || completed => {
                self.github.update_check_run(repo, id, &run).await?;
                id
            }
            _ => self.github.create_check_run(repo, sha, &run).await?,
        };
        lock(&self.check_runs.ids).insert(key, (id, completed));
        Ok(())
    }
}

/// A check run read back as the state it stands for.
fn as_status(run: CheckRun) -> CommitStatus {
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

/// The check run that shows `status`.
fn check_run(status: &CommitStatus, log_tail: Option<&str>) -> CheckRunWrite {
    let description = status.description.clone().unwrap_or_default();
    let action = |label: &str, identifier: &str, description: &str| CheckAction {
        label: label.into(),
        identifier: identifier.into(),
        description: description.into(),
    };
    let (run_status, conclusion, mut actions) = match status.state {
        StatusState::Pending if description == plan::MANUAL => ("queued", None, vec![]),
        StatusState::Pending => (
            if description.starts_with("In progress") {
                "in_progress"
            } else {
                "queued"
            },
            None,
            vec![action("Cancel", CANCEL, "Stop this run")],
        ),
        StatusState::Success => ("completed", Some("success"), vec![]),
        StatusState::Failure => (
            "completed",
            Some("failure"),
            vec![action("Retry", RETRY, "Run it again")],
        ),
        StatusState::Error => (
            "completed",
            Some(if description.starts_with("Cancelled") {
                "cancelled"
            } else {
                "failure"
            }),
            vec![action("Retry", RETRY, "Run it again")],
        ),
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
        external_id: contexts::job_of(status).map(str::to_string),
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

    fn status(state: StatusState, description: &str) -> CommitStatus {
        CommitStatus {
            context: "unit".into(),
            state,
            description: Some(description.into()),
            target_url: Some("http://x/logs/jabc".into()),
        }
    }

    #[test]
    fn every_state_reads_back_as_itself() {
        for (state, description) in [
            (StatusState::Pending, "Not yet tested"),
            (StatusState::Pending, "In progress [w1]"),
            (StatusState::Pending, plan::MANUAL),
            (StatusState::Success, "Success [w1]"),
            (StatusState::Failure, "Exit code 1 [w1]"),
            (StatusState::Error, "Cancelled by @alice"),
        ] {
            let s = status(state, description);
            let w = check_run(&s, None);
            let back = as_status(CheckRun {
                id: 1,
                name: w.name,
                status: w.status,
                conclusion: w.conclusion,
                details_url: w.details_url,
                title: w.output.title,
            });
            assert_eq!(back, s);
        }
    }

    #[test]
    fn failures_offer_retry_running_jobs_cancel_and_show_the_log() {
        let failed = check_run(
            &status(StatusState::Failure, "Exit code 2 [w1]"),
            Some("boom"),
        );
        assert_eq!(failed.actions[0].identifier, RETRY);
        assert_eq!(failed.external_id.as_deref(), Some("jabc"));
        assert_eq!(
            failed.output.text.as_deref(),
            Some("The end of the log:\n\n```\nboom\n```")
        );
        let running = check_run(&status(StatusState::Pending, "In progress [w1]"), None);
        assert_eq!(
            (
                running.status.as_str(),
                running.actions[0].identifier.as_str()
            ),
            ("in_progress", CANCEL)
        );
        assert!(
            check_run(&status(StatusState::Pending, plan::MANUAL), None)
                .actions
                .is_empty()
        );
    }
}
