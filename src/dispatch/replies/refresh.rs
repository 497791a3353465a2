//! `/explain` on a refresh PR: what the default branch's `[[schedule]]` says of it.

use super::quoted;
use std::fmt;

/// What `/explain` says of a refresh PR: the default branch's `[[schedule]]` entry for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshExplained {
    Scheduled {
        /// `image-refresh/fedora-41`, `image/tasks`.
        label: String,
        every: String,
        default_branch: String,
        /// A task's refresh (an image's has no checkbox).
        task: bool,
        automerge: bool,
        /// The contexts `automerge` waits for besides the task.
        tests: Vec<String>,
        failure_title: String,
    },
    /// Named like a refresh, but no entry on the default branch refreshes it.
    Unscheduled { default_branch: String },
}

impl fmt::Display for RefreshExplained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RefreshExplained::Scheduled {
            label,
            every,
            default_branch,
            task,
            automerge,
            tests,
            failure_title,
        } = self
        else {
            let RefreshExplained::Unscheduled { default_branch } = self else {
                return Ok(());
            };
            return write!(
                f,
                "\n  * its branch is named like a refresh, but no `[[schedule]]` on \
                 `{default_branch}` refreshes it: tickbot's scheduler leaves it alone"
            );
        };
        write!(
            f,
            "\n  * it is tickbot's scheduled refresh of `{label}` (every {every}, \
             `[[schedule]]` on `{default_branch}`)"
        )?;
        if *task {
            write!(
                f,
                "; if its task changes nothing, tickbot closes it and does not try again \
                 within {every}"
            )?;
        }
        match (automerge, tests.is_empty()) {
            (false, _) => f.write_str("\n  * it lands when a person merges it")?,
            (true, true) => f.write_str(
                "\n  * tickbot merges it once its refresh passed at its head (automerge)",
            )?,
            (true, false) => write!(
                f,
                "\n  * tickbot merges it once its refresh and {} passed at its head (automerge)",
                quoted(tests)
            )?,
        }
        write!(
            f,
            "\n  * a failed refresh is tracked in the issue \"{failure_title}\", closed when a \
             refresh succeeds"
        )
    }
}
