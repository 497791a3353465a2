//! tickbot: a GitHub bot that runs checkbox tasks and test contexts from pull requests.
//!
//! The flow of one event: [`intake`] verifies and persists a webhook, [`dispatch`] reads the
//! PR and its `.tickbot.toml` ([`repo_config`]), finds the checkbox tasks ([`checklist`]),
//! decides what to queue ([`dispatch::plan`]) and publishes [`job::Job`]s through [`queue`];
//! every write to GitHub goes through [`github`]. [`forge`] is the local stand-in for GitHub.
//!
//! The grammar (checkboxes, comment commands, ids) and the forge are crates of their own under
//! `crates/`; they are re-exported here under the names the rest of the code uses.

pub use tickbot_forge as forge;
pub use tickbot_syntax::{checklist, commands, ids};

pub mod config;
pub mod dashboard;
pub mod demo;
pub mod dispatch;
pub mod event;
pub mod github;
pub mod image_admin;
pub mod intake;
pub mod job;
pub mod logs;
pub mod queue;
pub mod registry;
pub mod repo_clone;
pub mod repo_config;
pub mod roles;
pub mod scheduler;
pub mod stack;
pub mod telemetry;
pub mod worker;
