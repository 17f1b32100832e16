//! What pull data covers: the UTC days on which each source delivered data, and the covered
//! span retention relies on.
//!
//! Coverage used to run from the oldest to the newest time ever seen, so one event dated
//! 1971 (a forged notification, a stray old log line) made decades "covered" and a
//! `not_pulled_within: 30d` rule valid with an hour of real data. Now each source records
//! the days it delivered data on ([`Coverage`], table `usage_day`), and the covered span is
//! the run of consecutive days (any source) that ends with the newest day: a day without any
//! data is a gap, and nothing before a gap is covered.

use rusqlite::{Transaction, params};
use stowage_model::time::Timestamp;

use crate::{Db, HistoryError};

pub use stowage_usage::events::{Coverage, NS_PER_DAY, day_of};

/// The covered span of per-day data (day, first, last), given newest day first: the run of
/// consecutive days ending with the newest.
fn newest_run(
    days: impl Iterator<Item = (i64, i64, i64)>,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let mut begins = None;
    let mut ends = None;
    let mut prev: Option<i64> = None;
    for (day, first, last) in days {
        if prev.is_some_and(|p| p != day + 1) {
            break;
        }
        if ends.is_none() {
            ends = Some(Timestamp(last));
        }
        begins = Some(Timestamp(first));
        prev = Some(day);
    }
    (begins, ends)
}

impl Db {
    /// Add a batch's days (and rejected count) to its source's record, in `tx`.
    pub(crate) fn record_coverage(
        tx: &Transaction<'_>,
        kind: &str,
        c: &Coverage,
        received: u64,
        recorded: (u64, u64),
    ) -> rusqlite::Result<()> {
        if let (Some(first), Some(last)) = (c.first(), c.last()) {
            tx.execute(
                "INSERT INTO usage_source (kind, first_ns, last_ns, received, recorded, duplicates)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind) DO UPDATE SET first_ns = min(first_ns, excluded.first_ns),
                   last_ns = max(last_ns, excluded.last_ns), received = received + excluded.received,
                   recorded = recorded + excluded.recorded, duplicates = duplicates + excluded.duplicates",
                params![
                    kind,
                    first.0,
                    last.0,
                    received as i64,
                    recorded.0 as i64,
                    recorded.1 as i64
                ],
            )?;
        }
        if c.rejected > 0 {
            tx.execute(
                "INSERT INTO usage_rejected (kind, rejected) VALUES (?1, ?2)
                 ON CONFLICT (kind) DO UPDATE SET rejected = rejected + excluded.rejected",
                params![kind, c.rejected as i64],
            )?;
        }
        let mut st = tx.prepare(
            "INSERT INTO usage_day (kind, day, first_ns, last_ns) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, day) DO UPDATE SET first_ns = min(first_ns, excluded.first_ns),
               last_ns = max(last_ns, excluded.last_ns)",
        )?;
        for (day, (first, last)) in &c.days {
            st.execute(params![kind, day, first.0, last.0])?;
        }
        Ok(())
    }

    /// The covered span: (begins, ends) of the run of consecutive days with data (any
    /// source) that ends with the newest day; `(None, None)` without data. A database of
    /// an older schema opened for reading is read as it is: version 2 from its events' days,
    /// version 1 has no pull data.
    pub fn coverage(&self) -> Result<(Option<Timestamp>, Option<Timestamp>), HistoryError> {
        let v = self.version()?;
        let q = match v {
            ..=1 => return Ok((None, None)),
            2 => {
                "SELECT day, min(at_ns), max(at_ns) FROM
                   (SELECT (at_ns - ((at_ns % 86400000000000) + 86400000000000) % 86400000000000) / 86400000000000 AS day, at_ns
                    FROM usage_event)
                 GROUP BY day ORDER BY day DESC"
            }
            _ => "SELECT day, min(first_ns), max(last_ns) FROM usage_day GROUP BY day ORDER BY day DESC",
        };
        let mut st = self.conn.prepare(q).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<(i64, i64, i64)>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(newest_run(rows.into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_covered_span_stops_at_the_first_gap() {
        let d = |day: i64| (day, day * NS_PER_DAY + 10, day * NS_PER_DAY + 20);
        assert_eq!(newest_run([].into_iter()), (None, None));
        let (b, e) = newest_run([d(10), d(9), d(8), d(1)].into_iter());
        assert_eq!(b, Some(Timestamp(8 * NS_PER_DAY + 10)));
        assert_eq!(e, Some(Timestamp(10 * NS_PER_DAY + 20)));
        assert_eq!(day_of(Timestamp(-1)), -1);
        assert_eq!(day_of(Timestamp(NS_PER_DAY)), 1);
    }

    /// Issue 25 item 3: one event dated 1971 made coverage run from 1971 to now, so a
    /// `not_pulled_within: 30d` plan was valid on an hour of real data.
    #[test]
    fn forged_pull_data_dated_1971_does_not_widen_coverage() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("h.db")).unwrap();
        let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let mut forged = Coverage::default();
        forged.saw(t("1971-01-01T00:00:00Z"));
        let now = t("2026-11-30T12:00:00Z");
        db.record_usage(crate::SourceKind::Notifications, &forged, 1, &[], None, now)
            .unwrap();
        let mut real = Coverage::default();
        real.saw(t("2026-11-30T11:00:00Z"));
        real.saw(t("2026-11-30T12:00:00Z"));
        db.record_usage(crate::SourceKind::Logs, &real, 2, &[], None, now)
            .unwrap();
        let s = db.pull_summary().unwrap();
        assert_eq!(s.data_begins, Some(t("2026-11-30T11:00:00Z")));
        assert_eq!(s.data_ends, Some(now));
        // Days in a row, from any source, make one span.
        let mut before = Coverage::default();
        before.saw(t("2026-11-29T23:00:00Z"));
        db.record_usage(crate::SourceKind::Notifications, &before, 1, &[], None, now)
            .unwrap();
        assert_eq!(
            db.pull_summary().unwrap().data_begins,
            Some(t("2026-11-29T23:00:00Z"))
        );
    }
}
