//! Which test contexts to queue (reference §4 `[tests]`, §6, §7), for PR events (the
//! contexts that apply, once per head; drafts wait) and for people's requests (`/test`,
//! `/retest`, a Re-run button) alike. Called by the handlers; calls down into
//! [`super::writes`].
//!
//! Like tasks, everything is re-derived from the head commit's states: a context with a state
//! at this head was queued already (a redelivered event queues nothing twice), and its link
//! names its job (`…/logs/<job>`), which is how a cancellation finds the jobs to stop without
//! the dispatcher remembering anything.

use super::contexts;
use super::images::ImageSource;
use super::memory::ConfigAt;
use super::replies::{Comment, DependencyRefusal, ProjectRefusal, Refusal, TestRefusal};
use super::state::{self, APPROVAL_CONTEXT, Phase};
use super::{DispatchError, Dispatcher};
use crate::commands::ContextSpec;
use crate::github::{CommitStatus, GitHubError, PullRequest};
use crate::ids::{CommitSha, RepoName};
use crate::job::{self, Checkout, Job, JobKind, MergeBase};
use crate::repo_config::{ImageDef, RepoConfig, TestDef};
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
    /// `/debug ctx`: run it, and keep its container if it fails.
    Debug(&'a ContextSpec),
}

/// One context to queue, resolved: which test, which tree, and what else is checked out.
struct Planned {
    /// The status context: the name as asked for, with its `@…` suffixes.
    context: String,
    test: TestDef,
    main: Option<Checkout>,
    checkouts: Vec<Checkout>,
    note: Option<String>,
    /// The `[images.*]` entry `test.image` names, from the configuration the test came from.
    image: Option<ImageDef>,
    /// Where `image` is built from, when not where the test came from: a consumer project's
    /// test runs in the image of the PR that changes it.
    image_at: Option<(RepoName, CommitSha)>,
}

impl Planned {
    /// `test` run on the PR's own tree, nothing else checked out.
    fn plain(context: String, test: &TestDef, config: &RepoConfig) -> Planned {
        Planned {
            context,
            test: test.clone(),
            main: None,
            checkouts: Vec::new(),
            note: None,
            image: config.image_of(&test.image).cloned(),
            image_at: None,
        }
    }
}

/// Another project's branch, resolved for `ctx@owner/repo[/branch]`.
struct ForeignBranch {
    repo: RepoName,
    clone_url: String,
    branch: String,
    sha: CommitSha,
    config: Arc<RepoConfig>,
}

impl Dispatcher {
    /// Queues the test contexts `trigger` asks for. Returns what a person who asked should be
    /// told (unknown contexts, nothing to retest, …); empty for automatic runs.
    pub(super) async fn plan_tests(
        &self,
        pr: &PullRequest,
        trigger: Trigger<'_>,
    ) -> Result<Vec<Refusal>, DispatchError> {
        let automatic = matches!(trigger, Trigger::Automatic);
        // Automatic runs say nothing: only people who asked are answered.
        let refuse = |r: Refusal| match automatic {
            true => Vec::new(),
            false => vec![r],
        };
        if !pr.state_open {
            return Ok(refuse(Refusal::from(TestRefusal::TestOnClosedPr)));
        }
        if automatic && pr.draft {
            return Ok(Vec::new());
        }
        let head = pr.head_sha.clone();
        let config = match self.config_at(&pr.repo, &pr.head_sha).await? {
            ConfigAt::Valid(c) => c,
            ConfigAt::Missing => return Ok(refuse(Refusal::from(TestRefusal::NoConfig { head }))),
            ConfigAt::Invalid(error) => {
                let comment = Comment::BadConfig {
                    head: &pr.head_sha,
                    error: &error,
                };
                self.writes.post_once(pr, &comment).await?;
                return Ok(refuse(Refusal::from(TestRefusal::InvalidConfig { head })));
            }
        };
        if automatic && !runs_automatically(&config) {
            return Ok(Vec::new()); // nothing could apply: not even a state read
        }
        let statuses = self.writes.states(&pr.repo, &pr.head_sha).await?;
        let (planned, mut refusals) = self.select(pr, &config, &trigger, &statuses).await?;
        if automatic {
            let approved = statuses
                .iter()
                .any(|s| s.context == APPROVAL_CONTEXT && Phase::of(s) == Phase::Succeeded);
            let verdict = self.author_trust(pr).await?;
            if !verdict.trusted && !approved {
                let waiting: Vec<&str> = planned
                    .iter()
                    .map(|p| p.context.as_str())
                    .filter(|c| !statuses.iter().any(|s| s.context == *c))
                    .collect();
                self.writes
                    .ask_for_approval(pr, &verdict.reason, &waiting)
                    .await?;
                return Ok(Vec::new());
            }
        }
        for p in planned {
            let existing = statuses.iter().find(|s| s.context == p.context);
            let phase = existing.map(Phase::of);
            if phase.is_some_and(Phase::is_active) {
                refusals.extend(refuse(Refusal::from(TestRefusal::AlreadyActive {
                    context: p.context,
                })));
                continue;
            }
            if automatic && phase.is_some_and(|p| !p.is_waiting()) {
                continue; // ran at this head already
            }
            if !self.settings.pools.contains(&p.test.pool) {
                refusals.push(Refusal::from(TestRefusal::NoWorkers {
                    context: p.context,
                    pool: p.test.pool.clone(),
                    pools: self.settings.pools.clone(),
                }));
                continue;
            }
            let previous = existing
                .filter(|s| Phase::of(s).is_finished())
                .and_then(state::job_of);
            let debug_hold = matches!(trigger, Trigger::Debug(_));
            self.queue_test(pr, p, previous, debug_hold).await?;
        }
        Ok(refusals)
    }

    /// The contexts `trigger` names, resolved, and the refusals of those that cannot run.
    async fn select(
        &self,
        pr: &PullRequest,
        config: &Arc<RepoConfig>,
        trigger: &Trigger<'_>,
        statuses: &[CommitStatus],
    ) -> Result<(Vec<Planned>, Vec<Refusal>), DispatchError> {
        let mut planned = Vec::new();
        let mut refusals = Vec::new();
        let specs: Vec<ContextSpec> = match trigger {
            Trigger::Automatic | Trigger::Defaults => {
                let (run, skipped) = self.applicable(pr, config).await?;
                if run.is_empty() && matches!(trigger, Trigger::Defaults) {
                    refusals.push(match skipped.is_empty() {
                        true => Refusal::from(TestRefusal::NoTestContexts),
                        false => Refusal::from(TestRefusal::NoneApplies { skipped }),
                    });
                }
                for name in run {
                    if let Some(test) = config.tests.get(&name) {
                        planned.push(Planned::plain(name, test, config));
                    }
                }
                planned.extend(self.consumer_tests(pr, config).await?);
                return Ok((planned, refusals));
            }
            Trigger::Named(specs) => specs.to_vec(),
            Trigger::Debug(spec) => vec![(*spec).clone()],
            Trigger::Failed => {
                let checklist = crate::checklist::parse(&pr.body);
                let failed: Vec<&CommitStatus> = statuses
                    .iter()
                    .filter(|s| Phase::of(s).is_failed() && s.context != APPROVAL_CONTEXT)
                    .filter(|s| !checklist.tasks.iter().any(|t| t.context() == s.context))
                    .collect();
                if failed.is_empty() {
                    refusals.push(Refusal::from(TestRefusal::NothingToRetest {
                        head: pr.head_sha.clone(),
                    }));
                }
                let mut specs = Vec::new();
                for s in failed {
                    match crate::commands::parse_context(&s.context) {
                        Ok(spec) => specs.push(spec),
                        Err(_) => refusals.push(Refusal::from(TestRefusal::NotATestContext {
                            context: s.context.clone(),
                        })),
                    }
                }
                specs
            }
        };
        for spec in &specs {
            match self.resolve(pr, config, spec).await? {
                Ok(p) => planned.push(p),
                Err(refusal) => refusals.push(refusal),
            }
        }
        Ok((planned, refusals))
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
    ) -> Result<Result<Planned, Refusal>, DispatchError> {
        let context = spec.to_string();
        if let Some((project, branch)) = &spec.project {
            return self
                .resolve_foreign(pr, spec, project, branch.as_deref())
                .await;
        }
        let Some(test) = config.tests.get(&spec.context) else {
            return Ok(Err(Refusal::from(TestRefusal::UnknownContext {
                context: spec.context.clone(),
                suggestion: contexts::closest_test(config, &spec.context),
                known: contexts::names(config),
            })));
        };
        let mut planned = Planned::plain(context.clone(), test, config);
        let Some((dep, number)) = &spec.dep_pr else {
            return Ok(Ok(planned));
        };
        let Some(def) = config.deps.get(dep) else {
            return Ok(Err(Refusal::from(DependencyRefusal::UnknownDependency {
                context,
                dep: dep.clone(),
                known: config.deps.keys().cloned().collect(),
            })));
        };
        let Ok(dep_repo) = def.repo.parse::<RepoName>() else {
            return Ok(Err(Refusal::from(DependencyRefusal::BadDependencyRepo {
                dep: dep.clone(),
                repo: def.repo.clone(),
            })));
        };
        let dep_pr = match self
            .github
            .pull_request(&dep_repo, crate::ids::PrNumber(*number))
            .await
        {
            Ok(p) => p,
            Err(GitHubError::NotFound { .. }) => {
                return Ok(Err(Refusal::from(DependencyRefusal::NoSuchPr {
                    context,
                    repo: dep_repo,
                    number: *number,
                })));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(clone_url) = dep_pr.head_clone_url.clone() else {
            return Ok(Err(Refusal::from(
                DependencyRefusal::DependencyBranchGone {
                    context,
                    repo: dep_repo,
                    number: *number,
                },
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
    ) -> Result<Result<Planned, Refusal>, DispatchError> {
        let context = spec.to_string();
        let other = match self.foreign_branch(&context, project, branch).await? {
            Ok(other) => other,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        let ForeignBranch {
            repo,
            clone_url: main_url,
            branch,
            sha,
            config,
        } = other;
        let Some(test) = config.tests.get(&spec.context) else {
            return Ok(Err(Refusal::from(ProjectRefusal::UnknownProjectContext {
                context,
                name: spec.context.clone(),
                suggestion: contexts::closest_test(&config, &spec.context),
                known: contexts::names(&config),
                repo,
            })));
        };
        let this = pr.repo.to_string();
        let Some(dep) = config
            .deps
            .values()
            .find(|d| d.repo.eq_ignore_ascii_case(&this))
        else {
            let this = pr.repo.clone();
            let refusal = ProjectRefusal::ProjectWithoutDep {
                context,
                repo,
                branch,
                this,
            };
            return Ok(Err(refusal.into()));
        };
        let Some(clone_url) = pr.head_clone_url.clone() else {
            return Ok(Err(Refusal::from(TestRefusal::HeadRepoGone)));
        };
        Ok(Ok(Planned {
            image: config.image_of(&test.image).cloned(),
            context,
            test: test.clone(),
            main: Some(Checkout {
                repo: repo.clone(),
                clone_url: main_url,
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
            note: Some(format!("{repo}/{branch} at {}", sha.short())),
            image_at: None,
        }))
    }

    /// Reference §8: on a PR that changes an image with `consumers`, each consumer project's
    /// default tests that use the image (by its `repository`) run on that project's branch, in
    /// this PR's image, as `ctx@owner/repo/branch` on this PR. A consumer that cannot be read
    /// is skipped with a log line: it is not this PR's fault.
    async fn consumer_tests(
        &self,
        pr: &PullRequest,
        config: &RepoConfig,
    ) -> Result<Vec<Planned>, DispatchError> {
        let mut planned = Vec::new();
        for def in config.images.values().filter(|d| !d.consumers.is_empty()) {
            let head = self
                .github
                .tree_id(&pr.repo, &def.context, &pr.head_sha.0)
                .await?;
            let base = self
                .github
                .tree_id(&pr.repo, &def.context, &pr.base_ref)
                .await?;
            if head.is_none() || head == base {
                continue; // the PR leaves the image alone
            }
            for consumer in &def.consumers {
                let project = consumer.repo.to_string();
                let label = format!("@{project}/{}", consumer.branch);
                let other = match self
                    .foreign_branch(&label, &project, Some(&consumer.branch))
                    .await?
                {
                    Ok(other) => other,
                    Err(refusal) => {
                        tracing::warn!(repo = %pr.repo, pr = %pr.number, consumer = %label, reason = ?refusal, "an image consumer cannot be tested");
                        continue;
                    }
                };
                let uses = |image: &str| {
                    image == def.repository
                        || image.starts_with(&format!("{}:", def.repository))
                        || image.starts_with(&format!("{}@", def.repository))
                };
                for (name, test) in other
                    .config
                    .tests
                    .iter()
                    .filter(|(_, t)| t.default && uses(&t.image))
                {
                    planned.push(Planned {
                        context: format!("{name}@{}/{}", other.repo, other.branch),
                        test: test.clone(),
                        main: Some(Checkout {
                            repo: other.repo.clone(),
                            clone_url: other.clone_url.clone(),
                            git_ref: other.branch.clone(),
                            sha: other.sha.clone(),
                            path: String::new(),
                        }),
                        checkouts: Vec::new(),
                        note: Some(format!(
                            "{}/{} at {}",
                            other.repo,
                            other.branch,
                            other.sha.short()
                        )),
                        image: Some(def.clone()),
                        image_at: Some((pr.repo.clone(), pr.head_sha.clone())),
                    });
                }
            }
        }
        Ok(planned)
    }

    /// Another project's branch (its default branch unless named) and its `.tickbot.toml`.
    async fn foreign_branch(
        &self,
        context: &str,
        project: &str,
        branch: Option<&str>,
    ) -> Result<Result<ForeignBranch, ProjectRefusal>, DispatchError> {
        let context = context.to_string();
        let Ok(repo) = project.parse::<RepoName>() else {
            let project = project.to_string();
            return Ok(Err(ProjectRefusal::BadProject { context, project }));
        };
        let Some(info) = self.github.repository(&repo).await? else {
            return Ok(Err(ProjectRefusal::ProjectNotVisible { context, repo }));
        };
        let branch = branch.unwrap_or(&info.default_branch).to_string();
        let Some(sha) = self.github.commit_of(&repo, &branch).await? else {
            return Ok(Err(ProjectRefusal::NoBranch {
                context,
                repo,
                branch,
            }));
        };
        let config = match self.config_at(&repo, &sha).await? {
            ConfigAt::Valid(c) => c,
            ConfigAt::Missing => {
                return Ok(Err(ProjectRefusal::ProjectWithoutConfig {
                    context,
                    repo,
                    branch,
                }));
            }
            ConfigAt::Invalid(e) => {
                return Ok(Err(ProjectRefusal::ProjectConfigInvalid {
                    context,
                    repo,
                    branch,
                    error: e.to_string(),
                }));
            }
        };
        Ok(Ok(ForeignBranch {
            repo,
            clone_url: info.clone_url,
            branch,
            sha,
            config,
        }))
    }

    /// Queues a test job. Tests get no secrets and no network.
    async fn queue_test(
        &self,
        pr: &PullRequest,
        p: Planned,
        previous: Option<&str>,
        debug_hold: bool,
    ) -> Result<(), DispatchError> {
        let Some(clone_url) = pr.head_clone_url.clone() else {
            let comment = Comment::HeadRepoGone { head: &pr.head_sha };
            self.writes.post_once(pr, &comment).await?;
            return Ok(());
        };
        let job_id = job::job_id(&pr.repo, pr.number, &pr.head_sha, &p.context, 0, previous);
        let (merge, note) = self.merge_base(pr, &p).await?;
        let job = Job {
            argv: job::expand_argv(&p.test.command, &[]),
            image: p.test.image.clone(),
            timeout_secs: p.test.timeout.as_secs(),
            pool: p.test.pool.clone(),
            priority: p.test.priority,
            checkouts: p.checkouts,
            main: p.main,
            note,
            merge,
            debug_hold,
            ..Job::at_head(pr, clone_url, JobKind::Test, &p.context, job_id.clone())
        };
        // The image is defined where the test is: another project's tree for a test run
        // against this PR, else this PR's head; a consumer's test runs in this PR's image.
        let (repo, sha) = match (&p.image_at, &job.main) {
            (Some(at), _) => at.clone(),
            (None, Some(m)) => (m.repo.clone(), m.sha.clone()),
            (None, None) => (pr.repo.clone(), pr.head_sha.clone()),
        };
        // The test gets no network; its image's build does if it asks and the author is trusted.
        let network = match &p.image {
            Some(def) if def.network => self.author_trust(pr).await?.trusted,
            _ => false,
        };
        let source = p.image.as_ref().map(|def| ImageSource {
            def,
            repo: &repo,
            sha: &sha,
            network,
        });
        self.images.queue(job, source).await?;
        tracing::info!(repo = %pr.repo, pr = %pr.number, context = %p.context, job = %job_id, "test queued");
        Ok(())
    }
}

impl Dispatcher {
    /// For a test of the PR's own tree with `merge` (or the server's default): its base
    /// branch's current head, and the note that says so in every state of the run.
    async fn merge_base(
        &self,
        pr: &PullRequest,
        p: &Planned,
    ) -> Result<(Option<MergeBase>, Option<String>), DispatchError> {
        let merge = p.test.merge.unwrap_or(self.settings.merge_by_default);
        if !merge || p.main.is_some() {
            return Ok((None, p.note.clone()));
        }
        let Some(sha) = self.github.commit_of(&pr.repo, &pr.base_ref).await? else {
            // The base branch is gone: the PR is tested as it is, and says so.
            let note = format!("`{}` is gone: not merged", pr.base_ref);
            return Ok((None, Some(note)));
        };
        let merged = format!("with `{}` at {}", pr.base_ref, sha.short());
        let note = match &p.note {
            Some(other) => format!("{other}, {merged}"),
            None => merged,
        };
        let branch = pr.base_ref.clone();
        Ok((Some(MergeBase { branch, sha }), Some(note)))
    }
}

/// Whether a PR event can queue anything: a default test, or an image with consumers.
fn runs_automatically(config: &RepoConfig) -> bool {
    config.tests.values().any(|t| t.default)
        || config.images.values().any(|d| !d.consumers.is_empty())
}
