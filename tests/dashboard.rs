//! The dashboard as a person sees it: real headless Chromium on the intake's pages while real
//! workers run jobs in podman. Screenshots of the main pages are kept under
//! `target/tmp/screenshots/`.

mod common;

use common::browser::Browser;
use common::wait_within;
use common::world::{LONG, World, job_of};

const TICKBOT_TOML: &str = r#"
[tests.slow]
command = ["sh", "-c", "for i in $(seq 1 25); do echo tick $i; sleep 0.3; done; echo 'error: the widget broke'; exit 1"]
image = "localhost/tickbot-test:latest"
default = true

[tests.quick]
command = ["sh", "-c", "echo quick and fine"]
image = "localhost/tickbot-test:latest"
default = true
"#;

/// The highest `tick N` in a log's text.
fn last_tick(log: &str) -> u32 {
    log.lines()
        .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

/// Polls the browser's `css` text until `want` accepts it.
async fn wait_text(b: &Browser, css: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        if let Some(text) = b.text(css).await.filter(|t| want(t)) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_watch_a_job_run_and_fail_on_the_dashboard() {
    let _broker = common::broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML)]).await;
    let settings = w.stack.worker_settings("w1", common::podman(), 2);
    w.stack.start_worker(settings);
    let (pr, sha) = w.open_pr("alice", &[], "A change").await;
    let link = w.wait_in_progress(&sha, "slow").await;
    let job = job_of(&link).to_string();
    let base = w.stack.intake_url.clone();
    let b = Browser::start().await;
    watch_it_run(&b, &base, &job).await;

    // Once it failed, the page shows the end, with the failure marked.
    let failure = wait_text(&b, "#failure", "the failure marked", |t| !t.is_empty()).await;
    assert_eq!(failure, "error: the widget broke");
    let log = b.text("#log").await.expect("the log");
    assert!(log.contains("tick 25"), "the whole log: {log}");
    b.screenshot("log-failed").await;

    wait_within(LONG, "quick to pass", || {
        w.statuses(&sha, "quick").pop().filter(|s| s.0 == "success")
    })
    .await;
    finished_jobs(&b, &base, pr.0, &job).await;
    pr_page_and_phone(&b, &base, pr.0).await;
    assert_eq!(
        b.console_errors().await,
        Vec::<String>::new(),
        "no console errors"
    );
    b.close().await;
    w.stack.shutdown().await;
}

/// The front page lists the running job; its log page follows it, growing in place.
async fn watch_it_run(b: &Browser, base: &str, job: &str) {
    // The front page lists the running job, with its worker and live log.
    b.open(&format!("{base}/")).await;
    let running = b.text("#running").await.expect("the running table");
    assert!(
        running.contains("acme/images#1") && running.contains("slow") && running.contains("w1"),
        "{running}"
    );
    b.screenshot("front-running").await;

    // Its log page follows it: the log grows without reloading the page.
    b.open(&format!("{base}/jobs/{job}")).await;
    let first = b.text("#log").await.expect("the log");
    b.client
        .execute(
            "document.getElementById('log').dataset.marker = 'same page'",
            vec![],
        )
        .await
        .expect("a marker");
    let grown = wait_text(b, "#log", "the log to grow", |t| {
        last_tick(t) > last_tick(&first) + 2
    })
    .await;
    let marker = b
        .client
        .execute(
            "return document.getElementById('log').dataset.marker",
            vec![],
        )
        .await
        .expect("the marker");
    assert_eq!(marker, "same page", "the log grew in place (last: {grown})");
    b.screenshot("log-running").await;
}

/// Finished jobs link their logs, and filter by state, repository and PR.
async fn finished_jobs(b: &Browser, base: &str, pr: u64, job: &str) {
    b.open(&format!("{base}/?state=failure")).await;
    let finished = b.text("#finished").await.expect("the finished table");
    assert!(
        finished.contains("slow") && !finished.contains("quick"),
        "{finished}"
    );
    let log_link = b
        .client
        .find(fantoccini::Locator::Css("#finished a[href^='/jobs/']"))
        .await
        .expect("a log link");
    log_link.click().await.expect("followed");
    assert_eq!(
        b.client.current_url().await.expect("url").path(),
        format!("/jobs/{job}")
    );
    b.open(&format!("{base}/?repo=acme/images&pr={}&state=success", pr))
        .await;
    let finished = b.text("#finished").await.expect("the finished table");
    assert!(
        finished.contains("quick") && !finished.contains("slow"),
        "{finished}"
    );
    b.screenshot("front-finished").await;
}

/// A PR's page, and the front page on a phone.
async fn pr_page_and_phone(b: &Browser, base: &str, pr: u64) {
    // A PR's page: each context with its runs.
    b.open(&format!("{base}/pr/acme/images/{}", pr)).await;
    let page = b.text("body").await.expect("the page");
    assert!(
        page.contains("quick") && page.contains("slow") && page.contains("failure"),
        "{page}"
    );
    b.screenshot("pull-request").await;

    // On a phone the front page needs no sideways scrolling of the page itself.
    b.client
        .set_window_size(390, 844)
        .await
        .expect("a phone's window");
    b.open(&format!("{base}/")).await;
    let fits = b
        .client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .expect("measured");
    assert_eq!(fits, true, "the page is wider than a phone");
    b.screenshot("front-phone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_readable_without_javascript() {
    let _broker = common::broker_lock().read().await;
    let mut w = World::new(&[(".tickbot.toml", TICKBOT_TOML)]).await;
    let settings = w.stack.worker_settings("w1", common::podman(), 2);
    w.stack.start_worker(settings);
    let (_pr, sha) = w.open_pr("alice", &[], "A change").await;
    let link = wait_within(LONG, "quick to pass", || {
        w.statuses(&sha, "quick")
            .pop()
            .filter(|s| s.0 == "success")
            .and_then(|s| s.2)
    })
    .await;
    let job = job_of(&link);
    let get = |path: &str| common::curl_get(&format!("{}{path}", w.stack.intake_url));
    let page = wait_within(LONG, "the job's record", || {
        let page = get(&format!("/jobs/{job}"));
        page.contains("quick and fine").then_some(page)
    })
    .await;
    assert!(
        page.contains("<span class=\"success\">success</span>"),
        "{page}"
    );
    assert!(
        !page.contains("<script"),
        "a finished job's page has no script"
    );
    let front = get("/");
    assert!(front.contains(&format!("href=\"/jobs/{job}\"")), "{front}");
    assert!(
        front.contains("<td>default</td>"),
        "the queue of the default pool: {front}"
    );
    w.stack.shutdown().await;
}
