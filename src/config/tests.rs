//! The server configuration's tests: files, environment layers and the errors people see.

use super::*;
use std::io::Write;

fn load(text: &str, env: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    f.write_all(text.as_bytes()).expect("write");
    ServerConfig::load(
        f.path(),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

/// The error's message, with the temporary file's path written `tickbot.toml`.
fn error(text: &str, env: &[(&str, &str)]) -> String {
    let mut f = tempfile::NamedTempFile::new().expect("tempfile");
    f.write_all(text.as_bytes()).expect("write");
    let e = ServerConfig::load(
        f.path(),
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .expect_err("invalid");
    e.to_string()
        .replace(&f.path().display().to_string(), "tickbot.toml")
}

#[test]
fn missing_file_gives_defaults() {
    let c =
        ServerConfig::load(Path::new("/nonexistent/tickbot.toml"), Vec::new()).expect("defaults");
    assert_eq!(c.webhook.listen, "127.0.0.1:8080");
    assert!(c.amqp.url.is_none());
    assert_eq!(c.worker.pools, vec!["default".to_string()]);
}

#[test]
fn job_checkouts_can_go_elsewhere() {
    let c = load("[worker]\nwork_dir = \"/dev/shm/tickbot\"\n", &[]).expect("valid");
    assert_eq!(c.worker.work_dir, Some(PathBuf::from("/dev/shm/tickbot")));
    assert_eq!(load("", &[]).expect("valid").worker.work_dir, None);
}

#[test]
fn environment_overrides_file() {
    let c = load(
        "[worker]\nconcurrency = 2\n[github]\ntoken = \"from-file\"\n",
        &[
            ("TICKBOT__WORKER__CONCURRENCY", "4"),
            ("TICKBOT__GITHUB__TOKEN", "from-env"),
            ("OTHER", "x"),
        ],
    )
    .expect("valid");
    assert_eq!(c.worker.concurrency, 4);
    assert_eq!(
        c.github_token()
            .expect("ok")
            .map(|s| s.expose().to_string()),
        Some("from-env".into())
    );
}

#[test]
fn logs_are_kept_ninety_days_unless_said_otherwise() {
    let day = Duration::from_secs(86_400);
    assert_eq!(load("", &[]).expect("defaults").logs.keep, 90 * day);
    let c = load("", &[("TICKBOT__LOGS__KEEP", "7d")]).expect("valid");
    assert_eq!(c.logs.keep, 7 * day);
}

#[test]
fn a_metrics_listener_is_an_address_and_port() {
    let c = load("[metrics]\nlisten = \"127.0.0.1:9464\"\n", &[]).expect("valid");
    assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9464"));
    let e = load("", &[("TICKBOT__METRICS__LISTEN", "9464")]).expect_err("no host");
    assert_eq!(
        e.to_string(),
        "environment variable TICKBOT__METRICS__LISTEN: key `metrics.listen`: '9464' is not an \
         address:port (invalid socket address syntax); e.g. \"127.0.0.1:9464\""
    );
}

#[test]
fn errors_name_the_key_and_position() {
    let e = load("[webhook]\nlisten = \"nowhere\"\n", &[]).expect_err("bad listen");
    assert!(e.to_string().contains("key `webhook.listen`"), "{e}");

    let e = load("[worker]\nconcurency = 2\n", &[]).expect_err("typo");
    let msg = e.to_string();
    assert!(
        msg.contains("line 2") && msg.contains("concurency"),
        "{msg}"
    );

    let e = load("[amqp]\nurl = \"http://x\"\n", &[]).expect_err("bad url");
    assert!(e.to_string().contains("amqp.url"), "{e}");
}

#[test]
fn file_errors_give_the_file_the_position_and_the_key() {
    assert_eq!(
        error("[webhook]\nlisten = \"127.0.0.1:80\n", &[]),
        "tickbot.toml: line 2, column 23: invalid basic string, expected `\"`"
    );
    assert_eq!(
        error("[webhook]\nlisten = 5\n", &[]),
        "tickbot.toml: line 2, column 10: key `webhook.listen`: invalid type: integer `5`, expected a string"
    );
    assert_eq!(
        error("[worker]\npools = [\"a\", 2]\n", &[]),
        "tickbot.toml: line 2, column 15: key `worker.pools`: invalid type: integer `2`, expected a string"
    );
    assert_eq!(
        error("[worker]\nconcurency = 2\n", &[]),
        "tickbot.toml: line 2, column 1: key `worker.concurency`: unknown field `concurency`, expected one of `pools`, `concurrency`, `runtime`, `name`, `containers_conf`, `memory`, `pids_limit`, `stop_grace`, `work_dir`, `max_log`, `debug_hold`"
    );
    assert_eq!(
        error("[wroker]\nconcurrency = 2\n", &[]),
        "tickbot.toml: line 1, column 2: key `wroker`: unknown field `wroker`, expected one of `github`, `webhook`, `amqp`, `state`, `worker`, `logs`, `git`, `dispatch`, `registry`, `schedule`, `metrics`, `dashboard`"
    );
    assert_eq!(
        error("[worker]\nconcurrency = 0\n", &[]),
        "tickbot.toml: line 2, column 15: key `worker.concurrency`: must be at least 1"
    );
    assert_eq!(
        error("[worker]\nstop_grace = \"0s\"\n", &[]),
        r#"tickbot.toml: line 2, column 14: key `worker.stop_grace`: '0s' is zero: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#
    );
    assert_eq!(
        error("[worker]\nstop_grace = \"soon\"\n", &[]),
        r#"tickbot.toml: line 2, column 14: key `worker.stop_grace`: 'soon' is not a duration: use e.g. "90s", "30m", "2h", "1h30m""#
    );
}

#[test]
fn environment_errors_name_the_variable() {
    assert_eq!(
        error(
            "[worker]\nconcurrency = 2\n",
            &[("TICKBOT__WORKER__CONCURRENCY", "many")]
        ),
        r#"environment variable TICKBOT__WORKER__CONCURRENCY: key `worker.concurrency`: invalid type: string "many", expected an integer"#
    );
    assert_eq!(
        error("", &[("TICKBOT__WORKER__CONCURRENCY", "70000")]),
        "environment variable TICKBOT__WORKER__CONCURRENCY: key `worker.concurrency`: invalid type: 64-bit unsigned integer `70000`, expected an unsigned 16 bit integer"
    );
    assert_eq!(
        error("", &[("TICKBOT__WORKER__CONCURENCY", "3")]),
        "environment variable TICKBOT__WORKER__CONCURENCY: key `worker.concurency`: unknown field `concurency`, expected one of `pools`, `concurrency`, `runtime`, `name`, `containers_conf`, `memory`, `pids_limit`, `stop_grace`, `work_dir`, `max_log`, `debug_hold`"
    );
    assert_eq!(
        error("", &[("TICKBOT__CONCURRENCY", "3")]),
        "environment variable TICKBOT__CONCURRENCY: key `concurrency`: unknown field `concurrency`, expected one of `github`, `webhook`, `amqp`, `state`, `worker`, `logs`, `git`, `dispatch`, `registry`, `schedule`, `metrics`, `dashboard`"
    );
    assert_eq!(
        error("", &[("TICKBOT__WORKER__CONCURRENCY", "0")]),
        "environment variable TICKBOT__WORKER__CONCURRENCY: key `worker.concurrency`: must be at least 1"
    );
    assert_eq!(
        error("", &[("TICKBOT__DISPATCH__REPOSITORIES", "a/b,nope")]),
        "environment variable TICKBOT__DISPATCH__REPOSITORIES: key `dispatch.repositories`: 'nope' is not a repository name: expected 'owner/name'"
    );
    assert_eq!(
        error("", &[("TICKBOT__WORKER__POOLS", r#"["default","large"]"#)]),
        r#"environment variable TICKBOT__WORKER__POOLS: key `worker.pools`: '["default"' is not a pool name: use letters, digits, '-', '_' or '.', starting with a letter or digit (in the environment, a list is written default,large)"#
    );
    assert_eq!(
        error("", &[("TICKBOT__WORKER__STOP_GRACE", "0")]),
        r#"environment variable TICKBOT__WORKER__STOP_GRACE: key `worker.stop_grace`: '0' is zero: use at least a second, e.g. "90s", "30m", "2h", "1h30m""#
    );
}

#[test]
fn lists_come_from_the_environment_comma_separated() {
    let c = load(
        "[worker]\npools = [\"default\"]\n",
        &[
            ("TICKBOT__WORKER__POOLS", "default,large"),
            ("TICKBOT__DISPATCH__REPOSITORIES", "octo/one,octo/two"),
        ],
    )
    .expect("valid");
    assert_eq!(c.worker.pools, vec!["default".to_string(), "large".into()]);
    assert_eq!(
        c.dispatch
            .repositories
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        vec!["octo/one", "octo/two"]
    );
    let c = load("", &[("TICKBOT__WORKER__POOLS", "gpu")]).expect("valid");
    assert_eq!(c.worker.pools, vec!["gpu".to_string()]);
}

#[test]
fn environment_values_are_typed_by_their_key() {
    let c = load(
        "",
        &[
            ("TICKBOT__WEBHOOK__SECRET", "0123"),
            ("TICKBOT__GITHUB__TOKEN", "1e3"),
            ("TICKBOT__WORKER__NAME", "builder-7"),
            ("TICKBOT__WORKER__CONCURRENCY", "3"),
            ("TICKBOT__AMQP__MAX_DELIVERIES", "7"),
            ("TICKBOT__GITHUB__APP_ID", "12"),
            ("TICKBOT__GITHUB__PRIVATE_KEY_FILE", "/k.pem"),
            ("TICKBOT__Worker__Memory", "4g"),
            // Not tickbot's: only `TICKBOT__` in capitals is.
            ("tickbot__worker__pids_limit", "1"),
        ],
    )
    .expect("valid");
    assert_eq!(c.webhook_secret().expect("set").expose(), "0123");
    assert_eq!(c.github.token.as_ref().map(Secret::expose), Some("1e3"));
    assert_eq!(c.worker.name.as_deref(), Some("builder-7"));
    assert_eq!(c.worker.concurrency, 3);
    assert_eq!(c.amqp.max_deliveries, 7);
    assert_eq!(c.github.app_id, Some(12));
    assert_eq!(c.worker.memory, "4g");
    assert_eq!(c.worker.pids_limit, 4096);
}

#[test]
fn secrets_are_never_printed() {
    let c = load("[github]\ntoken = \"ghp_supersecret\"\n", &[]).expect("valid");
    assert!(!format!("{c:?}").contains("supersecret"));
}

#[test]
fn an_empty_secret_file_is_refused() {
    let secret = tempfile::NamedTempFile::new().expect("tempfile");
    let c = load(
        &format!("[webhook]\nsecret_file = {:?}\n", secret.path()),
        &[],
    )
    .expect("valid");
    let e = c.webhook_secret().expect_err("empty");
    assert!(e.to_string().contains("the secret file is empty"), "{e}");
}

#[test]
fn serve_needs_a_webhook_secret() {
    let c = load("", &[]).expect("valid");
    let e = c.webhook_secret().expect_err("no secret");
    assert!(e.to_string().contains("TICKBOT__WEBHOOK__SECRET"), "{e}");
}

#[test]
fn the_intakes_timeouts_and_the_log_cap_are_set_like_any_key() {
    let c = load(
        "[webhook]\nheader_timeout = \"5s\"\nbody_timeout = \"20s\"\n\n[worker]\nmax_log = \"8 MiB\"\n",
        &[("TICKBOT__WEBHOOK__IDLE_TIMEOUT", "2m")],
    )
    .expect("valid");
    let t = c.webhook.timeouts();
    assert_eq!(
        (t.header, t.body, t.idle),
        (
            Duration::from_secs(5),
            Duration::from_secs(20),
            Duration::from_secs(120)
        )
    );
    assert_eq!(c.worker.max_log.as_u64(), 8 * 1024 * 1024);
    let d = load("", &[]).expect("defaults");
    assert_eq!(d.worker.max_log.as_u64(), 64 * 1024 * 1024);
    assert_eq!(d.dispatch.max_timeout, Duration::from_secs(6 * 3600));
    assert_eq!(
        error("[webhook]\nidle_timeout = \"5s\"\n", &[]),
        "tickbot.toml: line 2, column 16: key `webhook.idle_timeout`: must be at least 16s: a \
         delivery may wait 8s for the queue before it is answered"
    );
    assert_eq!(
        error("[worker]\nmax_log = \"1 KiB\"\n", &[]),
        "tickbot.toml: line 2, column 11: key `worker.max_log`: must be at least 64 KiB, to keep \
         a failure's explanation"
    );
    assert_eq!(
        error("", &[("TICKBOT__WORKER__POOLS", "default,../x")]),
        "environment variable TICKBOT__WORKER__POOLS: key `worker.pools`: '../x' is not a pool \
         name: use letters, digits, '-', '_' or '.', starting with a letter or digit (in the \
         environment, a list is written default,large)"
    );
}
