//! Surgery plans (issue 21): what repo-delete, repo-move and tag-delete plan, byte for byte,
//! on trees written the way the registry writes them; hostile requests refused by name; and
//! the apply of each (offline and online), including a resumed move.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply};
use stowage_plan::surgery::{self, LinkKind, Operation, SurgeryError, SurgeryOptions};
use stowage_plan::{Plan, PlanKind};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::{TreeBuilder, Written};

/// `team/app` (tags 1 and 2 on one manifest, `old` on another) with `team/app/nested` below
/// it, and `other/app` sharing `base` with `team/app`; `team/app` also holds a two-platform
/// index `multi`.
struct Fx {
    dir: tempfile::TempDir,
    base: Written,
    own: Written,
    old_layer: Written,
    cfg: Written,
    old_cfg: Written,
    m1: Written,
    m_old: Written,
    idx: Written,
    amd: Written,
    arm: Written,
    amd_cfg: Written,
    arm_cfg: Written,
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let tb = TreeBuilder::new(dir.path());
    let base = tb.layer("base", 4000);
    let own = tb.layer("own", 3000);
    let old_layer = tb.layer("old", 2000);
    let cfg = tb.blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#);
    let old_cfg = tb.blob(br#"{"architecture":"amd64","os":"linux","x":"old"}"#);
    let m1 = tb.image("team/app", Some("1"), &cfg, &[&base, &own]);
    tb.tag("team/app", "2", &m1.digest());
    let m_old = tb.image("team/app", Some("old"), &old_cfg, &[&old_layer]);
    let amd_cfg = tb.blob(br#"{"architecture":"amd64","os":"linux","m":1}"#);
    let arm_cfg = tb.blob(br#"{"architecture":"arm64","os":"linux","m":1}"#);
    let amd = tb.image("team/app", None, &amd_cfg, &[&base]);
    let arm = tb.image("team/app", None, &arm_cfg, &[&base]);
    let idx = tb.index(
        "team/app",
        Some("multi"),
        &[(&amd, "amd64"), (&arm, "arm64")],
    );
    let ncfg = tb.blob(br#"{"architecture":"amd64","os":"linux","n":1}"#);
    tb.image("team/app/nested", Some("1"), &ncfg, &[&base]);
    let ocfg = tb.blob(br#"{"architecture":"amd64","os":"linux","o":1}"#);
    tb.image("other/app", Some("1"), &ocfg, &[&base]);
    age(&dir.path().join(layout::LAYOUT_ROOT), 7200);
    Fx {
        dir,
        base,
        own,
        old_layer,
        cfg,
        old_cfg,
        m1,
        m_old,
        idx,
        amd,
        arm,
        amd_cfg,
        arm_cfg,
    }
}

fn root(f: &Fx) -> PathBuf {
    f.dir.path().join(layout::LAYOUT_ROOT)
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

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

fn inv(f: &Fx) -> Inventory {
    let s = FsStorage::open(&root(f)).unwrap();
    scan(&s, &ScanOptions::default(), &Progress::default()).unwrap()
}

fn opts() -> SurgeryOptions {
    SurgeryOptions { grace_seconds: 0 }
}

fn digests(p: &Plan) -> Vec<String> {
    p.blobs.iter().map(|b| b.digest.to_string()).collect()
}

fn sorted(ws: &[&Written]) -> Vec<String> {
    let mut v: Vec<String> = ws.iter().map(|w| w.digest().to_string()).collect();
    v.sort();
    v
}

fn apply_opts(f: &Fx, p: &Plan, mode: Mode, gc: bool) -> ApplyOptions {
    let mut o = ApplyOptions::new(now(), CacheStep::Nothing);
    o.quarantine = (mode == Mode::Online).then(|| f.dir.path().join("fence"));
    o.journal = Some(f.dir.path().join(format!("journal-{}", p.id())));
    o.concurrency = 2;
    o.quiet_window_seconds = 0;
    o.settle = Duration::ZERO;
    o.mode = mode;
    o.gc = gc;
    o
}

#[test]
fn repo_delete_frees_exactly_what_only_it_used_and_keeps_what_is_shared() {
    let f = fixture();
    let i = inv(&f);
    let p = surgery::repo_delete(&Graph::new(&i), &["team/app".into()], &opts(), now()).unwrap();
    assert_eq!(p.kind, PlanKind::Surgery);
    let sg = p.surgery.as_ref().unwrap();
    assert_eq!(sg.operation, Operation::RepoDelete);
    assert_eq!(sg.repositories.len(), 1);
    assert_eq!(sg.repositories[0].sections, ["_manifests", "_layers"]);
    assert_eq!(sg.repositories[0].tags, 4);
    assert_eq!(sg.nested_kept, ["team/app/nested"], "named and kept");
    // Everything team/app alone used: its manifests (index and children included), its
    // configs and its own layers; `base` is shared with other/app and team/app/nested.
    let freed = [
        &f.own,
        &f.old_layer,
        &f.cfg,
        &f.old_cfg,
        &f.m1,
        &f.m_old,
        &f.idx,
        &f.amd,
        &f.arm,
        &f.amd_cfg,
        &f.arm_cfg,
    ];
    assert_eq!(digests(&p), sorted(&freed));
    let bytes: u64 = freed.iter().map(|w| w.size).sum();
    assert_eq!((p.bytes, p.blob_bytes), (bytes, bytes), "exact bytes");
    let shared: Vec<String> = sg.shared.iter().map(|k| k.digest.to_string()).collect();
    assert_eq!(shared, [f.base.digest().to_string()]);
    assert_eq!(sg.shared_bytes, f.base.size);
    // Its directory goes only if empty: the nested repository keeps it (and `team`).
    let repo_dirs = |p: &Plan| -> Vec<String> {
        p.empty_dirs
            .iter()
            .filter(|d| d.starts_with("repositories/"))
            .cloned()
            .collect()
    };
    assert!(repo_dirs(&p).is_empty(), "{:?}", p.empty_dirs);
    // The fan-out directories the freed blobs may leave empty come after.
    assert!(
        p.empty_dirs.iter().all(|d| d.starts_with("blobs/sha256/")),
        "{:?}",
        p.empty_dirs
    );
    // The plan file reads back as written (keys validated).
    assert_eq!(Plan::from_json(&p.to_json()).unwrap(), p);
}

#[test]
fn repo_delete_globs_select_by_level_and_nested_repositories_go_only_when_named() {
    let f = fixture();
    let i = inv(&f);
    let g = Graph::new(&i);
    let p = surgery::repo_delete(&g, &["team/**".into()], &opts(), now()).unwrap();
    let sg = p.surgery.as_ref().unwrap();
    let names: Vec<&str> = sg
        .repositories
        .iter()
        .map(|r| r.repository.as_str())
        .collect();
    assert_eq!(names, ["team/app", "team/app/nested"]);
    assert!(sg.nested_kept.is_empty());
    let repo_dirs: Vec<&String> = p
        .empty_dirs
        .iter()
        .filter(|d| d.starts_with("repositories/"))
        .collect();
    assert_eq!(
        repo_dirs,
        [
            "repositories/team/app/nested",
            "repositories/team/app",
            "repositories/team"
        ]
    );
    // `*` stays within one level: `other/*` is other/app only.
    let p = surgery::repo_delete(&g, &["*/app".into()], &opts(), now()).unwrap();
    let sg = p.surgery.as_ref().unwrap();
    let names: Vec<&str> = sg
        .repositories
        .iter()
        .map(|r| r.repository.as_str())
        .collect();
    assert_eq!(names, ["other/app", "team/app"]);
    assert_eq!(sg.nested_kept, ["team/app/nested"]);
    // Both users of `base` but one go: base stays, shared with the nested repository.
    assert!(!digests(&p).contains(&f.base.digest().to_string()));
}

#[test]
fn hostile_or_empty_requests_are_refused_by_name() {
    let f = fixture();
    let i = inv(&f);
    let g = Graph::new(&i);
    let del = |p: &str| surgery::repo_delete(&g, &[p.into()], &opts(), now()).unwrap_err();
    assert!(matches!(del("team/../etc"), SurgeryError::BadName { .. }));
    assert!(matches!(del("../*"), SurgeryError::BadName { .. }));
    assert!(matches!(del("nothing/*"), SurgeryError::NoMatch(_)));
    assert!(matches!(del("team"), SurgeryError::NoSuchRepository(_)));
    assert!(matches!(del("team/_layers"), SurgeryError::BadName { .. }));
    let e = del(&"{".repeat(40));
    assert!(matches!(e, SurgeryError::Pattern(_)), "{e}");
    let mv =
        |s: &str, d: &str| surgery::repo_move(&g, s, d, false, false, &opts(), now()).unwrap_err();
    assert!(matches!(
        mv("team/app", "../x"),
        SurgeryError::BadName { .. }
    ));
    assert!(matches!(
        mv("team/app", "team/app"),
        SurgeryError::SameRepository { .. }
    ));
    assert!(matches!(
        mv("no/such", "x"),
        SurgeryError::NoSuchRepository(_)
    ));
    let td = |r: &str| surgery::tag_delete(&g, &[r.into()], &opts(), now()).unwrap_err();
    assert!(matches!(td("team/app"), SurgeryError::BadReference(_)));
    assert!(matches!(td("team/app:../1"), SurgeryError::BadReference(_)));
    assert!(matches!(
        td("team/app:nope"),
        SurgeryError::NoSuchTag { .. }
    ));
    assert!(matches!(td("../x:1"), SurgeryError::BadName { .. }));
    // An edited plan with a traversal in a surgery entry does not load.
    let mut p = surgery::repo_delete(&g, &["other/app".into()], &opts(), now()).unwrap();
    p.surgery.as_mut().unwrap().repositories[0].repository = "other/../../x".into();
    let e = Plan::from_json(&p.to_json()).unwrap_err().to_string();
    assert!(e.contains("surgery.repositories[0]"), "{e}");
    let mut p =
        surgery::repo_move(&g, "other/app", "new/app", false, false, &opts(), now()).unwrap();
    p.surgery.as_mut().unwrap().links[0].repository = "../x".into();
    let e = Plan::from_json(&p.to_json()).unwrap_err().to_string();
    assert!(e.contains("surgery.links[0]"), "{e}");
}

#[test]
fn repo_move_plans_every_link_in_a_safe_order_and_refuses_an_existing_destination() {
    let f = fixture();
    let i = inv(&f);
    let g = Graph::new(&i);
    let p = surgery::repo_move(&g, "team/app", "moved/app", false, false, &opts(), now()).unwrap();
    let sg = p.surgery.as_ref().unwrap();
    assert_eq!(sg.operation, Operation::RepoMove);
    assert_eq!(p.bytes, 0, "a move frees nothing");
    assert!(p.blobs.is_empty());
    let kinds: Vec<LinkKind> = sg.links.iter().map(|l| l.kind).collect();
    let mut in_order = kinds.clone();
    in_order.sort();
    assert_eq!(kinds, in_order, "layers, revisions, history, current");
    let n = |k| kinds.iter().filter(|x| **x == k).count();
    // Layers: cfg, old_cfg, amd_cfg, arm_cfg, base, own, old_layer.
    assert_eq!(n(LinkKind::Layer), 7);
    assert_eq!(n(LinkKind::Revision), 5);
    assert_eq!(n(LinkKind::TagIndex), 4);
    assert_eq!(n(LinkKind::TagCurrent), 4);
    // The index comes after both its children.
    let pos = |w: &Written| {
        sg.links
            .iter()
            .position(|l| l.kind == LinkKind::Revision && l.digest == w.digest())
            .unwrap()
    };
    assert!(pos(&f.idx) > pos(&f.amd) && pos(&f.idx) > pos(&f.arm));
    assert_eq!(sg.nested_kept, ["team/app/nested"]);
    assert_eq!(sg.repositories.len(), 1, "the source goes");
    let c = surgery::repo_move(&g, "team/app", "moved/app", true, false, &opts(), now()).unwrap();
    assert!(c.surgery.as_ref().unwrap().repositories.is_empty(), "copy");
    // other/app:1 exists with another digest: refused, and named, with or without merge.
    let e = surgery::repo_move(
        &g,
        "team/app/nested",
        "other/app",
        false,
        false,
        &opts(),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SurgeryError::DestinationExists { collisions, .. } if collisions == &["1"]),
        "{e}"
    );
    assert!(e.to_string().contains("--merge"), "{e}");
    let e = surgery::repo_move(
        &g,
        "team/app/nested",
        "other/app",
        false,
        true,
        &opts(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(&e, SurgeryError::Collisions { collisions, .. } if collisions == &["1"]));
}

#[test]
fn a_merge_into_an_identical_tag_keeps_its_tag_and_relinks_every_manifest() {
    let f = fixture();
    let tb = TreeBuilder::new(f.dir.path());
    // dest/app:1 is team/app:1 already, with its links.
    tb.image("dest/app", Some("1"), &f.cfg, &[&f.base, &f.own]);
    let i = inv(&f);
    let g = Graph::new(&i);
    let p = surgery::repo_move(&g, "team/app", "dest/app", true, true, &opts(), now()).unwrap();
    let sg = p.surgery.as_ref().unwrap();
    assert_eq!(sg.merged_tags, ["1"]);
    assert!(!sg.links.iter().any(|l| l.tag.as_deref() == Some("1")));
    // The revision link dest/app already has is planned too (review finding 1): apply
    // counts it done while it is there and writes it again if it was removed since the
    // plan, so tag 2 is never written over a manifest dest/app lost in between.
    assert!(
        sg.links
            .iter()
            .any(|l| l.digest == f.m1.digest() && l.kind == LinkKind::Revision)
    );
    assert!(sg.links.iter().any(|l| l.tag.as_deref() == Some("2")));
}

#[test]
fn tag_delete_keeps_a_manifest_another_tag_holds_and_frees_one_nobody_holds() {
    let f = fixture();
    let i = inv(&f);
    let g = Graph::new(&i);
    // Tag 1 shares its manifest with tag 2: nothing is freed, the manifest is shared.
    let p = surgery::tag_delete(&g, &["team/app:1".into()], &opts(), now()).unwrap();
    assert_eq!(p.tags.len(), 1);
    assert!(p.manifests.is_empty() && p.blobs.is_empty());
    let sg = p.surgery.as_ref().unwrap();
    assert!(sg.shared.iter().any(|k| k.digest == f.m1.digest()));
    // `old` alone holds its manifest: GC -m frees it, its config and its own layer.
    let p = surgery::tag_delete(&g, &["team/app:old".into()], &opts(), now()).unwrap();
    let ms: Vec<String> = p.manifests.iter().map(|m| m.digest.to_string()).collect();
    assert_eq!(ms, [f.m_old.digest().to_string()]);
    assert_eq!(digests(&p), sorted(&[&f.m_old, &f.old_cfg, &f.old_layer]));
    assert_eq!(p.bytes, f.m_old.size + f.old_cfg.size + f.old_layer.size);
}

fn apply_plan(f: &Fx, p: &Plan, mode: Mode, gc: bool) -> stowage_plan::apply::ApplyReport {
    apply(
        &FsStorage::open(&root(f)).unwrap(),
        p,
        &apply_opts(f, p, mode, gc),
        &|_| {},
    )
    .unwrap()
}

#[test]
fn applied_repo_delete_leaves_the_nested_repository_whole_and_check_clean() {
    // Online (fenced, each fenced section compared with the plan at verify) and offline.
    for mode in [Mode::Online, Mode::Offline] {
        let f = fixture();
        let i = inv(&f);
        let p =
            surgery::repo_delete(&Graph::new(&i), &["team/app".into()], &opts(), now()).unwrap();
        let findings_before = i.findings.len();
        let rep = apply_plan(&f, &p, mode, true);
        assert!(rep.skipped.is_empty(), "{mode:?} {:?}", rep.skipped);
        assert!(rep.restored.is_empty(), "{mode:?} {:?}", rep.restored);
        assert_eq!(rep.repository_sections, 2, "{mode:?}");
        assert_eq!(rep.bytes_freed, p.bytes, "{mode:?}");
        let after = inv(&f);
        let names: Vec<&str> = after.repositories.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["other/app", "team/app/nested"], "{mode:?}");
        assert!(root(&f).join(layout::blob_data(&f.base.digest)).is_file());
        assert!(!root(&f).join(layout::blob_data(&f.own.digest)).exists());
        assert_eq!(
            after.findings.len(),
            findings_before,
            "{mode:?} {:?}",
            after.findings
        );
        assert!(
            !f.dir.path().join("fence").exists(),
            "{mode:?}: the fence is emptied"
        );
    }
}

#[test]
fn applied_move_creates_identical_links_then_removes_the_source_and_resumes() {
    let f = fixture();
    let i = inv(&f);
    let before = i.repository("team/app").unwrap().clone();
    let p = surgery::repo_move(
        &Graph::new(&i),
        "team/app",
        "moved/app",
        false,
        false,
        &opts(),
        now(),
    )
    .unwrap();
    let n = p.surgery.as_ref().unwrap().links.len() as u64;
    // Half the links exist already (an interrupted run): each is read back, counted done.
    let s = FsStorage::open(&root(&f)).unwrap();
    for l in &p.surgery.as_ref().unwrap().links[..5] {
        use stowage_storage::StorageWrite;
        assert!(
            s.create_file(&l.path(), l.digest.to_string().as_bytes())
                .unwrap()
        );
    }
    let rep = apply_plan(&f, &p, Mode::Offline, false);
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    assert_eq!(rep.links_created, n - 5);
    let after = inv(&f);
    assert!(after.repository("team/app").is_none(), "the source is gone");
    let moved = after.repository("moved/app").unwrap();
    let ds = |r: &stowage_model::inventory::Repository, inv: &Inventory| {
        let tags: Vec<(String, String)> = r
            .tags
            .iter()
            .map(|t| {
                let d = inv.digest(t.current.unwrap().target.unwrap()).to_string();
                (t.name.to_string(), d)
            })
            .collect();
        let revs: Vec<String> = r
            .revisions
            .iter()
            .map(|l| inv.digest(l.target()).to_string())
            .collect();
        let layers: Vec<String> = r
            .layers
            .iter()
            .map(|l| inv.digest(l.target()).to_string())
            .collect();
        (tags, revs, layers)
    };
    assert_eq!(
        ds(moved, &after),
        ds(&before, &i),
        "same tags, manifests and layers"
    );
    assert_eq!(after.repository("team/app/nested").unwrap().tags.len(), 1);
    // Every link is exactly the registry's: 71 bytes, no newline.
    for l in &p.surgery.as_ref().unwrap().links {
        assert_eq!(std::fs::read(root(&f).join(l.path())).unwrap().len(), 71);
    }
    // Nothing the scan reports is new.
    assert_eq!(
        after.findings.len(),
        i.findings.len(),
        "{:?}",
        after.findings
    );
    // The same plan again: everything is already done, nothing breaks.
    let rep = apply_plan(&f, &p, Mode::Offline, false);
    assert_eq!(rep.links_created, 0);
}

#[test]
fn a_move_whose_destination_was_written_meanwhile_stops_before_the_source_is_touched() {
    let f = fixture();
    let i = inv(&f);
    let p = surgery::repo_move(
        &Graph::new(&i),
        "team/app",
        "moved/app",
        false,
        false,
        &opts(),
        now(),
    )
    .unwrap();
    // Someone pushes moved/app:1 with another manifest between the plan and the apply.
    let tb = TreeBuilder::new(f.dir.path());
    tb.tag("moved/app", "1", &f.m_old.digest());
    let e = apply(
        &FsStorage::open(&root(&f)).unwrap(),
        &p,
        &apply_opts(&f, &p, Mode::Offline, false),
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("the source was not touched"), "{e}");
    assert!(inv(&f).repository("team/app").is_some());
}

#[test]
fn a_move_whose_source_changed_since_the_plan_writes_nothing() {
    let f = fixture();
    let i = inv(&f);
    let p = surgery::repo_move(
        &Graph::new(&i),
        "team/app",
        "moved/app",
        false,
        false,
        &opts(),
        now(),
    )
    .unwrap();
    TreeBuilder::new(f.dir.path()).tag("team/app", "new", &f.m1.digest());
    let e = apply(
        &FsStorage::open(&root(&f)).unwrap(),
        &p,
        &apply_opts(&f, &p, Mode::Offline, false),
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("changed since the plan"), "{e}");
    assert!(!root(&f).join("repositories/moved").exists());
}

#[test]
fn applied_tag_delete_keeps_the_manifest_and_collects_only_with_gc() {
    let f = fixture();
    let i = inv(&f);
    let g = Graph::new(&i);
    let p = surgery::tag_delete(
        &g,
        &["team/app:old".into(), "team/app:1".into()],
        &opts(),
        now(),
    )
    .unwrap();
    let rep = apply_plan(&f, &p, Mode::Offline, false);
    assert_eq!(rep.tags, 2);
    assert_eq!(
        (rep.manifests, rep.blobs),
        (0, 0),
        "no --gc: nothing collected"
    );
    let after = inv(&f);
    let r = after.repository("team/app").unwrap();
    assert!(r.tag("1").is_none() && r.tag("old").is_none() && r.tag("2").is_some());
    assert!(
        r.revision(after.id_of(&f.m_old.digest()).unwrap())
            .is_some()
    );
    // Tag 2 is the last tag of m1: GC -m frees m1, its config and own layer (base is
    // shared); m_old, untagged before this plan, is not this plan's to free.
    let i = inv(&f);
    let p = surgery::tag_delete(&Graph::new(&i), &["team/app:2".into()], &opts(), now()).unwrap();
    assert_eq!(digests(&p), sorted(&[&f.m1, &f.cfg, &f.own]));
    let rep = apply_plan(&f, &p, Mode::Online, true);
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    assert_eq!((rep.tags, rep.manifests, rep.blobs), (1, 1, 3));
    assert!(!root(&f).join(layout::blob_data(&f.own.digest)).exists());
    assert!(root(&f).join(layout::blob_data(&f.base.digest)).is_file());
    assert!(root(&f).join(layout::blob_data(&f.m_old.digest)).is_file());
}
