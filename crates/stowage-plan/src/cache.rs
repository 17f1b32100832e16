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

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use stowage_graph::{Graph, Scratch};
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, LinkState};
use stowage_model::scheduler::{EntryKind, STATE_FILE, SchedulerFile, SchedulerState};
use stowage_model::time::Timestamp;

use stowage_policy::PullData;
use stowage_policy::cache::EvictOrder;

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
    /// With a size cap: which images it evicted, in order, and the bytes each freed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_cap: Option<SizeCapReport>,
}

/// A size cap (`stowage gc --cache-max-bytes`, or a policy's `cache:` rule; one code path:
/// [`crate::gc::build_capped`]).
#[derive(Clone, Copy, Debug)]
pub struct SizeCap<'a> {
    pub max_bytes: u64,
    pub order: CapOrder<'a>,
}

/// How a size cap orders what it evicts, and where it comes from.
#[derive(Clone, Copy, Debug)]
pub struct CapOrder<'a> {
    pub evict: EvictOrder,
    /// Pull data (`settings.pull_sources`, `--pulls DB`): last pulls by repository and digest.
    pub pulls: Option<&'a PullData>,
    /// Where the cap comes from, for the plan (`--cache-max-bytes`, the policy's path).
    pub source: &'a str,
}

impl Default for CapOrder<'_> {
    fn default() -> Self {
        CapOrder {
            evict: EvictOrder::LeastRecentlyPulled,
            pulls: None,
            source: "--cache-max-bytes",
        }
    }
}

/// What a size cap did, in the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeCapReport {
    pub source: String,
    pub max_bytes: u64,
    /// `least_recently_pulled` or `least_recently_cached`.
    pub evict: String,
    /// The pull data the order used (`None`: none, so the proxy's fetches only).
    pub pull_data: Option<String>,
    /// Stored bytes the images kept after expiry reach, before and after the cap.
    pub stored_before: u64,
    pub stored_after: u64,
    /// The cap could not be met: every image it may evict is gone (the rest have no entry,
    /// or are index children and referrers of what stays).
    pub unmet: bool,
    /// In eviction order.
    pub images: Vec<CappedImage>,
}

/// One cached image the size cap evicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CappedImage {
    pub repository: String,
    pub digest: Digest,
    /// The last pull the order used: the pull data's, or the fetch when it has none later.
    pub last_pulled: Timestamp,
    /// `pull data` or `fetch`.
    pub last_pulled_from: String,
    pub cached_at: Timestamp,
    /// Blobs freed by this eviction (no kept image reaches them any more), and their bytes.
    pub blobs_freed: u64,
    pub bytes_freed: u64,
    /// Index children linked in the repository that go with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Digest>,
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
    /// What the size cap did.
    pub cap: Option<SizeCapReport>,
}

fn key(repo: &str, d: &Digest) -> String {
    format!("{repo}@{d}")
}

/// Which cached manifests expire at `now` (see the module documentation); with a cap, then
/// the least recently pulled (or cached) live images until the cache fits ([`size_cap`]).
pub fn eviction(
    g: &Graph<'_>,
    now: Timestamp,
    grace_seconds: i64,
    cap: Option<&SizeCap<'_>>,
) -> Eviction {
    let inv = g.inv;
    let mut out = Eviction {
        roots: g.all_revision_roots(),
        evicted: Vec::new(),
        manifests: Vec::new(),
        held: Vec::new(),
        tags: Vec::new(),
        blocked: None,
        cap: None,
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
    let mut capped = HashSet::new();
    if let Some(cap) = cap {
        // The grace period holds back from the cap too: a revision linked within it is a
        // pull in progress or just done, however old its entry says it was cached.
        let recent: HashSet<(usize, BlobId)> = inv
            .repositories
            .iter()
            .enumerate()
            .flat_map(|(ri, r)| {
                r.revisions
                    .iter()
                    .filter(|l| l.modified().seconds_until(now) < grace_seconds)
                    .map(move |l| (ri, l.target()))
            })
            .collect();
        let (extra, report) = size_cap(g, state, &roots, &out.evicted, &recent, cap);
        out.cap = Some(report);
        capped.extend(extra.iter().copied());
        let gone: HashSet<BlobId> = extra.iter().map(|&(_, id)| id).collect();
        for &(ri, id) in &extra {
            let r = &inv.repositories[ri];
            let modified = r.revision(id).map_or(Timestamp::EPOCH, |l| l.modified());
            let mut a = action(g, ri, id, modified);
            a.reason = SIZE_CAP.into();
            out.manifests.push(a);
        }
        // A digest cached in two repositories stays a root while one of them keeps it.
        roots.retain(|id| !gone.contains(id));
        let all_gone: HashSet<(usize, BlobId)> =
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

/// The live cached images to evict, least recently pulled (or cached) first, until the
/// stored bytes the kept images reach fit in the cap. Candidates are top-level images with a
/// manifest entry (an index child goes only with its index; an image no entry expires is
/// never evicted). Each eviction frees exactly the blobs no other kept image reaches
/// (reference counts over the closures), so the plan's bytes are exact and a blob another
/// kept image needs is never freed. Order: the last pull ([`last_pull`]) with
/// `least_recently_pulled`, then the cache time (the fetch: expiry minus the TTL), then
/// `repository@digest`.
fn size_cap(
    g: &Graph<'_>,
    state: &SchedulerState,
    roots: &[BlobId],
    evicted: &[(usize, BlobId)],
    recent: &HashSet<(usize, BlobId)>,
    cap: &SizeCap<'_>,
) -> (Vec<(usize, BlobId)>, SizeCapReport) {
    let inv = g.inv;
    let gone: HashSet<(usize, BlobId)> = evicted.iter().copied().collect();
    let root_set: HashSet<BlobId> = roots.iter().copied().collect();
    // Every kept top-level (repository, manifest) instance, and what each reaches; index
    // children are counted through their index and go with it.
    let mut count = vec![0u32; g.len()];
    let mut scratch = Scratch::new(g.len());
    let mut candidates: Vec<Candidate> = Vec::new();
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
            let evictable = r.complete && !g.is_opaque(id) && !recent.contains(&(ri, id));
            if let (Some(e), true) = (entry, evictable) {
                let cached_at = e.cached_at();
                let (pulled, from) = match cap.order.evict {
                    EvictOrder::LeastRecentlyPulled => {
                        last_pull(g, ri, id, cached_at, cap.order.pulls, &mut scratch)
                    }
                    EvictOrder::LeastRecentlyCached => (cached_at, "fetch"),
                };
                candidates.push(Candidate {
                    order: (pulled, cached_at, k),
                    from,
                    ri,
                    id,
                });
            }
        }
    }
    let stored_before: u64 = (0..inv.blobs.len())
        .filter(|&i| count[i] > 0)
        .map(|i| inv.blobs[i].size)
        .sum();
    let mut stored = stored_before;
    candidates.sort_by(|a, b| a.order.cmp(&b.order));
    let mut out = Vec::new();
    let mut images = Vec::new();
    for c in candidates {
        if stored <= cap.max_bytes {
            break;
        }
        let (ri, id) = (c.ri, c.id);
        let r = &inv.repositories[ri];
        let (mut blobs, mut bytes, mut children) = (0u64, 0u64, Vec::new());
        g.for_each_descendant(id, &mut scratch, |d| {
            let n = &mut count[d as usize];
            *n = n.saturating_sub(1);
            if *n == 0 && inv.is_present(d) {
                stored -= inv.blobs[d as usize].size;
                blobs += 1;
                bytes += inv.blobs[d as usize].size;
                // A child manifest of the evicted index, linked here, goes with it.
                if d != id && r.revision(d).is_some() && g.manifest(d).is_some() {
                    out.push((ri, d));
                    children.push(inv.digest(d));
                }
            }
        });
        out.push((ri, id));
        children.sort();
        images.push(CappedImage {
            repository: r.name.to_string(),
            digest: inv.digest(id),
            last_pulled: c.order.0,
            last_pulled_from: c.from.into(),
            cached_at: c.order.1,
            blobs_freed: blobs,
            bytes_freed: bytes,
            children,
        });
    }
    out.sort_unstable();
    out.dedup();
    let report = SizeCapReport {
        source: cap.order.source.into(),
        max_bytes: cap.max_bytes,
        evict: cap.order.evict.as_str().into(),
        pull_data: match cap.order.evict {
            EvictOrder::LeastRecentlyPulled => cap.order.pulls.map(|p| p.source.clone()),
            EvictOrder::LeastRecentlyCached => None,
        },
        stored_before,
        stored_after: stored,
        unmet: stored > cap.max_bytes,
        images,
    };
    (out, report)
}

/// A size-cap candidate: (last pull, cache time, key) orders it.
struct Candidate {
    order: (Timestamp, Timestamp, String),
    from: &'static str,
    ri: usize,
    id: BlobId,
}

/// When a cached image was last pulled: the latest pull in the pull data of the image or of
/// a manifest it contains (a pull by tag records the index, a platform pull the child), or
/// the proxy's fetch (`cached_at`: a fetch is a pull) when that is later or nothing is known.
fn last_pull(
    g: &Graph<'_>,
    ri: usize,
    id: BlobId,
    cached_at: Timestamp,
    pulls: Option<&PullData>,
    scratch: &mut Scratch,
) -> (Timestamp, &'static str) {
    let Some(p) = pulls else {
        return (cached_at, "fetch");
    };
    let repo = g.inv.repositories[ri].name.as_str();
    let mut best: Option<Timestamp> = None;
    let mut look = |d: BlobId| {
        if g.manifest(d).is_some()
            && let Some(&t) = p.last.get(&(repo.to_string(), g.inv.digest(d).to_string()))
        {
            best = Some(best.map_or(t, |b| b.max(t)));
        }
    };
    // The walk includes the image itself.
    g.for_each_descendant(id, scratch, &mut look);
    match best {
        Some(t) if t > cached_at => (t, "pull data"),
        _ => (cached_at, "fetch"),
    }
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
    let gone: HashSet<(usize, BlobId)> = evicted.iter().copied().collect();
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
        size_cap: ev.cap.clone(),
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

/// The plan of a policy's `cache:` rule on a pull-through cache: the cache GC with the rule's
/// size cap and eviction order ([`crate::gc::build_capped`], as `stowage gc --cache-max-bytes`),
/// the grace period of `protections.grace_period` (default one hour, as `stowage gc`), and
/// the would-break check of `settings.would_break` against `pulls`. `None` when the policy
/// has no cache rule.
pub fn policy_plan(
    policy: &crate::retention::LoadedPolicy,
    g: &Graph<'_>,
    now: Timestamp,
    pulls: Option<&PullData>,
) -> Option<crate::Plan> {
    let cap = stowage_policy::cache::compile(&policy.file)
        .ok()
        .flatten()?;
    let c = &policy.compiled;
    let opts = crate::GcOptions {
        grace_seconds: match policy.file.protections.grace_period {
            Some(_) => c.grace,
            None => crate::GcOptions::default().grace_seconds,
        },
        cache: true,
        cache_max_bytes: Some(cap.max_bytes),
        ..Default::default()
    };
    let source = policy.path.display().to_string();
    let order = CapOrder {
        evict: cap.evict,
        pulls,
        source: &source,
    };
    let mut plan = crate::gc::build_capped(g, &opts, now, order);
    crate::replay::check(&mut plan, pulls, c.would_break, c.would_break_window, now);
    Some(plan)
}
