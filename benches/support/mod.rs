//! Helpers shared by the bench targets (`pipeline`, `worker`, `contexts`), so each number is
//! set up, timed and summarized the same way. Each target includes this module with
//! `#[path = "support/mod.rs"] mod support;`.
#![allow(dead_code)] // each bench target uses its own part of this

pub mod fixtures;
pub mod procfs;
pub mod stats;

use std::path::Path;
use tickbot::stack::{Stack, StackApp, StackOptions};

/// The local RabbitMQ the benches measure against (all traffic stays on 127.0.0.1).
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The command line's non-flag arguments: the sections (or shapes) a run is limited to.
pub fn requested_sections() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// Whether `section` runs: it was named, or nothing was (then every section runs).
pub fn section_wanted(requested: &[String], section: &str) -> bool {
    requested.is_empty() || requested.iter().any(|o| o == section)
}

/// A queue prefix no other run uses, so benches never see each other's messages.
pub fn fresh_prefix(stem: &str) -> String {
    format!("{stem}-{}", uuid::Uuid::new_v4())
}

/// The in-process stack on the local RabbitMQ, under a fresh queue prefix.
pub async fn start_stack(dir: &Path, prefix_stem: &str, app: Option<StackApp>) -> Stack {
    Stack::start(StackOptions {
        dir: dir.to_path_buf(),
        amqp_url: Some(AMQP.into()),
        prefix: fresh_prefix(prefix_stem),
        repositories: vec![],
        app,
        logs: None,
    })
    .await
    .expect("a stack (is RabbitMQ running at 127.0.0.1:5672?)")
}

/// A port nothing listens on yet, for a spawned binary's webhook listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
