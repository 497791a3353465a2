//! The PR body and comment parsers as a user meets them: which checkboxes become tasks, what
//! the bot's edits change (only the marker bytes), agreement with GitHub's own renderer
//! (cmark-gfm), robustness on arbitrary input, and the comment command grammar.

use std::ops::Range;

use proptest::prelude::*;

mod parser_support;
use parser_support::oracle::*;
use parser_support::strategies::*;
use tickbot_syntax::checklist::{
    self, GITHUB_BODY_LIMIT, TaskItem, TaskState, find_again, mark_done, mark_failed, mark_undone,
};
use tickbot_syntax::commands::{self, parse_context};

/// `(line, verb, args, state)` of every task, for compact assertions.
fn tasks(body: &str) -> Vec<(usize, String, Vec<String>, TaskState)> {
    checklist::parse(body)
        .tasks
        .into_iter()
        .map(|t| (t.line, t.verb, t.args, t.state))
        .collect()
}

fn task(
    line: usize,
    verb: &str,
    args: &[&str],
    state: TaskState,
) -> (usize, String, Vec<String>, TaskState) {
    (
        line,
        verb.to_owned(),
        args.iter().map(|a| a.to_string()).collect(),
        state,
    )
}

use TaskState::{Done, Failed, Todo};

// ---------------------------------------------------------------------------------------
// Which checkboxes are tasks

#[test]
fn nested_lists_keep_parent_and_child_tasks_in_document_order() {
    let body = "- [ ] image-refresh fedora-41\n  - [x] image-refresh debian\n    - [ ] prune\n- [ ] npm-update\n";
    assert_eq!(
        tasks(body),
        vec![
            task(1, "image-refresh", &["fedora-41"], Todo),
            task(2, "image-refresh", &["debian"], Done),
            task(3, "prune", &[], Todo),
            task(4, "npm-update", &[], Todo),
        ]
    );
    // The parent's text stops at its own line: the sub-list is not part of its arguments.
    let parent = &checklist::parse(body).tasks[0];
    assert_eq!(parent.text, "image-refresh fedora-41");
    assert_eq!(&body[parent.marker.clone()], "[ ]");
}

#[test]
fn code_blocks_are_never_tasks() {
    let body = "```\n- [ ] in-backticks\n```\n\n~~~md\n- [ ] in-tildes\n~~~\n\n    - [ ] indented-code\n\n- [ ] real\n";
    assert_eq!(tasks(body), vec![task(11, "real", &[], Todo)]);
}

#[test]
fn quoted_lists_are_not_requests_for_work() {
    let body = "> - [ ] quoted\n>\n> > - [ ] deeper\n\n- > [ ] quote-in-item\n\n- [ ] mine\n";
    assert_eq!(tasks(body), vec![task(7, "mine", &[], Todo)]);
    assert!(checklist::parse(body).refused.is_empty());
}

#[test]
fn crlf_bodies_count_lines_and_bytes_in_the_original_text() {
    let body = "Refresh:\r\n\r\n- [ ] image-refresh fedora-41\r\n- [X] image-refresh debian\r\n";
    let list = checklist::parse(body);
    assert_eq!(
        tasks(body),
        vec![
            task(3, "image-refresh", &["fedora-41"], Todo),
            task(4, "image-refresh", &["debian"], Done),
        ]
    );
    assert_eq!(list.tasks[0].marker, 14..17);
    assert_eq!(list.tasks[1].marker, 45..48);
    assert_eq!(&body[45..48], "[X]");
}

#[test]
fn emoji_are_words_like_any_other() {
    let body = "- [ ] image-refresh 🐧-41 ünïcode\n- [ ] 🚀 image-refresh fedora\n";
    let list = checklist::parse(body);
    assert_eq!(
        tasks(body),
        vec![
            task(1, "image-refresh", &["🐧-41", "ünïcode"], Todo),
            // The dispatcher refuses the unknown verb "🚀" and names the known ones.
            task(2, "🚀", &["image-refresh", "fedora"], Todo),
        ]
    );
    assert_eq!(list.tasks[1].marker, 40..43);
    assert_eq!(list.tasks[0].context(), "image-refresh/🐧-41/ünïcode");
}

#[test]
fn star_plus_and_ordered_markers_render_as_checkboxes_too() {
    let body = "* [X] one\n\n+ [ ] two\n\n1. [ ] three\n2) [x] four\n";
    assert_eq!(
        tasks(body),
        vec![
            task(1, "one", &[], Done),
            task(3, "two", &[], Todo),
            task(5, "three", &[], Todo),
            task(6, "four", &[], Done),
        ]
    );
}

#[test]
fn fail_prefix_marks_a_failed_task_and_its_bytes_are_known() {
    let body = "- [ ] FAIL: image-refresh fedora-41\n";
    let t = &checklist::parse(body).tasks[0];
    assert_eq!(
        (t.state, t.verb.as_str(), t.args.clone()),
        (Failed, "image-refresh", vec!["fedora-41".to_owned()])
    );
    assert_eq!(t.prefix, Some(6..12));
    assert_eq!(&body[6..12], "FAIL: ");
}

#[test]
fn things_github_does_not_render_as_checkboxes_are_not_tasks() {
    for body in [
        "- [ ]no-space\n",
        "- [] x\n",
        "- [ ]\n",
        "- [ ]\n  continued-on-next-line\n",
        "- - [ ] double-marker\n",
        "[ ] no-list\n",
        "- [y] other-letter\n",
        "<!-- - [ ] in-comment -->\n",
        "<details>\n- [ ] in-html-block\n</details>\n",
        "| a | b |\n|---|---|\n| - [ ] in-table | y |\n",
    ] {
        let list = checklist::parse(body);
        assert_eq!(list.tasks, vec![], "{body:?}");
        assert_eq!(list.refused, vec![], "{body:?}");
    }
}

#[test]
fn a_lone_tag_right_under_an_item_hides_the_lines_after_it_up_to_a_blank_line() {
    // GitHub starts an HTML block at the tag: the list ends, and the next item is raw HTML.
    for tag in [
        "<br>",
        "<img src=\"x.png\">",
        "<b>",
        "</div>",
        "<span>",
        "<details>",
    ] {
        let body = format!("- [ ] lint\n{tag}\n- [ ] image-refresh a\n\n- [ ] prune\n");
        assert_eq!(
            tasks(&body),
            vec![task(1, "lint", &[], Todo), task(5, "prune", &[], Todo)],
            "{body:?}"
        );
    }
    // After a blank line too, and under an ordered item or a quoted one.
    let body = "1. [ ] lint\n\n<br>\n2. [ ] image-refresh a\n\n> - [ ] quoted\n<br/>\n- [ ] gone\n";
    assert_eq!(tasks(body), vec![task(1, "lint", &[], Todo)]);
}

#[test]
fn tags_that_start_no_html_block_there_hide_nothing() {
    for body in [
        // Indented into the item: part of its paragraph, rendered inline.
        "- [ ] lint\n  <br>\n- [ ] image-refresh a\n",
        // A comment that ends on its line.
        "- [ ] lint\n<!-- why -->\n- [ ] image-refresh a\n",
    ] {
        assert_eq!(
            tasks(body),
            vec![
                task(1, "lint", &[], Todo),
                task(3, "image-refresh", &["a"], Todo)
            ],
            "{body:?}"
        );
    }
}

#[test]
fn a_tag_with_text_after_it_continues_the_item_above() {
    let body = "- [ ] lint\n<br> and text\n- [ ] image-refresh a\n";
    assert_eq!(
        tasks(body),
        vec![
            task(1, "lint", &[], Todo),
            task(3, "image-refresh", &["a"], Todo)
        ]
    );
}

#[test]
fn a_line_wrapped_under_a_task_is_its_description_not_more_arguments() {
    let body = "- [ ] image-refresh fedora-41\n  because the mirror moved\nmore text\n\
                - [x] lint\n- [ ]\n  test-all\n";
    // GitHub renders each box: the wrapped lines are part of the item, under its first line.
    assert_eq!(cmark_gfm_checkboxes(body), vec![false, true]);
    assert_eq!(
        tasks(body),
        vec![
            task(1, "image-refresh", &["fedora-41"], Todo),
            task(4, "lint", &[], Done)
        ]
    );
}

#[test]
fn a_lone_tag_under_a_nested_item_ends_the_sub_list() {
    let body = "- [ ] parent\n  - [ ] child\n  <span>\n  - [ ] child2\n- [ ] sibling\n";
    assert_eq!(
        tasks(body),
        vec![
            task(1, "parent", &[], Todo),
            task(2, "child", &[], Todo),
            task(5, "sibling", &[], Todo),
        ]
    );
    // Indented as far as the child's text, the tag is part of it and hides nothing.
    let body = "- [ ] parent\n  - [ ] child\n    <span>\n    - [ ] grandchild\n  - [ ] child2\n";
    let lines: Vec<_> = tasks(body).into_iter().map(|t| t.0).collect();
    assert_eq!(lines, [1, 2, 4, 5]);
}

#[test]
fn raw_html_blocks_end_where_github_ends_them() {
    // `<pre>`, `<script>` and `<style>` end at a line with any of their closers, any case.
    let body = "- [ ] a\n<script>\n- [ ] in-script\n</pre>\n- [ ] after\n";
    assert_eq!(
        tasks(body),
        vec![task(1, "a", &[], Todo), task(5, "after", &[], Todo)]
    );
    let body = "<PRE>\n- [ ] hidden\n\n- [ ] hidden-too\n</Pre>\n- [ ] after\n";
    assert_eq!(tasks(body), vec![task(6, "after", &[], Todo)]);
    // A comment runs to `-->`, across blank lines.
    let body = "- [ ] lint\n<!--\n- [ ] hidden\n\n- [ ] hidden-too\n-->\n- [ ] shown\n";
    assert_eq!(
        tasks(body),
        vec![task(1, "lint", &[], Todo), task(7, "shown", &[], Todo)]
    );
    // GitHub's renderer has no `<textarea>` block: alone on its line, it ends at a blank line.
    let body = "- [ ] a\n<textarea>\n- [ ] hidden\n\n- [ ] shown\n</textarea>\n";
    assert_eq!(
        tasks(body),
        vec![task(1, "a", &[], Todo), task(5, "shown", &[], Todo)]
    );
}

#[test]
fn only_a_space_x_or_capital_x_between_the_brackets_is_a_checkbox() {
    let body = "- [\t] tab\n- [\u{a0}] nbsp\n- [\u{2003}] em-space\n- [  ] two-spaces\n- [\n] newline\n- [\u{b}] vt\n- [\u{c}] ff\n- [ ] real\n";
    assert_eq!(tasks(body), vec![task(9, "real", &[], Todo)]);
    assert_eq!(checklist::parse(body).refused, vec![]);
    // Not a box, `[\t]` is text that keeps the blocks indented under it in its item.
    assert_eq!(
        tasks("- [\t]\n\n  - [x] child\n"),
        vec![task(3, "child", &[], Done)]
    );
}

#[test]
fn a_vertical_tab_or_form_feed_next_to_the_box() {
    // After the box it separates it from the task, as a space does.
    assert_eq!(
        tasks("- [x]\u{b}lint\n- [ ]\u{c}prune\n"),
        vec![task(1, "lint", &[], Done), task(2, "prune", &[], Todo)]
    );
    let prune = &checklist::parse("- [ ]\u{c}prune\n").tasks[0];
    assert_eq!(
        mark_failed("- [ ]\u{c}prune\n", prune).as_deref(),
        Some("- [ ]\u{c}FAIL: prune\n")
    );
    // Alone after the box: GitHub shows an empty checkbox, refused as `- [ ] ` is.
    let list = checklist::parse("- [x]\u{b}\n  - [ ] child\n");
    assert_eq!(
        tasks("- [x]\u{b}\n  - [ ] child\n"),
        vec![task(2, "child", &[], Todo)]
    );
    assert_eq!(list.refused[0].range, Some(2..5));
    assert!(list.refused[0].reason.starts_with("empty task item"));
    // Before the box: GitHub renders a checkbox but shows `] lint` after it.
    let list = checklist::parse("- \u{b}[ ] lint\n- [ ] prune\n");
    assert_eq!(
        tasks("- \u{b}[ ] lint\n- [ ] prune\n"),
        vec![task(2, "prune", &[], Todo)]
    );
    let refused = &list.refused[0];
    assert_eq!((refused.line, refused.text.as_str()), (1, "lint"));
    assert_eq!(refused.range, Some(3..6));
    assert!(refused.reason.contains("`] lint`"), "{}", refused.reason);
}

#[test]
fn a_tab_that_makes_the_item_code_hides_its_box() {
    // `  - ` and a tab reach column 8: the item holds the indented code `[X]  code`, and the
    // next line starts a sub-list.
    let body = "  - \t[X]  code\n\t10. [X] image-refresh b\n";
    assert_eq!(tasks(body), vec![task(2, "image-refresh", &["b"], Done)]);
    assert_eq!(
        tasks("-\t[x] tab-before\n"),
        vec![task(1, "tab-before", &[], Done)]
    );
}

#[test]
fn html_comments_inside_an_item_are_invisible() {
    let body = "- [ ] <!-- why: nightly --> image-refresh fedora-41\n";
    assert_eq!(
        tasks(body),
        vec![task(1, "image-refresh", &["fedora-41"], Todo)]
    );
}

#[test]
fn inline_formatting_contributes_its_text() {
    let body = "- [ ] `image-refresh` *fedora-41* [debian](https://debian.org) ~~x~~\n";
    assert_eq!(
        tasks(body),
        vec![task(
            1,
            "image-refresh",
            &["fedora-41", "debian", "x"],
            Todo
        )]
    );
}

#[test]
fn tasks_after_a_table_and_a_list_inside_details_are_found() {
    let body = "| image | age |\n|---|---|\n| fedora | 9d |\n\n<details>\n\n- [ ] image-refresh fedora\n\n</details>\n";
    assert_eq!(
        tasks(body),
        vec![task(7, "image-refresh", &["fedora"], Todo)]
    );
}

#[test]
fn empty_items_and_unknown_prefixes_are_refused_not_dropped() {
    let body = "- [ ] \n- [x] WIP: image-refresh\n- [ ] prune\n";
    let list = checklist::parse(body);
    assert_eq!(tasks(body), vec![task(3, "prune", &[], Todo)]);
    let refused: Vec<_> = list
        .refused
        .iter()
        .map(|r| (r.line, r.text.as_str(), r.range.clone()))
        .collect();
    assert_eq!(
        refused,
        vec![(1, "", Some(2..5)), (2, "WIP: image-refresh", Some(9..12))]
    );
    assert!(list.refused[0].reason.starts_with("empty task item"));
    assert!(list.refused[1].reason.contains("`FAIL:`"));
}

#[test]
fn tasks_at_the_very_end_of_a_body_at_githubs_limit() {
    let body = body_at_the_limit();
    assert_eq!(body.chars().count(), GITHUB_BODY_LIMIT);
    assert!(body.len() > GITHUB_BODY_LIMIT);
    let list = checklist::parse(&body);
    let last_line = body.lines().count();
    assert_eq!(
        tasks(&body),
        vec![
            task(last_line - 1, "image-refresh", &["fedora-41"], Todo),
            task(last_line, "prune", &[], Todo),
        ]
    );
    let prune = &list.tasks[1];
    assert_eq!(prune.marker, body.len() - 9..body.len() - 6);
    // Ticking keeps the size; failing would grow the body past GitHub's limit.
    let done = mark_done(&body, prune).expect("marker is where it was");
    assert_eq!(done.chars().count(), GITHUB_BODY_LIMIT);
    assert_eq!(mark_failed(&body, prune), None);
}

// ---------------------------------------------------------------------------------------
// The bot's edits

/// Asserts `after` equals `before` with `before[range]` replaced by `with`.
fn assert_only_changed(before: &str, after: &str, range: Range<usize>, with: &str) {
    let expected = format!("{}{}{}", &before[..range.start], with, &before[range.end..]);
    assert_eq!(after, expected, "edit touched more than bytes {range:?}");
}

const EDIT_BODY: &str = "## Refresh\r\n\r\nPlease run:\r\n\r\n- [ ] image-refresh fedora-41\r\n  - [ ] FAIL: image-refresh debian\r\n- [x] prune\r\n\r\n```\r\n- [ ] not-a-task\r\n```\r\n";

fn edit_task(verb_args: &str) -> TaskItem {
    checklist::parse(EDIT_BODY)
        .tasks
        .into_iter()
        .find(|t| t.text == verb_args)
        .expect("task in EDIT_BODY")
}

#[test]
fn mark_done_ticks_only_the_marker() {
    let t = edit_task("image-refresh fedora-41");
    let out = mark_done(EDIT_BODY, &t).expect("fresh item");
    assert_only_changed(EDIT_BODY, &out, t.marker.clone(), "[x]");
    assert_eq!(find_again(&out, &t).map(|t| t.state), Some(Done));
    assert_eq!(
        mark_done(&out, &t).as_deref(),
        Some(out.as_str()),
        "idempotent"
    );
}

#[test]
fn mark_done_on_a_failed_task_removes_the_prefix_too() {
    let t = edit_task("image-refresh debian");
    let prefix = t.prefix.clone().expect("FAIL: prefix");
    let out = mark_done(EDIT_BODY, &t).expect("fresh item");
    let expected = format!(
        "{}[x]{}{}",
        &EDIT_BODY[..t.marker.start],
        &EDIT_BODY[t.marker.end..prefix.start],
        &EDIT_BODY[prefix.end..]
    );
    assert_eq!(out, expected);
    assert!(out.contains("  - [x] image-refresh debian\r\n"));
}

#[test]
fn mark_undone_unticks_a_done_task_and_drops_a_failed_ones_prefix() {
    let failed = edit_task("image-refresh debian");
    let out = mark_undone(EDIT_BODY, &failed).expect("fresh item");
    assert!(out.contains("  - [ ] image-refresh debian\r\n"), "{out:?}");
    assert_eq!(find_again(&out, &failed).map(|t| t.state), Some(Todo));
    let done = mark_done(&out, &failed).expect("tick it");
    let again = mark_undone(&done, &failed).expect("untick it");
    assert_eq!(again, out, "only the box changed back");
}

#[test]
fn mark_failed_inserts_the_prefix_and_unticks() {
    let todo = edit_task("image-refresh fedora-41");
    let out = mark_failed(EDIT_BODY, &todo).expect("fresh item");
    let verb_at = todo.marker.end + 1;
    assert_only_changed(EDIT_BODY, &out, verb_at..verb_at, "FAIL: ");
    assert_eq!(
        mark_failed(&out, &todo).as_deref(),
        Some(out.as_str()),
        "idempotent"
    );

    let done = edit_task("prune");
    let out = mark_failed(EDIT_BODY, &done).expect("fresh item");
    assert!(out.contains("\r\n- [ ] FAIL: prune\r\n"), "{out:?}");
    assert_eq!(out.len(), EDIT_BODY.len() + "FAIL: ".len());

    let failed = edit_task("image-refresh debian");
    assert_eq!(mark_failed(EDIT_BODY, &failed).as_deref(), Some(EDIT_BODY));
}

#[test]
fn edits_refuse_a_body_that_changed_at_those_offsets() {
    let t = edit_task("image-refresh fedora-41");
    // A person inserted a line above: the marker moved.
    let edited = EDIT_BODY.replacen("Please run:", "Please run, in order:", 1);
    assert_eq!(mark_done(&edited, &t), None);
    assert_eq!(mark_failed(&edited, &t), None);
    // A person changed the task's arguments in place: same offsets, different task.
    let changed = EDIT_BODY.replacen("fedora-41", "fedora-42", 1);
    assert_eq!(mark_done(&changed, &t), None);
    // The item can be found again and then edited.
    let again = find_again(&edited, &t).expect("still there");
    assert_eq!(again.marker.start, t.marker.start + ", in order".len());
    let out = mark_done(&edited, &again).expect("re-located item");
    assert_only_changed(&edited, &out, again.marker.clone(), "[x]");
    // Gone entirely.
    let removed = EDIT_BODY.replacen("- [ ] image-refresh fedora-41\r\n", "", 1);
    assert_eq!(find_again(&removed, &t), None);
}

#[test]
fn find_again_tells_identical_lines_apart_by_occurrence() {
    let body = "- [x] prune\n- [ ] prune\n";
    let second = checklist::parse(body).tasks[1].clone();
    assert_eq!(second.occurrence, 1);
    let edited = format!("Intro\n\n{body}");
    let again = find_again(&edited, &second).expect("second prune");
    assert_eq!((again.line, again.state), (4, Todo));
}

#[test]
fn mark_functions_never_panic_on_nonsense_offsets() {
    let mut t = edit_task("prune");
    for marker in [
        0..3,
        1..4,
        Range { start: 5, end: 2 },
        usize::MAX - 1..usize::MAX,
        200..203,
    ] {
        t.marker = marker;
        assert_eq!(mark_done(EDIT_BODY, &t), None);
        assert_eq!(mark_failed(EDIT_BODY, &t), None);
    }
    // Inside a multi-byte character.
    let body = "- [ ] é prune\n";
    let mut t = checklist::parse(body).tasks[0].clone();
    t.marker = 7..10;
    assert_eq!(mark_done(body, &t), None);
}

// ---------------------------------------------------------------------------------------
// `tickbot parse` report

#[test]
fn parse_report_json_has_the_documented_shape() {
    let text = "- [ ] image-refresh fedora-41\n- [x] prune\n\n/test fedora-41@bots#12\n/tset\n";
    let json = serde_json::to_value(checklist::report(text)).expect("serializable");
    assert_eq!(
        json,
        serde_json::json!({
            "tasks": [
                {"line": 1, "verb": "image-refresh", "args": ["fedora-41"], "state": "todo", "marker": [2, 5]},
                {"line": 2, "verb": "prune", "args": [], "state": "done", "marker": [32, 35]},
            ],
            "commands": [{"line": 4, "name": "test", "args": ["fedora-41@bots#12"]}],
            "refused": [{"line": 5, "text": "/tset", "reason": "unknown command `/tset`: did you mean /test?"}],
        })
    );
}

// ---------------------------------------------------------------------------------------
// Oracle: GitHub's renderer

/// Compares with cmark-gfm on the tricky bodies and 220 generated ones
/// (`TICKBOT_ORACLE_BODIES=5000` for a longer hunt). Known cmark-gfm quirks kept out of the
/// generator, where tickbot deliberately follows the marker bytes instead: a `[x]` later on
/// the item's line checks the box (`strstr` over the line), and a lazy line such as
/// `      - [ ] x` after a quote inside an item gives the *outer* item a checkbox.
#[test]
fn every_checkbox_github_renders_is_a_task_or_a_refusal() {
    let mut bodies = tricky_bodies();
    let count: u64 = std::env::var("TICKBOT_ORACLE_BODIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(220);
    bodies.extend((0..count).map(generated_body));
    let mut checkboxes = 0;
    let mut disagreements = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let github = cmark_gfm_checkboxes(body);
        checkboxes += github.len();
        let ours = our_checkboxes(body);
        if ours != github {
            disagreements.push(format!(
                "body #{i}: cmark-gfm {github:?}, tickbot {ours:?} (checked flags in order)\n{body:?}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} bodies disagree with cmark-gfm:\n{}",
        disagreements.len(),
        bodies.len(),
        disagreements.join("\n\n")
    );
    // The corpus must actually exercise checkboxes, or the comparison proves nothing.
    assert!(
        checkboxes > 300,
        "only {checkboxes} checkboxes in the corpus"
    );
}

// ---------------------------------------------------------------------------------------
// Robustness

fn exercise_everything(text: &str, stranger: &TaskItem) {
    let list = checklist::parse(text);
    let comment = commands::parse(text);
    let report = checklist::report(text);
    let _ = report.to_string();
    let _ = serde_json::to_string(&report);
    for word in text.split_whitespace() {
        let _ = parse_context(word);
    }
    let _ = parse_context(text);
    let _ = mark_done(text, stranger);
    let _ = mark_failed(text, stranger);
    let _ = find_again(text, stranger);
    let _ = checklist::append_task(text, "prune old");
    for t in &list.tasks {
        assert!(text.get(t.marker.clone()).is_some());
        let _ = mark_failed(text, t);
    }
    for c in &comment.commands {
        assert!(commands::KNOWN.contains(&c.name.as_str()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(parser_support::cases()))]

    #[test]
    fn nothing_panics_on_arbitrary_text(text in any::<String>(), item in arbitrary_item()) {
        exercise_everything(&text, &item);
    }

    #[test]
    fn nothing_panics_on_markdownish_text(text in prop_oneof![markdownish(), taskish()], item in arbitrary_item()) {
        exercise_everything(&text, &item);
    }

    #[test]
    fn mark_done_changes_exactly_the_marker_and_prefix(text in prop_oneof![markdownish(), taskish()]) {
        for t in checklist::parse(&text).tasks {
            let out = mark_done(&text, &t).expect("a task just parsed can be ticked");
            let tick = if t.state == Done { &text[t.marker.clone()] } else { "[x]" };
            let ticked = format!("{}{tick}{}", &text[..t.marker.start], &text[t.marker.end..]);
            match &t.prefix {
                None => prop_assert_eq!(&out, &ticked),
                Some(p) => {
                    let without_prefix = format!(
                        "{}{tick}{}{}",
                        &text[..t.marker.start],
                        &text[t.marker.end..p.start],
                        &text[p.end..]
                    );
                    // The prefix stays only where removing it would change the item.
                    prop_assert!(out == without_prefix || out == ticked, "{:?}", out);
                    if out == ticked {
                        prop_assert!(find_again(&without_prefix, &t).is_none_or(|a| a.marker != t.marker));
                    }
                }
            }
            let again = find_again(&out, &t).map(|a| (a.marker, a.state));
            prop_assert_eq!(again, Some((t.marker.clone(), Done)));
        }
    }

    #[test]
    fn mark_failed_unticks_and_inserts_only_the_prefix(text in prop_oneof![markdownish(), taskish()]) {
        for t in checklist::parse(&text).tasks {
            let Some(out) = mark_failed(&text, &t) else {
                prop_assert!(text.chars().count() + 6 > GITHUB_BODY_LIMIT);
                continue;
            };
            let expected = if t.prefix.is_some() {
                format!("{}[ ]{}", &text[..t.marker.start], &text[t.marker.end..])
            } else {
                let verb_at = t.marker.end + text[t.marker.end..].len()
                    - text[t.marker.end..]
                        .trim_start_matches([' ', '\t', '\u{b}', '\u{c}'])
                        .len();
                format!(
                    "{}[ ]{}FAIL: {}",
                    &text[..t.marker.start],
                    &text[t.marker.end..verb_at],
                    &text[verb_at..]
                )
            };
            prop_assert_eq!(&out, &expected);
            let again = find_again(&out, &t).map(|a| (a.state, a.verb, a.args));
            prop_assert_eq!(again, Some((Failed, t.verb.clone(), t.args.clone())));
        }
    }
}
