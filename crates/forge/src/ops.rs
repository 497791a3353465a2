//! Everything that changes the forge's state, shared by the Rust API (a person acting), the
//! REST API (the bot acting) and the control API. Each operation mutates the state under the
//! lock, releases it, and only then queues its webhook, so the event never races ahead of
//! what the REST API shows.

use super::Forge;
use super::git::Lease;
use super::state::{ForgeError, IssueComment, PullRequest, PullState, Repo, check_body};
use super::webhooks::{self, PushInfo, Scene, Subject};
use chrono::Utc;
use serde_json::{Value, json};
use tickbot_syntax::ids::{CommitSha, PrNumber, RepoName};

/// Fields a `PATCH` of a pull request (or its issue) may change.
#[derive(Debug, Clone, Default)]
pub struct PullPatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub state: Option<PullState>,
    pub base: Option<String>,
}

impl Forge {
    /// Creates a repository whose default branch holds `files`, committed by the owner.
    pub async fn create_repo(
        &self,
        repo: &RepoName,
        default_branch: &str,
        files: &[(&str, &str)],
    ) -> anyhow::Result<CommitSha> {
        {
            let mut st = self.state();
            if st.repos.contains_key(repo) {
                anyhow::bail!("repository {repo} already exists");
            }
            let id = st.next_id();
            let mut r = Repo::new(id, repo.clone(), default_branch);
            r.contributors.insert(repo.owner().to_string());
            st.repos.insert(repo.clone(), r);
        }
        let git = &self.inner.git;
        git.init(repo, default_branch).await?;
        let sha = git
            .commit(repo, None, files, "Initial commit", repo.owner())
            .await?;
        git.update_ref(
            repo,
            &format!("refs/heads/{default_branch}"),
            &sha,
            Lease::Absent,
        )
        .await?;
        self.sync_refs(repo, repo.owner()).await?;
        Ok(sha)
    }

    /// A person committing `files` to `branch` and pushing; a new branch starts at `from`.
    /// Announces it exactly like a push over HTTP (`push`, and `synchronize` for open PRs).
    pub async fn commit_files(
        &self,
        repo: &RepoName,
        branch: &str,
        from: Option<&str>,
        files: &[(&str, &str)],
        message: &str,
        author: &str,
    ) -> anyhow::Result<CommitSha> {
        let (current, start, is_default) = {
            let st = self.state();
            let r = st.repo(repo)?;
            let start = from.and_then(|f| r.branches.get(f).cloned());
            (
                r.branches.get(branch).cloned(),
                start,
                r.default_branch == branch,
            )
        };
        let parent = match (&current, from) {
            (Some(_), Some(_)) => anyhow::bail!("branch {branch} already exists in {repo}"),
            (Some(tip), None) => tip.clone(),
            (None, Some(f)) => start.ok_or_else(|| anyhow::anyhow!("no branch {f} in {repo}"))?,
            (None, None) => anyhow::bail!("no branch {branch} in {repo}; name one to start from"),
        };
        let git = &self.inner.git;
        let sha = git
            .commit(repo, Some(&parent), files, message, author)
            .await?;
        git.update_ref(
            repo,
            &format!("refs/heads/{branch}"),
            &sha,
            current.as_ref().map_or(Lease::Absent, Lease::At),
        )
        .await?;
        if is_default {
            self.state()
                .repo_mut(repo)?
                .contributors
                .insert(author.to_string());
        }
        self.sync_refs(repo, author).await?;
        Ok(sha)
    }

    /// Compares git's branches with the last known ones and announces what moved: a `push`
    /// per branch, and `synchronize` (with `refs/pull/N/head` updated) per open PR on it.
    pub(crate) async fn sync_refs(&self, repo: &RepoName, pusher: &str) -> anyhow::Result<()> {
        let _serial = self.inner.sync_lock.lock().await;
        let git = &self.inner.git;
        let now = git.branches(repo).await?;
        let (moved, synced) = {
            let mut st = self.state();
            let r = st.repo_mut(repo)?;
            let old = std::mem::replace(&mut r.branches, now.clone());
            let mut names: Vec<&String> = old.keys().chain(now.keys()).collect();
            names.sort();
            names.dedup();
            let moved: Vec<(String, Option<CommitSha>, Option<CommitSha>)> = names
                .into_iter()
                .filter(|b| old.get(*b) != now.get(*b))
                .map(|b| (b.clone(), old.get(b).cloned(), now.get(b).cloned()))
                .collect();
            if !moved.is_empty() {
                r.pushed_at = Utc::now();
            }
            let mut synced = Vec::new();
            for pr in r.pulls.values_mut() {
                let Some(new) = now.get(&pr.head_ref) else {
                    continue;
                };
                if pr.state == PullState::Open && *new != pr.head_sha {
                    synced.push((pr.number, pr.head_sha.clone(), new.clone()));
                    pr.head_sha = new.clone();
                    pr.updated_at = Utc::now();
                }
            }
            (moved, synced)
        };
        for (n, _, new) in &synced {
            git.update_ref(repo, &format!("refs/pull/{}/head", n.0), new, Lease::Any)
                .await?;
        }
        for (branch, before, after) in &moved {
            let commits = match after {
                Some(a) => git.commits_between(repo, before.as_ref(), a).await?,
                None => Vec::new(),
            };
            let forced = match (before, after) {
                (Some(b), Some(a)) => !git.is_ancestor(repo, b, a).await,
                _ => false,
            };
            let info = PushInfo {
                branch,
                before: before.as_ref().map(|s| s.0.as_str()),
                after: after.as_ref().map(|s| s.0.as_str()),
                forced,
                commits: &commits,
                pusher,
            };
            let payload = {
                let st = self.state();
                webhooks::push_event(&self.inner.urls, st.repo(repo)?, &info)
            };
            self.inner.hooks.send("push", &payload);
        }
        for (n, before, after) in synced {
            let extra = json!({ "before": before.0, "after": after.0 });
            self.send_event(repo, Subject::Pull(n), "synchronize", pusher, extra)?;
        }
        Ok(())
    }

    /// A person clicking Re-run on a check run (`check_run` `rerequested`).
    pub async fn rerun_check_run(&self, repo: &RepoName, id: u64, by: &str) -> anyhow::Result<()> {
        Ok(self.send_event(repo, Subject::CheckRun(id), "rerequested", by, json!({}))?)
    }

    /// A person clicking one of a check run's buttons (`check_run` `requested_action`); the
    /// run must offer that action.
    pub async fn click_check_run_action(
        &self,
        repo: &RepoName,
        id: u64,
        identifier: &str,
        by: &str,
    ) -> anyhow::Result<()> {
        let offered = (self.state().repo(repo)?.check_run(id)?.actions.iter())
            .any(|a| a["identifier"] == identifier);
        anyhow::ensure!(offered, "check run {id} offers no action {identifier:?}");
        let extra = json!({ "requested_action": { "identifier": identifier } });
        Ok(self.send_event(repo, Subject::CheckRun(id), "requested_action", by, extra)?)
    }

    /// Sends the webhook event with `action` about `subject` in `repo` as it is now.
    fn send_event(
        &self,
        repo: &RepoName,
        subject: Subject,
        action: &str,
        sender: &str,
        extra: Value,
    ) -> Result<(), ForgeError> {
        let (event, payload) = {
            let st = self.state();
            let scene = Scene {
                urls: &self.inner.urls,
                st: &st,
                repo: st.repo(repo)?,
            };
            webhooks::repo_event(&scene, subject, action, sender, extra)?
        };
        self.inner.hooks.send(event, &payload);
        Ok(())
    }

    /// A person opening a pull request from `head` into `base` (branches of `repo`).
    pub async fn open_pr(
        &self,
        repo: &RepoName,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        author: &str,
    ) -> anyhow::Result<PrNumber> {
        Ok(self
            .create_pull(repo, head, base, title, body, false, author)
            .await?)
    }

    /// A person marking a draft ready for review (`ready_for_review`).
    pub async fn mark_ready(&self, repo: &RepoName, n: PrNumber, by: &str) -> anyhow::Result<()> {
        {
            let mut st = self.state();
            let pr = st.repo_mut(repo)?.pull_mut(n.0)?;
            if !pr.draft {
                return Ok(());
            }
            pr.draft = false;
            pr.updated_at = Utc::now();
        }
        Ok(self.send_event(repo, Subject::Pull(n), "ready_for_review", by, json!({}))?)
    }

    /// A person opening a pull request, a draft when `draft` (no automatic test runs until it
    /// is ready for review); also what the REST API's `POST …/pulls` does.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_pull(
        &self,
        repo: &RepoName,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
        author: &str,
    ) -> Result<PrNumber, ForgeError> {
        check_body(body, "Issue")?;
        // GitHub accepts `owner:branch` for head; only same-repository heads exist here.
        let head = head
            .split_once(':')
            .map_or(head, |(_, branch)| branch)
            .to_string();
        let (number, sha) = {
            let mut st = self.state();
            let id = st.next_id();
            let r = st.repo_mut(repo)?;
            let invalid = |field| ForgeError::Validation {
                resource: "PullRequest",
                field,
                code: "invalid",
                message: String::new(),
            };
            let sha = r.branches.get(&head).cloned().ok_or(invalid("head"))?;
            if !r.branches.contains_key(base) {
                return Err(invalid("base"));
            }
            let dup = r
                .pulls
                .values()
                .any(|p| p.state == PullState::Open && p.head_ref == head && p.base_ref == base);
            if dup {
                return Err(ForgeError::Unprocessable(format!(
                    "A pull request already exists for {}:{head}.",
                    repo.owner()
                )));
            }
            let number = PrNumber(r.next_number());
            let now = Utc::now();
            r.pulls.insert(
                number.0,
                PullRequest {
                    number,
                    id,
                    title: title.to_string(),
                    body: body.to_string(),
                    author: author.to_string(),
                    head_ref: head,
                    head_sha: sha.clone(),
                    base_ref: base.to_string(),
                    state: PullState::Open,
                    draft,
                    labels: Vec::new(),
                    created_at: now,
                    updated_at: now,
                    closed_at: None,
                    merged: None,
                },
            );
            (number, sha)
        };
        self.inner
            .git
            .update_ref(
                repo,
                &format!("refs/pull/{}/head", number.0),
                &sha,
                Lease::Any,
            )
            .await
            .map_err(|e| ForgeError::Git(format!("{e:#}")))?;
        self.send_event(repo, Subject::Pull(number), "opened", author, json!({}))?;
        Ok(number)
    }

    /// A person editing the description; sends `edited` with `changes.body.from`.
    pub async fn edit_pr_body(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        body: &str,
        editor: &str,
    ) -> anyhow::Result<()> {
        let patch = PullPatch {
            body: Some(body.to_string()),
            ..PullPatch::default()
        };
        Ok(self.update_pull(repo, pr, patch, editor)?)
    }

    pub async fn close_pr(&self, repo: &RepoName, pr: PrNumber, by: &str) -> anyhow::Result<()> {
        let patch = PullPatch {
            state: Some(PullState::Closed),
            ..PullPatch::default()
        };
        Ok(self.update_pull(repo, pr, patch, by)?)
    }

    /// Merges the PR as GitHub's default method does (a merge commit on its base branch), if
    /// its head is still `sha` when given; announces the base's `push` and the PR's `closed`
    /// (with `merged: true`). Returns the merge commit.
    pub async fn merge_pr(
        &self,
        repo: &RepoName,
        n: PrNumber,
        sha: Option<&CommitSha>,
        by: &str,
    ) -> Result<CommitSha, ForgeError> {
        let (base_ref, base, head, title) = {
            let st = self.state();
            let r = st.repo(repo)?;
            let pr = r.pull(n.0)?;
            if pr.state != PullState::Open {
                return Err(ForgeError::NotMergeable(
                    "Pull Request is not mergeable".into(),
                ));
            }
            if sha.is_some_and(|s| *s != pr.head_sha) {
                return Err(ForgeError::HeadModified(
                    "Head branch was modified. Review and try the merge again.".into(),
                ));
            }
            let base = r
                .branches
                .get(&pr.base_ref)
                .cloned()
                .ok_or(ForgeError::NotFound)?;
            (
                pr.base_ref.clone(),
                base,
                pr.head_sha.clone(),
                pr.title.clone(),
            )
        };
        let git = &self.inner.git;
        let message = format!(
            "Merge pull request #{} from {}\n\n{title}\n",
            n.0,
            head.short()
        );
        let merge = git
            .merge_commit(repo, &base, &head, &message, by)
            .await
            .map_err(|e| ForgeError::Git(e.to_string()))?
            .ok_or_else(|| ForgeError::NotMergeable("Pull Request is not mergeable".into()))?;
        git.update_ref(
            repo,
            &format!("refs/heads/{base_ref}"),
            &merge,
            Lease::At(&base),
        )
        .await
        .map_err(|_| ForgeError::NotMergeable("Base branch was modified.".into()))?;
        {
            let mut st = self.state();
            let pr = st.repo_mut(repo)?.pull_mut(n.0)?;
            pr.state = PullState::Closed;
            pr.closed_at = Some(Utc::now());
            pr.updated_at = Utc::now();
            pr.merged = Some((merge.clone(), by.to_string()));
        }
        self.sync_refs(repo, by)
            .await
            .map_err(|e| ForgeError::Git(e.to_string()))?;
        self.send_event(repo, Subject::Pull(n), "closed", by, json!({}))?;
        Ok(merge)
    }

    pub async fn reopen_pr(&self, repo: &RepoName, pr: PrNumber, by: &str) -> anyhow::Result<()> {
        let patch = PullPatch {
            state: Some(PullState::Open),
            ..PullPatch::default()
        };
        Ok(self.update_pull(repo, pr, patch, by)?)
    }

    /// Applies a patch (last writer wins: GitHub has no `If-Match`) and announces it:
    /// `edited` with `changes` when title, body or base changed, `closed`/`reopened` on state.
    pub fn update_pull(
        &self,
        repo: &RepoName,
        n: PrNumber,
        patch: PullPatch,
        actor: &str,
    ) -> Result<(), ForgeError> {
        if let Some(body) = &patch.body {
            check_body(body, "Issue")?;
        }
        let (changes, state_change) = {
            let mut st = self.state();
            let r = st.repo_mut(repo)?;
            if let Some(base) = &patch.base
                && !r.branches.contains_key(base)
            {
                return Err(ForgeError::Validation {
                    resource: "PullRequest",
                    field: "base",
                    code: "invalid",
                    message: String::new(),
                });
            }
            let pr = r.pull_mut(n.0)?;
            let mut changes = serde_json::Map::new();
            if let Some(title) = patch.title.filter(|t| *t != pr.title) {
                let from = std::mem::replace(&mut pr.title, title);
                changes.insert("title".into(), json!({ "from": from }));
            }
            if let Some(body) = patch.body.filter(|b| *b != pr.body) {
                let from = std::mem::replace(&mut pr.body, body);
                changes.insert("body".into(), json!({ "from": from }));
            }
            if let Some(base) = patch.base.filter(|b| *b != pr.base_ref) {
                let from = std::mem::replace(&mut pr.base_ref, base);
                changes.insert("base".into(), json!({ "ref": { "from": from } }));
            }
            let state_change = patch.state.filter(|s| *s != pr.state);
            if let Some(s) = state_change {
                pr.state = s;
                pr.closed_at = (s == PullState::Closed).then(Utc::now);
            }
            if !changes.is_empty() || state_change.is_some() {
                pr.updated_at = Utc::now();
            }
            (changes, state_change)
        };
        if !changes.is_empty() {
            let extra = json!({ "changes": changes });
            self.send_event(repo, Subject::Pull(n), "edited", actor, extra)?;
        }
        match state_change {
            Some(PullState::Closed) => {
                self.send_event(repo, Subject::Pull(n), "closed", actor, json!({}))?
            }
            Some(PullState::Open) => {
                self.send_event(repo, Subject::Pull(n), "reopened", actor, json!({}))?
            }
            None => {}
        }
        Ok(())
    }

    /// A person commenting on a pull request; returns the comment id.
    pub async fn comment(
        &self,
        repo: &RepoName,
        pr: PrNumber,
        body: &str,
        author: &str,
    ) -> anyhow::Result<u64> {
        Ok(self.add_comment(repo, pr, body, author)?)
    }

    pub(crate) fn add_comment(
        &self,
        repo: &RepoName,
        n: PrNumber,
        body: &str,
        author: &str,
    ) -> Result<u64, ForgeError> {
        check_body(body, "IssueComment")?;
        let id = {
            let mut st = self.state();
            let id = st.next_id();
            let r = st.repo_mut(repo)?;
            if !r.has_issue_or_pull(n.0) {
                return Err(ForgeError::NotFound);
            }
            let now = Utc::now();
            r.comments.push(IssueComment {
                id,
                issue: n,
                author: author.to_string(),
                body: body.to_string(),
                reactions: Vec::new(),
                created_at: now,
                updated_at: now,
            });
            id
        };
        self.send_event(repo, Subject::Comment(id), "created", author, json!({}))?;
        Ok(id)
    }

    pub(crate) fn edit_comment(
        &self,
        repo: &RepoName,
        id: u64,
        body: &str,
        actor: &str,
    ) -> Result<(), ForgeError> {
        check_body(body, "IssueComment")?;
        let from = {
            let mut st = self.state();
            let c = st.repo_mut(repo)?.comment_mut(id)?;
            c.updated_at = Utc::now();
            std::mem::replace(&mut c.body, body.to_string())
        };
        if from != body {
            let extra = json!({ "changes": { "body": { "from": from } } });
            self.send_event(repo, Subject::Comment(id), "edited", actor, extra)?;
        }
        Ok(())
    }
}
