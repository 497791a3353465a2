//! `tickbot image gc NAME [--dry-run] [--keep-days N]`: deletes the images of trees that no
//! branch head, no open PR and nothing landed in the last N days refers to. An image is never
//! deleted while a kept tag (a `publish` tag, or a tree in use) points at the same manifest:
//! deleting a manifest deletes every tag on it.

use super::{AdminError, ImageAdmin, short};
use chrono::{Duration, Utc};
use std::collections::{BTreeMap, HashSet};

/// What gc decided for one tag of the image's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcEntry {
    pub tag: String,
    pub verdict: GcVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcVerdict {
    /// In use; the reason says by what (`branch main`, `open PR #3`, `landed in abc1234`,
    /// `published tag`).
    Keep(String),
    /// The same manifest as a kept tag.
    SharesImage(String),
    Deleted,
    /// `--dry-run`: would be deleted.
    WouldDelete,
}

impl ImageAdmin {
    pub async fn gc(&self, keep_days: u32, dry_run: bool) -> Result<Vec<GcEntry>, AdminError> {
        let in_use = self.trees_in_use(keep_days).await?;
        let repository = &self.def.repository;
        let mut entries = Vec::new();
        let mut kept_digests: BTreeMap<String, String> = BTreeMap::new();
        let mut candidates = Vec::new();
        for tag in self.registry.tags(repository).await? {
            let reason = match in_use.get(&tag) {
                Some(why) => Some(why.clone()),
                None if !is_tree(&tag) => Some("published tag".to_string()),
                None => None,
            };
            let Some(reason) = reason else {
                candidates.push(tag);
                continue;
            };
            if let Some(digest) = self.registry.digest(&format!("{repository}:{tag}")).await? {
                kept_digests.insert(digest, tag.clone());
            }
            entries.push(GcEntry {
                tag,
                verdict: GcVerdict::Keep(reason),
            });
        }
        for tag in candidates {
            let reference = format!("{repository}:{tag}");
            let Some(digest) = self.registry.digest(&reference).await? else {
                continue; // deleted meanwhile
            };
            let verdict = match kept_digests.get(&digest) {
                Some(kept) => GcVerdict::SharesImage(kept.clone()),
                None if dry_run => GcVerdict::WouldDelete,
                None => {
                    // By digest: the tag alone cannot be deleted, its manifest can.
                    self.registry
                        .delete(&format!("{repository}@{digest}"))
                        .await?;
                    GcVerdict::Deleted
                }
            };
            entries.push(GcEntry { tag, verdict });
        }
        entries.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(entries)
    }

    /// The trees referred to, with the first reason found: every branch head, every open PR's
    /// head, and every image landed on the default branch in the last `keep_days` days.
    async fn trees_in_use(&self, keep_days: u32) -> Result<BTreeMap<String, String>, AdminError> {
        let mut in_use = BTreeMap::new();
        let heads = self
            .clone
            .git()
            .args(["for-each-ref", "--format=%(refname:strip=2)", "refs/heads"])
            .ok()
            .await?;
        for branch in heads.stdout.lines() {
            if let Some(tree) = self.tree_at(&format!("refs/heads/{branch}")).await? {
                in_use.entry(tree).or_insert(format!("branch {branch}"));
            }
        }
        let mut seen = HashSet::new();
        for pr in self.github.open_pull_requests(&self.repo).await? {
            if !seen.insert(pr.head_sha.clone()) {
                continue;
            }
            let tree = self
                .github
                .tree_id(&self.repo, &self.def.context, &pr.head_sha.0)
                .await?;
            if let Some(tree) = tree {
                in_use
                    .entry(tree)
                    .or_insert(format!("open PR #{}", pr.number.0));
            }
        }
        let since = Utc::now() - Duration::days(i64::from(keep_days));
        for landed in self
            .history()
            .await?
            .into_iter()
            .filter(|l| l.time >= since)
        {
            in_use
                .entry(landed.tree)
                .or_insert(format!("landed in {}", landed.commit.short()));
        }
        Ok(in_use)
    }
}

/// A tag that is a tree id (40 hex digits), as builds push them.
fn is_tree(tag: &str) -> bool {
    tag.len() == 40 && tag.chars().all(|c| c.is_ascii_hexdigit())
}

/// `tickbot image gc` as a person reads it.
pub fn render_gc(repository: &str, entries: &[GcEntry], dry_run: bool) -> String {
    let mut out = format!("{repository}:\n");
    let mut removed = 0;
    for e in entries {
        let tag = if is_tree(&e.tag) {
            short(&e.tag)
        } else {
            &e.tag
        };
        let line = match &e.verdict {
            GcVerdict::Keep(why) => format!("keep    {tag}  ({why})"),
            GcVerdict::SharesImage(kept) => {
                let kept = if is_tree(kept) { short(kept) } else { kept };
                format!("keep    {tag}  (the same image as {kept})")
            }
            GcVerdict::Deleted => {
                removed += 1;
                format!("deleted {tag}")
            }
            GcVerdict::WouldDelete => {
                removed += 1;
                format!("delete  {tag}  (dry run: not deleted)")
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    out.push_str(&format!("{verb} {removed} of {} images\n", entries.len()));
    out
}
