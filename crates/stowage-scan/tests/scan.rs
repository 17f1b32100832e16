//! The scanner against the committed real-registry sample, the broken-storage fixtures and
//! injected storage faults.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::finding::FindingKind;
use stowage_model::inventory::{Inventory, ManifestStatus};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::faults::{Fault, FaultyStorage, Ops};
use stowage_storage::{ErrorKind, FsStorage, Storage};
use stowage_testkit::{TreeBuilder, broken, sample, sample_api_state, workspace_root};

fn scan_dir(root: &std::path::Path, concurrency: usize) -> Inventory {
    scan_with(root, concurrency, false)
}

fn scan_with(root: &std::path::Path, concurrency: usize, verify_links: bool) -> Inventory {
    let s = FsStorage::open(root).unwrap();
    scan(
        &s,
        &ScanOptions {
            concurrency,
            verify_links,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap()
}

fn all_findings(inv: &Inventory) -> Vec<stowage_model::Finding> {
    let g = Graph::new(inv);
    let mut derived = stowage_graph::analyze_findings(&g);
    derived.sort();
    derived.dedup();
    // Commands that print only totals count instead of listing: the two must agree.
    assert_eq!(
        stowage_graph::count_findings(&g),
        stowage_model::finding::FindingCounts::of(&derived),
        "count_findings disagrees with analyze_findings"
    );
    let mut f = inv.findings.clone();
    f.extend(derived);
    f.sort();
    f
}

#[test]
fn sample_matches_what_the_registry_api_reported() {
    let s = sample();
    let inv = scan_dir(&s.layout_root(), 8);
    stowage_testkit::assert_matches_api(&inv, &sample_api_state());
    // And the upload-only repository too, which the API does not list.
    assert!(
        inv.repository("uploads/abandoned")
            .is_some_and(|r| !r.has_manifests && r.uploads.len() == 1)
    );
    // A clean registry: only the empty directories API deletes leave behind.
    let kinds: BTreeSet<FindingKind> = all_findings(&inv).iter().map(|f| f.kind).collect();
    assert_eq!(kinds, BTreeSet::from([FindingKind::EmptyDirectory]));
}

#[test]
fn sample_matches_the_files_on_disk() {
    let s = sample();
    let root = s.layout_root();
    let inv = scan_dir(&root, 4);
    // Every blobs/**/data file, with its size, and nothing else.
    let mut on_disk = BTreeMap::new();
    let mut stack = vec![root.join("blobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() == "data" {
                let hex = e
                    .path()
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                on_disk.insert(format!("sha256:{hex}"), e.metadata().unwrap().len());
            }
        }
    }
    let ours: BTreeMap<String, u64> = inv
        .blobs
        .iter()
        .map(|b| (b.digest.to_string(), b.size))
        .collect();
    assert_eq!(ours, on_disk);
    assert_eq!(inv.blobs.len(), 42);
    // Every link file is accounted for.
    let count_links = |pattern: &str| {
        let mut n = 0;
        let mut stack = vec![root.join("repositories")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else if e.file_name() == "link" && p.to_string_lossy().contains(pattern) {
                    n += 1;
                }
            }
        }
        n
    };
    let layers: usize = inv.repositories.iter().map(|r| r.layers.len()).sum();
    let revisions: usize = inv.repositories.iter().map(|r| r.revisions.len()).sum();
    let index: usize = inv.repositories.iter().map(|r| r.tag_links.len()).sum();
    assert_eq!(layers, count_links("/_layers/"));
    assert_eq!(revisions, count_links("/_manifests/revisions/"));
    assert_eq!(index, count_links("/index/"));
    // Uploads: sizes as on disk.
    let api = inv.repository("team/app/api").unwrap();
    assert_eq!(api.uploads.len(), 1);
    assert_eq!(api.uploads[0].data_size, Some(6144));
    assert_eq!(api.uploads[0].total_size, 6144 + 20 + 3 * 108);
    assert!(api.uploads[0].started_at.is_some());
}

/// Blob digests the real registry's `garbage-collect --dry-run` said it would delete.
fn registry_gc_eligible(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join("fixtures").join(file)).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("blob eligible for deletion: "))
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn unreferenced_blobs_are_exactly_what_the_registry_gc_deletes() {
    let s = sample();
    let inv = scan_dir(&s.layout_root(), 8);
    let g = Graph::new(&inv);
    let referenced = g.mark(g.all_revision_roots(), false);
    let ours = stowage_testkit::unreferenced_digests(&inv, &referenced);
    let theirs = registry_gc_eligible("sample-gc-dry-run.txt");
    assert_eq!(theirs.len(), 6);
    assert_eq!(ours, theirs);
}

#[test]
fn scan_is_deterministic_across_concurrency() {
    let s = sample();
    let a = scan_dir(&s.layout_root(), 1);
    let b = scan_dir(&s.layout_root(), 16);
    assert_eq!(a.blobs, b.blobs);
    assert_eq!(a.repositories, b.repositories);
    assert_eq!(a.manifests, b.manifests);
    // References and details are laid out as reads finish: in the same order whatever the
    // split between workers.
    assert_eq!(a.refs, b.refs);
    assert_eq!(a.extras, b.extras);
    assert_eq!(a.findings, b.findings);
    assert_eq!(a.missing, b.missing);
    assert_eq!(a, b, "and everything else");
}

/// The binary's memory hook runs between phases (after blobs, repositories, manifests) and
/// at the end, never during a phase.
#[test]
fn release_memory_is_called_between_phases() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    fn count() {
        CALLS.fetch_add(1, Ordering::SeqCst);
    }
    let s = sample();
    let st = FsStorage::open(&s.layout_root()).unwrap();
    let with = scan(
        &st,
        &ScanOptions {
            concurrency: 4,
            release_memory: Some(count),
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(
        with,
        scan_dir(&s.layout_root(), 4),
        "the hook changes nothing else"
    );
}

#[test]
fn every_broken_fixture_gives_its_finding_and_the_rest_still_reads() {
    let mut failures = Vec::new();
    for d in broken::defects() {
        let dir = tempfile::tempdir().unwrap();
        let t = TreeBuilder::new(dir.path());
        let h = broken::healthy(&t);
        (d.apply)(&t, &h);
        let found = |fs: &[stowage_model::Finding]| {
            fs.iter()
                .any(|f| f.kind.as_str() == d.expect_kind && f.path.contains(d.expect_path))
        };
        let shallow = all_findings(&scan_dir(&t.root, 4));
        if found(&shallow) == d.deep {
            failures.push(format!(
                "{}: the default scan {} report {} at {}; it reported {:#?}",
                d.name,
                if d.deep { "should not" } else { "should" },
                d.expect_kind,
                d.expect_path,
                shallow
            ));
        }
        let inv = scan_with(&t.root, 4, true);
        let findings = all_findings(&inv);
        if !found(&findings) {
            failures.push(format!(
                "{}: expected {} at {}, got {:#?}",
                d.name, d.expect_kind, d.expect_path, findings
            ));
        }
        // The untouched repository still reads completely.
        let base = inv
            .repository("lib/base")
            .unwrap_or_else(|| panic!("{}: lib/base lost", d.name));
        let tag = base.tag("1.0").unwrap();
        if d.name != "manifest_is_not_json" {
            let id = tag.current.unwrap().target.unwrap();
            assert_eq!(
                inv.manifest(id).unwrap().status,
                ManifestStatus::Parsed,
                "{}",
                d.name
            );
        }
        // Findings name paths inside the storage, never outside it.
        for f in &findings {
            assert!(
                !f.path.starts_with('/'),
                "{}: absolute path in finding {f}",
                d.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn symlinks_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = broken::healthy(&t);
    // A repository that is a symlink to another repository, and a blob that is a symlink.
    std::os::unix::fs::symlink(t.path("repositories/app"), t.path("repositories/app-copy"))
        .unwrap();
    let inv = scan_dir(&t.root, 2);
    assert!(inv.repository("app-copy").is_none());
    assert!(
        inv.findings
            .iter()
            .any(|f| f.kind == FindingKind::Symlink && f.path == "repositories/app-copy")
    );
    // The registry would follow it: what it holds is unknown, so deletion must be blocked.
    assert_eq!(inv.unlisted, ["repositories/app-copy"]);
    let _ = h;
}

#[test]
fn unreadable_parts_become_findings_and_mark_repositories_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = broken::healthy(&t);
    let faults = vec![
        Fault {
            prefix: "repositories/app/_layers".into(),
            kind: ErrorKind::PermissionDenied,
            on: Ops::List,
        },
        Fault {
            prefix: "repositories/lib/base/_manifests/tags/1.0/current".into(),
            kind: ErrorKind::Stale,
            on: Ops::Read,
        },
        Fault {
            prefix: stowage_layout::blob_data(&h.untagged.digest),
            kind: ErrorKind::Other,
            on: Ops::Read,
        },
    ];
    let s = FaultyStorage::new(FsStorage::open(&t.root).unwrap(), faults);
    let inv = scan(
        &s,
        &ScanOptions {
            concurrency: 4,
            verify_links: false,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    let app = inv.repository("app").unwrap();
    assert!(
        !app.complete,
        "a repository whose _layers could not be listed is incomplete"
    );
    assert!(
        inv.findings.iter().any(
            |f| f.kind == FindingKind::PermissionDenied && f.path == "repositories/app/_layers"
        )
    );
    let base = inv.repository("lib/base").unwrap();
    assert!(!base.complete);
    assert!(
        inv.findings
            .iter()
            .any(|f| f.kind == FindingKind::IoError && f.path.ends_with("tags/1.0/current/link"))
    );
    let id = inv.id_of(&h.untagged.digest()).unwrap();
    assert_eq!(inv.manifest(id).unwrap().status, ManifestStatus::Unreadable);
    // An unreadable manifest is opaque: marking it keeps everything its repository links.
    let g = Graph::new(&inv);
    let marked = g.mark([id], false);
    let linked: Vec<_> = app
        .layers
        .iter()
        .map(|l| l.target())
        .chain(app.revisions.iter().map(|l| l.target()))
        .collect();
    assert!(linked.iter().all(|&l| marked[l as usize]));
}

#[test]
fn an_unlistable_namespace_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    broken::healthy(&t);
    let faults = vec![Fault {
        prefix: "repositories/lib".into(),
        kind: ErrorKind::Stale,
        on: Ops::List,
    }];
    let s = FaultyStorage::new(FsStorage::open(&t.root).unwrap(), faults);
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    assert_eq!(inv.unlisted, ["repositories/lib"]);
    assert!(inv.repository("lib/base").is_none());
}

#[test]
fn an_unlistable_blob_shard_blocks_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = broken::healthy(&t);
    let shard = format!("blobs/sha256/{}", &h.app.digest.hex()[..2]);
    let faults = vec![Fault {
        prefix: shard.clone(),
        kind: ErrorKind::PermissionDenied,
        on: Ops::List,
    }];
    let s = FaultyStorage::new(FsStorage::open(&t.root).unwrap(), faults);
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    assert!(inv.unlisted.contains(&shard), "{:?}", inv.unlisted);
}

#[test]
fn verify_links_reads_every_link() {
    let s = sample();
    let fs = FsStorage::open(&s.layout_root()).unwrap();
    let inv = scan(
        &fs,
        &ScanOptions {
            concurrency: 4,
            verify_links: true,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    assert!(
        inv.repositories
            .iter()
            .flat_map(|r| r.layers.iter().chain(r.revisions.iter()))
            .all(|l| l.state() == stowage_model::inventory::LinkState::Verified)
    );
    assert!(fs.counters().snapshot().reads > 60);
}

#[test]
fn verify_digests_finds_corrupt_content() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = broken::healthy(&t);
    let p = t.path(&stowage_layout::blob_data(&h.app_layer.digest));
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let fs = FsStorage::open(&t.root).unwrap();
    let inv = scan(&fs, &ScanOptions::default(), &Progress::default()).unwrap();
    let hashed = std::sync::atomic::AtomicU64::new(0);
    let f = stowage_scan::verify_blobs(
        &fs,
        &inv,
        &stowage_scan::VerifyOptions { concurrency: 2 },
        &hashed,
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, FindingKind::BlobDigestMismatch);
    assert!(f[0].path.contains(&h.app_layer.digest.hex()));
    assert_eq!(
        hashed.load(std::sync::atomic::Ordering::Relaxed),
        inv.blob_bytes()
    );
}

#[test]
fn sha512_alias_links_are_reported_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = broken::healthy(&t);
    let alias: Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
    t.write(
        &stowage_layout::layer_link("app", &alias),
        h.app_layer.digest.to_string().as_bytes(),
    );
    let inv = scan_dir(&t.root, 2);
    let app = inv.repository("app").unwrap();
    assert_eq!(app.aliases, [(alias, Some(h.app_layer.digest()))]);
    assert!(
        inv.findings
            .iter()
            .any(|f| f.kind == FindingKind::AliasLink)
    );
}

#[test]
fn a_directory_vanishing_mid_scan_is_a_finding_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    broken::healthy(&t);
    // Listed by its parent, gone when read (another process deleted it meanwhile).
    let faults = vec![Fault {
        prefix: "repositories/lib/base/_layers".into(),
        kind: ErrorKind::NotFound,
        on: Ops::List,
    }];
    let s = FaultyStorage::new(FsStorage::open(&t.root).unwrap(), faults);
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    assert!(
        inv.findings
            .iter()
            .any(|f| f.kind == FindingKind::Vanished && f.path == "repositories/lib/base/_layers"),
        "{:#?}",
        inv.findings
    );
    assert!(!inv.repository("lib/base").unwrap().complete);
    assert!(inv.repository("app").unwrap().complete);
}

/// Issue 19, "Smaller": a stray `link.<uuid>.tmp` beside a tag's `current/` (and anything
/// else outside the grammar there) is a finding when links are verified, like one inside
/// `current/`; it was reported at no level.
#[test]
fn a_stray_file_in_a_tag_directory_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    broken::healthy(&t);
    let tags = t.path("repositories");
    // Every tag directory of every repository gets a stray temp file and a stray directory.
    let mut tag_dirs = Vec::new();
    for e in walkdir(&tags) {
        if e.ends_with("current") && e.is_dir() {
            tag_dirs.push(e.parent().unwrap().to_path_buf());
        }
    }
    assert!(!tag_dirs.is_empty());
    for d in &tag_dirs {
        std::fs::write(d.join("link.6f1c2e4b.tmp"), "sha256:00").unwrap();
        std::fs::create_dir(d.join("stray")).unwrap();
    }
    let inv = scan_with(&t.root, 4, true);
    let of = |k: FindingKind, suffix: &str| {
        inv.findings
            .iter()
            .filter(|f| f.kind == k && f.path.ends_with(suffix))
            .count()
    };
    assert_eq!(
        of(FindingKind::StaleTempFile, "/link.6f1c2e4b.tmp"),
        tag_dirs.len()
    );
    assert_eq!(
        of(FindingKind::UnexpectedDirectory, "/stray"),
        tag_dirs.len()
    );
}

fn walkdir(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.push(e.clone());
            out.extend(walkdir(&e));
        }
    }
    out
}
