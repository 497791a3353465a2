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

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use tickbot::stack::{Stack, StackOptions};
use tickbot::worker::mirror::{GitAuth, Mirrors};
use tickbot::worker::publish::{self, PushOutcome, ResultCommit};
use tickbot::worker::runtime::{RunOutcome, RunSpec, Runtime};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const IMAGE: &str = "localhost/tickbot-test:latest";
const WAIT: Duration = Duration::from_secs(90);

const TICKBOT_TOML: &str = r#"
[tasks.noop]
command = ["true"]
image = "localhost/tickbot-test:latest"
timeout = "5m"

[tasks.touch]
command = ["touch", "result.txt"]
image = "localhost/tickbot-test:latest"
timeout = "5m"
commit = true
message = "bench: touch result.txt"
"#;

fn containers_conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tasks/podman-containers.conf")
}

fn podman_runtime() -> Runtime {
    Runtime::Podman {
        containers_conf: Some(containers_conf()),
    }
}

// ---------------------------------------------------------------------------------------
// statistics

#[derive(Default, Clone)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    fn median(&self) -> Duration {
        let v = self.sorted();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    fn min(&self) -> Duration {
        self.sorted().first().copied().unwrap_or_default()
    }

    fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }

    /// `median (min–max, n)` in milliseconds.
    fn show(&self) -> String {
        format!(
            "{:>7.1} ms  ({:.1}–{:.1}, n={})",
            ms(self.median()),
            ms(self.min()),
            ms(self.max()),
            self.0.len()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn between(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (b - a).to_std().unwrap_or_default()
}

/// Named sample sets, printed in insertion order.
#[derive(Default)]
struct Table {
    rows: Vec<(String, Samples)>,
}

impl Table {
    fn add(&mut self, name: &str, d: Duration) {
        match self.rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => s.push(d),
            None => {
                let mut s = Samples::default();
                s.push(d);
                self.rows.push((name.to_string(), s));
            }
        }
    }

    fn get(&self, name: &str) -> Samples {
        self.rows
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    fn print(&self, title: &str) {
        println!("\n{title}  (median (min–max, n))");
        for (name, s) in &self.rows {
            println!("  {name:<58} {}", s.show());
        }
    }
}

// ---------------------------------------------------------------------------------------
// trace events of the worker and the dispatcher, with wall-clock times

#[derive(Debug, Clone)]
struct Ev {
    at: DateTime<Utc>,
    msg: String,
    fields: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Ev>>>);

impl Recorder {
    fn take(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.0.lock().expect("recorder"))
    }
}

#[derive(Default)]
struct Visitor {
    msg: String,
    fields: HashMap<String, String>,
}

impl tracing::field::Visit for Visitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.fields
            .insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let at = Utc::now();
        let mut v = Visitor::default();
        event.record(&mut v);
        self.0.lock().expect("recorder").push(Ev {
            at,
            msg: v.msg,
            fields: v.fields,
        });
    }
}

fn first<'a>(events: &'a [Ev], msg: &str) -> Option<&'a Ev> {
    events.iter().find(|e| e.msg == msg)
}

// ---------------------------------------------------------------------------------------
// inotify on the log directory: a job's log file is created the moment it is dequeued

struct LogWatch {
    created: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogWatch {
    fn start(dir: &Path) -> LogWatch {
        std::fs::create_dir_all(dir).expect("logs dir");
        let created = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: plain inotify calls on a descriptor this function owns.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1");
        // SAFETY: `path` is a valid NUL-terminated string.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CREATE) };
        assert!(wd >= 0, "inotify_add_watch");
        let (sink, stopped) = (created.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(3600);
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
                if ready <= 0 {
                    continue;
                }
                let at = Utc::now();
                // SAFETY: reading into a buffer we own, within its length.
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    continue;
                }
                let mut off = 0usize;
                let header = std::mem::size_of::<libc::inotify_event>();
                while off + header <= n as usize {
                    // SAFETY: the kernel wrote whole events; read_unaligned copes with alignment.
                    let ev: libc::inotify_event = unsafe {
                        std::ptr::read_unaligned(
                            buf.as_ptr().add(off).cast::<libc::inotify_event>(),
                        )
                    };
                    let name_bytes = &buf[off + header..off + header + ev.len as usize];
                    let name = String::from_utf8_lossy(name_bytes)
                        .trim_end_matches('\0')
                        .to_string();
                    sink.lock().expect("watch").entry(name).or_insert(at);
                    off += header + ev.len as usize;
                }
            }
            // SAFETY: closing the descriptor opened above, once.
            unsafe { libc::close(fd) };
        });
        LogWatch {
            created,
            stop,
            thread: Some(thread),
        }
    }

    fn created(&self, name: &str) -> Option<DateTime<Utc>> {
        self.created.lock().expect("watch").get(name).copied()
    }
}

impl Drop for LogWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// generated repositories

struct Shape {
    label: &'static str,
    commits: usize,
    /// Directory fan-out: `d<a>/e<b>/f<c>.txt`.
    dirs: (usize, usize, usize),
}

const SMALL: Shape = Shape {
    label: "10k",
    commits: 10_000,
    dirs: (10, 10, 20),
};
const LARGE: Shape = Shape {
    label: "100k",
    commits: 100_000,
    dirs: (20, 20, 50),
};

const LINES: usize = 24;

fn file_text(file: usize, revs: &[u32]) -> String {
    let mut s = String::with_capacity(LINES * 48);
    for (j, r) in revs.iter().enumerate() {
        s.push_str(&format!(
            "file {file:05} line {j:02}: value {r:06} lorem ipsum dolor\n"
        ));
    }
    s
}

/// Writes a `git fast-import` stream: one commit adding every file, then `commits - 1`
/// commits changing one line of one (pseudo-randomly chosen) file each, on top of `parent`.
fn fast_import_stream(shape: &Shape, parent: &CommitSha, out: &mut impl Write) {
    let (a, b, c) = shape.dirs;
    let files = a * b * c;
    let path = |i: usize| format!("d{:02}/e{:02}/f{:03}.txt", i / (b * c), (i / c) % b, i % c);
    let mut revs = vec![[0u32; LINES]; files];
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let base_ts = 1_600_000_000u64;
    for n in 0..shape.commits {
        let msg = format!("change {n}\n");
        write!(
            out,
            "commit refs/heads/main\ncommitter Gen <gen@example.com> {} +0000\ndata {}\n{msg}",
            base_ts + n as u64 * 60,
            msg.len()
        )
        .expect("write");
        if n == 0 {
            writeln!(out, "from {}", parent.0).expect("write");
            for (i, r) in revs.iter().enumerate() {
                let text = file_text(i, r);
                write!(
                    out,
                    "M 100644 inline {}\ndata {}\n{text}\n",
                    path(i),
                    text.len()
                )
                .expect("write");
            }
        } else {
            let i = (next() % files as u64) as usize;
            let j = (next() % LINES as u64) as usize;
            revs[i][j] += 1;
            let text = file_text(i, &revs[i]);
            write!(
                out,
                "M 100644 inline {}\ndata {}\n{text}\n",
                path(i),
                text.len()
            )
            .expect("write");
        }
    }
    writeln!(out, "done").expect("write");
}

fn git_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
}

/// Creates `repo` on the forge (its first commit holds `.tickbot.toml`), writes the generated
/// history straight into the forge's bare repository on top of it, repacks, and lets the
/// forge pick up the new `main` (one throwaway branch push makes it re-read its refs).
async fn generate(forge: &Forge, repo: &RepoName, shape: &Shape) {
    let t = Instant::now();
    let root = forge
        .create_repo(repo, "main", &[(".tickbot.toml", TICKBOT_TOML)])
        .await
        .expect("create repo");
    let git_dir = forge.repo_path(repo);
    let mut child = git_env(&mut std::process::Command::new("git"))
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["fast-import", "--quiet", "--done", "--force"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("git fast-import");
    {
        let stdin = child.stdin.take().expect("stdin");
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
        fast_import_stream(shape, &root, &mut w);
        w.flush().expect("flush");
    }
    assert!(child.wait().expect("fast-import").success(), "fast-import");
    let imported = t.elapsed();
    let repack = git_env(&mut std::process::Command::new("git"))
        .arg("--git-dir")
        .arg(&git_dir)
        .args([
            "repack",
            "-a",
            "-d",
            "-f",
            "-q",
            "--window=10",
            "--depth=50",
        ])
        .status()
        .expect("git repack");
    assert!(repack.success(), "repack");
    forge
        .commit_files(
            repo,
            "sync-refs",
            Some("main"),
            &[("sync", "x")],
            "sync",
            repo.owner(),
        )
        .await
        .expect("sync refs");
    forge
        .flush_webhooks(Duration::from_secs(30))
        .await
        .expect("flush");
    let size = dir_size(&git_dir);
    println!(
        "generated {repo}: {} commits, {} files, pack {:.1} MiB (fast-import {:.1} s, total {:.1} s)",
        shape.commits + 1,
        shape.dirs.0 * shape.dirs.1 * shape.dirs.2 + 1,
        size as f64 / 1048576.0,
        imported.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
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

fn git_cmd(auth: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .arg("-c")
        .arg(format!("http.extraHeader={auth}"));
    cmd
}

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

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} took longer than {WAIT:?}"),
    }
}

/// Where job checkouts and the comparison clones go: `TICKBOT_BENCH_WORK_DIR` (e.g. a tmpfs
/// such as `/dev/shm/tickbot-bench`), else `fallback` on the disk.
fn work_root(fallback: &std::path::Path) -> PathBuf {
    std::env::var_os("TICKBOT_BENCH_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fallback.to_path_buf())
}

// ---------------------------------------------------------------------------------------
// 1. building blocks

async fn blocks(forge: &Forge, repo: &RepoName, shape: &Shape, reps: usize) -> Table {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mirrors = Mirrors::new(tmp.path().join("mirrors"));
    let url = forge.clone_url(repo);
    let header = forge.bot_git_auth_header();
    let auth = GitAuth::header(header.clone());
    let runtime = podman_runtime();
    let mut t = Table::default();

    // A new worker's first job: the mirror starts empty (the same transfer as a clone).
    let main = forge.branch_sha(repo, "main").expect("main");
    let s = Instant::now();
    bounded(
        "cold fetch",
        mirrors.fetch(repo, &url, "main", &main, Some(&auth)),
    )
    .await
    .expect("cold fetch");
    t.add("cold mirror: first fetch (once per worker)", s.elapsed());

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
        let job = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let name = format!("tickbot-{job}");

        // tickbot's worker path
        let s = Instant::now();
        runtime.remove(&name).await.expect("remove leftover");
        let d_remove_leftover = s.elapsed();
        let s = Instant::now();
        let tip = bounded(
            "fetch",
            mirrors.fetch(repo, &url, &branch, &sha, Some(&auth)),
        )
        .await
        .expect("fetch");
        let d_fetch = s.elapsed();
        assert_eq!(tip.as_ref(), Some(&sha));
        let dir = work_root(tmp.path()).join("work").join(&job);
        let s = Instant::now();
        let wt = bounded("worktree", mirrors.worktree(repo, &sha, &dir))
            .await
            .expect("worktree");
        let d_worktree = s.elapsed();
        let spec = RunSpec {
            name: name.clone(),
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
        let log = tmp.path().join("logs").join(format!("{job}.log"));
        std::fs::create_dir_all(log.parent().expect("parent")).expect("logs");
        let s = Instant::now();
        let outcome = bounded("podman run", runtime.run(&spec, &log, rx))
            .await
            .expect("run");
        let d_run = s.elapsed();
        assert_eq!(outcome, RunOutcome::Exited(0));
        std::fs::write(wt.path().join("result.txt"), format!("{job}\n")).expect("result");
        let s = Instant::now();
        let commit = publish::commit_changes(
            &wt,
            &ResultCommit {
                author_name: "tickbot",
                author_email: "tickbot@localhost",
                message: "bench: result",
                job_id: &job,
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
                &mirrors,
                repo,
                &wt,
                &commit,
                &url,
                &branch,
                &sha,
                Some(&auth),
                3,
            ),
        )
        .await
        .expect("push");
        let d_push = s.elapsed();
        assert_eq!(pushed, PushOutcome::Pushed(commit));
        let s = Instant::now();
        wt.remove().await.expect("remove worktree");
        let d_wt_remove = s.elapsed();

        // Cockpit's way: a fresh full clone of the PR branch per job, deleted afterwards.
        let clone_dir = work_root(tmp.path()).join(format!("clone-{i}"));
        let d_clone = timed(
            git_cmd(&header)
                .args(["clone", "--quiet", "--branch", &branch, &url])
                .arg(&clone_dir),
        )
        .await;
        let s = Instant::now();
        std::fs::remove_dir_all(&clone_dir).expect("rm clone");
        let d_clone_rm = s.elapsed();
        let d_shallow = timed(
            git_cmd(&header)
                .args(["clone", "--quiet", "--depth=1", "--branch", &branch, &url])
                .arg(&clone_dir),
        )
        .await;
        std::fs::remove_dir_all(&clone_dir).expect("rm clone");
        let d_bare = timed(&mut bare_podman()).await;

        t.add(
            "leftover-container check (podman rm + exists)",
            d_remove_leftover,
        );
        t.add("mirror fetch (one new commit)", d_fetch);
        t.add("worktree add", d_worktree);
        t.add("podman run (worker flags, mount) `true`", d_run);
        t.add("commit (commit=true)", d_commit);
        t.add("push with lease (commit=true)", d_push);
        t.add("worktree remove", d_wt_remove);
        let git_prep = d_fetch + d_worktree;
        t.add("= tickbot checkout: fetch + worktree", git_prep);
        t.add(
            "= tickbot git per job: fetch + worktree + remove",
            git_prep + d_wt_remove,
        );
        let job_false = d_remove_leftover + git_prep + d_run + d_wt_remove;
        t.add("= tickbot job, commit=false (sum of blocks)", job_false);
        t.add(
            "= tickbot job, commit=true (sum of blocks)",
            job_false + d_commit + d_push,
        );
        t.add("fresh full clone (--branch, with checkout)", d_clone);
        t.add("rm -rf of the clone", d_clone_rm);
        t.add("fresh shallow clone (--depth=1)", d_shallow);
        t.add("bare podman run --rm --network none `true`", d_bare);
        t.add(
            "= Cockpit job: full clone + bare podman run",
            d_clone + d_bare,
        );
    }
    t.print(&format!(
        "building blocks, {} repository ({} commits)",
        shape.label, shape.commits
    ));
    let clone = t.get("fresh full clone (--branch, with checkout)").median();
    let prep = t.get("= tickbot checkout: fetch + worktree").median();
    let cockpit = t
        .get("= Cockpit job: full clone + bare podman run")
        .median();
    let job = t
        .get("= tickbot job, commit=false (sum of blocks)")
        .median();
    println!(
        "  checkout: fresh clone ÷ (fetch + worktree) = {:.1}×;  job: Cockpit ÷ tickbot(commit=false) = {:.1}×",
        clone.as_secs_f64() / prep.as_secs_f64(),
        cockpit.as_secs_f64() / job.as_secs_f64()
    );
    t
}

// ---------------------------------------------------------------------------------------
// 2. end to end

struct E2e<'a> {
    stack: &'a Stack,
    repo: RepoName,
    recorder: &'a Recorder,
    watch: &'a LogWatch,
    next: usize,
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
        let events = self.recorder.take();
        if disrupted(&events) {
            println!("  (sample dropped: the RabbitMQ connection was lost during it)");
            return false;
        }
        let ev = |m: &str| {
            first(&events, m)
                .unwrap_or_else(|| panic!("no `{m}` event"))
                .clone()
        };
        let started = ev("job command started");
        let job = started.fields["name"]
            .trim_start_matches("tickbot-")
            .to_string();
        let dequeued = self
            .watch
            .created(&format!("{job}.log"))
            .expect("log file created");
        let fetched = ev("mirror fetched");
        let fetch_ms: f64 = fetched.fields["elapsed_ms"].parse().expect("elapsed_ms");
        let fetch = Duration::from_secs_f64(fetch_ms / 1000.0);
        let worktree = ev("worktree added");
        let exited = ev("job command exited");
        let removed = events
            .iter()
            .rfind(|e| e.msg == "worktree removed")
            .expect("worktree removed")
            .clone();
        let in_progress = forge
            .statuses(&self.repo, &sha)
            .into_iter()
            .find(|s| {
                s.description
                    .as_deref()
                    .is_some_and(|d| d.starts_with("In progress"))
            })
            .expect("in progress status")
            .created_at;
        if !record {
            let total = between(dequeued, success);
            println!(
                "  first job on a new worker (cold mirror), {task}: dequeue → box ticked {:.0} ms",
                ms(total)
            );
            return true;
        }
        t.add(
            "PR opened → dequeued (webhook, dispatcher, queue)",
            between(opened, dequeued),
        );
        t.add(
            "  dequeued → fetch starts (Started report, leftover-container check)",
            between(dequeued, fetched.at).saturating_sub(fetch),
        );
        t.add("  mirror fetch (one new commit)", fetch);
        t.add(
            "  fetched → worktree added",
            between(fetched.at, worktree.at),
        );
        t.add(
            "  worktree → podman started",
            between(worktree.at, started.at),
        );
        let a = between(dequeued, started.at);
        t.add("A dequeue → podman run starts", a);
        let b = between(started.at, exited.at);
        t.add("B podman run `true` (container start, run, removal)", b);
        if task == "touch" {
            let committed = ev("committed the task's changes");
            let pushed = ev("result pushed");
            t.add("  exited → committed", between(exited.at, committed.at));
            t.add("  committed → pushed", between(committed.at, pushed.at));
            t.add(
                "  pushed → worktree removed",
                between(pushed.at, removed.at),
            );
        } else {
            t.add(
                "  exited → worktree removed",
                between(exited.at, removed.at),
            );
        }
        t.add(
            "  worktree removed → Success status (report, tick, verify)",
            between(removed.at, success),
        );
        let c = between(exited.at, success);
        t.add("C podman exited → box ticked + Success status", c);
        t.add("A + C (tickbot's own overhead)", a + c);
        t.add("A + B + C = dequeue → box ticked", a + b + c);
        t.add(
            "(In progress status visible after dequeue)",
            between(dequeued, in_progress),
        );
        true
    }
}

/// Whether RabbitMQ went away (another test restarting it) while these events were recorded.
fn disrupted(events: &[Ev]) -> bool {
    events.iter().any(|e| {
        e.msg.contains("RabbitMQ connection lost")
            || e.msg.contains("lost its channel")
            || e.msg.contains("cannot resubscribe")
    })
}

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

async fn wait_ticked(forge: &Forge, repo: &RepoName, pr: PrNumber, task: &str) {
    let deadline = Instant::now() + WAIT;
    let ticked = format!("- [x] {task}");
    while !forge.pr(repo, pr).is_some_and(|p| p.body.contains(&ticked)) {
        assert!(Instant::now() < deadline, "PR {pr} not ticked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn e2e(
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
        // Same run, for comparison.
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
            ms(goal),
            ms(total),
            if total <= goal { "met" } else { "NOT met" }
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. throughput

async fn throughput(stack: &mut Stack, repo: &RepoName, recorder: &Recorder, logs: &Path) {
    const PRS: usize = 40;
    // `-- n4` (or n1, n2) picks worker counts; default all three.
    let picked: Vec<usize> = std::env::args()
        .filter_map(|a| a.strip_prefix('n').and_then(|n| n.parse().ok()))
        .collect();
    for n in [1usize, 2, 4] {
        if !picked.is_empty() && !picked.contains(&n) {
            continue;
        }
        let mut branches = Vec::new();
        for i in 0..PRS {
            let branch = format!("tp-{n}-{i}");
            let sha = stack
                .forge
                .commit_files(
                    repo,
                    &branch,
                    Some("main"),
                    &[(&format!("tp-{n}-{i}.txt"), "x\n")],
                    "A change",
                    "alice",
                )
                .await
                .expect("push a branch");
            branches.push((branch, sha));
        }
        stack
            .forge
            .flush_webhooks(Duration::from_secs(60))
            .await
            .expect("flush");
        stack.stop_workers().await;
        for w in 0..n {
            let mut settings = stack.worker_settings(&format!("tp{n}-w{w}"), podman_runtime(), 1);
            settings.work_dir = work_root(&settings.state_dir).join("work");
            stack.start_worker(settings);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let logs_before = std::fs::read_dir(logs).map(|d| d.count()).unwrap_or(0);
        recorder.take();
        let start = Utc::now();
        let mut prs = Vec::new();
        for (branch, sha) in &branches {
            let pr = stack
                .forge
                .open_pr(repo, branch, "main", "t", "- [ ] noop\n", "alice")
                .await
                .expect("open");
            prs.push((pr, sha.clone()));
        }
        let mut last = start;
        for (pr, sha) in &prs {
            let at = wait_success(&stack.forge, repo, sha, "noop").await;
            wait_ticked(&stack.forge, repo, *pr, "noop").await;
            last = last.max(at);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = recorder.take();
        let mut jobs: Vec<String> = events
            .iter()
            .filter(|e| e.msg == "job command started")
            .map(|e| e.fields["name"].clone())
            .collect();
        let runs = jobs.len();
        jobs.sort();
        jobs.dedup();
        let mut per_worker: HashMap<String, usize> = HashMap::new();
        let (mut started, mut successes) = (0, 0);
        for (_, sha) in &prs {
            for s in stack.forge.statuses(repo, sha) {
                let d = s.description.unwrap_or_default();
                if d.starts_with("In progress") {
                    started += 1;
                    *per_worker.entry(d).or_default() += 1;
                } else if s.state == "success" {
                    successes += 1;
                }
            }
        }
        let new_logs = std::fs::read_dir(logs).map(|d| d.count()).unwrap_or(0) - logs_before;
        let secs = between(start, last).as_secs_f64();
        let mut spread: Vec<_> = per_worker.into_iter().collect();
        spread.sort();
        println!(
            "\nthroughput, {n} worker(s) × concurrency 1, {PRS} PRs with `- [ ] noop`: \
             {:.2} jobs/s ({secs:.2} s from the first PR opened to the last Success)\n  \
             boxes ticked {PRS}/{PRS}, Success statuses {successes}, In-progress (Started) \
             statuses {started}, commands run {runs} ({} distinct jobs), job logs {new_logs}\n  \
             per worker: {spread:?}\n  → {}",
            PRS as f64 / secs,
            jobs.len(),
            match (
                successes == PRS && started == PRS && runs == PRS && jobs.len() == PRS,
                disrupted(&events)
            ) {
                (true, false) => "none lost, none duplicated",
                (true, true) => "none lost, none duplicated (but RabbitMQ went away meanwhile)",
                (false, false) => "MISMATCH",
                (false, true) => "MISMATCH (RabbitMQ went away meanwhile)",
            }
        );
    }
    stack.stop_workers().await;
}

/// Repetitions per measurement: fewer on the large repository, to keep the run short.
fn reps(shape: &Shape) -> usize {
    if shape.commits > 10_000 { 3 } else { 10 }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
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
    tracing_subscriber::registry()
        .with(
            recorder.clone().with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("tickbot::worker", tracing::Level::DEBUG)
                    .with_target("tickbot::dispatch", tracing::Level::INFO)
                    .with_target("tickbot::queue", tracing::Level::WARN),
            ),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .init();

    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut stack = Stack::start(StackOptions {
        dir: dir.path().to_path_buf(),
        amqp_url: Some(AMQP.into()),
        prefix: format!("bench-worker-{}", uuid::Uuid::new_v4()),
        repositories: vec![],
        app: None,
    })
    .await
    .expect("stack (RabbitMQ at 127.0.0.1:5672)");
    let watch = LogWatch::start(&dir.path().join("logs"));

    let mut repos = Vec::new();
    for shape in &shapes {
        let repo: RepoName = format!("acme/gen-{}", shape.label).parse().expect("name");
        generate(&stack.forge, &repo, shape).await;
        stack.forge.add_collaborator(&repo, "alice", "write");
        repos.push((repo, *shape));
    }

    if pick("blocks") {
        for (repo, shape) in &repos {
            blocks(&stack.forge, repo, shape, reps(shape)).await;
        }
    }
    if pick("e2e") || pick("throughput") {
        let mut settings = stack.worker_settings("bench-w1", podman_runtime(), 1);
        settings.work_dir = work_root(&settings.state_dir).join("work");
        stack.start_worker(settings);
        if pick("e2e") {
            for (repo, shape) in &repos {
                e2e(&stack, repo, shape, &recorder, &watch, reps(shape)).await;
            }
        }
        if pick("throughput")
            && let Some((repo, _)) = repos.first()
        {
            throughput(&mut stack, repo, &recorder, &dir.path().join("logs")).await;
        }
    }
    drop(watch);
    stack.shutdown().await; // deletes the stack's queues
    println!("\nbenchmark took {:.0} s", started.elapsed().as_secs_f64());
}
