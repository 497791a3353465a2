//! Section 2, `e2e`: the real pipeline (`Stack` + an in-process worker with podman), phase by
//! phase, from the worker's trace events, the log directory's inotify and the forge's statuses.

use crate::generated::Shape;
use crate::log_watch::LogWatch;
use crate::samples::{Samples, Table, between};
use crate::support::stats::millis;
use crate::trace::{Ev, Recorder, disrupted, first};
use crate::{bare_podman, timed, wait_success, wait_ticked};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tickbot::ids::{CommitSha, RepoName};
use tickbot::stack::Stack;

/// One cold job, then `reps` clean samples of each task; prints each task's phases against
/// a bare `podman run` of the same run.
pub async fn e2e(
    stack: &Stack,
    repo: &RepoName,
    shape: &Shape,
    recorder: &Recorder,
    watch: &LogWatch,
    reps: usize,
) {
    let mut e = E2e {
        stack,
        repo: repo.clone(),
        recorder,
        watch,
        next: 0,
    };
    let mut ignored = Table::default();
    e.one_job("noop", &mut ignored, false).await;
    for task in ["noop", "touch"] {
        let mut t = Table::default();
        let mut clean = 0;
        for _ in 0..reps * 2 {
            if clean == reps {
                break;
            }
            if e.one_job(task, &mut t, true).await {
                clean += 1;
            }
        }
        report(&t, shape, task, reps).await;
    }
}

/// Prints a task's phases, and a bare `podman run` timed in the same run for comparison.
async fn report(t: &Table, shape: &Shape, task: &str, reps: usize) {
    let mut bare = Samples::default();
    for _ in 0..reps.min(5) {
        bare.push(timed(&mut bare_podman()).await);
    }
    t.print(&format!(
        "end to end, {} repository, task `{task}` (commit={})",
        shape.label,
        task == "touch"
    ));
    let total = t.get("A + B + C = dequeue → box ticked").median();
    let bare_m = bare.median();
    let goal = bare_m.mul_f64(1.5) + Duration::from_millis(300);
    println!(
        "  bare podman run (same run): {}\n  goal 1.5 × bare + 300 ms = {:.0} ms; total {:.0} ms → {}",
        bare.show(),
        millis(goal),
        millis(total),
        if total <= goal { "met" } else { "NOT met" }
    );
}

/// The repository jobs run on, and where their events and dequeue times are observed.
struct E2e<'a> {
    stack: &'a Stack,
    repo: RepoName,
    recorder: &'a Recorder,
    watch: &'a LogWatch,
    next: usize,
}

/// When each phase of one job began or ended.
struct Phases {
    opened: DateTime<Utc>,
    dequeued: DateTime<Utc>,
    fetched: Ev,
    fetch: Duration,
    worktree: Ev,
    started: Ev,
    exited: Ev,
    committed: Option<Ev>,
    pushed: Option<Ev>,
    removed: Ev,
    in_progress: Option<DateTime<Utc>>,
    success: DateTime<Utc>,
}

impl E2e<'_> {
    /// Pushes a branch with one new commit (not timed).
    async fn branch(&mut self) -> (String, CommitSha) {
        self.next += 1;
        let branch = format!("e2e-{}-{}", self.repo.name(), self.next);
        let sha = self
            .stack
            .forge
            .commit_files(
                &self.repo,
                &branch,
                Some("main"),
                &[(&format!("e2e-{}.txt", self.next), "a change\n")],
                "A change",
                "alice",
            )
            .await
            .expect("push a branch");
        (branch, sha)
    }

    /// Opens a PR with `- [ ] <task>` and waits for its Success status; records the phases
    /// in `t`. `false` when RabbitMQ went away meanwhile (the sample is not recorded).
    async fn one_job(&mut self, task: &str, t: &mut Table, record: bool) -> bool {
        let (sha, opened, success, events) = self.run_job(task).await;
        if disrupted(&events) {
            println!("  (sample dropped: the RabbitMQ connection was lost during it)");
            return false;
        }
        let p = self.phases(&events, &sha, opened, success);
        if !record {
            let total = between(p.dequeued, p.success);
            println!(
                "  first job on a new worker (cold mirror), {task}: dequeue → box ticked {:.0} ms",
                millis(total)
            );
            return true;
        }
        p.record(t, task);
        true
    }

    /// Opens the PR and waits until the box is ticked: the commit, when the PR was opened,
    /// the Success status's time, and the events recorded meanwhile.
    async fn run_job(&mut self, task: &str) -> (CommitSha, DateTime<Utc>, DateTime<Utc>, Vec<Ev>) {
        let (branch, sha) = self.branch().await;
        let forge = &self.stack.forge;
        forge
            .flush_webhooks(Duration::from_secs(30))
            .await
            .expect("flush");
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.recorder.take();
        let opened = Utc::now();
        let pr = forge
            .open_pr(
                &self.repo,
                &branch,
                "main",
                "A change",
                &format!("- [ ] {task}\n"),
                "alice",
            )
            .await
            .expect("open a PR");
        let success = wait_success(forge, &self.repo, &sha, task).await;
        wait_ticked(forge, &self.repo, pr, task).await;
        // The worker's last steps (worktree removal) come before its report; settle anyway.
        tokio::time::sleep(Duration::from_millis(20)).await;
        (sha, opened, success, self.recorder.take())
    }

    /// Picks the job's phases out of its events, the log watch and the forge's statuses.
    fn phases(
        &self,
        events: &[Ev],
        sha: &CommitSha,
        opened: DateTime<Utc>,
        success: DateTime<Utc>,
    ) -> Phases {
        let ev = |m: &str| {
            first(events, m)
                .unwrap_or_else(|| panic!("no `{m}` event"))
                .clone()
        };
        let started = ev("job command started");
        let job = started.fields["name"]
            .trim_start_matches("tickbot-")
            .to_string();
        let fetched = ev("mirror fetched");
        let fetch_ms: f64 = fetched.fields["elapsed_ms"].parse().expect("elapsed_ms");
        Phases {
            opened,
            dequeued: self
                .watch
                .created(&format!("{job}.log"))
                .expect("log file created"),
            fetch: Duration::from_secs_f64(fetch_ms / 1000.0),
            fetched,
            // A reused slot, or a fresh worktree for the first job in it.
            worktree: events
                .iter()
                .find(|e| e.msg == "checkout reused" || e.msg == "worktree added")
                .expect("checkout reused or worktree added")
                .clone(),
            started,
            exited: ev("job command exited"),
            committed: first(events, "committed the task's changes").cloned(),
            pushed: first(events, "result pushed").cloned(),
            removed: events
                .iter()
                .rfind(|e| e.msg == "checkout slot given back")
                .expect("checkout slot given back")
                .clone(),
            in_progress: self.in_progress(sha),
            success,
        }
    }

    /// When the In progress status (the worker's Started report) appeared at the forge; none
    /// when the job ended within the dispatcher's burst of reports.
    fn in_progress(&self, sha: &CommitSha) -> Option<DateTime<Utc>> {
        self.stack
            .forge
            .statuses(&self.repo, sha)
            .into_iter()
            .find(|s| {
                s.description
                    .as_deref()
                    .is_some_and(|d| d.starts_with("In progress"))
            })
            .map(|s| s.created_at)
    }
}

impl Phases {
    /// Adds the phases and their sums A, B, C to `t`, in the order they are printed.
    fn record(&self, t: &mut Table, task: &str) {
        let (fetched, started, exited) = (self.fetched.at, self.started.at, self.exited.at);
        t.add(
            "PR opened → dequeued (webhook, dispatcher, queue)",
            between(self.opened, self.dequeued),
        );
        t.add(
            "  dequeued → fetch starts (Started report, leftover-container check)",
            between(self.dequeued, fetched).saturating_sub(self.fetch),
        );
        t.add("  mirror fetch (one new commit)", self.fetch);
        t.add(
            "  fetched → checkout ready (reused slot)",
            between(fetched, self.worktree.at),
        );
        t.add(
            "  checkout → podman started",
            between(self.worktree.at, started),
        );
        let a = between(self.dequeued, started);
        t.add("A dequeue → podman run starts", a);
        let b = between(started, exited);
        t.add("B podman run `true` (container start, run, removal)", b);
        self.record_after_exit(t, task);
        let c = between(exited, self.success);
        t.add("C podman exited → box ticked + Success status", c);
        t.add("A + C (tickbot's own overhead)", a + c);
        t.add("A + B + C = dequeue → box ticked", a + b + c);
        if let Some(in_progress) = self.in_progress {
            t.add(
                "(In progress status visible after dequeue)",
                between(self.dequeued, in_progress),
            );
        }
    }

    /// The steps from the command's exit to the Success status (commit and push for `touch`).
    fn record_after_exit(&self, t: &mut Table, task: &str) {
        let removed = self.removed.at;
        if task == "touch" {
            let ev =
                |e: &Option<Ev>, m: &str| e.as_ref().unwrap_or_else(|| panic!("no `{m}` event")).at;
            let committed = ev(&self.committed, "committed the task's changes");
            let pushed = ev(&self.pushed, "result pushed");
            t.add("  exited → committed", between(self.exited.at, committed));
            t.add("  committed → pushed", between(committed, pushed));
            t.add("  pushed → slot given back", between(pushed, removed));
        } else {
            t.add(
                "  exited → slot given back",
                between(self.exited.at, removed),
            );
        }
        t.add(
            "  slot given back → Success status (report, tick, verify)",
            between(removed, self.success),
        );
    }
}
