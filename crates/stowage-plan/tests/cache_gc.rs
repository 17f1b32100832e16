//! Cache GC semantics (`stowage_plan::cache`) on a tree shaped like a pull-through cache's,
//! at two `now` values: the shared-blob case (distribution#4191), images pulled by digest
//! (goharbor/harbor#23570), index children, and the fail-safe on an unusable state file.
//! The real registry's own cache is exercised end to end in `stowage-cli/tests/cache.rs`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use stowage_graph::Graph;
use stowage_model::digest::Digest;
use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;
use stowage_plan::{GcOptions, Plan, gc};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::{TreeBuilder, Written};

const DAY: i64 = 86_400;

struct Cache {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    t0: Timestamp,
    a: Written,
    b: Written,
    shared: Written,
    a_only: Written,
    index: Written,
    child1: Written,
    child1_layer: Written,
    /// Every blob by name, for exact byte sums.
    all: Vec<(&'static str, Written)>,
}

fn entry(key: &str, t: Timestamp, ty: u8) -> String {
    format!(
        r#""{key}":{{"Key":"{key}","ExpiryData":"{}","EntryType":{ty}}}"#,
        t.rfc3339()
    )
}

/// Repository `a`: image A tagged `1`, cached until t0+7d. Repository `b`: image B pulled by
/// digest (untagged), sharing a layer with A, cached until t0+14d. Repository `c`: an index
/// tagged `x` cached until t0+14d whose first child (and its layer) expire at t0+7d.
fn build() -> Cache {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let t = TreeBuilder::new(&root);
    let shared = t.layer("shared", 3000);
    let a_only = t.layer("a-only", 1000);
    let b_only = t.layer("b-only", 1000);
    let ca = t.blob(br#"{"config":"a"}"#);
    let cb = t.blob(br#"{"config":"b"}"#);
    let a = t.image("a", Some("1"), &ca, &[&shared, &a_only]);
    let b = t.image("b", None, &cb, &[&shared, &b_only]);
    let l1 = t.layer("c1", 500);
    let l2 = t.layer("c2", 500);
    let cc = t.blob(br#"{"config":"c"}"#);
    let c1 = t.image("c", None, &cc, &[&l1]);
    let c2 = t.image("c", None, &cc, &[&l2]);
    let idx = t.index("c", Some("x"), &[(&c1, "amd64"), (&c2, "arm64")]);
    let t0 = Timestamp::from_system_time(std::time::SystemTime::now());
    let (t1, t2) = (
        t0.saturating_sub_secs(-7 * DAY),
        t0.saturating_sub_secs(-14 * DAY),
    );
    let k = |r: &str, w: &Written| format!("{r}@{}", w.digest());
    let mut entries = vec![
        entry(&k("a", &a), t1, 1),
        entry(&k("a", &ca), t1, 0),
        entry(&k("a", &shared), t1, 0),
        entry(&k("a", &a_only), t1, 0),
        entry(&k("b", &b), t2, 1),
        entry(&k("b", &cb), t2, 0),
        entry(&k("b", &shared), t2, 0),
        entry(&k("b", &b_only), t2, 0),
        entry(&k("c", &idx), t2, 1),
        entry(&k("c", &c1), t1, 1),
        entry(&k("c", &c2), t2, 1),
        entry(&k("c", &cc), t2, 0),
        entry(&k("c", &l1), t1, 0),
        entry(&k("c", &l2), t2, 0),
    ];
    entries.sort();
    std::fs::write(
        root.join("scheduler-state.json"),
        format!("{{{}}}", entries.join(",")),
    )
    .unwrap();
    let all = vec![
        ("a", a.clone()),
        ("ca", ca),
        ("a_only", a_only.clone()),
        ("shared", shared.clone()),
        ("b", b.clone()),
        ("cb", cb),
        ("b_only", b_only),
        ("idx", idx.clone()),
        ("c1", c1.clone()),
        ("c2", c2),
        ("cc", cc),
        ("l1", l1.clone()),
        ("l2", l2),
    ];
    Cache {
        _dir: dir,
        root,
        t0,
        a,
        b,
        shared,
        a_only,
        index: idx,
        child1: c1,
        child1_layer: l1,
        all,
    }
}

fn inventory(root: &Path) -> Inventory {
    let s = FsStorage::open(&root.join("docker/registry/v2")).unwrap();
    scan(&s, &ScanOptions::default(), &Progress::default()).unwrap()
}

fn plan(inv: &Inventory, now: Timestamp) -> Plan {
    plan_capped(inv, now, None)
}

fn plan_capped(inv: &Inventory, now: Timestamp, cap: Option<u64>) -> Plan {
    let opts = GcOptions {
        grace_seconds: 0,
        cache: true,
        cache_max_bytes: cap,
        orphan_signatures: false,
        ..Default::default()
    };
    let g = Graph::new(inv);
    let plan = gc::build(&g, &opts, now);
    // The file `stowage gc` writes from the rows is the whole cache plan's (`cache` edit,
    // expired blobs and manifests, size-capped ones).
    let mut streamed = Vec::new();
    gc::build_rows(&g, &opts, now, Default::default())
        .write_json(&mut streamed)
        .unwrap();
    assert_eq!(String::from_utf8(streamed).unwrap(), plan.to_json());
    plan
}

fn digests(p: &Plan) -> Vec<Digest> {
    p.blobs.iter().map(|b| b.digest.clone()).collect()
}

#[test]
fn before_any_expiry_nothing_is_evicted() {
    let c = build();
    let inv = inventory(&c.root);
    assert!(inv.scheduler.state().is_some());
    let p = plan(&inv, c.t0.saturating_sub_secs(-DAY));
    assert!(p.manifests.is_empty() && p.blobs.is_empty() && p.tags.is_empty());
    let edit = p.cache.unwrap();
    assert!(edit.state_usable && edit.remove.is_empty());
    // Nothing kept may expire before a live manifest needing it, so the entries that would
    // are extended already now: A's copy of the shared layer (B needs it until t0+14d: the
    // registry would otherwise delete it at t0+7d, #4191), and the index child whose entry
    // expires before its index.
    let ext: Vec<String> = edit.extend.iter().map(|e| e.key.clone()).collect();
    let mut want = vec![
        format!("a@{}", c.shared.digest()),
        format!("c@{}", c.child1_layer.digest()),
        format!("c@{}", c.child1.digest()),
    ];
    want.sort();
    assert_eq!(ext, want);
}

#[test]
fn expired_image_goes_but_the_shared_layer_and_the_image_pulled_by_digest_stay() {
    let c = build();
    let inv = inventory(&c.root);
    let p = plan(&inv, c.t0.saturating_sub_secs(-10 * DAY));
    // A expired: its manifest, its tag, its own blobs and its manifest data go.
    let evicted: Vec<String> = p
        .manifests
        .iter()
        .map(|m| format!("{}@{}", m.repository, m.digest))
        .collect();
    assert_eq!(evicted, vec![format!("a@{}", c.a.digest())]);
    assert_eq!(p.tags.len(), 1);
    assert_eq!(p.tags[0].tag, "1");
    let blobs = digests(&p);
    assert!(blobs.contains(&c.a.digest()), "manifest data (#4957)");
    assert!(blobs.contains(&c.a_only.digest()));
    assert!(
        !blobs.contains(&c.shared.digest()),
        "#4191: B still needs it"
    );
    // B is untagged (pulled by digest) and not expired: a cached image, kept (#23570).
    assert!(!blobs.contains(&c.b.digest()));
    // The index child whose own entry expired stays with its live index.
    assert!(!blobs.contains(&c.child1.digest()) && !blobs.contains(&c.index.digest()));
    assert!(p.manifests.iter().all(|m| m.repository == "a"));
    // The state edit: A's entries go; a@shared is extended to B's expiry instead of letting
    // the registry delete the shared layer at t0+7d.
    let edit = p.cache.unwrap();
    let removed: Vec<&str> = edit.remove.iter().map(|r| r.key.as_str()).collect();
    assert!(removed.contains(&format!("a@{}", c.a.digest()).as_str()));
    assert!(removed.contains(&format!("a@{}", c.a_only.digest()).as_str()));
    assert!(
        !removed
            .iter()
            .any(|k| k.ends_with(&c.shared.digest().to_string()))
    );
    let shared_ext = edit
        .extend
        .iter()
        .find(|e| e.key == format!("a@{}", c.shared.digest()))
        .unwrap();
    assert_eq!(shared_ext.needed_by, format!("b@{}", c.b.digest()));
    assert_eq!(edit.evicted_manifests, 1);
}

#[test]
fn an_unusable_state_file_evicts_nothing() {
    let c = build();
    let path = c.root.join("scheduler-state.json");
    let text = std::fs::read(&path).unwrap();
    for bad in [&text[..text.len() / 2], b"[1,2,3]".as_slice()] {
        std::fs::write(&path, bad).unwrap();
        let inv = inventory(&c.root);
        assert!(
            inv.findings
                .iter()
                .any(|f| f.kind.as_str() == "cache_state_unusable")
        );
        let p = plan(&inv, c.t0.saturating_sub_secs(-30 * DAY));
        assert!(p.manifests.is_empty() && p.blobs.is_empty() && p.tags.is_empty());
        assert!(
            p.blocked
                .iter()
                .any(|b| b.contains("no cached image is evicted"))
        );
        assert!(!p.cache.unwrap().state_usable);
    }
}

#[test]
fn a_size_cap_evicts_the_least_recently_cached_whole_images_until_the_cache_fits() {
    let c = build();
    let inv = inventory(&c.root);
    let total: u64 = inv.blobs.iter().map(|b| b.size).sum();
    // Day 1: nothing has expired, the cap alone evicts. Day 10: A has expired, which
    // already brings the cache under the same cap.
    for (now, why) in [
        (c.t0.saturating_sub_secs(-DAY), "cache-size-cap"),
        (c.t0.saturating_sub_secs(-10 * DAY), "cache-expired"),
    ] {
        // Under the cap: nothing but what expired.
        let p = plan_capped(&inv, now, Some(total));
        assert!(p.manifests.iter().all(|m| m.reason == "cache-expired"));
        // One byte over: the least recently cached image (A) goes, and only it; the layer
        // it shares with B stays, and the bytes are exactly A's own.
        let p = plan_capped(&inv, now, Some(total - 1));
        let evicted: Vec<String> = p
            .manifests
            .iter()
            .map(|m| format!("{}@{} {}", m.repository, m.digest, m.reason))
            .collect();
        assert_eq!(evicted, vec![format!("a@{} {why}", c.a.digest())]);
        assert!(!digests(&p).contains(&c.shared.digest()));
        assert_eq!(p.tags.len(), 1);
        assert!(p.blob_bytes >= 1);
        // Cap 0: every image with an entry goes, an index with its children, and the plan
        // frees every blob.
        let p = plan_capped(&inv, now, Some(0));
        assert_eq!(p.blob_bytes, total);
        assert!(p.manifests.iter().any(|m| m.digest == c.child1.digest()));
    }
}

/// Pull data with one pull of `repo@digest` at `t`.
fn pulled(repo: &str, w: &Written, t: Timestamp) -> stowage_policy::PullData {
    let mut last = std::collections::HashMap::new();
    last.insert((repo.to_string(), w.digest().to_string()), t);
    stowage_policy::PullData {
        source: "pulls.db".into(),
        begins: Some(t),
        ends: Some(t),
        last,
        recent: Vec::new(),
    }
}

#[test]
fn a_size_cap_evicts_by_last_pull_then_cache_time_at_two_nows() {
    use stowage_plan::cache::CapOrder;
    use stowage_policy::cache::EvictOrder::{LeastRecentlyCached, LeastRecentlyPulled};
    let c = build();
    let inv = inventory(&c.root);
    let size = |names: &[&str]| -> u64 {
        names
            .iter()
            .map(|n| {
                let w = &c.all.iter().find(|(x, _)| x == n).unwrap().1;
                inv.blobs[inv.id_of(&w.digest()).unwrap() as usize].size
            })
            .sum()
    };
    let total: u64 = inv.blobs.iter().map(|b| b.size).sum();
    let a_own = size(&["a", "ca", "a_only"]);
    let (b_own, c_all) = (
        size(&["b", "cb", "b_only"]),
        size(&["idx", "c1", "c2", "cc", "l1", "l2"]),
    );
    let day = |d: i64| c.t0.saturating_sub_secs(-d * DAY);
    // B (cached at day 7, pulled by digest) was pulled again on day 8; the index in c
    // (cached at day 7) never since its fetch; A was cached at day 0.
    let pulls = pulled("b", &c.b, day(8));
    let img = |r: &str, w: &Written| format!("{r}@{}", w.digest());
    struct Row {
        now: i64,
        cap: u64,
        order: stowage_policy::cache::EvictOrder,
        with_pulls: bool,
        evicted: Vec<(String, u64)>,
        stored_after: u64,
    }
    let after_a = total - a_own;
    let rows = [
        // Day 1, nothing expired: A, the least recently pulled (its fetch), goes alone; the
        // layer it shares with B stays (#4191), so it frees exactly its own blobs.
        Row {
            now: 1,
            cap: total - 1,
            order: LeastRecentlyPulled,
            with_pulls: true,
            evicted: vec![(img("a", &c.a), a_own)],
            stored_after: after_a,
        },
        // Day 10, A expired (not the cap's): one byte more to free. By last pull, the index
        // in c goes (B was pulled on day 8) with its children.
        Row {
            now: 10,
            cap: after_a - 1,
            order: LeastRecentlyPulled,
            with_pulls: true,
            evicted: vec![(img("c", &c.index), c_all)],
            stored_after: after_a - c_all,
        },
        // The same without pull data: both were fetched on day 7; `b` sorts first, and with
        // A gone the shared layer is B's alone and goes with it.
        Row {
            now: 10,
            cap: after_a - 1,
            order: LeastRecentlyPulled,
            with_pulls: false,
            evicted: vec![(img("b", &c.b), b_own + size(&["shared"]))],
            stored_after: after_a - b_own - size(&["shared"]),
        },
        // By cache time, the pull of B does not count.
        Row {
            now: 10,
            cap: after_a - 1,
            order: LeastRecentlyCached,
            with_pulls: true,
            evicted: vec![(img("b", &c.b), b_own + size(&["shared"]))],
            stored_after: after_a - b_own - size(&["shared"]),
        },
        // Cap 0 on day 10: both go, in order, and nothing stays stored.
        Row {
            now: 10,
            cap: 0,
            order: LeastRecentlyPulled,
            with_pulls: true,
            evicted: vec![
                (img("c", &c.index), c_all),
                (img("b", &c.b), b_own + size(&["shared"])),
            ],
            stored_after: 0,
        },
    ];
    for (i, r) in rows.iter().enumerate() {
        let opts = GcOptions {
            grace_seconds: 0,
            cache: true,
            cache_max_bytes: Some(r.cap),
            ..Default::default()
        };
        let order = CapOrder {
            evict: r.order,
            pulls: r.with_pulls.then_some(&pulls),
            source: "test",
        };
        let p = gc::build_capped(&Graph::new(&inv), &opts, day(r.now), order);
        let cap = p.cache.as_ref().unwrap().size_cap.clone().unwrap();
        let got: Vec<(String, u64)> = cap
            .images
            .iter()
            .map(|x| (format!("{}@{}", x.repository, x.digest), x.bytes_freed))
            .collect();
        assert_eq!(got, r.evicted, "row {i}");
        assert_eq!(cap.stored_after, r.stored_after, "row {i}");
        assert!(!cap.unmet, "row {i}");
        // The plan frees exactly what expired plus what the cap says, nothing a kept image
        // reaches.
        let expired = if r.now >= 7 { a_own } else { 0 };
        let capped: u64 = cap.images.iter().map(|x| x.bytes_freed).sum();
        assert_eq!(p.blob_bytes, expired + capped, "row {i}");
        if r.with_pulls && r.order == LeastRecentlyPulled && r.now == 10 && r.cap > 0 {
            assert!(
                !digests(&p).contains(&c.shared.digest()),
                "B still needs it"
            );
            assert_eq!(cap.pull_data.as_deref(), Some("pulls.db"));
        }
    }
}

#[test]
fn a_policy_cache_rule_is_the_gc_size_cap() {
    let c = build();
    let inv = inventory(&c.root);
    let g = Graph::new(&inv);
    let now = c.t0.saturating_sub_secs(-10 * DAY);
    let pulls = pulled("b", &c.b, c.t0.saturating_sub_secs(-8 * DAY));
    let text = "apiVersion: retention.v1\nkind: RetentionPolicy\nprotections: {grace_period: 0s}\ncache: {max_bytes: \"1000\", evict: least_recently_pulled}\npolicies: []\n";
    let policy = stowage_plan::retention::LoadedPolicy::from_text(
        Path::new("cache-policy.yaml"),
        text.into(),
    )
    .unwrap();
    let from_policy = stowage_plan::cache::policy_plan(&policy, &g, now, Some(&pulls)).unwrap();
    let opts = GcOptions {
        grace_seconds: 0,
        cache: true,
        cache_max_bytes: Some(1000),
        ..Default::default()
    };
    let order = stowage_plan::cache::CapOrder {
        pulls: Some(&pulls),
        source: "cache-policy.yaml",
        ..Default::default()
    };
    let mut from_flag = gc::build_capped(&g, &opts, now, order);
    stowage_plan::replay::check(
        &mut from_flag,
        Some(&pulls),
        stowage_policy::file::WouldBreakAction::Warn,
        None,
        now,
    );
    assert_eq!(from_policy, from_flag);
    assert!(
        !from_policy
            .cache
            .unwrap()
            .size_cap
            .unwrap()
            .images
            .is_empty()
    );
}

#[test]
fn the_state_edit_follows_what_apply_removed_not_the_plan() {
    use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, apply};
    let c = build();
    let now = c.t0.saturating_sub_secs(-10 * DAY);
    let p = plan(&inventory(&c.root), now);
    let a_only = format!("a@{}", c.a_only.digest());
    let a = format!("a@{}", c.a.digest());
    let removes = |k: &str| p.cache.as_ref().unwrap().remove.iter().any(|r| r.key == k);
    assert!(removes(&a) && removes(&a_only));
    // Since the plan, an image in `d` needs A's own layer: apply's re-check keeps it.
    let t = TreeBuilder::new(&c.root);
    let cd = t.blob(br#"{"config":"d"}"#);
    t.image("d", Some("new"), &cd, &[&c.a_only]);
    let mut o = ApplyOptions::new(now, CacheStep::Nothing);
    o.mode = Mode::Offline;
    o.journal = Some(c.root.join("journal"));
    o.quiet_window_seconds = 0;
    let s = FsStorage::open(&c.root.join("docker/registry/v2")).unwrap();
    let rep = apply(&s, &p, &o, &|_| {}).unwrap();
    let state = std::fs::read_to_string(c.root.join("scheduler-state.json")).unwrap();
    // The kept layer's expired entry goes too: left, it would make the registry delete the
    // layer `d:new` now needs at its next start (review: a regression the first version of
    // this test asserted). A's manifest's entry goes with the manifest.
    assert!(!state.contains(&a_only), "{state}");
    assert!(!state.contains(&format!("\"{a}\"")), "{state}");
    assert!(inventory(&c.root).is_present(inventory(&c.root).id_of(&c.a_only.digest()).unwrap()));
    assert!(
        rep.skipped
            .iter()
            .any(|s| s.path.contains(&c.a_only.digest().to_string()[7..])),
        "{:?}",
        rep.skipped
    );
}
