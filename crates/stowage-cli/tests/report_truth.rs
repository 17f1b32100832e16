//! Issue 19: the report tells the truth. Every "reclaimable now" card is what its command
//! then plans, dates survive a copy, a stale plan says so, and the monitoring files in
//! `contrib/` name metrics `stowage metrics` prints.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::sample;

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

/// The data element of a report page, parsed.
fn embedded(html: &str) -> Value {
    let start = html.find("id=\"stowage-data\">").unwrap() + "id=\"stowage-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// The report of `root` at `now`, its embedded data.
fn report_data(root: &Path, now: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let mut args = vec!["--now", now, "report"];
    args.extend_from_slice(extra);
    args.push("--html");
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
    c.arg("--storage").arg(root).args(&args).arg(&html);
    ok(&c.env("TZ", "UTC").output().unwrap());
    embedded(&std::fs::read_to_string(&html).unwrap())
}

/// Run a card's command (`stowage --storage R gc ARGS --out plan.json`) at `now`; its plan.
fn run_card(root: &Path, now: &str, command: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let words: Vec<&str> = command.split_whitespace().collect();
    let gc = words.iter().position(|w| *w == "gc").unwrap();
    let args: Vec<&str> = words[gc..]
        .iter()
        .copied()
        .filter(|w| *w != "--out" && *w != "plan.json")
        .collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
    c.arg("--storage")
        .arg(root)
        .args(["--now", now])
        .args(&args)
        .arg("--out")
        .arg(&plan);
    ok(&c.output().unwrap());
    serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap()
}

/// Issue 19 items 3 and 12, and the headline: each "reclaimable now" card is exactly what
/// its command then plans (same grace, same `-m` semantics), on the sample a week after its
/// pushes and ten minutes after them (the grace period holds everything back: the card said
/// 2.6 KiB and the command freed 0 B; the untagged card counted platform children).
#[test]
fn reclaimable_cards_equal_what_their_commands_plan() {
    let s = sample();
    let root = s.rootdirectory();
    for now in ["2026-12-01T00:00:00Z", "2026-11-23T04:00:00Z"] {
        let d = report_data(&root, now, &[]);
        for card in d["reclaimable"].as_array().unwrap() {
            let cmd = card["command"].as_str().unwrap();
            assert!(cmd.contains(" --grace 1h "), "{cmd}");
            let apply = card["apply"].as_str().unwrap();
            assert!(
                apply.contains(" apply --quarantine ") && apply.contains("--registry-restart"),
                "{apply}"
            );
            let p = run_card(&root, now, cmd);
            let len = |k: &str| p[k].as_array().unwrap().len() as u64;
            assert_eq!(card["plan_bytes"], p["bytes"], "{now} {cmd}");
            let (bytes, count) = match card["reason"].as_str().unwrap() {
                "unreferenced" => (p["blob_bytes"].as_u64().unwrap(), len("blobs")),
                "untagged" => {
                    let plain = run_card(&root, now, &cmd.replace(" --delete-untagged", ""));
                    (
                        p["blob_bytes"].as_u64().unwrap() - plain["blob_bytes"].as_u64().unwrap(),
                        len("manifests"),
                    )
                }
                "orphaned_signatures" => {
                    let untagged = run_card(&root, now, &cmd.replace(" --orphan-signatures", ""));
                    (
                        p["blob_bytes"].as_u64().unwrap()
                            - untagged["blob_bytes"].as_u64().unwrap(),
                        len("tags"),
                    )
                }
                _ => (p["upload_bytes"].as_u64().unwrap(), len("uploads")),
            };
            assert_eq!(card["bytes"].as_u64().unwrap(), bytes, "{now} {cmd}");
            assert_eq!(card["count"].as_u64().unwrap(), count, "{now} {cmd}");
        }
        let h = &d["headline"];
        let first = &d["reclaimable"][0];
        assert_eq!(h["safe_bytes"], first["plan_bytes"]);
        assert!(
            h["sentence"]
                .as_str()
                .unwrap()
                .contains(" can be freed safely now"),
            "{h}"
        );
        if h["safe_bytes"].as_u64().unwrap() > 0 {
            assert_eq!(h["steps"][0]["command"], first["command"]);
            assert_eq!(h["steps"][1]["command"], first["apply"]);
        }
    }
    // Ten minutes after the pushes the grace period holds every unreferenced blob back.
    let d = report_data(&root, "2026-11-23T04:00:00Z", &[]);
    assert_eq!(d["reclaimable"][0]["bytes"], 0);
    assert!(d["reclaimable"][0]["held_back_bytes"].as_u64().unwrap() > 0);
    assert!(
        d["headline"]["sentence"]
            .as_str()
            .unwrap()
            .contains("0 B (0%) can be freed safely now")
    );
}

/// Issue 19 item 1: dates survive a copy. A registry whose blobs were written over 30
/// months, copied with `cp -a` (birth times are the copy day, modification times kept),
/// charts the same months as the original, not one bar for everything; no blob is
/// "created" after it was modified.
#[test]
fn dates_survive_a_copy() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig");
    let t = stowage_testkit::TreeBuilder::new(&orig);
    let config = t.blob(b"{\"created\":\"2024-06-01T00:00:00Z\"}");
    let mut layers = Vec::new();
    for m in 0..30u64 {
        let l = t.layer(&format!("l{m}"), 1000 + m as usize);
        let secs = 1_717_200_000 + m * 30 * 86_400; // 2024-06-01 plus m months
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(t.path(&stowage_layout::blob_data(&l.digest)))
            .unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
        layers.push(l);
    }
    let refs: Vec<_> = layers.iter().collect();
    t.image("team/app", Some("v1"), &config, &refs);
    let copy = dir.path().join("copy");
    let cp = Command::new("cp").arg("-a").arg(&orig).arg(&copy).status();
    assert!(cp.unwrap().success());
    let now = "2026-12-01T00:00:00Z";
    let months = |root: &Path| -> Vec<(String, u64)> {
        let d = report_data(root, now, &[]);
        for b in d["blobs"]["rows"].as_array().unwrap() {
            if let Some(c) = b["created"].as_str() {
                assert!(c <= b["modified"].as_str().unwrap(), "{b}");
            }
        }
        d["months"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["month"].as_str().unwrap().to_string(),
                    m["referenced_bytes"].as_u64().unwrap()
                        + m["unreferenced_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (months(&orig), months(&copy));
    let layer_months: Vec<&(String, u64)> = b.iter().filter(|m| m.0.as_str() < "2026-12").collect();
    assert!(
        layer_months.len() >= 29,
        "one bar per month of writing: {b:?}"
    );
    // The copy charts what the original charts, month for month, for the dated layers.
    let old = |v: &[(String, u64)]| -> Vec<(String, u64)> {
        v.iter()
            .filter(|m| m.0.as_str() < "2026-11")
            .cloned()
            .collect()
    };
    assert_eq!(old(&a), old(&b));
}

/// Issue 19, monitoring: `contrib/prometheus/alerts.yml` passes `promtool check rules`, the
/// Grafana dashboard (`contrib/grafana/`) is well-formed JSON with a query per panel, and every
/// `stowage_*` metric either queries is one `stowage metrics` prints (with pull data, on the
/// filesystem: never-pulled bytes and the filesystem's size and free bytes included).
#[test]
fn contrib_monitoring_is_valid_and_names_real_metrics() {
    let ws = stowage_testkit::workspace_root();
    let alerts = ws.join("contrib/prometheus/alerts.yml");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&alerts)
        .output()
        .expect("promtool missing: run scripts/install-test-deps.sh");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join("contrib/grafana/stowage-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut exprs: Vec<String> = Vec::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        assert!(p["title"].is_string() && p["gridPos"]["w"].is_u64(), "{p}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel without a query: {}", p["title"]);
        exprs.extend(
            targets
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string()),
        );
    }
    exprs.push(std::fs::read_to_string(&alerts).unwrap());
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        for (i, _) in e.match_indices("stowage_") {
            let name: String = e[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    // The sample with one pull recorded, so never-pulled bytes are known.
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        "10.0.0.1 - - [30/Nov/2026:10:00:00 +0000] \"GET /v2/team/app/api/manifests/latest HTTP/1.1\" 200 1234 \"-\" \"docker/27.0\"\n",
    )
    .unwrap();
    let db = dir.path().join("h.db");
    let now = ["--now", "2026-12-01T00:00:00Z"];
    let (dbs, logs) = (db.to_str().unwrap(), log.to_str().unwrap());
    ok(&stowage(
        &s.rootdirectory(),
        &[&now[..], &["usage", "ingest", "--db", dbs, logs]].concat(),
    ));
    let text = String::from_utf8(
        ok(&stowage(
            &s.rootdirectory(),
            &[&now[..], &["metrics", "--history", dbs]].concat(),
        ))
        .stdout
        .clone(),
    )
    .unwrap();
    let printed: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for name in &used {
        assert!(
            printed.contains(name.as_str()),
            "{name} is queried but `stowage metrics` does not print it: {printed:?}"
        );
    }
    for name in [
        "stowage_never_pulled_bytes",
        "stowage_filesystem_free_bytes",
        "stowage_filesystem_size_bytes",
    ] {
        assert!(used.contains(name) && printed.contains(name), "{name}");
    }
}

/// Issue 19, "Smaller": a plan older than the storage it is shown against says so; issue 19
/// item 7: its table leaves out 0-byte link rows (counted apart) and names reasons in words.
#[test]
fn a_plan_shown_against_newer_storage_carries_a_warning() {
    let s = sample();
    let root = s.rootdirectory();
    let dir = tempfile::tempdir().unwrap();
    let plan_at = |now: &str| {
        let p = dir.path().join(format!("plan-{}.json", &now[..10]));
        let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
        c.arg("--storage")
            .arg(&root)
            .args(["--now", now, "gc", "-m", "--tidy", "--grace", "0s", "--out"])
            .arg(&p);
        ok(&c.output().unwrap());
        p
    };
    // Made before the sample's pushes (2026-11-23): everything was written since.
    let old = plan_at("2026-11-20T00:00:00Z");
    let fresh = plan_at("2026-12-01T00:00:00Z");
    let now = "2026-12-01T00:00:00Z";
    let d = report_data(&root, now, &["--plan", old.to_str().unwrap()]);
    assert!(
        d["plan"]["written_since_plan"].as_u64().unwrap() > 0,
        "{}",
        d["plan"]
    );
    let d = report_data(&root, now, &["--plan", fresh.to_str().unwrap()]);
    let p = &d["plan"];
    assert_eq!(p["written_since_plan"], 0);
    assert!(p["link_rows"].as_u64().unwrap() > 0, "{p}");
    for r in p["rows"].as_array().unwrap() {
        let moves = ["blobs", "manifests", "tags", "uploads"]
            .iter()
            .map(|k| r[k].as_u64().unwrap())
            .sum::<u64>();
        assert!(r["bytes"].as_u64().unwrap() > 0 || moves > 0, "{r}");
        let label = r["label"].as_str().unwrap();
        assert!(
            !["blob-deleted", "dangling", "untagged-manifest"].contains(&label),
            "{r}"
        );
    }
}
