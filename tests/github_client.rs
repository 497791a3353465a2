//! The GitHub client's own contract, against a stateless HTTP fake (wiremock): the requests it
//! sends (paths, token, bodies), how it maps GitHub's answers, and its retry policy — which
//! failures are repeated, which are not, and how long it waits. End-to-end behaviour against the
//! stateful local forge is tested elsewhere.

mod github_client_support;

use github_client_support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tickbot::github::{
    Auth, CommitStatus, GitHub, GitHubError, GitHubSettings, Permission, StatusState,
};
use tickbot::ids::PrNumber;
use wiremock::matchers::{body_json, header, query_param, query_param_is_missing};

// ---- requests and mapping ----

#[tokio::test]
async fn pull_request_carries_the_token_and_maps_a_real_payload() {
    let server = Fake::start().await;
    on("GET", "pulls/2")
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(the_pr())
        .expect(1)
        .mount(&server)
        .await;

    let pr = bounded(client(&server).pull_request(&repo(), PrNumber(2)))
        .await
        .expect("pull request");

    assert_eq!(pr.repo, repo());
    assert_eq!(pr.number, PrNumber(2));
    assert_eq!(pr.title, "Update the README with new information.");
    assert_eq!(
        pr.body,
        "This is a pretty simple change that we need to pull into master."
    );
    assert!(pr.state_open);
    assert!(!pr.draft);
    assert_eq!(pr.author, "Codertocat");
    assert_eq!(pr.head_sha, head_sha());
    assert_eq!(pr.head_ref, "changes");
    assert_eq!(pr.head_repo, Some(repo()));
    assert_eq!(
        pr.head_clone_url.as_deref(),
        Some("https://github.com/Codertocat/Hello-World.git")
    );
    assert_eq!(pr.base_ref, "master");
    assert_eq!(
        pr.base_clone_url,
        "https://github.com/Codertocat/Hello-World.git"
    );
    assert_eq!(pr.author_association, "OWNER");
}

#[tokio::test]
async fn a_null_body_and_a_deleted_fork_map_to_empty_and_none() {
    let server = Fake::start().await;
    let mut payload = fixture("opened.with-null-body.json");
    assert!(payload["body"].is_null(), "the fixture has a null body");
    payload["head"]["repo"] = Value::Null;
    server.answer("GET", "pulls/2", reply(200, payload)).await;

    let pr = bounded(client(&server).pull_request(&repo(), PrNumber(2)))
        .await
        .expect("pull request");
    assert_eq!(pr.body, "");
    assert_eq!(pr.head_repo, None);
    assert_eq!(pr.head_clone_url, None);
}

#[tokio::test]
async fn a_missing_pull_request_is_not_found_and_says_what() {
    let server = Fake::start().await;
    server.answer("GET", "", not_found()).await;

    let err = bounded(client(&server).pull_request(&repo(), PrNumber(12)))
        .await
        .expect_err("404");
    assert!(matches!(err, GitHubError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "GET pull request Codertocat/Hello-World#12: not found on GitHub (HTTP 404); check the \
         name, and that the bot's token or App installation has access to it"
    );
}

#[tokio::test]
async fn open_pull_requests_follow_the_link_header_over_all_pages() {
    let server = Fake::start().await;
    let next = format!(
        "<{}/repos/Codertocat/Hello-World/pulls?state=open&per_page=100&page=2>; rel=\"next\", \
         <{}/repos/Codertocat/Hello-World/pulls?state=open&per_page=100&page=2>; rel=\"last\"",
        server.uri(),
        server.uri()
    );
    on("GET", "pulls")
        .and(query_param("state", "open"))
        .and(query_param_is_missing("page"))
        .respond_with(
            reply(200, json!([pr_numbered(1), pr_numbered(2)]))
                .insert_header("link", next.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    on("GET", "pulls")
        .and(query_param("page", "2"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(reply(200, json!([pr_numbered(3)])))
        .expect(1)
        .mount(&server)
        .await;

    let prs = bounded(client(&server).open_pull_requests(&repo()))
        .await
        .expect("list");
    let numbers: Vec<u64> = prs.iter().map(|pr| pr.number.0).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
}

#[tokio::test]
async fn file_at_decodes_base64_and_a_missing_file_is_none() {
    let server = Fake::start().await;
    // GitHub wraps the base64 text with newlines.
    on("GET", "contents/.tickbot.toml")
        .and(query_param("ref", "ec26c3e"))
        .respond_with(reply(
            200,
            json!({
                "type": "file", "encoding": "base64", "name": ".tickbot.toml",
                "content": "W3Rlc3RzLnVuaXRdCmNv\nbW1hbmQgPSBbIm1ha2UiXQo=\n",
            }),
        ))
        .mount(&server)
        .await;
    server
        .answer("GET", "contents/missing/file.toml", not_found())
        .await;

    let github = client(&server);
    let text = bounded(github.file_at(&repo(), ".tickbot.toml", "ec26c3e")).await;
    assert_eq!(
        text.expect("file").as_deref(),
        Some("[tests.unit]\ncommand = [\"make\"]\n")
    );
    let missing = bounded(github.file_at(&repo(), "missing/file.toml", "main")).await;
    assert_eq!(missing.expect("404 is not an error"), None);
}

#[tokio::test]
async fn a_status_is_posted_to_the_commit_with_github_s_body() {
    let server = Fake::start().await;
    let sha = head_sha();
    let body = json!({
        "context": "unit-tests", "state": "pending",
        "description": "In progress [worker-1]", "target_url": "http://logs/1",
    });
    let route = format!("statuses/{}", sha.0);
    server
        .expect_once("POST", &route, body, reply(201, json!({"id": 1})))
        .await;
    let status = CommitStatus {
        context: "unit-tests".into(),
        state: StatusState::Pending,
        description: Some("In progress [worker-1]".into()),
        target_url: Some("http://logs/1".into()),
    };
    bounded(client(&server).set_status(&repo(), &sha, &status))
        .await
        .expect("set status");
    assert_every_request_carried_the_token(&server).await;
}

#[tokio::test]
async fn a_comment_is_posted_on_the_pr_and_its_author_read_back() {
    let server = Fake::start().await;
    let answer = reply(
        201,
        json!({"id": 77, "user": {"login": "tickbot[bot]"}, "body": "hello"}),
    );
    server
        .expect_once(
            "POST",
            "issues/2/comments",
            json!({"body": "hello"}),
            answer,
        )
        .await;
    let comment = bounded(client(&server).post_comment(&repo(), PrNumber(2), "hello"))
        .await
        .expect("comment");
    assert_eq!((comment.id, comment.author.as_str()), (77, "tickbot[bot]"));
    assert_every_request_carried_the_token(&server).await;
}

#[tokio::test]
async fn a_comment_is_edited_in_place() {
    let server = Fake::start().await;
    let body = json!({"body": "edited"});
    server
        .expect_once(
            "PATCH",
            "issues/comments/77",
            body,
            reply(200, json!({"id": 77})),
        )
        .await;
    bounded(client(&server).edit_comment(&repo(), 77, "edited"))
        .await
        .expect("edit");
    assert_every_request_carried_the_token(&server).await;
}

#[tokio::test]
async fn a_pr_body_is_written_through_the_pulls_api() {
    let server = Fake::start().await;
    server
        .expect_once("PATCH", "pulls/2", json!({"body": "- [x] done"}), the_pr())
        .await;
    bounded(client(&server).set_pr_body(&repo(), PrNumber(2), "- [x] done"))
        .await
        .expect("body");
    assert_every_request_carried_the_token(&server).await;
}

#[tokio::test]
async fn a_reaction_is_added_to_a_comment() {
    let server = Fake::start().await;
    let route = "issues/comments/77/reactions";
    let answer = reply(201, json!({"id": 5}));
    server
        .expect_once("POST", route, json!({"content": "eyes"}), answer)
        .await;
    bounded(client(&server).add_reaction(&repo(), 77, "eyes"))
        .await
        .expect("reaction");
    assert_every_request_carried_the_token(&server).await;
}

#[tokio::test]
async fn a_commit_s_statuses_are_read_with_their_empty_fields_as_none() {
    let server = Fake::start().await;
    let sha = head_sha();
    let combined = json!({
        "state": "failure", "sha": sha.0, "total_count": 2,
        "statuses": [
            {"context": "unit-tests", "state": "failure", "description": "Exit code 1 [w1]",
             "target_url": "http://logs/1", "id": 1},
            {"context": "lint", "state": "success", "description": null,
             "target_url": null, "id": 2},
        ],
    });
    let route = format!("commits/{}/status", sha.0);
    server.answer("GET", &route, reply(200, combined)).await;

    let statuses = bounded(client(&server).statuses(&repo(), &sha))
        .await
        .expect("statuses");
    assert_eq!(
        statuses,
        vec![
            CommitStatus {
                context: "unit-tests".into(),
                state: StatusState::Failure,
                description: Some("Exit code 1 [w1]".into()),
                target_url: Some("http://logs/1".into()),
            },
            CommitStatus {
                context: "lint".into(),
                state: StatusState::Success,
                description: None,
                target_url: None,
            },
        ]
    );
}

#[tokio::test]
async fn comments_are_read_over_all_pages_including_deleted_authors() {
    let server = Fake::start().await;
    let next = format!(
        "<{}/repos/Codertocat/Hello-World/issues/2/comments?per_page=100&page=2>; rel=\"next\"",
        server.uri()
    );
    on("GET", "issues/2/comments")
        .and(query_param_is_missing("page"))
        .respond_with(
            reply(
                200,
                json!([{"id": 1, "user": {"login": "alice"}, "body": "/test"}]),
            )
            .insert_header("link", next.as_str()),
        )
        .mount(&server)
        .await;
    on("GET", "issues/2/comments")
        .and(query_param("page", "2"))
        .respond_with(reply(
            200,
            json!([{"id": 2, "user": null, "body": "from a deleted account"}]),
        ))
        .mount(&server)
        .await;

    let comments = bounded(client(&server).comments(&repo(), PrNumber(2)))
        .await
        .expect("comments");
    let summary: Vec<(u64, &str)> = comments.iter().map(|c| (c.id, c.author.as_str())).collect();
    assert_eq!(summary, vec![(1, "alice"), (2, "")]);
}

#[tokio::test]
async fn a_collaborator_s_role_is_their_permission_and_a_stranger_has_none() {
    let server = Fake::start().await;
    let role = json!({"permission": "write", "role_name": "maintain"});
    server
        .answer("GET", "collaborators/alice/permission", reply(200, role))
        .await;
    server
        .answer("GET", "collaborators/mallory/permission", not_found())
        .await;

    let github = client(&server);
    assert_eq!(
        bounded(github.permission(&repo(), "alice"))
            .await
            .expect("perm"),
        Permission::Maintain
    );
    assert_eq!(
        bounded(github.permission(&repo(), "mallory"))
            .await
            .expect("perm"),
        Permission::None
    );
}

#[tokio::test]
async fn org_membership_is_204_for_members_and_404_for_others() {
    let server = Fake::start().await;
    server
        .answer("GET", "/orgs/myorg/members/alice", status(204))
        .await;
    server
        .answer("GET", "/orgs/myorg/members/mallory", status(404))
        .await;

    let github = client(&server);
    let alice = bounded(github.is_org_member("myorg", "alice")).await;
    assert!(alice.expect("member"));
    let mallory = bounded(github.is_org_member("myorg", "mallory")).await;
    assert!(!mallory.expect("not member"));
}

#[tokio::test]
async fn a_private_membership_redirect_falls_back_to_public_membership() {
    // GitHub answers 302 to the public-members URL when the bot cannot see private membership.
    let server = Fake::start().await;
    let public = format!("{}/orgs/myorg/public_members/bob", server.uri());
    server
        .answer(
            "GET",
            "/orgs/myorg/members/bob",
            status(302).insert_header("location", public.as_str()),
        )
        .await;
    server
        .answer("GET", "/orgs/myorg/public_members/bob", status(404))
        .await;

    let member = bounded(client(&server).is_org_member("myorg", "bob")).await;
    assert!(!member.expect("a redirect is an answer"));
}

#[tokio::test]
async fn a_refresh_pull_request_is_created_once() {
    let server = Fake::start().await;
    on("POST", "pulls")
        .and(body_json(json!({
            "title": "images: Update fedora-41 image", "head": "refresh-fedora-41",
            "base": "main", "body": "- [ ] image-refresh fedora-41",
        })))
        .respond_with(reply(201, fixture("opened.payload.json")))
        .expect(1)
        .mount(&server)
        .await;

    let pr = bounded(client(&server).create_pull_request(
        &repo(),
        "images: Update fedora-41 image",
        "refresh-fedora-41",
        "main",
        "- [ ] image-refresh fedora-41",
    ))
    .await
    .expect("created");
    assert_eq!(pr.number, PrNumber(2));
}

// ---- retries ----

#[tokio::test]
async fn a_get_is_retried_after_a_502_and_succeeds() {
    let server = Fake::start().await;
    server
        .first_then("GET", "pulls/2", status(502), the_pr())
        .await;

    let pr = bounded(client(&server).pull_request(&repo(), PrNumber(2))).await;
    assert_eq!(pr.expect("retried to success").number, PrNumber(2));
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_get_gives_up_after_max_attempts() {
    let server = Fake::start().await;
    server
        .answer("GET", "", reply(503, json!({"message": "Unavailable"})))
        .await;

    let err = bounded(client(&server).comments(&repo(), PrNumber(2)))
        .await
        .expect_err("keeps failing");
    assert_eq!(requests(&server).await.len(), 4);
    assert!(
        matches!(
            err,
            GitHubError::Api {
                status: 503,
                outcome_unknown: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_comment_post_is_not_repeated_after_a_502() {
    let server = Fake::start().await;
    server
        .answer(
            "POST",
            "issues/2/comments",
            reply(502, json!({"message": "Bad Gateway"})),
        )
        .await;

    let err = bounded(client(&server).post_comment(&repo(), PrNumber(2), "hello"))
        .await
        .expect_err("502");
    assert_eq!(
        requests(&server).await.len(),
        1,
        "a comment must never be posted twice"
    );
    assert!(err.outcome_unknown());
    assert_eq!(
        err.to_string(),
        "POST comment on Codertocat/Hello-World#2: GitHub answered HTTP 502: Bad Gateway; the \
         request may have been carried out anyway, so it was not repeated (repeating could \
         duplicate it): check on GitHub before trying again"
    );
}

#[tokio::test]
async fn a_status_post_is_idempotent_and_retried_after_a_500() {
    let server = Fake::start().await;
    server
        .first_then("POST", "", status(500), reply(201, json!({"id": 1})))
        .await;

    let status = CommitStatus {
        context: "unit-tests".into(),
        state: StatusState::Success,
        description: None,
        target_url: None,
    };
    let sha = head_sha();
    bounded(client(&server).set_status(&repo(), &sha, &status))
        .await
        .expect("retried to success");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_pr_body_write_is_never_repeated_because_the_body_may_have_changed() {
    let server = Fake::start().await;
    server
        .first_then(
            "PATCH",
            "pulls/2",
            status(502),
            status(429).insert_header("retry-after", "1"),
        )
        .await;

    let github = client(&server);
    let started = Instant::now();
    let after_502 = bounded(github.set_pr_body(&repo(), PrNumber(2), "- [x] a")).await;
    assert!(after_502.expect_err("502").outcome_unknown());
    let after_429 = bounded(github.set_pr_body(&repo(), PrNumber(2), "- [x] a")).await;
    assert!(
        matches!(after_429, Err(GitHubError::RateLimited { .. })),
        "{after_429:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "no waiting");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_comment_post_rate_limited_with_429_is_retried_after_retry_after() {
    let server = Fake::start().await;
    on("POST", "")
        .respond_with(status(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    on("POST", "")
        .respond_with(reply(
            201,
            json!({
                "id": 9, "user": {"login": "tickbot"}, "body": "hello",
            }),
        ))
        .mount(&server)
        .await;

    let started = Instant::now();
    let comment = bounded(client(&server).post_comment(&repo(), PrNumber(2), "hello"))
        .await
        .expect("posted after waiting");
    assert_eq!(comment.id, 9);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_403_with_the_rate_limit_exhausted_waits_for_the_reset() {
    let server = Fake::start().await;
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    on("GET", "")
        .respond_with(
            status(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    server.answer("GET", "", the_pr()).await;

    let started = Instant::now();
    let pr = bounded(client(&server).pull_request(&repo(), PrNumber(2))).await;
    assert_eq!(pr.expect("succeeded after the reset").number, PrNumber(2));
    // The reset is at most 1 s away (whole seconds), plus a little slack for clock skew.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_reset_far_in_the_future_fails_at_once_with_rate_limited() {
    let server = Fake::start().await;
    let reset = chrono::Utc::now().timestamp() + 3600;
    on("GET", "")
        .respond_with(
            status(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
        )
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = bounded(client(&server).pull_request(&repo(), PrNumber(2)))
        .await
        .expect_err("rate limited");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    match &err {
        GitHubError::RateLimited { until, .. } => assert!(until.timestamp() >= reset),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("GET pull request Codertocat/Hello-World#2: GitHub's rate limit")
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_transport_error_after_bounded_retries() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let github = GitHub::new(settings(&format!("http://127.0.0.1:{port}"))).expect("client");

    let err = bounded(github.pull_request(&repo(), PrNumber(2)))
        .await
        .expect_err("no server");
    assert_transport_error_known_not_done(&err);
    // Nothing was sent, so the error knows the comment was not posted.
    let err = bounded(github.post_comment(&repo(), PrNumber(2), "x"))
        .await
        .expect_err("no server");
    assert!(!err.outcome_unknown(), "{err:?}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn a_timed_out_post_is_not_repeated_but_a_timed_out_get_is() {
    let server = Fake::start().await;
    let slow = reply(200, json!([])).set_delay(Duration::from_secs(3));
    server.answer("POST", "", slow.clone()).await;
    server.answer("GET", "", slow).await;
    let github = GitHub::new(GitHubSettings {
        request_timeout: Duration::from_millis(300),
        ..settings(&server.uri())
    })
    .expect("client");

    let err = bounded(github.post_comment(&repo(), PrNumber(2), "x"))
        .await
        .expect_err("timeout");
    assert!(err.outcome_unknown(), "{err:?}");
    assert!(
        err.to_string().contains("may have been carried out anyway"),
        "{err}"
    );
    assert_eq!(requests(&server).await.len(), 1);

    let err = bounded(github.comments(&repo(), PrNumber(2)))
        .await
        .expect_err("timeout");
    assert_transport_error_known_not_done(&err);
    assert_eq!(requests(&server).await.len(), 1 + 4);
}

// ---- secrets ----

#[tokio::test]
async fn the_token_never_appears_in_an_error() {
    let server = Fake::start().await;
    let bad_credentials = reply(401, json!({"message": "Bad credentials"}));
    server.answer("GET", "pulls/1", bad_credentials).await;
    let not_json = status(200).set_body_string("not json");
    server.answer("GET", "pulls/2", not_json).await;
    server.answer("POST", "", status(502)).await;
    let rate_limited = status(429).insert_header("retry-after", "3600");
    server.answer("GET", "pulls/3", rate_limited).await;

    let github = client(&server);
    let repo = repo();
    let pr = |n| github.pull_request(&repo, PrNumber(n));
    let errors = bounded(async {
        vec![
            pr(1).await.expect_err("401"),
            pr(2).await.expect_err("bad json"),
            pr(3).await.expect_err("rate limited"),
            pr(4).await.expect_err("404"),
            github
                .post_comment(&repo, PrNumber(1), "x")
                .await
                .expect_err("502"),
        ]
    })
    .await;
    for err in &errors {
        assert!(!err.to_string().contains(TOKEN), "{err}");
        assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
    }
    assert!(
        errors[0]
            .to_string()
            .contains("Bad credentials; the token or App key was refused")
    );
    assert!(!format!("{github:?}").contains(TOKEN));
    assert!(GitHub::new(settings("not a url")).is_err());
}

// ---- GitHub App ----
#[tokio::test]
async fn an_app_uses_one_cached_installation_token_per_owner() {
    let server = Fake::start().await;
    on("GET", "installation")
        .respond_with(reply(200, json!({"id": 7})))
        .expect(1)
        .mount(&server)
        .await;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    on("POST", "/app/installations/7/access_tokens")
        .respond_with(reply(
            201,
            json!({"token": "ghs_installation", "expires_at": expires, "permissions": {}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    on("GET", "pulls/2")
        .and(header("authorization", "Bearer ghs_installation"))
        .respond_with(the_pr())
        .expect(2)
        .mount(&server)
        .await;

    let auth = Auth::App {
        app_id: 42,
        private_key_pem: TEST_APP_KEY.to_string(),
    };
    let github = GitHub::new(GitHubSettings {
        auth,
        ..settings(&server.uri())
    })
    .expect("client");
    bounded(async {
        github
            .pull_request(&repo(), PrNumber(2))
            .await
            .expect("first call");
        github
            .clone()
            .pull_request(&repo(), PrNumber(2))
            .await
            .expect("cached installation");
        assert_eq!(
            github.git_token(&repo()).await.expect("token"),
            "ghs_installation"
        );
    })
    .await;
    let lookups = requests(&server).await;
    let jwt = lookups[0]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    assert!(
        jwt.is_some_and(|v| v.starts_with("Bearer ey")),
        "the App JWT: {jwt:?}"
    );
}

#[tokio::test]
async fn a_bad_app_key_is_a_configuration_error() {
    let auth = Auth::App {
        app_id: 42,
        private_key_pem: "not a key".into(),
    };
    let err = GitHub::new(GitHubSettings {
        auth,
        ..settings("https://api.github.com")
    })
    .expect_err("bad key");
    assert!(matches!(err, GitHubError::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("not a key"));
}
