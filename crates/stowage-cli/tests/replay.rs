//! Would-break replay end to end: the real registry (`docker-registry` 2.8) serves a copy of
//! the committed sample with its access log captured; skopeo pulls by tag, by digest and one
//! platform child of an index by digest, and a scanner pulls too; the log is ingested. A
//! plan that deletes the pulled images lists each pull it would break (blocked when the
//! policy says so); a plan that deletes only what the scanner pulled is clean; `plan replay`
//! answers the same for any plan file, `gc -m` plans included.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
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

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn digest(repo: &str, reference: &str) -> String {
    stowage_testkit::sample_cases()
        .into_iter()
        .find(|c| c.repo == repo && c.reference == reference)
        .unwrap()
        .digest
}

fn policy(dir: &Path, name: &str, scope: &str, action: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "apiVersion: retention.v1\nkind: RetentionPolicy\nsettings:\n  pull_sources: [{{type: stowage-history, path: history.db}}]\n  would_break: {action}\nprotections:\n  keep_newest_per_repository: 0\n  allow_empty_repository: true\npolicies:\n  - id: p\n    scope: {{repositories: [{scope}]}}\n    select: {{tag_state: any}}\n    delete:\n      - id: all\n        older_than: 0s\n    otherwise: keep\n"
        ),
    )
    .unwrap();
    p.display().to_string()
}

/// (image, reference, effect) of the broken pulls.
fn broken(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["image"].as_str().unwrap().to_string(),
                b["reference"].as_str().unwrap().to_string(),
                b["effect"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn plans_list_the_recent_pulls_they_would_break() {
    let sample = stowage_testkit::sample();
    let storage = sample.rootdirectory();
    let work = tempfile::tempdir().unwrap();
    let (db, web, child) = pull_and_ingest(&storage, work.path());
    // Deleting the pulled images, with would_break: block.
    let p = policy(
        work.path(),
        "pulled.yaml",
        "'glob:library/base', 'glob:team/app/web', 'glob:multiarch/tool'",
        "block",
    );
    let plan_file = work.path().join("pulled.json");
    let o = stowage(
        &storage,
        &[
            "plan",
            "--policy",
            &p,
            "--unsafe-allow-empty",
            "-o",
            plan_file.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "blocked: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let plan = json(&o);
    let wb = &plan["would_break"];
    assert_eq!(wb["checked"], true, "{wb}");
    assert_eq!(wb["action"], "block");
    let got = broken(&wb["pulls"]);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert!(
        got.contains(&s("library/base:1.0", "1.0", "deleted")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(i, r, e)| i.starts_with("team/app/web:") && r == &web && e == "deleted"),
        "a digest pull counts for the image: {got:?}"
    );
    assert!(
        got.iter()
            .any(|(i, r, _)| i.starts_with("multiarch/tool:") && r == child),
        "a pull of an index's child counts for the index: {got:?}"
    );
    assert!(
        !got.iter().any(|(i, _, _)| i.starts_with("team/app/worker")),
        "{got:?}"
    );
    for b in wb["pulls"].as_array().unwrap() {
        assert!(b["client"].as_str().unwrap().contains("skopeo"), "{b}");
    }
    let rails = plan["retention"]["rails_blocked"].to_string();
    assert!(rails.contains("would break recent pulls"), "{rails}");
    // Apply refuses it.
    let o = stowage(
        &storage,
        &["apply", plan_file.to_str().unwrap(), "--yes", "--offline"],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("would break"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // `plan replay` says the same of the plan file.
    let o = stowage(
        &storage,
        &[
            "plan",
            "replay",
            plan_file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(broken(&json(&o)["broken"]), got);
    let o = stowage(
        &storage,
        &[
            "plan",
            "replay",
            plan_file.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--from",
            "90d",
        ],
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("library/base:1.0") && table.contains("would have failed"),
        "{table}"
    );

    simulated_days_end_with_the_plan_made_now(&storage, &p, &plan);
    plans_that_break_nothing_say_so(&storage, work.path(), &db);
}

/// skopeo pulls library/base by tag, team/app/web by digest and a multiarch/tool child by
/// digest, a scanner pulls team/app/worker; the registry's log is ingested into `history.db`.
/// Returns the database, web's digest and the child's.
fn pull_and_ingest(storage: &Path, work: &Path) -> (PathBuf, String, &'static str) {
    let serve_dir = work.join("registry");
    let reg = Server::start_env(storage, &[("SERVE_DIR", serve_dir.to_str().unwrap())]);
    let web = digest("team/app/web", "1.0");
    let child = "sha256:4d8882cd9c84c67e0d68108b8b362e3073315d4b10305783cb84b642f414f7e0";
    let failures = reg.pull_all(&[
        "library/base:1.0".to_string(),
        format!("team/app/web@{web}"),
        format!("multiarch/tool@{child}"),
        format!("team/app/web@{UNTAGGED_WEB}"),
    ]);
    assert!(failures.is_empty(), "{failures:?}");
    // A scanner pulls team/app/worker:stable: not use.
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
    drop(reg);
    let db = work.join("history.db");
    let log = serve_dir.join("registry.log");
    let o = stowage(
        storage,
        &[
            "usage",
            "ingest",
            "--db",
            db.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    (db, web, child)
}

/// What-if over time: the policy at each of the last three days (pull data as of then);
/// the earlier days' plans delete what was pulled since, so those pulls would have broken.
fn simulated_days_end_with_the_plan_made_now(storage: &Path, p: &str, plan: &Value) {
    let now = plan["created_at"].as_str().unwrap().to_string();
    let o = stowage(
        storage,
        &[
            "--now", &now, "plan", "simulate", "--policy", p, "--from", "2d", "--every", "1d",
            "--format", "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sim = json(&o);
    let days = sim["days"].as_array().unwrap();
    assert_eq!(days.len(), 3, "{sim}");
    assert!(days[0]["pulls_broken"].as_u64().unwrap() >= 3, "{sim}");
    // Its last day is the plan made now (the simulation cannot empty repositories: that
    // needs --unsafe-allow-empty, so it reports the day blocked, with the same bytes).
    assert_eq!(
        days[2]["bytes_freed"], plan["retention"]["bytes"]["reclaimable_after_gc"],
        "{sim}"
    );
    assert_eq!(
        days[2]["images_deleted"],
        plan["retention"]["bytes"]["images_deleted"]
    );
}

/// A plan deleting only what the scanner pulled, a gc -m plan, and a plan without pull data.
fn plans_that_break_nothing_say_so(storage: &Path, work: &Path, db: &Path) {
    // Deleting only what the scanner pulled: clean, and not blocked.
    let p = policy(work, "scanned.yaml", "'glob:team/app/worker'", "block");
    let o = stowage(
        storage,
        &[
            "plan",
            "--policy",
            &p,
            "--unsafe-allow-empty",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = json(&o);
    assert_eq!(plan["would_break"]["checked"], true);
    assert_eq!(plan["would_break"]["pulls"], Value::Array(vec![]));
    assert!(
        plan["retention"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["decision"] == "delete")
    );

    gc_plans_are_checked_against_pulls(storage, work, db);

    // Without pull data the plan says so plainly.
    let p = work.join("nopulls.yaml");
    std::fs::write(
        &p,
        "apiVersion: retention.v1\nkind: RetentionPolicy\npolicies:\n  - id: p\n    scope: {repositories: ['glob:team/app/worker']}\n    delete: [{id: old, older_than: 0s}]\n    otherwise: keep\n",
    )
    .unwrap();
    let o = stowage(storage, &["plan", "--policy", p.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("recent pulls: no pull data"), "{out}");
}

/// An untagged manifest of the sample (`gc -m` deletes it), pulled by digest in the test.
const UNTAGGED_WEB: &str =
    "sha256:dde425df4914668dbf4b302be5156e7dde5ff4d9c15110341d34765ddc620b52";

/// `gc -m` plans are checked like retention plans (issue 23): the untagged manifest pulled by
/// digest is listed by `plan replay` and by `gc -m --pulls`; `--would-break block` makes a
/// plan apply refuses (the manifest stays); a plain `gc` deletes no pulled image.
fn gc_plans_are_checked_against_pulls(storage: &Path, work: &Path, db: &Path) {
    let untagged = format!("team/app/web@{UNTAGGED_WEB}");
    let gc = work.join("gc.json");
    let o = stowage(storage, &["gc", "-m", "--out", gc.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = stowage(
        storage,
        &[
            "plan",
            "replay",
            gc.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains(&untagged));

    let o = stowage(
        storage,
        &[
            "gc",
            "-m",
            "--pulls",
            db.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wb = &json(&o)["would_break"];
    assert_eq!(
        (&wb["checked"], &wb["action"]),
        (&Value::Bool(true), &Value::from("warn"))
    );
    let got = broken(&wb["pulls"]);
    assert_eq!(
        got,
        vec![(
            untagged.clone(),
            UNTAGGED_WEB.to_string(),
            "deleted".to_string()
        )],
        "{wb}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning:") && err.contains(&untagged), "{err}");

    let blocked = work.join("gc-block.json");
    let o = stowage(
        storage,
        &[
            "gc",
            "-m",
            "--pulls",
            db.to_str().unwrap(),
            "--would-break",
            "block",
            "--out",
            blocked.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = stowage(
        storage,
        &["apply", blocked.to_str().unwrap(), "--yes", "--offline"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("would break recent pulls"), "{err}");
    let rev = storage.join(format!(
        "docker/registry/v2/repositories/team/app/web/_manifests/revisions/sha256/{}/link",
        UNTAGGED_WEB.strip_prefix("sha256:").unwrap()
    ));
    assert!(rev.exists(), "the refused plan deleted nothing");

    // Without -m the plan deletes only unreferenced blobs: no pulled image.
    let o = stowage(
        storage,
        &[
            "gc",
            "--pulls",
            db.to_str().unwrap(),
            "--would-break",
            "block",
            "--format",
            "json",
        ],
    );
    let wb = &json(&o)["would_break"];
    assert_eq!(wb["pulls"], Value::Array(vec![]), "{wb}");
}
