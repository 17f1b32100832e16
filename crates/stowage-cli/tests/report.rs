//! `stowage report`, `stowage metrics`, `stowage snapshot` and `stowage history` end to end:
//! on the committed sample, and on a fresh real-registry fixture with a real push between two
//! snapshots.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::{real, sample};

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

fn ok(o: &Output) -> &Output {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&ok(o).stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// The data element of a report page, parsed.
fn embedded(html: &str) -> Value {
    let start = html.find("id=\"stowage-data\">").unwrap() + "id=\"stowage-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

#[test]
fn report_is_one_file_with_the_data_and_a_csv_beside_it() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    ok(&Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(s.rootdirectory())
        .args([
            "--now",
            "2026-12-01T00:00:00Z",
            "gc",
            "--delete-untagged",
            "--tidy",
            "--out",
        ])
        .arg(&plan)
        .output()
        .unwrap());
    let html_path = dir.path().join("r.html");
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(s.rootdirectory())
        .args([
            "--now",
            "2026-12-01T00:00:00Z",
            "report",
            "--top",
            "10",
            "--plan",
        ])
        .arg(&plan)
        .arg("--html")
        .arg(&html_path)
        .output()
        .unwrap();
    ok(&o);
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Self-contained: nothing is fetched from anywhere.
    for needle in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
        "<script src",
        "<link rel=\"stylesheet\"",
    ] {
        assert!(!html.contains(needle), "{needle} in the page");
    }
    assert!(html.contains("default-src 'none'") && html.contains("connect-src 'none'"));
    let d = embedded(&html);
    assert_eq!(d["schema"], "stowage.report/v1");
    assert_eq!(d["blobs"]["rows"].as_array().unwrap().len(), 10);
    assert_eq!(d["blobs"]["total"], 42);
    assert_eq!(d["blobs"]["csv"], "r-blobs.csv");
    let sizes: Vec<u64> = d["blobs"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["size"].as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
    // Reclaimable figures and commands agree with `inventory`'s summary and `gc --help`.
    let inv = json(&stowage(
        &s.rootdirectory(),
        &[
            "--now",
            "2026-12-01T00:00:00Z",
            "inventory",
            "--format",
            "json",
        ],
    ));
    let rec: BTreeMap<String, &Value> = d["reclaimable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_string(), r))
        .collect();
    // A week after the pushes the grace period holds nothing back: the cards are the
    // summary's figures (reclaimable_cards_equal_what_their_commands_plan runs the commands).
    assert_eq!(
        rec["unreferenced"]["bytes"],
        inv["summary"]["unreferenced_bytes"]
    );
    assert_eq!(
        rec["stale_uploads"]["bytes"],
        inv["summary"]["stale_upload_bytes"]
    );
    assert!(
        rec["untagged"]["command"]
            .as_str()
            .unwrap()
            .ends_with(" gc --delete-untagged --grace 1h --out plan.json")
    );
    assert!(
        rec["stale_uploads"]["command"]
            .as_str()
            .unwrap()
            .ends_with(" gc --uploads-older-than 7d --grace 1h --out plan.json")
    );
    // The plan's rows add up to the bytes it frees.
    let p: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let rows = d["plan"]["rows"].as_array().unwrap();
    let sum: u64 = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    assert_eq!(sum, p["bytes"].as_u64().unwrap());
    assert!(
        rows.iter()
            .any(|r| r["repository"] == "(no repository)" && r["reason"] == "unreferenced")
    );
    // The CSV beside it has every blob.
    let csv = std::fs::read_to_string(dir.path().join("r-blobs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 43);
    // Deterministic: same storage and --now, byte-identical page.
    let again = dir.path().join("again.html");
    ok(&Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(s.rootdirectory())
        .args([
            "--now",
            "2026-12-01T00:00:00Z",
            "report",
            "--top",
            "10",
            "--plan",
        ])
        .arg(&plan)
        .arg("--csv")
        .arg(dir.path().join("r-blobs.csv"))
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap());
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
}

#[test]
fn a_bad_plan_is_refused_before_scanning() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema\": \"stowage.plan/v9\"}").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(s.rootdirectory())
        .args(["report", "--html"])
        .arg(dir.path().join("r.html"))
        .arg("--plan")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stowage.plan/v9"));
    assert!(!dir.path().join("r.html").exists());
}

/// `name{labels} value` lines of the text format.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_pass_promtool_and_parse_back_to_the_inventory_figures() {
    assert!(
        Command::new("sh")
            .args(["-c", "command -v promtool"])
            .output()
            .unwrap()
            .status
            .success(),
        "promtool missing: run scripts/install-test-deps.sh (scripts/test.sh does)"
    );
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stowage.prom");
    ok(&Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(s.rootdirectory())
        .args(["--now", "2026-12-01T00:00:00Z", "metrics", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    let text = std::fs::read_to_string(&out).unwrap();
    // No temporary file left beside it (written atomically).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&out).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let m = samples(&text);
    let inv = json(&stowage(
        &s.rootdirectory(),
        &[
            "--now",
            "2026-12-01T00:00:00Z",
            "inventory",
            "--format",
            "json",
        ],
    ));
    let sm = &inv["summary"];
    let f = |k: &str| sm[k].as_f64().unwrap();
    assert_eq!(
        m["stowage_blobs{referenced=\"true\"}"],
        f("referenced_blobs")
    );
    assert_eq!(
        m["stowage_blobs{referenced=\"false\"}"],
        f("unreferenced_blobs")
    );
    assert_eq!(
        m["stowage_blob_bytes{referenced=\"false\"}"],
        f("unreferenced_bytes")
    );
    assert_eq!(m["stowage_repositories"], f("repositories"));
    assert_eq!(m["stowage_tags"], f("tags"));
    assert_eq!(m["stowage_manifests"], f("manifests"));
    assert_eq!(
        m["stowage_reclaimable_bytes{reason=\"untagged\"}"],
        f("untagged_exclusive_bytes")
    );
    assert_eq!(
        m["stowage_reclaimable_bytes{reason=\"stale_uploads\"}"],
        f("stale_upload_bytes")
    );
    assert_eq!(m["stowage_last_success_timestamp_seconds"], 1_796_083_200.0);
    // Per repository: the repository's own figures, as `du` computes them.
    let du = json(&stowage(
        &s.rootdirectory(),
        &["--now", "2026-12-01T00:00:00Z", "du", "--format", "json"],
    ));
    for n in du["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["repository"] == true)
    {
        let name = n["name"].as_str().unwrap();
        assert_eq!(
            m[&format!("stowage_repository_bytes{{repository=\"{name}\"}}")],
            n["own_total"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(
            m[&format!("stowage_repository_exclusive_bytes{{repository=\"{name}\"}}")],
            n["own_exclusive"].as_f64().unwrap(),
            "{name}"
        );
    }
    // Every finding kind has a series; the sample's two findings are counted.
    let findings: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("stowage_findings{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        findings,
        f("findings_error") + f("findings_warning") + f("findings_info")
    );
}

/// Sizes of an image in an OCI layout: manifest, config and layers (digest -> size).
fn image_blobs(layout: &Path, name: &str) -> BTreeMap<String, u64> {
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let digest = desc["digest"].as_str().unwrap();
    let m: Value = serde_json::from_str(&std::fs::read_to_string(blob(digest)).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    out.insert(digest.to_string(), desc["size"].as_u64().unwrap());
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        out.insert(
            d["digest"].as_str().unwrap().to_string(),
            d["size"].as_u64().unwrap(),
        );
    }
    out
}

#[test]
fn history_shows_exactly_the_growth_of_a_real_push() {
    let fx = real::build(false);
    let storage = fx.rootdirectory();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let db_s = db.to_str().unwrap();
    ok(&stowage(
        &storage,
        &["--now", "2026-12-01T00:00:00Z", "snapshot", "--db", db_s],
    ));
    let before: std::collections::BTreeSet<String> =
        json(&stowage(&storage, &["inventory", "--format", "json"]))["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["digest"].as_str().unwrap().to_string())
            .collect();

    // Push with the real registry: a new image into a new repository, and the web image into
    // team/app/worker (which already holds the shared base layer).
    let layout = dir.path().join("oci");
    real::oci_layout(&layout);
    {
        let server = real::Server::start(&storage);
        real::push(&layout, "worker-1", &server.host(), "pushed/new:1");
        real::push(&layout, "web", &server.host(), "team/app/worker:web");
    }
    // A second snapshot through `report --history`, which also charts the database.
    let html = dir.path().join("r.html");
    ok(&Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(&storage)
        .args([
            "--now",
            "2026-12-02T00:00:00Z",
            "report",
            "--history",
            db_s,
            "--html",
        ])
        .arg(&html)
        .output()
        .unwrap());

    let g = json(&stowage(
        &storage,
        &["--format", "json", "history", "--db", db_s],
    ));
    assert_eq!(g["schema"], "stowage.history/v1");
    let repos: BTreeMap<&str, &Value> = g["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["repository"].as_str().unwrap(), r))
        .collect();
    // The two pushed repositories grew; team/app/web did not grow but lost exclusive bytes
    // (worker now shares web's blobs); nothing else changed.
    assert_eq!(
        repos.keys().copied().collect::<Vec<_>>(),
        ["pushed/new", "team/app/web", "team/app/worker"],
        "{g}"
    );
    let new_image: u64 = image_blobs(&layout, "worker-1").values().sum();
    let new = repos["pushed/new"];
    assert_eq!(new["from_total"], Value::Null);
    assert_eq!(new["to_total"], new_image);
    assert_eq!(new["total_change"], new_image);
    assert_eq!(new["tags_pushed"], serde_json::json!(["1"]));
    // web into worker: everything of the web image but the base layer worker already had.
    let base = image_blobs(&layout, "base");
    let web_new: u64 = image_blobs(&layout, "web")
        .iter()
        .filter(|(d, _)| !base.contains_key(*d))
        .map(|(_, s)| s)
        .sum();
    let w = repos["team/app/worker"];
    assert_eq!(w["total_change"], web_new);
    assert_eq!(w["tags_change"], 1);
    assert_eq!(w["tags_pushed"], serde_json::json!(["web"]));
    let web = repos["team/app/web"];
    assert_eq!(web["total_change"], 0);
    assert_eq!(web["exclusive_change"], -(web_new as i64));
    assert_eq!(web["tags_pushed"], serde_json::json!([]));
    // The blob store grew by the pushed blobs it did not hold yet (the registry stores each
    // digest once), all first seen in the second snapshot.
    let mut fresh = image_blobs(&layout, "worker-1");
    fresh.extend(image_blobs(&layout, "web"));
    fresh.retain(|d, _| !before.contains(d));
    assert!(
        !fresh.is_empty(),
        "the push added no blob; the test would prove nothing"
    );
    let fresh_bytes: u64 = fresh.values().sum();
    assert_eq!(g["blob_bytes_change"], fresh_bytes);
    assert_eq!(g["new_blobs"], fresh.len());
    assert_eq!(g["new_blob_bytes"], fresh_bytes);

    // The table says the same for people.
    let t = ok(&stowage(&storage, &["history", "--db", db_s]))
        .stdout
        .clone();
    let t = String::from_utf8(t).unwrap();
    assert!(t.contains("pushed/new") && t.contains("(new)"), "{t}");
    // The report charted both snapshots.
    let d = embedded(&std::fs::read_to_string(&html).unwrap());
    assert_eq!(d["history"]["times"].as_array().unwrap().len(), 2);
}

#[test]
fn history_needs_two_snapshots_and_an_existing_database() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let o = stowage(
        &s.rootdirectory(),
        &["history", "--db", db.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no history database"));
    assert!(!db.exists(), "reading must not create a database");
    ok(&stowage(
        &s.rootdirectory(),
        &[
            "--now",
            "2026-12-01T00:00:00Z",
            "snapshot",
            "--db",
            db.to_str().unwrap(),
        ],
    ));
    let o = stowage(
        &s.rootdirectory(),
        &["history", "--db", db.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("growth needs two"));
    // Same storage twice: no growth at all.
    ok(&stowage(
        &s.rootdirectory(),
        &[
            "--now",
            "2026-12-02T00:00:00Z",
            "snapshot",
            "--db",
            db.to_str().unwrap(),
        ],
    ));
    let g = json(&stowage(
        &s.rootdirectory(),
        &[
            "--format",
            "json",
            "history",
            "--db",
            db.to_str().unwrap(),
            "--from",
            "#1",
            "--to",
            "#2",
        ],
    ));
    assert_eq!(g["repositories"], serde_json::json!([]));
    assert_eq!(g["blob_bytes_change"], 0);
    assert_eq!(g["new_blobs"], 0);
}

#[test]
fn serve_refuses_a_non_loopback_address_without_a_token() {
    let s = sample();
    let o = stowage(&s.rootdirectory(), &["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--token-file"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("token");
    std::fs::write(&empty, "\n").unwrap();
    let o = stowage(
        &s.rootdirectory(),
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--token-file",
            empty.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is empty"));
}

/// Issue 19 item 2: a blob's owner lists were cut at 10 and one "+N" added hidden
/// repositories to hidden tags; each list now carries its own count of what was left out.
#[test]
fn blob_owner_lists_count_what_each_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let t = stowage_testkit::TreeBuilder::new(dir.path());
    let base = t.layer("shared-base", 4000);
    for i in 0..12 {
        let config = t.blob(format!("{{\"n\":{i}}}").as_bytes());
        let w = t.image(&format!("team/app{i:02}"), Some("1.0"), &config, &[&base]);
        t.tag(&format!("team/app{i:02}"), "stable", &w.digest());
    }
    let html = dir.path().join("r.html");
    ok(&stowage(
        dir.path(),
        &["report", "--html", html.to_str().unwrap()],
    ));
    let v = embedded(&std::fs::read_to_string(&html).unwrap());
    let row = v["blobs"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["digest"] == base.digest().to_string())
        .unwrap()
        .clone();
    assert_eq!(row["repositories"].as_array().unwrap().len(), 10, "{row}");
    assert_eq!(row["repositories_omitted"], 2, "{row}");
    assert_eq!(row["tags"].as_array().unwrap().len(), 10, "{row}");
    assert_eq!(row["tags_omitted"], 14, "24 tags, 10 shown: {row}");
}
