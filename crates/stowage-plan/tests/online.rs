//! Online apply: the registry keeps writing while apply runs. Each test plays the registry
//! at one step of the apply (the `on_step` hook runs right after that step) and checks that
//! nothing a write since the plan needs is lost, and that what nobody needs is deleted.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::time::Timestamp;
use stowage_plan::apply::{ApplyError, ApplyOptions, CacheStep, Mode, Step, apply};
use stowage_plan::{GcOptions, Plan, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::{TreeBuilder, Written};

struct Fixture {
    dir: tempfile::TempDir,
    /// The garbage image's blobs (its manifest was deleted through the API).
    config: Written,
    layer: Written,
    shared: Written,
}

/// `keep/app:1` (kept) shares `shared` with `old/app`, whose manifest was deleted through
/// the API: its config, its own layer and its manifest blob are garbage, and their
/// `_layers` links in `old/app` are left behind, as the registry leaves them.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tb = TreeBuilder::new(dir.path());
    let shared = tb.layer("shared", 3000);
    let kc = tb.blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#);
    tb.image("keep/app", Some("1"), &kc, &[&shared]);
    let config = tb.blob(br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers"}}"#);
    let layer = tb.layer("old-layer", 5000);
    let m = tb.image("old/app", Some("1"), &config, &[&layer, &shared]);
    tb.remove(&layout::tag_dir("old/app", "1"));
    tb.remove(&layout::revision_dir("old/app", &m.digest()));
    age(&dir.path().join(layout::LAYOUT_ROOT), 7200);
    Fixture {
        dir,
        config,
        layer,
        shared,
    }
}

fn root(f: &Fixture) -> PathBuf {
    f.dir.path().join(layout::LAYOUT_ROOT)
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

/// Make every file `secs` older: the fixture was pushed long before the plan, and what the
/// tests write during the apply is "since the plan".
fn age(dir: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(secs);
    for rel in files(dir).into_keys() {
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(rel))
            .unwrap();
        f.set_modified(t).unwrap();
    }
}

fn plan(f: &Fixture) -> Plan {
    let s = FsStorage::open(&root(f)).unwrap();
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    let opts = GcOptions {
        grace_seconds: 0,
        dangling_links: true,
        ..GcOptions::default()
    };
    gc::build(&Graph::new(&inv), &opts, now())
}

fn opts(f: &Fixture, hook: Option<Arc<dyn Fn(Step) + Send + Sync>>) -> ApplyOptions {
    let mut o = ApplyOptions::new(now(), CacheStep::Nothing);
    o.quarantine = Some(f.dir.path().join("fence"));
    o.journal = Some(f.dir.path().join("journal"));
    o.concurrency = 2;
    o.quiet_window_seconds = 0;
    o.settle = Duration::ZERO;
    o.on_step = hook;
    o
}

/// Every file under `dir` with its content.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn blob_exists(f: &Fixture, w: &Written) -> bool {
    root(f).join(layout::blob_data(&w.digest)).is_file()
}

fn hook(f: impl Fn(Step) + Send + Sync + 'static) -> Option<Arc<dyn Fn(Step) + Send + Sync>> {
    Some(Arc::new(f))
}

#[test]
fn a_quiet_registry_loses_exactly_the_plan() {
    let f = fixture();
    let p = plan(&f);
    assert_eq!(p.blobs.len(), 3, "config, layer and manifest blob");
    let rep = apply(
        &FsStorage::open(&root(&f)).unwrap(),
        &p,
        &opts(&f, None),
        &|_| {},
    )
    .unwrap();
    assert_eq!(rep.mode, "online");
    assert!(rep.restored.is_empty(), "{:?}", rep.restored);
    assert_eq!(rep.bytes_freed, p.bytes);
    assert!(!blob_exists(&f, &f.layer) && !blob_exists(&f, &f.config));
    assert!(blob_exists(&f, &f.shared));
    // Nothing is left in the fence: deleted for good, and the empty batch removed.
    assert!(!f.dir.path().join("fence").exists());
}

#[test]
fn a_blob_linked_during_the_settle_is_restored_not_deleted() {
    // An upload commit (or a cross-repository mount) in another repository found the data
    // in place before the fence and wrote only its `_layers` link after it.
    let f = fixture();
    let p = plan(&f);
    let layer = f.layer.clone();
    let tb_root = f.dir.path().to_path_buf();
    let rep = apply(
        &FsStorage::open(&root(&f)).unwrap(),
        &p,
        &opts(
            &f,
            hook(move |s| {
                if s == Step::Fenced {
                    TreeBuilder::new(&tb_root).link_layer("new/app", &layer.digest());
                }
            }),
        ),
        &|_| {},
    )
    .unwrap();
    assert!(blob_exists(&f, &f.layer), "the linked blob came back");
    // The blob, and the old repository's `_layers` link the plan fenced with it (its blob
    // exists again, so the link is not dangling any more).
    let blob = layout::blob_dir(&f.layer.digest);
    assert!(
        rep.restored
            .iter()
            .any(|x| x.path == blob && x.reason.contains("new/app")),
        "{:?}",
        rep.restored
    );
    assert_eq!(rep.bytes_freed, p.bytes - f.layer.size);
    assert!(!blob_exists(&f, &f.config), "what nobody needs still goes");
    // Restored byte-identical.
    let data = std::fs::read(root(&f).join(layout::blob_data(&f.layer.digest))).unwrap();
    assert_eq!(stowage_model::digest::Sha256::of(&data), f.layer.digest);
}

#[test]
fn a_manifest_pushed_during_the_settle_keeps_every_blob_it_needs() {
    // The push whose HEAD requests were answered before the fence (or from the registry's
    // cache) skipped the uploads and PUT a manifest that references the fenced blobs.
    let f = fixture();
    let p = plan(&f);
    let (config, layer, shared) = (f.config.clone(), f.layer.clone(), f.shared.clone());
    let tb_root = f.dir.path().to_path_buf();
    let rep = apply(
        &FsStorage::open(&root(&f)).unwrap(),
        &p,
        &opts(
            &f,
            hook(move |s| {
                if s == Step::Settled {
                    let tb = TreeBuilder::new(&tb_root);
                    tb.image("old/app", Some("2"), &config, &[&layer, &shared]);
                }
            }),
        ),
        &|_| {},
    )
    .unwrap();
    assert!(blob_exists(&f, &f.layer) && blob_exists(&f, &f.config));
    let s = FsStorage::open(&root(&f)).unwrap();
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    let broken: Vec<_> = stowage_graph::analyze_findings(&g)
        .into_iter()
        .filter(|x| x.kind.as_str().contains("missing"))
        .collect();
    assert!(broken.is_empty(), "{broken:?}");
    assert_eq!(rep.restored.len(), 2, "{:?}", rep.restored);
}

#[test]
fn a_blob_uploaded_again_during_the_settle_is_not_restored_over_the_new_copy() {
    let f = fixture();
    let p = plan(&f);
    let tb_root = f.dir.path().to_path_buf();
    let rep = apply(
        &FsStorage::open(&root(&f)).unwrap(),
        &p,
        &opts(
            &f,
            hook(move |s| {
                if s == Step::Fenced {
                    TreeBuilder::new(&tb_root).layer("old-layer", 5000);
                }
            }),
        ),
        &|_| {},
    )
    .unwrap();
    assert!(blob_exists(&f, &f.layer));
    // The registry's new copy stands; the fenced one is dropped, not renamed over it. The
    // `_layers` link the plan fenced as dangling comes back: its blob exists again.
    let blob = layout::blob_dir(&f.layer.digest);
    assert!(
        rep.restored
            .iter()
            .all(|x| x.path != blob && x.path.contains("_layers")),
        "{:?}",
        rep.restored
    );
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
}

#[test]
fn a_failed_registry_restart_puts_every_fenced_target_back() {
    let f = fixture();
    let p = plan(&f);
    let before = files(&root(&f));
    let mut o = opts(&f, None);
    o.cache = CacheStep::Restart {
        command: "exit 3".into(),
        url: None,
    };
    let e = apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap_err();
    assert!(matches!(e, ApplyError::CacheStep(_)), "{e}");
    assert!(files(&root(&f)) == before, "rolled back byte for byte");
}

#[test]
fn the_restart_command_runs_between_the_settle_and_the_verify_scan() {
    // The command plays a registry that, while restarting, finishes a push that links the
    // fenced layer: the verify scan must see it.
    let f = fixture();
    let p = plan(&f);
    let link = root(&f).join(layout::layer_link("late/app", &f.layer.digest()));
    let mut o = opts(&f, None);
    o.cache = CacheStep::Restart {
        command: format!(
            "mkdir -p {dir} && printf %s {d} > {link}",
            dir = link.parent().unwrap().display(),
            d = f.layer.digest(),
            link = link.display()
        ),
        url: None,
    };
    let rep = apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap();
    assert!(rep.cache.contains("restarted"), "{}", rep.cache);
    assert!(blob_exists(&f, &f.layer));
    assert!(!blob_exists(&f, &f.config));
}

#[test]
fn offline_mode_deletes_without_a_fence() {
    let f = fixture();
    let p = plan(&f);
    let mut o = opts(&f, hook(|_| panic!("no online step runs offline")));
    o.mode = Mode::Offline;
    o.quarantine = None;
    let rep = apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap();
    assert_eq!(rep.mode, "offline");
    assert_eq!(rep.fenced, 0);
    assert_eq!(rep.bytes_freed, p.bytes);
}

#[test]
fn keep_fenced_leaves_the_batch_for_restore() {
    let f = fixture();
    let p = plan(&f);
    let before = files(&root(&f));
    let mut o = opts(&f, None);
    o.keep_fenced = true;
    o.journal = None; // in the batch, where `restore` reads it
    apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap();
    assert!(!blob_exists(&f, &f.layer));
    stowage_plan::quarantine::restore(
        &FsStorage::open(&root(&f)).unwrap(),
        &f.dir.path().join("fence"),
    )
    .unwrap();
    let after = files(&root(&f));
    let diff: Vec<_> = before
        .keys()
        .filter(|k| after.get(*k) != before.get(*k))
        .chain(after.keys().filter(|k| !before.contains_key(*k)))
        .collect();
    assert!(diff.is_empty(), "{diff:?}");
}
