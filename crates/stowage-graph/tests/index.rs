//! The graph's lazily built tables and `Graph::parents_of` against brute force over the
//! sample registry's inventory.

#![allow(clippy::unwrap_used)]

use stowage_graph::Graph;
use stowage_model::inventory::{BlobId, Inventory};
use stowage_scan::{Progress, ScanOptions, scan};
use stowage_storage::FsStorage;

fn sample_inventory() -> Inventory {
    let s = stowage_testkit::sample();
    let st = FsStorage::open(&s.layout_root()).unwrap();
    scan(&st, &ScanOptions::default(), &Progress::default()).unwrap()
}

/// The manifests referencing `id`, by reading every manifest's references.
fn brute_parents(inv: &Inventory, id: BlobId) -> Vec<u32> {
    let mut out: Vec<u32> = (inv.manifests.iter())
        .filter(|m| inv.refs_of(m).iter().any(|r| r.id() == id))
        .map(|m| m.id)
        .collect();
    out.dedup();
    out
}

fn sorted(v: &[u32]) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn lazy_tables_and_restricted_parents_equal_brute_force() {
    let inv = sample_inventory();
    let g = Graph::new(&inv);
    let n = g.len() as BlobId;
    assert!(n > 20, "the sample has blobs: {n}");
    let wanted = |id: BlobId| id.is_multiple_of(3);
    let some = g.parents_of(wanted);
    let mut with_parents = 0;
    for id in 0..n {
        let expected = brute_parents(&inv, id);
        with_parents += usize::from(!expected.is_empty());
        assert_eq!(sorted(g.parents(id)), expected, "parents of {id}");
        if wanted(id) {
            assert_eq!(sorted(some.row(id)), expected, "restricted parents of {id}");
        } else {
            assert!(some.row(id).is_empty(), "{id} was not wanted");
        }
        let linking: Vec<u32> = (inv.repositories.iter().enumerate())
            .filter(|(_, r)| r.layer(id).is_some())
            .map(|(i, _)| i as u32)
            .collect();
        assert_eq!(
            sorted(g.layer_repos(id)),
            linking,
            "repositories linking {id}"
        );
        let holding: Vec<u32> = (inv.repositories.iter().enumerate())
            .filter(|(_, r)| r.revision(id).is_some())
            .map(|(i, _)| i as u32)
            .collect();
        assert_eq!(sorted(g.revision_repos(id)), holding, "revisions of {id}");
        let mut tags: Vec<(u32, u32)> = g.tags_of(id).collect();
        tags.sort_unstable();
        let mut naming = Vec::new();
        for (ri, r) in inv.repositories.iter().enumerate() {
            for (ti, t) in r.tags.iter().enumerate() {
                if t.current.and_then(|c| c.target) == Some(id) {
                    naming.push((ri as u32, ti as u32));
                }
            }
        }
        assert_eq!(tags, naming, "tags naming {id}");
    }
    assert!(
        with_parents > 10,
        "the check saw referenced blobs: {with_parents}"
    );
}
