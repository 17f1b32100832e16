//! Issue 19: image build dates from the config blob. Images built at known dates (the
//! testkit's OCI writer sets config `created`) are pushed to the real registry with skopeo;
//! the storage is then copied the way `cp -r`, rsync or a restore copy it (every file date is
//! the copy day). `tags`, `explain`, the report's "bytes by image age" and `time_source:
//! built` still give each image its age; a placeholder date (1970) is unknown, never a guess.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real::{self, Server};

const NOW: &str = "2026-12-01T00:00:00Z";
/// 2026-11-30T00:00:00Z: the day of the copy.
const COPY_DAY: u64 = 1_795_996_800;
const DATES: [&str; 3] = [
    "2021-03-01T00:00:00Z",
    "2024-09-15T08:30:00Z",
    "1970-01-01T00:00:00Z",
];

fn stowage(storage: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .args(["--now", NOW])
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.code().is_some_and(|c| c == 0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn build_dates_survive_a_copy_that_loses_every_file_date() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    std::fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
    let layout = dir.path().join("oci");
    real::oci_dated_layout(&layout, &DATES);
    {
        let server = Server::start(&root);
        for i in 0..DATES.len() {
            real::push(
                &layout,
                &format!("built-{i}"),
                &server.host(),
                &format!("dated/app:v{i}"),
            );
        }
    }
    // The copy: no dates preserved (cp -r), so every file is "new" as of the copy.
    let copy = dir.path().join("copy");
    let st = Command::new("cp")
        .arg("-r")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    // Every file dated the copy day (what cp -r, rsync without -t or an object-store sync
    // leave), fixed so the test does not depend on the clock.
    fn redate(dir: &Path, t: std::time::SystemTime) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                redate(&p, t);
            } else {
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.set_modified(t).unwrap();
            }
        }
    }
    redate(
        &copy,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(COPY_DAY),
    );

    let tags: Value = serde_json::from_str(&ok(stowage(
        &copy,
        &["--format", "json", "tags", "dated/app"],
    )))
    .unwrap();
    let rows = tags["tags"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{tags}");
    let moved: Vec<&str> = rows.iter().map(|r| r["moved"].as_str().unwrap()).collect();
    assert!(
        moved.iter().all(|m| *m == "2026-11-30T00:00:00Z"),
        "every file date is the copy day: {moved:?}"
    );
    for r in rows {
        let i: usize = r["tag"].as_str().unwrap()[1..].parse().unwrap();
        if i < 2 {
            assert_eq!(r["built"], DATES[i], "{r}");
        } else {
            assert!(
                r["built"].is_null(),
                "a 1970 placeholder is not a date: {r}"
            );
            assert_eq!(r["build_unknown"], "placeholder_date", "{r}");
        }
    }
    let table = ok(stowage(&copy, &["tags", "dated/app"]));
    assert!(
        table.contains("BUILT") && table.contains("2021-03-01"),
        "{table}"
    );
    assert!(table.contains("? placeholder_date"), "{table}");

    let e = ok(stowage(&copy, &["explain", "dated/app:v1"]));
    assert!(
        e.contains("built") && e.contains("2024-09-15 08:30") && e.contains("created"),
        "{e}"
    );

    // The report's chart: v0 is over 3 years old, v1 2-3 years, v2 unknown; the months chart
    // (file dates) has one month for everything.
    let html = dir.path().join("r.html");
    ok(stowage(
        &copy,
        &["report", "--html", html.to_str().unwrap()],
    ));
    let page = std::fs::read_to_string(&html).unwrap();
    let start = page.find("id=\"stowage-data\">").unwrap() + "id=\"stowage-data\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    let d: Value = serde_json::from_str(&page[start..end]).unwrap();
    let bucket = |label: &str| -> Value {
        d["image_ages"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["label"] == label)
            .unwrap()
            .clone()
    };
    assert_eq!(bucket("over 3 years")["images"], 1, "{}", d["image_ages"]);
    assert_eq!(bucket("2-3 years")["images"], 1);
    assert_eq!(bucket("build date unknown")["images"], 1);
    assert!(bucket("over 3 years")["bytes"].as_u64().unwrap() > 0);
    assert_eq!(bucket("under 1 month")["images"], 0);
    assert_eq!(d["months"].as_array().unwrap().len(), 1, "{}", d["months"]);
    assert_eq!(d["image_ages"]["unknown"][0]["reason"], "placeholder_date");
    assert!(page.contains("Bytes by image age"));

    // Retention by build date: only v0 is older than 3 years; by push date (the copy day)
    // nothing is.
    let policy = dir.path().join("p.yaml");
    let plan = |ts: &str| -> Value {
        std::fs::write(
            &policy,
            format!(
                "apiVersion: retention.v1\nkind: RetentionPolicy\nsettings:\n  time_source: {ts}\nprotections:\n  keep_newest_per_repository: 0\npolicies:\n  - id: old\n    scope: {{repositories: [\"glob:**\"]}}\n    delete:\n      - id: old\n        older_than: 1095d\n    otherwise: keep\n"
            ),
        )
        .unwrap();
        let out = dir.path().join(format!("plan-{ts}.json"));
        let o = stowage(
            &copy,
            &[
                "plan",
                "--policy",
                policy.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--no-progress",
            ],
        );
        assert!(
            o.status.code().is_some_and(|c| c <= 1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
    };
    let by_built = plan("built");
    let tags_of = |p: &Value| -> Vec<String> {
        p["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        tags_of(&by_built),
        vec!["v0".to_string()],
        "{}",
        by_built["tags"]
    );
    assert!(tags_of(&plan("pushed")).is_empty());
}
