//! Images in the worker (reference §8): a build job builds an `[images.*]` image from the PR's
//! checkout with `podman build` and pushes it as `repository:<tree>`; a job whose image is
//! pinned by digest pulls it first when this machine does not have it yet.
//!
//! Building runs the PR's code (the Containerfile's steps) like any job: the dispatcher only
//! queues a build for a PR whose jobs may run, and the build has no network unless the image
//! asks for it and the author is trusted. The registry credentials stay with podman here.

use super::executor::JobError;
use super::job_log::JobLog;
use super::runtime::{Runtime, RuntimeError};
use crate::job::ImageBuild;
use crate::registry::Registry;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::sync::watch;

/// How a build job ended.
pub(super) enum Built {
    /// In the registry (pushed now, or found there already), with its digest.
    Pushed(String),
    /// The build itself failed (the Containerfile, a timeout): the PR's fault.
    Failed(String),
    Cancelled,
}

/// Where a build runs and where its output goes.
pub(super) struct BuildRun<'a> {
    pub runtime: &'a Runtime,
    pub registry: &'a Registry,
    pub checkout: &'a Path,
    pub network: bool,
    pub timeout: Duration,
    pub log: &'a JobLog,
}

impl BuildRun<'_> {
    /// Builds `build` unless the registry has it already (another worker built the same tree),
    /// then pushes it.
    pub(super) async fn build(
        &self,
        build: &ImageBuild,
        cancel: watch::Receiver<bool>,
    ) -> Result<Built, JobError> {
        let reference = build.reference();
        let built = match self.registry.digest(&reference).await? {
            Some(digest) => {
                self.note(&format!(
                    "{reference} is in the registry already ({digest}); not built again"
                ));
                Built::Pushed(digest)
            }
            None => self.build_and_push(build, cancel).await?,
        };
        if let Built::Pushed(digest) = &built {
            for tag in &build.publish {
                self.registry.tag(&build.repository, digest, tag).await?;
                self.note(&format!("published {}:{tag} as {digest}", build.repository));
            }
        }
        Ok(built)
    }

    async fn build_and_push(
        &self,
        build: &ImageBuild,
        cancel: watch::Receiver<bool>,
    ) -> Result<Built, JobError> {
        let reference = build.reference();
        let Runtime::Podman { .. } = self.runtime else {
            return Ok(Built::Failed(
                "Building images needs the podman runtime".into(),
            ));
        };
        let context = self.checkout.join(&build.context);
        let Some(file) = ["Containerfile", "Dockerfile"]
            .iter()
            .map(|f| context.join(f))
            .find(|f| f.is_file())
        else {
            return Ok(Built::Failed(format!(
                "No Containerfile in {}",
                build.context
            )));
        };
        let mut cmd = self.runtime.podman_command();
        cmd.args(["build", "--force-rm", "--file"])
            .arg(&file)
            .args(["--tag", &reference])
            .arg(format!("--label=io.tickbot.tree={}", build.tree));
        if !self.network {
            cmd.arg("--network=none");
        }
        cmd.arg(&context);
        self.note(&format!("$ podman build -t {reference} {}", build.context));
        match self.supervise(cmd, cancel.clone()).await? {
            Ended::Exited(0) => {}
            Ended::Exited(code) => {
                return Ok(Built::Failed(format!("Build failed: exit code {code}")));
            }
            Ended::TimedOut => return Ok(Built::Failed("Build timed out".into())),
            Ended::Cancelled => return Ok(Built::Cancelled),
        }
        // Beside the log: the job's own directory, written by podman, read back here.
        let digest_file = self.log.path().with_extension("digest");
        let mut cmd = self.runtime.podman_command();
        cmd.arg("push")
            .args(self.registry.podman_args(&reference))
            .arg("--digestfile")
            .arg(&digest_file)
            .arg(&reference);
        self.note(&format!("$ podman push {reference}"));
        match self.supervise(cmd, cancel).await? {
            Ended::Exited(0) => {}
            Ended::Cancelled => return Ok(Built::Cancelled),
            _ => {
                return Err(JobError::Image(format!(
                    "cannot push {reference}; see the log"
                )));
            }
        }
        let digest = std::fs::read_to_string(&digest_file)
            .map(|d| d.trim().to_string())
            .unwrap_or_default();
        let _ = std::fs::remove_file(&digest_file);
        if !digest.starts_with("sha256:") {
            return Err(JobError::Image(format!(
                "podman push of {reference} gave no digest"
            )));
        }
        self.note(&format!("pushed {reference} as {digest}"));
        Ok(Built::Pushed(digest))
    }

    /// Pulls `image` (pinned by digest) unless this machine has it.
    pub(super) async fn pull(&self, image: &str) -> Result<(), JobError> {
        let mut exists = self.runtime.podman_command();
        exists.args(["image", "exists", image]);
        let present = exists
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if present {
            return Ok(());
        }
        let mut cmd = self.runtime.podman_command();
        cmd.arg("pull")
            .args(self.registry.podman_args(image))
            .arg(image);
        self.note(&format!("$ podman pull {image}"));
        let (_keep, never) = watch::channel(false);
        match self.supervise(cmd, never).await? {
            Ended::Exited(0) => Ok(()),
            _ => Err(JobError::Image(format!("cannot pull {image}; see the log"))),
        }
    }

    fn note(&self, line: &str) {
        self.log.line(&format!("tickbot: {line}"));
    }

    /// Runs `cmd` with its output in the log, until it exits, times out or is cancelled.
    async fn supervise(
        &self,
        cmd: tokio::process::Command,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<Ended, JobError> {
        let hint = super::runtime::PODMAN_HINT;
        let super::runtime::Logged { mut child, copied } =
            super::runtime::spawn_logged(cmd, self.log, "podman", hint)?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok());
        let ended = tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|source| RuntimeError::Wait {
                    program: "podman".into(),
                    pid: pgid.map(|p| p as u32),
                    source,
                })?;
                super::runtime::output_written(copied).await;
                return Ok(Ended::Exited(status.code().unwrap_or(-1)));
            }
            _ = tokio::time::sleep(self.timeout) => Ended::TimedOut,
            _ = super::runtime::cancelled(&mut cancel) => Ended::Cancelled,
        };
        super::runtime::signal_group(pgid, libc::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            super::runtime::signal_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
        }
        super::runtime::output_written(copied).await;
        Ok(ended)
    }
}

enum Ended {
    Exited(i32),
    TimedOut,
    Cancelled,
}
