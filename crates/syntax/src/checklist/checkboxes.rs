//! Where GitHub renders a checkbox: pulldown-cmark's task list markers, read from the source
//! `blocks` rewrote, kept where cmark-gfm's own pattern agrees, plus the few it misses.

use std::ops::Range;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

use super::{LineIndex, blocks, github_options};

/// One open list item while walking the events.
struct OpenItem {
    marker: Option<Range<usize>>,
    /// Found by [`late_box`], not by pulldown-cmark: `text` still starts with the box.
    late: bool,
    /// What GitHub shows after a checkbox that follows a vertical tab or form feed.
    shown: Option<String>,
    in_quote: bool,
    /// Start of the line with the item's list marker.
    line_start: usize,
    /// Plain text of the item's first paragraph.
    text: String,
    /// Set once the first paragraph is over, so nested blocks and sub-lists do not leak
    /// into the parent's text.
    text_done: bool,
}

impl OpenItem {
    /// The item's checkbox, if GitHub renders one and it is not quoted.
    fn checkbox(self) -> Option<RawCheckbox> {
        let marker = self.marker.filter(|_| !self.in_quote)?;
        let text = match self.late {
            true => self.text.trim_start().get(3..).unwrap_or_default(),
            false => &self.text,
        };
        Some(RawCheckbox {
            marker,
            text: text.to_owned(),
            shown: self.shown,
        })
    }
}

/// A checkbox as GitHub renders it, before its text is interpreted.
pub(super) struct RawCheckbox {
    pub(super) marker: Range<usize>,
    pub(super) text: String,
    /// Set when GitHub shows something else than `text` after the box (see [`late_box`]).
    pub(super) shown: Option<String>,
}

pub(super) fn raw_checkboxes(body: &str, lines: &LineIndex) -> Vec<RawCheckbox> {
    let mut found = Vec::new();
    let mut stack: Vec<OpenItem> = Vec::new();
    let mut quote_depth = 0usize;
    let mut in_code = false;
    let source = blocks::github_source(body);
    for (event, range) in Parser::new_ext(&source, github_options()).into_offset_iter() {
        match event {
            Event::Start(Tag::BlockQuote(_)) => {
                quote_depth += 1;
                close_text(&mut stack);
            }
            Event::End(TagEnd::BlockQuote(_)) => quote_depth = quote_depth.saturating_sub(1),
            Event::Start(Tag::Item) => {
                close_text(&mut stack);
                stack.push(OpenItem {
                    marker: None,
                    late: false,
                    shown: None,
                    in_quote: quote_depth > 0,
                    line_start: lines.block_line_start(body, range.start),
                    text: String::new(),
                    text_done: false,
                });
            }
            Event::End(TagEnd::Item) => found.extend(stack.pop().and_then(OpenItem::checkbox)),
            Event::TaskListMarker(_) => {
                if let Some(top) = stack.last_mut()
                    && github_renders_checkbox(body, &range, lines)
                {
                    top.marker = Some(range);
                }
            }
            Event::Start(Tag::CodeBlock(_)) => {
                in_code = true;
                close_text(&mut stack);
            }
            Event::End(TagEnd::CodeBlock) => in_code = false,
            Event::Text(t) | Event::Code(t) => {
                if !in_code {
                    late_box(body, range.start, lines, &mut stack);
                }
                push_text(&mut stack, as_written(body, &source, &range, &t));
            }
            // The task is the item's first line; a line wrapped under it is its description
            // (as Cockpit's bots read it), not more arguments.
            Event::SoftBreak | Event::HardBreak => match stack.last() {
                Some(top) if !top.text.trim().is_empty() => close_text(&mut stack),
                _ => push_text(&mut stack, " "),
            },
            Event::End(TagEnd::Paragraph) => close_text(&mut stack),
            // Any other block inside an item ends its first paragraph.
            Event::Start(
                Tag::List(_)
                | Tag::HtmlBlock
                | Tag::Heading { .. }
                | Tag::Table(_)
                | Tag::FootnoteDefinition(_)
                | Tag::DefinitionList
                | Tag::MetadataBlock(_),
            )
            | Event::Rule => close_text(&mut stack),
            // Inline HTML (`<!-- … -->`) renders as nothing; emphasis/links contribute only
            // their text, which arrives as Text events.
            _ => {}
        }
    }
    // Items end child-first; the contract is document order.
    found.sort_by_key(|c| c.marker.start);
    found
}

/// The text of the event at `range` as the body has it: the source pulldown-cmark read
/// differs from the body only in rewritten bytes (see `blocks`), never shown to a person.
fn as_written<'a>(body: &'a str, source: &str, range: &Range<usize>, text: &'a str) -> &'a str {
    if source.as_ptr() == body.as_ptr() {
        return text;
    }
    match source.get(range.clone()).and_then(|s| s.find(text)) {
        Some(at) => body
            .get(range.start + at..range.start + at + text.len())
            .unwrap_or(text),
        None => text,
    }
}

/// A checkbox for cmark-gfm that pulldown-cmark did not mark, at the start of an item's
/// first paragraph (at `at`):
///
/// * `- [x]\v`: a vertical tab or form feed after the box ends the line; `blanks` rewrote
///   it so that the item keeps its paragraph, which also hides the box from pulldown-cmark;
/// * `- \v[ ] lint`: GitHub's task-list pattern takes a vertical tab or form feed between
///   the list marker and the box, but then skips the 3 bytes after the marker's spaces and
///   shows `] lint` after the checkbox. Kept with what GitHub shows, to be refused.
///
/// The box may start a heading (`- \v[ ] lint` over `  ---`), so the item's first text
/// counts even where it is no paragraph; never in code.
fn late_box(body: &str, at: usize, lines: &LineIndex, stack: &mut [OpenItem]) {
    let Some(top) = stack.last_mut() else { return };
    if top.marker.is_some() || !top.text.is_empty() {
        return;
    }
    let rest = body.as_bytes().get(at..).unwrap_or_default();
    let blanks = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | 0x0b | 0x0c))
        .count();
    // pulldown-cmark's paragraph starts after spaces and tabs.
    let odd_first = matches!(rest.first(), Some(0x0b | 0x0c));
    if (blanks > 0 && !odd_first) || lines.line_start(at) != top.line_start {
        return;
    }
    let marker = at + blanks..at + blanks + 3;
    if !github_renders_checkbox(body, &marker, lines) {
        return;
    }
    if blanks > 0 {
        let line_end = lines.start_of(lines.line(at) + 1);
        let shown = body.get(at + 3..line_end).unwrap_or_default();
        top.shown = Some(shown.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    top.marker = Some(marker);
    top.late = true;
}

fn push_text(stack: &mut [OpenItem], text: &str) {
    if let Some(top) = stack.last_mut()
        && !top.text_done
    {
        top.text.push_str(text);
    }
}

fn close_text(stack: &mut [OpenItem]) {
    if let Some(top) = stack.last_mut() {
        top.text_done = true;
    }
}

/// cmark-gfm's rule on top of pulldown-cmark's (its `tasklist` pattern, matched from the
/// start of the line): the marker is exactly `[ ]`, `[x]` or `[X]` (pulldown-cmark also
/// takes a tab, vertical tab or form feed inside, and counts a tab before it when the item
/// is really indented code), the whole line up to it is blanks, one list marker and blanks,
/// and a blank follows it on the same line.
pub(super) fn github_renders_checkbox(
    body: &str,
    marker: &Range<usize>,
    lines: &LineIndex,
) -> bool {
    let is_blank = |b: u8| matches!(b, b' ' | b'\t' | 0x0b | 0x0c);
    let bytes = body.as_bytes();
    if !matches!(
        bytes.get(marker.clone()),
        Some([b'[', b' ' | b'x' | b'X', b']'])
    ) {
        return false;
    }
    if !bytes.get(marker.end).copied().is_some_and(is_blank) {
        return false;
    }
    let Some(before) = bytes.get(lines.line_start(marker.start)..marker.start) else {
        return false;
    };
    let mut rest = before.trim_ascii_start();
    match rest.first() {
        Some(b'-' | b'+' | b'*') => rest = &rest[1..],
        Some(b) if b.is_ascii_digit() => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            // `1.` or `1)`; cmark-gfm's scanner takes any one character after the digits.
            rest = rest.get(digits + 1..).unwrap_or(&[]);
        }
        _ => return false,
    }
    !rest.is_empty() && rest.iter().all(|&b| is_blank(b))
}
