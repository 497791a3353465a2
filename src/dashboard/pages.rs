//! The dashboard's HTML: server-rendered, one inline stylesheet, no external assets, readable
//! without JavaScript; the log page of a running job follows it with a few lines of script.

use crate::logs::{JobRecord, RecordState};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// `<`, `>`, `&` and quotes made harmless in text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70em;padding:0 .8em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}a{color:#0550ae}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}\
td,th{text-align:left;padding:.25em .5em;border-bottom:1px solid #ddd;white-space:nowrap}\
.success{color:#1a7f37}.failure,.error{color:#cf222e}.running{color:#9a6700}\
pre{background:#f6f8fa;padding:.5em;overflow-x:auto;white-space:pre-wrap;word-break:break-all;font-size:.85em}\
pre mark{background:#ffebe9;display:block}form{display:flex;flex-wrap:wrap;gap:.5em;align-items:end}\
label{display:flex;flex-direction:column;font-size:.9em}";

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{title} · tickbot</title><style>{STYLE}</style></head>\
         <body><p><a href=\"/\">tickbot</a></p>{body}</body></html>\n",
        title = escape(title)
    )
}

/// `3m 20s ago` style ages and durations.
pub fn span(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0) as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

fn pr_link(r: &JobRecord) -> String {
    format!(
        "<a href=\"/pr/{repo}/{pr}\">{repo}#{pr}</a>",
        repo = escape(&r.repo.to_string()),
        pr = r.pr.0
    )
}

fn state(s: RecordState) -> String {
    format!("<span class=\"{0}\">{0}</span>", s.as_str())
}

fn job_link(r: &JobRecord, text: &str) -> String {
    format!(
        "<a href=\"/jobs/{}\">{}</a>",
        escape(&r.job_id),
        escape(text)
    )
}

/// The front page: queues, running jobs, finished jobs (filtered).
pub fn front(
    queues: &[(String, Option<u64>)],
    running: &[JobRecord],
    finished: &[JobRecord],
    filter_form: &str,
    now: DateTime<Utc>,
) -> String {
    let mut b = String::from(
        "<h1>Dashboard</h1><h2>Queues</h2><div class=\"scroll\"><table><tr><th>Pool</th><th>Jobs waiting</th></tr>",
    );
    for (pool, depth) in queues {
        let depth = depth.map_or("unknown (queue unreachable)".to_string(), |d| d.to_string());
        let _ = write!(b, "<tr><td>{}</td><td>{depth}</td></tr>", escape(pool));
    }
    let _ = write!(
        b,
        "</table></div><h2>Running ({})</h2><div class=\"scroll\"><table id=\"running\"><tr><th>Pull request</th><th>Context</th><th>Worker</th><th>Running for</th><th>Log</th></tr>",
        running.len()
    );
    for r in running {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            pr_link(r),
            escape(&r.context),
            escape(&r.worker),
            span(r.started_at, now),
            job_link(r, "live log")
        );
    }
    if running.is_empty() {
        b.push_str("<tr><td colspan=\"5\">Nothing is running.</td></tr>");
    }
    let _ = write!(b, "</table></div><h2>Finished</h2>{filter_form}");
    b.push_str(&finished_table(finished, now));
    page("Dashboard", &b)
}

fn finished_table(finished: &[JobRecord], now: DateTime<Utc>) -> String {
    let mut b = String::from(
        "<div class=\"scroll\"><table id=\"finished\"><tr><th>Pull request</th><th>Context</th><th>State</th><th>Ended</th><th>Took</th><th>Log</th></tr>",
    );
    for r in finished {
        let end = r.finished_at.unwrap_or(now);
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td></tr>",
            pr_link(r),
            escape(&r.context),
            state(r.state),
            span(end, now),
            span(r.started_at, end),
            job_link(r, "log")
        );
    }
    if finished.is_empty() {
        b.push_str("<tr><td colspan=\"6\">No finished jobs match.</td></tr>");
    }
    b.push_str("</table></div>");
    b
}

/// The filter form of the finished jobs, filled with the current filter.
pub fn filter_form(repo: &str, pr: &str, chosen: Option<RecordState>) -> String {
    let mut options = String::from("<option value=\"\">any</option>");
    for s in [
        RecordState::Success,
        RecordState::Failure,
        RecordState::Error,
    ] {
        let selected = if chosen == Some(s) { " selected" } else { "" };
        let _ = write!(options, "<option{selected}>{}</option>", s.as_str());
    }
    format!(
        "<form method=\"get\" action=\"/\"><label>Repository<input name=\"repo\" value=\"{}\" placeholder=\"owner/name\"></label>\
         <label>PR<input name=\"pr\" value=\"{}\" size=\"6\" inputmode=\"numeric\"></label>\
         <label>State<select name=\"state\">{options}</select></label><button>Filter</button></form>",
        escape(repo),
        escape(pr)
    )
}

/// A PR's page: each context with its runs, newest first.
pub fn pull_request(repo: &str, pr: u64, jobs: &[JobRecord], now: DateTime<Utc>) -> String {
    let mut b = format!("<h1>{}#{pr}</h1>", escape(repo));
    let mut contexts: Vec<&str> = jobs.iter().map(|j| j.context.as_str()).collect();
    contexts.sort();
    contexts.dedup();
    if contexts.is_empty() {
        b.push_str("<p>No jobs of this pull request are known.</p>");
    }
    for context in contexts {
        let _ = write!(
            b,
            "<h2>{}</h2><div class=\"scroll\"><table><tr><th>State</th><th>Commit</th><th>Started</th><th>Worker</th><th>Log</th></tr>",
            escape(context)
        );
        for r in jobs.iter().filter(|j| j.context == context) {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td></tr>",
                state(r.state),
                escape(r.head_sha.short()),
                span(r.started_at, now),
                escape(&r.worker),
                job_link(r, "log")
            );
        }
        b.push_str("</table></div>");
    }
    page(&format!("{repo}#{pr}"), &b)
}

/// Lines that say what went wrong, among the last lines of a failed log.
fn is_failure_line(line: &str) -> bool {
    static WORDS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(error|errors|fail|failed|failure|fatal|panic(ked)?|exit code|timeout|timed out)\b")
            .unwrap_or_else(|_| unreachable!("a valid pattern"))
    });
    // Not the command line as run, nor tickbot's summary of the end: they name no cause.
    WORDS.is_match(line) && !line.starts_with("$ ") && !line.starts_with("tickbot: finished")
}

/// How many lines of a failed log's end are searched for its failure.
const FAILURE_WINDOW: usize = 200;

/// The log page: the record, artifacts, the log so far (failure lines marked on a finished
/// failed job), and the script that follows a running one.
pub fn log_page(r: &JobRecord, log: &str, len: u64, now: DateTime<Utc>) -> String {
    let mut b = format!(
        "<h1>{} on {}</h1><p>{} · {} · worker {} · started {} ago",
        escape(&r.context),
        pr_link(r),
        state(r.state),
        escape(r.head_sha.short()),
        escape(&r.worker),
        span(r.started_at, now)
    );
    if let Some(end) = r.finished_at {
        let _ = write!(b, " · took {}", span(r.started_at, end));
    }
    if let Some(d) = &r.description {
        let _ = write!(b, " · {}", escape(d));
    }
    let _ = write!(
        b,
        " · <a href=\"/logs/{}\">raw log</a></p>",
        escape(&r.job_id)
    );
    let failed = matches!(r.state, RecordState::Failure | RecordState::Error);
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(FAILURE_WINDOW);
    let marked: Vec<bool> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| failed && i >= from && is_failure_line(l))
        .collect();
    if marked.contains(&true) {
        b.push_str("<p><a href=\"#failure\">Jump to the failure</a></p>");
    }
    if !r.artifacts.is_empty() {
        b.push_str("<h2>Artifacts</h2><ul>");
        for a in &r.artifacts {
            let _ = write!(
                b,
                "<li><a href=\"/logs/{}/artifacts/{}\">{}</a></li>",
                escape(&r.job_id),
                escape(&urlencoding::encode(a).replace("%2F", "/")),
                escape(a)
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(
        b,
        "<pre id=\"log\" data-job=\"{}\" data-state=\"{}\" data-length=\"{len}\">",
        escape(&r.job_id),
        r.state.as_str()
    );
    let mut first = true;
    for (line, mark) in lines.iter().zip(marked) {
        if mark {
            let id = if first { " id=\"failure\"" } else { "" };
            first = false;
            let _ = write!(b, "<mark{id}>{}</mark>", escape(line));
        } else {
            let _ = writeln!(b, "{}", escape(line));
        }
    }
    b.push_str("</pre>");
    if r.state == RecordState::Running {
        b.push_str(FOLLOW);
    }
    page(&format!("{} on {}#{}", r.context, r.repo, r.pr.0), &b)
}

/// Follows a running log: asks for what was added every half second, appends it, and shows
/// the finished page (with its failure marked) once the job ended.
const FOLLOW: &str = "<script>(function(){var pre=document.getElementById('log');\
var job=pre.dataset.job,len=Number(pre.dataset.length);\
function poll(){fetch('/logs/'+job+'?from='+len).then(function(r){\
var state=r.headers.get('X-Tickbot-Job-State');var total=r.headers.get('X-Tickbot-Log-Length');\
return r.text().then(function(t){if(t){pre.appendChild(document.createTextNode(t));}\
if(total){len=Number(total);}if(state&&state!=='running'){location.reload();}else{setTimeout(poll,500);}});\
}).catch(function(){setTimeout(poll,2000);});}setTimeout(poll,500);})();</script>";

#[cfg(test)]
mod tests {
    use super::*;

    fn record(job: &str, context: &str, state: RecordState, minutes_ago: i64) -> JobRecord {
        let now = at();
        JobRecord {
            record_schema: crate::logs::record::RECORD_SCHEMA,
            job_id: job.into(),
            repo: "acme/widgets".parse().expect("a name"),
            pr: crate::ids::PrNumber(7),
            head_sha: crate::ids::CommitSha("1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d".into()),
            context: context.into(),
            pool: "default".into(),
            worker: "w1".into(),
            private: false,
            queued_at: now - chrono::Duration::minutes(minutes_ago + 1),
            started_at: now - chrono::Duration::minutes(minutes_ago),
            finished_at: (state != RecordState::Running).then(|| {
                now - chrono::Duration::minutes(minutes_ago) + chrono::Duration::seconds(95)
            }),
            state,
            description: (state == RecordState::Failure).then(|| "Exit code 1".into()),
            artifacts: if state == RecordState::Failure {
                vec!["report <1>.html".into()]
            } else {
                vec![]
            },
        }
    }

    /// A page as a reviewer reads it: the style left out, a line per row and block.
    fn readable(page: &str) -> String {
        let mut text = page.replace(STYLE, "…");
        for tag in [
            "<tr>", "<h1>", "<h2>", "<p>", "<form", "<pre", "<li>", "<ul>", "<script>", "<body>",
        ] {
            text = text.replace(tag, &format!("\n{tag}"));
        }
        text
    }

    fn at() -> DateTime<Utc> {
        "2026-12-07T12:00:00Z".parse().expect("a time")
    }

    #[test]
    fn the_front_page_lists_queues_running_and_finished_jobs() {
        let running = [record("j1", "unit", RecordState::Running, 3)];
        let finished = [
            record("j2", "lint <strict>", RecordState::Failure, 10),
            record("j3", "docs", RecordState::Success, 30),
        ];
        let queues = [
            ("default".to_string(), Some(4)),
            ("large".to_string(), None),
        ];
        let form = filter_form("acme/widgets", "", Some(RecordState::Failure));
        insta::assert_snapshot!(readable(&front(&queues, &running, &finished, &form, at())));
    }

    #[test]
    fn a_failed_jobs_log_page_marks_the_failure_and_links_its_artifacts() {
        let r = record("j2", "unit", RecordState::Failure, 10);
        let log = "tickbot: job j2 (unit) attempt 1 on w1 at 1a2b3c4\n$ sh ./check --errors\n\
                   compiling\nerror[E0308]: mismatched types <&>\ntest result: FAILED\n\
                   tickbot: finished: Failure { reason: \"Exit code 1\" }\n";
        insta::assert_snapshot!(readable(&log_page(&r, log, log.len() as u64, at())));
    }

    #[test]
    fn a_running_jobs_log_page_follows_it_and_marks_nothing() {
        let r = record("j1", "unit", RecordState::Running, 3);
        let page = log_page(&r, "error: not the end yet\n", 23, at());
        assert!(!page.contains("<mark"), "{page}");
        assert!(
            page.contains("data-length=\"23\"") && page.contains("<script>"),
            "{page}"
        );
    }
}
