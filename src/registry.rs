//! The image registry of `[images.*]` (reference §8), through `skopeo` (the containers project's
//! own registry client, beside podman): whether an image exists and its digest, and moving a
//! tag to a digest, which copies a manifest and no layer.
//!
//! Plain HTTP is used only for a registry on a loopback address; the credentials come from
//! the server's `[registry] auth_file` and are never handed to a job.

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot run skopeo for {reference}: {source} (is skopeo installed? apt-get install skopeo)"
    )]
    Spawn {
        reference: String,
        source: std::io::Error,
    },
    #[error("the registry refused {action} {reference}: {stderr}")]
    Refused {
        action: &'static str,
        reference: String,
        stderr: String,
    },
    #[error("{reference} is not an image reference tickbot passes to skopeo")]
    BadReference { reference: String },
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    auth_file: Option<PathBuf>,
}

impl Registry {
    pub fn new(auth_file: Option<PathBuf>) -> Registry {
        Registry { auth_file }
    }

    /// The digest (`sha256:…`) of the manifest `reference` (`repository:tag`) names, or `None`
    /// when the registry has no such image.
    pub async fn digest(&self, reference: &str) -> Result<Option<String>, RegistryError> {
        let mut cmd = self.skopeo("inspect", reference)?;
        cmd.args(["--raw", &format!("docker://{reference}")]);
        let out = run(cmd, reference).await?;
        if out.status.success() {
            // The digest of a manifest is the hash of its bytes as served.
            return Ok(Some(format!(
                "sha256:{}",
                hex::encode(Sha256::digest(&out.stdout))
            )));
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let lower = stderr.to_ascii_lowercase();
        if lower.contains("manifest unknown") || lower.contains("name unknown") {
            return Ok(None);
        }
        Err(RegistryError::Refused {
            action: "reading",
            reference: reference.to_string(),
            stderr,
        })
    }

    /// Points `repository:tag` at `repository@digest`: a manifest copy inside one repository,
    /// so no layer is read or written.
    pub async fn tag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
    ) -> Result<(), RegistryError> {
        let from = format!("{repository}@{digest}");
        let to = format!("{repository}:{tag}");
        let mut cmd = self.skopeo("copy", &to)?;
        cmd.args([
            "--preserve-digests",
            &format!("docker://{from}"),
            &format!("docker://{to}"),
        ]);
        let out = run(cmd, &to).await?;
        if out.status.success() {
            return Ok(());
        }
        Err(RegistryError::Refused {
            action: "moving",
            reference: to,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// Every tag of `repository` (none for a repository the registry does not know).
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Listing {
            #[serde(rename = "Tags", default)]
            tags: Vec<String>,
        }
        let mut cmd = self.skopeo("list-tags", repository)?;
        cmd.arg(format!("docker://{repository}"));
        let out = run(cmd, repository).await?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !out.status.success() {
            if stderr.to_ascii_lowercase().contains("name unknown") {
                return Ok(Vec::new());
            }
            return Err(RegistryError::Refused {
                action: "listing the tags of",
                reference: repository.to_string(),
                stderr,
            });
        }
        let listing: Listing =
            serde_json::from_slice(&out.stdout).map_err(|e| RegistryError::Refused {
                action: "listing the tags of",
                reference: repository.to_string(),
                stderr: format!("unreadable answer: {e}"),
            })?;
        Ok(listing.tags)
    }

    /// Deletes the manifest `reference` names, and with it every tag that points at it.
    pub async fn delete(&self, reference: &str) -> Result<(), RegistryError> {
        let mut cmd = self.skopeo("delete", reference)?;
        cmd.arg(format!("docker://{reference}"));
        let out = run(cmd, reference).await?;
        if out.status.success() {
            return Ok(());
        }
        Err(RegistryError::Refused {
            action: "deleting",
            reference: reference.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// The options podman's `push` and `pull` need for `reference`: the credentials, and plain
    /// HTTP for a loopback registry.
    pub fn podman_args(&self, reference: &str) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(file) = &self.auth_file {
            args.push(format!("--authfile={}", file.display()));
        }
        if is_loopback(reference) {
            args.push("--tls-verify=false".into());
        }
        args
    }

    fn skopeo(&self, verb: &str, reference: &str) -> Result<Command, RegistryError> {
        if reference.starts_with('-') || reference.chars().any(char::is_whitespace) {
            return Err(RegistryError::BadReference {
                reference: reference.to_string(),
            });
        }
        let mut cmd = Command::new("skopeo");
        cmd.arg(verb);
        if let Some(file) = &self.auth_file {
            cmd.arg(format!("--authfile={}", file.display()));
        }
        if is_loopback(reference) {
            // `copy` names each side; tickbot copies only inside one repository.
            match verb {
                "copy" => cmd.args(["--src-tls-verify=false", "--dest-tls-verify=false"]),
                _ => cmd.arg("--tls-verify=false"),
            };
        }
        Ok(cmd)
    }
}

async fn run(mut cmd: Command, reference: &str) -> Result<std::process::Output, RegistryError> {
    cmd.stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| RegistryError::Spawn {
            reference: reference.to_string(),
            source,
        })
}

/// Whether the registry of `reference` is on this machine (`127.0.0.1`, `localhost`, `[::1]`),
/// the only place plain HTTP is allowed.
pub fn is_loopback(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_registry_is_spoken_to_in_plain_http() {
        for local in ["127.0.0.1:5000/a/t:x", "localhost/a/t", "[::1]:5000/a/t"] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "registry.example.org/a/t",
            "127.0.0.2:5000/a/t",
            "localhost.evil.org/a",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
        let r = Registry::new(Some("/etc/tickbot/auth.json".into()));
        assert_eq!(
            r.podman_args("127.0.0.1:5000/a/t:x"),
            vec!["--authfile=/etc/tickbot/auth.json", "--tls-verify=false"]
        );
        assert_eq!(
            r.podman_args("quay.io/a/t:x"),
            vec!["--authfile=/etc/tickbot/auth.json"]
        );
    }
}
