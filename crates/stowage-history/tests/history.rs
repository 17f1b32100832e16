//! The history database: schema versioning and migrations, recording, growth.

#![allow(clippy::unwrap_used)]

use stowage_history::{Db, HistoryError, RepoFigures, SCHEMA_VERSION, SnapshotData, TagFigures};
use stowage_model::time::Timestamp;

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn data(
    at: &str,
    repos: &[(&str, u64)],
    tags: &[(&str, &str, &str)],
    blobs: &[(&str, u64)],
) -> SnapshotData {
    let mut d = SnapshotData {
        taken_at: t(at),
        storage: "/reg".into(),
        ..SnapshotData::default()
    };
    d.summary.blob_bytes = blobs.iter().map(|b| b.1).sum();
    d.summary.blobs = blobs.len() as u64;
    d.repositories = repos
        .iter()
        .map(|(n, total)| RepoFigures {
            name: n.to_string(),
            total_bytes: *total,
            exclusive_bytes: *total / 2,
            tags: tags.iter().filter(|x| x.0 == *n).count() as u64,
            ..RepoFigures::default()
        })
        .collect();
    d.tags = tags
        .iter()
        .map(|(r, tag, dg)| TagFigures {
            repository: r.to_string(),
            tag: tag.to_string(),
            digest: Some(dg.to_string()),
            ..TagFigures::default()
        })
        .collect();
    d.blobs = blobs
        .iter()
        .map(|(dg, size)| (dg.to_string(), *size, t(at)))
        .collect();
    d
}

#[test]
fn a_new_database_gets_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("h.db")).unwrap();
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
    assert!(db.snapshots().unwrap().is_empty());
}

#[test]
fn a_newer_schema_is_refused_not_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    {
        let c = rusqlite_open(&p);
        c.execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1))
            .unwrap();
    }
    match Db::open(&p) {
        Err(HistoryError::TooNew { found, known, .. }) => {
            assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

fn rusqlite_open(p: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(p).unwrap()
}

#[test]
fn reopening_keeps_data_and_migrates_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    Db::open(&p)
        .unwrap()
        .record(&data(
            "2026-01-01T00:00:00Z",
            &[("a", 10)],
            &[],
            &[("sha256:1", 10)],
        ))
        .unwrap();
    let db = Db::open(&p).unwrap();
    assert_eq!(db.snapshots().unwrap().len(), 1);
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn growth_compares_repositories_tags_and_first_seen_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("h.db")).unwrap();
    let a = db
        .record(&data(
            "2026-01-01T00:00:00Z",
            &[("app", 100), ("gone", 5), ("same", 7)],
            &[("app", "v1", "sha256:m1"), ("gone", "x", "sha256:g")],
            &[("sha256:1", 100), ("sha256:g", 5), ("sha256:s", 7)],
        ))
        .unwrap();
    let b = db
        .record(&data(
            "2026-02-01T00:00:00Z",
            &[("app", 160), ("new", 30), ("same", 7)],
            &[
                ("app", "v1", "sha256:m2"),
                ("app", "v2", "sha256:m3"),
                ("new", "1", "sha256:n"),
            ],
            &[
                ("sha256:1", 100),
                ("sha256:2", 60),
                ("sha256:3", 30),
                ("sha256:s", 7),
            ],
        ))
        .unwrap();
    let g = db.growth(a, b).unwrap();
    let names: Vec<&str> = g
        .repositories
        .iter()
        .map(|r| r.repository.as_str())
        .collect();
    assert_eq!(
        names,
        ["app", "new", "gone"],
        "largest growth first; unchanged left out"
    );
    let app = &g.repositories[0];
    assert_eq!((app.total_change, app.tags_change), (60, 1));
    assert_eq!(app.tags_pushed, ["v1", "v2"], "v1 moved, v2 is new");
    let gone = &g.repositories[2];
    assert_eq!((gone.to_total, gone.total_change), (None, -5));
    assert_eq!(gone.tags_removed, ["x"]);
    assert_eq!((g.new_blobs, g.new_blob_bytes), (2, 90));
    assert_eq!(g.blob_bytes_change, 197 - 112);

    let s = db.series(1).unwrap();
    assert_eq!(s.times.len(), 2);
    assert_eq!(s.repositories[0].name, "app");
    assert_eq!(s.repositories[0].total, [100, 160]);
    assert_eq!(s.repositories[1].name, "(other)");
    assert_eq!(s.repositories[1].total, [12, 37]);
}

#[test]
fn reading_a_missing_database_does_not_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("none.db");
    assert!(matches!(
        Db::open_existing(&p),
        Err(HistoryError::Missing { .. })
    ));
    assert!(!p.exists());
}

/// Issue 25 item 10: `inventory --db EMPTY` turned an empty file into a database, and read
/// commands opened databases read-write (migrating them).
#[test]
fn read_commands_write_no_database_empty_older_or_current() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        Db::open_existing(&empty),
        Err(HistoryError::Empty { .. })
    ));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    // A version-1 database is read as it is, not migrated.
    let v1 = dir.path().join("v1.db");
    {
        let c = rusqlite_open(&v1);
        c.execute_batch(stowage_history::MIGRATIONS[0]).unwrap();
        c.execute_batch("PRAGMA user_version = 1;").unwrap();
    }
    let before = std::fs::read(&v1).unwrap();
    let db = Db::open_existing(&v1).unwrap();
    assert_eq!(db.version().unwrap(), 1);
    assert!(!db.has_usage().unwrap());
    assert!(db.pull_summary().unwrap().data_begins.is_none());
    drop(db);
    assert_eq!(std::fs::read(&v1).unwrap(), before);
    // A current database opened for reading refuses writes.
    let cur = dir.path().join("cur.db");
    drop(Db::open(&cur).unwrap());
    let mut db = Db::open_existing(&cur).unwrap();
    assert!(
        db.record(&data("2026-01-01T00:00:00Z", &[], &[], &[]))
            .is_err()
    );
    // Not a database at all (user_version 0) is refused, not initialised.
    let zero = dir.path().join("zero.db");
    rusqlite_open(&zero)
        .execute_batch("CREATE TABLE x (y);")
        .unwrap();
    assert!(matches!(
        Db::open_existing(&zero),
        Err(HistoryError::Missing { .. })
    ));
}
