//! Protections: what no rule can delete (in-use references, pins, immutable tags, the grace
//! period, unknown metadata, the keep-newest floor), collected per (repository, digest) and
//! per (repository, tag) with the reason each holds.

use super::*;

/// Every protection that holds, by what it protects.
#[derive(Default)]
pub(super) struct Protections {
    /// (repo, digest) -> reasons; protections of a digest that also keep its tags.
    pub(super) digest: BTreeMap<(u32, BlobId), Vec<String>>,
    /// (repo, tag index) -> reasons.
    pub(super) tag: BTreeMap<(u32, u32), Vec<String>>,
    /// Digest protections that do not extend to the digest's tags (in-use references by
    /// digest with `protect_tags_of_digest_refs: false`).
    pub(super) digest_only: BTreeMap<(u32, BlobId), Vec<String>>,
}

/// What an image reference names here: (repo, tag index, digest).
fn resolve(g: &Graph<'_>, repos: &[Repo<'_>], r: &ImageRef) -> Vec<(u32, Option<u32>, BlobId)> {
    let inv = g.inv;
    let mut hits = Vec::new();
    if r.repository.is_empty() {
        let Some(d) = r.digest.as_ref().and_then(|d| inv.id_of(d)) else {
            return hits;
        };
        let has_config = |m: &stowage_model::inventory::ManifestRecord| {
            inv.refs_of(m)
                .iter()
                .any(|x| x.role() == RefRole::Config && x.id() == d)
        };
        // A bare digest: a manifest, or a runtime image ID (the config digest).
        for (ri, repo) in repos.iter().enumerate() {
            for u in &repo.units {
                let is_config = g.manifest(u.digest).is_some_and(|m| {
                    has_config(m)
                        || inv
                            .children_of(m)
                            .any(|c| g.manifest(c).is_some_and(has_config))
                });
                if u.digest == d || is_config {
                    hits.push((ri as u32, None, u.digest));
                }
            }
        }
        return hits;
    }
    let Ok(ri) = inv
        .repositories
        .binary_search_by(|x| x.name.as_str().cmp(&r.repository))
    else {
        return hits;
    };
    let repo = &inv.repositories[ri];
    if let Some(d) = &r.digest {
        if let Some(id) = inv.id_of(d)
            && repo.revision(id).is_some()
        {
            hits.push((ri as u32, None, id));
        }
        return hits;
    }
    let tag = r.tag.as_deref().unwrap_or("latest");
    if let Ok(ti) = repo.tags.binary_search_by(|t| t.name.as_str().cmp(tag))
        && let Some(id) = repo.tags[ti].current.and_then(|c| c.target)
    {
        hits.push((ri as u32, Some(ti as u32), id));
    }
    hits
}

impl Protections {
    /// In-use sources: each reference resolved here protects its digest (and its tag, or the
    /// tags of its digest, as configured). A source that cannot be used is fatal when
    /// required, a warning otherwise.
    pub(super) fn in_use(
        &mut self,
        p: &Compiled,
        inp: &Inputs<'_, '_>,
        repos: &[Repo<'_>],
        out: &mut Outcome,
        fatal: &mut Vec<String>,
    ) {
        let Some(u) = &p.in_use else { return };
        let now = inp.now;
        for s in inp.in_use {
            let mut st = SourceStatus {
                name: s.name.clone(),
                path: s.path.clone(),
                sha256: s.sha256.clone(),
                modified: s.modified,
                refs: 0,
                resolved: 0,
                unresolved: Vec::new(),
                problem: None,
            };
            let stale = match (p.in_use_max_age, s.modified) {
                (Some(max), Some(m)) if m.seconds_until(now) > max => Some(format!(
                    "stale: written {}s before now, max_age is {max}s",
                    m.seconds_until(now)
                )),
                _ => None,
            };
            match (&s.refs, stale) {
                (Err(e), _) => st.problem = Some(e.clone()),
                (Ok(_), Some(e)) => st.problem = Some(e),
                (Ok(refs), None) => {
                    st.refs = refs.refs.len() as u64;
                    for bad in &refs.invalid {
                        out.warnings
                            .push(format!("in-use source {}: {bad}", s.name));
                    }
                    for r in &refs.refs {
                        if !host_matches(r, &u.registry_aliases) {
                            st.unresolved.push(format!("{r} (another registry)"));
                            continue;
                        }
                        let hits = resolve(inp.graph, repos, r);
                        if hits.is_empty() {
                            st.unresolved.push(format!("{r} (not in this registry)"));
                            continue;
                        }
                        st.resolved += 1;
                        let why = format!("protection/in_use({})", s.name);
                        for (ri, ti, d) in hits {
                            match ti {
                                Some(ti) => {
                                    self.digest.entry((ri, d)).or_default().push(why.clone());
                                    self.tag.entry((ri, ti)).or_default().push(why.clone());
                                }
                                None if !u.protect_tags_of_digest_refs => {
                                    self.digest_only
                                        .entry((ri, d))
                                        .or_default()
                                        .push(why.clone());
                                }
                                None => self.digest.entry((ri, d)).or_default().push(why.clone()),
                            }
                        }
                    }
                }
            }
            let foreign = st
                .unresolved
                .iter()
                .filter(|x| x.ends_with("(another registry)"))
                .count() as u64;
            if st.problem.is_none() && st.refs > 0 && foreign == st.refs {
                st.problem = Some(format!(
                    "every one of its {} references names another registry: is this registry's host missing from registry_aliases {:?}?",
                    st.refs, u.registry_aliases
                ));
            }
            if st.problem.is_none() && s.modified.is_none() && p.in_use_max_age.is_some() {
                st.problem =
                    Some("its modification time is unknown, so its age cannot be checked".into());
            }
            if let Some(problem) = &st.problem {
                let msg = format!("in-use source {} ({}): {problem}", s.name, s.path);
                if u.required {
                    fatal.push(format!(
                        "{msg}; the policy requires it (protections.in_use.required), so nothing is planned"
                    ));
                } else {
                    out.warnings
                        .push(format!("{msg}; not required, so it protects nothing"));
                }
            }
            out.sources.push(st);
        }
        for s in &u.sources {
            if !inp.in_use.iter().any(|l| l.name == s.name) {
                fatal.push(format!("in-use source {} was not loaded", s.name));
            }
        }
    }

    /// Pins that have not expired.
    pub(super) fn pins(
        &mut self,
        p: &Compiled,
        g: &Graph<'_>,
        repos: &[Repo<'_>],
        now: Timestamp,
        warnings: &mut Vec<String>,
    ) {
        for pin in &p.pins {
            if let Some(until) = pin.until
                && until <= now
            {
                warnings.push(format!(
                    "pin {} expired at {}: no longer protects",
                    pin.reference,
                    until.rfc3339()
                ));
                continue;
            }
            let why = match pin.reason.is_empty() {
                true => format!("protection/pin({})", pin.reference),
                false => format!("protection/pin({}: {})", pin.reference, pin.reason),
            };
            let hits = resolve(
                g,
                repos,
                &ImageRef {
                    host: None,
                    ..pin.reference.clone()
                },
            );
            if hits.is_empty() {
                warnings.push(format!(
                    "pin {} matches nothing in this registry",
                    pin.reference
                ));
            }
            for (ri, ti, d) in hits {
                self.digest.entry((ri, d)).or_default().push(why.clone());
                if let Some(ti) = ti {
                    self.tag.entry((ri, ti)).or_default().push(why.clone());
                }
            }
        }
    }

    /// Immutable tags, the grace period, unreadable manifests and incomplete repositories;
    /// and images pushed after `now` (a plan made for a past `now`, or a simulated day: the
    /// image did not exist then, so that plan cannot delete it).
    pub(super) fn tags_and_units(
        &mut self,
        p: &Compiled,
        g: &Graph<'_>,
        repos: &[Repo<'_>],
        now: Timestamp,
    ) {
        for (ri, repo) in g.inv.repositories.iter().enumerate() {
            let ri = ri as u32;
            for (ti, t) in repo.tags.iter().enumerate() {
                let ti = ti as u32;
                let target = t.current.and_then(|c| c.target);
                if p.immutable.matches(&t.name) {
                    let why = "protection/immutable_tag".to_string();
                    self.tag.entry((ri, ti)).or_default().push(why.clone());
                    if let Some(d) = target {
                        self.digest.entry((ri, d)).or_default().push(why);
                    }
                }
                if let Some(c) = t.current
                    && p.grace > 0
                    && c.modified.seconds_until(now) < p.grace
                {
                    let why = "protection/grace_period(tagged recently)".to_string();
                    self.tag.entry((ri, ti)).or_default().push(why.clone());
                    if let Some(d) = target {
                        self.digest.entry((ri, d)).or_default().push(why);
                    }
                }
            }
            for u in &repos[ri as usize].units {
                let mut why = |w: &str| {
                    self.digest
                        .entry((ri, u.digest))
                        .or_default()
                        .push(w.to_string())
                };
                if p.grace > 0 && u.pushed.seconds_until(now) < p.grace {
                    why("protection/grace_period(pushed recently)");
                }
                if u.pushed > now {
                    why("protection/after_now(pushed after the plan's now)");
                }
                if u.opaque {
                    why("protection/unknown(manifest could not be read or parsed)");
                }
                // A signature stored apart from its subject (`settings.cosign_repositories`)
                // follows it: kept while the subject is linked anywhere.
                if let (Some(anywhere), Some(subject)) =
                    (repos[ri as usize].subjects_anywhere, u.subject)
                    && u.referrer
                    && anywhere.contains(&subject)
                {
                    why("protection/subject(a signature of an image linked in another repository)");
                }
                if !repo.complete {
                    why("protection/unknown(repository could not be read completely)");
                }
                // Its subject is not linked here, and the scan missed part of the registry:
                // it may be linked there (review of issue 23, finding 1).
                let r = &repos[ri as usize];
                if r.partial_scan
                    && signature_elsewhere_possible(r, u)
                    && u.subject.is_none_or(|s| repo.revision(s).is_none())
                    && !r
                        .subjects_anywhere
                        .zip(u.subject)
                        .is_some_and(|(a, s)| a.contains(&s))
                {
                    why(
                        "protection/unknown(the signature's subject may be linked in a repository not read completely)",
                    );
                }
            }
        }
    }

    /// The keep-newest floor, by the configured time source, among non-referrer units.
    pub(super) fn floor(&mut self, ctx: &Ctx<'_, '_>, floor: &[u32]) {
        let inv = ctx.inv();
        for (ri, repo) in ctx.repos.iter().enumerate() {
            let n = floor[ri] as usize;
            if n == 0 {
                continue;
            }
            // Images pushed after `now` did not exist then: they take no slot.
            let units = repo
                .units
                .iter()
                .filter(|u| !u.referrer && u.pushed <= ctx.now)
                .map(|u| {
                    let time = ctx.unit_time(ctx.p.time_source, ri, u);
                    let tags = u.tags.iter().map(|&t| repo.tags[t as usize].name.as_str());
                    (u.digest, time, tags.min())
                });
            for (d, why) in floor::protect(units, n, |d| inv.digest(d)) {
                self.digest.entry((ri as u32, d)).or_default().push(why);
            }
        }
    }

    /// Every (repo, digest) a protection lands on, tags' targets included: closure repair
    /// keeps these even when they are a child or referrer rather than an image of their own.
    pub(super) fn pairs(
        &self,
        inv: &stowage_model::inventory::Inventory,
    ) -> HashSet<(u32, BlobId)> {
        let mut pairs: HashSet<(u32, BlobId)> = self.digest.keys().copied().collect();
        pairs.extend(self.digest_only.keys().copied());
        for &(r, t) in self.tag.keys() {
            if let Some(d) = inv.repositories[r as usize].tags[t as usize]
                .current
                .and_then(|c| c.target)
            {
                pairs.insert((r, d));
            }
        }
        pairs
    }

    /// Into the outcome: digest protections (except digest-only in-use references) keep the
    /// digest's tags.
    pub(super) fn finish(mut self, inv: &stowage_model::inventory::Inventory, out: &mut Outcome) {
        for ((r, d), reasons) in &self.digest {
            for (ti, t) in inv.repositories[*r as usize].tags.iter().enumerate() {
                if t.current.and_then(|c| c.target) == Some(*d) {
                    self.tag
                        .entry((*r, ti as u32))
                        .or_default()
                        .extend(reasons.iter().cloned());
                }
            }
        }
        for (k, v) in self.digest_only {
            self.digest.entry(k).or_default().extend(v);
        }
        out.protected_digests = self.digest.into_iter().collect();
        out.protected_tags = self
            .tag
            .into_iter()
            .map(|((r, t), v)| {
                let name = inv.repositories[r as usize].tags[t as usize]
                    .name
                    .to_string();
                ((r, name), v)
            })
            .collect();
    }
}
