//! Which manifest a tag pointed at, at a given moment.
//!
//! The storage keeps, per tag, every digest it ever pointed at (`tags/<tag>/index/.../link`,
//! whose date is the *last* time the tag was set to that digest) and the current one
//! (`tags/<tag>/current/link`, dated when the tag last moved). Pushes the store saw by
//! notification (tag and digest) add exact points. A pull at time `t` is attributed to the
//! digest with the latest point at or before `t`; a pull before the first point, or of a tag
//! the storage does not know (deleted since), stays unresolved: kept, reported, never guessed.
//! Points at the same time (a tree restored with coarse dates) go to the current link, which
//! the registry writes after the index link; any other tie is unresolved.
//!
//! Limit, inherent to the storage: when a tag returned to a digest it had pointed at before
//! (A, then B, then A again), the index keeps only the latest date for A, so a pull in A's
//! first period is unresolved (before the first point), and when the tag went A, B, C, B, a
//! pull in B's first period is attributed to A. Push notifications remove both limits.

use std::collections::HashMap;

use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;

/// One point of a tag's history: (time, digest, is the current link).
type Point = (Timestamp, String, bool);

/// Per (repository, tag): the points, sorted.
#[derive(Clone, Debug, Default)]
pub struct TagTimeline {
    tags: HashMap<(String, String), Vec<Point>>,
    storage_scanned: bool,
}

/// Why a tag was not resolved.
pub const NO_STORAGE: &str = "no storage scanned (pass --storage)";
pub const UNKNOWN_TAG: &str = "tag not in storage (deleted since?)";
pub const BEFORE_HISTORY: &str = "before the tag's recorded history";
pub const AMBIGUOUS: &str = "the tag's history has several digests at the same time";

impl TagTimeline {
    /// From a scan of the storage.
    pub fn from_inventory(inv: &Inventory) -> TagTimeline {
        let mut t = TagTimeline {
            storage_scanned: true,
            ..TagTimeline::default()
        };
        for r in &inv.repositories {
            for tag in &r.tags {
                let v = t
                    .tags
                    .entry((r.name.as_str().to_string(), tag.name.to_string()))
                    .or_default();
                for l in r.history(tag) {
                    v.push((l.modified(), inv.digest(l.target()).to_string(), false));
                }
                if let Some(c) = tag.current
                    && let Some(target) = c.target
                {
                    v.push((c.modified, inv.digest(target).to_string(), true));
                }
            }
        }
        t.finish();
        t
    }

    /// Add a point (a push seen by notification, a recorded snapshot).
    pub fn add(&mut self, repository: &str, tag: &str, at: Timestamp, digest: &str) {
        self.tags
            .entry((repository.to_string(), tag.to_string()))
            .or_default()
            .push((at, digest.to_string(), false));
    }

    /// Sort after [`TagTimeline::add`].
    pub fn finish(&mut self) {
        for v in self.tags.values_mut() {
            v.sort();
            v.dedup();
        }
    }

    /// The digest `repository:tag` pointed at, at `at`.
    pub fn resolve(
        &self,
        repository: &str,
        tag: &str,
        at: Timestamp,
    ) -> Result<&str, &'static str> {
        let Some(v) = self.tags.get(&(repository.to_string(), tag.to_string())) else {
            return Err(if self.storage_scanned {
                UNKNOWN_TAG
            } else {
                NO_STORAGE
            });
        };
        let n = v.partition_point(|(t, _, _)| *t <= at);
        if n == 0 {
            return Err(BEFORE_HISTORY);
        }
        // Points at the same time (coarse file dates, restored trees): the current link is
        // written after its index link, so it wins a tie; any other tie is not guessed.
        let last = v[n - 1].0;
        let tied: Vec<&Point> = v[..n].iter().rev().take_while(|p| p.0 == last).collect();
        let first = tied[0].1.as_str();
        if tied.iter().all(|p| p.1 == first) {
            return Ok(first);
        }
        match tied.iter().find(|p| p.2) {
            Some(c) => Ok(c.1.as_str()),
            None => Err(AMBIGUOUS),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_moved_tag_resolves_by_time() {
        let mut tl = TagTimeline::default();
        tl.add("a", "latest", t("2026-01-01T00:00:00Z"), "sha256:11");
        tl.add("a", "latest", t("2026-02-01T00:00:00Z"), "sha256:22");
        tl.finish();
        assert_eq!(
            tl.resolve("a", "latest", t("2025-12-31T00:00:00Z")),
            Err(BEFORE_HISTORY)
        );
        assert_eq!(
            tl.resolve("a", "latest", t("2026-01-01T00:00:00Z")),
            Ok("sha256:11")
        );
        assert_eq!(
            tl.resolve("a", "latest", t("2026-01-15T00:00:00Z")),
            Ok("sha256:11")
        );
        assert_eq!(
            tl.resolve("a", "latest", t("2026-03-01T00:00:00Z")),
            Ok("sha256:22")
        );
        assert_eq!(
            tl.resolve("a", "other", t("2026-03-01T00:00:00Z")),
            Err(NO_STORAGE)
        );
    }

    #[test]
    fn ties_go_to_the_current_link_or_stay_unresolved() {
        let mut tl = TagTimeline::default();
        let at = t("2026-01-01T00:00:00Z");
        tl.add("a", "x", at, "sha256:22");
        tl.add("a", "x", at, "sha256:11");
        tl.finish();
        assert_eq!(tl.resolve("a", "x", at), Err(AMBIGUOUS));
        tl.tags
            .get_mut(&("a".into(), "x".into()))
            .unwrap()
            .push((at, "sha256:11".into(), true));
        tl.finish();
        assert_eq!(tl.resolve("a", "x", at), Ok("sha256:11"));
    }
}
