//! One conformance suite for both queue engines: every case runs once against the embedded
//! queue (in a temporary directory) and once against RabbitMQ (`TICKBOT_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). RabbitMQ must be running: the AMQP cases fail, and
//! say how to start it, rather than skip.
//!
//! Every AMQP case uses its own queue prefix and deletes its queues at the end, even when it
//! fails. The restart case stops and starts the RabbitMQ application, so it takes a process-wide
//! write lock that every other AMQP case holds for reading.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tickbot::queue::{
    Broker, BrokerSettings, Consumer, Delivery, Outgoing, QueueError, QueueKind, definitions_json,
};
use tokio::sync::RwLock;
use tokio::time::timeout;

/// Bound for anything that is expected to happen.
const STEP: Duration = Duration::from_secs(20);
/// How long "nothing more arrives" is watched.
const QUIET: Duration = Duration::from_millis(500);

static AMQP_EXCLUSIVE: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Embedded,
    Amqp,
}

fn amqp_url() -> String {
    std::env::var("TICKBOT_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A broker with a private topology; deletes it on drop.
struct Env {
    backend: Backend,
    settings: BrokerSettings,
    broker: Option<Broker>,
    pools: Vec<String>,
    _dir: tempfile::TempDir,
    _shared: Option<tokio::sync::RwLockReadGuard<'static, ()>>,
    _exclusive: Option<tokio::sync::RwLockWriteGuard<'static, ()>>,
}

impl Env {
    async fn new(backend: Backend, case: &str) -> Env {
        Env::with(backend, case, 5, false).await
    }

    async fn with(backend: Backend, case: &str, max_deliveries: u32, exclusive: bool) -> Env {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let (mut shared, mut excl) = (None, None);
        if backend == Backend::Amqp {
            if exclusive {
                excl = Some(AMQP_EXCLUSIVE.write().await);
            } else {
                shared = Some(AMQP_EXCLUSIVE.read().await);
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let settings = BrokerSettings {
            amqp_url: (backend == Backend::Amqp).then(amqp_url),
            state_dir: dir.path().join("state"),
            prefix: format!("test-{case}-{}", &id[..8]),
            max_deliveries,
        };
        let broker = open(&settings).await;
        let pools = vec!["default".to_string()];
        broker
            .declare(&pools)
            .await
            .expect("declaring the topology");
        Env {
            backend,
            settings,
            broker: Some(broker),
            pools,
            _dir: dir,
            _shared: shared,
            _exclusive: excl,
        }
    }

    fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("broker is open")
    }

    /// Drops this handle (for the embedded engine: the whole process state) and opens anew.
    async fn reopen(&mut self) {
        self.broker = None;
        self.broker = Some(open(&self.settings).await);
    }

    async fn publish(&self, queue: &QueueKind, id: &str, priority: u8) {
        let msg = Outgoing {
            message_id: id.to_string(),
            body: format!("body of {id}").into_bytes(),
            priority,
        };
        timeout(STEP, self.broker().publish(queue, msg))
            .await
            .expect("publish timed out")
            .expect("publish failed");
    }

    async fn consume(&self, queue: &QueueKind, prefetch: u16) -> Consumer {
        timeout(STEP, self.broker().consume(queue, prefetch))
            .await
            .expect("consume timed out")
            .expect("consume failed")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if self.backend != Backend::Amqp {
            return;
        }
        // Async work cannot run in drop, and this may run during a panic: delete the test
        // queues from a separate thread with its own runtime and connection.
        let settings = self.settings.clone();
        let pools = self.pools.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a cleanup runtime");
            rt.block_on(async {
                if let Ok(Ok(broker)) = timeout(STEP, Broker::open(&settings)).await {
                    let _ = timeout(STEP, broker.delete(&pools)).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

async fn open(settings: &BrokerSettings) -> Broker {
    match timeout(STEP, Broker::open(settings)).await {
        Ok(Ok(broker)) => broker,
        Ok(Err(e @ QueueError::Unreachable { .. })) => panic!(
            "{e}\nThe AMQP conformance tests need RabbitMQ: start it with `rabbitmq-server -detached` \
             (then `rabbitmqctl await_startup`), or set TICKBOT_TEST_AMQP_URL"
        ),
        Ok(Err(e)) => panic!("opening the broker failed: {e}"),
        Err(_) => panic!("opening the broker timed out"),
    }
}

async fn next(consumer: &mut Consumer) -> Delivery {
    timeout(STEP, consumer.next())
        .await
        .expect("no delivery within the time limit")
        .expect("consumer ended")
        .expect("consumer failed")
}

/// Takes the next delivery, asserts it is message `id` (with the body published for it) at
/// `attempt` with `priority`, and acks it.
async fn ack_next_as(consumer: &mut Consumer, id: &str, attempt: u32, priority: u8) {
    let d = next(consumer).await;
    let body = format!("body of {id}");
    assert_eq!(
        (
            d.message_id.as_str(),
            d.body.as_slice(),
            d.attempt,
            d.priority
        ),
        (id, body.as_bytes(), attempt, priority)
    );
    d.ack().await.expect("ack");
}

async fn assert_quiet(consumer: &mut Consumer) {
    if let Ok(Some(Ok(d))) = timeout(QUIET, consumer.next()).await {
        panic!(
            "unexpected delivery {} (attempt {})",
            d.message_id, d.attempt
        );
    }
}

fn jobs() -> QueueKind {
    QueueKind::Jobs("default".to_string())
}

// ---------------------------------------------------------------------------------------------
// The cases.

async fn publish_consume_ack(b: Backend) {
    let mut env = Env::new(b, "ack").await;
    env.publish(&QueueKind::Results, "m1", 0).await;
    let mut c = env.consume(&QueueKind::Results, 1).await;
    let d = next(&mut c).await;
    assert_eq!(
        (d.message_id.as_str(), d.body.as_slice(), d.attempt),
        ("m1", b"body of m1".as_slice(), 1)
    );
    d.ack().await.expect("ack");
    drop(c);
    // Gone: a new consumer sees nothing, and neither does a new process.
    let mut c = env.consume(&QueueKind::Results, 1).await;
    assert_quiet(&mut c).await;
    drop(c);
    env.reopen().await;
    let mut c = env.consume(&QueueKind::Results, 1).await;
    assert_quiet(&mut c).await;
    assert_eq!(
        env.broker().ready_count(&QueueKind::Results).await.ok(),
        Some(0)
    );
}

async fn consumer_dropped_redelivers(b: Backend) {
    let env = Env::new(b, "crash").await;
    env.publish(&jobs(), "j1", 3).await;
    let mut c = env.consume(&jobs(), 1).await;
    let d = next(&mut c).await;
    assert_eq!(d.attempt, 1);
    // A crash: the consumer goes away while the message is being worked on.
    drop(c);
    drop(d);
    let mut c = env.consume(&jobs(), 1).await;
    ack_next_as(&mut c, "j1", 2, 3).await;
    assert_quiet(&mut c).await;
}

async fn delivery_dropped_returns(b: Backend) {
    let env = Env::new(b, "dropped").await;
    env.publish(&QueueKind::Results, "r1", 0).await;
    let mut c = env.consume(&QueueKind::Results, 1).await;
    let d = next(&mut c).await;
    assert_eq!(d.attempt, 1);
    // A handler that returns early without settling: the same consumer gets it back.
    drop(d);
    let d = next(&mut c).await;
    assert_eq!((d.message_id.as_str(), d.attempt), ("r1", 2));
    d.ack().await.expect("ack");
    assert_quiet(&mut c).await;
}

async fn process_death_redelivers(b: Backend) {
    let mut env = Env::new(b, "death").await;
    env.publish(&jobs(), "j1", 0).await;
    // The embedded queue belongs to one process at a time: let the child have it.
    env.broker = None;
    // A real crash: a child process takes the message and aborts without settling it.
    let exe = std::env::current_exe().expect("test binary path");
    let status = timeout(
        STEP,
        tokio::process::Command::new(exe)
            .args([
                "--exact",
                "crash_child_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CRASH_CHILD_ENV,
                serde_json::to_string(&ChildArgs::from(&env.settings)).expect("json"),
            )
            .status(),
    )
    .await
    .expect("the crashing child did not finish")
    .expect("starting the crashing child");
    assert!(!status.success(), "the child was meant to abort");
    env.reopen().await;
    let mut c = env.consume(&jobs(), 1).await;
    let d = next(&mut c).await;
    assert_eq!((d.message_id.as_str(), d.attempt), ("j1", 2));
    d.ack().await.expect("ack");
}

const CRASH_CHILD_ENV: &str = "TICKBOT_TEST_CRASH_CHILD";

#[derive(serde::Serialize, serde::Deserialize)]
struct ChildArgs {
    amqp_url: Option<String>,
    state_dir: std::path::PathBuf,
    prefix: String,
}

impl From<&BrokerSettings> for ChildArgs {
    fn from(s: &BrokerSettings) -> ChildArgs {
        ChildArgs {
            amqp_url: s.amqp_url.clone(),
            state_dir: s.state_dir.clone(),
            prefix: s.prefix.clone(),
        }
    }
}

/// Not a test on its own: the child of `process_death_redelivers`, which sets the variable.
#[tokio::test]
async fn crash_child_helper() {
    let Ok(args) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let args: ChildArgs = serde_json::from_str(&args).expect("child arguments");
    let settings = BrokerSettings {
        amqp_url: args.amqp_url,
        state_dir: args.state_dir,
        prefix: args.prefix,
        max_deliveries: 5,
    };
    let broker = open(&settings).await;
    let mut c = timeout(STEP, broker.consume(&jobs(), 1))
        .await
        .expect("consume timed out")
        .expect("consume");
    let d = next(&mut c).await;
    assert_eq!(d.attempt, 1);
    std::process::abort();
}

async fn retry_until_dead(b: Backend) {
    let env = Env::with(b, "retry", 3, false).await;
    env.publish(&jobs(), "poison", 7).await;
    let mut c = env.consume(&jobs(), 1).await;
    for attempt in 1..=3 {
        let d = next(&mut c).await;
        assert_eq!((d.message_id.as_str(), d.attempt), ("poison", attempt));
        d.retry().await.expect("retry");
    }
    assert_quiet(&mut c).await;
    let mut dead = env.consume(&QueueKind::Dead, 1).await;
    let d = next(&mut dead).await;
    assert_eq!(
        (d.message_id.as_str(), d.body.as_slice(), d.attempt),
        ("poison", b"body of poison".as_slice(), 3)
    );
    d.ack().await.expect("ack");
}

async fn crashes_until_dead(b: Backend) {
    let env = Env::with(b, "poison", 3, false).await;
    env.publish(&QueueKind::Results, "crasher", 0).await;
    for attempt in 1..=3 {
        let mut c = env.consume(&QueueKind::Results, 1).await;
        let d = next(&mut c).await;
        assert_eq!(d.attempt, attempt);
        drop(c);
        drop(d);
    }
    // The next consumer never sees it again (RabbitMQ's copy is moved when it next arrives).
    let mut c = env.consume(&QueueKind::Results, 1).await;
    assert_quiet(&mut c).await;
    let mut dead = env.consume(&QueueKind::Dead, 1).await;
    let d = next(&mut dead).await;
    assert_eq!((d.message_id.as_str(), d.attempt), ("crasher", 3));
    d.ack().await.expect("ack");
}

async fn explicit_dead_letter(b: Backend) {
    let env = Env::new(b, "dead").await;
    env.publish(&QueueKind::Events, "bad", 0).await;
    let mut c = env.consume(&QueueKind::Events, 1).await;
    next(&mut c).await.dead_letter().await.expect("dead_letter");
    let mut dead = env.consume(&QueueKind::Dead, 1).await;
    let d = next(&mut dead).await;
    assert_eq!((d.message_id.as_str(), d.attempt), ("bad", 1));
    d.ack().await.expect("ack");
    // The dispatcher's copy, so a dead job does not stay "In progress"; failing it there
    // keeps it there (no dead-letter loop).
    let mut notices = env.consume(&QueueKind::DeadNotices, 1).await;
    let n = next(&mut notices).await;
    assert_eq!(n.message_id, "bad");
    n.dead_letter().await.expect("dead_letter a notice");
    let d = next(&mut dead).await;
    assert_eq!(
        d.message_id, "bad",
        "an operator still sees it once more in dead"
    );
    d.ack().await.expect("ack");
    assert!(
        timeout(QUIET, notices.next()).await.is_err(),
        "a notice that failed is not copied back to the notices"
    );
}

async fn priority_order(b: Backend) {
    let env = Env::new(b, "prio").await;
    for (id, p) in [
        ("low1", 1),
        ("high1", 9),
        ("mid1", 5),
        ("low2", 1),
        ("high2", 9),
    ] {
        env.publish(&jobs(), id, p).await;
    }
    let mut c = env.consume(&jobs(), 1).await;
    let mut order = Vec::new();
    for _ in 0..5 {
        let d = next(&mut c).await;
        order.push(d.message_id.clone());
        d.ack().await.expect("ack");
    }
    assert_eq!(order, ["high1", "high2", "mid1", "low1", "low2"]);
}

async fn persistence_across_restart(b: Backend) {
    let mut env = Env::with(b, "restart", 5, true).await;
    env.publish(&jobs(), "kept", 2).await;
    match b {
        Backend::Embedded => env.reopen().await,
        Backend::Amqp => {
            let mut results = env.consume(&QueueKind::Results, 1).await;
            rabbitmqctl(&["stop_app"]).await;
            let down = env
                .broker()
                .publish(
                    &QueueKind::Results,
                    Outgoing {
                        message_id: "lost".into(),
                        body: vec![],
                        priority: 0,
                    },
                )
                .await;
            assert!(
                down.is_err(),
                "publish succeeded while RabbitMQ was stopped"
            );
            rabbitmqctl(&["start_app"]).await;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !env.broker().is_ready().await {
                assert!(
                    Instant::now() < deadline,
                    "the broker did not reconnect within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // The consumer from before the restart resumes by itself.
            env.publish(&QueueKind::Results, "after", 0).await;
            let d = next(&mut results).await;
            assert_eq!((d.message_id.as_str(), d.attempt), ("after", 1));
            d.ack().await.expect("ack");
        }
    }
    let mut c = env.consume(&jobs(), 1).await;
    ack_next_as(&mut c, "kept", 1, 2).await;
}

async fn rabbitmqctl(args: &[&str]) {
    let out = timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("rabbitmqctl")
            .args(args)
            .output(),
    )
    .await
    .expect("rabbitmqctl timed out")
    .expect("running rabbitmqctl (is it installed and are we allowed to use it?)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn prefetch_respected(b: Backend) {
    let env = Env::new(b, "prefetch").await;
    for i in 0..5 {
        env.publish(&QueueKind::Results, &format!("m{i}"), 0).await;
    }
    let mut c = env.consume(&QueueKind::Results, 2).await;
    let first = next(&mut c).await;
    let second = next(&mut c).await;
    assert_quiet(&mut c).await;
    first.ack().await.expect("ack");
    let third = next(&mut c).await;
    assert_quiet(&mut c).await;
    let ids = [&second, &third].map(|d| d.message_id.clone());
    assert_eq!(ids, ["m1", "m2"]);
    second.ack().await.expect("ack");
    third.ack().await.expect("ack");
}

async fn single_active_consumer(b: Backend) {
    let env = Env::new(b, "sac").await;
    let mut a = env.consume(&QueueKind::Events, 10).await;
    let mut other = env.consume(&QueueKind::Events, 10).await;
    for i in 1..=3 {
        env.publish(&QueueKind::Events, &format!("e{i}"), 0).await;
    }
    for i in 1..=3 {
        let d = next(&mut a).await;
        assert_eq!(d.message_id, format!("e{i}"));
        d.ack().await.expect("ack");
    }
    assert_quiet(&mut other).await;
    // The active one takes e4 and dies; the other takes over, including e4.
    env.publish(&QueueKind::Events, "e4", 0).await;
    let held = next(&mut a).await;
    assert_eq!(held.message_id, "e4");
    drop(a);
    drop(held);
    let d = next(&mut other).await;
    assert_eq!((d.message_id.as_str(), d.attempt), ("e4", 2));
    d.ack().await.expect("ack");
    env.publish(&QueueKind::Events, "e5", 0).await;
    let d = next(&mut other).await;
    assert_eq!((d.message_id.as_str(), d.attempt), ("e5", 1));
    d.ack().await.expect("ack");
}

async fn concurrent_publishes(b: Backend) {
    let env = Env::new(b, "many").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let broker = env.broker().clone();
        tasks.spawn(async move {
            let msg = Outgoing {
                message_id: format!("m{i}"),
                body: i.to_string().into_bytes(),
                priority: (i % 10) as u8,
            };
            broker
                .publish(&QueueKind::Jobs("default".into()), msg)
                .await
        });
    }
    let published = timeout(Duration::from_secs(60), async {
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            r.expect("publisher task").expect("publish");
            ok += 1;
        }
        ok
    })
    .await
    .expect("1000 publishes did not finish within 60 s");
    assert_eq!(published, 1000);
    let mut c = env.consume(&jobs(), 100).await;
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let d = next(&mut c).await;
        assert_eq!(
            d.body,
            &d.message_id.as_bytes()[1..],
            "body and id disagree"
        );
        assert!(
            seen.insert(d.message_id.clone()),
            "{} delivered twice",
            d.message_id
        );
        d.ack().await.expect("ack");
    }
    assert_quiet(&mut c).await;
}

async fn undeclared_queue_is_an_error(b: Backend) {
    let env = Env::new(b, "undeclared").await;
    let missing = QueueKind::Jobs("nopool".into());
    let err = env
        .broker()
        .publish(
            &missing,
            Outgoing {
                message_id: "x".into(),
                body: vec![],
                priority: 0,
            },
        )
        .await
        .expect_err("publishing to an undeclared queue must fail");
    assert!(matches!(err, QueueError::NotDeclared { .. }), "{err}");
    let err = env
        .broker()
        .consume(&missing, 1)
        .await
        .expect_err("consuming an undeclared queue must fail");
    assert!(matches!(err, QueueError::NotDeclared { .. }), "{err}");
    // Declaring twice is fine.
    env.broker().declare(&env.pools).await.expect("redeclare");
}

/// Every subscriber gets each broadcast once; one sent before subscribing is not replayed.
async fn broadcasts_reach_every_subscriber(b: Backend) {
    let env = Env::new(b, "broadcast").await;
    env.broker()
        .broadcast(b"before anyone listens".to_vec())
        .await
        .expect("a broadcast without subscribers is fine");
    let mut first = env
        .broker()
        .subscribe_broadcasts()
        .await
        .expect("subscribe");
    let mut second = env
        .broker()
        .subscribe_broadcasts()
        .await
        .expect("subscribe");
    env.broker()
        .broadcast(b"cancel j1".to_vec())
        .await
        .expect("broadcast");
    for sub in [&mut first, &mut second] {
        let got = timeout(STEP, sub.recv()).await.expect("broadcast in time");
        assert_eq!(got.as_deref(), Some(&b"cancel j1"[..]));
        assert!(
            timeout(QUIET, sub.recv()).await.is_err(),
            "each broadcast arrives once, and earlier ones are not replayed"
        );
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Embedded).await
                }
            )*
        }
        mod amqp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Amqp).await
                }
            )*
        }
    };
}

conformance!(
    publish_consume_ack,
    consumer_dropped_redelivers,
    delivery_dropped_returns,
    process_death_redelivers,
    retry_until_dead,
    crashes_until_dead,
    explicit_dead_letter,
    priority_order,
    persistence_across_restart,
    prefetch_respected,
    single_active_consumer,
    concurrent_publishes,
    undeclared_queue_is_an_error,
    broadcasts_reach_every_subscriber,
);

// ---------------------------------------------------------------------------------------------
// Engine-specific checks.

#[tokio::test]
async fn definitions_file_matches_declared_topology() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/queue/definitions.json");
    let text = std::fs::read_to_string(path).expect("reading queue/definitions.json");
    let file: serde_json::Value = serde_json::from_str(&text).expect("definitions.json is JSON");
    let expected = definitions_json("tickbot", &["default".to_string()]).expect("topology");
    assert_eq!(
        file, expected,
        "queue/definitions.json differs from what declare() creates"
    );
}

#[tokio::test]
async fn embedded_queue_is_owned_by_one_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = BrokerSettings::new(None, dir.path().to_path_buf());
    let _first = open(&settings).await;
    let err = Broker::open(&settings)
        .await
        .expect_err("a second owner must be refused");
    assert!(matches!(err, QueueError::EmbeddedLocked { .. }), "{err}");
}

#[tokio::test]
async fn unreachable_rabbitmq_names_the_fix_and_hides_the_password() {
    let settings = BrokerSettings::new(
        Some("amqp://guest:s3cret@127.0.0.1:1/%2f".into()),
        std::env::temp_dir(),
    );
    let err = Broker::open(&settings)
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("is rabbitmq-server running?"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// Throughput of confirmed publishes from 32 concurrent publishers (the intake's goal is
/// ≥ 5,000/s on RabbitMQ). Run with `cargo test --release --test queue_conformance -- --ignored
/// --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn throughput_32_publishers() {
    for backend in [Backend::Amqp, Backend::Embedded] {
        let env = Env::new(backend, "throughput").await;
        let total = 20_000;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..32 {
            let broker = env.broker().clone();
            tasks.spawn(async move {
                for i in 0..total / 32 {
                    let msg = Outgoing {
                        message_id: format!("{t}-{i}"),
                        body: vec![b'x'; 2048],
                        priority: 0,
                    };
                    broker.publish(&QueueKind::Events, msg).await?;
                }
                Ok::<_, QueueError>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task").expect("publish");
        }
        let rate = f64::from(total / 32 * 32) / started.elapsed().as_secs_f64();
        println!("{backend:?}: {rate:.0} confirmed publishes/s (32 publishers, 2 KiB)");
    }
}
