//! What a GC plan keeps that the registry's own GC would delete, and why: the rows of
//! `kept_unlike_registry` and `manifests_kept_unlike_registry`, and [`why_kept`], which names
//! the kept manifest that needs each one when its record is made.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use stowage_graph::{Graph, Parents};
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
    out.shrink_to_fit();
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
    out.shrink_to_fit();
    out
}

/// What [`why_kept`] looks at: the final mark, and the untagged manifests the grace period
/// held back (roots of that mark).
#[derive(Clone, Copy)]
pub(super) struct Why<'a> {
    pub marked: &'a [bool],
    pub held: &'a HashSet<BlobId>,
    /// The repositories holding a revision that could not be parsed ([`opaque_repos`]).
    pub opaque_repos: &'a [u32],
    /// The parents of what is explained ([`explained_parents`]).
    pub parents: &'a Parents,
}

/// The parents [`why_kept`] looks at: of each blob and manifest kept for being reached (the
/// rows it explains), and of their parents. A few ids of a large registry: this takes three
/// passes over the references and holds about 8 bytes per id kept, where the table of every
/// id's parents held 3.9 MB at 1M objects.
pub(super) fn explained_parents(
    g: &Graph<'_>,
    kept: &[KeptRow],
    kept_manifests: &[KeptManifestRow],
) -> Parents {
    let explained = || {
        (kept
            .iter()
            .filter(|r| r.why == KeptWhy::Reached)
            .map(|r| r.id))
        .chain(
            (kept_manifests.iter())
                .filter(|r| r.why == KeptWhy::Reached)
                .map(|r| r.id),
        )
    };
    if explained().next().is_none() {
        return Parents::default();
    }
    let mut wanted = vec![0u64; g.len().div_ceil(64)];
    let set = |w: &mut [u64], id: BlobId| {
        if let Some(x) = w.get_mut(id as usize / 64) {
            *x |= 1 << (id % 64);
        }
    };
    let has = |w: &[u64], id: BlobId| {
        w.get(id as usize / 64)
            .is_some_and(|x| x >> (id % 64) & 1 == 1)
    };
    explained().for_each(|id| set(&mut wanted, id));
    let first = g.parents_of(|id| has(&wanted, id));
    let parents: Vec<BlobId> = explained()
        .flat_map(|id| first.row(id).iter().copied())
        .collect();
    drop(first);
    parents.into_iter().for_each(|p| set(&mut wanted, p));
    g.parents_of(|id| has(&wanted, id))
}

/// The repositories holding a manifest revision that could not be read or parsed, by index:
/// what they link is kept for it. Usually none, so [`why_kept`] looks a blob up in these
/// few repositories' sorted `_layers` instead of needing every blob's linking repositories
/// (the graph's largest table but one, 1.8 MB at 1M objects, otherwise unused by a GC).
pub(super) fn opaque_repos(g: &Graph<'_>) -> Vec<u32> {
    (g.inv.repositories.iter().enumerate())
        .filter(|(_, r)| r.revisions.iter().any(|l| g.is_opaque(l.target())))
        .map(|(i, _)| i as u32)
        .collect()
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
        for &p in why.parents.row(m) {
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
    for &p in why.parents.row(id) {
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
    let owners: BTreeMap<&str, ()> = (why.opaque_repos.iter())
        .map(|&r| &inv.repositories[r as usize])
        .filter(|r| r.layer(id).is_some())
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
