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
use stowage_model::pulls::PullByReference;
use stowage_model::time::Timestamp;

use crate::compile::{Bucket, Compiled, Crit, PolicyC, RuleC, WhenC};
use crate::file::{
    MissingTime, OrderBy, Otherwise, Prerelease, ReferrerSelect, RelativeTo, TagState, TimeSource,
};
use crate::floor;
use crate::refs::{ImageRef, SourceRefs, host_matches};

mod criteria;
mod decide;
mod policies;
mod protect;
mod units;
use criteria::{Ctx, T3};
use units::{
    Item, Repo, build_units, closure_repair, dedup, select_items, signature_elsewhere_possible,
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
    /// The judged build date per manifest (`stowage_model::build`; only needed for
    /// `time_source: built`); an unknown one is absent.
    pub built: &'a HashMap<BlobId, Timestamp>,
    /// What is inside manifests and configs (platform, labels, annotations), per top-level
    /// manifest; only needed by the selectors that use them ([`Compiled::needs_facts`]).
    pub facts: &'a HashMap<BlobId, ManifestFacts>,
    pub in_use: &'a [LoadedSource],
    /// `--unsafe-allow-empty`.
    pub unsafe_allow_empty: bool,
    /// Pull data (from the policy's pull source), when the policy uses it.
    pub pulls: Option<&'a PullData>,
}

/// What a manifest and its config say, beyond what the scan keeps: read by the caller
/// (one bounded read per manifest and config) only when a policy selects on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestFacts {
    /// `os/architecture[/variant]` of a single-platform image, from its config; an index's
    /// platforms come from the index itself (the scan keeps them).
    pub platform: Option<String>,
    /// The config's OCI labels (`config.Labels`; for an index, every platform's, merged);
    /// `None` when a config could not be read: unknown, never "no labels" (a negated
    /// selector would otherwise select an image it cannot see into).
    pub labels: Option<BTreeMap<String, String>>,
    /// The manifest's (or index's) own annotations; `None` when it could not be read.
    pub annotations: Option<BTreeMap<String, String>>,
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
    /// Pulls as requested, for the would-break check (`stowage-plan::replay`): one per
    /// (repository, reference, digest, day), scanners and ignored clients excluded.
    pub recent: Vec<PullByReference>,
}

impl PullData {
    /// The data as it stood at `t`: pulls after `t` removed, coverage ending at `t` (for a
    /// simulated day). Each image's last pull is taken from [`PullData::recent`].
    pub fn as_of(&self, t: Timestamp) -> PullData {
        let recent: Vec<PullByReference> = self
            .recent
            .iter()
            .filter(|p| p.last_pulled <= t)
            .cloned()
            .collect();
        let mut last: HashMap<(String, String), Timestamp> = HashMap::new();
        for p in &recent {
            let e = last
                .entry((p.repository.clone(), p.digest.clone()))
                .or_insert(p.last_pulled);
            *e = (*e).max(p.last_pulled);
        }
        let begins = self.begins.filter(|b| *b <= t);
        PullData {
            source: self.source.clone(),
            begins,
            ends: begins.and(self.ends.map(|e| e.min(t))),
            last,
            recent,
        }
    }
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

/// An in-use source as evaluation read it; recorded as is in a retention plan
/// (`retention.in_use_sources`), so apply and `explain` show what the plan saw.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
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

/// The subject of a cosign-style tag or a referrers-tag-schema tag (`stowage_model::signature`).
pub use stowage_model::signature::subject as cosign_subject;

/// Evaluate `policy` over the graph: protections, every policy's votes, a decision per
/// image (keep wins), closure repair, then the rails.
pub fn evaluate(p: &Compiled, inp: &Inputs<'_, '_>) -> Result<Outcome, EvalError> {
    let g = inp.graph;
    let inv = g.inv;
    let now = inp.now;
    let mut out = Outcome::default();
    let mut fatal = Vec::new();

    // Digests linked in any repository: the subjects signatures stored elsewhere
    // (`COSIGN_REPOSITORY`, `settings.cosign_repositories`) follow.
    let linked: HashSet<BlobId> = inv
        .repositories
        .iter()
        .flat_map(|r| r.revisions.iter().map(|l| l.target()))
        .collect();
    let repos: Vec<Repo<'_>> = (0..inv.repositories.len())
        .map(|ri| {
            let elsewhere = p.cosign_repos.matches(inv.repositories[ri].name.as_str());
            build_units(g, ri, elsewhere.then_some(&linked))
        })
        .collect();
    units::signatures_elsewhere(p, g, &repos, &linked, &mut out.warnings);
    // Coverage first: a pull condition looking back further than the data goes is refused,
    // never read as "never pulled".
    let empty_pulls = PullData::default();
    let pulls = inp.pulls.unwrap_or(&empty_pulls);
    crate::pull_coverage::check(p, inp.pulls, now, &mut fatal, &mut out.warnings);
    let pulled = pull_times(g, &repos, pulls);
    let ctx = Ctx {
        p,
        g,
        repos: &repos,
        now,
        created: inp.created,
        built: inp.built,
        facts: inp.facts,
        pulled: &pulled,
        pulls_begin: pulls.begins,
        pull_note: pull_note(pulls),
    };

    let mut prot = protect::Protections::default();
    prot.in_use(p, inp, &repos, &mut out, &mut fatal);
    prot.pins(p, g, &repos, now, &mut out.warnings);
    prot.tags_and_units(p, g, &repos, now);
    let votes = policies::vote(&ctx);
    if votes.unknown_time > 0 && p.missing_time == MissingTime::Error {
        fatal.push(format!(
            "{} selected image(s) have no known time for the policy's time source, and settings.missing_time is error",
            votes.unknown_time
        ));
    }
    prot.floor(&ctx, &votes.floor);

    let mut images = decide::decide(&ctx, &prot, &votes);
    // Protections that land on a platform child or an attached referrer keep it (and so
    // what it needs), even though it is not an image of its own.
    closure_repair(g, &repos, &mut images, &prot.pairs(inv));
    units::signatures_elsewhere_deleted(g, &repos, &linked, &images, &mut out.blocked);
    decide::rails(
        p,
        inv,
        &images,
        &votes.allow_empty,
        inp.unsafe_allow_empty,
        &mut out,
    );
    out.unknown_time = votes.unknown_time;
    prot.finish(inv, &mut out);
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

/// Each image's last pull, per repository: its own digest's, or any of its platform
/// children's (a pull of an index counts for its children and vice versa).
fn pull_times(
    g: &Graph<'_>,
    repos: &[Repo<'_>],
    pulls: &PullData,
) -> Vec<HashMap<BlobId, Timestamp>> {
    let inv = g.inv;
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
    repos
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
        .collect()
}

/// How a reason names the pull data it relied on (issue 25: a pull-based decision names its
/// coverage, so a reviewer sees what "not pulled in 30d" was judged from).
fn pull_note(pulls: &PullData) -> String {
    match pulls.begins {
        None => String::new(),
        Some(b) => format!(
            " (pull data: {}, covered {} to {})",
            if pulls.source.is_empty() {
                "pull source"
            } else {
                &pulls.source
            },
            b.rfc3339(),
            pulls
                .ends
                .map(|t| t.rfc3339())
                .unwrap_or_else(|| "-".into())
        ),
    }
}
