//! A served repository's `.tickbot.toml` (reference §4).
//!
//! What runs (`[tasks]`, `[tests]`, `[deps]`) is read at the PR's head, so a PR that changes a
//! task validates itself; who may run what and which secrets exist (`[trust]`, `[secrets]`,
//! `[[schedule]]`) is only ever taken from the default branch ([`RepoConfig::policy`]).
//! Every error carries the line and column it was found at, because it ends up in a PR comment.

mod images;
mod schedule;

pub use images::{Consumer, ImageDef};
pub use schedule::{ScheduleDef, Target, Window};

use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// The path of the repository configuration inside a repository.
pub const FILE_NAME: &str = ".tickbot.toml";

/// The image a task runs in when it names none: built from `tasks/` in this project.
pub const DEFAULT_IMAGE: &str = "localhost/tickbot-tasks:latest";

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
    deps: BTreeMap<String, DepDef>,
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
    pool: Option<String>,
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
    pool: Option<String>,
    priority: Option<Spanned<i64>>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_PRIORITY: u8 = 5;

impl RepoConfig {
    pub fn parse(text: &str) -> Result<Self, RepoConfigError> {
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

        let mut images = BTreeMap::new();
        for (name, image) in raw.images {
            let def = images::image_def(&name, image, &at)?;
            images.insert(name.into_inner(), def);
        }
        let names: Vec<&str> = images.keys().map(String::as_str).collect();
        let mut tasks = BTreeMap::new();
        for (name, task) in raw.tasks {
            let def = task_def(&name, task, &names, &at)?;
            tasks.insert(name.into_inner(), def);
        }
        let mut tests = BTreeMap::new();
        for (name, test) in raw.tests {
            let def = test_def(name.get_ref(), test, &names, &at)?;
            tests.insert(name.into_inner(), def);
        }

        let schedule = schedules(raw.schedule, &tasks, &tests, &images, &at)?;
        Ok(RepoConfig {
            tasks,
            tests,
            deps: raw.deps,
            trust: raw.trust,
            secrets: raw.secrets,
            schedule,
            images,
        })
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
        timeout: checked_timeout(raw.timeout, &key, at)?,
        commit: raw.commit,
        message: raw.message,
        pool: raw.pool.unwrap_or_else(|| "default".into()),
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
        at(
            pattern.span().start,
            format!("{key}.args is not a valid regular expression: {e}"),
        )
    };
    // Checked as written first, so an error quotes the user's own pattern.
    Regex::new(pattern.get_ref()).map_err(invalid)?;
    Ok(Some(ArgPattern {
        source: pattern.get_ref().clone(),
        anchored: Regex::new(&format!("^(?:{})$", pattern.get_ref())).map_err(invalid)?,
    }))
}

/// A `[tests.<context>]` table, checked.
fn test_def(
    context: &str,
    raw: RawTest,
    images: &[&str],
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<TestDef, RepoConfigError> {
    let key = format!("tests.{context}");
    refuse_build(raw.build.as_ref(), &key, at)?;
    Ok(TestDef {
        command: checked_command(&raw.command, &key, at)?,
        image: images::checked_image(raw.image, images, &key, at)?,
        timeout: checked_timeout(raw.timeout, &key, at)?,
        default: raw.default,
        branches: raw.branches,
        paths: raw.paths,
        pool: raw.pool.unwrap_or_else(|| "default".into()),
        priority: checked_priority(raw.priority, &key, at)?,
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
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Duration, RepoConfigError> {
    match timeout {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) => parse_duration(t.get_ref())
            .map_err(|reason| at(t.span().start, format!("{key}.timeout {reason}"))),
    }
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
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[tasks.image-refresh]
command = ["./image-refresh", "{args}"]
args = "^[a-z0-9][a-z0-9.-]*$"
image = "localhost/tasks:latest"
timeout = "2h"
commit = true
message = "images: Update {args} image"
priority = 9
secrets = ["image-upload"]

[tests.unit-tests]
command = ["make", "check"]
default = true
branches = ["main"]

[deps.bots]
repo = "cockpit-project/bots"
path = "bots"

[trust]
users = ["alice"]

[secrets.image-upload]
env = { S3_KEY = "IMAGE_UPLOAD_KEY" }

[[schedule]]
task = "image-refresh"
items = ["fedora-41"]
every = "7d"
window = "0 22 * * 0"
"#;

    #[test]
    fn the_design_example_parses() {
        let c = RepoConfig::parse(EXAMPLE).expect("valid");
        let t = &c.tasks["image-refresh"];
        assert_eq!(t.timeout, Duration::from_secs(7200));
        assert_eq!(t.priority, 9);
        assert!(t.args.as_ref().is_some_and(|r| r.is_match("fedora-41")));
        assert_eq!(c.tests["unit-tests"].image, DEFAULT_IMAGE);
        assert_eq!(c.trust.users, vec!["alice".to_string()]);
        assert!(c.trust.collaborators);
        assert_eq!(c.verbs(), vec!["image-refresh"]);
    }

    #[test]
    fn argument_patterns_match_whole_arguments() {
        let c =
            RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\nargs = \"[a-z]+\"\n").expect("valid");
        let p = c.tasks["x"].args.as_ref().expect("pattern");
        assert!(p.is_match("fedora"));
        assert!(
            !p.is_match("fedora-41; rm"),
            "a partial match is not enough"
        );
        assert_eq!(p.as_str(), "[a-z]+");
        let e = RepoConfig::parse("[tasks.tickbot]\ncommand = [\"a\"]\n").expect_err("reserved");
        assert!(e.message.contains("reserved"), "{e}");
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\nargs = \"(\"\n").expect_err("bad");
        assert_eq!((e.line, e.column), (Some(3), Some(8)));
        assert!(
            e.to_string()
                .starts_with("line 3, column 8: tasks.x.args is not a valid regular expression"),
            "{e}"
        );

        let e = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\ntimeout = \"soon\"\n")
            .expect_err("bad");
        assert_eq!(e.line, Some(3));

        let e =
            RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\ncomit = true\n").expect_err("typo");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("comit"), "{e}");

        let e = RepoConfig::parse("[tasks.x]\ncommand = []\n").expect_err("empty");
        assert_eq!(e.line, Some(2));

        let e = RepoConfig::parse("[tasks.X]\ncommand = [\"a\"]\n").expect_err("caps");
        assert!(e.message.contains("task name 'X'"), "{e}");

        let e =
            RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\npriority = 12\n").expect_err("prio");
        assert!(e.message.contains("0 to 9"), "{e}");
    }

    #[test]
    fn durations_are_written_as_people_write_them() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("2h", 7200),
            ("7d", 604_800),
            ("1h 30m", 5400),
            ("1h30m", 5400),
            ("2 hours", 7200),
            (" 45min ", 2700),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text:?}"
            );
        }
        for bad in ["", "5", "h", "1x", "-1s", "soon", "0s", "0h 0m", "500ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_duration("0s"),
            Err(r#"'0s' is zero: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#.into())
        );
        assert_eq!(
            parse_duration("500ms"),
            Err(
                r#"'500ms' is under a second: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#
                    .into()
            )
        );
        for (secs, text) in [(7200, "2h"), (5400, "90m"), (604_800, "7d"), (90, "90s")] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn a_bad_timeout_is_refused_where_it_is_written() {
        let e = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\ntimeout = \"soon\"\n")
            .expect_err("bad");
        assert_eq!(
            e.to_string(),
            r#"line 3, column 11: tasks.x.timeout 'soon' is not a duration: use e.g. "90s", "30m", "2h", "1h30m""#
        );
        let e = RepoConfig::parse("[tests.unit]\ncommand = [\"a\"]\ntimeout = \"0s\"\n")
            .expect_err("zero");
        assert_eq!(
            e.to_string(),
            r#"line 3, column 11: tests.unit.timeout '0s' is zero: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#
        );
    }

    #[test]
    fn build_is_refused_with_the_way_to_define_an_image() {
        let e = RepoConfig::parse(
            "[tasks.image-refresh]\ncommand = [\"./refresh\"]\nbuild = \"containers/tasks\"\n",
        )
        .expect_err("build in a task");
        assert_eq!(
            e.to_string(),
            "line 3, column 9: tasks.image-refresh.build is not a key: define the image as \
             [images.NAME] with context = \"<directory>\" and use image = \"NAME\""
        );

        let e = RepoConfig::parse(
            "[tests.unit-tests]\ncommand = [\"make\", \"check\"]\nimage = \"quay.io/x/y\"\nbuild = \".\"\n",
        )
        .expect_err("build in a test");
        assert_eq!(
            e.to_string(),
            "line 4, column 9: tests.unit-tests.build is not a key: define the image as \
             [images.NAME] with context = \"<directory>\" and use image = \"NAME\""
        );
    }
}
