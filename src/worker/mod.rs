//! The worker role: runs queued jobs from the PR's own code and reports back.
//!
//! [`executor`] is the loop (take a job, run it, report, acknowledge); [`mirror`] keeps a local
//! git mirror per repository and makes a worktree per job; [`runtime`] runs the command in
//! podman (or on the host, for development); [`publish`] commits the result and pushes it to
//! the PR branch.

mod debug_hold;
pub mod executor;
mod images;
pub mod job_log;
mod job_metrics;
mod job_traces;
mod merge_base;
pub mod mirror;
pub mod publish;
pub mod runtime;

pub use executor::{Worker, WorkerSettings};

/// A poisoned lock is used as is: no holder leaves its state half-written.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
