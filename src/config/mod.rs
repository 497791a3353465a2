//! Server configuration (reference §3): `tickbot.toml`, every key overridable by the environment
//! as `TICKBOT__<SECTION>__<KEY>`, layered by the `config` crate (the environment wins).
//!
//! The configuration is typed once at start-up; nothing else in the crate reads tickbot's
//! settings from the environment. A bad value stops start-up with the file (and the line and
//! column) or the environment variable, the key and the reason.

use crate::ids::RepoName;
use crate::repo_config::{is_pool_name, line_col};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variables named `TICKBOT__…` (this case exactly) are tickbot's own settings.
pub const ENV_PREFIX: &str = "TICKBOT__";

/// Keys whose environment value is a comma-separated list: `TICKBOT__WORKER__POOLS=default,large`.
const LIST_KEYS: &[&str] = &["worker.pools", "dispatch.repositories"];

/// Keys whose environment value is taken exactly as written. The environment source reads a
/// value that looks like a number or a boolean as one (`try_parsing`), and it would reach a
/// string key rewritten: a secret `0123` as `123`, `1e3` as `1000`, `TRUE` as `true`.
const VERBATIM_KEYS: &[&str] = &[
    "github.token",
    "webhook.secret",
    "amqp.url",
    "logs.secret_access_key",
];

/// Whether an environment variable is one of tickbot's settings (never handed to a job).
pub fn is_setting(name: &str) -> bool {
    name.starts_with(ENV_PREFIX)
}

/// The configuration key a `TICKBOT__SECTION__KEY` variable sets, as the `config` crate reads it.
fn env_key(name: &str) -> String {
    name[ENV_PREFIX.len()..].to_lowercase().replace("__", ".")
}

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
    pub registry: RegistryConfig,
    pub schedule: ScheduleConfig,
    pub metrics: MetricsConfig,
    pub dashboard: DashboardConfig,
}

/// `/metrics` of a process without an intake (`tickbot work`, `tickbot dispatch`); the intake
/// serves its own process's at its `/metrics`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port`; none: not served.
    pub listen: Option<String>,
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
    /// A request's headers must arrive within this (counted from the connection's start or
    /// its previous answer, so it also closes kept-alive connections left unused).
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// A webhook's body must arrive within this once its headers did (GitHub itself gives
    /// up on a delivery after 10 s).
    #[serde(deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// A connection on which nothing was received or sent for this long is closed.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            secret: None,
            secret_file: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl WebhookConfig {
    pub fn timeouts(&self) -> crate::intake::Timeouts {
        crate::intake::Timeouts {
            header: self.header_timeout,
            body: self.body_timeout,
            idle: self.idle_timeout,
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
    #[serde(deserialize_with = "duration")]
    pub stop_grace: Duration,
    /// Where job checkouts go; default `<state dir>/work`. A tmpfs here spares the disk the
    /// creation and deletion of every file of every job (see docs/benchmarks.md).
    pub work_dir: Option<PathBuf>,
    /// A job's log is cut here (a marker says so, and the end of the output is kept).
    pub max_log: bytesize::ByteSize,
    /// How long a failed run asked for with `/debug` keeps its container.
    #[serde(deserialize_with = "duration")]
    pub debug_hold: Duration,
}

/// A duration as people write it ("90s", "1h 30m"), checked where it is read.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::repo_config::parse_duration(&text).map_err(serde::de::Error::custom)
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
            stop_grace: Duration::from_secs(60),
            work_dir: None,
            max_log: bytesize::ByteSize::b(crate::worker::job_log::DEFAULT_MAX_LOG),
            debug_hold: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    pub public_url: String,
    /// Finished job logs older than this are deleted.
    #[serde(deserialize_with = "duration")]
    pub keep: Duration,
    /// `file` (under `[state] dir`) or `s3://bucket/prefix` (any S3-compatible service).
    pub store: String,
    /// The object store's URL, for a service other than Amazon S3.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            keep: Duration::from_secs(90 * 86_400),
            store: "file".into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

impl LogsConfig {
    /// How to reach `store` when it is an object store.
    pub fn s3(&self) -> crate::logs::S3Settings {
        crate::logs::S3Settings {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }
}

/// `[dashboard]`: what the intake's pages show.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Also show the jobs of private repositories (the pages have no login).
    pub private: bool,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Repositories whose open PRs are reconciled at start (webhooks missed while down).
    pub repositories: Vec<RepoName>,
    /// The bot's own login; its comments and edits never trigger work.
    pub bot_login: Option<String>,
    /// The longest `timeout` a repository may give a task, test or image build.
    #[serde(deserialize_with = "duration")]
    pub max_timeout: Duration,
    /// Test contexts run on the PR merged onto its base branch's current head unless their
    /// `[tests.*] merge` says otherwise.
    pub merge: bool,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            repositories: Vec::new(),
            bot_login: None,
            max_timeout: crate::repo_config::Limits::default().max_timeout,
            merge: false,
        }
    }
}

impl DispatchConfig {
    pub fn limits(&self) -> crate::repo_config::Limits {
        crate::repo_config::Limits {
            max_timeout: self.max_timeout,
        }
    }
}

/// Where `[images.*]` are pushed and pulled (reference §8). The credentials are the worker's and
/// the dispatcher's, never a job's: builds push with them, jobs never see them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// A containers-auth.json (as `podman login` writes it) for the registries named in
    /// `[images.*]`. Plain HTTP is only ever used for a registry on a loopback address.
    pub auth_file: Option<PathBuf>,
}

/// Bounds on the scheduler's refresh PRs, per repository (reference §12).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Refresh PRs open at once.
    pub max_open: u32,
    /// Refresh PRs opened in any hour.
    pub max_per_hour: u32,
    /// How often the scheduler makes a pass (a few REST calls per repository each time).
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            max_open: 5,
            max_per_hour: 2,
            interval: Duration::from_secs(300),
        }
    }
}

/// What went wrong in a configuration file or variable, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// Not TOML, before any key could be read.
    #[error("{file}: {}{message}", position(*.line, *.column))]
    Syntax {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A key of the file (or a setting's file) with a wrong, unknown or invalid value.
    #[error("{file}: {}key `{key}`: {reason}", position(*.line, *.column))]
    Invalid {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        key: String,
        reason: String,
    },
    /// A `TICKBOT__…` variable with a wrong, unknown or invalid value.
    #[error("environment variable {var}: key `{key}`: {reason}")]
    Env {
        var: String,
        key: String,
        reason: String,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl ServerConfig {
    /// Loads `path` (a missing file means defaults) and applies the `TICKBOT__…` variables among
    /// `env` over it (main passes the process environment; tests pass their own).
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(ConfigError::Read { file, source }),
        };
        // The file alone first, typed by the toml crate: the `config` crate keeps the position
        // of a TOML syntax error but not of a value of the wrong type or an unknown key (those
        // come from deserialising its merged tree, where neither the line nor, for an unknown
        // key, the file is known). A file that passes here cannot fail below, so an error of
        // the layered configuration is the environment's.
        if let Some(text) = &text {
            check_file(&file, text)?;
        }
        let env: BTreeMap<String, String> =
            env.into_iter().filter(|(k, _)| is_setting(k)).collect();
        let config = layered(path, text.is_some(), &env)
            .map_err(|e| blame_the_environment(path, text.is_some(), &env, e))?;
        let origin = Origin {
            file,
            text: text.unwrap_or_default(),
            vars: env.keys().map(|var| (env_key(var), var.clone())).collect(),
        };
        config.validate(&origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &Origin) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| origin.invalid(key, reason);
        if let Some(listen) = &self.metrics.listen
            && let Err(e) = listen.parse::<SocketAddr>()
        {
            return Err(invalid(
                "metrics.listen",
                format!("'{listen}' is not an address:port ({e}); e.g. \"127.0.0.1:9464\""),
            ));
        }
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
        self.validate_limits(origin)?;
        if self.worker.concurrency == 0 {
            return Err(invalid("worker.concurrency", "must be at least 1".into()));
        }
        if self.worker.pools.is_empty() {
            return Err(invalid("worker.pools", "needs at least one pool".into()));
        }
        // Also catches a list written for the old TOML-valued variables (`'["a","b"]'`) and a
        // space after a comma, which would otherwise name queues nobody feeds.
        if let Some(pool) = self.worker.pools.iter().find(|p| !is_pool_name(p)) {
            return Err(invalid(
                "worker.pools",
                format!(
                    "'{pool}' is not a pool name: use letters, digits, '-', '_' or '.', starting \
                     with a letter or digit (in the environment, a list is written default,large)"
                ),
            ));
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

    /// The intake's timeouts and the log cap: values that would make them useless.
    fn validate_limits(&self, origin: &Origin) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| origin.invalid(key, reason);
        for (key, timeout) in [
            ("webhook.header_timeout", self.webhook.header_timeout),
            ("webhook.body_timeout", self.webhook.body_timeout),
        ] {
            if timeout.is_zero() {
                return Err(invalid(key, "must be longer than 0s".into()));
            }
        }
        // An idle connection may be one whose delivery waits for the queue.
        let least_idle = crate::intake::PUBLISH_TIMEOUT * 2;
        if self.webhook.idle_timeout < least_idle {
            return Err(invalid(
                "webhook.idle_timeout",
                format!(
                    "must be at least {}s: a delivery may wait {}s for the queue before it is answered",
                    least_idle.as_secs(),
                    crate::intake::PUBLISH_TIMEOUT.as_secs()
                ),
            ));
        }
        if self.worker.max_log.as_u64() < 64 * 1024 {
            return Err(invalid(
                "worker.max_log",
                "must be at least 64 KiB, to keep a failure's explanation".into(),
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
            line: None,
            column: None,
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
                line: None,
                column: None,
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

/// Types the file alone with the toml crate, for errors with the line, the column and the key.
fn check_file(file: &str, text: &str) -> Result<(), ConfigError> {
    let Err(e) = toml::from_str::<ServerConfig>(text) else {
        return Ok(());
    };
    let offset = e.span().map(|s| s.start);
    let (line, column) = offset
        .map(|o| line_col(text, o))
        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
    let message = e.message().trim_end().to_string();
    Err(match offset.and_then(|o| key_at(text, o)) {
        Some(key) => ConfigError::Invalid {
            file: file.to_string(),
            line,
            column,
            key,
            reason: message,
        },
        None => ConfigError::Syntax {
            file: file.to_string(),
            line,
            column,
            message,
        },
    })
}

/// The file under the environment, through the `config` crate.
fn layered(
    path: &Path,
    file_exists: bool,
    env: &BTreeMap<String, String>,
) -> Result<ServerConfig, config::ConfigError> {
    let mut environment = config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",");
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    // The variables come from `load`'s caller, never straight from the process: tests run in
    // parallel with their own, and only `TICKBOT__…` (this case) are settings (`is_setting`).
    let environment = environment.source(Some(env.clone().into_iter().collect()));
    let mut builder = config::Config::builder();
    // Only a file that exists: for a missing one the crate would look for `<path>.toml` instead.
    if file_exists {
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    builder = builder.add_source(environment);
    for (var, value) in env {
        let key = env_key(var);
        if VERBATIM_KEYS.contains(&key.as_str()) {
            builder = builder.set_override(key, value.as_str())?;
        }
    }
    builder.build()?.try_deserialize()
}

/// The layered configuration failed although the file alone is valid: the variable that fails
/// on its own over the file is named (the first, in name order).
fn blame_the_environment(
    path: &Path,
    file_exists: bool,
    env: &BTreeMap<String, String>,
    error: config::ConfigError,
) -> ConfigError {
    for (var, value) in env {
        let alone = BTreeMap::from([(var.clone(), value.clone())]);
        if let Err(e) = layered(path, file_exists, &alone) {
            return ConfigError::Env {
                var: var.clone(),
                key: env_key(var),
                reason: reason_of(&e),
            };
        }
    }
    ConfigError::Env {
        var: env.keys().cloned().collect::<Vec<_>>().join(", "),
        key: "?".into(),
        reason: error.to_string(),
    }
}

/// The `config` crate's error without the key and the origin, which the caller names itself.
fn reason_of(error: &config::ConfigError) -> String {
    match error {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        config::ConfigError::At { error, .. } => reason_of(error),
        other => other.to_string(),
    }
}

/// Where each value came from, to name it in an error.
struct Origin {
    file: String,
    text: String,
    /// Configuration key → the `TICKBOT__…` variable that set it.
    vars: BTreeMap<String, String>,
}

impl Origin {
    fn invalid(&self, key: &str, reason: String) -> ConfigError {
        if let Some(var) = self.vars.get(key) {
            return ConfigError::Env {
                var: var.clone(),
                key: key.to_string(),
                reason,
            };
        }
        let (line, column) = value_offset(&self.text, key)
            .map(|o| line_col(&self.text, o))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        ConfigError::Invalid {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            reason,
        }
    }
}

/// The dotted key (`worker.concurency`) whose name or value holds byte `offset` of the file.
fn key_at(text: &str, offset: usize) -> Option<String> {
    fn walk(table: &toml::de::DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (key, value) in table {
            path.push(key.get_ref().to_string());
            let here = key.span().contains(&offset) || value.span().contains(&offset);
            // A `[section]` value's span may not cover its keys: look inside every table.
            if let toml::de::DeValue::Table(inner) = value.get_ref()
                && walk(inner, offset, path)
            {
                return true;
            }
            if here {
                return true;
            }
            path.pop();
        }
        false
    }
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    walk(root.get_ref(), offset, &mut path).then(|| path.join("."))
}

/// Where the value of a dotted key starts in the file, if the file sets it.
fn value_offset(text: &str, key: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (_, value) = table.iter().find(|(k, _)| k.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some(value.span().start);
        }
        let toml::de::DeValue::Table(inner) = value.get_ref() else {
            return None;
        };
        table = inner;
    }
    None
}

#[cfg(test)]
mod tests;
