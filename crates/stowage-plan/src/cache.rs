//! GC for a pull-through cache (registry 2.8 with `proxy.remoteurl`), pure: which cached
//! images have expired and go, and how `scheduler-state.json` must change with them.
//!
//! # What the registry itself does, and why that is not enough
//! (`registry/proxy/`, v2.8.2.) Every blob and manifest fetched from the upstream gets a
//! scheduler entry `<repository>@<digest>` expiring 168 h after the fetch, never refreshed by
//! later pulls. At expiry a **manifest** entry removes the repository's revision link only
//! (its data and its tags stay: storage that expiry never reclaims, distribution#4957); a
//! **blob** entry removes the repository's `_layers` link and then the blob's data for
//! **every** repository (`vacuum.RemoveBlob`), even when another cached image still needs it
//! (#4191, #4872: pulls then get a 200 with an empty body from the descriptor cache). Images
//! pulled by digest are untagged, so a tag-based GC empties the cache (goharbor/harbor#23570).
//!
//! # The semantics here
//! - A cached manifest (a revision link) is **evicted** when its manifest entry in that
//!   repository has expired at `now`, its link is older than the grace period, and no kept
//!   manifest needs it (an index child of a live index stays). Untagged manifests are cached
//!   images like any other: no tag rule applies.
//! - A manifest with **no** entry (the state was lost, or it was not fetched by the proxy)
//!   never expires here (fail-safe); nor does anything when the state file is unusable or
//!   unknown: the plan is then the registry's plain GC and says why.
//! - Blobs go when no kept manifest in any repository reaches them (the ordinary mark, so a
//!   layer shared with a live image stays: the #4191 case), manifest data included.
//! - The state file follows: entries of what the plan removes go; every entry of a kept
//!   object that would expire before a live manifest needing it is **extended** to that
//!   manifest's expiry (otherwise the registry's own timer deletes a shared blob later); an
//!   entry needed by a manifest that never expires is removed (so the registry never expires
//!   it; stowage's next cache GC decides).
//!
//! Apply writes the state with the registry **stopped** ([`CacheEdit::note`]): a running
//! registry holds the entries in memory, fires its timers at the old expiries and rewrites
//! the file from memory within 5 s.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use stowage_graph::{Graph, Scratch};
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, LinkState};
use stowage_model::scheduler::{EntryKind, STATE_FILE, SchedulerFile, SchedulerState};
use stowage_model::time::Timestamp;

use crate::plan::{ManifestAction, Reason, TagAction};

/// Why an online apply of a cache plan is refused, and what to do instead.
pub const OFFLINE_NOTE: &str = "stop the pull-through cache registry, apply with --offline, then start it: a running registry keeps scheduler-state.json in memory (its timers would still fire at the old expiries and delete shared blobs, and it rewrites the file from memory every 5 s), and its blob descriptor cache keeps answering for deleted blobs (HEAD 200, GET 200 with an empty body) until it restarts";

/// The reason on everything a cache GC evicts.
pub const EXPIRED: &str = "cache-expired";

/// The reason on images evicted to bring the cache under its size cap.
pub const SIZE_CAP: &str = "cache-size-cap";

/// One scheduler entry the apply removes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRemoval {
    pub key: String,
    /// Its expiry when planning; apply leaves an entry whose expiry changed since.
    pub expiry: Timestamp,
    pub reason: Reason,
}

/// One scheduler entry whose expiry the apply moves later.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryExtension {
    pub key: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// The live manifest that needs it until then (`repository@digest`).
    pub needed_by: String,
}

/// How a cache GC plan changes `scheduler-state.json`, and how it must be applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheEdit {
    /// The file, at the storage driver's root.
    pub file: String,
    /// False when the state could not be used: nothing was evicted, and apply leaves the
    /// file alone.
    pub state_usable: bool,
    pub remove: Vec<EntryRemoval>,
    pub extend: Vec<EntryExtension>,
    /// Cached images (manifests in a repository) evicted.
    pub evicted_manifests: usize,
    /// What apply requires ([`OFFLINE_NOTE`]).
    pub note: String,
}

/// What expired and what stays, before blobs are chosen.
pub struct Eviction {
    /// The manifests the mark keeps (every revision not evicted).
    pub roots: Vec<BlobId>,
    /// Expired manifests to remove, with their repository index.
    pub evicted: Vec<(usize, BlobId)>,
    pub manifests: Vec<ManifestAction>,
    /// Expired, but their revision link is within the grace period.
    pub held: Vec<ManifestAction>,
    /// Tags whose current manifest is evicted in their repository.
    pub tags: Vec<TagAction>,
    /// Why nothing was evicted, when so.
    pub blocked: Option<String>,
}

fn key(repo: &str, d: &Digest) -> String {
    format!("{repo}@{d}")
}

/// Which cached manifests expire at `now` (see the module documentation); with `max_bytes`,
/// then the least recently cached live images until the cache fits ([`size_cap`]).
pub fn eviction(
    g: &Graph<'_>,
    now: Timestamp,
    grace_seconds: i64,
    max_bytes: Option<u64>,
) -> Eviction {
    let inv = g.inv;
    let mut out = Eviction {
        roots: g.all_revision_roots(),
        evicted: Vec::new(),
        manifests: Vec::new(),
        held: Vec::new(),
        tags: Vec::new(),
        blocked: None,
    };
    let state = match &inv.scheduler {
        SchedulerFile::Read(s) => s,
        SchedulerFile::Bad(why) => {
            out.blocked = Some(format!(
                "no cached image is evicted: {why} (fail-safe: only unreferenced blobs are planned)"
            ));
            return out;
        }
        SchedulerFile::Absent | SchedulerFile::Unknown => {
            out.blocked = Some(format!(
                "no cached image is evicted: no {STATE_FILE} was read beside the layout (is the storage opened through its rootdirectory?)"
            ));
            return out;
        }
    };
    let mut roots = Vec::new();
    let mut candidates: Vec<(usize, BlobId, Timestamp)> = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for l in &r.revisions {
            let id = l.target();
            let expired = r.complete
                && inv.is_present(id)
                && Graph::link_trusted(l.state())
                && l.state() != LinkState::Differs
                && !g.is_opaque(id)
                && state
                    .get(&key(r.name.as_str(), &inv.digest(id)))
                    .is_some_and(|e| e.kind == EntryKind::Manifest && e.expiry <= now);
            if !expired {
                roots.push(id);
            } else if l.modified().seconds_until(now) < grace_seconds {
                roots.push(id);
                out.held.push(action(g, ri, id, l.modified()));
            } else {
                candidates.push((ri, id, l.modified()));
            }
        }
    }
    let marked = g.mark(roots.iter().copied(), true);
    for (ri, id, modified) in candidates {
        if marked[id as usize] {
            // An index child or referrer of a live image (or the same manifest cached live
            // in another repository): it stays, and its entry is extended.
            roots.push(id);
        } else {
            out.evicted.push((ri, id));
            out.manifests.push(action(g, ri, id, modified));
        }
    }
    let mut capped = std::collections::HashSet::new();
    if let Some(cap) = max_bytes {
        let extra = size_cap(g, state, &roots, &out.evicted, cap);
        capped.extend(extra.iter().copied());
        let gone: std::collections::HashSet<BlobId> = extra.iter().map(|&(_, id)| id).collect();
        for &(ri, id) in &extra {
            let r = &inv.repositories[ri];
            let modified = r.revision(id).map_or(Timestamp::EPOCH, |l| l.modified());
            let mut a = action(g, ri, id, modified);
            a.reason = SIZE_CAP.into();
            out.manifests.push(a);
        }
        // A digest cached in two repositories stays a root while one of them keeps it.
        roots.retain(|id| !gone.contains(id));
        let all_gone: std::collections::HashSet<(usize, BlobId)> =
            out.evicted.iter().chain(&extra).copied().collect();
        for (ri, r) in inv.repositories.iter().enumerate() {
            for l in &r.revisions {
                if gone.contains(&l.target()) && !all_gone.contains(&(ri, l.target())) {
                    roots.push(l.target());
                }
            }
        }
        out.evicted.extend(extra);
    }
    for &(ri, id) in &out.evicted {
        let r = &inv.repositories[ri];
        for t in &r.tags {
            if let Some(c) = t.current
                && c.target == Some(id)
            {
                out.tags.push(TagAction {
                    repository: r.name.to_string(),
                    tag: t.name.to_string(),
                    digest: inv.digest(id),
                    current_modified: c.modified,
                    reasons: vec![
                        if capped.contains(&(ri, id)) {
                            SIZE_CAP
                        } else {
                            EXPIRED
                        }
                        .into(),
                    ],
                    orphan_of: None,
                });
            }
        }
    }
    out.roots = roots;
    out.tags.sort();
    out.tags.dedup();
    out.manifests.sort();
    out
}

/// The live cached images to evict, least recently cached first, until the stored bytes the
/// kept images reach fit in `cap`. Candidates are top-level images with a manifest entry (an
/// index child goes only with its index; an image no entry expires is never evicted). Each
/// eviction frees exactly the blobs no other kept image reaches (reference counts over the
/// closures, so the plan's bytes are exact). Ordered by cache time (the fetch: expiry minus
/// the TTL), then by key; last-pull order from access logs is not used yet.
fn size_cap(
    g: &Graph<'_>,
    state: &SchedulerState,
    roots: &[BlobId],
    evicted: &[(usize, BlobId)],
    cap: u64,
) -> Vec<(usize, BlobId)> {
    let inv = g.inv;
    let gone: std::collections::HashSet<(usize, BlobId)> = evicted.iter().copied().collect();
    let root_set: std::collections::HashSet<BlobId> = roots.iter().copied().collect();
    // Every kept top-level (repository, manifest) instance, and what each reaches; index
    // children are counted through their index and go with it.
    let mut count = vec![0u32; g.len()];
    let mut scratch = Scratch::new(g.len());
    let mut candidates: Vec<(Timestamp, String, usize, BlobId)> = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for l in &r.revisions {
            let id = l.target();
            if gone.contains(&(ri, id)) || !root_set.contains(&id) || !inv.is_present(id) {
                continue;
            }
            if g.parents(id).iter().any(|&p| root_set.contains(&p)) {
                continue;
            }
            g.for_each_descendant(id, &mut scratch, |d| count[d as usize] += 1);
            let k = key(r.name.as_str(), &inv.digest(id));
            let entry = state.get(&k).filter(|e| e.kind == EntryKind::Manifest);
            if let (Some(e), true) = (entry, r.complete && !g.is_opaque(id)) {
                candidates.push((e.cached_at(), k, ri, id));
            }
        }
    }
    let mut stored: u64 = (0..inv.blobs.len())
        .filter(|&i| count[i] > 0)
        .map(|i| inv.blobs[i].size)
        .sum();
    candidates.sort();
    let mut out = Vec::new();
    for (_, _, ri, id) in candidates {
        if stored <= cap {
            break;
        }
        let r = &inv.repositories[ri];
        g.for_each_descendant(id, &mut scratch, |d| {
            let c = &mut count[d as usize];
            *c = c.saturating_sub(1);
            if *c == 0 && inv.is_present(d) {
                stored -= inv.blobs[d as usize].size;
                // A child manifest of the evicted index, linked here, goes with it.
                if d != id && r.revision(d).is_some() && g.manifest(d).is_some() {
                    out.push((ri, d));
                }
            }
        });
        out.push((ri, id));
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn action(g: &Graph<'_>, ri: usize, id: BlobId, modified: Timestamp) -> ManifestAction {
    ManifestAction {
        repository: g.inv.repositories[ri].name.to_string(),
        digest: g.inv.digest(id),
        modified,
        reason: EXPIRED.into(),
    }
}

/// Until when each id is needed by a live manifest (the latest expiry of the live cached
/// manifests that reach it; `Timestamp(i64::MAX)` when one of them has no entry), and by which.
fn needed_until(
    g: &Graph<'_>,
    state: &SchedulerState,
    evicted: &[(usize, BlobId)],
) -> HashMap<BlobId, (Timestamp, String)> {
    let inv = g.inv;
    let gone: std::collections::HashSet<(usize, BlobId)> = evicted.iter().copied().collect();
    let mut live: Vec<(Timestamp, String, BlobId)> = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for l in &r.revisions {
            let id = l.target();
            if gone.contains(&(ri, id)) || !inv.is_present(id) {
                continue;
            }
            let k = key(r.name.as_str(), &inv.digest(id));
            let until = match state.get(&k) {
                Some(e) if e.kind == EntryKind::Manifest => e.expiry,
                _ => Timestamp(i64::MAX),
            };
            live.push((until, k, id));
        }
    }
    // Latest first: the first walk to reach an id gives its latest need.
    live.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut need: HashMap<BlobId, (Timestamp, String)> = HashMap::new();
    let mut scratch = Scratch::new(g.len());
    for (until, k, id) in live {
        g.for_each_descendant(id, &mut scratch, |d| {
            if d != id {
                need.entry(d).or_insert_with(|| (until, k.clone()));
            }
        });
    }
    need
}

/// The state-file edit of a cache GC plan: entries of removed objects go, entries of kept
/// objects are extended to their latest need. `planned_blob[id]`: the plan deletes the blob.
pub fn edit(g: &Graph<'_>, ev: &Eviction, planned_blob: &[bool]) -> CacheEdit {
    let inv = g.inv;
    let mut edit = CacheEdit {
        file: STATE_FILE.into(),
        state_usable: false,
        note: OFFLINE_NOTE.into(),
        evicted_manifests: ev.evicted.len(),
        ..Default::default()
    };
    let Some(state) = inv.scheduler.state() else {
        return edit;
    };
    edit.state_usable = true;
    let evicted: BTreeMap<String, ()> = ev
        .evicted
        .iter()
        .map(|&(ri, id)| (key(inv.repositories[ri].name.as_str(), &inv.digest(id)), ()))
        .collect();
    let need = needed_until(g, state, &ev.evicted);
    for e in &state.entries {
        let id = inv.id_of(&e.digest);
        let removal = |reason: &'static str| EntryRemoval {
            key: e.key.clone(),
            expiry: e.expiry,
            reason: reason.into(),
        };
        if e.kind == EntryKind::Manifest && evicted.contains_key(&e.key) {
            edit.remove.push(removal(EXPIRED));
            continue;
        }
        let Some(id) = id else { continue };
        if e.kind == EntryKind::Blob && planned_blob.get(id as usize).copied().unwrap_or(false) {
            edit.remove.push(removal("blob-deleted"));
            continue;
        }
        if let Some((until, by)) = need.get(&id)
            && *until > e.expiry
        {
            if until.0 == i64::MAX {
                edit.remove.push(removal("needed-by-unexpiring-manifest"));
            } else {
                edit.extend.push(EntryExtension {
                    key: e.key.clone(),
                    from: e.expiry,
                    to: *until,
                    needed_by: by.clone(),
                });
            }
        }
    }
    edit.remove.sort();
    edit.extend.sort();
    edit
}
