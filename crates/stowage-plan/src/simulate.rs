//! What-if over time: a policy evaluated at each day of a window, with the bytes it would
//! have freed and the pulls it would have broken that day. The evidence a team needs before
//! turning a policy on.
//!
//! Each day is the plan [`crate::retention::plan`] makes with `now` set to that day and the
//! pull data as it stood then ([`PullData::as_of`]); the pulls it would have broken are the
//! pulls *after* that day of what it deletes ([`crate::replay::replay`]). The pull rows are
//! read in days that end at the simulated instants (`now - k days`, see
//! `stowage_history::Db::pulls_by_reference`), so with `--every` a whole number of days no
//! row straddles a simulated instant and each day sees exactly the pulls made by then;
//! with a shorter step a row counts at its last pull. The registry is
//! today's scan: an image pushed after the day did not exist then and is kept
//! (`protection/after_now`); what was deleted since, or a tag that has moved since, is not
//! seen (the history database keeps figures per snapshot, not whole inventories).

use serde::Serialize;
use stowage_graph::Graph;
use stowage_model::time::Timestamp;
use stowage_policy::PullData;
use stowage_storage::Storage;

use crate::retention::{LoadedPolicy, RetentionRun};

/// One simulated day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SimDay {
    pub at: Timestamp,
    pub images_deleted: u64,
    pub images_untagged: u64,
    pub tags_removed: u64,
    /// Freed after GC, as the plan that day counts it.
    pub bytes_freed: u64,
    /// Pulls after that day the plan would have broken: references and pulls.
    pub references_broken: u64,
    pub pulls_broken: u64,
    /// Why that day's plan would have been blocked (rails), or refused (an error).
    pub blocked: Vec<String>,
    pub error: Option<String>,
}

/// A simulation: the days, and what it rests on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Simulation {
    pub policy: String,
    /// The pull data used (`None`: no pull data; nothing could be broken, or known).
    pub pulls: Option<String>,
    pub note: String,
    pub days: Vec<SimDay>,
}

/// The days from `from` to `to` (inclusive) every `every` seconds.
pub fn days(from: Timestamp, to: Timestamp, every: i64) -> Vec<Timestamp> {
    let step = every.max(1);
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        out.push(t);
        t = Timestamp(t.0.saturating_add(step.saturating_mul(1_000_000_000)));
        if out.len() > 10_000 {
            break; // a bounded answer: a simulation of ten thousand days is enough
        }
    }
    out
}

/// Evaluate `policy` at each of `at` over today's scan.
pub fn simulate(
    policy: &LoadedPolicy,
    g: &Graph<'_>,
    storage: &dyn Storage,
    pulls: Option<&PullData>,
    at: &[Timestamp],
) -> Simulation {
    let mut out = Vec::new();
    for &now in at {
        let then = pulls.map(|p| p.as_of(now));
        let run = RetentionRun {
            policy,
            now,
            unsafe_allow_empty: false,
            pulls: then.as_ref(),
        };
        let mut day = SimDay {
            at: now,
            images_deleted: 0,
            images_untagged: 0,
            tags_removed: 0,
            bytes_freed: 0,
            references_broken: 0,
            pulls_broken: 0,
            blocked: Vec::new(),
            error: None,
        };
        match crate::retention::plan(&run, g, storage, 0) {
            Err(e) => day.error = Some(e.to_string()),
            Ok((plan, _)) => {
                if let Some(r) = &plan.retention {
                    day.images_deleted = r.bytes.images_deleted;
                    day.images_untagged = r.bytes.images_untagged;
                    day.tags_removed = r.bytes.tags_removed;
                    day.bytes_freed = r.bytes.reclaimable_after_gc;
                    day.blocked = r.rails_blocked.clone();
                }
                if let Some(p) = pulls {
                    let after: Vec<_> = p
                        .recent
                        .iter()
                        .filter(|x| x.last_pulled > now)
                        .cloned()
                        .collect();
                    let broken = crate::replay::replay(&plan, &after, None);
                    day.references_broken = broken.len() as u64;
                    day.pulls_broken = broken.iter().map(|b| b.pulls).sum();
                }
            }
        }
        out.push(day);
    }
    Simulation {
        policy: policy.path.display().to_string(),
        pulls: pulls.map(|p| p.source.clone()),
        note: "each day: the plan made that day over today's scan (images pushed later are kept; images deleted since are not seen), and the pulls after that day it would have broken".into(),
        days: out,
    }
}
