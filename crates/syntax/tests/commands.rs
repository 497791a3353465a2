//! The comment command grammar as a user meets it: which lines are commands, their
//! arguments, what is refused and why, and Cockpit's context grammar (`ctx@bots#123`).

use proptest::prelude::*;
use tickbot_syntax::commands::{self, ContextError, ContextSpec, parse_context};

// ---------------------------------------------------------------------------------------
// Comment commands

fn commands_of(comment: &str) -> Vec<(usize, String, Vec<String>)> {
    commands::parse(comment)
        .commands
        .into_iter()
        .map(|c| (c.line, c.name, c.args))
        .collect()
}

fn cmd(line: usize, name: &str, args: &[&str]) -> (usize, String, Vec<String>) {
    (
        line,
        name.to_owned(),
        args.iter().map(|a| a.to_string()).collect(),
    )
}

#[test]
fn several_commands_in_one_comment_one_per_line() {
    let comment = "Thanks!\n/ok-to-test\n/test fedora-41 debian/devel@bots#7\r\n  /cancel\n\n/task image-refresh fedora-41\n/help\n/explain\n/retest";
    assert_eq!(
        commands_of(comment),
        vec![
            cmd(2, "ok-to-test", &[]),
            cmd(3, "test", &["fedora-41", "debian/devel@bots#7"]),
            cmd(4, "cancel", &[]),
            cmd(6, "task", &["image-refresh", "fedora-41"]),
            cmd(7, "help", &[]),
            cmd(8, "explain", &[]),
            cmd(9, "retest", &[]),
        ]
    );
    assert!(commands::parse(comment).refused.is_empty());
}

#[test]
fn an_unknown_command_gets_a_did_you_mean() {
    let parsed = commands::parse("/tset fedora-41\n/test debian\n/deploy now\n");
    assert_eq!(
        commands_of("/tset fedora-41\n/test debian\n"),
        vec![cmd(2, "test", &["debian"])]
    );
    let refused: Vec<_> = parsed
        .refused
        .iter()
        .map(|r| (r.line, r.text.as_str(), r.reason.as_str(), r.range.clone()))
        .collect();
    assert_eq!(
        refused,
        vec![
            (
                1,
                "/tset fedora-41",
                "unknown command `/tset`: did you mean /test?",
                Some(0..5)
            ),
            (
                3,
                "/deploy now",
                "unknown command `/deploy`; known commands: /test, /retest, /ok-to-test, /cancel, /debug, /task, /rollback, /explain, /help",
                Some(29..36)
            ),
        ]
    );
}

#[test]
fn commands_shown_in_code_or_quotes_do_not_run() {
    let comment = "```\n/test fedora\n```\n\n    /retest\n\n`/test inline`\n\n> /ok-to-test\n> /tset\n\n<!--\n/cancel\n-->\n\n- /test in-list-item\n\n\\/test escaped\n";
    let parsed = commands::parse(comment);
    assert_eq!(parsed.commands, vec![]);
    assert_eq!(parsed.refused, vec![]);
}

#[test]
fn paths_and_slashes_in_prose_are_not_commands() {
    let comment = "The binary in /usr/bin is stale.\n/usr/bin/tickbot crashed\n/ 2\n/1\n// comment\nsee /test later";
    let parsed = commands::parse(comment);
    assert_eq!(parsed.commands, vec![]);
    assert_eq!(parsed.refused, vec![]);
}

#[test]
fn command_arguments_are_checked_with_a_reason() {
    let parsed = commands::parse("/test fedora-41@\n/retest fedora\n/task\n/cancel a/b/c\n");
    let reasons: Vec<_> = parsed
        .refused
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                1,
                "`/test`: bad context `fedora-41@`: `@` must be followed by `name#N` or `owner/repo[/branch]`"
            ),
            (
                2,
                "`/retest` takes no arguments (it reruns failed contexts); to run particular contexts use `/test <context…>`"
            ),
            (
                3,
                "`/task` needs a task: `/task <verb> <args…>`, e.g. `/task image-refresh fedora-41`"
            ),
            (
                4,
                "`/cancel`: bad context `a/b/c`: expected `image[/scenario]` made of letters, digits, `.`, `_` and `-`"
            ),
        ]
    );
}

#[test]
fn cockpit_context_grammar() {
    let spec = |context: &str, dep: Option<(&str, u64)>, project: Option<(&str, Option<&str>)>| {
        ContextSpec {
            context: context.to_owned(),
            dep_pr: dep.map(|(d, n)| (d.to_owned(), n)),
            project: project.map(|(p, b)| (p.to_owned(), b.map(str::to_owned))),
        }
    };
    assert_eq!(
        parse_context("fedora-41"),
        Ok(spec("fedora-41", None, None))
    );
    assert_eq!(
        parse_context("fedora-41/devel@bots#123"),
        Ok(spec("fedora-41/devel", Some(("bots", 123)), None))
    );
    assert_eq!(
        parse_context("fedora-41@cockpit-project/cockpit/rhel-8"),
        Ok(spec(
            "fedora-41",
            None,
            Some(("cockpit-project/cockpit", Some("rhel-8")))
        ))
    );
    assert_eq!(
        parse_context("rhel-9.4/other@bots#9@cockpit-project/cockpit-podman"),
        Ok(spec(
            "rhel-9.4/other",
            Some(("bots", 9)),
            Some(("cockpit-project/cockpit-podman", None))
        ))
    );
    assert_eq!(
        parse_context("c@o/r/feature/x").map(|s| s.project),
        Ok(Some(("o/r".to_owned(), Some("feature/x".to_owned()))))
    );
}

#[test]
fn context_errors_say_what_is_wrong() {
    let message = |s: &str| parse_context(s).map_err(|e| e.to_string()).unwrap_err();
    assert_eq!(parse_context(""), Err(ContextError::Empty));
    assert_eq!(
        message("fedora@bots#abc"),
        "bad context `fedora@bots#abc`: in `@bots#abc`, `#` must be followed by a pull request number"
    );
    assert_eq!(
        message("fedora@bots#0"),
        "bad context `fedora@bots#0`: in `@bots#0`, `#` must be followed by a pull request number"
    );
    assert_eq!(
        message("fedora@cockpit"),
        "bad context `fedora@cockpit`: `@cockpit` is not `owner/repo[/branch]` or `name#N`"
    );
    assert_eq!(
        message("a@b#1@c#2"),
        "bad context `a@b#1@c#2`: only one `@name#N` is allowed"
    );
    assert_eq!(
        message("/devel"),
        "bad context `/devel`: expected `image[/scenario]` made of letters, digits, `.`, `_` and `-`"
    );
    assert_eq!(
        message("a@o/r/b..c"),
        "bad context `a@o/r/b..c`: `@o/r/b..c` is not `owner/repo[/branch]` or `name#N`"
    );
    assert_eq!(
        message("a@o/r/"),
        "bad context `a@o/r/`: `@o/r/` is not `owner/repo[/branch]` or `name#N`"
    );
}

fn context_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,8}(/[a-z0-9][a-z0-9._-]{0,6})?"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Every context in Cockpit's grammar reads back as what it was built from, and prints
    /// as the text it was read from (the status context is that text).
    #[test]
    fn contexts_round_trip(
        context in context_name(),
        dep in proptest::option::of(("[a-z][a-z0-9-]{0,6}", 1u64..100_000)),
        project in proptest::option::of((
            "[a-z][a-z0-9-]{0,6}/[a-z][a-z0-9._-]{0,6}",
            proptest::option::of("[a-z][a-z0-9-]{0,5}(/[a-z][a-z0-9-]{0,5})?"),
        )),
    ) {
        let spec = ContextSpec { context, dep_pr: dep, project };
        let text = spec.to_string();
        prop_assert_eq!(parse_context(&text), Ok(spec));
    }

    /// Any text is a context or an error that names it; never a panic.
    #[test]
    fn any_text_is_a_context_or_a_reason(text in "[a-z0-9@#/._-]{0,24}|\\PC{0,24}") {
        match parse_context(&text) {
            Ok(spec) => prop_assert_eq!(spec.to_string(), text),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(
                    (text.is_empty() && message == "empty context") || message.starts_with("bad context `"),
                    "{}", message
                );
            }
        }
    }
}
