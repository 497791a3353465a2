//! Running the `git` CLI: one command's argv, environment and timeout, and the checks that
//! keep untrusted values (commit ids, URLs, branch names) from changing a command's meaning.

use super::{GIT_TIMEOUT, GitAuth, GitError, MAX_STDERR};
use crate::ids::CommitSha;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

/// What a git command did.
#[derive(Debug)]
pub(crate) struct GitRun {
    pub(crate) command: String,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl GitRun {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The error for a command that exited non-zero.
    pub(crate) fn failure(&self) -> GitError {
        let stderr = self.stderr.trim();
        let start = stderr
            .char_indices()
            .rev()
            .nth(MAX_STDERR)
            .map_or(0, |(i, _)| i);
        GitError::Failed {
            command: self.command.clone(),
            status: match self.code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".to_string(),
            },
            stderr: stderr[start..].to_string(),
        }
    }
}

/// One git invocation: argv (never a shell string), the environment git needs to behave
/// non-interactively, and a printable form without credentials.
#[derive(Debug)]
pub(crate) struct Git {
    args: Vec<OsString>,
    shown: Vec<String>,
    dir: Option<PathBuf>,
    auth: Option<GitAuth>,
    author: Option<(String, String)>,
    index: Option<PathBuf>,
}

impl Git {
    pub(crate) fn new() -> Git {
        Git {
            args: Vec::new(),
            shown: Vec::new(),
            dir: None,
            auth: None,
            author: None,
            index: None,
        }
    }

    /// A private index file (for building a tree in a bare repository).
    pub(crate) fn index(mut self, file: &Path) -> Git {
        self.index = Some(file.to_path_buf());
        self
    }

    /// A command on a bare repository (the mirror).
    pub(crate) fn bare(repo: &Path) -> Git {
        Git::new().arg("--git-dir").arg(repo)
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Git {
        let arg = arg.as_ref();
        self.shown.push(redact_url(&arg.to_string_lossy()));
        self.args.push(arg.to_os_string());
        self
    }

    pub(crate) fn args<I, S>(self, args: I) -> Git
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Git::arg)
    }

    pub(crate) fn current_dir(mut self, dir: &Path) -> Git {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub(crate) fn auth(mut self, auth: Option<&GitAuth>) -> Git {
        self.auth = auth.cloned();
        self
    }

    /// Identity for commits this command makes (`-c user.name/-c user.email`, never the
    /// global config).
    pub(crate) fn author(mut self, name: &str, email: &str) -> Git {
        self.author = Some((name.to_string(), email.to_string()));
        self
    }

    /// Runs it and fails unless it exits 0.
    pub(crate) async fn ok(self) -> Result<GitRun, GitError> {
        let run = self.run().await?;
        if run.success() {
            Ok(run)
        } else {
            Err(run.failure())
        }
    }

    /// Runs it; a non-zero exit is the caller's to interpret.
    pub(crate) async fn run(self) -> Result<GitRun, GitError> {
        let command = format!("git {}", self.shown.join(" "));
        let mut cmd = self.command();
        let child = cmd.spawn().map_err(|source| GitError::Spawn {
            command: command.clone(),
            source,
        })?;
        let pgid = child.id();
        match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(GitRun {
                command,
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(source)) => Err(GitError::Spawn { command, source }),
            Err(_) => {
                // The child itself died with the dropped future (kill_on_drop); its helpers
                // (remote-https, index-pack) are in its process group.
                if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: signalling a process group we created.
                    unsafe { libc::killpg(pgid, libc::SIGKILL) };
                }
                Err(GitError::TimedOut {
                    command,
                    after: GIT_TIMEOUT,
                })
            }
        }
    }

    /// The `git` process with the settings, environment and credentials every command gets,
    /// whatever the user's config and the worker's environment say.
    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        // Settings that must hold whatever the user's global config says: no hooks (the
        // mirror is ours, and nothing from a PR may run on the host), no signing prompts.
        cmd.args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgSign=false",
            "-c",
            "core.fsmonitor=false",
        ]);
        if let Some((name, email)) = &self.author {
            cmd.arg("-c")
                .arg(format!("user.name={name}"))
                .arg("-c")
                .arg(format!("user.email={email}"));
        }
        cmd.args(&self.args);
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_CONFIG_PARAMETERS",
            "GIT_CONFIG_COUNT",
            // The identity comes from `author()` only, never from the worker's environment.
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_AUTHOR_DATE",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
            "GIT_COMMITTER_DATE",
        ] {
            cmd.env_remove(var);
        }
        if let Some(index) = &self.index {
            cmd.env("GIT_INDEX_FILE", index);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            // Error text is matched in a few places ("couldn't find remote ref").
            .env("LC_ALL", "C");
        if let Some(auth) = &self.auth {
            // Through the environment rather than `-c`: argv is world-readable in /proc.
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", &auth.0);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }
}

/// The full id `rev` names in `repo`.
pub(crate) async fn rev_parse(repo: &Path, rev: &str) -> Result<CommitSha, GitError> {
    let out = Git::bare(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .ok()
        .await?;
    parse_sha(&out.command, &out.stdout)
}

pub(crate) fn parse_sha(command: &str, stdout: &str) -> Result<CommitSha, GitError> {
    let sha = CommitSha(stdout.trim().to_string());
    check_sha(&sha).map_err(|_| GitError::Unexpected {
        command: command.to_string(),
        output: stdout.to_string(),
    })?;
    Ok(sha)
}

/// Whether `repo` has the commit `sha`.
pub(crate) async fn has_commit(repo: &Path, sha: &CommitSha) -> Result<bool, GitError> {
    let out = Git::bare(repo)
        .args(["cat-file", "-e", "--end-of-options"])
        .arg(format!("{}^{{commit}}", sha.0))
        .run()
        .await?;
    Ok(out.success())
}

/// Whether `ancestor` is reachable from `descendant` (both in `repo`).
pub(crate) async fn is_ancestor(
    repo: &Path,
    ancestor: &CommitSha,
    descendant: &CommitSha,
) -> Result<bool, GitError> {
    let out = Git::bare(repo)
        .args(["merge-base", "--is-ancestor", "--end-of-options"])
        .args([&ancestor.0, &descendant.0])
        .run()
        .await?;
    match out.code {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(out.failure()),
    }
}

/// A commit id is interpolated into git's argv; only hex ever gets there.
pub(crate) fn check_sha(sha: &CommitSha) -> Result<(), GitError> {
    let ok = matches!(sha.0.len(), 40 | 64) && sha.0.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(GitError::Invalid {
            what: "commit id",
            value: sha.0.clone(),
            why: "expected 40 (or 64) hex digits",
        })
    }
}

pub(super) fn check_url(url: &str) -> Result<(), GitError> {
    if url.is_empty() || url.starts_with('-') || url.contains(['\n', '\0']) {
        return Err(GitError::Invalid {
            what: "repository URL",
            value: redact_url(url),
            why: "not a URL git can fetch from",
        });
    }
    Ok(())
}

/// Branch names end up in refspecs; git's own check-ref-format rules are stricter, this only
/// keeps a name from changing the refspec's meaning.
pub(crate) fn check_branch(branch: &str) -> Result<(), GitError> {
    let bad = branch.is_empty()
        || branch.starts_with('-')
        || branch.contains(['\n', '\0', ':', ' ', '*', '^', '~', '?', '[', '\\'])
        || branch.contains("..");
    if bad {
        return Err(GitError::Invalid {
            what: "branch name",
            value: branch.to_string(),
            why: "not a valid git branch name",
        });
    }
    Ok(())
}

/// A short stable key for a URL, used as a ref namespace in the mirror.
pub(super) fn url_key(url: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(redact_url(url).as_bytes())[..8])
}

/// Drops `user:password@` from URLs, so a token embedded in a URL never reaches a log.
pub(super) fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_string();
    };
    let rest = &s[scheme_end + 3..];
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &s[..scheme_end], &rest[at + 1..]),
        None => s.to_string(),
    }
}

/// Reads `git log --format=%H<TAB>%(trailers:key=Tickbot-Job,valueonly,separator=<TAB>)`
/// output and returns the first commit carrying `job_id`.
pub(super) fn find_trailer(log: &str, job_id: &str) -> Option<CommitSha> {
    log.lines().find_map(|line| {
        let mut fields = line.split('\t');
        let sha = fields.next()?;
        fields
            .any(|value| value.trim() == job_id)
            .then(|| CommitSha(sha.to_string()))
    })
}
