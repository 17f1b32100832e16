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

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum T3 {
    True,
    False,
    Unknown,
}

impl T3 {
    fn from(b: bool) -> T3 {
        if b { T3::True } else { T3::False }
    }
    fn not(self) -> T3 {
        match self {
            T3::True => T3::False,
            T3::False => T3::True,
            T3::Unknown => T3::Unknown,
        }
    }
}

#[derive(Clone, Debug)]
struct Unit {
    digest: BlobId,
    /// Tag indices (into the repository's tags).
    tags: Vec<u32>,
    kind: &'static str,
    pushed: Timestamp,
    referrer: bool,
    /// Subject digest when a referrer.
    subject: Option<BlobId>,
    opaque: bool,
}

#[derive(Clone, Debug)]
struct Item {
    unit: usize,
    tag: Option<u32>,
    captures: Vec<(String, String)>,
}

const COSIGN_SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// The subject of a cosign-style tag `sha256-<hex>.sig|.att|.sbom`.
pub fn cosign_subject(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = COSIGN_SUFFIXES.iter().find_map(|s| rest.strip_suffix(s))?;
    format!("sha256:{hex}").parse().ok()
}

struct Repo<'a> {
    units: Vec<Unit>,
    by_digest: HashMap<BlobId, usize>,
    /// Children (transitively) and referrers of units: digest -> role.
    tags: &'a [stowage_model::inventory::Tag],
}

fn trusted(state: LinkState) -> bool {
    Graph::link_trusted(state) && state != LinkState::Differs
}

fn build_units<'a>(g: &Graph<'a>, ri: usize) -> Repo<'a> {
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
        by_digest,
        tags: &repo.tags,
    }
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

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

fn unit_time(
    ts: TimeSource,
    u: &Unit,
    repo: &Repo<'_>,
    created: &HashMap<BlobId, Timestamp>,
    pulled: &HashMap<BlobId, Timestamp>,
) -> Option<Timestamp> {
    match ts {
        TimeSource::Pushed => Some(u.pushed),
        TimeSource::TagUpdated => u
            .tags
            .iter()
            .filter_map(|&t| repo.tags[t as usize].current.map(|c| c.modified))
            .max()
            .or(Some(u.pushed)),
        TimeSource::Created => created.get(&u.digest).copied(),
        TimeSource::Pulled => pulled.get(&u.digest).copied(),
    }
}

fn select_items(g: &Graph<'_>, pol: &PolicyC, repo: &Repo<'_>, ri: usize) -> Vec<Item> {
    let inv = g.inv;
    let present: HashSet<BlobId> = inv.repositories[ri]
        .revisions
        .iter()
        .map(|l| l.target())
        .collect();
    let mut items = Vec::new();
    for (ui, u) in repo.units.iter().enumerate() {
        match pol.referrers {
            ReferrerSelect::None if u.referrer => continue,
            ReferrerSelect::Orphaned
                if !u.referrer || u.subject.is_some_and(|s| present.contains(&s)) =>
            {
                continue;
            }
            ReferrerSelect::Any if !u.referrer => continue,
            _ => {}
        }
        if !pol.artifact_type.is_empty() {
            let m = g.manifest(u.digest);
            let mt = m
                .and_then(|m| inv.extra_of(m))
                .and_then(|e| e.artifact_type.as_deref().or(e.media_type.as_deref()))
                .unwrap_or_default();
            let hit = |p: &crate::values::Pattern| {
                let word = p.text.trim_start_matches('!');
                (word == "image" && u.kind == "image")
                    || (word == "index" && u.kind == "index")
                    || (!mt.is_empty() && p.matches(mt))
            };
            let includes: Vec<_> = pol.artifact_type.iter().filter(|p| !p.negated).collect();
            let ok = (includes.is_empty() || includes.iter().any(|p| hit(p)))
                && !pol.artifact_type.iter().filter(|p| p.negated).any(hit);
            if !ok {
                continue;
            }
        }
        if u.tags.is_empty() {
            if pol.tag_state != TagState::Tagged {
                items.push(Item {
                    unit: ui,
                    tag: None,
                    captures: Vec::new(),
                });
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
                items.push(Item {
                    unit: ui,
                    tag: Some(ti),
                    captures,
                });
            }
        }
    }
    items
}

struct Ctx<'a, 'g> {
    p: &'a Compiled,
    repo: &'a Repo<'g>,
    now: Timestamp,
    created: &'a HashMap<BlobId, Timestamp>,
    /// Last pull per image of this repository.
    pulled: &'a HashMap<BlobId, Timestamp>,
    pulls_begin: Option<Timestamp>,
}

impl Ctx<'_, '_> {
    /// Pulled within `window` of now: true when a pull is seen in it; false only when the
    /// data covers the whole window; otherwise unknown.
    fn pulled_within(&self, it: &Item, window: i64) -> T3 {
        let u = &self.repo.units[it.unit];
        match self.pulled.get(&u.digest) {
            Some(t) if t.seconds_until(self.now) < window => T3::True,
            _ => match self.pulls_begin {
                Some(b) if b <= self.now.saturating_sub_secs(window) => T3::False,
                _ => T3::Unknown,
            },
        }
    }

    fn item_time(&self, ts: TimeSource, it: &Item) -> Option<Timestamp> {
        let u = &self.repo.units[it.unit];
        match (ts, it.tag) {
            (TimeSource::TagUpdated, Some(t)) => {
                self.repo.tags[t as usize].current.map(|c| c.modified)
            }
            (TimeSource::TagUpdated, None) | (TimeSource::Pushed, _) => Some(u.pushed),
            (TimeSource::Created, _) => self.created.get(&u.digest).copied(),
            (TimeSource::Pulled, _) => self.pulled.get(&u.digest).copied(),
        }
    }

    fn tag_name(&self, it: &Item) -> Option<&str> {
        it.tag.map(|t| self.repo.tags[t as usize].name.as_str())
    }

    /// `None` for items the rule's `when` filter leaves out.
    fn eval_rule(&self, rule: &RuleC, items: &[Item], unknown: &mut u64) -> Vec<Option<T3>> {
        let included: Vec<bool> = items
            .iter()
            .map(|it| rule.when.as_ref().is_none_or(|w| self.when(w, it)))
            .collect();
        // Groups.
        let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            if !included[i] {
                continue;
            }
            let key: Vec<String> = rule
                .group_by
                .iter()
                .map(|g| {
                    it.captures
                        .iter()
                        .find(|(n, _)| n == g)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect();
            groups.entry(key).or_default().push(i);
        }
        let mut out: Vec<Option<T3>> = vec![None; items.len()];
        for members in groups.values() {
            let times: Vec<Option<Timestamp>> = members
                .iter()
                .map(|&i| self.item_time(rule.time_source, &items[i]))
                .collect();
            let reference = match self.p.relative_to {
                RelativeTo::Now => self.now,
                RelativeTo::GroupLatest => {
                    times.iter().flatten().max().copied().unwrap_or(self.now)
                }
            };
            // Counting leaves: per leaf, per member.
            let mut counted: Vec<Vec<T3>> = vec![vec![T3::False; members.len()]; rule.counters];
            self.precount(&rule.crit, rule, items, members, &times, &mut counted);
            for (k, &i) in members.iter().enumerate() {
                let mut saw_unknown_time = false;
                let r = self.eval(
                    &rule.crit,
                    &items[i],
                    times[k],
                    reference,
                    &counted,
                    k,
                    &mut saw_unknown_time,
                );
                if r == T3::Unknown && saw_unknown_time {
                    *unknown += 1;
                }
                out[i] = Some(r);
            }
        }
        out
    }

    fn precount(
        &self,
        c: &Crit,
        rule: &RuleC,
        items: &[Item],
        members: &[usize],
        times: &[Option<Timestamp>],
        counted: &mut [Vec<T3>],
    ) {
        match c {
            Crit::Last(n, slot) => {
                counted[*slot] = self.rank_last(*n, rule, items, members, times);
            }
            Crit::Calendar(buckets, slot) => {
                counted[*slot] = self.calendar(buckets, items, members, times);
            }
            Crit::All(cs) | Crit::Any(cs) => {
                for x in cs {
                    self.precount(x, rule, items, members, times, counted);
                }
            }
            Crit::Not(x) => self.precount(x, rule, items, members, times, counted),
            _ => {}
        }
    }

    fn rank_last(
        &self,
        n: u64,
        rule: &RuleC,
        items: &[Item],
        members: &[usize],
        times: &[Option<Timestamp>],
    ) -> Vec<T3> {
        let mut res = vec![T3::False; members.len()];
        // Order key per member; None = unknown.
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum K {
            T(Timestamp),
            S(semver::Version),
            N(NatKey),
        }
        let mut known: Vec<(K, usize)> = Vec::new();
        for (k, &i) in members.iter().enumerate() {
            let it = &items[i];
            let tag = self.tag_name(it);
            let sv = tag.and_then(crate::values::parse_semver);
            if rule.prerelease == Prerelease::ExcludeFromCount
                && sv.as_ref().is_some_and(|v| !v.pre.is_empty())
            {
                continue; // neither counts nor is kept by this leaf
            }
            let key = match rule.order_by {
                OrderBy::Time => times[k].map(K::T),
                OrderBy::Semver => sv.map(K::S),
                OrderBy::Natural => tag.map(|t| K::N(NatKey(t.to_string()))),
            };
            match key {
                Some(key) => known.push((key, k)),
                None => res[k] = T3::Unknown,
            }
        }
        // Newest / highest first; ties broken by tag name then digest for determinism.
        known.sort_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| {
                let (ia, ib) = (&items[members[a.1]], &items[members[b.1]]);
                self.tag_name(ib).cmp(&self.tag_name(ia)).then(
                    self.repo.units[ia.unit]
                        .digest
                        .cmp(&self.repo.units[ib.unit].digest),
                )
            })
        });
        let mut digests: Vec<BlobId> = Vec::new();
        for (_, k) in known {
            let d = self.repo.units[items[members[k]].unit].digest;
            let rank = match digests.iter().position(|x| *x == d) {
                Some(r) => r,
                None => {
                    digests.push(d);
                    digests.len() - 1
                }
            };
            res[k] = T3::from((rank as u64) < n);
        }
        res
    }

    fn calendar(
        &self,
        buckets: &[(Bucket, i64)],
        items: &[Item],
        members: &[usize],
        times: &[Option<Timestamp>],
    ) -> Vec<T3> {
        let mut res = vec![T3::False; members.len()];
        let mut order: Vec<usize> = Vec::new();
        for k in 0..members.len() {
            if times[k].is_some() {
                order.push(k);
            } else {
                res[k] = T3::Unknown;
            }
        }
        order.sort_by(|&a, &b| {
            times[b].cmp(&times[a]).then_with(|| {
                self.tag_name(&items[members[b]])
                    .cmp(&self.tag_name(&items[members[a]]))
            })
        });
        for &(b, n) in buckets {
            let mut last: Option<(i64, i64)> = None;
            let mut count = 0i64;
            for &k in &order {
                let Some(t) = times[k] else { continue };
                let key = bucket_key(b, t, &self.p.tz);
                if last != Some(key) {
                    if n == -1 || count < n {
                        res[k] = T3::True;
                        count += 1;
                    }
                    last = Some(key);
                }
            }
        }
        res
    }

    fn when(&self, w: &WhenC, it: &Item) -> bool {
        if let Some(tp) = &w.tag {
            match self.tag_name(it) {
                Some(t) if tp.matches(t) != tp.negated => {}
                _ => return false,
            }
        }
        w.capture.iter().all(|(name, pat)| {
            it.captures
                .iter()
                .find(|(n, _)| n == name)
                .is_some_and(|(_, v)| pat.matches(v) != pat.negated)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn eval(
        &self,
        c: &Crit,
        it: &Item,
        time: Option<Timestamp>,
        reference: Timestamp,
        counted: &[Vec<T3>],
        k: usize,
        unknown_time: &mut bool,
    ) -> T3 {
        let age = |unknown_time: &mut bool| -> Option<i64> {
            match time {
                Some(t) => Some(t.seconds_until(reference)),
                None => {
                    *unknown_time = true;
                    None
                }
            }
        };
        match c {
            Crit::Last(_, slot) | Crit::Calendar(_, slot) => {
                let r = counted[*slot][k];
                if r == T3::Unknown && time.is_none() {
                    *unknown_time = true;
                }
                r
            }
            Crit::Within(d) => age(unknown_time).map_or(T3::Unknown, |a| T3::from(a < *d)),
            Crit::OlderThan(d) => age(unknown_time).map_or(T3::Unknown, |a| T3::from(a >= *d)),
            Crit::PulledWithin(d) => self.pulled_within(it, *d),
            Crit::NotPulledWithin(d) => self.pulled_within(it, *d).not(),
            Crit::When(w) => T3::from(self.when(w, it)),
            Crit::All(cs) => {
                let mut r = T3::True;
                for x in cs {
                    match self.eval(x, it, time, reference, counted, k, unknown_time) {
                        T3::False => return T3::False,
                        T3::Unknown => r = T3::Unknown,
                        T3::True => {}
                    }
                }
                r
            }
            Crit::Any(cs) => {
                let mut r = T3::False;
                for x in cs {
                    match self.eval(x, it, time, reference, counted, k, unknown_time) {
                        T3::True => return T3::True,
                        T3::Unknown => r = T3::Unknown,
                        T3::False => {}
                    }
                }
                r
            }
            Crit::Not(x) => self
                .eval(x, it, time, reference, counted, k, unknown_time)
                .not(),
        }
    }
}

#[derive(PartialEq, Eq)]
struct NatKey(String);
impl PartialOrd for NatKey {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for NatKey {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        crate::values::natural_cmp(&self.0, &o.0)
    }
}

fn bucket_key(b: Bucket, t: Timestamp, tz: &jiff::tz::TimeZone) -> (i64, i64) {
    let ts = jiff::Timestamp::from_nanosecond(t.0 as i128).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let z = ts.to_zoned(tz.clone());
    let y = z.year() as i64;
    let m = z.month() as i64;
    let d = z.day() as i64;
    match b {
        Bucket::Hourly => (y * 10000 + m * 100 + d, z.hour() as i64),
        Bucket::Daily => (y * 10000 + m * 100 + d, 0),
        Bucket::Weekly => {
            let w = z.date().iso_week_date();
            (w.year() as i64, w.week() as i64)
        }
        Bucket::Monthly => (y, m),
        Bucket::Quarterly => (y, (m - 1) / 3),
        Bucket::Yearly => (y, 0),
    }
}

/// Cascades and the "nothing a survivor needs" repair, to a fixpoint.
fn closure_repair(
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
