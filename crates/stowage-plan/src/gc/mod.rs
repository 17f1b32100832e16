//! Garbage-collection plans, pure: a graph, options and `now` in; a [`Plan`] out.
//!
//! # Semantics
//! - Without `delete_untagged`: exactly the blobs the registry's own GC deletes: every blob no
//!   manifest revision of any repository reaches.
//! - With `delete_untagged`: the roots are the manifests tags point at, and the result is the
//!   registry's set **minus** everything still reachable from a kept manifest: children of a kept
//!   index or manifest list, and referrers (OCI `subject`) of kept manifests, with all their
//!   blobs. The registry 2.8 deletes those (`spec/registry-storage.md` §4.6 item 1); the plan
//!   lists each such difference in `kept_unlike_registry`. A repository with no `tags`
//!   directory is simply one whose manifests are all untagged (the registry aborts on it).
//! - Grace: nothing modified within `grace_seconds` of `now` is planned (blobs of a push in
//!   progress arrive before their manifest); a held-back untagged manifest is kept as a root,
//!   so its blobs stay too. Everything held back is listed with bytes.
//! - Safety: a scan that could not list a namespace or read a repository completely plans no
//!   blob deletion at all, and no manifest deletion in such a repository; an opaque manifest
//!   (unreadable, unparseable, unknown type) keeps everything its repository links.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::finding::FindingKind;
use stowage_model::inventory::{BlobId, Inventory, LinkState};
use stowage_model::time::Timestamp;

use crate::plan::{
    HeldBack, Kept, ManifestAction, PLAN_SCHEMA, Plan, Reason, TagAction, UploadAction,
};

mod kept;
mod rows;
mod stream;

use kept::{Why, manifest_differences, registry_differences, why_kept};

use rows::{BlobRow, BlobWhy, LinkRow, ManifestRow, TagIndexRow, TagIndexWhy};
pub use rows::{GcPlan, PlanLists};

/// What a GC plan may remove. The default is the registry's plain GC with a one-hour grace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcOptions {
    /// Also remove manifests no tag points at (except index children and referrers of kept
    /// manifests), with their tag-history entries.
    pub delete_untagged: bool,
    /// Nothing modified more recently than this is planned.
    pub grace_seconds: i64,
    /// Remove upload directories started longer ago than this.
    pub uploads_older_than_seconds: Option<i64>,
    /// Remove `_layers` links and tag-history entries whose blob is gone (or goes in this plan).
    pub dangling_links: bool,
    /// Remove directories left empty (by earlier deletes or by this plan).
    pub empty_dirs: bool,
    /// The storage is a pull-through cache: evict expired cached images by its
    /// `scheduler-state.json` instead of by tags (`crate::cache`). Written only when set, so
    /// plans of ordinary registries are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache: bool,
    /// With `cache`: also evict the least recently cached images until the cache's stored
    /// bytes fit in this many (`crate::cache`, size cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_max_bytes: Option<u64>,
    /// Also remove signature tags whose subject no repository links (cosign's
    /// `sha256-<hex>.sig|.att|.sbom`, referrers-tag-schema indexes): garbage the registry's
    /// GC keeps because they are tags. With `delete_untagged` their manifests go too.
    /// Written only when set, so other plans are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphan_signatures: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            delete_untagged: false,
            grace_seconds: 3600,
            uploads_older_than_seconds: None,
            dangling_links: false,
            empty_dirs: false,
            cache: false,
            cache_max_bytes: None,
            orphan_signatures: false,
        }
    }
}

/// Which manifests of which repositories stay: the roots of the mark.
/// Tags `removed` (repository and tag indices) are planned to go and keep nothing.
pub(crate) fn keep_roots(
    g: &Graph<'_>,
    delete_untagged: bool,
    removed: &HashSet<(u32, u32)>,
) -> Vec<BlobId> {
    if delete_untagged {
        stowage_graph::tagged_roots_except(g, |ri, ti| removed.contains(&(ri as u32, ti as u32)))
    } else {
        g.all_revision_roots()
    }
}

/// The grace period: nothing modified within `seconds` before `now` is planned.
#[derive(Clone, Copy)]
struct Grace {
    now: Timestamp,
    seconds: i64,
}

impl Grace {
    fn recent(self, t: Timestamp) -> bool {
        t.seconds_until(self.now) < self.seconds
    }
}

/// Build a GC plan.
pub fn build(g: &Graph<'_>, opts: &GcOptions, now: Timestamp) -> Plan {
    build_capped(g, opts, now, crate::cache::CapOrder::default())
}

/// Build a GC plan; a cache's size cap (`opts.cache_max_bytes`) evicts in `order`. The one
/// code path of `stowage gc --cache-max-bytes` and a policy's `cache:` rule.
pub fn build_capped(
    g: &Graph<'_>,
    opts: &GcOptions,
    now: Timestamp,
    order: crate::cache::CapOrder<'_>,
) -> Plan {
    build_rows(g, opts, now, order).into_plan()
}

/// [`build_capped`] as compact rows ([`GcPlan`]): written with [`GcPlan::write_json`], the
/// plan file never sits in memory whole (`stowage gc` at scale, issue 22).
pub fn build_rows<'a>(
    g: &'a Graph<'a>,
    opts: &GcOptions,
    now: Timestamp,
    order: crate::cache::CapOrder<'_>,
) -> GcPlan<'a> {
    let inv = g.inv;
    let grace = Grace {
        now,
        seconds: opts.grace_seconds,
    };
    let mut blocked = blocked_reasons(g);
    let blobs_blocked = !blocked.is_empty();
    // A blob is known to be missing only when the scan saw every blob: one behind a symbolic
    // link, moved out of its place or unreadable looks missing, and links to it are not
    // dangling (issue 25: a referrer moved out of place had its revision planned). A cache
    // GC removes the `_layers` links of the blobs it deletes, as the registry's expiry does.
    let dangling_links = (opts.dangling_links || opts.cache) && !blobs_blocked;

    // A cache is collected by expiry, never by tags (images pulled by digest are untagged).
    let cap = opts
        .cache_max_bytes
        .map(|max_bytes| crate::cache::SizeCap { max_bytes, order });
    let eviction = opts
        .cache
        .then(|| crate::cache::eviction(g, now, opts.grace_seconds, cap.as_ref()));
    // Signature tags whose subject is gone (not in a cache, which has its own tags).
    let orphans = if opts.orphan_signatures && eviction.is_none() {
        orphan_tags(g, grace, &mut blocked)
    } else {
        if opts.orphan_signatures {
            blocked.push("no signature tag is planned for removal: a pull-through cache's tags are evicted by expiry only".into());
        }
        OrphanTags::default()
    };
    // Without -m and outside a cache every revision is a root: marked straight from the
    // links, no list of them (135k ids at 1M objects of a CI registry).
    let every_revision = eviction.is_none() && !opts.delete_untagged;
    let mut roots = match &eviction {
        Some(ev) => ev.roots.clone(),
        None if every_revision => Vec::new(),
        None => keep_roots(g, opts.delete_untagged, &orphans.removed),
    };
    let (mut manifests, held_manifests) = if let Some(ev) = &eviction {
        blocked.extend(ev.blocked.clone());
        (evicted_rows(ev), ev.held.clone())
    } else if opts.delete_untagged {
        untagged_manifests(g, grace, dangling_links, &mut roots)
    } else {
        (Vec::new(), Vec::new())
    };
    let marked = if every_revision {
        g.mark(g.revision_roots(), true)
    } else {
        g.mark(roots.iter().copied(), true)
    };
    drop(roots);

    let mut held = HeldBack::default();
    let (mut blobs, planned_blob) = if blobs_blocked {
        (Vec::new(), vec![false; g.len()])
    } else {
        // Which unmarked blobs some manifest still references (untagged ones' layers).
        // When every revision was a root, nothing unmarked is referenced: no second mark.
        let referenced = (!every_revision).then(|| g.mark(g.revision_roots(), false));
        unmarked_blobs(g, grace, &marked, referenced.as_deref(), &mut held)
    };
    // The rows grew by doubling: each gives its slack back (up to half of it) before the
    // next is made (1.6 MB of `gc -m`'s at 1M objects).
    manifests.shrink_to_fit();
    blobs.shrink_to_fit();
    if eviction.is_some() {
        // Blobs only expired manifests reached: evicted with them.
        for b in &mut blobs {
            if b.why == BlobWhy::Untagged {
                b.why = BlobWhy::CacheExpired;
            }
        }
    }
    let (mut tag_index_entries, mut layer_links) =
        stale_links(g, &manifests, &planned_blob, dangling_links);
    // A removed tag's history goes with its directory.
    tag_index_entries.retain(|e| !orphans.removed.contains(&(e.repo, e.tag)));
    tag_index_entries.shrink_to_fit();
    layer_links.shrink_to_fit();
    let mut uploads = match opts.uploads_older_than_seconds {
        Some(age) => old_uploads(g, grace, age, &mut held),
        None => Vec::new(),
    };
    let empty_dirs = if opts.empty_dirs {
        emptied_dirs(g, &blobs, &layer_links)
    } else {
        Vec::new()
    };

    // Manifests the grace period keeps are roots of the mark: what they reach is kept for
    // that reason, not for an unparsed manifest (issue 19 item 11).
    let held_ids: HashSet<BlobId> = held_manifests
        .iter()
        .filter_map(|m| inv.id_of(&m.digest))
        .collect();
    let kept = registry_differences(g, opts, &planned_blob, &held, blobs_blocked);
    drop(planned_blob);
    let kept_manifests = if opts.delete_untagged {
        manifest_differences(g, &manifests, &held_manifests)
    } else {
        Vec::new()
    };

    sort_rows(
        inv,
        &mut manifests,
        &mut tag_index_entries,
        &mut layer_links,
    );
    uploads.sort();
    held.blobs.sort();
    held.manifests = held_manifests;
    held.manifests.sort();
    held.uploads.sort();
    held.tags = orphans.held;
    let blob_bytes: u64 = blobs.iter().map(|b| inv.blobs[b.id as usize].size).sum();
    let upload_bytes: u64 = uploads.iter().map(|u| u.size).sum();
    let cache = eviction.as_ref().map(|ev| {
        let mut planned = vec![false; g.len()];
        for b in &blobs {
            planned[b.id as usize] = true;
        }
        Box::new(crate::cache::edit(g, ev, &planned))
    });
    let head = Plan {
        schema: PLAN_SCHEMA.into(),
        kind: crate::PlanKind::Gc,
        created_at: now,
        storage: inv.root.clone(),
        options: opts.clone(),
        bytes: blob_bytes + upload_bytes,
        blob_bytes,
        upload_bytes,
        manifests: Vec::new(),
        tag_index_entries: Vec::new(),
        layer_links: Vec::new(),
        blobs: Vec::new(),
        uploads,
        empty_dirs,
        held_back: held,
        kept_unlike_registry: Vec::new(),
        manifests_kept_unlike_registry: Vec::new(),
        blocked,
        tags: eviction.map_or(orphans.planned, |ev| ev.tags),
        retention: None,
        listing: None,
        surgery: None,
        would_break: crate::replay::WouldBreak::not_checked(),
        cache,
    };
    let parents = kept::explained_parents(g, &kept, &kept_manifests);
    GcPlan {
        g,
        head,
        blobs,
        manifests,
        tag_index_entries,
        layer_links,
        kept,
        kept_manifests,
        marked,
        held: held_ids,
        opaque_repos: kept::opaque_repos(g),
        parents,
    }
}

/// The rows in the order of their records' own `Ord` (repository name, tag, digest, reason),
/// as `Plan` lists them.
fn sort_rows(
    inv: &Inventory,
    manifests: &mut [ManifestRow],
    tag_index_entries: &mut [TagIndexRow],
    layer_links: &mut [LinkRow],
) {
    // The orders of the records' own `Ord` (repository name, tag, digest, reason): every
    // field of a record is compared, so an unstable sort gives the same order.
    let name = |ri: u32| inv.repositories[ri as usize].name.as_str();
    manifests.sort_unstable_by(|a, b| {
        name(a.repo)
            .cmp(name(b.repo))
            .then_with(|| cmp_digest(inv, a.id, b.id))
            .then_with(|| a.modified.cmp(&b.modified))
            .then_with(|| a.reason.cmp(&b.reason))
    });
    let tag = |ri: u32, ti: u32| {
        inv.repositories[ri as usize].tags[ti as usize]
            .name
            .as_str()
    };
    tag_index_entries.sort_unstable_by(|a, b| {
        name(a.repo)
            .cmp(name(b.repo))
            .then_with(|| tag(a.repo, a.tag).cmp(tag(b.repo, b.tag)))
            .then_with(|| cmp_digest(inv, a.id, b.id))
            .then_with(|| a.why.as_str().cmp(b.why.as_str()))
    });
    layer_links.sort_unstable_by(|a, b| {
        name(a.repo)
            .cmp(name(b.repo))
            .then_with(|| cmp_digest(inv, a.id, b.id))
            .then_with(|| a.why().cmp(b.why()))
    });
}

/// Digest order of two ids without making the digests when both are present blobs (sorted
/// by digest, so their ids are in digest order).
fn cmp_digest(inv: &Inventory, a: BlobId, b: BlobId) -> std::cmp::Ordering {
    if inv.is_present(a) && inv.is_present(b) {
        a.cmp(&b)
    } else {
        inv.digest(a).cmp(&inv.digest(b))
    }
}

/// A cache's evicted manifests as rows (`Eviction::evicted` is their repository and id, in
/// the order of `Eviction::manifests`).
fn evicted_rows(ev: &crate::cache::Eviction) -> Vec<ManifestRow> {
    ev.evicted
        .iter()
        .zip(&ev.manifests)
        .map(|(&(ri, id), m)| ManifestRow {
            repo: ri as u32,
            id,
            modified: m.modified,
            reason: match m.reason.as_str() {
                crate::cache::EXPIRED => crate::cache::EXPIRED.into(),
                crate::cache::SIZE_CAP => crate::cache::SIZE_CAP.into(),
                other => other.to_string().into(),
            },
        })
        .collect()
}

/// The reason of a signature tag removed because its subject is gone.
pub const ORPHANED_SIGNATURE: &str = "orphaned-signature";

/// Orphaned signature tags: those planned, those the grace period holds back, and the
/// planned ones as (repository, tag) indices.
#[derive(Default)]
struct OrphanTags {
    planned: Vec<TagAction>,
    held: Vec<TagAction>,
    removed: HashSet<(u32, u32)>,
}

/// Signature tags whose subject is gone (`stowage_graph::orphan_signatures`; those whose
/// subject this storage never held are kept and named in `blocked`);
/// none when the scan was incomplete (the subject may be in what it missed).
fn orphan_tags(g: &Graph<'_>, grace: Grace, blocked: &mut Vec<String>) -> OrphanTags {
    let inv = g.inv;
    let mut out = OrphanTags::default();
    let Some(orphans) = stowage_graph::orphan_signatures(g) else {
        blocked.push(
            "no signature tag is planned for removal: the scan did not read every repository, so a subject may be in one it missed".into(),
        );
        return out;
    };
    let mut unknown = Vec::new();
    for o in orphans {
        let r = &inv.repositories[o.repository as usize];
        if !o.gone {
            unknown.push(format!("{}:{}", r.name, r.tags[o.tag as usize].name));
            continue;
        }
        let action = TagAction {
            repository: r.name.to_string(),
            tag: r.tags[o.tag as usize].name.to_string(),
            digest: inv.digest(o.manifest),
            current_modified: o.modified,
            reasons: vec![ORPHANED_SIGNATURE.into()],
            orphan_of: Some(o.subject),
        };
        if grace.recent(o.modified) {
            out.held.push(action);
        } else {
            out.removed.insert((o.repository, o.tag));
            out.planned.push(action);
        }
    }
    if !unknown.is_empty() {
        let n = unknown.len();
        unknown.truncate(5);
        blocked.push(format!(
            "{n} signature tag(s) name a subject this storage never held (signatures of images in another registry, or tags that only look like signatures), kept: {}{}",
            unknown.join(", "),
            if n > 5 { ", ..." } else { "" }
        ));
    }
    out
}

/// Why no blob may be planned: the scan missed namespaces or read repositories only in
/// part, so what they reference is unknown. Empty when the scan was complete.
fn blocked_reasons(g: &Graph<'_>) -> Vec<String> {
    let inv = g.inv;
    let mut blocked = Vec::new();
    if !inv.unlisted.is_empty() {
        blocked.push(format!(
            "no blob is planned for deletion: these namespaces could not be listed, so what they reference is unknown: {}",
            inv.unlisted.join(", ")
        ));
    }
    let incomplete: Vec<&str> = inv
        .repositories
        .iter()
        .filter(|r| !r.complete)
        .map(|r| r.name.as_str())
        .collect();
    if !incomplete.is_empty() {
        blocked.push(format!(
            "no blob is planned for deletion, and no manifest in these repositories: they could not be read completely: {}",
            incomplete.join(", ")
        ));
    }
    blocked
}

/// The untagged manifests to delete and those the grace period holds back (`--delete-untagged`
/// only). Opaque and held-back manifests are added to `roots`, so what they reach is kept.
fn untagged_manifests(
    g: &Graph<'_>,
    grace: Grace,
    dangling_links: bool,
    roots: &mut Vec<BlobId>,
) -> (Vec<ManifestRow>, Vec<ManifestAction>) {
    let inv = g.inv;
    let first = g.mark(roots.iter().copied(), true);
    // (repository index, id, pushed): 16 bytes a candidate.
    let mut candidates: Vec<(u32, BlobId, Timestamp)> = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        if !r.complete {
            continue;
        }
        for l in &r.revisions {
            let present = inv.is_present(l.target());
            if first[l.target() as usize]
                || !Graph::link_trusted(l.state())
                || l.state() == LinkState::Differs
            {
                continue;
            }
            // A manifest we could not read or parse might be a referrer or an index: it
            // is kept (with everything its repository links), never guessed untagged.
            if g.is_opaque(l.target()) {
                roots.push(l.target());
                continue;
            }
            // A revision whose blob is gone is only a dangling link: removed with the
            // dangling-link cleanup, never counted as a manifest.
            if !present && !dangling_links {
                continue;
            }
            candidates.push((ri as u32, l.target(), l.modified()));
        }
    }
    let action = |ri: u32, id: BlobId, modified: Timestamp| ManifestAction {
        repository: inv.repositories[ri as usize].name.to_string(),
        digest: inv.digest(id),
        modified,
        reason: String::new(),
    };
    let mut held = Vec::new();
    for &(ri, id, modified) in &candidates {
        if grace.recent(modified) {
            held.push(action(ri, id, modified));
            roots.push(id);
        }
    }
    // Marked again with the held-back manifests as roots: an untagged manifest one of them
    // needs (an index child, a subject) stays too.
    let marked = g.mark(roots.iter().copied(), true);
    let mut manifests = Vec::new();
    for (ri, id, modified) in candidates {
        if !grace.recent(modified) && !marked[id as usize] {
            manifests.push(ManifestRow {
                repo: ri,
                id,
                modified,
                reason: Reason::Borrowed(""),
            });
        }
    }
    (manifests, held)
}

/// The unmarked blobs to delete, in inventory order, and which blob ids they are; blobs the
/// grace period keeps go to `held`.
fn unmarked_blobs(
    g: &Graph<'_>,
    grace: Grace,
    marked: &[bool],
    referenced: Option<&[bool]>,
    held: &mut HeldBack,
) -> (Vec<BlobRow>, Vec<bool>) {
    let inv = g.inv;
    let mut blobs = Vec::new();
    let mut planned_blob: Vec<bool> = vec![false; g.len()];
    let linked = recently_linked(g, grace);
    for (i, b) in inv.blobs.iter().enumerate() {
        if marked[i] {
            continue;
        }
        // A blob mounted into a repository, or committed again, keeps its old mtime; its
        // new `_layers` link is the sign of a push in progress.
        if grace.recent(b.modified()) || linked[i] {
            held.blobs.push(Kept {
                digest: b.digest.digest(),
                size: b.size,
                reason: "modified within the grace period".into(),
            });
            held.blob_bytes += b.size;
            continue;
        }
        planned_blob[i] = true;
        blobs.push(BlobRow {
            id: i as BlobId,
            why: if referenced.is_some_and(|r| r[i]) {
                BlobWhy::Untagged
            } else {
                BlobWhy::Unreferenced
            },
        });
    }
    (blobs, planned_blob)
}

/// For each blob, whether its newest `_layers` link in any repository (the epoch if none)
/// is within the grace period: whether any is, as the grace period is a bound on a date (a
/// bit a blob, where the dates themselves were 8 bytes).
fn recently_linked(g: &Graph<'_>, grace: Grace) -> Vec<bool> {
    let inv = g.inv;
    let mut linked = vec![grace.recent(Timestamp::EPOCH); inv.blobs.len()];
    for r in &inv.repositories {
        for l in &r.layers {
            if let Some(t) = linked.get_mut(l.target() as usize) {
                *t |= grace.recent(l.modified());
            }
        }
    }
    linked
}

/// Links in complete repositories that go: tag-history entries of deleted manifests, and
/// (with `dangling_links`) tag-history entries and `_layers` links whose blob is gone or
/// goes in this plan.
fn stale_links(
    g: &Graph<'_>,
    manifests: &[ManifestRow],
    planned_blob: &[bool],
    dangling_links: bool,
) -> (Vec<TagIndexRow>, Vec<LinkRow>) {
    let inv = g.inv;
    let deleted = repo_ids(manifests.iter().map(|m| (m.repo, m.id)));
    let mut tag_index_entries = Vec::new();
    let mut layer_links = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        if !r.complete {
            continue;
        }
        let repo = ri as u32;
        for (ti, t) in r.tags.iter().enumerate() {
            let current = t.current.and_then(|c| c.target);
            for l in r.history(t) {
                if Some(l.target()) == current {
                    continue;
                }
                let why = if deleted.binary_search(&(repo, l.target())).is_ok() {
                    TagIndexWhy::UntaggedManifest
                } else if dangling_links
                    && (!inv.is_present(l.target()) || planned_blob[l.target() as usize])
                    && r.revision(l.target())
                        .is_none_or(|_| planned_blob[l.target() as usize])
                {
                    TagIndexWhy::Dangling
                } else {
                    continue;
                };
                tag_index_entries.push(TagIndexRow {
                    repo,
                    tag: ti as u32,
                    id: l.target(),
                    why,
                });
            }
        }
        if dangling_links {
            for l in &r.layers {
                let present = inv.is_present(l.target());
                if !present || planned_blob[l.target() as usize] {
                    layer_links.push(LinkRow {
                        repo,
                        id: l.target(),
                        present,
                    });
                }
            }
        }
    }
    (tag_index_entries, layer_links)
}

/// (repository index, id) pairs, sorted for `binary_search`: 8 bytes a pair, where a set
/// of (name, digest) was 50 and more.
fn repo_ids(pairs: impl Iterator<Item = (u32, BlobId)>) -> Vec<(u32, BlobId)> {
    let mut v: Vec<(u32, BlobId)> = pairs.collect();
    v.sort_unstable();
    v
}

/// Upload directories started at least `age` seconds before `now`; those still written to
/// within the grace period go to `held`.
fn old_uploads(g: &Graph<'_>, grace: Grace, age: i64, held: &mut HeldBack) -> Vec<UploadAction> {
    let mut uploads = Vec::new();
    for r in &g.inv.repositories {
        for u in &r.uploads {
            let started = u.started_at.unwrap_or(u.modified);
            if started.seconds_until(grace.now) < age {
                continue;
            }
            let a = UploadAction {
                repository: r.name.to_string(),
                id: u.id.clone(),
                size: u.total_size,
                started_at: u.started_at,
            };
            if grace.recent(u.modified) {
                held.upload_bytes += u.total_size;
                held.uploads.push(a);
            } else {
                uploads.push(a);
            }
        }
    }
    uploads
}

/// Empty directories: the known ones, and the parents this plan empties, deepest first so
/// that parents are tried after their children.
fn emptied_dirs(g: &Graph<'_>, blobs: &[BlobRow], layer_links: &[LinkRow]) -> Vec<String> {
    let inv = g.inv;
    let mut empty_dirs: BTreeSet<String> = BTreeSet::new();
    for f in &g.inv.findings {
        if f.kind == FindingKind::EmptyDirectory {
            empty_dirs.insert(f.path.clone());
        }
    }
    for b in blobs {
        // The shard directory `blobs/sha256/<hh>`: the blob directory's parent.
        let dir = layout::blob_dir(&inv.blobs[b.id as usize].digest);
        if let Some((shard, _)) = dir.rsplit_once('/') {
            empty_dirs.insert(shard.to_string());
        }
    }
    for l in layer_links {
        let repo = inv.repositories[l.repo as usize].name.as_str();
        let link = layout::layer_link(repo, &inv.digest(l.id));
        empty_dirs.insert(link.trim_end_matches("/link").to_string());
    }
    let mut empty_dirs: Vec<String> = empty_dirs.into_iter().collect();
    empty_dirs.sort_by(|a, b| {
        b.matches('/')
            .count()
            .cmp(&a.matches('/').count())
            .then_with(|| a.cmp(b))
    });
    empty_dirs
}
