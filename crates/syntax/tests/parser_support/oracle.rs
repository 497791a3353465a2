//! GitHub's renderer as the oracle: what cmark-gfm renders as checkboxes, what tickbot sees,
//! and the bodies to compare them on (hand-picked tricky ones and generated ones).

use std::io::Write;
use std::process::{Command as Process, Stdio};
use tickbot_syntax::checklist;

/// The checkboxes cmark-gfm renders outside block quotes, as "checked" flags in order.
pub fn cmark_gfm_checkboxes(body: &str) -> Vec<bool> {
    let child = Process::new("cmark-gfm")
        .args([
            "--extension",
            "tasklist",
            "--extension",
            "table",
            "--extension",
            "strikethrough",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run cmark-gfm ({e}): this test compares with GitHub's renderer; \
             install it with `apt-get install cmark-gfm`"
        ),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = body.to_owned();
    // Write from another thread so a large output cannot dead-lock against the input.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("cmark-gfm runs");
    writer
        .join()
        .expect("writer thread")
        .expect("write to cmark-gfm");
    assert!(output.status.success(), "cmark-gfm failed on {body:?}");
    let html = String::from_utf8_lossy(&output.stdout);

    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut rest = html.as_ref();
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        if rest.starts_with("<blockquote") {
            depth += 1;
        } else if rest.starts_with("</blockquote") {
            depth = depth.saturating_sub(1);
        } else if rest.starts_with("<input type=\"checkbox\"") && depth == 0 {
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            found.push(tag.contains("checked=\"\""));
        }
        rest = &rest[1..];
    }
    found
}

/// Our view of the same: every task and every refused checkbox, in order.
pub fn our_checkboxes(body: &str) -> Vec<bool> {
    let list = checklist::parse(body);
    let mut markers: Vec<_> = list
        .tasks
        .iter()
        .map(|t| t.marker.clone())
        .chain(list.refused.iter().filter_map(|r| r.range.clone()))
        .collect();
    markers.sort_by_key(|m| m.start);
    markers.into_iter().map(|m| &body[m] != "[ ]").collect()
}

pub fn tricky_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = [
        "- [ ] image-refresh fedora-41\n  - [x] image-refresh debian\n    - [ ] prune\n- [ ] npm-update\n",
        "```\n- [ ] a\n```\n\n~~~\n- [ ] b\n~~~\n\n    - [ ] c\n\n- [ ] d\n",
        "> - [ ] quoted\n>\n> > - [ ] deeper\n\n- > [ ] quote-in-item\n\n- [ ] mine\n",
        "Refresh:\r\n\r\n- [ ] image-refresh fedora-41\r\n- [X] image-refresh debian\r\n",
        "- [ ] image-refresh 🐧-41\n- [ ] 🚀 image-refresh fedora\n",
        "* [X] one\n\n+ [ ] two\n\n1. [ ] three\n2) [x] four\n",
        "- [ ] FAIL: image-refresh fedora-41\n- [x] FAIL: x\n- [ ] WIP: y\n",
        "- [ ]no-space\n- [] x\n- [ ]\n- [ ] \n- [x]\t\n",
        "- [ ]\n  continued\n- - [ ] double\n1. - [ ] mixed\n",
        "<!-- - [ ] hidden -->\n- [ ] <!-- note --> shown\n<details>\n- [ ] raw\n</details>\n\n<details>\n\n- [ ] md\n\n</details>\n",
        "| a | b |\n|---|---|\n| - [ ] cell | y |\n\n- [ ] after-table\n",
        "- a\n\n  - [ ] loose-child\n\n  text\n- [x] b\n\n   - [ ] three-spaces\n",
        "- [ ] a\n[ ] lazy\n- [ ] `code` *em*\n",
        "1. [ ] one\n10. [x] ten\n   - [ ] nested-in-ordered\n",
        "- [ ] a\r\n\r\n  ```\r\n  - [ ] fenced-in-item\r\n  ```\r\n- [ ] b\r\n",
        // `[X]` alone is a paragraph for GitHub, so the indented blocks stay in its item.
        "*\t[X]\n\n    1. [X] prune\n\n    - [ ] indented\n",
        "- [ ]\n\n  - [ ] child\n\n      - [x] grandchild\n",
        // A lone tag right under an item: an HTML block for GitHub (types 1-7), which ends
        // the list and hides what follows up to a blank line or its end condition.
        "- [ ] lint\n<br>\n- [ ] image-refresh a\n\n- [ ] prune\n",
        "- [ ] lint\n<img src=\"x.png\">\n- [ ] image-refresh a\n",
        "- [ ] lint\n<b>\n- [x] image-refresh a\n</b>\n\n- [ ] prune\n",
        "- [ ] lint\n</div>\n- [ ] image-refresh a\n",
        "- [ ] lint\n<!-- comment -->\n- [ ] image-refresh a\n",
        "- [ ] lint\n<!--\n- [ ] hidden\n-->\n- [ ] shown\n",
        "- [ ] lint\n<details>\n- [ ] raw\n\n- [ ] after-blank\n</details>\n",
        "- [ ] lint\n\n<br>\n- [ ] image-refresh a\n\n- [ ] prune\n",
        "- [ ] lint\n  <br>\n- [ ] image-refresh a\n",
        "- [ ] lint\n\n  <br>\n  - [ ] nested\n\n- [ ] after\n",
        "- [ ] parent\n  - [ ] child\n  <span>\n  - [ ] child2\n- [ ] sibling\n",
        "- [ ] parent\n  - [ ] child\n    <span>\n    - [ ] grandchild\n  - [ ] child2\n",
        "1. [ ] one\n<br/>\n2. [ ] two\n\n10. [ ] ten\n   <br>\n- [ ] b\n",
        "- [ ] a\n<pre>\n- [ ] in-pre\n\n- [ ] still-in-pre\n</pre>\n- [ ] after\n",
        "- [ ] a\n<script>\n- [ ] in-script\n</pre>\n- [ ] after-any-closer\n",
        "<PRE>\n- [ ] a\n</Pre>\n- [ ] b\n",
        "- [ ] a\n<textarea>\n- [ ] b\n\n- [ ] c\n</textarea>\n",
        "Text\n<textarea>\n- [ ] a\n\n<search>\n- [ ] b\n",
        "- [ ] a\n<!doctype html\n- [ ] b\n>\n",
        "> - [ ] quoted\n<br>\n- [ ] swallowed\n\n- [ ] mine\n",
        "- [ ] a\n  b\n<img src=\"x.png\" alt='two words'>\n- [ ] c\n\n- [ ] d\n",
        "| a |\n|---|\n| b |\n<br>\n- [ ] c\n\n- [ ] d\n",
        "- [ ] a\r\n<br>\r\n- [ ] b\r\n\r\n- [ ] c\r\n",
        "- [ ] a\r<br>\r- [ ] b\r\r- [ ] c\r",
        "- [ ] a\n<br>\n\u{b}\n- [ ] b\n\n- [ ] c\n",
        "- a\n<br>\n\n  b\n<br>\n\n- [ ] c\n",
        "- [ ] a\n<br> trailing text\n- [ ] b\n",
        "- [ ] a\n<div>\n- [ ] b\n",
        // Whitespace other than one plain space inside the box, and odd blanks around it.
        "- [\t] tab\n- [\u{a0}] nbsp\n- [\u{2003}] em-space\n- [  ] two-spaces\n- [\n] newline\n- [\u{b}] vt\n- [\u{c}] ff\n- [ ] real\n",
        "- [\t]\n\n  - [ ] child-of-a-paragraph-item\n",
        "- [x]\u{b}\n  - [ ] child\n- [X]\u{c}\n- [x]\u{b}lint\n- [ ]\u{c}prune\n",
        "- \u{b}[ ] lint\n- \u{c}[x] prune\n-  \u{b} [X] x\n",
        "-\t[x] tab-before\n  - \t[x] code-in-item\n\t- [ ] tab-indented\n",
        "1.\t[X]\tlint\n2) [x]\u{b}\n10. [\t] no\n",
        "- [ ]\u{a0}nbsp-after\n- [x]\u{2003}em-after\n- [ ]  two-spaces-after\n",
        "  - \t[X]  code\n\t10. [X] b\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bodies.push(body_at_the_limit());
    bodies
}

/// A small deterministic generator (xorshift), so a failure is reproducible from its index.
pub struct Gen(u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Lines that hold only a tag (or start with one): HTML blocks of every type, or not.
pub const TAG_LINES: [&str; 20] = [
    "<br>",
    "<br/>",
    "<img src=\"x.png\">",
    "<b>",
    "</b>",
    "<span>",
    "</div>",
    "<div>",
    "<details>",
    "<!-- c -->",
    "<!--",
    "-->",
    "<pre>",
    "</pre>",
    "<script>",
    "</script>",
    "<textarea>",
    "<a href='x'>",
    "<br> text",
    "<p>x</p>",
];

pub fn generated_body(seed: u64) -> String {
    let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let eol = if g.chance(30) { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = Vec::new();
    let blocks = 3 + g.next() % 12;
    for _ in 0..blocks {
        let quote = if g.chance(15) { "> " } else { "" };
        match g.next() % 10 {
            0 => lines.push(format!("{quote}Some prose with /usr/bin and `- [ ] code`.")),
            1 => {
                let fence = g.pick(&["```", "~~~", "````"]);
                lines.push(format!("{quote}{fence}"));
                lines.push(format!("{quote}- [ ] fenced {}", g.pick(&["a", "b"])));
                if g.chance(85) {
                    lines.push(format!("{quote}{fence}"));
                }
            }
            2 => lines.push(String::new()),
            3 => lines.push(format!("{quote}    - [ ] indented-code")),
            4 => lines.push(format!("{quote}<!-- - [x] comment -->")),
            5 if g.chance(50) => {
                let html = g.pick(&[
                    "<details>",
                    "<div>",
                    "</details>",
                    "<p>x</p>",
                    "---",
                    "***",
                    "# Heading",
                    "Setext",
                    "===",
                ]);
                let html = if g.chance(40) {
                    g.pick(&TAG_LINES)
                } else {
                    html
                };
                lines.push(format!("{quote}{html}"));
            }
            5 => {
                lines.push("| a | b |".into());
                lines.push("|---|---|".into());
                lines.push("| - [ ] x | y |".into());
            }
            _ => push_list(&mut g, quote, &mut lines),
        }
        if g.chance(50) {
            lines.push(String::new());
        }
    }
    let mut body = lines.join(eol);
    if g.chance(70) {
        body.push_str(eol);
    }
    body
}

/// A list of items with random markers, indentation, checkboxes (some with odd blanks in or
/// around the box), continuation lines and tag lines under them.
pub fn push_list(g: &mut Gen, quote: &str, lines: &mut Vec<String>) {
    for _ in 0..1 + g.next() % 5 {
        let indent = g.pick(&["", "", " ", "  ", "   ", "    ", "      "]);
        let marker = g.pick(&["-", "-", "*", "+", "1.", "2)", "10."]);
        let gap = g.pick(&[" ", " ", " ", "  ", "\t", " \u{b}"]);
        let checkbox = g.pick(&["[ ]", "[ ]", "[x]", "[X]", "[]", "[y]", ""]);
        let checkbox = if g.chance(15) {
            g.pick(&[
                "[\t]",
                "[\u{b}]",
                "[\u{c}]",
                "[\u{a0}]",
                "[  ]",
                "[\u{2003}]",
            ])
        } else {
            checkbox
        };
        let after = g.pick(&[" ", " ", " ", "", "\t", "  ", "\u{b}", "\u{c}"]);
        let text = g.pick(&[
            "image-refresh fedora-41",
            "FAIL: image-refresh debian",
            "WIP: prune",
            "",
            "🚀 emoji",
            "`code` *em*",
            "prune",
            "# not-heading",
        ]);
        lines.push(format!(
            "{quote}{indent}{marker}{gap}{checkbox}{after}{text}"
        ));
        if g.chance(20) {
            lines.push(String::new());
        }
        if g.chance(10) {
            lines.push(format!("{indent}  continuation text"));
        }
        if g.chance(15) {
            let pad = g.pick(&["", "", "  ", "   ", "    "]);
            let (inside, tag) = (g.chance(50), g.pick(&TAG_LINES));
            lines.push(format!("{}{pad}{tag}", if inside { indent } else { "" }));
        }
        if g.chance(5) {
            let lazy = g.pick(&["[ ] lazy", "   - [x] sub", "---"]);
            lines.push(lazy.to_owned());
        }
    }
}

/// A body of exactly 65,536 characters (more bytes: the filler is multi-byte) with its tasks
/// on the very last lines.
pub fn body_at_the_limit() -> String {
    let tail = "\n\n- [ ] image-refresh fedora-41\n- [ ] prune";
    let line = format!("{}\n", "é".repeat(79));
    let filler = checklist::GITHUB_BODY_LIMIT - tail.chars().count();
    let mut body = line.repeat(filler / 80);
    body.push_str(&"é".repeat(filler % 80));
    body.push_str(tail);
    body
}
