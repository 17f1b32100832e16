//! The scanner and GC plans over a latency-bound filesystem (the project's FUSE passthrough
//! with a delay per operation, as NFS): results identical to a local scan at every
//! concurrency, network errors on chosen paths become findings, and the plan fails safe.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use stowage_graph::Graph;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::{GcOptions, Plan, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_slowfs::{Errno, Mount};
use stowage_storage::{BackendKind, FsStorage, Storage};

fn scan_at(root: &std::path::Path, concurrency: usize) -> (Inventory, BackendKind) {
    let s = FsStorage::open(root).unwrap();
    let inv = scan(
        &s,
        &ScanOptions {
            concurrency,
            verify_links: false,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    (inv, s.backend())
}

fn plan(inv: &Inventory) -> Plan {
    let opts = GcOptions {
        delete_untagged: true,
        grace_seconds: 0,
        dangling_links: true,
        empty_dirs: true,
        uploads_older_than_seconds: Some(0),
        cache: false,
        cache_max_bytes: None,
        orphan_signatures: false,
    };
    let mut p = gc::build(&Graph::new(inv), &opts, Timestamp::from_secs(2_000_000_000));
    p.storage = String::new();
    p
}

/// FUSE does not carry birth times; everything else must match.
fn comparable(mut inv: Inventory) -> Inventory {
    inv.root = String::new();
    inv.stats = Default::default();
    inv.created.clear();
    inv
}

#[test]
fn results_over_a_slow_filesystem_equal_the_local_scan_at_any_concurrency() {
    let s = stowage_testkit::sample();
    let (local, kind) = scan_at(&s.layout_root(), 4);
    assert!(!kind.is_latency_bound());
    let want_plan = plan(&local);
    let want = comparable(local);
    for conc in [1, 8, 64] {
        let m = Mount::start(&s.rootdirectory(), Duration::from_micros(200), &[]).unwrap();
        let (inv, kind) = scan_at(&m.path().join("docker/registry/v2"), conc);
        assert!(
            kind.is_latency_bound(),
            "FUSE must be detected as latency-bound: {kind:?}"
        );
        assert_eq!(plan(&inv), want_plan, "plan at concurrency {conc}");
        assert_eq!(comparable(inv), want, "inventory at concurrency {conc}");
    }
}

#[test]
fn network_errors_become_findings_and_the_plan_fails_safe() {
    let s = stowage_testkit::sample();
    let faults = vec![
        (
            "docker/registry/v2/repositories/team/app/api/_layers".to_string(),
            Errno::IO,
        ),
        (
            "docker/registry/v2/blobs/sha256/37/".to_string(),
            Errno::STALE,
        ),
        (
            "docker/registry/v2/repositories/multiarch/tool/_manifests/tags/1.0/current"
                .to_string(),
            Errno::TIMEDOUT,
        ),
    ];
    let m = Mount::start(&s.rootdirectory(), Duration::from_micros(100), &faults).unwrap();
    let (inv, _) = scan_at(&m.path().join("docker/registry/v2"), 16);
    let has = |kind: &str, path: &str| {
        inv.findings
            .iter()
            .any(|f| f.kind.as_str() == kind && f.path.starts_with(path))
    };
    assert!(
        has("io_error", "repositories/team/app/api/_layers"),
        "{:#?}",
        inv.findings
    );
    assert!(has("io_error", "blobs/sha256/37"), "{:#?}", inv.findings);
    assert!(
        has(
            "io_error",
            "repositories/multiarch/tool/_manifests/tags/1.0/current/link"
        ),
        "{:#?}",
        inv.findings
    );
    assert!(!inv.repository("team/app/api").unwrap().complete);
    assert!(!inv.repository("multiarch/tool").unwrap().complete);
    assert!(
        inv.unlisted
            .iter()
            .any(|u| u.starts_with("blobs/sha256/37")),
        "{:?}",
        inv.unlisted
    );
    let p = plan(&inv);
    assert!(
        p.blobs.is_empty(),
        "nothing is deleted on the strength of an incomplete scan"
    );
    assert!(
        p.manifests
            .iter()
            .all(|m| m.repository != "team/app/api" && m.repository != "multiarch/tool")
    );
    assert!(!p.blocked.is_empty());
}
