//! The test as the worker: it takes the jobs the dispatcher queues ([`JobTap`]), pushes result
//! commits as the bot and publishes the worker's reports, so a test can decide exactly what a
//! worker does and when.

use super::WAIT;
use super::world::World;
use std::sync::Arc;
use std::time::Duration;
use tickbot::ids::{CommitSha, PrNumber};
use tickbot::job::{Job, JobKind, JobReport, ReportState};
use tickbot::queue::{Broker, Outgoing, QueueKind};
use tokio::sync::Mutex;

/// The context of the marker jobs [`JobTap::barrier`] sends through the queue.
const MARKER: &str = "tickbot-test-barrier";

/// Jobs as a worker would receive them, collected by a consumer on the default pool.
pub struct JobTap {
    jobs: Arc<Mutex<Vec<Job>>>,
    /// How many jobs [`World::next_job`] handed out already.
    taken: std::sync::atomic::AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

impl JobTap {
    async fn start(broker: &Broker) -> JobTap {
        let mut consumer = broker
            .consume(&QueueKind::Jobs("default".into()), 100)
            .await
            .expect("consume the job queue");
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let sink = jobs.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let job: Job =
                    serde_json::from_slice(&delivery.body).expect("job message is a Job");
                sink.lock().await.push(job);
                let _ = delivery.ack().await;
            }
        });
        JobTap {
            jobs,
            taken: Default::default(),
            task,
        }
    }

    /// Every job received so far, in order (the barrier's markers left out).
    pub async fn all(&self) -> Vec<Job> {
        let jobs = self.jobs.lock().await;
        jobs.iter()
            .filter(|j| j.context != MARKER)
            .cloned()
            .collect()
    }

    /// Waits until `n` jobs arrived; returns them all.
    pub async fn wait_count(&self, n: usize, what: &str) -> Vec<Job> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let jobs = self.all().await;
            if jobs.len() >= n {
                return jobs;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: have {} jobs: {:?}",
                jobs.len(),
                jobs.iter().map(|j| &j.context).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns once every job queued before the call has arrived: a marker job of the lowest
    /// priority, published now, is delivered after all of them.
    pub async fn barrier(&self, broker: &Broker) {
        let id = format!("jmarker{}", uuid::Uuid::new_v4().simple());
        let mut job = template();
        job.context = MARKER.into();
        job.job_id = id.clone();
        broker
            .publish(
                &QueueKind::Jobs("default".into()),
                Outgoing {
                    message_id: id.clone(),
                    body: serde_json::to_vec(&job).expect("encode"),
                    priority: 0,
                },
            )
            .await
            .expect("publish the marker");
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.jobs.lock().await.iter().any(|j| j.job_id == id) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the marker job {id} to come through the job queue"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for JobTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A job with every field set to something harmless, for made-up jobs.
fn template() -> Job {
    Job {
        schema: tickbot::job::JOB_SCHEMA,
        job_id: String::new(),
        kind: JobKind::Task,
        repo: "acme/images".parse().expect("valid"),
        pr: PrNumber(0),
        head_sha: CommitSha(String::new()),
        head_ref: String::new(),
        base_ref: "main".into(),
        clone_url: String::new(),
        base_clone_url: String::new(),
        context: String::new(),
        item: None,
        argv: vec![],
        image: String::new(),
        timeout_secs: 0,
        commit: false,
        message: None,
        secrets: vec![],
        network: false,
        pool: "default".into(),
        priority: 0,
        created_at: chrono::Utc::now(),
        checkouts: Vec::new(),
        main: None,
        note: None,
        image_build: None,
        merge: None,
        private: false,
        debug_hold: false,
    }
}

impl World {
    /// From now on the test is the worker: jobs queued for the default pool come to it.
    pub async fn tap_jobs(&mut self) {
        self.tap = Some(JobTap::start(&self.stack.broker).await);
    }

    pub fn jobs(&self) -> &JobTap {
        self.tap.as_ref().expect("tap_jobs() first")
    }

    /// The jobs queued for one PR so far.
    pub async fn jobs_for(&self, pr: PrNumber) -> Vec<Job> {
        let all = self.jobs().all().await;
        all.into_iter().filter(|j| j.pr == pr).collect()
    }

    /// The next job a worker would take, in the order they were queued.
    pub async fn next_job(&self) -> Job {
        let tap = self.jobs();
        let n = tap.taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tap.wait_count(n + 1, "the next job").await.swap_remove(n)
    }

    /// The worker's result commit, pushed to the PR branch as the bot.
    pub async fn push_result(&self, job: &Job, file: &str) -> CommitSha {
        self.forge()
            .commit_files(
                &self.repo,
                &job.head_ref,
                None,
                &[(file, "refreshed\n")],
                job.message.as_deref().unwrap_or("result"),
                self.forge().bot_login(),
            )
            .await
            .expect("push the result commit")
    }

    pub fn log_url(&self, job: &Job) -> String {
        format!("{}/logs/{}", self.stack.intake_url, job.job_id)
    }

    /// Worker `w1` reports `state` for `job`.
    pub async fn report(&self, job: &Job, state: ReportState) {
        let report = JobReport::new(job, "w1", self.log_url(job), state);
        self.stack
            .broker
            .publish(
                &QueueKind::Results,
                Outgoing {
                    message_id: format!("{}-{}", job.job_id, uuid::Uuid::new_v4()),
                    body: serde_json::to_vec(&report).expect("encode"),
                    priority: 0,
                },
            )
            .await
            .expect("publish the report");
    }

    /// Returns once every report sent before the call has been handled (the results queue is
    /// handled one at a time, in order: a `Started` of a made-up context sent now shows up
    /// after all of them), and every event too ([`World::barrier`]).
    pub async fn barrier_reports(&mut self, sha: &CommitSha, pr: PrNumber) {
        let context = format!("barrier-{}", uuid::Uuid::new_v4().simple());
        let fake = Job {
            context: context.clone(),
            repo: self.repo.clone(),
            pr,
            head_sha: sha.clone(),
            job_id: format!("jbarrier{}", uuid::Uuid::new_v4().simple()),
            ..template()
        };
        // `Started`: a finished test would add a row to the PR's summary comment.
        self.report(&fake, ReportState::Started).await;
        self.wait_status(sha, &context, "pending", "In progress [w1]")
            .await;
        self.barrier().await;
    }
}
