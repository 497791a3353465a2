//! What the parser's tests share: the oracle (GitHub's renderer) and the proptest strategies.

pub mod oracle;
pub mod strategies;

/// Cases per property: `PROPTEST_CASES` (scripts/reliability runs millions), or 400.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400)
}
