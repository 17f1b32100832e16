//! Online apply on S3 (moto on loopback): a fence is a copy into the quarantine prefix then a
//! delete, each object disappearing at its delete; a blob that a push links during the
//! settle is copied back byte-identical, and what nobody needs is deleted from the prefix.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Bucket;
use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_objstore::ObjectStorage;
use stowage_plan::apply::{ApplyOptions, CacheStep, Step, apply};
use stowage_plan::{GcOptions, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_testkit::TreeBuilder;

const ROOT: &str = "reg/docker/registry/v2";

fn upload(b: &Bucket, dir: &std::path::Path) {
    let root = dir.join(layout::LAYOUT_ROOT);
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
                b.put(&format!("{ROOT}/{rel}"), &std::fs::read(e.path()).unwrap());
            }
        }
    }
}

#[test]
fn online_apply_on_s3_restores_a_blob_linked_during_the_settle() {
    let Some(b) = Bucket::new("online_apply_on_s3") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let tb = TreeBuilder::new(src.path());
    let shared = tb.layer("shared", 2000);
    let kc = tb.blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#);
    tb.image("keep/app", Some("1"), &kc, &[&shared]);
    let config = tb.blob(br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers"}}"#);
    let layer = tb.layer("old-layer", 4000);
    let m = tb.image("old/app", Some("1"), &config, &[&layer, &shared]);
    tb.remove(&layout::tag_dir("old/app", "1"));
    tb.remove(&layout::revision_dir("old/app", &m.digest()));
    upload(&b, src.path());
    // LastModified has whole seconds and "written since the plan" counts the plan's own
    // second: the plan is made in a later second than the uploads.
    std::thread::sleep(Duration::from_millis(1100));
    let (s, _) = ObjectStorage::open(&b.url("reg"), &b.options()).unwrap();
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    let now = stowage_model::time::Timestamp::from_system_time(std::time::SystemTime::now());
    let opts = GcOptions {
        grace_seconds: 0,
        dangling_links: true,
        ..GcOptions::default()
    };
    let plan = gc::build(&Graph::new(&inv), &opts, now);
    assert_eq!(plan.blobs.len(), 3);
    std::thread::sleep(Duration::from_millis(1100));

    let bucket = Arc::new(b);
    let writer = bucket.clone();
    let d = layer.digest();
    let mut o = ApplyOptions::new(now, CacheStep::Nothing);
    o.quarantine = Some(bucket.dir.path().join("q"));
    o.journal = Some(bucket.dir.path().join("journal"));
    o.quiet_window_seconds = 0;
    o.settle = Duration::ZERO;
    o.on_step = Some(Arc::new(move |step| {
        if step == Step::Fenced {
            // A cross-repository mount in another repository: its link only.
            writer.put(
                &format!("{ROOT}/{}", layout::layer_link("new/app", &d)),
                d.to_string().as_bytes(),
            );
        }
    }));
    let rep = apply(&s, &plan, &o, &|_| {}).unwrap();
    let blob_key =
        |w: &stowage_testkit::Written| format!("{ROOT}/{}", layout::blob_data(&w.digest));
    assert!(
        bucket.exists(&blob_key(&layer)),
        "restored: {:?}",
        rep.restored
    );
    assert!(!bucket.exists(&blob_key(&config)), "deleted for good");
    assert!(bucket.exists(&blob_key(&shared)));
    assert!(
        rep.restored
            .iter()
            .any(|r| r.path == layout::blob_dir(&layer.digest)),
        "{:?}",
        rep.restored
    );
    // Nothing left under the quarantine prefix of this batch.
    let q = format!("reg/stowage-quarantine/batch-{}/", plan.id());
    assert!(!bucket.exists(&format!("{q}{}", layout::blob_data(&config.digest))));
    // The restored copy is byte-identical: a fresh scan finds it with its size.
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    let id = inv.id_of(&layer.digest()).unwrap();
    assert_eq!({ inv.blob(id).unwrap().size }, layer.size);
}
