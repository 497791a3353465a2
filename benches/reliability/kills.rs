//! `kills [JOBS] [DISPATCHER_KILLS]`: tickbot as separate processes (intake, dispatcher, two
//! workers running podman containers), the forge in this process. JOBS PRs are opened one after
//! another, each with one task that commits and one `/help` comment; meanwhile a worker is
//! SIGKILLed every 1–4 s and started again, and the dispatcher is SIGKILLed DISPATCHER_KILLS
//! times, 0.5–2.5 s apart, and started again. Then: does every task reach a final state, does
//! any PR get its result commit twice, and does every comment (an event the reconcile at start
//! does not replay) get its reply?

use super::support::{AMQP, free_port, fresh_prefix};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tickbot::forge::{Forge, ForgeOptions};
use tickbot::ids::{CommitSha, PrNumber, RepoName};

const TICKBOT_TOML: &str = r#"
[tasks.stamp]
command = ["sh", "./stamp", "{args}"]
args = "^[a-z0-9-]+$"
image = "localhost/tickbot-test:latest"
timeout = "1m"
commit = true
message = "stamps: Add {args}"
"#;

/// Runs a little while, so kills land before, during and after the container.
const STAMP: &str = "#!/bin/sh\nset -eu\nsleep \"0.$(( $(od -An -N1 -tu1 /dev/urandom) % 10 ))\"\nmkdir -p stamps\necho \"$1\" > \"stamps/$1\"\n";

const SECRET: &str = "kills-secret";

/// One tickbot process, started again after each kill with the same environment.
struct Role {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    kills: usize,
}

impl Role {
    fn new(name: &str, args: &[&str], env: Vec<(String, String)>) -> Self {
        let mut role = Role {
            name: name.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            child: None,
            kills: 0,
        };
        role.start();
        role
    }

    fn start(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickbot"));
        cmd.args(["--config", "/nonexistent/tickbot.toml"])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// SIGKILL, reaped, then started again.
    fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.kills += 1;
        }
        self.start();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The environment every role shares.
fn common_env(
    forge: &Forge,
    prefix: &str,
    state: &Path,
    intake_url: &str,
) -> Vec<(String, String)> {
    [
        ("TICKBOT__AMQP__URL", AMQP.to_string()),
        ("TICKBOT__AMQP__PREFIX", prefix.to_string()),
        ("TICKBOT__GITHUB__API_URL", forge.api_url()),
        ("TICKBOT__GITHUB__TOKEN", forge.bot_token().to_string()),
        ("TICKBOT__LOGS__PUBLIC_URL", intake_url.to_string()),
        ("TICKBOT__STATE__DIR", state.display().to_string()),
        ("TICKBOT__WEBHOOK__SECRET", SECRET.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn with(mut env: Vec<(String, String)>, more: &[(&str, String)]) -> Vec<(String, String)> {
    env.extend(more.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

/// The processes of one run.
struct Processes {
    prefix: String,
    _intake: Role,
    dispatcher: Role,
    workers: Vec<Role>,
}

async fn start_processes(forge: &Forge, repo: &RepoName, dir: &Path) -> Processes {
    let prefix = fresh_prefix("kills");
    let port = free_port();
    let intake_url = format!("http://127.0.0.1:{port}");
    let containers_conf = std::env::var("CONTAINERS_CONF").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tasks/podman-containers.conf").to_string()
    });
    let env = |role: &str| common_env(forge, &prefix, &dir.join(role), &intake_url);
    let intake = Role::new(
        "intake",
        &["serve"],
        with(
            env("intake"),
            &[("TICKBOT__WEBHOOK__LISTEN", format!("127.0.0.1:{port}"))],
        ),
    );
    wait_healthy(&intake_url).await;
    forge
        .set_webhook(&format!("{intake_url}/webhook"), SECRET)
        .await;
    let dispatcher = Role::new(
        "dispatcher",
        &["dispatch"],
        with(
            env("dispatcher"),
            &[
                ("TICKBOT__DISPATCH__REPOSITORIES", repo.to_string()),
                (
                    "TICKBOT__DISPATCH__BOT_LOGIN",
                    forge.bot_login().to_string(),
                ),
            ],
        ),
    );
    let workers = ["w1", "w2"]
        .iter()
        .map(|name| {
            let more = [
                ("TICKBOT__WORKER__NAME", name.to_string()),
                ("TICKBOT__WORKER__CONCURRENCY", "2".to_string()),
                ("TICKBOT__WORKER__CONTAINERS_CONF", containers_conf.clone()),
            ];
            Role::new(name, &["work"], with(env(name), &more))
        })
        .collect();
    Processes {
        prefix,
        _intake: intake,
        dispatcher,
        workers,
    }
}

async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthy = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .is_ok();
        if healthy {
            return;
        }
        assert!(Instant::now() < deadline, "the intake did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn workers_and_dispatcher_killed(jobs: usize, dispatcher_kills: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let forge = Forge::start(ForgeOptions::local(dir.path().join("forge")))
        .await
        .expect("forge");
    let repo: RepoName = "acme/widgets".parse().expect("valid");
    let files = [(".tickbot.toml", TICKBOT_TOML), ("stamp", STAMP)];
    forge
        .create_repo(&repo, "main", &files)
        .await
        .expect("repo");
    forge.add_collaborator(&repo, "alice", "write");
    let mut procs = start_processes(&forge, &repo, dir.path()).await;

    let started = Instant::now();
    let prs = open_while_killing(&forge, &repo, jobs, dispatcher_kills, &mut procs).await;
    let killing = started.elapsed();
    let outcome = settle(&forge, &repo, &prs).await;
    let took = started.elapsed();
    let worker_kills: usize = procs.workers.iter().map(|w| w.kills).sum();
    report(
        &forge,
        &repo,
        &prs,
        &outcome,
        worker_kills,
        procs.dispatcher.kills,
    );
    println!(
        "  dead-lettered (the dispatcher acted on each once more): {}",
        dead_letters(&procs.prefix, dir.path()).await
    );
    println!(
        "  timing: PRs opened and processes killed for {:.0} s, all settled {:.0} s after the start",
        killing.as_secs_f64(),
        took.as_secs_f64()
    );
    drop(procs);
    forge.shutdown().await;
}

/// Opens the PRs (each with its comment) one by one while killing, until every PR is open and
/// the dispatcher was killed `dispatcher_kills` times.
async fn open_while_killing(
    forge: &Forge,
    repo: &RepoName,
    jobs: usize,
    dispatcher_kills: usize,
    procs: &mut Processes,
) -> Vec<(PrNumber, CommitSha)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut prs = Vec::new();
    let now = Instant::now();
    let mut next_worker_kill = now + Duration::from_millis(rng.gen_range(1000..4000));
    let mut next_dispatcher_kill = now + Duration::from_millis(rng.gen_range(500..2500));
    while prs.len() < jobs || procs.dispatcher.kills < dispatcher_kills {
        if prs.len() < jobs {
            prs.push(open(forge, repo, prs.len()).await);
        }
        let now = Instant::now();
        if now >= next_worker_kill {
            let at = rng.gen_range(0..procs.workers.len());
            procs.workers[at].kill_and_restart();
            next_worker_kill = now + Duration::from_millis(rng.gen_range(1000..4000));
        }
        if now >= next_dispatcher_kill && procs.dispatcher.kills < dispatcher_kills {
            procs.dispatcher.kill_and_restart();
            next_dispatcher_kill = now + Duration::from_millis(rng.gen_range(500..2500));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..600))).await;
    }
    prs
}

/// PR `i` with the task `stamp p<i>`, and a `/help` comment on it: its number and head.
async fn open(forge: &Forge, repo: &RepoName, i: usize) -> (PrNumber, CommitSha) {
    let (pr, head) = super::open(forge, repo, i, &format!("- [ ] stamp p{i}\n")).await;
    forge
        .comment(repo, pr, "/help", "alice")
        .await
        .expect("comment");
    (pr, head)
}

/// What became of the PRs.
struct Outcome {
    /// Per PR, the task's latest state at the head it was queued for ("none" without one).
    states: BTreeMap<PrNumber, String>,
    /// Per PR, the bot's result commits on its branch.
    commits: BTreeMap<PrNumber, usize>,
    /// Per PR, the bot's replies to its `/help`.
    replies: BTreeMap<PrNumber, usize>,
}

impl Outcome {
    fn is_final(state: &str) -> bool {
        !matches!(state, "pending" | "none")
    }

    fn settled(&self) -> bool {
        self.states.values().all(|s| Self::is_final(s)) && self.replies.values().all(|n| *n > 0)
    }
}

async fn settle(forge: &Forge, repo: &RepoName, prs: &[(PrNumber, CommitSha)]) -> Outcome {
    super::poll(Instant::now() + super::SETTLE, || {
        let outcome = observe(forge, repo, prs);
        (outcome.settled(), outcome)
    })
    .await
}

fn observe(forge: &Forge, repo: &RepoName, prs: &[(PrNumber, CommitSha)]) -> Outcome {
    let mut outcome = Outcome {
        states: BTreeMap::new(),
        commits: BTreeMap::new(),
        replies: BTreeMap::new(),
    };
    let git_dir = forge.repo_path(repo);
    for (i, (pr, head)) in prs.iter().enumerate() {
        let context = format!("stamp/p{i}");
        let state = forge
            .statuses(repo, head)
            .into_iter()
            .rfind(|s| s.context == context)
            .map_or_else(|| "none".to_string(), |s| s.state);
        outcome.states.insert(*pr, state);
        outcome
            .commits
            .insert(*pr, bot_commits(&git_dir, head, &format!("b{i}")));
        let replies = forge
            .comments(repo, *pr)
            .iter()
            .filter(|c| c.author == forge.bot_login() && c.body.contains("/help"))
            .count();
        outcome.replies.insert(*pr, replies);
    }
    outcome
}

/// Result commits (`stamps: Add …`) on `branch` after `head`.
fn bot_commits(git_dir: &Path, head: &CommitSha, branch: &str) -> usize {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args([
            "log",
            "--format=%s",
            &format!("{}..refs/heads/{branch}", head.0),
        ])
        .output()
        .expect("git log");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("stamps: Add"))
        .count()
}

fn report(
    forge: &Forge,
    repo: &RepoName,
    prs: &[(PrNumber, CommitSha)],
    outcome: &Outcome,
    worker_kills: usize,
    dispatcher_kills: usize,
) {
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for s in outcome.states.values() {
        *by_state.entry(s.as_str()).or_default() += 1;
    }
    let not_final: Vec<String> = outcome
        .states
        .iter()
        .filter(|(_, s)| !Outcome::is_final(s))
        .map(|(pr, s)| format!("#{} {s}", pr.0))
        .collect();
    let twice = outcome.commits.values().filter(|n| **n > 1).count();
    let none = outcome.commits.values().filter(|n| **n == 0).count();
    let unanswered = outcome.replies.values().filter(|n| **n == 0).count();
    let answered_twice = outcome.replies.values().filter(|n| **n > 1).count();
    let refused = forge
        .deliveries()
        .iter()
        .filter(|d| !d.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    let ticked = prs
        .iter()
        .enumerate()
        .filter(|(i, (pr, ..))| {
            forge
                .pr(repo, *pr)
                .is_some_and(|p| p.body == format!("- [x] stamp p{i}\n"))
        })
        .count();
    println!(
        "{} PRs, one committing task each, in podman; workers SIGKILLed {worker_kills} times, the \
         dispatcher {dispatcher_kills} times (each started again at once):",
        prs.len()
    );
    println!(
        "  task states: {by_state:?}; not final: {}",
        if not_final.is_empty() {
            "none".into()
        } else {
            not_final.join(", ")
        }
    );
    println!(
        "  result commits: {twice} PRs with more than one, {none} with none; boxes ticked: {ticked}"
    );
    println!(
        "  /help comments: {unanswered} unanswered, {answered_twice} answered twice; webhook deliveries not answered 2xx: {refused}"
    );
}

/// What ended in the dead-letter queue, by kind.
async fn dead_letters(prefix: &str, dir: &Path) -> String {
    use tickbot::job::{Job, JobReport, ReportState};
    use tickbot::queue::{Broker, BrokerSettings, QueueKind};
    let mut settings = BrokerSettings::new(Some(AMQP.into()), dir.join("bench-queue"));
    settings.prefix = prefix.to_string();
    let broker = Broker::open(&settings).await.expect("broker");
    let mut dead = broker
        .consume(&QueueKind::Dead, 100)
        .await
        .expect("consume");
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(Duration::from_secs(2), dead.next()).await
    {
        let body = &delivery.body;
        let kind = if let Ok(e) = serde_json::from_slice::<tickbot::event::Envelope>(body) {
            format!("event {}", e.event)
        } else if let Ok(r) = serde_json::from_slice::<JobReport>(body) {
            match r.state {
                ReportState::Started => "report Started".to_string(),
                ReportState::Finished { .. } => "report Finished".to_string(),
            }
        } else if serde_json::from_slice::<Job>(body).is_ok() {
            "job".to_string()
        } else {
            "unreadable".to_string()
        };
        *kinds.entry(kind).or_default() += 1;
        let _ = delivery.ack().await;
    }
    match kinds.is_empty() {
        true => "nothing".into(),
        false => format!("{kinds:?}"),
    }
}
