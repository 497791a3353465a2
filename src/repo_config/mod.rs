//! A served repository's `.tickbot.toml` (reference §4).
//!
//! What runs (`[tasks]`, `[tests]`, `[deps]`) is read at the PR's head, so a PR that changes a
//! task validates itself; who may run what and which secrets exist (`[trust]`, `[secrets]`,
//! `[[schedule]]`) is only ever taken from the default branch ([`RepoConfig::policy`]).
//! Every error carries the line and column it was found at, because it ends up in a PR comment.

mod images;
mod schedule;

pub use images::{Consumer, ImageDef};
pub use schedule::{REFRESH_BRANCH_PREFIX, ScheduleDef, Target, Window};

use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// The path of the repository configuration inside a repository.
pub const FILE_NAME: &str = ".tickbot.toml";

/// The image a task runs in when it names none: built from `tasks/` in this project.
pub const DEFAULT_IMAGE: &str = "localhost/tickbot-tasks:latest";

/// Bounds on what one file may hold. The file comes from any PR's head, untrusted authors'
/// included, and is read before anything else is decided: with these (and GitHub's 1 MB cap on
/// a file read through the API) parsing it costs milliseconds and a few MiB (docs/benchmarks.md
/// "Hostile configurations").
pub const MAX_TASKS: usize = 128;
pub const MAX_TESTS: usize = 512;
/// The compiled size of one `args` pattern, and of its matching cache.
const ARGS_SIZE_LIMIT: usize = 32 * 1024;

/// What the server allows a repository to ask for (`[dispatch] max_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_timeout: Duration::from_secs(6 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RepoConfig {
    pub tasks: BTreeMap<String, TaskDef>,
    pub tests: BTreeMap<String, TestDef>,
    pub deps: BTreeMap<String, DepDef>,
    pub trust: TrustDef,
    pub secrets: BTreeMap<String, SecretDef>,
    pub schedule: Vec<ScheduleDef>,
    pub images: BTreeMap<String, ImageDef>,
}

/// A task's `args` pattern: every argument must match it as a whole.
#[derive(Debug, Clone)]
pub struct ArgPattern {
    source: String,
    anchored: Regex,
}

impl ArgPattern {
    pub fn is_match(&self, arg: &str) -> bool {
        self.anchored.is_match(arg)
    }
    /// The pattern as written in `.tickbot.toml`, for messages.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[derive(Debug, Clone)]
pub struct TaskDef {
    pub command: Vec<String>,
    pub args: Option<ArgPattern>,
    pub image: String,
    pub timeout: Duration,
    pub commit: bool,
    pub message: Option<String>,
    pub pool: String,
    pub priority: u8,
    pub secrets: Vec<String>,
    pub network: bool,
}

#[derive(Debug, Clone)]
pub struct TestDef {
    pub command: Vec<String>,
    pub image: String,
    pub timeout: Duration,
    pub default: bool,
    pub branches: Vec<String>,
    pub paths: Vec<String>,
    pub pool: String,
    pub priority: u8,
    /// Run on the PR merged onto its base branch's current head; `None`: the server's
    /// `[dispatch] merge`.
    pub merge: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepDef {
    pub repo: String,
    pub path: String,
}

/// Who is trusted. Without a `[trust]` table, collaborators with write access are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustDef {
    pub users: Vec<String>,
    pub orgs: Vec<String>,
    pub collaborators: bool,
}

impl Default for TrustDef {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            orgs: Vec::new(),
            collaborators: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretDef {
    pub env: BTreeMap<String, String>,
}

/// A problem in `.tickbot.toml`, with its position (1-based) when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position(*.line, *.column))]
pub struct RepoConfigError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

// The raw file, as written; spans kept where a later check may fail.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tasks: BTreeMap<Spanned<String>, RawTask>,
    #[serde(default)]
    tests: BTreeMap<Spanned<String>, RawTest>,
    #[serde(default)]
    deps: BTreeMap<String, RawDep>,
    #[serde(default)]
    trust: TrustDef,
    #[serde(default)]
    secrets: BTreeMap<String, SecretDef>,
    #[serde(default)]
    schedule: Vec<Spanned<schedule::RawSchedule>>,
    #[serde(default)]
    images: BTreeMap<Spanned<String>, images::RawImage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    command: Spanned<Vec<String>>,
    args: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    // Read only to be refused with a clear message (any value, so `build = 1` is refused too).
    build: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    commit: bool,
    message: Option<String>,
    pool: Option<Spanned<String>>,
    priority: Option<Spanned<i64>>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    network: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    command: Spanned<Vec<String>>,
    image: Option<Spanned<String>>,
    // Read only to be refused with a clear message (any value, so `build = 1` is refused too).
    build: Option<Spanned<toml::Value>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    branches: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    pool: Option<Spanned<String>>,
    priority: Option<Spanned<i64>>,
    merge: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDep {
    repo: String,
    path: Spanned<String>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_PRIORITY: u8 = 5;

impl RepoConfig {
    /// The `[[schedule]]` entry and item whose refresh PR lives on `branch`.
    pub fn refresh_on(&self, branch: &str) -> Option<(&ScheduleDef, &str)> {
        self.schedule.iter().find_map(|def| {
            let item = def.items().into_iter().find(|i| def.branch(i) == branch)?;
            Some((def, item))
        })
    }

    /// Parses the file within the default [`Limits`].
    pub fn parse(text: &str) -> Result<Self, RepoConfigError> {
        Self::parse_within(text, &Limits::default())
    }

    /// Parses and checks the file, refusing what the server does not allow.
    pub fn parse_within(text: &str, limits: &Limits) -> Result<Self, RepoConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_col(text, s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            RepoConfigError {
                line,
                column,
                message: e.message().to_string(),
            }
        })?;
        let at = |offset: usize, message: String| {
            let (l, c) = line_col(text, offset);
            RepoConfigError {
                line: Some(l),
                column: Some(c),
                message,
            }
        };

        too_many("tasks", raw.tasks.keys(), MAX_TASKS, &at)?;
        too_many("tests", raw.tests.keys(), MAX_TESTS, &at)?;
        let mut images = BTreeMap::new();
        for (name, image) in raw.images {
            let def = images::image_def(&name, image, limits, &at)?;
            images.insert(name.into_inner(), def);
        }
        let names: Vec<&str> = images.keys().map(String::as_str).collect();
        let mut tasks = BTreeMap::new();
        for (name, task) in raw.tasks {
            let def = task_def(&name, task, &names, limits, &at)?;
            tasks.insert(name.into_inner(), def);
        }
        let mut tests = BTreeMap::new();
        for (name, test) in raw.tests {
            let def = test_def(name.get_ref(), test, &names, limits, &at)?;
            tests.insert(name.into_inner(), def);
        }
        let mut deps = BTreeMap::new();
        for (name, dep) in raw.deps {
            let path = checked_dep_path(&name, dep.path, &at)?;
            deps.insert(
                name,
                DepDef {
                    repo: dep.repo,
                    path,
                },
            );
        }

        let schedule = schedules(raw.schedule, &tasks, &tests, &images, &at)?;
        Ok(RepoConfig {
            tasks,
            tests,
            deps,
            trust: raw.trust,
            secrets: raw.secrets,
            schedule,
            images,
        })
    }

    /// About how much memory this configuration holds, parsed from `text_len` bytes: the text's
    /// worth, and each `args` pattern up to its compiled limit (measured: docs/benchmarks.md).
    pub fn retained_bytes(&self, text_len: usize) -> usize {
        let patterns = self.tasks.values().filter(|t| t.args.is_some()).count();
        text_len + patterns * (ARGS_SIZE_LIMIT + ARGS_SIZE_LIMIT / 2)
    }

    /// The `[images.*]` entry a task's or test's `image` names, if it names one (else it is a
    /// full image reference).
    pub fn image_of(&self, image: &str) -> Option<&ImageDef> {
        self.images.get(image)
    }

    /// The names of the checkbox verbs, for "known verbs are …" replies.
    pub fn verbs(&self) -> Vec<&str> {
        self.tasks.keys().map(String::as_str).collect()
    }
}

pub(super) fn is_verb(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Refuses a file with more than `max` entries in `[<table>.*]`, at the first one too many.
fn too_many<'a>(
    table: &str,
    names: impl Iterator<Item = &'a Spanned<String>>,
    max: usize,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<(), RepoConfigError> {
    // Reported where it is written, not in name order.
    let mut starts: Vec<usize> = names.map(|n| n.span().start).collect();
    if starts.len() <= max {
        return Ok(());
    }
    starts.sort_unstable();
    Err(at(
        starts[max],
        format!("more than {max} [{table}.*] entries: tickbot reads at most {max}"),
    ))
}

/// A pool name, as in the server's `[worker] pools`: it becomes part of a queue's name.
pub fn is_pool_name(pool: &str) -> bool {
    pool.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && !pool.contains("..")
        && pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn checked_pool(
    pool: Option<Spanned<String>>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<String, RepoConfigError> {
    let Some(pool) = pool else {
        return Ok("default".into());
    };
    if !is_pool_name(pool.get_ref()) {
        return Err(at(
            pool.span().start,
            format!(
                "{key}.pool '{}' is not a pool name: use letters, digits, '-', '_' or '.', \
                 starting with a letter or digit",
                pool.get_ref()
            ),
        ));
    }
    Ok(pool.into_inner())
}

/// A `[deps.*] path`: where the other project is checked out inside the job's tree.
fn checked_dep_path(
    name: &str,
    path: Spanned<String>,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<String, RepoConfigError> {
    let inside = !path.get_ref().is_empty()
        && std::path::Path::new(path.get_ref())
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Err(at(
            path.span().start,
            format!(
                "deps.{name}.path '{}' must be a relative path inside the job's tree, \
                 without '..', e.g. \"bots\"",
                path.get_ref()
            ),
        ));
    }
    Ok(path.into_inner())
}

/// The `[[schedule]]` entries, checked against the file's tasks, tests and images.
fn schedules(
    raw: Vec<Spanned<schedule::RawSchedule>>,
    tasks: &BTreeMap<String, TaskDef>,
    tests: &BTreeMap<String, TestDef>,
    images: &BTreeMap<String, ImageDef>,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Vec<ScheduleDef>, RepoConfigError> {
    let names = schedule::Names {
        tasks: tasks
            .iter()
            .map(|(verb, t)| (verb.as_str(), t.message.as_deref()))
            .collect(),
        images: images.keys().map(String::as_str).collect(),
        tests: tests.keys().map(String::as_str).collect(),
    };
    raw.into_iter()
        .enumerate()
        .map(|(n, entry)| {
            let start = entry.span().start;
            schedule::schedule_def(n, entry.into_inner(), &names, at, start)
        })
        .collect()
}

/// A `[tasks.<verb>]` table, checked; `images` are the names of the file's `[images.*]`.
fn task_def(
    name: &Spanned<String>,
    raw: RawTask,
    images: &[&str],
    limits: &Limits,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<TaskDef, RepoConfigError> {
    let verb = name.get_ref();
    if !is_verb(verb) {
        return Err(at(
            name.span().start,
            format!(
                "task name '{verb}' must be lowercase letters, digits, '-' or '_', starting with a letter or digit"
            ),
        ));
    }
    let key = format!("tasks.{verb}");
    refuse_build(raw.build.as_ref(), &key, at)?;
    let command = checked_command(&raw.command, &key, at)?;
    if verb == "tickbot" {
        return Err(at(
            name.span().start,
            "the task name 'tickbot' is reserved for tickbot's own statuses".into(),
        ));
    }
    Ok(TaskDef {
        command,
        args: checked_args(raw.args, &key, at)?,
        image: images::checked_image(raw.image, images, &key, at)?,
        timeout: checked_timeout(raw.timeout, &key, limits, at)?,
        commit: raw.commit,
        message: raw.message,
        pool: checked_pool(raw.pool, &key, at)?,
        priority: checked_priority(raw.priority, &key, at)?,
        secrets: raw.secrets,
        network: raw.network,
    })
}

/// A task's `args` pattern. Anchored: every argument must match as a whole (reference §4),
/// not contain a match.
fn checked_args(
    pattern: Option<Spanned<String>>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Option<ArgPattern>, RepoConfigError> {
    let Some(pattern) = pattern else {
        return Ok(None);
    };
    let invalid = |e: regex::Error| {
        let reason = match e {
            regex::Error::CompiledTooBig(_) => format!(
                "{key}.args is too large a pattern (over {} KiB compiled): write a simpler one, \
                 with fewer or shorter repetitions",
                ARGS_SIZE_LIMIT / 1024
            ),
            e => format!("{key}.args is not a valid regular expression: {e}"),
        };
        at(pattern.span().start, reason)
    };
    let bounded = |p: &str| {
        regex::RegexBuilder::new(p)
            // Arguments are names and versions: `\w`, `\d` and `\s` are their ASCII classes
            // (the Unicode ones compile to thousands of ranges each).
            .unicode(false)
            .size_limit(ARGS_SIZE_LIMIT)
            .dfa_size_limit(ARGS_SIZE_LIMIT)
            .build()
    };
    match bounded(&format!("^(?:{})$", pattern.get_ref())) {
        Ok(anchored) => Ok(Some(ArgPattern {
            source: pattern.get_ref().clone(),
            anchored,
        })),
        // Compiled again as written only to explain, so the error quotes the user's pattern.
        Err(e) => Err(invalid(bounded(pattern.get_ref()).err().unwrap_or(e))),
    }
}

/// A `[tests.<context>]` table, checked.
fn test_def(
    context: &str,
    raw: RawTest,
    images: &[&str],
    limits: &Limits,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<TestDef, RepoConfigError> {
    let key = format!("tests.{context}");
    refuse_build(raw.build.as_ref(), &key, at)?;
    Ok(TestDef {
        command: checked_command(&raw.command, &key, at)?,
        image: images::checked_image(raw.image, images, &key, at)?,
        timeout: checked_timeout(raw.timeout, &key, limits, at)?,
        default: raw.default,
        branches: raw.branches,
        paths: raw.paths,
        pool: checked_pool(raw.pool, &key, at)?,
        priority: checked_priority(raw.priority, &key, at)?,
        merge: raw.merge,
    })
}

/// `build = "<dir>"` (another bot's way to ask for a built image): running the job in
/// `image` instead would silently ignore what was asked, so it is refused with the way to say it.
fn refuse_build(
    build: Option<&Spanned<toml::Value>>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<(), RepoConfigError> {
    match build {
        None => Ok(()),
        Some(b) => Err(at(
            b.span().start,
            format!(
                "{key}.build is not a key: define the image as [images.NAME] with \
                 context = \"<directory>\" and use image = \"NAME\""
            ),
        )),
    }
}

fn checked_command(
    command: &Spanned<Vec<String>>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Vec<String>, RepoConfigError> {
    if command.get_ref().first().is_none_or(|c| c.is_empty()) {
        return Err(at(
            command.span().start,
            format!("{key}.command must name a program, e.g. [\"./run\", \"{{args}}\"]"),
        ));
    }
    Ok(command.get_ref().clone())
}

pub(super) fn checked_timeout(
    timeout: Option<Spanned<String>>,
    key: &str,
    limits: &Limits,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Duration, RepoConfigError> {
    let Some(t) = timeout else {
        return Ok(DEFAULT_TIMEOUT.min(limits.max_timeout));
    };
    let timeout = parse_duration(t.get_ref())
        .map_err(|reason| at(t.span().start, format!("{key}.timeout {reason}")))?;
    if timeout > limits.max_timeout {
        return Err(at(
            t.span().start,
            format!(
                "{key}.timeout '{}' is over this server's maximum of {} ([dispatch] max_timeout)",
                t.get_ref(),
                format_duration(limits.max_timeout)
            ),
        ));
    }
    Ok(timeout)
}

fn checked_priority(
    priority: Option<Spanned<i64>>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<u8, RepoConfigError> {
    match priority {
        None => Ok(DEFAULT_PRIORITY),
        Some(p) => u8::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p <= 9)
            .ok_or_else(|| {
                at(
                    p.span().start,
                    format!("{key}.priority must be 0 to 9 (9 runs first)"),
                )
            }),
    }
}

/// Parses a duration as people write it, in humantime's syntax: "90s", "30m", "2h", "7d",
/// "1h 30m", "1h30m" (also spelled out: "2 hours", "1day"). A duration under a second, zero
/// included, is refused: no timeout or grace period that short makes sense. The error is the
/// reason, quoting the value, to follow the key: `'soon' is not a duration: use e.g. …`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXAMPLES: &str = r#"e.g. "90s", "30m", "2h", "1h30m""#;
    match humantime::parse_duration(s.trim()) {
        Err(_) => Err(format!("'{s}' is not a duration: use {EXAMPLES}")),
        Ok(d) if d.is_zero() => Err(format!("'{s}' is zero: use at least a second, {EXAMPLES}")),
        Ok(d) if d < Duration::from_secs(1) => Err(format!(
            "'{s}' is under a second: use at least a second, {EXAMPLES}"
        )),
        Ok(d) => Ok(d),
    }
}

/// Formats a duration the way people write it in `.tickbot.toml` ("2h", "90m", "7d").
/// Not `humantime::format_duration`: it writes "1day", "7days", and 40 days as
/// "1month 9days 13h 26m 24s" (its months are 30.44 days).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
