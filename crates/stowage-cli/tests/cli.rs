//! The `stowage` binary end to end on the committed real-registry sample and on broken trees:
//! exit codes, stdout/stderr separation, JSON schema fields, snapshots of human output.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::{TreeBuilder, broken, sample};

fn stowage(storage: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn inventory_json_has_the_documented_fields() {
    let s = sample();
    let o = stowage(&s.rootdirectory(), &["inventory", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["schema"], "stowage.inventory/v1");
    let blobs = v["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 42);
    for b in blobs {
        for k in [
            "digest",
            "size",
            "modified",
            "kind",
            "referenced",
            "repositories",
            "tags",
        ] {
            assert!(b.get(k).is_some(), "missing {k} in {b}");
        }
        assert!(b["modified"].as_str().unwrap().ends_with('Z'));
    }
    let base = blobs
        .iter()
        .find(|b| b["digest"].as_str().unwrap().starts_with("sha256:376a3eef"))
        .unwrap();
    assert_eq!(base["kind"], "layer");
    assert_eq!(base["referenced"], true);
    assert_eq!(base["size"], 262_607);
    let repos: Vec<&str> = base["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        repos,
        [
            "library/base",
            "multiarch/tool",
            "team/app/api",
            "team/app/web",
            "team/app/worker"
        ]
    );
    assert!(
        base["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "multiarch/tool:1.0")
    );
    assert_eq!(v["summary"]["unreferenced_blobs"], 6);
}

#[test]
fn inventory_filters_and_ndjson_and_csv() {
    let s = sample();
    let o = stowage(
        &s.layout_root(),
        &["inventory", "--unreferenced", "--format", "ndjson"],
    );
    let lines: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert!(
        lines
            .iter()
            .all(|l| l["referenced"] == false && l["record"] == "blob")
    );

    let o = stowage(
        &s.layout_root(),
        &["inventory", "--kind", "index", "--format", "ndjson"],
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap().lines().count(), 2);

    let o = stowage(
        &s.layout_root(),
        &[
            "inventory",
            "--repo",
            "team/**",
            "--min-size",
            "60KiB",
            "--format",
            "csv",
        ],
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "digest,size,modified,created,kind,referenced,repositories,tags,path"
    );
    // Only the shared base layer is that big among team/* blobs.
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[1].starts_with("sha256:376a3eef"));

    let o = stowage(
        &s.layout_root(),
        &["inventory", "--links", "--uploads", "--format", "json"],
    );
    let v = json(&o);
    assert_eq!(v["uploads"].as_array().unwrap().len(), 2);
    assert!(v["links"].as_array().unwrap().len() >= 60);
}

#[test]
fn du_table_snapshot() {
    let s = sample();
    let o = stowage(&s.rootdirectory(), &["du"]);
    assert_eq!(o.status.code(), Some(0));
    insta::assert_snapshot!(String::from_utf8(o.stdout).unwrap());
}

#[test]
fn du_json_depth() {
    let s = sample();
    let v = json(&stowage(
        &s.rootdirectory(),
        &["du", "--depth", "1", "--format", "json"],
    ));
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/", "multiarch", "team", "library", "uploads"]);
}

#[test]
fn tags_shows_platforms_and_history() {
    let s = sample();
    let v = json(&stowage(
        &s.rootdirectory(),
        &["tags", "multiarch/tool", "--format", "json"],
    ));
    let tags = v["tags"].as_array().unwrap();
    assert_eq!(tags[0]["tag"], "1.0");
    assert_eq!(
        tags[0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
    assert_eq!(
        tags[0]["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let v = json(&stowage(
        &s.rootdirectory(),
        &["tags", "team/app/api", "--format", "json"],
    ));
    let latest = v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "latest")
        .unwrap();
    assert_eq!(
        latest["history"].as_array().unwrap().len(),
        2,
        "the moved tag keeps both digests"
    );

    let o = stowage(&s.rootdirectory(), &["tags", "team/app"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("did you mean"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn explain_digest_path_and_reference() {
    let s = sample();
    let o = stowage(
        &s.rootdirectory(),
        &[
            "explain",
            "sha256:376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec",
        ],
    );
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("a layer blob of 256 KiB"), "{text}");
    assert!(text.contains("_layers link in team/app/worker"), "{text}");

    let path = s.layout_root().join(
        "repositories/team/app/worker/_manifests/tags/stable/index/sha256/6c0ff0c03a564d0f7aa3163371a5b0eab224c05203ad2c6df76423c979e1f681/link",
    );
    let v = json(&stowage(
        &s.rootdirectory(),
        &["explain", path.to_str().unwrap(), "--format", "json"],
    ));
    let what = v["what"].as_str().unwrap();
    assert!(
        what.starts_with("a history entry of tag team/app/worker:stable"),
        "{what}"
    );
    assert!(what.contains("an unreferenced blob"), "{what}");

    let v = json(&stowage(
        &s.rootdirectory(),
        &["explain", "multiarch/tool:1.0", "--format", "json"],
    ));
    assert!(
        v["points_to"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("linux/arm64/v8"))
    );

    let o = stowage(
        &s.rootdirectory(),
        &[
            "explain",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn check_exit_codes() {
    let s = sample();
    let o = stowage(&s.rootdirectory(), &["check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "only info-level leftovers in the sample"
    );
    let o = stowage(
        &s.rootdirectory(),
        &["check", "--fail-on", "info", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["counts"]["empty_directory"], 2);

    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let h = broken::healthy(&t);
    t.remove(&stowage_layout::blob_dir(&h.app_layer.digest));
    t.write(
        &stowage_layout::revision_link("lib/base", &h.base.digest()),
        b"",
    );
    let o = stowage(
        dir.path(),
        &["check", "--verify-digests", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["counts"]["reference_missing"], 1);
    assert_eq!(v["counts"]["link_empty"], 1);
    // Other read commands still print their data, exit 1 on errors, and say why on stderr.
    let o = stowage(dir.path(), &["inventory", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stowage check"));
    assert!(json(&o)["blobs"].as_array().unwrap().len() > 3);
}

#[test]
fn storage_resolution_errors_are_clear() {
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["du"])
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--storage"));

    let empty = tempfile::tempdir().unwrap();
    let o = stowage(empty.path(), &["du"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("rootdirectory"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let cfg = empty.path().join("config.yml");
    // An s3 section is read (bucket, endpoint, keys); plain HTTP to a host that is not
    // loopback is refused unless the config says `secure: false`, before any request.
    std::fs::write(
        &cfg,
        "version: 0.1\nstorage:\n  s3:\n    bucket: registry\n    region: eu-west-1\n    regionendpoint: http://minio.invalid:9000\n    accesskey: a\n    secretkey: b\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["du", "--registry-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("opening storage s3://registry/") && err.contains("HTTP"),
        "{err}"
    );
}

#[test]
fn registry_config_and_env_resolve_the_storage() {
    let s = sample();
    let cfg = s.dir.path().join("config.yml");
    let text = std::fs::read_to_string(
        stowage_testkit::workspace_root().join("fixtures/sample-config.yml"),
    )
    .unwrap();
    std::fs::write(
        &cfg,
        text.replace("ROOTDIR", s.rootdirectory().to_str().unwrap()),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["du", "--format", "json", "--registry-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json(&o)["summary"]["blobs"], 42);
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(["du", "--format", "json"])
        .env("STOWAGE_STORAGE", s.rootdirectory())
        .output()
        .unwrap();
    assert_eq!(json(&o)["summary"]["repositories"], 6);
}

#[test]
fn closed_stdout_is_not_an_error() {
    let s = sample();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(s.rootdirectory())
        .args(["inventory", "--links", "--format", "ndjson"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Issue 19, "Smaller": `inventory --uploads --format csv` dropped the uploads silently (and
/// `--links` the links); they are rows of the one table now, marked in a `record` column.
#[test]
fn inventory_csv_keeps_uploads_and_links() {
    let s = sample();
    let now = ["--now", "2026-12-01T00:00:00Z"];
    let j = json(&stowage(
        &s.rootdirectory(),
        &[
            &now[..],
            &["inventory", "--uploads", "--links", "--format", "json"],
        ]
        .concat(),
    ));
    let o = stowage(
        &s.rootdirectory(),
        &[
            &now[..],
            &["inventory", "--uploads", "--links", "--format", "csv"],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(&r.headers().unwrap()[0], "record");
    let mut counts = std::collections::BTreeMap::new();
    for row in r.records() {
        *counts.entry(row.unwrap()[0].to_string()).or_insert(0usize) += 1;
    }
    let n = |k: &str| j[k].as_array().map_or(0, Vec::len);
    assert!(n("uploads") > 0 && n("links") > 0);
    assert_eq!(counts["upload"], n("uploads"));
    assert_eq!(counts["link"], n("links"));
    assert_eq!(counts["blob"], n("blobs"));
}

/// A stderr nobody reads any more (a pipe whose reader went away) is not a reason to fail:
/// the notes `--verbose` prints go nowhere and the command does its job (before,
/// `eprintln!` panicked on the write error: exit 101; a dashboard's scan panicked at each
/// note).
#[test]
fn a_stderr_whose_reader_is_gone_does_not_stop_a_command() {
    let s = sample();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--verbose")
        .arg("--storage")
        .arg(s.rootdirectory())
        .args(["du", "--format", "json"])
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(json(&o)["schema"], "stowage.du/v1");
}
