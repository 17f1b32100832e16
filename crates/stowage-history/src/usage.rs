//! Pull data ("usage"): manifest pulls, pushes and deletes from the registry's access logs
//! and notifications, in the same database as the growth history (schema version 2).
//!
//! Writers ([`Db::record_usage`]) hand over [`UsageEvent`]s already parsed, filtered and
//! resolved (crate `stowage-usage` does that); each carries a stable `key`, so recording the
//! same request twice (re-ingested logs, a retried notification, the same request seen in a
//! log and as an event) counts it once. Readers: [`Db::pull_summary`] (what retention
//! consumes), [`Db::pull_details`], [`Db::usage_status`].
//!
//! ```no_run
//! # fn f() -> Result<(), stowage_history::HistoryError> {
//! let db = stowage_history::Db::open(std::path::Path::new("history.db"))?;
//! let s = db.pull_summary()?;
//! if s.data_begins.is_none() { println!("no pull data"); }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use stowage_model::time::Timestamp;

use crate::coverage::Coverage;
use crate::{Db, HistoryError, sql};
pub use stowage_usage::events::{
    ExcludedPulls, IngestStats, PullByReference, PullDetail, PullRecord, PullSummary, Recorded,
    SourceInfo, SourceKind, TagPush, UsageAction, UsageEvent, UsageStatus,
};

fn day(t: Timestamp) -> String {
    let r = t.rfc3339();
    r.get(..10).unwrap_or(&r).to_string()
}

fn ts_ns(ns: i64) -> Timestamp {
    Timestamp(ns)
}

impl Db {
    /// Record events (one transaction). `coverage` is what the source delivered: the days of
    /// all its data (all log lines, not only manifest requests) and what was rejected;
    /// `ingest`, for log ingests, is stored, with
    /// this call's `recorded` and `duplicates` added to its own (a long ingest writes its
    /// events in batches with `ingest: None`, counting what they did, then the last batch
    /// with the bookkeeping).
    pub fn record_usage(
        &mut self,
        kind: SourceKind,
        coverage: &Coverage,
        received: u64,
        events: &[UsageEvent],
        ingest: Option<&mut IngestStats>,
        ingested_at: Timestamp,
    ) -> Result<Recorded, HistoryError> {
        let path = self.path.clone();
        let e = |x| sql(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        let mut out = Recorded::default();
        let ingest_id: Option<i64> = match &ingest {
            Some(st) => {
                tx.execute(
                    "INSERT INTO usage_ingest (ingested_at, inputs, lines_read, requests, manifest_events,
                       recorded, duplicates, ignored, unresolved, unparseable, other_lines, first_ns, last_ns,
                       rejected, too_long)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    params![
                        ingested_at.rfc3339(),
                        st.inputs,
                        st.lines_read as i64,
                        st.requests as i64,
                        st.manifest_events as i64,
                        st.ignored as i64,
                        st.unresolved as i64,
                        st.unparseable as i64,
                        st.other_lines as i64,
                        st.first_at.map(|t| t.0),
                        st.last_at.map(|t| t.0),
                        st.rejected as i64,
                        st.too_long as i64,
                    ],
                )
                .map_err(e)?;
                Some(tx.last_insert_rowid())
            }
            None => None,
        };
        // (repository, digest, day) -> (pulls, heads, first, last), for newly recorded pulls.
        type Day<'a> = (&'a str, &'a str, String);
        let mut daily: BTreeMap<Day<'_>, (i64, i64, i64, i64)> = BTreeMap::new();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO usage_event (key, at_ns, at, action, method, repository, reference, digest,
                       unresolved, status, user_agent, remote_addr, user_name, ignored, source, ingest_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                     ON CONFLICT (key) DO NOTHING",
                )
                .map_err(e)?;
            // The same request seen by the other kind of source (an access log ingested over
            // a period the notifications cover, or the reverse) is not a second pull.
            let mut other = tx
                .prepare(
                    "SELECT EXISTS (SELECT 1 FROM usage_event WHERE repository = ?1
                       AND (reference = ?2 OR (digest IS NOT NULL AND digest = ?3))
                       AND action = ?4 AND at_ns BETWEEN ?5 - ?6 AND ?5 + ?6
                       AND (source = 'notification') != (?7 = 'notification')
                       AND (method IS NULL OR ?8 IS NULL OR method = ?8))",
                )
                .map_err(e)?;
            for ev in events {
                let seen: bool = other
                    .query_row(
                        params![
                            ev.repository,
                            ev.reference,
                            ev.digest,
                            ev.action.as_str(),
                            ev.at.0,
                            stowage_usage::events::OVERLAP_NS,
                            ev.source,
                            ev.method,
                        ],
                        |r| r.get(0),
                    )
                    .map_err(e)?;
                if seen {
                    out.duplicates += 1;
                    out.overlapping += 1;
                    continue;
                }
                let n = st
                    .execute(params![
                        &ev.key[..],
                        ev.at.0,
                        ev.at.rfc3339(),
                        ev.action.as_str(),
                        ev.method,
                        ev.repository,
                        ev.reference,
                        ev.digest,
                        ev.unresolved,
                        ev.status,
                        ev.user_agent,
                        ev.remote_addr,
                        ev.user,
                        ev.ignored,
                        ev.source,
                        ingest_id,
                    ])
                    .map_err(e)?;
                if n == 0 {
                    out.duplicates += 1;
                    continue;
                }
                out.recorded += 1;
                if ev.counts_as_pull() {
                    let Some(d) = ev.digest.as_deref() else {
                        continue;
                    };
                    let head = i64::from(ev.method.as_deref() == Some("HEAD"));
                    let x = daily
                        .entry((ev.repository.as_str(), d, day(ev.at)))
                        .or_insert((0, 0, ev.at.0, ev.at.0));
                    x.0 += 1;
                    x.1 += head;
                    x.2 = x.2.min(ev.at.0);
                    x.3 = x.3.max(ev.at.0);
                }
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO usage_daily (repository, digest, day, pulls, head_pulls, first_ns, last_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (repository, digest, day) DO UPDATE SET
                       pulls = pulls + excluded.pulls, head_pulls = head_pulls + excluded.head_pulls,
                       first_ns = min(first_ns, excluded.first_ns), last_ns = max(last_ns, excluded.last_ns)",
                )
                .map_err(e)?;
            for ((r, d, dy), (p, h, f, l)) in &daily {
                st.execute(params![r, d, dy, p, h, f, l]).map_err(e)?;
            }
        }
        // Recorded events are data of their days too (a source's own coverage may be given
        // without them: a notification batch, a batch of an ingest).
        let mut coverage = coverage.clone();
        for ev in events {
            coverage.saw(ev.at);
        }
        Db::record_coverage(
            &tx,
            kind.as_str(),
            &coverage,
            received,
            (out.recorded, out.duplicates),
        )
        .map_err(e)?;
        if let (Some(id), Some(st)) = (ingest_id, ingest) {
            // Added to what earlier batches of the same ingest recorded (see `record_usage`).
            st.recorded += out.recorded;
            st.duplicates += out.duplicates;
            st.overlapping += out.overlapping;
            tx.execute(
                "UPDATE usage_ingest SET recorded = ?2, duplicates = ?3 WHERE id = ?1",
                params![id, out.recorded as i64, out.duplicates as i64],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(out)
    }

    /// Per (repository, digest) pulls, sorted by repository then digest.
    pub fn pull_details(&self) -> Result<Vec<PullDetail>, HistoryError> {
        // A version-1 database opened for reading has no pull data (and no tables for it).
        if self.version()? < 2 {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare(
                "SELECT repository, digest, min(first_ns), max(last_ns), sum(pulls), sum(head_pulls)
                 FROM usage_daily GROUP BY repository, digest ORDER BY repository, digest",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(PullDetail {
                    repository: r.get(0)?,
                    digest: r.get(1)?,
                    first_pulled: ts_ns(r.get(2)?),
                    last_pulled: ts_ns(r.get(3)?),
                    pulls: r.get::<_, i64>(4)? as u64,
                    head_pulls: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// What the usage store knows: coverage and per-manifest pulls (filtered).
    pub fn pull_summary(&self) -> Result<PullSummary, HistoryError> {
        let (data_begins, data_ends) = self.coverage()?;
        let pulls = self
            .pull_details()?
            .into_iter()
            .map(|d| PullRecord {
                repository: d.repository,
                digest: d.digest,
                first_pulled: d.first_pulled,
                last_pulled: d.last_pulled,
                pulls: d.pulls,
            })
            .collect();
        Ok(PullSummary {
            data_begins,
            data_ends,
            pulls,
        })
    }

    /// Counted pulls (scanners and ignored clients excluded, successful; by digest only when
    /// the digest is known, by tag even when it was not resolved: a pull of a tag a plan
    /// removes fails whatever it served) at or after `since`, one row per (repository, reference as requested, digest, UTC day), with
    /// the day's last pull time and client: what a plan's would-break check replays, and what
    /// `plan simulate` cuts at each simulated day.
    ///
    /// `cut` moves the day boundaries to `cut`'s time of day (a day is then the 24 hours
    /// ending at that time, inclusive): `plan simulate` cuts the data at instants that far
    /// apart, and a row that straddled one would be all before or all after it (its last
    /// pull decides), so a simulated day would see more or fewer pulls than the plan made
    /// that day. `None`: UTC days.
    pub fn pulls_by_reference(
        &self,
        since: Timestamp,
        cut: Option<Timestamp>,
    ) -> Result<Vec<PullByReference>, HistoryError> {
        if self.version()? < 2 {
            return Ok(Vec::new());
        }
        // SQLite takes the bare columns of a row with max() from that row: the last pull's
        // client.
        let mut st = self
            .conn
            .prepare(
                "SELECT repository, reference, digest, max(at_ns), count(*), user_agent, remote_addr, user_name
                 FROM usage_event
                 WHERE action = 'pull' AND ignored IS NULL
                   AND (digest IS NOT NULL OR reference NOT LIKE 'sha256:%')
                   AND (status IS NULL OR (status >= 200 AND status < 300)) AND at_ns >= ?1
                 GROUP BY repository, reference, digest, (at_ns - ?2) / 86400000000000
                 ORDER BY repository, reference, digest, 4",
            )
            .map_err(|e| self.err(e))?;
        // (at - phase - 1) / day: days (phase + k day, phase + (k + 1) day], so an instant
        // `cut + k day` closes a day; without a cut, phase 0 and no shift (UTC days).
        const DAY_NS: i64 = 86_400_000_000_000;
        let shift = cut.map_or(0, |c| c.0.rem_euclid(DAY_NS) + 1);
        let rows = st
            .query_map([since.0, shift], |r| {
                let client: Vec<String> = [r.get::<_, Option<String>>(7)?, r.get(5)?, r.get(6)?]
                    .into_iter()
                    .flatten()
                    .filter(|x| !x.is_empty())
                    .collect();
                Ok(PullByReference {
                    repository: r.get(0)?,
                    reference: r.get(1)?,
                    digest: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    last_pulled: ts_ns(r.get(3)?),
                    pulls: r.get::<_, i64>(4)? as u64,
                    client: client.join(" "),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Tags set by pushes the store saw (from notifications: they carry tag and digest), for
    /// resolving tag pulls: (repository, tag, time, digest), oldest first.
    pub fn tag_pushes(&self) -> Result<Vec<TagPush>, HistoryError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT repository, reference, at_ns, digest FROM usage_event
                 WHERE action = 'push' AND digest IS NOT NULL AND reference NOT LIKE '%:%'
                   AND (status IS NULL OR status BETWEEN 200 AND 299)
                 ORDER BY at_ns, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, ts_ns(r.get(2)?), r.get(3)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Sources, ingests, and what was left out of the counts.
    pub fn usage_status(&self) -> Result<UsageStatus, HistoryError> {
        let e = |x| self.err(x);
        // Databases of older schemas are read as they are (read commands never migrate).
        let v = self.version()?;
        if v < 2 {
            return Ok(UsageStatus::default());
        }
        let (rejected, too_long) = if v < 3 {
            ("0", "0")
        } else {
            ("rejected", "too_long")
        };
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT kind, first_ns, last_ns, received, recorded, duplicates, {} FROM usage_source ORDER BY kind",
                if v < 3 {
                    "0"
                } else {
                    "coalesce((SELECT rejected FROM usage_rejected r WHERE r.kind = usage_source.kind), 0)"
                }
            ))
            .map_err(e)?;
        let sources = st
            .query_map([], |r| {
                Ok(SourceInfo {
                    kind: r.get(0)?,
                    first_at: ts_ns(r.get(1)?),
                    last_at: ts_ns(r.get(2)?),
                    received: r.get::<_, i64>(3)? as u64,
                    recorded: r.get::<_, i64>(4)? as u64,
                    duplicates: r.get::<_, i64>(5)? as u64,
                    rejected: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT inputs, lines_read, requests, manifest_events, recorded, duplicates, ignored,
                   unresolved, unparseable, other_lines, first_ns, last_ns, {rejected}, {too_long} FROM usage_ingest ORDER BY id",
            ))
            .map_err(e)?;
        let ingests = st
            .query_map([], |r| {
                let g = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                Ok(IngestStats {
                    inputs: r.get(0)?,
                    lines_read: g(1)?,
                    requests: g(2)?,
                    manifest_events: g(3)?,
                    recorded: g(4)?,
                    duplicates: g(5)?,
                    overlapping: 0,
                    ignored: g(6)?,
                    unresolved: g(7)?,
                    unparseable: g(8)?,
                    other_lines: g(9)?,
                    first_at: r.get::<_, Option<i64>>(10)?.map(ts_ns),
                    last_at: r.get::<_, Option<i64>>(11)?.map(ts_ns),
                    rejected: g(12)?,
                    too_long: g(13)?,
                    coverage: Coverage::default(),
                })
            })
            .map_err(e)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let ok = "action = 'pull' AND (status IS NULL OR status BETWEEN 200 AND 299)";
        let grouped = |q: &str| -> Result<Vec<ExcludedPulls>, HistoryError> {
            let mut st = self.conn.prepare(q).map_err(e)?;
            let rows = st
                .query_map([], |r| {
                    Ok(ExcludedPulls {
                        reason: r.get(0)?,
                        pulls: r.get::<_, i64>(1)? as u64,
                        last_at: ts_ns(r.get(2)?),
                    })
                })
                .map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)
        };
        let ignored = grouped(&format!(
            "SELECT ignored, count(*), max(at_ns) FROM usage_event WHERE {ok} AND ignored IS NOT NULL
             GROUP BY ignored ORDER BY count(*) DESC, ignored"
        ))?;
        let unresolved = grouped(&format!(
            "SELECT unresolved, count(*), max(at_ns) FROM usage_event
             WHERE {ok} AND ignored IS NULL AND digest IS NULL
             GROUP BY unresolved ORDER BY count(*) DESC, unresolved"
        ))?;
        let unresolved_tags = grouped(&format!(
            "SELECT repository || ':' || reference, count(*), max(at_ns) FROM usage_event
             WHERE {ok} AND ignored IS NULL AND digest IS NULL
             GROUP BY repository, reference ORDER BY count(*) DESC, repository, reference LIMIT 50"
        ))?;
        Ok(UsageStatus {
            sources,
            ingests,
            ignored,
            unresolved,
            unresolved_tags,
        })
    }

    /// Whether any pull data source has been recorded.
    pub fn has_usage(&self) -> Result<bool, HistoryError> {
        if self.version()? < 2 {
            return Ok(false);
        }
        Ok(self
            .conn
            .query_row("SELECT 1 FROM usage_source LIMIT 1", [], |_| Ok(()))
            .optional()
            .map_err(|e| self.err(e))?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn pull(key: u8, at: &str, digest: Option<&str>, method: &str) -> UsageEvent {
        UsageEvent {
            key: [key; 16],
            at: t(at),
            action: UsageAction::Pull,
            method: Some(method.into()),
            repository: "team/app".into(),
            reference: "latest".into(),
            digest: digest.map(str::to_string),
            unresolved: digest.is_none().then(|| "tag not in storage".to_string()),
            status: Some(200),
            user_agent: Some("docker/24".into()),
            remote_addr: Some("10.0.0.1:1234".into()),
            user: None,
            ignored: None,
            source: "log:text".into(),
        }
    }

    /// Review of issue 23, finding 9: `plan simulate` cuts the data at `now - k days`; a row
    /// must not straddle a cut, or the simulated day sees all or none of that day's pulls
    /// (by its last one). Pulls at 08:00, 12:00 and 20:00 with a cut at 12:00: the 08:00 and
    /// 12:00 pulls end one row (12:00 inclusive), 20:00 starts the next; UTC days: one row.
    #[test]
    fn rows_are_cut_at_the_simulated_time_of_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("h.db")).unwrap();
        let at = [
            "2026-11-01T08:00:00Z",
            "2026-11-01T12:00:00Z",
            "2026-11-01T20:00:00Z",
        ];
        let evs: Vec<_> = (0..3)
            .map(|i| pull(i + 1, at[i as usize], Some("sha256:aa"), "GET"))
            .collect();
        let mut cov = Coverage::default();
        cov.saw(t("2026-10-31T00:00:00Z"));
        cov.saw(t("2026-11-05T00:00:00Z"));
        db.record_usage(
            SourceKind::Logs,
            &cov,
            3,
            &evs,
            None,
            t("2026-11-06T00:00:00Z"),
        )
        .unwrap();
        let rows = |cut| {
            db.pulls_by_reference(t("2026-10-01T00:00:00Z"), cut)
                .unwrap()
                .into_iter()
                .map(|r| (r.last_pulled, r.pulls))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(None), [(t(at[2]), 3)]);
        assert_eq!(
            rows(Some(t("2026-11-04T12:00:00Z"))),
            [(t(at[1]), 2), (t(at[2]), 1)]
        );
    }

    /// Review of issue 23, finding 4: a tag pull whose digest was not resolved still counts
    /// for the would-break check (it fails when the tag goes); a digest pull needs its digest.
    #[test]
    fn unresolved_tag_pulls_kept_for_would_break() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("h.db")).unwrap();
        let mut by_digest = pull(2, "2026-11-02T00:00:00Z", None, "GET");
        by_digest.reference = "sha256:bb".into();
        let evs = vec![pull(1, "2026-11-01T10:00:00Z", None, "GET"), by_digest];
        let mut cov = Coverage::default();
        cov.saw(t("2026-10-31T00:00:00Z"));
        cov.saw(t("2026-11-05T00:00:00Z"));
        db.record_usage(
            SourceKind::Logs,
            &cov,
            2,
            &evs,
            None,
            t("2026-11-06T00:00:00Z"),
        )
        .unwrap();
        let rows = db
            .pulls_by_reference(t("2026-10-01T00:00:00Z"), None)
            .unwrap();
        let refs: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.reference.as_str(), r.digest.as_str()))
            .collect();
        assert_eq!(refs, [("latest", "")]);
    }

    #[test]
    fn empty_store_has_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("h.db")).unwrap();
        assert_eq!(db.version().unwrap(), 3);
        let s = db.pull_summary().unwrap();
        assert_eq!(s, PullSummary::default());
        assert!(!db.has_usage().unwrap());
    }

    #[test]
    fn pulls_are_counted_once_per_key_and_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("h.db")).unwrap();
        let a = "sha256:aa";
        let mut scanner = pull(4, "2026-11-02T00:00:00Z", Some(a), "GET");
        scanner.ignored = Some("user agent trivy/*".into());
        let mut failed = pull(5, "2026-11-03T00:00:00Z", Some(a), "GET");
        failed.status = Some(404);
        let evs = vec![
            pull(1, "2026-11-01T10:00:00Z", Some(a), "GET"),
            pull(2, "2026-11-01T11:00:00Z", Some(a), "HEAD"),
            pull(3, "2026-11-02T09:00:00Z", Some(a), "GET"),
            scanner,
            failed,
            pull(6, "2026-11-04T00:00:00Z", None, "GET"),
        ];
        let mut cov = Coverage::default();
        cov.saw(t("2026-10-31T00:00:00Z"));
        cov.saw(t("2026-11-05T00:00:00Z"));
        let mut st = IngestStats::default();
        let r = db
            .record_usage(
                SourceKind::Logs,
                &cov,
                100,
                &evs,
                Some(&mut st),
                t("2026-11-06T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(
            r,
            Recorded {
                recorded: 6,
                duplicates: 0,
                overlapping: 0,
            }
        );
        // Again: nothing new.
        let r = db
            .record_usage(
                SourceKind::Logs,
                &cov,
                100,
                &evs,
                None,
                t("2026-11-06T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(r.duplicates, 6);
        let s = db.pull_summary().unwrap();
        assert_eq!(s.data_begins, Some(t("2026-10-31T00:00:00Z")));
        assert_eq!(s.data_ends, Some(t("2026-11-05T00:00:00Z")));
        assert_eq!(
            s.pulls,
            vec![PullRecord {
                repository: "team/app".into(),
                digest: a.into(),
                first_pulled: t("2026-11-01T10:00:00Z"),
                last_pulled: t("2026-11-02T09:00:00Z"),
                pulls: 3,
            }]
        );
        assert_eq!(db.pull_details().unwrap()[0].head_pulls, 1);
        let u = db.usage_status().unwrap();
        assert_eq!(u.ignored.len(), 1);
        assert_eq!(u.ignored[0].pulls, 1);
        assert_eq!(u.unresolved[0].reason, "tag not in storage");
        assert_eq!(u.unresolved_tags[0].reason, "team/app:latest");
        assert_eq!(u.ingests.len(), 1);
        assert_eq!(u.ingests[0].recorded, 6);
        assert_eq!(u.sources[0].received, 200);
        assert_eq!(u.sources[0].duplicates, 6);
    }

    #[test]
    fn a_version_1_database_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.db");
        {
            let c = rusqlite::Connection::open(&p).unwrap();
            c.execute_batch(crate::MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let db = Db::open(&p).unwrap();
        assert_eq!(db.version().unwrap(), 3);
        assert_eq!(db.pull_summary().unwrap().pulls.len(), 0);
    }
}
