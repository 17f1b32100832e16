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

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::digest::Digest;
use stowage_model::finding::FindingKind;
use stowage_model::inventory::{BlobId, LinkState};
use stowage_model::time::Timestamp;

use crate::plan::{
    BlobAction, HeldBack, Kept, KeptManifest, LinkAction, ManifestAction, PLAN_SCHEMA, Plan,
    Reason, TagAction, TagIndexAction, UploadAction,
};

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
    let mut roots = match &eviction {
        Some(ev) => ev.roots.clone(),
        None => keep_roots(g, opts.delete_untagged, &orphans.removed),
    };
    let (mut manifests, held_manifests) = if let Some(ev) = &eviction {
        blocked.extend(ev.blocked.clone());
        (ev.manifests.clone(), ev.held.clone())
    } else if opts.delete_untagged {
        untagged_manifests(g, grace, dangling_links, &mut roots)
    } else {
        (Vec::new(), Vec::new())
    };
    let marked = g.mark(roots.iter().copied(), true);
    let referenced = g.mark(g.all_revision_roots(), false);

    let mut held = HeldBack::default();
    let (blobs, planned_blob) = if blobs_blocked {
        (Vec::new(), vec![false; g.len()])
    } else {
        unmarked_blobs(g, grace, &marked, &referenced, &mut held)
    };
    let (mut tag_index_entries, mut layer_links) =
        stale_links(g, &manifests, &planned_blob, dangling_links);
    // A removed tag's history goes with its directory.
    let removed_tags: BTreeSet<(&str, &str)> = orphans
        .planned
        .iter()
        .map(|t| (t.repository.as_str(), t.tag.as_str()))
        .collect();
    tag_index_entries.retain(|e| !removed_tags.contains(&(e.repository.as_str(), e.tag.as_str())));
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
    let why = Why {
        marked: &marked,
        held: &held_ids,
    };
    let kept_unlike_registry =
        registry_differences(g, opts, &planned_blob, &held, blobs_blocked, why);
    let manifests_kept_unlike_registry = if opts.delete_untagged {
        manifest_differences(g, &manifests, &held_manifests, why)
    } else {
        Vec::new()
    };

    manifests.sort();
    tag_index_entries.sort();
    layer_links.sort();
    uploads.sort();
    held.blobs.sort();
    held.manifests = held_manifests;
    held.manifests.sort();
    held.uploads.sort();
    held.tags = orphans.held;
    let blob_bytes: u64 = blobs.iter().map(|b| b.size).sum();
    let upload_bytes: u64 = uploads.iter().map(|u| u.size).sum();
    let cache = eviction
        .as_ref()
        .map(|ev| Box::new(crate::cache::edit(g, ev, &planned_blob)));
    let blobs = match &eviction {
        // Blobs only expired manifests reached: evicted with them.
        Some(_) => blobs
            .into_iter()
            .map(|mut b| {
                if b.reason == "untagged" {
                    b.reason = crate::cache::EXPIRED.into();
                }
                b
            })
            .collect(),
        None => blobs,
    };
    Plan {
        schema: PLAN_SCHEMA.into(),
        kind: crate::PlanKind::Gc,
        created_at: now,
        storage: inv.root.clone(),
        options: opts.clone(),
        bytes: blob_bytes + upload_bytes,
        blob_bytes,
        upload_bytes,
        manifests,
        tag_index_entries,
        layer_links,
        blobs,
        uploads,
        empty_dirs,
        held_back: held,
        kept_unlike_registry,
        manifests_kept_unlike_registry,
        blocked,
        tags: eviction.map_or(orphans.planned, |ev| ev.tags),
        retention: None,
        listing: None,
        surgery: None,
        would_break: crate::replay::WouldBreak::not_checked(),
        cache,
    }
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
) -> (Vec<ManifestAction>, Vec<ManifestAction>) {
    let inv = g.inv;
    let first = g.mark(roots.iter().copied(), true);
    let mut candidates: Vec<(usize, BlobId, Timestamp)> = Vec::new();
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
            candidates.push((ri, l.target(), l.modified()));
        }
    }
    let action = |ri: usize, id: BlobId, modified: Timestamp| ManifestAction {
        repository: inv.repositories[ri].name.to_string(),
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
            manifests.push(action(ri, id, modified));
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
    referenced: &[bool],
    held: &mut HeldBack,
) -> (Vec<BlobAction>, Vec<bool>) {
    let inv = g.inv;
    let mut blobs = Vec::new();
    let mut planned_blob: Vec<bool> = vec![false; g.len()];
    let latest_link = latest_layer_links(g);
    for (i, b) in inv.blobs.iter().enumerate() {
        if marked[i] {
            continue;
        }
        // A blob mounted into a repository, or committed again, keeps its old mtime; its
        // new `_layers` link is the sign of a push in progress.
        if grace.recent(b.modified()) || grace.recent(latest_link[i]) {
            held.blobs.push(Kept {
                digest: b.digest.digest(),
                size: b.size,
                reason: "modified within the grace period".into(),
            });
            held.blob_bytes += b.size;
            continue;
        }
        planned_blob[i] = true;
        blobs.push(BlobAction {
            digest: b.digest.digest(),
            size: b.size,
            modified: b.modified(),
            reason: if referenced[i] {
                "untagged".into()
            } else {
                "unreferenced".into()
            },
        });
    }
    (blobs, planned_blob)
}

/// For each blob, the newest `_layers` link to it in any repository (the epoch if none).
fn latest_layer_links(g: &Graph<'_>) -> Vec<Timestamp> {
    let inv = g.inv;
    let mut latest_link = vec![Timestamp::EPOCH; inv.blobs.len()];
    for r in &inv.repositories {
        for l in &r.layers {
            if let Some(t) = latest_link.get_mut(l.target() as usize) {
                *t = (*t).max(l.modified());
            }
        }
    }
    latest_link
}

/// Links in complete repositories that go: tag-history entries of deleted manifests, and
/// (with `dangling_links`) tag-history entries and `_layers` links whose blob is gone or
/// goes in this plan.
fn stale_links(
    g: &Graph<'_>,
    manifests: &[ManifestAction],
    planned_blob: &[bool],
    dangling_links: bool,
) -> (Vec<TagIndexAction>, Vec<LinkAction>) {
    let inv = g.inv;
    let deleted: BTreeSet<(&str, &Digest)> = manifests
        .iter()
        .map(|m| (m.repository.as_str(), &m.digest))
        .collect();
    let mut tag_index_entries = Vec::new();
    let mut layer_links = Vec::new();
    for r in &inv.repositories {
        if !r.complete {
            continue;
        }
        let repo = r.name.as_str();
        for t in &r.tags {
            let current = t.current.and_then(|c| c.target);
            for l in r.history(t) {
                if Some(l.target()) == current {
                    continue;
                }
                let d = inv.digest(l.target());
                if deleted.contains(&(repo, &d)) {
                    tag_index_entries.push(TagIndexAction {
                        repository: repo.into(),
                        tag: t.name.to_string(),
                        digest: d,
                        reason: "untagged-manifest".into(),
                    });
                } else if dangling_links
                    && (!inv.is_present(l.target()) || planned_blob[l.target() as usize])
                    && r.revision(l.target())
                        .is_none_or(|_| planned_blob[l.target() as usize])
                {
                    tag_index_entries.push(TagIndexAction {
                        repository: repo.into(),
                        tag: t.name.to_string(),
                        digest: d,
                        reason: "dangling".into(),
                    });
                }
            }
        }
        if dangling_links {
            for l in &r.layers {
                let present = inv.is_present(l.target());
                if !present || planned_blob[l.target() as usize] {
                    layer_links.push(LinkAction {
                        repository: repo.into(),
                        digest: inv.digest(l.target()),
                        reason: if present {
                            "blob-deleted".into()
                        } else {
                            "dangling".into()
                        },
                    });
                }
            }
        }
    }
    (tag_index_entries, layer_links)
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
fn emptied_dirs(g: &Graph<'_>, blobs: &[BlobAction], layer_links: &[LinkAction]) -> Vec<String> {
    let mut empty_dirs: BTreeSet<String> = BTreeSet::new();
    for f in &g.inv.findings {
        if f.kind == FindingKind::EmptyDirectory {
            empty_dirs.insert(f.path.clone());
        }
    }
    for h in blobs.iter().filter_map(|b| b.digest.sha256()) {
        // The shard directory `blobs/sha256/<hh>`: the blob directory's parent.
        let dir = layout::blob_dir(&h);
        if let Some((shard, _)) = dir.rsplit_once('/') {
            empty_dirs.insert(shard.to_string());
        }
    }
    for l in layer_links {
        let link = layout::layer_link(&l.repository, &l.digest);
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

/// The registry 2.8 with --delete-untagged removes every revision no tag of its own
/// repository points at; list the ones this plan keeps, each with the reason.
fn manifest_differences(
    g: &Graph<'_>,
    manifests: &[ManifestAction],
    held_manifests: &[ManifestAction],
    why: Why<'_>,
) -> Vec<KeptManifest> {
    let inv = g.inv;
    let planned: BTreeSet<(&str, &Digest)> = manifests
        .iter()
        .map(|m| (m.repository.as_str(), &m.digest))
        .collect();
    let held_set: BTreeSet<(&str, &Digest)> = held_manifests
        .iter()
        .map(|m| (m.repository.as_str(), &m.digest))
        .collect();
    let mut out = Vec::new();
    for r in &inv.repositories {
        let tagged = r.tagged();
        for l in &r.revisions {
            if tagged.contains(&l.target()) || !inv.is_present(l.target()) {
                continue;
            }
            let d = inv.digest(l.target());
            let key = (r.name.as_str(), &d);
            if planned.contains(&key) {
                continue;
            }
            let reason: Reason = if held_set.contains(&key) {
                "pushed within the grace period".into()
            } else if !r.complete {
                "its repository could not be read completely".into()
            } else {
                why_kept(g, l.target(), why).into()
            };
            out.push(KeptManifest {
                repository: r.name.to_string(),
                digest: d,
                reason,
            });
        }
    }
    out
}

/// Blobs the registry 2.8's GC (same `--delete-untagged` choice) would delete but the plan
/// keeps, each with the reason.
fn registry_differences(
    g: &Graph<'_>,
    opts: &GcOptions,
    planned: &[bool],
    held: &HeldBack,
    blocked: bool,
    why: Why<'_>,
) -> Vec<Kept> {
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
        let d = b.digest.digest();
        let reason: Reason = if held_set.contains(&d) {
            "modified within the grace period".into()
        } else if blocked {
            "deletion blocked: the scan was incomplete".into()
        } else {
            why_kept(g, i as BlobId, why).into()
        };
        out.push(Kept {
            digest: d,
            size: b.size,
            reason,
        });
    }
    out
}

/// What [`why_kept`] looks at: the final mark, and the untagged manifests the grace period
/// held back (roots of that mark).
#[derive(Clone, Copy)]
struct Why<'a> {
    marked: &'a [bool],
    held: &'a HashSet<BlobId>,
}

/// Explain why a marked blob is kept, naming the kept manifest that needs it.
fn why_kept(g: &Graph<'_>, id: BlobId, why: Why<'_>) -> String {
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
