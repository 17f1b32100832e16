//! Evaluating a compiled policy over a scanned registry: one decision, with reasons, for every
//! top-level image and tag (`shared/spec/retention.md` §5.4).
//!
//! - **Units** are top-level images per repository: tagged manifests, and untagged manifests
//!   that are neither a child of an index of the repository nor a referrer. Index children and
//!   referrers (OCI `subject`, cosign `sha256-<hex>.sig|.att|.sbom` tags) follow their parent.
//! - **Items** are what rules look at: one per tag of a unit, or one for an untagged unit.
//!   Counting (`last`, calendar buckets) ranks distinct digests within each group.
//! - **Three-valued logic**: a criterion whose time (or order key) is unknown is *unknown*; a
//!   keep rule keeps on true or unknown, a delete rule deletes only on true (fail closed).
//! - **Decision**: delete ⇔ (a delete rule is true, or selected under `otherwise: delete`)
//!   ∧ no keep rule of any policy holds ∧ no protection holds. Keep wins; order never matters.
//! - **Closure repair** (global, to a fixpoint): nothing any surviving manifest of any
//!   repository references (index children, referrers of a surviving subject) is deleted;
//!   children and referrers of a deleted image go with it (`cascade`) unless something
//!   surviving still needs them.

use std::collections::{BTreeMap, HashMap, HashSet};

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, LinkState, RefRole};
use stowage_model::manifest::ManifestKind;
use stowage_model::time::Timestamp;

use crate::compile::{Bucket, Compiled, Crit, PolicyC, RuleC, WhenC};
use crate::file::{
    MissingTime, OrderBy, Otherwise, Prerelease, ReferrerSelect, RelativeTo, TagState, TimeSource,
};
use crate::floor;
use crate::refs::{ImageRef, SourceRefs, host_matches};

mod criteria;
mod units;
use criteria::{Ctx, T3};
use units::{
    COSIGN_SUFFIXES, Item, Repo, build_units, closure_repair, dedup, select_items, unit_time,
};

/// An in-use source as read by the caller (file I/O stays outside this crate).
#[derive(Clone, Debug)]
pub struct LoadedSource {
    pub name: String,
    pub path: String,
    /// The parsed references, or why the source could not be used.
    pub refs: Result<SourceRefs, String>,
    pub modified: Option<Timestamp>,
    pub sha256: String,
}

/// Everything the evaluation needs besides the policy.
pub struct Inputs<'a, 'g> {
    pub graph: &'a Graph<'g>,
    pub now: Timestamp,
    /// Image config `created` per manifest (only needed for `time_source: created`).
    pub created: &'a HashMap<BlobId, Timestamp>,
    pub in_use: &'a [LoadedSource],
    /// `--unsafe-allow-empty`.
    pub unsafe_allow_empty: bool,
    /// Pull data (from the policy's pull source), when the policy uses it.
    pub pulls: Option<&'a PullData>,
}

/// Pull data as the evaluation needs it (read by the caller from the pull source).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullData {
    /// Where it came from (for messages).
    pub source: String,
    /// When the data covers from: the start of the span without a gap that ends with the
    /// newest data (`None`: no data at all).
    pub begins: Option<Timestamp>,
    /// Its newest point.
    pub ends: Option<Timestamp>,
    /// (repository, manifest digest `sha256:...`) -> last pull.
    pub last: HashMap<(String, String), Timestamp>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    Keep,
    /// The digest stays; some of its tags go.
    Untag,
    Delete,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Untag => "untag",
            Decision::Delete => "delete",
        }
    }
}

/// One tag's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagOutcome {
    pub tag: String,
    /// `true`: the tag directory goes.
    pub remove: bool,
    pub reasons: Vec<String>,
    pub current_modified: Timestamp,
}

/// A child or referrer that follows a top-level image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CascadeOutcome {
    pub digest: BlobId,
    /// `child` or `referrer`.
    pub role: &'static str,
    pub delete: bool,
    pub reason: String,
    /// Tags on it (cosign tags) that go with it.
    pub tags: Vec<TagOutcome>,
}

/// One top-level image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOutcome {
    pub repo: u32,
    pub digest: BlobId,
    /// `image`, `index`, `referrer`, `unknown`.
    pub kind: &'static str,
    pub time: Option<Timestamp>,
    pub pushed: Timestamp,
    pub decision: Decision,
    pub reasons: Vec<String>,
    pub tags: Vec<TagOutcome>,
    pub cascade: Vec<CascadeOutcome>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStatus {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub modified: Option<Timestamp>,
    pub refs: u64,
    pub resolved: u64,
    /// References to other registries, and references to repositories or tags not here.
    pub unresolved: Vec<String>,
    pub problem: Option<String>,
}

/// The result of evaluating a policy.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Sorted by (repository, digest).
    pub images: Vec<ImageOutcome>,
    pub sources: Vec<SourceStatus>,
    pub warnings: Vec<String>,
    /// Limits crossed or unsafe results: the plan must not be applied.
    pub blocked: Vec<String>,
    /// Selected items whose time was unknown (kept).
    pub unknown_time: u64,
    /// Every protection that holds: (repository index, digest) and (repository index, tag).
    pub protected_digests: Vec<((u32, BlobId), Vec<String>)>,
    pub protected_tags: Vec<((u32, String), Vec<String>)>,
}

/// Fatal problems found while evaluating (a required in-use source unusable...).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct EvalError(pub Vec<String>);

/// The subject of a cosign-style tag `sha256-<hex>.sig|.att|.sbom`.
pub fn cosign_subject(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = COSIGN_SUFFIXES.iter().find_map(|s| rest.strip_suffix(s))?;
    format!("sha256:{hex}").parse().ok()
}

/// Evaluate `policy` over the graph.
pub fn evaluate(p: &Compiled, inp: &Inputs<'_, '_>) -> Result<Outcome, EvalError> {
    let g = inp.graph;
    let inv = g.inv;
    let now = inp.now;
    let mut out = Outcome::default();
    let mut fatal = Vec::new();

    let repos: Vec<Repo<'_>> = (0..inv.repositories.len())
        .map(|ri| build_units(g, ri))
        .collect();

    // ---- Pull data ----------------------------------------------------------------------
    // Coverage first: a pull condition looking back further than the data goes is refused,
    // never read as "never pulled". Then each image's last pull: its own digest's, or any of
    // its platform children's (a pull of an index counts for its children and vice versa).
    let empty_pulls = PullData::default();
    let pulls = inp.pulls.unwrap_or(&empty_pulls);
    crate::pull_coverage::check(p, inp.pulls, now, &mut fatal, &mut out.warnings);
    // Pulls by (repository index, id): one pass over the data, no lookups by string later.
    let mut pulled_ids: HashMap<(u32, BlobId), Timestamp> = HashMap::new();
    for ((repo, digest), &t) in &pulls.last {
        let Ok(ri) = inv
            .repositories
            .binary_search_by(|r| r.name.as_str().cmp(repo))
        else {
            continue;
        };
        if let Some(id) = digest.parse::<Digest>().ok().and_then(|d| inv.id_of(&d)) {
            pulled_ids.insert((ri as u32, id), t);
        }
    }
    let pull_times: Vec<HashMap<BlobId, Timestamp>> = repos
        .iter()
        .enumerate()
        .map(|(ri, repo)| {
            let mut m = HashMap::new();
            if pulled_ids.is_empty() {
                return m;
            }
            for u in &repo.units {
                let mut best: Option<Timestamp> = None;
                let mut stack = vec![u.digest];
                let mut seen = HashSet::new();
                while let Some(d) = stack.pop() {
                    if !seen.insert(d) {
                        continue;
                    }
                    if let Some(&t) = pulled_ids.get(&(ri as u32, d)) {
                        best = best.max(Some(t));
                    }
                    stack.extend(g.children(d));
                }
                if let Some(t) = best {
                    m.insert(u.digest, t);
                }
            }
            m
        })
        .collect();

    // ---- Protections -------------------------------------------------------------------
    // (repo, digest) -> reasons; (repo, tag index) -> reasons.
    let mut prot_digest: BTreeMap<(u32, BlobId), Vec<String>> = BTreeMap::new();
    let mut prot_tag: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
    // Digest protections that do not extend to the digest's tags.
    let mut digest_only: BTreeMap<(u32, BlobId), Vec<String>> = BTreeMap::new();

    let resolve = |r: &ImageRef| -> Vec<(u32, Option<u32>, BlobId)> {
        // (repo, tag index, digest)
        let mut hits = Vec::new();
        if r.repository.is_empty() {
            let Some(d) = r.digest.as_ref().and_then(|d| inv.id_of(d)) else {
                return hits;
            };
            // A bare digest: a manifest, or a runtime image ID (the config digest).
            for (ri, repo) in repos.iter().enumerate() {
                for u in &repo.units {
                    let is_config = g.manifest(u.digest).is_some_and(|m| {
                        inv.refs_of(m)
                            .iter()
                            .any(|x| x.role() == RefRole::Config && x.id() == d)
                            || inv.children_of(m).any(|c| {
                                g.manifest(c).is_some_and(|cm| {
                                    inv.refs_of(cm)
                                        .iter()
                                        .any(|x| x.role() == RefRole::Config && x.id() == d)
                                })
                            })
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
    };

    if let Some(u) = &p.in_use {
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
                        let hits = resolve(r);
                        if hits.is_empty() {
                            st.unresolved.push(format!("{r} (not in this registry)"));
                            continue;
                        }
                        st.resolved += 1;
                        let why = format!("protection/in_use({})", s.name);
                        for (ri, ti, d) in hits {
                            match ti {
                                Some(ti) => {
                                    prot_digest.entry((ri, d)).or_default().push(why.clone());
                                    prot_tag.entry((ri, ti)).or_default().push(why.clone());
                                }
                                None if !u.protect_tags_of_digest_refs => {
                                    digest_only.entry((ri, d)).or_default().push(why.clone());
                                }
                                None => prot_digest.entry((ri, d)).or_default().push(why.clone()),
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
    for pin in &p.pins {
        if let Some(until) = pin.until
            && until <= now
        {
            out.warnings.push(format!(
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
        let hits = resolve(&ImageRef {
            host: None,
            ..pin.reference.clone()
        });
        if hits.is_empty() {
            out.warnings.push(format!(
                "pin {} matches nothing in this registry",
                pin.reference
            ));
        }
        for (ri, ti, d) in hits {
            prot_digest.entry((ri, d)).or_default().push(why.clone());
            if let Some(ti) = ti {
                prot_tag.entry((ri, ti)).or_default().push(why.clone());
            }
        }
    }
    for (ri, repo) in inv.repositories.iter().enumerate() {
        let ri = ri as u32;
        for (ti, t) in repo.tags.iter().enumerate() {
            let ti = ti as u32;
            let target = t.current.and_then(|c| c.target);
            if p.immutable.matches(&t.name) {
                let why = "protection/immutable_tag".to_string();
                prot_tag.entry((ri, ti)).or_default().push(why.clone());
                if let Some(d) = target {
                    prot_digest.entry((ri, d)).or_default().push(why);
                }
            }
            if let Some(c) = t.current
                && p.grace > 0
                && c.modified.seconds_until(now) < p.grace
            {
                let why = "protection/grace_period(tagged recently)".to_string();
                prot_tag.entry((ri, ti)).or_default().push(why.clone());
                if let Some(d) = target {
                    prot_digest.entry((ri, d)).or_default().push(why);
                }
            }
        }
        for u in &repos[ri as usize].units {
            if p.grace > 0 && u.pushed.seconds_until(now) < p.grace {
                prot_digest
                    .entry((ri, u.digest))
                    .or_default()
                    .push("protection/grace_period(pushed recently)".into());
            }
            if u.opaque {
                prot_digest
                    .entry((ri, u.digest))
                    .or_default()
                    .push("protection/unknown(manifest could not be read or parsed)".into());
            }
            if !repo.complete {
                prot_digest
                    .entry((ri, u.digest))
                    .or_default()
                    .push("protection/unknown(repository could not be read completely)".into());
            }
        }
    }

    // ---- Policies -------------------------------------------------------------------
    // (repo, unit, Option<tag>) -> keep reasons / delete reasons.
    type Key = (u32, usize, Option<u32>);
    let mut keeps: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let mut deletes: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let mut selected: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let mut floor: Vec<u32> = vec![p.keep_newest; inv.repositories.len()];
    // Per repository: the overrides of the policies that match it. Combined so that order
    // never matters and the safer value wins: the floor is the largest asked for (the global
    // one when some matching policy does not override it); emptying is allowed only if every
    // matching policy allows it.
    let mut floor_overridden: Vec<Option<u32>> = vec![None; inv.repositories.len()];
    let mut floor_plain: Vec<bool> = vec![false; inv.repositories.len()];
    let mut allow_empty_votes: Vec<Vec<bool>> = vec![Vec::new(); inv.repositories.len()];
    let mut unknown_time = 0u64;

    for pol in &p.policies {
        for (ri, repo) in inv.repositories.iter().enumerate() {
            if !pol.scope.matches(repo.name.as_str()) {
                continue;
            }
            match pol.keep_newest {
                Some(n) => {
                    floor_overridden[ri] = Some(floor_overridden[ri].map_or(n, |m| m.max(n)))
                }
                None => floor_plain[ri] = true,
            }
            allow_empty_votes[ri].push(pol.allow_empty.unwrap_or(p.allow_empty));
            let items = select_items(g, pol, &repos[ri], ri);
            if items.is_empty() {
                continue;
            }
            let ctx = Ctx {
                p,
                repo: &repos[ri],
                now,
                created: inp.created,
                pulled: &pull_times[ri],
                pulls_begin: pulls.begins,
            };
            for it in &items {
                let key = (ri as u32, it.unit, it.tag);
                selected.entry(key).or_default().push(pol.id.clone());
            }
            for (rules, is_keep) in [(&pol.keep, true), (&pol.delete, false)] {
                for rule in rules.iter() {
                    let results = ctx.eval_rule(rule, &items, &mut unknown_time);
                    for (i, r) in results.into_iter().enumerate() {
                        let it = &items[i];
                        let key = (ri as u32, it.unit, it.tag);
                        let name = format!("{}/{}", pol.id, rule.id);
                        match (is_keep, r) {
                            (true, Some(T3::True)) => keeps.entry(key).or_default().push(name),
                            (true, Some(T3::Unknown)) => keeps
                                .entry(key)
                                .or_default()
                                .push(format!("{name} (time or order unknown: kept)")),
                            (false, Some(T3::True)) => deletes.entry(key).or_default().push(name),
                            _ => {}
                        }
                    }
                }
            }
            if pol.otherwise == Otherwise::Delete {
                let own = format!("{}/", pol.id);
                for it in &items {
                    let key = (ri as u32, it.unit, it.tag);
                    if !keeps
                        .get(&key)
                        .is_some_and(|k| k.iter().any(|r| r.starts_with(&own)))
                        && !deletes
                            .get(&key)
                            .is_some_and(|k| k.iter().any(|r| r.starts_with(&own)))
                    {
                        deletes
                            .entry(key)
                            .or_default()
                            .push(format!("{}/otherwise", pol.id));
                    }
                }
            }
        }
    }
    if unknown_time > 0 && p.missing_time == MissingTime::Error {
        fatal.push(format!(
            "{unknown_time} selected image(s) have no known time for the policy's time source, and settings.missing_time is error"
        ));
    }
    for (ri, o) in floor_overridden.iter().enumerate() {
        if let Some(n) = o {
            floor[ri] = if floor_plain[ri] {
                (*n).max(p.keep_newest)
            } else {
                *n
            };
        }
    }
    let allow_empty: Vec<bool> = allow_empty_votes
        .iter()
        .map(|v| {
            if v.is_empty() {
                p.allow_empty
            } else {
                v.iter().all(|&a| a)
            }
        })
        .collect();

    // Keep-newest floor, by the configured time source, among non-referrer units.
    for (ri, repo) in repos.iter().enumerate() {
        let n = floor[ri] as usize;
        if n == 0 {
            continue;
        }
        let units = repo.units.iter().filter(|u| !u.referrer).map(|u| {
            let time = unit_time(p.time_source, u, repo, inp.created, &pull_times[ri]);
            let tags = u.tags.iter().map(|&t| repo.tags[t as usize].name.as_str());
            (u.digest, time, tags.min())
        });
        for (d, why) in floor::protect(units, n, |d| inv.digest(d)) {
            prot_digest.entry((ri as u32, d)).or_default().push(why);
        }
    }

    // ---- Decisions per unit -------------------------------------------------------------
    let mut images: Vec<ImageOutcome> = Vec::new();
    for (ri, repo) in repos.iter().enumerate() {
        let ri32 = ri as u32;
        for (ui, u) in repo.units.iter().enumerate() {
            // Protections of the digest that also keep its tags, and those that do not.
            let tprot = prot_digest
                .get(&(ri32, u.digest))
                .cloned()
                .unwrap_or_default();
            let mut dprot = tprot.clone();
            dprot.extend(
                digest_only
                    .get(&(ri32, u.digest))
                    .cloned()
                    .unwrap_or_default(),
            );
            let mut reasons: Vec<String>;
            let decide = |key: Key, extra: &[String]| -> (bool, Vec<String>) {
                let mut keep_r: Vec<String> = extra.to_vec();
                keep_r.extend(
                    keeps
                        .get(&key)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| format!("keep: {r}")),
                );
                if !keep_r.is_empty() {
                    return (false, keep_r);
                }
                if let Some(d) = deletes.get(&key) {
                    return (true, d.iter().map(|r| format!("delete: {r}")).collect());
                }
                match selected.get(&key) {
                    Some(pols) => (
                        false,
                        pols.iter()
                            .map(|p| format!("keep: {p}/otherwise"))
                            .collect(),
                    ),
                    None => (false, vec!["keep: selected by no policy".into()]),
                }
            };
            let mut tags = Vec::new();
            let mut any_tag_kept = false;
            for &ti in &u.tags {
                let t = &repo.tags[ti as usize];
                let mut extra: Vec<String> = prot_tag.get(&(ri32, ti)).cloned().unwrap_or_default();
                extra.extend(tprot.iter().cloned());
                let extra: Vec<String> = extra.into_iter().map(|r| format!("keep: {r}")).collect();
                let (del, why) = decide((ri32, ui, Some(ti)), &extra);
                any_tag_kept |= !del;
                tags.push(TagOutcome {
                    tag: t.name.to_string(),
                    remove: del,
                    reasons: dedup(why),
                    current_modified: t.current.map(|c| c.modified).unwrap_or_default(),
                });
            }
            let digest_protected = !dprot.is_empty();
            let decision = if u.tags.is_empty() {
                let extra: Vec<String> = dprot.iter().map(|r| format!("keep: {r}")).collect();
                let (del, why) = decide((ri32, ui, None), &extra);
                reasons = why;
                if del {
                    Decision::Delete
                } else {
                    Decision::Keep
                }
            } else if digest_protected || any_tag_kept {
                let removed: Vec<&TagOutcome> = tags.iter().filter(|t| t.remove).collect();
                if !removed.is_empty() && !p.untag {
                    for t in tags.iter_mut() {
                        if t.remove {
                            t.remove = false;
                            t.reasons
                                .push("keep: settings.untag is false (its digest stays)".into());
                        }
                    }
                }
                reasons = dprot.iter().map(|r| format!("keep: {r}")).collect();
                for t in &tags {
                    if !t.remove {
                        reasons.push(format!("keep: tag {} kept", t.tag));
                    }
                }
                if tags.iter().any(|t| t.remove) {
                    Decision::Untag
                } else {
                    Decision::Keep
                }
            } else {
                reasons = tags
                    .iter()
                    .flat_map(|t| {
                        t.reasons
                            .iter()
                            .map(move |r| format!("{r} (tag {})", t.tag))
                    })
                    .collect();
                Decision::Delete
            };
            images.push(ImageOutcome {
                repo: ri32,
                digest: u.digest,
                kind: u.kind,
                time: unit_time(p.time_source, u, repo, inp.created, &pull_times[ri]),
                pushed: u.pushed,
                decision,
                reasons: dedup(reasons),
                tags,
                cascade: Vec::new(),
            });
        }
    }

    // ---- Closure repair and cascades (to a fixpoint) ------------------------------------
    // Protections that land on a platform child or an attached referrer keep it (and so what
    // it needs), even though it is not an image of its own.
    let mut protected_pairs: HashSet<(u32, BlobId)> = prot_digest.keys().copied().collect();
    protected_pairs.extend(digest_only.keys().copied());
    for &(r, t) in prot_tag.keys() {
        if let Some(d) = inv.repositories[r as usize].tags[t as usize]
            .current
            .and_then(|c| c.target)
        {
            protected_pairs.insert((r, d));
        }
    }
    closure_repair(g, &repos, &mut images, &protected_pairs);

    // ---- Empty repositories and limits -------------------------------------------------
    let mut per_repo: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for im in images.iter().filter(|i| i.kind != "referrer") {
        let e = per_repo.entry(im.repo).or_default();
        e.0 += 1;
        if im.decision == Decision::Delete {
            e.1 += 1;
        }
    }
    let mut deleted_total = 0u64;
    for (&ri, &(total, deleted)) in &per_repo {
        deleted_total += deleted;
        let name = inv.repositories[ri as usize].name.as_str();
        if deleted > 0 && deleted == total {
            if !(allow_empty[ri as usize] && inp.unsafe_allow_empty) {
                out.blocked.push(format!(
                    "{name}: every image would be deleted; that needs allow_empty_repository: true in the policy and --unsafe-allow-empty"
                ));
            } else {
                out.warnings.push(format!("{name}: every image is deleted (allowed by allow_empty_repository and --unsafe-allow-empty)"));
            }
        }
        if let Some(f) = p.max_fraction
            && total > 0
            && (deleted as f64 / total as f64) > f
        {
            out.blocked.push(format!(
                "{name}: {deleted} of {total} images would be deleted, more than limits.max_fraction_per_repository {f}"
            ));
        }
    }
    if let Some(m) = p.max_images
        && deleted_total > m
    {
        out.blocked.push(format!(
            "{deleted_total} images would be deleted, more than limits.max_images_deleted {m}"
        ));
    }
    out.unknown_time = unknown_time;
    // Digest protections (except digest-only in-use references) keep the digest's tags.
    for ((r, d), reasons) in &prot_digest {
        for (ti, t) in inv.repositories[*r as usize].tags.iter().enumerate() {
            if t.current.and_then(|c| c.target) == Some(*d) {
                prot_tag
                    .entry((*r, ti as u32))
                    .or_default()
                    .extend(reasons.iter().cloned());
            }
        }
    }
    for (k, v) in digest_only {
        prot_digest.entry(k).or_default().extend(v);
    }
    out.protected_digests = prot_digest.into_iter().collect();
    out.protected_tags = prot_tag
        .into_iter()
        .map(|((r, t), v)| {
            (
                (
                    r,
                    inv.repositories[r as usize].tags[t as usize]
                        .name
                        .to_string(),
                ),
                v,
            )
        })
        .collect();
    if !fatal.is_empty() {
        return Err(EvalError(fatal));
    }
    images.sort_by(|a, b| {
        inv.repositories[a.repo as usize]
            .name
            .cmp(&inv.repositories[b.repo as usize].name)
            .then(inv.digest(a.digest).cmp(&inv.digest(b.digest)))
    });
    out.images = images;
    Ok(out)
}
