//! Every example policy in examples/policies/ parses, compiles, and decides as its comments
//! say on a registry built for it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use stowage_policy::LoadedSource;
use stowage_policy::eval::Decision;
use stowage_policy::file::SourceFormat;

fn example(name: &str) -> String {
    let p = stowage_testkit::workspace_root()
        .join("examples/policies")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_example_compiles() {
    let dir = stowage_testkit::workspace_root().join("examples/policies");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let f = stowage_policy::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
            stowage_policy::compile(&f).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert_eq!(n, 4);
}

#[test]
fn ci_branches() {
    let mut r = Reg::new();
    for day in 0..=20 {
        r.push("apps/api", Some(&format!("main-{:07x}", 0xa000 + day)), day);
    }
    r.push("apps/api", Some("feature-y-1111111"), 0);
    r.push("apps/api", Some("feature-y-2222222"), 1);
    let latest = r.push("apps/api", Some("latest"), 1);
    let inv = r.scan();
    let o = eval(&inv, &example("ci-branches.yaml"), at(21));
    let d = |day: i64| tag_decision(&inv, &o, &format!("apps/api:main-{:07x}", 0xa000 + day));
    // T0 (2026-06-01) is a Monday: ISO weeks are days 0-6, 7-13, 14-20. Kept: the last 5
    // (16-20), daily 7 (14-20), weekly (6, 13, 20), monthly (20). Deleted: what is 14 days
    // old or more and kept by nothing (0-5, 7); days 8-12 are younger: otherwise keep.
    let removed: Vec<i64> = (0..=20).filter(|&x| d(x) == "remove").collect();
    assert_eq!(removed, vec![0, 1, 2, 3, 4, 5, 7]);
    assert_eq!(
        tag_decision(&inv, &o, "apps/api:feature-y-1111111"),
        "keep",
        "last 5 and within 30d"
    );
    assert_eq!(
        image_decision(&inv, &o, "apps/api", &latest),
        Decision::Keep,
        "immutable"
    );
}

#[test]
fn semver_releases() {
    let mut r = Reg::new();
    for (i, t) in [
        "v1.0.0",
        "v1.0.1",
        "v1.0.2",
        "v1.0.3",
        "v1.0.4",
        "v1.1.0",
        "v2.0.1-rc.1",
        "v2.0.0",
    ]
    .iter()
    .enumerate()
    {
        // The newest push (v2.0.0) is also kept by keep_newest_per_repository.
        r.push("apps/api", Some(t), i as i64);
    }
    r.push("apps/billing", Some("1.0.0"), 0);
    r.push("apps/billing", Some("1.1.0"), 1);
    let inv = r.scan();
    let o = eval(&inv, &example("semver-releases.yaml"), at(400));
    let d = |t: &str| tag_decision(&inv, &o, &format!("apps/api:{t}"));
    for keep in ["v1.0.4", "v1.0.3", "v1.0.2", "v1.1.0", "v2.0.0"] {
        assert_eq!(d(keep), "keep", "{keep}");
    }
    for gone in ["v1.0.0", "v1.0.1", "v2.0.1-rc.1"] {
        assert_eq!(d(gone), "remove", "{gone}");
    }
    assert_eq!(tag_decision(&inv, &o, "apps/billing:1.0.0"), "keep");
    assert!(
        reasons_of_tag(&inv, &o, "apps/billing", "1.0.0")
            .iter()
            .any(|r| r.contains("pin(apps/billing:1.0.0: contractual support until 2027)"))
    );
}

#[test]
fn untagged_cleanup() {
    let mut r = Reg::new();
    let olds: Vec<_> = (0..6).map(|day| r.push("team/app", None, day)).collect();
    let (index, a, _) = r.push_index("team/app", Some("1.0"), 0);
    let inv = r.scan();
    let pods = std::fs::read_to_string(
        stowage_testkit::workspace_root().join("examples/policies/in-use/pods.json"),
    )
    .unwrap();
    let src = LoadedSource {
        name: "prod-k8s".into(),
        path: "in-use/pods.json".into(),
        refs: stowage_policy::refs::parse_source(SourceFormat::KubernetesPodsJson, &pods),
        modified: Some(at(20)),
        sha256: "0".into(),
    };
    let o = eval_with(
        &inv,
        &example("untagged-cleanup.yaml"),
        at(20),
        &[src],
        &Default::default(),
    )
    .unwrap();
    let dec: Vec<Decision> = olds
        .iter()
        .map(|w| image_decision(&inv, &o, "team/app", w))
        .collect();
    use Decision::*;
    assert_eq!(dec, vec![Delete, Delete, Delete, Keep, Keep, Keep]);
    assert_eq!(image_decision(&inv, &o, "team/app", &index), Keep);
    assert!(
        !o.images
            .iter()
            .any(|i| i.digest == inv.id_of(&a.digest()).unwrap()),
        "an index child is never an image of its own"
    );
    // The source's reference is to a repository this registry lacks: reported, not fatal.
    assert_eq!(o.sources[0].resolved, 0);
    assert_eq!(o.sources[0].unresolved.len(), 2);
    // A stale source refuses the plan.
    let stale = LoadedSource {
        name: "prod-k8s".into(),
        path: "in-use/pods.json".into(),
        refs: stowage_policy::refs::parse_source(SourceFormat::KubernetesPodsJson, &pods),
        modified: Some(at(19)),
        sha256: "0".into(),
    };
    assert!(
        eval_with(
            &inv,
            &example("untagged-cleanup.yaml"),
            at(20),
            &[stale],
            &Default::default()
        )
        .is_err()
    );
}

#[test]
fn signatures() {
    let mut r = Reg::new();
    let mut imgs = Vec::new();
    for day in 0..12 {
        imgs.push(r.push("s", Some(&format!("b{day:02}")), day));
    }
    let sig_kept = r.referrer("s", &imgs[11], 11);
    let sig_gone = r.referrer("s", &imgs[0], 0);
    let elsewhere = r.push("t", Some("x"), 0);
    let orphan = r.referrer("s", &elsewhere, 0);
    let inv = r.scan();
    let o = eval(&inv, &example("signatures.yaml"), at(30));
    assert_eq!(image_decision(&inv, &o, "s", &imgs[0]), Decision::Delete);
    assert_eq!(image_decision(&inv, &o, "s", &imgs[2]), Decision::Keep);
    assert_eq!(image_decision(&inv, &o, "s", &orphan), Decision::Delete);
    let dec = decisions(&inv, &o);
    let short = |w: &stowage_testkit::Written| w.digest().to_string()[7..19].to_string();
    assert_eq!(dec[&format!("s@{} (referrer)", short(&sig_gone))], "delete");
    assert!(!dec.contains_key(&format!("s@{} (referrer)", short(&sig_kept))));
}

#[test]
fn the_published_json_schema_is_current() {
    let p = stowage_testkit::workspace_root().join("docs/policy.schema.json");
    let committed = std::fs::read_to_string(&p).unwrap();
    assert!(
        committed == stowage_policy::json_schema(),
        "docs/policy.schema.json is stale: run `stowage policy schema > docs/policy.schema.json`"
    );
    // And every example validates against its shape: required top-level fields present.
    let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let req: Vec<&str> = v["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(req.contains(&"policies") && req.contains(&"apiVersion"));
}

#[test]
fn lints_name_known_traps() {
    let f = stowage_policy::parse(
        r#"apiVersion: retention.v1
kind: RetentionPolicy
settings: {time_source: created}
protections: {keep_newest_per_repository: 0}
policies:
  - id: a
    scope: {repositories: ["glob:**"]}
    select: {tags: ["regex:.*-build"], referrers: any}
    keep:
      - {id: small, last: 2}
      - {id: big, last: 5}
      - {id: both, last: 1, within: 3d}
    otherwise: delete
"#,
    )
    .unwrap();
    let codes: std::collections::BTreeSet<&str> = stowage_policy::lint::lint(&f)
        .iter()
        .map(|l| l.code)
        .collect();
    for want in [
        "config-created-time",
        "delete-without-floor",
        "unanchored-intent",
        "count-includes-artifacts",
        "shadowed-keep",
        "ambiguous-bare-list",
    ] {
        assert!(codes.contains(want), "{want} missing from {codes:?}");
    }
    let clean = stowage_policy::parse(&example("semver-releases.yaml")).unwrap();
    assert!(stowage_policy::lint::lint(&clean).is_empty());
}
