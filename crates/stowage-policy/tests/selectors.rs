//! Table tests for the rules added with issue 23: `calendar_within`, the platform, size,
//! annotation and label selectors, and counting across repositories; each at two `now`
//! values where time matters, plus the errors the compiler names.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use stowage_graph::Graph;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_policy::eval::{Inputs, ManifestFacts, Outcome};
use stowage_testkit::Written;

fn eval_facts(
    inv: &Inventory,
    yaml: &str,
    now: Timestamp,
    facts: &[(&Written, ManifestFacts)],
) -> Outcome {
    let p = compile(yaml);
    let g = Graph::new(inv);
    let facts: HashMap<u32, ManifestFacts> = facts
        .iter()
        .map(|(w, f)| (inv.id_of(&w.digest()).unwrap(), f.clone()))
        .collect();
    stowage_policy::evaluate(
        &p,
        &Inputs {
            graph: &g,
            now,
            created: &HashMap::new(),
            built: &HashMap::new(),
            facts: &facts,
            in_use: &[],
            unsafe_allow_empty: true,
            pulls: None,
        },
    )
    .unwrap()
}

fn policy(select: &str, rules: &str) -> String {
    header("")
        + &format!(
            "policies:\n  - id: p\n    scope: {{repositories: [\"glob:**\"]}}\n    select: {select}\n{rules}"
        )
}

#[test]
fn calendar_within_keeps_one_per_period_inside_the_window() {
    let mut r = Reg::new();
    for d in 0..10 {
        r.push("apps/api", Some(&format!("b{d}")), d);
    }
    let inv = r.scan();
    let yaml = policy(
        "{tags: [\"glob:b*\"]}",
        "    keep:\n      - id: daily-3d\n        calendar_within: {daily: 3d}\n    otherwise: delete\n",
    );
    // (now, tags kept): ages under 3 days, one per day.
    for (now, kept) in [(at(10), vec!["b8", "b9"]), (at(11), vec!["b9"])] {
        let o = eval(&inv, &yaml, now);
        for d in 0..10 {
            let t = format!("b{d}");
            let want = if kept.contains(&t.as_str()) {
                "keep"
            } else {
                "remove"
            };
            assert_eq!(
                tag_decision(&inv, &o, &format!("apps/api:{t}")),
                want,
                "{t} at {now:?}"
            );
        }
    }
    // Weekly buckets within 3 weeks: the newest image of each ISO week still in the window.
    let yaml = policy(
        "{tags: [\"glob:b*\"]}",
        "    keep:\n      - id: weekly\n        calendar_within: {weekly: 3w}\n    otherwise: delete\n",
    );
    let o = eval(&inv, &yaml, at(10));
    // T0 is Monday 2026-06-01: days 0..6 are one ISO week, 7..9 the next.
    assert_eq!(tag_decision(&inv, &o, "apps/api:b6"), "keep");
    assert_eq!(tag_decision(&inv, &o, "apps/api:b9"), "keep");
    assert_eq!(tag_decision(&inv, &o, "apps/api:b5"), "remove");
    let o = eval(&inv, &yaml, at(29));
    assert_eq!(
        tag_decision(&inv, &o, "apps/api:b6"),
        "remove",
        "23 days old"
    );
    assert_eq!(tag_decision(&inv, &o, "apps/api:b9"), "keep", "20 days old");
    let o = eval(&inv, &yaml, at(30));
    assert_eq!(
        tag_decision(&inv, &o, "apps/api:b9"),
        "remove",
        "21 days: not within 3w"
    );
}

#[test]
fn platform_selector_matches_index_children_and_single_images_by_their_config() {
    let mut r = Reg::new();
    let (index, _, _) = r.push_index("apps/multi", Some("m"), 0);
    let arm = r.push("apps/single", Some("arm"), 0);
    let amd = r.push("apps/single", Some("amd"), 0);
    let unknown = r.push("apps/single", Some("unknown"), 0);
    let inv = r.scan();
    let facts = |p: &str| ManifestFacts {
        platform: Some(p.into()),
        ..Default::default()
    };
    let known = [(&arm, facts("linux/arm64")), (&amd, facts("linux/amd64"))];
    let yaml = policy(
        "{platforms: [\"linux/arm64\"]}",
        "    delete:\n      - id: old\n        older_than: 3d\n    otherwise: keep\n",
    );
    // Day 1: nothing old enough. Day 5: every arm64 image goes.
    let o = eval_facts(&inv, &yaml, at(1), &known);
    assert_eq!(
        image_decision(&inv, &o, "apps/multi", &index),
        stowage_policy::Decision::Keep
    );
    assert_eq!(tag_decision(&inv, &o, "apps/single:arm"), "keep");
    let o = eval_facts(&inv, &yaml, at(5), &known);
    assert_eq!(
        image_decision(&inv, &o, "apps/multi", &index),
        stowage_policy::Decision::Delete,
        "an arm64 child"
    );
    assert_eq!(tag_decision(&inv, &o, "apps/single:arm"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/single:amd"), "keep");
    assert_eq!(
        tag_decision(&inv, &o, "apps/single:unknown"),
        "keep",
        "platform unknown: not selected"
    );
    let _ = unknown;
    // Exclusions: everything but arm (the index has an arm child, so it is excluded too).
    let yaml = policy(
        "{platforms: [\"glob:linux/*\", \"!linux/arm64\"]}",
        "    delete:\n      - id: old\n        older_than: 3d\n    otherwise: keep\n",
    );
    let o = eval_facts(&inv, &yaml, at(5), &known);
    assert_eq!(
        image_decision(&inv, &o, "apps/multi", &index),
        stowage_policy::Decision::Keep
    );
    assert_eq!(tag_decision(&inv, &o, "apps/single:amd"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/single:arm"), "keep");
}

#[test]
fn size_selector_compares_the_bytes_an_image_references() {
    let mut r = Reg::new();
    let small = r.push("apps/api", Some("small"), 0);
    let big = r.push("apps/api", Some("big"), 0);
    let inv = r.scan();
    let g = Graph::new(&inv);
    // The pushes differ by a byte of layer (and config): sizes from the graph.
    let size = |w: &Written| {
        let id = inv.id_of(&w.digest()).unwrap();
        let mut total = g.size(id);
        for c in g.refs(id) {
            total += g.size(c);
        }
        total
    };
    assert!(size(&small) < size(&big));
    let yaml = policy(
        &format!("{{size: {{larger_than: \"{}\"}}}}", size(&small)),
        "    delete:\n      - id: old\n        older_than: 2d\n    otherwise: keep\n",
    );
    for (now, big_tag) in [(at(1), "keep"), (at(3), "remove")] {
        let o = eval(&inv, &yaml, now);
        assert_eq!(tag_decision(&inv, &o, "apps/api:big"), big_tag);
        assert_eq!(
            tag_decision(&inv, &o, "apps/api:small"),
            "keep",
            "not larger than itself"
        );
    }
    let yaml = policy(
        &format!("{{size: {{smaller_than: \"{}\"}}}}", size(&big)),
        "    delete:\n      - id: old\n        older_than: 2d\n    otherwise: keep\n",
    );
    let o = eval(&inv, &yaml, at(3));
    assert_eq!(tag_decision(&inv, &o, "apps/api:small"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/api:big"), "keep");
}

#[test]
fn annotation_and_label_selectors() {
    let mut r = Reg::new();
    let tmp = r.push("apps/api", Some("tmp"), 0);
    let rel = r.push("apps/api", Some("rel"), 0);
    let bare = r.push("apps/api", Some("bare"), 0);
    let inv = r.scan();
    let f = |ann: &[(&str, &str)], labels: &[(&str, &str)]| ManifestFacts {
        platform: None,
        annotations: Some(
            ann.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    };
    let facts = [
        (
            &tmp,
            f(&[("com.example.tier", "temporary")], &[("stage", "ci")]),
        ),
        (
            &rel,
            f(&[("com.example.tier", "release")], &[("stage", "release")]),
        ),
        (&bare, f(&[], &[])),
    ];
    let yaml = policy(
        "{annotations: {com.example.tier: \"regex:temp.*\"}}",
        "    delete:\n      - id: old\n        older_than: 1d\n    otherwise: keep\n",
    );
    let o = eval_facts(&inv, &yaml, at(0), &facts);
    assert_eq!(
        tag_decision(&inv, &o, "apps/api:tmp"),
        "keep",
        "not old yet"
    );
    let o = eval_facts(&inv, &yaml, at(2), &facts);
    assert_eq!(tag_decision(&inv, &o, "apps/api:tmp"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/api:rel"), "keep");
    assert_eq!(
        tag_decision(&inv, &o, "apps/api:bare"),
        "keep",
        "no annotation: not selected"
    );
    // Labels, and `!` matching images without the label.
    let yaml = policy(
        "{labels: {stage: \"!release\"}}",
        "    delete:\n      - id: old\n        older_than: 1d\n    otherwise: keep\n",
    );
    let o = eval_facts(&inv, &yaml, at(2), &facts);
    assert_eq!(tag_decision(&inv, &o, "apps/api:tmp"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/api:bare"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/api:rel"), "keep");
    // Facts never read (an unreadable config): nothing is selected by labels at all.
    let o = eval_facts(&inv, &yaml, at(2), &[]);
    assert_eq!(tag_decision(&inv, &o, "apps/api:bare"), "keep");
    // Read, but the config failed (labels `None`): unknown, not "no labels" (review of
    // issue 23, finding 3).
    let unread = ManifestFacts {
        labels: None,
        ..f(&[], &[])
    };
    let o = eval_facts(&inv, &yaml, at(2), &[(&bare, unread)]);
    assert_eq!(tag_decision(&inv, &o, "apps/api:bare"), "keep");
}

#[test]
fn counting_across_repositories_groups_by_capture_over_the_scope() {
    let mut r = Reg::new();
    for (i, repo) in ["apps/a", "apps/a", "apps/a", "apps/b", "apps/b", "apps/b"]
        .iter()
        .enumerate()
    {
        r.push(repo, Some(&format!("main-{i}")), i as i64);
    }
    r.push("apps/b", Some("dev-9"), 0);
    let inv = r.scan();
    let rules = |across: bool| {
        format!(
            "    keep:\n      - id: last-3\n        group_by: [branch]\n        across_repositories: {across}\n        all: [{{last: 3}}, {{within: 4d}}]\n    otherwise: delete\n"
        )
    };
    let sel = "{tags: [\"regex:(?P<branch>[a-z]+)-[0-9]+\"]}";
    // Across: the newest three main builds are all in apps/b.
    let o = eval(&inv, &policy(sel, &rules(true)), at(6));
    for (t, want) in [
        ("apps/a:main-0", "remove"),
        ("apps/a:main-2", "remove"),
        ("apps/b:main-3", "keep"),
        ("apps/b:main-5", "keep"),
    ] {
        assert_eq!(tag_decision(&inv, &o, t), want, "{t}");
    }
    // Later, `within: 4d` leaves only the newest.
    let o = eval(&inv, &policy(sel, &rules(true)), at(8));
    assert_eq!(tag_decision(&inv, &o, "apps/b:main-3"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/b:main-5"), "keep");
    // Per repository (the default): apps/a keeps its own newest builds.
    let o = eval(&inv, &policy(sel, &rules(false)), at(5));
    assert_eq!(tag_decision(&inv, &o, "apps/a:main-2"), "keep");
    assert_eq!(
        tag_decision(&inv, &o, "apps/a:main-1"),
        "remove",
        "4 days old"
    );
    assert_eq!(
        tag_decision(&inv, &o, "apps/a:main-0"),
        "remove",
        "5 days old"
    );
    let o = eval(&inv, &policy(sel, &rules(true)), at(5));
    assert_eq!(
        tag_decision(&inv, &o, "apps/a:main-2"),
        "remove",
        "across: not among the newest 3"
    );
}

#[test]
fn new_rules_are_checked_when_compiled() {
    for (select, rules, want) in [
        (
            "{size: {}}",
            "    delete: [{id: x, older_than: 1d}]\n    otherwise: keep\n",
            "select.size: empty",
        ),
        (
            "{size: {larger_than: 2MB, smaller_than: 1MB}}",
            "    delete: [{id: x, older_than: 1d}]\n    otherwise: keep\n",
            "select nothing",
        ),
        (
            "{size: {larger_than: 2XB}}",
            "    delete: [{id: x, older_than: 1d}]\n    otherwise: keep\n",
            "select.size.larger_than",
        ),
        (
            "{platforms: [\"regex:(\"]}",
            "    delete: [{id: x, older_than: 1d}]\n    otherwise: keep\n",
            "select.platforms",
        ),
        (
            "{labels: {\"\": x}}",
            "    delete: [{id: x, older_than: 1d}]\n    otherwise: keep\n",
            "an empty key",
        ),
        (
            "{}",
            "    keep: [{id: x, calendar_within: {daily: soon}}]\n    otherwise: delete\n",
            "calendar_within.daily",
        ),
        (
            "{}",
            "    keep: [{id: x, calendar_within: {}}]\n    otherwise: delete\n",
            "calendar_within: no bucket",
        ),
        (
            "{}",
            "    keep: [{id: x, group_by: [repository], across_repositories: true, last: 1}]\n    otherwise: delete\n",
            "contradict",
        ),
        (
            "{}",
            "    keep: [{id: x, last: 1, calendar_within: {daily: 3d}}]\n    otherwise: delete\n",
            "side by side",
        ),
    ] {
        let e = compile_err(&policy(select, rules));
        assert!(e.contains(want), "{want:?} not in {e}");
    }
}

#[test]
fn counting_across_repositories_without_a_group_is_linted() {
    let yaml = policy(
        "{}",
        "    keep: [{id: x, across_repositories: true, last: 3}]\n    otherwise: delete\n",
    );
    let f = stowage_policy::parse(&yaml).unwrap();
    let codes: Vec<&str> = stowage_policy::lint::lint(&f)
        .iter()
        .map(|l| l.code)
        .collect();
    assert!(
        codes.contains(&"across-repositories-ungrouped"),
        "{codes:?}"
    );
}

/// A cosign signature tag `sha256-<subject hex>.sig` in `sigs/app`, its subject in
/// `apps/app`.
fn cosign_elsewhere(r: &mut Reg, subject: &Written, day: i64) -> Written {
    let sig = r.push("sigs/app", None, day);
    let tag = format!("sha256-{}.sig", &subject.digest.to_string()[7..]);
    r.tag("sigs/app", &tag, &sig, day);
    sig
}

#[test]
fn signatures_in_another_repository_follow_their_subject() {
    let mut r = Reg::new();
    let app = r.push("apps/app", Some("1.0"), 0);
    let gone = r.push("apps/other", None, 0);
    cosign_elsewhere(&mut r, &app, 0);
    cosign_elsewhere(&mut r, &gone, 0);
    let inv = r.scan();
    // Make `gone`'s subject unlinked: remove its revision from apps/other.
    drop(inv);
    std::fs::remove_dir_all(
        r.t.path(&stowage_layout::revision_link("apps/other", &gone.digest()))
            .parent()
            .unwrap(),
    )
    .unwrap();
    let inv = r.scan();
    let orphans = "    select: {referrers: orphaned}\n";
    let yaml = |extra: &str| {
        header("").replace(
            "protections:",
            &format!("settings:\n  cosign_repositories: [{extra}]\nprotections:"),
        ) + "policies:\n  - id: p\n    scope: {repositories: [\"glob:sigs/**\"]}\n"
            + orphans
            + "    delete: [{id: old, older_than: 1d}]\n    otherwise: keep\n"
    };
    let tag_of = |w: &Written| format!("sigs/app:sha256-{}.sig", &w.digest.to_string()[7..]);
    // Named as a signature repository: the live subject's signature stays, the orphan goes.
    for now in [at(0), at(3)] {
        let o = eval(&inv, &yaml("\"glob:sigs/**\""), now);
        assert_eq!(tag_decision(&inv, &o, &tag_of(&app)), "keep");
        let want = if now == at(0) { "keep" } else { "remove" };
        assert_eq!(tag_decision(&inv, &o, &tag_of(&gone)), want, "{now:?}");
    }
    // Not named: both look orphaned here, and the plan says why that may be wrong.
    let o = eval(&inv, &yaml(""), at(3));
    assert_eq!(tag_decision(&inv, &o, &tag_of(&app)), "remove");
    assert!(
        o.warnings
            .iter()
            .any(|w| w.contains("sigs/app") && w.contains("cosign_repositories")),
        "{:?}",
        o.warnings
    );
}

/// Review of issue 23, finding 1: a scan that could not read every repository cannot tell
/// that a signature in a signature repository is orphaned: its subject may be linked in
/// the part not read. Kept, in both shapes of a partial scan.
#[test]
fn partial_scan_signature_looks_orphaned() {
    let mut r = Reg::new();
    let app = r.push("apps/api", Some("1.0"), 0);
    cosign_elsewhere(&mut r, &app, 0);
    let full = r.scan();
    let yaml = header("").replace(
        "protections:",
        "settings:\n  cosign_repositories: [\"glob:sigs/**\"]\nprotections:",
    ) + "policies:\n  - id: p\n    scope: {repositories: [\"glob:sigs/**\"]}\n    select: {referrers: orphaned}\n    delete: [{id: old, older_than: 1d}]\n    otherwise: keep\n";
    let tag = format!("sigs/app:sha256-{}.sig", &app.digest.to_string()[7..]);
    // Complete: the subject is linked, the signature stays.
    assert_eq!(
        tag_decision(&full, &eval(&full, &yaml, at(3)), &tag),
        "keep"
    );
    // apps/ could not be listed: apps/api is not in the inventory at all.
    let mut unlisted = full.clone();
    unlisted
        .repositories
        .retain(|x| x.name.as_str() != "apps/api");
    unlisted.unlisted.push("apps".into());
    // apps/api was read, but not completely: its revisions are missing.
    let mut incomplete = full.clone();
    for x in incomplete.repositories.iter_mut() {
        if x.name.as_str() == "apps/api" {
            x.complete = false;
            x.revisions_listed = false;
            x.revisions.clear();
            x.tags.clear();
        }
    }
    for inv in [&unlisted, &incomplete] {
        let o = eval(inv, &yaml, at(3));
        assert_eq!(tag_decision(inv, &o, &tag), "keep", "{:#?}", o.images);
        let im = o
            .images
            .iter()
            .find(|i| i.tags.iter().any(|t| tag.ends_with(&t.tag)));
        assert!(
            im.unwrap()
                .reasons
                .iter()
                .any(|w| w.contains("not read completely")),
            "{:?}",
            im.unwrap().reasons
        );
    }
}

/// Review of issue 23, finding 1 (second part): signatures of images linked in other
/// repositories, in a repository not named in `settings.cosign_repositories`, look orphaned;
/// a referrers policy that would delete them blocks the plan instead of only warning.
#[test]
fn unnamed_signature_repository_deletion_blocks() {
    let mut r = Reg::new();
    let app = r.push("apps/app", Some("1.0"), 0);
    cosign_elsewhere(&mut r, &app, 0);
    let inv = r.scan();
    for select in ["{referrers: orphaned}", "{referrers: any}"] {
        let yaml = header("")
            + "policies:\n  - id: p\n    scope: {repositories: [\"glob:sigs/**\"]}\n    select: "
            + select
            + "\n    delete: [{id: old, older_than: 1d}]\n    otherwise: keep\n";
        let o = eval(&inv, &yaml, at(3));
        assert!(
            o.blocked
                .iter()
                .any(|b| b.contains("sigs/app") && b.contains("cosign_repositories")),
            "{select}: {:?}",
            o.blocked
        );
    }
    // Nothing would go: a warning, no block.
    let yaml = header("")
        + "policies:\n  - id: p\n    scope: {repositories: [\"glob:sigs/**\"]}\n    select: {referrers: orphaned}\n    delete: [{id: old, older_than: 30d}]\n    otherwise: keep\n";
    let o = eval(&inv, &yaml, at(3));
    assert!(o.blocked.is_empty(), "{:?}", o.blocked);
    assert!(!o.warnings.is_empty());
}

/// Review of issue 23, finding 6: `monthly: 6m` is six minutes (humantime: `m` = minutes), a
/// window shorter than one period of its bucket: refused, with the units named. `1M` (a month)
/// and `1y` are fine.
#[test]
fn calendar_within_window_shorter_than_period_refused() {
    let rule = |cal: &str| {
        policy(
            "{}",
            &format!("    keep: [{{id: x, calendar_within: {cal}}}]\n    otherwise: delete\n"),
        )
    };
    for (cal, want) in [
        ("{monthly: 6m}", "shorter than one month period"),
        ("{daily: 12h}", "shorter than one day period"),
        ("{yearly: 11M}", "shorter than one year period"),
    ] {
        let err = compile_err(&rule(cal));
        assert!(
            err.contains(want) && err.contains("M = months"),
            "{cal}: {err}"
        );
    }
    for ok in ["{monthly: 6M}", "{yearly: 1y}", "{weekly: 1w, hourly: 1h}"] {
        compile(&rule(ok));
    }
}

/// Review of issue 23, finding 7: the shadowed-keep lint ignored `across_repositories`: a
/// per-repository `last: 3` is not shadowed by `last: 5, across_repositories: true` (the
/// latest 5 over all repositories may hold none of a repository's images); same for `within`.
#[test]
fn shadowed_keep_lint_ignores_across_repositories() {
    let lint = |keep: &str| -> Vec<&'static str> {
        let f = stowage_policy::parse(&policy(
            "{}",
            &format!("    keep:\n{keep}    otherwise: delete\n"),
        ))
        .unwrap();
        stowage_policy::lint::lint(&f)
            .iter()
            .map(|l| l.code)
            .collect()
    };
    for keep in [
        "      - {id: repo, last: 3}\n      - {id: all, last: 5, across_repositories: true}\n",
        "      - {id: repo, within: 3d}\n      - {id: all, within: 5d, across_repositories: true}\n",
    ] {
        assert!(!lint(keep).contains(&"shadowed-keep"), "{keep}");
    }
    // Both across repositories: still shadowed.
    let both = "      - {id: a, last: 3, across_repositories: true}\n      - {id: b, last: 5, across_repositories: true}\n";
    assert!(lint(both).contains(&"shadowed-keep"));
}
