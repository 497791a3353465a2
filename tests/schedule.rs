//! The scheduler as a person runs it: `tickbot schedule --dry-run` against the local forge, whose
//! default branch holds the history the decisions come from (reference §12).

mod common;

use common::cli::{tickbot_against, tickbot_command};
use common::world::World;
use common::{broker_lock, wait_for};
use tickbot::forge::{Forge, ForgeOptions};
use tickbot::github::{Auth, GitHub, GitHubSettings};
use tickbot::ids::{PrNumber, RepoName};

const TICKBOT_TOML: &str = r#"
[tasks.image-refresh]
command = ["./refresh", "{args}"]
message = "images: Update {args} image"

[images.tasks]
context = "containers/tasks"
repository = "127.0.0.1:5000/acme/tasks"

[[schedule]]
task = "image-refresh"
items = ["fedora-41", "centos-9", "debian"]
every = "7d"
inputs = ["images/scripts/{item}.setup"]

[[schedule]]
image = "tasks"
every = "30d"
"#;

fn dry_run(forge: &Forge, state: &std::path::Path) -> String {
    let args = ["schedule", "--dry-run", "--repo", "acme/images"];
    let shown = tickbot_against(forge, state, &args);
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").expect("valid");
    common::redact(&time.replace_all(&shown, "<time>"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_says_what_is_due_and_why_from_the_default_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let forge = Forge::start(ForgeOptions::local(dir.path().join("forge")))
        .await
        .expect("forge starts");
    let repo: RepoName = "acme/images".parse().expect("valid");
    let files = [
        (".tickbot.toml", TICKBOT_TOML),
        ("containers/tasks/Containerfile", "FROM scratch\n"),
        ("images/scripts/debian.setup", "v1\n"),
    ];
    forge
        .create_repo(&repo, "main", &files)
        .await
        .expect("repo");
    let commit = |files: Vec<(&'static str, &'static str)>, message: &'static str| {
        let forge = forge.clone();
        let repo = repo.clone();
        async move {
            forge
                .commit_files(&repo, "main", None, &files, message, "alice")
                .await
                .expect("commit")
        }
    };
    // centos-9 was refreshed just now; debian too, but one of its inputs changed since;
    // fedora-41 never was; the image's stamp was changed just now.
    commit(
        vec![("images/centos-9.qcow2", "1\n")],
        "images: Update centos-9 image",
    )
    .await;
    commit(
        vec![("images/debian.qcow2", "1\n")],
        "images: Update debian image",
    )
    .await;
    commit(
        vec![("images/scripts/debian.setup", "v2\n")],
        "Install one more package",
    )
    .await;
    commit(
        vec![("containers/tasks/.tickbot-refresh", "now\n")],
        "images: Refresh tasks",
    )
    .await;

    let state = dir.path().join("state");
    insta::assert_snapshot!("dry_run", dry_run(&forge, &state));
}

const REFRESH_TOML: &str = r#"
[tasks.image-refresh]
command = ["sh", "-c", "echo refreshed > images/$0.txt", "{args}"]
image = "localhost/tickbot-test:latest"
commit = true
message = "images: Update {args} image"

[[schedule]]
task = "image-refresh"
items = ["fedora-41"]
every = "7d"
"#;

/// `tickbot schedule --once` against the world's forge: one pass, what it did.
fn schedule_once(w: &World) -> String {
    let args = ["schedule", "--once", "--repo", "acme/images"];
    tickbot_against(w.forge(), w.dir.path(), &args)
}

/// A world whose `.tickbot.toml` is `toml`, with a podman worker, after one scheduler pass
/// opened the refresh PR #1 and its task ticked its box; and what that pass printed.
async fn first_refresh(toml: &str) -> (World, String) {
    let files = [(".tickbot.toml", toml), ("images/README", "images\n")];
    let mut w = World::new(&files).await;
    w.start_worker("w1", &[]);
    let first = schedule_once(&w);
    wait_for("the refresh task ticked", || {
        w.body(PrNumber(1))
            .contains("- [x] image-refresh fedora-41")
            .then_some(())
    })
    .await;
    (w, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_item_gets_one_refresh_pr_whose_task_runs_and_ticks() {
    let _shared = broker_lock().read().await;
    let (w, first) = first_refresh(REFRESH_TOML).await;
    let pr = PrNumber(1);
    let opened = w.forge().pr(&w.repo, pr).expect("the refresh PR");
    assert_eq!(opened.head_ref, "tickbot/refresh/image-refresh/fedora-41");
    insta::assert_snapshot!(
        "refresh_pr_opened",
        format!(
            "{first}\n--- title\n{}\n--- body\n{}",
            opened.title, opened.body
        )
    );

    // The normal task path ran the checkbox with the PR's code and committed the result.
    assert_eq!(w.file(pr, "images/fedora-41.txt"), "refreshed\n");

    // A second pass finds the open PR by its branch: no second PR.
    let second = schedule_once(&w);
    insta::assert_snapshot!("refresh_pr_not_duplicated", second);
    assert!(w.forge().pr(&w.repo, PrNumber(2)).is_none());

    // `/explain` on it says what it refreshes, how it lands and where a failure goes.
    w.forge()
        .comment(&w.repo, pr, "/explain", "bob")
        .await
        .expect("comment");
    let reply = wait_for("the explanation", || {
        let said = w.bot_comments(pr).into_iter();
        said.into_iter().find(|c| c.contains("what tickbot does"))
    })
    .await;
    insta::assert_snapshot!("refresh_pr_explained", common::redact(&reply));
    w.stack.shutdown().await;
}

/// A forge whose `acme/images` defines image `tasks` and schedules it every 30 days, the
/// schedule entry ending with `more`; returns the first commit too.
async fn image_forge(
    dir: &std::path::Path,
    more: &str,
) -> (Forge, RepoName, tickbot::ids::CommitSha) {
    let forge = Forge::start(ForgeOptions::local(dir.join("forge")))
        .await
        .expect("forge starts");
    let repo: RepoName = "acme/images".parse().expect("valid");
    let toml = format!(
        "[images.tasks]\ncontext = \"containers/tasks\"\nrepository = \"127.0.0.1:5000/acme/tasks\"\n\
         [[schedule]]\nimage = \"tasks\"\nevery = \"30d\"\n{more}"
    );
    let files = [
        (".tickbot.toml", toml.as_str()),
        ("containers/tasks/Containerfile", "FROM scratch\n"),
    ];
    let base = forge
        .create_repo(&repo, "main", &files)
        .await
        .expect("repo");
    (forge, repo, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_refresh_pr_changes_only_the_images_stamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (forge, repo, base) = image_forge(dir.path(), "").await;
    let state = dir.path().join("state");
    let args = ["schedule", "--once", "--repo", "acme/images"];
    assert_eq!(
        tickbot_against(&forge, &state, &args),
        "exit: Some(0)\n--- stdout\nacme/images: image/tasks: opened #1\n--- stderr\n"
    );
    let pr = forge.pr(&repo, PrNumber(1)).expect("the refresh PR");
    assert_eq!(pr.head_ref, "tickbot/refresh/image/tasks");
    let git_dir = forge.repo_path(&repo);
    let changed = common::run(
        "git",
        &[
            "--git-dir",
            git_dir.to_str().expect("utf-8"),
            "diff",
            "--name-only",
            &base.0,
            &pr.head_sha.0,
        ],
    );
    assert_eq!(changed, "containers/tasks/.tickbot-refresh\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_refresh_with_automerge_lands_once_its_image_is_built() {
    use tickbot::github::{CommitStatus, StatusState};
    let dir = tempfile::tempdir().expect("tempdir");
    let (forge, repo, _) = image_forge(dir.path(), "automerge = true\n").await;
    let state = dir.path().join("state");
    let args = ["schedule", "--once", "--repo", "acme/images"];
    let pass = || tickbot_against(&forge, &state, &args);
    let said = |line: &str| {
        format!("exit: Some(0)\n--- stdout\nacme/images: image/tasks: {line}\n--- stderr\n")
    };
    assert_eq!(pass(), said("opened #1"));
    // Not built yet: it waits.
    assert_eq!(pass(), said("refresh PR #1 is open"));
    // The dispatcher says the PR's image was built (as its build job's report makes it).
    let head = forge.pr(&repo, PrNumber(1)).expect("the PR").head_sha;
    let auth = Auth::Token(forge.bot_token().to_string());
    let github = GitHub::new(GitHubSettings::new(forge.api_url(), auth)).expect("client");
    let built = CommitStatus {
        context: "image/tasks".into(),
        state: StatusState::Success,
        description: Some("Built".into()),
        target_url: None,
    };
    github
        .set_status(&repo, &head, &built)
        .await
        .expect("the build's state");
    assert_eq!(pass(), said("merged #1: everything required passed"));
    assert!(
        forge
            .pr(&repo, PrNumber(1))
            .expect("the PR")
            .merged
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_changes_nothing_is_closed_and_not_tried_again_this_period() {
    let _shared = broker_lock().read().await;
    let toml = REFRESH_TOML.replace(
        r#"["sh", "-c", "echo refreshed > images/$0.txt", "{args}"]"#,
        r#"["true", "{args}"]"#,
    );
    let (w, _) = first_refresh(&toml).await;
    let pr = PrNumber(1);

    // The next pass sees a done refresh that changes nothing: it says so and closes it.
    let closing = schedule_once(&w);
    let comment = w
        .forge()
        .comments(&w.repo, pr)
        .into_iter()
        .map(|c| c.body)
        .find(|b| b.contains("changed nothing"))
        .expect("the closing comment");
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").expect("valid");
    let shown = format!("{closing}\n--- comment\n{comment}");
    insta::assert_snapshot!(
        "refresh_unchanged_closed",
        time.replace_all(&shown, "<time>")
    );
    assert_eq!(
        w.forge().pr(&w.repo, pr).expect("the PR").state.as_str(),
        "closed"
    );

    // Nothing is opened again within the period, and the dry run says why.
    let again = schedule_once(&w);
    assert_eq!(again, "exit: Some(0)\n--- stdout\n--- stderr\n");
    let args = ["schedule", "--dry-run", "--repo", "acme/images"];
    let why = tickbot_against(w.forge(), w.dir.path(), &args);
    insta::assert_snapshot!(
        "refresh_unchanged_dry_run",
        time.replace_all(&why, "<time>")
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_items_wait_their_turn_within_the_hourly_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (forge, repo) = scheduling_forge(dir.path(), r#"["a", "b", "c"]"#).await;
    let state = dir.path().join("state");
    let args = ["schedule", "--once", "--repo", "acme/images"];
    // `[schedule] max_per_hour` is 2 by default: the third due item waits for the next hour.
    insta::assert_snapshot!("hourly_limit", tickbot_against(&forge, &state, &args));
    // The next pass counts what GitHub says was opened within the hour.
    insta::assert_snapshot!(
        "hourly_limit_next_pass",
        tickbot_against(&forge, &state, &args)
    );
    assert!(forge.pr(&repo, PrNumber(3)).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automerge_lands_a_passed_refresh_and_the_item_is_fresh_again() {
    let _shared = broker_lock().read().await;
    let toml = format!("{REFRESH_TOML}automerge = true\n");
    let (w, _) = first_refresh(&toml).await;
    let pr = PrNumber(1);

    let merging = schedule_once(&w);
    assert_eq!(
        merging,
        "exit: Some(0)\n--- stdout\nacme/images: image-refresh/fedora-41: merged #1: everything required passed\n--- stderr\n"
    );
    let merged = w.forge().pr(&w.repo, pr).expect("the PR");
    assert!(merged.merged.is_some(), "merged with the head as guard");

    // The refresh landed: its commit is the item's last refresh now.
    let args = ["schedule", "--dry-run", "--repo", "acme/images"];
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").expect("valid");
    let fresh = tickbot_against(w.forge(), w.dir.path(), &args);
    insta::assert_snapshot!(
        "automerged_item_is_fresh",
        common::redact(&time.replace_all(&fresh, "<time>"))
    );
    w.stack.shutdown().await;
}

/// `git merge-base --is-ancestor` of two commits in the forge's repository.
fn is_ancestor(w: &World, ancestor: &str, of: &str) -> bool {
    let git_dir = w.forge().repo_path(&w.repo);
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["merge-base", "--is-ancestor", ancestor, of])
        .status()
        .expect("git runs")
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_conflicts_with_its_base_starts_again_unless_a_person_committed_to_it() {
    let _shared = broker_lock().read().await;
    let (w, _) = first_refresh(REFRESH_TOML).await;
    let pr = PrNumber(1);
    let first_head = w.head(pr);

    // Someone lands a change of the refreshed file: the refresh conflicts with `main`.
    let change = [("images/fedora-41.txt", "by hand\n")];
    let landed = w
        .forge()
        .commit_files(&w.repo, "main", None, &change, "Fix by hand", "alice")
        .await
        .expect("a change lands");
    let restarted = schedule_once(&w);
    assert_eq!(
        restarted,
        "exit: Some(0)\n--- stdout\nacme/images: image-refresh/fedora-41: #1 started again on the default branch's new tip\n--- stderr\n"
    );
    // The task makes its result again on the new tip, and the PR says what happened.
    wait_for("the refresh done again", || {
        let head = w.head(pr);
        let again = head != first_head && w.body(pr).contains("- [x] image-refresh fedora-41");
        (again && w.file(pr, "images/fedora-41.txt") == "refreshed\n").then_some(())
    })
    .await;
    assert!(is_ancestor(&w, &landed.0, &w.head(pr).0), "on the new tip");
    let said = w
        .bot_comments(pr)
        .into_iter()
        .find(|c| c.contains("started the refresh again"));
    insta::assert_snapshot!(
        "refresh_restarted_comment",
        common::redact(&said.expect("the comment"))
    );

    // A person's commit on the branch: a new conflict is theirs to solve.
    let theirs = w.push(pr, &[("images/notes", "mine\n")], "alice").await;
    let change = [("images/fedora-41.txt", "by hand again\n")];
    w.forge()
        .commit_files(&w.repo, "main", None, &change, "Fix by hand again", "alice")
        .await
        .expect("another change lands");
    let refused = schedule_once(&w);
    assert!(
        refused.contains("#1 is stale but has a person's commits: left to them"),
        "{refused}"
    );
    assert_eq!(w.head(pr), theirs, "their commit is never overwritten");
    assert_eq!(schedule_once(&w), refused);
    let refusals: Vec<String> = w
        .bot_comments(pr)
        .into_iter()
        .filter(|c| c.contains("does not start it again"))
        .collect();
    assert_eq!(refusals.len(), 1, "said once per head: {refusals:?}");
    insta::assert_snapshot!("refresh_rebase_refused", common::redact(&refusals[0]));
    w.stack.shutdown().await;
}

/// Waits until the `n`th attempt of the refresh on `pr` failed: its box marked and its state.
async fn attempt_fails(w: &World, pr: PrNumber, n: usize) {
    w.wait_body_containing(pr, "- [ ] FAIL: image-refresh fedora-41")
        .await;
    wait_for("the attempt's failure", || {
        let states = w.statuses(&w.head(pr), "image-refresh/fedora-41");
        let failed = states.iter().filter(|s| s.0 == "failure").count();
        (failed == n).then_some(())
    })
    .await;
}

/// A person retries a failed refresh: removes its `FAIL:`.
async fn retry(w: &World, pr: PrNumber) {
    let body = w.body(pr).replace("FAIL: ", "");
    w.edit(pr, &body, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_refresh_has_one_issue_updated_per_attempt_and_closed_on_success() {
    let _shared = broker_lock().read().await;
    // The refresh fails until its branch holds `images/ok`.
    let toml = REFRESH_TOML.replace(
        r#"["sh", "-c", "echo refreshed > images/$0.txt", "{args}"]"#,
        r#"["sh", "-c", "test -e images/ok || exit 3; echo refreshed > images/$0.txt", "{args}"]"#,
    );
    let files = [
        (".tickbot.toml", toml.as_str()),
        ("images/README", "images\n"),
    ];
    let mut w = World::new(&files).await;
    w.start_worker("w1", &[]);
    let pr = PrNumber(1);
    schedule_once(&w);
    attempt_fails(&w, pr, 1).await;

    // The pass opens the item's issue; a second pass over the same attempt says nothing more.
    let first = schedule_once(&w);
    assert_eq!(
        first,
        "exit: Some(0)\n--- stdout\nacme/images: image-refresh/fedora-41: refresh #1 failed: see issue #2\n--- stderr\n"
    );
    assert_eq!(schedule_once(&w), first);
    let issue = || {
        let mut issues = w.forge().issues(&w.repo);
        assert_eq!(issues.len(), 1, "one issue for the item: {issues:?}");
        issues.remove(0)
    };
    let opened = issue();
    assert_eq!(opened.state.as_str(), "open");

    // A person retries it (removes `FAIL:`); it fails again: one comment on the same issue.
    retry(&w, pr).await;
    attempt_fails(&w, pr, 2).await;
    assert_eq!(schedule_once(&w), first);
    assert_eq!(schedule_once(&w), first);
    let issue_comments = || {
        let comments = w.forge().comments(&w.repo, PrNumber(2));
        comments.into_iter().map(|c| c.body).collect::<Vec<_>>()
    };
    assert_eq!(issue_comments().len(), 1, "{:?}", issue_comments());

    // Fixed on the branch and retried: the refresh succeeds and its issue is closed.
    w.push(pr, &[("images/ok", "")], "alice").await;
    retry(&w, pr).await;
    wait_for("the refresh task ticked", || {
        w.body(pr)
            .contains("- [x] image-refresh fedora-41")
            .then_some(())
    })
    .await;
    let recovered = schedule_once(&w);
    assert!(recovered.contains("refresh PR #1 is open"), "{recovered}");
    let closed = issue();
    assert_eq!(closed.state.as_str(), "closed");
    insta::assert_snapshot!(
        "refresh_failure_issue",
        common::redact(&format!(
            "{}\n--- body\n{}\n--- comments\n{}",
            closed.title,
            opened.body,
            issue_comments().join("\n---\n")
        ))
    );
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automerge_refuses_when_the_head_moved_and_says_so_on_the_pr() {
    let _shared = broker_lock().read().await;
    let toml = format!("{REFRESH_TOML}automerge = true\n");
    let (w, _) = first_refresh(&toml).await;
    let pr = PrNumber(1);
    // A person pushes while tickbot merges: the merge carries the head tickbot saw.
    let mut merging = w
        .forge()
        .faults()
        .hold_next_call(tickbot::forge::CallMatch::method(
            "PUT",
            "/repos/acme/images/pulls/1/merge",
        ));
    let args = ["schedule", "--once", "--repo", "acme/images"];
    let pass = tickbot_command(w.forge(), w.dir.path(), &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the pass");
    tokio::time::timeout(common::WAIT, merging.entered())
        .await
        .expect("the pass merges within the wait")
        .expect("the hook ran");
    let theirs = w.push(pr, &[("images/notes", "mine\n")], "alice").await;
    merging.release();
    let out = pass.wait_with_output().expect("the pass ends");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "acme/images: image-refresh/fedora-41: #1 passed but GitHub refused the merge (see the PR)\n"
    );
    let after = w.forge().pr(&w.repo, pr).expect("the PR");
    assert!(after.merged.is_none(), "not merged");
    assert_eq!(after.head_sha, theirs);
    let refusal = w
        .bot_comments(pr)
        .into_iter()
        .find(|c| c.contains("did not merge"))
        .expect("the refusal on the PR");
    insta::assert_snapshot!("automerge_refused", common::redact(&refusal));
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_while_opening_a_pr_leaves_no_duplicate_and_the_next_pass_goes_on() {
    let _shared = broker_lock().read().await;
    let files = [
        (".tickbot.toml", REFRESH_TOML),
        ("images/README", "images\n"),
    ];
    let mut w = World::new(&files).await;
    w.start_worker("w1", &[]);
    // The pass is SIGKILLed while GitHub opens its refresh PR: its branch is pushed and GitHub
    // opens the PR, but the pass never learns it did.
    let mut opening = w
        .forge()
        .faults()
        .hold_next_call(tickbot::forge::CallMatch::method(
            "POST",
            "/repos/acme/images/pulls",
        ));
    let args = ["schedule", "--once", "--repo", "acme/images"];
    let mut pass = tickbot_command(w.forge(), w.dir.path(), &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the pass");
    tokio::time::timeout(common::WAIT, opening.entered())
        .await
        .expect("the pass opens its PR within the wait")
        .expect("the hook ran");
    pass.kill().expect("SIGKILL");
    pass.wait().expect("reaped");
    opening.release();
    wait_for("the PR the killed pass asked for", || {
        w.forge().pr(&w.repo, PrNumber(1)).map(|_| ())
    })
    .await;

    // The next pass finds it by its branch and opens no other.
    let next = schedule_once(&w);
    assert!(
        next.contains("image-refresh/fedora-41: refresh PR #1 is open"),
        "{next}"
    );
    wait_for("the refresh task ticked", || {
        w.body(PrNumber(1))
            .contains("- [x] image-refresh fedora-41")
            .then_some(())
    })
    .await;
    let pulls = w.forge().pulls(&w.repo);
    assert_eq!(pulls.len(), 1, "one refresh PR: {pulls:?}");
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scheduler_holds_the_lease_and_another_takes_over_when_it_stops() {
    use tickbot::queue::{Broker, BrokerSettings, QueueKind};
    use tickbot::scheduler::Lease;
    let _shared = broker_lock().read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = BrokerSettings::new(Some(common::amqp_url()), dir.path().join("queue"));
    settings.prefix = format!("lease-{}", uuid::Uuid::new_v4());
    // Two replicas: two connections to RabbitMQ.
    let first = Broker::open(&settings).await.expect("RabbitMQ");
    let second = Broker::open(&settings).await.expect("RabbitMQ");
    let (_stop, stopped) = tokio::sync::watch::channel(false);

    let held = Lease::acquire(&first, stopped.clone())
        .await
        .expect("the lease queue")
        .expect("the first replica holds the lease");
    let waiting = {
        let stopped = stopped.clone();
        tokio::spawn(async move { Lease::acquire(&second, stopped).await.map(|l| l.is_some()) })
    };
    // The holder keeps a spare token ready, which only the active consumer could take.
    held.keep_spare().await.expect("a spare");
    let ready = first.ready_count(&QueueKind::SchedulerLease).await;
    assert_eq!(ready.expect("count"), 1);
    assert!(
        !waiting.is_finished(),
        "the second replica waits while the first holds"
    );

    drop(held);
    let took_over = tokio::time::timeout(common::WAIT, waiting)
        .await
        .expect("the second replica takes over within the wait")
        .expect("the task");
    assert!(
        took_over.expect("the lease queue"),
        "the second replica holds the lease"
    );
    first.delete(&[]).await.expect("clean up");
}

/// A forge (no dispatcher) whose `acme/images` schedules `image-refresh` of `items` (a TOML
/// list) every week.
async fn scheduling_forge(dir: &std::path::Path, items: &str) -> (Forge, RepoName) {
    let forge = Forge::start(ForgeOptions::local(dir.join("forge")))
        .await
        .expect("forge starts");
    let repo: RepoName = "acme/images".parse().expect("valid");
    let toml = format!(
        "[tasks.image-refresh]\ncommand = [\"./refresh\", \"{{args}}\"]\n\
         message = \"images: Update {{args}} image\"\n\
         [[schedule]]\ntask = \"image-refresh\"\nitems = {items}\nevery = \"7d\"\n"
    );
    forge
        .create_repo(&repo, "main", &[(".tickbot.toml", toml.as_str())])
        .await
        .expect("repo");
    (forge, repo)
}

/// A forge whose `acme/images` refreshed its one scheduled item just now (nothing is due).
async fn quiet_forge(dir: &std::path::Path) -> (Forge, RepoName) {
    let (forge, repo) = scheduling_forge(dir, r#"["fedora-41"]"#).await;
    let refreshed = [("images/fedora-41.txt", "refreshed\n")];
    let message = "images: Update fedora-41 image";
    forge
        .commit_files(&repo, "main", None, &refreshed, message, "alice")
        .await
        .expect("the last refresh landed");
    (forge, repo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_pass_after_the_first_is_answered_by_304s_and_costs_no_rate_limit() {
    use tickbot::scheduler::{self, Acted, Limits};
    let dir = tempfile::tempdir().expect("tempdir");
    let (forge, repo) = quiet_forge(dir.path()).await;
    let auth = Auth::Token(forge.bot_token().to_string());
    let github = GitHub::new(GitHubSettings::new(forge.api_url(), auth)).expect("client");
    let now = chrono::Utc::now();
    let times = (now, now - chrono::Duration::minutes(1));
    let limits = Limits {
        max_open: 5,
        max_per_hour: 2,
    };
    let author = ("tickbot", "tickbot@example.com");
    let work = dir.path().join("work");
    let pass = || scheduler::pass(&github, &repo, &work, times, author, limits);
    let (_, first) = pass().await.expect("first pass");
    assert_eq!(first, [Acted::Waiting]);
    let left = github.rate_limit(&repo).expect("the limit GitHub reported");

    forge.clear_api_calls();
    let (_, second) = pass().await.expect("second pass");
    assert_eq!(second, [Acted::Waiting]);
    let calls = forge.api_calls();
    assert!(!calls.is_empty(), "the second pass reads GitHub again");
    let counted: Vec<_> = calls.iter().filter(|c| c.status != 304).collect();
    assert!(counted.is_empty(), "every read was a 304: {counted:?}");
    assert_eq!(github.rate_limit(&repo), Some(left), "nothing was spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_rate_limit_pauses_the_scheduler_and_says_until_when() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (forge, repo) = quiet_forge(dir.path()).await;
    // Ten calls an hour, and the dispatcher (the same token) has made seven: the pass's
    // first reads leave less than a fifth.
    forge.set_rate_limit(10);
    for _ in 0..7 {
        // A client of its own each time: a client's second read would be a free 304.
        let auth = Auth::Token(forge.bot_token().to_string());
        let github = GitHub::new(GitHubSettings::new(forge.api_url(), auth)).expect("client");
        github.repository(&repo).await.expect("a read");
    }
    forge.clear_api_calls();
    let state = dir.path().join("state");
    let args = ["schedule", "--once", "--repo", "acme/images"];
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").expect("valid");
    let paused = tickbot_against(&forge, &state, &args);
    let paused = time.replace_all(&paused, "<time>");
    insta::assert_snapshot!("rate_limit_pause", paused);
    let calls = forge.api_calls();
    assert_eq!(
        calls.len(),
        2,
        "it stopped after its first reads: {calls:?}"
    );
    assert!(forge.pulls(&repo).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_an_app_every_installed_repository_is_served_besides_the_configured_ones() {
    let _shared = broker_lock().read().await;
    let files = [(".tickbot.toml", REFRESH_TOML)];
    let w = World::with_app(&files, std::time::Duration::from_secs(600)).await;
    let other: RepoName = "other/tools".parse().expect("valid");
    w.forge()
        .create_repo(&other, "main", &files)
        .await
        .expect("a second installed repository");
    let github = &w.stack.github;
    let configured: RepoName = "acme/configured".parse().expect("valid");
    let served = tickbot::scheduler::served(github, std::slice::from_ref(&configured)).await;
    assert_eq!(served, [configured, w.repo.clone(), other.clone()]);

    // A pass over an installed repository that is not configured opens its refresh PR.
    let now = chrono::Utc::now();
    let times = (now, now - chrono::Duration::minutes(1));
    let limits = tickbot::scheduler::Limits {
        max_open: 5,
        max_per_hour: 2,
    };
    let author = ("tickbot", "tickbot@localhost");
    let work = w.dir.path().join("schedule");
    let (_, acted) = tickbot::scheduler::pass(github, &other, &work, times, author, limits)
        .await
        .expect("a pass");
    assert_eq!(acted, [tickbot::scheduler::Acted::Opened(PrNumber(1))]);
    w.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickbot_schedule_run_alone_serves_its_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (forge, _repo) = quiet_forge(dir.path()).await;
    let addr = format!("127.0.0.1:{}", common::free_port());
    let args = ["schedule", "--repo", "acme/images"];
    let mut role = tickbot_command(&forge, dir.path(), &args)
        .env("TICKBOT__METRICS__LISTEN", &addr)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tickbot schedule");
    // Its first pass read GitHub: the rate limit left is there for an operator to see.
    let metrics = wait_for("the scheduler's rate-limit gauge", || {
        let text = common::try_http_get(&addr, "/metrics")?;
        text.contains("tickbot_github_rate_limit_remaining{")
            .then_some(text)
    })
    .await;
    assert!(
        metrics.contains("tickbot_github_api_attempts_total"),
        "{metrics}"
    );
    common::run("kill", &["-TERM", &role.id().to_string()]);
    let stopped = role.wait().expect("stopped");
    assert!(stopped.success(), "SIGTERM stops it cleanly: {stopped:?}");
    forge.shutdown().await;
}
