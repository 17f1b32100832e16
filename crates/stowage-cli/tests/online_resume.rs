//! Online apply through the binary: refused when the registry's cache makes it unsafe, and
//! killed with SIGKILL during its settle wait, then resumed, it converges to the result of an
//! uninterrupted run, with every kept image of the real registry still pulling.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use stowage_testkit::real::{self, Server};

fn cmd(storage: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
    c.arg("--storage")
        .arg(storage)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE");
    c
}

fn stowage(storage: &Path, args: &[&str]) -> Output {
    cmd(storage, args).output().unwrap()
}

/// Every file under `root` with its size and hash (upload ids differ per build: left out).
fn files(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let b = std::fs::read(&p).unwrap();
            out.insert(
                rel,
                format!("{} {}", b.len(), stowage_model::Sha256::of(&b)),
            );
        }
    }
    out
}

#[test]
fn online_apply_is_refused_when_the_registry_cache_is_unknown() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let plan = s.dir.path().join("plan.json");
    let o = stowage(
        &root,
        &["gc", "--grace", "0s", "--out", plan.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0));
    let before = files(&root);
    let o = stowage(&root, &["apply", plan.to_str().unwrap(), "--yes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing an online apply") && err.contains("--registry-restart"),
        "{err}"
    );
    // The Debian config names the inmemory cache: same refusal, naming it.
    let cfg = s.dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n",
            root.display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--registry-config")
        .arg(&cfg)
        .args(["apply", plan.to_str().unwrap(), "--yes"])
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("inmemory"), "{err}");
    assert_eq!(files(&root), before, "nothing touched");
}

#[test]
fn kill_during_the_settle_wait_then_resume_converges_and_breaks_nothing() {
    let fx = real::build(false);
    let root = fx.rootdirectory();
    let gc = ["gc", "--delete-untagged", "--tidy", "--grace", "0s"];
    let reference = fx.dir.path().join("reference");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&root)
            .arg(&reference)
            .status()
            .unwrap()
            .success()
    );
    let plan_ref = fx.dir.path().join("plan-ref.json");
    let mut a = gc.to_vec();
    a.extend(["--out", plan_ref.to_str().unwrap()]);
    assert_eq!(stowage(&reference, &a).status.code(), Some(0));
    let online = ["--yes", "--registry-cache", "none"];
    let mut a = vec!["apply", plan_ref.to_str().unwrap(), "--settle", "0s"];
    a.extend(online);
    let o = stowage(&reference, &a);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want = files(&reference);

    let plan = fx.dir.path().join("plan.json");
    let mut a = gc.to_vec();
    a.extend(["--out", plan.to_str().unwrap()]);
    assert_eq!(stowage(&root, &a).status.code(), Some(0));
    let mut a = vec!["apply", plan.to_str().unwrap(), "--settle", "600s"];
    a.extend(online);
    let mut child = cmd(&root, &a)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the settle to begin (every target fenced), then SIGKILL.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let settling = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("settling"));
    assert!(settling, "apply never reached its settle wait");
    child.kill().unwrap();
    child.wait().unwrap();
    let fenced = root.join("stowage-quarantine");
    assert!(fenced.is_dir(), "the fenced targets wait in the batch");
    // Killed in the settle: every kept image pulls from the real registry.
    let server = Server::start(&root);
    let failed = server.pull_all(&fx.tagged_refs());
    assert!(failed.is_empty(), "after a kill in the settle: {failed:?}");
    drop(server);
    let mut a = vec!["apply", plan.to_str().unwrap(), "--settle", "0s"];
    a.extend(online);
    let o = stowage(&root, &a);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let strip = |t: BTreeMap<String, String>| -> BTreeMap<String, String> {
        t.into_iter()
            .filter(|(k, _)| !k.contains("_uploads/"))
            .collect()
    };
    assert_eq!(strip(files(&root)), strip(want), "resumed = uninterrupted");
    assert!(!fenced.exists(), "nothing left in the fence");
    let server = Server::start(&root);
    let failed = server.pull_all(&fx.tagged_refs());
    assert!(failed.is_empty(), "after the resumed apply: {failed:?}");
}
