//! Pull data end to end: the real registry (`docker-registry` 2.8) serves the committed
//! sample with its access log captured and its notifications posted to `stowage serve`;
//! skopeo pulls by tag, by digest and a multi-arch index, a scanner-like user agent pulls
//! too; both the log ingest and the webhook then show exactly the pulled images as pulled.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use stowage_testkit::browser;
use stowage_testkit::real::Server;

fn stowage(storage: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .arg("--no-progress")
        .args(args)
        .output()
        .unwrap()
}

fn pulled(storage: &Path, db: &Path) -> (BTreeSet<(String, String)>, Value) {
    let o = stowage(
        storage,
        &["usage", "--db", db.to_str().unwrap(), "--format", "json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let set = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["pulls"].as_u64().unwrap() > 0)
        .map(|i| {
            assert_eq!(i["bucket"], "week", "{i}");
            (
                i["repository"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (set, v)
}

fn digest(repo: &str, reference: &str) -> String {
    stowage_testkit::sample_cases()
        .into_iter()
        .find(|c| c.repo == repo && c.reference == reference)
        .unwrap()
        .digest
}

/// `stowage serve` on a free loopback port; returns the child and its address.
fn serve(storage: &Path, db: &Path, secret_file: &Path) -> (std::process::Child, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "1h",
            "--history",
        ])
        .arg(db)
        .arg("--notify-secret-file")
        .arg(secret_file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(c.stderr.take().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|x| x.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in r.lines() {});
    (c, addr)
}

/// `tags --db` and `inventory --db` show the same last pulls as `usage`.
fn tags_and_inventory_show_the_same_last_pulls(storage: &Path, logs_db: &Path, web: &str) {
    let o = stowage(
        storage,
        &[
            "tags",
            "library/base",
            "--db",
            logs_db.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    for p in v["pulls"].as_array().unwrap() {
        let pulled = p["last_pulled"].is_string();
        assert_eq!(pulled, p["tag"] != "1.0-oci", "{p}");
    }
    let o = stowage(
        storage,
        &[
            "inventory",
            "--db",
            logs_db.to_str().unwrap(),
            "--format",
            "ndjson",
            "--kind",
            "manifest,index",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let pulled_manifests: BTreeSet<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["last_pulled"].is_string())
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    // The three images and the two children of the multi-arch index.
    assert_eq!(pulled_manifests.len(), 5, "{pulled_manifests:?}");
    assert!(pulled_manifests.contains(web));
}

/// Issue 19: the last-pulled columns of the report's and the dashboard's repository and tag
/// tables show these real pulls (and "never" for the others), in a real browser.
fn pages_show_the_last_pulls(storage: &Path, db: &Path, dir: &Path) {
    browser::require();
    let db_s = db.to_str().unwrap();
    let (_, usage) = pulled(storage, db);
    let mut repositories = serde_json::Map::new();
    let mut tags = serde_json::Map::new();
    let du = serde_json::from_slice::<Value>(&stowage(storage, &["du", "--format", "json"]).stdout)
        .unwrap();
    for n in du["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["repository"] == true)
    {
        let name = n["name"].as_str().unwrap();
        let last = usage["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["repository"] == name)
            .filter_map(|i| i["last_pulled"].as_str())
            .max();
        repositories.insert(name.into(), last.map_or(Value::Null, |t| t.into()));
        let o = stowage(storage, &["tags", name, "--db", db_s, "--format", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        for p in v["pulls"].as_array().unwrap() {
            let tag = format!("{name}:{}", p["tag"].as_str().unwrap());
            tags.insert(tag, p["last_pulled"].clone());
        }
    }
    let expected = dir.join("pulls-expected.json");
    std::fs::write(
        &expected,
        serde_json::json!({"repositories": repositories, "tags": tags}).to_string(),
    )
    .unwrap();
    let shots = browser::shots(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let html = dir.join("pulls.html");
    let o = stowage(
        storage,
        &[
            "report",
            "--history",
            db_s,
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    browser::run_check(
        "pulls.mjs",
        "report",
        html.to_str().unwrap(),
        &expected,
        &shots,
    );
    let exe = Path::new(env!("CARGO_BIN_EXE_stowage"));
    let d = browser::Dashboard::start(exe, storage, &["--no-progress"], &["--history", db_s]);
    browser::run_check("pulls.mjs", "dashboard", &d.url(), &expected, &shots);
}

#[test]
fn real_registry_logs_and_notifications_give_the_same_last_pulls() {
    let sample = stowage_testkit::sample();
    let storage = sample.rootdirectory();
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("secret");
    std::fs::write(&secret, "e2e-secret\n").unwrap();
    let notify_db = work.path().join("notify.db");
    let (mut child, addr) = serve(&storage, &notify_db, &secret);
    let serve_dir = work.path().join("registry");
    let url = format!("http://{addr}/api/v1/notifications");
    let reg = Server::start_env(
        &storage,
        &[
            ("SERVE_DIR", serve_dir.to_str().unwrap()),
            ("NOTIFY_URL", &url),
            ("NOTIFY_SECRET", "e2e-secret"),
        ],
    );
    let web = digest("team/app/web", "1.0");
    let failures = reg.pull_all(&[
        "library/base:1.0".to_string(),
        format!("team/app/web@{web}"),
        "multiarch/tool:1.0".to_string(),
    ]);
    assert!(failures.is_empty(), "{failures:?}");
    // A scanner: pulls team/app/worker:stable, which must stay "never pulled".
    let st = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-A", "Trivy/0.50.1", "-H"])
        .arg("Accept: application/vnd.docker.distribution.manifest.v2+json")
        .arg(format!(
            "http://{}/v2/team/app/worker/manifests/stable",
            reg.host()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let expected: BTreeSet<(String, String)> = [
        ("library/base".to_string(), digest("library/base", "1.0")),
        ("team/app/web".to_string(), web.clone()),
        (
            "multiarch/tool".to_string(),
            digest("multiarch/tool", "1.0"),
        ),
    ]
    .into_iter()
    .collect();
    // Notifications are delivered asynchronously: wait until the webhook saw every pull.
    let mut via_notify = BTreeSet::new();
    for _ in 0..100 {
        if notify_db.exists() {
            via_notify = pulled(&storage, &notify_db).0;
            if via_notify == expected {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(reg);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(via_notify, expected, "through the notification webhook");

    // The captured log (logrus text on stderr plus the combined access log on stdout).
    let log = serve_dir.join("registry.log");
    let logs_db = work.path().join("logs.db");
    let o = stowage(
        &storage,
        &[
            "usage",
            "ingest",
            "--db",
            logs_db.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0 unparseable"), "{err}");
    assert!(err.contains("0 tag pulls unresolved"), "{err}");
    let (via_logs, v) = pulled(&storage, &logs_db);
    assert_eq!(via_logs, expected, "through the access log");
    let status = &v["status"];
    assert!(
        status["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["reason"] == "user agent *trivy*"),
        "{status}"
    );
    // Every other image: never pulled (not "no data").
    for i in v["images"].as_array().unwrap() {
        if i["pulls"].as_u64() == Some(0) {
            assert_eq!(i["bucket"], "never", "{i}");
        }
    }
    tags_and_inventory_show_the_same_last_pulls(&storage, &logs_db, &web);
    pages_show_the_last_pulls(&storage, &logs_db, work.path());
    // Ingesting the same log again, gzipped, through stdin: nothing new.
    let gz = work.path().join("registry.log.gz");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", log.display(), gz.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --no-progress --storage {} usage ingest --db {} - < {}",
            env!("CARGO_BIN_EXE_stowage"),
            storage.display(),
            logs_db.display(),
            gz.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("recorded 0 new events"), "{err}");
    assert_eq!(pulled(&storage, &logs_db).0, expected);
}

#[test]
fn no_pull_data_is_not_never_pulled() {
    let sample = stowage_testkit::sample();
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("h.db");
    // An empty database (schema only).
    let o = stowage(
        &sample.rootdirectory(),
        &["usage", "ingest", "--db", db.to_str().unwrap(), "/dev/null"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = stowage(
        &sample.rootdirectory(),
        &[
            "usage",
            "--db",
            db.to_str().unwrap(),
            "--now",
            "2026-12-01T00:00:00Z",
        ],
    );
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("No pull data yet"), "{out}");
    assert!(out.contains("no pull data"), "{out}");
    assert!(!out.contains("never pulled  "), "{out}");
}
