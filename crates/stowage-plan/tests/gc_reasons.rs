//! The reasons `gc` gives for what it keeps unlike the registry's own GC name what really
//! keeps each blob (issue 19 item 11: a blob held by the grace period was "linked in a
//! repository which holds a manifest that could not be parsed", and no such manifest existed).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::time::Timestamp;
use stowage_plan::gc::{GcOptions, build};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::TreeBuilder;

const NOW: i64 = 1_796_083_200;

fn set_mtime(path: &std::path::Path, secs: i64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64))
        .unwrap();
}

#[test]
fn a_blob_held_by_the_grace_period_says_so_not_unparsed_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    // A tagged image (old), and an untagged one pushed ten minutes ago.
    let c0 = t.blob(b"{\"created\":\"2026-01-01T00:00:00Z\"}");
    let l0 = t.layer("kept", 3000);
    t.image("apps/web", Some("v1"), &c0, &[&l0]);
    let c1 = t.blob(b"{\"created\":\"2026-11-30T23:50:00Z\"}");
    let l1 = t.layer("fresh", 4000);
    let fresh = t.image("apps/web", None, &c1, &[&l1]);
    let old = NOW - 30 * 86400;
    for entry in walk(&t.root) {
        set_mtime(&entry, old);
    }
    set_mtime(
        &t.path(&layout::revision_link("apps/web", &fresh.digest())),
        NOW - 600,
    );
    let inv = scan(
        &FsStorage::open(&t.root).unwrap(),
        &ScanOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let g = Graph::new(&inv);
    let plan = build(
        &g,
        &GcOptions {
            delete_untagged: true,
            ..GcOptions::default()
        },
        Timestamp::from_secs(NOW),
    );
    assert!(plan.manifests.is_empty() && plan.blobs.is_empty());
    assert_eq!(plan.held_back.manifests.len(), 1);
    let reason = |d: &stowage_model::digest::Digest| {
        plan.kept_unlike_registry
            .iter()
            .find(|k| &k.digest == d)
            .map(|k| k.reason.to_string())
            .unwrap_or_else(|| panic!("{d} not listed: {:?}", plan.kept_unlike_registry))
    };
    for d in [l1.digest(), c1.digest()] {
        let r = reason(&d);
        assert!(!r.contains("could not be parsed"), "{r}");
        assert_eq!(
            r,
            format!(
                "needed by untagged manifest {} pushed within the grace period",
                fresh.digest()
            )
        );
    }
    assert_eq!(
        reason(&fresh.digest()),
        format!(
            "untagged manifest {} pushed within the grace period",
            fresh.digest()
        )
    );
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}
