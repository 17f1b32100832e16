//! The HTML report and the dashboard in a real headless browser: Debian's chromium driven by
//! playwright-core (`testkit/browser/check.mjs`), on the committed real-registry sample.
//! Screenshots go to `<target>/tmp/browser-screenshots/`.
//!
//! Needs chromium, node and `testkit/browser/node_modules` (scripts/install-test-deps.sh
//! installs them; scripts/test.sh runs it first).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use stowage_testkit::{sample, workspace_root};

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

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn require_browser() {
    let browser = workspace_root().join("testkit/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && browser.join("node_modules/playwright-core").exists(),
        "chromium or playwright-core missing: run scripts/install-test-deps.sh (scripts/test.sh does)"
    );
}

fn node_check(mode: &str, target: &str, expected: &Path) {
    let o = Command::new("node")
        .arg(workspace_root().join("testkit/browser/check.mjs"))
        .args([mode, target])
        .arg(expected)
        .arg(shots())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{out}{err}");
    assert!(
        o.status.success(),
        "browser check of the {mode} failed:\n{out}\n{err}"
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn report_in_a_real_browser() {
    require_browser();
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

/// Kills the dashboard this test started (by its pid) when the test ends.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

#[test]
fn dashboard_in_a_real_browser() {
    require_browser();
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_stowage"))
            .arg("--storage")
            .arg(s.rootdirectory())
            .args([
                "--now",
                NOW,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "1h",
            ])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    // Wait (bounded: 600 x 50 ms) for the first scan to be served.
    let mut ready = false;
    for _ in 0..600 {
        if http_get(&addr, "/api/v1/status").is_some_and(|r| r.contains("\"generation\":1")) {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ready, "the dashboard never finished its first scan");
    let exp = expected(&s.rootdirectory(), dir.path());
    node_check("dashboard", &format!("http://{addr}/"), &exp);
}
