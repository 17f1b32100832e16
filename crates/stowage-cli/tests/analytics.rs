//! docs/analytics.md's DuckDB queries, run by DuckDB (PyPI `duckdb`, installed by
//! `scripts/install-test-deps.sh`) against Parquet tables stowage wrote: the committed
//! real-registry sample and a generated CI registry on two days, in the Hive layout
//! (`lake/registry=<name>/date=<day>/inventory.parquet`). Each query must run and its
//! answers must agree with stowage's own JSON output.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn stowage(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn table(storage: &Path, now: &str, out: &Path) {
    stowage(&[
        "--storage",
        storage.to_str().unwrap(),
        "--now",
        now,
        "inventory",
        "-o",
        out.to_str().unwrap(),
    ]);
}

/// `du`, `tags` (of the repository with the most tags) and `history` as Parquet, with
/// `--format parquet -o`, in the partition `dir`; `db` gets a snapshot of every day, and
/// with `growth` the growth since the day before is written too.
fn other_tables(tree: &Path, now: &str, dir: &Path, db: &Path, growth: bool) {
    let t = tree.to_str().unwrap();
    let common = ["--storage", t, "--now", now, "--format", "parquet"];
    let du = dir.join("du.parquet");
    stowage(&[&common[..], &["du", "-o", du.to_str().unwrap()]].concat());
    let tags = dir.join("tags.parquet");
    stowage(
        &[
            &common[..],
            &["tags", &busiest(tree, now), "-o", tags.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(dir.join("tags.history.parquet").is_file());
    stowage(&[
        "--storage",
        t,
        "--now",
        now,
        "snapshot",
        "--db",
        db.to_str().unwrap(),
    ]);
    if !growth {
        return; // growth needs two snapshots
    }
    let h = dir.join("history.parquet");
    stowage(
        &[
            &common[4..],
            &[
                "history",
                "--db",
                db.to_str().unwrap(),
                "-o",
                h.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
}

/// The repository with the most tags (then the first by name).
fn busiest(tree: &Path, now: &str) -> String {
    let t = tree.to_str().unwrap();
    let du: Value = serde_json::from_str(&stowage(&[
        "--storage",
        t,
        "--now",
        now,
        "--format",
        "json",
        "du",
    ]))
    .unwrap();
    let nodes = du["nodes"].as_array().unwrap();
    let best = nodes
        .iter()
        .filter(|n| n["repository"].as_bool().unwrap() && n["tags"].as_u64().unwrap() > 0)
        .max_by_key(|n| {
            (
                n["own_total"].as_u64(),
                std::cmp::Reverse(n["name"].to_string()),
            )
        })
        .unwrap();
    best["name"].as_str().unwrap().to_owned()
}

fn duckdb_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("STOWAGE_REQUIRE_REAL").is_none(),
            "python3 cannot import duckdb and STOWAGE_REQUIRE_REAL is set: run scripts/install-test-deps.sh"
        );
        eprintln!(
            "\n*** SKIPPED analytics: PyPI duckdb is not installed (scripts/install-test-deps.sh) ***\n"
        );
    }
    ok
}

#[test]
fn the_documented_duckdb_queries_run_on_stowage_parquet_and_agree_with_json() {
    if !duckdb_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let lake = work.path().join("lake");
    let db = work.path().join("history.db");
    let sample = stowage_testkit::sample();
    let day1 = "2030-01-01T00:00:00Z";
    table(
        &sample.rootdirectory(),
        day1,
        &lake.join("registry=sample/date=2030-01-01/inventory.parquet"),
    );
    // A CI registry that grew between two days.
    for (blobs, day, now) in [
        (400, "2030-01-01", day1),
        (800, "2030-04-01", "2030-04-01T00:00:00Z"),
    ] {
        let tree = work.path().join(format!("ci-{blobs}"));
        let mut o = stowage_gen::Options::new(&tree, blobs);
        o.threads = Some(2);
        stowage_gen::generate(&o).unwrap();
        table(
            &tree,
            now,
            &lake.join(format!("registry=ci/date={day}/inventory.parquet")),
        );
        other_tables(
            &tree,
            now,
            &lake.join(format!("registry=ci/date={day}")),
            &db,
            blobs > 400,
        );
    }

    let o = Command::new("python3")
        .arg(stowage_testkit::workspace_root().join("testkit/analytics/run_docs.py"))
        .arg(stowage_testkit::workspace_root().join("docs/analytics.md"))
        .arg(work.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answers: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 7, "{answers:#?}");
    // Every value as text (DuckDB's str()).
    let rows = |n: usize| -> Vec<Vec<String>> {
        answers[n]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    };

    // 1. Bytes per registry and day equal stowage's own summary.
    let json: Value = serde_json::from_str(&stowage(&[
        "--storage",
        sample.rootdirectory().to_str().unwrap(),
        "--now",
        day1,
        "--format",
        "json",
        "inventory",
    ]))
    .unwrap();
    let s = &json["summary"];
    let sample_row = rows(0).into_iter().find(|r| r[0] == "sample").unwrap();
    assert_eq!(sample_row[2], s["blobs"].to_string(), "{sample_row:?} {s}");
    assert_eq!(sample_row[3], s["blob_bytes"].to_string());
    assert_eq!(sample_row[4], s["unreferenced_bytes"].to_string());
    assert_eq!(rows(0).len(), 3, "sample once, ci twice");

    // 2. Top growers: the CI registry grew, so some team did.
    let growers = rows(1);
    assert!(!growers.is_empty());
    assert!(
        growers
            .iter()
            .any(|r| r[0] == "ci" && r[4].parse::<i64>().unwrap() > 0),
        "{growers:?}"
    );

    // 3. Bytes by age: every blob of the latest days falls in some bucket.
    let by_age: i64 = rows(2)
        .iter()
        .filter(|r| r[0] == "sample")
        .map(|r| r[2].parse::<i64>().unwrap())
        .sum();
    assert_eq!(by_age.to_string(), s["blobs"].to_string());

    // 4. Shared layers: each is a layer listed in two repositories or more.
    let shared = rows(3);
    assert!(
        !shared.is_empty(),
        "the generated registry shares base layers"
    );
    for r in &shared {
        assert!(r[4].parse::<i64>().unwrap() > 1, "{r:?}");
    }

    check_du_tags_history(work.path(), &rows);
}

/// Queries 5 to 7 (du, tag history, growth) against stowage's JSON of the same registry.
fn check_du_tags_history(work: &Path, rows: &dyn Fn(usize) -> Vec<Vec<String>>) {
    // 5. du: the repositories of each day, as `du --format json` lists them.
    let ci_now = "2030-04-01T00:00:00Z";
    let du: Value = serde_json::from_str(&stowage(&[
        "--storage",
        work.join("ci-800").to_str().unwrap(),
        "--now",
        ci_now,
        "--format",
        "json",
        "du",
    ]))
    .unwrap();
    let repos: Vec<&Value> = du["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["repository"].as_bool().unwrap())
        .collect();
    let du_rows: Vec<Vec<String>> = rows(4)
        .into_iter()
        .filter(|r| r[0] == "ci" && r[1] == "2030-04-01")
        .collect();
    assert_eq!(du_rows.len(), repos.len(), "{du_rows:?}");
    let top = repos
        .iter()
        .max_by_key(|n| {
            (
                n["exclusive"].as_u64(),
                std::cmp::Reverse(n["name"].to_string()),
            )
        })
        .unwrap();
    assert_eq!(du_rows[0][2], top["name"].as_str().unwrap());
    assert_eq!(du_rows[0][4], top["exclusive"].to_string());

    // 6. Tag moves: per tag, the history entries `tags --format json` lists.
    let busiest_repo = busiest(&work.join("ci-800"), ci_now);
    let tags: Value = serde_json::from_str(&stowage(&[
        "--storage",
        work.join("ci-800").to_str().unwrap(),
        "--now",
        ci_now,
        "--format",
        "json",
        "tags",
        &busiest_repo,
    ]))
    .unwrap();
    let moves: Vec<Vec<String>> = rows(5)
        .into_iter()
        .filter(|r| r[0] == "ci" && r[1] == "2030-04-01")
        .collect();
    assert!(!moves.is_empty());
    for r in &moves {
        let t = tags["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == r[3].as_str())
            .unwrap();
        assert_eq!(
            r[4],
            t["history"].as_array().unwrap().len().to_string(),
            "{r:?}"
        );
    }

    // 7. History: the second day's table compares the two ci snapshots and lists growth.
    let growth = rows(6);
    assert!(!growth.is_empty());
    assert!(
        growth.iter().all(|r| r[0] == "ci" && r[1] == "2030-04-01"),
        "{growth:?}"
    );
}

#[test]
fn parquet_is_refused_where_it_has_no_table_and_without_a_file() {
    let sample = stowage_testkit::sample();
    let root = sample.rootdirectory();
    for args in [&["gc"][..], &["du"][..], &["check", "--fast"][..]] {
        let o = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(["--storage", root.to_str().unwrap(), "--format", "parquet"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--format parquet"), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
}
