//! The scheduler as a person runs it: `tickbot schedule --dry-run` against the local forge, whose
//! default branch holds the history the decisions come from (reference §12).

mod common;

use std::process::Command;
use tickbot::forge::{Forge, ForgeOptions};
use tickbot::ids::RepoName;

const TICKBOT_TOML: &str = r#"
[tasks.image-refresh]
command = ["./refresh", "{args}"]
message = "images: Update {args} image"

[images.tasks]
context = "containers/tasks"
repository = "127.0.0.1:5000/acme/tasks"

[[schedule]]
task = "image-refresh"
items = ["fedora-41", "centos-9", "debian"]
every = "7d"
inputs = ["images/scripts/{item}.setup"]

[[schedule]]
image = "tasks"
every = "30d"
"#;

fn dry_run(forge: &Forge, state: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tickbot"))
        .args([
            "--config",
            "/nonexistent/tickbot.toml",
            "schedule",
            "--dry-run",
        ])
        .args(["--repo", "acme/images"])
        .env("TICKBOT__GITHUB__API_URL", forge.api_url())
        .env("TICKBOT__GITHUB__TOKEN", forge.bot_token())
        .env("TICKBOT__STATE__DIR", state)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tickbot schedule");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let shown = format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").expect("valid");
    common::redact(&time.replace_all(&shown, "<time>"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_says_what_is_due_and_why_from_the_default_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let forge = Forge::start(ForgeOptions::local(dir.path().join("forge")))
        .await
        .expect("forge starts");
    let repo: RepoName = "acme/images".parse().expect("valid");
    let files = [
        (".tickbot.toml", TICKBOT_TOML),
        ("containers/tasks/Containerfile", "FROM scratch\n"),
        ("images/scripts/debian.setup", "v1\n"),
    ];
    forge
        .create_repo(&repo, "main", &files)
        .await
        .expect("repo");
    let commit = |files: Vec<(&'static str, &'static str)>, message: &'static str| {
        let forge = forge.clone();
        let repo = repo.clone();
        async move {
            forge
                .commit_files(&repo, "main", None, &files, message, "alice")
                .await
                .expect("commit")
        }
    };
    // centos-9 was refreshed just now; debian too, but one of its inputs changed since;
    // fedora-41 never was; the image's stamp was changed just now.
    commit(
        vec![("images/centos-9.qcow2", "1\n")],
        "images: Update centos-9 image",
    )
    .await;
    commit(
        vec![("images/debian.qcow2", "1\n")],
        "images: Update debian image",
    )
    .await;
    commit(
        vec![("images/scripts/debian.setup", "v2\n")],
        "Install one more package",
    )
    .await;
    commit(
        vec![("containers/tasks/.tickbot-refresh", "now\n")],
        "images: Refresh tasks",
    )
    .await;

    let state = dir.path().join("state");
    insta::assert_snapshot!("dry_run", dry_run(&forge, &state));
}
