//! What a GC plan keeps that the registry's own GC would delete, and why: the rows of
//! `kept_unlike_registry` and `manifests_kept_unlike_registry`, and [`why_kept`], which names
//! the kept manifest that needs each one when its record is made.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::BlobId;

use super::rows::{KeptManifestRow, KeptRow, KeptWhy, ManifestRow};
use super::{GcOptions, repo_ids};
use crate::plan::{HeldBack, ManifestAction};

/// The registry 2.8 with --delete-untagged removes every revision no tag of its own
/// repository points at; list the ones this plan keeps, each with the reason.
pub(super) fn manifest_differences(
    g: &Graph<'_>,
    manifests: &[ManifestRow],
    held_manifests: &[ManifestAction],
) -> Vec<KeptManifestRow> {
    let inv = g.inv;
    let planned = repo_ids(manifests.iter().map(|m| (m.repo, m.id)));
    let held_set: BTreeSet<(&str, &Digest)> = held_manifests
        .iter()
        .map(|m| (m.repository.as_str(), &m.digest))
        .collect();
    let mut out = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        let tagged = r.tagged();
        for l in &r.revisions {
            if tagged.contains(&l.target()) || !inv.is_present(l.target()) {
                continue;
            }
            let key = (ri as u32, l.target());
            if planned.binary_search(&key).is_ok() {
                continue;
            }
            let why = if held_set.contains(&(r.name.as_str(), &inv.digest(l.target()))) {
                KeptWhy::Grace
            } else if !r.complete {
                KeptWhy::Incomplete
            } else {
                KeptWhy::Reached
            };
            out.push(KeptManifestRow {
                repo: key.0,
                id: key.1,
                why,
            });
        }
    }
    out
}

/// Blobs the registry 2.8's GC (same `--delete-untagged` choice) would delete but the plan
/// keeps, each with the reason.
pub(super) fn registry_differences(
    g: &Graph<'_>,
    opts: &GcOptions,
    planned: &[bool],
    held: &HeldBack,
    blocked: bool,
) -> Vec<KeptRow> {
    let inv = g.inv;
    // The registry 2.8 marks each enumerated manifest and its direct references only; with
    // --delete-untagged, only manifests a tag of their own repository points at.
    let mut reg = vec![false; g.len()];
    for r in &inv.repositories {
        let tagged = r.tagged();
        for l in &r.revisions {
            if !inv.is_present(l.target())
                || (opts.delete_untagged && !tagged.contains(&l.target()))
            {
                continue;
            }
            reg[l.target() as usize] = true;
            for c in g.refs(l.target()) {
                reg[c as usize] = true;
            }
        }
    }
    let held_set: HashSet<&Digest> = held.blobs.iter().map(|k| &k.digest).collect();
    let mut out = Vec::new();
    for (i, b) in inv.blobs.iter().enumerate() {
        if reg[i] || planned[i] {
            continue;
        }
        let why = if held_set.contains(&b.digest.digest()) {
            KeptWhy::Grace
        } else if blocked {
            KeptWhy::Incomplete
        } else {
            KeptWhy::Reached
        };
        out.push(KeptRow {
            id: i as BlobId,
            why,
        });
    }
    out
}

/// What [`why_kept`] looks at: the final mark, and the untagged manifests the grace period
/// held back (roots of that mark).
#[derive(Clone, Copy)]
pub(super) struct Why<'a> {
    pub marked: &'a [bool],
    pub held: &'a HashSet<BlobId>,
}

/// Explain why a marked blob is kept, naming the kept manifest that needs it.
pub(super) fn why_kept(g: &Graph<'_>, id: BlobId, why: Why<'_>) -> String {
    let inv = g.inv;
    let marked = why.marked;
    if g.is_opaque(id) {
        return "a manifest that could not be read or parsed: kept, with everything its repository links".into();
    }
    let describe = |m: BlobId| -> Option<String> {
        if why.held.contains(&m) {
            return Some(format!(
                "untagged manifest {} pushed within the grace period",
                inv.digest(m)
            ));
        }
        for &p in g.parents(m) {
            if marked[p as usize] && g.manifest_kind(p).is_some_and(|k| k.is_index()) {
                return Some(format!(
                    "platform child {} of kept index {}",
                    inv.digest(m),
                    inv.digest(p)
                ));
            }
        }
        let rec = g.manifest(m)?;
        if let Some(s) = rec.subject()
            && marked[s as usize]
        {
            return Some(format!(
                "referrer {} of kept manifest {}",
                inv.digest(m),
                inv.digest(s)
            ));
        }
        None
    };
    if let Some(why) = describe(id) {
        return why;
    }
    for &p in g.parents(id) {
        if marked[p as usize] {
            if let Some(why) = describe(p) {
                return format!("needed by {why}");
            }
            if g.is_opaque(p) {
                return format!(
                    "needed by manifest {} which could not be parsed (kept with all it may reference)",
                    inv.digest(p)
                );
            }
        }
    }
    // Only a repository that does hold an opaque manifest keeps what it links for that
    // reason (the message named one where none existed).
    let owners: BTreeMap<&str, ()> = g
        .layer_repos(id)
        .iter()
        .map(|&r| &inv.repositories[r as usize])
        .filter(|r| r.revisions.iter().any(|l| g.is_opaque(l.target())))
        .map(|r| (r.name.as_str(), ()))
        .collect();
    if !owners.is_empty() {
        return format!(
            "linked in {} which holds a manifest that could not be parsed (kept with all it may reference)",
            owners.keys().copied().collect::<Vec<_>>().join(", ")
        );
    }
    "reachable from a kept manifest".to_string()
}
