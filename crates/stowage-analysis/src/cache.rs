//! A pull-through cache, seen from its storage: whether this is one, what each cached
//! repository, manifest and blob is, when it was cached and when its TTL expires, how many
//! bytes have expired but are still stored, and where the scheduler state and the storage
//! disagree (findings).
//!
//! Detection: `scheduler-state.json` beside the layout (the scan read it into the
//! inventory) or a `proxy.remoteurl` in the registry's config (`--registry-config`). The
//! expiry semantics are registry 2.8's (`stowage_model::scheduler`); "expired but stored"
//! is exactly what a cache GC at `now` reclaims by expiry (`stowage_plan::cache`, no grace):
//! the stored blobs only expired manifests or expired blob entries reach, which registry
//! 2.8's own expiry never removes for manifests (distribution#4957).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::finding::{Finding, FindingKind};
use stowage_model::inventory::{BlobId, Inventory, Repository};
use stowage_model::scheduler::{Entry, EntryKind, SchedulerFile, SchedulerState};
use stowage_model::time::Timestamp;

/// One cached object (a scheduler entry), as the storage holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CachedObject {
    pub repository: String,
    pub digest: String,
    pub kind: EntryKind,
    /// The fetch from the upstream (expiry minus the 2.8 TTL of 168 h).
    pub cached_at: Timestamp,
    pub expires: Timestamp,
    pub expired: bool,
    /// Its link is in the repository (`_layers` for a blob, a revision for a manifest).
    pub linked: bool,
    /// Its data is stored.
    pub stored: bool,
    pub size: u64,
    /// Manifests: the tags in this repository that point at it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

pub use stowage_model::cached::{BlobCache, CacheOverview, CachedRepository};

/// The cache's figures (`stowage.cache/v1` in JSON output).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheFigures {
    /// `proxy.remoteurl` from the registry's config, when given.
    pub remote_url: Option<String>,
    /// What said this is a cache: `scheduler-state.json`, `config proxy.remoteurl`.
    pub detected_by: Vec<String>,
    /// `read`, `absent`, `unknown` (the backend cannot read beside the layout) or
    /// `unusable: <why>`.
    pub state: String,
    pub entries: usize,
    pub blob_entries: usize,
    pub manifest_entries: usize,
    pub expired_entries: usize,
    /// Stored blobs only expired cached objects reach: what a cache GC now reclaims.
    pub expired_stored_bytes: u64,
    pub expired_stored_blobs: usize,
    pub next_expiry: Option<Timestamp>,
    pub repositories: Vec<CachedRepository>,
    pub objects: Vec<CachedObject>,
}

impl CacheFigures {
    /// The one line every command's header says about a cache: how it was detected, and the
    /// headline figures (expired but still stored, the next expiry).
    pub fn headline(&self) -> String {
        let mut s = format!(
            "a pull-through cache{} (by {}); scheduler state {}",
            self.remote_url
                .as_deref()
                .map(|u| format!(" of {u}"))
                .unwrap_or_default(),
            self.detected_by.join(", "),
            self.state
        );
        if self.state == "read" {
            s.push_str(&format!(
                ": {} entries, {} expired; {} expired but still stored ({} blobs, reclaimed by `stowage gc`)",
                self.entries,
                self.expired_entries,
                stowage_model::time::human_bytes(self.expired_stored_bytes),
                self.expired_stored_blobs
            ));
            if let Some(t) = self.next_expiry {
                s.push_str(&format!("; next expiry {}", t.rfc3339()));
            }
        }
        s
    }
}

/// Whether the storage belongs to a pull-through cache, and how that is known.
pub fn detected_by(inv: &Inventory, remote_url: Option<&str>) -> Vec<String> {
    detected_by_state(&inv.scheduler, remote_url)
}

/// [`detected_by`] before any scan: the scheduler state file read on its own (the scan
/// reads it again). `gc` decides by it how to scan (a cache is scanned whole, once).
pub fn detected_before_scan(
    storage: &dyn stowage_storage::Storage,
    remote_url: Option<&str>,
) -> Vec<String> {
    detected_by_state(&stowage_scan::scheduler::read_state(storage).0, remote_url)
}

fn detected_by_state(scheduler: &SchedulerFile, remote_url: Option<&str>) -> Vec<String> {
    let mut by = Vec::new();
    if scheduler.present() {
        by.push(stowage_model::scheduler::STATE_FILE.to_string());
    }
    if remote_url.is_some() {
        by.push("config proxy.remoteurl".to_string());
    }
    by
}

fn state_label(f: &SchedulerFile) -> String {
    match f {
        SchedulerFile::Read(_) => "read".into(),
        SchedulerFile::Absent => "absent".into(),
        SchedulerFile::Unknown => "unknown".into(),
        SchedulerFile::Bad(why) => format!("unusable: {why}"),
    }
}

/// Every figure, at `now`.
pub fn figures(g: &Graph<'_>, now: Timestamp, remote_url: Option<&str>) -> CacheFigures {
    let inv = g.inv;
    let mut f = CacheFigures {
        remote_url: remote_url.map(str::to_string),
        detected_by: detected_by(inv, remote_url),
        state: state_label(&inv.scheduler),
        ..Default::default()
    };
    let Some(state) = inv.scheduler.state() else {
        return f;
    };
    let entries = Entries::new(inv);
    let mut repos: BTreeMap<&str, CachedRepository> = BTreeMap::new();
    for e in &state.entries {
        let (repo, id, linked) = entries.of(e);
        let stored = id.is_some_and(|id| inv.is_present(id));
        let tags = match (repo, id, e.kind) {
            (Some(r), Some(id), EntryKind::Manifest) => r
                .tags
                .iter()
                .filter(|t| t.current.and_then(|c| c.target) == Some(id))
                .map(|t| t.name.to_string())
                .collect(),
            _ => Vec::new(),
        };
        let expired = e.expiry <= now;
        f.entries += 1;
        match e.kind {
            EntryKind::Blob => f.blob_entries += 1,
            EntryKind::Manifest => f.manifest_entries += 1,
        }
        f.expired_entries += usize::from(expired);
        if !expired {
            f.next_expiry = Some(f.next_expiry.map_or(e.expiry, |t| t.min(e.expiry)));
        }
        let cr = repos
            .entry(e.repository.as_str())
            .or_insert_with(|| CachedRepository {
                repository: e.repository.clone(),
                ..Default::default()
            });
        match e.kind {
            EntryKind::Blob => cr.blobs += 1,
            EntryKind::Manifest => cr.manifests += 1,
        }
        cr.expired += usize::from(expired);
        let c = e.cached_at();
        cr.first_cached = Some(cr.first_cached.map_or(c, |t| t.min(c)));
        cr.last_cached = Some(cr.last_cached.map_or(c, |t| t.max(c)));
        if !expired {
            cr.next_expiry = Some(cr.next_expiry.map_or(e.expiry, |t| t.min(e.expiry)));
        }
        f.objects.push(CachedObject {
            repository: e.repository.clone(),
            digest: e.digest.to_string(),
            kind: e.kind,
            cached_at: c,
            expires: e.expiry,
            expired,
            linked,
            stored,
            size: id.filter(|&i| inv.is_present(i)).map_or(0, |i| g.size(i)),
            tags,
        });
    }
    f.repositories = repos.into_values().collect();
    let (blobs, bytes) = expired_stored(g, state, now);
    f.expired_stored_blobs = blobs;
    f.expired_stored_bytes = bytes;
    f
}

/// The stored blobs a cache GC at `now` (no grace) reclaims by expiry: reached only from
/// expired manifests or named only by expired blob entries.
fn expired_stored(g: &Graph<'_>, state: &SchedulerState, now: Timestamp) -> (usize, u64) {
    let inv = g.inv;
    let ev = stowage_plan::cache::eviction(g, now, 0, None);
    let live = g.mark(ev.roots.iter().copied(), true);
    let mut expired = g.mark(ev.evicted.iter().map(|&(_, id)| id), true);
    for e in &state.entries {
        if e.kind == EntryKind::Blob
            && e.expiry <= now
            && let Some(id) = inv.id_of(&e.digest)
        {
            expired[id as usize] = true;
        }
    }
    let (mut n, mut bytes) = (0usize, 0u64);
    for (i, b) in inv.blobs.iter().enumerate() {
        if expired[i] && !live[i] {
            n += 1;
            bytes += b.size;
        }
    }
    (n, bytes)
}

/// The storage side of scheduler entries: each entry's repository, blob and whether its link
/// is there (`_layers` for a blob, a revision for a manifest).
struct Entries<'a> {
    inv: &'a Inventory,
    repo_index: BTreeMap<&'a str, usize>,
}

impl<'a> Entries<'a> {
    fn new(inv: &'a Inventory) -> Self {
        let repo_index = inv
            .repositories
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        Entries { inv, repo_index }
    }

    fn of(&self, e: &Entry) -> (Option<&'a Repository>, Option<BlobId>, bool) {
        let inv = self.inv;
        let repo = self
            .repo_index
            .get(e.repository.as_str())
            .map(|&i| &inv.repositories[i]);
        let id = inv.id_of(&e.digest);
        let linked = match (repo, id) {
            (Some(r), Some(id)) => match e.kind {
                EntryKind::Blob => r.layer(id).is_some(),
                EntryKind::Manifest => r.revision(id).is_some(),
            },
            _ => false,
        };
        (repo, id, linked)
    }
}

/// Where the scheduler state and the storage disagree: entries whose link is not in their
/// repository, and links of a cache that no entry expires (manifest data blobs are never
/// scheduled by 2.8, so only links count).
pub fn findings(inv: &Inventory) -> Vec<Finding> {
    let Some(state) = inv.scheduler.state() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen: HashSet<(&str, EntryKind, u32)> = HashSet::new();
    let entries = Entries::new(inv);
    for e in &state.entries {
        let (repo, id, linked) = entries.of(e);
        if let (true, Some(id)) = (linked, id) {
            seen.insert((e.repository.as_str(), e.kind, id));
            continue;
        }
        // A repository or link the scan could not list may hold it: no finding.
        if repo.is_some_and(|r| !r.complete) {
            continue;
        }
        let (path, what) = match e.kind {
            EntryKind::Blob => (layout::layer_link(&e.repository, &e.digest), "blob"),
            EntryKind::Manifest => (layout::revision_link(&e.repository, &e.digest), "manifest"),
        };
        out.push(Finding::new(
            FindingKind::CacheEntryWithoutObject,
            path,
            format!(
                "the scheduler expires {what} {} at {}, but its link is not there",
                e.key,
                e.expiry.rfc3339()
            ),
        ));
    }
    for r in &inv.repositories {
        let name = r.name.as_str();
        for (kind, links) in [
            (EntryKind::Blob, &r.layers),
            (EntryKind::Manifest, &r.revisions),
        ] {
            for l in links {
                if seen.contains(&(name, kind, l.target())) {
                    continue;
                }
                let d = inv.digest(l.target());
                let path = match kind {
                    EntryKind::Blob => layout::layer_link(name, &d),
                    EntryKind::Manifest => layout::revision_link(name, &d),
                };
                out.push(Finding::new(
                    FindingKind::CacheObjectWithoutEntry,
                    path,
                    "no scheduler entry expires this cached link",
                ));
            }
        }
    }
    out
}

/// Per stored blob digest, its scheduler entries summed up ([`CacheFigures::by_blob`]).
pub type BlobCaches = HashMap<String, BlobCache>;

/// Set the cache columns of blob rows from [`CacheFigures::by_blob`].
pub fn fill_blob_rows(by_blob: &BlobCaches, rows: &mut [stowage_report::overview::BlobRow]) {
    for r in rows {
        r.cache = by_blob.get(r.digest.as_str()).copied();
    }
}

/// When a tag's manifest was cached and expires (`tags`' JSON and columns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagCache {
    pub tag: String,
    /// `None`: no manifest entry (never expires by the scheduler).
    pub cached_at: Option<Timestamp>,
    pub expires: Option<Timestamp>,
    pub expired: bool,
}

impl CacheFigures {
    /// The headline figures and per-repository rows (no per-object detail).
    pub fn overview(&self) -> CacheOverview {
        CacheOverview {
            remote_url: self.remote_url.clone(),
            detected_by: self.detected_by.clone(),
            state: self.state.clone(),
            entries: self.entries,
            expired_entries: self.expired_entries,
            expired_stored_bytes: self.expired_stored_bytes,
            expired_stored_blobs: self.expired_stored_blobs,
            next_expiry: self.next_expiry,
            repositories: self.repositories.clone(),
        }
    }

    /// Set the cache columns of blob rows (the report's largest blobs).
    pub fn fill_blob_rows(&self, rows: &mut [stowage_report::overview::BlobRow]) {
        fill_blob_rows(&self.by_blob(), rows);
    }

    /// Set the cache figures of tag rows: the entries of each tag's manifest in its
    /// repository (rows without a digest are left as they are).
    pub fn fill_tag_rows(&self, rows: &mut [stowage_report::overview::TagRow]) {
        for row in rows {
            let Some(d) = row.digest.as_deref() else {
                continue;
            };
            let mut c = None;
            for o in self
                .objects_of(Some(&row.repository), d)
                .filter(|o| o.kind == EntryKind::Manifest)
            {
                BlobCache::add(&mut c, o.cached_at, o.expires, o.expired);
            }
            row.cache = c;
        }
    }

    /// Per stored blob digest, its entries summed up (the blob table's cache columns; the
    /// dashboard keeps it per scan).
    pub fn by_blob(&self) -> BlobCaches {
        let mut out: HashMap<String, Option<BlobCache>> = HashMap::new();
        for o in self.objects.iter().filter(|o| o.stored) {
            BlobCache::add(
                out.entry(o.digest.clone()).or_default(),
                o.cached_at,
                o.expires,
                o.expired,
            );
        }
        out.into_iter()
            .filter_map(|(d, b)| b.map(|b| (d, b)))
            .collect()
    }

    /// The entries naming `digest` (in `repository` when given).
    pub fn objects_of<'a>(
        &'a self,
        repository: Option<&'a str>,
        digest: &'a str,
    ) -> impl Iterator<Item = &'a CachedObject> + 'a {
        self.objects
            .iter()
            .filter(move |o| o.digest == digest && repository.is_none_or(|r| o.repository == r))
    }

    /// Per tag (`(tag, manifest digest)`), its manifest's entry in `repository`.
    pub fn tags(&self, repository: &str, tags: &[(String, Option<String>)]) -> Vec<TagCache> {
        tags.iter()
            .map(|(tag, digest)| {
                let o = digest.as_deref().and_then(|d| {
                    self.objects_of(Some(repository), d)
                        .find(|o| o.kind == EntryKind::Manifest)
                });
                TagCache {
                    tag: tag.clone(),
                    cached_at: o.map(|o| o.cached_at),
                    expires: o.map(|o| o.expires),
                    expired: o.is_some_and(|o| o.expired),
                }
            })
            .collect()
    }

    /// `explain`'s facts about a target: a digest (`repository@digest` or bare) or a
    /// repository, as (label, value) lines.
    pub fn explain_facts(
        &self,
        repository: Option<&str>,
        digest: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(d) = digest {
            for o in self.objects_of(repository, d) {
                out.push((
                    format!(
                        "cached {} in {}",
                        match o.kind {
                            EntryKind::Blob => "blob",
                            EntryKind::Manifest => "manifest",
                        },
                        o.repository
                    ),
                    format!(
                        "at {}, TTL {} {}{}",
                        o.cached_at.rfc3339(),
                        if o.expired { "expired" } else { "expires" },
                        o.expires.rfc3339(),
                        if o.expired && o.stored {
                            " (expired but still stored)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            if out.is_empty() && self.state == "read" {
                out.push((
                    "cached".into(),
                    "no scheduler entry: the registry never expires it".into(),
                ));
            }
        } else if let Some(r) = repository
            && let Some(c) = self.repositories.iter().find(|c| c.repository == r)
        {
            let t = |x: Option<Timestamp>| x.map_or_else(|| "-".into(), |t| t.rfc3339());
            out.push((
                "cached".into(),
                format!(
                    "{} manifests, {} blobs ({} expired); first {}, last {}; next expiry {}",
                    c.manifests,
                    c.blobs,
                    c.expired,
                    t(c.first_cached),
                    t(c.last_cached),
                    t(c.next_expiry)
                ),
            ));
        }
        out
    }
}
