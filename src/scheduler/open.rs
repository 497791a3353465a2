//! Opening refresh PRs (reference §12): one PR per due item, on the branch
//! `tickbot/refresh/<label>`, found by that branch and never duplicated.
//!
//! GitHub refuses a PR without commits, so the refresh is visible from the moment it starts: a
//! task item's branch gets an empty commit that says what is starting, and its PR holds the
//! checkbox that the normal task path (§5) runs with the PR's own code; an image's branch gets
//! the change of its stamp file, which gives the directory a new tree and so a new image, built
//! and tested on the PR like any change of it (§8). A branch that exists already (a pass that
//! died between pushing and opening) is reused as it is, never pushed over.

use super::due::Decision;
use super::failures::{self, FailureIssues};
use super::{IMAGE_STAMP, ItemPlan, ScheduleError, why_text};
use crate::checklist::{self, TaskItem, TaskState};
use crate::dispatch::replies::marker;
use crate::github::{GitHub, PullRequest, RecentPull, StatusState};
use crate::ids::{PrNumber, RepoName};
use crate::repo_clone::RepoClone;
use crate::repo_config::{REFRESH_BRANCH_PREFIX, RepoConfig, ScheduleDef, Target, format_duration};
use chrono::{DateTime, Utc};

/// What a pass did for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    Opened(PrNumber),
    AlreadyOpen(PrNumber),
    /// Its task ran and changed nothing: closed with a comment (not tried again this period).
    ClosedUnchanged(PrNumber),
    /// Not due, or waiting for its window.
    Waiting,
    /// Due, but the repository has as many refresh PRs as it may.
    Limited(Limit),
    /// `automerge`: everything required passed, and it was merged.
    Merged(PrNumber),
    /// `automerge`: GitHub refused the merge; the reason is on the PR.
    MergeRefused(PrNumber),
    /// The refresh on the open PR failed; the item's failure issue says so.
    Failing {
        pr: PrNumber,
        issue: PrNumber,
    },
    /// The default branch moved under it (a conflict, or behind with `automerge`): the
    /// refresh started again on the new tip.
    Restarted(PrNumber),
    /// It would start again, but its branch has a person's commits; the PR says so.
    RebaseRefused(PrNumber),
}

/// Whether a refresh PR's boxes are all ticked (and it has one).
pub(super) fn all_done(tasks: &[TaskItem]) -> bool {
    !tasks.is_empty() && tasks.iter().all(|t| t.state == TaskState::Done)
}

/// Which bound of `[schedule]` held an item back, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxOpen(u32),
    MaxPerHour(u32),
}

/// How many more refresh PRs a pass may open in one repository.
pub(super) struct Budget {
    limits: super::Limits,
    open: u32,
    opened_last_hour: u32,
}

impl Budget {
    pub(super) fn new(
        limits: super::Limits,
        open: &[PullRequest],
        recent: &[RecentPull],
        now: DateTime<Utc>,
    ) -> Budget {
        let refresh = |head: &str| head.starts_with(REFRESH_BRANCH_PREFIX);
        let hour_ago = now - chrono::Duration::hours(1);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let recently = |p: &&RecentPull| p.created_at.is_some_and(|t| t > hour_ago);
        Budget {
            limits,
            open: count(open.iter().filter(|p| refresh(&p.head_ref)).count()),
            opened_last_hour: count(
                recent
                    .iter()
                    .filter(|p| refresh(&p.head_ref))
                    .filter(recently)
                    .count(),
            ),
        }
    }

    fn exceeded(&self) -> Option<Limit> {
        if self.open >= self.limits.max_open {
            return Some(Limit::MaxOpen(self.limits.max_open));
        }
        (self.opened_last_hour >= self.limits.max_per_hour)
            .then_some(Limit::MaxPerHour(self.limits.max_per_hour))
    }

    fn opened(&mut self) {
        self.open += 1;
        self.opened_last_hour += 1;
    }
}

pub(super) struct Opener<'a> {
    pub github: &'a GitHub,
    pub repo: &'a RepoName,
    pub branch: &'a str,
    pub clone: &'a RepoClone,
    pub config: &'a RepoConfig,
    /// Author and committer of the start commit.
    pub author: (&'a str, &'a str),
    pub now: DateTime<Utc>,
    pub failures: FailureIssues<'a>,
}

impl Opener<'_> {
    /// Opens the refresh PR of `item` of `def` if it may start and has none open, or closes
    /// the open one whose task is done and changed nothing; `open` are the repository's open
    /// PRs.
    pub(super) async fn act(
        &self,
        def: &ScheduleDef,
        item: &str,
        plan: &ItemPlan,
        open: &[PullRequest],
        budget: &mut Budget,
    ) -> Result<Acted, ScheduleError> {
        let branch = def.branch(item);
        if let Some(pr) = open.iter().find(|pr| pr.head_ref == branch) {
            // A stale refresh starts again first: a failure may be fixed on the new tip.
            if let Some(acted) = self.rebase_if_stale(def, item, pr).await? {
                return Ok(acted);
            }
            let states = super::HeadStates::of(self.github, self.repo, &pr.head_sha);
            let attempt = failures::attempt(def, pr, &states).await?;
            if let Some(issue) = self.failures.record(def, item, pr, &attempt).await? {
                let pr = pr.number;
                return Ok(Acted::Failing { pr, issue });
            }
            if self.done_without_change(def, pr, &branch).await? {
                self.close_unchanged(def, pr, &plan.label).await?;
                return Ok(Acted::ClosedUnchanged(pr.number));
            }
            if def.automerge && self.passed(def, pr, &states).await? {
                return self.merge(pr).await;
            }
            return Ok(Acted::AlreadyOpen(pr.number));
        }
        let Decision::Due(why) = &plan.decision else {
            return Ok(Acted::Waiting);
        };
        if let Some(limit) = budget.exceeded() {
            return Ok(Acted::Limited(limit));
        }
        let reason = why_text(why, &format_duration(def.every));
        if self
            .clone
            .resolve(&format!("refs/heads/{branch}"))
            .await?
            .is_none()
        {
            let commit = self.start_commit(def, item, &plan.label).await?;
            self.clone
                .push(&format!("{commit}:refs/heads/{branch}"))
                .await?;
        }
        let (title, body) = self.describe(def, item, &plan.label, &reason);
        let pr = self
            .github
            .create_pull_request(self.repo, &title, &branch, self.branch, &body)
            .await?;
        budget.opened();
        tracing::info!(repo = %self.repo, item = %plan.label, pr = %pr.number, "refresh PR opened");
        Ok(Acted::Opened(pr.number))
    }

    /// Whether a task refresh PR's boxes are all ticked while its branch changes nothing
    /// against where it started (the clone's copy of the branch must be the PR's head: a
    /// result pushed since the clone was fetched is looked at in the next pass).
    async fn done_without_change(
        &self,
        def: &ScheduleDef,
        pr: &PullRequest,
        branch: &str,
    ) -> Result<bool, ScheduleError> {
        let done = all_done(&checklist::parse(&pr.body).tasks);
        if !done || !matches!(def.target, Target::Task { .. }) {
            return Ok(false);
        }
        let head = format!("refs/heads/{branch}");
        if self.clone.resolve(&head).await?.as_deref() != Some(pr.head_sha.0.as_str()) {
            return Ok(false);
        }
        let tip = format!("refs/heads/{}", self.branch);
        let base = self
            .clone
            .git()
            .args(["merge-base", &head, &tip])
            .ok()
            .await?;
        let base_tree = self
            .clone
            .resolve(&format!("{}^{{tree}}", base.stdout.trim()))
            .await?;
        let head_tree = self.clone.resolve(&format!("{head}^{{tree}}")).await?;
        Ok(base_tree.is_some() && base_tree == head_tree)
    }

    /// `automerge`'s condition: the refresh done (a task's boxes ticked, an image built:
    /// `image/<name>` succeeded) and every context of the schedule's `tests` succeeded, on the
    /// PR's current head.
    async fn passed(
        &self,
        def: &ScheduleDef,
        pr: &PullRequest,
        states: &super::HeadStates<'_>,
    ) -> Result<bool, ScheduleError> {
        let is_task = matches!(def.target, Target::Task { .. });
        if is_task && !all_done(&checklist::parse(&pr.body).tasks) {
            return Ok(false);
        }
        let states = states.get().await?;
        let succeeded = |context: &str| {
            (states.iter()).any(|s| s.context == context && s.state == StatusState::Success)
        };
        let built = match &def.target {
            Target::Image { name } => succeeded(&format!("image/{name}")),
            Target::Task { .. } => true,
        };
        Ok(built && def.tests.iter().all(|test| succeeded(test)))
    }

    /// Merges with the head as a guard; a refusal is said once per head on the PR, which stays
    /// open.
    async fn merge(&self, pr: &PullRequest) -> Result<Acted, ScheduleError> {
        let marker = marker(&format!("automerge:{}", pr.head_sha));
        if super::said(self.github, self.repo, pr.number, &marker).await? {
            return Ok(Acted::MergeRefused(pr.number));
        }
        match self
            .github
            .merge_pull_request(self.repo, pr.number, &pr.head_sha)
            .await?
        {
            Ok(()) => {
                tracing::info!(repo = %self.repo, pr = %pr.number, "refresh PR merged");
                Ok(Acted::Merged(pr.number))
            }
            Err(reason) => {
                let text = format!(
                    "{marker}\ntickbot did not merge this refresh at {}: GitHub refused: {reason}",
                    pr.head_sha.short()
                );
                self.github
                    .post_comment(self.repo, pr.number, &text)
                    .await?;
                Ok(Acted::MergeRefused(pr.number))
            }
        }
    }

    /// Says so on the PR and closes it; the closed PR is what keeps the item from being tried
    /// again before its period ends.
    async fn close_unchanged(
        &self,
        def: &ScheduleDef,
        pr: &PullRequest,
        label: &str,
    ) -> Result<(), ScheduleError> {
        let period = chrono::Duration::from_std(def.every).unwrap_or_default();
        let again = (self.now + period).format("%Y-%m-%d %H:%M UTC");
        let text = format!(
            "tickbot's refresh of `{label}` changed nothing, so there is nothing to land: closing \
             it. It is not tried again before {again} (every {}).",
            format_duration(def.every)
        );
        self.github
            .post_comment(self.repo, pr.number, &text)
            .await?;
        self.github.close_pull_request(self.repo, pr.number).await?;
        tracing::info!(repo = %self.repo, item = %label, pr = %pr.number, "unchanged refresh closed");
        Ok(())
    }

    /// The first commit of the refresh branch, on the default branch's tip.
    pub(super) async fn start_commit(
        &self,
        def: &ScheduleDef,
        item: &str,
        label: &str,
    ) -> Result<String, ScheduleError> {
        let tip = format!("refs/heads/{}", self.branch);
        let (name, email) = self.author;
        let tree = match &def.target {
            Target::Task { .. } => format!("{tip}^{{tree}}"),
            Target::Image { name } => self.stamped_tree(&tip, name).await?,
        };
        let message = format!(
            "Refresh {label}\n\nStarted by tickbot's scheduler for `{}`.\n",
            def.item_text(item)
        );
        let run = self
            .clone
            .git()
            .args(["commit-tree", &tree, "-p", &tip, "-m", &message])
            .author(name, email)
            .ok()
            .await?;
        Ok(run.stdout.trim().to_string())
    }

    /// The default branch's tree with the image's stamp file saying when this refresh began.
    async fn stamped_tree(&self, tip: &str, image: &str) -> Result<String, ScheduleError> {
        let context = self
            .config
            .images
            .get(image)
            .map_or(image.to_string(), |i| i.context.clone());
        let stamp = self
            .clone
            .dir()
            .join(format!("refresh-{}.stamp", std::process::id()));
        if let Err(e) = std::fs::write(&stamp, format!("{}\n", self.now.to_rfc3339())) {
            return Err(ScheduleError::Usage(format!(
                "cannot write {}: {e}",
                stamp.display()
            )));
        }
        let scratch = self.clone.scratch("refresh").map_err(|e| {
            ScheduleError::Usage(format!("cannot prepare a tree in the clone: {e}"))
        })?;
        let git = || scratch.git();
        let built = async {
            git().args(["read-tree", tip]).ok().await?;
            let blob = git().args(["hash-object", "-w"]).arg(&stamp).ok().await?;
            let entry = format!("100644,{},{context}/{IMAGE_STAMP}", blob.stdout.trim());
            git()
                .args(["update-index", "--add", "--cacheinfo", &entry])
                .ok()
                .await?;
            Ok::<_, ScheduleError>(
                git()
                    .arg("write-tree")
                    .ok()
                    .await?
                    .stdout
                    .trim()
                    .to_string(),
            )
        }
        .await;
        let _ = std::fs::remove_file(&stamp);
        built
    }

    /// The refresh PR's title and body: what it refreshes, why now, and the checkbox.
    fn describe(
        &self,
        def: &ScheduleDef,
        item: &str,
        label: &str,
        reason: &str,
    ) -> (String, String) {
        let title = format!("Refresh {}", def.item_text(item));
        let body = match &def.target {
            Target::Task { .. } => format!(
                "tickbot's scheduler refreshes `{label}`: {reason}.\n\n- [ ] {}\n\nThe task runs \
                 with this pull request's code and commits its result here; then the tests that \
                 apply run.\n",
                def.item_text(item)
            ),
            Target::Image { name } => format!(
                "tickbot's scheduler refreshes the image `{name}`: {reason}.\n\nThis changes only \
                 the image's stamp file, so the image is built again from its directory with \
                 current packages, and every job of this pull request runs in the new image.\n"
            ),
        };
        (title, body)
    }
}
