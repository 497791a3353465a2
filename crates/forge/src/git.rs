//! Real git for the forge: bare repositories on disk, written with git's plumbing (so a
//! "person" can commit without a worktree) and served over git's smart HTTP protocol by
//! running `git http-backend` as a CGI program.
//!
//! Every function shells out to the `git` CLI; nothing here knows about pull requests.

use anyhow::{Context, bail};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tickbot_syntax::ids::{CommitSha, RepoName};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A file or directory entry read from a commit.
#[derive(Debug, Clone)]
pub enum PathContent {
    File {
        blob: String,
        data: Vec<u8>,
    },
    /// Children as (name, kind `file`/`dir`, object id, size).
    Dir(Vec<(String, &'static str, String, u64)>),
}

/// One commit of a push, for the `commits` array of a `push` webhook.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    pub timestamp: String,
    pub message: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

/// What a ref must point at for an update to go ahead (git's compare-and-swap).
#[derive(Debug, Clone, Copy)]
pub enum Lease<'a> {
    Any,
    /// The ref must not exist yet.
    Absent,
    At(&'a CommitSha),
}

/// Root directory holding `owner/name.git` bare repositories.
#[derive(Debug, Clone)]
pub struct GitStore {
    root: PathBuf,
}

impl GitStore {
    pub fn new(root: PathBuf) -> Self {
        GitStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn repo_path(&self, repo: &RepoName) -> PathBuf {
        self.root
            .join(repo.owner())
            .join(format!("{}.git", repo.name()))
    }

    fn cmd(&self, repo: &RepoName) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(self.repo_path(repo))
            // The forge must behave the same whatever the developer's ~/.gitconfig says.
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .kill_on_drop(true);
        cmd
    }

    /// Runs git, feeding `stdin`; returns stdout, or the error with git's stderr.
    async fn run(
        &self,
        mut cmd: Command,
        stdin: Option<&[u8]>,
        what: &str,
    ) -> anyhow::Result<Vec<u8>> {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning git {what}"))?;
        // Feed stdin from its own task while stdout/stderr are read: writing everything first
        // deadlocks once git's output fills the pipe.
        let feeder = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                Some(tokio::spawn(async move { pipe.write_all(&data).await }))
            }
            _ => None,
        };
        let out = child.wait_with_output().await?;
        if let Some(feeder) = feeder {
            feeder.await??;
        }
        if !out.status.success() {
            bail!(
                "git {what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    async fn text(&self, repo: &RepoName, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = self.cmd(repo);
        cmd.args(args);
        let out = self.run(cmd, None, args.first().unwrap_or(&"")).await?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Creates an empty bare repository whose HEAD points at `default_branch`.
    pub async fn init(&self, repo: &RepoName, default_branch: &str) -> anyhow::Result<()> {
        let path = self.repo_path(repo);
        tokio::fs::create_dir_all(&path).await?;
        let mut cmd = Command::new("git");
        cmd.args(["init", "--quiet", "--bare", "-b", default_branch])
            .arg(&path)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        self.run(cmd, None, "init").await?;
        Ok(())
    }

    /// Writes a commit with `files` added or replaced on top of `parent`, without moving any ref.
    pub async fn commit(
        &self,
        repo: &RepoName,
        parent: Option<&CommitSha>,
        files: &[(&str, &str)],
        message: &str,
        author: &str,
    ) -> anyhow::Result<CommitSha> {
        // A private index file, so concurrent commits to one repository never share one.
        let index = self
            .root
            .join(format!(".index-{}", uuid::Uuid::new_v4().simple()));
        let result = self
            .commit_with_index(repo, &index, parent, files, message, author)
            .await;
        let _ = tokio::fs::remove_file(&index).await;
        result
    }

    async fn commit_with_index(
        &self,
        repo: &RepoName,
        index: &Path,
        parent: Option<&CommitSha>,
        files: &[(&str, &str)],
        message: &str,
        author: &str,
    ) -> anyhow::Result<CommitSha> {
        let with_index = |args: &[&str]| {
            let mut cmd = self.cmd(repo);
            cmd.env("GIT_INDEX_FILE", index).args(args);
            cmd
        };
        if let Some(p) = parent {
            self.run(with_index(&["read-tree", &p.0]), None, "read-tree")
                .await?;
        }
        for (path, content) in files {
            let blob = self
                .run(
                    with_index(&["hash-object", "-w", "--stdin"]),
                    Some(content.as_bytes()),
                    "hash-object",
                )
                .await?;
            let blob = String::from_utf8_lossy(&blob).trim().to_string();
            let info = format!("100644,{blob},{path}");
            self.run(
                with_index(&["update-index", "--add", "--cacheinfo", &info]),
                None,
                "update-index",
            )
            .await?;
        }
        let tree = self
            .run(with_index(&["write-tree"]), None, "write-tree")
            .await?;
        let tree = String::from_utf8_lossy(&tree).trim().to_string();
        self.commit_tree(repo, &tree, parent.into_iter().collect(), message, author)
            .await
    }

    /// A commit of `tree` with `parents`, by `author` (as author and committer).
    async fn commit_tree(
        &self,
        repo: &RepoName,
        tree: &str,
        parents: Vec<&CommitSha>,
        message: &str,
        author: &str,
    ) -> anyhow::Result<CommitSha> {
        let mut cmd = self.cmd(repo);
        let email = format!("{author}@users.noreply.forge.localhost");
        cmd.env("GIT_AUTHOR_NAME", author)
            .env("GIT_AUTHOR_EMAIL", &email)
            .env("GIT_COMMITTER_NAME", author)
            .env("GIT_COMMITTER_EMAIL", &email)
            .args(["commit-tree", tree]);
        for p in parents {
            cmd.args(["-p", &p.0]);
        }
        let sha = self
            .run(cmd, Some(message.as_bytes()), "commit-tree")
            .await?;
        Ok(CommitSha(String::from_utf8_lossy(&sha).trim().to_string()))
    }

    /// Moves `refname` to `new`, if `lease` still holds.
    pub async fn update_ref(
        &self,
        repo: &RepoName,
        refname: &str,
        new: &CommitSha,
        lease: Lease<'_>,
    ) -> anyhow::Result<()> {
        let zero = "0".repeat(40);
        let mut args = vec!["update-ref", refname, new.0.as_str()];
        match lease {
            Lease::Any => {}
            Lease::Absent => args.push(&zero),
            Lease::At(old) => args.push(&old.0),
        }
        self.text(repo, &args).await?;
        Ok(())
    }

    /// Every branch and its tip.
    pub async fn branches(&self, repo: &RepoName) -> anyhow::Result<BTreeMap<String, CommitSha>> {
        let out = self
            .text(
                repo,
                &[
                    "for-each-ref",
                    "--format=%(refname:strip=2) %(objectname)",
                    "refs/heads",
                ],
            )
            .await?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(b, s)| (b.to_string(), CommitSha(s.to_string())))
            .collect())
    }

    /// The commit a branch, tag, `refs/pull/N/head` or SHA names, if any.
    pub async fn resolve(&self, repo: &RepoName, rev: &str) -> Option<CommitSha> {
        if rev.starts_with('-') {
            return None; // never let a request smuggle in an option
        }
        let spec = format!("{rev}^{{commit}}");
        self.text(repo, &["rev-parse", "--verify", "--quiet", &spec])
            .await
            .ok()
            .filter(|s| !s.is_empty())
            .map(CommitSha)
    }

    /// A merge commit of `head` onto `base` by `author`, or `None` when they conflict.
    pub async fn merge_commit(
        &self,
        repo: &RepoName,
        base: &CommitSha,
        head: &CommitSha,
        message: &str,
        author: &str,
    ) -> anyhow::Result<Option<CommitSha>> {
        let mut cmd = self.cmd(repo);
        cmd.args(["merge-tree", "--write-tree", &base.0, &head.0]);
        let Ok(out) = self.run(cmd, None, "merge-tree").await else {
            return Ok(None); // exit code 1: conflicts
        };
        let tree = String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let commit = self
            .commit_tree(repo, &tree, vec![base, head], message, author)
            .await?;
        Ok(Some(commit))
    }

    /// Whether `old` is an ancestor of `new` (a fast-forward).
    pub async fn is_ancestor(&self, repo: &RepoName, old: &CommitSha, new: &CommitSha) -> bool {
        self.text(repo, &["merge-base", "--is-ancestor", &old.0, &new.0])
            .await
            .is_ok()
    }

    /// The file or directory at `path` in `commit`; `None` when it does not exist.
    pub async fn read_path(
        &self,
        repo: &RepoName,
        commit: &CommitSha,
        path: &str,
    ) -> anyhow::Result<Option<PathContent>> {
        let path = path.trim_matches('/');
        let listing = |treeish: String| async move {
            let out = self.text(repo, &["ls-tree", "-l", &treeish]).await?;
            let entries = out
                .lines()
                .filter_map(|l| {
                    let (meta, name) = l.split_once('\t')?;
                    let mut f = meta.split_whitespace();
                    let (_mode, kind, oid, size) = (f.next()?, f.next()?, f.next()?, f.next()?);
                    let kind = if kind == "tree" { "dir" } else { "file" };
                    Some((
                        name.to_string(),
                        kind,
                        oid.to_string(),
                        size.parse().unwrap_or(0),
                    ))
                })
                .collect();
            anyhow::Ok(entries)
        };
        if path.is_empty() {
            return Ok(Some(PathContent::Dir(listing(commit.0.clone()).await?)));
        }
        let spec = format!("{}:{path}", commit.0);
        let Ok(kind) = self.text(repo, &["cat-file", "-t", &spec]).await else {
            return Ok(None);
        };
        match kind.as_str() {
            "tree" => Ok(Some(PathContent::Dir(listing(spec).await?))),
            "blob" => {
                let blob = self.text(repo, &["rev-parse", &spec]).await?;
                let mut cmd = self.cmd(repo);
                cmd.args(["cat-file", "blob", &blob]);
                let data = self.run(cmd, None, "cat-file").await?;
                Ok(Some(PathContent::File { blob, data }))
            }
            _ => Ok(None),
        }
    }

    /// The files a pull request changes: what `head` changed since it forked from `base`.
    pub async fn changed_files(
        &self,
        repo: &RepoName,
        base: &CommitSha,
        head: &CommitSha,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let range = format!("{}...{}", base.0, head.0);
        let out = self
            .text(repo, &["diff", "--name-status", "--no-renames", &range])
            .await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (status, name) = l.split_once('\t')?;
                let status = match status {
                    "A" => "added",
                    "D" => "removed",
                    _ => "modified",
                };
                Some((name.to_string(), status.to_string()))
            })
            .collect())
    }

    /// The commits a push brought (newest first, at most 20 like GitHub's payloads).
    pub async fn commits_between(
        &self,
        repo: &RepoName,
        old: Option<&CommitSha>,
        new: &CommitSha,
    ) -> anyhow::Result<Vec<CommitInfo>> {
        let range = match old {
            Some(o) => format!("{}..{}", o.0, new.0),
            None => new.0.clone(),
        };
        let out = self
            .text(
                repo,
                &[
                    "log",
                    "-z",
                    "--max-count=20",
                    "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%B",
                    &range,
                ],
            )
            .await?;
        let mut commits = Vec::new();
        for record in out.split('\0').filter(|r| !r.trim().is_empty()) {
            let f: Vec<&str> = record.splitn(5, '\x1f').collect();
            let [sha, name, email, ts, msg] = f[..] else {
                continue;
            };
            let mut info = CommitInfo {
                sha: sha.trim().to_string(),
                author_name: name.to_string(),
                author_email: email.to_string(),
                timestamp: ts.to_string(),
                message: msg.trim_end().to_string(),
                added: vec![],
                removed: vec![],
                modified: vec![],
            };
            let changes = self
                .text(
                    repo,
                    &[
                        "diff-tree",
                        "--root",
                        "--no-commit-id",
                        "--name-status",
                        "-r",
                        &info.sha,
                    ],
                )
                .await?;
            for line in changes.lines() {
                match line.split_once('\t') {
                    Some(("A", p)) => info.added.push(p.to_string()),
                    Some(("D", p)) => info.removed.push(p.to_string()),
                    Some((_, p)) => info.modified.push(p.to_string()),
                    None => {}
                }
            }
            commits.push(info);
        }
        Ok(commits)
    }
}

/// A CGI request for `git http-backend`.
pub struct CgiRequest<'a> {
    pub method: &'a str,
    /// `/owner/name.git/info/refs` etc., relative to the store root.
    pub path_info: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub git_protocol: Option<&'a str>,
    pub remote_user: &'a str,
    pub body: Bytes,
}

/// A parsed CGI response.
pub struct CgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Runs `git http-backend` for one request. The whole exchange is buffered: the forge's
/// repositories are small, and buffering keeps the CGI plumbing obviously correct.
pub async fn http_backend(store: &GitStore, req: CgiRequest<'_>) -> anyhow::Result<CgiResponse> {
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", store.root())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // Pushing over HTTP is what a person (and the worker) does; enable it explicitly.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("REQUEST_METHOD", req.method)
        .env("PATH_INFO", req.path_info)
        .env("QUERY_STRING", req.query)
        .env("REMOTE_USER", req.remote_user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("CONTENT_TYPE", req.content_type.unwrap_or(""))
        .kill_on_drop(true);
    if let Some(enc) = req.content_encoding {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(proto) = req.git_protocol {
        cmd.env("GIT_PROTOCOL", proto);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning git http-backend")?;
    // Fed from its own task: a fetch answers with pack data while the request is still being
    // written, and writing all of it first would deadlock on a full stdout pipe.
    let feeder = child.stdin.take().map(|mut pipe| {
        let body = req.body.clone();
        tokio::spawn(async move { pipe.write_all(&body).await })
    });
    // http-backend exits non-zero after answering e.g. 404 itself, so parse what it printed.
    let out = child.wait_with_output().await?;
    if let Some(feeder) = feeder {
        // git may stop reading early (e.g. after an error it reports itself): not our failure.
        let _ = feeder.await;
    }
    parse_cgi(&out.stdout).with_context(|| {
        format!(
            "git http-backend: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

fn parse_cgi(out: &[u8]) -> anyhow::Result<CgiResponse> {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        })
        .context("CGI response without a header block")?;
    let head = String::from_utf8_lossy(&out[..split.0]);
    let mut status = 200;
    let mut headers = Vec::new();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            status = v
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
        } else {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Ok(CgiResponse {
        status,
        headers,
        body: Bytes::copy_from_slice(&out[split.1..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_is_split_into_status_headers_and_body() {
        let r = parse_cgi(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope")
            .expect("parses");
        assert_eq!(r.status, 404);
        assert_eq!(
            r.headers,
            vec![("Content-Type".into(), "text/plain".into())]
        );
        assert_eq!(&r.body[..], b"nope");
    }
}
