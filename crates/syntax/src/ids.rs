//! Domain newtypes, so a signature says what it takes: a repository, a PR number, a commit.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// `owner/name` of a repository, as GitHub spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName {
    owner: String,
    name: String,
}

impl RepoName {
    pub fn new(owner: &str, name: &str) -> Result<Self, InvalidRepoName> {
        format!("{owner}/{name}").parse()
    }
    pub fn owner(&self) -> &str {
        &self.owner
    }
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[derive(Debug, Clone)]
pub struct InvalidRepoName(pub String);

impl fmt::Display for InvalidRepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a repository name: expected 'owner/name'",
            self.0
        )
    }
}

impl std::error::Error for InvalidRepoName {}

impl FromStr for RepoName {
    type Err = InvalidRepoName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match s.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) => Ok(Self {
                owner: owner.to_string(),
                name: name.to_string(),
            }),
            _ => Err(InvalidRepoName(s.to_string())),
        }
    }
}

impl TryFrom<String> for RepoName {
    type Error = InvalidRepoName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RepoName> for String {
    fn from(r: RepoName) -> String {
        r.to_string()
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A pull request number within one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrNumber(pub u64);

impl fmt::Display for PrNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A full 40-hex-digit commit id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitSha(pub String);

impl CommitSha {
    /// The first 7 digits, as people write them in comments.
    pub fn short(&self) -> &str {
        self.0.get(..7).unwrap_or(&self.0)
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_parse_and_reject() {
        let r: RepoName = "cockpit-project/bots".parse().expect("valid");
        assert_eq!((r.owner(), r.name()), ("cockpit-project", "bots"));
        for bad in ["", "a", "a/", "/b", "a/b/c", "a/..", "a b/c"] {
            assert!(
                bad.parse::<RepoName>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
