//! Whether pull data covers what a policy's pull conditions look back over, and the
//! coverage a plan relies on, named in the plan.
//!
//! The data's coverage (`PullData::begins`..`ends`) is the span the pull source actually
//! delivered data for without a gap (see `stowage-history`'s coverage: days with data, the run
//! that ends with the newest), not the oldest and newest times ever seen: one event dated
//! long ago does not make the years in between covered.

use stowage_model::time::Timestamp;

use crate::compile::Compiled;
use crate::eval::PullData;

/// Refuse (in `fatal`) pull conditions the data does not cover, and stale data; when the
/// data is used, name the coverage relied on (in `warnings`, which the plan keeps).
pub(crate) fn check(
    p: &Compiled,
    data: Option<&PullData>,
    now: Timestamp,
    fatal: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    if !p.uses_pulls {
        return;
    }
    let empty = PullData::default();
    let pulls = data.unwrap_or(&empty);
    match (data, pulls.begins) {
        (None, _) | (_, None) => fatal.push(format!(
            "the policy uses pull data, but {} holds none: ingest the registry's access logs first (`stowage usage ingest`)",
            if pulls.source.is_empty() { "the pull source" } else { &pulls.source }
        )),
        (Some(_), Some(begins)) => {
            for (at, window) in &p.pull_windows {
                let starts = now.saturating_sub_secs(*window);
                if begins > starts {
                    fatal.push(format!(
                        "{at}: looks back to {}, but pull data begins at {}: not covered (an image not seen pulled might have been pulled before the data began, or in a gap in it)",
                        starts.rfc3339(),
                        begins.rfc3339()
                    ));
                }
            }
            if let (Some(max), Some(ends)) = (p.pull_sources.first().and_then(|s| s.max_age), pulls.ends)
                && ends.seconds_until(now) > max
            {
                fatal.push(format!(
                    "pull data in {} is stale: its newest point is {}, older than max_age {max}s",
                    pulls.source,
                    ends.rfc3339()
                ));
            }
            warnings.push(format!(
                "pull conditions relied on {}: covered without a gap from {} to {}",
                pulls.source,
                begins.rfc3339(),
                pulls.ends.map(|t| t.rfc3339()).unwrap_or_else(|| "-".into())
            ));
        }
    }
}
