//! Size accounting: total, exclusive and shared bytes per repository (rolled up like
//! directories over nested names) and per tag.
//!
//! Definitions (also in `docs/json-schema.md`):
//! - **total** of a repository: distinct blob bytes reachable from its manifests (all
//!   revisions). Of a namespace: distinct bytes over every repository below it.
//! - **exclusive** of a repository or namespace: what deleting exactly it (all its revisions),
//!   then running the registry's GC, would free: bytes reachable from it and from no
//!   repository outside it.
//! - **shared** = total - exclusive.
//! - **total** of a tag: distinct bytes reachable from its current manifest (index children
//!   included). **exclusive** of a tag: what deleting that tag and collecting untagged
//!   manifests (`gc --delete-untagged`) would free: bytes reachable from this tag and from no
//!   other tag anywhere. Two tags on one manifest share everything, so each has 0 exclusive.
//!
//! # How it is computed in near-linear time
//! Repositories are placed in a namespace tree and visited in pre-order. For each blob we keep
//! the tree node that "owns" it: the lowest common ancestor of every repository reaching it.
//! A repository's exclusive bytes are then the bytes owned inside its subtree. Distinct totals
//! per subtree use the classic trick for unions of root paths: when repository `r` reaches a
//! blob last reached by `p` (previous in pre-order), add its size at `r` and subtract it at
//! `lca(p, r)`; subtree sums then count each blob once per subtree that contains a reacher.

use stowage_model::inventory::BlobId;

use crate::NONE;
use crate::index::{Graph, Scratch};

/// "More than one" in owner tables.
const MULTI: u32 = NONE - 1;

/// One node of the namespace tree (a repository, a namespace, or both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUsage {
    /// Full name (`team/app`); "" for the registry root.
    pub name: String,
    pub parent: u32,
    pub depth: u32,
    /// Index into `inventory.repositories` when this node is a repository.
    pub repository: Option<u32>,
    /// Child node indices, sorted by name.
    pub children: Vec<u32>,
    /// Subtree figures (roll-up like directories).
    pub total: u64,
    pub exclusive: u64,
    /// This repository alone (0 for pure namespaces).
    pub own_total: u64,
    pub own_exclusive: u64,
    /// Counts over the subtree.
    pub repositories: u64,
    pub tags: u64,
    pub manifests: u64,
    pub untagged: u64,
    pub upload_bytes: u64,
}

impl NodeUsage {
    pub fn shared(&self) -> u64 {
        self.total - self.exclusive
    }
}

/// Per-tag figures.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TagUsage {
    pub total: u64,
    pub exclusive: u64,
}

/// Usage over a whole inventory.
#[derive(Clone, Debug)]
pub struct Usage {
    /// Node 0 is the registry root.
    pub nodes: Vec<NodeUsage>,
    /// Repository index -> node index.
    pub repo_node: Vec<u32>,
    /// `tags[repo][tag]`, parallel to `inventory.repositories[repo].tags`.
    pub tags: Vec<Vec<TagUsage>>,
}

impl Usage {
    pub fn node(&self, name: &str) -> Option<&NodeUsage> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

fn lca(nodes: &[NodeUsage], mut a: u32, mut b: u32) -> u32 {
    while nodes[a as usize].depth > nodes[b as usize].depth {
        a = nodes[a as usize].parent;
    }
    while nodes[b as usize].depth > nodes[a as usize].depth {
        b = nodes[b as usize].parent;
    }
    while a != b {
        a = nodes[a as usize].parent;
        b = nodes[b as usize].parent;
    }
    a
}

/// Compute usage for every repository, namespace and tag.
pub fn usage(g: &Graph<'_>) -> Usage {
    let (mut nodes, repo_node) = namespace_tree(g);
    let order = pre_order(&nodes);
    let mut scratch = Scratch::new(g.len());
    let deltas = repository_reach(g, &mut nodes, &order, &mut scratch);
    roll_up(&mut nodes, &order, deltas);
    let tags = tag_usage(g, &mut scratch);
    Usage {
        nodes,
        repo_node,
        tags,
    }
}

/// The namespace tree: node 0 is the registry root, one node per name component prefix,
/// children sorted by name. Returns the nodes and, per repository, its node.
fn namespace_tree(g: &Graph<'_>) -> (Vec<NodeUsage>, Vec<u32>) {
    let inv = g.inv;
    let mut nodes = vec![NodeUsage {
        name: String::new(),
        parent: NONE,
        depth: 0,
        repository: None,
        children: Vec::new(),
        total: 0,
        exclusive: 0,
        own_total: 0,
        own_exclusive: 0,
        repositories: 0,
        tags: 0,
        manifests: 0,
        untagged: 0,
        upload_bytes: 0,
    }];
    let mut by_name: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    by_name.insert(String::new(), 0);
    let mut repo_node = vec![0u32; inv.repositories.len()];
    for (ri, r) in inv.repositories.iter().enumerate() {
        let mut parent = 0u32;
        let mut name = String::new();
        for (depth, comp) in r.name.components().enumerate() {
            if !name.is_empty() {
                name.push('/');
            }
            name.push_str(comp);
            parent = match by_name.get(&name) {
                Some(&i) => i,
                None => {
                    let i = nodes.len() as u32;
                    let mut n = nodes[0].clone();
                    n.name = name.clone();
                    n.parent = parent;
                    n.depth = depth as u32 + 1;
                    n.children = Vec::new();
                    nodes.push(n);
                    nodes[parent as usize].children.push(i);
                    by_name.insert(name.clone(), i);
                    i
                }
            };
        }
        nodes[parent as usize].repository = Some(ri as u32);
        repo_node[ri] = parent;
    }
    for i in 0..nodes.len() {
        let mut ch = std::mem::take(&mut nodes[i].children);
        ch.sort_by(|a, b| nodes[*a as usize].name.cmp(&nodes[*b as usize].name));
        nodes[i].children = ch;
    }
    (nodes, repo_node)
}

/// The nodes in pre-order (a parent before its children, children by name).
fn pre_order(nodes: &[NodeUsage]) -> Vec<u32> {
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack = vec![0u32];
    while let Some(x) = stack.pop() {
        order.push(x);
        for &c in nodes[x as usize].children.iter().rev() {
            stack.push(c);
        }
    }
    order
}

/// Per-node contributions before the subtree sums (see the module doc).
struct Deltas {
    /// Distinct-total deltas: `+size` at each reacher, `-size` at the lca with the previous one.
    total: Vec<i128>,
    /// Bytes of the blobs each node owns (the lca of every repository reaching them).
    exclusive: Vec<u64>,
}

/// Walks each repository's reach in pre-order: fills each repository node's own figures
/// and counts, and returns the deltas that `roll_up` sums over subtrees.
fn repository_reach(
    g: &Graph<'_>,
    nodes: &mut [NodeUsage],
    order: &[u32],
    scratch: &mut Scratch,
) -> Deltas {
    let inv = g.inv;
    let n = g.len();
    let mut owner = vec![NONE; n];
    // A bit per id: reached by more than one repository. While it is clear, `owner` is the
    // only repository reaching the id (a repository's reach names an id once, so a second
    // visit is another repository); a `u32` per id held that before.
    let mut multi = vec![0u64; n.div_ceil(64)];
    let mut last = vec![NONE; n];
    let mut total_delta = vec![0i128; nodes.len()];
    for &node in order {
        let Some(ri) = nodes[node as usize].repository else {
            continue;
        };
        let repo = &inv.repositories[ri as usize];
        let mut own = 0u64;
        // Reach of the repository: closure of all its revisions, in one walk.
        let roots: Vec<BlobId> = repo.revisions.iter().map(|l| l.target()).collect();
        let reach = reach_many(g, &roots, scratch);
        for id in reach {
            let size = g.size(id);
            own += size;
            total_delta[node as usize] += size as i128;
            let prev = last[id as usize];
            if prev != NONE {
                let l = lca(nodes, prev, node);
                total_delta[l as usize] -= size as i128;
            }
            last[id as usize] = node;
            owner[id as usize] = if owner[id as usize] == NONE {
                node
            } else {
                lca(nodes, owner[id as usize], node)
            };
            if prev != NONE {
                multi[id as usize / 64] |= 1 << (id % 64);
            }
        }
        let nu = &mut nodes[node as usize];
        nu.own_total = own;
        nu.repositories = 1;
        nu.tags = repo.tags.len() as u64;
        nu.manifests = repo.revisions.len() as u64;
        nu.untagged = repo.untagged_revisions().count() as u64;
        nu.upload_bytes = repo.uploads.iter().map(|u| u.total_size).sum();
    }
    let mut excl_delta = vec![0u64; nodes.len()];
    for (id, &o) in owner.iter().enumerate() {
        if o != NONE {
            excl_delta[o as usize] += g.size(id as BlobId);
        }
    }
    for (id, &o) in owner.iter().enumerate() {
        if o != NONE && multi[id / 64] & (1 << (id % 64)) == 0 {
            nodes[o as usize].own_exclusive += g.size(id as BlobId);
        }
    }
    Deltas {
        total: total_delta,
        exclusive: excl_delta,
    }
}

/// Subtree sums, children before parents (reverse pre-order): totals from the deltas,
/// exclusive bytes and the counts.
fn roll_up(nodes: &mut [NodeUsage], order: &[u32], deltas: Deltas) {
    let Deltas {
        total: mut tot,
        exclusive: mut exc,
    } = deltas;
    let mut counts: Vec<(u64, u64, u64, u64, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n.repositories,
                n.tags,
                n.manifests,
                n.untagged,
                n.upload_bytes,
            )
        })
        .collect();
    for &node in order.iter().rev() {
        let p = nodes[node as usize].parent;
        if p != NONE {
            tot[p as usize] += tot[node as usize];
            exc[p as usize] += exc[node as usize];
            let c = counts[node as usize];
            let pc = &mut counts[p as usize];
            pc.0 += c.0;
            pc.1 += c.1;
            pc.2 += c.2;
            pc.3 += c.3;
            pc.4 += c.4;
        }
    }
    for (i, nu) in nodes.iter_mut().enumerate() {
        nu.total = tot[i].max(0) as u64;
        nu.exclusive = exc[i];
        (
            nu.repositories,
            nu.tags,
            nu.manifests,
            nu.untagged,
            nu.upload_bytes,
        ) = counts[i];
    }
}

/// Per-tag figures: an owner per blob over tag roots (MULTI when two tags reach it).
fn tag_usage(g: &Graph<'_>, scratch: &mut Scratch) -> Vec<Vec<TagUsage>> {
    let inv = g.inv;
    let mut tag_owner = vec![NONE; g.len()];
    let mut tag_index = Vec::new(); // global tag number -> (repo, tag)
    let mut tags: Vec<Vec<TagUsage>> = inv
        .repositories
        .iter()
        .map(|r| vec![TagUsage::default(); r.tags.len()])
        .collect();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for (ti, t) in r.tags.iter().enumerate() {
            let gt = tag_index.len() as u32;
            tag_index.push((ri, ti));
            let Some(root) = t.current.and_then(|c| c.target) else {
                continue;
            };
            let mut total = 0;
            g.for_each_descendant(root, scratch, |id| {
                total += g.size(id);
                let o = &mut tag_owner[id as usize];
                *o = if *o == NONE || *o == gt { gt } else { MULTI };
            });
            tags[ri][ti].total = total;
        }
    }
    for (id, &o) in tag_owner.iter().enumerate() {
        if o != NONE && o != MULTI {
            let (ri, ti) = tag_index[o as usize];
            tags[ri][ti].exclusive += g.size(id as BlobId);
        }
    }
    tags
}

/// Distinct ids reachable from several roots (one walk, shared visited set).
fn reach_many(g: &Graph<'_>, roots: &[BlobId], scratch: &mut Scratch) -> Vec<BlobId> {
    let mut out = Vec::new();
    g.for_each_descendant_of_all(roots, scratch, |id| out.push(id));
    out
}
