//! The scheduler (reference §12): which `[[schedule]]` items of a repository are due, and why.
//!
//! The facts come from the default branch's history in a bare clone ([`RepoClone`]), so they
//! survive every restart and need no store of their own: a task item's last refresh is the
//! newest commit whose subject is the task's `message` for that item; an image's is the newest
//! change of its stamp file (`<context>/.tickbot-refresh`); an input changed when a commit since
//! then touched one of its paths. [`due::decide`] turns them into a decision.
//!
//! A pass (`pass`) decides every item, then acts on it (`open.rs`): opens one refresh PR per
//! due item within the limits, closes a refresh that changed nothing, merges a passed one with
//! `automerge`, and keeps one issue per failing item (`failures.rs`). Only the holder of the
//! [`Lease`] runs passes.

pub mod due;
mod failures;
mod lease;
mod open;
mod rebase;

pub use lease::Lease;

pub use open::{Acted, Limit};
use open::{Budget, Opener};

use crate::github::{CommitStatus, GitHub, GitHubError, RateLimit, RecentPull};
use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::repo_clone::{CloneError, RepoClone};
use crate::repo_config::{self, RepoConfig, ScheduleDef, Target, format_duration};
use crate::worker::mirror::GitError;
use chrono::{DateTime, TimeZone, Utc};
use due::{Decision, Facts, Why};
use std::path::Path;

/// The file an image refresh changes inside the image's directory (so its tree, and so its
/// image, is new); its last change is the image's last refresh.
pub const IMAGE_STAMP: &str = ".tickbot-refresh";

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Git(#[from] GitError),
    /// The repository cannot be scheduled as it is (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// Trouble around the scheduler, e.g. the queue its lease is on (exit code 1).
    #[error("{0}")]
    Runtime(String),
}

impl From<CloneError> for ScheduleError {
    fn from(e: CloneError) -> Self {
        match e {
            CloneError::GitHub(e) => ScheduleError::GitHub(e),
            CloneError::Git(e) => ScheduleError::Git(e),
        }
    }
}

/// One item and what was decided for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPlan {
    /// `image-refresh/fedora-41`, `image/tasks`.
    pub label: String,
    pub every: std::time::Duration,
    pub decision: Decision,
}

/// What is due in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPlan {
    pub repo: RepoName,
    pub branch: String,
    pub items: Vec<ItemPlan>,
    /// The pass stopped before deciding: little of the rate limit is left.
    pub paused: Option<RateLimit>,
}

/// Decides every item of `repo`'s `[[schedule]]` (read from its default branch) at `now`;
/// `previous_pass` is when the scheduler last looked.
pub async fn plan(
    github: &GitHub,
    repo: &RepoName,
    work: &Path,
    now: DateTime<Utc>,
    previous_pass: DateTime<Utc>,
) -> Result<RepoPlan, ScheduleError> {
    let (branch, loaded) = load(github, repo, work).await?;
    let mut items = Vec::new();
    if let Some((config, clone)) = &loaded {
        let recent = github.recent_pulls(repo).await?;
        let facts = (recent.as_slice(), clone, branch.as_str());
        for (_, _, plan) in decide_all(facts, config, now, previous_pass).await? {
            items.push(plan);
        }
    }
    Ok(RepoPlan {
        repo: repo.clone(),
        branch,
        items,
        paused: None,
    })
}

/// Bounds on a repository's refresh PRs (the server's `[schedule]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_open: u32,
    pub max_per_hour: u32,
}

/// One pass over `repo`: every due item that may start now gets its refresh PR, unless one is
/// open, oldest due first, within `limits`. Returns each item's plan with what was done.
pub async fn pass(
    github: &GitHub,
    repo: &RepoName,
    work: &Path,
    times: (DateTime<Utc>, DateTime<Utc>),
    author: (&str, &str),
    limits: Limits,
) -> Result<(RepoPlan, Vec<Acted>), ScheduleError> {
    let (now, previous_pass) = times;
    // Checked before and after the first reads: a fresh process learns the limit from them.
    let paused = |branch: String| {
        let low = github.rate_limit(repo).filter(RateLimit::is_low)?;
        tracing::info!(%repo, remaining = low.remaining, reset = %low.reset,
            "GitHub rate limit low; the scheduler pauses this repository");
        let items = Vec::new();
        let (repo, paused) = (repo.clone(), Some(low));
        Some((
            RepoPlan {
                repo,
                branch,
                items,
                paused,
            },
            Vec::new(),
        ))
    };
    if let Some(stop) = paused(String::new()) {
        return Ok(stop);
    }
    let (branch, loaded) = load(github, repo, work).await?;
    if let Some(stop) = paused(branch.clone()) {
        return Ok(stop);
    }
    let (mut items, mut acted) = (Vec::new(), Vec::new());
    if let Some((config, clone)) = &loaded {
        let open = github.open_pull_requests(repo).await?;
        let recent = github.recent_pulls(repo).await?;
        let mut budget = Budget::new(limits, &open, &recent, now);
        let opener = Opener {
            github,
            repo,
            branch: &branch,
            clone,
            config,
            author,
            now,
            failures: failures::FailureIssues::new(github, repo),
        };
        let facts = (recent.as_slice(), clone, branch.as_str());
        let mut decided = decide_all(facts, config, now, previous_pass).await?;
        decided.sort_by_key(|(_, _, plan)| urgency(&plan.decision));
        for (def, item, plan) in decided {
            acted.push(opener.act(def, &item, &plan, &open, &mut budget).await?);
            items.push(plan);
        }
    }
    let plan = RepoPlan {
        repo: repo.clone(),
        branch,
        items,
        paused: None,
    };
    Ok((plan, acted))
}

/// The default branch, and its configuration and a clone when it schedules anything.
async fn load(
    github: &GitHub,
    repo: &RepoName,
    work: &Path,
) -> Result<(String, Option<(RepoConfig, RepoClone)>), ScheduleError> {
    let Some(info) = github.repository(repo).await? else {
        return Err(ScheduleError::Usage(format!(
            "{repo} is not visible with tickbot's credentials"
        )));
    };
    let branch = info.default_branch;
    let config = match github
        .file_at(repo, repo_config::FILE_NAME, &branch)
        .await?
    {
        None => return Ok((branch, None)),
        Some(text) => RepoConfig::parse(&text)
            .map_err(|e| ScheduleError::Usage(format!("{repo}: .tickbot.toml on {branch}: {e}")))?,
    };
    if config.schedule.is_empty() {
        return Ok((branch, None));
    }
    let clone = RepoClone::open(github, repo, &info.clone_url, work).await?;
    Ok((branch, Some((config, clone))))
}

/// The repositories a pass serves: `configured` and, as a GitHub App, every repository of its
/// installations (read each pass, so a new installation is served without a restart). If the
/// installations cannot be read, the configured ones are served and the trouble logged.
pub async fn served(github: &GitHub, configured: &[RepoName]) -> Vec<RepoName> {
    let mut repos = configured.to_vec();
    match github.installed_repositories().await {
        Ok(installed) => repos.extend(installed),
        Err(e) => tracing::error!(error = %e, "cannot list the App's installed repositories; \
            serving the configured ones"),
    }
    let mut seen = std::collections::HashSet::new();
    repos.retain(|r| seen.insert(r.to_string().to_ascii_lowercase()));
    repos
}

/// What the scheduler role needs besides GitHub: where, for which repositories, as whom, how
/// many PRs.
pub struct SchedulerSettings {
    /// `[dispatch] repositories`; a GitHub App also serves its installations' ([`served`]).
    pub repositories: Vec<RepoName>,
    /// The bare clones live here.
    pub work: std::path::PathBuf,
    /// Author and committer of refresh branches' first commits.
    pub author: (String, String),
    pub limits: Limits,
    /// Between passes; a window (a cron minute) is seen by the pass after it.
    pub interval: std::time::Duration,
}

/// The scheduler role: a pass over every repository each `interval` until `shutdown`.
/// With `broker` (RabbitMQ, several replicas), passes run only while this replica holds the
/// [`Lease`]. What a pass does is logged; one repository's trouble is logged and retried at
/// the next pass.
pub async fn run(
    github: &GitHub,
    settings: &SchedulerSettings,
    broker: Option<&crate::queue::Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let lease = match broker {
        None => None,
        Some(broker) => match Lease::acquire(broker, shutdown.clone()).await {
            Ok(Some(lease)) => Some(lease),
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "the scheduler cannot take its lease; not scheduling");
                return;
            }
        },
    };
    let author = (settings.author.0.as_str(), settings.author.1.as_str());
    let interval = chrono::Duration::from_std(settings.interval).unwrap_or_default();
    let mut previous = Utc::now() - interval;
    loop {
        let now = Utc::now();
        if let Some(lease) = &lease
            && let Err(e) = lease.keep_spare().await
        {
            tracing::warn!(error = %e, "cannot keep a spare lease token; a takeover may wait");
        }
        for repo in &served(github, &settings.repositories).await {
            let times = (now, previous);
            match pass(github, repo, &settings.work, times, author, settings.limits).await {
                Ok((plan, acted)) => {
                    for line in render_pass(&plan, &acted).lines() {
                        tracing::info!("{line}");
                    }
                }
                Err(e) => {
                    tracing::error!(%repo, error = %e, "schedule pass failed; next pass retries")
                }
            }
        }
        previous = now;
        tokio::select! {
            _ = tokio::time::sleep(settings.interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Whether a comment on issue or PR `number` holds `marker` (what is said once is found by it).
pub(super) async fn said(
    github: &GitHub,
    repo: &RepoName,
    number: PrNumber,
    marker: &str,
) -> Result<bool, GitHubError> {
    let comments = github.comments(repo, number).await?;
    Ok(comments.iter().any(|c| c.body.contains(marker)))
}

/// The latest state of every context on a refresh PR's head, read once however many of a
/// pass's decisions about the PR need it.
pub(super) struct HeadStates<'a> {
    github: &'a GitHub,
    repo: &'a RepoName,
    sha: &'a CommitSha,
    read: tokio::sync::OnceCell<Vec<CommitStatus>>,
}

impl<'a> HeadStates<'a> {
    pub(super) fn of(github: &'a GitHub, repo: &'a RepoName, sha: &'a CommitSha) -> Self {
        HeadStates {
            github,
            repo,
            sha,
            read: tokio::sync::OnceCell::new(),
        }
    }

    pub(super) async fn get(&self) -> Result<&[CommitStatus], GitHubError> {
        let read =
            || crate::dispatch::state::latest_states(self.github, self.repo, self.sha, |_| {});
        Ok(self.read.get_or_try_init(read).await?)
    }
}

/// Oldest due first: never refreshed, then the longest since the last refresh, then changed
/// inputs; the rest keep their order.
fn urgency(decision: &Decision) -> (u8, std::cmp::Reverse<std::time::Duration>) {
    use std::cmp::Reverse;
    match decision {
        Decision::Due(Why::Never) => (0, Reverse(std::time::Duration::MAX)),
        Decision::Due(Why::Age { age, .. }) => (1, Reverse(*age)),
        Decision::Due(Why::Inputs { .. }) => (2, Reverse(std::time::Duration::ZERO)),
        _ => (3, Reverse(std::time::Duration::ZERO)),
    }
}

/// Where facts are read: the repository's newest PRs (for closed refresh PRs; one API call a
/// pass), its clone, and the default branch.
type FactSources<'a> = (&'a [RecentPull], &'a RepoClone, &'a str);

/// Every item of the configuration's schedules, decided.
async fn decide_all<'c>(
    sources: FactSources<'_>,
    config: &'c RepoConfig,
    now: DateTime<Utc>,
    previous_pass: DateTime<Utc>,
) -> Result<Vec<(&'c ScheduleDef, String, ItemPlan)>, ScheduleError> {
    let mut decided = Vec::new();
    for def in &config.schedule {
        for item in def.items() {
            let facts = facts(sources, config, def, item).await?;
            let decision = due::decide(def.every, def.window.as_ref(), &facts, now, previous_pass);
            let plan = ItemPlan {
                label: def.label(item),
                every: def.every,
                decision,
            };
            decided.push((def, item.to_string(), plan));
        }
    }
    Ok(decided)
}

/// The default branch's facts about `item` of `def`, and its last closed refresh PR.
async fn facts(
    (recent, clone, branch): FactSources<'_>,
    config: &RepoConfig,
    def: &ScheduleDef,
    item: &str,
) -> Result<Facts, ScheduleError> {
    let tip = format!("refs/heads/{branch}");
    let last = match (&def.target, def.landed_subject(item)) {
        (_, Some(subject)) => last_with_subject(clone, &tip, &subject).await?,
        (Target::Image { name }, None) => {
            let context = config.images.get(name).map(|i| i.context.as_str());
            let stamp = format!("{}/{IMAGE_STAMP}", context.unwrap_or(name));
            newest(clone, &tip, &[stamp]).await?
        }
        (Target::Task { .. }, None) => None,
    };
    let inputs = def.inputs_of(item);
    let input_change = match &last {
        Some((commit, _)) if !inputs.is_empty() => {
            let since = format!("{}..{tip}", commit.0);
            match newest(clone, &since, &inputs).await? {
                Some((changed, _)) => Some((first_path(clone, &changed, &inputs).await?, changed)),
                None => None,
            }
        }
        _ => None,
    };
    // The newest refresh PR of the item, if it was closed without landing.
    let branch = def.branch(item);
    let closed = recent
        .iter()
        .find(|p| p.head_ref == branch)
        .filter(|p| !p.merged)
        .and_then(|p| p.closed_at.map(|at| (p.number, at)));
    Ok(Facts {
        last,
        input_change,
        closed,
    })
}

/// The newest commit of `range` whose subject is `subject`, and when it was made.
async fn last_with_subject(
    clone: &RepoClone,
    range: &str,
    subject: &str,
) -> Result<Option<(CommitSha, DateTime<Utc>)>, ScheduleError> {
    let log = clone
        .git()
        .args(["log", "--fixed-strings", "--format=%H%x00%ct%x00%s"])
        .arg(format!("--grep={subject}"))
        .arg(range)
        .arg("--")
        .ok()
        .await?;
    Ok(log.stdout.lines().find_map(|line| {
        let mut f = line.split('\0');
        let (sha, time, s) = (f.next()?, f.next()?, f.next()?);
        (s == subject).then(|| (CommitSha(sha.to_string()), timestamp(time)))
    }))
}

/// The newest commit of `range` that changed one of `paths` (globs).
async fn newest(
    clone: &RepoClone,
    range: &str,
    paths: &[String],
) -> Result<Option<(CommitSha, DateTime<Utc>)>, ScheduleError> {
    let log = clone
        .git()
        .args(["log", "-1", "--format=%H%x00%ct"])
        .arg(range)
        .arg("--")
        .args(paths.iter().map(|p| format!(":(glob){p}")))
        .ok()
        .await?;
    let line = log.stdout.lines().next().unwrap_or_default();
    Ok(line
        .split_once('\0')
        .map(|(sha, time)| (CommitSha(sha.to_string()), timestamp(time))))
}

/// The first of `paths` (globs) that `commit` changed, as a path.
async fn first_path(
    clone: &RepoClone,
    commit: &CommitSha,
    paths: &[String],
) -> Result<String, ScheduleError> {
    let changed = clone
        .git()
        .args([
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "-r",
            "--root",
            &commit.0,
            "--",
        ])
        .args(paths.iter().map(|p| format!(":(glob){p}")))
        .ok()
        .await?;
    Ok(changed
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

fn timestamp(seconds: &str) -> DateTime<Utc> {
    seconds
        .parse::<i64>()
        .ok()
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
        .unwrap_or_default()
}

/// `tickbot schedule --dry-run` for one repository, as a person reads it.
pub fn render(plan: &RepoPlan) -> String {
    let mut out = format!("{} ({}):\n", plan.repo, plan.branch);
    if plan.items.is_empty() {
        out.push_str("  nothing scheduled (no [[schedule]] in .tickbot.toml)\n");
    }
    for item in &plan.items {
        let every = format_duration(item.every);
        let line = match &item.decision {
            Decision::Due(why) => format!("due now: {}", why_text(why, &every)),
            Decision::DueAtWindow { why, opens } => format!(
                "due, waits for its window at {}: {}",
                when(opens),
                why_text(why, &every)
            ),
            Decision::Tried { pr, closed, at } => format!(
                "not due: refresh #{} was closed at {} without landing; due at {} (every {every})",
                pr.0,
                when(closed),
                when(at)
            ),
            Decision::NotDue { last, age, at } => format!(
                "not due: last refreshed in {}, {}; due at {} (every {every})",
                last.short(),
                ago(*age),
                when(at)
            ),
        };
        out.push_str(&format!("  {}: {line}\n", item.label));
    }
    out
}

/// What one pass did, as a person reads it: the items it opened a PR for or found one open.
pub fn render_pass(plan: &RepoPlan, acted: &[Acted]) -> String {
    let mut out = String::new();
    if let Some(low) = &plan.paused {
        out.push_str(&format!(
            "{}: paused: {} of {} GitHub API calls left until {}; refresh PRs wait until then\n",
            plan.repo,
            low.remaining,
            low.limit,
            when(&low.reset)
        ));
    }
    for (item, act) in plan.items.iter().zip(acted) {
        let line = match act {
            Acted::Opened(pr) => format!("opened #{}", pr.0),
            Acted::AlreadyOpen(pr) => format!("refresh PR #{} is open", pr.0),
            Acted::ClosedUnchanged(pr) => format!("closed #{}: its task changed nothing", pr.0),
            Acted::Merged(pr) => format!("merged #{}: everything required passed", pr.0),
            Acted::Restarted(pr) => {
                format!("#{} started again on the default branch's new tip", pr.0)
            }
            Acted::RebaseRefused(pr) => {
                format!(
                    "#{} is stale but has a person's commits: left to them",
                    pr.0
                )
            }
            Acted::Failing { pr, issue } => {
                format!("refresh #{} failed: see issue #{}", pr.0, issue.0)
            }
            Acted::MergeRefused(pr) => {
                format!("#{} passed but GitHub refused the merge (see the PR)", pr.0)
            }
            Acted::Limited(Limit::MaxOpen(n)) => {
                format!("due, waits: {n} refresh PRs are open (max_open)")
            }
            Acted::Limited(Limit::MaxPerHour(n)) => {
                format!("due, waits: {n} refresh PRs were opened in the last hour (max_per_hour)")
            }
            Acted::Waiting => continue,
        };
        out.push_str(&format!("{}: {}: {line}\n", plan.repo, item.label));
    }
    out
}

pub(super) fn why_text(why: &Why, every: &str) -> String {
    match why {
        Why::Never => "never refreshed".into(),
        Why::Age { last, age } => format!(
            "last refreshed in {}, {} (every {every})",
            last.short(),
            ago(*age)
        ),
        Why::Inputs { path, commit, last } => format!(
            "inputs changed: {path} in {} since the last refresh in {}",
            commit.short(),
            last.short()
        ),
    }
}

fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "9 days ago", "5 hours ago", "12 minutes ago", "just now".
fn ago(age: std::time::Duration) -> String {
    let s = age.as_secs();
    if s < 60 {
        return "just now".into();
    }
    let (n, unit) = match s {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3600 => (s / 3600, "hour"),
        s => (s / 60, "minute"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}
