//! `stowage gc` / `apply` / `restore` end to end through the binary: interrupted applies
//! resume to the same result, quarantine then restore gives back the identical tree, and the
//! grace period holds back recent writes.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real::{self, Server};

fn stowage(storage: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
    c.arg("--storage")
        .arg(storage)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Every path under `root` with its type, size and content hash (directories included).
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    rel,
                    format!("file {} {}", bytes.len(), stowage_model::Sha256::of(&bytes)),
                );
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn quarantine_then_restore_gives_back_the_identical_tree() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let before = tree(&root);
    let plan = s.dir.path().join("plan.json");
    let o = stowage(
        &root,
        &[
            "gc",
            "--delete-untagged",
            "--tidy",
            "--grace",
            "0s",
            "--uploads-older-than",
            "0s",
            "--out",
            plan.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let q = s.dir.path().join("quarantine");
    let o = stowage(
        &root,
        &[
            "apply",
            plan.to_str().unwrap(),
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let during = tree(&root);
    assert!(during.len() < before.len(), "the apply moved things out");
    let o = stowage(&root, &["restore", q.to_str().unwrap()], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(
        tree(&root),
        before,
        "restore must give back every path, byte and link"
    );
    assert!(!q.join("batch-").exists());
}

#[test]
fn apply_refuses_without_confirmation_and_for_another_storage() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let plan = s.dir.path().join("plan.json");
    stowage(
        &root,
        &["gc", "--grace", "0s", "--out", plan.to_str().unwrap()],
        &[],
    );
    let before = tree(&root);
    let o = stowage(&root, &["apply", plan.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--yes"));
    let other = stowage_testkit::sample();
    let o = stowage(
        &other.rootdirectory(),
        &[
            "apply",
            plan.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("was made for"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(tree(&root), before, "nothing changed");
}

/// Review of issue 23: apply accepted a plan dated in the future (`--now` later than the
/// apply's clock), whose ages and grace period were measured from a time that has not come.
#[test]
fn a_plan_dated_after_now_is_refused() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let plan = s.dir.path().join("plan.json");
    let o = stowage(
        &root,
        &[
            "--now",
            "2099-01-01T00:00:00Z",
            "gc",
            "-m",
            "--out",
            plan.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let before = tree(&root);
    let args = [
        "apply",
        plan.to_str().unwrap(),
        "--yes",
        "--registry-cache",
        "none",
        "--settle",
        "0s",
    ];
    let o = stowage(&root, &args, &[]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("after now"), "{err}");
    assert_eq!(tree(&root), before, "nothing changed");
    // Applied with the same --now, the plan is the plan it was made as.
    let mut same = vec!["--now", "2099-01-01T00:00:00Z"];
    same.extend_from_slice(&args);
    let o = stowage(&root, &same, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn grace_period_holds_back_recent_writes() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    // Everything in the sample was written "just now" relative to a now one minute after the
    // newest file: a 1h grace holds back every unreferenced blob, with bytes.
    // The newest blob data file's mtime (directory mtimes change on extraction; files keep
    // the archive's).
    let mut mtime = std::time::SystemTime::UNIX_EPOCH;
    let mut stack = vec![root.join("docker/registry/v2/blobs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                mtime = mtime.max(e.metadata().unwrap().modified().unwrap());
            }
        }
    }
    let now =
        stowage_model::Timestamp::from_system_time(mtime + std::time::Duration::from_secs(60))
            .rfc3339();
    let o = stowage(&root, &["--now", &now, "gc", "--format", "json"], &[]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["blobs"].as_array().unwrap().len(), 0);
    assert_eq!(v["held_back"]["blobs"].as_array().unwrap().len(), 6);
    assert_eq!(v["held_back"]["blob_bytes"], 2668);
    let o = stowage(
        &root,
        &["--now", &now, "gc", "--grace", "0s", "--format", "json"],
        &[],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["blobs"].as_array().unwrap().len(), 6);
    assert_eq!(v["bytes"], 2668);
}

#[test]
fn an_interrupted_apply_resumes_to_the_same_tree_and_never_breaks_a_kept_image() {
    let fx = real::build(false);
    let root = fx.rootdirectory();
    // Reference result: an uninterrupted apply on a copy.
    let reference = fx.dir.path().join("reference");
    copy_tree(&root, &reference);
    let args = [
        "gc",
        "--delete-untagged",
        "--tidy",
        "--grace",
        "0s",
        "--uploads-older-than",
        "0s",
    ];
    let plan_ref = fx.dir.path().join("plan-ref.json");
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--out", plan_ref.to_str().unwrap()]);
    assert_eq!(stowage(&reference, &a, &[]).status.code(), Some(0));
    let o = stowage(
        &reference,
        &[
            "apply",
            plan_ref.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want = tree(&reference);

    let plan = fx.dir.path().join("plan.json");
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--out", plan.to_str().unwrap()]);
    assert_eq!(stowage(&root, &a, &[]).status.code(), Some(0));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let kept: Vec<String> = fx
        .tagged_refs()
        .into_iter()
        .chain(
            v["manifests_kept_unlike_registry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| {
                    format!(
                        "{}@{}",
                        k["repository"].as_str().unwrap(),
                        k["digest"].as_str().unwrap()
                    )
                }),
        )
        .collect();
    // Kill it after 1 action (a history entry), after 4 (manifests done, in the blob phase), and
    // after 20 (links); check the kept images each time, then let the last run finish.
    for kill_after in ["1", "4", "20"] {
        let o = stowage(
            &root,
            &[
                "apply",
                plan.to_str().unwrap(),
                "--yes",
                "--registry-cache",
                "none",
                "--settle",
                "0s",
            ],
            &[("STOWAGE_TEST_KILL_AFTER", kill_after)],
        );
        assert!(
            !o.status.success(),
            "the apply was meant to be killed after {kill_after} actions"
        );
        let server = Server::start(&root);
        let failed = server.pull_all(&kept);
        assert!(
            failed.is_empty(),
            "after a kill at action {kill_after}, kept images broke: {failed:?}"
        );
    }
    let o = stowage(
        &root,
        &[
            "apply",
            plan.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(rep["already_done"].as_u64().unwrap() > 0);
    assert_eq!(
        rep["bytes_freed"], v["bytes"],
        "bytes freed over all runs equal the plan"
    );
    // Upload ids differ per build; compare everything else.
    let strip = |t: BTreeMap<String, String>| -> BTreeMap<String, String> {
        t.into_iter()
            .filter(|(k, _)| !k.contains("_uploads/"))
            .collect()
    };
    assert_eq!(strip(tree(&root)), strip(want));
    let server = Server::start(&root);
    assert!(server.pull_all(&kept).is_empty());
}
