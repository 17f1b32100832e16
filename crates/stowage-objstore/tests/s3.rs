//! Object-store specifics against a real S3 server on loopback (`s3s-fs`): pagination and
//! request counting, what the layout root resolves to, and the quarantine prefix.

use stowage_objstore::{ObjectStorage, Options};
use stowage_storage::{RootLayout, Storage, StorageWrite};
use stowage_testkit::s3::{self, S3Server};

fn opts(server: &S3Server) -> Options {
    Options {
        endpoint: Some(server.endpoint()),
        region: Some(s3::REGION.into()),
        access_key: Some(s3::ACCESS_KEY.into()),
        secret_key: Some(s3::SECRET_KEY.into()),
        ..Options::default()
    }
}

#[test]
fn listings_paginate_and_every_request_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = S3Server::start(&dir.path().join("s3"), "listings_paginate") else {
        return;
    };
    let v2 = server.bucket("bkt").join("root/docker/registry/v2");
    for i in 0..25 {
        let d = v2.join(format!("blobs/sha256/ab/ab{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("data"), vec![b'x'; i]).unwrap();
    }
    let (s, how) = ObjectStorage::open("s3://bkt/root", &opts(&server)).unwrap();
    assert_eq!(how, RootLayout::RootDirectory);
    assert_eq!(s.describe(), "s3://bkt/root/docker/registry/v2");
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
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = S3Server::start(&dir.path().join("s3"), "open_finds_the_layout_root") else {
        return;
    };
    let b = server.bucket("bkt");
    std::fs::create_dir_all(b.join("flat/repositories/x/_layers")).unwrap();
    std::fs::write(b.join("flat/repositories/x/_layers/f"), b"1").unwrap();
    let (s, how) = ObjectStorage::open("s3://bkt/flat", &opts(&server)).unwrap();
    assert_eq!(
        (how, s.describe()),
        (RootLayout::LayoutRoot, "s3://bkt/flat".into())
    );
    let e = ObjectStorage::open("s3://bkt/nothing-here", &opts(&server)).unwrap_err();
    assert!(
        e.to_string()
            .contains("is this the registry's rootdirectory?"),
        "{e}"
    );
    // Quarantine needs a rootdirectory to put its prefix beside docker/registry/v2.
    let e = s
        .check_quarantine(&dir.path().join("q/batch-1"))
        .unwrap_err();
    assert!(e.to_string().contains("docker/registry/v2"), "{e}");
}

#[test]
fn quarantine_goes_beside_the_layout_and_purge_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = S3Server::start(&dir.path().join("s3"), "quarantine_prefix") else {
        return;
    };
    let b = server.bucket("bkt");
    let blob = b.join("reg/docker/registry/v2/blobs/sha256/cd/cdef");
    std::fs::create_dir_all(&blob).unwrap();
    std::fs::write(blob.join("data"), b"bytes").unwrap();
    let (s, _) = ObjectStorage::open("s3://bkt/reg", &opts(&server)).unwrap();
    let batch = dir.path().join("q/batch-7");
    s.check_quarantine(&batch).unwrap();
    assert_eq!(
        s.quarantine_location(&batch),
        "s3://bkt/reg/stowage-quarantine/batch-7/"
    );
    assert!(s.move_to("blobs/sha256/cd/cdef", &batch).unwrap());
    let q = b.join("reg/stowage-quarantine/batch-7/blobs/sha256/cd/cdef/data");
    assert_eq!(std::fs::read(&q).unwrap(), b"bytes");
    assert!(!blob.join("data").exists());
    s.purge_quarantine(&batch).unwrap();
    assert!(!q.exists());
    assert!(s.counters().snapshot().writes >= 3, "copy, delete, delete");
}
