//! The local forge, seen from outside: octocrab reads what it serves, the git CLI clones and
//! pushes over smart HTTP, and a webhook receiver checks signatures and compares payloads with
//! the real GitHub fixtures in `tests/fixtures/github-webhooks`.

mod forge_support;

use forge_support::{World, answers, assert_shaped_like, call, call_with, git, next};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tickbot::forge::{CallMatch, RateLimitKind};
use tickbot::ids::PrNumber;

#[tokio::test]
async fn pushes_are_announced_signed_by_hookshot() {
    let mut w = World::new().await;
    let push = next(&mut w.hooks, "push", None).await;
    assert!(push.signature_ok && push.user_agent == "GitHub-Hookshot/forge");
    assert_eq!(push.body["ref"], "refs/heads/main");
}

#[tokio::test]
async fn an_opened_pr_is_announced_like_githubs() {
    let (mut w, _) = World::with_pr("- [ ] lint").await;
    let opened = next(&mut w.hooks, "pull_request", Some("opened")).await;
    assert!(opened.signature_ok);
    assert_shaped_like("pull_request/opened.payload.json", &opened.body);
    let p = &opened.body["pull_request"];
    assert_eq!(p["user"]["login"], "alice");
    assert_eq!(p["author_association"], "NONE");
    assert_eq!(p["head"]["ref"], "topic");
    assert_eq!(p["head"]["repo"]["clone_url"], w.forge.clone_url(&w.repo));
    assert_eq!(opened.body["repository"]["full_name"], "acme/widgets");
    assert_eq!(opened.body["repository"]["owner"]["login"], "acme");
}

#[tokio::test]
async fn a_collaborator_editing_the_body_is_announced_with_the_old_body() {
    let (mut w, pr) = World::with_pr("- [ ] lint").await;
    w.forge.add_collaborator(&w.repo, "carol", "write");
    w.forge
        .edit_pr_body(&w.repo, pr, "- [ ] lint\n- [ ] lint again", "carol")
        .await
        .expect("edit");
    let edited = next(&mut w.hooks, "pull_request", Some("edited")).await;
    // GitHub's fixtures have no `pull_request.edited`; it shares `opened`'s structure.
    assert_shaped_like("pull_request/opened.payload.json", &edited.body);
    assert_eq!(edited.body["changes"]["body"]["from"], "- [ ] lint");
    assert_eq!(edited.body["sender"]["login"], "carol");
}

#[tokio::test]
async fn a_new_commit_on_the_branch_is_announced_as_synchronize() {
    let (mut w, _) = World::with_pr("- [ ] lint").await;
    let sha = w
        .forge
        .commit_files(
            &w.repo,
            "topic",
            None,
            &[("g.txt", "more")],
            "more",
            "alice",
        )
        .await
        .expect("push");
    let sync = next(&mut w.hooks, "pull_request", Some("synchronize")).await;
    assert_shaped_like("pull_request/synchronize.payload.json", &sync.body);
    assert_eq!(sync.body["after"], sha.0);
    assert_eq!(sync.body["pull_request"]["head"]["sha"], sha.0);
}

#[tokio::test]
async fn a_comment_is_announced_with_the_commenters_association() {
    let (mut w, pr) = World::with_pr("- [ ] lint").await;
    w.forge.add_collaborator(&w.repo, "carol", "write");
    w.forge
        .comment(&w.repo, pr, "/test", "carol")
        .await
        .expect("comment");
    let created = next(&mut w.hooks, "issue_comment", Some("created")).await;
    assert_shaped_like("issue_comment/created.payload.json", &created.body);
    assert_eq!(
        created.body["comment"]["author_association"],
        "COLLABORATOR"
    );
    assert_eq!(created.body["issue"]["number"], pr.0);
    assert!(created.body["issue"]["pull_request"]["url"].is_string());
}

/// A failed check run with a Retry button on the PR's head, created by the bot.
async fn failed_check_run(w: &World, pr: PrNumber) -> u64 {
    let sha = w.forge.pr(&w.repo, pr).expect("pr").head_sha;
    let run: Value = w
        .octocrab()
        .post(
            "/repos/acme/widgets/check-runs",
            Some(&json!({
                "name": "unit", "head_sha": sha.0, "status": "completed", "conclusion": "failure",
                "output": { "title": "Exit code 1", "summary": "failed" },
                "actions": [{ "label": "Retry", "description": "Run it again", "identifier": "retry" }],
            })),
        )
        .await
        .expect("create check run");
    run["id"].as_u64().expect("id")
}

#[tokio::test]
async fn pressing_re_run_on_a_check_run_is_announced_with_its_pr() {
    let (mut w, pr) = World::with_pr("- [ ] lint").await;
    let id = failed_check_run(&w, pr).await;
    w.forge
        .rerun_check_run(&w.repo, id, "carol")
        .await
        .expect("re-run");
    let rerun = next(&mut w.hooks, "check_run", Some("rerequested")).await;
    assert!(rerun.signature_ok);
    assert_shaped_like("check_run/rerequested.payload.json", &rerun.body);
    assert_eq!(rerun.body["check_run"]["pull_requests"][0]["number"], pr.0);
}

#[tokio::test]
async fn pressing_an_offered_check_run_button_is_announced_and_others_are_refused() {
    let (mut w, pr) = World::with_pr("- [ ] lint").await;
    let id = failed_check_run(&w, pr).await;
    w.forge
        .click_check_run_action(&w.repo, id, "retry", "carol")
        .await
        .expect("retry");
    let retry = next(&mut w.hooks, "check_run", Some("requested_action")).await;
    assert_shaped_like("check_run/requested_action.payload.json", &retry.body);
    assert_eq!(retry.body["requested_action"]["identifier"], "retry");
    assert!(
        w.forge
            .click_check_run_action(&w.repo, id, "cancel", "carol")
            .await
            .is_err(),
        "only offered actions can be requested"
    );
}

#[tokio::test]
async fn closing_and_reopening_a_pr_are_announced() {
    let (mut w, pr) = World::with_pr("- [ ] lint").await;
    w.forge.close_pr(&w.repo, pr, "alice").await.expect("close");
    let closed = next(&mut w.hooks, "pull_request", Some("closed")).await;
    assert_eq!(closed.body["pull_request"]["state"], "closed");
    w.forge
        .reopen_pr(&w.repo, pr, "alice")
        .await
        .expect("reopen");
    next(&mut w.hooks, "pull_request", Some("reopened")).await;
}

#[tokio::test]
async fn octocrab_reads_the_repository_and_a_pull_request() {
    let (w, first) = World::with_pr("first body").await;
    let oc = w.octocrab();
    let repo = oc.repos("acme", "widgets").get().await.expect("repository");
    assert_eq!(repo.default_branch.as_deref(), Some("main"));

    let pr = oc
        .pulls("acme", "widgets")
        .get(first.0)
        .await
        .expect("get pull");
    assert_eq!(pr.body.as_deref(), Some("first body"));
    assert_eq!(pr.user.expect("user").login, "alice");
    let head_sha = w.forge.pr(&w.repo, first).expect("pr").head_sha;
    assert_eq!(pr.head.sha, head_sha.0);
}

#[tokio::test]
async fn octocrab_pages_through_open_pull_requests_newest_first() {
    let w = World::new().await;
    let first = w.pr("one", "first body", "alice").await;
    let second = w.pr("two", "second body", "bob").await;
    let oc = w.octocrab();
    let page = oc
        .pulls("acme", "widgets")
        .list()
        .state(octocrab::params::State::Open)
        .per_page(1)
        .send()
        .await
        .expect("list");
    assert_eq!(page.items[0].number, second.0, "newest first");
    let rest: octocrab::Page<octocrab::models::pulls::PullRequest> = oc
        .get_page(&page.next)
        .await
        .expect("next page")
        .expect("a next page");
    assert_eq!(rest.items[0].number, first.0);
}

#[tokio::test]
async fn octocrab_edits_a_pr_body_through_the_issues_api() {
    let (w, first) = World::with_pr("first body").await;
    let updated = w
        .octocrab()
        .issues("acme", "widgets")
        .update(first.0)
        .body("edited by the bot")
        .send()
        .await
        .expect("update issue");
    assert_eq!(updated.body.as_deref(), Some("edited by the bot"));
}

#[tokio::test]
async fn octocrab_statuses_combine_to_the_latest_per_context() {
    let (w, first) = World::with_pr("first body").await;
    let head_sha = w.forge.pr(&w.repo, first).expect("pr").head_sha;
    let oc = w.octocrab();
    let repos = || oc.repos("acme", "widgets");
    let status = repos()
        .create_status(head_sha.0.clone(), octocrab::models::StatusState::Pending)
        .context("lint".into())
        .description("Not yet tested".into())
        .send()
        .await
        .expect("create status");
    assert_eq!(status.creator.expect("creator").login, "tickbot[bot]");
    repos()
        .create_status(head_sha.0.clone(), octocrab::models::StatusState::Success)
        .context("lint".into())
        .send()
        .await
        .expect("second status");
    let combined = repos()
        .combined_status_for_ref(&octocrab::params::repos::Reference::Branch("topic".into()))
        .await
        .expect("combined");
    assert_eq!(combined.total_count, 1, "latest per context");
    assert_eq!(combined.state, octocrab::models::StatusState::Success);
    let mine = w.forge.statuses(&w.repo, &head_sha);
    assert_eq!(
        mine.iter().map(|s| s.state.as_str()).collect::<Vec<_>>(),
        ["pending", "success"]
    );
}

#[tokio::test]
async fn octocrab_comments_are_listed_and_written_by_the_bot() {
    let (w, first) = World::with_pr("first body").await;
    let oc = w.octocrab();
    let issues = || oc.issues("acme", "widgets");
    let comment = issues()
        .create_comment(first.0, "hello from the bot")
        .await
        .expect("comment");
    let listed = issues()
        .list_comments(first.0)
        .send()
        .await
        .expect("list comments");
    assert_eq!(listed.items[0].id, comment.id);
    assert_eq!(w.forge.comments(&w.repo, first)[0].author, "tickbot[bot]");
}

#[tokio::test]
async fn octocrab_reads_a_file_at_the_pr_branch() {
    let (w, _) = World::with_pr("first body").await;
    let mut items = w
        .octocrab()
        .repos("acme", "widgets")
        .get_content()
        .path(".tickbot.toml")
        .r#ref("topic")
        .send()
        .await
        .expect("contents");
    let file = items.take_items().pop().expect("one file");
    assert!(
        file.decoded_content()
            .expect("decodes")
            .contains("[tasks.lint]")
    );
}

#[tokio::test]
async fn git_push_over_http_moves_the_pr_head() {
    let mut w = World::new().await;
    let pr = w.pr("topic", "body", "alice").await;
    let work = tempfile::tempdir().expect("tempdir");
    let clone = work.path().join("clone");
    git(
        work.path(),
        &["clone", "-q", &w.forge.clone_url(&w.repo), "clone"],
    )
    .await;
    git(&clone, &["checkout", "-q", "topic"]).await;
    std::fs::write(clone.join("new.txt"), "pushed\n").expect("write");
    git(&clone, &["add", "new.txt"]).await;
    git(&clone, &["commit", "-q", "-m", "Push over HTTP"]).await;
    git(&clone, &["push", "-q", "origin", "topic"]).await;
    let sha = git(&clone, &["rev-parse", "HEAD"]).await;

    // The push has been noticed by the time `git push` returns.
    assert_eq!(w.forge.pr(&w.repo, pr).expect("pr").head_sha.0, sha);
    let remote = git(&clone, &["ls-remote", "origin", "refs/pull/1/head"]).await;
    assert!(
        remote.starts_with(&sha),
        "refs/pull/1/head follows: {remote}"
    );
    // Earlier pushes (main, the branch's first commit) are announced first.
    let mut push = next(&mut w.hooks, "push", None).await;
    while push.body["after"] != sha.as_str() {
        push = next(&mut w.hooks, "push", None).await;
    }
    assert_eq!(
        push.body["sender"]["login"], "acme",
        "anonymous pushes count as the owner"
    );
    assert_eq!(push.body["after"], sha);
    assert_eq!(push.body["commits"][0]["added"], json!(["new.txt"]));
    let sync = next(&mut w.hooks, "pull_request", Some("synchronize")).await;
    assert_eq!(sync.body["pull_request"]["head"]["sha"], sha);

    // A worker pushing with the bot's token is seen as the bot.
    std::fs::write(clone.join("bot.txt"), "by the bot\n").expect("write");
    git(&clone, &["add", "bot.txt"]).await;
    git(&clone, &["commit", "-q", "-m", "Bot result"]).await;
    let header = format!("http.extraHeader={}", w.forge.bot_git_auth_header());
    git(&clone, &["-c", &header, "push", "-q", "origin", "topic"]).await;
    let sync = next(&mut w.hooks, "pull_request", Some("synchronize")).await;
    assert_eq!(sync.body["sender"]["login"], "tickbot[bot]");
}

#[tokio::test]
async fn bodies_over_githubs_limit_are_refused_with_422() {
    let w = World::new().await;
    let pr = w.pr("topic", "short", "alice").await;
    let token = Some(w.forge.bot_token());
    let url = w.url(&format!("/pulls/{}", pr.0));
    let at_limit = "x".repeat(65_536);
    let (status, _, _) = call("PATCH", &url, token, Some(json!({ "body": at_limit }))).await;
    assert_eq!(status, 200);
    let (status, _, body) = call(
        "PATCH",
        &url,
        token,
        Some(json!({ "body": at_limit + "y" })),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["errors"],
        json!([{"resource":"Issue","code":"custom","field":"body","message":"body is too long (maximum is 65536 characters)"}])
    );
    assert_eq!(body["message"], "Validation Failed");
    let sha = w.forge.pr(&w.repo, pr).expect("pr").head_sha;
    let status = json!({"state": "pending", "context": "c", "description": "d".repeat(141)});
    let url = w.url(&format!("/statuses/{}", sha.0));
    let (code, _, body) = call("POST", &url, token, Some(status)).await;
    assert_eq!(
        (code, body["errors"][0]["field"].as_str()),
        (422, Some("description"))
    );
    let err = w
        .forge
        .edit_pr_body(&w.repo, pr, &"z".repeat(70_000), "alice")
        .await;
    assert!(err.is_err(), "a person hits the same limit");
    assert_eq!(w.forge.pr(&w.repo, pr).expect("pr").body.len(), 65_536);
}

#[tokio::test]
async fn bad_requests_get_githubs_json_errors() {
    let w = World::new().await;
    let url = w.url("");
    let (status, _, body) = call("GET", &url, None, None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Requires authentication"))
    );
    let (status, _, body) = call("GET", &url, Some("wrong"), None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Bad credentials"))
    );
    let token = Some(w.forge.bot_token());
    let (status, _, body) = call("GET", &w.url("/pulls/999"), token, None).await;
    assert_eq!((status, body["message"].as_str()), (404, Some("Not Found")));
    let (status, _, _) = call("GET", &w.url("/pulls/abc"), token, None).await;
    assert_eq!(status, 404);
    let (status, _, body) = call("GET", &w.url("/contents/nope.txt"), token, None).await;
    assert_eq!((status, body["message"].as_str()), (404, Some("Not Found")));
    let (status, _, body) = call(
        "POST",
        &w.url("/issues/1/comments"),
        token,
        Some(json!("x")),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Problems parsing JSON"))
    );
    let (status, _, body) = call("POST", &w.url("/pulls"), token, Some(json!({"title": 1}))).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn faults_answer_errors_and_rate_limits_then_recover() {
    let w = World::new().await;
    let token = Some(w.forge.bot_token());
    let url = w.url("");
    let faults = w.forge.faults();
    faults.inject_errors(2, 502, CallMatch::path("/repos/acme/widgets"));
    assert_eq!(call("GET", &url, token, None).await.0, 502);
    assert_eq!(call("GET", &url, token, None).await.0, 502);
    assert_eq!(call("GET", &url, token, None).await.0, 200);

    faults.inject_errors(1, 500, CallMatch::method("PATCH", "/repos/"));
    assert_eq!(
        call("GET", &url, token, None).await.0,
        200,
        "GET does not match"
    );

    faults.rate_limit(
        1,
        RateLimitKind::Primary {
            reset_after_secs: 60,
        },
        CallMatch::any(),
    );
    let (status, headers, _) = call("GET", &url, token, None).await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let reset: i64 = headers["x-ratelimit-reset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("epoch");
    assert!(reset > chrono::Utc::now().timestamp());

    faults.rate_limit(
        1,
        RateLimitKind::Secondary {
            retry_after_secs: 7,
        },
        CallMatch::any(),
    );
    let (status, headers, _) = call("GET", &url, token, None).await;
    assert_eq!(
        (status, headers["retry-after"].to_str().ok()),
        (429, Some("7"))
    );

    faults.latency(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(call("GET", &url, token, None).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    faults.clear();
}

#[tokio::test]
async fn the_call_log_counts_rest_calls() {
    let w = World::new().await;
    let pr = w.pr("topic", "body", "alice").await;
    w.forge.clear_api_calls();
    let token = Some(w.forge.bot_token());
    call("GET", &w.url(&format!("/pulls/{}", pr.0)), token, None).await;
    call("GET", &w.url("/pulls?state=all"), token, None).await;
    call(
        "POST",
        &w.url(&format!("/issues/{}/comments", pr.0)),
        token,
        Some(json!({"body": "hi"})),
    )
    .await;
    call("GET", &w.url(""), None, None).await;
    let calls: Vec<(String, String, u16)> = w
        .forge
        .api_calls()
        .into_iter()
        .map(|c| (c.method, c.path, c.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET".into(), "/repos/acme/widgets/pulls/1".into(), 200),
            (
                "GET".into(),
                "/repos/acme/widgets/pulls?state=all".into(),
                200
            ),
            (
                "POST".into(),
                "/repos/acme/widgets/issues/1/comments".into(),
                201
            ),
            ("GET".into(), "/repos/acme/widgets".into(), 401),
        ]
    );
    w.forge.clear_api_calls();
    assert!(w.forge.api_calls().is_empty());
}

#[tokio::test]
async fn redelivery_keeps_the_delivery_id() {
    let mut w = World::new().await;
    w.pr("topic", "body", "alice").await;
    let first = next(&mut w.hooks, "pull_request", Some("opened")).await;
    let status = w.forge.redeliver(&first.delivery).await.expect("redeliver");
    assert_eq!(status, 200);
    let again = next(&mut w.hooks, "pull_request", Some("opened")).await;
    assert_eq!(again.delivery, first.delivery);
    assert_eq!(again.body, first.body);
    let records: Vec<_> = w
        .forge
        .deliveries()
        .into_iter()
        .filter(|d| d.id == first.delivery)
        .collect();
    assert_eq!(records.len(), 2);
    assert!(records[1].redelivery && records[1].status == Some(200));
}

#[tokio::test]
async fn the_bot_adds_and_removes_a_label() {
    let (w, pr) = World::with_pr("body").await;
    let token = Some(w.forge.bot_token());
    let (s, _, labels) = call(
        "POST",
        &w.url("/issues/1/labels"),
        token,
        Some(json!({"labels": ["bot"]})),
    )
    .await;
    assert_eq!((s, labels[0]["name"].as_str()), (200, Some("bot")));
    let (s, _, _) = call("DELETE", &w.url("/issues/1/labels/bot"), token, None).await;
    assert_eq!(s, 200);
    assert!(w.forge.pr(&w.repo, pr).expect("pr").labels.is_empty());
}

#[tokio::test]
async fn the_bot_reacts_to_a_comment_once_with_a_known_reaction() {
    let (w, pr) = World::with_pr("body").await;
    let token = Some(w.forge.bot_token());
    let id = w
        .forge
        .comment(&w.repo, pr, "/test", "alice")
        .await
        .expect("comment");
    let url = w.url(&format!("/issues/comments/{id}/reactions"));
    let react =
        |content: &'static str| call("POST", &url, token, Some(json!({ "content": content })));
    assert_eq!(react("eyes").await.0, 201);
    assert_eq!(react("eyes").await.0, 200);
    assert_eq!(react("nope").await.0, 422);
    assert_eq!(w.forge.comments(&w.repo, pr)[0].reactions.len(), 1);
}

#[tokio::test]
async fn a_check_run_completes_when_given_a_conclusion() {
    let (w, pr) = World::with_pr("body").await;
    let token = Some(w.forge.bot_token());
    let sha = w.forge.pr(&w.repo, pr).expect("pr").head_sha;
    let (s, _, run) = call(
        "POST",
        &w.url("/check-runs"),
        token,
        Some(json!({"name": "lint", "head_sha": sha.0, "status": "in_progress"})),
    )
    .await;
    assert_eq!(s, 201);
    let run_url = w.url(&format!("/check-runs/{}", run["id"]));
    let (s, _, run) = call(
        "PATCH",
        &run_url,
        token,
        Some(json!({"conclusion": "success"})),
    )
    .await;
    assert_eq!((s, run["status"].as_str()), (200, Some("completed")));
    let (_, _, list) = call("GET", &w.url("/commits/topic/check-runs"), token, None).await;
    assert_eq!(list["total_count"], 1);
}

#[tokio::test]
async fn permissions_follow_collaborators_the_owner_and_org_membership() {
    let w = World::new().await;
    let token = Some(w.forge.bot_token());
    w.forge.add_collaborator(&w.repo, "carol", "maintain");
    let perm = |u: &str| w.url(&format!("/collaborators/{u}/permission"));
    assert_eq!(
        call("GET", &perm("carol"), token, None).await.2["permission"],
        "write"
    );
    assert_eq!(
        call("GET", &perm("acme"), token, None).await.2["permission"],
        "admin"
    );
    assert_eq!(
        call("GET", &perm("eve"), token, None).await.2["permission"],
        "none"
    );
    w.forge.add_org_member("acme", "mia");
    let member = |u: &str| format!("{}/orgs/acme/members/{u}", w.forge.api_url());
    assert_eq!(call("GET", &member("mia"), token, None).await.0, 204);
    assert_eq!(call("GET", &member("eve"), token, None).await.0, 404);
}

#[tokio::test]
async fn the_control_api_acts_like_a_person() {
    let mut w = World::new().await;
    let base = format!("{}/_forge", w.forge.api_url());
    let (s, _, _) = call(
        "POST",
        &format!("{base}/repos/acme/widgets/commits"),
        None,
        Some(json!({"branch": "ctl", "from": "main", "files": {"a.txt": "a"}, "author": "dora"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, opened) = call(
        "POST",
        &format!("{base}/repos/acme/widgets/pulls"),
        None,
        Some(json!({"head": "ctl", "title": "Via control", "body": "x", "author": "dora"})),
    )
    .await;
    assert_eq!(s, 200);
    let n = opened["number"].as_u64().expect("number");
    call(
        "PATCH",
        &format!("{base}/repos/acme/widgets/pulls/{n}"),
        None,
        Some(json!({"body": "y", "editor": "dora"})),
    )
    .await;
    let edited = next(&mut w.hooks, "pull_request", Some("edited")).await;
    assert_eq!(edited.body["changes"]["body"]["from"], "x");
    call(
        "POST",
        &format!("{base}/faults"),
        None,
        Some(json!({"errors": {"n": 1, "status": 500}})),
    )
    .await;
    assert_eq!(
        call("GET", &w.url(""), Some(w.forge.bot_token()), None)
            .await
            .0,
        500
    );
    let (_, _, calls) = call("GET", &format!("{base}/calls"), None, None).await;
    assert_eq!(
        calls.as_array().map(Vec::len),
        Some(1),
        "control calls are not logged"
    );
    let (s, _, _) = call(
        "POST",
        &format!("{base}/repos"),
        None,
        Some(json!({"repo": "bad"})),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let w = World::new().await;
    let url = w.url("");
    w.forge.clone().shutdown().await;
    assert!(!answers(&url).await, "no answer after shutdown");
}

/// `X-RateLimit-Used` of an answer.
fn used(headers: &axum::http::HeaderMap) -> u64 {
    let value = headers.get("x-ratelimit-used").expect("x-ratelimit-used");
    value.to_str().expect("text").parse().expect("a number")
}

#[tokio::test]
async fn a_read_whose_etag_still_matches_is_304_and_costs_no_rate_limit() {
    let (w, pr) = World::with_pr("first body").await;
    let token = Some(w.forge.bot_token());
    let url = w.url(&format!("/pulls/{}", pr.0));
    let (status, headers, first) = call("GET", &url, token, None).await;
    assert_eq!(status, 200);
    assert_eq!(first["body"], "first body");
    let etag = headers["etag"].to_str().expect("text").to_string();

    let if_none_match = [("if-none-match", etag.as_str())];
    let (status, again, body) = call_with("GET", &url, token, None, &if_none_match).await;
    assert_eq!((status, body), (304, Value::Null));
    assert_eq!(again["etag"].to_str().expect("text"), etag);
    assert_eq!(used(&again), used(&headers), "a 304 is not counted");

    // Once the pull request changed, the old tag gets the new answer, counted.
    w.forge
        .edit_pr_body(&w.repo, pr, "second body", "alice")
        .await
        .expect("edit");
    let (status, changed, body) = call_with("GET", &url, token, None, &if_none_match).await;
    assert_eq!((status, body["body"].clone()), (200, json!("second body")));
    assert_ne!(changed["etag"].to_str().expect("text"), etag);
    assert_eq!(used(&changed), used(&headers) + 1);
    let statuses: Vec<u16> = w.forge.api_calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 304, 200], "the call log tells 304s apart");
}

#[tokio::test]
async fn calls_past_the_hours_rate_limit_are_refused_as_github_does() {
    let w = World::new().await;
    w.forge.set_rate_limit(2);
    let token = Some(w.forge.bot_token());
    let url = w.url("");
    let remaining =
        |h: &axum::http::HeaderMap| h["x-ratelimit-remaining"].to_str().map(str::to_string);
    let (status, h1, _) = call("GET", &url, token, None).await;
    assert_eq!((status, remaining(&h1).expect("text")), (200, "1".into()));
    let (status, h2, _) = call("GET", &url, token, None).await;
    assert_eq!((status, remaining(&h2).expect("text")), (200, "0".into()));
    let (status, h3, refused) = call("GET", &url, token, None).await;
    assert_eq!(status, 403);
    assert_eq!(
        refused["message"],
        "API rate limit exceeded for installation ID 1."
    );
    assert_eq!(remaining(&h3).expect("text"), "0");
    assert_eq!(h3["x-ratelimit-reset"], h1["x-ratelimit-reset"]);
}

#[tokio::test]
async fn issues_are_opened_listed_with_pull_requests_commented_on_and_closed() {
    let (w, pr) = World::with_pr("a pull request").await;
    let token = Some(w.forge.bot_token());
    let issue = json!({ "title": "Refresh of x is failing", "body": "it failed" });
    let (status, _, opened) = call("POST", &w.url("/issues"), token, Some(issue)).await;
    assert_eq!(status, 201);
    assert_eq!(
        opened["number"],
        pr.0 + 1,
        "issues and pull requests share numbers"
    );
    assert!(opened.get("pull_request").is_none());

    let (_, _, listed) = call("GET", &w.url("/issues"), token, None).await;
    let listed: Vec<(u64, bool)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            (
                i["number"].as_u64().expect("number"),
                i.get("pull_request").is_some(),
            )
        })
        .collect();
    assert_eq!(listed, [(pr.0 + 1, false), (pr.0, true)], "newest first");

    let n = pr.0 + 1;
    let comment = json!({ "body": "failed again" });
    let comments_url = w.url(&format!("/issues/{n}/comments"));
    let (status, _, _) = call("POST", &comments_url, token, Some(comment)).await;
    assert_eq!(status, 201);
    let closing = json!({ "state": "closed" });
    let issue_url = w.url(&format!("/issues/{n}"));
    let (status, _, closed) = call("PATCH", &issue_url, token, Some(closing)).await;
    assert_eq!((status, closed["state"].clone()), (200, json!("closed")));
    assert_eq!(closed["comments"], 1);
    let (_, _, open) = call("GET", &w.url("/issues"), token, None).await;
    assert_eq!(
        open.as_array().map(Vec::len),
        Some(1),
        "only the pull request is open"
    );
    let (_, _, all) = call("GET", &w.url("/issues?state=all"), token, None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
}
