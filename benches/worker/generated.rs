//! Generated repositories (`git fast-import` into the forge's bare repository), of a size
//! where fetching and cloning cost what they cost on real projects.

use crate::ISOLATED_GIT_ENV;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tickbot::forge::Forge;
use tickbot::ids::{CommitSha, RepoName};

/// The repositories' `.tickbot.toml`: a task that runs `true`, and one that commits a file.
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
/// The size of a generated repository.
pub struct Shape {
    pub label: &'static str,
    pub commits: usize,
    /// Directory fan-out: `d<a>/e<b>/f<c>.txt`.
    pub dirs: (usize, usize, usize),
}

/// 10,000 commits over 2,000 files.
pub const SMALL: Shape = Shape {
    label: "10k",
    commits: 10_000,
    dirs: (10, 10, 20),
};
/// 100,000 commits over 20,000 files.
pub const LARGE: Shape = Shape {
    label: "100k",
    commits: 100_000,
    dirs: (20, 20, 50),
};

/// Lines per generated file.
const LINES: usize = 24;

/// A generated file's text: one line per revision counter.
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
                write_file(out, &path(i), &file_text(i, r));
            }
        } else {
            let i = (next() % files as u64) as usize;
            let j = (next() % LINES as u64) as usize;
            revs[i][j] += 1;
            write_file(out, &path(i), &file_text(i, &revs[i]));
        }
    }
    writeln!(out, "done").expect("write");
}

/// A fast-import file change: `path` now holds `text`, given inline.
fn write_file(out: &mut impl Write, path: &str, text: &str) {
    write!(out, "M 100644 inline {path}\ndata {}\n{text}\n", text.len()).expect("write");
}

/// git on the forge's bare repository, ignoring the machine's and the user's configuration.
fn git_on(git_dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.envs(ISOLATED_GIT_ENV).arg("--git-dir").arg(git_dir);
    cmd
}

/// Creates `repo` on the forge (its first commit holds `.tickbot.toml`), writes the generated
/// history straight into the forge's bare repository on top of it, repacks, and lets the
/// forge pick up the new `main` (one throwaway branch push makes it re-read its refs).
pub async fn generate(forge: &Forge, repo: &RepoName, shape: &Shape) {
    let t = Instant::now();
    let root = forge
        .create_repo(repo, "main", &[(".tickbot.toml", TICKBOT_TOML)])
        .await
        .expect("create repo");
    let git_dir = forge.repo_path(repo);
    let mut child = git_on(&git_dir)
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
    let repack = git_on(&git_dir)
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

/// Bytes under `p`, recursively: the generated repository's size on disk.
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
