//! An evaluation turned into a plan, in stages: the actions (tags, manifests, history
//! entries), the blobs the registry's mark no longer reaches afterwards, the byte accounting
//! per image, repository and rule, and the records every image keeps with its reasons.

use super::*;

/// The plan's deletions of tags, manifests and history entries.
struct Actions {
    /// (repo, digest) deleted: top-level plus cascades.
    deleted: BTreeSet<(u32, BlobId)>,
    manifests: Vec<ManifestAction>,
    tags: Vec<TagAction>,
    tag_index_entries: Vec<TagIndexAction>,
}

fn actions(g: &Graph<'_>, outcome: &Outcome) -> Actions {
    let inv = g.inv;
    let name = |r: u32| inv.repositories[r as usize].name.to_string();
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
                orphan_of: None,
            });
        };
    let manifest = |repo: u32, d: BlobId, reason: String| ManifestAction {
        repository: name(repo),
        digest: inv.digest(d),
        modified: inv.repositories[repo as usize]
            .revision(d)
            .map(|l| l.modified())
            .unwrap_or_default(),
        reason,
    };
    for im in &outcome.images {
        for t in im.tags.iter().filter(|t| t.remove) {
            push_tag(&mut tags, im.repo, t, im.digest);
        }
        if im.decision != Decision::Delete {
            continue;
        }
        deleted.insert((im.repo, im.digest));
        let reason = im.reasons.first().cloned().unwrap_or_default();
        manifests.push(manifest(im.repo, im.digest, reason));
        for c in im.cascade.iter().filter(|c| c.delete) {
            if !deleted.insert((im.repo, c.digest)) {
                continue;
            }
            for t in c.tags.iter().filter(|t| t.remove) {
                push_tag(&mut tags, im.repo, t, c.digest);
            }
            manifests.push(manifest(
                im.repo,
                c.digest,
                format!("cascade: {}", c.reason),
            ));
        }
    }
    tags.sort();
    tags.dedup_by(|a, b| a.repository == b.repository && a.tag == b.tag);
    manifests.sort();
    let removed_tags: BTreeSet<(&str, &str)> = tags
        .iter()
        .map(|t| (t.repository.as_str(), t.tag.as_str()))
        .collect();
    // History entries of remaining tags that name a deleted manifest (the registry's GC
    // removes those with the manifest).
    let mut tag_index_entries = Vec::new();
    for &(r, d) in &deleted {
        let repo = &inv.repositories[r as usize];
        for t in &repo.tags {
            if removed_tags.contains(&(repo.name.as_str(), t.name.as_str())) {
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
    Actions {
        deleted,
        manifests,
        tags,
        tag_index_entries,
    }
}

/// Blobs: what the registry's mark (every revision of every repository) reaches before and
/// after the plan's manifests are gone.
struct Blobs {
    after: Vec<bool>,
    freed: HashSet<BlobId>,
    blobs: Vec<BlobAction>,
    layer_links: Vec<LinkAction>,
    empty_dirs: Vec<String>,
    blocked: Vec<String>,
    reclaimable_after_gc: u64,
    already_orphaned: u64,
}

fn blobs(g: &Graph<'_>, deleted: &BTreeSet<(u32, BlobId)>) -> Blobs {
    let inv = g.inv;
    let mut before_roots = Vec::new();
    let mut after_roots = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for l in &r.revisions {
            before_roots.push(l.target());
            if !deleted.contains(&(ri as u32, l.target())) {
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
    let mut out = Blobs {
        after: Vec::new(),
        freed: HashSet::new(),
        blobs: Vec::new(),
        layer_links: Vec::new(),
        empty_dirs: Vec::new(),
        blocked: Vec::new(),
        reclaimable_after_gc: 0,
        already_orphaned: 0,
    };
    for (i, b) in inv.blobs.iter().enumerate() {
        if !before[i] {
            out.already_orphaned += b.size;
        } else if !after[i] {
            out.freed.insert(i as BlobId);
            out.reclaimable_after_gc += b.size;
            out.blobs.push(BlobAction {
                digest: inv.digest(i as BlobId),
                size: b.size,
                modified: b.modified(),
                reason: "retention".into(),
            });
        }
    }
    out.after = after;
    if !inv.unlisted.is_empty() || inv.repositories.iter().any(|r| !r.complete) {
        out.blocked.push(
            "no blob is planned for deletion: the scan could not read every repository or namespace (apply --gc will not collect blobs); manifests in incomplete repositories are kept".into(),
        );
        out.blobs.clear();
        return out;
    }
    // Layer links of freed blobs (tidy: the registry 2.8 leaves them dangling).
    for r in &inv.repositories {
        for l in &r.layers {
            if out.freed.contains(&l.target()) {
                out.layer_links.push(LinkAction {
                    repository: r.name.to_string(),
                    digest: inv.digest(l.target()),
                    reason: "blob-deleted".into(),
                });
            }
        }
    }
    // Blob fan-out directories (`blobs/sha256/<hh>`) this plan empties: removed only if
    // empty when apply reaches them.
    if !out.blobs.is_empty() {
        let mut per_shard: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
        for (i, b) in inv.blobs.iter().enumerate() {
            let e = per_shard.entry(b.digest.0[0]).or_default();
            e.0 += 1;
            if out.freed.contains(&(i as BlobId)) {
                e.1 += 1;
            }
        }
        for (shard, (all, gone)) in per_shard {
            if all == gone {
                out.empty_dirs.push(format!("blobs/sha256/{shard:02x}"));
            }
        }
    }
    out
}

/// Per image, repository and rule figures.
struct Accounting {
    image_bytes: Vec<u64>,
    per_image_freed: Vec<u64>,
    repositories: Vec<RepositoryBytes>,
    rules: Vec<RuleBytes>,
    shared_kept: u64,
    unlinked: u64,
}

/// The rule an image was deleted under (`policy/rule`).
fn first_rule(im: &ImageOutcome) -> String {
    im.reasons
        .first()
        .map(|r| {
            r.trim_start_matches("delete: ")
                .split(" (")
                .next()
                .unwrap_or(r)
                .to_string()
        })
        .unwrap_or_default()
}

fn accounting(g: &Graph<'_>, outcome: &Outcome, a: &Actions, b: &Blobs) -> Accounting {
    let inv = g.inv;
    // Per image closures, owners of freed blobs, shared bytes, per repository unlinked.
    let mut owners: HashMap<BlobId, Vec<usize>> = HashMap::new();
    let mut image_bytes: Vec<u64> = vec![0; outcome.images.len()];
    let mut all_deleted_closure: HashSet<BlobId> = HashSet::new();
    let mut deleted_closure_by_repo: BTreeMap<u32, HashSet<BlobId>> = BTreeMap::new();
    for (k, im) in outcome.images.iter().enumerate() {
        let roots = std::iter::once(im.digest).chain(im.cascade.iter().map(|c| c.digest));
        let cl = closure(g, roots);
        image_bytes[k] = cl.iter().map(|&x| g.size(x)).sum();
        if im.decision == Decision::Delete {
            for &x in cl.iter().filter(|x| b.freed.contains(x)) {
                owners.entry(x).or_default().push(k);
            }
            deleted_closure_by_repo
                .entry(im.repo)
                .or_default()
                .extend(cl.iter().copied());
            all_deleted_closure.extend(cl);
        }
    }
    let shared_kept = all_deleted_closure
        .iter()
        .filter(|&&x| inv.is_present(x) && b.after[x as usize])
        .map(|&x| g.size(x))
        .sum();
    let mut repos: BTreeMap<u32, RepositoryBytes> = BTreeMap::new();
    for im in outcome.images.iter().filter(|i| i.kind != "referrer") {
        let e = repos.entry(im.repo).or_default();
        e.images += 1;
        if im.decision == Decision::Delete {
            e.images_deleted += 1;
        }
    }
    for t in &a.tags {
        if let Ok(r) = inv
            .repositories
            .binary_search_by(|r| r.name.as_str().cmp(&t.repository))
        {
            repos.entry(r as u32).or_default().tags_removed += 1;
        }
    }
    let mut unlinked_total = 0;
    for (&r, dcl) in &deleted_closure_by_repo {
        let repo = &inv.repositories[r as usize];
        let remaining = closure(
            g,
            repo.revisions
                .iter()
                .map(|l| l.target())
                .filter(|d| !a.deleted.contains(&(r, *d))),
        );
        let unlinked: u64 = dcl
            .iter()
            .filter(|x| !remaining.contains(x))
            .map(|&x| g.size(x))
            .sum();
        repos.entry(r).or_default().bytes_unlinked = unlinked;
        unlinked_total += unlinked;
    }
    let mut per_image_freed: Vec<u64> = vec![0; outcome.images.len()];
    let mut rules: BTreeMap<String, RuleBytes> = BTreeMap::new();
    for im in outcome
        .images
        .iter()
        .filter(|i| i.decision == Decision::Delete)
    {
        rules.entry(first_rule(im)).or_default().images += 1;
    }
    let mut several_repos = 0u64;
    for (&x, ks) in &owners {
        let size = g.size(x);
        if ks.len() == 1 {
            per_image_freed[ks[0]] += size;
        }
        let rs: BTreeSet<u32> = ks.iter().map(|&k| outcome.images[k].repo).collect();
        match rs.iter().next() {
            Some(&r) if rs.len() == 1 => repos.entry(r).or_default().bytes_freed += size,
            _ => several_repos += size,
        }
        let names: BTreeSet<String> = ks.iter().map(|&k| first_rule(&outcome.images[k])).collect();
        let key = match names.iter().next() {
            Some(n) if names.len() == 1 => n.clone(),
            _ => "(several rules)".to_string(),
        };
        rules.entry(key).or_default().bytes_freed += size;
    }
    let mut repositories: Vec<RepositoryBytes> = repos
        .into_iter()
        .map(|(r, mut x)| {
            x.repository = inv.repositories[r as usize].name.to_string();
            x
        })
        .collect();
    if several_repos > 0 {
        repositories.push(RepositoryBytes {
            repository: "(several repositories)".into(),
            bytes_freed: several_repos,
            ..Default::default()
        });
    }
    let rules = rules
        .into_iter()
        .map(|(k, mut v)| {
            v.rule = k;
            v
        })
        .collect();
    Accounting {
        image_bytes,
        per_image_freed,
        repositories,
        rules,
        shared_kept,
        unlinked: unlinked_total,
    }
}

fn image_records(g: &Graph<'_>, outcome: &Outcome, acc: &Accounting) -> Vec<ImageRecord> {
    let inv = g.inv;
    outcome
        .images
        .iter()
        .enumerate()
        .map(|(k, im)| ImageRecord {
            repository: inv.repositories[im.repo as usize].name.to_string(),
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
            bytes: acc.image_bytes[k],
            bytes_freed: acc.per_image_freed[k],
        })
        .collect()
}

/// Hash of every repository's tag -> digest bindings.
fn fingerprint(inv: &stowage_model::inventory::Inventory) -> String {
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
}

/// Turn an evaluation into a plan.
pub fn build(g: &Graph<'_>, outcome: &Outcome, ri: &RetentionInputs<'_>) -> Plan {
    let inv = g.inv;
    let a = actions(g, outcome);
    let b = blobs(g, &a.deleted);
    let acc = accounting(g, outcome, &a, &b);
    let images = image_records(g, outcome, &acc);
    let mut bytes = RetentionBytes {
        reclaimable_after_gc: b.reclaimable_after_gc,
        already_orphaned: b.already_orphaned,
        shared_kept: acc.shared_kept,
        unlinked: acc.unlinked,
        tags_removed: a.tags.len() as u64,
        manifests_deleted: a.manifests.len() as u64,
        ..Default::default()
    };
    for im in &images {
        match im.decision.as_str() {
            "delete" => bytes.images_deleted += 1,
            "untag" => bytes.images_untagged += 1,
            _ => bytes.images_kept += 1,
        }
    }
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
    let policy_sha256 = {
        use sha2::Digest as _;
        hex(&sha2::Sha256::digest(ri.policy_text.as_bytes()))
    };
    let blob_bytes: u64 = b.blobs.iter().map(|x| x.size).sum();
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
        fingerprint: fingerprint(inv),
        in_use_sources: outcome.sources.clone(),
        bytes,
        repositories: acc.repositories,
        rules: acc.rules,
        rails_blocked,
        warnings: outcome.warnings.clone(),
        images,
    };
    Plan {
        schema: PLAN_SCHEMA.into(),
        kind: crate::PlanKind::Retention,
        created_at: ri.now,
        storage: inv.root.clone(),
        options: GcOptions {
            delete_untagged: false,
            grace_seconds: 0,
            uploads_older_than_seconds: None,
            dangling_links: true,
            empty_dirs: false,
            cache: false,
            cache_max_bytes: None,
            orphan_signatures: false,
        },
        bytes: blob_bytes,
        blob_bytes,
        upload_bytes: 0,
        manifests: a.manifests,
        tag_index_entries: a.tag_index_entries,
        layer_links: b.layer_links,
        blobs: b.blobs,
        uploads: Vec::new(),
        empty_dirs: b.empty_dirs,
        held_back: HeldBack::default(),
        kept_unlike_registry: Vec::new(),
        manifests_kept_unlike_registry: Vec::new(),
        blocked: b.blocked,
        tags: a.tags,
        retention: Some(Box::new(retention)),
        listing: None,
        cache: None,
        surgery: None,
        would_break: crate::replay::WouldBreak::not_checked(),
    }
}
