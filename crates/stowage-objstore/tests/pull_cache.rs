//! A pull-through cache on S3 (moto on loopback): registry 2.8 keeps
//! `scheduler-state.json` at the driver's root through the same driver, so stowage reads it
//! there (the inventory is a cache's), a cache GC evicts by it, and apply rewrites it through
//! the storage API (one PUT) with the entries of what it removed gone.

#![allow(clippy::unwrap_used)]

mod common;

use common::Bucket;
use stowage_graph::Graph;
use stowage_model::scheduler::STATE_FILE;
use stowage_model::time::Timestamp;
use stowage_objstore::ObjectStorage;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply};
use stowage_plan::{GcOptions, gc};
use stowage_scan::{Progress, ScanOptions};
use stowage_storage::Storage;
use stowage_testkit::TreeBuilder;

const DAY: i64 = 86_400;

fn entry(key: &str, t: Timestamp, ty: u8) -> String {
    format!(
        r#""{key}":{{"Key":"{key}","ExpiryData":"{}","EntryType":{ty}}}"#,
        t.rfc3339()
    )
}

#[test]
fn cache_gc_reads_and_rewrites_the_scheduler_state_on_s3() {
    let Some(b) = Bucket::new("pull_cache_state") else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(tree.path());
    let shared = t.layer("shared", 3000);
    let a_only = t.layer("a-only", 1000);
    let ca = t.blob(br#"{"config":"a"}"#);
    let cb = t.blob(br#"{"config":"b"}"#);
    let a = t.image("a", Some("1"), &ca, &[&shared, &a_only]);
    let bm = t.image("b", None, &cb, &[&shared]);
    let t0 = Timestamp::from_system_time(std::time::SystemTime::now());
    let (t1, t2) = (
        t0.saturating_sub_secs(-7 * DAY),
        t0.saturating_sub_secs(-14 * DAY),
    );
    let k = |r: &str, w: &stowage_testkit::Written| format!("{r}@{}", w.digest());
    let mut entries = [
        entry(&k("a", &a), t1, 1),
        entry(&k("a", &ca), t1, 0),
        entry(&k("a", &shared), t1, 0),
        entry(&k("a", &a_only), t1, 0),
        entry(&k("b", &bm), t2, 1),
        entry(&k("b", &cb), t2, 0),
    ];
    entries.sort();
    b.upload_tree(&tree.path().join("docker"), "reg/docker");
    b.put(
        &format!("reg/{STATE_FILE}"),
        format!("{{{}}}", entries.join(",")).as_bytes(),
    );

    let (s, _) = ObjectStorage::open(&b.url("reg"), &b.options()).unwrap();
    let scan = || stowage_scan::scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    let inv = scan();
    let state = inv.scheduler.state().expect("the state is read on S3");
    assert_eq!(state.entries.len(), 6);

    // Day 10: A expired. It goes with its own blobs; the shared layer stays for B, and
    // A's entry for it is extended to B's expiry.
    let now = t0.saturating_sub_secs(-10 * DAY);
    let opts = GcOptions {
        grace_seconds: 0,
        cache: true,
        ..Default::default()
    };
    let plan = gc::build(&Graph::new(&inv), &opts, now);
    assert_eq!(plan.manifests.len(), 1);
    let freed: Vec<String> = plan.blobs.iter().map(|x| x.digest.to_string()).collect();
    assert!(freed.contains(&a_only.digest().to_string()));
    assert!(!freed.contains(&shared.digest().to_string()));

    let dir = tempfile::tempdir().unwrap();
    let mut o = ApplyOptions::new(now, CacheStep::Nothing);
    o.mode = Mode::Offline;
    o.journal = Some(dir.path().join("journal"));
    o.quarantine = Some(dir.path().join("q"));
    o.quiet_window_seconds = 0;
    let rep = apply(&s, &plan, &o, &|_| {}).unwrap();
    assert!(
        rep.scheduler_state
            .as_deref()
            .unwrap()
            .contains("entries removed"),
        "{rep:?}"
    );
    let after = scan();
    let state = after.scheduler.state().unwrap();
    let keys: Vec<&str> = state.entries.iter().map(|e| e.key.as_str()).collect();
    assert!(!keys.contains(&k("a", &a).as_str()), "{keys:?}");
    assert!(!keys.contains(&k("a", &a_only).as_str()), "{keys:?}");
    let ext = state
        .entries
        .iter()
        .find(|e| e.key == k("a", &shared))
        .unwrap();
    assert_eq!(ext.expiry, t2, "extended to B's expiry");
    assert!(after.id_of(&shared.digest()).is_some());
    assert!(
        after
            .id_of(&a_only.digest())
            .is_none_or(|i| !after.is_present(i))
    );
    // The driver's root is addressable; a layout opened at its v2 prefix is not.
    assert!(s.read_at_driver_root(STATE_FILE, 1 << 20).is_some());
}
