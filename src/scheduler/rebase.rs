//! Keeping an open refresh PR landable (reference §12). When the default branch moved and the
//! refresh conflicts with it (or, with `automerge`, only falls behind), the refresh starts
//! again on the new tip: its branch is replaced by a new first commit there, pushed only if
//! GitHub's branch is still the head the pass looked at, and a task's box is unticked so the
//! normal task path makes the result again with the new code. A branch with a commit by
//! anyone but tickbot is never replaced: the PR says why, once per head, and a person rebases.

use super::ScheduleError;
use super::open::{Acted, Opener};
use crate::checklist;
use crate::dispatch::replies::marker;
use crate::github::PullRequest;
use crate::ids::CommitSha;
use crate::repo_config::{ScheduleDef, Target};

/// Why a refresh PR needs to start again.
enum Stale {
    Conflicts,
    Behind,
}

impl Opener<'_> {
    /// Starts the refresh of `item` on `pr` again on the default branch's tip if it conflicts
    /// with it (or is behind, with `automerge`); `None` when it is current enough.
    pub(super) async fn rebase_if_stale(
        &self,
        def: &ScheduleDef,
        item: &str,
        pr: &PullRequest,
    ) -> Result<Option<Acted>, ScheduleError> {
        let branch = def.branch(item);
        let Some(stale) = self.staleness(def, pr, &branch).await? else {
            return Ok(None);
        };
        let tip = format!("refs/heads/{}", self.branch);
        let head = &pr.head_sha.0;
        let committers = (self.clone.git())
            .args(["log", "--format=%ce"])
            .arg(format!("{tip}..{head}"))
            .ok()
            .await?;
        let (_, email) = self.author;
        if committers.stdout.lines().any(|c| c != email) {
            return self.refuse_rebase(pr, &stale).await;
        }
        let body = match &def.target {
            Target::Task { .. } => {
                let listed = checklist::parse(&pr.body);
                let unticked = listed
                    .tasks
                    .iter()
                    .try_fold(pr.body.clone(), |body, t| checklist::mark_undone(&body, t));
                Some(unticked.unwrap_or_else(|| pr.body.clone()))
            }
            Target::Image { .. } => None,
        };
        // The box first: the dispatcher plans the new head's tasks when the push arrives.
        if let Some(body) = body.filter(|b| *b != pr.body) {
            self.github.set_pr_body(self.repo, pr.number, &body).await?;
        }
        let commit = self.start_commit(def, item, &def.label(item)).await?;
        self.clone.push_replacing(&branch, &commit, head).await?;
        let tip_sha = CommitSha(self.clone.resolve(&tip).await?.unwrap_or_default());
        let why = match stale {
            Stale::Conflicts => "this refresh conflicted with it",
            Stale::Behind => "this refresh, which tickbot merges by itself, fell behind it",
        };
        let text = format!(
            "`{}` moved to {} and {why}, so tickbot started the refresh again there (the \
             earlier attempt was {}).",
            self.branch,
            tip_sha.short(),
            pr.head_sha.short()
        );
        self.github
            .post_comment(self.repo, pr.number, &text)
            .await?;
        tracing::info!(repo = %self.repo, pr = %pr.number, "refresh started again on the new tip");
        Ok(Some(Acted::Restarted(pr.number)))
    }

    /// Whether the clone's copy of the PR's branch (it must be the PR's head) conflicts with
    /// the default branch's tip, or is behind it when that matters (`automerge`).
    async fn staleness(
        &self,
        def: &ScheduleDef,
        pr: &PullRequest,
        branch: &str,
    ) -> Result<Option<Stale>, ScheduleError> {
        let head = format!("refs/heads/{branch}");
        if self.clone.resolve(&head).await?.as_deref() != Some(pr.head_sha.0.as_str()) {
            return Ok(None); // pushed since the clone was fetched: the next pass looks
        }
        let tip = format!("refs/heads/{}", self.branch);
        let current = (self.clone.git())
            .args(["merge-base", "--is-ancestor", &tip, &head])
            .run()
            .await?;
        if current.success() {
            return Ok(None);
        }
        // Exit 1: the merge has conflicts (other codes are errors).
        let merge = (self.clone.git())
            .args(["merge-tree", "--write-tree", "--name-only", &tip, &head])
            .run()
            .await?;
        match merge.code {
            Some(1) => Ok(Some(Stale::Conflicts)),
            Some(0) if def.automerge => Ok(Some(Stale::Behind)),
            Some(0) => Ok(None),
            _ => Err(merge.failure().into()),
        }
    }

    /// Says once per head why tickbot leaves a stale refresh with a person's commits alone.
    async fn refuse_rebase(
        &self,
        pr: &PullRequest,
        stale: &Stale,
    ) -> Result<Option<Acted>, ScheduleError> {
        let marker = marker(&format!("rebase:{}", pr.head_sha));
        if !super::said(self.github, self.repo, pr.number, &marker).await? {
            let why = match stale {
                Stale::Conflicts => "conflicts with",
                Stale::Behind => "is behind",
            };
            let text = format!(
                "{marker}\nThis refresh {why} `{}`, but tickbot does not start it again: its \
                 branch has commits by someone else, which it never overwrites. Rebase it, or \
                 close it and the next due refresh starts afresh.",
                self.branch
            );
            self.github
                .post_comment(self.repo, pr.number, &text)
                .await?;
        }
        Ok(Some(Acted::RebaseRefused(pr.number)))
    }
}
