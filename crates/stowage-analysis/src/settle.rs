//! A plan from a scan that stated only what a plan may name
//! ([`stowage_scan::ScanOptions::stat_candidates_only`]).
//!
//! The plan is made on the listing-only scan (its unstated files read as written at the
//! latest time there is, so a grace period holds them back and nothing is planned on their
//! account); the blobs it names and the links pointing at them are stat-ed
//! ([`stowage_scan::resolve`]); the registry is analysed again and the plan made again;
//! until the plan names nothing unstated. Each round can only replace "latest time" with
//! the file's real time, so the rounds converge: usually one stat round and a second plan.

use stowage_model::digest::Digest;
use stowage_scan::{Resolved, Unexpected};
use stowage_storage::Storage;

use crate::Analysis;

/// Rounds before giving up and asking for a full scan (each round stats what the previous
/// plan newly named; a real registry settles in one or two).
const MAX_ROUNDS: usize = 8;

/// Make `plan` on `analysis` until it names (by the digests it returns beside the plan)
/// no blob whose `data` or links to it are unstated, stating them in between on
/// `concurrency` threads. `Err` when a stat finds what a listing-only scan could not
/// know ([`Unexpected`]: a file gone, an odd link): scan again with every file stat-ed.
pub fn settle<P>(
    mut analysis: Analysis,
    storage: &dyn Storage,
    concurrency: usize,
    mut plan: impl FnMut(&Analysis) -> (P, Vec<Digest>),
) -> Result<(Analysis, P), Unexpected> {
    for _ in 0..MAX_ROUNDS {
        let (p, named) = plan(&analysis);
        let ids: Vec<_> = named.iter().filter_map(|d| analysis.inv.id_of(d)).collect();
        let opts = analysis.opts.clone();
        let mut inv = std::mem::take(&mut analysis.inv);
        let r = stowage_scan::resolve(storage, &mut inv, &ids, concurrency)?;
        if r == Resolved::default() {
            // Nothing changed: put the analysis back together without redoing it.
            analysis.inv = inv;
            return Ok((analysis, p));
        }
        analysis = if r.dropped == 0 {
            // Only sizes and dates were filled in: the graph and its findings stand.
            analysis.restated(inv)
        } else {
            Analysis::new(inv, &opts)
        };
    }
    Err(Unexpected {
        path: storage.describe(),
        why: format!(
            "{}: the plan still named unstated files after {MAX_ROUNDS} rounds",
            storage.describe()
        ),
    })
}
