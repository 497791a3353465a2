//! Failures have one home (reference §12): one issue per failing item, titled `Refresh of
//! <item> is failing`, opened at its first failed attempt, commented on at each further one,
//! and closed with a comment when a refresh of the item next succeeds. An attempt is one run
//! of the refresh's job (its log link, or the head when there is none); the issue and its
//! comments carry a hidden key per attempt, so a pass that sees the same attempt again says
//! nothing twice, and the issue is found by its title, so a restart loses nothing.

use super::ScheduleError;
use crate::checklist::{self, TaskState};
use crate::dispatch::replies::marker;
use crate::github::{GitHub, GitHubError, OpenIssue, PullRequest, StatusState};
use crate::ids::{PrNumber, RepoName};
use crate::repo_config::{ScheduleDef, Target};
use tokio::sync::OnceCell;

/// How the refresh on an open refresh PR's head stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Still to run, or running.
    Unsettled,
    Succeeded,
    /// Its job failed: the state's description and the job's log.
    Failed {
        reason: String,
        log: Option<String>,
    },
}

/// Whether the refresh job of `pr` (a refresh PR of `def`) failed or succeeded at its head: a
/// task item's box and its context, or an image's build context (`image/<name>`).
pub(super) async fn attempt(
    def: &ScheduleDef,
    pr: &PullRequest,
    states: &super::HeadStates<'_>,
) -> Result<Attempt, GitHubError> {
    let context = match &def.target {
        Target::Task { .. } => {
            let tasks = checklist::parse(&pr.body).tasks;
            if super::open::all_done(&tasks) {
                return Ok(Attempt::Succeeded);
            }
            match tasks.iter().find(|t| t.state == TaskState::Failed) {
                Some(task) => task.context(),
                None => return Ok(Attempt::Unsettled),
            }
        }
        Target::Image { name } => format!("image/{name}"),
    };
    let states = states.get().await?;
    let Some(state) = states.iter().find(|s| s.context == context) else {
        return Ok(Attempt::Unsettled);
    };
    Ok(match state.state {
        StatusState::Success if matches!(def.target, Target::Image { .. }) => Attempt::Succeeded,
        StatusState::Failure | StatusState::Error => Attempt::Failed {
            reason: (state.description.clone()).unwrap_or_else(|| "it failed".into()),
            log: state.target_url.clone(),
        },
        _ => Attempt::Unsettled,
    })
}

/// The repository's open issues, read once per pass and only if an attempt settled.
pub(super) struct FailureIssues<'a> {
    github: &'a GitHub,
    repo: &'a RepoName,
    open: OnceCell<Vec<OpenIssue>>,
}

impl<'a> FailureIssues<'a> {
    pub(super) fn new(github: &'a GitHub, repo: &'a RepoName) -> Self {
        FailureIssues {
            github,
            repo,
            open: OnceCell::new(),
        }
    }

    async fn find(&self, title: &str) -> Result<Option<&OpenIssue>, GitHubError> {
        let open = self
            .open
            .get_or_try_init(|| self.github.open_issues(self.repo))
            .await?;
        Ok(open.iter().find(|i| i.title == title))
    }

    /// Records a settled attempt of `item` of `def` on `pr`: a failure opens or updates its
    /// issue, a success closes it. Returns the issue of a failed attempt.
    pub(super) async fn record(
        &self,
        def: &ScheduleDef,
        item: &str,
        pr: &PullRequest,
        attempt: &Attempt,
    ) -> Result<Option<PrNumber>, ScheduleError> {
        let title = def.failure_title(item);
        let item = &def.item_text(item);
        match attempt {
            Attempt::Unsettled => Ok(None),
            Attempt::Succeeded => {
                if let Some(issue) = self.find(&title).await?.map(|i| i.number) {
                    let text = format!(
                        "The refresh of `{item}` succeeded in #{} at {}: closing.",
                        pr.number.0,
                        pr.head_sha.short()
                    );
                    self.github.post_comment(self.repo, issue, &text).await?;
                    self.github.close_issue(self.repo, issue).await?;
                    tracing::info!(repo = %self.repo, %item, %issue, "refresh recovered; issue closed");
                }
                Ok(None)
            }
            Attempt::Failed { reason, log } => {
                let key = marker(&format!(
                    "refresh-attempt:{}",
                    log.as_deref().unwrap_or(&pr.head_sha.0)
                ));
                let line = attempt_line(pr, reason, log.as_deref());
                let Some(issue) = self.find(&title).await? else {
                    let body = format!(
                        "{key}\ntickbot's scheduled refresh of `{item}` is failing.\n\n{line}\n\n\
                         Each further failed attempt is added here; the issue is closed when a \
                         refresh of `{item}` next succeeds.\n"
                    );
                    let issue = self.github.create_issue(self.repo, &title, &body).await?;
                    tracing::info!(repo = %self.repo, %item, %issue, "refresh failing; issue opened");
                    return Ok(Some(issue));
                };
                if issue.body.contains(&key) {
                    return Ok(Some(issue.number));
                }
                let issue = issue.number;
                if super::said(self.github, self.repo, issue, &key).await? {
                    return Ok(Some(issue));
                }
                let text = format!("{key}\nFailed again. {line}");
                self.github.post_comment(self.repo, issue, &text).await?;
                tracing::info!(repo = %self.repo, %item, %issue, "refresh failed again; issue updated");
                Ok(Some(issue))
            }
        }
    }
}

/// One attempt, as the issue says it.
fn attempt_line(pr: &PullRequest, reason: &str, log: Option<&str>) -> String {
    let at = format!("#{} at {}", pr.number.0, pr.head_sha.short());
    match log {
        Some(log) => format!("Attempt in {at}: {reason} ([log]({log}))"),
        None => format!("Attempt in {at}: {reason}"),
    }
}
