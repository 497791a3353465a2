//! Which test contexts (`[tests.*]` in `.tickbot.toml`) apply to a pull request. Pure: the
//! configuration at the head, the base branch and the changed files in, context names out.

use crate::repo_config::RepoConfig;

/// Why a `[tests.*]` context does not run automatically for this PR (for `/explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub context: String,
    pub reason: String,
}

/// The contexts that run automatically (`default = true`, base branch and changed paths
/// matching), and why each other one does not. `changed` is `None` when no context filters by
/// path (the file list costs an API call).
pub fn automatic(
    config: &RepoConfig,
    base_ref: &str,
    changed: Option<&[String]>,
) -> (Vec<String>, Vec<Skipped>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for (name, test) in &config.tests {
        let skip = |reason: String| Skipped {
            context: name.clone(),
            reason,
        };
        if !test.default {
            skipped.push(skip("not `default = true`: runs on `/test` only".into()));
        } else if !test.branches.is_empty() && !test.branches.iter().any(|b| glob(b, base_ref)) {
            skipped.push(skip(format!(
                "the base branch `{base_ref}` is not one of `branches` ({})",
                test.branches.join(", ")
            )));
        } else if !test.paths.is_empty()
            && !changed
                .unwrap_or_default()
                .iter()
                .any(|f| test.paths.iter().any(|p| glob(p, f)))
        {
            skipped.push(skip(format!(
                "no changed file matches `paths` ({})",
                test.paths.join(", ")
            )));
        } else {
            run.push(name.clone());
        }
    }
    (run, skipped)
}

/// Whether [`automatic`] needs the PR's changed files.
pub fn filters_paths(config: &RepoConfig) -> bool {
    config
        .tests
        .values()
        .any(|t| t.default && !t.paths.is_empty())
}

/// `pattern` matches `path`: `**` any number of directories, `*` and `?` within one name.
pub fn glob(pattern: &str, path: &str) -> bool {
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|i| segments(rest, &s[i..])),
            Some((first, rest)) => {
                s.split_first()
                    .is_some_and(|(name, _)| name_matches(first.as_bytes(), name.as_bytes()))
                    && segments(rest, &s[1..])
            }
        }
    }
    fn name_matches(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| name_matches(rest, &s[i..])),
            Some((b'?', rest)) => !s.is_empty() && name_matches(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && name_matches(rest, &s[1..]),
        }
    }
    let p: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    segments(&p, &s)
}

/// The test contexts `.tickbot.toml` defines.
pub fn names(config: &RepoConfig) -> Vec<String> {
    config.tests.keys().cloned().collect()
}

/// The test context closest to a typo, within two edits.
pub fn closest_test(config: &RepoConfig, name: &str) -> Option<String> {
    let names: Vec<&str> = config.tests.keys().map(String::as_str).collect();
    super::plan::closest(name, &names).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RepoConfig {
        RepoConfig::parse(
            r#"
[tests.unit]
command = ["make", "check"]
default = true
[tests.docs]
command = ["make", "docs"]
default = true
paths = ["doc/**", "*.md"]
[tests.stable-only]
command = ["true"]
default = true
branches = ["stable-*"]
[tests.manual]
command = ["true"]
"#,
        )
        .expect("valid")
    }

    #[test]
    fn globs_match_like_gitignore_paths() {
        assert!(glob("src/**", "src/a/b.rs"));
        assert!(glob("src/**", "src/a.rs"));
        assert!(glob("**/*.rs", "a/b/c.rs"));
        assert!(glob("**/*.rs", "c.rs"));
        assert!(glob("*.md", "README.md"));
        assert!(!glob("*.md", "doc/README.md"));
        assert!(glob("doc/?.txt", "doc/a.txt"));
        assert!(!glob("src/**", "srcx/a.rs"));
        assert!(glob("stable-*", "stable-1.2"));
    }

    #[test]
    fn defaults_are_filtered_by_branch_and_paths_and_each_skip_says_why() {
        let changed = vec!["src/main.rs".to_string()];
        let (run, skipped) = automatic(&config(), "main", Some(&changed));
        assert_eq!(run, vec!["unit"]);
        let reasons: Vec<(&str, &str)> = skipped
            .iter()
            .map(|s| (s.context.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("docs", "no changed file matches `paths` (doc/**, *.md)"),
                ("manual", "not `default = true`: runs on `/test` only"),
                (
                    "stable-only",
                    "the base branch `main` is not one of `branches` (stable-*)"
                ),
            ]
        );
        let changed = vec!["doc/x/y.html".to_string()];
        let (run, _) = automatic(&config(), "stable-2", Some(&changed));
        assert_eq!(run, vec!["docs", "stable-only", "unit"]);
        assert!(filters_paths(&config()));
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(closest_test(&config(), "unti").as_deref(), Some("unit"));
        assert_eq!(closest_test(&config(), "zzzzzz"), None);
        assert_eq!(
            names(&config()),
            vec!["docs", "manual", "stable-only", "unit"]
        );
    }
}
