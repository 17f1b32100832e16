//! The scan cache on a real S3 server (moto on loopback): a re-scan of an unchanged registry
//! issues at most a tenth of the first scan's requests (counted, not timed), finds exactly
//! what a scan without the cache finds, re-reads a corrupted entry, and reads a tag link
//! again once it is rewritten.
//!
//! The registry is CI-shaped (`stowage-gen`: nested repositories, moved tags, indexes,
//! shared base layers, untagged manifests, orphans) and uploaded object by object, so the
//! bucket holds the keys the registry's `s3` driver would write.

#![allow(clippy::unwrap_used)]

mod common;

use common::Bucket;
use stowage_model::inventory::{Inventory, ScanStats};
use stowage_objstore::ObjectStorage;
use stowage_scan::{Progress, ScanCache, ScanOptions};
use stowage_storage::Storage;

fn scan(b: &Bucket, cache: Option<&ScanCache>) -> (Inventory, u64) {
    let (s, _) = ObjectStorage::open(&b.url("reg"), &b.options()).unwrap();
    let mut inv = stowage_scan::scan_cached(
        &s,
        &ScanOptions {
            concurrency: 16,
            ..ScanOptions::default()
        },
        cache,
        &Progress::default(),
    )
    .unwrap();
    let c = s.counters().snapshot();
    // Counters differ by design; everything else must not.
    inv.stats = ScanStats::default();
    (inv, c.lists + c.stats + c.reads)
}

#[test]
fn an_unchanged_rescan_costs_a_tenth_of_the_requests_and_finds_the_same() {
    let Some(b) = Bucket::new("scan_cache_requests") else {
        return;
    };
    let tree = tempfile::tempdir().unwrap();
    let mut o = stowage_gen::Options::new(tree.path(), 3000);
    o.threads = Some(2);
    o.size_scale = 1e-6;
    stowage_gen::generate(&o).unwrap();
    let objects = b.upload_tree(&tree.path().join("docker"), "reg/docker");
    assert!(objects > 3000, "{objects} objects");

    let (live, uncached) = scan(&b, None);
    assert!(live.manifests.len() > 300, "{}", live.manifests.len());
    let dir = tempfile::tempdir().unwrap();
    let open = || ScanCache::open(dir.path(), "s3://stowage-test/reg/docker/registry/v2").unwrap();

    let c1 = open();
    let (first, first_requests) = scan(&b, Some(&c1));
    assert_eq!(first, live, "an empty cache changes nothing");
    assert_eq!(first_requests, uncached);
    assert_eq!(c1.stats().manifest_hits, 0);

    let c2 = open();
    let (second, second_requests) = scan(&b, Some(&c2));
    assert_eq!(
        second, live,
        "the cached re-scan finds exactly what a live scan finds"
    );
    let st = c2.stats();
    assert_eq!(st.manifest_misses, 0, "{st:?}");
    assert_eq!(st.link_misses, 0, "{st:?}");
    assert_eq!(st.manifest_hits as usize, live.manifests.len());
    eprintln!(
        "{objects} objects: first scan {first_requests} requests, unchanged re-scan {second_requests}"
    );
    assert!(
        second_requests * 10 <= first_requests,
        "re-scan: {second_requests} requests, first scan: {first_requests}"
    );

    // A corrupted entry is found, removed and read again; the result does not change.
    let m = live.blobs[live.manifests[0].id as usize].digest.hex();
    let entry = dir
        .path()
        .join(format!("v1/manifests/sha256/{}/{m}", &m[..2]));
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&entry, &bytes).unwrap();
    let c3 = open();
    let (third, third_requests) = scan(&b, Some(&c3));
    assert_eq!(third, live);
    let st = c3.stats();
    assert_eq!((st.corrupt, st.manifest_misses), (1, 1), "{st:?}");
    assert_eq!(third_requests, second_requests + 1);
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        bytes,
        "rewritten from the storage"
    );

    // A tag moved (its link rewritten, same size and maybe the same second): read again.
    let repo = live
        .repositories
        .iter()
        .find(|r| r.tags.len() >= 2 && r.revisions.len() >= 2)
        .unwrap();
    let tag = &repo.tags[0];
    let other = repo
        .revisions
        .iter()
        .map(|l| l.target())
        .find(|&t| Some(t) != tag.current.and_then(|c| c.target))
        .unwrap();
    let other_digest = live.blobs[other as usize].digest;
    b.put(
        &format!(
            "reg/docker/registry/v2/repositories/{}/_manifests/tags/{}/current/link",
            repo.name.as_str(),
            tag.name
        ),
        format!("sha256:{}", other_digest.hex()).as_bytes(),
    );
    let c4 = open();
    let (moved, _) = scan(&b, Some(&c4));
    assert_eq!(c4.stats().link_misses, 1);
    let (fresh, _) = scan(&b, None);
    assert_eq!(moved, fresh, "the moved tag is seen as a live scan sees it");
    let r = moved
        .repositories
        .iter()
        .find(|r| r.name == repo.name)
        .unwrap();
    let t = r.tags.iter().find(|t| t.name == tag.name).unwrap();
    assert_eq!(
        t.current
            .and_then(|c| c.target)
            .map(|id| moved.blobs[id as usize].digest),
        Some(other_digest)
    );
}
