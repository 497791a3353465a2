//! Jobs that run in an `[images.*]` image (reference §8). Called by the handlers where they
//! would queue a job; calls down into [`super::writes`], the GitHub client and the registry.
//!
//! An image's identity is the git tree of its context at the commit the job's configuration
//! came from, so a PR that changes the directory gets its own image and one that does not
//! uses the default branch's. A job whose image is in the registry is queued at once, pinned
//! to its digest. Otherwise it waits (`Waiting for image/<name>`) and one build job is queued
//! per tree, however many PRs and jobs need it; its report releases every waiting job, or
//! finishes each with a reason that points at the build's log.
//!
//! What waits lives in memory only. A dispatcher that restarts reconciles open PRs at start,
//! and a waiting context is planned again there (it is not "queued" for planning): its image
//! is then found in the registry, or a build is queued again, which a worker skips when the
//! first one pushed the tree meanwhile.

use super::replies::{CommandRefusal, Note, Refusal};
use super::state::{Phase, State};
use super::writes::Writes;
use super::{DispatchError, DispatcherSettings};
use crate::github::{GitHub, PullRequest};
use crate::ids::{CommitSha, RepoName};
use crate::image_admin::{AdminError, ImageAdmin, RolledBack};
use crate::job::{self, ImageBuild, Job, JobKind, JobReport, Outcome, ReportState};
use crate::registry::Registry;
use crate::repo_config::{ImageDef, RepoConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Builds waited for at once; beyond it, the oldest is forgotten (its jobs are planned
/// again at the next reconcile).
const MAX_PENDING_BUILDS: usize = 1_000;

pub struct Images {
    github: GitHub,
    registry: Registry,
    writes: Writes,
    /// For `/rollback`: clones, and who makes the commit.
    dir: PathBuf,
    author: (String, String),
    /// By image reference (`repository:tree`).
    pending: Mutex<HashMap<String, PendingBuild>>,
    /// The tree of a context directory at a commit, which never changes: every job of a PR
    /// that uses an image would otherwise ask GitHub for it again. (Digests are asked each
    /// time: `tickbot image gc` may delete an image.)
    trees: Mutex<HashMap<(RepoName, CommitSha, String), String>>,
}

/// Trees remembered at most; beyond it, they are asked again.
const MAX_TREES: usize = 10_000;

struct PendingBuild {
    job_id: String,
    context: String,
    repository: String,
    log_url: String,
    /// The head commits that show the build's state, the building PR's first.
    heads: Vec<(RepoName, CommitSha)>,
    waiting: Vec<Job>,
}

/// Where a job's image is defined: the repository and commit its configuration was read at.
pub struct ImageSource<'a> {
    pub def: &'a ImageDef,
    pub repo: &'a RepoName,
    pub sha: &'a CommitSha,
    /// Whether the build may have the network (the image asks, and the author is trusted).
    pub network: bool,
}

impl Images {
    pub fn new(github: GitHub, writes: Writes, settings: &DispatcherSettings) -> Images {
        Images {
            github,
            registry: settings.registry.clone(),
            writes,
            dir: settings.images_dir.clone(),
            author: settings.git_author.clone(),
            pending: Mutex::new(HashMap::new()),
            trees: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `job`, in the image `source` defines when it names one.
    pub async fn queue(
        &self,
        mut job: Job,
        source: Option<ImageSource<'_>>,
    ) -> Result<(), DispatchError> {
        let Some(source) = source else {
            return self.writes.queue_job(&job).await;
        };
        let def = source.def;
        let Some(tree) = self.tree_of(source.repo, source.sha, &def.context).await? else {
            let reason = format!(
                "Image {}: no directory {} at {}",
                def.name,
                def.context,
                source.sha.short()
            );
            return self
                .fail(&job, reason, self.writes.log_url(&job.job_id))
                .await;
        };
        let build = ImageBuild {
            name: def.name.clone(),
            context: def.context.clone(),
            repository: def.repository.clone(),
            tree,
            publish: Vec::new(),
        };
        if let Some(digest) = self.registry.digest(&build.reference()).await? {
            job.image = format!("{}@{digest}", def.repository);
            return self.writes.queue_job(&job).await;
        }
        self.wait_for_build(job, build, source).await
    }

    /// `job` waits for `build`, which is queued unless it is on its way already.
    async fn wait_for_build(
        &self,
        job: Job,
        build: ImageBuild,
        source: ImageSource<'_>,
    ) -> Result<(), DispatchError> {
        let head = (job.repo.clone(), job.head_sha.clone());
        let context = source.def.status_context();
        let build_job = self.build_job(&job, build.clone(), &source);
        let (new_build, new_head, log_url) = {
            let mut pending = lock(&self.pending);
            let known = pending.contains_key(&build.reference());
            if !known && pending.len() >= MAX_PENDING_BUILDS {
                pending.clear();
            }
            let entry = pending
                .entry(build.reference())
                .or_insert_with(|| PendingBuild {
                    job_id: build_job.job_id.clone(),
                    context: context.clone(),
                    repository: build.repository.clone(),
                    log_url: self.writes.log_url(&build_job.job_id),
                    heads: Vec::new(),
                    waiting: Vec::new(),
                });
            if !entry.waiting.iter().any(|j| j.job_id == job.job_id) {
                entry.waiting.push(job.clone());
            }
            let new_head = !entry.heads.contains(&head);
            if new_head {
                entry.heads.push(head);
            }
            (!known, new_head, entry.log_url.clone())
        };
        if new_build {
            tracing::info!(repo = %job.repo, pr = %job.pr, image = %build.reference(), job = %build_job.job_id, "image build queued");
            self.writes.queue_job(&build_job).await?;
        } else if new_head {
            // Another PR's build makes this one's image too: shown here as well.
            let queued = State::Queued { note: None };
            let status = queued.on(&context, Some(log_url.clone()));
            self.writes
                .set_state(&job.repo, &job.head_sha, &status, None)
                .await?;
        }
        let waiting = State::WaitingForImage { image: &context };
        let status = waiting.on(&job.context, Some(log_url));
        self.writes
            .set_state(&job.repo, &job.head_sha, &status, None)
            .await?;
        Ok(())
    }

    /// The job that builds `build` from the same tree `job` would run in.
    fn build_job(&self, job: &Job, build: ImageBuild, source: &ImageSource<'_>) -> Job {
        let context = source.def.status_context();
        let id_context = format!("{context}:{}", build.tree);
        Job {
            job_id: job::job_id(&job.repo, job.pr, &job.head_sha, &id_context, 0, None),
            kind: JobKind::Build,
            context,
            item: None,
            argv: Vec::new(),
            image: String::new(),
            timeout_secs: source.def.timeout.as_secs(),
            commit: false,
            message: None,
            secrets: Vec::new(),
            network: source.network,
            checkouts: Vec::new(),
            note: None,
            image_build: Some(build),
            merge: None,
            created_at: chrono::Utc::now(),
            ..job.clone()
        }
    }

    /// A build job finished: the jobs that waited for it are queued in the image, or finished
    /// with a reason that points at the build's log. Reports of builds nobody waits for (a
    /// dispatcher restarted meanwhile) change nothing more.
    pub async fn built(&self, report: &JobReport, outcome: &Outcome) -> Result<(), DispatchError> {
        let build = {
            let mut pending = lock(&self.pending);
            let key = pending
                .iter()
                .find(|(_, b)| b.job_id == report.job_id)
                .map(|(k, _)| k.clone());
            key.and_then(|k| pending.remove(&k))
        };
        let Some(build) = build else {
            return Ok(());
        };
        let finished = State::Finished {
            outcome,
            worker: &report.worker,
            note: None,
        };
        let status = finished.on(&build.context, Some(build.log_url.clone()));
        for (repo, sha) in build.heads.iter().skip(1) {
            self.writes.set_state(repo, sha, &status, None).await?;
        }
        let digest = report.image_digest.as_deref();
        let mut still_waiting = HashMap::new();
        for mut job in build.waiting {
            // A context cancelled (or run otherwise) meanwhile is left as it is now.
            let head = (job.repo.clone(), job.head_sha.clone());
            if !still_waiting.contains_key(&head) {
                let states = self.writes.states(&job.repo, &job.head_sha).await?;
                still_waiting.insert(head.clone(), states);
            }
            let waits = still_waiting.get(&head).is_some_and(|states| {
                states
                    .iter()
                    .any(|s| s.context == job.context && Phase::of(s) == Phase::WaitingForImage)
            });
            if !waits {
                continue;
            }
            match (outcome, digest) {
                (Outcome::Success, Some(digest)) => {
                    job.image = format!("{}@{digest}", build.repository);
                    self.writes.queue_job(&job).await?;
                }
                _ => {
                    let reason = format!("Image {} failed to build", build.context);
                    self.fail(&job, reason, build.log_url.clone()).await?;
                }
            }
        }
        Ok(())
    }

    /// `pull` landed on the default branch as `merge`: each image with `publish` tags gets them
    /// moved to the image of its tree at `merge`, the one the PR's jobs ran in, so nothing is
    /// rebuilt and what was tested is what is deployed. A tree nobody built (no job of the PR
    /// used the image) is built now, and that build moves the tags. The move is recorded as
    /// the `image/<name>` state of `merge`, which is the image's history on the branch.
    pub async fn landed(
        &self,
        pull: &PullRequest,
        merge: &CommitSha,
        config: &RepoConfig,
    ) -> Result<(), DispatchError> {
        for def in config.images.values().filter(|d| !d.publish.is_empty()) {
            let Some(tree) = self.tree_of(&pull.repo, merge, &def.context).await? else {
                continue; // the directory is gone: nothing to publish
            };
            let build = ImageBuild {
                name: def.name.clone(),
                context: def.context.clone(),
                repository: def.repository.clone(),
                tree,
                publish: def.publish.clone(),
            };
            let Some(digest) = self.registry.digest(&build.reference()).await? else {
                let job = self.landed_build(pull, merge, def, build);
                tracing::info!(repo = %pull.repo, commit = %merge.short(), job = %job.job_id, "landed image was never built; building it");
                self.writes.queue_job(&job).await?;
                continue;
            };
            for tag in &def.publish {
                self.registry.tag(&def.repository, &digest, tag).await?;
            }
            let tags = def.publish.join(", ");
            let published = State::Published {
                tags: &tags,
                digest: &digest,
                tree: &build.tree,
            };
            let status = published.on(&def.status_context(), None);
            self.writes
                .set_state(&pull.repo, merge, &status, None)
                .await?;
            tracing::info!(repo = %pull.repo, commit = %merge.short(), image = %build.reference(), %digest, %tags, "published");
        }
        Ok(())
    }

    /// The build of a landed tree, from the default branch at `merge`; it publishes too.
    fn landed_build(
        &self,
        pull: &PullRequest,
        merge: &CommitSha,
        def: &ImageDef,
        build: ImageBuild,
    ) -> Job {
        let context = def.status_context();
        let id_context = format!("{context}:{}:landed", build.tree);
        let job_id = job::job_id(&pull.repo, pull.number, merge, &id_context, 0, None);
        let mut job = Job::at_head(
            pull,
            pull.base_clone_url.clone(),
            JobKind::Build,
            &context,
            job_id,
        );
        job.head_sha = merge.clone();
        job.head_ref = pull.base_ref.clone();
        job.timeout_secs = def.timeout.as_secs();
        job.image_build = Some(build);
        job
    }

    /// `/rollback [name]` on `pull`, which landed as `merge`: for each image it changed (or
    /// the one named), a revert PR restoring the directory as it was before (reference §8).
    pub async fn roll_back(
        &self,
        pull: &PullRequest,
        merge: &CommitSha,
        config: &RepoConfig,
        asked: Option<&str>,
    ) -> Result<Vec<Note>, DispatchError> {
        let mut notes = Vec::new();
        let defs = config
            .images
            .values()
            .filter(|d| asked.is_none_or(|a| a == d.name));
        for def in defs {
            let (github, registry) = (self.github.clone(), self.registry.clone());
            let repo = pull.repo.clone();
            let opened = match ImageAdmin::open(github, registry, repo, &def.name, &self.dir).await
            {
                Ok(admin) => self.revert(&admin, merge).await,
                Err(e) => Err(e),
            };
            let reason = match opened {
                Ok(None) => continue, // this PR left the image alone
                Ok(Some(done)) => {
                    notes.push(Note::RolledBack {
                        image: def.name.clone(),
                        pr: done.pr,
                        tree: done.to.tree,
                    });
                    continue;
                }
                Err(AdminError::Usage(reason)) => reason,
                Err(AdminError::GitHub(e)) => return Err(e.into()),
                Err(AdminError::Registry(e)) => return Err(e.into()),
                Err(AdminError::Git(e)) => e.to_string(),
            };
            let image = def.name.clone();
            notes.push(Refusal::from(CommandRefusal::RollbackFailed { image, reason }).into());
        }
        if notes.is_empty() {
            let images = config.images.keys().cloned().collect();
            let asked = asked.map(str::to_string);
            notes.push(Refusal::from(CommandRefusal::RollbackNoImage { asked, images }).into());
        }
        Ok(notes)
    }

    async fn revert(
        &self,
        admin: &ImageAdmin,
        merge: &CommitSha,
    ) -> Result<Option<RolledBack>, AdminError> {
        let Some(before) = admin.changed_by(merge).await? else {
            return Ok(None);
        };
        let author = (self.author.0.as_str(), self.author.1.as_str());
        admin.rollback(&before, false, author).await.map(Some)
    }

    /// The tree of `context` at `sha` in `repo`, if the directory exists there.
    async fn tree_of(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        context: &str,
    ) -> Result<Option<String>, DispatchError> {
        let key = (repo.clone(), sha.clone(), context.to_string());
        if let Some(tree) = lock(&self.trees).get(&key) {
            return Ok(Some(tree.clone()));
        }
        let tree = self.github.tree_id(repo, context, &sha.0).await?;
        if let Some(tree) = &tree {
            let mut trees = lock(&self.trees);
            if trees.len() >= MAX_TREES {
                trees.clear();
            }
            trees.insert(key, tree.clone());
        }
        Ok(tree)
    }

    /// Finishes `job` as failed without running it, through the results queue like a
    /// worker's report: its box gets `FAIL:`, its state the reason, linking to `log_url`.
    async fn fail(&self, job: &Job, reason: String, log_url: String) -> Result<(), DispatchError> {
        let state = ReportState::Finished {
            outcome: Outcome::Failure { reason },
            commit: None,
            duration_secs: 0,
        };
        let report = JobReport::new(job, "tickbot", log_url, state);
        self.writes.report(&report).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
