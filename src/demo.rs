//! `tickbot demo`: the whole pipeline on one machine with nothing but Rust and git. It starts
//! the local forge, the queue (embedded, or RabbitMQ when `[amqp] url` is set), the intake, the
//! dispatcher and a worker (podman when it works, else the host runtime with a warning), opens
//! a PR with two checkbox tasks on a sample repository, and prints what happens until both
//! boxes are ticked.

use crate::config::ServerConfig;
use crate::forge::Forge;
use crate::ids::{CommitSha, PrNumber, RepoName};
use crate::stack::{Stack, StackOptions};
use crate::worker::runtime::Runtime;
use anyhow::Context;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The image the demo task runs in: busybox, built locally by `tasks/test-image/build.sh`.
pub const DEMO_IMAGE: &str = "localhost/tickbot-test:latest";

const TICKBOT_TOML: &str = r#"# The checkbox tasks of this repository.
[tasks.bump]
command = ["sh", "./bump", "{args}"]
args = "^[a-z0-9.-]+$"
image = "localhost/tickbot-test:latest"
timeout = "5m"
commit = true
message = "versions: Bump {args}"
"#;

const BUMP: &str = r#"#!/bin/sh
# Records a new version of a component. It runs from the PR's own checkout, so a PR that
# changes this script is tested with its own version.
set -eu
echo "bumping $1"
echo "$1" >> versions.txt
"#;

const BODY: &str = "Two version bumps, done by tickbot.\n\n- [ ] bump alpha\n- [ ] bump beta\n";

const DEADLINE: Duration = Duration::from_secs(180);

pub async fn run(config: ServerConfig, keep: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let step = |text: &str| println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());
    let dir = std::env::temp_dir().join(format!("tickbot-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let amqp_url = config.amqp.url.as_ref().map(|u| u.expose().to_string());
    let mut stack = Stack::start(StackOptions {
        dir: dir.clone(),
        amqp_url: amqp_url.clone(),
        prefix: format!("demo-{}", uuid::Uuid::new_v4()),
        repositories: Vec::new(),
        app: None,
        logs: None,
    })
    .await
    .context("cannot start the demo")?;
    step(&format!(
        "forge at {}, intake at {}, queue: {}",
        stack.forge.api_url(),
        stack.intake_url,
        if amqp_url.is_some() {
            "RabbitMQ"
        } else {
            "embedded (on disk)"
        }
    ));

    let runtime = pick_runtime(&config).await;
    match &runtime {
        Runtime::Podman { .. } => step(&format!("worker runtime: podman, image {DEMO_IMAGE}")),
        Runtime::Host => step(
            "WARNING: podman or the demo image is not available; the worker runs tasks on this \
             machine without isolation (build the image with tasks/test-image/build.sh)",
        ),
    }
    let settings = stack.worker_settings("demo-worker", runtime, 1);
    stack.start_worker(settings);

    let repo: RepoName = "demo/widgets".parse()?;
    let forge = stack.forge.clone();
    let (base, pr) = open_demo_pr(&forge, &repo, &step).await?;

    let outcome = watch(&forge, &repo, pr, &step).await;
    if outcome.is_ok() {
        report(&forge, &repo, pr, &base).await?;
    }
    if keep && outcome.is_ok() {
        println!(
            "\nStill serving (forge {}, intake {}); Ctrl-C stops.",
            forge.api_url(),
            stack.intake_url
        );
        let mut shutdown = crate::roles::shutdown_signal();
        let _ = shutdown.wait_for(|stop| *stop).await;
    }
    stack.shutdown().await;
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// Creates the sample repository with its `bump` task and opens alice's PR whose two
/// checkboxes the demo then watches; returns the PR's base commit and number.
async fn open_demo_pr(
    forge: &Forge,
    repo: &RepoName,
    step: &impl Fn(&str),
) -> anyhow::Result<(CommitSha, PrNumber)> {
    forge
        .create_repo(
            repo,
            "main",
            &[
                (".tickbot.toml", TICKBOT_TOML),
                ("bump", BUMP),
                ("versions.txt", "base\n"),
            ],
        )
        .await?;
    forge.add_collaborator(repo, "alice", "write");
    step("created demo/widgets with a `bump` task in .tickbot.toml");
    let base = forge
        .commit_files(
            repo,
            "more-versions",
            Some("main"),
            &[("README.md", "Widgets.\n")],
            "Add a README",
            "alice",
        )
        .await?;
    let pr = forge
        .open_pr(
            repo,
            "more-versions",
            "main",
            "More versions",
            BODY,
            "alice",
        )
        .await?;
    step(&format!(
        "alice opened PR {pr} at {}:\n{}",
        base.short(),
        indent(BODY)
    ));
    Ok((base, pr))
}

/// podman when a container of the demo image really starts here, else the host runtime.
async fn pick_runtime(config: &ServerConfig) -> Runtime {
    // This checkout's podman settings, for machines where podman's defaults don't work.
    let bundled = std::path::Path::new("tasks/podman-containers.conf");
    let containers_conf = config.worker.containers_conf.clone().or_else(|| {
        (std::env::var_os("CONTAINERS_CONF").is_none() && bundled.exists())
            .then(|| bundled.to_path_buf())
    });
    let mut smoke = tokio::process::Command::new("podman");
    smoke
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--pull=never",
            DEMO_IMAGE,
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(conf) = &containers_conf {
        smoke.env("CONTAINERS_CONF", conf);
    }
    match tokio::time::timeout(Duration::from_secs(60), smoke.status()).await {
        Ok(Ok(status)) if status.success() => Runtime::Podman { containers_conf },
        _ => Runtime::Host,
    }
}

/// What GitHub shows of a comment: the bot's hidden markers are left out.
fn without_html_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints every new status, comment and body until both boxes are ticked (or a task failed).
async fn watch(
    forge: &Forge,
    repo: &RepoName,
    pr: PrNumber,
    step: &impl Fn(&str),
) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen_statuses = HashSet::new();
    let mut seen_comments = HashSet::new();
    let mut last_body = BODY.to_string();
    // The PR's commits, listed again only when its head moves (not every 50 ms).
    let mut shas: (Option<CommitSha>, Vec<CommitSha>) = (None, Vec::new());
    loop {
        let Some(pull) = forge.pr(repo, pr) else {
            anyhow::bail!("the demo PR disappeared");
        };
        if shas.0.as_ref() != Some(&pull.head_sha) {
            shas = (
                Some(pull.head_sha.clone()),
                forge_shas(forge, repo, &pull.head_sha).await,
            );
        }
        for sha in &shas.1 {
            for s in forge.statuses(repo, sha) {
                if seen_statuses.insert(s.id) {
                    step(&format!(
                        "status {} on {}: {} \"{}\"{}",
                        s.context,
                        sha.short(),
                        s.state,
                        s.description.unwrap_or_default(),
                        s.target_url.map(|u| format!(" → {u}")).unwrap_or_default()
                    ));
                }
            }
        }
        for c in forge.comments(repo, pr) {
            if seen_comments.insert((c.id, c.updated_at)) {
                let verb = if c.updated_at > c.created_at {
                    "edited"
                } else {
                    "new"
                };
                step(&format!(
                    "{verb} comment by {}:\n{}",
                    c.author,
                    indent(&without_html_comments(&c.body))
                ));
            }
        }
        if pull.body != last_body {
            step(&format!("description now:\n{}", indent(&pull.body)));
            last_body = pull.body.clone();
        }
        let checklist = crate::checklist::parse(&pull.body);
        if checklist
            .tasks
            .iter()
            .any(|t| t.state == crate::checklist::TaskState::Failed)
        {
            anyhow::bail!("a task failed; its status above links to the log");
        }
        if checklist.tasks.len() == 2
            && checklist
                .tasks
                .iter()
                .all(|t| t.state == crate::checklist::TaskState::Done)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the tasks did not finish within {}s; the statuses above say where they stopped",
                DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The PR head and its ancestors up to `main`: statuses stay on the commit they were set on.
async fn forge_shas(forge: &Forge, repo: &RepoName, head: &CommitSha) -> Vec<CommitSha> {
    let out = tokio::process::Command::new("git")
        .arg("--git-dir")
        .arg(forge.repo_path(repo))
        .args(["rev-list", "--reverse", &head.0, "^main"])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| CommitSha(l.to_string()))
            .collect(),
        _ => vec![head.clone()],
    }
}

async fn report(
    forge: &Forge,
    repo: &RepoName,
    pr: PrNumber,
    base: &CommitSha,
) -> anyhow::Result<()> {
    let pull = forge.pr(repo, pr).context("the demo PR disappeared")?;
    println!(
        "\nBoth boxes are ticked. The description:\n{}",
        indent(&pull.body)
    );
    let log = tokio::process::Command::new("git")
        .arg("--git-dir")
        .arg(forge.repo_path(repo))
        .args([
            "log",
            "--format=%h %an: %s%n%b",
            &format!("{}..{}", base.0, pull.head_sha.0),
        ])
        .output()
        .await
        .context("git log")?;
    println!(
        "\nThe commits tickbot pushed to the PR branch:\n{}",
        indent(String::from_utf8_lossy(&log.stdout).trim_end())
    );
    let mut logs: Vec<String> = Vec::new();
    for sha in forge_shas(forge, repo, &pull.head_sha).await {
        for s in forge.statuses(repo, &sha) {
            if let Some(url) = s.target_url
                && !logs.contains(&url)
            {
                logs.push(url);
            }
        }
    }
    println!("\nThe logs:\n{}", indent(&logs.join("\n")));
    Ok(())
}
