//! Test contexts (design §4 `[tests]`, §6, §7): queued for a PR's head on `opened`,
//! `reopened`, `synchronize` and `ready_for_review` (drafts wait), or by `/test` and
//! `/retest`; run by the workers from the PR's code; cancelled when a push supersedes the head
//! or the PR is closed.
//!
//! Like tasks, everything is re-derived from the head commit's statuses: a context with a
//! status at this head was queued already (a redelivered event queues nothing twice), its
//! status's `target_url` names its job (`…/logs/<job>`), which is how a cancellation finds
//! the jobs to stop without the dispatcher remembering anything.

use super::contexts::{self, job_of};
use super::{APPROVAL_CONTEXT, ConfigAt, DispatchError, Dispatcher, plan, replies};
use crate::commands::ContextSpec;
use crate::github::{CommitStatus, GitHubError, PullRequest, StatusState};
use crate::ids::{CommitSha, RepoName};
use crate::job::{self, Cancel, Checkout, Job, JobKind};
use crate::repo_config::{RepoConfig, TestDef};
use std::sync::Arc;

/// What asked for test runs.
pub(super) enum Trigger<'a> {
    /// A PR event or the reconcile at start: the contexts that apply and have not run at this
    /// head. Drafts and untrusted authors' PRs wait.
    Automatic,
    /// `/test` alone: the contexts that apply, run again.
    Defaults,
    /// `/test ctx…`.
    Named(&'a [ContextSpec]),
    /// `/retest`: the failed and errored test contexts of this head.
    Failed,
}

/// One context to queue, resolved: which test, which tree, and what else is checked out.
struct Planned {
    /// The status context: the name as asked for, with its `@…` suffixes.
    context: String,
    test: TestDef,
    main: Option<Checkout>,
    checkouts: Vec<Checkout>,
    note: Option<String>,
}

impl Planned {
    /// `test` run on the PR's own tree, nothing else checked out.
    fn plain(context: String, test: &TestDef) -> Planned {
        Planned {
            context,
            test: test.clone(),
            main: None,
            checkouts: Vec::new(),
            note: None,
        }
    }
}

impl Dispatcher {
    /// Queues the test contexts `trigger` asks for. Returns what a person who asked should be
    /// told (unknown contexts, nothing to retest, …); empty for automatic runs.
    pub(super) async fn plan_tests(
        &self,
        pr: &PullRequest,
        trigger: Trigger<'_>,
    ) -> Result<Vec<String>, DispatchError> {
        let automatic = matches!(trigger, Trigger::Automatic);
        let mut notes = Vec::new();
        if !pr.state_open {
            if !automatic {
                notes.push("this pull request is closed; reopen it to test it".into());
            }
            return Ok(notes);
        }
        if automatic && pr.draft {
            return Ok(notes);
        }
        let config = match self.config_at(&pr.repo, &pr.head_sha).await? {
            ConfigAt::Valid(c) => c,
            ConfigAt::Missing => {
                if !automatic {
                    notes.push(format!(
                        "there is no `.tickbot.toml` at {}, so there are no test contexts",
                        pr.head_sha.short()
                    ));
                }
                return Ok(notes);
            }
            ConfigAt::Invalid(e) => {
                let text = replies::bad_config(&pr.head_sha, &e);
                self.post_once(pr, &format!("bad-config:{}", pr.head_sha), &text)
                    .await?;
                if !automatic {
                    notes.push(format!(
                        "`.tickbot.toml` at {} is invalid (see the comment above)",
                        pr.head_sha.short()
                    ));
                }
                return Ok(notes);
            }
        };
        if automatic && !config.tests.values().any(|t| t.default) {
            return Ok(notes); // nothing could apply: not even a status read
        }
        let statuses = self.states(&pr.repo, &pr.head_sha).await?;
        let mut planned = Vec::new();
        match trigger {
            Trigger::Automatic | Trigger::Defaults => {
                let (run, skipped) = self.applicable(pr, &config).await?;
                if run.is_empty() && !automatic {
                    notes.push(match skipped.is_empty() {
                        true => "`.tickbot.toml` defines no test contexts".into(),
                        false => format!(
                            "no test context applies to this pull request ({})",
                            skipped
                                .iter()
                                .map(|s| format!("`{}`: {}", s.context, s.reason))
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    });
                }
                for name in run {
                    if let Some(test) = config.tests.get(&name) {
                        planned.push(Planned::plain(name, test));
                    }
                }
            }
            Trigger::Named(specs) => {
                for spec in specs {
                    match self.resolve(pr, &config, spec).await? {
                        Ok(p) => planned.push(p),
                        Err(refusal) => notes.push(refusal),
                    }
                }
            }
            Trigger::Failed => {
                let checklist = crate::checklist::parse(&pr.body);
                let failed: Vec<&CommitStatus> = statuses
                    .iter()
                    .filter(|s| contexts::is_failed(s) && s.context != APPROVAL_CONTEXT)
                    .filter(|s| !checklist.tasks.iter().any(|t| t.context() == s.context))
                    .collect();
                if failed.is_empty() {
                    notes.push(format!(
                        "nothing failed at {} to retest; `/test <context>` runs a context again",
                        pr.head_sha.short()
                    ));
                }
                for s in failed {
                    match crate::commands::parse_context(&s.context) {
                        Ok(spec) => match self.resolve(pr, &config, &spec).await? {
                            Ok(p) => planned.push(p),
                            Err(refusal) => notes.push(refusal),
                        },
                        Err(_) => notes.push(format!(
                            "`{}` is not a test context of this repository",
                            s.context
                        )),
                    }
                }
            }
        }
        if automatic {
            let approved = statuses
                .iter()
                .any(|s| s.context == APPROVAL_CONTEXT && s.state == StatusState::Success);
            let verdict = self.author_trust(pr).await?;
            if !verdict.trusted && !approved {
                let waiting: Vec<&str> = planned
                    .iter()
                    .map(|p| p.context.as_str())
                    .filter(|c| !statuses.iter().any(|s| s.context == *c))
                    .collect();
                self.ask_for_approval(pr, &verdict.reason, &waiting).await?;
                return Ok(notes);
            }
        }
        for p in planned {
            let existing = statuses.iter().find(|s| s.context == p.context);
            if existing.is_some_and(contexts::is_active) {
                if !automatic {
                    notes.push(format!("`{}` is queued or running already", p.context));
                }
                continue;
            }
            if automatic && existing.is_some_and(|s| s.description.as_deref() != Some(plan::MANUAL))
            {
                continue; // ran at this head already
            }
            if !self.settings.pools.contains(&p.test.pool) {
                notes.push(format!(
                    "`{}` runs in pool `{}`, which has no workers here (pools: {})",
                    p.context,
                    p.test.pool,
                    self.settings.pools.join(", ")
                ));
                continue;
            }
            let previous = existing
                .filter(|s| s.state != StatusState::Pending)
                .and_then(job_of);
            self.queue_test(pr, p, previous).await?;
        }
        Ok(notes)
    }

    /// The contexts that apply to this PR and why the others don't; reads the changed files
    /// only when a context filters by path.
    pub(super) async fn applicable(
        &self,
        pr: &PullRequest,
        config: &RepoConfig,
    ) -> Result<(Vec<String>, Vec<contexts::Skipped>), GitHubError> {
        let changed = match contexts::filters_paths(config) {
            true => Some(self.github.changed_files(&pr.repo, pr.number).await?),
            false => None,
        };
        Ok(contexts::automatic(
            config,
            &pr.base_ref,
            changed.as_deref(),
        ))
    }

    /// A `/test` context made concrete, or the reason it cannot run.
    async fn resolve(
        &self,
        pr: &PullRequest,
        config: &Arc<RepoConfig>,
        spec: &ContextSpec,
    ) -> Result<Result<Planned, String>, DispatchError> {
        let context = spec.to_string();
        if let Some((project, branch)) = &spec.project {
            return self
                .resolve_foreign(pr, spec, project, branch.as_deref())
                .await;
        }
        let Some(test) = config.tests.get(&spec.context) else {
            return Ok(Err(format!(
                "unknown context `{}`: {}",
                spec.context,
                contexts::did_you_mean(config, &spec.context)
            )));
        };
        let mut planned = Planned::plain(context, test);
        if let Some((dep, number)) = &spec.dep_pr {
            let Some(def) = config.deps.get(dep) else {
                let known: Vec<String> = config.deps.keys().map(|k| format!("`{k}`")).collect();
                return Ok(Err(format!(
                    "`{}`: `{dep}` is not a dependency in `[deps]` of `.tickbot.toml` ({})",
                    planned.context,
                    if known.is_empty() {
                        "it defines none".to_string()
                    } else {
                        format!("known: {}", known.join(", "))
                    }
                )));
            };
            let Ok(dep_repo) = def.repo.parse::<RepoName>() else {
                return Ok(Err(format!(
                    "`[deps.{dep}] repo = \"{}\"` is not `owner/name`",
                    def.repo
                )));
            };
            let dep_pr = match self
                .github
                .pull_request(&dep_repo, crate::ids::PrNumber(*number))
                .await
            {
                Ok(p) => p,
                Err(GitHubError::NotFound { .. }) => {
                    return Ok(Err(format!(
                        "`{}`: {dep_repo} has no pull request #{number}",
                        planned.context
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let Some(clone_url) = dep_pr.head_clone_url.clone() else {
                return Ok(Err(format!(
                    "`{}`: the branch of {dep_repo}#{number} was deleted",
                    planned.context
                )));
            };
            planned.note = Some(format!("{dep}#{number} at {}", dep_pr.head_sha.short()));
            planned.checkouts.push(Checkout {
                repo: dep_repo,
                clone_url,
                git_ref: dep_pr.head_ref.clone(),
                sha: dep_pr.head_sha.clone(),
                path: def.path.clone(),
            });
        }
        Ok(Ok(planned))
    }

    /// `ctx@owner/repo[/branch]`: that project's context, from its branch, run with this PR's
    /// code where that project's `[deps]` puts this repository.
    async fn resolve_foreign(
        &self,
        pr: &PullRequest,
        spec: &ContextSpec,
        project: &str,
        branch: Option<&str>,
    ) -> Result<Result<Planned, String>, DispatchError> {
        let context = spec.to_string();
        let Ok(other) = project.parse::<RepoName>() else {
            return Ok(Err(format!("`{context}`: `{project}` is not `owner/repo`")));
        };
        let Some(info) = self.github.repository(&other).await? else {
            return Ok(Err(format!(
                "`{context}`: tickbot cannot see the repository {other}"
            )));
        };
        let branch = branch.unwrap_or(&info.default_branch).to_string();
        let Some(sha) = self.github.commit_of(&other, &branch).await? else {
            return Ok(Err(format!(
                "`{context}`: {other} has no branch `{branch}`"
            )));
        };
        let config = match self.config_at(&other, &sha).await? {
            ConfigAt::Valid(c) => c,
            ConfigAt::Missing => {
                return Ok(Err(format!(
                    "`{context}`: {other} has no `.tickbot.toml` on `{branch}`"
                )));
            }
            ConfigAt::Invalid(e) => {
                return Ok(Err(format!(
                    "`{context}`: the `.tickbot.toml` of {other} on `{branch}` is invalid: {e}"
                )));
            }
        };
        let Some(test) = config.tests.get(&spec.context) else {
            return Ok(Err(format!(
                "`{context}`: unknown context `{}` in {other}: {}",
                spec.context,
                contexts::did_you_mean(&config, &spec.context)
            )));
        };
        let this = pr.repo.to_string();
        let Some(dep) = config
            .deps
            .values()
            .find(|d| d.repo.eq_ignore_ascii_case(&this))
        else {
            return Ok(Err(format!(
                "`{context}`: {other} has no `[deps]` entry with `repo = \"{this}\"` on `{branch}`, so it does not say where this pull request's code goes"
            )));
        };
        let Some(clone_url) = pr.head_clone_url.clone() else {
            return Ok(Err(replies::head_repo_gone().to_string()));
        };
        Ok(Ok(Planned {
            context,
            test: test.clone(),
            main: Some(Checkout {
                repo: other.clone(),
                clone_url: info.clone_url,
                git_ref: branch.clone(),
                sha: sha.clone(),
                path: String::new(),
            }),
            checkouts: vec![Checkout {
                repo: pr.repo.clone(),
                clone_url,
                git_ref: pr.head_ref.clone(),
                sha: pr.head_sha.clone(),
                path: dep.path.clone(),
            }],
            note: Some(format!("{other}/{branch} at {}", sha.short())),
        }))
    }

    /// Publishes a test job, then sets its `Not yet tested` status (see the module docs of
    /// [`super`] for why in this order). Tests get no secrets and no network.
    async fn queue_test(
        &self,
        pr: &PullRequest,
        p: Planned,
        previous: Option<&str>,
    ) -> Result<(), DispatchError> {
        let Some(clone_url) = pr.head_clone_url.clone() else {
            let text = replies::head_repo_gone();
            self.post_once(pr, &format!("head-gone:{}", pr.head_sha), text)
                .await?;
            return Ok(());
        };
        let job_id = job::job_id(&pr.repo, pr.number, &pr.head_sha, &p.context, 0, previous);
        let job = Job {
            schema: job::JOB_SCHEMA,
            job_id: job_id.clone(),
            kind: JobKind::Test,
            repo: pr.repo.clone(),
            pr: pr.number,
            head_sha: pr.head_sha.clone(),
            head_ref: pr.head_ref.clone(),
            base_ref: pr.base_ref.clone(),
            clone_url,
            base_clone_url: pr.base_clone_url.clone(),
            context: p.context.clone(),
            item: None,
            argv: job::expand_argv(&p.test.command, &[]),
            image: p.test.image.clone(),
            build: p.test.build.clone(),
            timeout_secs: p.test.timeout.as_secs(),
            commit: false,
            message: None,
            secrets: Vec::new(),
            network: false,
            pool: p.test.pool.clone(),
            priority: p.test.priority,
            created_at: chrono::Utc::now(),
            checkouts: p.checkouts,
            main: p.main,
            note: p.note.clone(),
        };
        self.publish_job(&job).await?;
        self.set_queued(&job).await?;
        tracing::info!(repo = %pr.repo, pr = %pr.number, context = %p.context, job = %job_id, "test queued");
        Ok(())
    }

    /// Ends the pending statuses at `sha` that `which` selects with `error` and `reason`, and
    /// tells the workers to stop their jobs. Returns the contexts cancelled.
    pub(super) async fn cancel_pending(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        which: impl Fn(&CommitStatus) -> bool,
        reason: &str,
    ) -> Result<Vec<String>, DispatchError> {
        let statuses = self.states(repo, sha).await?;
        let pending: Vec<&CommitStatus> = statuses
            .iter()
            .filter(|s| {
                s.state == StatusState::Pending && s.context != APPROVAL_CONTEXT && which(s)
            })
            .collect();
        // The workers first: if a state write fails, the retry finds the context still
        // pending and sends the (harmless) cancellation again.
        let jobs: Vec<String> = pending
            .iter()
            .filter_map(|s| job_of(s))
            .map(str::to_string)
            .collect();
        for id in &jobs {
            self.cancelled.insert(id);
        }
        if !jobs.is_empty() {
            self.broadcast_cancel(jobs, reason).await?;
        }
        let mut cancelled = Vec::new();
        for s in pending {
            self.set_state(
                repo,
                sha,
                &CommitStatus {
                    context: s.context.clone(),
                    state: StatusState::Error,
                    description: Some(reason.to_string()),
                    target_url: s.target_url.clone(),
                },
            )
            .await?;
            cancelled.push(s.context.clone());
        }
        Ok(cancelled)
    }

    pub(super) async fn broadcast_cancel(
        &self,
        job_ids: Vec<String>,
        reason: &str,
    ) -> Result<(), DispatchError> {
        tracing::info!(jobs = ?job_ids, reason, "cancelling jobs");
        let cancel = Cancel {
            schema: job::JOB_SCHEMA,
            job_ids,
            reason: reason.to_string(),
        };
        let body = serde_json::to_vec(&cancel).map_err(|e| DispatchError::BadEvent {
            delivery: "(cancel)".into(),
            reason: format!("cannot encode a cancellation: {e}"),
        })?;
        self.broker.broadcast(body).await?;
        Ok(())
    }

    pub(super) fn log_url(&self, job_id: &str) -> String {
        format!(
            "{}/logs/{job_id}",
            self.settings.logs_url.trim_end_matches('/')
        )
    }
}

/// A status description with what else was tested, e.g. `Success [w1] (bots#12 at 1a2b3c4)`.
pub fn with_note(description: &str, note: Option<&str>) -> String {
    match note {
        Some(n) => format!("{description} ({n})"),
        None => description.to_string(),
    }
}
