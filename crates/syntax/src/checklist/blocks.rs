//! The source pulldown-cmark reads, rewritten (same length, ASCII for ASCII) until its block
//! structure is GitHub's wherever that decides which checkboxes exist.
//!
//! First, once: tags pulldown-cmark treats differently from cmark-gfm (`html`), lone `\r`
//! line endings and trailing vertical tabs and form feeds (`blanks`). Then, repeated until a
//! pass finds nothing to change:
//!
//! * a task marker cmark-gfm does not take becomes `( )`, text for both: a bare one
//!   (`- [ ]` alone on its line, so indented blocks after a blank line still belong to the
//!   item), one with a tab, vertical tab or form feed inside (`[\t]`), one in a block quote
//!   (cmark-gfm matches its pattern from the start of the line), and one after a tab that
//!   leaves the item's content indented as code;
//! * a complete tag alone on a *lazy* continuation line (one that does not match every
//!   enclosing list item and block quote, like `<br>` right under `- [ ] lint`) starts an
//!   HTML block for cmark-gfm, which closes the list and swallows the following lines up to
//!   a blank line; pulldown-cmark continues the paragraph. Such a tag becomes `<p …>`, a
//!   type-6 tag that pulldown-cmark lets interrupt the paragraph.
//!
//! Whether a line is lazy needs cmark's container matching, with its tab stops, which this
//! module repeats for block quotes and list items. A rewrite can be undone by a later pass:
//! an earlier rewrite may close the list that made a later line lazy.

use std::borrow::Cow;
use std::ops::Range;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

use super::checkboxes::github_renders_checkbox;
use super::{LineIndex, blanks, github_options, html};

/// Passes before giving up on a body that keeps changing (each pass fixes at least the
/// first remaining difference, so real bodies need two or three).
const MAX_PASSES: usize = 64;

/// Position on a line as cmark tracks it: byte and column (tab stops of 4). A tab consumed
/// in part keeps `offset` on the tab, with `column` inside it.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    offset: usize,
    column: usize,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Quote,
    /// A list item and the columns a line needs to continue it (marker offset + padding).
    Item(usize),
}

#[derive(Debug, Clone, Copy)]
struct Container {
    kind: Kind,
    /// Start of the line the container opened on, and where its content starts there.
    line_start: usize,
    content: Cursor,
}

/// The source, read line by line as cmark reads it.
struct Columns<'a> {
    bytes: &'a [u8],
}

impl Columns<'_> {
    fn byte(&self, at: usize) -> u8 {
        self.bytes.get(at).copied().unwrap_or(b'\n')
    }

    /// cmark's `S_find_first_nonspace`: byte and column of the first non-blank.
    fn first_nonspace(&self, cur: Cursor) -> (usize, usize) {
        let (mut at, mut column) = (cur.offset, cur.column);
        loop {
            match self.byte(at) {
                b' ' => column += 1,
                b'\t' => column += 4 - column % 4,
                _ => return (at, column),
            }
            at += 1;
        }
    }

    /// cmark's `S_advance_offset`: `count` columns (a tab may be consumed in part) or bytes.
    fn advance(&self, mut cur: Cursor, mut count: usize, columns: bool) -> Cursor {
        while count > 0 && cur.offset < self.bytes.len() {
            if self.byte(cur.offset) == b'\t' {
                let to_tab = 4 - cur.column % 4;
                if columns {
                    let step = count.min(to_tab);
                    cur.column += step;
                    count -= step;
                    if step == to_tab {
                        cur.offset += 1;
                    }
                } else {
                    cur.column += to_tab;
                    cur.offset += 1;
                    count -= 1;
                }
            } else {
                cur.offset += 1;
                cur.column += 1;
                count -= 1;
            }
        }
        cur
    }

    /// Matches the line starting at `start` against `stack`: how many containers it
    /// continues, and where their content starts.
    fn continues(&self, start: usize, stack: &[Container]) -> (usize, Cursor) {
        let mut cur = Cursor {
            offset: start,
            column: 0,
        };
        for (matched, container) in stack.iter().enumerate() {
            let (first, column) = self.first_nonspace(cur);
            let indent = column - cur.column;
            match container.kind {
                Kind::Quote if indent <= 3 && self.byte(first) == b'>' => {
                    cur = self.advance(cur, indent + 1, true);
                    if matches!(self.byte(cur.offset), b' ' | b'\t') {
                        cur = self.advance(cur, 1, true);
                    }
                }
                Kind::Item(width) if indent >= width => cur = self.advance(cur, width, true),
                _ => return (matched, cur),
            }
        }
        (stack.len(), cur)
    }

    /// Opens a container at `cur` as cmark's `open_new_blocks` does.
    fn open(&self, kind: Kind, cur: Cursor) -> (Kind, Cursor) {
        let (first, column) = self.first_nonspace(cur);
        if let Kind::Quote = kind {
            let mut cur = self.advance(cur, first + 1 - cur.offset, false);
            if matches!(self.byte(cur.offset), b' ' | b'\t') {
                cur = self.advance(cur, 1, true);
            }
            return (kind, cur);
        }
        let marker_offset = column - cur.column;
        let digits = self.bytes[first.min(self.bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let width = if digits > 0 { digits + 1 } else { 1 };
        let save = self.advance(cur, first + width - cur.offset, false);
        let mut cur = save;
        while cur.column - save.column <= 5 && matches!(self.byte(cur.offset), b' ' | b'\t') {
            cur = self.advance(cur, 1, true);
        }
        let spaces = cur.column - save.column;
        // Content after 1 to 4 columns; else (none, code, or nothing) one column after.
        let at_eol = matches!(self.byte(cur.offset), b'\n' | b'\r');
        let padding = if !(1..5).contains(&spaces) || at_eol {
            cur = if spaces > 0 {
                self.advance(save, 1, true)
            } else {
                save
            };
            width + 1
        } else {
            width + spaces
        };
        (Kind::Item(marker_offset + padding), cur)
    }
}

/// What one pass found to change, as byte offsets.
#[derive(Default)]
struct Findings {
    /// `[` of task markers cmark-gfm does not render.
    markers: Vec<usize>,
    /// `<` of type-7 tags on lazy lines.
    lazy: Vec<usize>,
    /// `<` of earlier rewrites that no longer follow a lazy line.
    undo: Vec<usize>,
}

/// One pass over pulldown-cmark's events.
struct Walker<'a> {
    body: &'a str,
    source: &'a str,
    line: Columns<'a>,
    lines: LineIndex,
    rewritten: &'a [usize],
    stack: Vec<Container>,
    /// Bytes of the inline content being read (a paragraph, heading or table cell).
    inline: Option<Range<usize>>,
    /// Last line of the last paragraph, and its containers.
    last_paragraph: Option<(usize, Vec<Container>)>,
    /// Inside a heading or table cell, whose inline content is no paragraph.
    not_paragraph: usize,
    found: Findings,
}

impl<'a> Walker<'a> {
    fn scan(body: &'a str, source: &'a str, rewritten: &'a [usize]) -> Findings {
        let mut walker = Walker {
            body,
            source,
            line: Columns {
                bytes: source.as_bytes(),
            },
            lines: LineIndex::new(source),
            rewritten,
            stack: Vec::new(),
            inline: None,
            last_paragraph: None,
            not_paragraph: 0,
            found: Findings::default(),
        };
        let mut in_code = false;
        for (event, range) in Parser::new_ext(source, github_options()).into_offset_iter() {
            match event {
                Event::Start(Tag::CodeBlock(_)) => in_code = true,
                Event::End(TagEnd::CodeBlock) => in_code = false,
                Event::TaskListMarker(_) => {
                    walker.marker(&range);
                    walker.inline_at(&range);
                }
                Event::Text(_) if in_code => {}
                Event::Text(_)
                | Event::Code(_)
                | Event::InlineHtml(_)
                | Event::SoftBreak
                | Event::HardBreak
                | Event::FootnoteReference(_)
                | Event::InlineMath(_)
                | Event::DisplayMath(_) => walker.inline_at(&range),
                Event::Start(tag) if is_inline(&tag) => walker.inline_at(&range),
                Event::End(tag) if is_inline_end(&tag) => walker.inline_at(&range),
                Event::Start(tag) => {
                    walker.end_inline();
                    walker.start(&tag, &range);
                }
                Event::End(tag) => {
                    walker.end_inline();
                    walker.end(&tag);
                }
                _ => walker.end_inline(),
            }
        }
        walker.end_inline();
        walker.found
    }

    fn start(&mut self, tag: &Tag<'_>, range: &Range<usize>) {
        match tag {
            Tag::BlockQuote(_) => self.push(Kind::Quote, range.start),
            Tag::Item => self.push(Kind::Item(0), range.start),
            Tag::Heading { .. } | Tag::TableCell => self.not_paragraph += 1,
            Tag::HtmlBlock => self.html_block(range.start),
            Tag::TableRow => self.after_table(range.start),
            _ => {}
        }
    }

    fn end(&mut self, tag: &TagEnd) {
        match tag {
            TagEnd::BlockQuote(_) | TagEnd::Item => {
                self.stack.pop();
            }
            TagEnd::Heading(_) | TagEnd::TableCell => {
                self.not_paragraph = self.not_paragraph.saturating_sub(1)
            }
            _ => {}
        }
    }

    fn push(&mut self, kind: Kind, at: usize) {
        let line_start = self.lines.block_line_start(self.source, at);
        let cur = match self.stack.last() {
            Some(parent) if parent.line_start == line_start => parent.content,
            _ => self.line.continues(line_start, &self.stack).1,
        };
        let (kind, content) = self.line.open(kind, cur);
        self.stack.push(Container {
            kind,
            line_start,
            content,
        });
    }

    /// A task marker cmark-gfm does not render becomes text for pulldown-cmark too.
    fn marker(&mut self, range: &Range<usize>) {
        let start = range.end.saturating_sub(3);
        // pulldown-cmark counts a tab after the list marker as 4 columns and then takes a
        // box after part of it, where cmark-gfm (and pulldown-cmark without the box) sees
        // indented code.
        let after_tab = range.len() > 3;
        let rendered = github_renders_checkbox(self.body, &(start..range.end), &self.lines);
        if (after_tab || !rendered) && self.line.bytes.get(start) == Some(&b'[') {
            self.found.markers.push(start);
        }
    }

    fn inline_at(&mut self, range: &Range<usize>) {
        match &mut self.inline {
            Some(open) => open.end = open.end.max(range.end),
            None => self.inline = Some(range.clone()),
        }
    }

    /// The inline content is over: its continuation lines may have been lazy.
    fn end_inline(&mut self) {
        let Some(range) = self.inline.take() else {
            return;
        };
        let first = self.lines.line(range.start);
        let last = self
            .lines
            .line(range.end.saturating_sub(1).max(range.start));
        if self.not_paragraph == 0 {
            self.last_paragraph = (!self.rewritten.is_empty()).then(|| (last, self.stack.clone()));
        }
        if self.stack.is_empty() {
            return; // nothing to be lazy about
        }
        for line in first + 1..=last {
            let start = self.lines.start_of(line);
            let (matched, cur) = self.line.continues(start, &self.stack);
            if matched < self.stack.len() {
                self.lazy_tag(cur);
            }
        }
    }

    /// A type-7 tag at `cur` (not indented) that cmark-gfm starts an HTML block with.
    fn lazy_tag(&mut self, cur: Cursor) {
        let (first, column) = self.line.first_nonspace(cur);
        let Some(rest) = self.body.as_bytes().get(first..) else {
            return;
        };
        if column - cur.column < 4
            && !html::starts_block(rest)
            && html::starts_type7(rest)
            && self.rewritten.binary_search(&first).is_err()
        {
            self.found.lazy.push(first);
        }
    }

    /// A table row for pulldown-cmark; for cmark-gfm a type-7 tag ends the table.
    fn after_table(&mut self, at: usize) {
        let start = self.lines.block_line_start(self.source, at);
        let cur = self.line.continues(start, &self.stack).1;
        self.lazy_tag(cur);
    }

    /// An HTML block that starts with one of our rewrites must still follow a lazy line
    /// (or no paragraph at all); otherwise cmark-gfm reads the tag as paragraph text.
    fn html_block(&mut self, at: usize) {
        let start = self.lines.block_line_start(self.source, at);
        let line = self.lines.line(start);
        let end = self.lines.start_of(line + 1);
        let from = self.rewritten.partition_point(|&p| p < start);
        let Some(&tag) = self.rewritten.get(from).filter(|&&p| p < end) else {
            return;
        };
        if let Some((last, stack)) = &self.last_paragraph
            && last + 1 == line
            && self.line.continues(start, stack).0 == stack.len()
        {
            self.found.undo.push(tag);
        }
    }
}

/// Inline markup (emphasis, links, images…): what is not a block of its own.
pub(crate) fn is_inline(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. }
            | Tag::Image { .. }
    )
}

/// The end of inline markup (see [`is_inline`]).
pub(crate) fn is_inline_end(tag: &TagEnd) -> bool {
    matches!(
        tag,
        TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
            | TagEnd::Image
    )
}

/// The body as pulldown-cmark must read it to find GitHub's block structure (see the module
/// documentation). Same length and lines as `body`; borrowed when nothing needed a rewrite.
pub(super) fn github_source(body: &str) -> Cow<'_, str> {
    let mut base = html::normalize_tags(body);
    blanks::normalize(&mut base);
    let mut source = base.clone();
    let mut rewritten: Vec<usize> = Vec::new();
    for _ in 0..MAX_PASSES {
        let Ok(text) = std::str::from_utf8(&source) else {
            break;
        };
        let found = Walker::scan(body, text, &rewritten);
        if found.markers.is_empty() && found.lazy.is_empty() && found.undo.is_empty() {
            break;
        }
        for at in found.markers {
            source[at] = b'(';
            source[at + 2] = b')';
        }
        for at in &found.undo {
            html::restore(&mut source, &base, *at);
        }
        rewritten.retain(|p| !found.undo.contains(p));
        for at in found.lazy {
            html::as_type6(&mut source, at);
            rewritten.push(at);
        }
        rewritten.sort_unstable();
    }
    if source == body.as_bytes() {
        return Cow::Borrowed(body);
    }
    // Only ASCII bytes were replaced by ASCII bytes.
    String::from_utf8(source).map_or(Cow::Borrowed(body), Cow::Owned)
}
