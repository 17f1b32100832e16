//! One conformance suite for every storage backend (object_store's habit), so the filesystem
//! and the object stores cannot drift apart: the same functions run against each backend
//! (see `crates/stowage-objstore/tests/conformance.rs`).
//!
//! A backend under test is a [`Harness`]: the storage, a way to put a file into it the way
//! the registry would, and a quarantine batch directory. Where backends differ by nature
//! (directories exist on a filesystem, only as key prefixes on an object store), the check
//! says what both must agree on.

use std::path::PathBuf;

use std::io::Read;

use stowage_storage::{EntryKind, ErrorKind, StoragePut, StorageWrite};

/// A backend under test.
pub trait Harness {
    fn storage(&self) -> &dyn StorageWrite;
    /// The same storage, as a migration's target.
    fn target(&self) -> &dyn StoragePut;
    /// Write a file (and its parent directories, where they exist) at a layout-root key.
    fn put(&self, rel: &str, bytes: &[u8]);
    /// A quarantine batch directory (local; named `batch-...`).
    fn batch(&self) -> PathBuf;
}

const HEX: &str = "ab3f4e0c1d2b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d";

fn blob_dir() -> String {
    format!("blobs/sha256/ab/{HEX}")
}

fn link() -> String {
    format!("repositories/team/app/_layers/sha256/{HEX}/link")
}

fn fill(h: &dyn Harness) {
    h.put(&format!("{}/data", blob_dir()), b"hello blob");
    h.put(&link(), format!("sha256:{HEX}").as_bytes());
    h.put(
        "repositories/team/app/_manifests/tags/latest/current/link",
        format!("sha256:{HEX}").as_bytes(),
    );
}

fn names(h: &dyn Harness, path: &str) -> Vec<(String, EntryKind, Option<u64>)> {
    let mut out = Vec::new();
    h.storage()
        .list_dir(path, &mut |e| {
            out.push((
                String::from_utf8_lossy(e.name).into_owned(),
                e.kind,
                e.meta.map(|m| m.size),
            ))
        })
        .unwrap_or_else(|e| panic!("list_dir {path:?}: {e}"));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Listings give names and kinds; when they carry metadata, it is the file's.
pub fn list_kinds_and_meta(h: &dyn Harness) {
    fill(h);
    let s = h.storage();
    let top: Vec<_> = names(h, "").into_iter().map(|(n, k, _)| (n, k)).collect();
    assert_eq!(
        top,
        [
            ("blobs".to_string(), EntryKind::Dir),
            ("repositories".to_string(), EntryKind::Dir)
        ]
    );
    let files = names(h, &blob_dir());
    assert_eq!(files.len(), 1);
    assert_eq!((files[0].0.as_str(), files[0].1), ("data", EntryKind::File));
    if let Some(size) = files[0].2 {
        assert_eq!(size, 10, "listing metadata is the file's size");
    }
    let e = s.list_dir("blobs/sha256/cd", &mut |_| {}).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.to_string(), "blobs/sha256/cd: not found");
}

/// `list_tree` reports every file below a directory with its size, relative to it.
pub fn list_tree_finds_every_file(h: &dyn Harness) {
    fill(h);
    let mut got = Vec::new();
    h.storage()
        .list_tree("repositories/team", &mut |e| {
            got.push((e.path.to_owned(), e.kind, e.meta.map(|m| m.size)))
        })
        .unwrap();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            (
                format!("app/_layers/sha256/{HEX}/link"),
                EntryKind::File,
                Some(71)
            ),
            (
                "app/_manifests/tags/latest/current/link".to_string(),
                EntryKind::File,
                Some(71)
            ),
        ]
    );
    let e = h
        .storage()
        .list_tree("repositories/nobody", &mut |_| {})
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// `stat` and `read_with_meta` agree; reads honour their limit; errors name the path.
pub fn stat_read_and_limits(h: &dyn Harness) {
    fill(h);
    let s = h.storage();
    let data = format!("{}/data", blob_dir());
    let m = s.stat(&data).unwrap();
    assert_eq!(m.size, 10);
    assert!(m.modified.secs() > 0);
    let (bytes, m2) = s.read_with_meta(&data, 10).unwrap();
    assert_eq!(bytes, b"hello blob");
    assert_eq!((m2.size, m2.modified), (m.size, m.modified));
    assert_eq!(s.read(&data, 100).unwrap(), b"hello blob");
    let e = s.read(&data, 9).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooLarge { limit: 9 });
    assert_eq!(e.to_string(), format!("{data}: larger than 9 bytes"));
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut s.open(&data).unwrap(), &mut all).unwrap();
    assert_eq!(all, b"hello blob");
    for missing in ["blobs/sha256/ab/nope/data", "repositories/x/link"] {
        let e = s.stat(missing).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.to_string(), format!("{missing}: not found"));
        let e = s.read(missing, 100).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.path, missing);
        assert!(s.open(missing).is_err());
    }
    let snap = s.counters().snapshot();
    assert!(snap.stats >= 1 && snap.reads >= 3, "{snap:?}");
    assert_eq!(snap.in_flight, 0);
}

/// Keys that could leave the layout root are refused by every operation.
pub fn keys_cannot_leave_the_root(h: &dyn Harness) {
    fill(h);
    let s = h.storage();
    for bad in ["../outside", "/etc/passwd", "a/../../x", "a//b", "./x"] {
        assert!(s.stat(bad).is_err(), "stat {bad}");
        assert!(s.read(bad, 10).is_err(), "read {bad}");
        assert!(s.list_dir(bad, &mut |_| {}).is_err(), "list {bad}");
        assert!(s.delete(bad).is_err(), "delete {bad}");
        assert!(s.move_back(&h.batch(), bad).is_err(), "move_back {bad}");
    }
}

/// Deleting a file or a whole directory; deleting again is `Ok(false)`.
pub fn delete_is_idempotent(h: &dyn Harness) {
    fill(h);
    let s = h.storage();
    assert!(s.delete(&link()).unwrap());
    assert!(s.stat(&link()).unwrap_err().is_not_found());
    assert!(!s.delete(&link()).unwrap());
    assert!(s.delete(&blob_dir()).unwrap());
    assert!(
        s.stat(&format!("{}/data", blob_dir()))
            .unwrap_err()
            .is_not_found()
    );
    assert!(!s.delete(&blob_dir()).unwrap());
    assert!(!s.delete("blobs/sha256/ee/never").unwrap());
    // What a delete emptied is gone from listings once empty directories are removed (a
    // no-op on object stores, where they vanish with their last key).
    let _ = s.remove_empty_dir("blobs/sha256/ab").unwrap();
    let mut shards = Vec::new();
    match s.list_dir("blobs/sha256", &mut |e| shards.push(e.name.to_vec())) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("{e}"),
    }
    assert!(!shards.iter().any(|n| n == b"ab"), "{shards:?}");
    // Not empty: never removed.
    assert!(!s.remove_empty_dir("repositories/team/app").unwrap());
    assert!(
        s.stat("repositories/team/app/_manifests/tags/latest/current/link")
            .is_ok()
    );
}

/// Quarantine moves a directory out of the layout, restore puts it back byte for byte,
/// both idempotent; restore never overwrites; purge drops the batch's data.
pub fn quarantine_round_trip(h: &dyn Harness) {
    fill(h);
    let s = h.storage();
    let batch = h.batch();
    s.check_quarantine(&batch).unwrap();
    let data = format!("{}/data", blob_dir());
    assert!(s.move_to(&blob_dir(), &batch).unwrap());
    assert!(s.stat(&data).unwrap_err().is_not_found());
    assert!(!s.move_to(&blob_dir(), &batch).unwrap(), "already moved");
    assert!(s.move_back(&batch, &blob_dir()).unwrap());
    assert_eq!(s.read(&data, 100).unwrap(), b"hello blob");
    assert!(!s.move_back(&batch, &blob_dir()).unwrap(), "already back");

    // A file, then the same path written again: restore refuses and keeps the new bytes.
    assert!(s.move_to(&link(), &batch).unwrap());
    h.put(&link(), b"sha256:new");
    let e = s.move_back(&batch, &link()).unwrap_err();
    assert!(e.to_string().contains("not overwritten"), "{e}");
    assert_eq!(s.read(&link(), 100).unwrap(), b"sha256:new");

    // Purge: the batch's data is gone for good.
    s.purge_quarantine(&batch).unwrap();
    if batch.exists() {
        std::fs::remove_dir_all(&batch).unwrap();
    }
    assert!(!s.move_back(&batch, &link()).unwrap());
    assert!(!s.quarantine_location(&batch).is_empty());
}

/// A body that fails when read: a digest check that did not match.
struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("sha256 mismatch"))
    }
}

/// Writes (a migration's target) are all or nothing: a file appears whole and replaces the
/// old one; a body that fails or ends short leaves nothing, also past a multipart upload's
/// first part; keys cannot leave the root.
pub fn put_is_all_or_nothing(h: &dyn Harness) {
    let t = h.target();
    let data = format!("{}/data", blob_dir());
    t.put(&data, &mut &b"hello blob"[..], 10, None).unwrap();
    assert_eq!(t.read(&data, 100).unwrap(), b"hello blob");
    t.put(&data, &mut &b"other"[..], 5, None).unwrap();
    assert_eq!(t.read(&data, 100).unwrap(), b"other");
    let e = t.put(&link(), &mut Failing, 71, None).unwrap_err();
    assert!(e.to_string().contains("sha256 mismatch"), "{e}");
    assert_eq!(e.path, link());
    let e = t
        .put(&link(), &mut &b"sha256:ab"[..], 71, None)
        .unwrap_err();
    assert!(e.to_string().contains("9 bytes where 71"), "{e}");
    assert!(t.stat(&link()).unwrap_err().is_not_found());
    // 11 MiB: three parts of 5 MiB where the backend uploads in parts.
    let big: Vec<u8> = (0..11u32 << 20).map(|i| (i % 251) as u8).collect();
    let n = big.len() as u64;
    t.put("blobs/sha256/cd/big/data", &mut &big[..], n, None)
        .unwrap();
    let mut got = Vec::new();
    t.open("blobs/sha256/cd/big/data")
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == big, "{} bytes back of {n}", got.len());
    let mut failing = (&big[..]).chain(Failing);
    assert!(
        t.put("blobs/sha256/cd/bad/data", &mut failing, n, None)
            .is_err()
    );
    assert!(
        t.stat("blobs/sha256/cd/bad/data")
            .unwrap_err()
            .is_not_found()
    );
    for bad in ["../outside", "/etc/passwd", "a//b", "./x"] {
        assert!(t.put(bad, &mut &b"x"[..], 1, None).is_err(), "put {bad}");
    }
    t.put_finished().unwrap();
}

/// `create_file` (the links `repo-move` writes): whole, with its parents, and never over
/// something already there: a second create of the same key answers `false` and leaves the
/// first content (a destination link the registry wrote meanwhile is never replaced).
pub fn create_file_never_replaces(h: &dyn Harness) {
    fill(h);
    let s = h.storage();
    assert!(s.can_create_files());
    let path = "repositories/moved/app/_manifests/tags/latest/current/link";
    let first = format!("sha256:{HEX}");
    assert!(s.create_file(path, first.as_bytes()).unwrap());
    assert_eq!(s.read(path, 1024).unwrap(), first.as_bytes());
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(!s.create_file(path, other.as_bytes()).unwrap());
    assert_eq!(s.read(path, 1024).unwrap(), first.as_bytes());
    // Over a file the registry wrote (not through create_file) too.
    assert!(!s.create_file(&link(), other.as_bytes()).unwrap());
    assert_eq!(s.read(&link(), 1024).unwrap(), first.as_bytes());
    // Keys that leave the root are refused before anything is written.
    assert!(s.create_file("../outside/link", b"x").is_err());
}
