//! Signatures whose subject is gone (issue 23): `gc --orphan-signatures` removes the cosign
//! and referrers-tag-schema tags of subjects no repository links, in the same repository or
//! another (`COSIGN_REPOSITORY`), with `-m` their manifests and blobs too, and keeps every
//! signature whose subject lives anywhere. Apply removes one only if its subject is still
//! gone.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::digest::Digest;
use stowage_model::time::Timestamp;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply};
use stowage_plan::{GcOptions, Plan, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::{TreeBuilder, Written};

/// A minute from now: with no grace period, everything the fixture wrote is planned.
fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now() + Duration::from_secs(60))
}

/// `sha256-<hex><suffix>`: cosign's tag for `d`.
fn sig_tag(d: &Digest, suffix: &str) -> String {
    format!("{}{suffix}", d.to_string().replace(':', "-"))
}

/// A signature-like manifest (a config and one "signature" layer) tagged `tag` in `repo`.
fn signature(t: &TreeBuilder, repo: &str, tag: &str, seed: &str) -> Written {
    let c = t.blob(format!("{{\"sig\":\"{seed}\"}}").as_bytes());
    let l = t.layer(seed, 300);
    t.image(repo, Some(tag), &c, &[&l])
}

struct Fixture {
    dir: tempfile::TempDir,
    /// Subjects: a live image and a deleted one, each signed in its own repository, plus a
    /// live image of another repository signed in `sigs` (`COSIGN_REPOSITORY`).
    live: Written,
    gone: Written,
    /// The signatures of each, by tag.
    live_sig: String,
    gone_sig: String,
    gone_att: String,
    gone_index: String,
    elsewhere_sig: String,
    unknown_sig: String,
    gone_sig_manifest: Written,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let c = t.blob(b"{\"created\":\"2026-01-01T00:00:00Z\"}");
    let live = t.image("apps/web", Some("v1"), &c, &[&t.layer("web-v1", 2000)]);
    let c2 = t.blob(b"{\"created\":\"2026-02-01T00:00:00Z\"}");
    let gone = t.image("apps/web", Some("v0"), &c2, &[&t.layer("web-v0", 3000)]);
    let live_sig = sig_tag(&live.digest(), ".sig");
    signature(&t, "apps/web", &live_sig, "sig-live");
    let gone_sig = sig_tag(&gone.digest(), ".sig");
    let gone_sig_manifest = signature(&t, "apps/web", &gone_sig, "sig-gone");
    let gone_att = sig_tag(&gone.digest(), ".att");
    signature(&t, "apps/web", &gone_att, "att-gone");
    // The referrers tag schema: an index tagged `sha256-<hex>` listing the subject's
    // referrers (here the attestation's manifest is not listed: only the tag matters).
    let gone_index = sig_tag(&gone.digest(), "");
    let child = signature(&t, "apps/web", "scratch", "index-child");
    t.index("apps/web", Some(&gone_index), &[(&child, "unknown")]);
    t.remove(&layout::tag_dir("apps/web", "scratch"));
    // A signature of a digest this storage never held (an image in another registry, whose
    // `COSIGN_REPOSITORY` is here): kept.
    let unknown_sig = format!("sha256-{}.sig", "e".repeat(64));
    signature(&t, "sigs", &unknown_sig, "sig-unknown");
    // A signature stored apart from its subject (`COSIGN_REPOSITORY=sigs`).
    let c3 = t.blob(b"{\"created\":\"2026-03-01T00:00:00Z\"}");
    let api = t.image("apps/api", Some("v1"), &c3, &[&t.layer("api-v1", 1000)]);
    let elsewhere_sig = sig_tag(&api.digest(), ".sig");
    signature(&t, "sigs", &elsewhere_sig, "sig-elsewhere");
    // The subject `v0` is deleted the way the registry deletes a manifest: its tag and
    // revision link go, its blob stays until a GC.
    t.remove(&layout::tag_dir("apps/web", "v0"));
    t.remove(&layout::revision_link("apps/web", &gone.digest()));
    Fixture {
        dir,
        live,
        gone,
        live_sig,
        gone_sig,
        gone_att,
        gone_index,
        elsewhere_sig,
        unknown_sig,
        gone_sig_manifest,
    }
}

fn plan(f: &Fixture, delete_untagged: bool) -> Plan {
    let storage = FsStorage::open(&f.dir.path().join(layout::LAYOUT_ROOT)).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    gc::build(
        &g,
        &GcOptions {
            delete_untagged,
            grace_seconds: 0,
            orphan_signatures: true,
            ..GcOptions::default()
        },
        now(),
    )
}

fn tags(p: &Plan) -> BTreeSet<(String, String)> {
    p.tags
        .iter()
        .map(|t| (t.repository.clone(), t.tag.clone()))
        .collect()
}

#[test]
fn orphaned_signatures_are_planned_and_signatures_of_live_subjects_kept() {
    let f = fixture();
    for delete_untagged in [false, true] {
        let p = plan(&f, delete_untagged);
        let want: BTreeSet<(String, String)> = [&f.gone_sig, &f.gone_att, &f.gone_index]
            .into_iter()
            .map(|t| ("apps/web".to_string(), t.clone()))
            .collect();
        assert_eq!(tags(&p), want, "-m {delete_untagged}: {:?}", p.blocked);
        for t in &p.tags {
            assert_eq!(t.orphan_of, Some(f.gone.digest()));
            assert_eq!(t.reasons, [gc::ORPHANED_SIGNATURE]);
        }
        let untagged: BTreeSet<Digest> = p.manifests.iter().map(|m| m.digest.clone()).collect();
        if delete_untagged {
            // The orphans' manifests go with their tags, and so do their blobs; the live
            // image, its signature and the one stored in `sigs` stay.
            assert!(untagged.contains(&f.gone_sig_manifest.digest()));
            assert!(!untagged.contains(&f.live.digest()));
            assert!(p.manifests.iter().all(|m| m.repository == "apps/web"));
        } else {
            // Without -m only the tags go; their manifests stay, as the registry keeps
            // every revision.
            assert!(untagged.is_empty());
        }
    }
    // The signature of a subject this storage never held is kept and named.
    let p = plan(&f, true);
    assert!(
        p.blocked
            .iter()
            .any(|b| b.contains("never held") && b.contains(&f.unknown_sig)),
        "{:?}",
        p.blocked
    );
}

#[test]
fn a_manifest_another_tag_points_at_stays_when_its_orphan_tag_goes() {
    let f = fixture();
    let t = TreeBuilder::new(f.dir.path());
    t.tag("apps/web", "keep-me", &f.gone_sig_manifest.digest());
    let p = plan(&f, true);
    assert!(tags(&p).contains(&("apps/web".to_string(), f.gone_sig.clone())));
    assert!(
        p.manifests
            .iter()
            .all(|m| m.digest != f.gone_sig_manifest.digest()),
        "{:?}",
        p.manifests
    );
    assert!(
        p.blobs
            .iter()
            .all(|b| b.digest != f.gone_sig_manifest.digest())
    );
}

#[test]
fn a_signature_tag_within_the_grace_period_is_held_back() {
    let f = fixture();
    let storage = FsStorage::open(&f.dir.path().join(layout::LAYOUT_ROOT)).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    // Every file was written just now: a week of grace holds every orphan back.
    let p = gc::build(
        &g,
        &GcOptions {
            orphan_signatures: true,
            grace_seconds: 7 * 86400,
            ..GcOptions::default()
        },
        Timestamp::from_system_time(std::time::SystemTime::now()),
    );
    assert!(p.tags.is_empty());
    assert_eq!(p.held_back.tags.len(), 3);
    // With -m too: a held-back tag keeps its manifest a root.
    let p_held = gc::build(
        &g,
        &GcOptions {
            orphan_signatures: true,
            delete_untagged: true,
            grace_seconds: 7 * 86400,
            ..GcOptions::default()
        },
        Timestamp::from_system_time(std::time::SystemTime::now()),
    );
    assert_eq!(p_held.held_back.tags.len(), 3);
    assert!(
        p_held
            .manifests
            .iter()
            .all(|m| m.digest != f.gone_sig_manifest.digest())
    );
}

#[test]
fn without_the_option_or_with_an_incomplete_scan_no_signature_goes() {
    let f = fixture();
    let storage = FsStorage::open(&f.dir.path().join(layout::LAYOUT_ROOT)).unwrap();
    let mut inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    let p = gc::build(
        &g,
        &GcOptions {
            delete_untagged: true,
            grace_seconds: 0,
            ..GcOptions::default()
        },
        now(),
    );
    assert!(
        p.tags.is_empty(),
        "off by default: the registry's GC keeps tags"
    );
    // A namespace that could not be listed may hold the subject.
    inv.unlisted.push("team".into());
    let g = Graph::new(&inv);
    let p = gc::build(
        &g,
        &GcOptions {
            orphan_signatures: true,
            grace_seconds: 0,
            ..GcOptions::default()
        },
        now(),
    );
    assert!(p.tags.is_empty());
    assert!(
        p.blocked.iter().any(|b| b.contains("signature")),
        "{:?}",
        p.blocked
    );
}

#[test]
fn apply_removes_orphans_and_keeps_one_whose_subject_came_back() {
    let f = fixture();
    let p = plan(&f, true);
    // Between plan and apply, the subject is pushed again (its revision link is back).
    let t = TreeBuilder::new(f.dir.path());
    std::fs::write(
        t.path(&layout::revision_link("apps/web", &f.gone.digest())),
        f.gone.digest().to_string(),
    )
    .unwrap();
    let storage = FsStorage::open(&f.dir.path().join(layout::LAYOUT_ROOT)).unwrap();
    let mut o = ApplyOptions::new(now(), CacheStep::Nothing);
    o.mode = Mode::Offline;
    o.quiet_window_seconds = 0;
    o.settle = Duration::ZERO;
    o.journal = Some(f.dir.path().join("journal"));
    let report = apply(&storage, &p, &o, &|_| {}).unwrap();
    assert_eq!(report.tags, 0, "{report:?}");
    for tag in [&f.gone_sig, &f.gone_att, &f.gone_index] {
        assert!(t.path(&layout::tag_current_link("apps/web", tag)).exists());
        assert!(
            report
                .skipped
                .iter()
                .any(|s| s.path.contains(tag.as_str()) && s.reason.contains("linked again")),
            "{:?}",
            report.skipped
        );
    }
    // Their manifests are tagged still: apply keeps them too.
    assert!(
        t.path(&layout::revision_link(
            "apps/web",
            &f.gone_sig_manifest.digest()
        ))
        .exists()
    );

    // With the subject gone again, a fresh plan's apply removes them, and nothing else.
    std::fs::remove_file(t.path(&layout::revision_link("apps/web", &f.gone.digest()))).unwrap();
    let p = plan(&f, true);
    o.journal = Some(f.dir.path().join("journal-2"));
    let report = apply(&storage, &p, &o, &|_| {}).unwrap();
    assert_eq!(report.tags, 3, "{report:?}");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let web = inv.repository("apps/web").unwrap();
    let left: BTreeSet<&str> = web.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(left, BTreeSet::from(["v1", f.live_sig.as_str()]));
    assert!(
        inv.repository("sigs")
            .unwrap()
            .tag(&f.elsewhere_sig)
            .is_some()
    );
    assert!(web.revision(inv.id_of(&f.live.digest()).unwrap()).is_some());
    // The orphan's manifest went with its tag (-m), and its blob with it.
    assert!(inv.id_of(&f.gone_sig_manifest.digest()).is_none());
    assert!(
        !t.path(&layout::blob_data(&f.gone_sig_manifest.digest))
            .exists()
    );
}

/// Online apply: the subject is pushed again while the fenced tags settle; verify puts the
/// signature tags back (and, through the fixpoint, their manifests).
#[test]
fn online_apply_restores_orphan_tags_whose_subject_returns_during_the_settle() {
    let f = fixture();
    let p = plan(&f, true);
    assert_eq!(p.tags.len(), 3);
    let storage = FsStorage::open(&f.dir.path().join(layout::LAYOUT_ROOT)).unwrap();
    let revision =
        TreeBuilder::new(f.dir.path()).path(&layout::revision_link("apps/web", &f.gone.digest()));
    let subject = f.gone.digest().to_string();
    let mut o = ApplyOptions::new(now(), CacheStep::Nothing);
    o.quarantine = Some(f.dir.path().join("fence"));
    o.journal = Some(f.dir.path().join("journal"));
    o.quiet_window_seconds = 0;
    o.settle = Duration::ZERO;
    o.on_step = Some(std::sync::Arc::new(move |s| {
        if s == stowage_plan::apply::Step::Settled {
            std::fs::create_dir_all(revision.parent().unwrap()).unwrap();
            std::fs::write(&revision, &subject).unwrap();
        }
    }));
    let report = apply(&storage, &p, &o, &|_| {}).unwrap();
    let t = TreeBuilder::new(f.dir.path());
    for tag in [&f.gone_sig, &f.gone_att, &f.gone_index] {
        assert!(
            t.path(&layout::tag_current_link("apps/web", tag)).exists(),
            "{tag} not restored: {report:?}"
        );
    }
    assert!(
        report
            .restored
            .iter()
            .any(|r| format!("{r:?}").contains("subject is linked again")),
        "{:?}",
        report.restored
    );
    // The signatures are whole again: their manifests' revision links are back.
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let web = inv.repository("apps/web").unwrap();
    let id = inv.id_of(&f.gone_sig_manifest.digest()).unwrap();
    assert!(web.revision(id).is_some() && inv.is_present(id));
}
