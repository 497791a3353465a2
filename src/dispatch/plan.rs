//! Deciding what a PR's checklist asks for next. Pure: the body's tasks, the repository's
//! `.tickbot.toml` and the head commit's statuses in, the next item (or a reason to wait) out.
//!
//! Items run in order, one at a time per PR (reference §5): the first to-do item that can run is
//! the next one, unless a task of this PR is still pending at this commit. Items that cannot
//! run (unknown verb, bad argument, unparsable line) are refused with a reason and skipped, so
//! they never stall the items after them.

use super::state::Phase;
use crate::checklist::{Checklist, TaskItem, TaskState};
use crate::github::CommitStatus;
use crate::repo_config::RepoConfig;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedItem {
    pub line: usize,
    pub text: String,
    pub reason: ItemRefusal,
}

/// Why a checkbox item cannot run (rendered with the other replies, in `replies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemRefusal {
    /// The line is not a task GitHub shows as one (from the checklist parser, already worded).
    Unreadable(String),
    UnknownTask {
        verb: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    /// The status context joins the arguments with '/': `a/b` and `a b` must not share one.
    SlashInArgument { arg: String },
    ArgumentMismatch {
        arg: String,
        verb: String,
        pattern: String,
    },
    NoWorkers {
        verb: String,
        pool: String,
        pools: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextTask {
    pub item: TaskItem,
    pub context: String,
}

impl NextTask {
    /// Earlier items with the same text (the same line written twice is two jobs).
    pub fn occurrence(&self) -> usize {
        self.item.occurrence
    }
}

/// The item that would run next, and what cannot run, before looking at statuses (which cost
/// an API call). `pools` are the job pools that exist; a task naming another is refused.
pub fn candidates(
    checklist: &Checklist,
    config: &RepoConfig,
    pools: &[String],
) -> (Option<NextTask>, Vec<RefusedItem>) {
    let mut refused: Vec<RefusedItem> = checklist
        .refused
        .iter()
        .map(|r| RefusedItem {
            line: r.line,
            text: r.text.clone(),
            reason: ItemRefusal::Unreadable(r.reason.clone()),
        })
        .collect();
    let mut next = None;
    for item in &checklist.tasks {
        if item.state != TaskState::Todo {
            continue;
        }
        if let Err(reason) = check_item(item, config, pools) {
            refused.push(RefusedItem {
                line: item.line,
                text: item.text.clone(),
                reason,
            });
            continue;
        }
        if next.is_none() {
            next = Some(NextTask {
                item: item.clone(),
                context: item.context(),
            });
        }
    }
    refused.sort_by_key(|r| r.line);
    (next, refused)
}

/// The task of this PR still queued or running at this commit, if any: nothing new starts
/// meanwhile. Only items still to do count: a person who ticked or removed an item while its
/// job was queued has taken it out of the sequence; an item waiting for approval is not
/// running.
pub fn busy_with<'a>(checklist: &Checklist, statuses: &'a [CommitStatus]) -> Option<&'a str> {
    statuses
        .iter()
        .find(|s| {
            Phase::of(s).is_active()
                && checklist
                    .tasks
                    .iter()
                    .any(|t| t.state == TaskState::Todo && t.context() == s.context)
        })
        .map(|s| s.context.as_str())
}

fn check_item(item: &TaskItem, config: &RepoConfig, pools: &[String]) -> Result<(), ItemRefusal> {
    let Some(task) = config.tasks.get(&item.verb) else {
        let known = config.verbs();
        return Err(ItemRefusal::UnknownTask {
            verb: item.verb.clone(),
            suggestion: closest(&item.verb, &known).map(str::to_string),
            known: known.iter().map(|v| v.to_string()).collect(),
        });
    };
    if let Some(bad) = item.args.iter().find(|a| a.contains('/')) {
        return Err(ItemRefusal::SlashInArgument { arg: bad.clone() });
    }
    if let Some(pattern) = &task.args
        && let Some(bad) = item.args.iter().find(|a| !pattern.is_match(a))
    {
        return Err(ItemRefusal::ArgumentMismatch {
            arg: bad.clone(),
            verb: item.verb.clone(),
            pattern: pattern.as_str().to_string(),
        });
    }
    if !pools.contains(&task.pool) {
        return Err(ItemRefusal::NoWorkers {
            verb: item.verb.clone(),
            pool: task.pool.clone(),
            pools: pools.to_vec(),
        });
    }
    Ok(())
}

/// The closest known name within two edits of a typo (the first of equally close ones).
pub(super) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (crate::commands::edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist;
    use crate::dispatch::state::State;

    fn config() -> RepoConfig {
        RepoConfig::parse(
            r#"
[tasks.image-refresh]
command = ["./image-refresh", "{args}"]
args = "^[a-z0-9][a-z0-9.-]*$"
[tasks.lint]
command = ["make", "lint"]
[tasks.big]
command = ["make", "big"]
pool = "large"
"#,
        )
        .expect("valid")
    }

    fn queued(context: &str) -> CommitStatus {
        State::Queued { note: None }.on(context, None)
    }

    /// The next item's context, what blocks it, and the refusals.
    fn plan(
        body: &str,
        statuses: &[CommitStatus],
    ) -> (Option<String>, Option<String>, Vec<RefusedItem>) {
        let cl = checklist::parse(body);
        let (next, refused) = candidates(&cl, &config(), &["default".to_string()]);
        let busy = busy_with(&cl, statuses).map(str::to_string);
        (next.map(|n| n.context), busy, refused)
    }

    #[test]
    fn first_todo_item_runs_and_later_ones_wait() {
        let body = "- [x] lint\n- [ ] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
        let (next, busy, refused) = plan(body, &[]);
        assert_eq!(next.as_deref(), Some("image-refresh/fedora-41"));
        assert_eq!((busy, refused), (None, vec![]));

        let pending = queued("image-refresh/fedora-41");
        let (_, busy, _) = plan(body, &[pending]);
        assert_eq!(busy.as_deref(), Some("image-refresh/fedora-41"));
    }

    #[test]
    fn refused_items_are_explained_and_do_not_block() {
        let body = "- [ ] image-refrsh fedora-41\n- [ ] image-refresh Bad_Name\n- [ ] image-refresh a/b\n- [ ] big\n- [ ] lint\n";
        let (next, _, refused) = plan(body, &[]);
        assert_eq!(next.as_deref(), Some("lint"));
        let reasons: Vec<String> = refused.iter().map(|r| r.reason.to_string()).collect();
        assert_eq!(
            reasons,
            vec![
                "unknown task `image-refrsh`: did you mean `image-refresh`? known tasks are `big`, `image-refresh`, `lint`",
                "argument `Bad_Name` of `image-refresh` does not match `^[a-z0-9][a-z0-9.-]*$` (the `args` pattern in `.tickbot.toml`)",
                "argument `a/b` contains `/`, which separates arguments in the status context",
                "task `big` runs in pool `large`, which has no workers here (pools: default)",
            ]
        );
    }

    #[test]
    fn an_item_ticked_by_hand_or_waiting_for_approval_does_not_block() {
        let body = "- [x] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
        let pending = queued("image-refresh/fedora-41");
        assert_eq!(plan(body, &[pending]).1, None);
        let manual = State::AwaitingApproval.on("image-refresh/centos-9", None);
        assert_eq!(plan(body, &[manual]).1, None);
    }

    #[test]
    fn failed_items_are_not_retried_and_finished_statuses_do_not_block() {
        let body = "- [ ] FAIL: lint\n- [ ] image-refresh a\n";
        let outcome = crate::job::Outcome::Failure {
            reason: "Exit code 1".into(),
        };
        let finished = State::Finished {
            outcome: &outcome,
            worker: "w1",
            note: None,
        };
        let failed = finished.on("lint", None);
        let (next, busy, _) = plan(body, &[failed]);
        assert_eq!((next.as_deref(), busy), (Some("image-refresh/a"), None));
    }

    #[test]
    fn the_same_line_twice_is_two_occurrences() {
        let cl = checklist::parse("- [x] lint\n- [ ] lint\n");
        let (next, _) = candidates(&cl, &config(), &["default".to_string()]);
        assert_eq!(next.map(|n| n.occurrence()), Some(1));
    }
}
