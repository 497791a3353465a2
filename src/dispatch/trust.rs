//! Who may make tickbot run code (reference §4 `[trust]`, §5).
//!
//! The policy is read from the default branch only, so a PR can never grant itself trust.
//! Answers are cached for minutes, not forever: removing someone from `[trust]` or from the
//! collaborators takes effect within [`TTL`] without restarting the dispatcher.

use crate::github::{GitHub, GitHubError, Permission};
use crate::ids::RepoName;
use crate::repo_config::{self, RepoConfig, SecretDef, TrustDef};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TTL: Duration = Duration::from_secs(300);

/// Why someone is or is not trusted; the reason goes into replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub trusted: bool,
    pub reason: String,
}

/// What only the default branch may say: who is trusted and which secrets exist.
#[derive(Debug, Clone, Default)]
struct Policy {
    trust: TrustDef,
    secrets: BTreeMap<String, SecretDef>,
}

pub struct Trust {
    github: GitHub,
    bot_login: Option<String>,
    policies: Mutex<HashMap<RepoName, (Instant, Policy)>>,
    verdicts: Mutex<HashMap<(RepoName, String), (Instant, Verdict)>>,
}

fn fresh<K: std::hash::Hash + Eq, V: Clone>(
    map: &Mutex<HashMap<K, (Instant, V)>>,
    key: &K,
) -> Option<V> {
    let map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.get(key)
        .filter(|(at, _)| at.elapsed() < TTL)
        .map(|(_, v)| v.clone())
}

fn remember<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, (Instant, V)>>, key: K, value: V) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() > 10_000 {
        map.retain(|_, (at, _)| at.elapsed() < TTL);
    }
    map.insert(key, (Instant::now(), value));
}

impl Trust {
    pub fn new(github: GitHub, bot_login: Option<String>) -> Self {
        Self {
            github,
            bot_login,
            policies: Mutex::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// `[trust]` and `[secrets]` of the default branch; the built-in default (no secrets)
    /// when the file or table is absent or the file is broken (a broken file must not widen
    /// trust).
    async fn policy(&self, repo: &RepoName, default_branch: &str) -> Result<Policy, GitHubError> {
        if let Some(p) = fresh(&self.policies, repo) {
            return Ok(p);
        }
        let policy = match self
            .github
            .file_at(repo, repo_config::FILE_NAME, default_branch)
            .await?
        {
            Some(text) => match RepoConfig::parse(&text) {
                Ok(config) => Policy {
                    trust: config.trust,
                    secrets: config.secrets,
                },
                Err(e) => {
                    tracing::warn!(%repo, error = %e, "invalid .tickbot.toml on the default branch; using the default trust policy");
                    Policy::default()
                }
            },
            None => Policy::default(),
        };
        remember(&self.policies, repo.clone(), policy.clone());
        Ok(policy)
    }

    /// The secrets the default branch defines (`[secrets.<name>]`).
    pub async fn secrets(
        &self,
        repo: &RepoName,
        default_branch: &str,
    ) -> Result<BTreeMap<String, SecretDef>, GitHubError> {
        Ok(self.policy(repo, default_branch).await?.secrets)
    }

    /// Whether `user` may run code through tickbot in `repo`.
    pub async fn check(
        &self,
        repo: &RepoName,
        default_branch: &str,
        user: &str,
        association: &str,
    ) -> Result<Verdict, GitHubError> {
        let key = (repo.clone(), user.to_string());
        if let Some(v) = fresh(&self.verdicts, &key) {
            return Ok(v);
        }
        let verdict = match self.trusted_without_asking(repo, user, association) {
            Some(v) => v,
            None => self.decide_by_policy(repo, default_branch, user).await?,
        };
        remember(&self.verdicts, key, verdict.clone());
        Ok(verdict)
    }

    /// Tickbot itself, and the owner of a personal repository (its admin): trusted without
    /// asking GitHub or reading the policy.
    fn trusted_without_asking(
        &self,
        repo: &RepoName,
        user: &str,
        association: &str,
    ) -> Option<Verdict> {
        if self.bot_login.as_deref() == Some(user) {
            return Some(trusted("tickbot itself".into()));
        }
        (association == "OWNER" && user == repo.owner())
            .then(|| trusted(format!("@{user} owns {repo}")))
    }

    /// The verdict of the repository's `[trust]` policy on `default_branch`.
    async fn decide_by_policy(
        &self,
        repo: &RepoName,
        default_branch: &str,
        user: &str,
    ) -> Result<Verdict, GitHubError> {
        let policy = self.policy(repo, default_branch).await?.trust;
        if policy.users.iter().any(|u| u.eq_ignore_ascii_case(user)) {
            return Ok(trusted(format!("@{user} is listed in [trust] users")));
        }
        for org in &policy.orgs {
            if self.github.is_org_member(org, user).await? {
                return Ok(trusted(format!("@{user} is a member of {org}")));
            }
        }
        if policy.collaborators {
            let permission = self.github.permission(repo, user).await?;
            if matches!(
                permission,
                Permission::Admin | Permission::Maintain | Permission::Write
            ) {
                return Ok(trusted(format!("@{user} has write access to {repo}")));
            }
        }
        let mut ways = vec!["listed in `[trust] users`".to_string()];
        if !policy.orgs.is_empty() {
            ways.push(format!("a member of {}", policy.orgs.join(" or ")));
        }
        if policy.collaborators {
            ways.push("a collaborator with write access".into());
        }
        Ok(Verdict {
            trusted: false,
            reason: format!(
                "@{user} is not trusted to run code on tickbot's workers (not {} per `.tickbot.toml` on `{default_branch}`)",
                ways.join(", nor ")
            ),
        })
    }
}

fn trusted(reason: String) -> Verdict {
    Verdict {
        trusted: true,
        reason,
    }
}
