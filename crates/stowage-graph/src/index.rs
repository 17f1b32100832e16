//! Building the adjacency tables, and walks over them.

use stowage_model::inventory::{BlobId, Inventory, LinkKind, LinkState, ManifestStatus, RefRole};
use stowage_model::manifest::ManifestKind;

use crate::NONE;

/// Compressed sparse rows: `targets[start[i]..start[i+1]]` are the values of row `i`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Csr {
    start: Vec<u32>,
    targets: Vec<u32>,
}

impl Csr {
    /// Build from (row, value) pairs; rows are `0..rows`. Values of a row keep pair order.
    pub(crate) fn build(rows: usize, mut pairs: Vec<(u32, u32)>) -> Csr {
        pairs.sort_by_key(|p| p.0);
        let mut start = vec![0u32; rows + 1];
        for &(r, _) in &pairs {
            start[r as usize + 1] += 1;
        }
        for i in 0..rows {
            start[i + 1] += start[i];
        }
        Csr {
            start,
            targets: pairs.into_iter().map(|p| p.1).collect(),
        }
    }

    pub(crate) fn row(&self, i: u32) -> &[u32] {
        let i = i as usize;
        if i + 1 >= self.start.len() {
            return &[];
        }
        &self.targets[self.start[i] as usize..self.start[i + 1] as usize]
    }
}

/// The reference graph of one inventory.
pub struct Graph<'a> {
    pub inv: &'a Inventory,
    n: usize,
    /// Manifest -> what it references (config, layers, children, artifact blobs).
    fwd: Csr,
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
    /// Id -> index into `inv.manifests` (or NONE).
    manifest_at: Vec<u32>,
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
        let mut manifest_at = vec![NONE; n];
        let mut fwd_pairs = Vec::new();
        let mut ref_pairs = Vec::new();
        let mut role = vec![ROLE_NONE; n];
        for (i, m) in inv.manifests.iter().enumerate() {
            manifest_at[m.id as usize] = i as u32;
            for r in m.refs.iter() {
                fwd_pairs.push((m.id, r.id));
                let rl = match r.role {
                    RefRole::Config => ROLE_CONFIG,
                    RefRole::Layer | RefRole::External | RefRole::ArtifactBlob => ROLE_LAYER,
                    RefRole::Child => ROLE_NONE,
                };
                role[r.id as usize] = role[r.id as usize].max(rl);
            }
            if let Some(s) = m.subject {
                ref_pairs.push((s, m.id));
            }
        }
        let rev_pairs: Vec<(u32, u32)> = fwd_pairs.iter().map(|&(a, b)| (b, a)).collect();
        let mut alias_pairs = Vec::new();
        for r in &inv.repositories {
            for (path_digest, content) in &r.aliases {
                if let (Some(a), Some(c)) = (
                    inv.id_of(path_digest),
                    content.as_ref().and_then(|c| inv.id_of(c)),
                ) {
                    alias_pairs.push((a, c));
                }
            }
        }
        let mut rr_pairs = Vec::new();
        let mut lr_pairs = Vec::new();
        let mut ct_pairs = Vec::new();
        let mut tag_coords = Vec::new();
        for (ri, r) in inv.repositories.iter().enumerate() {
            for l in &r.revisions {
                rr_pairs.push((l.target, ri as u32));
            }
            for l in &r.layers {
                lr_pairs.push((l.target, ri as u32));
            }
            for (ti, t) in r.tags.iter().enumerate() {
                if let Some(id) = t.current.and_then(|c| c.target) {
                    ct_pairs.push((id, tag_coords.len() as u32));
                    tag_coords.push((ri as u32, ti as u32));
                }
            }
        }
        Graph {
            inv,
            n,
            fwd: Csr::build(n, fwd_pairs),
            rev: Csr::build(n, rev_pairs),
            referrers: Csr::build(n, ref_pairs),
            revision_repos: Csr::build(n, rr_pairs),
            layer_repos: Csr::build(n, lr_pairs),
            current_tags: Csr::build(n, ct_pairs),
            aliases: Csr::build(n, alias_pairs),
            tag_coords,
            manifest_at,
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

    pub fn refs(&self, id: BlobId) -> &[u32] {
        self.fwd.row(id)
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
        match self.manifest_at.get(id as usize) {
            Some(&i) if i != NONE => Some(&self.inv.manifests[i as usize]),
            _ => None,
        }
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
            roots.extend(r.revisions.iter().map(|l| l.target));
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
            for &c in self.refs(id) {
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
                        if !marked[l.target as usize] {
                            marked[l.target as usize] = true;
                            stack.push(l.target);
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
            for &c in self.refs(x).iter().chain(self.aliases.row(x)) {
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
