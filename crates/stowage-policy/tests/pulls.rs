//! Pull data in policies: `pulled_within`, `not_pulled_within`, `time_source: pulled`;
//! coverage, staleness, and a pull of an index counting for its children.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use stowage_policy::PullData;
use stowage_policy::eval::Decision;

const POLICY: &str = r#"settings:
  pull_sources: [{type: stowage-history, path: history.db, max_age: 2d}]
policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    keep:
      - id: recently-pulled
        pulled_within: 30d
    delete:
      - id: unused
        all: [{older_than: 7d}, {not_pulled_within: 30d}]
    otherwise: keep
"#;

fn data(begins: i64, ends: i64, pulls: &[(&str, &stowage_testkit::Written, i64)]) -> PullData {
    PullData {
        source: "history.db".into(),
        begins: Some(at(begins)),
        ends: Some(at(ends)),
        last: pulls
            .iter()
            .map(|(r, w, d)| ((r.to_string(), w.digest().to_string()), at(*d)))
            .collect(),
        recent: Vec::new(),
    }
}

#[test]
fn pulled_images_stay_and_unused_ones_go() {
    let mut r = Reg::new();
    let used = r.push("apps/api", Some("used"), 0);
    let unused = r.push("apps/api", Some("unused"), 0);
    let newest = r.push("apps/api", Some("newest"), 55);
    let (index, child, _) = r.push_index("apps/multi", Some("m"), 0);
    r.push("apps/multi", Some("newest"), 50);
    let inv = r.scan();
    // Data from day 0 to day 60; `used` pulled on day 55; the index only by its amd64 child.
    let pulls = data(
        0,
        60,
        &[("apps/api", &used, 55), ("apps/multi", &child, 58)],
    );
    let o = eval_pulls(&inv, &(header("") + POLICY), at(60), &pulls).unwrap();
    assert_eq!(image_decision(&inv, &o, "apps/api", &used), Decision::Keep);
    // Each pull-based decision names the coverage it relied on (issue 25).
    let covered = format!(
        " (pull data: history.db, covered {} to {})",
        at(0).rfc3339(),
        at(60).rfc3339()
    );
    assert!(
        reasons_of_tag(&inv, &o, "apps/api", "used")
            .contains(&format!("keep: p/recently-pulled{covered}")),
        "{:?}",
        reasons_of_tag(&inv, &o, "apps/api", "used")
    );
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &unused),
        Decision::Delete
    );
    assert!(
        reasons_of_tag(&inv, &o, "apps/api", "unused")
            .contains(&format!("delete: p/unused{covered}")),
        "{:?}",
        reasons_of_tag(&inv, &o, "apps/api", "unused")
    );
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &newest),
        Decision::Keep,
        "5 days old"
    );
    assert_eq!(
        image_decision(&inv, &o, "apps/multi", &index),
        Decision::Keep,
        "a pull of a platform child counts for its index"
    );
}

#[test]
fn data_that_does_not_cover_the_window_refuses_the_plan() {
    let mut r = Reg::new();
    r.push("apps/api", Some("a"), 0);
    let inv = r.scan();
    // Data began 10 days ago; the policy looks back 30 days.
    let e = eval_pulls(&inv, &(header("") + POLICY), at(60), &data(50, 60, &[])).unwrap_err();
    assert!(e.contains("not covered"), "{e}");
    // No data at all: refused, not "never pulled".
    let none = PullData {
        source: "history.db".into(),
        ..Default::default()
    };
    let e = eval_pulls(&inv, &(header("") + POLICY), at(60), &none).unwrap_err();
    assert!(e.contains("holds none"), "{e}");
    // Stale data (newest point 5 days old, max_age 2d): refused.
    let e = eval_pulls(&inv, &(header("") + POLICY), at(60), &data(0, 55, &[])).unwrap_err();
    assert!(e.contains("stale"), "{e}");
    // A pull condition without any pull source is refused at compile time.
    let no_source = POLICY.replace(
        "  pull_sources: [{type: stowage-history, path: history.db, max_age: 2d}]\n",
        "  untag: true\n",
    );
    assert!(compile_err(&(header("") + &no_source)).contains("settings.pull_sources is empty"));
}

#[test]
fn time_source_pulled_orders_last_n() {
    let mut r = Reg::new();
    let a = r.push("s", Some("a"), 0);
    let b = r.push("s", Some("b"), 1);
    let c = r.push("s", Some("c"), 2);
    let inv = r.scan();
    let policy = header("")
        + r#"settings:
  time_source: pulled
  pull_sources: [{type: stowage-history, path: h.db}]
policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    keep:
      - {id: last-pulled, last: 1}
    otherwise: delete
"#;
    // `a` (oldest push) was pulled last; `c` never: unknown time, kept (fail closed).
    let o = eval_pulls(
        &inv,
        &policy,
        at(30),
        &data(0, 30, &[("s", &a, 29), ("s", &b, 20)]),
    )
    .unwrap();
    assert_eq!(image_decision(&inv, &o, "s", &a), Decision::Keep);
    assert_eq!(image_decision(&inv, &o, "s", &b), Decision::Delete);
    assert_eq!(image_decision(&inv, &o, "s", &c), Decision::Keep);
}
