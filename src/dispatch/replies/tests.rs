//! Every text tickbot writes in PR comments, asserted whole.

use super::*;

#[test]
fn markers_are_found_again_in_posted_comments() {
    let body = format!("{}\nsome text {}", marker("a:1"), marker("b"));
    assert_eq!(markers_in(&body), vec![marker("a:1"), marker("b")]);
    assert!(markers_in("<!-- tickbot:unterminated").is_empty());
}

#[test]
fn each_refusal_is_counted_under_its_kind() {
    let refused = Refusal::from(CommandRefusal::NotTrusted {
        command: "test".into(),
        reason: "mallory (read) is not trusted".into(),
    });
    let notes = [
        Note::Help,
        refused.into(),
        Refusal::from(TestRefusal::NoTestContexts).into(),
    ];
    let reply = Comment::Reply {
        to: "mallory",
        key: "reply:1".into(),
        notes: &notes,
    };
    assert_eq!(reply.refusal_reasons(), ["NotTrusted", "NoTestContexts"]);
    let gone = Comment::HeadRepoGone { head: &sha() };
    assert_eq!(gone.refusal_reasons(), ["HeadRepoGone"]);
}

fn sha() -> CommitSha {
    CommitSha("0123456789abcdef0123456789abcdef01234567".into())
}

fn repo(name: &str) -> RepoName {
    name.parse().expect("valid")
}

fn command_refusals() -> Vec<Refusal> {
    use CommandRefusal::*;
    let reason = || "@mallory is not a collaborator".to_string();
    [
        BadCommandLine {
            line: 3,
            reason: "unknown command `/tset`: did you mean `/test`?".into(),
        },
        NotTrusted {
            command: "test".into(),
            reason: reason(),
        },
        CommandOnClosedPr {
            command: "retest".into(),
        },
        NothingToCancel {
            contexts: vec!["unit".into()],
            head: sha(),
        },
        TaskDoesNotFit {
            text: "lint".into(),
        },
        DescriptionKeptChanging {
            text: "lint".into(),
        },
        ButtonNotTrusted {
            context: "unit".into(),
            reason: reason(),
        },
        NothingToRerun {
            context: "lint".into(),
        },
        DebugNotATest {
            context: "image-refresh fedora-41".into(),
        },
        CannotRerun {
            context: "a b".into(),
            error: "bad context `a b`".into(),
        },
        RollbackNotLanded,
        RollbackNoImage {
            asked: None,
            images: vec!["tasks".into()],
        },
        RollbackNoImage {
            asked: Some("ci".into()),
            images: vec![],
        },
        RollbackFailed {
            image: "tasks".into(),
            reason: "tasks is at tree 0123456789ab already".into(),
        },
    ]
    .into_iter()
    .map(Refusal::from)
    .collect()
}

fn test_refusals() -> Vec<Refusal> {
    use TestRefusal::*;
    let context = |c: &str| c.to_string();
    [
        TestOnClosedPr,
        NoConfig { head: sha() },
        InvalidConfig { head: sha() },
        NoTestContexts,
        NoneApplies {
            skipped: vec![Skipped {
                context: "docs".into(),
                reason: "no changed file matches `paths` (docs/**)".into(),
            }],
        },
        NothingToRetest { head: sha() },
        NotATestContext {
            context: context("image-refresh/a"),
        },
        AlreadyActive {
            context: context("unit"),
        },
        NoWorkers {
            context: context("big"),
            pool: "large".into(),
            pools: vec!["default".into(), "arm".into()],
        },
        UnknownContext {
            context: context("unt"),
            suggestion: Some("unit".into()),
            known: vec!["lint".into(), "unit".into()],
        },
        HeadRepoGone,
    ]
    .into_iter()
    .map(Refusal::from)
    .collect()
}

fn dependency_refusals() -> Vec<Refusal> {
    use DependencyRefusal::*;
    let context = || "unit@bots#9".to_string();
    [
        UnknownDependency {
            context: context(),
            dep: "bots".into(),
            known: vec![],
        },
        BadDependencyRepo {
            dep: "bots".into(),
            repo: "bots".into(),
        },
        NoSuchPr {
            context: context(),
            repo: repo("acme/bots"),
            number: 9,
        },
        DependencyBranchGone {
            context: context(),
            repo: repo("acme/bots"),
            number: 9,
        },
    ]
    .into_iter()
    .map(Refusal::from)
    .collect()
}

fn project_refusals() -> Vec<Refusal> {
    use ProjectRefusal::*;
    let (context, app) = (|| "unit@acme/app/main".to_string(), || repo("acme/app"));
    let branch = || "main".to_string();
    [
        BadProject {
            context: context(),
            project: "acme".into(),
        },
        ProjectNotVisible {
            context: context(),
            repo: app(),
        },
        NoBranch {
            context: context(),
            repo: app(),
            branch: branch(),
        },
        ProjectWithoutConfig {
            context: context(),
            repo: app(),
            branch: branch(),
        },
        ProjectConfigInvalid {
            context: context(),
            repo: app(),
            branch: branch(),
            error: "line 2, column 1: expected `=`".into(),
        },
        UnknownProjectContext {
            context: context(),
            name: "unit".into(),
            repo: app(),
            suggestion: None,
            known: vec![],
        },
        ProjectWithoutDep {
            context: context(),
            repo: app(),
            branch: branch(),
            this: repo("acme/lib"),
        },
    ]
    .into_iter()
    .map(Refusal::from)
    .collect()
}

/// Every refusal, as a person reads it in a reply.
#[test]
fn every_refusal_as_written() {
    let refusals = [
        command_refusals(),
        test_refusals(),
        dependency_refusals(),
        project_refusals(),
    ];
    let notes: Vec<Note> = refusals.into_iter().flatten().map(Note::from).collect();
    let reply = Comment::Reply {
        to: "alice",
        key: "reply:1".into(),
        notes: &notes,
    };
    insta::assert_snapshot!(reply.text());
}

#[test]
fn help_as_written() {
    let reply = Comment::Reply {
        to: "alice",
        key: "reply:1".into(),
        notes: &[Note::Help],
    };
    insta::assert_snapshot!(reply.text());
}

#[test]
fn a_rollback_as_written() {
    let reply = Comment::Reply {
        to: "alice",
        key: "reply:1".into(),
        notes: &[Note::RolledBack {
            image: "tasks".into(),
            pr: crate::ids::PrNumber(14),
            tree: "0123456789abcdef0123456789abcdef01234567".into(),
        }],
    };
    insta::assert_snapshot!(reply.text());
}

#[test]
fn stand_alone_comments_as_written() {
    let item = RefusedItem {
        line: 4,
        text: "image-refrsh fedora-41".into(),
        reason: ItemRefusal::UnknownTask {
            verb: "image-refrsh".into(),
            suggestion: Some("image-refresh".into()),
            known: vec!["image-refresh".into()],
        },
    };
    let error =
        crate::repo_config::RepoConfig::parse("[tasks.lint]\ncommand = 5\n").expect_err("invalid");
    let head = sha();
    let comments = [
        Comment::ItemRefused {
            item: &item,
            head: &head,
        },
        Comment::BadConfig {
            head: &head,
            error: &error,
        },
        Comment::Untrusted {
            reason: "@mallory is not a collaborator of acme/app",
            head: &head,
            tasks: "(tasks 00)",
        },
        Comment::HeadRepoGone { head: &head },
    ];
    let shown: Vec<String> = comments
        .iter()
        .map(|c| format!("[{}]\n{}", c.key(), c.text()))
        .collect();
    insta::assert_snapshot!(shown.join("\n\n"));
}

/// Why a checkbox item cannot run, each as the comment's reason reads.
#[test]
fn every_item_refusal_as_written() {
    let refusals = [
        ItemRefusal::Unreadable(
            "empty task item: write the task after the checkbox, e.g. `- [ ] <verb> <args>`".into(),
        ),
        ItemRefusal::UnknownTask {
            verb: "lnt".into(),
            suggestion: Some("lint".into()),
            known: vec!["image-refresh".into(), "lint".into()],
        },
        ItemRefusal::UnknownTask {
            verb: "lint".into(),
            suggestion: None,
            known: vec![],
        },
        ItemRefusal::SlashInArgument { arg: "a/b".into() },
        ItemRefusal::ArgumentMismatch {
            arg: "Bad_Name".into(),
            verb: "image-refresh".into(),
            pattern: "^[a-z0-9][a-z0-9.-]*$".into(),
        },
        ItemRefusal::NoWorkers {
            verb: "big".into(),
            pool: "large".into(),
            pools: vec!["default".into()],
        },
    ];
    let shown: Vec<String> = refusals.iter().map(|r| format!("* {r}")).collect();
    insta::assert_snapshot!(shown.join("\n"));
}
