//! Line endings and blanks as cmark-gfm reads them, rewritten for pulldown-cmark (same
//! length, ASCII for ASCII).
//!
//! * A lone `\r` ends a line for both, but pulldown-cmark's HTML blocks run on to the next
//!   `\n`: it becomes `\n`.
//! * A vertical tab or form feed is a blank for pulldown-cmark wherever it asks whether the
//!   rest of a line is blank (a blank line, an empty list item, a bare task marker such as
//!   `- [x]\v`), while cmark-gfm only skips spaces and tabs there. At the end of a line it
//!   becomes byte 0x01, text for both (people's text is read from the original body). A form
//!   feed right after a `>` stays: it may end a lone tag line (HTML block type 7) for both.

pub(super) fn normalize(bytes: &mut [u8]) {
    for i in 0..bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
            bytes[i] = b'\n';
        }
    }
    for line in bytes.split_mut(|&b| b == b'\n' || b == b'\r') {
        let run = line
            .iter()
            .rev()
            .take_while(|b| matches!(b, b' ' | b'\t' | 0x0b | 0x0c))
            .count();
        let start = line.len() - run;
        let after_tag = start > 0 && line[start - 1] == b'>';
        for b in &mut line[start..] {
            if *b == 0x0b || (*b == 0x0c && !after_tag) {
                *b = 0x01;
            }
        }
    }
}
