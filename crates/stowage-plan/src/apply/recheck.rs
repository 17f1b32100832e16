//! The re-checks: each planned target against a fresh scan, just before it is removed.
//!
//! A target that changed since the plan is skipped and reported, never forced: a tag that
//! moved, a manifest tagged or referenced again, a blob whose size or date changed, that was
//! linked into a repository, or that a remaining manifest needs.

use std::collections::{BTreeSet, HashSet};

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, Inventory};
use stowage_storage::StorageWrite;

use super::runner::{Kind, Runner};
use super::{ApplyError, LiveProtection, remaining_marks};
use crate::plan::Plan;

/// Phase 0 (retention): tags, each re-checked. Returns the tags removed (now or by an
/// interrupted earlier run).
pub(crate) fn tags<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    g1: &Graph<'_>,
    live: &LiveProtection,
    progress: &dyn Fn(&str),
) -> Result<HashSet<(String, String)>, ApplyError> {
    let inv1 = g1.inv;
    let mut removed_tags: HashSet<(String, String)> = HashSet::new();
    if !plan.tags.is_empty() {
        progress(&format!("removing {} tags", plan.tags.len()));
    }
    // Signature tags planned because their subject was gone go only if it is still gone
    // (`None`: the fresh scan missed a repository, where the subject could be).
    let orphans_now: Option<HashSet<(usize, usize)>> =
        if plan.tags.iter().any(|t| t.orphan_of.is_some()) {
            stowage_graph::orphan_signatures(g1).map(|os| {
                os.iter()
                    .filter(|o| o.gone)
                    .map(|o| (o.repository as usize, o.tag as usize))
                    .collect()
            })
        } else {
            Some(HashSet::new())
        };
    for t in &plan.tags {
        let path = layout::tag_dir(&t.repository, &t.tag);
        let d = &t.digest;
        let why_not = (|| {
            let repo = inv1.repository(&t.repository).ok_or("gone")?;
            if !repo.complete {
                return Err("repository could not be read completely");
            }
            let tag = repo.tag(&t.tag).ok_or("gone")?;
            let cur = tag.current.ok_or("the tag has no readable current link")?;
            if cur.target.is_none() || cur.target != inv1.id_of(d) {
                return Err("the tag moved since the plan (it points elsewhere now)");
            }
            if cur.modified != t.current_modified {
                return Err("the tag was pushed again since the plan");
            }
            if t.orphan_of.is_some() {
                let orphans = orphans_now
                    .as_ref()
                    .ok_or("the scan did not read every repository: the signature's subject may be in one it missed")?;
                let ri = inv1
                    .repositories
                    .iter()
                    .position(|x| x.name.as_str() == t.repository)
                    .ok_or("gone")?;
                let ti = repo
                    .tags
                    .iter()
                    .position(|x| x.name == t.tag)
                    .ok_or("gone")?;
                if !orphans.contains(&(ri, ti)) {
                    return Err("the signature's subject is linked again (no longer orphaned)");
                }
            }
            if live
                .tags
                .contains_key(&(t.repository.clone(), t.tag.clone()))
            {
                return Err("protected now");
            }
            Ok(())
        })();
        match why_not {
            Ok(()) => {
                if r.remove(Kind::Tag, &path, 0)? || r.done_before.contains(&path) {
                    removed_tags.insert((t.repository.clone(), t.tag.clone()));
                }
            }
            Err("gone") if r.done_before.contains(&path) => {
                r.report
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .already_done += 1;
                removed_tags.insert((t.repository.clone(), t.tag.clone()));
            }
            Err("gone") => r.skip(&path, "gone already (not by this apply)")?,
            Err("protected now") => {
                let rs = live
                    .tags
                    .get(&(t.repository.clone(), t.tag.clone()))
                    .cloned()
                    .unwrap_or_default();
                r.skip(&path, format!("protected now: {}", rs.join(", ")))?
            }
            Err(reason) => r.skip(&path, reason)?,
        }
    }

    Ok(removed_tags)
}

/// Phase 1: untagged manifests and their history entries, re-checked against `inv1`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn manifests<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv1: &Inventory,
    g1: &Graph<'_>,
    live: &LiveProtection,
    removed_tags: &HashSet<(String, String)>,
    retention: bool,
    progress: &dyn Fn(&str),
) -> Result<(), ApplyError> {
    let mut approved: HashSet<(String, BlobId)> = HashSet::new();
    let mut approved_list: Vec<(String, Digest)> = Vec::new();
    for m in &plan.manifests {
        let path = layout::revision_dir(&m.repository, &m.digest);
        let d = &m.digest;
        let why_not = (|| {
            let repo = inv1.repository(&m.repository).ok_or("repository gone")?;
            if !repo.complete {
                return Err("repository could not be read completely");
            }
            let id = inv1.id_of(d).ok_or("revision gone")?;
            let l = repo.revision(id).ok_or("revision gone")?;
            if l.modified() != m.modified {
                return Err("revision link rewritten since the plan (pushed again)");
            }
            if repo.tags.iter().any(|t| {
                t.current.and_then(|c| c.target) == Some(id)
                    && !removed_tags.contains(&(m.repository.clone(), t.name.to_string()))
            }) {
                return Err(if retention {
                    "still tagged (a tag of it was kept or skipped)"
                } else {
                    "tagged since the plan"
                });
            }
            if live
                .digests
                .contains_key(&(m.repository.clone(), m.digest.clone()))
            {
                return Err("protected now");
            }
            Ok(id)
        })();
        match why_not {
            Ok(id) => {
                approved.insert((m.repository.clone(), id));
                approved_list.push((m.repository.clone(), d.clone()));
            }
            Err(reason) if reason == "revision gone" && r.done_before.contains(&path) => {
                approved_list.push((m.repository.clone(), d.clone()));
            }
            Err(reason) => r.skip(&path, reason)?,
        }
    }
    // Anything still reachable from what remains (an index pushed since the plan) stays.
    let marks1 = remaining_marks(g1, &approved);
    approved_list.retain(|(repo, d)| {
        let keep = inv1.id_of(d).is_some_and(|id| marks1[id as usize]);
        if keep {
            let _ = r.skip(
                &layout::revision_dir(repo, d),
                "referenced by a manifest that remains (pushed since the plan)",
            );
        }
        !keep
    });
    let approved_set: BTreeSet<(&str, &Digest)> =
        approved_list.iter().map(|(r, d)| (r.as_str(), d)).collect();
    progress(&format!(
        "removing {} untagged manifests",
        approved_list.len()
    ));
    for t in plan
        .tag_index_entries
        .iter()
        .filter(|t| t.reason == "untagged-manifest")
    {
        let d = &t.digest;
        let path = layout::tag_index_dir(&t.repository, &t.tag, d);
        if !approved_set.contains(&(t.repository.as_str(), &t.digest)) {
            r.skip(&path, "its manifest is kept")?;
            continue;
        }
        let current = inv1
            .repository(&t.repository)
            .and_then(|repo| repo.tag(&t.tag))
            .and_then(|tag| tag.current)
            .and_then(|c| c.target);
        if current.is_some() && current == inv1.id_of(d) {
            r.skip(&path, "the tag points at this manifest again")?;
            continue;
        }
        r.remove(Kind::TagIndex, &path, 0)?;
    }
    for (repo, d) in &approved_list {
        r.remove(Kind::Manifest, &layout::revision_dir(repo, d), 0)?;
    }

    Ok(())
}

/// Phase 2: blobs, re-checked against `inv2` (a scan made after the manifests went).
pub(crate) fn blobs<S: StorageWrite>(
    r: &Runner<'_, S>,
    plan: &Plan,
    inv2: &Inventory,
    g2: &Graph<'_>,
    concurrency: usize,
    progress: &dyn Fn(&str),
) -> Result<(), ApplyError> {
    let incomplete = !inv2.unlisted.is_empty() || inv2.repositories.iter().any(|x| !x.complete);
    let marks2 = remaining_marks(g2, &HashSet::new());
    let mut blob_targets = Vec::new();
    for b in &plan.blobs {
        let d = &b.digest;
        let Some(h) = d.sha256() else {
            // Only an edited plan holds one: the scanner reads `blobs/sha256` alone.
            let path = format!("blobs/{}/{}", d.algorithm().as_str(), d.hex());
            r.skip(&path, "not a sha256 blob: stowage scans blobs/sha256 only")?;
            continue;
        };
        let path = layout::blob_dir(&h);
        if incomplete {
            r.skip(
                &path,
                "the re-scan could not read every repository; no blob is removed",
            )?;
            continue;
        }
        match inv2.id_of(d).and_then(|id| inv2.blob(id).map(|f| (id, f))) {
            None if r.done_before.contains(&path) => blob_targets.push((path, b.size)),
            None => r.skip(&path, "gone already (not by this apply)")?,
            Some((id, f)) => {
                let relinked = inv2
                    .repositories
                    .iter()
                    .filter_map(|repo| repo.layer(id))
                    .any(|l| l.maybe_after(plan.created_at));
                if f.size != b.size || f.modified() != b.modified {
                    r.skip(&path, "changed since the plan (size or mtime)")?;
                } else if relinked {
                    r.skip(
                        &path,
                        "linked into a repository since the plan (a push in progress)",
                    )?;
                } else if marks2[id as usize] {
                    r.skip(
                        &path,
                        "referenced again (a manifest pushed since the plan needs it)",
                    )?;
                } else {
                    blob_targets.push((path, b.size));
                }
            }
        }
    }
    progress(&format!("removing {} blobs", blob_targets.len()));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()
        .map_err(|e| ApplyError::Scan(e.to_string()))?;
    let results: Vec<Result<bool, ApplyError>> = pool.install(|| {
        use rayon::prelude::*;
        blob_targets
            .par_iter()
            .map(|(p, size)| r.remove(Kind::Blob, p, *size))
            .collect()
    });
    for res in results {
        res?;
    }

    Ok(())
}
