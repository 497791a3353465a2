//! The deployment that has run (issue 12): tickbot's own image built from `deploy/` on a base
//! made from Debian's packages; the intake and the dispatcher as containers of that image; two
//! workers as processes on state directories of their own (a worker starts podman containers
//! itself, so it runs on the host); RabbitMQ, moto's S3 server and the local forge. A PR with a
//! task and two tests goes through it, the logs are read through the dashboard, and a worker is
//! rolled (SIGTERM, drain, start again) while its job runs, losing nothing. The quadlet units
//! and the Kubernetes manifests are checked by their ecosystems' own offline tools.

mod common;

use common::s3::TestS3;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tickbot::forge::{Forge, ForgeOptions};
use tickbot::ids::RepoName;

const IMAGE: &str = "localhost/tickbot:smoke";
const SECRET: &str = "smoke-webhook-secret";

/// A container of the deployment, removed when dropped.
struct Container(String);

impl Container {
    /// Fails with the container's own log if it is not running.
    fn assert_running(&self) {
        let state = common::podman_output(&["inspect", "--format", "{{.State.Status}}", &self.0]);
        let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
        if state != "running" {
            let logs = common::podman_output(&["logs", &self.0]);
            panic!(
                "{} is {state}: {}{}",
                self.0,
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = common::podman_output(&["rm", "-f", "-t", "5", &self.0]);
    }
}

/// The settings every part of the deployment shares, as environment variables.
struct Deployment {
    env: Vec<(String, String)>,
    intake: String,
}

impl Deployment {
    fn container(&self, role: &str, name: &str) -> Container {
        let mut args = vec!["run", "-d", "--network", "host", "--name", name];
        let pairs: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for pair in &pairs {
            args.extend(["-e", pair.as_str()]);
        }
        args.extend([IMAGE, role]);
        let out = common::podman_output(&args);
        assert!(
            out.status.success(),
            "{role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container(name.to_string())
    }

    /// `tickbot work` on its own state directory, as on another machine.
    fn worker(&self, name: &str, state: &std::path::Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_tickbot"))
            .args(["--config", "/nonexistent/tickbot.toml", "work"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TICKBOT__STATE__DIR", state)
            .env("TICKBOT__WORKER__NAME", name)
            .env(
                "TICKBOT__WORKER__CONTAINERS_CONF",
                common::containers_conf(),
            )
            .env("TICKBOT__WORKER__STOP_GRACE", "60s")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("tickbot work")
    }
}

const TICKBOT_TOML: &str = r#"
[tasks.stamp]
command = ["sh", "-c", "echo stamped > stamped.txt; echo stamp done"]
image = "localhost/tickbot-test:latest"
commit = true
message = "Stamp"

[tests.unit]
command = ["sh", "-c", "echo unit passed"]
image = "localhost/tickbot-test:latest"
default = true

[tests.slow]
command = ["sh", "-c", "echo slow started; sleep 3; echo slow finished"]
image = "localhost/tickbot-test:latest"
default = true
"#;

fn build_image() {
    let out = Command::new("deploy/build-image")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CONTAINERS_CONF", common::containers_conf())
        .args([env!("CARGO_BIN_EXE_tickbot"), IMAGE])
        .output()
        .expect("deploy/build-image");
    assert!(
        out.status.success(),
        "the image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The environment every part of the deployment is configured with.
fn settings(forge: &Forge, s3: &TestS3, repo: &RepoName, port: u16, prefix: &str) -> Deployment {
    let intake = format!("http://127.0.0.1:{port}");
    let env = [
        ("TICKBOT__GITHUB__API_URL", forge.api_url()),
        ("TICKBOT__GITHUB__TOKEN", forge.bot_token().to_string()),
        ("TICKBOT__WEBHOOK__SECRET", SECRET.to_string()),
        ("TICKBOT__WEBHOOK__LISTEN", format!("127.0.0.1:{port}")),
        ("TICKBOT__AMQP__URL", common::amqp_url()),
        ("TICKBOT__AMQP__PREFIX", prefix.to_string()),
        ("TICKBOT__DISPATCH__REPOSITORIES", repo.to_string()),
        (
            "TICKBOT__DISPATCH__BOT_LOGIN",
            forge.bot_login().to_string(),
        ),
        ("TICKBOT__LOGS__PUBLIC_URL", intake.clone()),
        ("TICKBOT__LOGS__STORE", format!("s3://{}/smoke", s3.bucket)),
        ("TICKBOT__LOGS__ENDPOINT", s3.endpoint.clone()),
        ("TICKBOT__LOGS__ACCESS_KEY_ID", "tickbot-test".to_string()),
        (
            "TICKBOT__LOGS__SECRET_ACCESS_KEY",
            "tickbot-test-secret".to_string(),
        ),
    ];
    Deployment {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        intake,
    }
}

/// Two workers, each on a state directory of its own, as on two machines.
fn two_workers(d: &Deployment) -> Vec<(String, Child, tempfile::TempDir)> {
    ["w1", "w2"]
        .iter()
        .map(|name| {
            let machine = tempfile::tempdir().expect("a worker's state directory");
            (name.to_string(), d.worker(name, machine.path()), machine)
        })
        .collect()
}

/// SIGTERM to a process of the test's own.
fn terminate(child: &Child) {
    common::run("kill", &["-TERM", &child.id().to_string()]);
}

/// Rolls the worker running `context` at `sha` out: SIGTERM, it finishes the job in hand and
/// exits on its own, then it starts again on the same state directory.
async fn roll(
    d: &Deployment,
    workers: &mut [(String, Child, tempfile::TempDir)],
    forge: &Forge,
    repo: &RepoName,
    sha: &tickbot::ids::CommitSha,
    context: &str,
) {
    let on = common::wait_within(Duration::from_secs(120), "the job in progress", || {
        let status = forge
            .statuses(repo, sha)
            .into_iter()
            .rev()
            .find(|s| s.context == context)?;
        let desc = status.description.unwrap_or_default();
        desc.strip_prefix("In progress [")?
            .strip_suffix(']')
            .map(str::to_string)
    })
    .await;
    let Some(slot) = workers.iter_mut().find(|(name, ..)| *name == on) else {
        panic!("no worker {on}");
    };
    terminate(&slot.1);
    let exited = slot.1.wait().expect("the worker's exit");
    assert!(
        exited.success(),
        "the rolled worker exits cleanly: {exited:?}"
    );
    slot.1 = d.worker(&on, slot.2.path());
}

/// `context` passed once at `head`, and its log is read through the intake container from the
/// object store the workers wrote to.
async fn passed_once(
    forge: &Forge,
    repo: &RepoName,
    head: &tickbot::ids::CommitSha,
    context: &str,
    said: &str,
) {
    let url = common::wait_within(
        Duration::from_secs(120),
        &format!("{context} passed"),
        || {
            let status = forge
                .statuses(repo, head)
                .into_iter()
                .rev()
                .find(|s| s.context == context)?;
            (status.state == "success").then_some(status.target_url?)
        },
    )
    .await;
    let log = common::curl_get(&url);
    assert!(log.contains(&format!("{said}\n")), "{context}: {log}");
    let statuses: Vec<_> = forge
        .statuses(repo, head)
        .into_iter()
        .filter(|s| s.context == context)
        .collect();
    let finals = statuses.iter().filter(|s| s.state != "pending").count();
    assert_eq!(finals, 1, "{context} ended once: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_goes_through_the_containers_and_a_rolled_worker_loses_nothing() {
    let _broker = common::broker_lock().read().await;
    build_image();
    let dir = tempfile::tempdir().expect("tempdir");
    let forge = Forge::start(ForgeOptions::local(dir.path().join("forge")))
        .await
        .expect("forge");
    let repo: RepoName = "acme/widgets".parse().expect("a name");
    forge
        .create_repo(&repo, "main", &[(".tickbot.toml", TICKBOT_TOML)])
        .await
        .expect("repo");
    forge.add_collaborator(&repo, "alice", "write");
    let s3 = TestS3::start();
    let port = common::free_port();
    let prefix = format!("smoke-{}", uuid::Uuid::new_v4());
    let d = settings(&forge, &s3, &repo, port, &prefix);
    let intake_box = d.container("serve", &format!("{prefix}-intake"));
    let dispatch_box = d.container("dispatch", &format!("{prefix}-dispatch"));
    let mut workers = two_workers(&d);
    common::wait_for("the intake container ready", || {
        intake_box.assert_running();
        dispatch_box.assert_running();
        common::http_status(&d.intake, "/readyz").filter(|s| *s == 200)
    })
    .await;
    forge
        .set_webhook(&format!("{}/webhook", d.intake), SECRET)
        .await;

    let opened = Instant::now();
    let files = [("change.txt", "change\n")];
    let sha = forge
        .commit_files(&repo, "topic", Some("main"), &files, "A change", "alice")
        .await
        .expect("push");
    let pr = forge
        .create_pull(
            &repo,
            "topic",
            "main",
            "A change",
            "- [ ] stamp\n",
            false,
            "alice",
        )
        .await
        .expect("PR");
    let ticked = common::wait_within(Duration::from_secs(120), "the task ticked", || {
        let pull = forge.pr(&repo, pr)?;
        pull.body.contains("- [x] stamp").then(|| opened.elapsed())
    })
    .await;
    println!("smoke deployment: PR opened → task ticked in {ticked:?}");

    // The task's commit moved the head: the tests run again there. The worker running `slow`
    // is rolled out meanwhile; each test still ends once, and passes.
    let head = forge.pr(&repo, pr).expect("the PR").head_sha;
    assert_ne!(head, sha, "the task's result commit");
    roll(&d, &mut workers, &forge, &repo, &head, "slow").await;
    passed_once(&forge, &repo, &head, "unit", "unit passed").await;
    passed_once(&forge, &repo, &head, "slow", "slow finished").await;
    assert_eq!(
        forge.file(&repo, &head.0, "stamped.txt").await.as_deref(),
        Some("stamped\n")
    );
    let front = common::curl_get(&format!("{}/", d.intake));
    for context in ["stamp", "unit", "slow"] {
        assert!(
            front.contains(&format!("<td>{context}</td>")),
            "{context} on the dashboard: {front}"
        );
    }
    for (_, mut worker, _) in workers {
        terminate(&worker);
        let _ = worker.wait();
    }
    forge.shutdown().await;
}

/// podman's own quadlet generator, from `$TICKBOT_TEST_QUADLET` (scripts/test unpacks it from
/// Debian 13's podman package: Debian 12's podman has none) or where podman installs it.
fn quadlet() -> String {
    std::env::var("TICKBOT_TEST_QUADLET").unwrap_or_else(|_| "/usr/libexec/podman/quadlet".into())
}

#[test]
fn the_quadlet_units_pass_podmans_generator() {
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/quadlet");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(quadlet())
        .env("QUADLET_UNIT_DIRS", &units)
        .arg("-dryrun")
        .arg(out_dir.path())
        .output()
        .expect("podman's quadlet generator (scripts/test fetches it)");
    let services = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{services}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (unit, role) in [
        ("tickbot-intake", "serve"),
        ("tickbot-dispatch", "dispatch"),
    ] {
        let service = services
            .split(&format!("---{unit}.service---"))
            .nth(1)
            .unwrap_or_else(|| panic!("{unit}.service generated: {services}"));
        let exec = service
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .expect("ExecStart");
        assert!(
            exec.contains("/usr/bin/podman run ")
                && exec.ends_with(&format!("localhost/tickbot:latest {role}")),
            "{exec}"
        );
        assert!(service.contains("--env-file /etc/tickbot/env"), "{service}");
    }
}

#[test]
fn the_kubernetes_manifests_validate_against_the_api_schemas() {
    let tool = std::env::var("TICKBOT_TEST_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "kubernetes-validate".into());
    let manifests =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/tickbot.yaml");
    let out = Command::new(tool)
        .args(["--strict", "--no-warn"])
        .arg(&manifests)
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate; scripts/test does)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for resource in [
        "deployment/tickbot-intake",
        "service/tickbot-intake",
        "deployment/tickbot-dispatch",
    ] {
        assert!(
            said.contains(&format!("passed for resource {resource}")),
            "{said}"
        );
    }
}
