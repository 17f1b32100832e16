//! Storage growth history in an embedded SQLite database (`rusqlite`, SQLite bundled).
//!
//! Each scan recorded ([`Db::record`]) adds one `snapshot` row, one `repository` row per
//! repository and one `tag` row per tag with their figures at that time, and updates the
//! `blob` table, which keeps each blob's first-seen (and last-seen) snapshot. Growth between
//! two snapshots ([`Db::growth`]) compares repository figures; the report charts
//! [`Db::series`]. The schema is documented in `docs/history.md`; it is versioned with
//! SQLite's `user_version` and upgraded by [`MIGRATIONS`] when a database is opened, so users
//! can query it with SQL (or DuckDB) and older databases keep working. Schema version 2 adds
//! pull data (module [`usage`]: [`Db::record_usage`], [`Db::pull_summary`]); version 3 its
//! coverage by day (gaps are not covered) and the count of rejected events.
//!
//! ```no_run
//! # fn f(data: &stowage_history::SnapshotData) -> Result<(), stowage_history::HistoryError> {
//! let mut db = stowage_history::Db::open(std::path::Path::new("history.db"))?;
//! let id = db.record(data)?;
//! let all = db.snapshots()?;
//! let g = db.growth(all[0].id, id)?;
//! # Ok(()) }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod coverage;
pub mod keep;
pub mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use coverage::Coverage;
pub use keep::{Pruned, SnapshotPolicy, SnapshotRecorded};
use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;
use stowage_graph::{Graph, Summary, Usage};
use stowage_model::series::{HistoryLine, HistorySeries};
use stowage_model::time::Timestamp;
pub use usage::{
    ExcludedPulls, IngestStats, PullDetail, PullRecord, PullSummary, Recorded, SourceInfo,
    SourceKind, UsageAction, UsageEvent, UsageStatus,
};

/// Schema migrations, in order: `MIGRATIONS[i]` takes `user_version` `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path}: schema version {found} is newer than this stowage knows ({known}); use a newer stowage"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path}: no history database there")]
    Missing { path: PathBuf },
    #[error("{path}: the file is empty, not a history database (read commands never create one)")]
    Empty { path: PathBuf },
    #[error("{path}: no snapshot {id}")]
    NoSnapshot { path: PathBuf, id: i64 },
}

/// What one scan contributes.
#[derive(Clone, Debug, Default)]
pub struct SnapshotData {
    pub taken_at: Timestamp,
    pub storage: String,
    pub summary: Summary,
    pub repositories: Vec<RepoFigures>,
    pub tags: Vec<TagFigures>,
    /// (digest, size, modified).
    pub blobs: Vec<(String, u64, Timestamp)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepoFigures {
    pub name: String,
    /// This repository alone (nested repositories apart).
    pub total_bytes: u64,
    pub exclusive_bytes: u64,
    pub tags: u64,
    pub manifests: u64,
    pub untagged_manifests: u64,
    pub upload_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TagFigures {
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
    pub total_bytes: u64,
    pub exclusive_bytes: u64,
    pub moved_at: Option<Timestamp>,
}

/// The figures of one scan, from its graph.
pub fn snapshot_data(g: &Graph<'_>, u: &Usage, summary: &Summary, now: Timestamp) -> SnapshotData {
    let inv = g.inv;
    let mut repositories = Vec::with_capacity(inv.repositories.len());
    let mut tags = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        let n = &u.nodes[u.repo_node[ri] as usize];
        repositories.push(RepoFigures {
            name: r.name.to_string(),
            total_bytes: n.own_total,
            exclusive_bytes: n.own_exclusive,
            tags: r.tags.len() as u64,
            manifests: r.revisions.len() as u64,
            untagged_manifests: r.untagged_revisions().count() as u64,
            upload_bytes: r.uploads.iter().map(|x| x.total_size).sum(),
        });
        for (ti, t) in r.tags.iter().enumerate() {
            let tu = &u.tags[ri][ti];
            tags.push(TagFigures {
                repository: r.name.to_string(),
                tag: t.name.to_string(),
                digest: t
                    .current
                    .and_then(|c| c.target)
                    .map(|id| inv.digest(id).to_string()),
                total_bytes: tu.total,
                exclusive_bytes: tu.exclusive,
                moved_at: t.current.map(|c| c.modified),
            });
        }
    }
    SnapshotData {
        taken_at: now,
        storage: inv.root.clone(),
        summary: summary.clone(),
        repositories,
        tags,
        blobs: inv
            .blobs
            .iter()
            .map(|b| (b.digest.to_string(), b.size, b.modified()))
            .collect(),
    }
}

/// One recorded snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub id: i64,
    pub taken_at: Timestamp,
    pub storage: String,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub repositories: u64,
    pub tags: u64,
}

/// Growth of one repository between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RepoGrowth {
    pub repository: String,
    /// Absent in the earlier snapshot (`null` in JSON).
    pub from_total: Option<u64>,
    /// Absent in the later snapshot (deleted).
    pub to_total: Option<u64>,
    pub total_change: i64,
    pub exclusive_change: i64,
    pub tags_change: i64,
    /// Tags that are new, or point at another manifest, in the later snapshot.
    pub tags_pushed: Vec<String>,
    /// Tags gone in the later snapshot.
    pub tags_removed: Vec<String>,
}

/// Growth between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub from: SnapshotInfo,
    pub to: SnapshotInfo,
    pub blob_bytes_change: i64,
    /// Blobs first seen after `from`, up to and including `to`, still present at `to`.
    pub new_blobs: u64,
    pub new_blob_bytes: u64,
    /// Repositories that changed, largest growth first.
    pub repositories: Vec<RepoGrowth>,
}

/// An open history database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap_or_default()
}

impl Db {
    /// Open (creating it if needed) and migrate to the current schema.
    pub fn open(path: &Path) -> Result<Db, HistoryError> {
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        let mut db = Db {
            conn,
            path: path.to_path_buf(),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Open an existing database for reading only (`SQLITE_OPEN_READONLY`): read commands
    /// never write, so a missing or empty file is an error (not a new database), and an
    /// older schema is read as it is (not migrated).
    pub fn open_existing(path: &Path) -> Result<Db, HistoryError> {
        let missing = || HistoryError::Missing {
            path: path.to_path_buf(),
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() > 0 => {}
            Ok(m) if m.is_file() => {
                return Err(HistoryError::Empty {
                    path: path.to_path_buf(),
                });
            }
            _ => return Err(missing()),
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sql(path, e))?;
        let db = Db {
            conn,
            path: path.to_path_buf(),
        };
        db.conn
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|e| db.err(e))?;
        let found = db.version()?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::TooNew {
                path: db.path.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found == 0 {
            return Err(missing());
        }
        Ok(db)
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        sql(&self.path, e)
    }

    /// Schema version of the open database.
    pub fn version(&self) -> Result<i64, HistoryError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<(), HistoryError> {
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(|e| self.err(e))?;
        let found = self.version()?;
        if found > SCHEMA_VERSION {
            return Err(HistoryError::TooNew {
                path: self.path.clone(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            let path = self.path.clone();
            let tx = self.conn.transaction().map_err(|e| sql(&path, e))?;
            tx.execute_batch(m).map_err(|e| sql(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| sql(&path, e))?;
            tx.commit().map_err(|e| sql(&path, e))?;
        }
        Ok(())
    }

    /// Record one scan; returns its snapshot id. One transaction: a crash leaves no half
    /// snapshot.
    pub fn record(&mut self, d: &SnapshotData) -> Result<i64, HistoryError> {
        let path = self.path.clone();
        let e = |x| sql(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        let f = summary_row(&d.summary);
        tx.execute(
            "INSERT INTO snapshot (taken_at, taken_at_unix, storage, blobs, blob_bytes, referenced_bytes,
               unreferenced_bytes, untagged_exclusive_bytes, upload_bytes, repositories, tags, manifests,
               untagged_manifests, findings_error, findings_warning, findings_info)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                d.taken_at.rfc3339(),
                d.taken_at.secs(),
                d.storage,
                f[0],
                f[1],
                f[2],
                f[3],
                f[4],
                f[5],
                f[6],
                f[7],
                f[8],
                f[9],
                f[10],
                f[11],
                f[12],
            ],
        )
        .map_err(e)?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO repository (snapshot_id, name, total_bytes, exclusive_bytes, tags, manifests,
                       untagged_manifests, upload_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(e)?;
            for r in &d.repositories {
                st.execute(params![
                    id,
                    r.name,
                    r.total_bytes as i64,
                    r.exclusive_bytes as i64,
                    r.tags as i64,
                    r.manifests as i64,
                    r.untagged_manifests as i64,
                    r.upload_bytes as i64
                ])
                .map_err(e)?;
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO tag (snapshot_id, repository, tag, digest, total_bytes, exclusive_bytes, moved_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(e)?;
            for t in &d.tags {
                st.execute(params![
                    id,
                    t.repository,
                    t.tag,
                    t.digest,
                    t.total_bytes as i64,
                    t.exclusive_bytes as i64,
                    t.moved_at.map(|m| m.rfc3339())
                ])
                .map_err(e)?;
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO blob (digest, size, modified_at, first_seen_snapshot, first_seen_at, last_seen_snapshot)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?4)
                     ON CONFLICT (digest) DO UPDATE SET last_seen_snapshot = excluded.last_seen_snapshot,
                       size = excluded.size, modified_at = excluded.modified_at",
                )
                .map_err(e)?;
            let at = d.taken_at.rfc3339();
            for (digest, size, modified) in &d.blobs {
                st.execute(params![digest, *size as i64, modified.rfc3339(), id, at])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(id)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>, HistoryError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, taken_at, storage, blobs, blob_bytes, repositories, tags FROM snapshot
                 ORDER BY taken_at_unix, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(SnapshotInfo {
                    id: r.get(0)?,
                    taken_at: ts(&r.get::<_, String>(1)?),
                    storage: r.get(2)?,
                    blobs: r.get::<_, i64>(3)? as u64,
                    blob_bytes: r.get::<_, i64>(4)? as u64,
                    repositories: r.get::<_, i64>(5)? as u64,
                    tags: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn snapshot(&self, id: i64) -> Result<SnapshotInfo, HistoryError> {
        self.snapshots()?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or(HistoryError::NoSnapshot {
                path: self.path.clone(),
                id,
            })
    }

    fn repos(&self, id: i64) -> Result<BTreeMap<String, (u64, u64, u64)>, HistoryError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT name, total_bytes, exclusive_bytes, tags FROM repository WHERE snapshot_id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, i64>(2)? as u64,
                        r.get::<_, i64>(3)? as u64,
                    ),
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn tags(&self, id: i64) -> Result<BTreeMap<(String, String), Option<String>>, HistoryError> {
        let mut st = self
            .conn
            .prepare("SELECT repository, tag, digest FROM tag WHERE snapshot_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([id], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Growth per repository from snapshot `from` to snapshot `to`.
    pub fn growth(&self, from: i64, to: i64) -> Result<Growth, HistoryError> {
        let (fi, ti) = (self.snapshot(from)?, self.snapshot(to)?);
        let (a, b) = (self.repos(from)?, self.repos(to)?);
        let (at, bt) = (self.tags(from)?, self.tags(to)?);
        let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
        names.sort();
        names.dedup();
        let mut repositories = Vec::new();
        for name in names {
            let x = a.get(name);
            let y = b.get(name);
            let pushed: Vec<String> = bt
                .iter()
                .filter(|((r, t), d)| r == name && at.get(&(r.clone(), t.clone())) != Some(*d))
                .map(|((_, t), _)| t.clone())
                .collect();
            let removed: Vec<String> = at
                .keys()
                .filter(|(r, t)| r == name && !bt.contains_key(&(r.clone(), t.clone())))
                .map(|(_, t)| t.clone())
                .collect();
            let g = RepoGrowth {
                repository: name.clone(),
                from_total: x.map(|v| v.0),
                to_total: y.map(|v| v.0),
                total_change: y.map_or(0, |v| v.0 as i64) - x.map_or(0, |v| v.0 as i64),
                exclusive_change: y.map_or(0, |v| v.1 as i64) - x.map_or(0, |v| v.1 as i64),
                tags_change: y.map_or(0, |v| v.2 as i64) - x.map_or(0, |v| v.2 as i64),
                tags_pushed: pushed,
                tags_removed: removed,
            };
            let changed = g.total_change != 0
                || g.exclusive_change != 0
                || g.tags_change != 0
                || !g.tags_pushed.is_empty()
                || !g.tags_removed.is_empty()
                || x.is_none() != y.is_none();
            if changed {
                repositories.push(g);
            }
        }
        repositories.sort_by(|p, q| {
            q.total_change
                .cmp(&p.total_change)
                .then_with(|| p.repository.cmp(&q.repository))
        });
        let (new_blobs, new_blob_bytes): (i64, i64) = self
            .conn
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM blob
                 WHERE first_seen_snapshot IN (SELECT id FROM snapshot WHERE taken_at_unix > ?1 AND taken_at_unix <= ?2)
                   AND last_seen_snapshot >= ?3",
                params![fi.taken_at.secs(), ti.taken_at.secs(), to],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        Ok(Growth {
            blob_bytes_change: ti.blob_bytes as i64 - fi.blob_bytes as i64,
            from: fi,
            to: ti,
            new_blobs: new_blobs as u64,
            new_blob_bytes: new_blob_bytes as u64,
            repositories,
        })
    }

    /// The chart data: blob store bytes over time and the `top` largest repositories (by
    /// their latest total); the others summed as `(other)`.
    pub fn series(&self, top: usize) -> Result<HistorySeries, HistoryError> {
        let snaps = self.snapshots()?;
        let Some(last) = snaps.last() else {
            return Ok(HistorySeries::default());
        };
        let mut latest: Vec<(String, (u64, u64, u64))> = self.repos(last.id)?.into_iter().collect();
        latest.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        let keep: Vec<String> = latest.iter().take(top).map(|x| x.0.clone()).collect();
        let mut lines: Vec<HistoryLine> = keep
            .iter()
            .map(|n| HistoryLine {
                name: n.clone(),
                total: Vec::new(),
            })
            .collect();
        let mut other = HistoryLine {
            name: "(other)".into(),
            total: Vec::new(),
        };
        for s in &snaps {
            let r = self.repos(s.id)?;
            for l in &mut lines {
                l.total.push(r.get(&l.name).map_or(0, |v| v.0));
            }
            other.total.push(
                r.iter()
                    .filter(|(n, _)| !keep.contains(n))
                    .map(|(_, v)| v.0)
                    .sum(),
            );
        }
        if other.total.iter().any(|&v| v > 0) {
            lines.push(other);
        }
        Ok(HistorySeries {
            times: snaps.iter().map(|s| s.taken_at).collect(),
            blob_bytes: snaps.iter().map(|s| s.blob_bytes).collect(),
            repositories: lines,
        })
    }
}

fn sql(path: &Path, source: rusqlite::Error) -> HistoryError {
    HistoryError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// A snapshot's figures in the `snapshot` table's column order (`blobs` .. `findings_info`):
/// what `record` writes and `same_as` compares, listed once.
pub(crate) fn summary_row(s: &Summary) -> [i64; 13] {
    [
        s.blobs as i64,
        s.blob_bytes as i64,
        s.referenced_bytes as i64,
        s.unreferenced_bytes as i64,
        s.untagged_exclusive_bytes as i64,
        s.upload_bytes as i64,
        s.repositories as i64,
        s.tags as i64,
        s.manifests as i64,
        s.untagged_manifests as i64,
        s.findings_error as i64,
        s.findings_warning as i64,
        s.findings_info as i64,
    ]
}
