//! Check runs' buttons (with a GitHub App): GitHub's Re-run and the "Retry" action act like
//! `/test <its context>` (a failed task: its `FAIL:` is removed, so it runs again in its
//! turn); "Keep for debugging" like `/debug <its context>`; the "Cancel" action like
//! `/cancel <its context>`. What cannot be done is said in one reply per button press.

use super::replies::{CommandRefusal, Comment, Note, Refusal};
use super::state::{APPROVAL_CONTEXT, CANCEL, DEBUG, RETRY};
use super::tests::Trigger;
use super::writes::BodyEdit;
use super::{DispatchError, Dispatcher};
use crate::checklist::{self, TaskState};
use crate::commands;
use crate::event::CheckRunEvent;
use crate::job::ItemRef;

impl Dispatcher {
    pub(super) async fn on_check_run(&self, e: CheckRunEvent) -> Result<(), DispatchError> {
        let pressed = match (e.action.as_str(), e.identifier.as_deref()) {
            ("rerequested", _) | ("requested_action", Some(RETRY)) => RETRY,
            ("requested_action", Some(CANCEL)) => CANCEL,
            ("requested_action", Some(DEBUG)) => DEBUG,
            _ => return Ok(()),
        };
        let Some(number) = e.pulls.first() else {
            tracing::info!(repo = %e.repo, context = %e.name, "check run of a commit that is no open PR's head; ignored");
            return Ok(());
        };
        let pr = self.github.pull_request(&e.repo, *number).await?;
        if pr.head_sha != e.head_sha || !pr.state_open {
            tracing::info!(repo = %e.repo, pr = %number, context = %e.name, "check run of an old head; ignored");
            return Ok(());
        }
        let verdict = self
            .trust
            .check(&pr.repo, &pr.default_branch, &e.sender, "")
            .await?;
        let context = e.name.clone();
        let checklist = checklist::parse(&pr.body);
        let failed_task = checklist
            .tasks
            .iter()
            .find(|t| t.context() == context && t.state == TaskState::Failed);
        let is_task = checklist.tasks.iter().any(|t| t.context() == context);
        let mut refusals = Vec::new();
        if !verdict.trusted {
            let reason = verdict.reason;
            refusals.push(Refusal::from(CommandRefusal::ButtonNotTrusted {
                context,
                reason,
            }));
        } else if pressed == CANCEL {
            let only = std::slice::from_ref(&e.name);
            self.writes.cancel_contexts(&pr, only, &e.sender).await?;
        } else if let Some(t) = failed_task.filter(|_| pressed == RETRY) {
            // As if a person removed `FAIL:`: the item is to do again and runs in its turn.
            let edit = BodyEdit::Todo(ItemRef::from(t));
            let edited = self.writes.edit_body(&pr.repo, pr.number, &edit).await?;
            self.writes.request_plan(&edited.pull()).await?;
        } else if is_task && pressed == DEBUG {
            refusals.push(Refusal::from(CommandRefusal::DebugNotATest { context }));
        } else if is_task || context == APPROVAL_CONTEXT {
            refusals.push(Refusal::from(CommandRefusal::NothingToRerun { context }));
        } else {
            match commands::parse_context(&context) {
                Ok(spec) => {
                    let trigger = match pressed {
                        DEBUG => Trigger::Debug(&spec),
                        _ => Trigger::Named(std::slice::from_ref(&spec)),
                    };
                    refusals.extend(self.plan_tests(&pr, trigger).await?);
                }
                Err(err) => refusals.push(Refusal::from(CommandRefusal::CannotRerun {
                    context,
                    error: err.to_string(),
                })),
            }
        }
        if !refusals.is_empty() {
            let notes: Vec<Note> = refusals.into_iter().map(Note::from).collect();
            let reply = Comment::Reply {
                to: &e.sender,
                key: format!("check-run:{}:{}:{}", e.name, e.head_sha, e.sender),
                notes: &notes,
            };
            self.writes.post_once(&pr, &reply).await?;
        }
        Ok(())
    }
}
