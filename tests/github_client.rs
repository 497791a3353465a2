//! The GitHub client's own contract, against a stateless HTTP fake (wiremock): the requests it
//! sends (paths, token, bodies), how it maps GitHub's answers, and its retry policy — which
//! failures are repeated, which are not, and how long it waits. End-to-end behaviour against the
//! stateful local forge is tested elsewhere.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tickbot::github::{
    Auth, CommitStatus, GitHub, GitHubError, GitHubSettings, Permission, StatusState,
};
use tickbot::ids::{CommitSha, PrNumber, RepoName};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ghp_test_token_that_must_never_leak";

/// Every test runs under this bound, so a retry loop that waits too long fails instead of hanging.
const TEST_BOUND: Duration = Duration::from_secs(20);

fn settings(url: &str) -> GitHubSettings {
    GitHubSettings {
        max_attempts: 4,
        max_wait: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..GitHubSettings::new(url, Auth::Token(TOKEN.to_string()))
    }
}

fn client(server: &MockServer) -> GitHub {
    GitHub::new(settings(&server.uri())).expect("client builds")
}

fn repo() -> RepoName {
    "Codertocat/Hello-World".parse().expect("valid repo name")
}

fn fixture(name: &str) -> Value {
    let file = format!(
        "{}/tests/fixtures/github-webhooks/pull_request/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    let payload: Value = serde_json::from_str(&text).expect("fixture is JSON");
    payload["pull_request"].clone()
}

/// The fixture's PR with another number, as a second PR in a list.
fn pr_numbered(number: u64) -> Value {
    let mut pr = fixture("opened.payload.json");
    pr["number"] = json!(number);
    pr
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test finished within its bound")
}

// ---- requests and mapping ----

#[tokio::test]
async fn pull_request_carries_the_token_and_maps_a_real_payload() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("opened.payload.json")))
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
    assert_eq!(
        pr.head_sha,
        CommitSha("ec26c3e57ca3a959ca5aad62de7213c562f8c821".into())
    );
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
    let server = MockServer::start().await;
    let mut payload = fixture("opened.with-null-body.json");
    assert!(payload["body"].is_null(), "the fixture has a null body");
    payload["head"]["repo"] = Value::Null;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(payload))
        .mount(&server)
        .await;

    let pr = bounded(client(&server).pull_request(&repo(), PrNumber(2)))
        .await
        .expect("pull request");
    assert_eq!(pr.body, "");
    assert_eq!(pr.head_repo, None);
    assert_eq!(pr.head_clone_url, None);
}

#[tokio::test]
async fn a_missing_pull_request_is_not_found_and_says_what() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;

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
    let server = MockServer::start().await;
    let next = format!(
        "<{}/repos/Codertocat/Hello-World/pulls?state=open&per_page=100&page=2>; rel=\"next\", \
         <{}/repos/Codertocat/Hello-World/pulls?state=open&per_page=100&page=2>; rel=\"last\"",
        server.uri(),
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls"))
        .and(query_param("state", "open"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([pr_numbered(1), pr_numbered(2)]))
                .insert_header("link", next.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls"))
        .and(query_param("page", "2"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pr_numbered(3)])))
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
    let server = MockServer::start().await;
    // GitHub wraps the base64 text with newlines.
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/contents/.tickbot.toml"))
        .and(query_param("ref", "ec26c3e"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "file", "encoding": "base64", "name": ".tickbot.toml",
            "content": "W3Rlc3RzLnVuaXRdCmNv\nbW1hbmQgPSBbIm1ha2UiXQo=\n",
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/repos/Codertocat/Hello-World/contents/missing/file.toml",
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
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
async fn writes_hit_github_s_paths_with_github_s_bodies() {
    let server = MockServer::start().await;
    let sha = CommitSha("ec26c3e57ca3a959ca5aad62de7213c562f8c821".into());
    let status_path = format!("/repos/Codertocat/Hello-World/statuses/{}", sha.0);
    Mock::given(method("POST"))
        .and(path(status_path.as_str()))
        .and(body_json(json!({
            "context": "unit-tests", "state": "pending",
            "description": "In progress [worker-1]", "target_url": "http://logs/1",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/Codertocat/Hello-World/issues/2/comments"))
        .and(body_json(json!({"body": "hello"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 77, "user": {"login": "tickbot[bot]"}, "body": "hello",
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/Codertocat/Hello-World/issues/comments/77"))
        .and(body_json(json!({"body": "edited"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 77})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .and(body_json(json!({"body": "- [x] done"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("opened.payload.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/repos/Codertocat/Hello-World/issues/comments/77/reactions",
        ))
        .and(body_json(json!({"content": "eyes"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
        .expect(1)
        .mount(&server)
        .await;

    let github = client(&server);
    let status = CommitStatus {
        context: "unit-tests".into(),
        state: StatusState::Pending,
        description: Some("In progress [worker-1]".into()),
        target_url: Some("http://logs/1".into()),
    };
    bounded(async {
        github
            .set_status(&repo(), &sha, &status)
            .await
            .expect("set status");
        let comment = github
            .post_comment(&repo(), PrNumber(2), "hello")
            .await
            .expect("comment");
        assert_eq!((comment.id, comment.author.as_str()), (77, "tickbot[bot]"));
        github
            .edit_comment(&repo(), 77, "edited")
            .await
            .expect("edit");
        github
            .set_pr_body(&repo(), PrNumber(2), "- [x] done")
            .await
            .expect("body");
        github
            .add_reaction(&repo(), 77, "eyes")
            .await
            .expect("reaction");
    })
    .await;
    for request in requests(&server).await {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            auth,
            Some(format!("Bearer {TOKEN}").as_str()),
            "{}",
            request.url
        );
    }
}

#[tokio::test]
async fn statuses_and_comments_are_read_in_full() {
    let server = MockServer::start().await;
    let sha = CommitSha("ec26c3e57ca3a959ca5aad62de7213c562f8c821".into());
    let status_path = format!("/repos/Codertocat/Hello-World/commits/{}/status", sha.0);
    Mock::given(method("GET"))
        .and(path(status_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "state": "failure", "sha": sha.0, "total_count": 2,
            "statuses": [
                {"context": "unit-tests", "state": "failure", "description": "Exit code 1 [w1]",
                 "target_url": "http://logs/1", "id": 1},
                {"context": "lint", "state": "success", "description": null,
                 "target_url": null, "id": 2},
            ],
        })))
        .mount(&server)
        .await;
    let next = format!(
        "<{}/repos/Codertocat/Hello-World/issues/2/comments?per_page=100&page=2>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/issues/2/comments"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 1, "user": {"login": "alice"}, "body": "/test"}]))
                .insert_header("link", next.as_str()),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/issues/2/comments"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 2, "user": null, "body": "from a deleted account"}])),
        )
        .mount(&server)
        .await;

    let github = client(&server);
    let statuses = bounded(github.statuses(&repo(), &sha))
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
    let comments = bounded(github.comments(&repo(), PrNumber(2)))
        .await
        .expect("comments");
    let summary: Vec<(u64, &str)> = comments.iter().map(|c| (c.id, c.author.as_str())).collect();
    assert_eq!(summary, vec![(1, "alice"), (2, "")]);
}

#[tokio::test]
async fn permission_and_org_membership() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/repos/Codertocat/Hello-World/collaborators/alice/permission",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"permission": "write", "role_name": "maintain"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/repos/Codertocat/Hello-World/collaborators/mallory/permission",
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/myorg/members/alice"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/myorg/members/mallory"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let github = client(&server);
    bounded(async {
        assert_eq!(
            github.permission(&repo(), "alice").await.expect("perm"),
            Permission::Maintain
        );
        assert_eq!(
            github.permission(&repo(), "mallory").await.expect("perm"),
            Permission::None
        );
        assert!(
            github
                .is_org_member("myorg", "alice")
                .await
                .expect("member")
        );
        assert!(
            !github
                .is_org_member("myorg", "mallory")
                .await
                .expect("not member")
        );
    })
    .await;
}

#[tokio::test]
async fn a_private_membership_redirect_falls_back_to_public_membership() {
    // GitHub answers 302 to the public-members URL when the bot cannot see private membership.
    let server = MockServer::start().await;
    let public = format!("{}/orgs/myorg/public_members/bob", server.uri());
    Mock::given(method("GET"))
        .and(path("/orgs/myorg/members/bob"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", public.as_str()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/myorg/public_members/bob"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let member = bounded(client(&server).is_org_member("myorg", "bob")).await;
    assert!(!member.expect("a redirect is an answer"));
}

#[tokio::test]
async fn a_refresh_pull_request_is_created_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/Codertocat/Hello-World/pulls"))
        .and(body_json(json!({
            "title": "images: Update fedora-41 image", "head": "refresh-fedora-41",
            "base": "main", "body": "- [ ] image-refresh fedora-41",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("opened.payload.json")))
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
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("opened.payload.json")))
        .mount(&server)
        .await;

    let pr = bounded(client(&server).pull_request(&repo(), PrNumber(2))).await;
    assert_eq!(pr.expect("retried to success").number, PrNumber(2));
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_get_gives_up_after_max_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"message": "Unavailable"})))
        .mount(&server)
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
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/Codertocat/Hello-World/issues/2/comments"))
        .respond_with(ResponseTemplate::new(502).set_body_json(json!({"message": "Bad Gateway"})))
        .mount(&server)
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
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;

    let status = CommitStatus {
        context: "unit-tests".into(),
        state: StatusState::Success,
        description: None,
        target_url: None,
    };
    let sha = CommitSha("ec26c3e57ca3a959ca5aad62de7213c562f8c821".into());
    bounded(client(&server).set_status(&repo(), &sha, &status))
        .await
        .expect("retried to success");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_pr_body_write_is_never_repeated_because_the_body_may_have_changed() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .mount(&server)
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
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 9, "user": {"login": "tickbot"}, "body": "hello",
        })))
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
    let server = MockServer::start().await;
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("opened.payload.json")))
        .mount(&server)
        .await;

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
    let server = MockServer::start().await;
    let reset = chrono::Utc::now().timestamp() + 3600;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
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
    assert!(
        matches!(
            err,
            GitHubError::Transport {
                outcome_unknown: false,
                ..
            }
        ),
        "{err:?}"
    );
    // Nothing was sent, so the error knows the comment was not posted.
    let err = bounded(github.post_comment(&repo(), PrNumber(2), "x"))
        .await
        .expect_err("no server");
    assert!(!err.outcome_unknown(), "{err:?}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test]
async fn a_timed_out_post_is_not_repeated_but_a_timed_out_get_is() {
    let server = MockServer::start().await;
    let slow = ResponseTemplate::new(200)
        .set_body_json(json!([]))
        .set_delay(Duration::from_secs(3));
    Mock::given(method("POST"))
        .respond_with(slow.clone())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(slow)
        .mount(&server)
        .await;
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
    assert!(
        matches!(
            err,
            GitHubError::Transport {
                outcome_unknown: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1 + 4);
}

// ---- secrets ----

#[tokio::test]
async fn the_token_never_appears_in_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/1"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("not json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/3"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;

    let github = client(&server);
    let errors = bounded(async {
        vec![
            github
                .pull_request(&repo(), PrNumber(1))
                .await
                .expect_err("401"),
            github
                .pull_request(&repo(), PrNumber(2))
                .await
                .expect_err("bad json"),
            github
                .pull_request(&repo(), PrNumber(3))
                .await
                .expect_err("rate limited"),
            github
                .pull_request(&repo(), PrNumber(4))
                .await
                .expect_err("404"),
            github
                .post_comment(&repo(), PrNumber(1), "x")
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

/// A throwaway RSA key generated for this test only; it signs JWTs for the fake server and
/// grants nothing anywhere.
const TEST_APP_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA2UuBe4aVZ/Ok1FCn/nij+439EnXP3pSvaPHC1yJPVddD0IB7
m18mSTPs4ZC6S8grKvXGWZNt0pNX1fS4926hAsrbUcq7ISgvpMQprFp+9FeD619I
7lHDGNm8KBHqcKZKuY9N14MTly6UElroCQQY1XfgavJweecNP4sn8287GhWvISKY
4J8F1Q/x5D3fN5CVNl9kuRUUyPePN7clAOT87l1giRo1m2CklvTRqG15dpQxrbms
40HJX/NgeDh/7x4pX9CDrV0mn+uk0PCpyhvJDwdpv6Wh9oHVBUR0bm+reS2VZmoj
QyWW9BWWKbXeKxy0FStJMZ1+N01H21em97wM7QIDAQABAoIBAAJRTtk9bzyDmb91
+MS7DqyxMADRZt0t4s0Qvw5CXGxC9oMzy521nxfqyN0DCSmjweocYvgznVlAnxA2
Iv7onCkGdt5hdit9XTy5puQitvXuNQb+pi18i8MpF1uqDUEUVPmzsJXa3QugwI2N
kKn/9C/arncVjOOP9lE2L7/l8NBvY7ycDj6GAAEuTTynyPzKmKDdiOU3IfVCskyr
f8x1AR0IHTAR6vBDAb0u/aLZkrSv0Y2NNe8mNzyOU881okwGkXGxpUvAk8/AzzJw
T4wmVQOj9q/qMfnvji0M4+PVdmCZo008siBvOABdMzEuozoUCqZqQvMteXhh9FIC
zRDUG+ECgYEA9j93+mhVrhjkuzIDQ5nMA6ha0UR9ynIzLzfjublS3y4b7wtcvn2p
dXpsCvWQ4mih8EvzaCPFKSpDjDkVPvqtaFePIeEuNau07yEo3FNHF5NylgMJQgmB
EQs8a3u/i6AX3QeyGN7rM9mHI44uJHK7Xy7Iosati7lv/jblIBY79ikCgYEA4eaA
6+ZvPO72sE2BbCkXLzvrwmzjxUAv1/2zwEM/gPz3v8xxSOeITiwD5eMg33ltlvIo
m8fa+Un9Vm44T1zeFkUElx9dnPbqjPGEa4KYND1UP9JDDXlxhpfbAnTwgT6G7Gvn
hKrJD2NdKw0gS/P6hLW1STuJh5pGgbB9HqOK0SUCgYBUSxGk9EYwHHFf6xTW9TSz
I9RCwnFU9Zaz2SvpDZlisIP7ZiZPRvDVOBz3+2unNS4J9dXSljwNhVwuCfRN5L2r
dB2Y+V46HRcIrI8yLIeveFfHJi7rHhnCXdhG6st83kaM8O90OArHavUppKgC7gtZ
38fqgJwzsjy2BtCUFUhdUQKBgQDeL0QAQf6I9RRnZWP1SRkHmS0SZt1EJhSooVzJ
rproOGdJG0EVDr0u/fW7h0DO7HTQcU9loRWL+a0V9ISn8lRxnOKd7Pi7KNSbWfT/
dUxUnTmfKCRRPXBejD+Z1AC1bhVwtdTZ1My6uOVrMZbhfY+aNcqfw9JKMIBGkJsP
ppUjjQKBgFiYOYx8Ggbi6cux9NdQKxrKltmES20EriNTxxn/9D+1fgFF6+vzs7AV
dOURGQdln7E78mjRo5RL/f+mpt6xSKfpSOdeN3i/jnvnzmCR+H+YhPtTytRbmwUu
DTCnJ5nSm2NEheHy6ADpXclVK8UocKRb8aISTE/ZsVvaROBSHH/O
-----END RSA PRIVATE KEY-----";

#[tokio::test]
async fn an_app_uses_one_cached_installation_token_per_owner() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/installation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&server)
        .await;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    Mock::given(method("POST"))
        .and(path("/app/installations/7/access_tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({"token": "ghs_installation", "expires_at": expires, "permissions": {}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/Codertocat/Hello-World/pulls/2"))
        .and(header("authorization", "Bearer ghs_installation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("opened.payload.json")))
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
