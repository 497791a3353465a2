//! The one summary comment per PR: what each task item's last run did, with its log and the
//! result commit. Pure: rows in, comment text out, and back.
//!
//! The rows live in the comment itself (base64 JSON in a hidden line) rather than in the
//! dispatcher's memory, so a restarted or different dispatcher edits the same comment without
//! losing the rows of earlier runs.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The hidden marker that identifies the summary comment among the bot's comments.
pub const MARKER: &str = "<!-- tickbot:summary -->";
const DATA_PREFIX: &str = "<!-- tickbot:summary-data ";

/// The last result of one task item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Status context and occurrence: identical lines are distinct rows.
    pub context: String,
    pub occurrence: usize,
    /// The item as written, e.g. `image-refresh fedora-41`.
    pub text: String,
    /// The status description the run ended with, e.g. `Success [w1]`, `Exit code 1 [w1]`.
    pub result: String,
    pub duration_secs: u64,
    pub log_url: String,
    pub commit: Option<String>,
}

/// Replaces the row of the same item, or appends it (rows stay in the order items first ran).
pub fn upsert(rows: &mut Vec<Row>, row: Row) {
    match rows
        .iter_mut()
        .find(|r| r.context == row.context && r.occurrence == row.occurrence)
    {
        Some(existing) => *existing = row,
        None => rows.push(row),
    }
}

/// The rows stored in a summary comment; empty for any other text (or a damaged data line,
/// which then starts over rather than blocking the summary).
pub fn parse(comment: &str) -> Vec<Row> {
    comment
        .lines()
        .find_map(|l| l.strip_prefix(DATA_PREFIX)?.strip_suffix(" -->"))
        .and_then(|data| {
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
        })
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default()
}

/// The comment text for `rows`.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{MARKER}\n**tickbot**\n\n| Task or test | Result | Duration | Log | Commit |\n|---|---|---|---|---|\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | [log]({}) | {} |\n",
            cell(&r.text),
            cell(&r.result),
            duration(r.duration_secs),
            r.log_url,
            r.commit
                .as_deref()
                .map(|c| c.get(..7).unwrap_or(c))
                .unwrap_or("")
        ));
    }
    // Serialising plain strings and numbers cannot fail; an empty data line would only mean
    // the next edit starts a fresh table.
    let json = serde_json::to_vec(rows).unwrap_or_default();
    let data = base64::engine::general_purpose::STANDARD.encode(json);
    out.push_str(&format!("\n{DATA_PREFIX}{data} -->\n"));
    out
}

/// A table cell: a `|` would end the cell, a line break the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `45s`, `3m 05s`, `2h 01m`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(context: &str, result: &str) -> Row {
        Row {
            context: context.into(),
            occurrence: 0,
            text: context.replace('/', " "),
            result: result.into(),
            duration_secs: 65,
            log_url: "http://x/logs/j1".into(),
            commit: Some("0123456789abcdef".into()),
        }
    }

    #[test]
    fn rows_survive_the_round_trip_and_are_replaced_in_place() {
        let mut rows = vec![row("lint", "Exit code 1 [w1]")];
        upsert(&mut rows, row("image-refresh/a|b", "Success [w2]"));
        upsert(&mut rows, row("lint", "Success [w1]"));
        let text = render(&rows);
        assert_eq!(parse(&text), rows);
        // The whole comment as GitHub stores it (the last line is the hidden rows).
        insta::assert_snapshot!(text);
        assert!(parse("some other comment").is_empty());
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(185), "3m 05s");
        assert_eq!(duration(7260), "2h 01m");
    }
}
