//! Summaries of measured durations, as the benches print them.

use std::time::Duration;

/// The `p` quantile (0.0–1.0) of sorted samples, nearest rank; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A duration in (fractional) milliseconds, the unit every bench reports in.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `12.3 ms` with `decimals` digits after the point, for printed results.
pub fn format_ms(d: Duration, decimals: usize) -> String {
    format!("{:.decimals$} ms", millis(d))
}
