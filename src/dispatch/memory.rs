//! What the dispatcher remembers between messages, all of it in this one place. None of it is
//! needed for correctness after a restart (the PR's body and its head's states are the
//! state); it saves API calls and closes the windows between a bot write and its webhook.
//! Every map is bounded: when one grows past its limit it starts over, which costs a few API
//! calls, never a wrong decision.

use super::summary::Row;
use super::writes::BodyWrite;
use crate::github::CommitStatus;
use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::job::ItemRef;
use crate::repo_config::{RepoConfig, RepoConfigError};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// A pull request, as the key of the per-PR memory.
pub type PrKey = (RepoName, PrNumber);

/// A context on a commit, as the key of its latest check run.
type RunKey = (RepoName, CommitSha, String);

/// `.tickbot.toml` at one commit, as far as the dispatcher cares.
#[derive(Clone)]
pub enum ConfigAt {
    Missing,
    Invalid(RepoConfigError),
    Valid(Arc<RepoConfig>),
}

/// Recent ids remembered (deliveries, finished and cancelled jobs).
const RECENT_IDS: usize = 4096;
/// Entries of the per-PR and per-commit maps before they start over.
const PER_PR: usize = 10_000;
const CONFIGS: usize = 1000;
/// Bytes the remembered configurations may hold (as `RepoConfig::retained_bytes` counts them).
const CONFIG_BYTES: usize = 64 * 1024 * 1024;
const CHECK_RUNS: usize = 50_000;

#[derive(Default)]
struct Configs {
    by_commit: HashMap<(RepoName, CommitSha), ConfigAt>,
    /// The text size of everything in `by_commit`.
    bytes: usize,
}

/// Writes a burst of reports holds back until it ends (see `Burst` in the dispatcher's loop).
#[derive(Default)]
pub struct Deferred {
    /// The "In progress" state of each job that started (job id, repository, commit, state);
    /// dropped when the job finishes within the burst.
    pub running: VecDeque<(String, RepoName, CommitSha, CommitStatus)>,
    /// Per PR, the summary rows of its results, in the order they came.
    pub rows: VecDeque<(PrKey, Vec<Row>)>,
}

#[derive(Default)]
pub struct Memory {
    /// Recently handled delivery ids (a second line of defence behind the intake's check).
    pub deliveries: RecentSet,
    /// Jobs whose reports said they finished: a redelivered report changes nothing.
    pub finished: RecentSet,
    /// Jobs cancelled (their state says so already): their reports change nothing, and a
    /// `Started` one means a worker missed the cancellation, which is sent again.
    pub cancelled: RecentSet,
    /// Configurations by commit: a commit never changes, so neither does its file. Bounded
    /// in count and in the bytes of the files they were parsed from.
    configs: Mutex<Configs>,
    /// Per PR, the task job queued or running (context, item). Its result commit moves the
    /// head before its report arrives; without this, an event in between would plan at the
    /// new head, find the item still to do and queue it a second time.
    in_flight: Mutex<HashMap<PrKey, (String, ItemRef)>>,
    /// Hidden markers of the bot's comments per PR, so each comment is posted once.
    posted: Mutex<HashMap<PrKey, HashSet<String>>>,
    /// Per PR, the summary comment's id and text, or `None` when the PR is known to have none.
    summaries: Mutex<HashMap<PrKey, Option<(u64, String)>>>,
    /// Per PR, the dispatcher's last body write, to restore a person's edit it overwrote.
    writes: Mutex<HashMap<PrKey, BodyWrite>>,
    /// Per PR whose body the dispatcher wrote, the latest body it knows; an event carrying
    /// another body may predate the write and is re-read before planning.
    bodies: Mutex<HashMap<PrKey, String>>,
    /// Per PR, the task list (see [`super::state::task_list`]) as of the last `opened` or
    /// `edited` event handled, whose sender the change was checked against, with the tasks
    /// trusted people added or approved since. A body read later with another list holds an
    /// edit whose event is still to come: its editor is not known yet, so nothing in it runs
    /// on the author's trust until the event is handled.
    attributed: Mutex<HashMap<PrKey, Vec<String>>>,
    /// Per (repository, commit, context), the latest check run's id and whether it completed.
    check_runs: Mutex<HashMap<RunKey, (u64, bool)>>,
    /// Commits whose check runs were listed: a context missing above has no run yet.
    listed: Mutex<HashSet<(RepoName, CommitSha)>>,
    deferred: Mutex<Deferred>,
}

impl Memory {
    pub fn config(&self, repo: &RepoName, sha: &CommitSha) -> Option<ConfigAt> {
        lock(&self.configs)
            .by_commit
            .get(&(repo.clone(), sha.clone()))
            .cloned()
    }

    /// Remembers a configuration that holds about `size` bytes.
    pub fn remember_config(&self, repo: &RepoName, sha: &CommitSha, config: ConfigAt, size: usize) {
        let mut configs = lock(&self.configs);
        if configs.by_commit.len() >= CONFIGS || configs.bytes + size > CONFIG_BYTES {
            *configs = Configs::default();
        }
        if size <= CONFIG_BYTES {
            configs.bytes += size;
            configs
                .by_commit
                .insert((repo.clone(), sha.clone()), config);
        }
    }

    pub fn in_flight(&self, key: &PrKey) -> Option<(String, ItemRef)> {
        lock(&self.in_flight).get(key).cloned()
    }

    pub fn start_flight(&self, key: PrKey, context: &str, item: &ItemRef) {
        lock(&self.in_flight).insert(key, (context.to_string(), item.clone()));
    }

    /// The job of `context` reported (or was cancelled): the PR may plan again.
    pub fn end_flight(&self, key: &PrKey, context: &str) {
        let mut map = lock(&self.in_flight);
        if map.get(key).is_some_and(|(c, _)| c == context) {
            map.remove(key);
        }
    }

    pub fn forget_flight(&self, key: &PrKey) {
        lock(&self.in_flight).remove(key);
    }

    /// Whether `marker` was posted on a PR; `None` until this process learned its markers.
    pub fn has_posted(&self, key: &PrKey, marker: &str) -> Option<bool> {
        lock(&self.posted).get(key).map(|m| m.contains(marker))
    }

    pub fn learn_posted(&self, key: PrKey, markers: HashSet<String>) {
        bounded_insert(&self.posted, PER_PR, key, markers);
    }

    pub fn add_posted(&self, key: PrKey, marker: String) {
        lock(&self.posted).entry(key).or_default().insert(marker);
    }

    /// A post whose outcome is unknown: the PR's comments are read again before the retry.
    pub fn forget_posted(&self, key: &PrKey) {
        lock(&self.posted).remove(key);
    }

    pub fn summary(&self, key: &PrKey) -> Option<Option<(u64, String)>> {
        lock(&self.summaries).get(key).cloned()
    }

    pub fn remember_summary(&self, key: PrKey, summary: Option<(u64, String)>) {
        bounded_insert(&self.summaries, PER_PR, key, summary);
    }

    /// The PR has no comments yet, so no summary to look for (unless one is known already).
    pub fn no_summary_yet(&self, key: PrKey) {
        lock(&self.summaries).entry(key).or_insert(None);
    }

    pub fn forget_summary(&self, key: &PrKey) {
        lock(&self.summaries).remove(key);
    }

    pub fn last_write(&self, key: &PrKey) -> Option<BodyWrite> {
        lock(&self.writes).get(key).cloned()
    }

    pub fn record_write(&self, key: PrKey, write: BodyWrite) {
        bounded_insert(&self.writes, PER_PR, key, write);
    }

    pub fn known_body(&self, key: &PrKey) -> Option<String> {
        lock(&self.bodies).get(key).cloned()
    }

    pub fn know_body(&self, key: PrKey, body: &str) {
        bounded_insert(&self.bodies, PER_PR, key, body.to_string());
    }

    pub fn attributed_tasks(&self, key: &PrKey) -> Option<Vec<String>> {
        lock(&self.attributed).get(key).cloned()
    }

    pub fn attribute_tasks(&self, key: PrKey, tasks: Vec<String>) {
        bounded_insert(&self.attributed, PER_PR, key, tasks);
    }

    /// A trusted person's `/task` wrote `context`: the attributed list holds it as often as
    /// the body now does.
    pub fn attribute_added(&self, key: &PrKey, context: &str, count: usize) {
        if let Some(tasks) = lock(&self.attributed).get_mut(key) {
            tasks.retain(|t| t != context);
            tasks.extend(std::iter::repeat_n(context.to_string(), count));
            tasks.sort();
        }
    }

    pub fn defer_running(&self, job: &str, repo: &RepoName, sha: &CommitSha, state: CommitStatus) {
        let mut deferred = lock(&self.deferred);
        deferred.running.retain(|(j, ..)| j != job);
        deferred
            .running
            .push_back((job.to_string(), repo.clone(), sha.clone(), state));
    }

    /// The job finished: its held-back "In progress" is not written any more.
    pub fn drop_running(&self, job: &str) {
        lock(&self.deferred).running.retain(|(j, ..)| j != job);
    }

    pub fn defer_row(&self, key: PrKey, row: Row) {
        let mut deferred = lock(&self.deferred);
        match deferred.rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(row),
            None => deferred.rows.push_back((key, vec![row])),
        }
    }

    pub fn take_deferred(&self) -> Deferred {
        std::mem::take(&mut *lock(&self.deferred))
    }

    /// Puts back what a flush could not write (nothing else is deferred while it runs).
    pub fn put_back(&self, deferred: Deferred) {
        *lock(&self.deferred) = deferred;
    }

    pub fn check_run(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        context: &str,
    ) -> Option<(u64, bool)> {
        let key = (repo.clone(), sha.clone(), context.to_string());
        lock(&self.check_runs).get(&key).copied()
    }

    pub fn check_runs_listed(&self, repo: &RepoName, sha: &CommitSha) -> bool {
        lock(&self.listed).contains(&(repo.clone(), sha.clone()))
    }

    /// The latest check run of each context on a commit, as just listed.
    pub fn learn_check_runs(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        runs: impl Iterator<Item = (String, u64, bool)>,
    ) {
        let mut ids = lock(&self.check_runs);
        let mut listed = lock(&self.listed);
        if ids.len() > CHECK_RUNS || listed.len() > CHECK_RUNS {
            ids.clear();
            listed.clear();
        }
        for (context, id, completed) in runs {
            ids.insert((repo.clone(), sha.clone(), context), (id, completed));
        }
        listed.insert((repo.clone(), sha.clone()));
    }

    pub fn remember_check_run(
        &self,
        repo: &RepoName,
        sha: &CommitSha,
        context: &str,
        id: u64,
        completed: bool,
    ) {
        let key = (repo.clone(), sha.clone(), context.to_string());
        lock(&self.check_runs).insert(key, (id, completed));
    }
}

/// A bounded set of recent ids: oldest forgotten first.
#[derive(Default)]
pub struct RecentSet(Mutex<(VecDeque<String>, HashSet<String>)>);

impl RecentSet {
    /// Adds `id`; false if it was there already.
    pub fn insert(&self, id: &str) -> bool {
        let mut recent = lock(&self.0);
        let (order, set) = &mut *recent;
        if !set.insert(id.to_string()) {
            return false;
        }
        order.push_back(id.to_string());
        if order.len() > RECENT_IDS
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    pub fn contains(&self, id: &str) -> bool {
        lock(&self.0).1.contains(id)
    }

    pub fn remove(&self, id: &str) {
        let mut recent = lock(&self.0);
        let (order, set) = &mut *recent;
        if set.remove(id) {
            // Also from the order, or its old entry would later evict a re-added id early.
            order.retain(|o| o != id);
        }
    }
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(
    map: &Mutex<HashMap<K, V>>,
    limit: usize,
    key: K,
    value: V,
) {
    let mut map = lock(map);
    if map.len() > limit {
        map.clear();
    }
    map.insert(key, value);
}

/// The memory holds no invariant a panicking holder could break.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_configurations_are_bounded_in_bytes_not_only_in_number() {
        let memory = Memory::default();
        let repo: RepoName = "acme/app".parse().expect("repo");
        let sha = |n: usize| CommitSha(format!("{n:040x}"));
        // A pushed commit's worth each: the last ones are remembered, never more than the bound.
        for n in 0..100 {
            memory.remember_config(&repo, &sha(n), ConfigAt::Missing, 5 * 1024 * 1024);
            assert!(lock(&memory.configs).bytes <= CONFIG_BYTES);
        }
        assert!(memory.config(&repo, &sha(99)).is_some());
        assert!(memory.config(&repo, &sha(0)).is_none());
        // A configuration over the whole bound is not remembered at all.
        memory.remember_config(&repo, &sha(100), ConfigAt::Missing, CONFIG_BYTES + 1);
        assert!(memory.config(&repo, &sha(100)).is_none());
    }
}
