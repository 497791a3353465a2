//! Whether an item is due (reference §12), decided from durable facts only: when its last
//! refresh landed on the default branch and whether its inputs changed since. Pure: the facts
//! and the clock in, the decision out. A window only restricts when a refresh may start; a
//! window missed while nothing ran is not replayed, the next one is used.

use crate::ids::{CommitSha, PrNumber};
use crate::repo_config::Window;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What the default branch says about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The last refresh that landed: its commit and when it was made.
    pub last: Option<(CommitSha, DateTime<Utc>)>,
    /// The newest commit since `last` that changed an input: the path and the commit.
    pub input_change: Option<(String, CommitSha)>,
    /// The newest refresh PR of the item closed without landing (its task changed nothing, or
    /// a person closed it), and when.
    pub closed: Option<(PrNumber, DateTime<Utc>)>,
}

/// Why an item is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    Never,
    Age {
        last: CommitSha,
        age: Duration,
    },
    Inputs {
        path: String,
        commit: CommitSha,
        last: CommitSha,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Due; a refresh may start now.
    Due(Why),
    /// Due, but its window is closed until `opens`.
    DueAtWindow { why: Why, opens: DateTime<Utc> },
    /// Not due before `at` (later if a window is set), unless an input changes.
    NotDue {
        last: CommitSha,
        age: Duration,
        at: DateTime<Utc>,
    },
    /// Tried within the period: refresh PR `pr` closed without landing; not again before `at`.
    Tried {
        pr: PrNumber,
        closed: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// Decides for one item at `now`; `previous_pass` is when the scheduler last looked (a window
/// occurrence since then lets a due item start).
pub fn decide(
    every: Duration,
    window: Option<&Window>,
    facts: &Facts,
    now: DateTime<Utc>,
    previous_pass: DateTime<Utc>,
) -> Decision {
    let period = chrono::Duration::from_std(every).unwrap_or_default();
    let landed = facts.last.as_ref().map(|(_, when)| *when);
    if let Some((pr, closed)) = facts.closed
        && landed.is_none_or(|l| closed > l)
        && now < closed + period
    {
        let at = window.map_or(closed + period, |w| {
            next_occurrence(w, closed + period, true)
        });
        return Decision::Tried { pr, closed, at };
    }
    let why = match (&facts.last, &facts.input_change) {
        (None, _) => Why::Never,
        (Some((last, _)), Some((path, commit))) => Why::Inputs {
            path: path.clone(),
            commit: commit.clone(),
            last: last.clone(),
        },
        (Some((last, when)), None) => {
            let age = (now - *when).to_std().unwrap_or_default();
            if age < every {
                let at = *when + period;
                let at = window.map_or(at, |w| next_occurrence(w, at, true));
                return Decision::NotDue {
                    last: last.clone(),
                    age,
                    at,
                };
            }
            Why::Age {
                last: last.clone(),
                age,
            }
        }
    };
    match window {
        None => Decision::Due(why),
        Some(w) if next_occurrence(w, previous_pass, false) <= now => Decision::Due(why),
        Some(w) => Decision::DueAtWindow {
            why,
            opens: next_occurrence(w, now, false),
        },
    }
}

/// The first time the window opens after `from` (or at it, when `inclusive`); far in the
/// future for a pattern that never matches.
fn next_occurrence(window: &Window, from: DateTime<Utc>, inclusive: bool) -> DateTime<Utc> {
    window
        .cron
        .find_next_occurrence(&from, inclusive)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0)
            .single()
            .expect("a time")
    }

    fn sha(c: char) -> CommitSha {
        CommitSha(c.to_string().repeat(40))
    }

    fn window(pattern: &str) -> Window {
        Window {
            pattern: pattern.into(),
            cron: pattern.parse().expect("a pattern"),
        }
    }

    fn refreshed(when: DateTime<Utc>) -> Facts {
        Facts {
            last: Some((sha('a'), when)),
            input_change: None,
            closed: None,
        }
    }

    #[test]
    fn never_refreshed_is_due_at_once_and_age_counts_from_the_last_landed_refresh() {
        let now = at(10, 12, 0);
        let never = Facts {
            last: None,
            input_change: None,
            closed: None,
        };
        assert_eq!(
            decide(WEEK, None, &never, now, now),
            Decision::Due(Why::Never)
        );
        let old = decide(WEEK, None, &refreshed(at(1, 12, 0)), now, now);
        let nine_days = Duration::from_secs(9 * 86_400);
        assert_eq!(
            old,
            Decision::Due(Why::Age {
                last: sha('a'),
                age: nine_days
            })
        );
        let young = decide(WEEK, None, &refreshed(at(8, 12, 0)), now, now);
        let two_days = Duration::from_secs(2 * 86_400);
        assert_eq!(
            young,
            Decision::NotDue {
                last: sha('a'),
                age: two_days,
                at: at(15, 12, 0)
            }
        );
    }

    #[test]
    fn a_changed_input_makes_a_young_item_due() {
        let facts = Facts {
            last: Some((sha('a'), at(9, 12, 0))),
            input_change: Some(("images/lib/x".into(), sha('b'))),
            closed: None,
        };
        let now = at(10, 12, 0);
        assert_eq!(
            decide(WEEK, None, &facts, now, now),
            Decision::Due(Why::Inputs {
                path: "images/lib/x".into(),
                commit: sha('b'),
                last: sha('a'),
            })
        );
    }

    #[test]
    fn a_refresh_closed_without_landing_is_not_tried_again_before_the_period_ends() {
        let facts = Facts {
            last: Some((sha('a'), at(1, 12, 0))),
            input_change: None,
            closed: Some((PrNumber(7), at(9, 12, 0))),
        };
        let now = at(10, 12, 0);
        assert_eq!(
            decide(WEEK, None, &facts, now, now),
            Decision::Tried {
                pr: PrNumber(7),
                closed: at(9, 12, 0),
                at: at(16, 12, 0)
            }
        );
        // A period later it is due again, by age.
        let later = at(16, 12, 0);
        assert!(matches!(
            decide(WEEK, None, &facts, later, later),
            Decision::Due(Why::Age { .. })
        ));
    }

    #[test]
    fn a_window_is_caught_at_the_next_occurrence_and_never_replayed() {
        let nightly = window("0 22 * * *");
        let never = Facts {
            last: None,
            input_change: None,
            closed: None,
        };
        // A pass at 22:00:30 that last looked at 21:59:30: the window opened in between.
        let (now, before) = (
            at(10, 22, 0) + chrono::Duration::seconds(30),
            at(10, 21, 59),
        );
        assert_eq!(
            decide(WEEK, Some(&nightly), &never, now, before),
            Decision::Due(Why::Never)
        );
        // Down from 21:00 to 23:00: the missed window is not replayed; the next one is used.
        let (now, before) = (at(10, 23, 0), at(10, 22, 59));
        assert_eq!(
            decide(WEEK, Some(&nightly), &never, now, before),
            Decision::DueAtWindow {
                why: Why::Never,
                opens: at(11, 22, 0)
            }
        );
        // Not due yet: due at the first window after the period ends (the 15th at 23:00).
        let young = decide(WEEK, Some(&nightly), &refreshed(at(8, 23, 0)), now, before);
        let two_days = Duration::from_secs(2 * 86_400);
        assert_eq!(
            young,
            Decision::NotDue {
                last: sha('a'),
                age: two_days,
                at: at(16, 22, 0)
            }
        );
    }
}
