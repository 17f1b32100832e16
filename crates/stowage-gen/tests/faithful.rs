//! The generator is faithful: the REAL registry (distribution 2.8) serves a generated tree,
//! skopeo pulls every tag it lists (all platforms), and stowage's own GC plan on the tree
//! equals the registry's GC dry run.

#![allow(clippy::unwrap_used)]

use stowage_testkit::real::{self, Server};

#[test]
fn the_real_registry_serves_every_generated_tag_and_agrees_on_gc() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tree");
    let mut o = stowage_gen::Options::new(&out, 300);
    o.seed = 11;
    stowage_gen::generate(&o).unwrap();
    let manifest = stowage_gen::read_gen_manifest(&out).unwrap();
    assert!(manifest.tags.len() > 20, "{}", manifest.tags.len());

    let server = Server::start(&out);
    let failed = server.pull_all(&manifest.tags);
    assert!(
        failed.is_empty(),
        "the registry could not serve generated tags: {failed:?}"
    );
    drop(server);

    // The registry's own GC reads the whole tree and deletes exactly the generator's orphans.
    let config = dir.path().join("config.yml");
    real::write_config(&out, &config);
    let gc = real::registry_gc_dry_run(&config, false);
    assert!(gc.exit_ok, "{}", gc.stderr);
    assert_eq!(gc.blobs.len() as u64, manifest.summary.orphans);
    let fs = stowage_storage::FsStorage::open(&out.join("docker/registry/v2")).unwrap();
    let inv = stowage_scan::scan(
        &fs,
        &stowage_scan::ScanOptions::default(),
        &stowage_scan::Progress::default(),
    )
    .unwrap();
    let g = stowage_graph::Graph::new(&inv);
    let referenced = g.mark(g.all_revision_roots(), false);
    let ours = stowage_testkit::unreferenced_digests(&inv, &referenced);
    assert_eq!(ours, gc.blobs);
}
