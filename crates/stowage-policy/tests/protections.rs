//! Protections no rule can override, errors, and limits.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use stowage_policy::LoadedSource;
use stowage_policy::eval::Decision;
use stowage_policy::file::SourceFormat;
use stowage_policy::refs::parse_source;

const DELETE_ALL: &str = r#"policies:
  - id: all
    scope: {repositories: ["glob:**"]}
    delete:
      - id: everything
        older_than: 0s
    otherwise: keep
"#;

fn source(name: &str, format: SourceFormat, text: &str, modified: i64) -> LoadedSource {
    LoadedSource {
        name: name.into(),
        path: format!("/in-use/{name}"),
        refs: parse_source(format, text),
        modified: Some(at(modified)),
        sha256: "x".into(),
    }
}

fn registry() -> (Reg, Vec<stowage_testkit::Written>) {
    let mut r = Reg::new();
    let ws = vec![
        r.push("apps/api", Some("1.0"), 0),
        r.push("apps/api", Some("1.1"), 1),
        r.push("apps/api", Some("latest"), 2),
        r.push("apps/web", Some("a"), 0),
        r.push("apps/web", Some("b"), 1),
    ];
    (r, ws)
}

#[test]
fn keep_newest_per_repository_default_is_one() {
    let (r, ws) = registry();
    let inv = r.scan();
    let policy = "apiVersion: retention.v1\nkind: RetentionPolicy\n".to_string() + DELETE_ALL;
    let o = eval(&inv, &policy, at(10));
    assert_eq!(image_decision(&inv, &o, "apps/api", &ws[2]), Decision::Keep);
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &ws[1]),
        Decision::Delete
    );
    assert_eq!(image_decision(&inv, &o, "apps/web", &ws[4]), Decision::Keep);
    assert!(o.blocked.is_empty());
    assert!(
        reasons_of_tag(&inv, &o, "apps/api", "latest")
            .iter()
            .any(|r| r.contains("keep_newest_per_repository(1)"))
    );
}

#[test]
fn emptying_a_repository_is_blocked_without_both_opt_ins() {
    let (r, _) = registry();
    let inv = r.scan();
    let o = eval(&inv, &(header("") + DELETE_ALL), at(10));
    assert_eq!(o.blocked.len(), 2, "{:?}", o.blocked);
    assert!(o.blocked[0].contains("every image would be deleted"));
}

#[test]
fn immutable_tags_pins_and_expiry() {
    let (r, ws) = registry();
    let inv = r.scan();
    let prot = r#"  immutable_tags: ["glob:latest", "regex:1\\.\\d+"]
  pins:
    - ref: "apps/web:a"
      until: "2026-06-08T00:00:00Z"
      reason: "legal hold"
"#;
    let policy = header(prot) + DELETE_ALL;
    let o = eval(&inv, &policy, at(5));
    for w in &ws[..3] {
        assert_eq!(image_decision(&inv, &o, "apps/api", w), Decision::Keep);
    }
    assert_eq!(
        image_decision(&inv, &o, "apps/web", &ws[3]),
        Decision::Keep,
        "pinned until day 7"
    );
    assert!(
        reasons_of_tag(&inv, &o, "apps/web", "a")
            .iter()
            .any(|r| r.contains("pin(apps/web:a: legal hold)"))
    );
    assert_eq!(
        image_decision(&inv, &o, "apps/web", &ws[4]),
        Decision::Delete
    );
    // After the pin expires it no longer protects, and says so.
    let o = eval(&inv, &policy, at(8));
    assert_eq!(
        image_decision(&inv, &o, "apps/web", &ws[3]),
        Decision::Delete
    );
    assert!(o.warnings.iter().any(|w| w.contains("expired")));
}

#[test]
fn grace_period() {
    let (r, ws) = registry();
    let inv = r.scan();
    let policy = header("  grace_period: 36h") + DELETE_ALL;
    // At day 2.5, the image pushed on day 2 (and only it) is within 36h.
    let now = stowage_model::time::Timestamp::from_secs(T0 + 2 * DAY + DAY / 2);
    let o = eval(&inv, &policy, now);
    assert_eq!(image_decision(&inv, &o, "apps/api", &ws[2]), Decision::Keep);
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &ws[1]),
        Decision::Delete,
        "exactly 36h old: outside the window"
    );
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &ws[0]),
        Decision::Delete
    );
}

#[test]
fn in_use_sources_protect_tags_digests_and_config_ids() {
    let (r, ws) = registry();
    let inv = r.scan();
    let prot = r#"  in_use:
    max_age: 2h
    registry_aliases: ["registry.example.com:5000"]
    sources:
      - {name: refs, format: image-refs, path: refs.txt}
      - {name: k8s, format: kubernetes-pods-json, path: pods.json}
"#;
    let policy = header(prot) + DELETE_ALL;
    let refs = format!(
        "registry.example.com:5000/apps/api:1.0\nother.example.com/apps/api:1.1\napps/web@{}\n",
        ws[3].digest()
    );
    // A pod whose spec names a moved tag but whose status names the digest actually running.
    let pods = format!(
        r#"{{"items":[{{"spec":{{"containers":[{{"image":"registry.example.com:5000/apps/api:nonexistent"}}]}},
            "status":{{"containerStatuses":[{{"image":"x","imageID":"docker-pullable://registry.example.com:5000/apps/web@{}"}}]}}}}]}}"#,
        ws[4].digest()
    );
    let now = at(10);
    let sources = vec![
        source("refs", SourceFormat::ImageRefs, &refs, 10),
        source("k8s", SourceFormat::KubernetesPodsJson, &pods, 10),
    ];
    let o = eval_with(&inv, &policy, now, &sources, &Default::default()).unwrap();
    assert_eq!(image_decision(&inv, &o, "apps/api", &ws[0]), Decision::Keep);
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &ws[1]),
        Decision::Delete,
        "a reference to another registry protects nothing here"
    );
    assert_eq!(image_decision(&inv, &o, "apps/web", &ws[3]), Decision::Keep);
    assert_eq!(
        image_decision(&inv, &o, "apps/web", &ws[4]),
        Decision::Keep,
        "status imageID"
    );
    assert!(
        reasons_of_tag(&inv, &o, "apps/web", "b")
            .iter()
            .any(|r| r == "keep: protection/in_use(k8s)")
    );
    let st = o.sources.iter().find(|s| s.name == "refs").unwrap();
    assert_eq!((st.refs, st.resolved), (3, 2));
    // A stale source aborts the plan (required by default).
    let stale = vec![
        source("refs", SourceFormat::ImageRefs, &refs, 9),
        source("k8s", SourceFormat::KubernetesPodsJson, &pods, 10),
    ];
    let e = eval_with(&inv, &policy, now, &stale, &Default::default()).unwrap_err();
    assert!(e.contains("stale"), "{e}");
    // So does a missing one; with required: false it is a warning.
    let missing = vec![
        LoadedSource {
            refs: Err("cannot read /in-use/refs: No such file".into()),
            ..source("refs", SourceFormat::ImageRefs, "", 10)
        },
        source("k8s", SourceFormat::KubernetesPodsJson, &pods, 10),
    ];
    assert!(eval_with(&inv, &policy, now, &missing, &Default::default()).is_err());
    let lenient = policy.replace("max_age: 2h", "max_age: 2h\n    required: false");
    let o = eval_with(&inv, &lenient, now, &missing, &Default::default()).unwrap();
    assert!(o.warnings.iter().any(|w| w.contains("protects nothing")));
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &ws[0]),
        Decision::Delete
    );
}

#[test]
fn limits_block_the_plan() {
    let (r, _) = registry();
    let inv = r.scan();
    let policy = "apiVersion: retention.v1\nkind: RetentionPolicy\nprotections:\n  limits:\n    max_images_deleted: 2\n    max_fraction_per_repository: 0.5\n".to_string() + DELETE_ALL;
    let o = eval(&inv, &policy, at(10));
    // 3 images deleted (2 in apps/api, 1 in apps/web), 2 of 3 in apps/api.
    assert!(
        o.blocked.iter().any(|b| b.contains("max_images_deleted 2")),
        "{:?}",
        o.blocked
    );
    assert!(
        o.blocked
            .iter()
            .any(|b| b.starts_with("apps/api:") && b.contains("max_fraction")),
        "{:?}",
        o.blocked
    );
    assert!(
        !o.blocked.iter().any(|b| b.starts_with("apps/web:")),
        "1 of 2 is not more than 0.5"
    );
}

#[test]
fn refused_policies_name_the_problem() {
    let h = "apiVersion: retention.v1\nkind: RetentionPolicy\n";
    let cases: &[(&str, &str)] = &[
        ("policies: []\n", "policies: empty"),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    keep: [{id: k, last: 1}]\n",
            "otherwise",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    keep: [{id: k, last: 1, within: 3d}]\n    otherwise: delete\n",
            "side by side is ambiguous",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    keep: [{id: k, olderthan: 3d}]\n    otherwise: delete\n",
            "unknown field",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    keep: [{id: k, group_by: [branch], last: 1}]\n    otherwise: delete\n",
            "not a named capture",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    delete: [{id: k, not_pulled_within: 3d}]\n    otherwise: keep\n",
            "pull data",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    otherwise: keep\n",
            "does nothing",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['regex:(']}\n    otherwise: delete\n",
            "invalid regex",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    keep: [{id: k}]\n    otherwise: delete\n",
            "no criterion",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    keep: [{id: k, within: soon}]\n    otherwise: delete\n",
            "not a duration",
        ),
        (
            "policies:\n  - id: a\n    scope: {repositories: ['**']}\n    otherwise: delete\n  - id: a\n    scope: {repositories: ['**']}\n    otherwise: delete\n",
            "duplicate policy id",
        ),
    ];
    for (body, want) in cases {
        let e = compile_err(&format!("{h}{body}"));
        assert!(e.contains(want), "{body}\n=> {e}\n(wanted {want:?})");
    }
    assert!(
        compile_err("apiVersion: v2\nkind: RetentionPolicy\npolicies: []\n").contains("apiVersion")
    );
}

#[test]
fn exclude_only_patterns_mean_everything_but() {
    let (r, ws) = registry();
    let inv = r.scan();
    // select: only excludes -> every tag but those.
    let policy = header("")
        + r#"policies:
  - id: p
    scope: {repositories: ["glob:apps/api"]}
    select: {tags: ["!glob:1.*"]}
    otherwise: delete
"#;
    let o = eval(&inv, &policy, at(10));
    assert_eq!(tag_decision(&inv, &o, "apps/api:latest"), "remove");
    assert_eq!(tag_decision(&inv, &o, "apps/api:1.0"), "keep");
    assert_eq!(image_decision(&inv, &o, "apps/api", &ws[0]), Decision::Keep);
    // immutable_tags: only excludes -> every tag but those is immutable.
    let policy = header("  immutable_tags: [\"!glob:1.*\"]") + DELETE_ALL;
    let o = eval(&inv, &policy, at(10));
    assert_eq!(tag_decision(&inv, &o, "apps/api:latest"), "keep");
    assert_eq!(tag_decision(&inv, &o, "apps/web:a"), "keep");
    assert_eq!(tag_decision(&inv, &o, "apps/api:1.0"), "remove");
}

#[test]
fn a_protected_platform_child_stays_when_its_index_goes() {
    let mut r = Reg::new();
    let (index, a, b) = r.push_index("m", Some("old"), 0);
    r.push("m", Some("new"), 5);
    let inv = r.scan();
    let prot = format!("  pins:\n    - ref: \"m@{}\"\n", a.digest());
    let o = eval(&inv, &(header(&prot) + DELETE_ALL), at(10));
    assert_eq!(image_decision(&inv, &o, "m", &index), Decision::Delete);
    let dec = decisions(&inv, &o);
    let short = |w: &stowage_testkit::Written| w.digest().to_string()[7..19].to_string();
    assert_eq!(dec[&format!("m@{} (child)", short(&a))], "keep", "pinned");
    assert_eq!(dec[&format!("m@{} (child)", short(&b))], "delete");
}

#[test]
fn overrides_combine_independently_of_order() {
    let (r, _) = registry();
    let inv = r.scan();
    let a = r#"  - id: loose
    scope: {repositories: ["glob:apps/web"]}
    overrides: {keep_newest_per_repository: 0, allow_empty_repository: true}
    otherwise: delete
"#;
    let b = r#"  - id: strict
    scope: {repositories: ["glob:apps/web"]}
    overrides: {allow_empty_repository: false}
    otherwise: delete
"#;
    let h = header("");
    let ab = eval(&inv, &format!("{h}policies:\n{a}{b}"), at(10));
    let ba = eval(&inv, &format!("{h}policies:\n{b}{a}"), at(10));
    assert_eq!(decisions(&inv, &ab), decisions(&inv, &ba));
    assert_eq!(ab.blocked, ba.blocked);
    assert!(
        ab.blocked.iter().any(|x| x.starts_with("apps/web")),
        "{:?}",
        ab.blocked
    );
}

#[test]
fn a_required_source_that_resolves_nothing_refuses_the_plan() {
    let (r, _) = registry();
    let inv = r.scan();
    let prot = r#"  in_use:
    sources:
      - {name: refs, format: image-refs, path: refs.txt}
"#;
    // Host-qualified references but no registry_aliases: nothing resolves.
    let src = source(
        "refs",
        SourceFormat::ImageRefs,
        "registry.example.com/apps/api:1.0\n",
        10,
    );
    let e = eval_with(
        &inv,
        &(header(prot) + DELETE_ALL),
        at(10),
        &[src],
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.contains("registry_aliases"), "{e}");
}

/// Issue 25 item 12: pushes within the same second tied on the keep-newest floor, and the
/// tie was broken by interned id (digest order), so which image survived depended on push
/// timing. The documented rule: tagged before untagged, then tag name, then digest.
#[test]
fn flaky_keep_newest_tie_is_broken_by_the_documented_rule() {
    let floor_one = "apiVersion: retention.v1\nkind: RetentionPolicy\n".to_string() + DELETE_ALL;
    let mut r = Reg::new();
    let mut pairs = Vec::new();
    // Several repositories, so that in some the untagged digest sorts after the tagged one
    // (the order the old tie-break preferred) whatever the content hashes are.
    for i in 0..6 {
        let repo = format!("apps/r{i}");
        let tagged = r.push(&repo, Some("1.0"), 0);
        let untagged = r.push(&repo, None, 0);
        pairs.push((repo, tagged, untagged));
    }
    let inv = r.scan();
    let o = eval(&inv, &floor_one, at(10));
    for (repo, tagged, untagged) in &pairs {
        assert_eq!(
            image_decision(&inv, &o, repo, tagged),
            Decision::Keep,
            "{repo}"
        );
        assert_eq!(
            image_decision(&inv, &o, repo, untagged),
            Decision::Delete,
            "{repo}"
        );
    }
    // Two tagged images in the same second: the smaller tag name is the newer one.
    let mut r = Reg::new();
    let b = r.push("apps/x", Some("b"), 0);
    let a = r.push("apps/x", Some("a"), 0);
    let inv = r.scan();
    let o = eval(&inv, &floor_one, at(10));
    assert_eq!(image_decision(&inv, &o, "apps/x", &a), Decision::Keep);
    assert_eq!(image_decision(&inv, &o, "apps/x", &b), Decision::Delete);
}
