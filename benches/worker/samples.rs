//! Repeated timings and their medians, as the worker bench prints them.

use crate::support::stats::millis;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Repeated timings of one step.
#[derive(Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The samples in increasing order, for the median and the range.
    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    pub fn median(&self) -> Duration {
        let v = self.sorted();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    fn min(&self) -> Duration {
        self.sorted().first().copied().unwrap_or_default()
    }

    fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }

    /// `median (min–max, n)` in milliseconds.
    pub fn show(&self) -> String {
        format!(
            "{:>7.1} ms  ({:.1}–{:.1}, n={})",
            millis(self.median()),
            millis(self.min()),
            millis(self.max()),
            self.0.len()
        )
    }
}

/// The time from `a` to `b` (zero if `b` is earlier), for phases between timestamps.
pub fn between(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (b - a).to_std().unwrap_or_default()
}

/// Named sample sets, printed in insertion order.
#[derive(Default)]
pub struct Table {
    rows: Vec<(String, Samples)>,
}

impl Table {
    pub fn add(&mut self, name: &str, d: Duration) {
        match self.rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => s.push(d),
            None => {
                let mut s = Samples::default();
                s.push(d);
                self.rows.push((name.to_string(), s));
            }
        }
    }

    pub fn get(&self, name: &str) -> Samples {
        self.rows
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    pub fn print(&self, title: &str) {
        println!("\n{title}  (median (min–max, n))");
        for (name, s) in &self.rows {
            println!("  {name:<58} {}", s.show());
        }
    }
}
