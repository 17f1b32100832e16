//! Size accounting checked against brute force (set unions and differences) on generated
//! registries, and against hand-computed figures on the real-registry sample.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use stowage_graph::{Graph, Scratch, usage};
use stowage_model::inventory::{BlobId, Inventory};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;
use stowage_testkit::random::{build, push_strategy};

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

fn reach(g: &Graph<'_>, roots: &[BlobId]) -> BTreeSet<BlobId> {
    let mut s = Scratch::new(g.len());
    let mut out = BTreeSet::new();
    g.for_each_descendant_of_all(roots, &mut s, |id| {
        out.insert(id);
    });
    out
}

fn bytes(g: &Graph<'_>, set: &BTreeSet<BlobId>) -> u64 {
    set.iter().map(|&id| g.size(id)).sum()
}

fn under(name: &str, ns: &str) -> bool {
    ns.is_empty() || name == ns || name.starts_with(&format!("{ns}/"))
}

/// Every figure of `usage` recomputed from sets.
fn check_against_brute_force(inv: &Inventory) {
    let g = Graph::new(inv);
    let u = usage(&g);
    let repo_reach: Vec<BTreeSet<BlobId>> = inv
        .repositories
        .iter()
        .map(|r| {
            reach(
                &g,
                &r.revisions.iter().map(|l| l.target()).collect::<Vec<_>>(),
            )
        })
        .collect();
    for node in &u.nodes {
        let mut inside = BTreeSet::new();
        let mut outside = BTreeSet::new();
        for (ri, r) in inv.repositories.iter().enumerate() {
            if under(r.name.as_str(), &node.name) {
                inside.extend(repo_reach[ri].iter().copied());
            } else {
                outside.extend(repo_reach[ri].iter().copied());
            }
        }
        assert_eq!(node.total, bytes(&g, &inside), "total of {:?}", node.name);
        let excl: BTreeSet<BlobId> = inside.difference(&outside).copied().collect();
        assert_eq!(
            node.exclusive,
            bytes(&g, &excl),
            "exclusive of {:?}",
            node.name
        );
        if let Some(ri) = node.repository {
            let own = &repo_reach[ri as usize];
            assert_eq!(
                node.own_total,
                bytes(&g, own),
                "own total of {:?}",
                node.name
            );
            let others: BTreeSet<BlobId> = repo_reach
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != ri as usize)
                .flat_map(|(_, s)| s.iter().copied())
                .collect();
            let own_excl: BTreeSet<BlobId> = own.difference(&others).copied().collect();
            assert_eq!(
                node.own_exclusive,
                bytes(&g, &own_excl),
                "own exclusive of {:?}",
                node.name
            );
        }
    }
    // Tags.
    let mut all_tags = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for (ti, t) in r.tags.iter().enumerate() {
            let roots: Vec<BlobId> = t.current.and_then(|c| c.target).into_iter().collect();
            all_tags.push(((ri, ti), reach(&g, &roots)));
        }
    }
    for ((ri, ti), set) in &all_tags {
        let others: BTreeSet<BlobId> = all_tags
            .iter()
            .filter(|(k, _)| k != &(*ri, *ti))
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        let tu = &u.tags[*ri][*ti];
        assert_eq!(tu.total, bytes(&g, set));
        assert_eq!(
            tu.exclusive,
            bytes(&g, &set.difference(&others).copied().collect())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn usage_equals_brute_force(
        pushes in proptest::collection::vec(push_strategy(), 1..12),
        sizes in proptest::collection::vec(1usize..5000, 1..8),
    ) {
        let (_dir, root) = build(&pushes, &sizes);
        let inv = scan_dir(&root);
        check_against_brute_force(&inv);
    }
}

#[test]
fn sample_usage_equals_brute_force() {
    let s = stowage_testkit::sample();
    let inv = scan_dir(&s.layout_root());
    check_against_brute_force(&inv);
    let g = Graph::new(&inv);
    let u = usage(&g);
    // The shared base layer (262,607 bytes) is in every amd64 image: never exclusive to one
    // repository, so every top-level namespace shares it.
    for ns in ["library", "multiarch", "team"] {
        let n = u.node(ns).unwrap();
        assert!(n.shared() >= 262_607, "{ns}: {n:?}");
    }
    // Whole registry: everything reachable is exclusive to the root.
    assert_eq!(u.nodes[0].shared(), 0);
}

#[test]
fn tags_on_one_manifest_have_no_exclusive_bytes() {
    let s = stowage_testkit::sample();
    let inv = scan_dir(&s.layout_root());
    let g = Graph::new(&inv);
    let u = usage(&g);
    let ri = inv
        .repositories
        .iter()
        .position(|r| r.name.as_str() == "library/base")
        .unwrap();
    let r = &inv.repositories[ri];
    let ti = |name: &str| r.tags.iter().position(|t| t.name == name).unwrap();
    // 1.0 and latest are the same manifest: deleting one frees nothing.
    assert_eq!(u.tags[ri][ti("1.0")].exclusive, 0);
    assert_eq!(u.tags[ri][ti("latest")].exclusive, 0);
    // 1.0-oci is another manifest over the same config and layer: only its own 404 bytes.
    assert_eq!(u.tags[ri][ti("1.0-oci")].exclusive, 404);
    assert_eq!(u.tags[ri][ti("1.0")].total, 426 + 411 + 262_607);
}
