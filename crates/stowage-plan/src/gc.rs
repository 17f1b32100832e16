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
    Reason, TagIndexAction, UploadAction,
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
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            delete_untagged: false,
            grace_seconds: 3600,
            uploads_older_than_seconds: None,
            dangling_links: false,
            empty_dirs: false,
        }
    }
}

/// Which manifests of which repositories stay: the roots of the mark.
pub(crate) fn keep_roots(g: &Graph<'_>, delete_untagged: bool) -> Vec<BlobId> {
    if delete_untagged {
        stowage_graph::tagged_roots(g)
    } else {
        g.all_revision_roots()
    }
}

/// Build a GC plan.
pub fn build(g: &Graph<'_>, opts: &GcOptions, now: Timestamp) -> Plan {
    let inv = g.inv;
    let recent = |t: Timestamp| t.seconds_until(now) < opts.grace_seconds;
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
    let blobs_blocked = !blocked.is_empty();
    // A blob is known to be missing only when the scan saw every blob: one behind a symbolic
    // link, moved out of its place or unreadable looks missing, and links to it are not
    // dangling (issue 25: a referrer moved out of place had its revision planned).
    let dangling_links = opts.dangling_links && !blobs_blocked;

    // Manifests.
    let mut roots = keep_roots(g, opts.delete_untagged);
    let mut manifests: Vec<ManifestAction> = Vec::new();
    let mut held_manifests: Vec<ManifestAction> = Vec::new();
    if opts.delete_untagged {
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
        for &(ri, id, modified) in &candidates {
            if recent(modified) {
                held_manifests.push(ManifestAction {
                    repository: inv.repositories[ri].name.to_string(),
                    digest: inv.digest(id),
                    modified,
                    reason: String::new(),
                });
                roots.push(id);
            }
        }
        let marked = g.mark(roots.iter().copied(), true);
        for (ri, id, modified) in candidates {
            if !recent(modified) && !marked[id as usize] {
                manifests.push(ManifestAction {
                    repository: inv.repositories[ri].name.to_string(),
                    digest: inv.digest(id),
                    modified,
                    reason: String::new(),
                });
            }
        }
    }
    let marked = g.mark(roots.iter().copied(), true);
    let referenced = g.mark(g.all_revision_roots(), false);

    // Blobs.
    let mut blobs = Vec::new();
    let mut held = HeldBack::default();
    let mut planned_blob: Vec<bool> = vec![false; g.len()];
    let mut latest_link = vec![Timestamp::EPOCH; inv.blobs.len()];
    for r in &inv.repositories {
        for l in &r.layers {
            if let Some(t) = latest_link.get_mut(l.target() as usize) {
                *t = (*t).max(l.modified());
            }
        }
    }
    if !blobs_blocked {
        for (i, b) in inv.blobs.iter().enumerate() {
            if marked[i] {
                continue;
            }
            // A blob mounted into a repository, or committed again, keeps its old mtime; its
            // new `_layers` link is the sign of a push in progress.
            if recent(b.modified()) || recent(latest_link[i]) {
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
    }

    // Tag-history entries: those of deleted manifests, and (opt-in) dangling ones.
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

    // Uploads.
    let mut uploads = Vec::new();
    if let Some(age) = opts.uploads_older_than_seconds {
        for r in &inv.repositories {
            for u in &r.uploads {
                let started = u.started_at.unwrap_or(u.modified);
                if started.seconds_until(now) < age {
                    continue;
                }
                let a = UploadAction {
                    repository: r.name.to_string(),
                    id: u.id.clone(),
                    size: u.total_size,
                    started_at: u.started_at,
                };
                if recent(u.modified) {
                    held.upload_bytes += u.total_size;
                    held.uploads.push(a);
                } else {
                    uploads.push(a);
                }
            }
        }
    }

    // Empty directories: known ones, and the parents this plan empties.
    let mut empty_dirs: BTreeSet<String> = BTreeSet::new();
    if opts.empty_dirs {
        for f in &inv.findings {
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
        for l in &layer_links {
            let link = layout::layer_link(&l.repository, &l.digest);
            empty_dirs.insert(link.trim_end_matches("/link").to_string());
        }
    }

    let kept_unlike_registry =
        registry_differences(g, opts, &planned_blob, &held, blobs_blocked, &marked);
    // The registry 2.8 with --delete-untagged removes every revision no tag of its own
    // repository points at; list the ones this plan keeps.
    let mut manifests_kept_unlike_registry = Vec::new();
    if opts.delete_untagged {
        let planned: BTreeSet<(&str, &Digest)> = manifests
            .iter()
            .map(|m| (m.repository.as_str(), &m.digest))
            .collect();
        let held_set: BTreeSet<(&str, &Digest)> = held_manifests
            .iter()
            .map(|m| (m.repository.as_str(), &m.digest))
            .collect();
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
                    why_kept(g, l.target(), &marked).into()
                };
                manifests_kept_unlike_registry.push(KeptManifest {
                    repository: r.name.to_string(),
                    digest: d,
                    reason,
                });
            }
        }
    }

    manifests.sort();
    tag_index_entries.sort();
    layer_links.sort();
    uploads.sort();
    held.blobs.sort();
    held.manifests = held_manifests;
    held.manifests.sort();
    held.uploads.sort();
    let blob_bytes: u64 = blobs.iter().map(|b| b.size).sum();
    let upload_bytes: u64 = uploads.iter().map(|u| u.size).sum();
    // Deepest first, so parents are tried after their children.
    let mut empty_dirs: Vec<String> = empty_dirs.into_iter().collect();
    empty_dirs.sort_by(|a, b| {
        b.matches('/')
            .count()
            .cmp(&a.matches('/').count())
            .then_with(|| a.cmp(b))
    });
    Plan {
        schema: PLAN_SCHEMA.into(),
        kind: "gc".into(),
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
        tags: Vec::new(),
        retention: None,
        listing: None,
    }
}

/// Blobs the registry 2.8's GC (same `--delete-untagged` choice) would delete but the plan
/// keeps, each with the reason.
fn registry_differences(
    g: &Graph<'_>,
    opts: &GcOptions,
    planned: &[bool],
    held: &HeldBack,
    blocked: bool,
    marked: &[bool],
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
            why_kept(g, i as BlobId, marked).into()
        };
        out.push(Kept {
            digest: d,
            size: b.size,
            reason,
        });
    }
    out
}

/// Explain why a marked blob is kept, naming the kept manifest that needs it.
fn why_kept(g: &Graph<'_>, id: BlobId, marked: &[bool]) -> String {
    let inv = g.inv;
    if g.is_opaque(id) {
        return "a manifest that could not be read or parsed: kept, with everything its repository links".into();
    }
    let describe = |m: BlobId| -> Option<String> {
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
    let owners: BTreeMap<&str, ()> = g
        .layer_repos(id)
        .iter()
        .map(|&r| (inv.repositories[r as usize].name.as_str(), ()))
        .collect();
    if !owners.is_empty() {
        return format!(
            "linked in {} which holds a manifest that could not be parsed (kept with all it may reference)",
            owners.keys().copied().collect::<Vec<_>>().join(", ")
        );
    }
    "reachable from a kept manifest".to_string()
}
