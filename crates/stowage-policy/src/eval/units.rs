//! The units a policy decides on (an image, with its tags and time) and the items a rule
//! selects from them, built from the graph per repository; and the closure repair that
//! keeps everything a surviving image needs, to a fixpoint.

use super::*;

#[derive(Clone, Debug)]
pub(super) struct Unit {
    pub(super) digest: BlobId,
    /// Tag indices (into the repository's tags).
    pub(super) tags: Vec<u32>,
    pub(super) kind: &'static str,
    pub(super) pushed: Timestamp,
    pub(super) referrer: bool,
    /// Subject digest when a referrer.
    pub(super) subject: Option<BlobId>,
    pub(super) opaque: bool,
}

#[derive(Clone, Debug)]
pub(super) struct Item {
    /// Repository index.
    pub(super) repo: u32,
    /// Unit index in its repository.
    pub(super) unit: usize,
    pub(super) tag: Option<u32>,
    pub(super) captures: Vec<(String, String)>,
}

pub(super) struct Repo<'a> {
    pub(super) units: Vec<Unit>,
    /// Signatures here name subjects in any repository (`settings.cosign_repositories`):
    /// the digests linked anywhere.
    pub(super) subjects_anywhere: Option<&'a HashSet<BlobId>>,
    pub(super) by_digest: HashMap<BlobId, usize>,
    /// The scan did not read every repository completely (an unlisted directory, an
    /// incomplete repository): a subject not linked here may be linked in the part not read.
    pub(super) partial_scan: bool,
    /// Children (transitively) and referrers of units: digest -> role.
    pub(super) tags: &'a [stowage_model::inventory::Tag],
}

pub(super) fn trusted(state: LinkState) -> bool {
    Graph::link_trusted(state) && state != LinkState::Differs
}

/// Whether the scan missed part of the registry: then "linked nowhere" is not known.
pub(super) fn partial_scan(inv: &stowage_model::inventory::Inventory) -> bool {
    !inv.unlisted.is_empty()
        || inv
            .repositories
            .iter()
            .any(|r| !r.complete || !r.revisions_listed)
}

/// A signature whose subject may live in another repository: any referrer of a signature
/// repository (`settings.cosign_repositories`), or a unit carrying a cosign-style tag.
pub(super) fn signature_elsewhere_possible(repo: &Repo<'_>, u: &Unit) -> bool {
    u.referrer
        && (repo.subjects_anywhere.is_some()
            || u.tags
                .iter()
                .any(|&t| cosign_subject(&repo.tags[t as usize].name).is_some()))
}

pub(super) fn build_units<'a>(
    g: &Graph<'a>,
    ri: usize,
    subjects_anywhere: Option<&'a HashSet<BlobId>>,
) -> Repo<'a> {
    let inv = g.inv;
    let repo = &inv.repositories[ri];
    let revs: BTreeMap<BlobId, Timestamp> = repo
        .revisions
        .iter()
        .filter(|l| trusted(l.state()) && inv.is_present(l.target()))
        .map(|l| (l.target(), l.modified()))
        .collect();
    let mut tags_of: BTreeMap<BlobId, Vec<u32>> = BTreeMap::new();
    for (ti, t) in repo.tags.iter().enumerate() {
        if let Some(target) = t.current.and_then(|c| c.target)
            && revs.contains_key(&target)
        {
            tags_of.entry(target).or_default().push(ti as u32);
        }
    }
    let mut children: HashSet<BlobId> = HashSet::new();
    for &d in revs.keys() {
        children.extend(g.children(d));
    }
    // Targets of cosign-style tags, with their subject when the storage knows the digest.
    let cosign_target: HashMap<BlobId, Option<BlobId>> = repo
        .tags
        .iter()
        .filter_map(|t| {
            let subject = inv.id_of(&cosign_subject(&t.name)?);
            Some((t.current?.target?, subject))
        })
        .collect();
    let mut units = Vec::new();
    for (&d, &pushed) in &revs {
        let m = g.manifest(d);
        let subject = m
            .and_then(|m| m.subject())
            .or_else(|| cosign_target.get(&d).copied().flatten());
        let referrer = subject.is_some() || cosign_target.contains_key(&d);
        let tagged = tags_of.contains_key(&d);
        // A referrer whose subject is here follows its subject (tagged or not: cosign tags
        // go with it); only orphaned referrers are images of their own.
        if subject.is_some_and(|s| revs.contains_key(&s)) {
            continue;
        }
        // An untagged index child follows its index.
        if !tagged && !referrer && children.contains(&d) {
            continue;
        }
        let opaque = g.is_opaque(d) || m.is_none();
        let kind = if referrer {
            "referrer"
        } else if opaque {
            "unknown"
        } else if m.and_then(|m| m.kind).is_some_and(ManifestKind::is_index) {
            "index"
        } else {
            "image"
        };
        units.push(Unit {
            digest: d,
            tags: tags_of.get(&d).cloned().unwrap_or_default(),
            kind,
            pushed,
            referrer,
            subject,
            opaque,
        });
    }
    let by_digest = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.digest, i))
        .collect();
    Repo {
        units,
        subjects_anywhere,
        by_digest,
        partial_scan: partial_scan(inv),
        tags: &repo.tags,
    }
}

pub(super) fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

/// The items of repository `ri` that policy `pol` selects: one per matching tag of a unit,
/// or one for an untagged unit.
pub(super) fn select_items(ctx: &Ctx<'_, '_>, pol: &PolicyC, ri: usize) -> Vec<Item> {
    let g = ctx.g;
    let inv = g.inv;
    let repo = &ctx.repos[ri];
    let present: HashSet<BlobId> = inv.repositories[ri]
        .revisions
        .iter()
        .map(|l| l.target())
        .collect();
    // A signature repository's subjects live in other repositories: orphaned only when the
    // subject is linked nowhere, which a partial scan cannot tell.
    let subject_here =
        |s: BlobId| present.contains(&s) || repo.subjects_anywhere.is_some_and(|a| a.contains(&s));
    let mut items = Vec::new();
    for (ui, u) in repo.units.iter().enumerate() {
        let maybe_linked = u.subject.is_some_and(subject_here)
            || (repo.partial_scan && signature_elsewhere_possible(repo, u));
        match pol.referrers {
            ReferrerSelect::None if u.referrer => continue,
            ReferrerSelect::Orphaned if !u.referrer || maybe_linked => {
                continue;
            }
            ReferrerSelect::Any if !u.referrer => continue,
            _ => {}
        }
        if !artifact_type_matches(g, pol, u) || !facts_match(ctx, pol, u) {
            continue;
        }
        let item = |tag, captures| Item {
            repo: ri as u32,
            unit: ui,
            tag,
            captures,
        };
        if u.tags.is_empty() {
            if pol.tag_state != TagState::Tagged {
                items.push(item(None, Vec::new()));
            }
            continue;
        }
        if pol.tag_state == TagState::Untagged {
            continue;
        }
        for &ti in &u.tags {
            let name = &repo.tags[ti as usize].name;
            let captures = if pol.tags.is_unset() {
                Some(Vec::new())
            } else {
                pol.tags.captures(name)
            };
            if let Some(captures) = captures {
                items.push(item(Some(ti), captures));
            }
        }
    }
    items
}

/// `select.artifact_type`: `image`, `index`, or a media-type pattern.
fn artifact_type_matches(g: &Graph<'_>, pol: &PolicyC, u: &Unit) -> bool {
    if pol.artifact_type.is_empty() {
        return true;
    }
    let m = g.manifest(u.digest);
    let mt = m
        .and_then(|m| g.inv.extra_of(m))
        .and_then(|e| e.artifact_type.as_deref().or(e.media_type.as_deref()))
        .unwrap_or_default();
    let hit = |p: &crate::values::Pattern| {
        let word = p.text.trim_start_matches('!');
        (word == "image" && u.kind == "image")
            || (word == "index" && u.kind == "index")
            || (!mt.is_empty() && p.matches(mt))
    };
    let includes: Vec<_> = pol.artifact_type.iter().filter(|p| !p.negated).collect();
    (includes.is_empty() || includes.iter().any(|p| hit(p)))
        && !pol.artifact_type.iter().filter(|p| p.negated).any(hit)
}

/// An image's platforms: an index's children's (from the index), or a single-platform
/// image's (from its config, when the caller read it).
pub(super) fn platforms(ctx: &Ctx<'_, '_>, d: BlobId) -> Vec<String> {
    let g = ctx.g;
    let from_index: Vec<String> = g
        .manifest(d)
        .and_then(|m| g.inv.extra_of(m))
        .map(|e| {
            e.platforms
                .iter()
                .flatten()
                .map(|p| p.to_string())
                .collect()
        })
        .unwrap_or_default();
    if !from_index.is_empty() {
        return from_index;
    }
    ctx.facts
        .get(&d)
        .and_then(|f| f.platform.clone())
        .into_iter()
        .collect()
}

/// Bytes of everything an image references (manifest, children, configs, layers), each blob
/// once: what `select.size` compares.
pub(super) fn image_bytes(g: &Graph<'_>, d: BlobId) -> u64 {
    let mut seen: HashSet<BlobId> = HashSet::from([d]);
    let mut stack = vec![d];
    let mut total = 0;
    while let Some(x) = stack.pop() {
        total += g.size(x);
        for c in g.refs(x) {
            if seen.insert(c) {
                stack.push(c);
            }
        }
    }
    total
}

/// `select.platforms`, `select.size`, `select.annotations`, `select.labels`: every one given
/// must hold. A fact that is unknown (an unread config) does not match: the policy leaves
/// the image alone, which keeps it unless another policy deletes it.
fn facts_match(ctx: &Ctx<'_, '_>, pol: &PolicyC, u: &Unit) -> bool {
    let f = &pol.facts;
    if !f.platforms.is_empty() {
        let ps = platforms(ctx, u.digest);
        let hit = |p: &crate::values::Pattern| ps.iter().any(|x| p.matches(x));
        let includes: Vec<_> = f.platforms.iter().filter(|p| !p.negated).collect();
        let ok = (includes.is_empty() || includes.iter().any(|p| hit(p)))
            && !f.platforms.iter().filter(|p| p.negated).any(hit);
        if ps.is_empty() || !ok {
            return false;
        }
    }
    if f.larger_than.is_some() || f.smaller_than.is_some() {
        let size = image_bytes(ctx.g, u.digest);
        if f.larger_than.is_some_and(|n| size <= n) || f.smaller_than.is_some_and(|n| size >= n) {
            return false;
        }
    }
    let facts = ctx.facts.get(&u.digest);
    // Unread or unreadable (no entry, or `None`): unknown, so not selected.
    let map_ok = |want: &[(String, crate::values::Pattern)],
                  have: Option<&BTreeMap<String, String>>| {
        if want.is_empty() {
            return true;
        }
        let Some(have) = have else {
            return false;
        };
        want.iter().all(|(k, p)| match have.get(k) {
            Some(v) => p.matches(v) != p.negated,
            // `!pattern` on an absent key: the key does not match the pattern.
            None => p.negated,
        })
    };
    map_ok(&f.annotations, facts.and_then(|x| x.annotations.as_ref()))
        && map_ok(&f.labels, facts.and_then(|x| x.labels.as_ref()))
}

/// Repositories that look like `COSIGN_REPOSITORY` targets (cosign-style tags whose subjects
/// are linked only in other repositories) but are not named in `settings.cosign_repositories`:
/// their signatures would be orphans to a `referrers: orphaned` policy. Named in a warning for
/// the operator to confirm, never assumed.
pub(super) fn signatures_elsewhere(
    p: &Compiled,
    g: &Graph<'_>,
    repos: &[Repo<'_>],
    linked: &HashSet<BlobId>,
    warnings: &mut Vec<String>,
) {
    let inv = g.inv;
    for (ri, repo) in repos.iter().enumerate() {
        let r = &inv.repositories[ri];
        if repo.subjects_anywhere.is_some() {
            continue;
        }
        let elsewhere = r
            .tags
            .iter()
            .filter_map(|t| cosign_subject(&t.name))
            .filter_map(|d| inv.id_of(&d))
            .filter(|s| r.revision(*s).is_none() && linked.contains(s))
            .count();
        if elsewhere > 0 {
            let _ = p;
            warnings.push(format!(
                "{}: {elsewhere} signature tag(s) name images stored in other repositories (cosign's COSIGN_REPOSITORY?); name it in settings.cosign_repositories so they follow their subjects instead of counting as orphans",
                r.name
            ));
        }
    }
}

/// Signatures that look orphaned only because their subjects are linked in other
/// repositories (a repository not named in `settings.cosign_repositories`): a plan that
/// deletes one (or removes its tag) would break the subject's verification, so it is blocked
/// rather than only warned about.
pub(super) fn signatures_elsewhere_deleted(
    g: &Graph<'_>,
    repos: &[Repo<'_>],
    linked: &HashSet<BlobId>,
    images: &[ImageOutcome],
    blocked: &mut Vec<String>,
) {
    let inv = g.inv;
    let mut per_repo: BTreeMap<u32, u64> = BTreeMap::new();
    for im in images {
        let repo = &repos[im.repo as usize];
        if repo.subjects_anywhere.is_some() || im.decision == Decision::Keep {
            continue;
        }
        let Some(u) = repo.by_digest.get(&im.digest).map(|&i| &repo.units[i]) else {
            continue;
        };
        let r = &inv.repositories[im.repo as usize];
        if u.referrer
            && u.subject
                .is_some_and(|s| r.revision(s).is_none() && linked.contains(&s))
        {
            *per_repo.entry(im.repo).or_default() += 1;
        }
    }
    for (ri, n) in per_repo {
        blocked.push(format!(
            "{}: the plan removes {n} signature(s) of images linked in other repositories (cosign's COSIGN_REPOSITORY?); name it in settings.cosign_repositories so they follow their subjects, or exclude it from the referrers policy",
            inv.repositories[ri as usize].name
        ));
    }
}

/// What the survivors need: index children (by digest, in any repository) and referrers
/// of a surviving subject (per repository).
fn needed_by_survivors(
    g: &Graph<'_>,
    deleted: &HashSet<(u32, BlobId)>,
) -> (HashSet<BlobId>, HashSet<(u32, BlobId)>) {
    let inv = g.inv;
    // Survivors: every revision not deleted (incl. other repositories, incomplete ones
    // and opaque manifests). What they need: index children (in any repository: the
    // registry's GC marks globally, so do we) and referrers of a surviving subject in the
    // same repository (the referrers API is per repository).
    let mut needed_global: HashSet<BlobId> = HashSet::new();
    let mut needed_here: HashSet<(u32, BlobId)> = HashSet::new();
    let mut stack: Vec<(u32, BlobId)> = Vec::new();
    let mut visited: HashSet<(u32, BlobId)> = HashSet::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        let ri = ri as u32;
        for l in &r.revisions {
            if deleted.contains(&(ri, l.target())) {
                continue;
            }
            stack.push((ri, l.target()));
            if g.is_opaque(l.target()) {
                // Could reference anything its repository links.
                for x in &r.revisions {
                    needed_here.insert((ri, x.target()));
                }
            }
        }
        for o in &r.odd_links {
            if o.kind == stowage_model::inventory::LinkKind::Revision
                && let Some(id) = o.content.as_ref().and_then(|d| inv.id_of(d))
            {
                needed_here.insert((ri, id));
                stack.push((ri, id));
            }
        }
    }
    while let Some((ri, x)) = stack.pop() {
        if !visited.insert((ri, x)) {
            continue;
        }
        let repo = &inv.repositories[ri as usize];
        for c in g.refs(x) {
            if g.manifest(c).is_some() {
                needed_global.insert(c);
                if repo.revision(c).is_some() {
                    stack.push((ri, c));
                }
            }
        }
        for &c in g.referrers(x) {
            if repo.revision(c).is_some() {
                needed_here.insert((ri, c));
                stack.push((ri, c));
            }
        }
    }
    (needed_global, needed_here)
}

/// Cascades and the "nothing a survivor needs" repair, to a fixpoint.
pub(super) fn closure_repair(
    g: &Graph<'_>,
    repos: &[Repo<'_>],
    images: &mut [ImageOutcome],
    protected: &HashSet<(u32, BlobId)>,
) {
    let inv = g.inv;
    // Cascade members a survivor needs, or a protection holds: they stay (and so are
    // survivors themselves).
    let mut forced: HashSet<(u32, BlobId)> = protected.clone();
    loop {
        // Candidate deletions: (repo, digest) of deleted units plus their cascades.
        let mut deleted: HashSet<(u32, BlobId)> = HashSet::new();
        for im in images.iter() {
            if im.decision == Decision::Delete {
                deleted.insert((im.repo, im.digest));
            }
        }
        for im in images.iter_mut() {
            im.cascade.clear();
            if im.decision != Decision::Delete {
                continue;
            }
            let repo = &repos[im.repo as usize];
            let ri = im.repo as usize;
            let revs = &inv.repositories[ri];
            // Walk children and referrers within the repository.
            let mut stack = vec![im.digest];
            let mut seen: HashSet<BlobId> = HashSet::from([im.digest]);
            while let Some(d) = stack.pop() {
                let mut next: Vec<(BlobId, &'static str)> = Vec::new();
                next.extend(g.children(d).map(|c| (c, "child")));
                next.extend(g.referrers(d).iter().map(|&r| (r, "referrer")));
                // cosign tags naming d.
                let dd = inv.digest(d);
                for t in repo.tags.iter() {
                    if cosign_subject(&t.name).as_ref() == Some(&dd)
                        && let Some(target) = t.current.and_then(|c| c.target)
                    {
                        next.push((target, "referrer"));
                    }
                }
                for (c, role) in next {
                    if revs.revision(c).is_none() || !seen.insert(c) {
                        continue;
                    }
                    // A unit decided on its own (a tagged child) is not a cascade.
                    if let Some(&ui) = repo.by_digest.get(&c)
                        && !repo.units[ui].referrer
                    {
                        continue;
                    }
                    let tags: Vec<TagOutcome> = revs
                        .tags
                        .iter()
                        .filter(|t| t.current.and_then(|x| x.target) == Some(c))
                        .map(|t| TagOutcome {
                            tag: t.name.to_string(),
                            remove: true,
                            reasons: vec![format!("cascade: {role} of {}", inv.digest(im.digest))],
                            current_modified: t.current.map(|x| x.modified).unwrap_or_default(),
                        })
                        .collect();
                    let keep = forced.contains(&(im.repo, c));
                    let mut tags = tags;
                    if keep {
                        for t in tags.iter_mut() {
                            t.remove = false;
                        }
                    }
                    im.cascade.push(CascadeOutcome {
                        digest: c,
                        role,
                        delete: !keep,
                        reason: if keep {
                            format!(
                                "{role} of {} (kept: a surviving manifest needs it)",
                                inv.digest(d)
                            )
                        } else {
                            format!("{role} of {}", inv.digest(d))
                        },
                        tags,
                    });
                    if !keep {
                        deleted.insert((im.repo, c));
                    }
                    stack.push(c);
                }
            }
        }
        let (needed_global, needed_here) = needed_by_survivors(g, &deleted);
        let is_needed =
            |ri: u32, d: BlobId| needed_global.contains(&d) || needed_here.contains(&(ri, d));
        let mut changed = false;
        for im in images.iter_mut() {
            if im.decision != Decision::Delete {
                continue;
            }
            if is_needed(im.repo, im.digest) {
                let by = g
                    .parents(im.digest)
                    .first()
                    .map(|&p| inv.digest(p).to_string())
                    .unwrap_or_else(|| "a surviving manifest".into());
                im.decision = Decision::Keep;
                im.reasons = vec![format!(
                    "keep: protection/closure(referenced by surviving {by})"
                )];
                for t in im.tags.iter_mut() {
                    t.remove = false;
                    t.reasons
                        .push("keep: its digest is needed by a surviving manifest".into());
                }
                changed = true;
                continue;
            }
            for c in im.cascade.iter_mut() {
                if c.delete && is_needed(im.repo, c.digest) {
                    forced.insert((im.repo, c.digest));
                    changed = true;
                    c.delete = false;
                    c.reason = format!("{} (kept: a surviving manifest needs it)", c.reason);
                    for t in c.tags.iter_mut() {
                        t.remove = false;
                    }
                }
            }
        }
        if !changed {
            // Cascades that stay mean their parts stay too (already marked); done.
            for im in images.iter_mut() {
                im.cascade.sort_by_key(|c| inv.digest(c.digest));
            }
            return;
        }
    }
}
