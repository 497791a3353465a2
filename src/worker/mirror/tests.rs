use super::*;

#[test]
fn auth_is_never_printed() {
    let auth = GitAuth::token("secret-token");
    assert_eq!(format!("{auth:?}"), "GitAuth(<redacted>)");
    let git = Git::new().arg("fetch").auth(Some(&auth));
    assert!(!format!("{git:?}").contains("c2VjcmV0"));
}

#[test]
fn urls_lose_their_credentials() {
    assert_eq!(
        redact_url("https://x-access-token:abc@github.com/o/r.git"),
        "https://***@github.com/o/r.git"
    );
    assert_eq!(redact_url("http://h/o/r.git"), "http://h/o/r.git");
    assert_eq!(redact_url("--upload-pack=x"), "--upload-pack=x");
}

#[test]
fn only_hex_ids_reach_git() {
    assert!(check_sha(&CommitSha("a".repeat(40))).is_ok());
    for bad in ["--upload-pack=touch /tmp/x", "abc", &"g".repeat(40)] {
        assert!(check_sha(&CommitSha(bad.to_string())).is_err(), "{bad}");
    }
    assert!(check_branch("feature/x").is_ok());
    for bad in ["", "-x", "a:b", "a..b", "a b"] {
        assert!(check_branch(bad).is_err(), "{bad}");
    }
    assert!(check_url("-oProxyCommand=x").is_err());
}

#[test]
fn trailer_lines_are_matched_whole() {
    let log = "aaa\tj12\nbbb\t\nccc\tj1\tother\n";
    assert_eq!(find_trailer(log, "j1"), Some(CommitSha("ccc".into())));
    assert_eq!(find_trailer(log, "j"), None);
}
