//! Building the adjacency tables, and walks over them.

use std::sync::OnceLock;

use stowage_model::inventory::{BlobId, Inventory, LinkKind, LinkState, ManifestStatus, RefRole};
use stowage_model::manifest::ManifestKind;

/// Rows of `u32` values (a multimap from row to values) in compressed form.
///
/// Each row has a slot: empty, its only value inline, or the index of an overflow row whose
/// values sit in `start`/`targets` (compressed sparse rows). Most rows of the graph's tables
/// hold one value (a config's one manifest, a layer's one repository), so most cost their
/// slot alone. Slots are dense (one per row) when many rows have values; sparse otherwise
/// (`keys` lists, sorted, the rows that have values), so a table whose rows are a few
/// manifests or subjects costs 8 bytes per such row, not 4 bytes per id. Built in two passes
/// over the source (count, then fill) with no intermediate pair list: at a million blobs the
/// pair lists were the largest transient of the whole run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Csr {
    keys: Option<Vec<u32>>,
    slots: Vec<u32>,
    start: Vec<u32>,
    targets: Vec<u32>,
}

/// A slot with no value.
const EMPTY: u32 = u32::MAX;
/// A slot with this bit set holds an overflow row index; values below it are inline.
const OVERFLOW: u32 = 1 << 31;

impl Csr {
    fn heap_bytes(&self) -> usize {
        4 * (self.keys.as_ref().map_or(0, Vec::capacity)
            + self.slots.capacity()
            + self.start.capacity()
            + self.targets.capacity())
    }

    /// Rows are `0..rows`. `each` is called three times (count, place, fill) and must
    /// report the same (row, value) pairs each time; values of a row keep report order.
    pub(crate) fn build(rows: usize, each: impl Fn(&mut dyn FnMut(u32, u32))) -> Csr {
        // Pass 1: 0, 1 or "more" values per row; a value too large to inline counts as more.
        let mut count = vec![0u8; rows];
        each(&mut |r, v| {
            if let Some(c) = count.get_mut(r as usize) {
                *c = if v >= OVERFLOW { 2 } else { (*c + 1).min(2) };
            }
        });
        let nonempty = count.iter().filter(|&&c| c > 0).count();
        let keys: Option<Vec<u32>> = (nonempty * 2 < rows).then(|| {
            (0..rows as u32)
                .filter(|&r| count[r as usize] > 0)
                .collect()
        });
        let slot_of = |r: u32| -> Option<usize> {
            match &keys {
                None => ((r as usize) < rows).then_some(r as usize),
                Some(k) => k.binary_search(&r).ok(),
            }
        };
        let mut slots = vec![EMPTY; keys.as_ref().map_or(rows, Vec::len)];
        let mut overflow_rows = 0u32;
        for (r, &c) in count.iter().enumerate() {
            if c > 1
                && let Some(k) = slot_of(r as u32)
            {
                slots[k] = OVERFLOW | overflow_rows;
                overflow_rows += 1;
            }
        }
        drop(count);
        // Pass 2: single values go inline; overflow rows are counted.
        let mut start = vec![0u32; overflow_rows as usize + 1];
        each(&mut |r, v| {
            let Some(k) = slot_of(r) else { return };
            match slots[k] {
                s if s != EMPTY && s & OVERFLOW != 0 => start[(s & !OVERFLOW) as usize + 1] += 1,
                _ => slots[k] = v,
            }
        });
        for i in 0..overflow_rows as usize {
            start[i + 1] += start[i];
        }
        // Pass 3: fill the overflow rows. Filling advances each row's start to its end (the
        // next row's start); one shift restores the offsets.
        let mut targets = vec![0u32; start[overflow_rows as usize] as usize];
        each(&mut |r, v| {
            let Some(k) = slot_of(r) else { return };
            let s = slots[k];
            if s != EMPTY && s & OVERFLOW != 0 {
                let o = (s & !OVERFLOW) as usize;
                if let Some(t) = targets.get_mut(start[o] as usize) {
                    *t = v;
                    start[o] += 1;
                }
            }
        });
        for i in (1..=overflow_rows as usize).rev() {
            start[i] = start[i - 1];
        }
        start[0] = 0;
        Csr {
            keys,
            slots,
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
        let Some(slot) = self.slots.get(k) else {
            return &[];
        };
        match *slot {
            EMPTY => &[],
            s if s & OVERFLOW == 0 => std::slice::from_ref(slot),
            s => {
                let o = (s & !OVERFLOW) as usize;
                match (self.start.get(o), self.start.get(o + 1)) {
                    (Some(&a), Some(&b)) => &self.targets[a as usize..b as usize],
                    _ => &[],
                }
            }
        }
    }
}

/// The owned adjacency tables of one inventory: built once per scan ([`GraphIndex::build`])
/// and kept beside the inventory (the analysed registry, the dashboard between requests), so
/// a view ([`Graph::view`]) costs nothing. It holds ids, not references into the inventory;
/// a view pairs it with the inventory it was built from.
///
/// The tables only some commands read (who references a blob, which repositories link or
/// hold it, which tags name it: 4.0 of the 8.3 MB at 1M objects) are built on first use,
/// from the inventory the view pairs with, and kept: a GC reads none but the first, a
/// dashboard builds each once.
#[derive(Debug, Clone, Default)]
pub struct GraphIndex {
    n: usize,
    /// Referenced id -> manifests referencing it.
    rev: OnceLock<Csr>,
    /// Subject -> its referrers.
    referrers: Csr,
    /// Manifest id -> repositories holding a revision link for it (by repository index).
    revision_repos: OnceLock<Csr>,
    /// Blob id -> repositories holding a `_layers` link for it.
    layer_repos: OnceLock<Csr>,
    /// Manifest id -> tags whose `current` names it.
    current_tags: OnceLock<CurrentTags>,
    /// One bit per id: whether `inv.manifests` has a record for it (found by binary search;
    /// a bit per id instead of a `u32` index per id).
    is_manifest: Vec<u64>,
    /// Non-sha256 digest -> the canonical blobs its `_layers` alias links name (sha512 pushes
    /// are stored under sha256 with an alias link, `spec/registry-storage.md` §1.3).
    aliases: Csr,
    /// Id -> role it is referenced in (the strongest seen: config beats layer), or NONE.
    pub(crate) role: Vec<u8>,
}

/// Manifest id -> tags whose `current` names it: values index `coords`, each tag's
/// (repository index, tag index).
#[derive(Debug, Clone, Default)]
struct CurrentTags {
    csr: Csr,
    coords: Vec<(u32, u32)>,
}

/// The manifests referencing some ids ([`Graph::parents_of`]); nothing for the others.
#[derive(Debug, Clone, Default)]
pub struct Parents(Csr);

impl Parents {
    /// Manifests that reference `id` directly, if `id` was wanted.
    pub fn row(&self, id: BlobId) -> &[u32] {
        self.0.row(id)
    }
}

/// The index a view reads: its own (built by [`Graph::new`]) or one kept elsewhere.
pub(crate) enum Ix<'a> {
    Owned(Box<GraphIndex>),
    Borrowed(&'a GraphIndex),
}

impl std::ops::Deref for Ix<'_> {
    type Target = GraphIndex;
    fn deref(&self) -> &GraphIndex {
        match self {
            Ix::Owned(b) => b,
            Ix::Borrowed(r) => r,
        }
    }
}

/// The reference graph of one inventory: the inventory and its index, with the walks.
pub struct Graph<'a> {
    pub inv: &'a Inventory,
    pub(crate) ix: Ix<'a>,
}

pub(crate) const ROLE_NONE: u8 = 0;
pub(crate) const ROLE_LAYER: u8 = 1;
pub(crate) const ROLE_CONFIG: u8 = 2;

impl GraphIndex {
    /// Build the tables every command reads (two linear passes per table, see [`Csr`]);
    /// the others are built by the first view that needs them.
    pub fn build(inv: &Inventory) -> GraphIndex {
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
        GraphIndex {
            n,
            rev: OnceLock::new(),
            referrers,
            revision_repos: OnceLock::new(),
            layer_repos: OnceLock::new(),
            current_tags: OnceLock::new(),
            aliases,
            is_manifest,
            role,
        }
    }

    fn rev(&self, inv: &Inventory) -> &Csr {
        self.rev.get_or_init(|| {
            Csr::build(self.n, |f| {
                for m in &inv.manifests {
                    inv.refs_of(m).iter().for_each(|r| f(r.id(), m.id));
                }
            })
        })
    }

    fn revision_repos(&self, inv: &Inventory) -> &Csr {
        self.revision_repos.get_or_init(|| {
            Csr::build(self.n, |f| {
                for (ri, r) in inv.repositories.iter().enumerate() {
                    r.revisions.iter().for_each(|l| f(l.target(), ri as u32));
                }
            })
        })
    }

    fn layer_repos(&self, inv: &Inventory) -> &Csr {
        self.layer_repos.get_or_init(|| {
            Csr::build(self.n, |f| {
                for (ri, r) in inv.repositories.iter().enumerate() {
                    r.layers.iter().for_each(|l| f(l.target(), ri as u32));
                }
            })
        })
    }

    fn current_tags(&self, inv: &Inventory) -> &CurrentTags {
        self.current_tags.get_or_init(|| {
            let mut coords = Vec::new();
            for (ri, r) in inv.repositories.iter().enumerate() {
                for (ti, t) in r.tags.iter().enumerate() {
                    if t.current.and_then(|c| c.target).is_some() {
                        coords.push((ri as u32, ti as u32));
                    }
                }
            }
            coords.shrink_to_fit();
            let csr = Csr::build(self.n, |f| {
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
            CurrentTags { csr, coords }
        })
    }

    /// Bytes held by the tables built so far (for `--verbose` and the memory benchmarks).
    pub fn heap_bytes(&self) -> usize {
        let csr = |c: Option<&Csr>| c.map_or(0, Csr::heap_bytes);
        csr(self.rev.get())
            + csr(Some(&self.referrers))
            + csr(self.revision_repos.get())
            + csr(self.layer_repos.get())
            + self
                .current_tags
                .get()
                .map_or(0, |t| t.csr.heap_bytes() + t.coords.capacity() * 8)
            + csr(Some(&self.aliases))
            + self.is_manifest.capacity() * 8
            + self.role.capacity()
    }
}

impl<'a> Graph<'a> {
    /// Build a graph with its own index: for one-off use (tests, a single walk). Whoever
    /// keeps an inventory for long keeps a [`GraphIndex`] beside it and takes [`Graph::view`]s.
    pub fn new(inv: &'a Inventory) -> Graph<'a> {
        Graph {
            inv,
            ix: Ix::Owned(Box::new(GraphIndex::build(inv))),
        }
    }

    /// A view over an index built from this same inventory: free.
    pub fn view(inv: &'a Inventory, index: &'a GraphIndex) -> Graph<'a> {
        debug_assert_eq!(index.n, inv.id_count(), "an index of another inventory");
        Graph {
            inv,
            ix: Ix::Borrowed(index),
        }
    }

    /// Build now the tables a view otherwise builds on first use: for whoever keeps the
    /// index to serve many requests (the dashboard), so that no request pays for one.
    pub fn build_tables(&self) {
        let inv = self.inv;
        self.ix.rev(inv);
        self.ix.revision_repos(inv);
        self.ix.layer_repos(inv);
        self.ix.current_tags(inv);
    }

    /// Number of ids (present blobs + missing digests).
    pub fn len(&self) -> usize {
        self.ix.n
    }

    pub fn is_empty(&self) -> bool {
        self.ix.n == 0
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
        self.ix.rev(self.inv).row(id)
    }

    /// [`Graph::parents`] for the ids `wanted` selects, and for no other: for a few ids of a
    /// large registry, without the table of every id's parents (3.9 MB at 1M objects,
    /// otherwise unused by a GC, which explains only what it keeps unlike the registry).
    pub fn parents_of(&self, wanted: impl Fn(BlobId) -> bool) -> Parents {
        let inv = self.inv;
        Parents(Csr::build(self.ix.n, |f| {
            for m in &inv.manifests {
                for r in inv.refs_of(m) {
                    if wanted(r.id()) {
                        f(r.id(), m.id);
                    }
                }
            }
        }))
    }

    pub fn referrers(&self, subject: BlobId) -> &[u32] {
        self.ix.referrers.row(subject)
    }

    /// Repositories (indices) with a revision link for manifest `id`.
    pub fn revision_repos(&self, id: BlobId) -> &[u32] {
        self.ix.revision_repos(self.inv).row(id)
    }

    /// Repositories (indices) with a `_layers` link for blob `id`.
    pub fn layer_repos(&self, id: BlobId) -> &[u32] {
        self.ix.layer_repos(self.inv).row(id)
    }

    /// Tags whose current link names `id`, as (repository index, tag index).
    pub fn tags_of(&self, id: BlobId) -> impl Iterator<Item = (u32, u32)> + '_ {
        let t = self.ix.current_tags(self.inv);
        t.csr.row(id).iter().map(|&i| t.coords[i as usize])
    }

    pub fn manifest(&self, id: BlobId) -> Option<&'a stowage_model::inventory::ManifestRecord> {
        let bit = self.ix.is_manifest.get(id as usize / 64)? >> (id % 64) & 1;
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
        self.revision_roots().collect()
    }

    /// [`Graph::all_revision_roots`] one by one, for [`Graph::mark`] (no list of them: at
    /// 1M objects of a CI registry 135k ids).
    pub fn revision_roots(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.inv.repositories.iter().flat_map(|r| {
            r.revisions.iter().map(|l| l.target()).chain(
                r.odd_links
                    .iter()
                    .filter(|o| o.kind == LinkKind::Revision)
                    .filter_map(|o| o.content.as_ref().and_then(|d| self.inv.id_of(d))),
            )
        })
    }

    /// Mark everything reachable from `roots` (manifests). Follows references, index
    /// children, and — when `referrers` is set — referrers of anything marked (a signature
    /// or SBOM lives while its subject lives). Opaque manifests mark everything their
    /// repositories link.
    pub fn mark(&self, roots: impl IntoIterator<Item = BlobId>, referrers: bool) -> Vec<bool> {
        let mut walk = Walk {
            marked: vec![false; self.ix.n],
            expanded: vec![false; self.inv.repositories.len()],
            stack: Vec::new(),
        };
        // A root's closure is walked before the next root is taken: the stack holds one
        // walk, not every root.
        for r in roots {
            walk.visit(r);
            while let Some(id) = walk.stack.pop() {
                for c in self.refs(id) {
                    walk.visit(c);
                }
                for &c in self.ix.aliases.row(id) {
                    walk.visit(c);
                }
                if referrers {
                    for &c in self.referrers(id) {
                        walk.visit(c);
                    }
                }
                if self.is_opaque(id) {
                    for &ri in self.revision_repos(id) {
                        if std::mem::replace(&mut walk.expanded[ri as usize], true) {
                            continue;
                        }
                        let repo = &self.inv.repositories[ri as usize];
                        for l in repo.layers.iter().chain(repo.revisions.iter()) {
                            walk.visit(l.target());
                        }
                    }
                }
            }
        }
        walk.marked
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
            for c in self.refs(x).chain(self.ix.aliases.row(x).iter().copied()) {
                if scratch.visit(c) {
                    stack.push(c);
                }
            }
        }
        scratch.stack = stack;
    }
}

/// A reusable visited-set for walks: a bit per id, and the ids a walk set so that the next
/// walk clears only those (or, after a walk that touched many, the whole bitset, which is
/// then cheaper). A stamp per id made clearing free but cost 4 bytes per blob, as much as
/// the graph's largest tables.
pub struct Scratch {
    bits: Vec<u64>,
    touched: Vec<u32>,
    /// More ids were set than `touched` records: clear every bit.
    overflow: bool,
    stack: Vec<u32>,
}

impl Scratch {
    pub fn new(n: usize) -> Scratch {
        Scratch {
            bits: vec![0; n.div_ceil(64)],
            touched: Vec::new(),
            overflow: false,
            stack: Vec::new(),
        }
    }

    fn next(&mut self) {
        if self.overflow {
            self.bits.iter_mut().for_each(|w| *w = 0);
            self.overflow = false;
        } else {
            for &id in &self.touched {
                if let Some(w) = self.bits.get_mut(id as usize / 64) {
                    *w = 0;
                }
            }
        }
        self.touched.clear();
    }

    /// Returns true the first time `id` is visited in this walk.
    fn visit(&mut self, id: u32) -> bool {
        let (w, bit) = (id as usize / 64, 1u64 << (id % 64));
        let word = &mut self.bits[w];
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        if self.overflow {
            // Recording stopped: the next walk clears the whole bitset.
        } else if self.touched.len() < self.bits.len() * 2 {
            self.touched.push(id);
        } else {
            // Past a list as large as the bitset itself, clearing it all is cheaper.
            self.overflow = true;
            self.touched = Vec::new();
        }
        true
    }
}

/// The state of [`Graph::mark`].
struct Walk {
    marked: Vec<bool>,
    /// Repositories whose links an opaque manifest already marked.
    expanded: Vec<bool>,
    stack: Vec<u32>,
}

impl Walk {
    /// Mark `id` and queue it, unless marked already.
    fn visit(&mut self, id: BlobId) {
        if !std::mem::replace(&mut self.marked[id as usize], true) {
            self.stack.push(id);
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

    /// Walks with the reusable visited-set see each id once per walk, whether the previous
    /// walk touched few ids (cleared one by one) or many (the whole bitset cleared).
    #[test]
    fn scratch_forgets_between_walks() {
        let mut s = super::Scratch::new(1000);
        for round in 0..3 {
            s.next();
            let many = if round == 1 { 0..1000 } else { 0..5 };
            for id in many.clone() {
                assert!(s.visit(id), "round {round}: {id} is new");
                assert!(!s.visit(id), "round {round}: {id} seen");
            }
            assert_eq!(s.overflow, round == 1);
        }
        s.next();
        assert!((0..1000).all(|id| s.visit(id)));
    }

    #[test]
    fn few_rows_are_stored_sparse_and_many_dense() {
        let sparse = Csr::build(1000, |f| {
            f(7, 1);
            f(900, 2);
            f(7, 3);
        });
        assert!(sparse.keys.is_some());
        assert!(
            sparse.row(900).len() == 1 && sparse.targets.len() == 2,
            "single rows inline"
        );
        assert_eq!(sparse.row(7), &[1, 3]);
        assert_eq!(sparse.row(900), &[2]);
        assert!(sparse.row(8).is_empty());
        let dense = Csr::build(4, |f| (0..4).for_each(|r| f(r, r * 10)));
        assert!(dense.keys.is_none());
        assert_eq!(dense.row(3), &[30]);
    }
}
