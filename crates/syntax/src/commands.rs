//! Comment commands (reference §6): `/test`, `/retest`, `/ok-to-test`, `/cancel`, `/debug`, `/task`,
//! `/explain`, `/help`, and Cockpit's test context grammar used by `/test` and `/cancel`.
//!
//! A command is a paragraph line whose first non-blank source character is the `/` of
//! `/name`. The text is read through pulldown-cmark, so commands shown in code blocks,
//! inline code, HTML or block quotes (somebody quoting an earlier `/test`) never run, and a
//! path such as `/usr/bin` in prose is not mistaken for one. Anything that looks like a
//! command but cannot be acted on is refused with a reason a person can act upon.
//! Pure: no I/O, never panics.

use std::fmt;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde::Serialize;

use crate::checklist::{LineIndex, Refusal, github_options, is_inline, is_inline_end};

/// The command names tickbot understands, in the order `/help` lists them.
pub const KNOWN: &[&str] = &[
    "test",
    "retest",
    "ok-to-test",
    "cancel",
    "debug",
    "task",
    "rollback",
    "explain",
    "help",
];

/// One command to act upon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// 1-based line in the comment.
    pub line: usize,
    /// One of [`KNOWN`], without the slash.
    pub name: String,
    /// Whitespace-separated words after the name; for `/test` and `/cancel` each one is a
    /// valid context (see [`parse_context`]).
    pub args: Vec<String>,
}

/// Everything [`parse`] found in a comment, in line order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParsedComment {
    pub commands: Vec<Command>,
    pub refused: Vec<Refusal>,
}

/// A paragraph line as GitHub renders it, with where it starts in the source.
struct TextLine {
    /// Source offset of the line's first piece of text.
    start: usize,
    text: String,
    /// The line starts with a plain-text `/` that is the first non-blank of its source line.
    starts_with_slash: bool,
}

/// Finds the commands of a comment.
pub fn parse(comment: &str) -> ParsedComment {
    let lines = LineIndex::new(comment);
    let mut parsed = ParsedComment::default();
    for text_line in text_lines(comment, &lines) {
        if !text_line.starts_with_slash {
            continue;
        }
        let line = lines.line(text_line.start);
        let mut words = text_line.text.split_whitespace();
        let Some(name) = words.next().and_then(|w| w.strip_prefix('/')) else {
            continue;
        };
        // `/usr/bin/foo`, `/1`, `/ok!`: prose, not an attempt at a command.
        let mut chars = name.chars();
        let looks_like_command = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !looks_like_command {
            continue;
        }
        let args: Vec<String> = words.map(str::to_owned).collect();
        // The `/name` bytes, when the source spells them exactly so (no escapes inside).
        let token = text_line.start..text_line.start + 1 + name.len();
        let range = comment
            .get(token.clone())
            .is_some_and(|source| source.strip_prefix('/') == Some(name))
            .then_some(token);
        match check(name, &args) {
            Ok(()) => parsed.commands.push(Command {
                line,
                name: name.to_owned(),
                args,
            }),
            Err(reason) => parsed.refused.push(Refusal {
                line,
                text: text_line
                    .text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                reason,
                range,
            }),
        }
    }
    parsed
}

/// The lines of the comment's paragraphs (including tight list items) outside block quotes.
fn text_lines(comment: &str, lines: &LineIndex) -> Vec<TextLine> {
    #[derive(PartialEq)]
    enum Block {
        Text,
        Other,
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut quote_depth = 0usize;
    let mut out = Vec::new();
    let mut current: Option<TextLine> = None;
    let flush = |current: &mut Option<TextLine>, out: &mut Vec<TextLine>| {
        if let Some(line) = current.take() {
            out.push(line);
        }
    };
    for (event, range) in Parser::new_ext(comment, github_options()).into_offset_iter() {
        match event {
            Event::Start(tag) if !is_inline(&tag) => {
                flush(&mut current, &mut out);
                if matches!(tag, Tag::BlockQuote(_)) {
                    quote_depth += 1;
                }
                blocks.push(if matches!(tag, Tag::Paragraph | Tag::Item) {
                    Block::Text
                } else {
                    Block::Other
                });
            }
            Event::End(end) if !is_inline_end(&end) => {
                flush(&mut current, &mut out);
                if matches!(end, TagEnd::BlockQuote(_)) {
                    quote_depth = quote_depth.saturating_sub(1);
                }
                blocks.pop();
            }
            Event::SoftBreak | Event::HardBreak => flush(&mut current, &mut out),
            Event::Text(_) | Event::Code(_) | Event::InlineHtml(_) | Event::TaskListMarker(_)
                if quote_depth == 0 && blocks.last() == Some(&Block::Text) =>
            {
                let piece = match &event {
                    Event::Text(t) | Event::Code(t) => t.as_ref(),
                    _ => "",
                };
                let line = current.get_or_insert_with(|| TextLine {
                    start: range.start,
                    text: String::new(),
                    starts_with_slash: matches!(event, Event::Text(_))
                        && comment.as_bytes().get(range.start) == Some(&b'/')
                        && comment
                            .get(lines.line_start(range.start)..range.start)
                            .is_some_and(|before| before.trim_matches([' ', '\t']).is_empty()),
                });
                line.text.push_str(piece);
            }
            _ => {}
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Checks a command's name and arguments; `Err` is the reason shown to the person.
fn check(name: &str, args: &[String]) -> Result<(), String> {
    match name {
        "test" | "cancel" => {
            for arg in args {
                parse_context(arg).map_err(|e| format!("`/{name}`: {e}"))?;
            }
            Ok(())
        }
        "debug" if args.len() != 1 => Err(
            "`/debug` takes one test context: `/debug <context>` runs it again and keeps its \
             container if it fails"
                .into(),
        ),
        "debug" => parse_context(&args[0])
            .map(|_| ())
            .map_err(|e| format!("`/debug`: {e}")),
        "task" if args.is_empty() => Err(
            "`/task` needs a task: `/task <verb> <args…>`, e.g. `/task image-refresh fedora-41`"
                .into(),
        ),
        "task" => Ok(()),
        "rollback" if args.len() > 1 => Err(
            "`/rollback` takes at most one image name: `/rollback` or `/rollback <image>`".into(),
        ),
        "rollback" => Ok(()),
        "retest" if !args.is_empty() => Err(
            "`/retest` takes no arguments (it reruns failed contexts); to run particular \
             contexts use `/test <context…>`"
                .into(),
        ),
        "retest" | "ok-to-test" | "explain" | "help" if !args.is_empty() => {
            Err(format!("`/{name}` takes no arguments"))
        }
        "retest" | "ok-to-test" | "explain" | "help" => Ok(()),
        unknown => Err(unknown_command(unknown)),
    }
}

fn unknown_command(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let closest = KNOWN
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((d, known)) if d <= 2 => format!("unknown command `/{name}`: did you mean /{known}?"),
        _ => format!(
            "unknown command `/{name}`; known commands: {}",
            KNOWN
                .iter()
                .map(|k| format!("/{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row.push(substitute.min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// A test context in Cockpit's grammar `image[/scenario][@bots#N][@owner/repo[/branch]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextSpec {
    /// `image` or `image/scenario`, e.g. `fedora-41/devel`.
    pub context: String,
    /// Run with dependency `name` (a `[deps.<name>]` of `.tickbot.toml`) at its PR `#N`.
    pub dep_pr: Option<(String, u64)>,
    /// Run that project's context (`owner/repo`, optional branch) against this PR.
    pub project: Option<(String, Option<String>)>,
}

impl fmt::Display for ContextSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        if let Some((dep, pr)) = &self.dep_pr {
            write!(f, "@{dep}#{pr}")?;
        }
        if let Some((repo, branch)) = &self.project {
            write!(f, "@{repo}")?;
            if let Some(branch) = branch {
                write!(f, "/{branch}")?;
            }
        }
        Ok(())
    }
}

/// Why a context could not be read; the message is shown to the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextError {
    Empty,
    BadName(String),
    EmptySuffix { input: String },
    BadPrNumber { input: String, part: String },
    BadSuffix { input: String, part: String },
    Duplicate { input: String, what: &'static str },
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Empty => write!(f, "empty context"),
            ContextError::BadName(input) => write!(
                f,
                "bad context `{input}`: expected `image[/scenario]` made of letters, digits, `.`, `_` and `-`"
            ),
            ContextError::EmptySuffix { input } => write!(
                f,
                "bad context `{input}`: `@` must be followed by `name#N` or `owner/repo[/branch]`"
            ),
            ContextError::BadPrNumber { input, part } => write!(
                f,
                "bad context `{input}`: in `@{part}`, `#` must be followed by a pull request number"
            ),
            ContextError::BadSuffix { input, part } => write!(
                f,
                "bad context `{input}`: `@{part}` is not `owner/repo[/branch]` or `name#N`"
            ),
            ContextError::Duplicate { input, what } => {
                write!(f, "bad context `{input}`: only one `@{what}` is allowed")
            }
        }
    }
}

impl std::error::Error for ContextError {}

/// Reads a context like `fedora-41/devel@bots#123` or
/// `fedora-41@cockpit-project/cockpit/rhel-8`.
pub fn parse_context(s: &str) -> Result<ContextSpec, ContextError> {
    if s.is_empty() {
        return Err(ContextError::Empty);
    }
    let mut parts = s.split('@');
    let context = parts.next().unwrap_or_default();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    let segments: Vec<&str> = context.split('/').collect();
    if segments.len() > 2 || !segments.iter().all(|seg| name_ok(seg)) {
        return Err(ContextError::BadName(context.to_owned()));
    }
    let mut spec = ContextSpec {
        context: context.to_owned(),
        dep_pr: None,
        project: None,
    };
    for part in parts {
        let bad = || ContextError::BadSuffix {
            input: s.to_owned(),
            part: part.to_owned(),
        };
        if part.is_empty() {
            return Err(ContextError::EmptySuffix {
                input: s.to_owned(),
            });
        }
        if let Some((dep, number)) = part.split_once('#') {
            if !name_ok(dep) {
                return Err(bad());
            }
            let pr = number
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0 && number.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ContextError::BadPrNumber {
                    input: s.to_owned(),
                    part: part.to_owned(),
                })?;
            if spec.dep_pr.replace((dep.to_owned(), pr)).is_some() {
                return Err(ContextError::Duplicate {
                    input: s.to_owned(),
                    what: "name#N",
                });
            }
            continue;
        }
        let mut segs = part.splitn(3, '/');
        let (Some(owner), Some(repo)) = (segs.next(), segs.next()) else {
            return Err(bad());
        };
        let branch = segs.next();
        let branch_ok = |b: &str| {
            b.split('/')
                .all(|seg| name_ok(seg) && !seg.ends_with(".lock"))
                && !b.contains("..")
        };
        let owner_ok = name_ok(owner) && owner.chars().all(|c| c != '.' && c != '_');
        if !owner_ok || !name_ok(repo) || !branch.is_none_or(branch_ok) {
            return Err(bad());
        }
        let project = (format!("{owner}/{repo}"), branch.map(str::to_owned));
        if spec.project.replace(project).is_some() {
            return Err(ContextError::Duplicate {
                input: s.to_owned(),
                what: "owner/repo",
            });
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("tset", "test"), 2);
        assert_eq!(edit_distance("tests", "test"), 1);
        assert_eq!(edit_distance("", "help"), 4);
    }

    #[test]
    fn unknown_far_from_everything_lists_known_commands() {
        assert_eq!(
            unknown_command("frobnicate"),
            "unknown command `/frobnicate`; known commands: /test, /retest, /ok-to-test, \
             /cancel, /debug, /task, /rollback, /explain, /help"
        );
        assert_eq!(
            unknown_command("Retest"),
            "unknown command `/Retest`: did you mean /retest?"
        );
    }

    #[test]
    fn argument_rules_per_command() {
        assert!(check("task", &[]).unwrap_err().contains("needs a task"));
        assert!(
            check("retest", &["x".into()])
                .unwrap_err()
                .contains("no arguments")
        );
        assert!(check("help", &[]).is_ok());
        let err = check("test", &["bad@".into()]).unwrap_err();
        assert!(err.starts_with("`/test`: bad context `bad@`"), "{err}");
    }

    #[test]
    fn context_display_round_trips() {
        for s in [
            "a",
            "a/b@bots#1",
            "a@o/r",
            "a@o/r/rhel-8",
            "a/b@bots#2@o/r/x/y",
        ] {
            assert_eq!(parse_context(s).unwrap().to_string(), s);
        }
    }
}
