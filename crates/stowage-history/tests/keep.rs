//! Issue 19 item 9: the history stays small. A scan that changed nothing is not a snapshot
//! (the dashboard stored one per scan, about 20 MB a day on a 10k-blob registry), `daily`
//! stores at most one per day, `never` none, and `prune` keeps a window with daily and
//! weekly thinning.

#![allow(clippy::unwrap_used)]

use stowage_history::{Db, RepoFigures, SnapshotData, SnapshotPolicy, SnapshotRecorded};
use stowage_model::time::Timestamp;

const T0: i64 = 1_796_083_200; // 2026-12-01T00:00:00Z

fn data(at: i64, bytes: u64) -> SnapshotData {
    let mut d = SnapshotData {
        taken_at: Timestamp::from_secs(at),
        storage: "/r".into(),
        ..SnapshotData::default()
    };
    d.summary.blob_bytes = bytes;
    d.summary.blobs = 1;
    d.repositories = vec![RepoFigures {
        name: "a".into(),
        total_bytes: bytes,
        ..RepoFigures::default()
    }];
    d.blobs = vec![(
        format!("sha256:{bytes:064}"),
        bytes,
        Timestamp::from_secs(at),
    )];
    d
}

#[test]
fn unchanged_scans_are_not_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("h.db")).unwrap();
    let p = SnapshotPolicy::Changed;
    assert!(matches!(
        db.record_with(&data(T0, 10), p).unwrap(),
        SnapshotRecorded::New(_)
    ));
    for i in 1..50 {
        assert!(matches!(
            db.record_with(&data(T0 + i * 900, 10), p).unwrap(),
            SnapshotRecorded::Skipped(Some(_))
        ));
    }
    assert!(matches!(
        db.record_with(&data(T0 + 50 * 900, 11), p).unwrap(),
        SnapshotRecorded::New(_)
    ));
    assert_eq!(db.snapshots().unwrap().len(), 2);
    // Daily: one per UTC day whatever changed; never: none.
    assert!(matches!(
        db.record_with(&data(T0 + 51 * 900, 12), SnapshotPolicy::Daily)
            .unwrap(),
        SnapshotRecorded::Skipped(_)
    ));
    assert!(matches!(
        db.record_with(&data(T0 + 86_400, 12), SnapshotPolicy::Daily)
            .unwrap(),
        SnapshotRecorded::New(_)
    ));
    assert!(matches!(
        db.record_with(&data(T0 + 2 * 86_400, 13), SnapshotPolicy::Never)
            .unwrap(),
        SnapshotRecorded::Skipped(_)
    ));
    assert_eq!(db.snapshots().unwrap().len(), 3);
}

#[test]
fn prune_keeps_a_window_thinned_daily_then_weekly() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("h.db")).unwrap();
    // Two snapshots a day for 120 days, each different.
    let start = T0 - 120 * 86_400;
    let mut n = 0u64;
    for d in 0..120 {
        for q in 0..2 {
            n += 1;
            db.record(&data(start + d * 86_400 + q * 43_200, n))
                .unwrap();
        }
    }
    let now = Timestamp::from_secs(T0);
    let p = db.prune(90 * 86_400, now).unwrap();
    let left = db.snapshots().unwrap();
    assert_eq!(p.kept as usize, left.len());
    assert_eq!(p.removed + p.kept, 240);
    // Nothing older than 90 days; every snapshot of the last two days; one per day
    // between two and thirty days; one per week beyond.
    let age = |s: &stowage_history::SnapshotInfo| s.taken_at.seconds_until(now);
    assert!(left.iter().all(|s| age(s) <= 90 * 86_400));
    let recent = left.iter().filter(|s| age(s) <= 2 * 86_400).count();
    assert_eq!(recent, 4);
    let mid: std::collections::BTreeSet<i64> = left
        .iter()
        .filter(|s| age(s) > 2 * 86_400 && age(s) <= 30 * 86_400)
        .map(|s| s.taken_at.secs().div_euclid(86_400))
        .collect();
    let mid_count = left
        .iter()
        .filter(|s| age(s) > 2 * 86_400 && age(s) <= 30 * 86_400)
        .count();
    assert_eq!(mid.len(), mid_count, "one per day");
    let old = left.iter().filter(|s| age(s) > 30 * 86_400).count();
    assert!(
        (8..=10).contains(&old),
        "about one per week over 60 days: {old}"
    );
    assert!(left.len() < 60, "{}", left.len());
    // Growth still works between what is left, and pruning again removes nothing.
    let (a, b) = (left[0].id, left[left.len() - 1].id);
    assert!(db.growth(a, b).unwrap().blob_bytes_change > 0);
    assert_eq!(db.prune(90 * 86_400, now).unwrap().removed, 0);
}

/// Issue 19 item 8: an access log ingested over a period the notifications already cover
/// counted every pull twice (one pull showed PULLS 2), with no warning. The same request
/// from the other kind of source is a duplicate now, counted as overlapping.
#[test]
fn overlapping_pull_sources_count_a_pull_once() {
    use stowage_history::SourceKind;
    use stowage_usage::events::{Coverage, UsageAction, UsageEvent};
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("h.db")).unwrap();
    let t = Timestamp::from_secs(T0);
    let ev = |key: u8, at: Timestamp, source: &str, addr: &str| UsageEvent {
        key: [key; 16],
        at,
        action: UsageAction::Pull,
        method: Some("GET".into()),
        repository: "team/app".into(),
        reference: "v1".into(),
        digest: Some(format!("sha256:{:064}", 7)),
        unresolved: None,
        status: Some(200),
        user_agent: Some("docker/27".into()),
        remote_addr: Some(addr.into()),
        user: None,
        ignored: None,
        source: source.into(),
    };
    let note = db
        .record_usage(
            SourceKind::Notifications,
            &Coverage::default(),
            1,
            &[ev(1, t, "notification", "10.0.0.9:51234")],
            None,
            t,
        )
        .unwrap();
    assert_eq!(note.recorded, 1);
    // The access log's line of the same request (dated 400 ms later, no port), and a
    // second pull ten seconds later that only the log saw.
    let later = Timestamp(t.0 + 400_000_000);
    let log = db
        .record_usage(
            SourceKind::Logs,
            &Coverage::default(),
            0,
            &[
                ev(2, later, "log:combined", "10.0.0.9"),
                ev(
                    3,
                    Timestamp(t.0 + 10_000_000_000),
                    "log:combined",
                    "10.0.0.9",
                ),
            ],
            None,
            t,
        )
        .unwrap();
    assert_eq!((log.recorded, log.duplicates, log.overlapping), (1, 1, 1));
    let pulls: u64 = db
        .pull_summary()
        .unwrap()
        .pulls
        .iter()
        .map(|p| p.pulls)
        .sum();
    assert_eq!(pulls, 2);
}
