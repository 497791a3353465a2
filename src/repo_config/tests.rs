use super::*;

const EXAMPLE: &str = r#"
[tasks.image-refresh]
command = ["./image-refresh", "{args}"]
args = "^[a-z0-9][a-z0-9.-]*$"
image = "localhost/tasks:latest"
timeout = "2h"
commit = true
message = "images: Update {args} image"
priority = 9
secrets = ["image-upload"]

[tests.unit-tests]
command = ["make", "check"]
default = true
branches = ["main"]

[deps.bots]
repo = "cockpit-project/bots"
path = "bots"

[trust]
users = ["alice"]

[secrets.image-upload]
env = { S3_KEY = "IMAGE_UPLOAD_KEY" }

[[schedule]]
task = "image-refresh"
items = ["fedora-41"]
every = "7d"
window = "0 22 * * 0"
"#;

#[test]
fn the_design_example_parses() {
    let c = RepoConfig::parse(EXAMPLE).expect("valid");
    let t = &c.tasks["image-refresh"];
    assert_eq!(t.timeout, Duration::from_secs(7200));
    assert_eq!(t.priority, 9);
    assert!(t.args.as_ref().is_some_and(|r| r.is_match("fedora-41")));
    assert_eq!(c.tests["unit-tests"].image, DEFAULT_IMAGE);
    assert_eq!(c.trust.users, vec!["alice".to_string()]);
    assert!(c.trust.collaborators);
    assert_eq!(c.verbs(), vec!["image-refresh"]);
}

#[test]
fn argument_patterns_match_whole_arguments() {
    let c = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\nargs = \"[a-z]+\"\n").expect("valid");
    let p = c.tasks["x"].args.as_ref().expect("pattern");
    assert!(p.is_match("fedora"));
    assert!(
        !p.is_match("fedora-41; rm"),
        "a partial match is not enough"
    );
    assert_eq!(p.as_str(), "[a-z]+");
    let e = RepoConfig::parse("[tasks.tickbot]\ncommand = [\"a\"]\n").expect_err("reserved");
    assert!(e.message.contains("reserved"), "{e}");
}

#[test]
fn errors_carry_line_and_column() {
    let e = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\nargs = \"(\"\n").expect_err("bad");
    assert_eq!((e.line, e.column), (Some(3), Some(8)));
    assert!(
        e.to_string()
            .starts_with("line 3, column 8: tasks.x.args is not a valid regular expression"),
        "{e}"
    );

    let e =
        RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\ntimeout = \"soon\"\n").expect_err("bad");
    assert_eq!(e.line, Some(3));

    let e = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\ncomit = true\n").expect_err("typo");
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("comit"), "{e}");

    let e = RepoConfig::parse("[tasks.x]\ncommand = []\n").expect_err("empty");
    assert_eq!(e.line, Some(2));

    let e = RepoConfig::parse("[tasks.X]\ncommand = [\"a\"]\n").expect_err("caps");
    assert!(e.message.contains("task name 'X'"), "{e}");

    let e = RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\npriority = 12\n").expect_err("prio");
    assert!(e.message.contains("0 to 9"), "{e}");
}

#[test]
fn durations_are_written_as_people_write_them() {
    for (text, secs) in [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("7d", 604_800),
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("2 hours", 7200),
        (" 45min ", 2700),
    ] {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_secs(secs)),
            "{text:?}"
        );
    }
    for bad in ["", "5", "h", "1x", "-1s", "soon", "0s", "0h 0m", "500ms"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_duration("0s"),
        Err(r#"'0s' is zero: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#.into())
    );
    assert_eq!(
        parse_duration("500ms"),
        Err(
            r#"'500ms' is under a second: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#
                .into()
        )
    );
    for (secs, text) in [(7200, "2h"), (5400, "90m"), (604_800, "7d"), (90, "90s")] {
        assert_eq!(format_duration(Duration::from_secs(secs)), text);
        assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)));
    }
}

#[test]
fn a_bad_timeout_is_refused_where_it_is_written() {
    let e =
        RepoConfig::parse("[tasks.x]\ncommand = [\"a\"]\ntimeout = \"soon\"\n").expect_err("bad");
    assert_eq!(
        e.to_string(),
        r#"line 3, column 11: tasks.x.timeout 'soon' is not a duration: use e.g. "90s", "30m", "2h", "1h30m""#
    );
    let e =
        RepoConfig::parse("[tests.unit]\ncommand = [\"a\"]\ntimeout = \"0s\"\n").expect_err("zero");
    assert_eq!(
        e.to_string(),
        r#"line 3, column 11: tests.unit.timeout '0s' is zero: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#
    );
}

#[test]
fn build_is_refused_with_the_way_to_define_an_image() {
    let e = RepoConfig::parse(
        "[tasks.image-refresh]\ncommand = [\"./refresh\"]\nbuild = \"containers/tasks\"\n",
    )
    .expect_err("build in a task");
    assert_eq!(
        e.to_string(),
        "line 3, column 9: tasks.image-refresh.build is not a key: define the image as \
         [images.NAME] with context = \"<directory>\" and use image = \"NAME\""
    );

    let e = RepoConfig::parse(
        "[tests.unit-tests]\ncommand = [\"make\", \"check\"]\nimage = \"quay.io/x/y\"\nbuild = \".\"\n",
    )
    .expect_err("build in a test");
    assert_eq!(
        e.to_string(),
        "line 4, column 9: tests.unit-tests.build is not a key: define the image as \
         [images.NAME] with context = \"<directory>\" and use image = \"NAME\""
    );
}

/// The error for `text`, as `check-config` prints it after the file name.
fn refusal(text: &str) -> String {
    RepoConfig::parse(text).expect_err(text).to_string()
}

#[test]
fn values_that_could_only_fail_later_are_refused_where_they_are_written() {
    assert_eq!(
        refusal("[tasks.x]\ncommand = [\"a\"]\nimage = \"--privileged\"\n"),
        "line 3, column 9: tasks.x.image: '--privileged' is neither an [images.*] name nor a \
         full reference like \"registry.example.org/acme/tasks:latest\" (there is no [images.*] \
         table)"
    );
    assert_eq!(
        refusal("[tests.unit]\ncommand = [\"a\"]\npool = \"../gpu\"\n"),
        "line 3, column 8: tests.unit.pool '../gpu' is not a pool name: use letters, digits, \
         '-', '_' or '.', starting with a letter or digit"
    );
    assert_eq!(
        refusal("[tasks.x]\ncommand = [\"a\"]\npool = \"gpu/large\"\n"),
        "line 3, column 8: tasks.x.pool 'gpu/large' is not a pool name: use letters, digits, \
         '-', '_' or '.', starting with a letter or digit"
    );
    for path in ["../bots", "/etc", "bots/../../x", ""] {
        assert_eq!(
            refusal(&format!(
                "[deps.bots]\nrepo = \"cockpit-project/bots\"\npath = \"{path}\"\n"
            )),
            format!(
                "line 3, column 8: deps.bots.path '{path}' must be a relative path inside the \
                 job's tree, without '..', e.g. \"bots\""
            )
        );
    }
    let limits = Limits {
        max_timeout: Duration::from_secs(3 * 3600),
    };
    assert_eq!(
        RepoConfig::parse_within(
            "[tests.unit]\ncommand = [\"a\"]\ntimeout = \"4h\"\n",
            &limits
        )
        .expect_err("over the maximum")
        .to_string(),
        "line 3, column 11: tests.unit.timeout '4h' is over this server's maximum of 3h \
         ([dispatch] max_timeout)"
    );
    let c = RepoConfig::parse_within(
        "[tests.unit]\ncommand = [\"a\"]\ntimeout = \"3h\"\npool = \"large.x86_64\"\n",
        &limits,
    )
    .expect("within");
    assert_eq!(c.tests["unit"].pool, "large.x86_64");
}

#[test]
fn a_hostile_file_costs_a_refusal_not_the_dispatcher() {
    // The probe's file: `\w` is ASCII here, so 50 of these cost little and are accepted.
    let mut patterns = String::new();
    for i in 0..50 {
        patterns.push_str(&format!(
            "[tasks.t{i}]\ncommand = [\"a\"]\nargs = \"\\\\w{{200}}\"\n"
        ));
    }
    let c = RepoConfig::parse(&patterns).expect("small patterns");
    let p = c.tasks["t0"].args.as_ref().expect("pattern");
    assert!(p.is_match(&"a".repeat(200)));
    assert!(!p.is_match(&"é".repeat(200)), "\\w is ASCII");
    assert_eq!(
        refusal("[tasks.t]\ncommand = [\"a\"]\nargs = \"(?:\\\\w{100}){100}\"\n"),
        "line 3, column 8: tasks.t.args is too large a pattern (over 32 KiB compiled): write a \
         simpler one, with fewer or shorter repetitions"
    );
    let mut many = String::new();
    for i in 0..=MAX_TASKS {
        many.push_str(&format!("[tasks.t{i:04}]\ncommand = [\"a\"]\n"));
    }
    assert_eq!(
        refusal(&many),
        format!(
            "line {}, column 8: more than 128 [tasks.*] entries: tickbot reads at most 128",
            MAX_TASKS * 2 + 1
        )
    );
}
