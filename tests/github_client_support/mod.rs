//! The GitHub client's test kit: a client with a known token against a wiremock server,
//! GitHub's real pull-request payloads, and short ways to say what the fake answers.

use serde_json::{Value, json};
use std::time::Duration;
use tickbot::github::{Auth, GitHub, GitHubError, GitHubSettings};
use tickbot::ids::{CommitSha, RepoName};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

pub const TOKEN: &str = "ghp_test_token_that_must_never_leak";

/// Every test runs under this bound, so a retry loop that waits too long fails instead of hanging.
pub const TEST_BOUND: Duration = Duration::from_secs(20);

pub fn settings(url: &str) -> GitHubSettings {
    GitHubSettings {
        max_attempts: 4,
        max_wait: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..GitHubSettings::new(url, Auth::Token(TOKEN.to_string()))
    }
}

pub fn client(server: &MockServer) -> GitHub {
    GitHub::new(settings(&server.uri())).expect("client builds")
}

pub fn repo() -> RepoName {
    "Codertocat/Hello-World".parse().expect("valid repo name")
}

pub fn fixture(name: &str) -> Value {
    let file = format!(
        "{}/tests/fixtures/github-webhooks/pull_request/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    let payload: Value = serde_json::from_str(&text).expect("fixture is JSON");
    payload["pull_request"].clone()
}

/// The fixture's PR with another number, as a second PR in a list.
pub fn pr_numbered(number: u64) -> Value {
    let mut pr = fixture("opened.payload.json");
    pr["number"] = json!(number);
    pr
}

pub async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .expect("request recording is on")
}

/// Asserts that `err` is a network-level failure whose call GitHub surely did not carry out.
pub fn assert_transport_error_known_not_done(err: &GitHubError) {
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
}

pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test finished within its bound")
}

/// The head commit of the fixture's PR.
pub fn head_sha() -> CommitSha {
    CommitSha("ec26c3e57ca3a959ca5aad62de7213c562f8c821".into())
}

/// A mock for `verb` on `route`: a route starting with `/` is a full path, any other is
/// relative to the repository (`pulls/2` is `/repos/Codertocat/Hello-World/pulls/2`), and an
/// empty route matches every path.
pub fn on(verb: &str, route: &str) -> MockBuilder {
    let given = Mock::given(method(verb));
    match route {
        "" => given,
        r if r.starts_with('/') => given.and(path(r)),
        r => given.and(path(format!("/repos/Codertocat/Hello-World/{r}"))),
    }
}

/// A fake GitHub: a wiremock server (it derefs to one) with short ways to say what it answers.
pub struct Fake(MockServer);

impl std::ops::Deref for Fake {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.0
    }
}

impl Fake {
    pub async fn start() -> Fake {
        Fake(MockServer::start().await)
    }

    /// GitHub answers `verb` on `route` (see [`on`]) with `answer`, every time.
    pub async fn answer(&self, verb: &str, route: &str, answer: ResponseTemplate) {
        on(verb, route).respond_with(answer).mount(&self.0).await;
    }

    /// GitHub answers `verb` on `route` once with `first`, then always with `then`.
    pub async fn first_then(
        &self,
        verb: &str,
        route: &str,
        first: ResponseTemplate,
        then: ResponseTemplate,
    ) {
        on(verb, route)
            .respond_with(first)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&self.0)
            .await;
        self.answer(verb, route, then).await;
    }

    /// GitHub expects exactly one `verb` on `route` with the JSON `body`, sent with the bot's
    /// token, and answers `answer`.
    pub async fn expect_once(
        &self,
        verb: &str,
        route: &str,
        body: Value,
        answer: ResponseTemplate,
    ) {
        on(verb, route)
            .and(wiremock::matchers::body_json(body))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(answer)
            .expect(1)
            .mount(&self.0)
            .await;
    }
}

/// An answer with just `status`.
pub fn status(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status)
}

/// An answer with `status` and a JSON `body`.
pub fn reply(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

/// GitHub's 404 answer.
pub fn not_found() -> ResponseTemplate {
    reply(404, json!({"message": "Not Found"}))
}

/// The fixture's opened PR, as `GET pulls/2` answers it.
pub fn the_pr() -> ResponseTemplate {
    reply(200, fixture("opened.payload.json"))
}

/// Every request the server received carried the bot's token.
pub async fn assert_every_request_carried_the_token(server: &MockServer) {
    for request in requests(server).await {
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

/// A throwaway RSA key generated for this test only; it signs JWTs for the fake server and
/// grants nothing anywhere.
pub const TEST_APP_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
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
