//! The `tickbot` command as a user runs it: `parse`, `check-config`, and start-up refusing a
//! bad configuration with the key and the reason (exit code 2).

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tickbot(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickbot"));
    // Not the repository, whose own `.tickbot.toml` a bare `check-config` would pick up.
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run tickbot");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("stdin");
    }
    child.wait_with_output().expect("tickbot exits")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a person sees of a run: exit code, standard output and standard error, with the
/// temporary directory's path replaced.
fn shown(out: &Output, dir: &std::path::Path) -> String {
    let dir = dir.to_str().expect("utf-8");
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout).replace(dir, "<dir>"),
        text(&out.stderr).replace(dir, "<dir>")
    )
}

const BODY: &str = "Intro\r\n\r\n- [ ] image-refresh fedora-41\r\n* [X] lint\r\n- [ ] FAIL: image-refresh centos-9\r\n- [ ] \r\n\r\n```\r\n- [ ] not-a-task\r\n```\r\n/test unit\r\n";

#[test]
fn parse_json_reports_tasks_commands_and_refusals_with_byte_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("body.md");
    std::fs::write(&path, BODY).expect("write");
    let out = tickbot(
        &["parse", "--json", path.to_str().expect("utf-8")],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // The byte range of the first box, checked against the body itself.
    let first_marker = BODY.find("[ ] image-refresh fedora-41").expect("in body");
    assert_eq!(
        v["tasks"][0]["marker"],
        serde_json::json!([first_marker, first_marker + 3])
    );
    insta::assert_snapshot!(serde_json::to_string_pretty(&v).expect("JSON"));
}

#[test]
fn parse_reads_standard_input_and_prints_a_readable_report() {
    let out = tickbot(&["parse", "-"], &[], Some(BODY));
    insta::assert_snapshot!(shown(&out, std::path::Path::new("/nonexistent")));
}

#[test]
fn check_config_accepts_a_good_file_and_points_at_the_error_in_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".tickbot.toml");
    let check = || tickbot(&["check-config", path.to_str().expect("utf-8")], &[], None);
    std::fs::write(&path, "[tasks.lint]\ncommand = [\"make\", \"lint\"]\n").expect("write");
    insta::assert_snapshot!("check_config_good", shown(&check(), dir.path()));

    let bad = "[tasks.lint]\ncommand = [\"make\"]\nargs = \"([a-z]\"\n";
    std::fs::write(&path, bad).expect("write");
    insta::assert_snapshot!("check_config_bad_regex", shown(&check(), dir.path()));

    let build = "[tasks.lint]\ncommand = [\"make\"]\nbuild = \"containers/tasks\"\n";
    std::fs::write(&path, build).expect("write");
    insta::assert_snapshot!("check_config_build_refused", shown(&check(), dir.path()));

    let image = "[images.tasks]\ncontext = \"containers/tasks\"\nrepository = \"r.io/acme/tasks\"\n\
                 [tests.unit]\ncommand = [\"make\"]\nimage = \"taks\"\n";
    std::fs::write(&path, image).expect("write");
    insta::assert_snapshot!("check_config_unknown_image", shown(&check(), dir.path()));
}

/// The repository's own `.tickbot.toml` (tickbot testing tickbot) stays valid.
#[test]
fn the_repositorys_own_configuration_is_valid() {
    let own = concat!(env!("CARGO_MANIFEST_DIR"), "/.tickbot.toml");
    let out = tickbot(&["check-config", own], &[], None);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::assert_snapshot!("check_config_own", shown(&out, dir));
}

#[test]
fn a_bad_server_config_stops_start_up_with_the_key_and_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tickbot.toml");
    std::fs::write(
        &config,
        "[webhook]\nsecret = \"s\"\n[worker]\nconcurrency = 0\n",
    )
    .expect("write");
    let config = config.to_str().expect("utf-8");
    let empty = dir.path().join("empty.toml");
    let empty = empty.to_str().expect("utf-8");
    let runs = [
        (
            "zero concurrency",
            vec!["--config", config, "serve"],
            vec![],
        ),
        (
            "a bad address from the environment",
            vec!["--config", config, "serve"],
            vec![
                ("TICKBOT__WORKER__CONCURRENCY", "2"),
                ("TICKBOT__WEBHOOK__LISTEN", "nowhere"),
            ],
        ),
        (
            "a bad number from the environment",
            vec!["--config", config, "serve"],
            vec![("TICKBOT__WORKER__CONCURRENCY", "many")],
        ),
        // No secret: serve refuses to start rather than accept unsigned webhooks.
        (
            "no webhook secret",
            vec!["--config", empty, "serve"],
            vec![],
        ),
        // No token: the dispatcher cannot talk to GitHub.
        (
            "no token",
            vec!["--config", empty, "dispatch"],
            vec![("TICKBOT__WEBHOOK__SECRET", "s")],
        ),
        (
            "check-config",
            vec!["--config", config, "check-config"],
            vec![],
        ),
    ];
    let shown: Vec<String> = runs
        .iter()
        .map(|(what, args, env)| {
            format!(
                "## {what}\n{}",
                shown(&tickbot(args, env, None), dir.path())
            )
        })
        .collect();
    insta::assert_snapshot!(shown.join("\n"));
}

/// A plain HTTP/1.0 GET over a socket: the status code, or None while nothing listens.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn tickbot_all_starts_on_the_embedded_queue_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickbot"))
        .args([
            "--config",
            dir.path().join("absent.toml").to_str().expect("utf-8"),
            "all",
        ])
        .env("TICKBOT__WEBHOOK__SECRET", "s")
        .env("TICKBOT__WEBHOOK__LISTEN", format!("127.0.0.1:{port}"))
        .env("TICKBOT__GITHUB__TOKEN", "t")
        .env("TICKBOT__GITHUB__API_URL", "http://127.0.0.1:9")
        .env("TICKBOT__STATE__DIR", dir.path())
        .env("TICKBOT__WORKER__RUNTIME", "host")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tickbot all");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http_status(port, "/healthz") != Some(200) {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            panic!("tickbot all exited with {status}: {}", text(&out.stderr));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tickbot all did not answer /healthz"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        http_status(port, "/readyz"),
        Some(200),
        "the embedded queue is ready"
    );
    assert!(
        dir.path().join("queue").exists(),
        "the embedded queue lives in the state dir"
    );

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("tickbot all exits");
    assert!(
        out.status.success(),
        "exit after SIGTERM: {:?}: {}",
        out.status,
        text(&out.stderr)
    );
}

#[test]
fn the_demo_runs_the_whole_pipeline_and_shows_it() {
    let conf =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tasks/podman-containers.conf");
    let out = tickbot(
        &["--config", "/nonexistent/tickbot.toml", "demo"],
        &[(
            "TICKBOT__WORKER__CONTAINERS_CONF",
            conf.to_str().expect("utf-8"),
        )],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for expected in [
        "alice opened PR #1",
        "worker runtime: podman, image localhost/tickbot-test:latest",
        "status bump/alpha on",
        "\"In progress [demo-worker]\"",
        "\"Success [demo-worker]\"",
        "Both boxes are ticked. The description:\n    | Two version bumps, done by tickbot.\n    | \n    | - [x] bump alpha\n    | - [x] bump beta",
        "tickbot: versions: Bump beta",
        "tickbot: versions: Bump alpha",
        "Tickbot-Job: j",
        "The logs:\n    | http://127.0.0.1:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
