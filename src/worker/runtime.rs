//! Running a job's command: in a podman container (production) or directly on the host
//! (development only, no isolation).
//!
//! The command is the PR's own code, so the container gets the worktree mounted at `/work`,
//! no network unless the job allows it, memory and pids limits, and only the environment
//! variables the job names. Output goes straight into the job's log file (the child's
//! stdout and stderr *are* that file, opened for appending), so `/logs/<job>` shows it as
//! it is written and no pipe can be held open by a stray grandchild.
//!
//! Stopping is the delicate part. Killing the `podman run` client does not stop the
//! container (verified: SIGKILL on the client orphans it), so on timeout or cancel the
//! container is removed by name *and* the client's process group is terminated, and
//! [`Runtime::run`] returns only when nothing of the job is left. A worker that is itself
//! SIGKILLed cannot do that; its redelivered job calls [`Runtime::remove`] first, and
//! podman's own `--timeout` (set a little past the job's) is the last backstop.

use super::job_log::JobLog;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// How long a stopped job may take to exit after SIGTERM before it gets SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Bound on podman's own housekeeping commands (`rm`, `info`, `container exists`).
const PODMAN_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to keep checking that a container is really gone after removing it (another
/// podman process, e.g. conmon's cleanup for `--rm`, may be removing it at the same time).
const REMOVE_DEADLINE: Duration = Duration::from_secs(30);

/// Slack between the job's timeout and podman's `--timeout` backstop, so ours fires first.
const BACKSTOP_SLACK: Duration = Duration::from_secs(60);

/// Where job commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// `podman run`, with `CONTAINERS_CONF` set to `containers_conf` when given (some
    /// machines need e.g. `runtime = "runc"`; see `tasks/podman-containers.conf`).
    Podman { containers_conf: Option<PathBuf> },
    /// Directly on the host, in the worktree, with a clean environment. No isolation, no
    /// limits, no network restriction: for development machines without podman only.
    Host,
}

/// One command to run for a job.
#[derive(Clone)]
pub struct RunSpec {
    /// The container's name, e.g. `tickbot-<job_id>`; how a leftover container is found.
    pub name: String,
    pub image: String,
    /// The command, as separate arguments (never a shell string).
    pub argv: Vec<String>,
    /// The worktree; mounted read-write at `/work`, which is the working directory.
    pub workdir: PathBuf,
    /// Variables for the command (secrets included), on top of the image's.
    pub env: Vec<(String, String)>,
    pub network: bool,
    pub timeout: Duration,
    /// podman's `--memory`, e.g. `2g`.
    pub memory: String,
    pub pids_limit: u32,
}

impl fmt::Debug for RunSpec {
    // Values may be secrets; only the names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("argv", &self.argv)
            .field("workdir", &self.workdir)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("network", &self.network)
            .field("timeout", &self.timeout)
            .field("memory", &self.memory)
            .field("pids_limit", &self.pids_limit)
            .finish()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The command's exit code (128 + n when killed by signal n, as shells report it).
    /// With podman, 125–127 can also mean podman could not start it; the log says why.
    Exited(i32),
    /// It ran longer than `RunSpec::timeout` and was stopped.
    TimedOut,
    /// `cancel` fired and it was stopped.
    Cancelled,
}

/// Why a command could not be run or stopped; for operators (statuses say "Internal error").
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the job has no command to run (argv is empty); check the task's `command`")]
    EmptyCommand,
    #[error("refusing {what} {value:?}: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("could not open the log file {}: {source}", .path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start `{program}`: {source}; {hint}")]
    Spawn {
        program: String,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("lost track of `{program}` (pid {pid:?}): {source}")]
    Wait {
        program: String,
        pid: Option<u32>,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Podman {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` did not finish within {} s", .after.as_secs())]
    Stuck { command: String, after: Duration },
    #[error(
        "container {name} is still there after `podman rm -f`; remove it by hand \
         (podman rm -f {name}) and check podman's health (podman info)"
    )]
    ContainerLeft { name: String },
    #[error(
        "podman does not work here: {detail}; install it (apt-get install podman runc), \
         point [worker] at a working containers.conf, or use runtime = \"host\" for development"
    )]
    Unavailable { detail: String },
}

pub(super) const PODMAN_HINT: &str =
    "is podman installed? (apt-get install podman runc), or use runtime = \"host\" for development";
const HOST_HINT: &str = "is the command in the repository and executable?";

impl Runtime {
    /// Runs `spec.argv` from the checkout until it exits, times out or `cancel` turns true,
    /// appending its stdout and stderr to `log` as they are written.
    ///
    /// podman: `podman run --rm --name <name> --network none (unless network) --memory
    /// --pids-limit -v <workdir>:/work -w /work --env … --pull=never <image> <argv…>`.
    /// host: `argv` in `workdir` with only PATH, HOME and `spec.env` set.
    ///
    /// On timeout or cancel the container is force-removed by name and the client's process
    /// group gets SIGTERM, then SIGKILL after a grace period. Returns once nothing of the job
    /// is left running; if this future is dropped instead, the same cleanup is started in
    /// the background.
    pub async fn run(
        &self,
        spec: &RunSpec,
        log: &JobLog,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<RunOutcome, RuntimeError> {
        if *cancel.borrow() {
            return Ok(RunOutcome::Cancelled);
        }
        let (Logged { mut child, copied }, program) = self.spawn(spec, log)?;
        let pid = child.id();
        let mut cleanup = Cleanup {
            pgid: pid.and_then(|p| i32::try_from(p).ok()),
            container: match self {
                Runtime::Podman { containers_conf } => {
                    Some((spec.name.clone(), containers_conf.clone()))
                }
                Runtime::Host => None,
            },
        };
        tracing::info!(
            name = %spec.name,
            image = %spec.image,
            runtime = self.kind(),
            timeout_s = spec.timeout.as_secs(),
            pid,
            "job command started"
        );

        let outcome = tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|source| RuntimeError::Wait {
                    program: program.to_string(),
                    pid,
                    source,
                })?;
                // Background children a host command left behind are part of the job too.
                signal_group(cleanup.pgid, libc::SIGKILL);
                if status.code().is_none() && matches!(self, Runtime::Podman { .. }) {
                    // Someone killed the podman client, which orphans the container.
                    self.ensure_gone(&spec.name).await?;
                }
                cleanup.disarm();
                let code = exit_code(status);
                tracing::info!(name = %spec.name, code, "job command exited");
                output_written(copied).await;
                return Ok(RunOutcome::Exited(code));
            }
            _ = tokio::time::sleep(spec.timeout) => RunOutcome::TimedOut,
            _ = cancelled(&mut cancel) => RunOutcome::Cancelled,
        };
        tracing::info!(name = %spec.name, ?outcome, "stopping the job command");
        self.stop(spec, &mut child, program, pid).await?;
        cleanup.disarm();
        output_written(copied).await;
        tracing::info!(name = %spec.name, ?outcome, "job command stopped");
        Ok(outcome)
    }

    /// Starts the job's command in its own process group with its output going to `log`;
    /// returns it with the program name errors mention.
    fn spawn<'a>(
        &self,
        spec: &'a RunSpec,
        log: &JobLog,
    ) -> Result<(Logged, &'a str), RuntimeError> {
        let Some(first) = spec.argv.first() else {
            return Err(RuntimeError::EmptyCommand);
        };
        let (cmd, program, hint) = match self {
            Runtime::Podman { .. } => (self.podman_run(spec, false)?, "podman", PODMAN_HINT),
            Runtime::Host => (host_command(spec)?, first.as_str(), HOST_HINT),
        };
        Ok((spawn_logged(cmd, log, program, hint)?, program))
    }

    /// Force-removes a container called `name` if there is one (running or not). A worker
    /// killed with SIGKILL leaves its container running; the redelivered job calls this
    /// before starting again. Nothing to do for the host runtime.
    pub async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        match self {
            Runtime::Podman { .. } => {
                check_name(name)?;
                self.ensure_gone(name).await
            }
            Runtime::Host => Ok(()),
        }
    }

    /// Whether this runtime works here: for podman, `podman info` succeeds (cheap, unlike
    /// starting a container).
    pub async fn check(&self) -> Result<(), RuntimeError> {
        match self {
            Runtime::Host => Ok(()),
            Runtime::Podman { .. } => {
                let out = self
                    .podman_output(&["info", "--format", "{{.Host.OCIRuntime.Name}}"])
                    .await
                    .map_err(|e| RuntimeError::Unavailable {
                        detail: e.to_string(),
                    })?;
                if out.code == Some(0) {
                    tracing::debug!(oci_runtime = out.stdout.trim(), "podman works");
                    Ok(())
                } else {
                    Err(RuntimeError::Unavailable {
                        detail: format!("`podman info` failed: {}", out.stderr.trim()),
                    })
                }
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Runtime::Podman { .. } => "podman",
            Runtime::Host => "host",
        }
    }

    /// A `podman` command with a controlled environment: the worker's environment may hold
    /// its own tokens, and a containers.conf with `env_host = true` would hand the client's
    /// environment to the container.
    pub(super) fn podman_command(&self) -> Command {
        self.podman()
    }

    fn podman(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env_clear();
        for (key, value) in std::env::vars_os() {
            if podman_reads(&key.to_string_lossy()) {
                cmd.env(key, value);
            }
        }
        if let Runtime::Podman {
            containers_conf: Some(conf),
        } = self
        {
            cmd.env("CONTAINERS_CONF", conf);
        }
        cmd
    }

    /// Starts `spec` in the background with podman (a debug hold's container); `Err` says why
    /// it did not start.
    pub(super) async fn start_detached(&self, spec: &RunSpec) -> Result<(), String> {
        let cmd = self.podman_run(spec, true).map_err(|e| e.to_string())?;
        let out = self
            .captured(cmd, "podman run --detach".into())
            .await
            .map_err(|e| e.to_string())?;
        match out.code {
            Some(0) => Ok(()),
            _ => Err(out.stderr.trim().to_string()),
        }
    }

    /// `podman run` of `spec`; `detach`: in the background (a debug hold's container).
    fn podman_run(&self, spec: &RunSpec, detach: bool) -> Result<Command, RuntimeError> {
        check_name(&spec.name)?;
        check_option_value("image", &spec.image)?;
        check_option_value("memory limit", &spec.memory)?;
        if spec.argv.is_empty() {
            return Err(RuntimeError::EmptyCommand);
        }
        let workdir = spec.workdir.to_string_lossy();
        if !spec.workdir.is_absolute() || workdir.contains([':', ',']) {
            return Err(RuntimeError::Invalid {
                what: "work directory",
                value: workdir.into_owned(),
                why: "podman needs an absolute path without ':' or ','",
            });
        }
        let mut cmd = self.podman();
        cmd.arg("run");
        if detach {
            cmd.arg("--detach");
        }
        cmd.args(["--rm", "--pull=never", "--name", &spec.name])
            .arg(format!("--label=io.tickbot.job={}", spec.name));
        if !spec.network {
            cmd.args(["--network", "none"]);
        }
        cmd.arg(format!("--memory={}", spec.memory))
            .arg(format!("--pids-limit={}", spec.pids_limit))
            .args(["--security-opt", "no-new-privileges"])
            // Backstop for a worker that dies without stopping its container.
            .arg(format!(
                "--timeout={}",
                spec.timeout.saturating_add(BACKSTOP_SLACK).as_secs()
            ))
            .arg("--volume")
            .arg(format!("{workdir}:/work"))
            .args(["--workdir", "/work"]);
        for (key, value) in &spec.env {
            check_env_name(key)?;
            if podman_reads(key) {
                // podman would read it itself if it came through its own environment.
                cmd.arg("--env").arg(format!("{key}={value}"));
            } else {
                // `--env KEY` takes the value from podman's environment, so values (secrets)
                // never appear in argv, which any local user can read in /proc.
                cmd.arg("--env").arg(key).env(key, value);
            }
        }
        cmd.arg(&spec.image).args(&spec.argv);
        Ok(cmd)
    }

    /// Stops a running job: the container first (podman stops it with SIGTERM, grace,
    /// SIGKILL), then the client's process group, then the container again in case the
    /// client was still creating it during the first removal.
    async fn stop(
        &self,
        spec: &RunSpec,
        child: &mut Child,
        program: &str,
        pid: Option<u32>,
    ) -> Result<(), RuntimeError> {
        let pgid = pid.and_then(|p| i32::try_from(p).ok());
        if let Runtime::Podman { .. } = self {
            let grace = KILL_GRACE.as_secs().to_string();
            match self
                .podman_output(&["rm", "--force", "--ignore", "--time", &grace, &spec.name])
                .await
            {
                Ok(out) if out.code == Some(0) => {}
                Ok(out) => {
                    tracing::debug!(name = %spec.name, stderr = %out.stderr.trim(), "podman rm failed; will retry")
                }
                Err(e) => {
                    tracing::warn!(name = %spec.name, error = %e, "podman rm failed; will retry")
                }
            }
        }
        signal_group(pgid, libc::SIGTERM);
        let waited = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                signal_group(pgid, libc::SIGKILL);
                match tokio::time::timeout(PODMAN_COMMAND_TIMEOUT, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        return Err(RuntimeError::Stuck {
                            command: program.to_string(),
                            after: PODMAN_COMMAND_TIMEOUT,
                        });
                    }
                }
            }
        };
        waited.map_err(|source| RuntimeError::Wait {
            program: program.to_string(),
            pid,
            source,
        })?;
        signal_group(pgid, libc::SIGKILL);
        if let Runtime::Podman { .. } = self {
            self.ensure_gone(&spec.name).await?;
        }
        Ok(())
    }

    /// Removes the container and checks it is really gone, retrying while another podman
    /// process is busy with it.
    async fn ensure_gone(&self, name: &str) -> Result<(), RuntimeError> {
        let deadline = tokio::time::Instant::now() + REMOVE_DEADLINE;
        loop {
            let rm = self
                .podman_output(&["rm", "--force", "--ignore", "--time", "0", name])
                .await?;
            let exists = self.podman_output(&["container", "exists", name]).await?;
            match exists.code {
                Some(1) => {
                    tracing::debug!(name, "container removed");
                    return Ok(());
                }
                Some(0) => {}
                _ => {
                    return Err(RuntimeError::Podman {
                        command: format!("podman container exists {name}"),
                        status: status_text(exists.code),
                        stderr: exists.stderr.trim().to_string(),
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(name, stderr = %rm.stderr.trim(), "container survived podman rm -f");
                return Err(RuntimeError::ContainerLeft {
                    name: name.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn podman_output(&self, args: &[&str]) -> Result<Captured, RuntimeError> {
        let mut cmd = self.podman();
        cmd.args(args);
        self.captured(cmd, format!("podman {}", args.join(" ")))
            .await
    }

    /// Runs a podman command to its end (bounded by [`PODMAN_COMMAND_TIMEOUT`]), capturing its
    /// output; `command` names it in errors.
    async fn captured(&self, mut cmd: Command, command: String) -> Result<Captured, RuntimeError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
            program: "podman".to_string(),
            hint: PODMAN_HINT,
            source,
        })?;
        let pid = child.id();
        match tokio::time::timeout(PODMAN_COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(Captured {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Ok(Err(source)) => Err(RuntimeError::Wait {
                program: command,
                pid,
                source,
            }),
            Err(_) => Err(RuntimeError::Stuck {
                command,
                after: PODMAN_COMMAND_TIMEOUT,
            }),
        }
    }
}

struct Captured {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Kills what a dropped [`Runtime::run`] future left behind: the process group at once, and
/// the container by name in the background.
struct Cleanup {
    pgid: Option<i32>,
    container: Option<(String, Option<PathBuf>)>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.pgid = None;
        self.container = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        signal_group(self.pgid.take(), libc::SIGKILL);
        let Some((name, containers_conf)) = self.container.take() else {
            return;
        };
        tracing::warn!(
            name,
            "job run abandoned; removing its container in the background"
        );
        let runtime = Runtime::Podman { containers_conf };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = runtime.remove(&name).await {
                        tracing::error!(name, error = %e, "could not remove an abandoned container");
                    }
                });
            }
            Err(_) => {
                let mut cmd = std::process::Command::new("podman");
                cmd.args(["rm", "--force", "--ignore", "--time", "0", &name])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if let Runtime::Podman {
                    containers_conf: Some(conf),
                } = &runtime
                {
                    cmd.env("CONTAINERS_CONF", conf);
                }
                // A thread reaps it, so no zombie is left behind.
                std::thread::spawn(move || cmd.status());
            }
        }
    }
}

fn host_command(spec: &RunSpec) -> Result<Command, RuntimeError> {
    let Some(program) = spec.argv.first() else {
        return Err(RuntimeError::EmptyCommand);
    };
    // `./script` means the checkout's script, not one relative to the worker's directory.
    let program = if program.contains('/') && !Path::new(program).is_absolute() {
        spec.workdir.join(program).into_os_string()
    } else {
        OsString::from(program)
    };
    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .current_dir(&spec.workdir)
        .env_clear()
        // The host runtime is for development: the developer's tools stay reachable.
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| spec.workdir.clone().into_os_string()),
        );
    for (key, value) in &spec.env {
        check_env_name(key)?;
        cmd.env(key, value);
    }
    Ok(cmd)
}

/// A started command and the task copying its output into the job's log.
pub(super) struct Logged {
    pub child: Child,
    pub copied: tokio::task::JoinHandle<()>,
}

/// Starts `cmd` with its output going to `log` (masked and capped there), in its own process
/// group, so the whole tree (the podman client and its helpers, or a host command and its
/// children) can be signalled at once.
pub(super) fn spawn_logged(
    mut cmd: Command,
    log: &JobLog,
    program: &str,
    hint: &'static str,
) -> Result<Logged, RuntimeError> {
    if let Some(parent) = log.path().parent() {
        std::fs::create_dir_all(parent).map_err(|source| RuntimeError::Log {
            path: log.path().to_path_buf(),
            source,
        })?;
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
        program: program.to_string(),
        hint,
        source,
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both pipes were asked for")
    };
    let copied = tokio::spawn(log.clone().capture(stdout, stderr));
    Ok(Logged { child, copied })
}

/// Waits until a finished command's output is in its log. The pipes close when the last
/// process holding them is gone; a leftover that keeps them open is not waited for long.
pub(super) async fn output_written(copied: tokio::task::JoinHandle<()>) {
    let abort = copied.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), copied)
        .await
        .is_err()
    {
        abort.abort();
        tracing::warn!("a process left by the job still holds its output open; the log ends here");
    }
}

/// Resolves when `cancel` turns true; never, if its sender is gone without cancelling.
pub(super) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub(super) fn signal_group(pgid: Option<i32>, signal: libc::c_int) {
    if let Some(pgid) = pgid.filter(|p| *p > 1) {
        // SAFETY: signalling a process group this process created; ESRCH (already gone)
        // is the expected, harmless failure.
        unsafe { libc::killpg(pgid, signal) };
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn status_text(code: Option<i32>) -> String {
    code.map_or_else(
        || "killed by a signal".to_string(),
        |c| format!("exit code {c}"),
    )
}

/// Environment variables the podman client itself reads; they are passed through to it and
/// never used to carry a job's values.
fn podman_reads(key: &str) -> bool {
    matches!(
        key,
        "PATH" | "HOME" | "TMPDIR" | "USER" | "LANG" | "LC_ALL" | "REGISTRY_AUTH_FILE"
    ) || [
        "CONTAINERS_",
        "CONTAINER_",
        "XDG_",
        "PODMAN_",
        "STORAGE_",
        "BUILDAH_",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

/// Container names: what podman accepts, and never something podman would read as an option.
fn check_name(name: &str) -> Result<(), RuntimeError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Invalid {
            what: "container name",
            value: name.to_string(),
            why: "use letters, digits, '_', '.', '-', starting with a letter or digit",
        })
    }
}

fn check_option_value(what: &'static str, value: &str) -> Result<(), RuntimeError> {
    if value.is_empty() || value.starts_with('-') || value.contains(['\n', '\0']) {
        return Err(RuntimeError::Invalid {
            what,
            value: value.to_string(),
            why: "must be non-empty and must not start with '-'",
        });
    }
    Ok(())
}

fn check_env_name(key: &str) -> Result<(), RuntimeError> {
    let ok = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Invalid {
            what: "environment variable name",
            value: key.to_string(),
            why: "use letters, digits and '_'",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            name: "tickbot-j1".into(),
            image: "localhost/tasks:latest".into(),
            argv: vec!["./run".into(), "a b".into()],
            workdir: "/state/work/j1".into(),
            env: vec![("S3_KEY".into(), "secret-value".into())],
            network: false,
            timeout: Duration::from_secs(60),
            memory: "2g".into(),
            pids_limit: 512,
        }
    }

    fn argv(cmd: &Command) -> Vec<String> {
        cmd.as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn podman_argv_keeps_secrets_out_and_arguments_apart() {
        let rt = Runtime::Podman {
            containers_conf: None,
        };
        let cmd = rt.podman_run(&spec(), false).expect("valid spec");
        let args = argv(&cmd);
        assert!(!args.iter().any(|a| a.contains("secret-value")), "{args:?}");
        let tail = &args[args.len() - 3..];
        assert_eq!(tail, ["localhost/tasks:latest", "./run", "a b"]);
        for expected in ["--network", "none", "--pull=never", "/state/work/j1:/work"] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        assert!(!format!("{:?}", spec()).contains("secret-value"));
    }

    #[test]
    fn option_injection_is_refused() {
        let rt = Runtime::Podman {
            containers_conf: None,
        };
        let bad_image = RunSpec {
            image: "--privileged".into(),
            ..spec()
        };
        assert!(rt.podman_run(&bad_image, false).is_err());
        let bad_name = RunSpec {
            name: "-x".into(),
            ..spec()
        };
        assert!(rt.podman_run(&bad_name, false).is_err());
        let bad_env = RunSpec {
            env: vec![("A=B".into(), "c".into())],
            ..spec()
        };
        assert!(rt.podman_run(&bad_env, false).is_err());
    }
}
