//! Section 1, `blocks`: the worker's building blocks one by one, interleaved in the same loop with
//! what Cockpit does per job (a fresh clone and a bare `podman run`).

use crate::generated::Shape;
use crate::samples::Table;
use crate::{IMAGE, bare_podman, bounded, git_cmd, podman_runtime, timed, work_root};
use std::path::Path;
use std::time::{Duration, Instant};
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, RepoName};
use tickbot::worker::job_log::JobLog;
use tickbot::worker::mirror::{GitAuth, Mirrors, Worktree};
use tickbot::worker::publish::{self, PushOutcome, ResultCommit};
use tickbot::worker::runtime::{RunOutcome, RunSpec, Runtime};

/// Times each block `reps` times on `repo` and prints the table and the two ratios.
pub async fn blocks(forge: &Forge, repo: &RepoName, shape: &Shape, reps: usize) -> Table {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bench = Blocks::new(forge, repo, tmp.path());
    let mut t = Table::default();
    t.add(
        "cold mirror: first fetch (once per worker)",
        bench.cold_fetch().await,
    );
    for i in 0..reps {
        let branch = format!("blk-{}-{i}", shape.label);
        let sha = forge
            .commit_files(
                repo,
                &branch,
                Some("main"),
                &[(&format!("pr-{i}.txt"), "a change\n")],
                "A change",
                "alice",
            )
            .await
            .expect("push a branch");
        let tickbot = bench.tickbot_job(&branch, &sha).await;
        let cockpit = bench.cockpit_job(&branch, i).await;
        record(&mut t, &tickbot, &cockpit);
    }
    report(&t, shape);
    t
}

/// What every block of one repetition needs: the worker's mirrors and the forge's URL and
/// credentials.
struct Blocks<'a> {
    forge: &'a Forge,
    repo: &'a RepoName,
    tmp: &'a Path,
    mirrors: Mirrors,
    url: String,
    header: String,
    auth: GitAuth,
    runtime: Runtime,
}

/// The worker's steps of one job (commit = true), each timed.
struct TickbotJob {
    remove_leftover: Duration,
    fetch: Duration,
    worktree: Duration,
    run: Duration,
    commit: Duration,
    push: Duration,
    worktree_remove: Duration,
}

/// Cockpit's way of one job, each step timed.
struct CockpitJob {
    clone: Duration,
    clone_rm: Duration,
    shallow: Duration,
    bare_podman: Duration,
}

impl<'a> Blocks<'a> {
    fn new(forge: &'a Forge, repo: &'a RepoName, tmp: &'a Path) -> Blocks<'a> {
        let header = forge.bot_git_auth_header();
        Blocks {
            forge,
            repo,
            tmp,
            mirrors: Mirrors::new(tmp.join("mirrors")),
            url: forge.clone_url(repo),
            auth: GitAuth::header(header.clone()),
            header,
            runtime: podman_runtime(),
        }
    }

    /// A new worker's first job: the mirror starts empty (the same transfer as a clone).
    async fn cold_fetch(&self) -> Duration {
        let main = self.forge.branch_sha(self.repo, "main").expect("main");
        let s = Instant::now();
        bounded(
            "cold fetch",
            self.mirrors
                .fetch(self.repo, &self.url, "main", &main, Some(&self.auth)),
        )
        .await
        .expect("cold fetch");
        s.elapsed()
    }

    /// tickbot's worker path for `branch` at `sha`: leftover check, fetch, checkout (a reused
    /// slot after the first job), `podman run … true`, commit, push, slot given back.
    async fn tickbot_job(&self, branch: &str, sha: &CommitSha) -> TickbotJob {
        let job = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let name = format!("tickbot-{job}");
        let s = Instant::now();
        self.runtime.remove(&name).await.expect("remove leftover");
        let remove_leftover = s.elapsed();
        let s = Instant::now();
        let tip = bounded(
            "fetch",
            self.mirrors
                .fetch(self.repo, &self.url, branch, sha, Some(&self.auth)),
        )
        .await
        .expect("fetch");
        let fetch = s.elapsed();
        assert_eq!(tip.as_ref(), Some(sha));
        let pool = work_root(self.tmp).join("work").join("pool");
        let s = Instant::now();
        let wt = bounded("checkout", self.mirrors.checkout(self.repo, sha, &pool))
            .await
            .expect("checkout");
        let worktree = s.elapsed();
        let run = self.run_true(&wt, &job, name).await;
        let (commit, push) = self.commit_and_push(&wt, &job, branch, sha).await;
        let s = Instant::now();
        wt.remove().await.expect("remove worktree");
        TickbotJob {
            remove_leftover,
            fetch,
            worktree,
            run,
            commit,
            push,
            worktree_remove: s.elapsed(),
        }
    }

    /// `podman run` of `true` in the worktree, with the worker's flags and mount.
    async fn run_true(&self, wt: &Worktree, job: &str, name: String) -> Duration {
        let spec = RunSpec {
            name,
            image: IMAGE.into(),
            argv: vec!["true".into()],
            workdir: wt.path().to_path_buf(),
            env: vec![],
            network: false,
            timeout: Duration::from_secs(60),
            memory: "1g".into(),
            pids_limit: 1024,
        };
        let (_cancel, rx) = tokio::sync::watch::channel(false);
        let log = self.tmp.join("logs").join(format!("{job}.log"));
        std::fs::create_dir_all(log.parent().expect("parent")).expect("logs");
        let s = Instant::now();
        let outcome = bounded(
            "podman run",
            self.runtime.run(&spec, &JobLog::new(&log), rx),
        )
        .await
        .expect("run");
        let d = s.elapsed();
        assert_eq!(outcome, RunOutcome::Exited(0));
        d
    }

    /// Commits a result file and pushes it with a lease: the two durations.
    async fn commit_and_push(
        &self,
        wt: &Worktree,
        job: &str,
        branch: &str,
        sha: &CommitSha,
    ) -> (Duration, Duration) {
        std::fs::write(wt.path().join("result.txt"), format!("{job}\n")).expect("result");
        let s = Instant::now();
        let commit = publish::commit_changes(
            wt,
            &ResultCommit {
                author_name: "tickbot",
                author_email: "tickbot@localhost",
                message: "bench: result",
                job_id: job,
                log_url: "http://127.0.0.1:9/logs/x",
            },
        )
        .await
        .expect("commit")
        .expect("a change to commit");
        let d_commit = s.elapsed();
        let s = Instant::now();
        let pushed = bounded(
            "push",
            publish::push_result(
                &self.mirrors,
                self.repo,
                wt,
                &commit,
                &self.url,
                branch,
                sha,
                Some(&self.auth),
                3,
            ),
        )
        .await
        .expect("push");
        let d_push = s.elapsed();
        assert_eq!(pushed, PushOutcome::Pushed(commit));
        (d_commit, d_push)
    }

    /// Cockpit's way: a fresh full clone of the PR branch per job, deleted afterwards; and,
    /// for comparison, a shallow clone and a bare `podman run --rm true`.
    async fn cockpit_job(&self, branch: &str, i: usize) -> CockpitJob {
        let clone_dir = work_root(self.tmp).join(format!("clone-{i}"));
        let clone = timed(
            git_cmd(&self.header)
                .args(["clone", "--quiet", "--branch", branch, &self.url])
                .arg(&clone_dir),
        )
        .await;
        let s = Instant::now();
        std::fs::remove_dir_all(&clone_dir).expect("rm clone");
        let clone_rm = s.elapsed();
        let shallow = timed(
            git_cmd(&self.header)
                .args(["clone", "--quiet", "--depth=1", "--branch", branch])
                .arg(&self.url)
                .arg(&clone_dir),
        )
        .await;
        std::fs::remove_dir_all(&clone_dir).expect("rm clone");
        CockpitJob {
            clone,
            clone_rm,
            shallow,
            bare_podman: timed(&mut bare_podman()).await,
        }
    }
}

/// Adds one repetition's blocks and their sums to `t`, in the order they are printed.
fn record(t: &mut Table, job: &TickbotJob, cockpit: &CockpitJob) {
    t.add(
        "leftover-container check (podman rm + exists)",
        job.remove_leftover,
    );
    t.add("mirror fetch (one new commit)", job.fetch);
    t.add("checkout (reused slot)", job.worktree);
    t.add("podman run (worker flags, mount) `true`", job.run);
    t.add("commit (commit=true)", job.commit);
    t.add("push with lease (commit=true)", job.push);
    t.add("slot given back", job.worktree_remove);
    let git_prep = job.fetch + job.worktree;
    t.add("= tickbot checkout: fetch + checkout", git_prep);
    t.add(
        "= tickbot git per job: fetch + checkout + give back",
        git_prep + job.worktree_remove,
    );
    let job_false = job.remove_leftover + git_prep + job.run + job.worktree_remove;
    t.add("= tickbot job, commit=false (sum of blocks)", job_false);
    t.add(
        "= tickbot job, commit=true (sum of blocks)",
        job_false + job.commit + job.push,
    );
    t.add("fresh full clone (--branch, with checkout)", cockpit.clone);
    t.add("rm -rf of the clone", cockpit.clone_rm);
    t.add("fresh shallow clone (--depth=1)", cockpit.shallow);
    t.add(
        "bare podman run --rm --network none `true`",
        cockpit.bare_podman,
    );
    t.add(
        "= Cockpit job: full clone + bare podman run",
        cockpit.clone + cockpit.bare_podman,
    );
}

/// Prints the table and how tickbot's checkout and job compare with Cockpit's.
fn report(t: &Table, shape: &Shape) {
    t.print(&format!(
        "building blocks, {} repository ({} commits)",
        shape.label, shape.commits
    ));
    let clone = t.get("fresh full clone (--branch, with checkout)").median();
    let prep = t.get("= tickbot checkout: fetch + checkout").median();
    let cockpit = t
        .get("= Cockpit job: full clone + bare podman run")
        .median();
    let job = t
        .get("= tickbot job, commit=false (sum of blocks)")
        .median();
    println!(
        "  checkout: fresh clone ÷ (fetch + checkout) = {:.1}×;  job: Cockpit ÷ tickbot(commit=false) = {:.1}×",
        clone.as_secs_f64() / prep.as_secs_f64(),
        cockpit.as_secs_f64() / job.as_secs_f64()
    );
}
