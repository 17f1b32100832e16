//! What a plan deletes, per repository and per reason, with the bytes it frees.
//!
//! Any plan becomes a list of [`Deletion`]s (one per thing it removes), and [`summarize`]
//! turns those into rows. [`gc_deletions`] does it for the GC plan (`stowage.plan/v1`,
//! `kind: gc`); a retention plan only needs its own `*_deletions` function.
//!
//! A blob is attributed to the one repository whose manifests reach it in the current scan,
//! to `(several repositories)` when more than one does, and to `(no repository)` when none
//! does (an unreferenced blob), so the per-repository bytes add up to the plan's bytes
//! without counting a shared blob twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::time::Timestamp;
use stowage_plan::Plan;

pub const NO_REPOSITORY: &str = "(no repository)";
pub const SEVERAL_REPOSITORIES: &str = "(several repositories)";

/// What one deletion removes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Blob,
    Manifest,
    Tag,
    Upload,
    Link,
}

/// One thing a plan removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub repository: String,
    /// The plan's reason (`unreferenced`, `untagged`, a retention rule, ...).
    pub reason: String,
    pub target: Target,
    /// Bytes freed (0 for links, tags and manifests: their blob is counted as a blob).
    pub bytes: u64,
}

/// One row: a repository and a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRow {
    pub repository: String,
    pub reason: String,
    /// The reason in words ([`reason_label`]).
    #[serde(default)]
    pub label: String,
    pub blobs: u64,
    pub manifests: u64,
    pub tags: u64,
    pub uploads: u64,
    pub links: u64,
    pub bytes: u64,
}

/// A plan, summarised for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanImpact {
    /// `gc`, `retention`, ...
    pub kind: String,
    pub created_at: Timestamp,
    pub storage: String,
    /// Bytes freed in all (the plan's own figure).
    pub bytes: u64,
    /// Rows by repository, then reason.
    pub rows: Vec<PlanRow>,
    /// Bytes per reason over all repositories.
    pub by_reason: Vec<PlanRow>,
    /// Whether the plan was made for another storage than the one scanned.
    pub other_storage: bool,
    /// Rows that only remove links (0 bytes: tag-history entries and `_layers` links),
    /// folded out of `rows` so the table shows what frees space (issue 19 item 7: half of a
    /// 272-row table were such rows).
    #[serde(default)]
    pub link_rows: u64,
    #[serde(default)]
    pub link_only_links: u64,
    /// Blobs, manifests and tags written after the plan was made: the plan is older than the
    /// storage it is shown against, and apply will re-check (and keep) them.
    #[serde(default)]
    pub written_since_plan: u64,
    /// A retention plan's policy name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
}

/// A plan's reason in words (the plan files keep their stable names).
pub fn reason_label(reason: &str) -> String {
    match reason {
        "unreferenced" => "unreferenced blob (no manifest needs it)".into(),
        "untagged" => "only needed by untagged manifests".into(),
        "untagged-manifest" => "tag history of a removed manifest".into(),
        "blob-deleted" => "link to a blob this plan deletes".into(),
        "dangling" => "link to a blob that is already gone".into(),
        "stale-upload" => "abandoned upload".into(),
        other => other.to_string(),
    }
}

/// Group deletions by (repository, reason).
pub fn summarize(deletions: impl IntoIterator<Item = Deletion>) -> (Vec<PlanRow>, Vec<PlanRow>) {
    let mut rows: BTreeMap<(String, String), PlanRow> = BTreeMap::new();
    let mut reasons: BTreeMap<String, PlanRow> = BTreeMap::new();
    let empty = |repository: &str, reason: &str| PlanRow {
        repository: repository.into(),
        reason: reason.into(),
        label: reason_label(reason),
        blobs: 0,
        manifests: 0,
        tags: 0,
        uploads: 0,
        links: 0,
        bytes: 0,
    };
    for d in deletions {
        let add = |r: &mut PlanRow| {
            match d.target {
                Target::Blob => r.blobs += 1,
                Target::Manifest => r.manifests += 1,
                Target::Tag => r.tags += 1,
                Target::Upload => r.uploads += 1,
                Target::Link => r.links += 1,
            }
            r.bytes += d.bytes;
        };
        add(rows
            .entry((d.repository.clone(), d.reason.clone()))
            .or_insert_with(|| empty(&d.repository, &d.reason)));
        add(reasons
            .entry(d.reason.clone())
            .or_insert_with(|| empty("", &d.reason)));
    }
    (
        rows.into_values().collect(),
        reasons.into_values().collect(),
    )
}

/// The link rows every plan kind shows (history entries and layer links, 0 bytes each).
fn link_rows(plan: &Plan, out: &mut Vec<Deletion>) {
    for t in &plan.tag_index_entries {
        out.push(Deletion {
            repository: t.repository.clone(),
            reason: t.reason.to_string(),
            target: Target::Link,
            bytes: 0,
        });
    }
    for l in &plan.layer_links {
        out.push(Deletion {
            repository: l.repository.clone(),
            reason: l.reason.to_string(),
            target: Target::Link,
            bytes: 0,
        });
    }
}

/// The deletions of a GC plan, blobs attributed through the graph of the current scan.
pub fn gc_deletions(plan: &Plan, g: &Graph<'_>) -> Vec<Deletion> {
    let inv = g.inv;
    let mut out = Vec::new();
    let mut scratch = stowage_graph::Scratch::new(g.len());
    for b in &plan.blobs {
        let repository = match inv.id_of(&b.digest) {
            Some(id) => {
                let mut repos: Vec<u32> = Vec::new();
                g.for_each_ancestor(id, &mut scratch, |m| {
                    repos.extend_from_slice(g.revision_repos(m))
                });
                repos.sort_unstable();
                repos.dedup();
                match repos.as_slice() {
                    [] => NO_REPOSITORY.to_string(),
                    [one] => inv.repositories[*one as usize].name.to_string(),
                    _ => SEVERAL_REPOSITORIES.to_string(),
                }
            }
            None => NO_REPOSITORY.to_string(),
        };
        out.push(Deletion {
            repository,
            reason: b.reason.to_string(),
            target: Target::Blob,
            bytes: b.size,
        });
    }
    for m in &plan.manifests {
        out.push(Deletion {
            repository: m.repository.clone(),
            reason: "untagged".into(),
            target: Target::Manifest,
            bytes: 0,
        });
    }
    link_rows(plan, &mut out);
    for u in &plan.uploads {
        out.push(Deletion {
            repository: u.repository.clone(),
            reason: "stale-upload".into(),
            target: Target::Upload,
            bytes: u.size,
        });
    }
    out
}

/// The rule behind a retention decision (`delete: ci/stale (tag x)` -> `ci/stale`).
fn rule_of(reason: &str) -> String {
    reason
        .trim_start_matches("delete: ")
        .split(" (")
        .next()
        .unwrap_or(reason)
        .to_string()
}

/// The deletions of a retention plan, by repository and by the rule that deleted each image
/// (cascades count under their image's rule). Blobs (freed by `apply --gc`) go to the one
/// repository and rule whose deleted images reference them, else to `(several ...)`.
pub fn retention_deletions(plan: &Plan, g: &Graph<'_>) -> Vec<Deletion> {
    let inv = g.inv;
    let mut out = Vec::new();
    // (repository, manifest digest) -> rule.
    let mut rule: BTreeMap<(String, Digest), String> = BTreeMap::new();
    if let Some(r) = &plan.retention {
        for im in r.images.iter().filter(|i| i.decision == "delete") {
            let why = im.reasons.first().map(|x| rule_of(x)).unwrap_or_default();
            rule.insert((im.repository.clone(), im.digest.clone()), why.clone());
            for c in im.cascade.iter().filter(|c| c.decision == "delete") {
                rule.insert((im.repository.clone(), c.digest.clone()), why.clone());
            }
        }
    }
    for t in &plan.tags {
        out.push(Deletion {
            repository: t.repository.clone(),
            reason: rule
                .get(&(t.repository.clone(), t.digest.clone()))
                .cloned()
                .or_else(|| t.reasons.first().map(|x| rule_of(x)))
                .unwrap_or_default(),
            target: Target::Tag,
            bytes: 0,
        });
    }
    for m in &plan.manifests {
        out.push(Deletion {
            repository: m.repository.clone(),
            reason: rule
                .get(&(m.repository.clone(), m.digest.clone()))
                .cloned()
                .unwrap_or_else(|| m.reason.clone()),
            target: Target::Manifest,
            bytes: 0,
        });
    }
    // Deleted manifests by id, for blob attribution.
    let mut deleted: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for ((repo, d), why) in &rule {
        if let Some(id) = inv.id_of(d) {
            deleted
                .entry(id)
                .or_default()
                .push((repo.clone(), why.clone()));
        }
    }
    let mut scratch = stowage_graph::Scratch::new(g.len());
    for b in &plan.blobs {
        let mut owners: Vec<(String, String)> = Vec::new();
        if let Some(id) = inv.id_of(&b.digest) {
            g.for_each_ancestor(id, &mut scratch, |m| {
                if let Some(v) = deleted.get(&m) {
                    owners.extend(v.iter().cloned());
                }
            });
        }
        owners.sort();
        owners.dedup();
        let one = |xs: Vec<&String>, several: &str| {
            let mut xs = xs;
            xs.sort();
            xs.dedup();
            match xs.as_slice() {
                [] => NO_REPOSITORY.to_string(),
                [x] => (*x).clone(),
                _ => several.to_string(),
            }
        };
        out.push(Deletion {
            repository: one(owners.iter().map(|o| &o.0).collect(), SEVERAL_REPOSITORIES),
            reason: one(owners.iter().map(|o| &o.1).collect(), "(several rules)"),
            target: Target::Blob,
            bytes: b.size,
        });
    }
    link_rows(plan, &mut out);
    out
}

/// Summarise a plan for the report. Only GC plans are known today; another kind is an error.
pub fn plan_impact(plan: &Plan, g: &Graph<'_>) -> Result<PlanImpact, PlanViewError> {
    let deletions = match plan.kind {
        stowage_plan::PlanKind::Gc => gc_deletions(plan, g),
        stowage_plan::PlanKind::Retention => retention_deletions(plan, g),
        // Surgery: what GC frees after it (blobs, manifests, history) reads as a gc plan.
        stowage_plan::PlanKind::Surgery => gc_deletions(plan, g),
    };
    let (all_rows, by_reason) = summarize(deletions);
    let (rows, links): (Vec<PlanRow>, Vec<PlanRow>) = all_rows
        .into_iter()
        .partition(|r| r.bytes > 0 || r.blobs + r.manifests + r.tags + r.uploads > 0);
    let after = |t: stowage_model::time::Timestamp| t > plan.created_at;
    let inv = g.inv;
    let written_since_plan = inv.blobs.iter().filter(|b| after(b.modified())).count()
        + inv
            .repositories
            .iter()
            .map(|r| {
                r.revisions.iter().filter(|l| after(l.modified())).count()
                    + r.tags
                        .iter()
                        .filter(|t| t.current.is_some_and(|c| after(c.modified)))
                        .count()
            })
            .sum::<usize>();
    Ok(PlanImpact {
        link_rows: links.len() as u64,
        link_only_links: links.iter().map(|r| r.links).sum(),
        written_since_plan: written_since_plan as u64,
        policy_name: plan.retention.as_ref().map(|r| r.policy_name.clone()),
        kind: plan.kind.to_string(),
        created_at: plan.created_at,
        storage: plan.storage.clone(),
        bytes: plan.bytes,
        rows,
        by_reason,
        other_storage: plan.storage != g.inv.root,
    })
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanViewError {
    #[error("plans of kind {0:?} cannot be shown (only gc and retention)")]
    UnknownKind(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(repo: &str, reason: &str, target: Target, bytes: u64) -> Deletion {
        Deletion {
            repository: repo.into(),
            reason: reason.into(),
            target,
            bytes,
        }
    }

    #[test]
    fn rows_group_by_repository_and_reason() {
        let (rows, reasons) = summarize([
            d("a", "untagged", Target::Blob, 10),
            d("a", "untagged", Target::Blob, 5),
            d("a", "untagged", Target::Manifest, 0),
            d("b", "stale-upload", Target::Upload, 7),
            d(NO_REPOSITORY, "unreferenced", Target::Blob, 3),
        ]);
        assert_eq!(rows.len(), 3);
        let a = rows.iter().find(|r| r.repository == "a").unwrap();
        assert_eq!((a.blobs, a.manifests, a.bytes), (2, 1, 15));
        assert_eq!(reasons.iter().map(|r| r.bytes).sum::<u64>(), 25);
        assert_eq!(rows.iter().map(|r| r.bytes).sum::<u64>(), 25);
    }
}
