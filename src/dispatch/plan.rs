//! Deciding what a PR's checklist asks for next. Pure: the body's tasks, the repository's
//! `.tickbot.toml` and the head commit's statuses in, a [`Plan`] out.
//!
//! Items run in order, one at a time per PR (design §5): the first to-do item that can run is
//! the next one, unless a task of this PR is still pending at this commit. Items that cannot
//! run (unknown verb, bad argument, unparsable line) are refused with a reason and skipped, so
//! they never stall the items after them.

use crate::checklist::{Checklist, TaskItem, TaskState};
use crate::github::{CommitStatus, StatusState};
use crate::repo_config::RepoConfig;

/// Status description of a queued job (design §7).
pub const QUEUED: &str = "Not yet tested";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedItem {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextTask {
    pub item: TaskItem,
    pub context: String,
    /// Earlier items with the same context (the same line written twice is two jobs).
    pub occurrence: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The item to queue now, if any.
    pub next: Option<NextTask>,
    /// A task of this PR still queued or running at this commit; nothing new starts meanwhile.
    pub busy_with: Option<String>,
    pub refused: Vec<RefusedItem>,
}

/// The item that would run next, before looking at statuses (which cost an API call).
pub fn candidates(
    checklist: &Checklist,
    config: &RepoConfig,
) -> (Option<NextTask>, Vec<RefusedItem>) {
    let mut refused: Vec<RefusedItem> = checklist
        .refused
        .iter()
        .map(|r| RefusedItem {
            line: r.line,
            text: r.text.clone(),
            reason: r.reason.clone(),
        })
        .collect();
    let mut next = None;
    for (index, item) in checklist.tasks.iter().enumerate() {
        if item.state != TaskState::Todo {
            continue;
        }
        if let Err(reason) = check_item(item, config) {
            refused.push(RefusedItem {
                line: item.line,
                text: item.text.clone(),
                reason,
            });
            continue;
        }
        if next.is_none() {
            let context = item.context();
            let occurrence = checklist.tasks[..index]
                .iter()
                .filter(|t| t.context() == context)
                .count();
            next = Some(NextTask {
                item: item.clone(),
                context,
                occurrence,
            });
        }
    }
    refused.sort_by_key(|r| r.line);
    (next, refused)
}

/// Completes the plan with the head commit's statuses.
pub fn plan(checklist: &Checklist, config: &RepoConfig, statuses: &[CommitStatus]) -> Plan {
    let (next, refused) = candidates(checklist, config);
    // Only items still to do count as running: a person who ticked or removed an item while
    // its job was queued has taken it out of the sequence.
    let pending_task = statuses.iter().find(|s| {
        s.state == StatusState::Pending
            && checklist
                .tasks
                .iter()
                .any(|t| t.state == TaskState::Todo && t.context() == s.context)
    });
    match (next, pending_task) {
        (next, None) => Plan {
            next,
            busy_with: None,
            refused,
        },
        (_, Some(busy)) => Plan {
            next: None,
            busy_with: Some(busy.context.clone()),
            refused,
        },
    }
}

fn check_item(item: &TaskItem, config: &RepoConfig) -> Result<(), String> {
    let Some(task) = config.tasks.get(&item.verb) else {
        let known = config.verbs();
        let suggestion = closest(&item.verb, &known)
            .map(|v| format!("did you mean `{v}`? "))
            .unwrap_or_default();
        return Err(if known.is_empty() {
            format!(
                "unknown task `{}`: `.tickbot.toml` defines no tasks",
                item.verb
            )
        } else {
            format!(
                "unknown task `{}`: {suggestion}known tasks are {}",
                item.verb,
                known
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    };
    if let Some(pattern) = &task.args
        && let Some(bad) = item.args.iter().find(|a| !pattern.is_match(a))
    {
        return Err(format!(
            "argument `{bad}` of `{}` does not match `{}` (the `args` pattern in `.tickbot.toml`)",
            item.verb,
            pattern.as_str()
        ));
    }
    Ok(())
}

/// The known verb within two edits of a typo, if exactly one is closest.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
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

    fn config() -> RepoConfig {
        RepoConfig::parse(
            r#"
[tasks.image-refresh]
command = ["./image-refresh", "{args}"]
args = "^[a-z0-9][a-z0-9.-]*$"
[tasks.lint]
command = ["make", "lint"]
"#,
        )
        .expect("valid")
    }

    fn status(context: &str, state: StatusState) -> CommitStatus {
        CommitStatus {
            context: context.into(),
            state,
            description: Some(QUEUED.into()),
            target_url: None,
        }
    }

    #[test]
    fn first_todo_item_runs_and_later_ones_wait() {
        let body = "- [x] lint\n- [ ] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
        let p = plan(&checklist::parse(body), &config(), &[]);
        let next = p.next.expect("one to run");
        assert_eq!(next.context, "image-refresh/fedora-41");
        assert_eq!(next.item.line, 2);
        assert!(p.refused.is_empty());

        let p = plan(
            &checklist::parse(body),
            &config(),
            &[status("image-refresh/fedora-41", StatusState::Pending)],
        );
        assert_eq!(p.next, None);
        assert_eq!(p.busy_with.as_deref(), Some("image-refresh/fedora-41"));
    }

    #[test]
    fn refused_items_are_explained_and_do_not_block() {
        let body = "- [ ] image-refrsh fedora-41\n- [ ] image-refresh Bad_Name\n- [ ] lint\n";
        let p = plan(&checklist::parse(body), &config(), &[]);
        assert_eq!(p.next.map(|n| n.context), Some("lint".to_string()));
        assert_eq!(p.refused.len(), 2);
        assert_eq!(
            p.refused[0].reason,
            "unknown task `image-refrsh`: did you mean `image-refresh`? known tasks are `image-refresh`, `lint`"
        );
        assert!(
            p.refused[1]
                .reason
                .starts_with("argument `Bad_Name` of `image-refresh` does not match")
        );
    }

    #[test]
    fn an_item_ticked_by_hand_no_longer_blocks() {
        let body = "- [x] image-refresh fedora-41\n- [ ] image-refresh centos-9\n";
        let p = plan(
            &checklist::parse(body),
            &config(),
            &[status("image-refresh/fedora-41", StatusState::Pending)],
        );
        assert_eq!(
            p.next.map(|n| n.context),
            Some("image-refresh/centos-9".to_string())
        );
    }

    #[test]
    fn failed_items_are_not_retried_and_finished_statuses_do_not_block() {
        let body = "- [ ] FAIL: lint\n- [ ] image-refresh a\n";
        let p = plan(
            &checklist::parse(body),
            &config(),
            &[status("lint", StatusState::Failure)],
        );
        assert_eq!(
            p.next.map(|n| n.context),
            Some("image-refresh/a".to_string())
        );
    }

    #[test]
    fn the_same_line_twice_is_two_occurrences() {
        let body = "- [x] lint\n- [ ] lint\n";
        let p = plan(&checklist::parse(body), &config(), &[]);
        assert_eq!(p.next.map(|n| n.occurrence), Some(1));
        let body = "- [ ] lint\n- [ ] lint\n";
        let cl = checklist::parse(body);
        let (next, _) = candidates(&cl, &config());
        assert_eq!(next.map(|n| n.item.line), Some(1));
    }
}
