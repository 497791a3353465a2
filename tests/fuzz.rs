//! Fuzz targets for the parsers that read what anyone can send: `.tickbot.toml` from any PR's
//! head and webhook payloads (after their signature, but GitHub's
//! shapes change). Each target must never panic; the grammar crate has the same for checkbox
//! and comment text (`crates/syntax/tests/parser.rs`, `commands.rs`).
//!
//! A short run (proptest's default, 256 cases) is part of the test suite; `scripts/reliability`
//! runs millions of inputs with proptest's `PROPTEST_CASES` (docs/reliability.md).

use proptest::prelude::*;
use tickbot::repo_config::RepoConfig;

/// Pieces `.tickbot.toml` files are made of, so generated files get past the TOML syntax and
/// into tickbot's own checks.
fn config_piece() -> impl Strategy<Value = String> {
    let name = "[a-z0-9][a-z0-9_-]{0,6}|tickbot|X|-a|";
    let value = prop_oneof![
        Just("\"x\"".to_string()),
        Just("[\"./run\", \"{args}\"]".to_string()),
        Just("[]".to_string()),
        Just("true".to_string()),
        Just("12".to_string()),
        Just("-1".to_string()),
        "\"[^\"\\\\\\n]{0,12}\"".prop_map(|s| s),
        Just("\"1h\"".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"99999999999d\"".to_string()),
        Just("\"(\"".to_string()),
        Just("\"\\\\w{300}\"".to_string()),
        Just("\"0 22 * * *\"".to_string()),
        Just("\"../x\"".to_string()),
        Just("{ S3 = \"KEY\" }".to_string()),
        Just("[\"a/b/c\", \"{item}\"]".to_string()),
    ];
    let key = prop_oneof![
        Just("command"),
        Just("args"),
        Just("image"),
        Just("build"),
        Just("timeout"),
        Just("commit"),
        Just("message"),
        Just("pool"),
        Just("priority"),
        Just("secrets"),
        Just("network"),
        Just("default"),
        Just("branches"),
        Just("paths"),
        Just("repo"),
        Just("path"),
        Just("context"),
        Just("repository"),
        Just("publish"),
        Just("consumers"),
        Just("task"),
        Just("items"),
        Just("every"),
        Just("inputs"),
        Just("window"),
        Just("tests"),
        Just("automerge"),
        Just("env"),
        Just("users"),
    ];
    let table = prop_oneof![
        Just("tasks"),
        Just("tests"),
        Just("deps"),
        Just("secrets"),
        Just("images"),
        Just("trust"),
    ];
    prop_oneof![
        (table, name).prop_map(|(t, n)| format!("\n[{t}.{n}]\n")),
        Just("\n[[schedule]]\n".to_string()),
        Just("\n[trust]\n".to_string()),
        (key, value).prop_map(|(k, v)| format!("{k} = {v}\n")),
        "[^\\n]{0,16}\n",
    ]
}

fn config_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(config_piece(), 0..24).prop_map(|pieces| pieces.concat())
}

/// A real payload of each event, cut or with bytes replaced: what a changed or broken
/// payload may look like.
fn payload() -> impl Strategy<Value = (String, Vec<u8>)> {
    let fixtures: Vec<(&str, &[u8])> = vec![
        (
            "pull_request",
            include_bytes!("fixtures/github-webhooks/pull_request/opened.payload.json"),
        ),
        (
            "pull_request",
            include_bytes!("fixtures/github-webhooks/pull_request/synchronize.payload.json"),
        ),
        (
            "issue_comment",
            include_bytes!("fixtures/github-webhooks/issue_comment/created.payload.json"),
        ),
        (
            "check_run",
            include_bytes!("fixtures/github-webhooks/check_run/requested_action.payload.json"),
        ),
    ];
    let n = fixtures.len();
    (
        0..n,
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        proptest::option::of(any::<usize>()),
    )
        .prop_map(move |(which, changes, cut)| {
            let (event, bytes) = fixtures[which];
            let mut bytes = bytes.to_vec();
            for (at, byte) in changes {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            (event.to_string(), bytes)
        })
}

proptest! {
    #[test]
    fn repository_configurations_never_panic(text in prop_oneof![config_text(), any::<String>()]) {
        if let Ok(config) = RepoConfig::parse(&text) {
            for task in config.tasks.values() {
                if let Some(args) = &task.args {
                    let _ = args.is_match(&text);
                }
            }
            let _ = config.retained_bytes(text.len());
        }
    }

    #[test]
    fn webhook_payloads_never_panic(
        (event, bytes) in prop_oneof![
            payload(),
            (
                prop_oneof![
                    Just("pull_request".to_string()),
                    Just("issue_comment".to_string()),
                    Just("check_run".to_string()),
                    "[a-z_]{0,12}",
                ],
                any::<Vec<u8>>()
            ),
        ]
    ) {
        let _ = tickbot::event::parse(&event, &bytes);
        let _ = tickbot::event::envelope("d", &event, &bytes);
    }
}
