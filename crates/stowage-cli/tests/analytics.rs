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
    assert_eq!(answers.len(), 4, "{answers:#?}");
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
}
