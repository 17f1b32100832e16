//! `gc` stats only what its plan names (issue 22, the local-disk floor): its plans equal
//! those of a scan that stats every file, digest by digest, on generated CI registries;
//! what a listing cannot promise (a candidate's `data` gone, a link of another size) makes
//! it scan again with every file stat-ed, and the plan is still the same; and it stats far
//! fewer files (counted, not timed).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use stowage_analysis::{Analysis, GraphFindings, Options};
use stowage_model::time::Timestamp;
use stowage_plan::GcOptions;
use stowage_scan::{Progress, ScanOptions};
use stowage_storage::Storage;
use stowage_storage::{FsStorage, resolve_root};

const NOW: &str = "2026-11-01T00:00:00Z";

fn now() -> Timestamp {
    Timestamp::parse_rfc3339(NOW).unwrap()
}

fn open(tree: &Path) -> FsStorage {
    FsStorage::open(&resolve_root(tree).unwrap().layout_root).unwrap()
}

fn gc_opts(untagged: bool, grace: i64) -> GcOptions {
    GcOptions {
        delete_untagged: untagged,
        grace_seconds: grace,
        ..GcOptions::default()
    }
}

fn analyse(st: &FsStorage, candidates_only: bool) -> Analysis {
    analyse_with(st, candidates_only, false)
}

fn analyse_with(st: &FsStorage, candidates_only: bool, skip_tag_history: bool) -> Analysis {
    let inv = stowage_scan::scan(
        st,
        &ScanOptions {
            concurrency: 4,
            stat_candidates_only: candidates_only,
            skip_tag_history,
            ..ScanOptions::default()
        },
        &Progress::default(),
    )
    .unwrap();
    Analysis::new(
        inv,
        &Options {
            graph_findings: GraphFindings::Count,
            now: now(),
            ..Options::default()
        },
    )
}

/// The plan of a scan that stats every file, as JSON without its creation time.
fn full_plan(tree: &Path, opts: &GcOptions) -> Value {
    let a = analyse(&open(tree), false);
    let p = stowage_plan::gc::build(&a.graph(), opts, now());
    strip(serde_json::from_str(&p.to_json()).unwrap())
}

fn strip(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("created_at");
    v
}

/// `stowage gc` (which stats only what its plan names) as JSON, and its stderr.
fn cli_plan(tree: &Path, untagged: bool, grace: &str) -> (Value, String) {
    let mut args = vec![
        "--storage",
        tree.to_str().unwrap(),
        "--now",
        NOW,
        "--no-progress",
        "gc",
        "--grace",
        grace,
        "--format",
        "json",
    ];
    if untagged {
        args.push("-m");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(&args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(matches!(o.status.code(), Some(0 | 1)), "{args:?}: {err}");
    (strip(serde_json::from_slice(&o.stdout).unwrap()), err)
}

fn generate(dir: &Path, blobs: u64, seed: u64) {
    let mut o = stowage_gen::Options::new(dir, blobs);
    o.seed = seed;
    o.size_scale = 0.001;
    stowage_gen::generate(&o).unwrap();
}

fn count(plan: &Value, key: &str) -> usize {
    plan[key].as_array().map_or(0, Vec::len)
}

#[test]
fn plans_equal_those_of_a_scan_that_stats_everything() {
    for seed in [3, 11] {
        let t = tempfile::tempdir().unwrap();
        generate(t.path(), 1500, seed);
        for (untagged, grace, secs) in [
            (false, "0s", 0),
            (false, "30d", 30 * 86400),
            (true, "0s", 0),
            (true, "7d", 7 * 86400),
        ] {
            let want = full_plan(t.path(), &gc_opts(untagged, secs));
            let (got, err) = cli_plan(t.path(), untagged, grace);
            assert!(
                !err.contains("scanning again"),
                "seed {seed}: a generated registry needs no second scan: {err}"
            );
            assert_eq!(got, want, "seed {seed}, -m {untagged}, grace {grace}");
        }
        // The generated history has something for each kind of plan.
        let m = full_plan(t.path(), &gc_opts(true, 0));
        assert!(
            count(&m, "blobs") > 0 && count(&m, "manifests") > 0,
            "{seed}"
        );
    }
}

#[test]
fn stats_only_what_the_plan_names() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), 3000, 5);
    for untagged in [false, true] {
        let opts = gc_opts(untagged, 0);
        let full = open(t.path());
        let a = analyse(&full, false);
        let want = stowage_plan::gc::build(&a.graph(), &opts, now()).to_json();
        let full_stats = full.counters().snapshot().stats;
        let full_lists = full.counters().snapshot().lists;
        let tags: u64 = a
            .inv()
            .repositories
            .iter()
            .map(|r| r.tags.len() as u64)
            .sum();

        // As `stowage gc` scans: without the tags' history unless -m.
        let lazy = open(t.path());
        let a = analyse_with(&lazy, true, !untagged);
        let (_, plan) = stowage_analysis::settle(a, &lazy, 4, |a| {
            let p = stowage_plan::gc::build(&a.graph(), &opts, now());
            let n = p.named_digests();
            (p, n)
        })
        .unwrap();
        let lazy_stats = lazy.counters().snapshot().stats;
        let lazy_lists = lazy.counters().snapshot().lists;
        let strip_json = |s: &str| strip(serde_json::from_str(s).unwrap());
        assert_eq!(strip_json(&plan.to_json()), strip_json(&want));
        // Every blob and every link is stat-ed by the full scan; only revision links and
        // what the plan names (with -m at no grace: every untagged image's) by the other.
        eprintln!("-m {untagged}: {lazy_stats} stats, against {full_stats} for the full scan");
        let at_most = if untagged {
            full_stats * 3 / 4
        } else {
            full_stats / 2
        };
        assert!(
            lazy_stats < at_most,
            "-m {untagged}: {lazy_stats} stats, against {full_stats} for the full scan"
        );
        eprintln!("-m {untagged}: {lazy_lists} listings, against {full_lists}");
        // Per tag, `gc -m` lists `index/sha256/` without listing `index/` first; a plain
        // `gc` lists neither.
        let per_tag = if untagged { 1 } else { 2 };
        assert!(tags > 100, "{tags} tags");
        assert_eq!(lazy_lists, full_lists - per_tag * tags);
    }
}

/// A file the listing promised that a stat does not find, or a link of another size than
/// the registry writes, among what the plan names: `gc` scans again with every file
/// stat-ed and says so, and its plan is the full scan's.
#[test]
fn what_a_listing_cannot_promise_makes_it_scan_again() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), 1500, 7);
    let v2 = resolve_root(t.path()).unwrap().layout_root;
    let plan = full_plan(t.path(), &gc_opts(true, 0));
    // A planned blob's data is gone (an interrupted delete): the directory stays.
    let victim = plan["blobs"][0]["digest"].as_str().unwrap().to_owned();
    let hex = victim.trim_start_matches("sha256:");
    std::fs::remove_file(v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))).unwrap();
    let want = full_plan(t.path(), &gc_opts(true, 0));
    let (got, err) = cli_plan(t.path(), true, "0s");
    assert!(err.contains("scanning again"), "{err}");
    assert_eq!(got, want);
    assert!(
        !got["blobs"].to_string().contains(&victim),
        "a blob without data is not a blob to delete"
    );

    // A layer link to a planned blob rewritten with a newline by another tool (72 bytes),
    // in a registry without the first fault.
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), 1500, 7);
    let v2 = resolve_root(t.path()).unwrap().layout_root;
    let (path, digest) = plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .find_map(|d| layer_link_to(&v2.join("repositories"), d).map(|p| (p, d.to_owned())))
        .expect("a planned blob with a _layers link");
    std::fs::write(&path, format!("{digest}\n")).unwrap();
    let want = full_plan(t.path(), &gc_opts(true, 0));
    let (got, err) = cli_plan(t.path(), true, "0s");
    assert!(err.contains("scanning again"), "{err}");
    assert!(err.contains("72 bytes"), "{err}");
    assert_eq!(got, want);
}

/// A `_layers` directory without its link (what a blob DELETE through the API leaves) is
/// what the full scan says it is, without a second scan.
#[test]
fn a_layer_link_deleted_through_the_api_needs_no_second_scan() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), 1500, 7);
    let v2 = resolve_root(t.path()).unwrap().layout_root;
    let plan = full_plan(t.path(), &gc_opts(true, 0));
    let links: Vec<std::path::PathBuf> = plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| layer_link_to(&v2.join("repositories"), b["digest"].as_str().unwrap()))
        .take(3)
        .collect();
    assert!(!links.is_empty());
    for l in &links {
        std::fs::remove_file(l).unwrap();
    }
    for untagged in [false, true] {
        let want = full_plan(t.path(), &gc_opts(untagged, 0));
        let (got, err) = cli_plan(t.path(), untagged, "0s");
        assert!(!err.contains("scanning again"), "{err}");
        assert_eq!(got, want, "-m {untagged}");
    }
}

/// A manifest whose `data` is a symbolic link: the full scan cannot stat it and plans no
/// blob at all; the scan that did not stat it cannot read it, and plans none either.
#[test]
fn a_manifest_that_cannot_be_read_blocks_as_in_a_full_scan() {
    let t = tempfile::tempdir().unwrap();
    generate(t.path(), 1500, 7);
    let v2 = resolve_root(t.path()).unwrap().layout_root;
    // A tagged manifest: a tag's current link names it.
    let repos = v2.join("repositories");
    let current = find_file(&repos, "current").expect("a tag");
    let digest = std::fs::read_to_string(current.join("link")).unwrap();
    let hex = digest.trim().trim_start_matches("sha256:").to_owned();
    let data = v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]));
    let moved = t.path().join("moved-data");
    std::fs::rename(&data, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &data).unwrap();
    for untagged in [false, true] {
        let want = full_plan(t.path(), &gc_opts(untagged, 0));
        assert_eq!(count(&want, "blobs"), 0, "{want}");
        assert!(!want["blocked"].as_array().unwrap().is_empty());
        let (got, _) = cli_plan(t.path(), untagged, "0s");
        assert_eq!(got, want, "-m {untagged}");
    }
}

/// Some directory named `name` below `dir`.
fn find_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if !e.file_type().ok()?.is_dir() {
            continue;
        }
        if p.file_name()? == name {
            return Some(p);
        }
        if let Some(found) = find_file(&p, name) {
            return Some(found);
        }
    }
    None
}

/// Some `_layers/sha256/<hex>/link` below `dir` naming `digest`.
fn layer_link_to(dir: &Path, digest: &str) -> Option<std::path::PathBuf> {
    let hex = digest.trim_start_matches("sha256:");
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if !e.file_type().ok()?.is_dir() {
            continue;
        }
        if p.file_name()? == "_layers" {
            let link = p.join("sha256").join(hex).join("link");
            if link.is_file() {
                return Some(link);
            }
        } else if let Some(found) = layer_link_to(&p, digest) {
            return Some(found);
        }
    }
    None
}
