//! Surgery apply against a registry written to while it runs (review findings of issue 21):
//! a push into a move's source during the link phase, a push into a repository while a
//! removal was interrupted, and what a stopped move says it left. The storage is wrapped so
//! the "registry" acts at exact points of the apply (before a link is created, before a
//! section is fenced), not after a sleep.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::Plan;
use stowage_plan::apply::{ApplyError, ApplyOptions, CacheStep, Mode, apply};
use stowage_plan::surgery::{self, SurgeryOptions};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::{
    BackendKind, Entry, FsStorage, Meta, OpCounters, Storage, StorageError, StorageWrite, TreeEntry,
};
use stowage_testkit::{TreeBuilder, Written};

type Hook = Box<dyn Fn(&str, &str) + Send + Sync>;

/// A filesystem storage that calls `hook(op, path)` before each `create`, `move` and
/// `purge` (a fenced copy deleted).
struct Hooked {
    inner: FsStorage,
    hook: Mutex<Option<Hook>>,
    /// Behave like an object store: no view of a fence batch.
    no_view: bool,
}

impl Hooked {
    fn new(root: &Path, hook: Hook) -> Hooked {
        Hooked {
            inner: FsStorage::open(root).unwrap(),
            hook: Mutex::new(Some(hook)),
            no_view: false,
        }
    }
    fn call(&self, op: &str, path: &str) {
        if let Some(h) = &*self.hook.lock().unwrap_or_else(|e| e.into_inner()) {
            h(op, path);
        }
    }
}

impl Storage for Hooked {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn backend(&self) -> BackendKind {
        self.inner.backend()
    }
    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        self.inner.list_dir(path, visit)
    }
    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        self.inner.stat(path)
    }
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.inner.read(path, limit)
    }
    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.inner.read_with_meta(path, limit)
    }
    fn open(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        self.inner.open(path)
    }
    fn counters(&self) -> &OpCounters {
        self.inner.counters()
    }
    fn list_tree(
        &self,
        path: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        self.inner.list_tree(path, visit)
    }
}

impl StorageWrite for Hooked {
    fn delete(&self, path: &str) -> Result<bool, StorageError> {
        self.inner.delete(path)
    }
    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError> {
        self.inner.remove_empty_dir(path)
    }
    fn move_to(&self, path: &str, dest: &Path) -> Result<bool, StorageError> {
        self.call("move", path);
        self.inner.move_to(path, dest)
    }
    fn move_back(&self, src: &Path, path: &str) -> Result<bool, StorageError> {
        self.inner.move_back(src, path)
    }
    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        self.inner.create_dir_all(path)
    }
    fn delete_quarantined(&self, batch: &Path, path: &str) -> Result<bool, StorageError> {
        self.call("purge", path);
        self.inner.delete_quarantined(batch, path)
    }
    fn quarantined_modified(
        &self,
        batch: &Path,
        path: &str,
    ) -> Result<Option<Timestamp>, StorageError> {
        self.inner.quarantined_modified(batch, path)
    }
    fn check_quarantine(&self, dest: &Path) -> Result<(), StorageError> {
        self.inner.check_quarantine(dest)
    }
    fn create_file(&self, path: &str, content: &[u8]) -> Result<bool, StorageError> {
        self.call("create", path);
        self.inner.create_file(path, content)
    }
    fn quarantine_view(&self, batch: &Path) -> Option<Result<Box<dyn Storage>, StorageError>> {
        (!self.no_view).then(|| self.inner.quarantine_view(batch))?
    }
    fn can_view_quarantine(&self) -> bool {
        !self.no_view && self.inner.can_view_quarantine()
    }
}

/// `team/app` (tags 1 and 2) and `other/app`, sharing `base`; all written two hours ago.
struct Fx {
    dir: tempfile::TempDir,
    base: Written,
    cfg: Written,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let tb = TreeBuilder::new(dir.path());
    let base = tb.layer("base", 4000);
    let own = tb.layer("own", 3000);
    let cfg = tb.blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#);
    let m1 = tb.image("team/app", Some("1"), &cfg, &[&base, &own]);
    tb.tag("team/app", "2", &m1.digest());
    let ocfg = tb.blob(br#"{"architecture":"amd64","os":"linux","o":1}"#);
    tb.image("other/app", Some("1"), &ocfg, &[&base]);
    age(&dir.path().join(layout::LAYOUT_ROOT), 7200);
    Fx { dir, base, cfg }
}

fn age(dir: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(secs);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let f = std::fs::File::options().write(true).open(e.path()).unwrap();
                f.set_modified(t).unwrap();
            }
        }
    }
}

fn root(f: &Fx) -> PathBuf {
    f.dir.path().join(layout::LAYOUT_ROOT)
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

fn inv(f: &Fx) -> Inventory {
    let s = FsStorage::open(&root(f)).unwrap();
    scan(&s, &ScanOptions::default(), &Progress::default()).unwrap()
}

fn apply_opts(f: &Fx, p: &Plan, mode: Mode) -> ApplyOptions {
    let mut o = ApplyOptions::new(now(), CacheStep::Nothing);
    o.quarantine = (mode == Mode::Online).then(|| f.dir.path().join("fence"));
    o.journal = Some(f.dir.path().join(format!("journal-{}", p.id())));
    o.concurrency = 2;
    o.quiet_window_seconds = 0;
    o.settle = Duration::ZERO;
    o.mode = mode;
    o
}

fn tags(i: &Inventory, repo: &str) -> Vec<String> {
    i.repository(repo)
        .map(|r| r.tags.iter().map(|t| t.name.to_string()).collect())
        .unwrap_or_default()
}

fn move_plan(f: &Fx) -> Plan {
    let i = inv(f);
    surgery::repo_move(
        &Graph::new(&i),
        "team/app",
        "moved/app",
        false,
        false,
        &SurgeryOptions { grace_seconds: 0 },
        now(),
    )
    .unwrap()
}

/// A push into the repository at `op` (before the fence of `_manifests` when `op` is
/// "move"): a new tag `pushed` with a new layer, sharing `base`.
fn push_before_fence(f: &Fx, repo: &'static str) -> Hooked {
    let top = f.dir.path().to_path_buf();
    let (base, cfg) = (f.base.clone(), f.cfg.clone());
    let pushed = std::sync::atomic::AtomicBool::new(false);
    Hooked::new(
        &root(f),
        Box::new(move |op, path| {
            if op == "move"
                && path == format!("repositories/{repo}/_manifests")
                && !pushed.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let tb = TreeBuilder::new(&top);
                let own2 = tb.layer("pushed", 1000);
                tb.image(repo, Some("pushed"), &cfg, &[&base, &own2]);
            }
        }),
    )
}

fn delete_plan(f: &Fx) -> Plan {
    surgery::repo_delete(
        &Graph::new(&inv(f)),
        &["team/app".into()],
        &SurgeryOptions { grace_seconds: 0 },
        now(),
    )
    .unwrap()
}

/// Every finding of a scan and of its graph (what `check` shows): a broken image shows
/// here as a link to a missing blob, a tag naming a missing revision, a missing manifest.
fn broken(i: &Inventory) -> Vec<String> {
    let g = Graph::new(i);
    let mut out: Vec<String> = i
        .findings
        .iter()
        .chain(stowage_graph::analyze_findings(&g).iter())
        .map(|f| format!("{:?} {}", f.kind, f.path))
        .collect();
    out.sort();
    out
}

/// Online, with nobody writing, a repo-delete removes the repository whole: the fenced copy
/// is exactly the plan's, and the registry wrote nothing into it again.
#[test]
fn an_online_repo_delete_removes_the_repository_when_nothing_is_written() {
    let f = fixture();
    let broken_before = broken(&inv(&f));
    let p = delete_plan(&f);
    let s = Hooked::new(&root(&f), Box::new(|_, _| {}));
    let rep = apply(&s, &p, &apply_opts(&f, &p, Mode::Online), &|_| {}).unwrap();
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    assert!(rep.restored.is_empty(), "{:?}", rep.restored);
    assert_eq!(rep.repository_sections, 2);
    let after = inv(&f);
    assert!(after.repository("team/app").is_none());
    assert_eq!(tags(&after, "other/app"), ["1"]);
    assert_eq!(broken(&after), broken_before, "a finding the apply caused");
}

/// The review's HIGH finding, now verified rather than refused: a push into the repository
/// between apply's re-check and the fence of its `_manifests` was fenced with the rest and
/// deleted at verify. Now the fenced copy differs from the plan, so the repository goes
/// back whole, with the push, and the apply says so (a skip: exit status 1).
#[test]
fn a_push_between_the_recheck_and_the_fence_keeps_the_repository_whole_online() {
    let f = fixture();
    let broken_before = broken(&inv(&f));
    let p = delete_plan(&f);
    let s = push_before_fence(&f, "team/app");
    let rep = apply(&s, &p, &apply_opts(&f, &p, Mode::Online), &|_| {}).unwrap();
    assert_eq!(rep.skipped.len(), 1, "{:?}", rep.skipped);
    assert_eq!(rep.skipped[0].path, "repositories/team/app");
    assert!(
        rep.skipped[0]
            .reason
            .contains("between the re-check and the fence"),
        "{:?}",
        rep.skipped
    );
    assert_eq!(rep.repository_sections, 0, "every section went back");
    let after = inv(&f);
    assert_eq!(tags(&after, "team/app"), ["1", "2", "pushed"]);
    let r = after.repository("team/app").unwrap();
    assert_eq!((r.revisions.len(), r.layers.len()), (2, 4));
    assert_eq!(broken(&after), broken_before, "a finding the apply caused");
}

/// A push after the fence (one that passed its checks before it): the registry made the
/// sections again. They are merged with the fenced copies: the old tags come back beside
/// the new one, a link both hold stays the registry's, ours stays in the batch, named.
#[test]
fn a_push_after_the_fence_is_merged_with_the_restored_repository() {
    let f = fixture();
    let broken_before = broken(&inv(&f));
    let p = delete_plan(&f);
    let mut o = apply_opts(&f, &p, Mode::Online);
    let top = f.dir.path().to_path_buf();
    let (base, cfg) = (f.base.clone(), f.cfg.clone());
    o.on_step = Some(std::sync::Arc::new(move |step| {
        if step == stowage_plan::apply::Step::Fenced {
            let tb = TreeBuilder::new(&top);
            let l = tb.layer("late", 1000);
            tb.image("team/app", Some("late"), &cfg, &[&base, &l]);
        }
    }));
    let s = Hooked::new(&root(&f), Box::new(|_, _| {}));
    let rep = apply(&s, &p, &o, &|_| {}).unwrap();
    let whole: Vec<_> = rep
        .skipped
        .iter()
        .filter(|k| k.path == "repositories/team/app")
        .collect();
    assert_eq!(whole.len(), 1, "{:?}", rep.skipped);
    assert!(
        whole[0]
            .reason
            .contains("wrote into it again after its fence"),
        "{whole:?}"
    );
    // base's and the config's `_layers` links were written again by the push: the
    // registry's copies stay, the fenced ones are kept in the batch and named.
    let in_batch: Vec<&str> = rep
        .skipped
        .iter()
        .filter(|k| k.reason.contains("kept in the batch"))
        .map(|k| k.path.as_str())
        .collect();
    assert_eq!(in_batch.len(), 2, "{:?}", rep.skipped);
    assert!(
        in_batch
            .iter()
            .all(|p| p.starts_with("repositories/team/app/_layers/")),
        "{in_batch:?}"
    );
    let after = inv(&f);
    assert_eq!(tags(&after, "team/app"), ["1", "2", "late"]);
    let r = after.repository("team/app").unwrap();
    assert_eq!((r.revisions.len(), r.layers.len()), (2, 4));
    assert_eq!(broken(&after), broken_before, "a finding the apply caused");
}

/// Online repo-move: the destination gets every link, the source goes when nothing was
/// written into it; a push into the source before its fence keeps it whole, and the apply
/// says the destination holds the images too.
#[test]
fn an_online_repo_move_verifies_the_fenced_source() {
    let f = fixture();
    let broken_before = broken(&inv(&f));
    let p = move_plan(&f);
    let s = Hooked::new(&root(&f), Box::new(|_, _| {}));
    let rep = apply(&s, &p, &apply_opts(&f, &p, Mode::Online), &|_| {}).unwrap();
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    let after = inv(&f);
    assert!(after.repository("team/app").is_none());
    assert_eq!(tags(&after, "moved/app"), ["1", "2"]);
    assert_eq!(broken(&after), broken_before, "a finding the apply caused");

    let f = fixture();
    let broken_before = broken(&inv(&f));
    let p = move_plan(&f);
    let s = push_before_fence(&f, "team/app");
    let rep = apply(&s, &p, &apply_opts(&f, &p, Mode::Online), &|_| {}).unwrap();
    assert_eq!(rep.skipped.len(), 1, "{:?}", rep.skipped);
    assert!(
        rep.skipped[0]
            .reason
            .contains("destination keeps the links"),
        "{:?}",
        rep.skipped
    );
    let after = inv(&f);
    assert_eq!(tags(&after, "team/app"), ["1", "2", "pushed"]);
    assert_eq!(tags(&after, "moved/app"), ["1", "2"]);
    assert_eq!(broken(&after), broken_before, "a finding the apply caused");
}

/// Run `apply` until `hook` panics (the process "dies" there); the journal stays.
fn die_in(s: &Hooked, p: &Plan, o: &ApplyOptions) {
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = apply(s, p, o, &|_| {});
    }));
    assert!(died.is_err(), "the apply did not reach the hook");
}

/// Review finding: an online apply that died while purging a verified repository (its
/// `_layers` gone, its `_manifests` partly deleted) was resumed by putting the partial
/// `_manifests` back (it no longer matched the plan), serving tags without their layer links.
/// A repository whose purge began is now finished, whatever happened since: a push into it
/// meanwhile lives in the live tree, and the old sections do not come back into it.
#[test]
fn a_resumed_apply_finishes_a_repository_whose_purge_began() {
    for push_meanwhile in [false, true] {
        let f = fixture();
        let broken_before = broken(&inv(&f));
        let p = delete_plan(&f);
        let o = apply_opts(&f, &p, Mode::Online);
        let s = Hooked::new(
            &root(&f),
            Box::new(|op, path| {
                if op == "purge" && path.ends_with("/_manifests") {
                    panic!("killed");
                }
            }),
        );
        die_in(&s, &p, &o);
        // The recursive delete had got through part of the fenced `_manifests`.
        let fenced_tags = f
            .dir
            .path()
            .join(format!("fence/batch-{}", p.id()))
            .join("repositories/team/app/_manifests/tags");
        std::fs::remove_dir_all(fenced_tags.join("1")).unwrap();
        if push_meanwhile {
            let tb = TreeBuilder::new(f.dir.path());
            let l = tb.layer("pushed", 1000);
            tb.image("team/app", Some("pushed"), &f.cfg, &[&f.base, &l]);
        }
        let rep = apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap();
        assert!(
            rep.restored.is_empty(),
            "{push_meanwhile}: {:?}",
            rep.restored
        );
        let after = inv(&f);
        if push_meanwhile {
            assert_eq!(tags(&after, "team/app"), ["pushed"]);
            let r = after.repository("team/app").unwrap();
            assert_eq!((r.revisions.len(), r.layers.len()), (1, 3));
        } else {
            assert!(after.repository("team/app").is_none());
        }
        assert_eq!(broken(&after), broken_before, "{push_meanwhile}");
    }
}

/// Review finding: an online apply that died after fencing, resumed with `--offline`,
/// never verified what it had fenced (a push caught by the fence stayed in the batch) and
/// reported success. Now the offline run is refused; the online resume verifies.
#[test]
fn an_offline_resume_of_an_interrupted_online_apply_is_refused() {
    let f = fixture();
    let p = delete_plan(&f);
    let mut o = apply_opts(&f, &p, Mode::Online);
    o.on_step = Some(std::sync::Arc::new(|step| {
        if step == stowage_plan::apply::Step::Fenced {
            panic!("killed while settling");
        }
    }));
    let s = Hooked::new(&root(&f), Box::new(|_, _| {}));
    die_in(&s, &p, &o);
    let mut off = apply_opts(&f, &p, Mode::Offline);
    off.journal = o.journal.clone();
    let e = apply(&s, &p, &off, &|_| {}).unwrap_err();
    assert!(
        matches!(&e, ApplyError::Blocked(m) if m.contains("resume it online")),
        "{e}"
    );
    o.on_step = None;
    let rep = apply(&s, &p, &o, &|_| {}).unwrap();
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    assert!(inv(&f).repository("team/app").is_none());
}

/// Where a fenced copy cannot be compared with the plan (no view of the batch: an object
/// store), an online apply that removes repositories is refused with what to do instead,
/// and nothing is touched.
#[test]
fn online_removal_is_refused_where_the_fenced_copy_cannot_be_compared() {
    let f = fixture();
    let p = delete_plan(&f);
    let mut s = Hooked::new(&root(&f), Box::new(|_, _| {}));
    s.no_view = true;
    let e = apply(&s, &p, &apply_opts(&f, &p, Mode::Online), &|_| {}).unwrap_err();
    assert!(
        matches!(&e, ApplyError::Blocked(m) if m.contains("--offline")),
        "{e}"
    );
    assert_eq!(tags(&inv(&f), "team/app"), ["1", "2"]);
}

/// Review finding 1: the second fingerprint check compared with apply's first scan, so a
/// push into the source during the link phase was removed with it (and never carried to
/// the destination). Now the source is listed again just before its fence: the push is
/// kept, nothing is removed, and the error names what the destination holds.
#[test]
fn a_push_into_the_source_during_the_link_phase_keeps_the_source_whole() {
    for mode in [Mode::Online, Mode::Offline] {
        let f = fixture();
        let p = move_plan(&f);
        let top = f.dir.path().to_path_buf();
        let (base, cfg) = (f.base.clone(), f.cfg.clone());
        let pushed = std::sync::atomic::AtomicBool::new(false);
        let s = Hooked::new(
            &root(&f),
            Box::new(move |op, _| {
                // The registry takes a push into the source while the first link is written.
                if op == "create" && !pushed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    let tb = TreeBuilder::new(&top);
                    let own2 = tb.layer("pushed", 1000);
                    tb.image("team/app", Some("pushed"), &cfg, &[&base, &own2]);
                }
            }),
        );
        let e = apply(&s, &p, &apply_opts(&f, &p, mode), &|_| {}).unwrap_err();
        assert!(matches!(e, ApplyError::Blocked(_)), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("changed since the plan"), "{msg}");
        assert!(msg.contains("nothing was removed"), "{msg}");
        assert!(
            msg.contains("the 8 destination link(s) written for this plan"),
            "{msg}"
        );
        let after = inv(&f);
        assert_eq!(tags(&after, "team/app"), ["1", "2", "pushed"], "{mode:?}");
        assert_eq!(tags(&after, "moved/app"), ["1", "2"], "{mode:?}");
        let r = after.repository("team/app").unwrap();
        assert_eq!(r.layers.len(), 4, "{mode:?}");
        assert_eq!(r.revisions.len(), 2, "{mode:?}");
    }
}

/// Review finding 2: an apply interrupted after the `intent` of a section removal was
/// resumed by removing the other sections unchecked, with whatever was pushed into the
/// repository meanwhile. Now each section left must be exactly as planned.
#[test]
fn a_resumed_removal_keeps_a_repository_pushed_to_during_the_interruption() {
    let f = fixture();
    let i = inv(&f);
    let p = surgery::repo_delete(
        &Graph::new(&i),
        &["team/app".into()],
        &SurgeryOptions { grace_seconds: 0 },
        now(),
    )
    .unwrap();
    assert!(
        !p.surgery.as_ref().unwrap().repositories[0]
            .section_fingerprints
            .is_empty()
    );
    // The apply dies right after journalling its intent to remove `_layers` (the second
    // section), `_manifests` already gone.
    let s = Hooked::new(
        &root(&f),
        Box::new(|op, path| {
            if op == "move" && path.ends_with("/_layers") {
                panic!("killed");
            }
        }),
    );
    // Offline with a quarantine: sections are moved (the kill hook watches moves).
    let mut o = apply_opts(&f, &p, Mode::Offline);
    o.quarantine = Some(f.dir.path().join("fence"));
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = apply(&s, &p, &o, &|_| {});
    }));
    assert!(died.is_err());
    let journal = std::fs::read_to_string(o.journal.as_ref().unwrap()).unwrap();
    assert!(
        journal.lines().last().unwrap().contains("\"intent\"")
            && journal.lines().last().unwrap().contains("_layers"),
        "{journal}"
    );
    assert!(inv(&f).repository("team/app").unwrap().tags.is_empty());
    // Meanwhile the repository is pushed to again.
    let tb = TreeBuilder::new(f.dir.path());
    let l = tb.layer("pushed", 1000);
    tb.image("team/app", Some("pushed"), &f.cfg, &[&f.base, &l]);
    let rep = apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap();
    assert_eq!(rep.skipped.len(), 1, "{:?}", rep.skipped);
    assert!(
        rep.skipped[0].reason.contains("changed since the plan"),
        "{:?}",
        rep.skipped
    );
    let after = inv(&f);
    assert_eq!(tags(&after, "team/app"), ["pushed"]);
    // base, own and the config as planned, and the pushed layer: nothing of it removed.
    assert_eq!(after.repository("team/app").unwrap().layers.len(), 4);
    // Nothing pushed meanwhile: the resume removes the rest.
    let f = fixture();
    let p = surgery::repo_delete(
        &Graph::new(&inv(&f)),
        &["team/app".into()],
        &SurgeryOptions { grace_seconds: 0 },
        now(),
    )
    .unwrap();
    let s = Hooked::new(
        &root(&f),
        Box::new(|op, path| {
            if op == "move" && path.ends_with("/_layers") {
                panic!("killed");
            }
        }),
    );
    // Offline with a quarantine: sections are moved (the kill hook watches moves).
    let mut o = apply_opts(&f, &p, Mode::Offline);
    o.quarantine = Some(f.dir.path().join("fence"));
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = apply(&s, &p, &o, &|_| {});
    }));
    assert!(died.is_err());
    let rep = apply(&FsStorage::open(&root(&f)).unwrap(), &p, &o, &|_| {}).unwrap();
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    assert!(inv(&f).repository("team/app").is_none());
}

/// Review finding 4: a move stopped partway (here: the destination written meanwhile) named
/// none of the links it had written; now its error lists them, and the journal has each.
#[test]
fn a_move_stopped_partway_names_the_destination_links_it_wrote() {
    let f = fixture();
    let p = move_plan(&f);
    let links: Vec<String> = p
        .surgery
        .as_ref()
        .unwrap()
        .links
        .iter()
        .map(|l| l.path())
        .collect();
    // Someone writes the fourth link's path with another digest before apply gets there.
    let fourth = links[3].clone();
    let top = root(&f);
    let s = Hooked::new(
        &root(&f),
        Box::new(move |op, path| {
            if op == "create" && path == fourth {
                let d = top.join(path);
                std::fs::create_dir_all(d.parent().unwrap()).unwrap();
                std::fs::write(&d, format!("sha256:{}", "0".repeat(64))).unwrap();
            }
        }),
    );
    let o = apply_opts(&f, &p, Mode::Offline);
    let e = apply(&s, &p, &o, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("the source was not touched"), "{e}");
    assert!(e.contains("the 3 destination link(s) written"), "{e}");
    for l in &links[..3] {
        assert!(e.contains(l.as_str()), "{l} not in {e}");
    }
    assert!(!e.contains(links[4].as_str()), "{e}");
    let journal = std::fs::read_to_string(o.journal.as_ref().unwrap()).unwrap();
    let done_create = journal
        .lines()
        .filter(|l| l.contains("\"done\"") && l.contains("\"create\""))
        .count();
    assert_eq!(done_create, 3, "{journal}");
}

/// Review finding 4: restoring a quarantined move put the source back and left the
/// destination without a word. Now restore names exactly the links the move created (and
/// none that were there before), which is what undoing the destination removes.
#[test]
fn restoring_a_quarantined_move_names_exactly_the_destination_links_to_remove() {
    let f = fixture();
    let p = move_plan(&f);
    let mut links: Vec<String> = p
        .surgery
        .as_ref()
        .unwrap()
        .links
        .iter()
        .map(|l| l.path())
        .collect();
    // One link is there already (an interrupted earlier attempt outside this journal):
    // not the move's to list.
    let s = FsStorage::open(&root(&f)).unwrap();
    let first = p.surgery.as_ref().unwrap().links[0].clone();
    assert!(
        s.create_file(&first.path(), first.digest.to_string().as_bytes())
            .unwrap()
    );
    let mut o = apply_opts(&f, &p, Mode::Offline);
    let q = f.dir.path().join("quarantine");
    o.quarantine = Some(q.clone());
    o.journal = None;
    let rep = apply(&s, &p, &o, &|_| {}).unwrap();
    assert_eq!(rep.links_created, 7);
    assert!(inv(&f).repository("team/app").is_none());
    let r = stowage_plan::quarantine::restore(&s, &q).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    links.remove(0);
    links.sort();
    assert_eq!(r.created_left, links);
    let after = inv(&f);
    assert_eq!(tags(&after, "team/app"), ["1", "2"]);
    assert_eq!(tags(&after, "moved/app"), ["1", "2"]);
}
