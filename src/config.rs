//! Server configuration (design §3): `tickbot.toml`, every key overridable by the environment
//! as `TICKBOT__<SECTION>__<KEY>`.
//!
//! The configuration is typed once at start-up; nothing else in the crate reads environment
//! variables. A bad value stops start-up with the file, the key and the reason.

use crate::ids::RepoName;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ENV_PREFIX: &str = "TICKBOT__";

/// A secret value: never printed, never logged.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub github: GitHubConfig,
    pub webhook: WebhookConfig,
    pub amqp: AmqpConfig,
    pub state: StateConfig,
    pub worker: WorkerConfig,
    pub logs: LogsConfig,
    pub git: GitConfig,
    pub dispatch: DispatchConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubConfig {
    pub api_url: String,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub app_id: Option<u64>,
    pub private_key_file: Option<PathBuf>,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".into(),
            token: None,
            token_file: None,
            app_id: None,
            private_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub listen: String,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            secret: None,
            secret_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    /// Absent: the embedded on-disk queue under `[state] dir` is used.
    pub url: Option<Secret>,
    /// Queue names are `<prefix>.events`, `<prefix>.jobs.<pool>`, …
    pub prefix: String,
    /// A message that failed this many deliveries goes to the dead-letter queue.
    pub max_deliveries: u32,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: None,
            prefix: "tickbot".into(),
            max_deliveries: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./tickbot-state"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub pools: Vec<String>,
    pub concurrency: u16,
    pub runtime: String,
    /// Shown in statuses as `[<name>]`; default: the host name.
    pub name: Option<String>,
    /// `CONTAINERS_CONF` for podman (some machines need `runtime = "runc"`).
    pub containers_conf: Option<PathBuf>,
    /// podman `--memory` and `--pids-limit` of every job.
    pub memory: String,
    pub pids_limit: u32,
    /// On SIGTERM, how long running jobs may finish before they are cancelled and requeued.
    pub stop_grace: String,
    /// Where job checkouts go; default `<state dir>/work`. A tmpfs here spares the disk the
    /// creation and deletion of every file of every job (see docs/benchmarks.md).
    pub work_dir: Option<PathBuf>,
}

impl WorkerConfig {
    /// `stop_grace` as a duration (checked at start-up, see `validate`).
    pub fn stop_grace(&self) -> Duration {
        crate::repo_config::parse_duration(&self.stop_grace).unwrap_or(Duration::from_secs(60))
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            pools: vec!["default".into()],
            concurrency: 1,
            runtime: "podman".into(),
            name: None,
            containers_conf: None,
            memory: "2g".into(),
            pids_limit: 4096,
            stop_grace: "60s".into(),
            work_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    pub public_url: String,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    pub author_name: String,
    pub author_email: String,
}

impl Default for GitConfig {
    fn default() -> Self {
        Self {
            author_name: "tickbot".into(),
            author_email: "tickbot@localhost".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Repositories whose open PRs are reconciled at start (webhooks missed while down).
    pub repositories: Vec<RepoName>,
    /// The bot's own login; its comments and edits never trigger work.
    pub bot_login: Option<String>,
}

/// What went wrong in a configuration file, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl ServerConfig {
    /// Loads `path` (a missing file means defaults) and applies `TICKBOT__…` overrides from `env`.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { file, source }),
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let overrides = apply_env(&mut table, env, &file)?;
        let config: ServerConfig = if overrides.is_empty() {
            // Deserialising the text itself keeps line and column in the error.
            toml::from_str(&text)
        } else {
            toml::Table::try_into(table)
        }
        .map_err(|e| ConfigError::Syntax {
            file: if overrides.is_empty() {
                file.clone()
            } else {
                format!("{file} (with {})", overrides.join(", "))
            },
            message: e.to_string(),
        })?;
        config.validate(&file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        if let Err(e) = self.webhook.listen.parse::<SocketAddr>() {
            return Err(invalid(
                "webhook.listen",
                format!(
                    "'{}' is not an address:port ({e}); e.g. \"127.0.0.1:8080\"",
                    self.webhook.listen
                ),
            ));
        }
        for (key, url) in [
            ("github.api_url", &self.github.api_url),
            ("logs.public_url", &self.logs.public_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    key,
                    format!("'{url}' is not an http:// or https:// URL"),
                ));
            }
        }
        if let Some(url) = &self.amqp.url
            && !(url.expose().starts_with("amqp://") || url.expose().starts_with("amqps://"))
        {
            return Err(invalid(
                "amqp.url",
                "must start with amqp:// or amqps:// (remove it to use the embedded queue)".into(),
            ));
        }
        if self.worker.concurrency == 0 {
            return Err(invalid("worker.concurrency", "must be at least 1".into()));
        }
        if self.worker.pools.is_empty() {
            return Err(invalid("worker.pools", "needs at least one pool".into()));
        }
        if !matches!(self.worker.runtime.as_str(), "podman" | "host") {
            return Err(invalid(
                "worker.runtime",
                format!(
                    "'{}' is not a runtime: use \"podman\" or \"host\"",
                    self.worker.runtime
                ),
            ));
        }
        if crate::repo_config::parse_duration(&self.worker.stop_grace).is_none() {
            return Err(invalid(
                "worker.stop_grace",
                format!(
                    "'{}' is not a duration: use e.g. \"30s\" or \"5m\"",
                    self.worker.stop_grace
                ),
            ));
        }
        if self.amqp.max_deliveries == 0 {
            return Err(invalid("amqp.max_deliveries", "must be at least 1".into()));
        }
        if self.github.app_id.is_some() != self.github.private_key_file.is_some() {
            return Err(invalid(
                "github.app_id",
                "a GitHub App needs both app_id and private_key_file".into(),
            ));
        }
        Ok(())
    }

    /// The webhook secret, from `secret` or `secret_file`; `serve` cannot start without it.
    pub fn webhook_secret(&self) -> Result<Secret, ConfigError> {
        read_secret(
            "webhook.secret",
            &self.webhook.secret,
            &self.webhook.secret_file,
        )?
        .ok_or_else(|| ConfigError::Invalid {
            file: "configuration".into(),
            key: "webhook.secret".into(),
            reason: "is required to verify GitHub's signatures: set webhook.secret, \
                     webhook.secret_file or TICKBOT__WEBHOOK__SECRET"
                .into(),
        })
    }

    /// The GitHub token, from `token` or `token_file`, if one is configured.
    pub fn github_token(&self) -> Result<Option<Secret>, ConfigError> {
        read_secret("github.token", &self.github.token, &self.github.token_file)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        // Checked in validate(); the fallback only guards against a hand-built config.
        self.webhook
            .listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

fn read_secret(
    key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(s), _) if !s.expose().is_empty() => Ok(Some(s.clone())),
        (_, Some(path)) => {
            let invalid = |reason: String| ConfigError::Invalid {
                file: path.display().to_string(),
                key: format!("{key}_file"),
                reason,
            };
            let value = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read the secret file: {e}")))?;
            // An empty secret would let anyone sign webhooks with the empty key.
            match value.trim() {
                "" => Err(invalid("the secret file is empty".into())),
                secret => Ok(Some(Secret(secret.to_string()))),
            }
        }
        _ => Ok(None),
    }
}

/// Applies `TICKBOT__SECTION__KEY=value` to the table; returns the names of the variables used.
/// Values are read as TOML when they parse as a TOML value (numbers, booleans, arrays), else as
/// plain strings, so `TICKBOT__WORKER__CONCURRENCY=4` is a number and a token stays a string.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    file: &str,
) -> Result<Vec<String>, ConfigError> {
    let mut used = Vec::new();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, value) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let [section, key] = path.as_slice() else {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                key: name.clone(),
                reason: "environment overrides are named TICKBOT__<SECTION>__<KEY>".into(),
            });
        };
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                key: section.clone(),
                reason: "is not a section".into(),
            });
        };
        section_table.insert(key.clone(), parsed);
        used.push(name);
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().expect("tempfile");
        f.write_all(text.as_bytes()).expect("write");
        ServerConfig::load(
            f.path(),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn missing_file_gives_defaults() {
        let c = ServerConfig::load(Path::new("/nonexistent/tickbot.toml"), Vec::new())
            .expect("defaults");
        assert_eq!(c.webhook.listen, "127.0.0.1:8080");
        assert!(c.amqp.url.is_none());
        assert_eq!(c.worker.pools, vec!["default".to_string()]);
    }

    #[test]
    fn job_checkouts_can_go_elsewhere() {
        let c = load("[worker]\nwork_dir = \"/dev/shm/tickbot\"\n", &[]).expect("valid");
        assert_eq!(c.worker.work_dir, Some(PathBuf::from("/dev/shm/tickbot")));
        assert_eq!(load("", &[]).expect("valid").worker.work_dir, None);
    }

    #[test]
    fn environment_overrides_file() {
        let c = load(
            "[worker]\nconcurrency = 2\n[github]\ntoken = \"from-file\"\n",
            &[
                ("TICKBOT__WORKER__CONCURRENCY", "4"),
                ("TICKBOT__GITHUB__TOKEN", "from-env"),
                ("OTHER", "x"),
            ],
        )
        .expect("valid");
        assert_eq!(c.worker.concurrency, 4);
        assert_eq!(
            c.github_token()
                .expect("ok")
                .map(|s| s.expose().to_string()),
            Some("from-env".into())
        );
    }

    #[test]
    fn errors_name_the_key_and_position() {
        let e = load("[webhook]\nlisten = \"nowhere\"\n", &[]).expect_err("bad listen");
        assert!(e.to_string().contains("key `webhook.listen`"), "{e}");

        let e = load("[worker]\nconcurency = 2\n", &[]).expect_err("typo");
        let msg = e.to_string();
        assert!(
            msg.contains("line 2") && msg.contains("concurency"),
            "{msg}"
        );

        let e = load("[amqp]\nurl = \"http://x\"\n", &[]).expect_err("bad url");
        assert!(e.to_string().contains("amqp.url"), "{e}");
    }

    #[test]
    fn secrets_are_never_printed() {
        let c = load("[github]\ntoken = \"ghp_supersecret\"\n", &[]).expect("valid");
        assert!(!format!("{c:?}").contains("supersecret"));
    }

    #[test]
    fn an_empty_secret_file_is_refused() {
        let secret = tempfile::NamedTempFile::new().expect("tempfile");
        let c = load(
            &format!("[webhook]\nsecret_file = {:?}\n", secret.path()),
            &[],
        )
        .expect("valid");
        let e = c.webhook_secret().expect_err("empty");
        assert!(e.to_string().contains("the secret file is empty"), "{e}");
    }

    #[test]
    fn serve_needs_a_webhook_secret() {
        let c = load("", &[]).expect("valid");
        let e = c.webhook_secret().expect_err("no secret");
        assert!(e.to_string().contains("TICKBOT__WEBHOOK__SECRET"), "{e}");
    }
}
