//! `[[schedule]]`: what tickbot refreshes by itself (reference §12). Read from the default
//! branch only. Each entry refreshes a task's items (one PR per item) or an `[images.*]` image,
//! when the last refresh that landed is older than `every` or its `inputs` changed since.

use super::{RepoConfigError, parse_duration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// Every refresh PR's branch starts so.
pub const REFRESH_BRANCH_PREFIX: &str = "tickbot/refresh/";

/// One `[[schedule]]` entry, checked against the file's tasks and images.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    pub target: Target,
    /// Each item is refreshed in its own PR; a task without items has one, the empty item.
    pub items: Vec<String>,
    pub every: Duration,
    /// Paths (globs, `{item}` replaced) whose change on the default branch makes an item due.
    pub inputs: Vec<String>,
    /// PRs are only opened at times this matches (cron, UTC).
    pub window: Option<Window>,
    /// Contexts run on the refresh PR besides those whose `paths` match.
    pub tests: Vec<String>,
    pub automerge: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `[tasks.*]` verb and its `message` (the subject its landed refreshes carry).
    Task { verb: String, message: String },
    /// An `[images.*]` name.
    Image { name: String },
}

/// A cron pattern as written, and parsed.
#[derive(Debug, Clone)]
pub struct Window {
    pub pattern: String,
    pub cron: croner::Cron,
}

impl ScheduleDef {
    /// The items to refresh: the `items`, or the one empty item.
    pub fn items(&self) -> Vec<&str> {
        match self.items.is_empty() {
            true => vec![""],
            false => self.items.iter().map(String::as_str).collect(),
        }
    }

    /// What the item is called in branch names, messages and output: `image-refresh/fedora-41`,
    /// `image/tasks`.
    pub fn label(&self, item: &str) -> String {
        match (&self.target, item) {
            (Target::Task { verb, .. }, "") => verb.clone(),
            (Target::Task { verb, .. }, item) => format!("{verb}/{item}"),
            (Target::Image { name }, _) => format!("image/{name}"),
        }
    }

    /// The branch of `item`'s refresh PR.
    pub fn branch(&self, item: &str) -> String {
        format!("{REFRESH_BRANCH_PREFIX}{}", self.label(item))
    }

    /// The item as a checkbox line says it: `image-refresh fedora-41`, or `image tasks`.
    pub fn item_text(&self, item: &str) -> String {
        match (&self.target, item) {
            (Target::Task { verb, .. }, "") => verb.clone(),
            (Target::Task { verb, .. }, item) => format!("{verb} {item}"),
            (Target::Image { name }, _) => format!("image {name}"),
        }
    }

    /// The title of the issue that tracks a failing refresh of `item`.
    pub fn failure_title(&self, item: &str) -> String {
        format!("Refresh of {} is failing", self.item_text(item))
    }

    /// The subject of the commit that landed a refresh of `item` (the task's `message` with
    /// `{args}` = the item); `None` for an image, whose refreshes are found by their stamp.
    pub fn landed_subject(&self, item: &str) -> Option<String> {
        match &self.target {
            Target::Task { message, .. } => {
                let message = message.replace("{args}", item);
                Some(message.lines().next().unwrap_or_default().to_string())
            }
            Target::Image { .. } => None,
        }
    }

    /// The `inputs` of `item`, `{item}` replaced.
    pub fn inputs_of(&self, item: &str) -> Vec<String> {
        self.inputs
            .iter()
            .map(|i| i.replace("{item}", item))
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    task: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    #[serde(default)]
    items: Vec<String>,
    every: Spanned<String>,
    #[serde(default)]
    inputs: Vec<Spanned<String>>,
    window: Option<Spanned<String>>,
    #[serde(default)]
    tests: Vec<Spanned<String>>,
    #[serde(default)]
    automerge: bool,
}

/// What a `[[schedule]]` entry may name, from the rest of the file.
pub(super) struct Names<'a> {
    /// Task verbs with their `message`.
    pub tasks: BTreeMap<&'a str, Option<&'a str>>,
    pub images: Vec<&'a str>,
    pub tests: Vec<&'a str>,
}

/// The `n`th (0-based) `[[schedule]]` entry, checked; `at_table` is where the entry starts.
pub(super) fn schedule_def(
    n: usize,
    raw: RawSchedule,
    names: &Names<'_>,
    at: &impl Fn(usize, String) -> RepoConfigError,
    at_table: usize,
) -> Result<ScheduleDef, RepoConfigError> {
    let key = format!("schedule[{}]", n + 1);
    let target = match (raw.task, raw.image) {
        (Some(task), None) => task_target(&task, names, &key, at)?,
        (None, Some(image)) if names.images.contains(&image.get_ref().as_str()) => Target::Image {
            name: image.into_inner(),
        },
        (None, Some(image)) => {
            return Err(at(
                image.span().start,
                format!(
                    "{key}.image: no [images.{}] in this file (images: {})",
                    image.get_ref(),
                    listed(&names.images)
                ),
            ));
        }
        _ => {
            return Err(at(
                at_table,
                format!("{key} needs exactly one of task = \"<verb>\" or image = \"<name>\""),
            ));
        }
    };
    let every = parse_duration(raw.every.get_ref())
        .map_err(|reason| at(raw.every.span().start, format!("{key}.every {reason}")))?;
    for input in &raw.inputs {
        if input.get_ref().contains("{item}") && raw.items.is_empty() {
            return Err(at(
                input.span().start,
                format!("{key}.inputs: `{{item}}` is used but there are no `items`"),
            ));
        }
    }
    let window = match raw.window {
        None => None,
        Some(w) => Some(checked_window(&w, &key, at)?),
    };
    for test in &raw.tests {
        if !names.tests.contains(&test.get_ref().as_str()) {
            return Err(at(
                test.span().start,
                format!(
                    "{key}.tests: no [tests.{}] in this file (tests: {})",
                    test.get_ref(),
                    listed(&names.tests)
                ),
            ));
        }
    }
    Ok(ScheduleDef {
        target,
        items: raw.items,
        every,
        inputs: raw.inputs.into_iter().map(Spanned::into_inner).collect(),
        window,
        tests: raw.tests.into_iter().map(Spanned::into_inner).collect(),
        automerge: raw.automerge,
    })
}

fn task_target(
    task: &Spanned<String>,
    names: &Names<'_>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Target, RepoConfigError> {
    let verb = task.get_ref();
    let Some(message) = names.tasks.get(verb.as_str()) else {
        let known: Vec<&str> = names.tasks.keys().copied().collect();
        return Err(at(
            task.span().start,
            format!(
                "{key}.task: no [tasks.{verb}] in this file (tasks: {})",
                listed(&known)
            ),
        ));
    };
    // The last refresh that landed is found by its commit subject.
    let Some(message) = message else {
        return Err(at(
            task.span().start,
            format!(
                "{key}.task: [tasks.{verb}] needs a `message` (e.g. \"images: Update {{args}} \
                 image\"): the last refresh that landed is found by that commit subject"
            ),
        ));
    };
    Ok(Target::Task {
        verb: verb.clone(),
        message: message.to_string(),
    })
}

fn checked_window(
    window: &Spanned<String>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Window, RepoConfigError> {
    let pattern = window.get_ref();
    let fields = pattern.split_whitespace().count();
    let parsed = match fields {
        5 => pattern.parse::<croner::Cron>().map_err(|e| e.to_string()),
        _ => Err(format!("{fields} fields")),
    };
    parsed
        .map(|cron| Window {
            pattern: pattern.clone(),
            cron,
        })
        .map_err(|e| {
            at(
                window.span().start,
                format!(
                    "{key}.window: '{pattern}' is not a cron pattern of 5 fields (minute hour \
                     day-of-month month day-of-week, UTC), e.g. \"0 22 * * *\": {e}"
                ),
            )
        })
}

fn listed(names: &[&str]) -> String {
    match names.is_empty() {
        true => "none".into(),
        false => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use crate::repo_config::RepoConfig;

    const BASE: &str = r#"[tasks.image-refresh]
command = ["./refresh", "{args}"]
message = "images: Update {args} image"
[tasks.lint]
command = ["make"]
[tests.unit]
command = ["make", "check"]
[images.tasks]
context = "containers/tasks"
repository = "r.io/acme/tasks"
"#;

    #[test]
    fn an_entry_names_a_task_or_an_image_with_items_a_period_inputs_and_a_window() {
        let text = format!(
            "{BASE}[[schedule]]\ntask = \"image-refresh\"\nitems = [\"fedora-41\"]\nevery = \"7d\"\n\
             inputs = [\"images/scripts/{{item}}.setup\"]\nwindow = \"0 22 * * *\"\ntests = [\"unit\"]\n\
             [[schedule]]\nimage = \"tasks\"\nevery = \"30d\"\n"
        );
        let c = RepoConfig::parse(&text).expect("valid");
        let (refresh, image) = (&c.schedule[0], &c.schedule[1]);
        assert_eq!(refresh.label("fedora-41"), "image-refresh/fedora-41");
        assert_eq!(
            refresh.landed_subject("fedora-41").as_deref(),
            Some("images: Update fedora-41 image")
        );
        assert_eq!(
            refresh.inputs_of("fedora-41"),
            vec!["images/scripts/fedora-41.setup"]
        );
        assert_eq!(
            refresh.window.as_ref().map(|w| w.pattern.as_str()),
            Some("0 22 * * *")
        );
        assert_eq!(image.items(), vec![""]);
        assert_eq!(image.label(""), "image/tasks");
        assert_eq!(image.landed_subject(""), None);
    }

    #[test]
    fn every_bad_entry_is_refused_where_it_is_written() {
        let cases = [
            (
                "task = \"deploy\"\nevery = \"7d\"\n",
                "line 12, column 8: schedule[1].task: no [tasks.deploy] in this file (tasks: image-refresh, lint)",
            ),
            (
                "task = \"lint\"\nevery = \"7d\"\n",
                "line 12, column 8: schedule[1].task: [tasks.lint] needs a `message` (e.g. \"images: Update {args} image\"): the last refresh that landed is found by that commit subject",
            ),
            (
                "image = \"ci\"\nevery = \"7d\"\n",
                "line 12, column 9: schedule[1].image: no [images.ci] in this file (images: tasks)",
            ),
            (
                "task = \"image-refresh\"\nevery = \"weekly\"\n",
                "line 13, column 9: schedule[1].every 'weekly' is not a duration: use e.g. \"90s\", \"30m\", \"2h\", \"1h30m\"",
            ),
            (
                "task = \"image-refresh\"\nevery = \"7d\"\nwindow = \"0 22 * *\"\n",
                "line 14, column 10: schedule[1].window: '0 22 * *' is not a cron pattern of 5 fields (minute hour day-of-month month day-of-week, UTC), e.g. \"0 22 * * *\": 4 fields",
            ),
            (
                "task = \"image-refresh\"\nevery = \"7d\"\ninputs = [\"x/{item}\"]\n",
                "line 14, column 11: schedule[1].inputs: `{item}` is used but there are no `items`",
            ),
            (
                "task = \"image-refresh\"\nevery = \"7d\"\ntests = [\"unti\"]\n",
                "line 14, column 10: schedule[1].tests: no [tests.unti] in this file (tests: unit)",
            ),
            (
                "every = \"7d\"\n",
                "line 11, column 1: schedule[1] needs exactly one of task = \"<verb>\" or image = \"<name>\"",
            ),
        ];
        for (entry, expected) in cases {
            let text = format!("{BASE}[[schedule]]\n{entry}");
            let e = RepoConfig::parse(&text).expect_err(entry);
            assert_eq!(e.to_string(), expected, "{entry}");
        }
    }
}
