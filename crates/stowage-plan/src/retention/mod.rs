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
//!
//! - [`inputs`]: the policy file and what an evaluation reads besides the scan;
//! - [`pipeline`]: the one function a plan and apply's protection re-check both call
//!   (the same inputs, so a re-check cannot drift from the plan it re-checks);
//! - `build`: the evaluation turned into a plan.

mod build;
pub mod inputs;
pub mod pipeline;

pub use build::build;
pub use inputs::{LoadedPolicy, PolicyError, load_built, load_image_data, load_sources};
pub use pipeline::{
    RecheckError, RetentionRun, evaluate, plan, protection, recheck, recheck_pull_source,
};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, LinkKind};
use stowage_model::time::Timestamp;
use stowage_policy::eval::{Decision, ImageOutcome, Outcome, SourceStatus};

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
    pub in_use_sources: Vec<SourceStatus>,
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

pub(crate) fn hex(b: &[u8]) -> String {
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
