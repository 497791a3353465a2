//! A whole tickbot on one machine against the local forge: forge, intake, dispatcher and
//! workers in one process, wired over real HTTP, real HMAC signatures and a real queue. The end-to-end
//! tests, the benchmarks and `tickbot demo` are built on it.

use crate::config::Secret;
use crate::dashboard::Dashboard;
use crate::dispatch::{Dispatcher, DispatcherSettings};
use crate::forge::{Forge, ForgeApp, ForgeOptions};
use crate::github::{Auth, GitHub, GitHubSettings};
use crate::ids::RepoName;
use crate::intake::{DeliveryLog, Intake};
use crate::logs::LogStore;
use crate::queue::{Broker, BrokerSettings};
use crate::worker::runtime::Runtime;
use crate::worker::{Worker, WorkerSettings};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct StackOptions {
    pub dir: PathBuf,
    /// RabbitMQ; `None` uses the embedded queue under `dir`.
    pub amqp_url: Option<String>,
    /// Queue name prefix, unique per test so tests don't see each other's messages.
    pub prefix: String,
    /// Reconciled when the dispatcher starts.
    pub repositories: Vec<RepoName>,
    /// Authenticate as this GitHub App (check runs) instead of with the bot's token
    /// (statuses).
    pub app: Option<StackApp>,
    /// Where logs go; `None`: the local store under `dir`.
    pub logs: Option<LogStore>,
}

/// A GitHub App for the stack: the forge checks its JWTs with `public_key_pem`, tickbot signs
/// them with `private_key_pem`.
#[derive(Debug, Clone)]
pub struct StackApp {
    pub id: u64,
    pub private_key_pem: String,
    pub public_key_pem: String,
    /// Lifetime of the forge's installation tokens.
    pub token_ttl: Duration,
}

impl StackApp {
    /// An app with a fresh 2048-bit RSA key pair, made with the `openssl` command.
    pub fn generate(id: u64, token_ttl: Duration) -> anyhow::Result<StackApp> {
        let openssl = |args: &[&str], input: Option<&str>| -> anyhow::Result<String> {
            use std::io::Write;
            let mut child = std::process::Command::new("openssl")
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("cannot run openssl (apt-get install openssl)")?;
            if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
                stdin.write_all(text.as_bytes())?;
            }
            let out = child.wait_with_output()?;
            anyhow::ensure!(out.status.success(), "openssl {args:?} failed");
            Ok(String::from_utf8(out.stdout)?)
        };
        let private_key_pem = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            None,
        )?;
        let public_key_pem = openssl(&["pkey", "-pubout"], Some(&private_key_pem))?;
        Ok(StackApp {
            id,
            private_key_pem,
            public_key_pem,
            token_ttl,
        })
    }
}

struct Role {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Role {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

pub struct Stack {
    pub forge: Forge,
    /// The store of job logs the stack's workers write and its intake serves.
    pub logs: LogStore,
    /// The intake's dashboard (its index, for tests that look at it directly).
    pub dashboard: Dashboard,
    pub broker: Broker,
    pub github: GitHub,
    pub intake_url: String,
    pub webhook_secret: String,
    opts: StackOptions,
    intake: Option<Role>,
    dispatcher: Option<Role>,
    workers: Vec<Role>,
}

impl Stack {
    pub async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
        let mut forge_opts = ForgeOptions::local(opts.dir.join("forge"));
        forge_opts.app = opts.app.as_ref().map(|a| ForgeApp {
            id: a.id,
            public_key_pem: a.public_key_pem.clone(),
            token_ttl: a.token_ttl,
        });
        let forge = Forge::start(forge_opts).await?;
        let mut settings = BrokerSettings::new(opts.amqp_url.clone(), opts.dir.join("queue"));
        settings.prefix = opts.prefix.clone();
        let broker = Broker::open(&settings).await?;
        broker.declare(&["default".to_string()]).await?;
        let auth = match &opts.app {
            Some(a) => Auth::App {
                app_id: a.id,
                private_key_pem: a.private_key_pem.clone(),
            },
            None => Auth::Token(forge.bot_token().to_string()),
        };
        let github = GitHub::new(GitHubSettings::new(forge.api_url(), auth))?;

        let webhook_secret = format!("secret-{}", uuid::Uuid::new_v4());
        let deliveries =
            DeliveryLog::open(&opts.dir.join("intake")).context("cannot open the delivery log")?;
        let webhook = crate::config::WebhookConfig::default();
        let logs = match &opts.logs {
            Some(store) => store.clone(),
            None => LogStore::local(opts.dir.join("logs"))?,
        };
        let pools = vec!["default".into()];
        let dashboard = Dashboard::open(&opts.dir, logs.clone(), broker.clone(), pools, false)?;
        let app = Intake::new(
            Secret::new(webhook_secret.clone()),
            broker.clone(),
            deliveries,
            dashboard.clone(),
            webhook.body_timeout,
        )
        .router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let intake_url = format!("http://{}", listener.local_addr()?);
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(dashboard.clone().follow(stopped.clone()));
        let task = tokio::spawn(async move {
            crate::intake::serve(listener, app, webhook.timeouts(), async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        });
        forge
            .set_webhook(&format!("{intake_url}/webhook"), &webhook_secret)
            .await;

        let mut stack = Stack {
            forge,
            logs,
            dashboard,
            broker,
            github,
            intake_url,
            webhook_secret,
            opts,
            intake: Some(Role { stop, task }),
            dispatcher: None,
            workers: Vec::new(),
        };
        stack.start_dispatcher();
        Ok(stack)
    }

    /// Starts a dispatcher (it reconciles open PRs first); tests stop and start it to show
    /// that nothing is lost or queued twice across a restart.
    pub fn start_dispatcher(&mut self) {
        let dispatcher = Dispatcher::new(
            self.github.clone(),
            self.broker.clone(),
            DispatcherSettings {
                logs_url: self.intake_url.clone(),
                repositories: self.opts.repositories.clone(),
                bot_login: Some(self.forge.bot_login().to_string()),
                pools: vec!["default".into()],
                registry: Default::default(),
                images_dir: self.opts.dir.join("images"),
                git_author: ("tickbot".into(), "tickbot@localhost".into()),
                limits: Default::default(),
                merge_by_default: false,
            },
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            if let Err(e) = dispatcher.run(stopped).await {
                tracing::error!(error = %e, "dispatcher stopped");
            }
        });
        self.dispatcher = Some(Role { stop, task });
    }

    pub async fn stop_dispatcher(&mut self) {
        if let Some(role) = self.dispatcher.take() {
            role.stop().await;
        }
    }

    /// The queue name prefix of this stack (for a worker started as its own process).
    pub fn prefix(&self) -> &str {
        &self.opts.prefix
    }

    /// The settings of a worker in this stack: its logs are served by this stack's intake,
    /// and it pushes to the forge as the bot.
    pub fn worker_settings(
        &self,
        name: &str,
        runtime: Runtime,
        concurrency: u16,
    ) -> WorkerSettings {
        WorkerSettings {
            name: name.to_string(),
            pool: "default".into(),
            concurrency,
            state_dir: self.opts.dir.clone(),
            logs: self.logs.clone(),
            work_dir: self.opts.dir.join("work"),
            runtime,
            logs_url: self.intake_url.clone(),
            author_name: "tickbot".into(),
            author_email: "tickbot@localhost".into(),
            // As a GitHub App, installation tokens (like production); else the bot's token.
            github: self.github.clone(),
            memory: "1g".into(),
            pids_limit: 1024,
            max_log: crate::worker::job_log::DEFAULT_MAX_LOG,
            debug_hold: Duration::from_secs(30 * 60),
            prefix: self.opts.prefix.clone(),
            stop_grace: Duration::from_secs(10),
            secret_values: Default::default(),
            registry: Default::default(),
        }
    }

    /// Starts a worker in this process (tests that kill a worker run it as its own process).
    pub fn start_worker(&mut self, settings: WorkerSettings) {
        let worker = Worker::new(self.broker.clone(), settings);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            if let Err(e) = worker.run(stopped).await {
                tracing::error!(error = %e, "worker stopped");
            }
        });
        self.workers.push(Role { stop, task });
    }

    pub async fn stop_workers(&mut self) {
        for role in self.workers.drain(..) {
            role.stop().await;
        }
    }

    pub async fn shutdown(mut self) {
        self.stop_workers().await;
        self.stop_dispatcher().await;
        if let Some(role) = self.intake.take() {
            role.stop().await;
        }
        self.forge.shutdown().await;
        // The queues carry this stack's unique prefix: nobody else will ever use them.
        if let Err(e) = self.broker.delete(&["default".to_string()]).await {
            tracing::warn!(error = %e, "cannot delete the stack's queues");
        }
    }
}
