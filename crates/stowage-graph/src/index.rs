//! Building the adjacency tables, and walks over them.

use stowage_model::inventory::{BlobId, Inventory, LinkKind, LinkState, ManifestStatus, RefRole};
use stowage_model::manifest::ManifestKind;

/// Compressed sparse rows: `targets[start[k]..start[k+1]]` are the values of row `k`.
///
/// Dense when many rows have values (`start` has one offset per row); sparse otherwise
/// (`keys` lists, sorted, the rows that have values, and `start` has one offset per key), so a
/// table whose rows are a few manifests or subjects costs 8 bytes per such row, not 4 bytes
/// per id. Built in two passes over the source (count, then fill) with no intermediate pair
/// list: at a million blobs the pair lists were the largest transient of the whole run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Csr {
    keys: Option<Vec<u32>>,
    start: Vec<u32>,
    targets: Vec<u32>,
}

impl Csr {
    /// Rows are `0..rows`. `each` is called twice, once to count and once to fill, and must
    /// report the same (row, value) pairs both times; values of a row keep report order.
    pub(crate) fn build(rows: usize, each: impl Fn(&mut dyn FnMut(u32, u32))) -> Csr {
        let mut start = vec![0u32; rows + 1];
        let mut total = 0usize;
        each(&mut |r, _| {
            if let Some(c) = start.get_mut(r as usize + 1) {
                *c += 1;
                total += 1;
            }
        });
        let nonempty = start.iter().filter(|&&c| c > 0).count();
        let mut targets = vec![0u32; total];
        if nonempty * 2 < rows {
            // Sparse: offsets only for the rows that have values.
            let keys: Vec<u32> = (0..rows as u32)
                .filter(|&r| start[r as usize + 1] > 0)
                .collect();
            let mut offsets = Vec::with_capacity(keys.len() + 1);
            let mut at = 0u32;
            for &k in &keys {
                offsets.push(at);
                at += start[k as usize + 1];
            }
            offsets.push(at);
            drop(start);
            let mut cursor: Vec<u32> = offsets[..keys.len()].to_vec();
            each(&mut |r, v| {
                if let Ok(k) = keys.binary_search(&r)
                    && let Some(t) = targets.get_mut(cursor[k] as usize)
                {
                    *t = v;
                    cursor[k] += 1;
                }
            });
            return Csr {
                keys: Some(keys),
                start: offsets,
                targets,
            };
        }
        // Dense: prefix sums make start[r] the first slot of row r; filling advances it to
        // the row's end (= the next row's start), and one shift restores the offsets.
        for i in 0..rows {
            start[i + 1] += start[i];
        }
        each(&mut |r, v| {
            let r = r as usize;
            if r < rows
                && let Some(t) = targets.get_mut(start[r] as usize)
            {
                *t = v;
                start[r] += 1;
            }
        });
        for i in (1..=rows).rev() {
            start[i] = start[i - 1];
        }
        if let Some(s) = start.first_mut() {
            *s = 0;
        }
        Csr {
            keys: None,
            start,
            targets,
        }
    }

    pub(crate) fn row(&self, i: u32) -> &[u32] {
        let k = match &self.keys {
            None => i as usize,
            Some(keys) => match keys.binary_search(&i) {
                Ok(k) => k,
                Err(_) => return &[],
            },
        };
        if k + 1 >= self.start.len() {
            return &[];
        }
        &self.targets[self.start[k] as usize..self.start[k + 1] as usize]
    }
}

/// The reference graph of one inventory.
pub struct Graph<'a> {
    pub inv: &'a Inventory,
    n: usize,
    /// Referenced id -> manifests referencing it.
    rev: Csr,
    /// Subject -> its referrers.
    referrers: Csr,
    /// Manifest id -> repositories holding a revision link for it (by repository index).
    revision_repos: Csr,
    /// Blob id -> repositories holding a `_layers` link for it.
    layer_repos: Csr,
    /// Manifest id -> tags whose `current` names it, as `repo << 32 | tag` split over two rows.
    current_tags: Csr,
    /// Tag coordinates indexed by `current_tags` values.
    pub(crate) tag_coords: Vec<(u32, u32)>,
    /// One bit per id: whether `inv.manifests` has a record for it (found by binary search;
    /// a bit per id instead of a `u32` index per id).
    is_manifest: Vec<u64>,
    /// Non-sha256 digest -> the canonical blobs its `_layers` alias links name (sha512 pushes
    /// are stored under sha256 with an alias link, `spec/registry-storage.md` §1.3).
    aliases: Csr,
    /// Id -> role it is referenced in (the strongest seen: config beats layer), or NONE.
    pub(crate) role: Vec<u8>,
}

pub(crate) const ROLE_NONE: u8 = 0;
pub(crate) const ROLE_LAYER: u8 = 1;
pub(crate) const ROLE_CONFIG: u8 = 2;

impl<'a> Graph<'a> {
    pub fn new(inv: &'a Inventory) -> Graph<'a> {
        let n = inv.id_count();
        let mut is_manifest = vec![0u64; n.div_ceil(64)];
        let mut role = vec![ROLE_NONE; n];
        for m in &inv.manifests {
            if let Some(w) = is_manifest.get_mut(m.id as usize / 64) {
                *w |= 1 << (m.id % 64);
            }
            for r in inv.refs_of(m) {
                let rl = match r.role() {
                    RefRole::Config => ROLE_CONFIG,
                    RefRole::Layer | RefRole::External | RefRole::ArtifactBlob => ROLE_LAYER,
                    RefRole::Child => ROLE_NONE,
                };
                role[r.id() as usize] = role[r.id() as usize].max(rl);
            }
        }
        let rev = Csr::build(n, |f| {
            for m in &inv.manifests {
                inv.refs_of(m).iter().for_each(|r| f(r.id(), m.id));
            }
        });
        let referrers = Csr::build(n, |f| {
            for m in &inv.manifests {
                if let Some(s) = m.subject() {
                    f(s, m.id);
                }
            }
        });
        let aliases = Csr::build(n, |f| {
            for r in &inv.repositories {
                for (path_digest, content) in &r.aliases {
                    if let (Some(a), Some(c)) = (
                        inv.id_of(path_digest),
                        content.as_ref().and_then(|c| inv.id_of(c)),
                    ) {
                        f(a, c);
                    }
                }
            }
        });
        let revision_repos = Csr::build(n, |f| {
            for (ri, r) in inv.repositories.iter().enumerate() {
                r.revisions.iter().for_each(|l| f(l.target(), ri as u32));
            }
        });
        let layer_repos = Csr::build(n, |f| {
            for (ri, r) in inv.repositories.iter().enumerate() {
                r.layers.iter().for_each(|l| f(l.target(), ri as u32));
            }
        });
        let mut tag_coords = Vec::new();
        for (ri, r) in inv.repositories.iter().enumerate() {
            for (ti, t) in r.tags.iter().enumerate() {
                if t.current.and_then(|c| c.target).is_some() {
                    tag_coords.push((ri as u32, ti as u32));
                }
            }
        }
        tag_coords.shrink_to_fit();
        let current_tags = Csr::build(n, |f| {
            let mut i = 0u32;
            for r in &inv.repositories {
                for t in &r.tags {
                    if let Some(id) = t.current.and_then(|c| c.target) {
                        f(id, i);
                        i += 1;
                    }
                }
            }
        });
        Graph {
            inv,
            n,
            rev,
            referrers,
            revision_repos,
            layer_repos,
            current_tags,
            aliases,
            tag_coords,
            is_manifest,
            role,
        }
    }

    /// Number of ids (present blobs + missing digests).
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// What manifest `id` references (config, layers, children, artifact blobs), in
    /// manifest order; nothing for a blob that is not a manifest.
    pub fn refs(&self, id: BlobId) -> impl Iterator<Item = BlobId> + use<'a> {
        let inv = self.inv;
        self.manifest(id)
            .into_iter()
            .flat_map(move |m| inv.refs_of(m).iter().map(|r| r.id()))
    }

    /// Index children of manifest `id` (nothing for other blobs).
    pub fn children(&self, id: BlobId) -> impl Iterator<Item = BlobId> + use<'a> {
        let inv = self.inv;
        self.manifest(id)
            .into_iter()
            .flat_map(move |m| inv.children_of(m))
    }

    /// Manifests that reference `id` directly.
    pub fn parents(&self, id: BlobId) -> &[u32] {
        self.rev.row(id)
    }

    pub fn referrers(&self, subject: BlobId) -> &[u32] {
        self.referrers.row(subject)
    }

    /// Repositories (indices) with a revision link for manifest `id`.
    pub fn revision_repos(&self, id: BlobId) -> &[u32] {
        self.revision_repos.row(id)
    }

    /// Repositories (indices) with a `_layers` link for blob `id`.
    pub fn layer_repos(&self, id: BlobId) -> &[u32] {
        self.layer_repos.row(id)
    }

    /// Tags whose current link names `id`, as (repository index, tag index).
    pub fn tags_of(&self, id: BlobId) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.current_tags
            .row(id)
            .iter()
            .map(|&i| self.tag_coords[i as usize])
    }

    pub fn manifest(&self, id: BlobId) -> Option<&'a stowage_model::inventory::ManifestRecord> {
        let bit = self.is_manifest.get(id as usize / 64)? >> (id % 64) & 1;
        if bit == 0 {
            return None;
        }
        self.inv.manifest(id)
    }

    pub fn is_opaque(&self, id: BlobId) -> bool {
        self.manifest(id).is_some_and(|m| m.is_opaque())
    }

    pub fn size(&self, id: BlobId) -> u64 {
        self.inv.blob(id).map_or(0, |b| b.size)
    }

    /// Roots of the registry's plain GC: every revision of every repository (both digests
    /// of a link whose content disagrees with its path).
    pub fn all_revision_roots(&self) -> Vec<BlobId> {
        let mut roots = Vec::new();
        for r in &self.inv.repositories {
            roots.extend(r.revisions.iter().map(|l| l.target()));
            for o in &r.odd_links {
                if o.kind == LinkKind::Revision
                    && let Some(id) = o.content.as_ref().and_then(|d| self.inv.id_of(d))
                {
                    roots.push(id);
                }
            }
        }
        roots
    }

    /// Mark everything reachable from `roots` (manifests). Follows references, index
    /// children, and — when `referrers` is set — referrers of anything marked (a signature
    /// or SBOM lives while its subject lives). Opaque manifests mark everything their
    /// repositories link.
    pub fn mark(&self, roots: impl IntoIterator<Item = BlobId>, referrers: bool) -> Vec<bool> {
        let mut marked = vec![false; self.n];
        let mut expanded = vec![false; self.inv.repositories.len()];
        let mut stack: Vec<u32> = Vec::new();
        for r in roots {
            if !marked[r as usize] {
                marked[r as usize] = true;
                stack.push(r);
            }
        }
        while let Some(id) = stack.pop() {
            for c in self.refs(id) {
                if !marked[c as usize] {
                    marked[c as usize] = true;
                    stack.push(c);
                }
            }
            for &c in self.aliases.row(id) {
                if !marked[c as usize] {
                    marked[c as usize] = true;
                    stack.push(c);
                }
            }
            if referrers {
                for &c in self.referrers(id) {
                    if !marked[c as usize] {
                        marked[c as usize] = true;
                        stack.push(c);
                    }
                }
            }
            if self.is_opaque(id) {
                for &ri in self.revision_repos(id) {
                    if std::mem::replace(&mut expanded[ri as usize], true) {
                        continue;
                    }
                    let repo = &self.inv.repositories[ri as usize];
                    for l in repo.layers.iter().chain(repo.revisions.iter()) {
                        if !marked[l.target() as usize] {
                            marked[l.target() as usize] = true;
                            stack.push(l.target());
                        }
                    }
                }
            }
        }
        marked
    }

    /// Whether a revision link is trustworthy (its content is the digest its path names, or
    /// assumed so).
    pub fn link_trusted(state: LinkState) -> bool {
        matches!(state, LinkState::Assumed | LinkState::Verified)
    }

    pub fn manifest_kind(&self, id: BlobId) -> Option<ManifestKind> {
        self.manifest(id).and_then(|m| m.kind)
    }

    pub fn manifest_parsed(&self, id: BlobId) -> bool {
        self.manifest(id)
            .is_some_and(|m| m.status == ManifestStatus::Parsed)
    }

    /// Walk the ancestors of `id` (manifests that reach it, transitively) with a reusable
    /// stamp buffer. Calls `f` for `id` itself and every ancestor.
    pub fn for_each_ancestor(&self, id: BlobId, scratch: &mut Scratch, mut f: impl FnMut(BlobId)) {
        scratch.next();
        let mut stack = std::mem::take(&mut scratch.stack);
        stack.clear();
        stack.push(id);
        scratch.visit(id);
        while let Some(x) = stack.pop() {
            f(x);
            for &p in self.parents(x) {
                if scratch.visit(p) {
                    stack.push(p);
                }
            }
        }
        scratch.stack = stack;
    }

    /// Walk everything reachable from `root` (itself included), references only.
    pub fn for_each_descendant(&self, root: BlobId, scratch: &mut Scratch, f: impl FnMut(BlobId)) {
        self.for_each_descendant_of_all(&[root], scratch, f)
    }

    /// Walk everything reachable from any of `roots` (each id once), references only.
    pub fn for_each_descendant_of_all(
        &self,
        roots: &[BlobId],
        scratch: &mut Scratch,
        mut f: impl FnMut(BlobId),
    ) {
        scratch.next();
        let mut stack = std::mem::take(&mut scratch.stack);
        stack.clear();
        for &root in roots {
            if scratch.visit(root) {
                stack.push(root);
            }
        }
        while let Some(x) = stack.pop() {
            f(x);
            for c in self.refs(x).chain(self.aliases.row(x).iter().copied()) {
                if scratch.visit(c) {
                    stack.push(c);
                }
            }
        }
        scratch.stack = stack;
    }
}

/// A reusable visited-set: a stamp per id, so clearing is O(1).
pub struct Scratch {
    stamp: Vec<u32>,
    current: u32,
    stack: Vec<u32>,
}

impl Scratch {
    pub fn new(n: usize) -> Scratch {
        Scratch {
            stamp: vec![0; n],
            current: 0,
            stack: Vec::new(),
        }
    }

    fn next(&mut self) {
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.current = 1;
        }
    }

    /// Returns true the first time `id` is visited in this walk.
    fn visit(&mut self, id: u32) -> bool {
        let s = &mut self.stamp[id as usize];
        if *s == self.current {
            false
        } else {
            *s = self.current;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Csr;
    use proptest::prelude::*;

    /// Rows as a plain map, in report order: what every `Csr` must answer.
    fn naive(rows: usize, pairs: &[(u32, u32)]) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); rows];
        for &(r, v) in pairs {
            out[r as usize].push(v);
        }
        out
    }

    proptest! {
        #[test]
        fn csr_answers_like_a_map(
            rows in 1usize..200,
            raw in proptest::collection::vec((0u32..1000, any::<u32>()), 0..400),
        ) {
            let pairs: Vec<(u32, u32)> = raw.iter().map(|&(r, v)| (r % rows as u32, v)).collect();
            let csr = Csr::build(rows, |f| pairs.iter().for_each(|&(r, v)| f(r, v)));
            let want = naive(rows, &pairs);
            for (r, w) in want.iter().enumerate() {
                prop_assert_eq!(csr.row(r as u32), w.as_slice());
            }
            prop_assert!(csr.row(rows as u32).is_empty());
            prop_assert!(csr.row(u32::MAX).is_empty());
        }
    }

    #[test]
    fn few_rows_are_stored_sparse_and_many_dense() {
        let sparse = Csr::build(1000, |f| {
            f(7, 1);
            f(900, 2);
            f(7, 3);
        });
        assert!(sparse.keys.is_some());
        assert_eq!(sparse.row(7), &[1, 3]);
        assert_eq!(sparse.row(900), &[2]);
        assert!(sparse.row(8).is_empty());
        let dense = Csr::build(4, |f| (0..4).for_each(|r| f(r, r * 10)));
        assert!(dense.keys.is_none());
        assert_eq!(dense.row(3), &[30]);
    }
}
