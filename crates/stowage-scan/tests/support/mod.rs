//! Shared by the hostile-storage tests and the mutator: scans with a timeout (a hang is a
//! failure, not a stuck test run), the `check` view (scan findings plus the analysis's, plus
//! digest verification), a `gc -m` plan, and the closure of the tags.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::finding::Finding;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::{GcOptions, Plan};
use stowage_scan::{Progress, ScanOptions, VerifyOptions, scan, verify_blobs};
use stowage_storage::{FsStorage, Storage};

/// How long one scan may take before it counts as a hang (the sample scans in milliseconds).
pub const HANG: Duration = Duration::from_secs(60);

/// Run `f` on its own thread; a result later than [`HANG`] fails the test.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what}: hung for {HANG:?}"),
        Err(e) => panic!("{what}: panicked ({e})"),
    }
}

/// Scan a layout root on the filesystem, with a timeout.
pub fn scan_fs(root: &Path, verify_links: bool) -> Inventory {
    let root: PathBuf = root.to_path_buf();
    within("scan", move || {
        let s = FsStorage::open(&root).unwrap();
        scan_storage(&s, verify_links)
    })
}

pub fn scan_storage(s: &dyn Storage, verify_links: bool) -> Inventory {
    scan(
        s,
        &ScanOptions {
            concurrency: 4,
            verify_links,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap()
}

/// What `stowage check --verify-digests` reports: the scan's findings (links read), the
/// analysis's and the digest verification's, sorted.
pub fn check(root: &Path) -> Vec<Finding> {
    let root: PathBuf = root.to_path_buf();
    within("check", move || {
        let s = FsStorage::open(&root).unwrap();
        let inv = scan_storage(&s, true);
        let mut f = inv.findings.clone();
        f.extend(stowage_graph::analyze_findings(&Graph::new(&inv)));
        f.extend(verify_blobs(
            &s,
            &inv,
            &VerifyOptions { concurrency: 2 },
            &AtomicU64::new(0),
        ));
        f.sort();
        f.dedup();
        f
    })
}

/// Far after anything a test writes: the grace period holds nothing back.
pub fn now() -> Timestamp {
    Timestamp::from_secs(4_102_444_800) // 2100-01-01
}

/// `gc -m --dangling-links --empty-dirs` with no grace: the boldest plan gc makes.
pub fn gc_m(inv: &Inventory) -> Plan {
    let opts = GcOptions {
        delete_untagged: true,
        grace_seconds: 0,
        uploads_older_than_seconds: None,
        dangling_links: true,
        empty_dirs: true,
        cache: false,
        cache_max_bytes: None,
        orphan_signatures: false,
    };
    stowage_plan::gc::build(&Graph::new(inv), &opts, now())
}

/// Every digest reachable from a tag: tagged manifests, their index children, configs,
/// layers (and referrers, which gc keeps with their subject).
pub fn tag_closure(inv: &Inventory) -> BTreeSet<Digest> {
    let g = Graph::new(inv);
    let marked = g.mark(stowage_graph::tagged_roots(&g), true);
    (0..marked.len())
        .filter(|&i| marked[i])
        .map(|i| inv.digest(i as u32))
        .collect()
}

/// Digests a plan deletes: blobs and manifests.
pub fn planned(p: &Plan) -> BTreeSet<Digest> {
    p.blobs
        .iter()
        .map(|b| b.digest.clone())
        .chain(p.manifests.iter().map(|m| m.digest.clone()))
        .collect()
}

/// A special file to put where the registry keeps a regular file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Special {
    Fifo,
    Socket,
    Directory,
    CharDevice,
}

/// Replace whatever is at `root/rel` with a special file. `false` when this machine cannot
/// make one (devices need CAP_MKNOD).
pub fn make_special(root: &Path, rel: &str, what: Special) -> bool {
    let p = root.join(rel);
    match p.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).unwrap(),
        Ok(_) => std::fs::remove_file(&p).unwrap(),
        Err(_) => {}
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let node = |ft, dev| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            ft,
            rustix::fs::Mode::from_raw_mode(0o644),
            dev,
        )
    };
    match what {
        Special::Fifo => node(rustix::fs::FileType::Fifo, 0).unwrap(),
        // Made where its path fits in sun_path (108 bytes), on the same filesystem, then
        // moved into place.
        Special::Socket => {
            let short = tempfile::Builder::new()
                .prefix(".s")
                .tempdir_in(root)
                .unwrap();
            let at = short.path().join("s");
            drop(std::os::unix::net::UnixListener::bind(&at).unwrap());
            std::fs::rename(&at, &p).unwrap();
        }
        Special::Directory => std::fs::create_dir(&p).unwrap(),
        // /dev/zero: reading it never ends.
        Special::CharDevice => {
            return node(
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::makedev(1, 5),
            )
            .is_ok();
        }
    }
    true
}
