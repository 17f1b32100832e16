//! The retention pipeline is one function: the plan and apply's protection re-check call
//! `stowage_plan::retention::evaluate` with the same `RetentionRun`, so the protections apply
//! recomputes equal those the plan was made with (a test that fails if they could diverge);
//! and `simulate` at a day equals the plan made that day.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use stowage_graph::Graph;
use stowage_layout as layout;
use stowage_model::time::Timestamp;
use stowage_plan::retention::{
    LoadedPolicy, RetentionRun, live_protection, plan, protection, recheck_pull_source,
};
use stowage_policy::{PullByReference, PullData};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::TreeBuilder;

const T0: i64 = 1_780_272_000;
const DAY: i64 = 86400;

fn at(d: i64) -> Timestamp {
    Timestamp::from_secs(T0 + d * DAY)
}

fn set_mtime(path: &std::path::Path, t: Timestamp) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(t.secs() as u64))
        .unwrap();
}

/// apps/api with builds b0..b5 on days 0..5 (each its own layer), deployed.txt naming b1.
fn registry() -> (tempfile::TempDir, TreeBuilder) {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(&dir.path().join("storage"));
    for d in 0..6 {
        let config = t.blob(format!("{{\"created\":\"2026-06-0{}T00:00:00Z\"}}", d + 1).as_bytes());
        let layer = t.layer(&format!("layer{d}"), 2000 + d as usize);
        let w = t.image("apps/api", None, &config, &[&layer]);
        let tag = format!("b{d}");
        t.tag("apps/api", &tag, &w.digest());
        for p in [
            layout::revision_link("apps/api", &w.digest()),
            layout::tag_current_link("apps/api", &tag),
            layout::tag_index_link("apps/api", &tag, &w.digest()),
        ] {
            set_mtime(&t.path(&p), at(d));
        }
    }
    std::fs::write(dir.path().join("deployed.txt"), "apps/api:b1\n").unwrap();
    (dir, t)
}

const POLICY: &str = r#"apiVersion: retention.v1
kind: RetentionPolicy
settings: {time_source: created}
protections:
  keep_newest_per_repository: 2
  immutable_tags: ["glob:b0"]
  grace_period: 1d
  in_use:
    sources: [{name: deployed, format: image-refs, path: deployed.txt}]
policies:
  - id: p
    scope: {repositories: ["glob:**"]}
    keep: [{id: recent, within: 2d}]
    otherwise: delete
"#;

#[test]
fn the_plan_and_the_apply_recheck_compute_the_same_protections() {
    let (dir, t) = registry();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let policy = LoadedPolicy::read(&path).unwrap();
    let storage = FsStorage::open(&t.root).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    for now in [at(5), at(9)] {
        let run = RetentionRun {
            policy: &policy,
            now,
            unsafe_allow_empty: false,
            pulls: None,
        };
        let (p, outcome) = plan(&run, &g, &storage, 86400).unwrap();
        let lp = protection(&run, &g, &storage, &p).unwrap();
        let from_plan = live_protection(&g, &outcome);
        assert_eq!(lp.digests, from_plan.digests, "at {now:?}");
        assert_eq!(lp.tags, from_plan.tags, "at {now:?}");
        // Every kind of protection is exercised: in use, immutable, floor (by config created).
        let reasons = format!("{:?}", lp.digests);
        for want in [
            "in_use(deployed)",
            "immutable_tag",
            "keep_newest_per_repository(2)",
        ] {
            assert!(
                reasons.contains(want),
                "{want} missing at {now:?}: {reasons}"
            );
        }
        // Nothing the plan deletes is protected by the re-check.
        for m in &p.manifests {
            assert!(
                !lp.digests
                    .contains_key(&(m.repository.clone(), m.digest.clone())),
                "{m:?}"
            );
        }
    }
}

#[test]
fn a_simulated_day_is_the_plan_made_that_day() {
    let (dir, t) = registry();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        POLICY.replace("settings: {time_source: created}\n", ""),
    )
    .unwrap();
    let policy = LoadedPolicy::read(&path).unwrap();
    let storage = FsStorage::open(&t.root).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    let days = stowage_plan::simulate::days(at(2), at(9), DAY);
    assert_eq!(days.len(), 8);
    let sim = stowage_plan::simulate::simulate(&policy, &g, &storage, None, &days);
    let mut freed_some = false;
    for d in &sim.days {
        let run = RetentionRun {
            policy: &policy,
            now: d.at,
            unsafe_allow_empty: false,
            pulls: None,
        };
        let (p, _) = plan(&run, &g, &storage, 0).unwrap();
        let r = p.retention.unwrap();
        assert_eq!(d.images_deleted, r.bytes.images_deleted, "{:?}", d.at);
        assert_eq!(d.bytes_freed, r.bytes.reclaimable_after_gc, "{:?}", d.at);
        assert_eq!(d.tags_removed, r.bytes.tags_removed);
        freed_some |= d.bytes_freed > 0;
    }
    assert!(freed_some);
    // On day 2, builds pushed on days 3..5 did not exist yet: kept, never deleted.
    let run = RetentionRun {
        policy: &policy,
        now: at(2),
        unsafe_allow_empty: false,
        pulls: None,
    };
    let (p, _) = plan(&run, &g, &storage, 0).unwrap();
    let later: Vec<_> = p
        .retention
        .unwrap()
        .images
        .into_iter()
        .filter(|i| i.pushed > at(2))
        .collect();
    assert_eq!(later.len(), 3);
    for i in later {
        assert_eq!(i.decision, "keep");
        assert!(
            i.reasons.iter().any(|r| r.contains("after_now")),
            "{:?}",
            i.reasons
        );
    }
}

/// Review of issue 23, finding 2: apply's re-check replays pulls made since the plan (the
/// plan's own check ran at plan time only), reading the pull database the plan recorded.
/// Under `would_break: block` a target pulled since the plan refuses the apply
/// (`protection/would_break`, treated like an in-use reference); under `warn` it is skipped.
#[test]
fn apply_recheck_replays_fresh_pulls() {
    let (dir, t) = registry();
    let storage = FsStorage::open(&t.root).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    let db = dir.path().join("history.db").display().to_string();
    let seen = PullData {
        source: db.clone(),
        begins: Some(at(0)),
        ends: Some(at(9)),
        ..Default::default()
    };
    for (action, kind) in [("block", "would_break"), ("warn", "recent_pull")] {
        let path = dir.path().join(format!("{action}.yaml"));
        std::fs::write(
            &path,
            POLICY.replace(
                "settings: {time_source: created}",
                &format!("settings: {{time_source: created, would_break: {action}}}"),
            ),
        )
        .unwrap();
        let policy = LoadedPolicy::read(&path).unwrap();
        let run = RetentionRun {
            policy: &policy,
            now: at(9),
            unsafe_allow_empty: false,
            pulls: Some(&seen),
        };
        let (p, _) = plan(&run, &g, &storage, 86400).unwrap();
        // No pull source in the policy: the re-check reads the database the plan used.
        assert_eq!(
            recheck_pull_source(&policy, &p).map(|x| x.display().to_string()),
            Some(db.clone())
        );
        let b2 = p
            .tags
            .iter()
            .find(|x| x.tag == "b2")
            .unwrap()
            .digest
            .clone();
        let pull = |at: Timestamp| PullByReference {
            repository: "apps/api".into(),
            reference: "b2".into(),
            digest: b2.to_string(),
            last_pulled: at,
            pulls: 1,
            client: "kubelet".into(),
        };
        // A pull the plan already saw (at its data's end) changes nothing at apply.
        let old = PullData {
            recent: vec![pull(at(9))],
            ..seen.clone()
        };
        let lp = protection(
            &RetentionRun {
                pulls: Some(&old),
                ..run
            },
            &g,
            &storage,
            &p,
        )
        .unwrap();
        assert!(
            !lp.tags.contains_key(&("apps/api".into(), "b2".into())),
            "{action}"
        );
        // One since the plan protects the tag and the image.
        let fresh = PullData {
            ends: Some(Timestamp::from_secs(T0 + 9 * DAY + 3600)),
            recent: vec![pull(Timestamp::from_secs(T0 + 9 * DAY + 3600))],
            ..seen.clone()
        };
        let lp = protection(
            &RetentionRun {
                pulls: Some(&fresh),
                ..run
            },
            &g,
            &storage,
            &p,
        )
        .unwrap();
        let why = lp.tags.get(&("apps/api".into(), "b2".into()));
        assert!(
            why.is_some_and(|w| w
                .iter()
                .any(|r| r.starts_with(&format!("protection/{kind}(")))),
            "{action}: {why:?}"
        );
        assert!(
            lp.digests.contains_key(&("apps/api".into(), b2)),
            "{action}"
        );
    }
}

/// Review of issue 23, finding 3: a config that cannot be read is not "a config without
/// labels". `select.labels {team: "!platform"}` must not select an image whose config (which
/// says team=platform) failed to read: unknown, so kept.
#[test]
fn unread_facts_never_selected() {
    let dir = tempfile::tempdir().unwrap();
    let t = TreeBuilder::new(&dir.path().join("storage"));
    let mut configs = Vec::new();
    for (name, team) in [("platform", "platform"), ("other", "web")] {
        let config = t.blob(
            format!("{{\"created\":\"2026-06-01T00:00:00Z\",\"config\":{{\"Labels\":{{\"team\":\"{team}\"}}}}}}")
                .as_bytes(),
        );
        let layer = t.layer(name, 1000);
        let w = t.image("apps/api", None, &config, &[&layer]);
        t.tag("apps/api", name, &w.digest());
        for p in [
            layout::revision_link("apps/api", &w.digest()),
            layout::tag_current_link("apps/api", name),
            layout::tag_index_link("apps/api", name, &w.digest()),
        ] {
            set_mtime(&t.path(&p), at(0));
        }
        configs.push(config);
    }
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "apiVersion: retention.v1\nkind: RetentionPolicy\nprotections:\n  keep_newest_per_repository: 0\n  allow_empty_repository: true\npolicies:\n  - id: p\n    scope: {repositories: [\"glob:**\"]}\n    select: {labels: {team: \"!platform\"}}\n    delete: [{id: old, older_than: 30d}]\n    otherwise: keep\n",
    )
    .unwrap();
    let policy = LoadedPolicy::read(&path).unwrap();
    let storage = FsStorage::open(&t.root).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    // The scan saw it; the read for the labels fails.
    std::fs::remove_file(t.path(&layout::blob_data(&configs[0].digest))).unwrap();
    let g = Graph::new(&inv);
    let run = RetentionRun {
        policy: &policy,
        now: at(60),
        unsafe_allow_empty: false,
        pulls: None,
    };
    let (p, _) = plan(&run, &g, &storage, 86400).unwrap();
    let removed: Vec<&str> = p.tags.iter().map(|x| x.tag.as_str()).collect();
    assert_eq!(removed, ["other"], "{:#?}", p.retention.unwrap().images);
}

/// Review of issue 23, finding 5: `would_break: block` with no pull data, data without pulls,
/// a zero window or a window longer than the data covers refuses the plan instead of silently
/// checking nothing (or less than asked).
#[test]
fn would_break_block_with_no_data_or_uncovered_window_refuses() {
    let (dir, t) = registry();
    let storage = FsStorage::open(&t.root).unwrap();
    let inv = scan(&storage, &ScanOptions::default(), &Progress::default()).unwrap();
    let g = Graph::new(&inv);
    let data = |begins: Option<i64>| PullData {
        source: "history.db".into(),
        begins: begins.map(at),
        ends: begins.map(|_| at(9)),
        ..Default::default()
    };
    let cases: [(&str, &str, Option<PullData>, bool); 7] = [
        ("block", "", None, true),
        ("block", "", Some(data(None)), true),
        (
            "block",
            ", would_break_window: 0s",
            Some(data(Some(0))),
            true,
        ),
        (
            "block",
            ", would_break_window: 7d",
            Some(data(Some(8))),
            true,
        ),
        (
            "block",
            ", would_break_window: 7d",
            Some(data(Some(0))),
            false,
        ),
        ("block", "", Some(data(Some(8))), false),
        ("warn", "", None, false),
    ];
    for (i, (action, window, pulls, blocked)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("wb{i}.yaml"));
        std::fs::write(
            &path,
            POLICY.replace(
                "settings: {time_source: created}",
                &format!("settings: {{time_source: created, would_break: {action}{window}}}"),
            ),
        )
        .unwrap();
        let policy = LoadedPolicy::read(&path).unwrap();
        let run = RetentionRun {
            policy: &policy,
            now: at(9),
            unsafe_allow_empty: false,
            pulls: pulls.as_ref(),
        };
        let (p, _) = plan(&run, &g, &storage, 86400).unwrap();
        let rails = p.retention.unwrap().rails_blocked;
        assert_eq!(
            rails.iter().any(|r| r.contains("cannot be checked")),
            blocked,
            "case {i} ({action}{window}, {pulls:?}): {rails:?}"
        );
    }
}
