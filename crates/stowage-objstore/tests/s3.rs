//! Object-store specifics against a real S3 server on loopback (moto): pagination and
//! request counting, what the layout root resolves to, and the quarantine prefix.

#![allow(clippy::unwrap_used)]

mod common;

use common::Bucket;
use stowage_objstore::ObjectStorage;
use stowage_storage::{RootLayout, Storage, StorageWrite};

#[test]
fn listings_paginate_and_every_request_is_counted() {
    let Some(b) = Bucket::new("listings_paginate") else {
        return;
    };
    for i in 0..25 {
        b.put(
            &format!("root/docker/registry/v2/blobs/sha256/ab/ab{i:02}/data"),
            &vec![b'x'; i],
        );
    }
    let (s, how) = ObjectStorage::open(&b.url("root"), &b.options()).unwrap();
    assert_eq!(how, RootLayout::RootDirectory);
    assert_eq!(s.describe(), "s3://stowage-test/root/docker/registry/v2");
    let s = s.with_page_size(10);
    let before = s.counters().snapshot().lists;
    let mut dirs = 0;
    s.list_dir("blobs/sha256/ab", &mut |_| dirs += 1).unwrap();
    assert_eq!(dirs, 25);
    let mut files = Vec::new();
    s.list_tree("blobs/sha256/ab", &mut |e| {
        files.push((e.path.to_owned(), e.meta.map(|m| m.size)))
    })
    .unwrap();
    files.sort();
    assert_eq!(files.len(), 25);
    assert_eq!(files[7], ("ab07/data".to_string(), Some(7)));
    let lists = s.counters().snapshot().lists - before;
    assert!(
        lists >= 6,
        "25 keys in pages of 10, twice: {lists} list requests"
    );
}

#[test]
fn open_finds_the_layout_root_or_says_why_not() {
    let Some(b) = Bucket::new("open_finds_the_layout_root") else {
        return;
    };
    b.put("flat/repositories/x/_layers/f", b"1");
    let (s, how) = ObjectStorage::open(&b.url("flat"), &b.options()).unwrap();
    assert_eq!(
        (how, s.describe()),
        (RootLayout::LayoutRoot, "s3://stowage-test/flat".into())
    );
    let e = ObjectStorage::open(&b.url("nothing-here"), &b.options()).unwrap_err();
    assert!(
        e.to_string()
            .contains("is this the registry's rootdirectory?"),
        "{e}"
    );
    // Quarantine needs a rootdirectory to put its prefix beside docker/registry/v2.
    let e = s
        .check_quarantine(&b.dir.path().join("q/batch-1"))
        .unwrap_err();
    assert!(e.to_string().contains("docker/registry/v2"), "{e}");
}

#[test]
fn quarantine_goes_beside_the_layout_and_purge_empties_it() {
    let Some(b) = Bucket::new("quarantine_prefix") else {
        return;
    };
    let blob = "reg/docker/registry/v2/blobs/sha256/cd/cdef/data";
    b.put(blob, b"bytes");
    let (s, _) = ObjectStorage::open(&b.url("reg"), &b.options()).unwrap();
    let batch = b.dir.path().join("q/batch-7");
    s.check_quarantine(&batch).unwrap();
    assert_eq!(
        s.quarantine_location(&batch),
        "s3://stowage-test/reg/stowage-quarantine/batch-7/"
    );
    assert!(s.move_to("blobs/sha256/cd/cdef", &batch).unwrap());
    let q = "reg/stowage-quarantine/batch-7/blobs/sha256/cd/cdef/data";
    assert!(b.exists(q) && !b.exists(blob));
    s.purge_quarantine(&batch).unwrap();
    assert!(!b.exists(q));
    assert!(s.counters().snapshot().writes >= 3, "copy, delete, delete");
}
