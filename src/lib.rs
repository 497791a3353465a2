//! tickbot: a GitHub bot that runs checkbox tasks and test contexts from pull requests.
//!
//! The flow of one event: [`intake`] verifies and persists a webhook, [`dispatch`] reads the
//! PR and its `.tickbot.toml` ([`repo_config`]), finds the checkbox tasks ([`checklist`]),
//! decides what to queue ([`dispatch::plan`]) and publishes [`job::Job`]s through [`queue`];
//! every write to GitHub goes through [`github`]. [`forge`] is the local stand-in for GitHub.

pub mod checklist;
pub mod commands;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod event;
pub mod forge;
pub mod github;
pub mod ids;
pub mod intake;
pub mod job;
pub mod queue;
pub mod repo_config;
pub mod roles;
pub mod stack;
pub mod telemetry;
pub mod worker;
