//! `tickbot` run as a person runs it, against a test's forge.

use std::path::Path;
use std::process::Command;
use tickbot::forge::Forge;

/// `tickbot <args>` with the forge as GitHub (its API, the bot's token) and `state` as the
/// state directory; its exit code, output and errors, as a person sees them. Log lines (with
/// their times) are left out below warnings.
pub fn tickbot_against(forge: &Forge, state: &Path, args: &[&str]) -> String {
    let out = tickbot_command(forge, state, args)
        .output()
        .expect("run tickbot");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The command [`tickbot_against`] runs, for a test that starts (and kills) it itself.
pub fn tickbot_command(forge: &Forge, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickbot"));
    cmd.args(["--config", "/nonexistent/tickbot.toml"])
        .args(args)
        .env("TICKBOT__GITHUB__API_URL", forge.api_url())
        .env("TICKBOT__GITHUB__TOKEN", forge.bot_token())
        .env("TICKBOT__STATE__DIR", state)
        .env("RUST_LOG", "warn");
    cmd
}
