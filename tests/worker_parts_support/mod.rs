//! The worker parts' test world: a local forge with one repository and a PR branch, the
//! worker's git mirrors, git for the tests' own observations, and jobs for the runtimes.

use crate::common::containers_conf;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tickbot::forge::{Forge, ForgeOptions};
use tickbot::ids::{CommitSha, RepoName};
use tickbot::worker::job_log::JobLog;
use tickbot::worker::mirror::{GitAuth, Mirrors, Worktree};
use tickbot::worker::publish::{PushOutcome, ResultCommit, commit_changes, push_result};
use tickbot::worker::runtime::{RunOutcome, RunSpec, Runtime};
use tokio::sync::watch;

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(60);
pub const IMAGE: &str = "localhost/tickbot-test:latest";
pub const BRANCH: &str = "pr-branch";

// ---------------------------------------------------------------------------------------
// git: mirror, worktree, commit, push

/// A forge with one repository whose PR branch holds `a.txt`, `b.txt` and `c.txt`.
pub struct World {
    pub dir: tempfile::TempDir,
    pub forge: Forge,
    pub repo: RepoName,
    pub url: String,
    pub mirrors: Mirrors,
    pub head: CommitSha,
}

impl World {
    pub async fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let forge = Forge::start(ForgeOptions::local(dir.path().join("forge")))
            .await
            .expect("forge starts");
        let repo: RepoName = "alice/project".parse().expect("repo name");
        forge
            .create_repo(&repo, "main", &[("README.md", "project\n")])
            .await
            .expect("repo created");
        let head = forge
            .commit_files(
                &repo,
                BRANCH,
                Some("main"),
                &[
                    ("a.txt", "one\ntwo\nthree\n"),
                    ("b.txt", "bee\n"),
                    ("c.txt", "sea\n"),
                ],
                "Add files",
                "alice",
            )
            .await
            .expect("branch pushed");
        let url = forge.clone_url(&repo);
        let mirrors = Mirrors::new(dir.path().join("state/mirrors"));
        World {
            dir,
            forge,
            repo,
            url,
            mirrors,
            head,
        }
    }

    pub fn auth(&self) -> GitAuth {
        GitAuth::header(self.forge.bot_git_auth_header())
    }

    pub fn job_dir(&self, job: &str) -> PathBuf {
        self.dir.path().join("state/work").join(job)
    }

    pub async fn fetch_head(&self) -> Option<CommitSha> {
        bounded(
            self.mirrors
                .fetch(&self.repo, &self.url, BRANCH, &self.head, None),
        )
        .await
        .expect("fetch")
    }

    pub async fn person_pushes(&self, files: &[(&str, &str)], message: &str) -> CommitSha {
        self.forge
            .commit_files(&self.repo, BRANCH, None, files, message, "alice")
            .await
            .expect("person pushes")
    }

    pub fn tip(&self) -> CommitSha {
        self.forge.branch_sha(&self.repo, BRANCH).expect("branch")
    }

    /// A new world whose mirror has fetched the PR head.
    pub async fn fetched() -> World {
        let w = World::new().await;
        w.fetch_head().await;
        w
    }

    /// The job's directory and a worktree in it at the PR head.
    pub async fn head_worktree(&self, job: &str) -> (PathBuf, Worktree) {
        let dir = self.job_dir(job);
        let wt = bounded(self.mirrors.worktree(&self.repo, &self.head, &dir))
            .await
            .expect("worktree");
        (dir, wt)
    }

    /// Pushes `commit` from `wt` to the PR branch, leased on the PR head, with the bot's
    /// auth and three attempts.
    pub async fn push(&self, wt: &Worktree, commit: &CommitSha) -> PushOutcome {
        let auth = self.auth();
        bounded(push_result(
            &self.mirrors,
            &self.repo,
            wt,
            commit,
            &self.url,
            BRANCH,
            &self.head,
            Some(&auth),
            3,
        ))
        .await
        .expect("push")
    }

    /// The commit between the PR head and `tip` whose trailer names `job`, if any.
    pub async fn landed(&self, tip: &CommitSha, job: &str) -> Option<CommitSha> {
        bounded(self.mirrors.landed(&self.repo, &self.head, tip, job))
            .await
            .expect("landed")
    }
}

/// Commits the worktree's changes as `job`'s result (log at `http://logs.example/logs/<job>`)
/// and expects a commit.
pub async fn commit_result(wt: &Worktree, job: &str) -> CommitSha {
    let log_url = format!("http://logs.example/logs/{job}");
    bounded(commit_changes(wt, &result_commit(job, &log_url)))
        .await
        .expect("commit")
        .expect("a commit")
}

pub fn result_commit<'a>(job_id: &'a str, log_url: &'a str) -> ResultCommit<'a> {
    ResultCommit {
        author_name: "tickbot",
        author_email: "tickbot@example.org",
        message: "images: Update fedora-41 image",
        job_id,
        log_url,
    }
}

pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("finished within the bound")
}

/// Runs git for a test's own observations.
pub async fn git(args: &[&str]) -> String {
    let out = bounded(
        tokio::process::Command::new("git")
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output(),
    )
    .await
    .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Total objects in a repository (loose and packed).
pub async fn object_count(repo: &Path) -> u64 {
    let out = git(&["--git-dir", &repo.to_string_lossy(), "count-objects", "-v"]).await;
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| *k == "count" || *k == "in-pack")
        .map(|(_, v)| v.trim().parse::<u64>().expect("a number"))
        .sum()
}

// ---------------------------------------------------------------------------------------
// runtimes

/// Builds the test image once per test binary; fails loudly when podman is missing.
pub fn test_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let hint = "podman is needed for these tests: apt-get install podman runc busybox-static";
        match std::process::Command::new("podman")
            .arg("--version")
            .output()
        {
            Ok(out) if out.status.success() => {}
            _ => return Err(hint.to_string()),
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/test-image/build.sh");
        let out = std::process::Command::new("sh")
            .arg(&script)
            .env("CONTAINERS_CONF", containers_conf())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}\n{hint}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
}

/// A podman command run by the test itself, to observe containers.
pub async fn podman_cli(args: &[&str]) -> std::process::Output {
    bounded(
        tokio::process::Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", containers_conf())
            .output(),
    )
    .await
    .expect("podman runs")
}

pub async fn container_exists(name: &str) -> bool {
    let listed = podman_cli(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^{name}$"),
        "--format",
        "{{.Names}}",
    ])
    .await;
    assert!(listed.status.success(), "podman ps");
    !String::from_utf8_lossy(&listed.stdout).trim().is_empty()
}

pub struct Job {
    pub dir: tempfile::TempDir,
    pub spec: RunSpec,
}

impl Job {
    pub fn new(argv: &[&str]) -> Job {
        let dir = tempfile::tempdir().expect("tempdir");
        let workdir = dir.path().join("work");
        std::fs::create_dir(&workdir).expect("workdir");
        let spec = RunSpec {
            name: format!("tickbot-test-{}", uuid::Uuid::new_v4().simple()),
            image: IMAGE.into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            workdir,
            env: vec![("GREETING".into(), "hello from the job".into())],
            network: false,
            timeout: WAIT,
            memory: "256m".into(),
            pids_limit: 64,
        };
        Job { dir, spec }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("logs/job.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.spec.workdir.join(name)).expect("file from the job")
    }

    pub async fn run(&self, rt: &Runtime) -> RunOutcome {
        let (_cancel, rx) = watch::channel(false);
        bounded(rt.run(&self.spec, &JobLog::new(self.log()), rx))
            .await
            .expect("run")
    }

    /// Waits (bounded) until the log contains `text`.
    pub async fn wait_for_log(&self, text: &str) {
        let start = Instant::now();
        while !self.log_text().contains(text) {
            assert!(
                start.elapsed() < WAIT,
                "log never showed {text:?}: {:?}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
