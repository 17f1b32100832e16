//! The HTML report and the dashboard in a real headless browser: Debian's chromium driven by
//! playwright-core (`testkit/browser/check.mjs`), on the committed real-registry sample.
//! Screenshots go to `<target>/tmp/browser-screenshots/`.
//!
//! Needs chromium, node and `testkit/browser/node_modules` (scripts/install-test-deps.sh
//! installs them; scripts/test.sh runs it first).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use stowage_testkit::{browser, sample};

const NOW: &str = "2026-12-01T00:00:00Z";

fn stowage_json(storage: &Path, args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .args(["--now", NOW, "--format", "json"])
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))
}

fn expected(storage: &Path, dir: &Path) -> PathBuf {
    expected_with(storage, dir, json!({}))
}

/// The expected figures, with `extra` (e.g. the plan shown) merged in.
fn expected_with(storage: &Path, dir: &Path, extra: Value) -> PathBuf {
    let du = stowage_json(storage, &["du"]);
    let tags = stowage_json(storage, &["tags", "team/app/web"]);
    let inv = stowage_json(storage, &["inventory"]);
    let check = stowage_json(storage, &["check"]);
    let s = &inv["summary"];
    let mut v = json!({
        "du": du,
        "tags": {"team/app/web": tags},
        "blobs": s["blobs"],
        "blob_bytes": s["blob_bytes"],
        "unreferenced": s["unreferenced_bytes"],
        "unreferenced_blobs": s["unreferenced_blobs"],
        "finding_kinds": check["counts"].as_object().unwrap().keys().collect::<Vec<_>>(),
    });
    if let (Some(v), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(x.clone());
    }
    let p = dir.join("expected.json");
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn node_check(mode: &str, target: &str, expected: &Path) {
    let shots = browser::shots(Path::new(env!("CARGO_TARGET_TMPDIR")));
    browser::run_check("check.mjs", mode, target, expected, &shots);
}

#[test]
fn report_in_a_real_browser() {
    browser::require();
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let plan = dir.path().join("plan.json");
    let db = dir.path().join("h.db");
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .arg("--storage")
            .arg(s.rootdirectory())
            .args(["--now", NOW])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // A plan with link-only rows, and two snapshots for the growth chart.
    run(&[
        "gc".as_ref(),
        "-m".as_ref(),
        "--tidy".as_ref(),
        "--out".as_ref(),
        plan.as_os_str(),
    ]);
    let first = dir.path().join("first.html");
    run(&[
        "report".as_ref(),
        "--history".as_ref(),
        db.as_os_str(),
        "--html".as_ref(),
        first.as_os_str(),
    ]);
    run(&[
        "report".as_ref(),
        "--history".as_ref(),
        db.as_os_str(),
        "--plan".as_ref(),
        plan.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    let start = page.find("id=\"stowage-data\">").unwrap() + "id=\"stowage-data\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&page[start..end]).unwrap();
    let exp = expected_with(
        &s.rootdirectory(),
        dir.path(),
        json!({"plan": {"link_rows": data["plan"]["link_rows"]}, "history": true}),
    );
    node_check("report", html.to_str().unwrap(), &exp);
}

#[test]
fn dashboard_in_a_real_browser() {
    browser::require();
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let d = browser::Dashboard::start(
        Path::new(env!("CARGO_BIN_EXE_stowage")),
        &s.rootdirectory(),
        &["--now", NOW],
        &[],
    );
    let exp = expected(&s.rootdirectory(), dir.path());
    node_check("dashboard", &d.url(), &exp);
}
