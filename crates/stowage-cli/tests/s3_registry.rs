//! stowage on S3, end to end, with the real registry: `docker-registry` 2.8 on its `s3`
//! driver against a real S3-compatible server on loopback (moto), filled by skopeo through
//! the registry (`testkit/real-registry/build.sh`), so the object layout is the registry's own.
//!
//! - the inventory read over S3 (through `--registry-config`, the registry's own config)
//!   equals the inventory of a filesystem copy of the same bucket made by another client;
//! - the GC plan equals `docker-registry garbage-collect --dry-run` on the same bucket;
//! - after `stowage apply` on S3 the registry still serves every kept image (skopeo pulls
//!   them all), and the planned blobs are gone from the bucket;
//! - a quarantined apply on S3 is restored to the same inventory.
//!
//! Needs `moto_server` (PyPI moto[server]), `docker-registry` and skopeo, which
//! `scripts/install-test-deps.sh` installs; without moto the test says so loudly and ends,
//! unless `STOWAGE_REQUIRE_REAL` is set (scripts/test.sh sets it), when it fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real::{self, Server};
use stowage_testkit::s3::S3Server;

const NOW: &str = "2030-01-01T00:00:00Z";

fn stowage(location: &[&str], args: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
    c.args(location)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        // Credentials come from the registry config in these tests, never from the caller.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// NDJSON records, sorted, for comparing two readings of the same content. Birth times are
/// left out: object stores have none, and a disk copy's are the time of the copy.
fn records(text: &str) -> Vec<Value> {
    let mut v: Vec<Value> = text
        .lines()
        .map(|l| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            r.as_object_mut().unwrap().remove("created");
            r
        })
        .collect();
    v.sort_by_key(|r| r.to_string());
    v
}

/// Assert two NDJSON outputs hold the same records; on failure show only the differences.
fn same_records(a: &str, b: &str, a_name: &str, b_name: &str) {
    let (a, b) = (records(a), records(b));
    let only_a: Vec<&Value> = a.iter().filter(|r| !b.contains(r)).collect();
    let only_b: Vec<&Value> = b.iter().filter(|r| !a.contains(r)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "only {a_name}: {only_a:#?}\nonly {b_name}: {only_b:#?}"
    );
}

fn plan_blobs(plan: &Value) -> BTreeSet<String> {
    plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Every `repo:tag` and every digest that must still pull, from the plan's own kept list.
fn kept_refs(fx: &real::RealFixture, plan: &Value) -> Vec<String> {
    fx.tagged_refs()
        .into_iter()
        .chain(
            plan["manifests_kept_unlike_registry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    format!(
                        "{}@{}",
                        k["repository"].as_str().unwrap(),
                        k["digest"].as_str().unwrap()
                    )
                }),
        )
        .collect()
}

/// moto on loopback with bucket `registry`, the registry's storage section for it (prefix
/// `/reg`), and a real-registry fixture pushed through the registry on its `s3` driver.
fn registry_on_s3(work: &Path, test: &str) -> Option<(S3Server, PathBuf, real::RealFixture)> {
    let server = S3Server::start(work, test)?;
    server.bucket("registry");
    let section = work.join("storage.yml");
    std::fs::write(&section, server.registry_storage_yaml("registry", "/reg")).unwrap();
    let fx = real::build_on(&section);
    Some((server, section, fx))
}

#[test]
fn registry_on_s3_inventory_gc_apply_and_quarantine() {
    let work = tempfile::tempdir().unwrap();
    let Some((server, section, fx)) = registry_on_s3(work.path(), "registry_on_s3") else {
        return;
    };
    let config = fx.config();
    let cfg = ["--registry-config", config.to_str().unwrap()];
    let cfg = &cfg[..];

    inventory_over_s3_equals_a_disk_copy(cfg, &server, work.path());
    let (plan_path, plan, registry) =
        gc_plan_equals_the_registry_dry_run(cfg, &config, work.path());
    apply_on_s3_keeps_every_kept_image(cfg, &section, &fx, &config, &plan_path, &plan, &registry);
    quarantine_on_s3_then_restore(cfg, &section, &fx, work.path());
}

/// 1. The inventory over S3 equals the inventory of a filesystem copy of the bucket.
fn inventory_over_s3_equals_a_disk_copy(cfg: &[&str], server: &S3Server, work: &Path) {
    let inv_args = [
        "--now",
        NOW,
        "inventory",
        "--links",
        "--uploads",
        "--format",
        "ndjson",
    ];
    let over_s3 = stowage(cfg, &inv_args, &[]);
    let over_s3 = ok(&over_s3);
    let mirror = work.join("mirror");
    server.mirror("registry", "reg", &mirror);
    let mirror_s = mirror.to_str().unwrap();
    let on_disk = ok(&stowage(&["--storage", mirror_s], &inv_args, &[]));
    assert!(over_s3.lines().count() > 40, "{over_s3}");
    same_records(&over_s3, &on_disk, "read over S3", "read from a disk copy");
    // The same for integrity findings (the S3 layout has no empty directories to report).
    let check = ["--now", NOW, "check", "--format", "json"];
    let findings = |o: Output| -> Value {
        let v: Value = serde_json::from_str(&ok(&o)).unwrap();
        serde_json::json!([v["counts"], v["findings"]])
    };
    assert_eq!(
        findings(stowage(cfg, &check, &[])),
        findings(stowage(&["--storage", mirror_s], &check, &[]))
    );

    // --verbose says what it decided for an object store, and counts requests.
    let o = stowage(cfg, &["--verbose", "du"], &[]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("storage: s3://registry/reg/docker/registry/v2 (a registry rootdirectory)"),
        "{err}"
    );
    assert!(
        err.contains("concurrency: 64 (s3 is an object store"),
        "{err}"
    );
    assert!(err.contains("s3 requests:"), "{err}");
}

/// 2. The GC plan is exactly the registry's own dry run on the same bucket.
fn gc_plan_equals_the_registry_dry_run(
    cfg: &[&str],
    config: &Path,
    work: &Path,
) -> (PathBuf, Value, real::GcDryRun) {
    let plan_path = work.join("plan.json");
    let o = stowage(
        cfg,
        &[
            "gc",
            "--grace",
            "0s",
            "--format",
            "json",
            "--out",
            plan_path.to_str().unwrap(),
        ],
        &[],
    );
    ok(&o);
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let registry = real::registry_gc_dry_run(config, false);
    assert!(registry.exit_ok, "{}", registry.stderr);
    assert!(
        !registry.blobs.is_empty(),
        "the fixture has unreferenced blobs"
    );
    assert_eq!(plan_blobs(&plan), registry.blobs);

    (plan_path, plan, registry)
}

/// 3. Apply on S3; every kept image still pulls; the planned blobs are gone.
fn apply_on_s3_keeps_every_kept_image(
    cfg: &[&str],
    section: &Path,
    fx: &real::RealFixture,
    config: &Path,
    plan_path: &Path,
    plan: &Value,
    registry: &real::GcDryRun,
) {
    let o = stowage(
        cfg,
        &[
            "apply",
            plan_path.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
        ],
        &[],
    );
    let out = ok(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let server_after = Server::start_on(section);
    let failed = server_after.pull_all(&kept_refs(fx, plan));
    assert!(
        failed.is_empty(),
        "kept images broke after apply on S3: {failed:?}"
    );
    drop(server_after);
    let after = real::registry_gc_dry_run(config, false);
    assert!(after.blobs.is_empty(), "left: {:?}", after.blobs);
    let inv = ok(&stowage(
        cfg,
        &["--now", NOW, "inventory", "--format", "ndjson"],
        &[],
    ));
    for r in records(&inv) {
        assert!(
            !registry.blobs.contains(r["digest"].as_str().unwrap()),
            "{r}"
        );
    }
}

/// 4. Quarantine on S3 (copy to a prefix beside the layout, then delete), then restore.
fn quarantine_on_s3_then_restore(
    cfg: &[&str],
    section: &Path,
    fx: &real::RealFixture,
    work: &Path,
) {
    let before = records(&ok(&stowage(
        cfg,
        &["--now", NOW, "inventory", "--format", "ndjson"],
        &[],
    )));
    let plan2 = work.join("plan2.json");
    ok(&stowage(
        cfg,
        &[
            "gc",
            "--delete-untagged",
            "--grace",
            "0s",
            "--out",
            plan2.to_str().unwrap(),
        ],
        &[],
    ));
    let p2: Value = serde_json::from_str(&std::fs::read_to_string(&plan2).unwrap()).unwrap();
    assert!(!plan_blobs(&p2).is_empty(), "untagged manifests free blobs");
    let q = work.join("quarantine");
    let o = stowage(
        cfg,
        &[
            "apply",
            plan2.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
            "--quarantine",
            q.to_str().unwrap(),
        ],
        &[],
    );
    ok(&o);
    let batch = std::fs::read_dir(&q)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(batch.join("batch.json")).unwrap()).unwrap();
    assert!(
        record["data"]
            .as_str()
            .unwrap()
            .starts_with("s3://registry/reg/stowage-quarantine/batch-"),
        "{record}"
    );
    let during = records(&ok(&stowage(
        cfg,
        &["--now", NOW, "inventory", "--format", "ndjson"],
        &[],
    )));
    assert!(during.len() < before.len());
    let server_q = Server::start_on(section);
    let failed = server_q.pull_all(&fx.tagged_refs());
    assert!(
        failed.is_empty(),
        "tagged images broke in quarantine: {failed:?}"
    );
    drop(server_q);
    let o = stowage(cfg, &["restore", q.to_str().unwrap()], &[]);
    ok(&o);
    // Restored objects are copies, with new dates: compare everything but dates.
    let undated = |v: Vec<Value>| -> Vec<Value> {
        let mut v: Vec<Value> = v
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("modified");
                r
            })
            .collect();
        v.sort_by_key(|r| r.to_string());
        v
    };
    let restored = records(&ok(&stowage(
        cfg,
        &["--now", NOW, "inventory", "--format", "ndjson"],
        &[],
    )));
    assert_eq!(undated(restored), undated(before));
    // Nothing is left in the quarantine prefix, and purging needs the storage.
    assert!(
        !Path::new(&batch).exists(),
        "restore removes a batch it emptied"
    );
}

/// Surgery on S3 (issue 21): `repo-move --copy` applied online writes the destination's
/// links as conditional PUTs (never over an existing key) and the registry on its `s3`
/// driver serves every copied tag; a `repo-move` that removes its source is refused online
/// there (a fenced copy on S3 takes a new date, so it cannot be compared with the plan) and
/// applied `--offline`, after which the destination serves every tag and the source is gone.
#[test]
fn surgery_on_s3_copy_online_and_move_offline_keep_every_image_pulling() {
    let work = tempfile::tempdir().unwrap();
    let Some((_server, section, fx)) = registry_on_s3(work.path(), "surgery_on_s3") else {
        return;
    };
    let config = fx.config();
    let cfg = ["--registry-config", config.to_str().unwrap()];
    let refs = fx.tagged_refs();
    let src = refs[0].rsplit_once(':').unwrap().0.to_string();
    let tags_of = |repo: &str, to: &str| -> Vec<String> {
        refs.iter()
            .filter(|r| r.rsplit_once(':').unwrap().0 == repo)
            .map(|r| format!("{to}:{}", r.rsplit_once(':').unwrap().1))
            .collect()
    };
    let plan_and_apply = |args: &[&str], name: &str, apply: &[&str]| -> Output {
        let plan = work.path().join(name);
        let mut a = vec!["plan"];
        a.extend_from_slice(args);
        a.extend(["--grace", "0s", "-o", plan.to_str().unwrap()]);
        ok(&stowage(&cfg, &a, &[]));
        let mut a = vec!["apply", plan.to_str().unwrap(), "--yes"];
        a.extend_from_slice(apply);
        stowage(&cfg, &a, &[])
    };
    let online = ["--registry-cache", "none", "--settle", "0s"];
    let o = plan_and_apply(
        &["repo-move", &src, "copied/app", "--copy"],
        "copy.json",
        &online,
    );
    assert_eq!(o.status.code(), Some(0), "{}", ok(&o));
    let o = plan_and_apply(
        &["repo-move", "copied/app", "moved/app"],
        "move.json",
        &online,
    );
    assert_eq!(o.status.code(), Some(2), "refused online: {}", ok(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--offline"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = stowage(
        &cfg,
        &[
            "apply",
            work.path().join("move.json").to_str().unwrap(),
            "--yes",
            "--offline",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", ok(&o));
    let registry = Server::start_on(&section);
    assert_eq!(registry.pull_all(&refs), Vec::<String>::new());
    assert_eq!(
        registry.pull_all(&tags_of(&src, "moved/app")),
        Vec::<String>::new()
    );
    let first_tag = refs[0].rsplit_once(':').unwrap().1;
    assert_eq!(registry.manifest_status("copied/app", first_tag), 404);
}
