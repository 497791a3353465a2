//! Issue 9's numbers (docs/benchmarks.md "Images"), on real RabbitMQ, the local forge, a real
//! podman worker and a real registry (`docker-registry` on a loopback port):
//!
//! * `builds`: ten PRs opened at once that need the same new tree → how many builds ran (and
//!   how long until all ten had their test result);
//! * `pull`: the extra time a job spends on its image, when the worker has it (`podman image
//!   exists`) and when it must pull it by digest from the registry, against the job's own run
//!   time (`podman run --rm <image> true`) — the exact commands the worker runs;
//! * `publish`: merge → the `Published latest` state on the merge commit, and the builds that
//!   ran meanwhile.
//!
//! `cargo bench --bench images [builds|pull|publish]` (RabbitMQ at 127.0.0.1:5672, podman,
//! docker-registry, skopeo and the test image `localhost/tickbot-test:latest`, which
//! `scripts/test` builds; `CONTAINERS_CONF=tasks/podman-containers.conf` where podman needs it).

#[path = "../tests/common/registry.rs"]
mod registry;
#[path = "support/mod.rs"]
mod support;

use registry::TestRegistry;
use std::time::{Duration, Instant};
use support::stats::{format_ms, percentile};
use support::{requested_sections, section_wanted, start_stack};
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::stack::Stack;
use tickbot::worker::runtime::Runtime;

const CONTAINERFILE: &str = "containers/tasks/Containerfile";

fn containerfile(version: &str) -> String {
    format!("FROM localhost/tickbot-test:latest\nRUN echo {version} > /image-version\n")
}

fn tickbot_toml(registry: &TestRegistry) -> String {
    format!(
        "[images.tasks]\ncontext = \"containers/tasks\"\nrepository = \"{}/acme/tasks\"\n\
         publish = [\"latest\"]\n\n[tests.version]\ncommand = [\"cat\", \"/image-version\"]\n\
         image = \"tasks\"\ndefault = true\n",
        registry.host
    )
}

fn podman() -> Runtime {
    Runtime::Podman {
        containers_conf: std::env::var_os("CONTAINERS_CONF").map(Into::into),
    }
}

/// A stack with `acme/images` (the image and a test in it) and one podman worker.
async fn world(dir: &std::path::Path, registry: &TestRegistry) -> (Stack, RepoName) {
    let mut stack = start_stack(dir, "bench-images", None).await;
    let repo: RepoName = "acme/images".parse().expect("valid");
    let toml = tickbot_toml(registry);
    let v1 = containerfile("v1");
    stack
        .forge
        .create_repo(
            &repo,
            "main",
            &[(".tickbot.toml", &toml), (CONTAINERFILE, &v1)],
        )
        .await
        .expect("repo");
    stack.forge.add_collaborator(&repo, "alice", "write");
    let settings = stack.worker_settings("w1", podman(), 2);
    stack.start_worker(settings);
    (stack, repo)
}

async fn open_pr(
    forge: &Forge,
    repo: &RepoName,
    branch: &str,
    content: &str,
) -> (PrNumber, CommitSha) {
    let sha = forge
        .commit_files(
            repo,
            branch,
            Some("main"),
            &[(CONTAINERFILE, content)],
            "change",
            "alice",
        )
        .await
        .expect("push");
    let pr = forge
        .create_pull(repo, branch, "main", "A change", "", false, "alice")
        .await
        .expect("PR");
    (pr, sha)
}

/// Waits until `context` on `sha` has a final state; returns its (state, link).
async fn finished(
    forge: &Forge,
    repo: &RepoName,
    sha: &CommitSha,
    context: &str,
) -> (String, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let last = forge
            .statuses(repo, sha)
            .into_iter()
            .rfind(|s| s.context == context);
        if let Some(s) = last.filter(|s| s.state != "pending") {
            return (s.state, s.target_url);
        }
        assert!(
            Instant::now() < deadline,
            "{context} never finished on {sha}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Build logs the worker wrote (a log holding `$ podman build`).
fn builds_run(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("logs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("$ podman build"))
                })
                .count()
        })
        .unwrap_or(0)
}

async fn builds() {
    let registry = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (stack, repo) = world(dir.path(), &registry).await;
    let v2 = containerfile("v2");
    let start = Instant::now();
    let mut heads = Vec::new();
    for i in 0..10 {
        heads.push(
            open_pr(&stack.forge, &repo, &format!("topic-{i}"), &v2)
                .await
                .1,
        );
    }
    for sha in &heads {
        let (state, _) = finished(&stack.forge, &repo, sha, "version").await;
        assert_eq!(state, "success");
    }
    let elapsed = start.elapsed();
    let logs: std::collections::BTreeSet<Option<String>> = heads
        .iter()
        .map(|sha| {
            stack
                .forge
                .statuses(&repo, sha)
                .into_iter()
                .rfind(|s| s.context == "image/tasks")
                .and_then(|s| s.target_url)
        })
        .collect();
    println!(
        "builds: 10 PRs needing one new tree → {} build(s) run, {} build log(s) linked; all 10 tested in {}",
        builds_run(dir.path()),
        logs.len(),
        format_ms(elapsed, 0)
    );
    stack.shutdown().await;
}

/// Runs `podman args…` and returns how long it took; panics when it fails.
fn timed_podman(args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = std::process::Command::new("podman")
        .args(args)
        .output()
        .expect("podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

async fn pull() {
    let registry = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("ctx")).expect("ctx");
    std::fs::write(dir.path().join("ctx/Containerfile"), containerfile("pull")).expect("write");
    let tag = format!("{}/acme/tasks:bench", registry.host);
    let ctx = dir.path().join("ctx");
    timed_podman(&["build", "-q", "-t", &tag, ctx.to_str().expect("utf-8")]);
    let digest_file = dir.path().join("digest");
    let digest_arg = digest_file.to_str().expect("utf-8");
    timed_podman(&[
        "push",
        "-q",
        "--tls-verify=false",
        "--digestfile",
        digest_arg,
        &tag,
    ]);
    let digest = std::fs::read_to_string(&digest_file).expect("digest");
    let pinned = format!("{}/acme/tasks@{}", registry.host, digest.trim());
    let (mut present, mut pulled, mut run) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        let _ = std::process::Command::new("podman")
            .args(["rmi", "-f", &pinned, &tag])
            .output();
        pulled.push(timed_podman(&["pull", "-q", "--tls-verify=false", &pinned]));
        present.push(timed_podman(&["image", "exists", &pinned]));
        run.push(timed_podman(&[
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            &pinned,
            "true",
        ]));
    }
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        percentile(v, 0.5)
    };
    println!(
        "pull: image on the worker (podman image exists) p50 {}; pulled by digest from a loopback \
         registry (2 MB image) p50 {}; the job itself (podman run --rm … true) p50 {} (10 runs each)",
        format_ms(p50(&mut present), 1),
        format_ms(p50(&mut pulled), 1),
        format_ms(p50(&mut run), 1)
    );
}

async fn publish() {
    let registry = TestRegistry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (stack, repo) = world(dir.path(), &registry).await;
    let mut times = Vec::new();
    let mut extra_builds = 0;
    for i in 0..5 {
        let (pr, sha) = open_pr(
            &stack.forge,
            &repo,
            &format!("land-{i}"),
            &containerfile(&format!("land-{i}")),
        )
        .await;
        finished(&stack.forge, &repo, &sha, "version").await;
        let before = builds_run(dir.path());
        let start = Instant::now();
        let merge = stack
            .forge
            .merge_pr(&repo, pr, Some(&sha), "alice")
            .await
            .expect("merge");
        let (state, _) = finished(&stack.forge, &repo, &merge, "image/tasks").await;
        assert_eq!(state, "success");
        times.push(start.elapsed());
        extra_builds += builds_run(dir.path()) - before;
    }
    times.sort();
    println!(
        "publish: merge → `Published latest` on the merge commit p50 {}, max {} (5 landings); \
         builds meanwhile: {extra_builds}",
        format_ms(percentile(&times, 0.5), 0),
        format_ms(times.last().copied().unwrap_or_default(), 0)
    );
    stack.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sections = requested_sections();
    if section_wanted(&sections, "builds") {
        builds().await;
    }
    if section_wanted(&sections, "pull") {
        pull().await;
    }
    if section_wanted(&sections, "publish") {
        publish().await;
    }
}
