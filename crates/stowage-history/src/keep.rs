//! Keeping the history small: a snapshot only when something changed (or at most daily),
//! and `prune` with daily and weekly thinning.
//!
//! Why: the dashboard recorded a full snapshot at every scan, changed or not (about 20 MB a
//! day at the default interval on a 10k-blob registry), and nothing removed them (issue 19
//! item 9). What "changed" means: any headline figure, any repository's figures, or any tag's
//! digest or bytes differ from the last snapshot's; the blob table (first and last seen) is
//! updated only with a snapshot, so "new blobs" between two snapshots stays exact.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::params;
use stowage_model::time::Timestamp;

use crate::{Db, HistoryError, SnapshotData, sql};

/// When a scan becomes a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Every scan (`snapshot`, `report --history`: the user asked for one).
    Every,
    /// Only when something changed since the last snapshot (the dashboard's default).
    #[default]
    Changed,
    /// At most one per UTC day (the last change of a day waits for the next day's scan).
    Daily,
    /// Never: the database only receives notifications.
    Never,
}

/// What [`Db::record_with`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotRecorded {
    /// A new snapshot, with its id.
    New(i64),
    /// Not stored: nothing changed since this snapshot, or one was stored this day.
    Skipped(Option<i64>),
}

/// What [`Db::prune`] removed and kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub removed: u64,
    pub kept: u64,
    /// Blob rows no kept snapshot saw.
    pub blobs_removed: u64,
}

impl Db {
    /// The newest snapshot: its id and time.
    pub fn last_snapshot(&self) -> Result<Option<(i64, Timestamp)>, HistoryError> {
        Ok(self.snapshots()?.last().map(|s| (s.id, s.taken_at)))
    }

    /// Whether `d` has the same figures as snapshot `id`.
    pub fn same_as(&self, id: i64, d: &SnapshotData) -> Result<bool, HistoryError> {
        let e = |x| sql(&self.path, x);
        let s = &d.summary;
        let head: Vec<i64> = self
            .conn
            .query_row(
                "SELECT storage = ?2, blobs, blob_bytes, referenced_bytes, unreferenced_bytes,
                   untagged_exclusive_bytes, upload_bytes, repositories, tags, manifests,
                   untagged_manifests, findings_error, findings_warning, findings_info
                 FROM snapshot WHERE id = ?1",
                params![id, d.storage],
                |r| (0..14).map(|i| r.get::<_, i64>(i)).collect(),
            )
            .map_err(e)?;
        let now: Vec<i64> = std::iter::once(1).chain(crate::summary_row(s)).collect();
        if head != now {
            return Ok(false);
        }
        let repos: BTreeMap<String, (u64, u64, u64)> = d
            .repositories
            .iter()
            .map(|r| (r.name.clone(), (r.total_bytes, r.exclusive_bytes, r.tags)))
            .collect();
        if repos != self.repos(id)? {
            return Ok(false);
        }
        let tags: BTreeMap<(String, String), Option<String>> = d
            .tags
            .iter()
            .map(|t| ((t.repository.clone(), t.tag.clone()), t.digest.clone()))
            .collect();
        Ok(tags == self.tags(id)?)
    }

    /// Record `d` as a snapshot when `policy` says so.
    pub fn record_with(
        &mut self,
        d: &SnapshotData,
        policy: SnapshotPolicy,
    ) -> Result<SnapshotRecorded, HistoryError> {
        let last = self.last_snapshot()?;
        let skip = match (policy, last) {
            (SnapshotPolicy::Never, _) => true,
            (SnapshotPolicy::Every, _) | (_, None) => false,
            (SnapshotPolicy::Changed, Some((id, _))) => self.same_as(id, d)?,
            (SnapshotPolicy::Daily, Some((_, at))) => {
                at.rfc3339().get(..10) == d.taken_at.rfc3339().get(..10)
            }
        };
        if skip {
            return Ok(SnapshotRecorded::Skipped(last.map(|l| l.0)));
        }
        Ok(SnapshotRecorded::New(self.record(d)?))
    }

    /// Remove snapshots older than `keep_secs` before `now`, and thin the rest: every
    /// snapshot of the last two days, the last of each UTC day for 30 days, the last of each
    /// week (Monday-based) beyond. The newest snapshot is always kept.
    pub fn prune(&mut self, keep_secs: i64, now: Timestamp) -> Result<Pruned, HistoryError> {
        let snaps = self.snapshots()?;
        let newest = snaps.last().map(|s| s.id);
        // Walk newest first: the first snapshot seen of a bucket is its last, and is kept.
        let mut buckets: BTreeSet<(u8, i64)> = BTreeSet::new();
        let mut remove = Vec::new();
        for s in snaps.iter().rev() {
            let age = s.taken_at.seconds_until(now);
            let day = s.taken_at.secs().div_euclid(86_400);
            let keep = if Some(s.id) == newest {
                true
            } else if age > keep_secs {
                false
            } else if age <= 2 * 86_400 {
                true
            } else if age <= 30 * 86_400 {
                buckets.insert((0, day))
            } else {
                // 1970-01-01 was a Thursday: day + 3 counts weeks from a Monday.
                buckets.insert((1, (day + 3).div_euclid(7)))
            };
            if !keep {
                remove.push(s.id);
            }
        }
        let path = self.path.clone();
        let e = |x| sql(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        for id in &remove {
            tx.execute("DELETE FROM tag WHERE snapshot_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM repository WHERE snapshot_id = ?1", [id])
                .map_err(e)?;
            tx.execute("DELETE FROM snapshot WHERE id = ?1", [id])
                .map_err(e)?;
        }
        // A blob last seen before the oldest kept snapshot was gone by then.
        let blobs_removed = tx
            .execute(
                "DELETE FROM blob WHERE last_seen_snapshot < (SELECT COALESCE(MIN(id), 0) FROM snapshot)",
                [],
            )
            .map_err(e)? as u64;
        tx.commit().map_err(e)?;
        Ok(Pruned {
            removed: remove.len() as u64,
            kept: (snaps.len() - remove.len()) as u64,
            blobs_removed,
        })
    }
}
