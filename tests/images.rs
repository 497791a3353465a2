//! End-to-end: `[images.*]` built from the PR that changes them (reference §8). The local
//! forge, the intake, the dispatcher and real RabbitMQ, a real podman worker, and a real
//! registry (`docker-registry`) on a loopback port. The image's base is the local test image,
//! so builds need no network.

mod common;

use common::registry::TestRegistry;
use common::world::World;
use common::{broker_lock, wait_for};
use tickbot::ids::{CommitSha, PrNumber};

const CONTAINERFILE: &str = "containers/tasks/Containerfile";
const V1: &str = "FROM localhost/tickbot-test:latest\nRUN echo v1 > /image-version\n";
const V2: &str =
    "FROM localhost/tickbot-test:latest\nRUN echo v2 > /image-version && touch /only-in-v2\n";
const BROKEN: &str = "FROM localhost/tickbot-test:latest\nRUN echo broken && false\n";

/// A test context that passes only in the v2 image, and a task that runs in the image too;
/// `more` goes into `[images.tasks]`.
fn tickbot_toml(registry: &TestRegistry, more: &str) -> String {
    format!(
        r#"
[images.tasks]
context = "containers/tasks"
repository = "{}/acme/tasks"
publish = ["latest"]
timeout = "5m"
{more}

[tests.version]
command = ["test", "-f", "/only-in-v2"]
image = "tasks"
default = true
timeout = "1m"

[tasks.lint]
command = ["true"]
image = "tasks"
"#,
        registry.host
    )
}

async fn world(registry: &TestRegistry) -> World {
    world_with(registry, "").await
}

async fn world_with(registry: &TestRegistry, more: &str) -> World {
    let toml = tickbot_toml(registry, more);
    let mut w = World::new(&[(".tickbot.toml", toml.as_str()), (CONTAINERFILE, V1)]).await;
    w.start_worker("w1", &[]);
    w
}

/// V2 with a build step that takes two seconds, never cached by an earlier run (so a story can
/// act while the build runs).
fn slow_v2() -> String {
    let step = format!(
        "RUN sleep 2 && echo {} >/dev/null && echo",
        uuid::Uuid::new_v4()
    );
    V2.replace("RUN echo", &step)
}

/// The log link of the latest `image/tasks` state on `sha`, once it is `state`.
async fn build_state(w: &World, sha: &CommitSha, state: &str, description: &str) -> String {
    w.wait_status(sha, "image/tasks", state, description)
        .await
        .expect("the build links its log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_that_changes_the_image_runs_in_its_own_build_and_others_use_the_default_branchs() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;

    // A PR that changes the Containerfile: its image is built from it, once, and its test
    // sees the file that only the new image has.
    let (_, sha) = w.open_pr("alice", &[(CONTAINERFILE, V2)], "").await;
    let waiting = wait_for("the test waiting for the build", || {
        w.statuses(&sha, "version")
            .into_iter()
            .find(|s| s.1 == "Waiting for image/tasks")
    })
    .await;
    assert_eq!(waiting.0, "pending");
    let build_log = build_state(&w, &sha, "success", "Success [w1]").await;
    assert_eq!(
        waiting.2.as_deref(),
        Some(build_log.as_str()),
        "waiting links the build"
    );
    w.wait_status(&sha, "version", "success", "Success [w1]")
        .await;
    let log = w.log(&build_log).await;
    assert!(log.contains("$ podman build -t"), "{log}");
    assert!(log.contains("pushed 127.0.0.1:"), "{log}");

    // A PR that leaves the directory alone runs in the default branch's image (v1: no file),
    // built once for the default branch's tree, never for this PR's head.
    let (_, plain) = w.open_pr("alice", &[], "").await;
    let main_build = build_state(&w, &plain, "success", "Success [w1]").await;
    assert_ne!(
        main_build, build_log,
        "the default branch's tree is another image"
    );
    w.wait_status(&plain, "version", "failure", "Exit code 1 [w1]")
        .await;

    // The next such PR finds that image in the registry: nothing is built or waited for.
    let (_, again) = w.open_pr("alice", &[], "- [ ] lint\n").await;
    w.wait_status(&again, "version", "failure", "Exit code 1 [w1]")
        .await;
    w.wait_status(&again, "lint", "success", "Success [w1]")
        .await;
    assert!(w.statuses(&again, "image/tasks").is_empty(), "no build");
    for (_, description, _) in w.statuses(&again, "version") {
        assert_ne!(description, "Waiting for image/tasks");
    }
    w.stack.shutdown().await;
}

/// The digest `reference` names in the registry, read with skopeo.
fn digest_of(reference: &str) -> String {
    let docker = format!("docker://{reference}");
    let args = [
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &docker,
    ];
    common::run("skopeo", &args).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_moves_the_published_tag_to_the_tested_image_without_a_build() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let (pr, sha) = w.open_pr("alice", &[(CONTAINERFILE, V2)], "").await;
    let build_log = build_state(&w, &sha, "success", "Success [w1]").await;
    w.wait_status(&sha, "version", "success", "Success [w1]")
        .await;
    let log = w.log(&build_log).await;
    let pushed = log
        .lines()
        .find_map(|l| l.strip_prefix("tickbot: pushed "))
        .expect("the build log names what it pushed");
    let (reference, digest) = pushed.split_once(" as ").expect("reference as digest");

    let merge = w
        .forge()
        .merge_pr(&w.repo, pr, Some(&sha), "alice")
        .await
        .expect("merge");
    let tree = reference.rsplit(':').next().expect("tree tag");
    let description = format!(
        "Published latest: {} (tree {})",
        &digest.trim_start_matches("sha256:")[..12],
        &tree[..12]
    );
    w.wait_status(&merge, "image/tasks", "success", &description)
        .await;
    let latest = format!("{}/acme/tasks:latest", registry.host);
    assert_eq!(
        digest_of(&latest),
        digest,
        "latest is the image the PR tested"
    );
    let states = w.statuses(&merge, "image/tasks");
    assert_eq!(states.len(), 1, "published, nothing built: {states:?}");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_projects_tests_run_in_the_image_of_the_pr_that_changes_it() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world_with(&registry, r#"consumers = ["acme/webapp/main"]"#).await;
    let webapp: tickbot::ids::RepoName = "acme/webapp".parse().expect("valid");
    let webapp_toml = format!(
        "[tests.smoke]\ncommand = [\"test\", \"-f\", \"/only-in-v2\"]\n\
         image = \"{}/acme/tasks:latest\"\ndefault = true\n",
        registry.host
    );
    w.forge()
        .create_repo(&webapp, "main", &[(".tickbot.toml", webapp_toml.as_str())])
        .await
        .expect("the consumer project");
    let webapp_main = w.forge().branch_sha(&webapp, "main").expect("main");

    let (_, sha) = w.open_pr("alice", &[(CONTAINERFILE, V2)], "").await;
    let smoke = "smoke@acme/webapp/main";
    let passed = format!("Success [w1] (acme/webapp/main at {})", webapp_main.short());
    w.wait_status(&sha, smoke, "success", &passed).await;

    // A PR that leaves the image alone does not test the consumers.
    let (_, plain) = w.open_pr("alice", &[], "").await;
    w.wait_status(&plain, "version", "failure", "Exit code 1 [w1]")
        .await;
    assert!(w.statuses(&plain, smoke).is_empty());
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_restarted_while_an_image_builds_leaves_nothing_pending() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let slow = slow_v2();
    let (_, sha) = w
        .open_pr("alice", &[(CONTAINERFILE, slow.as_str())], "")
        .await;
    wait_for("the test waiting for the build", || {
        w.latest(&sha, "version")
            .filter(|s| s.1 == "Waiting for image/tasks")
    })
    .await;
    // What waited was in the old dispatcher's memory; the new one plans it again at start.
    w.stack.stop_dispatcher().await;
    w.stack.start_dispatcher();
    build_state(&w, &sha, "success", "Success [w1]").await;
    w.wait_status(&sha, "version", "success", "Success [w1]")
        .await;
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_one_pr_does_not_cancel_the_build_another_waits_for() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let slow = slow_v2();
    let (a, old_a) = w
        .open_pr("alice", &[(CONTAINERFILE, slow.as_str())], "")
        .await;
    // Another commit (the same files would make the same commit), the same image directory.
    let files = [(CONTAINERFILE, slow.as_str()), ("b.txt", "b\n")];
    let (_, b) = w.open_pr("alice", &files, "").await;
    wait_for("the second PR waiting for the build", || {
        w.latest(&b, "version")
            .filter(|s| s.1 == "Waiting for image/tasks")
    })
    .await;
    eprintln!("SHAS old_a={} b={}", old_a.short(), b.short());
    // The first PR moves on: its old head's test is cancelled, the shared build is not.
    let new_a = w.push(a, &[("other.txt", "x\n")], "alice").await;
    let superseded = format!("Cancelled: superseded by {}", new_a.short());
    w.wait_status(&old_a, "version", "error", &superseded).await;
    w.wait_status(&b, "version", "success", "Success [w1]")
        .await;
    w.wait_status(&new_a, "version", "success", "Success [w1]")
        .await;
    let (_, description, _) = w.latest(&old_a, "version").expect("a state");
    assert_eq!(
        description, superseded,
        "a cancelled context is not run when the build ends"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_prs_that_need_the_same_new_tree_cause_one_build() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let mut heads = Vec::new();
    for _ in 0..10 {
        heads.push(w.open_pr("alice", &[(CONTAINERFILE, V2)], "").await.1);
    }
    let mut logs = Vec::new();
    for sha in &heads {
        w.wait_status(sha, "version", "success", "Success [w1]")
            .await;
        let (state, _, log) = w.latest(sha, "image/tasks").expect("the build shows");
        assert_eq!(state, "success");
        logs.push(log.expect("a log link"));
    }
    logs.dedup();
    assert_eq!(
        logs.len(),
        1,
        "one build, shown on every PR that waited: {logs:?}"
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_containerfile_fails_its_build_and_every_waiting_job_says_why() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let (pr, sha) = w
        .open_pr("alice", &[(CONTAINERFILE, BROKEN)], "- [ ] lint\n")
        .await;
    let build_log = build_state(&w, &sha, "failure", "Build failed: exit code 1 [w1]").await;
    let why = "Image image/tasks failed to build [tickbot]";
    let test_log = w.wait_status(&sha, "version", "failure", why).await;
    assert_eq!(test_log.as_deref(), Some(build_log.as_str()));
    let task_log = w.wait_status(&sha, "lint", "failure", why).await;
    assert_eq!(task_log.as_deref(), Some(build_log.as_str()));
    w.wait_body(pr, "the task marked failed", "- [ ] FAIL: lint\n")
        .await;
    let log = w.log(&build_log).await;
    assert!(log.contains("broken"), "the build's own output: {log}");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_authors_image_change_builds_nothing_until_approved() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let (pr, sha) = w.open_pr("bob", &[(CONTAINERFILE, V2)], "").await;
    w.wait_status(&sha, "version", "pending", "Manual testing required")
        .await;
    w.barrier().await;
    assert!(w.statuses(&sha, "image/tasks").is_empty(), "nothing built");

    w.forge()
        .comment(&w.repo, pr, "/ok-to-test", "alice")
        .await
        .expect("comment");
    build_state(&w, &sha, "success", "Success [w1]").await;
    w.wait_status(&sha, "version", "success", "Success [w1]")
        .await;
    w.stack.shutdown().await;
}

/// `tickbot image <args> --repo acme/images` against this world's forge and registry.
fn image_cli(w: &World, args: &[&str]) -> String {
    let args: Vec<&str> = ["image"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--repo", "acme/images"])
        .collect();
    common::cli::tickbot_against(w.forge(), w.dir.path(), &args)
}

/// Ids, times and the registry's port replaced by what they stand for, for snapshots.
fn shown(text: &str, registry: &TestRegistry, names: &[(String, String)]) -> String {
    let mut text = text.replace(&registry.host, "<registry>");
    for (id, name) in names {
        text = text.replace(id, name);
    }
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d").expect("valid");
    let other = regex::Regex::new(r"\b[0-9a-f]{12}\b").expect("valid");
    let text = time.replace_all(&text, "<time>");
    common::redact(&other.replace_all(&text, "<another-id>"))
}

/// The tree and digest a build pushed, from its log.
async fn pushed(w: &World, log_url: &str) -> (String, String) {
    let log = w.log(log_url).await;
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("tickbot: pushed "))
        .expect("the build log names what it pushed");
    let (reference, digest) = line.split_once(" as ").expect("reference as digest");
    let tree = reference.rsplit(':').next().expect("tree tag").to_string();
    (tree, digest.to_string())
}

/// A PR with `content` as the Containerfile, built, tested and merged; its image published.
/// Returns the tree, the digest and the merge commit.
async fn land(w: &mut World, content: &str) -> (String, String, CommitSha) {
    let (pr, sha) = w.open_pr("alice", &[(CONTAINERFILE, content)], "").await;
    let log = build_state(w, &sha, "success", "Success [w1]").await;
    let (tree, digest) = pushed(w, &log).await;
    w.wait_status(&sha, "version", "success", "Success [w1]")
        .await;
    let merge = w
        .forge()
        .merge_pr(&w.repo, pr, Some(&sha), "alice")
        .await
        .expect("merge");
    let published = format!(
        "Published latest: {} (tree {})",
        &digest.trim_start_matches("sha256:")[..12],
        &tree[..12]
    );
    w.wait_status(&merge, "image/tasks", "success", &published)
        .await;
    (tree, digest, merge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_rollback_and_gc_of_an_image() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let v3 = &V2.replace("v2 >", "v3 >");
    let mut names = Vec::new();
    let mut landed = Vec::new();
    for (n, content) in [(2, V2), (3, v3.as_str())] {
        let (tree, digest, merge) = land(&mut w, content).await;
        names.push((tree[..12].to_string(), format!("<tree-v{n}>")));
        names.push((
            digest.trim_start_matches("sha256:")[..12].to_string(),
            format!("<digest-v{n}>"),
        ));
        names.push((merge.short().to_string(), format!("<merge-v{n}>")));
        landed.push((tree, digest));
    }

    let history = image_cli(&w, &["history", "tasks"]);
    insta::assert_snapshot!("image_history", shown(&history, &registry, &names));

    // Back to v2, published at once; the revert PR runs in the v2 image without a build.
    let (v2_tree, v2_digest) = &landed[0];
    let rollback = image_cli(
        &w,
        &["rollback", "tasks", "--to", &v2_tree[..12], "--publish-now"],
    );
    insta::assert_snapshot!("image_rollback", shown(&rollback, &registry, &names));
    let latest = format!("{}/acme/tasks:latest", registry.host);
    assert_eq!(&digest_of(&latest), v2_digest, "latest moved back at once");
    let revert = PrNumber(3);
    let head = w.head(revert);
    assert_eq!(w.file(revert, CONTAINERFILE), V2);
    w.wait_status(&head, "version", "success", "Success [w1]")
        .await;
    assert!(w.statuses(&head, "image/tasks").is_empty(), "no build");

    // An image that nothing refers to any more (a PR moved on from it) is deleted; the rest
    // stays, each for its reason.
    let (pr, sha) = w
        .open_pr(
            "alice",
            &[(CONTAINERFILE, BROKEN.replace("false", "true").as_str())],
            "",
        )
        .await;
    let log = build_state(&w, &sha, "success", "Success [w1]").await;
    let (orphan, _) = pushed(&w, &log).await;
    let moved = w
        .push(
            pr,
            &[(CONTAINERFILE, V2.replace("v2", "v5").as_str())],
            "alice",
        )
        .await;
    build_state(&w, &moved, "success", "Success [w1]").await;
    names.push((orphan[..12].to_string(), "<tree-orphan>".into()));
    let dry = image_cli(&w, &["gc", "tasks", "--keep-days", "0", "--dry-run"]);
    insta::assert_snapshot!("image_gc_dry_run", shown(&dry, &registry, &names));
    let orphan_ref = format!("{}/acme/tasks:{orphan}", registry.host);
    assert!(
        !digest_of(&orphan_ref).is_empty(),
        "a dry run deletes nothing"
    );
    let gc = image_cli(&w, &["gc", "tasks", "--keep-days", "0"]);
    insta::assert_snapshot!("image_gc", shown(&gc, &registry, &names));
    let args = [
        "inspect",
        "--tls-verify=false",
        &format!("docker://{orphan_ref}"),
    ];
    let gone = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo");
    assert!(!gone.status.success(), "the orphan is deleted");
    assert_eq!(&digest_of(&latest), v2_digest, "what is in use stays");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_comment_on_a_landed_pr_opens_the_revert_in_the_old_image() {
    let _shared = broker_lock().read().await;
    let registry = TestRegistry::start();
    let mut w = world(&registry).await;
    let (v2_tree, _, _) = land(&mut w, V2).await;
    let v3 = V2.replace("v2 >", "v3 >");
    land(&mut w, &v3).await;
    let landed = PrNumber(2);

    // Only trusted people, and only on a PR that landed.
    w.forge()
        .comment(&w.repo, landed, "/rollback", "bob")
        .await
        .expect("comment");
    let (open, _) = w.open_pr("alice", &[], "").await;
    w.forge()
        .comment(&w.repo, open, "/rollback", "alice")
        .await
        .expect("comment");
    w.forge()
        .comment(&w.repo, landed, "/rollback", "alice")
        .await
        .expect("comment");
    let reply = wait_for("the rollback's reply", || {
        w.bot_comments(landed)
            .into_iter()
            .find(|c| c.contains("opened #"))
    })
    .await;
    let refused = wait_for("the refusals", || {
        let bob = w
            .bot_comments(landed)
            .into_iter()
            .find(|c| c.contains("@bob"))?;
        let open = w
            .bot_comments(open)
            .into_iter()
            .find(|c| c.contains("/rollback"))?;
        Some(format!("{bob}\n---\n{open}"))
    })
    .await;
    let names = vec![(v2_tree[..12].to_string(), "<tree-v2>".to_string())];
    insta::assert_snapshot!(
        "rollback_comment",
        shown(&format!("{reply}\n---\n{refused}"), &registry, &names)
    );

    // The revert restores v2's directory and runs in v2's image, which is in the registry.
    let revert = PrNumber(4);
    assert_eq!(w.file(revert, CONTAINERFILE), V2);
    let head = w.head(revert);
    w.wait_status(&head, "version", "success", "Success [w1]")
        .await;
    assert!(w.statuses(&head, "image/tasks").is_empty(), "no build");
    w.stack.shutdown().await;
}
