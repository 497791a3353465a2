//! Benchmarks of the worker (issue 3, "Numbers"; run: `cargo bench --bench worker`).
//!
//! Two generated repositories (`git fast-import`, in a temp dir): 10,000 commits over 2,000
//! files and 100,000 commits over 20,000 files, served by the local forge over real smart HTTP.
//!
//! 1. `blocks`: the worker's building blocks one by one (leftover-container check, mirror
//!    fetch of one new commit, worktree, `podman run … true`, commit, push, worktree removal),
//!    interleaved in the same loop with a fresh `git clone` per job over the same HTTP (what
//!    Cockpit's checkout-and-run does), a shallow one, and a bare `podman run --rm true`.
//! 2. `e2e`: the real pipeline (`Stack` + an in-process worker with podman): a PR whose task
//!    runs `true` (commit = false) or touches a file (commit = true); dequeue → command start
//!    and command end → result pushed and box ticked, from the worker's own trace events,
//!    inotify on the log directory (dequeue) and the forge's status timestamps.
//! 3. `throughput`: 40 PRs with one trivial task each, N = 1, 2, 4 in-process workers; jobs/s
//!    and a check that no job was lost or run twice.
//!
//! Sections, repositories and worker counts can be picked: `-- blocks e2e throughput 10k 100k n4`.
//! Every loop is bounded in count and time; all traffic stays on 127.0.0.1.

#[path = "worker/blocks.rs"]
mod blocks;
#[path = "worker/e2e.rs"]
mod e2e;
#[path = "worker/generated.rs"]
mod generated;
#[path = "worker/log_watch.rs"]
mod log_watch;
#[path = "worker/samples.rs"]
mod samples;
#[path = "support/mod.rs"]
mod support;
#[path = "worker/throughput.rs"]
mod throughput;
#[path = "worker/trace.rs"]
mod trace;

use chrono::{DateTime, Utc};
use generated::{LARGE, SMALL, Shape};
use log_watch::LogWatch;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{requested_sections, start_stack};
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::worker::runtime::Runtime;
use trace::Recorder;

/// The image every task and bare `podman run` uses (built by the test setup).
const IMAGE: &str = "localhost/tickbot-test:latest";
/// The bound on every wait and command, so a stuck run fails instead of hanging.
const WAIT: Duration = Duration::from_secs(90);
/// Environment for git commands that ignores the machine's and the user's configuration.
const ISOLATED_GIT_ENV: [(&str, &str); 3] = [
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_TERMINAL_PROMPT", "0"),
];

/// The project's podman configuration for task containers, so bare runs match the worker's.
fn containers_conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tasks/podman-containers.conf")
}

/// The runtime the worker uses in production: podman with the project's configuration.
fn podman_runtime() -> Runtime {
    Runtime::Podman {
        containers_conf: Some(containers_conf()),
    }
}

/// Runs a command to completion (bounded), asserting success; returns its duration.
async fn timed(cmd: &mut tokio::process::Command) -> Duration {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let t = Instant::now();
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("command finished in time")
        .expect("command ran");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// git as Cockpit runs it against the forge: isolated configuration, the bot's auth header.
fn git_cmd(auth: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("git");
    cmd.envs(ISOLATED_GIT_ENV)
        .arg("-c")
        .arg(format!("http.extraHeader={auth}"));
    cmd
}

/// `podman run --rm --network none <image> true`: a container start with nothing of tickbot.
fn bare_podman() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("podman");
    cmd.env("CONTAINERS_CONF", containers_conf()).args([
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "true",
    ]);
    cmd
}

/// Awaits `f`, panicking with `what` if it takes longer than [`WAIT`].
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {WAIT:?}"),
    }
}

/// Where job checkouts and the comparison clones go: `TICKBOT_BENCH_WORK_DIR` (e.g. a tmpfs
/// such as `/dev/shm/tickbot-bench`), else `fallback` on the disk.
fn work_root(fallback: &Path) -> PathBuf {
    std::env::var_os("TICKBOT_BENCH_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fallback.to_path_buf())
}

/// Waits (bounded) for the final status of context `ctx` at `sha`, asserts it is success, and
/// returns when the forge stored it.
async fn wait_success(forge: &Forge, repo: &RepoName, sha: &CommitSha, ctx: &str) -> DateTime<Utc> {
    let deadline = Instant::now() + WAIT;
    loop {
        let statuses = forge.statuses(repo, sha);
        if let Some(s) = statuses
            .iter()
            .find(|s| s.context == ctx && s.state != "pending")
        {
            assert_eq!(s.state, "success", "{ctx}: {:?}", s.description);
            return s.created_at;
        }
        assert!(
            Instant::now() < deadline,
            "no final status for {ctx} at {}",
            sha.short()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until the PR's `- [ ] <task>` box is ticked.
async fn wait_ticked(forge: &Forge, repo: &RepoName, pr: PrNumber, task: &str) {
    let deadline = Instant::now() + WAIT;
    let ticked = format!("- [x] {task}");
    while !forge.pr(repo, pr).is_some_and(|p| p.body.contains(&ticked)) {
        assert!(Instant::now() < deadline, "PR {pr} not ticked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Repetitions per measurement: fewer on the large repository, to keep the run short.
fn reps(shape: &Shape) -> usize {
    if shape.commits > 10_000 { 3 } else { 10 }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only = requested_sections();
    let sections = ["blocks", "e2e", "throughput"];
    let pick = |s: &str| {
        !only.iter().any(|o| sections.contains(&o.as_str())) || only.iter().any(|o| o == s)
    };
    let shapes: Vec<&Shape> = [&SMALL, &LARGE]
        .into_iter()
        .filter(|s| {
            !only.iter().any(|o| o == "10k" || o == "100k") || only.iter().any(|o| o == s.label)
        })
        .collect();
    let recorder = Recorder::default();
    trace::install(&recorder);

    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stack = start_stack(dir.path(), "bench-worker", None).await;
    let watch = LogWatch::start(&dir.path().join("logs"));
    let mut repos = Vec::new();
    for shape in &shapes {
        let repo: RepoName = format!("acme/gen-{}", shape.label).parse().expect("name");
        generated::generate(&stack.forge, &repo, shape).await;
        stack.forge.add_collaborator(&repo, "alice", "write");
        repos.push((repo, *shape));
    }

    if pick("blocks") {
        for (repo, shape) in &repos {
            blocks::blocks(&stack.forge, repo, shape, reps(shape)).await;
        }
    }
    if pick("e2e") || pick("throughput") {
        let mut settings = stack.worker_settings("bench-w1", podman_runtime(), 1);
        settings.work_dir = work_root(&settings.state_dir).join("work");
        stack.start_worker(settings);
        if pick("e2e") {
            for (repo, shape) in &repos {
                e2e::e2e(&stack, repo, shape, &recorder, &watch, reps(shape)).await;
            }
        }
        if pick("throughput")
            && let Some((repo, _)) = repos.first()
        {
            let logs = dir.path().join("logs");
            throughput::throughput(&mut stack, repo, &recorder, &logs).await;
        }
    }
    drop(watch);
    stack.shutdown().await; // deletes the stack's queues
    println!("\nbenchmark took {:.0} s", started.elapsed().as_secs_f64());
}
