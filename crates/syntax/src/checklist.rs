//! Checkbox tasks in pull request descriptions (reference §5).
//!
//! A person writes `- [ ] image-refresh fedora-41` in a PR body; this module finds such items
//! exactly where GitHub renders a checkbox, tells their state (to do, done, `FAIL:`), and makes
//! the one byte-precise edit the dispatcher needs to tick or fail an item without touching
//! anything else a person may be editing at the same time. It is pure: no I/O, never panics.
//!
//! What counts as a task follows GitHub's renderer (cmark-gfm), checked by an oracle test:
//!
//! * the item is found with pulldown-cmark's task lists, so fenced/indented code and HTML
//!   blocks never yield tasks; where pulldown-cmark's block structure differs from
//!   cmark-gfm's (HTML blocks, lazy lines, bare markers, tabs, vertical tabs), the source it
//!   reads is rewritten first, byte for byte (`blocks`);
//! * like cmark-gfm, the box is exactly `[ ]`, `[x]` or `[X]` (no tab or other blank inside),
//!   followed by a blank on the same line, and the item's list marker must be the first
//!   thing on its line (`- - [ ] x` is no checkbox);
//! * items inside block quotes are excluded on purpose: GitHub may render a checkbox there,
//!   but a person quoting somebody else's list is not asking for work.
//!
//! Every checkbox that remains ends up either in [`Checklist::tasks`] or, when it cannot be
//! run as written (empty, unknown status prefix, text GitHub shows garbled), in
//! [`Checklist::refused`] with a reason.
//! Unknown verbs are *not* refused here: only the dispatcher knows the repository's verbs.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use pulldown_cmark::Options;
use serde::Serialize;

mod blanks;
mod blocks;
pub(crate) use blocks::{is_inline, is_inline_end};
mod checkboxes;
mod html;

use checkboxes::{RawCheckbox, raw_checkboxes};

/// GitHub refuses PR bodies longer than this many characters (not bytes).
pub const GITHUB_BODY_LIMIT: usize = 65_536;

/// The status prefix that marks a failed task; written by [`mark_failed`], removed by a
/// person (or [`mark_done`]) to retry.
const FAIL_PREFIX: &str = "FAIL:";

/// State of one task, as written in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// `[ ]` without a status prefix: to be run.
    Todo,
    /// `[x]` or `[X]`; a ticked box wins over a `FAIL:` prefix, because ticking is how a
    /// person says "nothing left to do here".
    Done,
    /// `[ ] FAIL: …`: not retried until a person removes the prefix.
    Failed,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Todo => "todo",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
        })
    }
}

/// One runnable checkbox item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskItem {
    /// 1-based line of the checkbox.
    pub line: usize,
    pub verb: String,
    pub args: Vec<String>,
    pub state: TaskState,
    /// Byte range of the 3 bytes `[ ]`, `[x]` or `[X]`.
    pub marker: Range<usize>,
    /// Byte range of the status prefix including the blanks after its colon (`FAIL: `).
    pub prefix: Option<Range<usize>>,
    /// The task text without prefix, words separated by single spaces: `image-refresh fedora-41`.
    pub text: String,
    /// How many earlier tasks in the same body have the same verb and args; lets
    /// [`find_again`] tell identical lines apart after the body was edited.
    pub occurrence: usize,
}

impl TaskItem {
    /// The status context of this task (reference §7): `<verb>/<args joined by '/'>`.
    pub fn context(&self) -> String {
        std::iter::once(self.verb.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("/")
    }

    fn same_task(&self, other: &TaskItem) -> bool {
        self.verb == other.verb && self.args == other.args
    }
}

/// Something that looked like a task or command but cannot be acted on, with the reason a
/// person will read (it becomes a PR comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// 1-based line.
    pub line: usize,
    /// The text as the person wrote it (plain text, without the checkbox).
    pub text: String,
    pub reason: String,
    /// Bytes of the refused thing: the checkbox marker of a task item, the `/word` of a
    /// command. Not part of the JSON contract; kept for byte-range reports and edits.
    #[serde(skip)]
    pub range: Option<Range<usize>>,
}

/// Everything [`parse`] found in a body, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checklist {
    pub tasks: Vec<TaskItem>,
    pub refused: Vec<Refusal>,
}

/// Byte offset → 1-based line, counting `\n`, `\r\n` and a lone `\r` as line endings, as
/// CommonMark does.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            let ends_line = b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if ends_line {
                starts.push(i + 1);
            }
        }
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }

    pub(crate) fn line_start(&self, offset: usize) -> usize {
        self.starts[self.line(offset) - 1]
    }

    /// Start of the line a block that pulldown-cmark reports at `offset` begins on: a nested
    /// list's range may start with the line ending before it.
    pub(crate) fn block_line_start(&self, text: &str, offset: usize) -> usize {
        let skip = match text.as_bytes().get(offset..) {
            Some([b'\r', b'\n', ..]) => 2,
            Some([b'\n' | b'\r', ..]) => 1,
            _ => 0,
        };
        self.line_start(offset + skip)
    }

    /// First byte of the 1-based `line`; the text's length past the last line.
    pub(crate) fn start_of(&self, line: usize) -> usize {
        line.checked_sub(1)
            .and_then(|i| self.starts.get(i))
            .copied()
            .unwrap_or(self.len)
    }
}

/// The markdown dialect GitHub uses for PR bodies and comments, as far as it changes the
/// block structure that decides where tasks and commands are.
pub(crate) fn github_options() -> Options {
    Options::ENABLE_TASKLISTS | Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// Finds the checkbox tasks of a PR body, in document order.
///
/// The task text is the plain text of the item's first paragraph as GitHub shows it (inline
/// code, emphasis and link texts contribute their text, line breaks become spaces; a
/// sub-list belongs to its own items). Its first word is the verb, the other words are the
/// arguments. Items inside block quotes are ignored (see the module documentation).
pub fn parse(body: &str) -> Checklist {
    let lines = LineIndex::new(body);
    let mut list = Checklist::default();
    // Earlier tasks per (verb, args): a body can hold thousands of identical lines.
    let mut seen: HashMap<(String, Vec<String>), usize> = HashMap::new();
    for raw in raw_checkboxes(body, &lines) {
        let line = lines.line(raw.marker.start);
        if let Some(shown) = &raw.shown {
            list.refused.push(shifted_refusal(line, &raw, shown));
            continue;
        }
        match interpret(body, &raw) {
            Ok((state, prefix, words)) => {
                let (verb, args) = match words.split_first() {
                    Some((verb, args)) => (verb.clone(), args.to_vec()),
                    None => continue, // interpret() refuses empty items
                };
                let seen_before = seen.entry((verb.clone(), args.clone())).or_default();
                list.tasks.push(TaskItem {
                    line,
                    text: words.join(" "),
                    verb,
                    args,
                    state,
                    marker: raw.marker,
                    prefix,
                    occurrence: *seen_before,
                });
                *seen_before += 1;
            }
            Err(reason) => list.refused.push(Refusal {
                line,
                text: raw.text.split_whitespace().collect::<Vec<_>>().join(" "),
                reason,
                range: Some(raw.marker),
            }),
        }
    }
    list
}

/// `- \v[ ] lint`: GitHub shows a checkbox, but `] lint` after it (see `checkboxes`).
fn shifted_refusal(line: usize, raw: &RawCheckbox, shown: &str) -> Refusal {
    Refusal {
        line,
        text: raw.text.split_whitespace().collect::<Vec<_>>().join(" "),
        reason: format!(
            "GitHub shows `{shown}` after this checkbox because of the vertical tab or form \
             feed before `[`; separate the list marker and the box with spaces only"
        ),
        range: Some(raw.marker.clone()),
    }
}

type Interpreted = (TaskState, Option<Range<usize>>, Vec<String>);

fn interpret(body: &str, raw: &RawCheckbox) -> Result<Interpreted, String> {
    let checked = body.get(raw.marker.clone()) != Some("[ ]");
    let mut words: Vec<String> = raw.text.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return Err(
            "empty task item: write the task after the checkbox, e.g. `- [ ] <verb> <args>`".into(),
        );
    }
    let first = &words[0];
    let is_status_word = first.len() > 1
        && first.ends_with(':')
        && first[..first.len() - 1]
            .chars()
            .all(|c| c.is_ascii_uppercase());
    if !is_status_word {
        let state = if checked {
            TaskState::Done
        } else {
            TaskState::Todo
        };
        return Ok((state, None, words));
    }
    if first != FAIL_PREFIX {
        return Err(format!(
            "unknown status prefix `{first}`: the only status prefix is `{FAIL_PREFIX}`; \
             remove `{first}` to run this task"
        ));
    }
    if words.len() == 1 {
        return Err(format!("empty task item: nothing follows `{FAIL_PREFIX}`"));
    }
    // The prefix must be plain text right after the checkbox, or it could not be removed
    // by editing only its own bytes.
    let Some(prefix) = source_prefix(body, &raw.marker) else {
        return Err(format!(
            "write `{FAIL_PREFIX}` as plain text right after the checkbox, without formatting, \
             followed by the task on the same line"
        ));
    };
    words.remove(0);
    let state = if checked {
        TaskState::Done
    } else {
        TaskState::Failed
    };
    Ok((state, Some(prefix), words))
}

/// What GitHub's task-list pattern takes as blanks around a box (`spacechar` without line
/// endings).
const BLANKS: [char; 4] = [' ', '\t', '\u{b}', '\u{c}'];

/// Bytes of `FAIL:` plus the blanks after it, when they directly follow the marker.
fn source_prefix(body: &str, marker: &Range<usize>) -> Option<Range<usize>> {
    let start = verb_start(body, marker)?;
    let after = body.get(start..)?;
    let rest = after.strip_prefix(FAIL_PREFIX)?;
    let blanks = rest.len() - rest.trim_start_matches(BLANKS).len();
    (blanks > 0).then(|| start..start + FAIL_PREFIX.len() + blanks)
}

/// First byte after the blanks that follow the marker: where a status prefix goes.
fn verb_start(body: &str, marker: &Range<usize>) -> Option<usize> {
    let after = body.get(marker.end..)?;
    Some(marker.end + after.len() - after.trim_start_matches(BLANKS).len())
}

/// Re-reads `body` and returns the task that is still at `item`'s marker with the same verb
/// and arguments, if any: every edit is checked against the current body.
fn current(body: &str, item: &TaskItem) -> Option<TaskItem> {
    parse(body)
        .tasks
        .into_iter()
        .find(|t| t.marker == item.marker && t.same_task(item))
}

fn fits(body: &str) -> bool {
    body.chars().count() <= GITHUB_BODY_LIMIT
}

/// Ticks `item` in `body`: `[ ]` becomes `[x]` and a `FAIL:` prefix is removed; nothing else
/// changes. Returns `None` when `body` no longer has this item at the same offsets (a person
/// edited it meanwhile: re-locate with [`find_again`] and retry). Idempotent.
///
/// The result is re-parsed: in the rare body where removing the prefix would change what the
/// item is (its text only continues on an unindented next line), the prefix stays and only
/// the box is ticked, which also reads as done.
pub fn mark_done(body: &str, item: &TaskItem) -> Option<String> {
    let now = current(body, item)?;
    let tick = if now.state == TaskState::Done {
        body.get(now.marker.clone())?
    } else {
        "[x]"
    };
    let ticked = |drop_prefix: bool| -> Option<String> {
        let mut out = String::with_capacity(body.len());
        out.push_str(body.get(..now.marker.start)?);
        out.push_str(tick);
        let rest_from = match &now.prefix {
            Some(prefix) if drop_prefix => {
                out.push_str(body.get(now.marker.end..prefix.start)?);
                prefix.end
            }
            _ => now.marker.end,
        };
        out.push_str(body.get(rest_from..)?);
        verified(out, &now, TaskState::Done)
    };
    ticked(true).or_else(|| ticked(false))
}

/// Marks `item` failed: ensures `[ ]` and inserts `FAIL: ` before the verb; nothing else
/// changes. Returns `None` when `body` no longer has this item at the same offsets, when the
/// edit would push the body over [`GITHUB_BODY_LIMIT`], or when the edited item would not
/// read as failed. Idempotent.
pub fn mark_failed(body: &str, item: &TaskItem) -> Option<String> {
    let now = current(body, item)?;
    let mut out = String::with_capacity(body.len() + FAIL_PREFIX.len() + 1);
    out.push_str(body.get(..now.marker.start)?);
    out.push_str("[ ]");
    if now.prefix.is_some() {
        out.push_str(body.get(now.marker.end..)?);
    } else {
        let at = verb_start(body, &now.marker)?;
        out.push_str(body.get(now.marker.end..at)?);
        out.push_str(FAIL_PREFIX);
        out.push(' ');
        out.push_str(body.get(at..)?);
    }
    if !fits(&out) {
        return None;
    }
    verified(out, &now, TaskState::Failed)
}

/// Marks a failed `item` to do again by removing its `FAIL:` prefix (what a person does to
/// re-run it); nothing else changes. `None` when `body` no longer has this item at the same
/// offsets, it has no prefix, or the edited item would not read as to do.
pub fn mark_todo(body: &str, item: &TaskItem) -> Option<String> {
    let now = current(body, item)?;
    let prefix = now.prefix.clone()?;
    let mut out = String::with_capacity(body.len());
    out.push_str(body.get(..prefix.start)?);
    out.push_str(body.get(prefix.end..)?);
    verified(out, &now, TaskState::Todo)
}

/// Makes `item` to do again whatever its state (an unticked box, no `FAIL:`): a task whose
/// result is to be made again from scratch. `None` as for [`mark_todo`].
pub fn mark_undone(body: &str, item: &TaskItem) -> Option<String> {
    let now = current(body, item)?;
    let mut out = String::with_capacity(body.len());
    out.push_str(body.get(..now.marker.start)?);
    out.push_str("[ ]");
    match &now.prefix {
        Some(prefix) => {
            out.push_str(body.get(now.marker.end..prefix.start)?);
            out.push_str(body.get(prefix.end..)?);
        }
        None => out.push_str(body.get(now.marker.end..)?),
    }
    verified(out, &now, TaskState::Todo)
}

/// `out` if it still holds `item` (same marker, verb and arguments) in `state`.
fn verified(out: String, item: &TaskItem, state: TaskState) -> Option<String> {
    let edited = current(&out, item)?;
    (edited.state == state).then_some(out)
}

/// Finds `item` again in an edited body: the task at the same marker with the same verb and
/// arguments if there is one, else the same occurrence (k-th task with that verb and
/// arguments). `None` if the task is gone.
pub fn find_again(body: &str, item: &TaskItem) -> Option<TaskItem> {
    let tasks = parse(body).tasks;
    if let Some(same) = tasks
        .iter()
        .find(|t| t.marker == item.marker && t.same_task(item))
    {
        return Some(same.clone());
    }
    tasks
        .into_iter()
        .filter(|t| t.same_task(item))
        .nth(item.occurrence)
}

/// Appends a to-do task line (for `/task <verb> <args>`), keeping the body's line endings.
/// Returns the new body and the added task, or `None` if `text` has no verb, spans lines, or
/// the body would exceed [`GITHUB_BODY_LIMIT`]. The result is re-parsed, so a body ending in
/// an unclosed code fence or a quote gets the separation it needs to make the line a task.
pub fn append_task(body: &str, text: &str) -> Option<(String, TaskItem)> {
    if text.contains(['\n', '\r']) || text.split_whitespace().next().is_none() {
        return None;
    }
    let eol = if body.contains("\r\n") { "\r\n" } else { "\n" };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("- [ ] {text}");
    let trimmed = body.trim_end_matches(['\n', '\r']);
    let mut joins = vec![
        if trimmed.is_empty() {
            String::new()
        } else {
            eol.to_owned()
        },
        eol.repeat(2),
    ];
    // An unclosed fence swallows everything after it: close it, with the shortest fence that
    // works (a closing fence may be longer than the opening one).
    for fence in ["```", "~~~", "``````````", "~~~~~~~~~~"] {
        joins.push(format!("{eol}{fence}{eol}{eol}"));
    }
    let before = parse(body).tasks.len();
    joins.iter().find_map(|join| {
        let out = format!("{trimmed}{join}{line}{eol}");
        let tasks = parse(&out).tasks;
        let added = tasks.last()?;
        let ok = tasks.len() == before + 1
            && added.text == text
            && added.state == TaskState::Todo
            && added.marker.start > trimmed.len()
            && fits(&out);
        ok.then(|| (out.clone(), added.clone()))
    })
}

/// One task in the `tickbot parse --json` report (reference §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportTask {
    pub line: usize,
    pub verb: String,
    pub args: Vec<String>,
    pub state: TaskState,
    /// `[start, end]` byte offsets of the marker.
    pub marker: [usize; 2],
}

/// One command in the `tickbot parse --json` report (reference §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportCommand {
    pub line: usize,
    pub name: String,
    pub args: Vec<String>,
}

/// What `tickbot parse` prints: the tasks and commands of a PR body or comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseReport {
    pub tasks: Vec<ReportTask>,
    pub commands: Vec<ReportCommand>,
    pub refused: Vec<Refusal>,
}

/// Reads `text` both as a PR body (tasks) and as a comment (commands); refusals of both,
/// ordered by line.
pub fn report(text: &str) -> ParseReport {
    let checklist = parse(text);
    let comment = crate::commands::parse(text);
    let mut refused = checklist.refused;
    refused.extend(comment.refused);
    refused.sort_by_key(|r| (r.line, r.range.as_ref().map(|r| r.start)));
    ParseReport {
        tasks: checklist
            .tasks
            .into_iter()
            .map(|t| ReportTask {
                line: t.line,
                verb: t.verb,
                args: t.args,
                state: t.state,
                marker: [t.marker.start, t.marker.end],
            })
            .collect(),
        commands: comment
            .commands
            .into_iter()
            .map(|c| ReportCommand {
                line: c.line,
                name: c.name,
                args: c.args,
            })
            .collect(),
        refused,
    }
}

impl fmt::Display for ParseReport {
    /// One line per finding: `line 3: task todo image-refresh fedora-41 (bytes 12..15)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tasks.is_empty() && self.commands.is_empty() && self.refused.is_empty() {
            return writeln!(f, "no tasks or commands found");
        }
        for t in &self.tasks {
            let words = std::iter::once(&t.verb).chain(&t.args);
            let text = words.map(String::as_str).collect::<Vec<_>>().join(" ");
            writeln!(
                f,
                "line {}: task {} {} (bytes {}..{})",
                t.line, t.state, text, t.marker[0], t.marker[1]
            )?;
        }
        for c in &self.commands {
            let mut text = format!("/{}", c.name);
            for a in &c.args {
                text.push(' ');
                text.push_str(a);
            }
            writeln!(f, "line {}: command {text}", c.line)?;
        }
        for r in &self.refused {
            write!(f, "line {}: refused {:?}: {}", r.line, r.text, r.reason)?;
            match &r.range {
                Some(range) => writeln!(f, " (bytes {}..{})", range.start, range.end)?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_task(body: &str) -> TaskItem {
        let list = parse(body);
        assert_eq!(list.refused, vec![], "unexpected refusals in {body:?}");
        assert_eq!(list.tasks.len(), 1, "expected one task in {body:?}");
        list.tasks[0].clone()
    }

    #[test]
    fn reads_verb_args_state_and_marker_bytes() {
        let t = only_task("Intro\n\n- [ ] image-refresh fedora-41\n");
        assert_eq!((t.line, t.verb.as_str()), (3, "image-refresh"));
        assert_eq!(t.args, ["fedora-41"]);
        assert_eq!((t.state, t.marker.clone()), (TaskState::Todo, 9..12));
        assert_eq!(t.context(), "image-refresh/fedora-41");
    }

    #[test]
    fn context_is_the_verb_alone_without_args() {
        assert_eq!(only_task("- [ ] prune\n").context(), "prune");
    }

    #[test]
    fn fail_prefix_and_its_bytes() {
        let body = "- [ ] FAIL:  image-refresh fedora-41";
        let t = only_task(body);
        assert_eq!(t.state, TaskState::Failed);
        assert_eq!(&body[t.prefix.clone().unwrap()], "FAIL:  ");
        assert_eq!(t.text, "image-refresh fedora-41");
    }

    #[test]
    fn ticked_box_wins_over_fail_prefix() {
        assert_eq!(only_task("- [x] FAIL: prune\n").state, TaskState::Done);
    }

    #[test]
    fn unknown_prefix_and_empty_items_are_refused_with_reasons() {
        let list = parse("- [ ] WIP: prune\n- [ ] \n- [ ] FAIL: \n");
        assert!(list.tasks.is_empty());
        let reasons: Vec<_> = list.refused.iter().map(|r| (r.line, &r.reason)).collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons[0].1.contains("unknown status prefix `WIP:`"));
        assert!(reasons[1].1.starts_with("empty task item"));
        assert!(reasons[2].1.contains("nothing follows `FAIL:`"));
        assert_eq!(list.refused[0].text, "WIP: prune");
    }

    #[test]
    fn formatted_fail_prefix_is_refused_because_it_cannot_be_edited() {
        let list = parse("- [ ] **FAIL:** prune\n");
        assert!(list.refused[0].reason.contains("plain text"));
    }

    #[test]
    fn line_index_counts_crlf_and_lone_cr() {
        let idx = LineIndex::new("a\r\nb\rc\nd");
        let lines: Vec<_> = [0, 3, 5, 7].iter().map(|&o| idx.line(o)).collect();
        assert_eq!(lines, [1, 2, 3, 4]);
        assert_eq!(idx.line_start(8), 7);
    }

    #[test]
    fn github_needs_a_blank_after_the_marker_on_the_same_line() {
        assert!(parse("- [ ]\n  prune\n").tasks.is_empty());
        assert!(parse("- - [ ] prune\n").tasks.is_empty());
        assert_eq!(parse("- [ ]\tprune\n").tasks.len(), 1);
    }

    #[test]
    fn mark_done_with_offsets_out_of_range_is_none() {
        let mut t = only_task("- [ ] prune\n");
        t.marker = 100..103;
        assert_eq!(mark_done("- [ ] prune\n", &t), None);
        t.marker = Range { start: 3, end: 1 }; // reversed on purpose
        assert_eq!(mark_failed("- [ ] prune\n", &t), None);
    }

    #[test]
    fn append_task_closes_an_unclosed_fence_and_keeps_crlf() {
        let (out, t) = append_task("Text\r\n```\r\ncode\r\n", "prune  old").unwrap();
        assert!(out.ends_with("```\r\n\r\n- [ ] prune old\r\n"), "{out:?}");
        let (out, _) = append_task("~~~~\ncode\n", "prune").unwrap();
        assert_eq!(out, "~~~~\ncode\n~~~~~~~~~~\n\n- [ ] prune\n");
        let (out, _) = append_task("", "prune").unwrap();
        assert_eq!(out, "- [ ] prune\n");
        assert_eq!(
            (t.verb.as_str(), t.args.clone()),
            ("prune", vec!["old".into()])
        );
        assert_eq!(append_task("x", "two\nlines"), None);
        assert_eq!(append_task("x", "  "), None);
    }

    #[test]
    fn report_display_names_lines_states_and_bytes() {
        let text = report("- [x] prune old\n\n/test fedora\n\n- [ ] WIP: x\n").to_string();
        assert_eq!(
            text,
            "line 1: task done prune old (bytes 2..5)\n\
             line 3: command /test fedora\n\
             line 5: refused \"WIP: x\": unknown status prefix `WIP:`: the only status prefix \
             is `FAIL:`; remove `WIP:` to run this task (bytes 33..36)\n"
        );
    }
}
