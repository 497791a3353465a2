//! GitHub's JSON shapes for the forge's objects, shared by the REST API and the webhook payloads.
//!
//! The shapes follow the real payloads in `fixtures/github-webhooks/` closely enough that
//! octocrab's models deserialize them (octocrab insists on many `*_url` fields being valid URLs)
//! and that a bot reading a real payload finds the same keys with the same types.

use super::state::{
    CheckRun, CommitStatus, Issue, IssueComment, PullRequest, PullState, Repo, State,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tickbot_syntax::ids::RepoName;

/// Where the forge is reachable; every URL in a payload is built from it.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `http://127.0.0.1:PORT`, no trailing slash; API, git and "web" pages share it.
    pub base: String,
}

impl Urls {
    pub fn api_repo(&self, repo: &RepoName) -> String {
        format!("{}/repos/{repo}", self.base)
    }
    pub fn html_repo(&self, repo: &RepoName) -> String {
        format!("{}/{repo}", self.base)
    }
    pub fn clone_url(&self, repo: &RepoName) -> String {
        format!("{}/{repo}.git", self.base)
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A stable numeric id for a login, so the same person always has the same `user.id`.
pub fn user_id(login: &str) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in login.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 100_000_000 + 1
}

/// A user object with every field octocrab's `Author` requires.
pub fn user(urls: &Urls, login: &str) -> Value {
    let api = format!("{}/users/{login}", urls.base);
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    json!({
        "login": login,
        "id": user_id(login),
        "node_id": format!("U_{}", user_id(login)),
        "avatar_url": format!("{}/avatars/{login}", urls.base),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{}/{login}", urls.base),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "site_admin": false,
    })
}

/// A repository object as in `repository` of a webhook and `GET /repos/{o}/{r}`.
pub fn repository(urls: &Urls, repo: &Repo) -> Value {
    let api = urls.api_repo(&repo.name);
    // Built pair by pair: one `json!` this large exceeds the macro's recursion limit.
    let fields: Vec<(&str, Value)> = vec![
        ("id", json!(repo.id)),
        ("node_id", json!(format!("R_{}", repo.id))),
        ("name", json!(repo.name.name())),
        ("full_name", json!(repo.name.to_string())),
        ("private", json!(false)),
        ("owner", json!(user(urls, repo.name.owner()))),
        ("html_url", json!(urls.html_repo(&repo.name))),
        ("description", json!(null)),
        ("fork", json!(false)),
        ("url", json!(api)),
        ("created_at", json!(time(repo.created_at))),
        ("updated_at", json!(time(repo.pushed_at))),
        ("pushed_at", json!(time(repo.pushed_at))),
        ("git_url", json!(urls.clone_url(&repo.name))),
        ("ssh_url", json!(urls.clone_url(&repo.name))),
        ("clone_url", json!(urls.clone_url(&repo.name))),
        ("svn_url", json!(urls.html_repo(&repo.name))),
        ("homepage", json!(null)),
        ("size", json!(0)),
        ("stargazers_count", json!(0)),
        ("watchers_count", json!(0)),
        ("language", json!(null)),
        ("has_issues", json!(true)),
        ("has_projects", json!(false)),
        ("has_downloads", json!(true)),
        ("has_wiki", json!(false)),
        ("has_pages", json!(false)),
        ("forks_count", json!(0)),
        ("mirror_url", json!(null)),
        ("archived", json!(false)),
        ("disabled", json!(false)),
        ("open_issues_count", json!(repo.open_issues())),
        ("license", json!(null)),
        ("forks", json!(0)),
        ("open_issues", json!(repo.open_issues())),
        ("watchers", json!(0)),
        ("default_branch", json!(repo.default_branch)),
        ("is_template", json!(false)),
        ("topics", json!([])),
        ("visibility", json!("public")),
        ("web_commit_signoff_required", json!(false)),
        ("custom_properties", json!({})),
    ];
    let mut v = Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    // The templated `*_url` fields, in GitHub's spelling; octocrab parses several as URLs.
    let templated = [
        ("forks_url", "/forks"),
        ("keys_url", "/keys{/key_id}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("teams_url", "/teams"),
        ("hooks_url", "/hooks"),
        ("issue_events_url", "/issues/events{/number}"),
        ("events_url", "/events"),
        ("assignees_url", "/assignees{/user}"),
        ("branches_url", "/branches{/branch}"),
        ("tags_url", "/tags"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("trees_url", "/git/trees{/sha}"),
        ("statuses_url", "/statuses/{sha}"),
        ("languages_url", "/languages"),
        ("stargazers_url", "/stargazers"),
        ("contributors_url", "/contributors"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("commits_url", "/commits{/sha}"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("comments_url", "/comments{/number}"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("contents_url", "/contents/{+path}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("merges_url", "/merges"),
        ("archive_url", "/{archive_format}{/ref}"),
        ("downloads_url", "/downloads"),
        ("issues_url", "/issues{/number}"),
        ("pulls_url", "/pulls{/number}"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("labels_url", "/labels{/name}"),
        ("releases_url", "/releases{/id}"),
        ("deployments_url", "/deployments"),
    ];
    if let Some(obj) = v.as_object_mut() {
        for (key, suffix) in templated {
            obj.insert(key.into(), Value::String(format!("{api}{suffix}")));
        }
    }
    v
}

pub fn label(urls: &Urls, repo: &Repo, name: &str) -> Value {
    let id = repo.labels.get(name).copied().unwrap_or_default();
    json!({
        "id": id,
        "node_id": format!("LA_{id}"),
        "url": format!("{}/labels/{}", urls.api_repo(&repo.name), urlencoding::encode(name)),
        "name": name,
        "color": "ededed",
        "default": false,
        "description": null,
    })
}

/// A pull request object, as `GET /pulls/{n}` and `pull_request` in webhooks.
pub fn pull(urls: &Urls, st: &State, repo: &Repo, pr: &PullRequest) -> Value {
    let api = urls.api_repo(&repo.name);
    let html = urls.html_repo(&repo.name);
    let n = pr.number.0;
    let owner = repo.name.owner();
    let base_sha = repo
        .branches
        .get(&pr.base_ref)
        .map(|s| s.0.clone())
        .unwrap_or_default();
    let side = |r: &str, sha: &str| {
        json!({
            "label": format!("{owner}:{r}"),
            "ref": r,
            "sha": sha,
            "user": user(urls, owner),
            "repo": repository(urls, repo),
        })
    };
    let link = |href: String| json!({ "href": href });
    let (labels, comments) = (pr_labels(urls, repo, pr), comment_count(repo, pr));
    let mut v = json!({
        "url": format!("{api}/pulls/{n}"),
        "id": pr.id,
        "node_id": format!("PR_{}", pr.id),
        "html_url": format!("{html}/pull/{n}"),
        "diff_url": format!("{html}/pull/{n}.diff"),
        "patch_url": format!("{html}/pull/{n}.patch"),
        "issue_url": format!("{api}/issues/{n}"),
        "number": n,
        "state": pr.state.as_str(),
        "locked": false,
        "title": pr.title,
        "user": user(urls, &pr.author),
        "body": pr.body,
        "created_at": time(pr.created_at),
        "updated_at": time(pr.updated_at),
        "closed_at": pr.closed_at.map(time),
        "merged_at": pr.merged.as_ref().and(pr.closed_at).map(time),
        "merge_commit_sha": pr.merged.as_ref().map(|(sha, _)| sha.0.clone()),
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": labels,
        "milestone": null,
        "commits_url": format!("{api}/pulls/{n}/commits"),
        "review_comments_url": format!("{api}/pulls/{n}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{n}/comments"),
        "statuses_url": format!("{api}/statuses/{}", pr.head_sha),
    });
    // Two halves: one `json!` this large exceeds the macro's recursion limit.
    let rest = json!({
        "head": side(&pr.head_ref, &pr.head_sha.0),
        "base": side(&pr.base_ref, &base_sha),
        "_links": {
            "self": link(format!("{api}/pulls/{n}")),
            "html": link(format!("{html}/pull/{n}")),
            "issue": link(format!("{api}/issues/{n}")),
            "comments": link(format!("{api}/issues/{n}/comments")),
            "review_comments": link(format!("{api}/pulls/{n}/comments")),
            "review_comment": link(format!("{api}/pulls/comments{{/number}}")),
            "commits": link(format!("{api}/pulls/{n}/commits")),
            "statuses": link(format!("{api}/statuses/{}", pr.head_sha)),
        },
        "author_association": st.association(repo, &pr.author),
        "auto_merge": null,
        "active_lock_reason": null,
        "draft": pr.draft,
        "merged": pr.merged.is_some(),
        "mergeable": null,
        "rebaseable": null,
        "mergeable_state": "unknown",
        "merged_by": pr.merged.as_ref().map(|(_, by)| user(urls, by)),
        "comments": comments,
        "review_comments": 0,
        "maintainer_can_modify": false,
        "commits": 1,
        "additions": 0,
        "deletions": 0,
        "changed_files": 0,
    });
    super::webhooks::merge(&mut v, rest);
    v
}

/// A pull request's labels as GitHub shows them on the PR and on its issue.
fn pr_labels(urls: &Urls, repo: &Repo, pr: &PullRequest) -> Vec<Value> {
    pr.labels.iter().map(|l| label(urls, repo, l)).collect()
}

/// How many comments a pull request has.
fn comment_count(repo: &Repo, pr: &PullRequest) -> usize {
    comments_on(repo, pr.number.0)
}

fn comments_on(repo: &Repo, number: u64) -> usize {
    (repo.comments.iter())
        .filter(|c| c.issue.0 == number)
        .count()
}

/// An issue that is not a pull request, as the issues API shows it (no `pull_request` key).
pub fn plain_issue(urls: &Urls, st: &State, repo: &Repo, issue: &Issue) -> Value {
    let api = urls.api_repo(&repo.name);
    let n = issue.number;
    json!({
        "url": format!("{api}/issues/{n}"),
        "repository_url": api,
        "comments_url": format!("{api}/issues/{n}/comments"),
        "html_url": format!("{}/issues/{n}", urls.html_repo(&repo.name)),
        "id": issue.id,
        "node_id": format!("I_{}", issue.id),
        "number": n,
        "title": issue.title,
        "user": user(urls, &issue.author),
        "labels": [],
        "state": issue.state.as_str(),
        "state_reason": match issue.state {
            PullState::Open => Value::Null,
            PullState::Closed => json!("completed"),
        },
        "locked": false,
        "assignees": [],
        "comments": comments_on(repo, n),
        "created_at": time(issue.created_at),
        "updated_at": time(issue.updated_at),
        "closed_at": issue.closed_at.map(time),
        "author_association": st.association(repo, &issue.author),
        "body": issue.body,
    })
}

/// The issue view of a pull request (`PATCH /issues/{n}`, `issue` in `issue_comment` events).
pub fn issue(urls: &Urls, st: &State, repo: &Repo, pr: &PullRequest) -> Value {
    let api = urls.api_repo(&repo.name);
    let html = urls.html_repo(&repo.name);
    let n = pr.number.0;
    let (labels, comments) = (pr_labels(urls, repo, pr), comment_count(repo, pr));
    json!({
        "url": format!("{api}/issues/{n}"),
        "repository_url": api,
        "labels_url": format!("{api}/issues/{n}/labels{{/name}}"),
        "comments_url": format!("{api}/issues/{n}/comments"),
        "events_url": format!("{api}/issues/{n}/events"),
        "html_url": format!("{html}/pull/{n}"),
        "id": pr.id,
        "node_id": format!("PR_{}", pr.id),
        "number": n,
        "title": pr.title,
        "user": user(urls, &pr.author),
        "labels": labels,
        "state": pr.state.as_str(),
        "state_reason": null,
        "locked": false,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "comments": comments,
        "created_at": time(pr.created_at),
        "updated_at": time(pr.updated_at),
        "closed_at": pr.closed_at.map(time),
        "author_association": st.association(repo, &pr.author),
        "active_lock_reason": null,
        "draft": pr.draft,
        "pull_request": {
            "url": format!("{api}/pulls/{n}"),
            "html_url": format!("{html}/pull/{n}"),
            "diff_url": format!("{html}/pull/{n}.diff"),
            "patch_url": format!("{html}/pull/{n}.patch"),
            "merged_at": null,
        },
        "body": pr.body,
        "reactions": reactions_rollup(&format!("{api}/issues/{n}/reactions"), &[]),
        "timeline_url": format!("{api}/issues/{n}/timeline"),
        "performed_via_github_app": null,
    })
}

fn reactions_rollup(url: &str, reactions: &[super::state::Reaction]) -> Value {
    let count = |c: &str| reactions.iter().filter(|r| r.content == c).count();
    json!({
        "url": url,
        "total_count": reactions.len(),
        "+1": count("+1"),
        "-1": count("-1"),
        "laugh": count("laugh"),
        "hooray": count("hooray"),
        "confused": count("confused"),
        "heart": count("heart"),
        "rocket": count("rocket"),
        "eyes": count("eyes"),
    })
}

pub fn comment(urls: &Urls, st: &State, repo: &Repo, c: &IssueComment) -> Value {
    let api = urls.api_repo(&repo.name);
    let n = c.issue.0;
    json!({
        "url": format!("{api}/issues/comments/{}", c.id),
        "html_url": format!("{}/pull/{n}#issuecomment-{}", urls.html_repo(&repo.name), c.id),
        "issue_url": format!("{api}/issues/{n}"),
        "id": c.id,
        "node_id": format!("IC_{}", c.id),
        "user": user(urls, &c.author),
        "created_at": time(c.created_at),
        "updated_at": time(c.updated_at),
        "author_association": st.association(repo, &c.author),
        "performed_via_github_app": null,
        "body": c.body,
        "reactions": reactions_rollup(&format!("{api}/issues/comments/{}/reactions", c.id), &c.reactions),
    })
}

pub fn reaction(urls: &Urls, r: &super::state::Reaction) -> Value {
    json!({
        "id": r.id,
        "node_id": format!("REA_{}", r.id),
        "user": user(urls, &r.user),
        "content": r.content,
        "created_at": time(r.created_at),
    })
}

pub fn status(urls: &Urls, repo: &Repo, s: &CommitStatus) -> Value {
    json!({
        "url": format!("{}/statuses/{}", urls.api_repo(&repo.name), s.sha),
        "avatar_url": format!("{}/avatars/{}", urls.base, s.creator),
        "id": s.id,
        "node_id": format!("SC_{}", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": time(s.created_at),
        "updated_at": time(s.created_at),
        "creator": user(urls, &s.creator),
    })
}

pub fn check_run(urls: &Urls, repo: &Repo, c: &CheckRun) -> Value {
    let api = urls.api_repo(&repo.name);
    let pulls: Vec<Value> = repo
        .pulls
        .values()
        // GitHub lists the open PRs whose head is the run's commit.
        .filter(|p| p.state == PullState::Open && p.head_sha == c.head_sha)
        .map(|p| {
            let side = |git_ref: &str, sha: &str| {
                json!({ "ref": git_ref, "sha": sha,
                        "repo": { "id": repo.id, "url": api, "name": repo.name.name() } })
            };
            json!({
                "url": format!("{api}/pulls/{}", p.number.0),
                "id": p.id,
                "number": p.number.0,
                "head": side(&p.head_ref, &p.head_sha.0),
                "base": side(&p.base_ref, ""),
            })
        })
        .collect();
    let slug = c.creator.trim_end_matches("[bot]");
    let app = json!({
        "id": 1,
        "node_id": "MDM6QXBwMQ==",
        "slug": slug,
        "name": c.creator,
        "description": "",
        "external_url": urls.base,
        "html_url": format!("{}/apps/{slug}", urls.base),
        "owner": user(urls, repo.name.owner()),
        "created_at": time(c.started_at),
        "updated_at": time(c.started_at),
        "permissions": { "checks": "write", "statuses": "write", "pull_requests": "write",
                         "issues": "write", "contents": "write", "metadata": "read", "members": "read" },
        "events": ["check_run", "issue_comment", "pull_request"],
    });
    let mut output = json!({
        "title": null, "summary": null, "text": null, "annotations_count": 0,
        "annotations_url": format!("{api}/check-runs/{}/annotations", c.id),
    });
    super::webhooks::merge(&mut output, c.output.clone());
    json!({
        "id": c.id,
        "node_id": format!("CR_{}", c.id),
        "head_sha": c.head_sha,
        "external_id": c.external_id.clone().unwrap_or_default(),
        "url": format!("{api}/check-runs/{}", c.id),
        "html_url": format!("{}/runs/{}", urls.html_repo(&repo.name), c.id),
        "details_url": c.details_url,
        "status": c.status,
        "conclusion": c.conclusion,
        "started_at": time(c.started_at),
        "completed_at": c.completed_at.map(time),
        "output": output,
        "name": c.name,
        "check_suite": {
            "id": c.id,
            "node_id": format!("CS_{}", c.id),
            "head_branch": null,
            "head_sha": c.head_sha,
            "status": c.status,
            "conclusion": c.conclusion,
            "url": format!("{api}/check-suites/{}", c.id),
            "before": null,
            "after": c.head_sha,
            "pull_requests": pulls,
            "app": app,
            "created_at": time(c.started_at),
            "updated_at": time(c.started_at),
        },
        "app": app,
        "pull_requests": pulls,
    })
}
