//! The `tickbot` command (reference §2). Exit codes: 0 ok, 2 usage or configuration error,
//! 1 runtime failure.

use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tickbot::config::ServerConfig;
use tickbot::repo_config::{self, RepoConfig};
use tickbot::{checklist, roles};

#[derive(Parser)]
#[command(
    name = "tickbot",
    version,
    about = "Checkbox tasks and tests for pull requests, run in container workers"
)]
struct Cli {
    /// Server configuration; a missing file means defaults plus TICKBOT__… variables.
    #[arg(long, global = true, default_value = "tickbot.toml")]
    config: PathBuf,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "TICKBOT_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The webhook intake: POST /webhook, /healthz, /readyz, /metrics, /logs/<job>.
    Serve,
    /// The dispatcher: plans PRs and queues jobs.
    Dispatch,
    /// A worker: runs queued jobs from the PR's own code.
    Work {
        /// Pools to take jobs from (repeatable); default: `[worker] pools`.
        #[arg(long = "pool")]
        pools: Vec<String>,
        /// Jobs run at once per pool; default: `[worker] concurrency`.
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// Every role in one process.
    All,
    /// A complete run on a built-in local forge: no GitHub and no broker needed.
    Demo {
        /// Keep everything serving after the run (Ctrl-C stops it).
        #[arg(long)]
        keep: bool,
    },
    /// Print the tasks and commands tickbot sees in a PR body or comment.
    Parse {
        /// A file, or - for standard input.
        file: String,
        #[arg(long)]
        json: bool,
    },
    /// Validate a repository's .tickbot.toml or a server configuration.
    CheckConfig {
        /// Default: ./.tickbot.toml if present, else the --config file.
        path: Option<PathBuf>,
    },
    /// Opens a refresh PR for each due `[[schedule]]` item, in a pass every `[schedule] interval`.
    Schedule {
        /// Say what is due and why, and when the rest will be; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// owner/name; default: every repository in `[dispatch] repositories`.
        #[arg(long)]
        repo: Option<String>,
    },
    /// The images of `[images.*]` on a repository's default branch.
    Image {
        #[command(subcommand)]
        action: ImageAction,
    },
    /// Run the local forge (a stand-in for GitHub) for development and manual trials.
    Forge {
        #[arg(long, default_value = "127.0.0.1:3300")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value = "./tickbot-forge")]
        dir: PathBuf,
        /// The token clients must present.
        #[arg(long, env = "TICKBOT_FORGE_TOKEN", default_value = "forge-token")]
        token: String,
        /// Where to send webhooks (e.g. http://127.0.0.1:8080/webhook).
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(
            long,
            env = "TICKBOT_FORGE_WEBHOOK_SECRET",
            default_value = "forge-secret"
        )]
        webhook_secret: String,
    },
}

#[derive(Subcommand)]
enum ImageAction {
    /// What the default branch used: tree, digest, when it landed, the PR and its results.
    History {
        name: String,
        /// owner/name; default: the one repository in `[dispatch] repositories`.
        #[arg(long)]
        repo: Option<String>,
    },
    /// Open a PR that restores the image's directory as it was at an earlier tree or date.
    Rollback {
        name: String,
        /// A tree id (7+ hex digits) from `image history`, or a date (YYYY-MM-DD).
        #[arg(long)]
        to: String,
        /// Also move the published tags back now, before the PR lands.
        #[arg(long)]
        publish_now: bool,
        #[arg(long)]
        repo: Option<String>,
    },
    /// Delete the images no branch, open PR or recent landing uses.
    Gc {
        name: String,
        /// Say what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep what landed on the default branch in this many days.
        #[arg(long, default_value_t = 30)]
        keep_days: u32,
        #[arg(long)]
        repo: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story; its logs only say when something goes wrong.
    let level = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    tickbot::telemetry::init_logging(cli.log_json, level);
    match cli.command {
        Command::Parse { file, json } => parse(&file, json),
        Command::CheckConfig { path } => check_config(path.as_deref(), &cli.config),
        Command::Demo { keep } => {
            let config = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            run_async(tickbot::demo::run(config, keep))
        }
        Command::Serve | Command::Dispatch | Command::All | Command::Work { .. } => {
            let config = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = check_role_needs(&cli.command, &config) {
                eprintln!("tickbot: {e}");
                return ExitCode::from(2);
            }
            run_async(run_role(cli.command, config))
        }
        Command::Schedule {
            dry_run,
            once,
            repo,
        } => match load(&cli.config) {
            Ok(config) => schedule(dry_run, once, repo.as_deref(), &config),
            Err(code) => code,
        },
        Command::Image { action } => match load(&cli.config) {
            Ok(config) => image(action, &config),
            Err(code) => code,
        },
        Command::Forge {
            listen,
            dir,
            token,
            webhook_url,
            webhook_secret,
        } => run_async(forge(listen, dir, token, webhook_url, webhook_secret)),
    }
}

/// `serve`, `dispatch`, `work` or `all`, until SIGINT or SIGTERM.
async fn run_role(command: Command, config: tickbot::config::ServerConfig) -> anyhow::Result<()> {
    let shutdown = roles::shutdown_signal();
    let store = roles::log_store(&config)?;
    if !matches!(command, Command::Dispatch) {
        // The intake serves logs from the store, workers write them.
        roles::sweep_logs(&store, &config, shutdown.clone());
    }
    match command {
        Command::Serve => {
            let broker = roles::open_broker(&config).await?;
            roles::serve(&config, broker, &store, shutdown).await
        }
        Command::Dispatch => {
            roles::serve_metrics(&config, shutdown.clone()).await?;
            let broker = roles::open_broker(&config).await?;
            let github = roles::github(&config)?;
            roles::dispatch(&config, broker, github, shutdown).await
        }
        Command::Work { pools, concurrency } => {
            roles::serve_metrics(&config, shutdown.clone()).await?;
            let broker = roles::open_broker(&config).await?;
            let pools = match pools.is_empty() {
                true => config.worker.pools.clone(),
                false => pools,
            };
            let concurrency = concurrency.unwrap_or(config.worker.concurrency);
            let github = roles::github(&config)?;
            let pools = &pools;
            roles::work(
                &config,
                broker,
                github,
                &store,
                pools,
                concurrency,
                shutdown,
            )
            .await
        }
        _ => roles::all(&config, &store, shutdown).await,
    }
}

/// `tickbot forge`: the local forge on its own, until Ctrl-C or SIGTERM.
async fn forge(
    listen: std::net::SocketAddr,
    dir: PathBuf,
    token: String,
    webhook_url: Option<String>,
    webhook_secret: String,
) -> anyhow::Result<()> {
    let forge = tickbot::forge::Forge::start(tickbot::forge::ForgeOptions {
        dir,
        listen,
        bot_token: token,
        bot_login: "tickbot[bot]".into(),
        app: None,
    })
    .await?;
    if let Some(url) = webhook_url {
        forge.set_webhook(&url, &webhook_secret).await;
    }
    println!("forge API at {}", forge.api_url());
    let mut shutdown = roles::shutdown_signal();
    let _ = shutdown.wait_for(|stop| *stop).await;
    Ok(())
}

/// What a role cannot start without, checked before anything starts (exit code 2).
fn check_role_needs(command: &Command, config: &ServerConfig) -> anyhow::Result<()> {
    if matches!(command, Command::Serve | Command::All) {
        config.webhook_secret()?;
    }
    if matches!(
        command,
        Command::Dispatch | Command::All | Command::Work { .. }
    ) {
        roles::github_auth(config)?;
    }
    Ok(())
}

fn run_async(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tickbot: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickbot: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `tickbot image …`: exit code 2 when what was asked cannot be done as asked, 1 on trouble.
fn image(action: ImageAction, config: &ServerConfig) -> ExitCode {
    use tickbot::image_admin::{self, AdminError, ImageAdmin};
    let (ImageAction::History { name, repo }
    | ImageAction::Rollback { name, repo, .. }
    | ImageAction::Gc { name, repo, .. }) = &action;
    let Some(repo) = image_repo(repo.as_deref(), config) else {
        return ExitCode::from(2);
    };
    let name = name.clone();
    let run = async {
        let github = roles::github(config).map_err(|e| AdminError::Usage(format!("{e:#}")))?;
        let registry = tickbot::registry::Registry::new(config.registry.auth_file.clone());
        let work = config.state.dir.join("images");
        let admin = ImageAdmin::open(github, registry, repo, &name, &work).await?;
        let def = admin.image().clone();
        Ok::<_, AdminError>(match action {
            ImageAction::History { .. } => {
                let landed = admin.history().await?;
                image_admin::render_history(&def, admin.default_branch(), &landed)
            }
            ImageAction::Rollback {
                to, publish_now, ..
            } => {
                let author = (
                    config.git.author_name.as_str(),
                    config.git.author_email.as_str(),
                );
                let done = admin.rollback(&to, publish_now, author).await?;
                let mut text = format!(
                    "opened #{}: {} back to tree {} (landed in {}), branch {}\n",
                    done.pr.0,
                    def.name,
                    &done.to.tree[..12],
                    done.to.commit.short(),
                    done.branch
                );
                if !done.published.is_empty() {
                    text.push_str(&format!("moved {} back now\n", done.published.join(", ")));
                }
                text
            }
            ImageAction::Gc {
                dry_run, keep_days, ..
            } => {
                let entries = admin.gc(keep_days, dry_run).await?;
                image_admin::render_gc(&def.repository, &entries, dry_run)
            }
        })
    };
    print_or_fail(run, |e| matches!(e, AdminError::Usage(_)))
}

/// Runs a command that produces text: prints it (exit 0), or the error (exit 2 when `usage`
/// says the request itself was wrong, else 1).
fn print_or_fail<E: std::fmt::Display>(
    run: impl std::future::Future<Output = Result<String, E>>,
    usage: impl Fn(&E) -> bool,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tickbot: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tickbot: {e}");
            ExitCode::from(if usage(&e) { 2 } else { 1 })
        }
    }
}

/// `tickbot schedule`: the scheduler role until SIGTERM; `--once`: one pass, printed;
/// `--dry-run`: what is due in each repository, and why.
fn schedule(dry_run: bool, once: bool, repo: Option<&str>, config: &ServerConfig) -> ExitCode {
    use tickbot::scheduler::{self, ScheduleError};
    let repos = match repo {
        Some(r) => match r.parse() {
            Ok(r) => vec![r],
            Err(e) => {
                eprintln!("tickbot: --repo: {e}");
                return ExitCode::from(2);
            }
        },
        None => config.dispatch.repositories.clone(),
    };
    let named = repo.is_some();
    let settings = roles::scheduler_settings(config, repos);
    let run = async {
        // The role (not a single pass) serves `[metrics] listen`, installed before any call
        // records a metric; it stops on SIGINT/SIGTERM.
        let role = (!dry_run && !once).then(roles::shutdown_signal);
        if let Some(shutdown) = &role {
            roles::serve_metrics(config, shutdown.clone())
                .await
                .map_err(|e| ScheduleError::Runtime(format!("{e:#}")))?;
        }
        let github = roles::github(config).map_err(|e| ScheduleError::Usage(format!("{e:#}")))?;
        let repositories = match named {
            true => settings.repositories.clone(),
            false => scheduler::served(&github, &settings.repositories).await,
        };
        if repositories.is_empty() {
            return Err(ScheduleError::Usage(
                "no repository: name one with --repo or in [dispatch] repositories, or install \
                 the GitHub App on one"
                    .into(),
            ));
        }
        if let Some(shutdown) = role {
            // Replicas on RabbitMQ take turns through its lease; with the embedded queue there
            // is one process, `tickbot all`, so this one stands alone.
            let broker = match &config.amqp.url {
                Some(_) => Some(
                    roles::open_broker(config)
                        .await
                        .map_err(|e| ScheduleError::Runtime(format!("{e:#}")))?,
                ),
                None => None,
            };
            scheduler::run(&github, &settings, broker.as_ref(), shutdown).await;
            return Ok(String::new());
        }
        let now = chrono::Utc::now();
        // As the role's passes do: a window that opened since the last pass is open.
        let previous = now - chrono::Duration::from_std(settings.interval).unwrap_or_default();
        let author = (settings.author.0.as_str(), settings.author.1.as_str());
        let mut text = String::new();
        for repo in &repositories {
            if dry_run {
                let plan = scheduler::plan(&github, repo, &settings.work, now, previous).await?;
                text.push_str(&scheduler::render(&plan));
            } else {
                let times = (now, previous);
                let limits = settings.limits;
                let (plan, acted) =
                    scheduler::pass(&github, repo, &settings.work, times, author, limits).await?;
                text.push_str(&scheduler::render_pass(&plan, &acted));
            }
        }
        Ok::<_, ScheduleError>(text)
    };
    print_or_fail(run, |e| matches!(e, ScheduleError::Usage(_)))
}

/// The repository `tickbot image` works on: `--repo`, or the one of `[dispatch] repositories`.
fn image_repo(repo: Option<&str>, config: &ServerConfig) -> Option<tickbot::ids::RepoName> {
    let chosen = match (repo, config.dispatch.repositories.as_slice()) {
        (Some(r), _) => r.parse().map_err(|e| format!("{e}")),
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(
            "name it with --repo owner/name ([dispatch] repositories has not exactly one)"
                .to_string(),
        ),
    };
    chosen
        .map_err(|e| eprintln!("tickbot: which repository? {e}"))
        .ok()
}

fn load(path: &Path) -> Result<ServerConfig, ExitCode> {
    ServerConfig::load(path, std::env::vars()).map_err(|e| {
        eprintln!("tickbot: {e}");
        ExitCode::from(2)
    })
}

fn parse(file: &str, json: bool) -> ExitCode {
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    if let Err(e) = read {
        eprintln!("tickbot: cannot read {file}: {e}");
        return ExitCode::from(2);
    }
    let report = checklist::report(&text);
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("tickbot: cannot encode the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{report}");
    }
    ExitCode::SUCCESS
}

fn check_config(path: Option<&Path>, server_config: &Path) -> ExitCode {
    let repo_default = Path::new(repo_config::FILE_NAME);
    let path = match path {
        Some(p) => p,
        None if repo_default.exists() => repo_default,
        None => server_config,
    };
    let is_repo_config = path
        .file_name()
        .is_some_and(|n| n == repo_config::FILE_NAME);
    if is_repo_config {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("tickbot: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        // Checked against this server's limits, as its dispatcher will check it.
        let limits = match load(server_config) {
            Ok(server) => server.dispatch.limits(),
            Err(code) => return code,
        };
        match RepoConfig::parse_within(&text, &limits) {
            Ok(c) => {
                let images = match c.images.len() {
                    0 => String::new(),
                    n => {
                        let names: Vec<&str> = c.images.keys().map(String::as_str).collect();
                        format!("; {n} images: {}", names.join(", "))
                    }
                };
                println!(
                    "{}: ok ({} tasks: {}; {} test contexts{images})",
                    path.display(),
                    c.tasks.len(),
                    c.verbs().join(", "),
                    c.tests.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                ExitCode::from(2)
            }
        }
    } else {
        match load(path) {
            Ok(_) => {
                println!("{}: ok (server configuration)", path.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        }
    }
}
