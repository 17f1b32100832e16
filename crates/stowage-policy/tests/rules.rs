//! Table tests: every rule kind and combination, on small registries with controlled dates,
//! with two `now` values where time matters.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use stowage_policy::eval::Decision;

fn ci_registry() -> (Reg, Vec<stowage_testkit::Written>) {
    let mut r = Reg::new();
    let mut ws = Vec::new();
    // main-<sha> builds on days 0..6, feature-x builds on days 2 and 3.
    for (i, sha) in [
        "aaaaaaa", "bbbbbbb", "ccccccc", "ddddddd", "eeeeeee", "fffffff",
    ]
    .iter()
    .enumerate()
    {
        ws.push(r.push("apps/api", Some(&format!("main-{sha}")), i as i64));
    }
    ws.push(r.push("apps/api", Some("feature-x-1234567"), 2));
    ws.push(r.push("apps/api", Some("feature-x-89abcde"), 3));
    (r, ws)
}

const CI: &str = r#"policies:
  - id: ci
    scope: {repositories: ["glob:apps/**"]}
    select:
      tags: ["regex:(?P<branch>[a-z0-9._-]+?)-[0-9a-f]{7}"]
    keep:
      - id: last-2-per-branch
        group_by: [branch]
        last: 2
    otherwise: delete
"#;

#[test]
fn last_n_per_group() {
    let (r, _) = ci_registry();
    let inv = r.scan();
    let o = eval(&inv, &(header("") + CI), at(10));
    let d = |t: &str| tag_decision(&inv, &o, &format!("apps/api:{t}"));
    assert_eq!(d("main-fffffff"), "keep");
    assert_eq!(d("main-eeeeeee"), "keep");
    assert_eq!(d("main-ddddddd"), "remove");
    assert_eq!(d("main-aaaaaaa"), "remove");
    assert_eq!(d("feature-x-1234567"), "keep", "its own group of two");
    assert_eq!(d("feature-x-89abcde"), "keep");
    assert!(
        reasons_of_tag(&inv, &o, "apps/api", "main-aaaaaaa")
            .iter()
            .any(|r| r == "delete: ci/otherwise")
    );
    assert!(
        reasons_of_tag(&inv, &o, "apps/api", "main-fffffff")
            .iter()
            .any(|r| r == "keep: ci/last-2-per-branch")
    );
}

#[test]
fn all_of_last_and_within_depends_on_now() {
    let (r, _) = ci_registry();
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: ci
    scope: {repositories: ["glob:**"]}
    select: {tags: ["regex:(?P<branch>[a-z0-9._-]+?)-[0-9a-f]{7}"]}
    keep:
      - id: recent-last-3
        group_by: [branch]
        all:
          - last: 3
          - within: 3d
    otherwise: delete
"#;
    // now = day 6: main builds of days 4 and 5 are within 3 days and among the last 3.
    let o = eval(&inv, &policy, at(6));
    let d = |o: &stowage_policy::Outcome, t: &str| tag_decision(&inv, o, &format!("apps/api:{t}"));
    assert_eq!(d(&o, "main-fffffff"), "keep");
    assert_eq!(d(&o, "main-eeeeeee"), "keep");
    assert_eq!(
        d(&o, "main-ddddddd"),
        "remove",
        "among the last 3 but 3 days old"
    );
    assert_eq!(d(&o, "main-ccccccc"), "remove");
    assert_eq!(
        d(&o, "feature-x-89abcde"),
        "remove",
        "exactly 3 days old is not within 3d"
    );
    // now = day 30: nothing is recent; everything goes.
    let o = eval(&inv, &policy, at(30));
    assert_eq!(d(&o, "main-fffffff"), "remove");
    assert_eq!(d(&o, "feature-x-89abcde"), "remove");
}

#[test]
fn any_and_not() {
    let (r, _) = ci_registry();
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    keep:
      - id: newest-or-feature
        any:
          - last: 1
          - when: {tag: "glob:feature-*"}
    delete:
      - id: old-non-main
        all:
          - older_than: 1d
          - not: {when: {tag: "glob:main-*"}}
    otherwise: keep
"#;
    let o = eval(&inv, &policy, at(10));
    let d = |t: &str| tag_decision(&inv, &o, &format!("apps/api:{t}"));
    // feature-x is matched by the delete rule, but a keep rule keeps it: keep wins.
    assert_eq!(d("feature-x-1234567"), "keep");
    // main builds: not deleted (the delete rule excludes them), otherwise keep.
    assert_eq!(d("main-aaaaaaa"), "keep");
    assert!(
        reasons_of_tag(&inv, &o, "apps/api", "main-aaaaaaa")
            .iter()
            .any(|r| r == "keep: p/otherwise")
    );
}

#[test]
fn keep_wins_and_order_does_not_matter() {
    let (r, _) = ci_registry();
    let inv = r.scan();
    let a = header("")
        + r#"policies:
  - id: del
    scope: {repositories: ["glob:**"]}
    delete:
      - id: old
        older_than: 2d
    otherwise: keep
  - id: keep-main
    scope: {repositories: ["glob:apps/*"]}
    select: {tags: ["glob:main-*"]}
    keep:
      - id: last-4
        last: 4
    otherwise: keep
"#;
    // The same policies and rules in the other order.
    let b = header("")
        + r#"policies:
  - id: keep-main
    scope: {repositories: ["glob:apps/*"]}
    select: {tags: ["glob:main-*"]}
    keep:
      - id: last-4
        last: 4
    otherwise: keep
  - id: del
    scope: {repositories: ["glob:**"]}
    delete:
      - id: old
        older_than: 2d
    otherwise: keep
"#;
    let oa = decisions(&inv, &eval(&inv, &a, at(10)));
    let ob = decisions(&inv, &eval(&inv, &b, at(10)));
    assert_eq!(oa, ob);
    assert_eq!(
        oa["apps/api:main-ccccccc"], "keep",
        "kept by keep-main/last-4"
    );
    assert_eq!(oa["apps/api:main-bbbbbbb"], "remove");
    assert_eq!(oa["apps/api:feature-x-1234567"], "remove");
}

#[test]
fn semver_and_prerelease() {
    let mut r = Reg::new();
    for (i, t) in [
        "v1.2.0",
        "v1.2.1",
        "v1.10.0",
        "v1.9.3",
        "v2.0.0-rc.1",
        "v2.0.0-rc.2",
        "v1.2.2",
    ]
    .iter()
    .enumerate()
    {
        // Pushed in an order that differs from version order.
        r.push("rel", Some(t), 10 - i as i64);
    }
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: rel
    scope: {repositories: ["glob:rel"]}
    select: {tags: ["regex:v(?P<major>\\d+)\\.(?P<minor>\\d+)\\.\\d+(-.*)?"]}
    keep:
      - id: top-2
        order_by: semver
        prerelease: exclude_from_count
        last: 2
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(20));
    let d = |t: &str| tag_decision(&inv, &o, &format!("rel:{t}"));
    assert_eq!(d("v1.10.0"), "keep", "1.10 > 1.9 (not string order)");
    assert_eq!(d("v1.9.3"), "keep");
    assert_eq!(d("v1.2.2"), "remove");
    assert_eq!(
        d("v2.0.0-rc.2"),
        "remove",
        "pre-releases neither count nor are kept"
    );
    // Per minor line, newest patch.
    let policy = header("")
        + r#"policies:
  - id: rel
    scope: {repositories: ["glob:rel"]}
    select: {tags: ["regex:v(?P<major>\\d+)\\.(?P<minor>\\d+)\\.\\d+(-.*)?"]}
    keep:
      - id: newest-patch-per-minor
        group_by: [major, minor]
        order_by: semver
        last: 1
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(20));
    let d = |t: &str| tag_decision(&inv, &o, &format!("rel:{t}"));
    assert_eq!(d("v1.2.2"), "keep");
    assert_eq!(d("v1.2.1"), "remove");
    assert_eq!(d("v2.0.0-rc.2"), "keep", "rc.2 > rc.1 in the 2.0 line");
    assert_eq!(d("v2.0.0-rc.1"), "remove");
}

#[test]
fn natural_order() {
    let mut r = Reg::new();
    for (i, t) in ["build-9", "build-10", "build-100", "build-11"]
        .iter()
        .enumerate()
    {
        r.push("n", Some(t), i as i64);
    }
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: n
    scope: {repositories: ["glob:n"]}
    keep:
      - id: top-2
        order_by: natural
        last: 2
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(20));
    let d = |t: &str| tag_decision(&inv, &o, &format!("n:{t}"));
    assert_eq!(d("build-100"), "keep");
    assert_eq!(d("build-11"), "keep");
    assert_eq!(d("build-10"), "remove");
    assert_eq!(d("build-9"), "remove");
}

#[test]
fn calendar_buckets() {
    let mut r = Reg::new();
    // Two builds a day for 40 days.
    for day in 0..40 {
        r.push("c", Some(&format!("d{day}-a")), day);
        let w = r.push("c", None, day);
        r.tag("c", &format!("d{day}-b"), &w, day);
    }
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: c
    scope: {repositories: ["glob:c"]}
    keep:
      - id: buckets
        calendar: {daily: 3, monthly: 2}
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(50));
    let kept: Vec<String> = decisions(&inv, &o)
        .into_iter()
        .filter(|(k, v)| k.starts_with("c:") && v == "keep")
        .map(|(k, _)| k)
        .collect();
    // Daily: newest of days 39, 38, 37 (the "b" tags sort after "a": ties broken by name,
    // newest first). Monthly: the newest of the last two months that have builds. T0 is
    // 2026-06-01, so days 0..29 are June and 30..39 July: newest of July is day 39 (already
    // kept), newest of June is day 29.
    assert_eq!(
        kept,
        vec!["c:d29-b", "c:d37-b", "c:d38-b", "c:d39-b"],
        "{kept:?}"
    );
}

/// Review finding 8 (issue 23): calendar periods counted tags, not images, so the other
/// tags of a kept image were removed (and an image tagged twice could hold two periods).
#[test]
fn calendar_counts_images_and_keeps_every_tag_of_a_kept_image() {
    let mut r = Reg::new();
    for day in 0..5 {
        let w = r.push("c", Some(&format!("v{day}")), day);
        r.tag("c", &format!("sha-{day}"), &w, day);
    }
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: c
    scope: {repositories: ["glob:c"]}
    keep:
      - id: buckets
        calendar: {daily: 2}
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(10));
    let kept: Vec<String> = decisions(&inv, &o)
        .into_iter()
        .filter(|(k, v)| k.starts_with("c:") && v == "keep")
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept, vec!["c:sha-3", "c:sha-4", "c:v3", "c:v4"], "{kept:?}");
}

#[test]
fn relative_to_group_latest_keeps_idle_history() {
    let (r, _) = ci_registry();
    let inv = r.scan();
    let p = |rel: &str| {
        header("")
            + &format!("settings:\n  relative_to: {rel}\n")
            + r#"policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    keep:
      - id: young
        within: 2d
    otherwise: delete
"#
    };
    // Nothing was pushed for 100 days: measured from now, everything is old...
    let o = eval(&inv, &p("now"), at(100));
    assert_eq!(tag_decision(&inv, &o, "apps/api:main-fffffff"), "remove");
    // ...measured from the newest image, the last two days of builds stay.
    let o = eval(&inv, &p("group_latest"), at(100));
    assert_eq!(tag_decision(&inv, &o, "apps/api:main-fffffff"), "keep");
    assert_eq!(tag_decision(&inv, &o, "apps/api:main-eeeeeee"), "keep");
    assert_eq!(tag_decision(&inv, &o, "apps/api:main-ddddddd"), "remove");
}

#[test]
fn untagged_images_and_untag() {
    let mut r = Reg::new();
    let old = r.push("u", None, 0);
    let newer = r.push("u", None, 8);
    let both = r.push("u", Some("keepme"), 1);
    r.tag("u", "dropme", &both, 1);
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: untagged
    scope: {repositories: ["glob:**"]}
    select: {tag_state: untagged}
    delete:
      - id: old
        older_than: 7d
    otherwise: keep
  - id: tags
    scope: {repositories: ["glob:**"]}
    select: {tags: ["glob:keep*"]}
    keep:
      - id: named
        when: {tag: "glob:keepme"}
    otherwise: keep
  - id: drop
    scope: {repositories: ["glob:**"]}
    select: {tags: ["glob:drop*"]}
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(10));
    assert_eq!(image_decision(&inv, &o, "u", &old), Decision::Delete);
    assert_eq!(
        image_decision(&inv, &o, "u", &newer),
        Decision::Keep,
        "2 days old"
    );
    assert_eq!(image_decision(&inv, &o, "u", &both), Decision::Untag);
    assert_eq!(tag_decision(&inv, &o, "u:dropme"), "remove");
    assert_eq!(tag_decision(&inv, &o, "u:keepme"), "keep");
    // untag: false keeps tags whose digest stays.
    let o = eval(
        &inv,
        &policy.replace("policies:", "settings:\n  untag: false\npolicies:"),
        at(10),
    );
    assert_eq!(image_decision(&inv, &o, "u", &both), Decision::Keep);
    assert_eq!(tag_decision(&inv, &o, "u:dropme"), "keep");
}

#[test]
fn index_children_are_never_images_and_cascade_with_their_index() {
    let mut r = Reg::new();
    let (old_index, a, b) = r.push_index("m", Some("old"), 0);
    let (new_index, _, _) = r.push_index("m", Some("new"), 5);
    // Another index in another repository references child `a` too: it must survive.
    let a2 = r.t.index("other", Some("x"), &[(&a, "amd64")]);
    r.t.manifest(
        "other",
        None,
        &std::fs::read(r.t.path(&stowage_layout::blob_data(&a.digest))).unwrap(),
    );
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: all
    scope: {repositories: ["glob:m"]}
    keep:
      - id: newest
        last: 1
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(10));
    // Only the two indexes are images; the children are not counted (`last: 1` keeps the
    // newest index with both its children).
    let ms: Vec<_> = o
        .images
        .iter()
        .filter(|i| inv.repositories[i.repo as usize].name.as_str() == "m")
        .collect();
    assert_eq!(ms.len(), 2, "{ms:#?}");
    assert_eq!(image_decision(&inv, &o, "m", &new_index), Decision::Keep);
    assert_eq!(image_decision(&inv, &o, "m", &old_index), Decision::Delete);
    let dec = decisions(&inv, &o);
    let short = |w: &stowage_testkit::Written| w.digest().to_string()[7..19].to_string();
    assert_eq!(dec[&format!("m@{} (child)", short(&b))], "delete");
    assert_eq!(
        dec[&format!("m@{} (child)", short(&a))],
        "keep",
        "an index of another repository still references it"
    );
    let _ = a2;
}

#[test]
fn referrers_follow_their_subject_and_orphans_are_selectable() {
    let mut r = Reg::new();
    let old = r.push("s", Some("old"), 0);
    let sig_old = r.referrer("s", &old, 0);
    let new = r.push("s", Some("new"), 5);
    let sig_new = r.referrer("s", &new, 5);
    // An orphaned signature: its subject is not in this repository.
    let elsewhere = r.push("t", Some("x"), 0);
    let orphan = r.referrer("s", &elsewhere, 0);
    // A cosign-style tag on the old image's signature.
    r.tag(
        "s",
        &format!("sha256-{}.sig", &old.digest.to_string()[7..]),
        &sig_old,
        0,
    );
    let inv = r.scan();
    let policy = header("")
        + r#"policies:
  - id: imgs
    scope: {repositories: ["glob:s"]}
    keep:
      - id: newest
        last: 1
    otherwise: delete
  - id: orphans
    scope: {repositories: ["glob:s"]}
    select: {referrers: orphaned}
    delete:
      - id: old-orphans
        older_than: 7d
    otherwise: keep
"#;
    let o = eval(&inv, &policy, at(10));
    let dec = decisions(&inv, &o);
    let short = |w: &stowage_testkit::Written| w.digest().to_string()[7..19].to_string();
    // Images: old (deleted), new (kept), orphan (a referrer image of its own).
    let images: Vec<_> = o
        .images
        .iter()
        .filter(|i| inv.repositories[i.repo as usize].name.as_str() == "s")
        .collect();
    assert_eq!(images.len(), 3, "{dec:#?}");
    assert_eq!(image_decision(&inv, &o, "s", &old), Decision::Delete);
    assert_eq!(dec[&format!("s@{} (referrer)", short(&sig_old))], "delete");
    assert_eq!(image_decision(&inv, &o, "s", &new), Decision::Keep);
    assert!(
        !dec.contains_key(&format!("s@{} (referrer)", short(&sig_new))),
        "kept subject: no cascade"
    );
    assert_eq!(image_decision(&inv, &o, "s", &orphan), Decision::Delete);
    assert!(
        o.images.iter().any(|i| i
            .cascade
            .iter()
            .any(|c| c.tags.iter().any(|t| t.tag.ends_with(".sig") && t.remove))),
        "the cosign tag goes with its signature"
    );
}

#[test]
fn missing_time_means_keep_and_created_is_a_time_source() {
    let mut r = Reg::new();
    let a = r.push("c", Some("a"), 0);
    let b = r.push("c", Some("b"), 1);
    let inv = r.scan();
    let policy = header("")
        + r#"settings:
  time_source: created
policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    delete:
      - id: old
        older_than: 30d
    otherwise: keep
"#;
    // No created times known: nothing is deleted, and the count says why.
    let o = eval(&inv, &policy, at(100));
    assert_eq!(image_decision(&inv, &o, "c", &a), Decision::Keep);
    // With `a` created long ago and `b` recently: only `a` goes.
    let mut created = std::collections::HashMap::new();
    created.insert(inv.id_of(&a.digest()).unwrap(), at(-400));
    created.insert(inv.id_of(&b.digest()).unwrap(), at(99));
    let o = eval_with(&inv, &policy, at(100), &[], &created).unwrap();
    assert_eq!(image_decision(&inv, &o, "c", &a), Decision::Delete);
    assert_eq!(image_decision(&inv, &o, "c", &b), Decision::Keep);
    // missing_time: error refuses the plan.
    let strict = policy.replace(
        "time_source: created",
        "time_source: created\n  missing_time: error",
    );
    assert!(eval_with(&inv, &strict, at(100), &[], &Default::default()).is_err());
}
