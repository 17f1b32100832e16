//! Interop: a fresh fixture built by the REAL registry (distribution 2.8) and skopeo; the
//! scanner's view must equal what the registry's HTTP API reported and what its own garbage
//! collector decides.

#![allow(clippy::unwrap_used)]

use stowage_graph::Graph;
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::{FsStorage, resolve_root};
use stowage_testkit::real;

#[test]
fn scan_of_a_fresh_real_registry_agrees_with_its_api_and_gc() {
    let fx = real::build(false);
    let root = resolve_root(&fx.rootdirectory()).unwrap();
    let fs = FsStorage::open(&root.layout_root).unwrap();
    let inv = scan(
        &fs,
        &ScanOptions {
            concurrency: 8,
            verify_links: true,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    stowage_testkit::assert_matches_api(&inv, &fx.api_state());
    // Every link the registry wrote is 71 bytes and names its own path's digest.
    assert!(
        inv.findings
            .iter()
            .all(|f| f.kind == stowage_model::FindingKind::EmptyDirectory),
        "{:#?}",
        inv.findings
    );

    // Unreferenced blobs = what the registry's own GC would delete.
    let g = Graph::new(&inv);
    let referenced = g.mark(g.all_revision_roots(), false);
    let unreferenced = stowage_testkit::unreferenced_digests(&inv, &referenced);
    let gc = real::registry_gc_dry_run(&fx.config(), false);
    assert!(gc.exit_ok, "{}", gc.stderr);
    assert_eq!(unreferenced, gc.blobs);
}
