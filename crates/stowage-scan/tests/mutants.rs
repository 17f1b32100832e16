//! The storage-tree mutator (issue 25, "our own fuzzing"): mutants of the committed
//! real-registry sample, each scanned as `inventory`, planned as `gc -m` and checked as
//! `check --verify-digests` (library calls), with these assertions per mutant:
//!
//! - no panic, no hang (each run on a thread with a timeout; a timeout fails);
//! - no write: a listing of the tree (type, size, mtime, symlink target) is the same after;
//! - a new finding (not in the pristine tree's check) whose path is the mutated path, below
//!   it or above it, unless the mutation is provably harmless (see [`Harmless`]);
//! - nothing the pristine tree's tags reach (tagged manifests, index children, configs,
//!   layers, referrers) is planned by `gc -m --dangling-links --empty-dirs` with no grace.
//!
//! Seeded and deterministic: `STOWAGE_MUTANTS` (default 300) mutants from
//! `STOWAGE_MUTANTS_SEED` (default 25). `bench/mutants.sh` runs a longer series.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stowage_layout::{Part, PathInfo, classify};
use stowage_model::digest::Digest;
use stowage_model::finding::Finding;
use support::{Special, check, gc_m, make_special, planned, scan_fs, tag_closure};

/// SplitMix64: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// What the pristine sample holds, by role (paths relative to the layout root, sorted).
struct Roles {
    links: Vec<String>,
    manifests: Vec<String>,
    layers: Vec<String>,
    upload_files: Vec<String>,
    startedats: Vec<String>,
    blob_dirs: Vec<String>,
    tag_dirs: Vec<String>,
    repo_dirs: Vec<String>,
    upload_dirs: Vec<String>,
}

/// Why a mutation needs no finding: it changes nothing the registry or stowage reads as
/// meaning. Upload `data` and `hashstates` are partial bytes that nothing interprets (the
/// purger goes by `startedat` and the directory; stowage counts their size only).
///
/// A `startedat` whose bytes changed but still hold an RFC 3339 time is a different time
/// the registry accepts just as well: no reader can tell it from the original.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Harmless {
    UploadBytes,
    StillATime,
}

struct Mutant {
    kind: &'static str,
    what: String,
    /// Layout-relative path the mutation created or changed.
    path: String,
    harmless: Option<Harmless>,
}

fn walk(root: &Path) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let is_dir = e.file_type().unwrap().is_dir();
            if is_dir {
                stack.push(r.clone());
            }
            out.push((r.to_str().unwrap().to_owned(), is_dir));
        }
    }
    out.sort();
    out
}

/// Everything in the tree with its type, size, mtime and symlink target: a read command
/// must leave all of it as it was.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = p.symlink_metadata().unwrap();
            let target = if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else {
                String::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push(format!(
                "{:?} {:o} {} {}.{} {target}",
                p.strip_prefix(root).unwrap().as_os_str().as_bytes(),
                m.mode(),
                if m.is_dir() { 0 } else { m.size() },
                m.mtime(),
                m.mtime_nsec()
            ));
        }
    }
    out.sort();
    out
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for (rel, is_dir) in walk(src) {
        if is_dir {
            std::fs::create_dir_all(dst.join(&rel)).unwrap();
        } else {
            std::fs::copy(src.join(&rel), dst.join(&rel)).unwrap();
        }
    }
}

fn roles(root: &Path, manifests: &BTreeSet<Digest>) -> Roles {
    let mut r = Roles {
        links: vec![],
        manifests: vec![],
        layers: vec![],
        upload_files: vec![],
        startedats: vec![],
        blob_dirs: vec![],
        tag_dirs: vec![],
        repo_dirs: vec![],
        upload_dirs: vec![],
    };
    for (rel, is_dir) in walk(root) {
        match (classify(&rel), is_dir) {
            (
                PathInfo::Blob {
                    digest,
                    part: Part::File,
                },
                false,
            ) => {
                if manifests.contains(&digest) {
                    r.manifests.push(rel)
                } else {
                    r.layers.push(rel)
                }
            }
            (
                PathInfo::Blob {
                    part: Part::Dir, ..
                },
                true,
            ) => r.blob_dirs.push(rel),
            (
                PathInfo::LayerLink { .. }
                | PathInfo::RevisionLink { .. }
                | PathInfo::TagIndexEntry { .. }
                | PathInfo::TagCurrent { .. },
                false,
            ) => r.links.push(rel),
            (PathInfo::Tag { .. }, true) if !rel.ends_with("/index") => r.tag_dirs.push(rel),
            (PathInfo::RepositoryDir { .. }, true)
                if root.join(&rel).join("_manifests").is_dir() =>
            {
                r.repo_dirs.push(rel)
            }
            (PathInfo::Upload { rest: None, .. }, true) => r.upload_dirs.push(rel),
            (PathInfo::Upload { rest: Some(f), .. }, false) if f == "startedat" => {
                r.startedats.push(rel)
            }
            (PathInfo::Upload { rest: Some(_), .. }, false) => r.upload_files.push(rel),
            _ => {}
        }
    }
    r
}

const ODD_NAMES: &[&str] = &[
    "\u{1b}[31mred",
    "car\rriage",
    "with space",
    "UPPER",
    ".hidden",
    "-dash",
    "ünï",
    "a..b",
];

/// Wrong JSON types for fields the registry's Go structs decode.
fn wrong_type(rng: &mut Rng, m: &mut Value) -> Option<String> {
    let mut slots: Vec<(String, Value)> = vec![
        ("/schemaVersion".into(), json!("2")),
        ("/mediaType".into(), json!(7)),
        ("/annotations".into(), json!(-1)),
        ("/config".into(), json!([1])),
        ("/layers".into(), json!({"a": 1})),
        ("/manifests".into(), json!("x")),
        ("/fsLayers".into(), json!(3)),
    ];
    for (i, _) in m
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        slots.push((format!("/layers/{i}/size"), json!("12")));
        slots.push((format!("/layers/{i}/urls"), json!("http://x")));
        slots.push((format!("/layers/{i}/annotations"), json!([])));
    }
    for (i, _) in m
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        slots.push((format!("/manifests/{i}/size"), json!(1.5)));
        slots.push((format!("/manifests/{i}/platform"), json!("linux")));
    }
    let (ptr, v) = rng.pick(&slots).clone();
    let obj = m.as_object_mut()?;
    let key = ptr.trim_start_matches('/');
    if !key.contains('/') {
        obj.insert(key.to_owned(), v);
    } else {
        *m.pointer_mut(&ptr)? = v;
    }
    Some(ptr)
}

/// Copy (a duplicate) or move (misplaced) a blob directory out of its exact place: under a
/// fan-out of the wrong length, case or digits, or with no fan-out. Returns whether it moved
/// and where to.
fn misplace_blob(rng: &mut Rng, root: &Path, r: &Roles) -> (bool, String) {
    let p = rng.pick(&r.blob_dirs);
    let hex = p.rsplit('/').next().unwrap().to_owned();
    let shard = match rng.below(5) {
        0 => hex[..3].to_owned(),
        1 => hex[..1].to_owned(),
        2 => hex[..2].to_uppercase(),
        3 => if &hex[..2] == "00" { "01" } else { "00" }.to_owned(),
        _ => "..".to_owned(),
    };
    let to = if shard == ".." {
        format!("blobs/sha256/{hex}")
    } else if shard == hex[..2] {
        // Uppercase of digits only is the same fan-out: upper-case the name instead.
        format!("blobs/sha256/{shard}/{}", hex.to_uppercase())
    } else {
        format!("blobs/sha256/{shard}/{hex}")
    };
    let moved = rng.below(2) == 0;
    std::fs::create_dir_all(root.join(&to)).unwrap();
    for e in std::fs::read_dir(root.join(p)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), root.join(&to).join(e.file_name())).unwrap();
    }
    if moved {
        std::fs::remove_dir_all(root.join(p)).unwrap();
    }
    (moved, to)
}

/// Apply one mutation to the tree at `root`.
fn mutate(rng: &mut Rng, root: &Path, r: &Roles) -> Mutant {
    let files: Vec<&String> = r
        .links
        .iter()
        .chain(&r.manifests)
        .chain(&r.layers)
        .chain(&r.startedats)
        .collect();
    let mutant = |kind, what: &str, path: &str, harmless| Mutant {
        kind,
        what: what.to_owned(),
        path: path.to_owned(),
        harmless,
    };
    match rng.below(10) {
        0 => {
            // Truncation.
            let all: Vec<&String> = files.iter().copied().chain(&r.upload_files).collect();
            let p = *rng.pick(&all);
            let full = root.join(p);
            let len = std::fs::metadata(&full).unwrap().len();
            let keep = rng.below(len as usize) as u64;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&full)
                .unwrap()
                .set_len(keep)
                .unwrap();
            let h = r.upload_files.contains(p).then_some(Harmless::UploadBytes);
            mutant("truncate", &format!("to {keep} of {len} bytes"), p, h)
        }
        1 => {
            // Random bytes: overwrite a range, each byte changed.
            let all: Vec<&String> = files.iter().copied().chain(&r.upload_files).collect();
            let p = *rng.pick(&all);
            let full = root.join(p);
            let mut b = std::fs::read(&full).unwrap();
            if b.is_empty() {
                b.push(0);
            }
            let at = rng.below(b.len());
            let n = 1 + rng.below(8.min(b.len() - at));
            for x in &mut b[at..at + n] {
                *x ^= 1 + (rng.next() % 255) as u8;
            }
            std::fs::write(&full, &b).unwrap();
            let still_a_time = r.startedats.contains(p)
                && std::str::from_utf8(&b)
                    .ok()
                    .and_then(stowage_model::time::Timestamp::parse_rfc3339)
                    .is_some();
            let h = if r.upload_files.contains(p) {
                Some(Harmless::UploadBytes)
            } else {
                still_a_time.then_some(Harmless::StillATime)
            };
            mutant("random-bytes", &format!("{n} at {at}"), p, h)
        }
        2 => {
            // Wrong JSON types in a manifest.
            let p = rng.pick(&r.manifests);
            let full = root.join(p);
            let mut v: Value = serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap();
            let ptr = wrong_type(rng, &mut v).unwrap_or_default();
            std::fs::write(&full, serde_json::to_vec(&v).unwrap()).unwrap();
            mutant("wrong-json-type", &format!("at {ptr}"), p, None)
        }
        3 => {
            let p = *rng.pick(&files);
            let what = *rng.pick(&[Special::Fifo, Special::Socket, Special::Directory]);
            make_special(root, p, what);
            mutant("special-file", &format!("{what:?}"), p, None)
        }
        4 => {
            // A symbolic link in place of a file or a directory.
            let dirs: Vec<&String> = r.tag_dirs.iter().chain(&r.blob_dirs).collect();
            let p = if rng.below(2) == 0 {
                *rng.pick(&files)
            } else {
                *rng.pick(&dirs)
            };
            let full = root.join(p);
            let target = match rng.below(3) {
                0 => PathBuf::from("/etc/passwd"),
                1 => PathBuf::from("/"),
                _ => root.join(rng.pick(&r.layers)),
            };
            if full.is_dir() {
                std::fs::remove_dir_all(&full).unwrap();
            } else {
                std::fs::remove_file(&full).unwrap();
            }
            std::os::unix::fs::symlink(&target, &full).unwrap();
            mutant("symlink", &format!("to {}", target.display()), p, None)
        }
        5 | 6 => {
            let (moved, to) = misplace_blob(rng, root, r);
            let verb = if moved { "moved" } else { "copied" };
            let kind = if moved {
                "misplaced-blob"
            } else {
                "duplicate-blob"
            };
            mutant(kind, &format!("{verb} to {to}"), &to, None)
        }
        7 => {
            // An odd name for a tag, a repository or an upload.
            let dirs: Vec<&String> = r
                .tag_dirs
                .iter()
                .chain(&r.repo_dirs)
                .chain(&r.upload_dirs)
                .collect();
            let p = *rng.pick(&dirs);
            let mut name = *rng.pick(ODD_NAMES);
            // A tag may be uppercase or hold "..": a repository may not.
            if r.tag_dirs.contains(p) && matches!(name, "UPPER" | "a..b") {
                name = "-dash";
            }
            let to = format!("{}/{name}", p.rsplit_once('/').unwrap().0);
            std::fs::rename(root.join(p), root.join(&to)).unwrap();
            mutant("odd-name", &format!("renamed from {p}"), &to, None)
        }
        8 => {
            // A name that is not UTF-8 in a repository.
            let p = rng.pick(&r.repo_dirs);
            let name = std::ffi::OsStr::from_bytes(b"bad\xff\xfe");
            std::fs::create_dir(root.join(p).join(name)).unwrap();
            mutant(
                "non-utf8-name",
                "directory",
                &format!("{p}/bad\u{fffd}\u{fffd}"),
                None,
            )
        }
        _ => {
            // A stray file beside a link (an interrupted atomic write of registry 3.1+).
            let p = rng.pick(&r.links);
            let dir = p.rsplit_once('/').unwrap().0;
            let to = format!("{dir}/link.{}.tmp", rng.below(1000));
            std::fs::write(root.join(&to), b"partial").unwrap();
            mutant("stray-file", "link.N.tmp", &to, None)
        }
    }
}

/// A fresh directory for one mutant: in memory where the machine has `/dev/shm` (a disk's
/// journal made creating and removing the trees most of the run's time), else in the
/// default temporary directory.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => tempfile::Builder::new()
            .prefix("stowage-mutant")
            .tempdir_in(shm)
            .or_else(|_| tempfile::tempdir())
            .unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

/// Does `f` say something about `path`: the path itself, below it, or above it (but not the
/// top directories, which say nothing about one path)?
fn names(f: &Finding, path: &str) -> bool {
    let top = ["", "blobs", "blobs/sha256", "repositories"];
    f.path == path
        || f.path.starts_with(&format!("{path}/"))
        || (!top.contains(&f.path.as_str()) && path.starts_with(&format!("{}/", f.path)))
}

#[test]
fn mutants_of_the_real_registry_never_hang_write_or_plan_what_tags_need() {
    let count: usize = std::env::var("STOWAGE_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("STOWAGE_MUTANTS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let sample = stowage_testkit::sample();
    let pristine = sample.layout_root();
    let inv = scan_fs(&pristine, false);
    let closure = tag_closure(&inv);
    let manifests: BTreeSet<Digest> = inv.manifests.iter().map(|m| inv.digest(m.id)).collect();
    let roles = roles(&pristine, &manifests);
    assert!(!roles.manifests.is_empty() && !roles.links.is_empty() && !closure.is_empty());
    let baseline: BTreeSet<Finding> = check(&pristine).into_iter().collect();
    let mut rng = Rng(seed);
    let (mut harmless, mut kinds) = (0usize, std::collections::BTreeMap::new());
    let started = std::time::Instant::now();
    // Time in inventory + gc -m, and in check (reported, never asserted).
    let mut spent = [std::time::Duration::ZERO; 2];
    for i in 0..count {
        let dir = scratch();
        let root = dir.path().join("v2");
        copy_tree(&pristine, &root);
        let m = mutate(&mut rng, &root, &roles);
        let label = format!(
            "mutant {i} (seed {seed}): {} {} at {}",
            m.kind, m.what, m.path
        );
        *kinds.entry(m.kind).or_insert(0usize) += 1;
        let before = listing(&root);
        let t0 = std::time::Instant::now();
        let inv = scan_fs(&root, false);
        let plan = gc_m(&inv);
        let t1 = std::time::Instant::now();
        let findings = check(&root);
        spent[0] += t1 - t0;
        spent[1] += t1.elapsed();
        assert_eq!(listing(&root), before, "{label}: the tree changed");
        let bad: Vec<Digest> = planned(&plan).intersection(&closure).cloned().collect();
        assert!(
            bad.is_empty(),
            "{label}: plans {bad:?}, which the tags need"
        );
        let named = findings
            .iter()
            .any(|f| !baseline.contains(f) && names(f, &m.path));
        match m.harmless {
            Some(_) => harmless += 1,
            None => assert!(
                named,
                "{label}: no new finding names it; new findings:\n{}",
                findings
                    .iter()
                    .filter(|f| !baseline.contains(f))
                    .map(|f| format!("  {f}\n"))
                    .collect::<String>()
            ),
        }
    }
    eprintln!(
        "{count} mutants (seed {seed}) in {:.1?} (inventory + gc -m {:.1?}, check {:.1?}): \
         {harmless} harmless by rule; by kind {kinds:?}",
        started.elapsed(),
        spent[0],
        spent[1]
    );
}
