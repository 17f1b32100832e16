//! Retention plans: a policy's decisions turned into the same [`Plan`] document the GC uses,
//! with exact byte accounting, so one apply engine (re-checks, journal, quarantine) runs both.
//!
//! Accounting is exact reference counting over the whole storage, as the registry stores each
//! blob once and links it into repositories (`shared/spec/retention.md` §5.4 item 8):
//! - `reclaimable_after_gc`: blobs the registry's mark (every remaining revision of every
//!   repository) reaches now and no longer reaches once the plan's manifests are gone; these
//!   are the plan's `blobs`, deleted by `apply --gc`, and the apply's freed bytes equal this;
//! - `already_orphaned`: blobs no revision reaches even before the plan (what `stowage gc`
//!   frees anyway; why GC frees more than retention);
//! - `shared_kept`: blobs the deleted images reference that something kept still needs;
//! - `unlinked`: per repository, blobs its deleted images referenced that its remaining images
//!   do not (the repository stops granting them even when another repository keeps them).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, LinkKind, RefRole};
use stowage_model::time::Timestamp;
use stowage_policy::eval::{Decision, ImageOutcome, LoadedSource, Outcome};
use stowage_policy::file::InUse;
use stowage_storage::Storage;

use crate::gc::GcOptions;
use crate::plan::{
    BlobAction, HeldBack, LinkAction, ManifestAction, PLAN_SCHEMA, Plan, TagAction, TagIndexAction,
};

/// The retention part of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// The policy file as given.
    pub policy: String,
    pub policy_sha256: String,
    pub policy_name: String,
    pub time_source: String,
    /// Apply refuses the plan after this.
    pub expires_at: Timestamp,
    /// Hash of every repository's tag -> digest bindings when planning.
    pub fingerprint: String,
    pub in_use_sources: Vec<SourceRecord>,
    pub bytes: RetentionBytes,
    pub repositories: Vec<RepositoryBytes>,
    pub rules: Vec<RuleBytes>,
    /// Limits crossed or unsafe results: apply refuses the plan.
    pub rails_blocked: Vec<String>,
    pub warnings: Vec<String>,
    /// Every top-level image, its decision and the reasons.
    pub images: Vec<ImageRecord>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBytes {
    pub reclaimable_after_gc: u64,
    pub already_orphaned: u64,
    pub shared_kept: u64,
    pub unlinked: u64,
    pub images_deleted: u64,
    pub images_untagged: u64,
    pub images_kept: u64,
    pub tags_removed: u64,
    pub manifests_deleted: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryBytes {
    pub repository: String,
    pub images: u64,
    pub images_deleted: u64,
    pub tags_removed: u64,
    /// Freed blobs only this repository's deleted images referenced.
    pub bytes_freed: u64,
    pub bytes_unlinked: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBytes {
    /// `policy/rule`, `policy/otherwise`, or `(several rules)` for bytes shared by images
    /// deleted under different rules.
    pub rule: String,
    pub images: u64,
    pub bytes_freed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub modified: Option<Timestamp>,
    pub refs: u64,
    pub resolved: u64,
    pub unresolved: Vec<String>,
    pub problem: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRecord {
    pub tag: String,
    /// `keep` or `remove`.
    pub decision: String,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CascadeRecord {
    pub digest: Digest,
    pub role: String,
    /// `delete` or `keep`.
    pub decision: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    pub repository: String,
    pub digest: Digest,
    /// `image`, `index`, `referrer`, `unknown`.
    pub kind: String,
    /// By the policy's time source (`None`: unknown).
    pub time: Option<Timestamp>,
    pub pushed: Timestamp,
    /// `keep`, `untag` (digest stays, some tags go), `delete`.
    pub decision: String,
    pub reasons: Vec<String>,
    pub tags: Vec<TagRecord>,
    pub cascade: Vec<CascadeRecord>,
    /// Bytes of everything the image references (with cascades), shared or not.
    pub bytes: u64,
    /// Bytes freed after GC that only this deleted image referenced.
    pub bytes_freed: u64,
}

/// Read the in-use sources a policy names (paths relative to the policy file's directory).
pub fn load_sources(in_use: Option<&InUse>, policy_dir: &Path) -> Vec<LoadedSource> {
    let Some(u) = in_use else { return Vec::new() };
    u.sources
        .iter()
        .map(|s| {
            let path = policy_dir.join(&s.path);
            let shown = path.display().to_string();
            let (refs, modified, sha) = match std::fs::read(&path) {
                Err(e) => (
                    Err(format!("cannot read {shown}: {e}")),
                    None,
                    String::new(),
                ),
                Ok(bytes) => {
                    use sha2::Digest as _;
                    let sha: String = sha2::Sha256::digest(&bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let modified = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .map(Timestamp::from_system_time);
                    let refs = match String::from_utf8(bytes) {
                        Ok(text) => stowage_policy::refs::parse_source(s.format, &text)
                            .map_err(|e| format!("{shown}: {e}")),
                        Err(_) => Err(format!("{shown}: not UTF-8 text")),
                    };
                    (refs, modified, sha)
                }
            };
            LoadedSource {
                name: s.name.clone(),
                path: shown,
                refs,
                modified,
                sha256: sha,
            }
        })
        .collect()
}

/// The image config `created` of every top-level manifest (newest platform for an index):
/// one bounded read per config blob. Unreadable or absent: unknown.
pub fn load_created(storage: &dyn Storage, g: &Graph<'_>) -> HashMap<BlobId, Timestamp> {
    let inv = g.inv;
    let mut config_time: HashMap<BlobId, Option<Timestamp>> = HashMap::new();
    let mut read_config = |id: BlobId| -> Option<Timestamp> {
        *config_time.entry(id).or_insert_with(|| {
            let h = inv.blob(id)?.digest;
            let bytes = storage.read(&stowage_layout::blob_data(&h), 4 << 20).ok()?;
            let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            Timestamp::parse_rfc3339(v.get("created")?.as_str()?)
        })
    };
    let mut out = HashMap::new();
    for m in &inv.manifests {
        let config = |m: &stowage_model::inventory::ManifestRecord| {
            inv.refs_of(m)
                .iter()
                .find(|r| r.role() == RefRole::Config)
                .map(|r| r.id())
        };
        let t = match config(m) {
            Some(c) => read_config(c),
            None => inv
                .children_of(m)
                .filter_map(|c| g.manifest(c).and_then(config))
                .filter_map(&mut read_config)
                .max(),
        };
        if let Some(t) = t {
            out.insert(m.id, t);
        }
    }
    out
}

/// Closure of `roots` (everything they reference, transitively) as a set.
fn closure(g: &Graph<'_>, roots: impl IntoIterator<Item = BlobId>) -> HashSet<BlobId> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut stack: Vec<BlobId> = roots.into_iter().filter(|r| seen.insert(*r)).collect();
    while let Some(x) = stack.pop() {
        for c in g.refs(x) {
            if seen.insert(c) {
                stack.push(c);
            }
        }
    }
    seen
}

/// What the plan builder needs besides the evaluation.
pub struct RetentionInputs<'a> {
    pub policy_path: &'a str,
    pub policy_text: &'a str,
    pub policy_name: &'a str,
    pub time_source: &'a str,
    pub now: Timestamp,
    /// Plan validity (default 24h).
    pub expires_seconds: i64,
    pub untag: bool,
    /// `limits.max_bytes_freed`: a plan freeing more is blocked.
    pub max_bytes_freed: Option<u64>,
}

/// Turn an evaluation into a plan.
pub fn build(g: &Graph<'_>, outcome: &Outcome, ri: &RetentionInputs<'_>) -> Plan {
    let inv = g.inv;
    let name = |r: u32| inv.repositories[r as usize].name.to_string();
    // Deleted (repo, digest): top-level plus cascades.
    let mut deleted: BTreeSet<(u32, BlobId)> = BTreeSet::new();
    let mut manifests: Vec<ManifestAction> = Vec::new();
    let mut tags: Vec<TagAction> = Vec::new();
    let push_tag =
        |tags: &mut Vec<TagAction>, repo: u32, t: &stowage_policy::eval::TagOutcome, d: BlobId| {
            tags.push(TagAction {
                repository: name(repo),
                tag: t.tag.clone(),
                digest: inv.digest(d),
                current_modified: t.current_modified,
                reasons: t.reasons.clone(),
            });
        };
    for im in &outcome.images {
        let repo = &inv.repositories[im.repo as usize];
        for t in im.tags.iter().filter(|t| t.remove) {
            push_tag(&mut tags, im.repo, t, im.digest);
        }
        if im.decision == Decision::Delete {
            deleted.insert((im.repo, im.digest));
            manifests.push(ManifestAction {
                repository: name(im.repo),
                digest: inv.digest(im.digest),
                modified: repo
                    .revision(im.digest)
                    .map(|l| l.modified())
                    .unwrap_or_default(),
                reason: im.reasons.first().cloned().unwrap_or_default(),
            });
            for c in im.cascade.iter().filter(|c| c.delete) {
                if !deleted.insert((im.repo, c.digest)) {
                    continue;
                }
                for t in c.tags.iter().filter(|t| t.remove) {
                    push_tag(&mut tags, im.repo, t, c.digest);
                }
                manifests.push(ManifestAction {
                    repository: name(im.repo),
                    digest: inv.digest(c.digest),
                    modified: repo
                        .revision(c.digest)
                        .map(|l| l.modified())
                        .unwrap_or_default(),
                    reason: format!("cascade: {}", c.reason),
                });
            }
        }
    }
    tags.sort();
    tags.dedup_by(|a, b| a.repository == b.repository && a.tag == b.tag);
    manifests.sort();
    let removed_tags: BTreeSet<(String, String)> = tags
        .iter()
        .map(|t| (t.repository.clone(), t.tag.clone()))
        .collect();
    // History entries of remaining tags that name a deleted manifest (the registry's GC
    // removes those with the manifest).
    let mut tag_index_entries = Vec::new();
    for &(r, d) in &deleted {
        let repo = &inv.repositories[r as usize];
        for t in &repo.tags {
            if removed_tags.contains(&(repo.name.to_string(), t.name.to_string())) {
                continue;
            }
            if repo.history(t).iter().any(|l| l.target() == d) {
                tag_index_entries.push(TagIndexAction {
                    repository: repo.name.to_string(),
                    tag: t.name.to_string(),
                    digest: inv.digest(d),
                    reason: "untagged-manifest".into(),
                });
            }
        }
    }
    tag_index_entries.sort();

    // Marks before and after (the registry's mark: every revision of every repository).
    let mut before_roots = Vec::new();
    let mut after_roots = Vec::new();
    for (ri_, r) in inv.repositories.iter().enumerate() {
        for l in &r.revisions {
            before_roots.push(l.target());
            if !deleted.contains(&(ri_ as u32, l.target())) {
                after_roots.push(l.target());
            }
        }
        for o in &r.odd_links {
            if o.kind == LinkKind::Revision
                && let Some(id) = o.content.as_ref().and_then(|d| inv.id_of(d))
            {
                before_roots.push(id);
                after_roots.push(id);
            }
        }
    }
    let before = g.mark(before_roots, false);
    let after = g.mark(after_roots, false);
    let mut blobs = Vec::new();
    let mut bytes = RetentionBytes::default();
    let mut freed: HashSet<BlobId> = HashSet::new();
    let blocked_scan = !inv.unlisted.is_empty() || inv.repositories.iter().any(|r| !r.complete);
    for (i, b) in inv.blobs.iter().enumerate() {
        if !before[i] {
            bytes.already_orphaned += b.size;
        } else if !after[i] {
            freed.insert(i as BlobId);
            bytes.reclaimable_after_gc += b.size;
            blobs.push(BlobAction {
                digest: inv.digest(i as BlobId),
                size: b.size,
                modified: b.modified(),
                reason: "retention".into(),
            });
        }
    }
    let mut blocked = Vec::new();
    if blocked_scan {
        blocked.push(
            "no blob is planned for deletion: the scan could not read every repository or namespace (apply --gc will not collect blobs); manifests in incomplete repositories are kept".into(),
        );
        blobs.clear();
    }
    // Layer links of freed blobs (tidy: the registry 2.8 leaves them dangling).
    let mut layer_links = Vec::new();
    if !blocked_scan {
        for r in &inv.repositories {
            for l in &r.layers {
                if freed.contains(&l.target()) {
                    layer_links.push(LinkAction {
                        repository: r.name.to_string(),
                        digest: inv.digest(l.target()),
                        reason: "blob-deleted".into(),
                    });
                }
            }
        }
    }

    // Blob fan-out directories (`blobs/sha256/<hh>`) this plan empties: removed only if
    // empty when apply reaches them.
    let mut empty_dirs = Vec::new();
    if !blobs.is_empty() {
        let mut per_shard: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
        for (i, b) in inv.blobs.iter().enumerate() {
            let e = per_shard.entry(b.digest.0[0]).or_default();
            e.0 += 1;
            if freed.contains(&(i as BlobId)) {
                e.1 += 1;
            }
        }
        for (shard, (all, gone)) in per_shard {
            if all == gone {
                empty_dirs.push(format!("blobs/sha256/{shard:02x}"));
            }
        }
    }

    // Per image closures, owners of freed blobs, shared bytes, per repository unlinked.
    let mut owners: HashMap<BlobId, Vec<usize>> = HashMap::new();
    let mut image_bytes: Vec<u64> = vec![0; outcome.images.len()];
    let mut all_deleted_closure: HashSet<BlobId> = HashSet::new();
    let mut deleted_closure_by_repo: BTreeMap<u32, HashSet<BlobId>> = BTreeMap::new();
    for (k, im) in outcome.images.iter().enumerate() {
        let roots: Vec<BlobId> = std::iter::once(im.digest)
            .chain(im.cascade.iter().map(|c| c.digest))
            .collect();
        let cl = closure(g, roots);
        image_bytes[k] = cl.iter().map(|&b| g.size(b)).sum();
        if im.decision == Decision::Delete {
            for &b in &cl {
                if freed.contains(&b) {
                    owners.entry(b).or_default().push(k);
                }
            }
            deleted_closure_by_repo
                .entry(im.repo)
                .or_default()
                .extend(cl.iter().copied());
            all_deleted_closure.extend(cl);
        }
    }
    bytes.shared_kept = all_deleted_closure
        .iter()
        .filter(|&&b| inv.is_present(b) && after[b as usize])
        .map(|&b| g.size(b))
        .sum();
    let mut repos: BTreeMap<u32, RepositoryBytes> = BTreeMap::new();
    for im in outcome.images.iter().filter(|i| i.kind != "referrer") {
        let e = repos.entry(im.repo).or_default();
        e.images += 1;
        if im.decision == Decision::Delete {
            e.images_deleted += 1;
        }
    }
    for t in &tags {
        if let Some(ri_) = inv
            .repositories
            .iter()
            .position(|r| r.name.as_str() == t.repository)
        {
            repos.entry(ri_ as u32).or_default().tags_removed += 1;
        }
    }
    for (&r, dcl) in &deleted_closure_by_repo {
        let repo = &inv.repositories[r as usize];
        let remaining = closure(
            g,
            repo.revisions
                .iter()
                .map(|l| l.target())
                .filter(|d| !deleted.contains(&(r, *d))),
        );
        let unlinked: u64 = dcl
            .iter()
            .filter(|b| !remaining.contains(b))
            .map(|&b| g.size(b))
            .sum();
        repos.entry(r).or_default().bytes_unlinked = unlinked;
        bytes.unlinked += unlinked;
    }
    let mut per_image_freed: Vec<u64> = vec![0; outcome.images.len()];
    let mut rules: BTreeMap<String, RuleBytes> = BTreeMap::new();
    let first_rule = |im: &ImageOutcome| -> String {
        im.reasons
            .first()
            .map(|r| {
                r.trim_start_matches("delete: ")
                    .split(" (tag ")
                    .next()
                    .unwrap_or(r)
                    .to_string()
            })
            .unwrap_or_default()
    };
    for im in outcome
        .images
        .iter()
        .filter(|i| i.decision == Decision::Delete)
    {
        let e = rules.entry(first_rule(im)).or_default();
        e.images += 1;
    }
    let mut several_repos = 0u64;
    for (&b, ks) in &owners {
        let size = g.size(b);
        if ks.len() == 1 {
            per_image_freed[ks[0]] += size;
        }
        let rs: BTreeSet<u32> = ks.iter().map(|&k| outcome.images[k].repo).collect();
        if rs.len() == 1 {
            repos
                .entry(*rs.iter().next().unwrap_or(&0))
                .or_default()
                .bytes_freed += size;
        } else {
            several_repos += size;
        }
        let names: BTreeSet<String> = ks.iter().map(|&k| first_rule(&outcome.images[k])).collect();
        let key = if names.len() == 1 {
            names.into_iter().next().unwrap_or_default()
        } else {
            "(several rules)".to_string()
        };
        rules.entry(key).or_default().bytes_freed += size;
    }
    let mut repositories: Vec<RepositoryBytes> = repos
        .into_iter()
        .map(|(r, mut b)| {
            b.repository = name(r);
            b
        })
        .collect();
    if several_repos > 0 {
        repositories.push(RepositoryBytes {
            repository: "(several repositories)".into(),
            bytes_freed: several_repos,
            ..Default::default()
        });
    }
    let rules: Vec<RuleBytes> = rules
        .into_iter()
        .map(|(k, mut v)| {
            v.rule = k;
            v
        })
        .collect();

    let images: Vec<ImageRecord> = outcome
        .images
        .iter()
        .enumerate()
        .map(|(k, im)| ImageRecord {
            repository: name(im.repo),
            digest: inv.digest(im.digest),
            kind: im.kind.into(),
            time: im.time,
            pushed: im.pushed,
            decision: im.decision.as_str().into(),
            reasons: im.reasons.clone(),
            tags: im
                .tags
                .iter()
                .map(|t| TagRecord {
                    tag: t.tag.clone(),
                    decision: if t.remove { "remove" } else { "keep" }.into(),
                    reasons: t.reasons.clone(),
                })
                .collect(),
            cascade: im
                .cascade
                .iter()
                .map(|c| CascadeRecord {
                    digest: inv.digest(c.digest),
                    role: c.role.into(),
                    decision: if c.delete { "delete" } else { "keep" }.into(),
                    reason: c.reason.clone(),
                })
                .collect(),
            bytes: image_bytes[k],
            bytes_freed: per_image_freed[k],
        })
        .collect();
    for im in &images {
        match im.decision.as_str() {
            "delete" => bytes.images_deleted += 1,
            "untag" => bytes.images_untagged += 1,
            _ => bytes.images_kept += 1,
        }
    }
    bytes.tags_removed = tags.len() as u64;
    bytes.manifests_deleted = manifests.len() as u64;

    let mut rails_blocked = outcome.blocked.clone();
    if let Some(max) = ri.max_bytes_freed
        && bytes.reclaimable_after_gc > max
    {
        rails_blocked.push(format!(
            "{} bytes would be freed, more than limits.max_bytes_freed {max}",
            bytes.reclaimable_after_gc
        ));
    }
    rails_blocked.sort();
    let fingerprint = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for r in &inv.repositories {
            for t in &r.tags {
                let target = t
                    .current
                    .and_then(|c| c.target)
                    .map(|d| inv.digest(d).to_string())
                    .unwrap_or_default();
                h.update(format!("{}\t{}\t{}\n", r.name, t.name, target).as_bytes());
            }
        }
        hex(&h.finalize())
    };
    let policy_sha256 = {
        use sha2::Digest as _;
        hex(&sha2::Sha256::digest(ri.policy_text.as_bytes()))
    };
    let blob_bytes: u64 = blobs.iter().map(|b| b.size).sum();
    let retention = Retention {
        policy: ri.policy_path.into(),
        policy_sha256,
        policy_name: ri.policy_name.into(),
        time_source: ri.time_source.into(),
        expires_at: Timestamp(
            ri.now
                .0
                .saturating_add(ri.expires_seconds.saturating_mul(1_000_000_000)),
        ),
        fingerprint,
        in_use_sources: outcome
            .sources
            .iter()
            .map(|s| SourceRecord {
                name: s.name.clone(),
                path: s.path.clone(),
                sha256: s.sha256.clone(),
                modified: s.modified,
                refs: s.refs,
                resolved: s.resolved,
                unresolved: s.unresolved.clone(),
                problem: s.problem.clone(),
            })
            .collect(),
        bytes,
        repositories,
        rules,
        rails_blocked,
        warnings: outcome.warnings.clone(),
        images,
    };
    let _ = ri.untag;
    Plan {
        schema: PLAN_SCHEMA.into(),
        kind: "retention".into(),
        created_at: ri.now,
        storage: inv.root.clone(),
        options: GcOptions {
            delete_untagged: false,
            grace_seconds: 0,
            uploads_older_than_seconds: None,
            dangling_links: true,
            empty_dirs: false,
        },
        bytes: blob_bytes,
        blob_bytes,
        upload_bytes: 0,
        manifests,
        tag_index_entries,
        layer_links,
        blobs,
        uploads: Vec::new(),
        empty_dirs,
        held_back: HeldBack::default(),
        kept_unlike_registry: Vec::new(),
        manifests_kept_unlike_registry: Vec::new(),
        blocked,
        tags,
        retention: Some(Box::new(retention)),
        listing: None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Protections that hold over a (fresh) scan, by name, for [`crate::apply::apply_checked`].
pub fn live_protection(g: &Graph<'_>, outcome: &Outcome) -> crate::apply::LiveProtection {
    let inv = g.inv;
    let mut lp = crate::apply::LiveProtection::default();
    for ((r, d), reasons) in &outcome.protected_digests {
        lp.digests.insert(
            (
                inv.repositories[*r as usize].name.to_string(),
                inv.digest(*d),
            ),
            reasons.clone(),
        );
    }
    for ((r, t), reasons) in &outcome.protected_tags {
        lp.tags.insert(
            (inv.repositories[*r as usize].name.to_string(), t.clone()),
            reasons.clone(),
        );
    }
    lp
}
