//! GC against the real registry: the plan equals what `docker-registry garbage-collect
//! --dry-run` deletes (minus the listed multi-arch/referrer protections), and after apply the
//! real registry still serves every kept image completely (skopeo copy --all).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use stowage_graph::Graph;
use stowage_model::time::Timestamp;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply};
use stowage_plan::{GcOptions, Plan, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::{FsStorage, resolve_root};
use stowage_testkit::real::{self, RealFixture, Server};

fn now() -> Timestamp {
    // Far enough after any fixture build that the grace period does not hold anything back
    // unless a test says so.
    Timestamp::from_system_time(std::time::SystemTime::now()).saturating_sub_secs(-7200)
}

/// Apply options for these tests: no quiet window (fixtures are seconds old).
fn apply_opts(
    quarantine: Option<std::path::PathBuf>,
    journal: Option<std::path::PathBuf>,
) -> ApplyOptions {
    ApplyOptions {
        quarantine,
        journal,
        concurrency: 4,
        now: now(),
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
    }
}

fn storage(fx: &RealFixture) -> FsStorage {
    FsStorage::open(&resolve_root(&fx.rootdirectory()).unwrap().layout_root).unwrap()
}

fn plan(fx: &RealFixture, opts: &GcOptions) -> Plan {
    let s = storage(fx);
    let inv = scan(
        &s,
        &ScanOptions {
            concurrency: 8,
            verify_links: false,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap();
    let g = Graph::new(&inv);
    gc::build(&g, opts, now())
}

fn digests(p: &Plan) -> BTreeSet<String> {
    p.blobs.iter().map(|b| b.digest.to_string()).collect()
}

/// Every reference that must still pull after a GC: tags, index children by digest, and the
/// referrer by digest.
fn kept_refs(fx: &RealFixture, p: &Plan) -> Vec<String> {
    let mut refs = fx.tagged_refs();
    for k in &p.manifests_kept_unlike_registry {
        refs.push(format!("{}@{}", k.repository, k.digest));
    }
    refs
}

#[test]
fn plain_plan_equals_the_registry_gc_and_apply_keeps_every_image() {
    let fx = real::build(false);
    let opts = GcOptions {
        grace_seconds: 0,
        ..GcOptions::default()
    };
    let p = plan(&fx, &opts);
    let theirs = real::registry_gc_dry_run(&fx.config(), false);
    assert!(theirs.exit_ok, "{}", theirs.stderr);
    assert_eq!(digests(&p), theirs.blobs);
    assert!(
        p.kept_unlike_registry.is_empty(),
        "{:#?}",
        p.kept_unlike_registry
    );
    assert!(p.manifests.is_empty());
    assert_eq!(p.bytes, p.blobs.iter().map(|b| b.size).sum::<u64>());

    let s = storage(&fx);
    let journal = fx.dir.path().join("plan.journal");
    let rep = apply(&s, &p, &apply_opts(None, Some(journal)), &|_| {}).unwrap();
    assert!(rep.skipped.is_empty(), "{:#?}", rep.skipped);
    assert_eq!(rep.blobs as usize, p.blobs.len());
    assert_eq!(rep.bytes_freed, p.bytes);
    // The registry's own GC now finds nothing more to delete.
    assert!(
        real::registry_gc_dry_run(&fx.config(), false)
            .blobs
            .is_empty()
    );
    let server = Server::start(&fx.rootdirectory());
    let failed = server.pull_all(&kept_refs(&fx, &p));
    assert!(
        failed.is_empty(),
        "kept images broken after apply: {failed:?}"
    );
}

#[test]
fn delete_untagged_plan_is_the_registry_set_minus_listed_protections_and_keeps_multi_arch_whole() {
    let fx = real::build(false);
    let opts = GcOptions {
        delete_untagged: true,
        grace_seconds: 0,
        dangling_links: true,
        empty_dirs: true,
        uploads_older_than_seconds: Some(0),
        cache: false,
        cache_max_bytes: None,
        orphan_signatures: false,
    };
    let p = plan(&fx, &opts);
    let theirs = real::registry_gc_dry_run(&fx.config(), true);
    assert!(theirs.exit_ok, "{}", theirs.stderr);
    let ours = digests(&p);
    assert!(
        ours.is_subset(&theirs.blobs),
        "the plan deletes something the registry keeps: {:?}",
        ours.difference(&theirs.blobs).collect::<Vec<_>>()
    );
    // Every difference is listed, with a multi-arch or referrer reason.
    let listed: BTreeSet<String> = p
        .kept_unlike_registry
        .iter()
        .map(|k| k.digest.to_string())
        .collect();
    let diff: BTreeSet<String> = theirs.blobs.difference(&ours).cloned().collect();
    assert_eq!(diff, listed);
    assert!(
        p.kept_unlike_registry
            .iter()
            .all(|k| k.reason.contains("kept index") || k.reason.contains("referrer")),
        "{:#?}",
        p.kept_unlike_registry
    );
    assert!(
        !listed.is_empty(),
        "the fixture has index children and a referrer the registry would break"
    );
    // Manifests: the registry deletes every untagged revision; we keep index children and the
    // referrer, each listed.
    let our_manifests: BTreeSet<String> =
        p.manifests.iter().map(|m| m.digest.to_string()).collect();
    assert!(our_manifests.is_subset(&theirs.manifests));
    let kept_m: BTreeSet<String> = p
        .manifests_kept_unlike_registry
        .iter()
        .map(|k| k.digest.to_string())
        .collect();
    assert_eq!(
        theirs
            .manifests
            .difference(&our_manifests)
            .cloned()
            .collect::<BTreeSet<_>>(),
        kept_m
    );
    assert_eq!(p.uploads.len(), 2, "both abandoned uploads");

    let s = storage(&fx);
    let q = fx.dir.path().join("quarantine");
    let rep = apply(&s, &p, &apply_opts(Some(q), None), &|_| {}).unwrap();
    assert!(rep.skipped.is_empty(), "{:#?}", rep.skipped);
    assert_eq!(rep.bytes_freed, p.bytes);
    let server = Server::start(&fx.rootdirectory());
    let failed = server.pull_all(&kept_refs(&fx, &p));
    assert!(
        failed.is_empty(),
        "kept images broken after apply: {failed:?}"
    );
    // What was deleted is gone from the registry's point of view.
    for m in &p.manifests {
        assert_eq!(
            server.manifest_status(&m.repository, &m.digest.to_string()),
            404,
            "{}@{}",
            m.repository,
            m.digest
        );
    }
    // And a re-scan finds no broken reference and nothing left to collect.
    let inv = scan(&s, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    let problems: Vec<_> = stowage_graph::analyze_findings(&g)
        .into_iter()
        .filter(|f| f.severity() >= stowage_model::Severity::Warning)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let again = gc::build(&g, &opts, now());
    assert!(
        again.blobs.is_empty() && again.manifests.is_empty() && again.layer_links.is_empty(),
        "{again:#?}"
    );
}

#[test]
fn a_repository_without_tags_directory_is_handled_not_fatal() {
    let fx = real::build(true);
    let theirs = real::registry_gc_dry_run(&fx.config(), true);
    assert!(
        !theirs.exit_ok,
        "registry 2.8 aborts on a repository without a tags directory"
    );
    let p = plan(
        &fx,
        &GcOptions {
            delete_untagged: true,
            grace_seconds: 0,
            ..GcOptions::default()
        },
    );
    assert!(
        p.manifests.iter().any(|m| m.repository == "digestonly/app"),
        "{:#?}",
        p.manifests
    );
    assert!(p.blocked.is_empty());
}

#[test]
fn a_push_between_plan_and_apply_is_not_broken() {
    let fx = real::build(false);
    let p = plan(
        &fx,
        &GcOptions {
            delete_untagged: true,
            grace_seconds: 0,
            ..GcOptions::default()
        },
    );
    // The plan deletes the untagged web manifest and its layer...
    let untagged = p
        .manifests
        .iter()
        .find(|m| m.repository == "team/app/web")
        .unwrap()
        .digest
        .to_string();
    // ...then someone tags it (a real push of the same image by tag).
    let server = Server::start(&fx.rootdirectory());
    let oci = fx.dir.path().join("oci");
    real::oci_layout(&oci);
    real::push(&oci, "web-untagged", &server.host(), "team/app/web:revived");
    let s = storage(&fx);
    let rep = apply(
        &s,
        &p,
        &apply_opts(None, Some(fx.dir.path().join("j"))),
        &|_| {},
    )
    .unwrap();
    assert!(
        rep.skipped
            .iter()
            .any(|s| s.path.contains(&untagged.replace(':', "/"))),
        "{:#?}",
        rep.skipped
    );
    let failed = server.pull_all(&["team/app/web:revived".to_string()]);
    assert!(failed.is_empty(), "{failed:?}");
    let all = server.pull_all(&fx.tagged_refs());
    assert!(all.is_empty(), "{all:?}");
}
