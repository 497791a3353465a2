//! Starting tickbot's roles from a [`ServerConfig`]: `serve`, `dispatch`, `work`, and `all` in
//! one process. Each role stops cleanly when the shutdown signal fires (SIGINT or SIGTERM).

use crate::config::ServerConfig;
use crate::dispatch::{Dispatcher, DispatcherSettings};
use crate::github::{Auth, GitHub, GitHubSettings};
use crate::intake::{DeliveryLog, Intake};
use crate::logs::LogStore;
use crate::queue::{Broker, BrokerSettings};
use crate::worker::runtime::Runtime;
use crate::worker::{Worker, WorkerSettings};
use anyhow::Context;
use tokio::sync::watch;

pub fn broker_settings(config: &ServerConfig) -> BrokerSettings {
    let mut settings = BrokerSettings::new(
        config.amqp.url.as_ref().map(|u| u.expose().to_string()),
        config.state.dir.join("queue"),
    );
    settings.prefix = config.amqp.prefix.clone();
    settings.max_deliveries = config.amqp.max_deliveries;
    settings
}

pub async fn open_broker(config: &ServerConfig) -> anyhow::Result<Broker> {
    let broker = Broker::open(&broker_settings(config))
        .await
        .context("cannot open the message queue")?;
    broker
        .declare(&config.worker.pools)
        .await
        .context("cannot declare the queues")?;
    Ok(broker)
}

/// How to authenticate to GitHub; checked before any role starts.
pub fn github_auth(config: &ServerConfig) -> anyhow::Result<Auth> {
    Ok(
        match (config.github.app_id, &config.github.private_key_file) {
            (Some(app_id), Some(path)) => Auth::App {
                app_id,
                private_key_pem: std::fs::read_to_string(path).with_context(|| {
                    format!("github.private_key_file: cannot read {}", path.display())
                })?,
            },
            _ => Auth::Token(
                config
                    .github_token()?
                    .context(
                        "github.token is required (or token_file, or app_id + private_key_file); \
                     set TICKBOT__GITHUB__TOKEN",
                    )?
                    .expose()
                    .to_string(),
            ),
        },
    )
}

/// The GitHub client; must be called inside the tokio runtime.
pub fn github(config: &ServerConfig) -> anyhow::Result<GitHub> {
    Ok(GitHub::new(GitHubSettings::new(
        config.github.api_url.clone(),
        github_auth(config)?,
    ))?)
}

/// A receiver that turns true on SIGINT/SIGTERM.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

/// `[metrics] listen`: serves this process's `/metrics` until shutdown, if configured.
pub async fn serve_metrics(
    config: &ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(addr) = &config.metrics.listen else {
        return Ok(());
    };
    // Installed before the role starts: what is recorded earlier is lost.
    crate::telemetry::metrics();
    let listener = tokio::net::TcpListener::bind(addr.as_str())
        .await
        .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(crate::intake::render_metrics),
    );
    tracing::info!(%addr, "metrics listening");
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(())
}

/// The store of job logs, records and artifacts that `[logs] store` names.
pub fn log_store(config: &ServerConfig) -> anyhow::Result<LogStore> {
    Ok(LogStore::open(
        &config.logs.store,
        &config.logs.s3(),
        &config.state.dir,
    )?)
}

/// `[logs] keep`: deletes old job logs from the store, now and every hour, until shutdown.
pub fn sweep_logs(store: &LogStore, config: &ServerConfig, shutdown: watch::Receiver<bool>) {
    tokio::spawn(crate::logs::retention::keep_swept(
        store.clone(),
        config.logs.keep,
        shutdown,
    ));
}

/// The dashboard of the intake, its index opened in the state directory.
pub fn dashboard(
    config: &ServerConfig,
    store: &LogStore,
    broker: &Broker,
) -> anyhow::Result<crate::dashboard::Dashboard> {
    crate::dashboard::Dashboard::open(
        &config.state.dir,
        store.clone(),
        broker.clone(),
        config.worker.pools.clone(),
        config.dashboard.private,
    )
}

/// Runs the intake (and its dashboard) until shutdown.
pub async fn serve(
    config: &ServerConfig,
    broker: Broker,
    store: &LogStore,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let secret = config.webhook_secret()?;
    let deliveries = DeliveryLog::open(&config.state.dir).with_context(|| {
        format!(
            "cannot open the delivery log in {}",
            config.state.dir.display()
        )
    })?;
    let dashboard = dashboard(config, store, &broker)?;
    tokio::spawn(dashboard.clone().follow(shutdown.clone()));
    let app = Intake::new(
        secret,
        broker,
        deliveries,
        dashboard,
        config.webhook.body_timeout,
    )
    .router();
    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("webhook.listen: cannot listen on {addr}"))?;
    tracing::info!(%addr, "intake listening");
    crate::intake::serve(listener, app, config.webhook.timeouts(), async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await;
    Ok(())
}

pub async fn dispatch(
    config: &ServerConfig,
    broker: Broker,
    github: GitHub,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dispatcher = Dispatcher::new(
        github,
        broker,
        DispatcherSettings {
            logs_url: config.logs.public_url.clone(),
            repositories: config.dispatch.repositories.clone(),
            bot_login: config.dispatch.bot_login.clone(),
            pools: config.worker.pools.clone(),
            registry: crate::registry::Registry::new(config.registry.auth_file.clone()),
            images_dir: config.state.dir.join("images"),
            git_author: (
                config.git.author_name.clone(),
                config.git.author_email.clone(),
            ),
            limits: config.dispatch.limits(),
            merge_by_default: config.dispatch.merge,
        },
    );
    dispatcher.run(shutdown).await?;
    Ok(())
}

/// The job runtime named by `[worker] runtime`; the host runtime only with a warning.
fn runtime(config: &ServerConfig) -> Runtime {
    match config.worker.runtime.as_str() {
        "host" => {
            tracing::warn!(
                "worker.runtime = \"host\": jobs run on this machine without any isolation; \
                 for development only"
            );
            Runtime::Host
        }
        _ => Runtime::Podman {
            containers_conf: config.worker.containers_conf.clone(),
        },
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

/// Runs a worker per pool (`pools`, default all of `[worker] pools`) until shutdown.
pub async fn work(
    config: &ServerConfig,
    broker: Broker,
    github: GitHub,
    store: &LogStore,
    pools: &[String],
    concurrency: u16,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let runtime = runtime(config);
    if let Err(e) = runtime.check().await {
        anyhow::bail!("worker.runtime: {e}");
    }
    let name = config.worker.name.clone().unwrap_or_else(host_name);
    // Secret values come from the worker's environment (reference §4 `[secrets]`), read once here;
    // tickbot's own settings are never among what a job can be granted.
    let secret_values: std::sync::Arc<std::collections::HashMap<String, String>> =
        std::sync::Arc::new(
            std::env::vars()
                .filter(|(k, _)| !crate::config::is_setting(k))
                .collect(),
        );
    let mut workers = tokio::task::JoinSet::new();
    for pool in pools {
        let worker = Worker::new(
            broker.clone(),
            WorkerSettings {
                name: name.clone(),
                pool: pool.clone(),
                concurrency,
                state_dir: config.state.dir.clone(),
                logs: store.clone(),
                work_dir: config
                    .worker
                    .work_dir
                    .clone()
                    .unwrap_or_else(|| config.state.dir.join("work")),
                runtime: runtime.clone(),
                logs_url: config.logs.public_url.clone(),
                author_name: config.git.author_name.clone(),
                author_email: config.git.author_email.clone(),
                // `all` shares the client (and its cached App tokens) with the dispatcher.
                github: github.clone(),
                memory: config.worker.memory.clone(),
                pids_limit: config.worker.pids_limit,
                max_log: config.worker.max_log.as_u64(),
                debug_hold: config.worker.debug_hold,
                prefix: config.amqp.prefix.clone(),
                stop_grace: config.worker.stop_grace,
                secret_values: secret_values.clone(),
                registry: crate::registry::Registry::new(config.registry.auth_file.clone()),
            },
        );
        workers.spawn(worker.run(shutdown.clone()));
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}

/// Every role in one process, sharing one broker connection.
/// The scheduler's settings from the server configuration, for `repositories`.
pub fn scheduler_settings(
    config: &ServerConfig,
    repositories: Vec<crate::ids::RepoName>,
) -> crate::scheduler::SchedulerSettings {
    crate::scheduler::SchedulerSettings {
        repositories,
        work: config.state.dir.join("schedule"),
        author: (
            config.git.author_name.clone(),
            config.git.author_email.clone(),
        ),
        limits: crate::scheduler::Limits {
            max_open: config.schedule.max_open,
            max_per_hour: config.schedule.max_per_hour,
        },
        interval: config.schedule.interval,
    }
}

/// Every role in one process; the scheduler serves `[dispatch] repositories`.
pub async fn all(
    config: &ServerConfig,
    store: &LogStore,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let broker = open_broker(config).await?;
    let github = github(config)?;
    let schedule = scheduler_settings(config, config.dispatch.repositories.clone());
    let scheduler_stop = shutdown.clone();
    // One process owns the embedded queue: no other scheduler can run beside it.
    let lease_broker = config.amqp.url.is_some().then(|| broker.clone());
    let scheduler = async {
        crate::scheduler::run(&github, &schedule, lease_broker.as_ref(), scheduler_stop).await;
        Ok::<(), anyhow::Error>(())
    };
    tokio::try_join!(
        scheduler,
        serve(config, broker.clone(), store, shutdown.clone()),
        dispatch(config, broker.clone(), github.clone(), shutdown.clone()),
        work(
            config,
            broker,
            github.clone(),
            store,
            &config.worker.pools,
            config.worker.concurrency,
            shutdown
        ),
    )?;
    Ok(())
}
