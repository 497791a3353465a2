//! Debug holds (`/debug <ctx>`): when a run that asked for one fails, this worker starts a
//! container from the job's image on the job's tree as the run left it, with nothing running
//! but `sleep`, for `[worker] debug_hold`, so a person on the worker can `podman exec` into
//! it. Until the hold ends (its time is up, its PR closed, or the worker stops) the job keeps
//! its checkout and its place in the worker's concurrency; then the container is removed.
//! The held container has no network and none of the job's secrets, and podman's own
//! `--timeout` stops it at the end even if the worker died.

use super::job_log::JobLog;
use super::mirror::Worktree;
use super::runtime::{RunSpec, Runtime};
use crate::ids::{PrNumber, RepoName};
use crate::job::{HeldContainer, Job};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The held jobs of one worker.
pub struct Holds {
    runtime: Runtime,
    /// How long a hold lasts (`[worker] debug_hold`).
    hold: Duration,
    /// The worker's `--memory` and `--pids-limit`, which a held container keeps.
    memory: String,
    pids_limit: u32,
    held: Mutex<HashMap<String, Hold>>,
    /// The worker stops: no new holds.
    stopping: std::sync::atomic::AtomicBool,
}

struct Hold {
    repo: RepoName,
    pr: PrNumber,
    container: HeldContainer,
    until: tokio::time::Instant,
    release: Arc<Notify>,
    /// The job's checkouts, given back when the hold ends.
    trees: Option<(Vec<Worktree>, Worktree)>,
}

/// The held container of `job`: named after the job's own.
pub fn container_name(job_container: &str) -> String {
    format!("{job_container}-debug")
}

impl Holds {
    pub fn new(runtime: Runtime, hold: Duration, memory: String, pids_limit: u32) -> Holds {
        Holds {
            runtime,
            hold,
            memory,
            pids_limit,
            held: Mutex::default(),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Hold>> {
        super::lock(&self.held)
    }

    /// Starts the held container of a failed `job` (whose container was `job_container`) on
    /// its tree; gives the trees back (and says why in the log) if it cannot be held. Held
    /// trees are kept until [`wait`](Self::wait) ends.
    pub async fn start(
        &self,
        job: &Job,
        job_container: &str,
        trees: (Vec<Worktree>, Worktree),
        log: &JobLog,
    ) -> Result<(), (Vec<Worktree>, Worktree)> {
        let (runtime, hold) = (&self.runtime, self.hold);
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            log.line("tickbot: /debug asked to keep this run, but the worker is stopping");
            return Err(trees);
        }
        if matches!(runtime, Runtime::Host) {
            log.line("tickbot: /debug asked to keep this run, but the host runtime has no container to keep");
            return Err(trees);
        }
        let name = container_name(job_container);
        let spec = RunSpec {
            name: name.clone(),
            image: job.image.clone(),
            argv: vec!["sleep".into(), hold.as_secs().to_string()],
            workdir: trees.1.path().to_path_buf(),
            env: Vec::new(),
            network: false,
            timeout: hold,
            memory: self.memory.clone(),
            pids_limit: self.pids_limit,
        };
        if let Err(why) = runtime.start_detached(&spec).await {
            log.line(&format!(
                "tickbot: cannot keep this run for debugging: {why}"
            ));
            return Err(trees);
        }
        let until = chrono::Utc::now() + hold;
        log.line(&format!(
            "tickbot: kept for debugging until {} UTC as container {name} (podman exec -it {name} sh)",
            until.format("%Y-%m-%d %H:%M:%S")
        ));
        self.lock().insert(
            job.job_id.clone(),
            Hold {
                repo: job.repo.clone(),
                pr: job.pr,
                container: HeldContainer {
                    container: name,
                    until,
                },
                until: tokio::time::Instant::now() + hold,
                release: Arc::new(Notify::new()),
                trees: Some(trees),
            },
        );
        Ok(())
    }

    /// Where the run of `job` is held, for its report.
    pub fn of(&self, job: &str) -> Option<HeldContainer> {
        self.lock().get(job).map(|h| h.container.clone())
    }

    /// Waits until the hold of `job` ends, then removes its container and returns its trees
    /// to be given back. Returns at once if it is not held.
    pub async fn wait(&self, job: &str) -> Option<(Vec<Worktree>, Worktree)> {
        let (until, release) = self.lock().get(job).map(|h| (h.until, h.release.clone()))?;
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = release.notified() => {}
        }
        let hold = self.lock().remove(job)?;
        if let Err(e) = self.runtime.remove(&hold.container.container).await {
            tracing::warn!(%job, error = %e, "cannot remove a held container; podman's timeout stops it");
        }
        tracing::info!(%job, container = %hold.container.container, "debug hold ended");
        hold.trees
    }

    /// Ends the holds of a closed PR's runs.
    pub fn release_pr(&self, repo: &RepoName, pr: PrNumber) {
        for hold in self
            .lock()
            .values()
            .filter(|h| h.repo == *repo && h.pr == pr)
        {
            hold.release.notify_one();
        }
    }

    /// Ends every hold, and takes no new ones (the worker stops).
    pub fn release_all(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for hold in self.lock().values() {
            hold.release.notify_one();
        }
    }
}
