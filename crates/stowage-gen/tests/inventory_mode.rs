//! `--inventory` writes the same registry as the tree, as its bucket's S3 Inventory report
//! (CSV or Parquet) plus a pack of the files a scan reads (no tree): a scan listed from that report equals a scan of the tree,
//! blob by blob, link by link (birth times aside: a report has none).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use stowage_gen::inventory::Format;
use stowage_gen::{Options, generate, generate_inventory};
use stowage_scan::{Progress, ScanOptions};
use stowage_storage::listing::ListedStorage;
use stowage_storage::pack::PackStorage;
use stowage_storage::provider::{self, Scope};
use stowage_storage::{FsStorage, Storage};

#[test]
fn a_scan_listed_from_the_generated_csv_report_equals_a_scan_of_the_tree() {
    listed_equals_tree(Format::Csv, "csv.gz");
}

#[test]
fn a_scan_listed_from_the_generated_parquet_report_equals_a_scan_of_the_tree() {
    listed_equals_tree(Format::Parquet, "parquet");
}

fn listed_equals_tree(format: Format, ext: &str) {
    let tree = tempfile::tempdir().unwrap();
    let inv = tempfile::tempdir().unwrap();
    let mut o = Options::new(tree.path(), 3000);
    o.threads = Some(2);
    generate(&o).unwrap();
    o.out = inv.path().to_path_buf();
    o.inventory_format = format;
    let s = generate_inventory(&o).unwrap();
    let data = inv.path().join(format!("inventory/data/objects-0.{ext}"));
    assert!(data.is_file(), "{} written", data.display());
    assert!(s.objects > s.blobs && s.blobs > 2900, "{s:?}");

    let scan = |st: &dyn Storage| {
        let mut i = stowage_scan::scan(st, &ScanOptions::default(), &Progress::default()).unwrap();
        i.stats = Default::default();
        i.root = String::new();
        // A report has no birth times; the tree's are the time of writing.
        i.created.clear();
        // Empty directories exist on a filesystem only (an object store has none).
        i.findings
            .retain(|f| f.kind != stowage_model::finding::FindingKind::EmptyDirectory);
        // Nor an `_uploads/` left empty (a prefix exists only while a key is below it).
        for r in &mut i.repositories {
            r.has_uploads = !r.uploads.is_empty();
        }
        i
    };
    let from_tree = scan(&FsStorage::open(&tree.path().join("docker/registry/v2")).unwrap());
    // No tree: what a scan reads is in one pack.
    assert!(!inv.path().join("docker").exists());
    let live: Arc<dyn Storage> =
        Arc::new(PackStorage::open(&inv.path().join(stowage_gen::inventory::PACK)).unwrap());
    let manifest = inv.path().join("inventory/manifest.json");
    let scope = Scope {
        bucket: String::new(),
        prefix: "docker/registry/v2".into(),
    };
    let fetch = |p: &str| {
        Ok(std::fs::File::open(p)
            .ok()
            .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>))
    };
    let listing = provider::load(manifest.to_str().unwrap(), &scope, &fetch).unwrap();
    assert_eq!(listing.len() as u64, s.objects);
    let listed = ListedStorage::new(listing, live.clone());
    let from_report = scan(&listed);
    // Digest by digest first, so that a difference is shown small.
    let digests = |i: &stowage_model::inventory::Inventory| {
        i.blobs
            .iter()
            .map(|b| (b.digest, b.size))
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&from_report), digests(&from_tree));
    // Then part by part.
    assert_eq!(from_report.blobs, from_tree.blobs);
    assert_eq!(from_report.manifests, from_tree.manifests);
    assert_eq!(from_report.refs, from_tree.refs);
    assert_eq!(from_report.repositories, from_tree.repositories);
    assert_eq!(from_report.findings, from_tree.findings);
    assert_eq!(from_report.scheduler, from_tree.scheduler);
    assert_eq!(from_report, from_tree);
    assert_eq!(
        live.counters().snapshot().lists,
        0,
        "listed from the report only"
    );
}

/// `--shards`: the registry as groups written one after the other (bounded memory); the
/// report still scans whole: every shard's repositories under its group, every blob listed,
/// every manifest read from the pack.
#[test]
fn a_sharded_report_scans_as_one_registry_of_groups() {
    let inv = tempfile::tempdir().unwrap();
    let mut o = Options::new(inv.path(), 1200);
    o.threads = Some(2);
    o.shards = 3;
    let s = generate_inventory(&o).unwrap();
    let scope = Scope {
        bucket: String::new(),
        prefix: "docker/registry/v2".into(),
    };
    let fetch = |p: &str| {
        Ok(std::fs::File::open(p)
            .ok()
            .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>))
    };
    let manifest = inv.path().join("inventory/manifest.json");
    let listing = provider::load(manifest.to_str().unwrap(), &scope, &fetch).unwrap();
    let live: Arc<dyn Storage> =
        Arc::new(PackStorage::open(&inv.path().join(stowage_gen::inventory::PACK)).unwrap());
    let i = stowage_scan::scan(
        &ListedStorage::new(listing, live),
        &ScanOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(i.blobs.len() as u64, s.blobs);
    assert!(s.blobs > 1000, "{s:?}");
    for k in 0..3 {
        let group = format!("group-{k:04}/");
        assert!(
            i.repositories
                .iter()
                .filter(|r| r.name.as_str().starts_with(&group))
                .count()
                > 5,
            "{group}"
        );
    }
    assert!(
        i.repositories
            .iter()
            .all(|r| r.name.as_str().starts_with("group-"))
    );
    // Every manifest was read from the pack: none unreadable.
    assert!(
        !i.findings
            .iter()
            .any(|f| f.kind == stowage_model::finding::FindingKind::ManifestUnreadable),
        "{:?}",
        i.findings.iter().map(|f| &f.kind).collect::<Vec<_>>()
    );
}
