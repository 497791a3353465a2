//! HTML blocks as GitHub's renderer (cmark-gfm 0.29) starts them, and the same-length
//! rewrites that make pulldown-cmark start and end them on the same lines.
//!
//! Where the two differ (pulldown-cmark follows a later CommonMark spec):
//!
//! * type 1 (`<pre`, `<script`, `<style`) ends at the first line holding any of `</pre>`,
//!   `</script>` or `</style>`, in any case; pulldown-cmark waits for the matching closer in
//!   lower case;
//! * `<textarea` starts type 1 and `<search` type 6 only for pulldown-cmark;
//! * `<!` and a lower-case letter starts type 4 only for pulldown-cmark;
//! * a vertical tab or form feed ends a type-6 tag name only for cmark-gfm: it becomes a
//!   space (after a type-1 name too, where `blanks` would otherwise make it text);
//! * type 7 (a complete tag alone on its line) starts on a lazy continuation line only for
//!   cmark-gfm (see `blocks`).
//!
//! Every rewrite replaces ASCII bytes by ASCII bytes, so offsets and lines stay valid, and
//! it only changes what pulldown-cmark treats specially; text shown to people is read from
//! the original body.

/// cmark-gfm's `blocktagname` (type 6) as GitHub's renderer runs it: CommonMark 0.29's list.
const BLOCK_TAGS: [&str; 61] = [
    "address",
    "article",
    "aside",
    "base",
    "basefont",
    "blockquote",
    "body",
    "caption",
    "center",
    "col",
    "colgroup",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hr",
    "html",
    "iframe",
    "legend",
    "li",
    "link",
    "main",
    "menu",
    "menuitem",
    "nav",
    "noframes",
    "ol",
    "optgroup",
    "option",
    "p",
    "param",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "track",
    "ul",
];

/// cmark-gfm's `spacechar`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The line that starts at `rest`, without its line ending.
fn line_of(rest: &[u8]) -> &[u8] {
    let end = rest
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Length of the tag name starting at `at` (letters, digits and `-`).
fn name_len(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count()
}

/// Whether a line whose first non-blank byte starts `rest` opens an HTML block of type 1 to 6
/// for cmark-gfm (`_scan_html_block_start`). These interrupt a paragraph.
pub(super) fn starts_block(rest: &[u8]) -> bool {
    let line = line_of(rest);
    let at = |i: usize| line.get(i).copied();
    // The end of the line is its newline, a `spacechar`.
    let ends_name = |i: usize| at(i).is_none_or(|b| is_space(b) || b == b'>');
    if at(0) != Some(b'<') {
        return false;
    }
    let tail = &line[1..];
    if tail.starts_with(b"!--") || tail.starts_with(b"?") {
        return true;
    }
    if tail.len() >= 8 && tail[..8].eq_ignore_ascii_case(b"![CDATA[") {
        return true;
    }
    if at(1) == Some(b'!') {
        return at(2).is_some_and(|b| b.is_ascii_uppercase());
    }
    let closing = at(1) == Some(b'/');
    let start = 1 + usize::from(closing);
    let len = name_len(line, start);
    let name = &line[start..start + len];
    let end = start + len;
    let type1 = [&b"script"[..], b"pre", b"style"]
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t));
    if type1 && !closing && ends_name(end) {
        return true;
    }
    let block = BLOCK_TAGS
        .iter()
        .any(|t| name.eq_ignore_ascii_case(t.as_bytes()));
    block && (ends_name(end) || (at(end) == Some(b'/') && at(end + 1) == Some(b'>')))
}

/// Whether a line whose first non-blank byte starts `rest` is a complete open or closing
/// tag followed only by blanks: cmark-gfm's HTML block type 7 (`_scan_html_block_start_7`).
/// It cannot interrupt a paragraph, but it can follow one on a lazy line.
pub(super) fn starts_type7(rest: &[u8]) -> bool {
    let line = line_of(rest);
    let spaces = |i: usize| spaces_at(line, i);
    if line.first() != Some(&b'<') {
        return false;
    }
    let closing = line.get(1) == Some(&b'/');
    let start = 1 + usize::from(closing);
    if !line.get(start).is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut i = start + name_len(line, start);
    if !closing {
        let Some(after) = attributes(line, i) else {
            return false;
        };
        i = after + spaces(after);
        if line.get(i) == Some(&b'/') {
            i += 1;
        }
    } else {
        i += spaces(i);
    }
    if line.get(i) != Some(&b'>') {
        return false;
    }
    // `[\t\n\f ]*` up to the line ending.
    line[i + 1..]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | 0x0c))
}

/// How many blanks start `line` at `i`.
fn spaces_at(line: &[u8], i: usize) -> usize {
    line.get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| is_space(**b))
        .count()
}

/// Skips the attributes of an open tag from `i`; `None` if one is malformed.
fn attributes(line: &[u8], mut i: usize) -> Option<usize> {
    let spaces = |i: usize| spaces_at(line, i);
    loop {
        let ws = spaces(i);
        let name_start = line.get(i + ws).copied();
        if ws == 0 || !name_start.is_some_and(|b| b.is_ascii_alphabetic() || b"_:".contains(&b)) {
            return Some(i);
        }
        let mut k = i + ws + 1;
        k += line[k..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || b":._-".contains(b))
            .count();
        let eq = k + spaces(k);
        if line.get(eq) == Some(&b'=') {
            let value = eq + 1 + spaces(eq + 1);
            k = value_end(line, value)?;
        }
        i = k;
    }
}

/// End of the attribute value starting at `at`.
fn value_end(line: &[u8], at: usize) -> Option<usize> {
    match line.get(at) {
        Some(&quote @ (b'"' | b'\'')) => {
            let len = line[at + 1..].iter().position(|&b| b == quote)?;
            Some(at + len + 2)
        }
        _ => {
            let len = line
                .get(at..)
                .unwrap_or_default()
                .iter()
                .take_while(|b| !is_space(**b) && !b"\"'=<>`\0".contains(b))
                .count();
            (len > 0).then_some(at + len)
        }
    }
}

/// Rewrites every tag pulldown-cmark treats differently from cmark-gfm, wherever it is (out
/// of block-start position the rewrite changes nothing that matters): see the module
/// documentation. Returns the body's bytes, rewritten.
pub(super) fn normalize_tags(body: &str) -> Vec<u8> {
    let mut bytes = body.as_bytes().to_vec();
    let mut at = 0;
    while let Some(found) = memchr_lt(&bytes, at) {
        rewrite_tag(&mut bytes, found);
        at = found + 1;
    }
    bytes
}

fn memchr_lt(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.iter().position(|&b| b == b'<').map(|p| from + p)
}

/// Rewrites the tag at `bytes[lt] == b'<'` if pulldown-cmark would treat it differently.
fn rewrite_tag(bytes: &mut [u8], lt: usize) {
    let at = |bytes: &[u8], i: usize| bytes.get(i).copied();
    if at(bytes, lt + 1) == Some(b'!') {
        // `<!doctype`: a declaration block for pulldown-cmark only.
        if at(bytes, lt + 2).is_some_and(|b| b.is_ascii_lowercase()) {
            bytes[lt + 1] = b'_';
        }
        return;
    }
    let closing = at(bytes, lt + 1) == Some(b'/');
    let start = lt + 1 + usize::from(closing);
    let len = name_len(bytes, start);
    let end = start + len;
    let name = bytes[start..end].to_ascii_lowercase();
    let after = at(bytes, end);
    let ends_name = after.is_none_or(|b| is_space(b) || b == b'>');
    match (name.as_slice(), closing) {
        (b"textarea", false) | (b"search", _) => bytes[end - 1] = b'-',
        (b"script" | b"style" | b"pre", false) if ends_name => {
            blank_name(bytes, start, end, b"pre");
            if matches!(after, Some(0x0b | 0x0c)) {
                bytes[end] = b' ';
            }
        }
        (b"script" | b"style" | b"pre", true) if after == Some(b'>') => {
            // `</script>` → `</pre>   `: pulldown-cmark ends type 1 only at `</pre>`.
            bytes[lt..=end].fill(b' ');
            bytes[lt..lt + 6].copy_from_slice(b"</pre>");
        }
        _ if matches!(after, Some(0x0b | 0x0c))
            && BLOCK_TAGS.iter().any(|t| t.as_bytes() == name.as_slice()) =>
        {
            bytes[end] = b' ';
        }
        _ => {}
    }
}

/// Replaces the tag name `bytes[start..end]` by `name` and blanks.
fn blank_name(bytes: &mut [u8], start: usize, end: usize, name: &[u8]) {
    bytes[start..end].fill(b' ');
    bytes[start..start + name.len()].copy_from_slice(name);
}

/// Rewrites the type-7 tag at `bytes[lt] == b'<'` as `<p …>`, which starts an HTML block of
/// type 6 for pulldown-cmark: it ends at the same blank line, but may interrupt a paragraph.
pub(super) fn as_type6(bytes: &mut [u8], lt: usize) {
    let start = lt + 1 + usize::from(bytes.get(lt + 1) == Some(&b'/'));
    let end = start + name_len(bytes, start);
    if end > start {
        blank_name(bytes, start, end, b"p");
    }
}

/// Undoes [`as_type6`] with the bytes of `base`.
pub(super) fn restore(bytes: &mut [u8], base: &[u8], lt: usize) {
    let start = lt + 1 + usize::from(base.get(lt + 1) == Some(&b'/'));
    let end = start + name_len(base, start);
    if let (Some(to), Some(from)) = (bytes.get_mut(lt..end), base.get(lt..end)) {
        to.copy_from_slice(from);
    }
}
