//! The worker's parts against real things: the local forge's git over smart HTTP, real
//! podman running the test image, and the host runtime.
//!
//! The podman tests need podman, runc and busybox-static (`apt-get install podman runc
//! busybox-static`); they build `localhost/tickbot-test:latest` with
//! `tasks/test-image/build.sh` and use `tasks/podman-containers.conf`. Without podman they
//! fail, on purpose: a missing runtime must not look like a passing test.

mod common;
mod worker_parts_support;

use common::podman;
use std::time::{Duration, Instant};
use tickbot::ids::CommitSha;
use tickbot::worker::job_log::JobLog;
use tickbot::worker::mirror::{GitError, Mirrors};
use tickbot::worker::publish::{PushOutcome, commit_changes};
use tickbot::worker::runtime::{RunOutcome, Runtime};
use tokio::sync::watch;
use worker_parts_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fetch_reuses_the_mirror_and_brings_only_the_new_objects() {
    let w = World::new().await;
    let mirror = w.mirrors.path(&w.repo);
    assert_eq!(w.fetch_head().await, Some(w.head.clone()));
    let before = object_count(&mirror).await;
    // Proof that the second fetch reuses this mirror rather than cloning afresh.
    std::fs::write(mirror.join("tickbot-test-marker"), "").expect("marker");

    let next = w.person_pushes(&[("b.txt", "bee 2\n")], "Change b").await;
    let tip = bounded(w.mirrors.fetch(&w.repo, &w.url, BRANCH, &next, None))
        .await
        .expect("second fetch");
    assert_eq!(tip, Some(next.clone()));
    assert!(
        mirror.join("tickbot-test-marker").exists(),
        "mirror re-cloned"
    );
    // One commit changing one top-level file: a commit, a root tree, a blob.
    assert_eq!(object_count(&mirror).await, before + 3);
    w.forge.shutdown().await;
}

/// A world whose mirror holds the branch's first commit and a newer one a person pushed.
async fn world_with_a_new_commit() -> (World, CommitSha) {
    let w = World::fetched().await;
    let next = w.person_pushes(&[("b.txt", "bee 2\n")], "Change b").await;
    let tip = bounded(w.mirrors.fetch(&w.repo, &w.url, BRANCH, &next, None))
        .await
        .expect("second fetch");
    assert_eq!(tip, Some(next.clone()));
    (w, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_of_one_repository_both_succeed() {
    let (w, next) = world_with_a_new_commit().await;
    let (x, y) = tokio::join!(
        w.mirrors.fetch(&w.repo, &w.url, BRANCH, &next, None),
        w.mirrors.fetch(&w.repo, &w.url, BRANCH, &w.head, None),
    );
    assert_eq!(x.expect("first"), Some(next.clone()));
    assert_eq!(y.expect("second"), Some(next.clone()));
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktree_sits_detached_at_the_exact_commit_and_is_removed_whole() {
    let (w, _next) = world_with_a_new_commit().await;
    let mirror = w.mirrors.path(&w.repo);
    let dir = w.job_dir("j-exact");
    let wt = bounded(w.mirrors.worktree(&w.repo, &w.head, &dir))
        .await
        .expect("worktree");
    let wt_path = wt.path().to_string_lossy().into_owned();
    assert_eq!(
        git(&["-C", &wt_path, "rev-parse", "HEAD"]).await.trim(),
        w.head.0
    );
    let branch = git(&["-C", &wt_path, "rev-parse", "--abbrev-ref", "HEAD"]).await;
    assert_eq!(branch.trim(), "HEAD", "detached");
    assert_eq!(
        std::fs::read_to_string(dir.join("b.txt")).expect("b"),
        "bee\n"
    );
    std::fs::write(dir.join("left-behind.txt"), "junk").expect("junk");
    bounded(wt.remove()).await.expect("removed");
    assert!(!dir.exists(), "worktree directory is gone");
    let list = git(&["--git-dir", &mirror.to_string_lossy(), "worktree", "list"]).await;
    assert_eq!(list.lines().count(), 1, "only the bare mirror: {list}");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worktree_dropped_without_remove_is_still_cleaned_up() {
    let (w, next) = world_with_a_new_commit().await;
    let dir = w.job_dir("j-dropped");
    let wt = bounded(w.mirrors.worktree(&w.repo, &next, &dir))
        .await
        .expect("worktree");
    drop(wt);
    assert!(!dir.exists(), "dropped worktree is gone");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_worktree_is_replaced_by_the_redelivered_job() {
    let (w, next) = world_with_a_new_commit().await;
    let dir = w.job_dir("j-redelivered");
    let leftover = bounded(w.mirrors.worktree(&w.repo, &w.head, &dir))
        .await
        .expect("worktree");
    std::mem::forget(leftover);
    std::fs::write(dir.join("half-done.txt"), "x").expect("junk");
    let again = bounded(w.mirrors.worktree(&w.repo, &next, &dir))
        .await
        .expect("worktree replaces the leftover");
    assert!(!dir.join("half-done.txt").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("b.txt")).expect("b"),
        "bee 2\n"
    );
    bounded(again.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_that_is_not_a_worktree_is_never_deleted() {
    let w = World::fetched().await;
    let foreign = w.job_dir("not-a-worktree");
    std::fs::create_dir_all(&foreign).expect("dir");
    std::fs::write(foreign.join("precious.txt"), "keep").expect("file");
    let err = bounded(w.mirrors.worktree(&w.repo, &w.head, &foreign))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("not a worktree"), "{err}");
    assert!(foreign.join("precious.txt").exists());
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_nobody_pushed_is_an_error_that_names_it() {
    let w = World::fetched().await;
    let unknown = CommitSha("0123456789abcdef0123456789abcdef01234567".into());
    let err = bounded(w.mirrors.fetch(&w.repo, &w.url, BRANCH, &unknown, None))
        .await
        .expect_err("unknown commit");
    assert!(matches!(err, GitError::MissingCommit { .. }), "{err}");
    assert!(err.to_string().contains(&unknown.0), "{err}");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_branch_has_no_tip_but_its_commit_is_fetched_by_id() {
    let w = World::fetched().await;
    let gone = bounded(
        w.mirrors
            .fetch(&w.repo, &w.url, "no-such-branch", &w.head, None),
    )
    .await
    .expect("fetch by id");
    assert_eq!(gone, None);
    // ... also in a mirror that never saw the branch: the commit is fetched by its id.
    let fresh = Mirrors::new(w.dir.path().join("other-mirrors"));
    let gone = bounded(fresh.fetch(&w.repo, &w.url, "no-such-branch", &w.head, None))
        .await
        .expect("fetch by id");
    assert_eq!(gone, None);
    let wt = bounded(fresh.worktree(&w.repo, &w.head, &w.job_dir("j-by-id")))
        .await
        .expect("worktree of a commit fetched by id");
    bounded(wt.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_is_one_commit_with_trailers_or_none() {
    let w = World::fetched().await;
    let (dir, wt) = w.head_worktree("j-commit").await;
    let rc = result_commit("j-commit", "http://logs.example/logs/j-commit");

    assert_eq!(
        bounded(commit_changes(&wt, &rc)).await.expect("commit"),
        None
    );

    std::fs::write(dir.join("a.txt"), "changed\n").expect("modify");
    std::fs::remove_file(dir.join("b.txt")).expect("delete");
    std::fs::create_dir_all(dir.join("new")).expect("mkdir");
    std::fs::write(dir.join("new/d.txt"), "dee\n").expect("add");
    let sha = bounded(commit_changes(&wt, &rc))
        .await
        .expect("commit")
        .expect("a commit");

    let wt_path = wt.path().to_string_lossy().into_owned();
    let shown = git(&[
        "-C",
        &wt_path,
        "log",
        "-1",
        "--format=%H%n%P%n%an <%ae>%n%cn <%ce>%n%B",
    ])
    .await;
    assert_eq!(
        shown,
        format!(
            "{}\n{}\ntickbot <tickbot@example.org>\ntickbot <tickbot@example.org>\n\
             images: Update fedora-41 image\n\n\
             Tickbot-Job: j-commit\nTickbot-Log: http://logs.example/logs/j-commit\n\n",
            sha.0, w.head.0
        )
    );
    let trailers = git(&[
        "-C",
        &wt_path,
        "log",
        "-1",
        "--format=%(trailers:key=Tickbot-Job,valueonly)",
    ])
    .await;
    assert_eq!(trailers.trim(), "j-commit");
    let status = git(&["-C", &wt_path, "show", "--name-status", "--format=", &sha.0]).await;
    assert_eq!(status, "M\ta.txt\nD\tb.txt\nA\tnew/d.txt\n");

    // Nothing left to commit afterwards.
    assert_eq!(
        bounded(commit_changes(&wt, &rc)).await.expect("commit"),
        None
    );
    bounded(wt.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_rewriting_the_checkouts_git_file_cannot_run_code_on_the_host() {
    let w = World::fetched().await;
    let (dir, wt) = w.head_worktree("j-hostile").await;
    // What a hostile task could do from inside its container: point `.git` at a repository
    // of its own whose config runs a command whenever git looks at the tree.
    let pwned = w.dir.path().join("pwned");
    let evil = w.dir.path().join("evil");
    git(&["init", "--quiet", &evil.to_string_lossy()]).await;
    let evil_git = evil.join(".git").to_string_lossy().into_owned();
    let hook = format!("touch {}", pwned.display());
    git(&["--git-dir", &evil_git, "config", "core.fsmonitor", &hook]).await;
    std::fs::write(dir.join(".git"), format!("gitdir: {evil_git}\n")).expect("rewrite .git");
    std::fs::write(dir.join("c.txt"), "changed\n").expect("modify");

    let sha = commit_result(&wt, "j-hostile").await;
    assert!(!pwned.exists(), "the job's git config ran on the host");
    // The trap is real: git trusting the checkout's `.git` file springs it.
    let _ = bounded(
        tokio::process::Command::new("git")
            .args(["-C", &dir.to_string_lossy(), "status", "--short"])
            .output(),
    )
    .await;
    assert!(pwned.exists(), "the test's trap did not work");
    let mirror = w.mirrors.path(&w.repo).to_string_lossy().into_owned();
    let files = git(&[
        "--git-dir",
        &mirror,
        "show",
        "--name-only",
        "--format=",
        &sha.0,
    ])
    .await;
    assert_eq!(
        files, "c.txt\n",
        "only the task's change, not the fake .git"
    );
    bounded(wt.remove()).await.expect("removed");
    assert!(!dir.exists());
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_is_pushed_with_a_lease_and_found_again_by_its_trailer() {
    let w = World::fetched().await;
    let (dir, wt) = w.head_worktree("j-push").await;
    std::fs::write(dir.join("c.txt"), "sea 2\n").expect("modify");
    let commit = commit_result(&wt, "j-push").await;

    let pushed = w.push(&wt, &commit).await;
    assert_eq!(pushed, PushOutcome::Pushed(commit.clone()));
    assert_eq!(w.tip(), commit);

    // A redelivered job sees that its work landed.
    let tip = w.fetch_head().await.expect("tip");
    let landed = w.landed(&tip, "j-push").await;
    assert_eq!(landed, Some(commit.clone()));
    for other in ["j-pus", "j-push2", "j-other"] {
        let none = w.landed(&tip, other).await;
        assert_eq!(none, None, "{other}");
    }
    bounded(wt.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_pushing_meanwhile_gets_the_result_rebased_on_top() {
    let w = World::fetched().await;
    let (dir, wt) = w.head_worktree("j-rebase").await;
    std::fs::write(dir.join("c.txt"), "sea from the task\n").expect("modify");
    let commit = commit_result(&wt, "j-rebase").await;

    let theirs = w
        .person_pushes(&[("b.txt", "bee from alice\n")], "Alice's change")
        .await;
    let outcome = w.push(&wt, &commit).await;
    let PushOutcome::Pushed(rebased) = outcome else {
        panic!("expected a rebased push, got {outcome:?}");
    };
    assert_ne!(rebased, commit, "a new commit on the new head");
    assert_eq!(w.tip(), rebased);

    let tip = w.fetch_head().await.expect("tip");
    assert_eq!(tip, rebased);
    let mirror = w.mirrors.path(&w.repo).to_string_lossy().into_owned();
    let log = git(&[
        "--git-dir",
        &mirror,
        "log",
        "--format=%H %s",
        &format!("{}..{}", w.head.0, rebased.0),
    ])
    .await;
    assert_eq!(
        log,
        format!(
            "{} images: Update fedora-41 image\n{} Alice's change\n",
            rebased.0, theirs.0
        )
    );
    assert_eq!(
        w.forge.file(&w.repo, BRANCH, "b.txt").await.as_deref(),
        Some("bee from alice\n")
    );
    assert_eq!(
        w.forge.file(&w.repo, BRANCH, "c.txt").await.as_deref(),
        Some("sea from the task\n")
    );
    let landed = w.landed(&tip, "j-rebase").await;
    assert_eq!(landed, Some(rebased));
    bounded(wt.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_push_meanwhile_means_the_head_moved() {
    let w = World::fetched().await;
    let (dir, wt) = w.head_worktree("j-conflict").await;
    std::fs::write(dir.join("a.txt"), "one\nTASK\nthree\n").expect("modify");
    let commit = commit_result(&wt, "j-conflict").await;
    let theirs = w
        .person_pushes(&[("a.txt", "one\nALICE\nthree\n")], "Alice edits a")
        .await;

    let outcome = w.push(&wt, &commit).await;
    assert_eq!(
        outcome,
        PushOutcome::HeadMoved {
            reason: "PR head moved and the result does not apply: conflict in a.txt".into()
        }
    );
    assert_eq!(w.tip(), theirs, "the person's push is untouched");
    bounded(wt.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// runtimes

const WRITE_AND_FAIL: &str = "echo \"$GREETING\" > result.txt; ls /sys/class/net > net.txt; \
                              echo on-stdout; echo on-stderr >&2; exit 3";

#[tokio::test]
async fn podman_runs_the_checkout_without_network_and_reports_the_exit_code() {
    test_image();
    bounded(podman().check()).await.expect("podman works");
    let job = Job::new(&["/bin/sh", "-c", WRITE_AND_FAIL]);
    assert_eq!(job.run(&podman()).await, RunOutcome::Exited(3));
    assert_eq!(job.file("result.txt"), "hello from the job\n");
    assert_eq!(
        job.file("net.txt"),
        "lo\n",
        "only loopback with --network none"
    );
    let log = job.log_text();
    assert!(
        log.contains("on-stdout") && log.contains("on-stderr"),
        "{log}"
    );
    assert!(!container_exists(&job.spec.name).await, "--rm removed it");

    let ok = Job::new(&["/bin/sh", "-c", "touch made-in-container"]);
    assert_eq!(ok.run(&podman()).await, RunOutcome::Exited(0));
    assert!(ok.spec.workdir.join("made-in-container").exists());
}

#[tokio::test]
async fn host_runs_the_checkout_with_a_clean_environment() {
    let job = Job::new(&[
        "/bin/sh",
        "-c",
        "echo \"$GREETING\" > result.txt; env > env.txt; pwd; exit 4",
    ]);
    assert_eq!(job.run(&Runtime::Host).await, RunOutcome::Exited(4));
    assert_eq!(job.file("result.txt"), "hello from the job\n");
    let env = job.file("env.txt");
    // cargo sets CARGO_* for the test process; none of it may reach the job.
    assert!(!env.contains("CARGO"), "{env}");
    assert!(env.contains("PATH=") && env.contains("HOME="), "{env}");
    let cwd = std::fs::canonicalize(&job.spec.workdir).expect("workdir");
    assert!(
        job.log_text().contains(&*cwd.to_string_lossy()),
        "runs in the worktree"
    );

    // `./script` is the checkout's script.
    let script = Job::new(&["./task.sh", "an arg"]);
    let path = script.spec.workdir.join("task.sh");
    std::fs::write(&path, "#!/bin/sh\necho \"got $1\" > out.txt\n").expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(script.run(&Runtime::Host).await, RunOutcome::Exited(0));
    assert_eq!(script.file("out.txt"), "got an arg\n");
}

/// The log is written as the command runs: its first line is there while it waits for a
/// file that the test creates only after seeing that line.
async fn log_is_live(rt: Runtime, go: &str) {
    let wait_then_finish =
        format!("echo first line; while [ ! -e {go} ]; do sleep 0.05; done; echo second line");
    let job = Job::new(&["/bin/sh", "-c", &wait_then_finish]);
    let (_cancel, rx) = watch::channel(false);
    let running = {
        let (spec, log) = (job.spec.clone(), job.log());
        tokio::spawn(async move { rt.run(&spec, &JobLog::new(&log), rx).await })
    };
    job.wait_for_log("first line").await;
    assert!(!job.log_text().contains("second line"));
    assert!(!running.is_finished());
    std::fs::write(job.spec.workdir.join("go"), "").expect("go");
    let outcome = bounded(running).await.expect("joined").expect("run");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_eq!(job.log_text(), "first line\nsecond line\n");
}

#[tokio::test]
async fn podman_streams_the_log() {
    test_image();
    log_is_live(podman(), "/work/go").await;
}

#[tokio::test]
async fn host_streams_the_log() {
    log_is_live(Runtime::Host, "go").await;
}

#[tokio::test]
async fn podman_timeout_stops_and_removes_the_container() {
    test_image();
    let mut job = Job::new(&["/bin/sh", "-c", "echo started; sleep 600"]);
    job.spec.timeout = Duration::from_secs(2);
    let start = Instant::now();
    assert_eq!(job.run(&podman()).await, RunOutcome::TimedOut);
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(job.log_text().contains("started"));
    assert!(
        !container_exists(&job.spec.name).await,
        "container left behind"
    );
}

#[tokio::test]
async fn podman_cancel_stops_and_removes_the_container() {
    test_image();
    let job = Job::new(&["/bin/sh", "-c", "echo started; sleep 600"]);
    let (cancel, rx) = watch::channel(false);
    let running = {
        let (spec, log) = (job.spec.clone(), job.log());
        tokio::spawn(async move { podman().run(&spec, &JobLog::new(&log), rx).await })
    };
    job.wait_for_log("started").await;
    assert!(container_exists(&job.spec.name).await, "running");
    cancel.send(true).expect("cancel");
    let outcome = bounded(running).await.expect("joined").expect("run");
    assert_eq!(outcome, RunOutcome::Cancelled);
    assert!(
        !container_exists(&job.spec.name).await,
        "container left behind"
    );
}

#[tokio::test]
async fn podman_run_abandoned_midway_still_removes_its_container() {
    test_image();
    let job = Job::new(&["/bin/sh", "-c", "echo started; sleep 600"]);
    let (_cancel, rx) = watch::channel(false);
    let running = {
        let (spec, log) = (job.spec.clone(), job.log());
        tokio::spawn(async move { podman().run(&spec, &JobLog::new(&log), rx).await })
    };
    job.wait_for_log("started").await;
    // A worker task aborted mid-job (e.g. its runtime shutting down) drops the future.
    running.abort();
    let start = Instant::now();
    while container_exists(&job.spec.name).await {
        assert!(
            start.elapsed() < WAIT,
            "abandoned container was never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn podman_reports_a_missing_image_in_the_log() {
    test_image();
    let mut job = Job::new(&["true"]);
    job.spec.image = "localhost/tickbot-no-such-image:latest".into();
    assert_eq!(job.run(&podman()).await, RunOutcome::Exited(125));
    assert!(
        job.log_text().contains("tickbot-no-such-image"),
        "{}",
        job.log_text()
    );
}

#[tokio::test]
async fn remove_clears_a_container_left_by_a_killed_worker() {
    test_image();
    let name = format!("tickbot-test-{}", uuid::Uuid::new_v4().simple());
    // What a SIGKILLed worker leaves: a running container with the job's name.
    let started = podman_cli(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &name,
        "--network",
        "none",
        IMAGE,
        "sleep",
        "600",
    ])
    .await;
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert!(container_exists(&name).await);
    bounded(podman().remove(&name)).await.expect("removed");
    assert!(!container_exists(&name).await, "container still there");
    // Nothing to remove is fine too.
    bounded(podman().remove(&name)).await.expect("idempotent");
}

/// Waits (bounded) until process `pid` is dead: gone, or a zombie its new parent has not
/// reaped yet (SIGKILL is delivered at once, reaping is someone else's business).
async fn wait_gone(pid: &str) {
    let stat = format!("/proc/{}/stat", pid.trim());
    let start = Instant::now();
    loop {
        let state = std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
            .flatten();
        if matches!(state, None | Some('Z') | Some('X')) {
            return;
        }
        assert!(start.elapsed() < WAIT, "process {pid} survived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn host_timeout_and_cancel_stop_the_whole_process_group() {
    // A child that ignores SIGTERM and a grandchild in the background: both must go.
    let stubborn = "trap '' TERM; sleep 600 & echo $! > bg.pid; echo started; wait";
    let mut job = Job::new(&["/bin/sh", "-c", stubborn]);
    job.spec.timeout = Duration::from_secs(1);
    assert_eq!(job.run(&Runtime::Host).await, RunOutcome::TimedOut);
    wait_gone(&job.file("bg.pid")).await;

    let job = Job::new(&["/bin/sh", "-c", stubborn]);
    let (cancel, rx) = watch::channel(false);
    let running = {
        let (spec, log) = (job.spec.clone(), job.log());
        tokio::spawn(async move { Runtime::Host.run(&spec, &JobLog::new(&log), rx).await })
    };
    job.wait_for_log("started").await;
    cancel.send(true).expect("cancel");
    let outcome = bounded(running).await.expect("joined").expect("run");
    assert_eq!(outcome, RunOutcome::Cancelled);
    wait_gone(&job.file("bg.pid")).await;

    // Already cancelled: nothing starts.
    let (_cancel, rx) = watch::channel(true);
    let never = Job::new(&["/bin/sh", "-c", "touch ran"]);
    let outcome = bounded(Runtime::Host.run(&never.spec, &JobLog::new(never.log()), rx))
        .await
        .expect("run");
    assert_eq!(outcome, RunOutcome::Cancelled);
    assert!(!never.spec.workdir.join("ran").exists());
}

/// Every path under `dir` but its top-level `.git`: kind, permission bits and contents.
fn tree_listing(dir: &std::path::Path) -> Vec<(String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            if rel == ".git" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let what = if meta.is_symlink() {
                format!(
                    "link to {}",
                    std::fs::read_link(&path).expect("link").display()
                )
            } else if meta.is_dir() {
                todo.push(path.clone());
                "dir".to_string()
            } else {
                let mode = meta.permissions().mode() & 0o777;
                let text = std::fs::read_to_string(&path).expect("text");
                format!("{mode:o} {text:?}")
            };
            out.push((rel, what));
        }
    }
    out.sort();
    out
}

/// What a job could do to its checkout `slot` from inside its container: change a file keeping
/// its size and mtime, delete one, chmod one, leave untracked, ignored and nested-repository
/// files, make a directory a symlink to outside, and make `.git` a repository of its own whose
/// config runs a command when git looks. The outside directory and the trap's marker file.
async fn vandalize(w: &World, slot: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = slot.join("a.txt");
    let mtime = std::fs::metadata(&a)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::fs::write(&a, "ONE\nTWO\nTHREE\n").expect("same size, other text");
    let file = std::fs::File::options().write(true).open(&a).expect("open");
    file.set_modified(mtime).expect("mtime put back");
    std::fs::remove_file(slot.join("c.txt")).expect("delete a tracked file");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(slot.join("b.txt"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::write(slot.join("junk.txt"), "junk").expect("untracked");
    std::fs::write(slot.join(".gitignore"), "*.log\n").expect("ignore rule");
    std::fs::write(slot.join("build.log"), "ignored").expect("ignored");
    git(&["init", "--quiet", &slot.join("nested").to_string_lossy()]).await;
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("d.txt"), "outside\n").expect("outside file");
    std::fs::remove_dir_all(slot.join("docs")).expect("docs");
    std::os::unix::fs::symlink(&outside, slot.join("docs")).expect("docs -> outside");
    let pwned = w.dir.path().join("pwned");
    let evil = w.dir.path().join("evil");
    git(&["init", "--quiet", &evil.to_string_lossy()]).await;
    let evil_git = evil.join(".git");
    let hook = format!("touch {}", pwned.display());
    git(&[
        "--git-dir",
        &evil_git.to_string_lossy(),
        "config",
        "core.fsmonitor",
        &hook,
    ])
    .await;
    std::fs::remove_file(slot.join(".git")).expect(".git file");
    std::fs::rename(&evil_git, slot.join(".git")).expect(".git is the job's repository now");
    (outside, pwned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_checkout_equals_a_fresh_one_whatever_the_job_before_did() {
    let w = World::fetched().await;
    let next = w
        .person_pushes(&[("docs/d.txt", "dee\n")], "Add docs")
        .await;
    bounded(w.mirrors.fetch(&w.repo, &w.url, BRANCH, &next, None))
        .await
        .expect("fetch");
    let pool = w.dir.path().join("state/work/pool");
    let first = bounded(w.mirrors.checkout(&w.repo, &next, &pool))
        .await
        .expect("checkout");
    let slot = first.path().to_path_buf();

    let (outside, pwned) = vandalize(&w, &slot).await;
    bounded(first.remove()).await.expect("slot given back");
    assert!(slot.exists(), "the slot stays for the next job");

    let second = bounded(w.mirrors.checkout(&w.repo, &next, &pool))
        .await
        .expect("checkout again");
    assert_eq!(second.path(), slot);
    assert!(
        second.reused(),
        "cleaned and verified, not checked out afresh"
    );
    let fresh = bounded(w.mirrors.worktree(&w.repo, &next, &w.job_dir("fresh")))
        .await
        .expect("fresh worktree");
    assert_eq!(tree_listing(&slot), tree_listing(fresh.path()));
    assert!(!pwned.exists(), "the job's git config ran on the host");
    assert_eq!(
        tree_listing(&outside),
        vec![("d.txt".into(), "644 \"outside\\n\"".into())]
    );
    let head = git(&["-C", &slot.to_string_lossy(), "rev-parse", "HEAD"]).await;
    assert_eq!(head.trim(), next.0);

    // A second job at once gets a slot of its own; the first one's is busy.
    let other = bounded(w.mirrors.checkout(&w.repo, &w.head, &pool))
        .await
        .expect("a second slot");
    assert_ne!(other.path(), slot);
    assert!(!other.reused());
    assert_eq!(
        std::fs::read_to_string(other.path().join("c.txt")).expect("c"),
        "sea\n"
    );
    bounded(fresh.remove()).await.expect("removed");
    w.forge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_git_data_was_pruned_is_checked_out_afresh() {
    let (w, next) = world_with_a_new_commit().await;
    let pool = w.dir.path().join("state/work/pool");
    let first = bounded(w.mirrors.checkout(&w.repo, &w.head, &pool))
        .await
        .expect("checkout");
    let slot = first.path().to_path_buf();
    // The job deleted the slot's `.git`, and another job's clean-up pruned its admin data.
    std::fs::remove_file(slot.join(".git")).expect(".git");
    std::fs::write(slot.join("junk.txt"), "junk").expect("junk");
    drop(first); // as when the worker is killed: the slot's lock goes with the process
    let mirror = w.mirrors.path(&w.repo).to_string_lossy().into_owned();
    git(&["--git-dir", &mirror, "worktree", "prune"]).await;

    let again = bounded(w.mirrors.checkout(&w.repo, &next, &pool))
        .await
        .expect("checkout afresh");
    assert_eq!(again.path(), slot);
    assert!(!again.reused());
    assert!(!slot.join("junk.txt").exists());
    assert_eq!(
        std::fs::read_to_string(slot.join("b.txt")).expect("b"),
        "bee 2\n"
    );
    let list = git(&["--git-dir", &mirror, "worktree", "list"]).await;
    assert_eq!(
        list.lines().count(),
        2,
        "the mirror and the one slot: {list}"
    );
    w.forge.shutdown().await;
}
