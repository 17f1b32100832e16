//! Properties of GC plans on generated registries: nothing reachable from a kept manifest is
//! ever planned (index children and referrers included), plans are deterministic, and after
//! an apply every kept image is still complete.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use stowage_graph::{Graph, Scratch};
use stowage_model::inventory::{BlobId, Inventory};
use stowage_model::time::Timestamp;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply};
use stowage_plan::plan::ListingSource;
use stowage_plan::{GcOptions, Plan, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::random::{build, push_strategy};

fn scan_dir(root: &std::path::Path) -> Inventory {
    let s = FsStorage::open(root).unwrap();
    scan(
        &s,
        &ScanOptions {
            concurrency: 3,
            verify_links: false,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap()
}

/// Everything a kept image needs, computed independently of `Graph::mark`: the closure of
/// each tagged manifest, plus (with referrers) each referrer whose subject is in it.
fn needed(inv: &Inventory, delete_untagged: bool) -> BTreeSet<BlobId> {
    let g = Graph::new(inv);
    let mut roots: Vec<BlobId> = Vec::new();
    for r in &inv.repositories {
        if delete_untagged {
            roots.extend(
                r.tags
                    .iter()
                    .filter_map(|t| t.current.and_then(|c| c.target)),
            );
        } else {
            roots.extend(r.revisions.iter().map(|l| l.target()));
        }
    }
    let mut s = Scratch::new(g.len());
    let mut set: BTreeSet<BlobId> = BTreeSet::new();
    loop {
        let before = set.len();
        g.for_each_descendant_of_all(&roots, &mut s, |id| {
            set.insert(id);
        });
        // Referrers of anything needed are needed.
        for m in &inv.manifests {
            if m.subject().is_some_and(|s| set.contains(&s)) && !roots.contains(&m.id) {
                roots.push(m.id);
            }
        }
        g.for_each_descendant_of_all(&roots, &mut s, |id| {
            set.insert(id);
        });
        if set.len() == before {
            break;
        }
    }
    set
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now()).saturating_sub_secs(-3600)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn no_blob_a_kept_manifest_needs_is_ever_planned_and_apply_keeps_images_whole(
        pushes in proptest::collection::vec(push_strategy(), 1..10),
        sizes in proptest::collection::vec(1usize..3000, 1..6),
        untagged in proptest::bool::ANY,
        tidy in proptest::bool::ANY,
    ) {
        let (dir, root) = build(&pushes, &sizes);
        let inv = scan_dir(&root);
        let g = Graph::new(&inv);
        let opts = GcOptions { delete_untagged: untagged, grace_seconds: 0, dangling_links: tidy, empty_dirs: tidy, uploads_older_than_seconds: None, cache: false, cache_max_bytes: None, orphan_signatures: false };
        let t = now();
        let plan = gc::build(&g, &opts, t);
        let need = needed(&inv, untagged);
        for b in &plan.blobs {
            let id = inv.id_of(&b.digest).unwrap();
            prop_assert!(!need.contains(&id), "planned blob {} is needed by a kept image", b.digest);
        }
        for m in &plan.manifests {
            let id = inv.id_of(&m.digest).unwrap();
            prop_assert!(!need.contains(&id), "planned manifest {} is needed", m.digest);
        }
        // Deterministic: same inventory and now, same bytes.
        prop_assert_eq!(plan.to_json(), gc::build(&Graph::new(&scan_dir(&root)), &opts, t).to_json());

        // Apply, then every tagged image (and every kept revision, without -m) is complete.
        let s = FsStorage::open(&root).unwrap();
        // Online (fence, verify, delete): on a quiet tree it must do exactly what the plan
        // says, restore nothing, and leave nothing in the fence.
        let fence = dir.path().join("fence");
        let rep = apply(&s, &plan, &ApplyOptions {
            quarantine: Some(fence.clone()),
            journal: Some(dir.path().join("journal")),
            concurrency: 2,
            now: t,
            quiet_window_seconds: 0,
            require_quiet: false,
            registry_readonly: None,
            gc: false,
            mode: Mode::Online,
            settle: std::time::Duration::ZERO,
            cache: CacheStep::Nothing,
            keep_fenced: false,
            ignore_metadata_signature: false,
            on_step: None,
        }, &|_| {}).unwrap();
        prop_assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
        prop_assert!(rep.restored.is_empty(), "{:?}", rep.restored);
        prop_assert_eq!(rep.bytes_freed, plan.bytes);
        let left: Vec<_> = walk_files(&fence).into_iter().filter(|p| !p.ends_with("batch.json")).collect();
        prop_assert!(left.is_empty(), "fenced data left behind: {:?}", left);
        let after = scan_dir(&root);
        for id in need {
            let d = inv.digest(id);
            if inv.is_present(id) {
                prop_assert!(after.id_of(&d).is_some_and(|i| after.is_present(i)), "{} was needed and is gone", d);
            }
        }
        let broken: Vec<_> = stowage_graph::analyze_findings(&Graph::new(&after))
            .into_iter()
            .filter(|f| matches!(f.kind.as_str(), "reference_missing" | "tag_dangling" | "index_child_unlinked" | "layer_unlinked"))
            .collect();
        prop_assert!(broken.is_empty(), "{:#?}", broken);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The plan file `stowage gc` writes from the plan's rows (`GcPlan::write_json`, never
    /// whole in memory) is byte for byte the whole plan's (`Plan::write_json`, what apply
    /// reads back), with every option that fills a list, the grace period, and blobs gone
    /// (dangling links, ids past the present blobs).
    #[test]
    fn the_plan_written_from_its_rows_is_the_whole_plans_file(
        pushes in proptest::collection::vec(push_strategy(), 1..10),
        sizes in proptest::collection::vec(1usize..3000, 1..6),
        untagged in proptest::bool::ANY,
        tidy in proptest::bool::ANY,
        held in proptest::bool::ANY,
        orphans in proptest::bool::ANY,
        gone in proptest::option::of(0usize..12),
    ) {
        let (_dir, root) = build(&pushes, &sizes);
        if let Some(k) = gone {
            let mut data: Vec<_> = walk_files(&root.join("blobs")).into_iter().filter(|p| p.ends_with("/data")).collect();
            data.sort();
            if let Some(p) = data.get(k % data.len().max(1)) {
                std::fs::remove_dir_all(std::path::Path::new(p).parent().unwrap()).unwrap();
            }
        }
        let inv = scan_dir(&root);
        let g = Graph::new(&inv);
        let opts = GcOptions { delete_untagged: untagged, grace_seconds: if held { 86400 } else { 0 }, dangling_links: tidy, empty_dirs: tidy, uploads_older_than_seconds: tidy.then_some(0), cache: false, cache_max_bytes: None, orphan_signatures: orphans };
        let t = now();
        let listing = Some(ListingSource { report: "S3 Inventory s3://inventory/manifest.json".into(), date: t });
        let mut rows = gc::build_rows(&g, &opts, t, Default::default());
        rows.set_listing(listing.clone());
        let mut streamed = Vec::new();
        rows.write_json(&mut streamed).unwrap();
        let mut whole = gc::build(&g, &opts, t);
        whole.listing = listing;
        let text = whole.to_json();
        prop_assert_eq!(String::from_utf8(streamed).unwrap(), text.clone());
        prop_assert_eq!(rows.into_plan(), whole.clone());
        prop_assert_eq!(Plan::from_json(&text).unwrap(), whole);
    }
}

#[test]
fn an_incomplete_scan_plans_no_blob_deletion() {
    use stowage_storage::ErrorKind;
    use stowage_storage::faults::{Fault, FaultyStorage, Ops};
    let pushes: Vec<_> = (0..4)
        .map(|i| stowage_testkit::random::Push {
            repo: i % 3,
            layers: vec![i, i + 1],
            tag: (i % 2 == 0).then_some(0),
            multi: false,
            referrer: false,
        })
        .collect();
    let (_dir, root) = build(&pushes, &[100, 200, 300]);
    let fs = FsStorage::open(&root).unwrap();
    let faulty = FaultyStorage::new(
        fs,
        vec![Fault {
            prefix: "repositories/a/b/_manifests/revisions".into(),
            kind: ErrorKind::Stale,
            on: Ops::List,
        }],
    );
    let inv = scan(&faulty, &ScanOptions::default(), &Progress::default()).unwrap();
    let plan = gc::build(
        &Graph::new(&inv),
        &GcOptions {
            delete_untagged: true,
            grace_seconds: 0,
            ..GcOptions::default()
        },
        now(),
    );
    assert!(plan.blobs.is_empty());
    assert!(plan.manifests.iter().all(|m| m.repository != "a/b"));
    assert!(
        plan.blocked.iter().any(|b| b.contains("a/b")),
        "{:?}",
        plan.blocked
    );
}

#[test]
fn a_sha512_reference_keeps_the_canonical_blob_behind_its_alias() {
    use stowage_model::digest::Digest;
    let dir = tempfile::tempdir().unwrap();
    let t = stowage_testkit::TreeBuilder::new(dir.path());
    let layer = t.layer("aliased", 500);
    let config = t.blob(b"{}");
    t.link_layer("app", &config.digest());
    t.link_layer("app", &layer.digest());
    // A client pushed the layer as sha512: the registry stored it under sha256 and wrote an
    // alias link whose content is the canonical digest.
    let alias: Digest = format!("sha512:{}", "cd".repeat(64)).parse().unwrap();
    t.write(
        &stowage_layout::layer_link("app", &alias),
        layer.digest.to_string().as_bytes(),
    );
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{alias}","size":500}}]}}"#,
        config.digest
    );
    t.manifest("app", Some("v1"), body.as_bytes());
    let inv = scan_dir(&t.root);
    let g = Graph::new(&inv);
    for untagged in [false, true] {
        let plan = gc::build(
            &g,
            &GcOptions {
                delete_untagged: untagged,
                grace_seconds: 0,
                dangling_links: true,
                ..GcOptions::default()
            },
            now(),
        );
        assert!(
            plan.blobs.iter().all(|b| b.digest != layer.digest.digest()),
            "{plan:#?}"
        );
    }
}

#[test]
fn an_unreadable_untagged_manifest_is_kept_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let t = stowage_testkit::TreeBuilder::new(dir.path());
    let h = stowage_testkit::broken::healthy(&t);
    // The untagged manifest becomes unparseable (it could be a referrer or an index).
    t.write(
        &stowage_layout::blob_data(&h.untagged.digest),
        b"{\"schemaVersion\":2,",
    );
    let inv = scan_dir(&t.root);
    let plan = gc::build(
        &Graph::new(&inv),
        &GcOptions {
            delete_untagged: true,
            grace_seconds: 0,
            ..GcOptions::default()
        },
        now(),
    );
    assert!(
        plan.manifests
            .iter()
            .all(|m| m.digest != h.untagged.digest.digest())
    );
    assert!(
        plan.blobs
            .iter()
            .all(|b| b.digest != h.untagged.digest.digest())
    );
    assert!(
        plan.manifests_kept_unlike_registry
            .iter()
            .any(|k| k.digest == h.untagged.digest.digest()
                && k.reason.contains("could not be read"))
    );
}

#[test]
fn a_blob_linked_recently_is_held_back_even_if_its_data_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let t = stowage_testkit::TreeBuilder::new(dir.path());
    let old = t.layer("orphan", 300);
    // Old data...
    let data = t.path(&stowage_layout::blob_data(&old.digest));
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    // ...mounted into a repository just now (a push in progress: the manifest is not there yet).
    t.link_layer("app", &old.digest());
    let inv = scan_dir(&t.root);
    let plan = gc::build(
        &Graph::new(&inv),
        &GcOptions::default(),
        Timestamp::from_system_time(std::time::SystemTime::now()),
    );
    assert!(plan.blobs.is_empty(), "{:#?}", plan.blobs);
    assert_eq!(plan.held_back.blobs.len(), 1);
}

#[test]
fn an_edited_plan_row_for_a_sha512_blob_is_skipped_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let t = stowage_testkit::TreeBuilder::new(dir.path());
    let orphan = t.layer("orphan", 300);
    let inv = scan_dir(&t.root);
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let opts = GcOptions {
        grace_seconds: 0,
        ..GcOptions::default()
    };
    let mut plan = gc::build(&Graph::new(&inv), &opts, now);
    assert_eq!(plan.blobs.len(), 1, "{:#?}", plan.blobs);
    // Someone edits the plan: the orphan's row now names a sha512 digest.
    let sha512: stowage_model::digest::Digest =
        format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
    plan.blobs[0].digest = sha512;
    let plan = stowage_plan::Plan::from_json(&plan.to_json()).unwrap();
    let s = FsStorage::open(&t.root).unwrap();
    let rep = apply(
        &s,
        &plan,
        &ApplyOptions {
            quarantine: None,
            journal: Some(dir.path().join("journal")),
            concurrency: 2,
            now,
            quiet_window_seconds: 0,
            require_quiet: false,
            registry_readonly: None,
            gc: false,
            mode: Mode::Offline,
            settle: std::time::Duration::ZERO,
            cache: CacheStep::Nothing,
            keep_fenced: false,
            ignore_metadata_signature: false,
            on_step: None,
        },
        &|_| {},
    )
    .unwrap();
    assert_eq!(rep.bytes_freed, 0);
    assert!(
        rep.skipped
            .iter()
            .any(|k| k.path == format!("blobs/sha512/{}", "ab".repeat(64))
                && k.reason.contains("sha256")),
        "{:#?}",
        rep.skipped
    );
    // The orphan itself was not in the edited plan, so it is still there.
    assert!(t.path(&stowage_layout::blob_data(&orphan.digest)).exists());
}

/// Every file below `dir` (tests: what a fence batch still holds).
fn walk_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}
