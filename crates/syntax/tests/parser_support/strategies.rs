//! proptest strategies: markdown-like bodies, bodies of many checkbox lines, and task items
//! that may or may not be in a body.

use proptest::prelude::*;
use tickbot_syntax::checklist::{TaskItem, TaskState};

pub fn markdownish() -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        "- ",
        "* ",
        "+ ",
        "1. ",
        "2) ",
        "[ ]",
        "[x]",
        "[X]",
        "[]",
        " ",
        "  ",
        "    ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "> ",
        "```",
        "~~~",
        "`",
        "*",
        "_",
        "FAIL: ",
        "WIP: ",
        "prune",
        "image-refresh",
        "fedora-41",
        "é",
        "🚀",
        "<!--",
        "-->",
        "<details>",
        "<br>",
        "<img src=\"x.png\">",
        "</div>",
        "<span>",
        "<pre>",
        "</script>",
        "<textarea>",
        "[\t]",
        "[\u{a0}]",
        "[\u{b}]",
        "\u{b}",
        "\u{c}",
        "|",
        "---",
        "/test",
        "/tset",
        "/retest",
        "/task",
        "@bots#1",
        "@o/r/b",
        "/usr/bin",
        "\\",
        "[",
        "]",
        "(",
        ")",
        "#",
    ]);
    prop::collection::vec(fragments, 0..60).prop_map(|parts| parts.concat())
}

/// Bodies made mostly of checkbox lines, so the edit properties see many tasks.
pub fn taskish() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select(vec!["", "  ", "   ", "    ", "> "]),
        prop::sample::select(vec!["- ", "* ", "1. ", "-  ", "+\t", "text ", "- \u{b}"]),
        prop::sample::select(vec![
            "[ ]", "[x]", "[X]", "[]", "[\t]", "[\u{b}]", "[\u{a0}]",
        ]),
        prop::sample::select(vec![" ", "  ", "\t", "", "\u{b}", "\u{c}"]),
        prop::sample::select(vec!["", "FAIL: ", "FAIL:\t", "WIP: "]),
        prop::sample::select(vec![
            "prune",
            "image-refresh fedora",
            "`x` *y*",
            "é 🚀",
            "",
            "<!-- c --> z",
        ]),
        prop::sample::select(vec![
            "\n",
            "\r\n",
            "\n\n",
            "\n```\n",
            "\r",
            "\n<br>\n",
            "\n  <span>\n",
            "\n\n<img src=\"x.png\">\n",
            "\n<pre>\n",
            "\n</script>\n",
        ]),
    )
        .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g].concat());
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.concat())
}

pub fn arbitrary_item() -> impl Strategy<Value = TaskItem> {
    (
        any::<usize>(),
        0usize..8,
        any::<String>(),
        any::<Option<(usize, usize)>>(),
    )
        .prop_map(|(start, len, verb, prefix)| TaskItem {
            line: 1,
            verb,
            args: vec![],
            state: TaskState::Todo,
            marker: start..start.saturating_add(len),
            prefix: prefix.map(|(a, b)| a..b),
            text: String::new(),
            occurrence: 0,
        })
}
