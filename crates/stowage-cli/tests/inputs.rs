//! Hostile and unusual inputs through the binary (issue 25, the inputs side): registries whose
//! links are not their metadata, hostile patterns and policy files, hostile names, databases
//! that must not be written.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use stowage_testkit::{TreeBuilder, sample};

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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Set the modification time of every file under `dir` to `t`.
fn date_tree(dir: &Path, t: SystemTime) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            date_tree(&p, t);
        } else {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_modified(t).unwrap();
        }
    }
}

const GC_COMMANDS: [&[&str]; 2] = [&["gc", "--grace", "0s"], &["gc", "-m", "--grace", "0s"]];

fn assert_refused(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(o));
    let e = stderr(o);
    assert!(e.contains("refusing to plan deletions"), "{what}: {e}");
    assert!(e.contains("online garbage collection"), "{what}: {e}");
    assert!(o.stdout.is_empty(), "{what}: nothing planned");
}

/// Issue 25 item 13: with `database: {enabled: true}` GitLab's registry writes no links, so
/// every blob pushed since looks unreferenced; gc planned as usual (exit 0).
#[test]
fn gitlab_metadata_database_config_refuses_every_deleting_plan() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\ndatabase:\n  enabled: true\n",
            s.rootdirectory().display()
        ),
    )
    .unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: retention.v1\nkind: RetentionPolicy\npolicies:\n  - id: all\n    scope: {repositories: [\"glob:**\"]}\n    otherwise: delete\n",
    )
    .unwrap();
    let by_config = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stowage"))
            .arg("--registry-config")
            .arg(&cfg)
            .args(args)
            .env_remove("STOWAGE_STORAGE")
            .output()
            .unwrap()
    };
    for args in GC_COMMANDS {
        assert_refused(&by_config(args), &format!("{args:?}"));
        // --storage with --registry-config: the config is still read for its database.
        let mut with = vec!["--registry-config", cfg.to_str().unwrap()];
        with.extend_from_slice(args);
        assert_refused(&stowage(&s.rootdirectory(), &with), &format!("{with:?}"));
    }
    let plan = by_config(&["plan", "--policy", policy.to_str().unwrap()]);
    assert_refused(&plan, "plan --policy");
    // The signature override does not override a config.
    let o = by_config(&["gc", "--unsafe-ignore-metadata-signature"]);
    assert_refused(&o, "gc --unsafe-ignore-metadata-signature");
    // Read commands run, their figures labelled: on stderr, in their JSON, in the report.
    let o = by_config(&["du"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("filesystem metadata only"),
        "{}",
        stderr(&o)
    );
    for args in [
        &["--format", "json", "du"][..],
        &["--format", "json", "check"],
        &["--format", "json", "tags", "team/app/api"],
        &["--format", "json", "inventory"],
    ] {
        let o = by_config(args);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stderr(&o)));
        let label = v["metadata_database"].as_str().unwrap_or_default();
        assert!(
            label.starts_with("figures are from filesystem metadata only: the registry config"),
            "{args:?}: {v}"
        );
    }
    let html = dir.path().join("r.html");
    let o = by_config(&["report", "--html", html.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("\"metadata_database\":\"figures are from filesystem metadata only"),
        "the report's data has no metadata-database label"
    );
    // Without the database, no label anywhere.
    let o = stowage(&s.rootdirectory(), &["--format", "json", "du"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("metadata_database").is_none(), "{v}");
}

/// Issue 25 item 13: GitLab omnibus's `/var/opt/gitlab/registry/config.yml` is read without
/// being asked when `--storage` is the omnibus path.
#[test]
fn gitlab_metadata_database_omnibus_config_is_read_automatically() {
    let s = sample();
    let omnibus = tempfile::tempdir().unwrap();
    let shared = omnibus.path().join("gitlab-rails/shared");
    std::fs::create_dir_all(&shared).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(s.rootdirectory())
        .arg(shared.join("registry"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir_all(omnibus.path().join("registry")).unwrap();
    let cfg = omnibus.path().join("registry/config.yml");
    std::fs::write(&cfg, "storage:\n  filesystem:\n    rootdirectory: /var/opt/gitlab/gitlab-rails/shared/registry\n").unwrap();
    // Database off: gc plans as usual.
    let o = stowage(omnibus.path(), &["gc", "--grace", "0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(&cfg, "storage:\n  filesystem:\n    rootdirectory: /var/opt/gitlab/gitlab-rails/shared/registry\ndatabase:\n  enabled: true\n").unwrap();
    for storage in [
        omnibus.path().to_path_buf(),
        omnibus.path().join("gitlab-rails"),
        shared.join("registry"),
    ] {
        for args in GC_COMMANDS {
            assert_refused(&stowage(&storage, args), &format!("{storage:?} {args:?}"));
        }
    }
}

/// Issue 25 item 13: without a config, the storage's signature (many blobs written long after
/// the newest link) refuses deleting plans too, unless explicitly overridden.
#[test]
fn gitlab_metadata_database_signature_refuses_deleting_plans() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let config = t.blob(b"{\"n\":0}");
    let layer = t.layer("base", 3000);
    t.image("app", Some("1.0"), &config, &[&layer]);
    let long_ago = SystemTime::now() - Duration::from_secs(30 * 86400);
    date_tree(&t.path("repositories"), long_ago);
    date_tree(&t.path("blobs"), long_ago);
    // Pushed since the database was enabled: blobs, no links.
    for i in 0..12 {
        t.layer(&format!("pushed-by-gitlab-{i}"), 100 + i);
    }
    let root = dir.path();
    for args in GC_COMMANDS {
        let o = stowage(root, args);
        assert_refused(&o, &format!("{args:?}"));
        assert!(stderr(&o).contains("12 blobs were written more than a day after the newest link"));
    }
    let o = stowage(
        root,
        &["gc", "--grace", "0s", "--unsafe-ignore-metadata-signature"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A few unlinked blobs (abandoned pushes) are ordinary garbage.
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let config = t.blob(b"{\"n\":0}");
    t.image("app", Some("1.0"), &config, &[]);
    date_tree(&t.path("repositories"), long_ago);
    for i in 0..3 {
        t.layer(&format!("abandoned-{i}"), 100 + i);
    }
    let o = stowage(dir.path(), &["gc", "--grace", "0s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("filesystem metadata only"));
}

/// Issue 25 item 10: `inventory --db EMPTY` turned an empty file into a SQLite database.
#[test]
fn read_commands_write_no_database() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.db");
    for db in [&empty, &missing] {
        let o = stowage(
            &s.rootdirectory(),
            &["inventory", "--db", db.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(db.to_str().unwrap()), "{}", stderr(&o));
    }
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    assert!(!missing.exists());
}

/// Issue 25 items 4 and 9: `policy check` and `plan --policy` panicked (exit 101) on a glob
/// with 200 nested braces or of 1 MiB; deep YAML flow nesting took quadratic time.
#[test]
fn pattern_and_policy_limits_give_clean_errors_not_panics() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    let with_glob = |g: &str| {
        format!(
            "apiVersion: retention.v1\nkind: RetentionPolicy\npolicies:\n  - id: p\n    scope: {{repositories: [\"glob:{g}\"]}}\n    otherwise: delete\n"
        )
    };
    let nested = "{a,".repeat(200) + &"}".repeat(200);
    let huge = "a".repeat(1 << 20);
    let deep = format!("a: {}{}\n", "[".repeat(40_000), "]".repeat(40_000));
    for (what, text) in [
        ("nested braces", with_glob(&nested)),
        ("1 MiB glob", with_glob(&huge)),
        ("deep flow nesting", deep),
    ] {
        std::fs::write(&policy, &text).unwrap();
        for args in [
            vec!["policy", "check", policy.to_str().unwrap()],
            vec!["plan", "--policy", policy.to_str().unwrap()],
        ] {
            let o = stowage(&s.rootdirectory(), &args);
            assert_eq!(o.status.code(), Some(2), "{what} {args:?}: {}", stderr(&o));
            let e = stderr(&o);
            assert!(!e.contains("panicked"), "{what}: {e}");
            assert!(e.len() < 4000, "{what}: the error does not echo the input");
        }
    }
    // The same limits on flags.
    let o = stowage(&s.rootdirectory(), &["inventory", "--repo", &nested]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nested more than"), "{}", stderr(&o));
}

/// Issue 25 item 8: tag and repository names with ESC or CR were printed raw in tables.
#[test]
fn names_are_escaped_in_human_output_and_exact_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(dir.path());
    let config = t.blob(b"{\"n\":1}");
    let evil = "v1\u{1b}[2J\rx\u{202e}";
    t.image("app", Some(evil), &config, &[]);
    for args in [
        vec!["tags", "app"],
        vec!["tags", "app", "--history"],
        vec!["check"],
        vec!["inventory"],
    ] {
        let o = stowage(dir.path(), &args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = stderr(&o);
        for text in [&out, &err] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{202e}'),
                "{args:?}: {text:?}"
            );
        }
        if args[0] == "tags" {
            assert!(out.contains("v1\\x1b[2J\\x0dx\\u{202e}"), "{args:?}: {out}");
        }
    }
    let o = stowage(dir.path(), &["tags", "app", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.to_string().contains("\\u001b[2J\\rx"),
        "JSON stays exact: {v}"
    );
}

#[test]
fn gitlab_metadata_database_config_refuses_apply_and_nothing_moves() {
    // A plan made while the database was off, applied after it was enabled.
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let o = stowage(
        &s.rootdirectory(),
        &["gc", "--grace", "0s", "--out", plan.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\ndatabase:\n  enabled: true\n",
            s.rootdirectory().display()
        ),
    )
    .unwrap();
    let listing = |root: &std::path::Path| {
        let o = Command::new("find")
            .arg(root)
            .arg("-printf")
            .arg("%P %s\n")
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let before = listing(&s.rootdirectory());
    for extra in [
        &[][..],
        &["--offline"][..],
        &["--registry-cache", "none"][..],
    ] {
        let mut args = vec![
            "--registry-config",
            cfg.to_str().unwrap(),
            "apply",
            plan.to_str().unwrap(),
            "--yes",
        ];
        args.extend_from_slice(extra);
        let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(&args)
            .env_remove("STOWAGE_STORAGE")
            .output()
            .unwrap();
        assert_refused(&o, &format!("apply {extra:?}"));
    }
    assert_eq!(listing(&s.rootdirectory()), before, "nothing moved");
}
