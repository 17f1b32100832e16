//! Properties of retention plans on generated registries: keep rules only ever keep more,
//! nothing protected is deleted, no index child or referrer of a kept image is deleted, plans
//! are byte-identical on rerun, and after apply --gc every kept image is whole and the bytes
//! freed equal the preview.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use stowage_graph::Graph;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::Plan;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply_checked};
use stowage_plan::retention::{RetentionInputs, build, live_protection};
use stowage_policy::LoadedSource;
use stowage_policy::eval::Inputs;
use stowage_policy::file::SourceFormat;
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::random::{REPOS, TAGS, build as build_registry, push_strategy};

fn scan_dir(root: &std::path::Path) -> Inventory {
    let s = FsStorage::open(root).unwrap();
    scan(
        &s,
        &ScanOptions {
            concurrency: 2,
            verify_links: false,
            ..Default::default()
        },
        &Progress::default(),
    )
    .unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now()).saturating_sub_secs(-3600)
}

fn policy(keep_last: u64, extra_keep: bool) -> String {
    let extra = if extra_keep {
        "      - id: extra\n        when: {tag: \"glob:v*\"}\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: retention.v1
kind: RetentionPolicy
protections:
  keep_newest_per_repository: 0
  allow_empty_repository: true
  in_use:
    sources:
      - {{name: deployed, format: image-refs, path: deployed.txt}}
policies:
  - id: p
    scope: {{repositories: ["glob:**"]}}
    keep:
      - id: last
        order_by: natural
        last: {keep_last}
{extra}    otherwise: delete
"#
    )
}

fn plan_for(
    inv: &Inventory,
    yaml: &str,
    deployed: &str,
    t: Timestamp,
) -> (Plan, stowage_policy::Outcome) {
    let f = stowage_policy::parse(yaml).unwrap();
    let c = stowage_policy::compile(&f).unwrap();
    let sources = vec![LoadedSource {
        name: "deployed".into(),
        path: "deployed.txt".into(),
        refs: stowage_policy::refs::parse_source(SourceFormat::ImageRefs, deployed),
        modified: Some(t),
        sha256: "0".into(),
    }];
    let g = Graph::new(inv);
    let o = stowage_policy::evaluate(
        &c,
        &Inputs {
            graph: &g,
            now: t,
            created: &HashMap::new(),
            built: &HashMap::new(),
            facts: &HashMap::new(),
            in_use: &sources,
            unsafe_allow_empty: true,
            pulls: None,
        },
    )
    .unwrap();
    let p = build(
        &g,
        &o,
        &RetentionInputs {
            policy_path: "p.yaml",
            policy_text: yaml,
            policy_name: "",
            time_source: "tag_updated",
            now: t,
            expires_seconds: 86400,
            untag: true,
            max_bytes_freed: None,
        },
    );
    (p, o)
}

type Pairs = BTreeSet<(String, String)>;

/// (repository, digest) of deleted manifests and (repository, tag) of removed tags.
fn deleted(p: &Plan) -> (Pairs, Pairs) {
    (
        p.manifests
            .iter()
            .map(|m| (m.repository.clone(), m.digest.to_string()))
            .collect(),
        p.tags
            .iter()
            .map(|t| (t.repository.clone(), t.tag.clone()))
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn retention_plans_are_safe_monotone_deterministic_and_exact(
        pushes in proptest::collection::vec(push_strategy(), 1..10),
        sizes in proptest::collection::vec(1usize..3000, 1..6),
        keep_last in 1u64..3,
        deployed_picks in proptest::collection::vec((0..REPOS.len(), 0..TAGS.len()), 0..3),
    ) {
        let (dir, root) = build_registry(&pushes, &sizes);
        let inv = scan_dir(&root);
        let t = now();
        let deployed: String = deployed_picks.iter().map(|(r, tg)| format!("{}:{}\n", REPOS[*r], TAGS[*tg])).collect();
        let (plan, outcome) = plan_for(&inv, &policy(keep_last, false), &deployed, t);

        // Deterministic.
        let (again, _) = plan_for(&scan_dir(&root), &policy(keep_last, false), &deployed, t);
        prop_assert_eq!(plan.to_json(), again.to_json());

        // Keep rules only keep more.
        let (more, _) = plan_for(&inv, &policy(keep_last, true), &deployed, t);
        let (dm, dt) = deleted(&plan);
        let (mm, mt) = deleted(&more);
        prop_assert!(mm.is_subset(&dm), "an extra keep rule deleted more manifests");
        prop_assert!(mt.is_subset(&dt), "an extra keep rule removed more tags");

        // Nothing protected is deleted: deployed tags stay, and their digests.
        for (r, tg) in &deployed_picks {
            let (repo, tag) = (REPOS[*r], TAGS[*tg]);
            prop_assert!(!dt.contains(&(repo.to_string(), tag.to_string())), "deployed {}:{} removed", repo, tag);
            if let Some(d) = inv.repository(repo).and_then(|x| x.tag(tag)).and_then(|x| x.current).and_then(|c| c.target) {
                prop_assert!(!dm.contains(&(repo.to_string(), inv.digest(d).to_string())), "deployed {}:{} digest deleted", repo, tag);
            }
        }

        // No index child or referrer (same repository) of a surviving manifest is deleted.
        let g = Graph::new(&inv);
        for r in &inv.repositories {
            for l in &r.revisions {
                let key = (r.name.to_string(), inv.digest(l.target()).to_string());
                if dm.contains(&key) { continue; }
                let mut needs: Vec<u32> = g.children(l.target()).collect();
                needs.extend(g.referrers(l.target()).iter().copied().filter(|x| r.revision(*x).is_some()));
                for n in needs {
                    prop_assert!(!dm.contains(&(r.name.to_string(), inv.digest(n).to_string())),
                        "{}@{} survives but {} it needs is deleted", r.name, key.1, inv.digest(n));
                }
            }
        }

        // Apply with --gc: freed bytes equal the preview; kept images whole.
        let s = FsStorage::open(&root).unwrap();
        let lp = live_protection(&g, &outcome);
        let protect = move |_g: &Graph<'_>| Ok(lp.clone());
        let rep = apply_checked(&s, &plan, &ApplyOptions {
            quarantine: None,
            journal: Some(dir.path().join("journal")),
            concurrency: 2,
            now: t,
            quiet_window_seconds: 0,
            require_quiet: false,
            registry_readonly: None,
            gc: true,
            mode: Mode::Offline,
            settle: std::time::Duration::ZERO,
            cache: CacheStep::Nothing,
            keep_fenced: false,
            ignore_metadata_signature: false,
            on_step: None,
        }, Some(&protect), &|_| {}).unwrap();
        prop_assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
        prop_assert_eq!(rep.bytes_freed, plan.retention.as_ref().unwrap().bytes.reclaimable_after_gc);
        let after = scan_dir(&root);
        let broken: Vec<_> = stowage_graph::analyze_findings(&Graph::new(&after))
            .into_iter()
            .filter(|f| matches!(f.kind.as_str(), "reference_missing" | "tag_dangling" | "index_child_unlinked" | "layer_unlinked"))
            .collect();
        prop_assert!(broken.is_empty(), "{:#?}", broken);
        // Every tag the plan keeps still points where it did.
        for r in &inv.repositories {
            for tg in &r.tags {
                if dt.contains(&(r.name.to_string(), tg.name.to_string())) { continue; }
                let before = tg.current.and_then(|c| c.target).map(|d| inv.digest(d));
                let now_ = after.repository(r.name.as_str()).and_then(|x| x.tag(&tg.name)).and_then(|x| x.current).and_then(|c| c.target).map(|d| after.digest(d));
                prop_assert_eq!(before, now_);
            }
        }
    }
}
