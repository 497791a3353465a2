//! `tickbot image rollback NAME --to TREE|DATE`: a reviewed way back. It opens a PR that
//! restores the image's directory as it was when that tree landed; its jobs run in the old
//! image at once (it is still in the registry), and landing it moves the published tags back.
//! `--publish-now` also moves them back immediately, for emergencies.

use super::{AdminError, ImageAdmin, Landed, short};
use crate::ids::PrNumber;

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub pr: PrNumber,
    pub branch: String,
    pub to: Landed,
    /// Tags moved back at once (`--publish-now`).
    pub published: Vec<String>,
}

impl ImageAdmin {
    /// Opens the revert PR to the landed image `to` names: a tree id (or its first 7+
    /// characters) or a date (`YYYY-MM-DD`: the newest image landed that day or before).
    pub async fn rollback(
        &self,
        to: &str,
        publish_now: bool,
        author: (&str, &str),
    ) -> Result<RolledBack, AdminError> {
        let history = self.history().await?;
        let target = pick(&history, to)?;
        let tip = format!("refs/heads/{}", self.default_branch);
        if self.tree_at(&tip).await?.as_deref() == Some(target.tree.as_str()) {
            return Err(AdminError::Usage(format!(
                "{} is at tree {} already",
                self.def.name,
                short(&target.tree)
            )));
        }
        if publish_now && target.digest.is_none() {
            return Err(AdminError::Usage(format!(
                "--publish-now: the image of tree {} is no longer in the registry; land the \
                 revert PR, which builds it",
                short(&target.tree)
            )));
        }
        let commit = self.restoring_commit(&tip, &target, author).await?;
        let branch = format!("tickbot/rollback/{}-{}", self.def.name, short(&target.tree));
        self.clone
            .push(&format!("{commit}:refs/heads/{branch}"))
            .await?;
        let title = format!(
            "images: Roll back {} to tree {}",
            self.def.name,
            short(&target.tree)
        );
        let landed_by = target.pr.map_or(String::new(), |n| format!(" by #{n}"));
        let body = format!(
            "Restores `{}` as it was when {} landed{landed_by} on {}. Its image is still in the \
             registry, so this PR's jobs run in it at once; landing it moves the published tags \
             back.\n\nOpened by `tickbot image rollback`.\n",
            self.def.context,
            target.commit.short(),
            target.time.format("%Y-%m-%d %H:%M UTC"),
        );
        let pr = self
            .github
            .create_pull_request(&self.repo, &title, &branch, &self.default_branch, &body)
            .await?;
        let mut published = Vec::new();
        if publish_now && let Some(digest) = &target.digest {
            for tag in &self.def.publish {
                self.registry.tag(&self.def.repository, digest, tag).await?;
                published.push(tag.clone());
            }
        }
        Ok(RolledBack {
            pr: pr.number,
            branch,
            to: target,
            published,
        })
    }

    /// A commit on `tip` whose image directory is `target`'s tree, nothing else changed.
    async fn restoring_commit(
        &self,
        tip: &str,
        target: &Landed,
        (name, email): (&str, &str),
    ) -> Result<String, AdminError> {
        let scratch = self
            .clone
            .scratch("rollback")
            .map_err(|e| AdminError::Usage(format!("cannot prepare a tree in the clone: {e}")))?;
        let git = || scratch.git();
        git().args(["read-tree", tip]).ok().await?;
        git()
            .args(["rm", "--cached", "-r", "-q", "--"])
            .arg(&self.def.context)
            .ok()
            .await?;
        git()
            .arg("read-tree")
            .arg(format!("--prefix={}/", self.def.context))
            .arg(&target.tree)
            .ok()
            .await?;
        let tree = git().arg("write-tree").ok().await?;
        let message = format!(
            "images: Roll back {} to tree {}\n\nRestores {} as it was in {}.\n",
            self.def.name,
            short(&target.tree),
            self.def.context,
            target.commit.short()
        );
        let commit = git()
            .args(["commit-tree", tree.stdout.trim(), "-p", tip, "-m", &message])
            .author(name, email)
            .ok()
            .await?;
        Ok(commit.stdout.trim().to_string())
    }
}

/// The landed image `to` names: a tree id prefix (at least 7 characters), or a date
/// (`YYYY-MM-DD`) meaning the newest image landed on or before it.
fn pick(history: &[Landed], to: &str) -> Result<Landed, AdminError> {
    let found = if let Ok(date) = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d") {
        history.iter().find(|l| l.time.date_naive() <= date)
    } else if to.len() >= 7 && to.chars().all(|c| c.is_ascii_hexdigit()) {
        history
            .iter()
            .find(|l| l.tree.starts_with(&to.to_ascii_lowercase()))
    } else {
        return Err(AdminError::Usage(format!(
            "--to {to}: give a tree id (7 or more hex digits, see `tickbot image history`) or a \
             date (YYYY-MM-DD)"
        )));
    };
    found.cloned().ok_or_else(|| {
        AdminError::Usage(format!(
            "--to {to}: no image the default branch landed matches; see `tickbot image history`"
        ))
    })
}
