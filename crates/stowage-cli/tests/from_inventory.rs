//! `--from-inventory`: the listing from a provider's inventory report, end to end. The real
//! registry (`docker-registry` 2.8 on its `s3` driver) fills a moto bucket through skopeo;
//! `testkit/s3/inventory.py` lists it with boto3 and writes the S3 Inventory, GCS and Azure
//! reports in their documented shapes (the S3 one also into a destination bucket). Then:
//!
//! - inventory and gc (plain and `-m`) from each report equal those from a live listing,
//!   record by record and digest by digest, the scan with zero LIST requests;
//! - a stale report (a blob deleted since, one added since) is handled as documented: the
//!   deleted one is still listed (apply's live re-check finds it gone), the added one unseen;
//! - apply refuses a plan made from a report older than the plan's grace window, and
//!   refuses `--from-inventory` itself.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real;
use stowage_testkit::s3::S3Server;

const NOW: &str = "2030-01-01T00:00:00Z";

fn stowage(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(args)
        .env("TZ", "UTC")
        .env("XDG_CACHE_HOME", cache)
        .env_remove("STOWAGE_STORAGE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
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

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn plan_blobs(text: &str) -> BTreeSet<String> {
    let plan: Value = serde_json::from_str(text).unwrap();
    plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// The three providers' inventory reports of the `registry` bucket (testkit/s3/inventory.py):
/// the S3 manifest's local path and its key in the `inventory` bucket, the GCS and Azure
/// manifests' paths; then the same with Parquet data files (S3 as a bucket URL), when PyPI
/// duckdb is there to write them.
fn provider_reports(server: &S3Server, reports: &Path) -> ([String; 4], Vec<String>) {
    let o = Command::new("python3")
        .arg(stowage_testkit::workspace_root().join("testkit/s3/inventory.py"))
        .args(["registry", reports.to_str().unwrap(), "inventory"])
        .envs(server.env())
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let mut lines = stdout.lines().map(str::to_owned);
    let s3_manifest = lines.next().unwrap();
    let s3_key = |m: &str| {
        m.strip_prefix(&format!("{}/s3/", reports.display()))
            .unwrap()
            .to_owned()
    };
    let find = |dir: &str, suffix: &str| -> String {
        let mut stack = vec![reports.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_str().unwrap().ends_with(suffix) {
                    return p.to_str().unwrap().to_owned();
                }
            }
        }
        panic!("no {suffix} under {dir}")
    };
    let gcs_manifest = find("gcs", ".manifest");
    let azure_manifest = find("azure", "-manifest.json");
    let parquet = match lines.next() {
        Some(m) => vec![
            m.clone(),
            format!("s3://inventory/{}", s3_key(&m)),
            find("gcs-parquet", ".manifest"),
            find("azure-parquet", "-manifest.json"),
        ],
        None => {
            assert!(
                std::env::var_os("STOWAGE_REQUIRE_REAL").is_none(),
                "no Parquet reports: PyPI duckdb is missing (scripts/install-test-deps.sh)"
            );
            eprintln!("\n*** Parquet reports SKIPPED: PyPI duckdb is not installed ***\n");
            Vec::new()
        }
    };
    let key = s3_key(&s3_manifest);
    ([s3_manifest, key, gcs_manifest, azure_manifest], parquet)
}

#[test]
fn inventory_and_gc_from_provider_reports_equal_a_live_listing() {
    let work = tempfile::tempdir().unwrap();
    let Some(server) = S3Server::start(work.path(), "from_inventory") else {
        return;
    };
    server.bucket("registry");
    server.bucket("inventory");
    let section = work.path().join("storage.yml");
    std::fs::write(&section, server.registry_storage_yaml("registry", "/reg")).unwrap();
    let fx = real::build_on(&section);
    let config = fx.config();
    let cfg = config.to_str().unwrap();
    let cache = work.path().join("cache");

    let ([s3_manifest, s3_key, gcs_manifest, azure_manifest], parquet) =
        provider_reports(&server, &work.path().join("reports"));
    let s3_url = format!("s3://inventory/{s3_key}");

    let base = ["--registry-config", cfg, "--now", NOW];
    let run = |extra: &[&str], args: &[&str]| -> Output {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        v.extend_from_slice(args);
        stowage(&v, &cache)
    };
    let inv = ["inventory", "--links", "--uploads", "--format", "ndjson"];
    let live = sorted_lines(&ok(&run(&["--no-cache"], &inv)));
    assert!(live.len() > 40, "{live:?}");
    let gc = |extra: &[&str], m: bool| -> BTreeSet<String> {
        let mut args = vec!["gc", "--grace", "0s", "--format", "json"];
        if m {
            args.push("-m");
        }
        plan_blobs(&ok(&run(extra, &args)))
    };
    let live_gc = (gc(&["--no-cache"], false), gc(&["--no-cache"], true));
    assert!(!live_gc.0.is_empty(), "the fixture has unreferenced blobs");

    for report in [&s3_manifest, &s3_url, &gcs_manifest, &azure_manifest]
        .into_iter()
        .chain(&parquet)
    {
        let from = ["--from-inventory", report.as_str()];
        let o = run(&[&from[..], &["--verbose"]].concat(), &inv);
        assert_eq!(sorted_lines(&ok(&o)), live, "inventory from {report}");
        let err = String::from_utf8_lossy(&o.stderr);
        // One listing finds the layout root when the storage is opened; the scan lists
        // nothing and stats nothing (reads: tag links and manifests).
        assert!(
            err.contains("s3 requests: 1 LIST pages, 0 HEAD"),
            "{report}: {err}"
        );
        assert!(err.contains("listing: "), "{err}");
        assert_eq!(
            (gc(&from, false), gc(&from, true)),
            live_gc,
            "gc from {report}"
        );
    }

    // Stale: an unreferenced blob deleted since the report, and a blob added since.
    let gone = live_gc.0.iter().next().unwrap().clone();
    let hex = gone.strip_prefix("sha256:").unwrap();
    let key = format!(
        "reg/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    );
    let added = "reg/docker/registry/v2/blobs/sha256/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee/data";
    let py = format!(
        "import boto3,os; s=boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL']); \
         s.delete_object(Bucket='registry', Key='{key}'); s.put_object(Bucket='registry', Key='{added}', Body=b'x')"
    );
    let o = Command::new("python3")
        .args(["-c", &py])
        .envs(server.env())
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let from = ["--from-inventory", s3_manifest.as_str()];
    let stale = gc(&from, false);
    assert_eq!(
        stale, live_gc.0,
        "the report still lists the deleted blob, not the new one"
    );
    let now_live = gc(&["--no-cache"], false);
    assert!(!now_live.contains(&gone) && now_live.len() == live_gc.0.len());

    // A plan from a report older than its grace window is refused by apply; and apply
    // never takes --from-inventory.
    let plan = work.path().join("plan.json");
    let mut args: Vec<&str> = base.to_vec();
    args.extend_from_slice(&from);
    args.extend_from_slice(&["gc", "--grace", "1h", "--out", plan.to_str().unwrap()]);
    ok(&stowage(&args, &cache));
    let p: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert!(
        p["listing"]["report"]
            .as_str()
            .unwrap()
            .starts_with("S3 Inventory"),
        "{p}"
    );
    let o = stowage(
        &[
            "--registry-config",
            cfg,
            "--now",
            NOW,
            "apply",
            plan.to_str().unwrap(),
            "--yes",
        ],
        &cache,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("older than its grace window"), "{err}");
    let o = stowage(
        &[
            "--registry-config",
            cfg,
            "--from-inventory",
            &s3_manifest,
            "apply",
            plan.to_str().unwrap(),
            "--yes",
        ],
        &cache,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("re-check the live storage"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
