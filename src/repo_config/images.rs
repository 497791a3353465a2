//! `[images.<name>]`: container images defined by a directory of the repository (reference §8),
//! and the `image` key of tasks and tests that names one of them or a full reference.

use super::{Limits, RepoConfigError, checked_timeout};
use crate::ids::RepoName;
use regex::Regex;
use serde::Deserialize;
use std::sync::OnceLock;
use std::time::Duration;
use toml::Spanned;

/// An image built from `context` (a directory with a `Containerfile`) and pushed to
/// `repository:<git tree id of context>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDef {
    pub name: String,
    /// Relative to the repository root, without `.` or `..` parts, e.g. `containers/tasks`.
    pub context: String,
    /// Without tag or digest, e.g. `registry.example.org/acme/tasks`.
    pub repository: String,
    /// Tags moved to the image's digest when a new tree lands on the default branch.
    pub publish: Vec<String>,
    /// Projects (`owner/repo/branch`) whose tests use this image.
    pub consumers: Vec<Consumer>,
    /// Whether the build may reach the network (only for a trusted author's PR).
    pub network: bool,
    pub timeout: Duration,
}

impl ImageDef {
    /// The context `image/<name>` under which the image's build reports on a PR.
    pub fn status_context(&self) -> String {
        format!("image/{}", self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub repo: RepoName,
    pub branch: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImage {
    context: Spanned<String>,
    repository: Spanned<String>,
    #[serde(default)]
    publish: Vec<Spanned<String>>,
    #[serde(default)]
    consumers: Vec<Spanned<String>>,
    #[serde(default)]
    network: bool,
    timeout: Option<Spanned<String>>,
}

/// An `[images.<name>]` table, checked.
pub(super) fn image_def(
    name: &Spanned<String>,
    raw: RawImage,
    limits: &Limits,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<ImageDef, RepoConfigError> {
    let key = format!("images.{}", name.get_ref());
    if !super::is_verb(name.get_ref()) {
        return Err(at(
            name.span().start,
            format!(
                "image name '{}' must be lowercase letters, digits, '-' or '_', starting with a \
                 letter or digit",
                name.get_ref()
            ),
        ));
    }
    let context = raw.context.get_ref().trim_end_matches('/');
    let inside = !context.is_empty()
        && std::path::Path::new(context)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Err(at(
            raw.context.span().start,
            format!(
                "{key}.context must be a directory inside the repository, e.g. \
                 \"containers/tasks\" (not the root, no '.' or '..' parts)"
            ),
        ));
    }
    if !repository_pattern().is_match(raw.repository.get_ref()) {
        return Err(at(
            raw.repository.span().start,
            format!(
                "{key}.repository must be a registry and path without tag or digest, e.g. \
                 \"registry.example.org/acme/tasks\""
            ),
        ));
    }
    let mut publish = Vec::new();
    for tag in raw.publish {
        if !tag_pattern().is_match(tag.get_ref()) {
            return Err(at(
                tag.span().start,
                format!(
                    "{key}.publish: '{}' is not a tag: letters, digits, '_', '.' or '-', at most \
                     128, not starting with '.' or '-'",
                    tag.get_ref()
                ),
            ));
        }
        publish.push(tag.into_inner());
    }
    let mut consumers = Vec::new();
    for consumer in raw.consumers {
        consumers.push(checked_consumer(&consumer, &key, at)?);
    }
    Ok(ImageDef {
        name: name.get_ref().clone(),
        context: context.to_string(),
        repository: raw.repository.into_inner(),
        publish,
        consumers,
        network: raw.network,
        timeout: checked_timeout(raw.timeout, &key, limits, at)?,
    })
}

fn checked_consumer(
    consumer: &Spanned<String>,
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<Consumer, RepoConfigError> {
    let text = consumer.get_ref();
    let parsed = text.rsplit_once('/').and_then(|(repo, branch)| {
        let repo: RepoName = repo.parse().ok()?;
        let branch_ok = !branch.is_empty() && !branch.starts_with('-');
        branch_ok.then(|| Consumer {
            repo,
            branch: branch.to_string(),
        })
    });
    parsed.ok_or_else(|| {
        at(
            consumer.span().start,
            format!(
                "{key}.consumers: '{text}' is not owner/repo/branch, e.g. \"acme/webapp/main\""
            ),
        )
    })
}

/// What a task's or test's `image` names: an `[images.*]` entry or a full reference, checked
/// against the file's `[images]` (`names`). A bare word that names no image is refused rather
/// than guessed at, and nothing may start with '-' (it would reach podman as an option).
pub(super) fn checked_image(
    image: Option<Spanned<String>>,
    names: &[&str],
    key: &str,
    at: &impl Fn(usize, String) -> RepoConfigError,
) -> Result<String, RepoConfigError> {
    let Some(image) = image else {
        return Ok(super::DEFAULT_IMAGE.into());
    };
    let value = image.get_ref();
    if names.contains(&value.as_str()) {
        return Ok(value.clone());
    }
    let reference = !value.starts_with('-')
        && value.contains('/')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if reference {
        return Ok(value.clone());
    }
    let known = match names {
        [] => "there is no [images.*] table".to_string(),
        names => format!("images defined here: {}", names.join(", ")),
    };
    Err(at(
        image.span().start,
        format!(
            "{key}.image: '{value}' is neither an [images.*] name nor a full reference like \
             \"registry.example.org/acme/tasks:latest\" ({known})"
        ),
    ))
}

fn repository_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
            .expect("a valid pattern")
    })
}

fn tag_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").expect("a valid pattern"))
}

#[cfg(test)]
mod tests {
    use crate::repo_config::RepoConfig;

    const IMAGE: &str = r#"
[images.tasks]
context = "containers/tasks/"
repository = "127.0.0.1:5000/acme/tasks"
publish = ["latest"]
consumers = ["acme/webapp/main"]

[tasks.refresh]
command = ["./refresh"]
image = "tasks"

[tests.unit]
command = ["make"]
image = "quay.io/acme/other:1"
"#;

    #[test]
    fn an_image_is_a_directory_a_repository_tags_and_consumers() {
        let c = RepoConfig::parse(IMAGE).expect("valid");
        let image = &c.images["tasks"];
        assert_eq!(image.context, "containers/tasks");
        assert_eq!(image.repository, "127.0.0.1:5000/acme/tasks");
        assert_eq!(image.publish, vec!["latest".to_string()]);
        assert_eq!(image.consumers[0].repo.to_string(), "acme/webapp");
        assert_eq!(image.consumers[0].branch, "main");
        assert_eq!(image.status_context(), "image/tasks");
        assert_eq!(c.image_of("tasks").map(|i| &i.name), Some(&image.name));
        assert_eq!(c.tasks["refresh"].image, "tasks");
        assert!(c.image_of(&c.tests["unit"].image).is_none());
    }

    #[test]
    fn every_bad_image_value_is_refused_where_it_is_written() {
        let cases = [
            (
                "[images.t]\ncontext = \"../x\"\nrepository = \"r.io/a/t\"\n",
                "line 2, column 11: images.t.context must be a directory inside the repository, \
                 e.g. \"containers/tasks\" (not the root, no '.' or '..' parts)",
            ),
            (
                "[images.t]\ncontext = \".\"\nrepository = \"r.io/a/t\"\n",
                "line 2, column 11: images.t.context must be a directory inside the repository, \
                 e.g. \"containers/tasks\" (not the root, no '.' or '..' parts)",
            ),
            (
                "[images.t]\ncontext = \"c\"\nrepository = \"r.io/a/t:latest\"\n",
                "line 3, column 14: images.t.repository must be a registry and path without tag \
                 or digest, e.g. \"registry.example.org/acme/tasks\"",
            ),
            (
                "[images.t]\ncontext = \"c\"\nrepository = \"r.io/a/t\"\npublish = [\"-x\"]\n",
                "line 4, column 12: images.t.publish: '-x' is not a tag: letters, digits, '_', \
                 '.' or '-', at most 128, not starting with '.' or '-'",
            ),
            (
                "[images.t]\ncontext = \"c\"\nrepository = \"r.io/a/t\"\nconsumers = [\"webapp\"]\n",
                "line 4, column 14: images.t.consumers: 'webapp' is not owner/repo/branch, e.g. \
                 \"acme/webapp/main\"",
            ),
            (
                "[tasks.x]\ncommand = [\"a\"]\nimage = \"tasks\"\n",
                "line 3, column 9: tasks.x.image: 'tasks' is neither an [images.*] name nor a \
                 full reference like \"registry.example.org/acme/tasks:latest\" (there is no \
                 [images.*] table)",
            ),
            (
                "[images.t]\ncontext = \"c\"\nrepository = \"r.io/a/t\"\n\
                 [tests.x]\ncommand = [\"a\"]\nimage = \"--privileged\"\n",
                "line 6, column 9: tests.x.image: '--privileged' is neither an [images.*] name \
                 nor a full reference like \"registry.example.org/acme/tasks:latest\" (images \
                 defined here: t)",
            ),
        ];
        for (text, expected) in cases {
            let e = RepoConfig::parse(text).expect_err(text);
            assert_eq!(e.to_string(), expected, "{text}");
        }
    }
}
