//! Migrations between two filesystems, on generated registries (`stowage-gen`): the library's
//! own behaviour (dry run, faithful copy, resume, incremental, corrupt blobs, reachable
//! only). Object stores, the real registry and kill -9 are in `stowage-cli/tests/migrate.rs`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use stowage_migrate::open::{self, Endpoint};
use stowage_migrate::{Error, Options, Progress, Report};
use stowage_storage::{
    BackendKind, Entry, Meta, OpCounters, Storage, StorageError, StoragePut, TreeEntry,
};

fn generate(dir: &Path, blobs: u64) -> PathBuf {
    let out = dir.join("src");
    stowage_gen::generate(&stowage_gen::Options::new(&out, blobs)).unwrap();
    out
}

/// Every file below `docker/registry/v2` but uploads: bytes and mtime.
fn files(root: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let base = root.join("docker/registry/v2");
    let mut out = BTreeMap::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(&base)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                if !rel.contains("/_uploads/") {
                    let m = e.metadata().unwrap().modified().unwrap();
                    out.insert(rel, (std::fs::read(e.path()).unwrap(), m));
                }
            }
        }
    }
    out
}

fn opts(dir: &Path, execute: bool) -> Options {
    Options {
        concurrency: 4,
        execute,
        journal: dir.join("migrate.journal"),
        ..Options::default()
    }
}

fn run(src: &Path, dst: &Path, o: &Options) -> Result<Report, Error> {
    let e = Endpoint::default();
    let from = open::source(src.to_str().unwrap(), &e).unwrap();
    let to = open::target(dst.to_str().unwrap(), &e, o.execute).unwrap();
    stowage_migrate::migrate(&*from, &*to, o, &Progress::default())
}

#[test]
fn a_dry_run_writes_nothing_then_the_copy_is_identical() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 300);
    let dst = d.path().join("dst");
    let dry = run(&src, &dst, &opts(d.path(), false)).unwrap();
    assert!(dry.dry_run && dry.ok());
    assert!(!dst.exists(), "a dry run creates nothing");
    assert!(!d.path().join("migrate.journal").exists());
    let want = files(&src);
    let blobs = want
        .keys()
        .filter(|k| k.ends_with("/data") && k.starts_with("blobs/"))
        .count();
    assert_eq!(dry.blobs_copied.objects as usize, blobs);
    assert_eq!(
        (dry.blobs_copied.objects + dry.links_copied.objects) as usize,
        want.len()
    );
    assert!(
        dry.uploads_left_out.objects > 0,
        "the generator leaves uploads"
    );

    let r = run(&src, &dst, &opts(d.path(), true)).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert_eq!(r.blobs_copied, dry.blobs_copied);
    assert!(r.dangling_links.len() < want.len());
    let got = files(&dst);
    // Links the source has dangling are not copied; everything else is, bytes and dates.
    let dangling: Vec<&str> = r.dangling_links.iter().map(|s| s.path.as_str()).collect();
    for (k, v) in &want {
        if dangling.contains(&k.as_str()) {
            assert!(!got.contains_key(k), "{k}");
        } else {
            assert_eq!(got.get(k), Some(v), "{k}");
        }
    }
    assert_eq!(got.len() + dangling.len(), want.len());
    assert!(!dst.join(stowage_storage::STAGING_DIR).exists());
}

#[test]
fn a_rerun_needs_incremental_and_copies_only_what_changed() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 200);
    let dst = d.path().join("dst");
    let first = run(&src, &dst, &opts(d.path(), true)).unwrap();
    assert!(first.ok());
    let e = run(&src, &dst, &opts(d.path(), true)).unwrap_err();
    assert!(matches!(e, Error::AlreadyDone { .. }), "{e}");

    // A push after the first run: a new blob, its layer link, and a tag moved to it.
    let v2 = src.join("docker/registry/v2");
    let body = b"a new layer";
    let hex = stowage_model::Sha256::of(body).hex();
    let blob = v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, body).unwrap();
    let tag = std::fs::read_dir(v2.join("repositories"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find_map(|repo| {
            let tags = repo.join("_manifests/tags");
            let t = std::fs::read_dir(&tags).ok()?.next()?.ok()?;
            Some((repo, t.path().join("current/link")))
        })
        .unwrap();
    let layer = tag.0.join(format!("_layers/sha256/{hex}/link"));
    std::fs::create_dir_all(layer.parent().unwrap()).unwrap();
    std::fs::write(&layer, format!("sha256:{hex}")).unwrap();
    std::fs::write(&tag.1, format!("sha256:{hex}")).unwrap();

    let mut o = opts(d.path(), true);
    o.incremental = true;
    let r = run(&src, &dst, &o).unwrap();
    assert!(r.ok() && r.incremental && !r.resumed, "{r:?}");
    assert_eq!(r.blobs_copied.objects, 1);
    assert_eq!(
        r.links_copied.objects, 2,
        "the layer link and the moved tag"
    );
    assert_eq!(
        r.links_unchanged.objects,
        first.links_copied.objects - 1,
        "every other link is unchanged"
    );
    let rel = |p: &Path| p.strip_prefix(&src).unwrap().to_path_buf();
    assert_eq!(
        std::fs::read(dst.join(rel(&tag.1))).unwrap(),
        format!("sha256:{hex}").as_bytes()
    );
    assert_eq!(std::fs::read(dst.join(rel(&blob))).unwrap(), body);
}

#[test]
fn a_corrupt_blob_is_not_copied_nor_the_links_to_it() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 100);
    let dst = d.path().join("dst");
    let v2 = src.join("docker/registry/v2");
    // A layer some repository links: flip its first byte, same size.
    let link = files(&src)
        .into_iter()
        .find(|(k, _)| k.contains("/_layers/sha256/"))
        .unwrap();
    let hex = link.0.split('/').rev().nth(1).unwrap().to_owned();
    let data = v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let r = run(&src, &dst, &opts(d.path(), true)).unwrap();
    assert!(!r.ok());
    let bad = format!("blobs/sha256/{}/{hex}/data", &hex[..2]);
    assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
    assert_eq!(r.failed[0].path, bad);
    assert!(
        r.failed[0].why.contains("not to the digest of their path"),
        "{}",
        r.failed[0].why
    );
    assert!(!dst.join("docker/registry/v2").join(&bad).exists());
    assert!(
        r.dangling_links.iter().any(|s| s.path == link.0),
        "{:?}",
        r.dangling_links
    );
    assert!(!dst.join("docker/registry/v2").join(&link.0).exists());
    // Not journaled as finished: a run after fixing the source goes on.
    let e = run(&src, &dst, &opts(d.path(), true));
    assert!(e.is_ok());
}

#[test]
fn reachable_only_leaves_out_what_no_manifest_reaches() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 300);
    let dst = d.path().join("dst");
    let mut o = opts(d.path(), true);
    o.reachable_only = true;
    let r = run(&src, &dst, &o).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert!(
        r.unreferenced_left_out.objects > 0,
        "the generator leaves orphans"
    );
    let s = stowage_storage::FsStorage::open(&src.join("docker/registry/v2")).unwrap();
    let t = stowage_storage::FsStorage::open(&dst.join("docker/registry/v2")).unwrap();
    let scan = |st: &dyn Storage| {
        stowage_scan::scan(st, &Default::default(), &Default::default()).unwrap()
    };
    let (a, b) = (scan(&s), scan(&t));
    // Every blob some manifest reaches is there; nothing else is.
    let g = stowage_graph::Graph::new(&a);
    let marked = g.mark(g.all_revision_roots(), false);
    let reached: Vec<_> = a
        .blobs
        .iter()
        .zip(&marked)
        .filter(|(_, m)| **m)
        .map(|(b, _)| b.digest)
        .collect();
    let copied: Vec<_> = b.blobs.iter().map(|b| b.digest).collect();
    assert_eq!(copied, reached);
    assert_eq!(
        r.unreferenced_left_out.objects as usize,
        a.blobs.len() - reached.len()
    );
    // The copy has no link to a blob it lacks that the source had.
    assert!(
        b.missing.iter().all(|m| a.missing.contains(m)),
        "{:?}",
        b.missing
    );
}

/// A target that fails every write after the first `n`: an interrupted run.
struct Interrupted<T> {
    inner: T,
    left: AtomicUsize,
}

impl<T: Storage> Storage for Interrupted<T> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn backend(&self) -> BackendKind {
        self.inner.backend()
    }
    fn list_dir(&self, p: &str, v: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        self.inner.list_dir(p, v)
    }
    fn stat(&self, p: &str) -> Result<Meta, StorageError> {
        self.inner.stat(p)
    }
    fn read(&self, p: &str, l: u64) -> Result<Vec<u8>, StorageError> {
        self.inner.read(p, l)
    }
    fn read_with_meta(&self, p: &str, l: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.inner.read_with_meta(p, l)
    }
    fn open(&self, p: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        self.inner.open(p)
    }
    fn counters(&self) -> &OpCounters {
        self.inner.counters()
    }
    fn list_tree(&self, p: &str, v: &mut dyn FnMut(TreeEntry<'_>)) -> Result<(), StorageError> {
        self.inner.list_tree(p, v)
    }
}

impl<T: StoragePut> StoragePut for Interrupted<T> {
    fn put(
        &self,
        path: &str,
        body: &mut dyn Read,
        size: u64,
        m: Option<stowage_model::Timestamp>,
    ) -> Result<(), StorageError> {
        if self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(StorageError::io(
                path,
                std::io::Error::other("connection reset"),
            ));
        }
        self.inner.put(path, body, size, m)
    }
}

#[test]
fn an_interrupted_run_resumes_from_its_journal() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 200);
    let dst = d.path().join("dst");
    let e = Endpoint::default();
    let from = open::source(src.to_str().unwrap(), &e).unwrap();
    let o = opts(d.path(), true);
    let to = Interrupted {
        inner: open::target(dst.to_str().unwrap(), &e, true).unwrap(),
        left: AtomicUsize::new(60),
    };
    let cut = stowage_migrate::migrate(&*from, &to, &o, &Progress::default()).unwrap();
    assert!(!cut.ok());
    assert_eq!(cut.copied().objects, 60);
    // Links never come before blobs: the first 60 writes were all blobs.
    assert_eq!(cut.links_copied.objects, 0);

    let r = run(&src, &dst, &o).unwrap();
    assert!(r.ok() && r.resumed, "{r:?}");
    assert_eq!(
        r.blobs_present.objects, 60,
        "what the first run wrote is not written again"
    );
    let full = run(
        &src,
        &d.path().join("fresh"),
        &opts(&d.path().join("j2"), true),
    )
    .unwrap();
    assert_eq!(files(&dst), files(&d.path().join("fresh")));
    assert_eq!(r.blobs_copied.objects + 60, full.blobs_copied.objects);
}

/// The repository of a key below `repositories/` and the part after it.
fn split_repo(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("repositories/")?;
    let i = ["/_layers/", "/_manifests/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()?;
    Some((&rest[..i], &rest[i..]))
}

/// Corrupt the blob of the first link whose key contains `marker` (so its copy fails its
/// sha256 check); the repositories with such a link to that blob.
fn corrupt_first_linked(
    src: &Path,
    before: &BTreeMap<String, (Vec<u8>, std::time::SystemTime)>,
    marker: &str,
) -> std::collections::BTreeSet<String> {
    let link = before.keys().find(|k| k.contains(marker)).unwrap();
    let hex = link.split('/').rev().nth(1).unwrap().to_owned();
    let data = src.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    before
        .keys()
        .filter(|k| k.contains(marker) && k.contains(&hex))
        .filter_map(|k| split_repo(k).map(|(r, _)| r.to_string()))
        .collect()
}

/// Review finding: revision links went in the same wave as layer links and checked only
/// their own blob, so a failed layer copy left a tag whose layer answers 404 on a target
/// already serving. Now a repository where a layer link's blob failed gets none of its
/// revision or tag links (held back, reported); every other repository is complete.
#[test]
fn a_failed_layer_holds_back_the_manifests_and_tags_of_its_repositories() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 100);
    let dst = d.path().join("dst");
    let before = files(&src);
    let affected = corrupt_first_linked(&src, &before, "/_layers/sha256/");
    let r = run(&src, &dst, &opts(d.path(), true)).unwrap();
    assert!(!r.ok());
    assert!(!r.held_back.is_empty());
    let after = files(&dst);
    let mut complete = 0;
    for k in before.keys() {
        let Some((repo, rest)) = split_repo(k) else {
            continue;
        };
        let later_wave = rest.starts_with("/_manifests/");
        if affected.contains(repo) && later_wave {
            assert!(!after.contains_key(k), "{k} written, its repository broken");
            assert!(r.held_back.iter().any(|s| &s.path == k), "{k} not reported");
        } else if !affected.contains(repo) && later_wave {
            // Links dangling in the source are never copied (as before).
            if r.dangling_links.iter().any(|s| &s.path == k) {
                continue;
            }
            assert_eq!(
                after.get(k).map(|x| &x.0),
                Some(&before[k].0),
                "{k}: {:?}",
                r.held_back.iter().find(|s| &s.path == k)
            );
            complete += 1;
        }
    }
    assert!(complete > 0);
    for s in &r.held_back {
        assert!(affected.contains(split_repo(&s.path).unwrap().0), "{s:?}");
    }
}

/// Review finding: an index and its children went in the same wave, so a child whose copy
/// failed left the index served by digest with a child answering 404. Now a revision naming
/// a blob whose copy failed holds back every revision of its repository (and so its tags).
#[test]
fn a_failed_manifest_holds_back_every_revision_of_its_repository() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 100);
    let dst = d.path().join("dst");
    let before = files(&src);
    let affected = corrupt_first_linked(&src, &before, "/_manifests/revisions/sha256/");
    let r = run(&src, &dst, &opts(d.path(), true)).unwrap();
    assert!(!r.ok());
    let after = files(&dst);
    let mut held = 0;
    for k in before.keys() {
        let Some((repo, rest)) = split_repo(k) else {
            continue;
        };
        if affected.contains(repo) && rest.starts_with("/_manifests/") {
            assert!(
                !after.contains_key(k),
                "{k} written, a revision of its repository failed"
            );
            held += 1;
        }
    }
    // More than the failed revision itself: its repository's other revisions wait too.
    assert!(held > affected.len(), "{held}");
}

/// Review finding: a target blob of the source's size was taken as the same blob without
/// its hash. Now one that no run of this journal wrote is hashed in the target and copied
/// again when its bytes differ; `trust_size` keeps the old, faster behaviour.
#[test]
fn a_target_blob_of_the_right_size_with_other_bytes_is_copied_again() {
    let d = tempfile::tempdir().unwrap();
    let src = generate(d.path(), 50);
    let dst = d.path().join("dst");
    assert!(run(&src, &dst, &opts(d.path(), true)).unwrap().ok());
    let (key, _) = files(&src)
        .into_iter()
        .find(|(k, _)| k.starts_with("blobs/sha256/"))
        .unwrap();
    let target = dst.join("docker/registry/v2").join(&key);
    let good = std::fs::read(&target).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 0xff;
    std::fs::write(&target, &bad).unwrap();
    // Another migration into the same target (a journal of its own).
    let mut o = opts(d.path(), true);
    o.journal = d.path().join("second.journal");
    o.trust_size = true;
    let r = run(&src, &dst, &o).unwrap();
    assert_eq!(r.blobs_copied.objects, 0);
    assert_eq!(std::fs::read(&target).unwrap(), bad, "trusted by its size");
    let mut o = opts(d.path(), true);
    o.journal = d.path().join("third.journal");
    let r = run(&src, &dst, &o).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert_eq!(r.blobs_copied.objects, 1);
    assert!(r.blobs_present.objects > 10);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        good,
        "hashed, copied again"
    );
}
