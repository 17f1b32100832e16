//! The three surgery planners (pure: a scanned graph, the request and `now` in, a plan out).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, Inventory, Repository};
use stowage_model::pattern::{self, GlobOptions};
use stowage_model::time::Timestamp;

use super::{
    LinkCreation, LinkKind, Operation, RepositoryState, Surgery, SurgeryError, check_name,
};
use crate::gc::{self, GcOptions};
use crate::plan::{
    BlobAction, HeldBack, Kept, ManifestAction, PLAN_SCHEMA, Plan, Reason, TagAction,
    TagIndexAction,
};

/// What a surgery plan is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurgeryOptions {
    /// Blobs (and, for tag-delete, manifests) written more recently than this are not
    /// planned for collection, as in `gc`: they may belong to a push in progress.
    pub grace_seconds: i64,
}

impl Default for SurgeryOptions {
    fn default() -> Self {
        SurgeryOptions {
            grace_seconds: GcOptions::default().grace_seconds,
        }
    }
}

/// `stowage plan repo-delete PATTERN...`: every repository a pattern names (a name, or a
/// glob where `*` stays within one component and `**` crosses them).
pub fn repo_delete(
    g: &Graph<'_>,
    patterns: &[String],
    opts: &SurgeryOptions,
    now: Timestamp,
) -> Result<Plan, SurgeryError> {
    let inv = g.inv;
    let selected = select(inv, patterns)?;
    let repos: Vec<&Repository> = selected.iter().filter_map(|n| inv.repository(n)).collect();
    for r in &repos {
        if !r.complete {
            return Err(SurgeryError::Incomplete(r.name.to_string()));
        }
    }
    let mut after = inv.clone();
    after
        .repositories
        .retain(|r| !selected.contains(r.name.as_str()));
    let gc_opts = GcOptions {
        grace_seconds: opts.grace_seconds,
        ..GcOptions::default()
    };
    let acc = account(g, &after, &gc_opts, now);
    // What the repositories use: everything their manifests reach, and their layer links.
    let mut roots: Vec<BlobId> = Vec::new();
    for r in &repos {
        roots.extend(r.revisions.iter().map(|l| l.target()));
        roots.extend(
            r.tags
                .iter()
                .filter_map(|t| t.current.and_then(|c| c.target)),
        );
    }
    let mut used = g.mark(roots, true);
    for r in &repos {
        for l in &r.layers {
            used[l.target() as usize] = true;
        }
    }
    let (shared, shared_bytes) = shared_blobs(inv, &used, &acc);
    let surgery = Surgery {
        operation: Operation::RepoDelete,
        requested: patterns.to_vec(),
        source: None,
        destination: None,
        links: Vec::new(),
        repositories: repos.iter().map(|r| RepositoryState::of(inv, r)).collect(),
        nested_kept: nested_kept(inv, &selected),
        merged_tags: Vec::new(),
        shared,
        shared_bytes,
    };
    let mut plan = plan_with(inv, surgery, acc, &gc_opts, now);
    plan.empty_dirs = with_shards(emptied_dirs(inv, &selected), &plan.blobs);
    Ok(plan)
}

/// `stowage plan repo-move SRC DST` (`copy`: the source stays).
pub fn repo_move(
    g: &Graph<'_>,
    src: &str,
    dst: &str,
    copy: bool,
    merge: bool,
    opts: &SurgeryOptions,
    now: Timestamp,
) -> Result<Plan, SurgeryError> {
    let inv = g.inv;
    check_name(src)?;
    check_name(dst)?;
    if src == dst {
        return Err(SurgeryError::SameRepository {
            src: src.into(),
            dst: dst.into(),
            why: "the same repository",
        });
    }
    let s = inv
        .repository(src)
        .ok_or_else(|| SurgeryError::NoSuchRepository(src.into()))?;
    if !s.complete {
        return Err(SurgeryError::Incomplete(src.into()));
    }
    faithful(inv, s)?;
    let d = inv.repository(dst);
    let mut merged = Vec::new();
    if let Some(d) = d {
        let mut collisions = Vec::new();
        for t in &s.tags {
            if let Some(dt) = d.tag(&t.name) {
                let target = |t: &stowage_model::inventory::Tag| t.current.and_then(|c| c.target);
                if target(dt).is_some() && target(dt) == target(t) {
                    merged.push(t.name.to_string());
                } else {
                    collisions.push(t.name.to_string());
                }
            }
        }
        if !merge {
            return Err(SurgeryError::DestinationExists {
                src: src.into(),
                dst: dst.into(),
                collisions,
            });
        }
        if !collisions.is_empty() {
            return Err(SurgeryError::Collisions {
                src: src.into(),
                dst: dst.into(),
                collisions,
            });
        }
        if !d.complete {
            return Err(SurgeryError::Incomplete(dst.into()));
        }
    }
    let links = links_to_create(g, s, dst, &merged);
    let selected: BTreeSet<String> = [src.to_string()].into();
    let surgery = Surgery {
        operation: if copy {
            Operation::RepoCopy
        } else {
            Operation::RepoMove
        },
        requested: vec![src.into(), dst.into()],
        source: Some(RepositoryState::of(inv, s)),
        destination: Some(dst.into()),
        links,
        repositories: if copy {
            Vec::new()
        } else {
            vec![RepositoryState::of(inv, s)]
        },
        nested_kept: nested_kept(inv, &selected),
        merged_tags: merged,
        shared: Vec::new(),
        shared_bytes: 0,
    };
    let gc_opts = GcOptions {
        grace_seconds: opts.grace_seconds,
        ..GcOptions::default()
    };
    let mut plan = plan_with(inv, surgery, Accounting::default(), &gc_opts, now);
    if !copy {
        // The destination's own directory (or its parents) may be among these: `rmdir`
        // removes only what is empty when apply reaches it.
        plan.empty_dirs = emptied_dirs(inv, &selected);
    }
    Ok(plan)
}

/// `stowage plan tag-delete REPO:TAG...`: the tags alone; the manifests stay.
pub fn tag_delete(
    g: &Graph<'_>,
    refs: &[String],
    opts: &SurgeryOptions,
    now: Timestamp,
) -> Result<Plan, SurgeryError> {
    let inv = g.inv;
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in refs {
        let (repo, tag) = r
            .rsplit_once(':')
            .ok_or_else(|| SurgeryError::BadReference(r.clone()))?;
        check_name(repo)?;
        if !stowage_model::name::is_valid_tag(tag) {
            return Err(SurgeryError::BadReference(r.clone()));
        }
        wanted.entry(repo.into()).or_default().insert(tag.into());
    }
    let mut tags = Vec::new();
    let mut roots = Vec::new();
    for (repo, names) in &wanted {
        let r = inv
            .repository(repo)
            .ok_or_else(|| SurgeryError::NoSuchRepository(repo.clone()))?;
        if !r.complete {
            return Err(SurgeryError::Incomplete(repo.clone()));
        }
        for name in names {
            let no_tag = || SurgeryError::NoSuchTag {
                repository: repo.clone(),
                tag: name.clone(),
            };
            let t = r.tag(name).ok_or_else(no_tag)?;
            let cur = t.current.ok_or_else(no_tag)?;
            let id = cur.target.ok_or_else(|| SurgeryError::Unfaithful {
                repository: repo.clone(),
                why: format!("tag {name:?} has no readable current link"),
            })?;
            roots.push(id);
            tags.push(TagAction {
                repository: repo.clone(),
                tag: name.clone(),
                digest: inv.digest(id),
                current_modified: cur.modified,
                reasons: vec!["tag-delete".into()],
                orphan_of: None,
            });
        }
    }
    let mut after = inv.clone();
    for r in after.repositories.iter_mut() {
        if let Some(names) = wanted.get(r.name.as_str()) {
            r.tags.retain(|t| !names.contains(t.name.as_str()));
        }
    }
    let gc_opts = GcOptions {
        delete_untagged: true,
        grace_seconds: opts.grace_seconds,
        ..GcOptions::default()
    };
    let acc = account(g, &after, &gc_opts, now);
    let used = g.mark(roots, true);
    let (shared, shared_bytes) = shared_blobs(inv, &used, &acc);
    let surgery = Surgery {
        operation: Operation::TagDelete,
        requested: refs.to_vec(),
        source: None,
        destination: None,
        links: Vec::new(),
        repositories: Vec::new(),
        nested_kept: Vec::new(),
        merged_tags: Vec::new(),
        shared,
        shared_bytes,
    };
    let mut plan = plan_with(inv, surgery, acc, &gc_opts, now);
    plan.tags = tags;
    plan.empty_dirs = with_shards(Vec::new(), &plan.blobs);
    Ok(plan)
}

/// The repositories the patterns name, each pattern naming at least one.
fn select(inv: &Inventory, patterns: &[String]) -> Result<BTreeSet<String>, SurgeryError> {
    let mut out = BTreeSet::new();
    for p in patterns {
        if p.split('/').any(|c| c == "." || c == "..") {
            return Err(SurgeryError::BadName {
                name: p.clone(),
                why: "a . or .. component".into(),
            });
        }
        if p.contains(['*', '?', '[', '{']) {
            let m = pattern::glob(
                p,
                GlobOptions {
                    literal_separator: true,
                    ..GlobOptions::default()
                },
            )?
            .compile_matcher();
            let mut any = false;
            for r in &inv.repositories {
                if m.is_match(r.name.as_str()) {
                    any = true;
                    out.insert(r.name.to_string());
                }
            }
            if !any {
                return Err(SurgeryError::NoMatch(p.clone()));
            }
        } else {
            check_name(p)?;
            if inv.repository(p).is_none() {
                return Err(SurgeryError::NoSuchRepository(p.clone()));
            }
            out.insert(p.clone());
        }
    }
    Ok(out)
}

/// Repositories below a selected one that are not selected themselves.
fn nested_kept(inv: &Inventory, selected: &BTreeSet<String>) -> Vec<String> {
    inv.repositories
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| !selected.contains(*n))
        .filter(|n| {
            selected.iter().any(|s| {
                n.strip_prefix(s.as_str())
                    .is_some_and(|t| t.starts_with('/'))
            })
        })
        .map(str::to_string)
        .collect()
}

/// The directories of removed repositories and their parents up to `repositories/`,
/// deepest first: removed at the end of apply only if empty then (a kept nested repository
/// or anything else keeps its directory and every parent).
fn emptied_dirs(inv: &Inventory, selected: &BTreeSet<String>) -> Vec<String> {
    let kept: Vec<&str> = inv
        .repositories
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| !selected.contains(*n))
        .collect();
    let mut dirs: BTreeSet<(usize, String)> = BTreeSet::new();
    for s in selected {
        let mut name = s.as_str();
        loop {
            let holds_kept = kept
                .iter()
                .any(|k| *k == name || k.strip_prefix(name).is_some_and(|t| t.starts_with('/')));
            if holds_kept {
                break;
            }
            dirs.insert((usize::MAX - name.matches('/').count(), name.to_string()));
            match name.rsplit_once('/') {
                Some((parent, _)) => name = parent,
                None => break,
            }
        }
    }
    dirs.into_iter()
        .map(|(_, n)| stowage_layout::repository_dir(&n))
        .collect()
}

/// `dirs` and the blob fan-out directories the freed blobs leave empty (`rmdir` at the end
/// of apply removes only those that are), deepest first as gc orders them: what the
/// registry's GC leaves behind and `check` reports, not left by a surgery with `--gc`.
fn with_shards(dirs: Vec<String>, blobs: &[BlobAction]) -> Vec<String> {
    let mut all: BTreeSet<String> = dirs.into_iter().collect();
    for h in blobs.iter().filter_map(|b| b.digest.sha256()) {
        if let Some((shard, _)) = stowage_layout::blob_dir(&h).rsplit_once('/') {
            all.insert(shard.to_string());
        }
    }
    let mut out: Vec<String> = all.into_iter().collect();
    out.sort_by(|a, b| {
        b.matches('/')
            .count()
            .cmp(&a.matches('/').count())
            .then_with(|| a.cmp(b))
    });
    out
}

/// A source whose links are not all plain (alias or odd links, a tag without a readable
/// current link) cannot be re-created link for link.
fn faithful(inv: &Inventory, s: &Repository) -> Result<(), SurgeryError> {
    let bad = |why: String| SurgeryError::Unfaithful {
        repository: s.name.to_string(),
        why,
    };
    if !s.odd_links.is_empty() {
        return Err(bad(format!(
            "{} link(s) whose content is not the digest their path names (stowage check lists them)",
            s.odd_links.len()
        )));
    }
    if !s.aliases.is_empty() {
        return Err(bad("non-sha256 _layers alias links".into()));
    }
    for t in &s.tags {
        if t.current.and_then(|c| c.target).is_none() {
            return Err(bad(format!(
                "tag {:?} has no readable current link",
                t.name
            )));
        }
    }
    let _ = inv;
    Ok(())
}

/// The links `dst` needs for `s` (all its layer and revision links; the tag links it lacks),
/// in the order apply writes them: layers, then single
/// manifests, then indexes (their children are linked by then), then tag history, then
/// each tag's current link.
fn links_to_create(
    g: &Graph<'_>,
    s: &Repository,
    dst: &str,
    merged: &[String],
) -> Vec<LinkCreation> {
    let inv = g.inv;
    let link = |kind, tag: Option<&str>, id: BlobId| LinkCreation {
        repository: dst.to_string(),
        kind,
        tag: tag.map(str::to_string),
        digest: inv.digest(id),
    };
    let mut out = Vec::new();
    // Every layer and revision link of the source, even those the destination has now
    // (a merge): apply counts an identical existing link as done and writes it again if it
    // was removed since the plan, so a tag is never written over a manifest the destination
    // lost in between (review finding 1).
    for l in &s.layers {
        out.push(link(LinkKind::Layer, None, l.target()));
    }
    let (mut singles, mut indexes) = (Vec::new(), Vec::new());
    for l in &s.revisions {
        let has_children = g.children(l.target()).next().is_some();
        let v = if has_children {
            &mut indexes
        } else {
            &mut singles
        };
        v.push(link(LinkKind::Revision, None, l.target()));
    }
    out.append(&mut singles);
    out.append(&mut indexes);
    let tags: Vec<_> = s
        .tags
        .iter()
        .filter(|t| !merged.iter().any(|m| m == t.name.as_str()))
        .collect();
    for t in &tags {
        for h in s.history(t) {
            out.push(link(LinkKind::TagIndex, Some(&t.name), h.target()));
        }
    }
    for t in &tags {
        if let Some(id) = t.current.and_then(|c| c.target) {
            out.push(link(LinkKind::TagCurrent, Some(&t.name), id));
        }
    }
    out
}

/// What the surgery frees: gc over the storage without what it removes, minus gc over the
/// storage as it is.
#[derive(Default)]
struct Accounting {
    blobs: Vec<BlobAction>,
    manifests: Vec<ManifestAction>,
    tag_index_entries: Vec<TagIndexAction>,
    held: HeldBack,
    blocked: Vec<String>,
}

fn account(g: &Graph<'_>, after: &Inventory, opts: &GcOptions, now: Timestamp) -> Accounting {
    let before = gc::build(g, opts, now);
    let ga = Graph::new(after);
    let then = gc::build(&ga, opts, now);
    let old_blobs: HashSet<&Digest> = before.blobs.iter().map(|b| &b.digest).collect();
    let old_held: HashSet<&Digest> = before.held_back.blobs.iter().map(|b| &b.digest).collect();
    let old_manifests: HashSet<(&str, &Digest)> = before
        .manifests
        .iter()
        .map(|m| (m.repository.as_str(), &m.digest))
        .collect();
    let old_entries: HashSet<(&str, &str, &Digest)> = before
        .tag_index_entries
        .iter()
        .map(|t| (t.repository.as_str(), t.tag.as_str(), &t.digest))
        .collect();
    let freed: Reason = "freed".into();
    let blobs: Vec<BlobAction> = then
        .blobs
        .iter()
        .filter(|b| !old_blobs.contains(&b.digest))
        .map(|b| BlobAction {
            reason: freed.clone(),
            ..b.clone()
        })
        .collect();
    let mut held = HeldBack::default();
    held.blobs = then
        .held_back
        .blobs
        .iter()
        .filter(|b| !old_held.contains(&b.digest))
        .cloned()
        .collect();
    held.blob_bytes = held.blobs.iter().map(|b| b.size).sum();
    let manifests = then
        .manifests
        .iter()
        .filter(|m| !old_manifests.contains(&(m.repository.as_str(), &m.digest)))
        .cloned()
        .collect();
    let tag_index_entries = then
        .tag_index_entries
        .iter()
        .filter(|t| !old_entries.contains(&(t.repository.as_str(), t.tag.as_str(), &t.digest)))
        .cloned()
        .collect();
    Accounting {
        blobs,
        manifests,
        tag_index_entries,
        held,
        blocked: then.blocked,
    }
}

/// Blobs in `used` that stay: not freed (needed by what remains) or held back.
fn shared_blobs(inv: &Inventory, used: &[bool], acc: &Accounting) -> (Vec<Kept>, u64) {
    let freed: HashSet<&Digest> = acc.blobs.iter().map(|b| &b.digest).collect();
    let held: HashSet<&Digest> = acc.held.blobs.iter().map(|b| &b.digest).collect();
    let mut out = Vec::new();
    for (i, &u) in used.iter().enumerate() {
        let id = i as BlobId;
        let Some(b) = u.then(|| inv.blob(id)).flatten() else {
            continue;
        };
        let d = inv.digest(id);
        if freed.contains(&d) {
            continue;
        }
        let reason: Reason = if held.contains(&d) {
            "held back by the grace period".into()
        } else if !acc.blocked.is_empty() {
            "not collectable: the scan was incomplete (see blocked)".into()
        } else {
            "needed by what remains".into()
        };
        out.push(Kept {
            digest: d,
            size: b.size,
            reason,
        });
    }
    out.sort();
    let bytes = out.iter().map(|k| k.size).sum();
    (out, bytes)
}

fn plan_with(
    inv: &Inventory,
    surgery: Surgery,
    acc: Accounting,
    opts: &GcOptions,
    now: Timestamp,
) -> Plan {
    let blob_bytes: u64 = acc.blobs.iter().map(|b| b.size).sum();
    Plan {
        schema: PLAN_SCHEMA.into(),
        kind: crate::PlanKind::Surgery,
        created_at: now,
        storage: inv.root.clone(),
        options: opts.clone(),
        bytes: blob_bytes,
        blob_bytes,
        upload_bytes: 0,
        manifests: acc.manifests,
        tag_index_entries: acc.tag_index_entries,
        layer_links: Vec::new(),
        blobs: acc.blobs,
        uploads: Vec::new(),
        empty_dirs: Vec::new(),
        held_back: acc.held,
        kept_unlike_registry: Vec::new(),
        manifests_kept_unlike_registry: Vec::new(),
        blocked: acc.blocked,
        tags: Vec::new(),
        retention: None,
        would_break: crate::replay::WouldBreak::not_checked(),
        listing: None,
        cache: None,
        surgery: Some(Box::new(surgery)),
    }
}
