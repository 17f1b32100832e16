//! Replay a [`Plan`]'s events the way registry 2.8 changes its storage, and keep only the
//! final state with the times every file and directory was created and last written.
//!
//! What each event does (`spec/registry-storage.md` §2, §4.3):
//! - push: upload (or mount) every config and layer blob, write `_layers` links, PUT the
//!   manifest (blob + revision link), then each tag (`index` entry, then `current`);
//! - failed push: the blobs and their links, no manifest;
//! - cleanup (API `DELETE /manifests/<digest>`): delete the revision link file (its directory
//!   stays), and every tag whose `current` is that digest (the whole tag directory);
//! - GC (2.8, no `-m`): mark every manifest with a revision link and what it references,
//!   delete every other blob; `repositories/` is untouched, so links may now dangle;
//! - a repository deleted by hand disappears with all its links.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::plan::{BlobId, BlobSpec, Ev, Plan, Target};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, Default)]
pub struct BlobState {
    pub present: bool,
    /// Ever written (some planned blobs never are).
    pub ever: bool,
    /// When the current copy was written.
    pub written: i64,
    /// When the blob was first written (its fan-out directory existed from then on).
    pub first: i64,
    /// Last time GC swept it (0: never).
    pub swept: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub created: i64,
    pub modified: i64,
}

impl Stamp {
    fn at(t: i64) -> Stamp {
        Stamp {
            created: t,
            modified: t,
        }
    }
}

fn touch(s: &mut Option<Stamp>, t: i64) {
    match s {
        Some(s) => {
            s.created = s.created.min(t);
            s.modified = s.modified.max(t);
        }
        None => *s = Some(Stamp::at(t)),
    }
}

#[derive(Clone, Debug)]
pub struct Rev {
    pub stamp: Stamp,
    /// Deleted through the API at this time: the directory stays, empty.
    pub deleted: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct TagState {
    pub name: String,
    pub protected: bool,
    pub alive: bool,
    /// When the tag directory (and its `current/link`) was created.
    pub created: i64,
    pub current: BlobId,
    pub current_modified: i64,
    pub index: BTreeMap<BlobId, Stamp>,
}

#[derive(Clone, Debug, Default)]
pub struct RepoState {
    pub created: Option<i64>,
    pub deleted: Option<i64>,
    pub layer_links: BTreeMap<BlobId, Stamp>,
    pub revisions: BTreeMap<BlobId, Rev>,
    pub tags: Vec<TagState>,
    tag_ix: HashMap<String, usize>,
    current_of: HashMap<BlobId, Vec<usize>>,
    /// Manifests pushed as children of an index.
    pub children: HashSet<BlobId>,
    pub tags_dir: Option<Stamp>,
    pub uploads_dir: Option<Stamp>,
    pub uploads: Vec<u32>,
}

impl RepoState {
    fn seen(&mut self, t: i64) {
        self.created = Some(self.created.map_or(t, |c| c.min(t)));
    }

    /// Whether a live tag points at `m`.
    pub fn is_tagged(&self, m: BlobId) -> bool {
        self.current_of.get(&m).is_some_and(|v| !v.is_empty())
    }
}

pub struct Final {
    pub blobs: Vec<BlobState>,
    pub repos: Vec<RepoState>,
}

impl Final {
    pub fn present_blobs(&self) -> u64 {
        self.blobs.iter().filter(|b| b.present).count() as u64
    }
}

struct Sim<'a> {
    plan: &'a Plan,
    blobs: Vec<BlobState>,
    repos: Vec<RepoState>,
    rng: Rng,
}

/// What a GC marks: every blob referenced by a manifest that has a revision link in a live
/// repository (and whose blob exists), plus those manifests.
pub fn mark(plan: &Plan, blobs: &[BlobState], repos: &[RepoState]) -> Vec<bool> {
    let mut marked = vec![false; blobs.len()];
    for repo in repos.iter().filter(|r| r.deleted.is_none()) {
        for (&m, rev) in &repo.revisions {
            if rev.deleted.is_some() || !blobs[m as usize].present {
                continue;
            }
            marked[m as usize] = true;
            match plan.blobs[m as usize] {
                BlobSpec::Manifest(i) => {
                    let img = &plan.images[i as usize];
                    marked[img.config as usize] = true;
                    for &l in &img.layers {
                        marked[l as usize] = true;
                    }
                }
                BlobSpec::Index(i) => {
                    for &c in &plan.indexes[i as usize].children {
                        if let Some(cm) = plan.images[c as usize].manifest {
                            marked[cm as usize] = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    marked
}

impl Sim<'_> {
    fn write_blob(&mut self, b: BlobId, t: i64) -> bool {
        let st = &mut self.blobs[b as usize];
        if st.present {
            return false;
        }
        st.present = true;
        st.written = t;
        if !st.ever {
            st.ever = true;
            st.first = t;
        }
        true
    }

    fn link_blob(&mut self, r: u32, b: BlobId, t: i64) {
        let mut uploaded = self.write_blob(b, t);
        let repo = &mut self.repos[r as usize];
        repo.seen(t);
        match repo.layer_links.get_mut(&b) {
            None => {
                repo.layer_links.insert(b, Stamp::at(t));
                // Not known to the client as mountable: uploaded again, the registry keeps the
                // existing blob and only writes the link.
                if !uploaded && self.rng.chance(0.3) {
                    uploaded = true;
                }
            }
            Some(s) => {
                if uploaded {
                    s.modified = t;
                }
            }
        }
        if uploaded {
            touch(&mut repo.uploads_dir, t);
        }
    }

    fn push_image(&mut self, r: u32, img: u32, t: i64) {
        let image = &self.plan.images[img as usize];
        let n = image.layers.len() as i64;
        let blobs: Vec<BlobId> = image
            .layers
            .iter()
            .copied()
            .chain(std::iter::once(image.config))
            .collect();
        let manifest = image.manifest;
        for (i, b) in blobs.into_iter().enumerate() {
            self.link_blob(r, b, t - 2 * (n + 1 - i as i64));
        }
        if let Some(m) = manifest {
            self.put_manifest(r, m, t);
        }
    }

    fn put_manifest(&mut self, r: u32, m: BlobId, t: i64) {
        self.write_blob(m, t);
        let repo = &mut self.repos[r as usize];
        repo.seen(t);
        match repo.revisions.get_mut(&m) {
            None => {
                repo.revisions.insert(
                    m,
                    Rev {
                        stamp: Stamp::at(t),
                        deleted: None,
                    },
                );
            }
            Some(rev) => {
                if rev.deleted.is_some() {
                    rev.stamp = Stamp::at(t);
                    rev.deleted = None;
                } else {
                    rev.stamp.modified = t;
                }
            }
        }
    }

    fn set_tag(&mut self, r: u32, name: &str, protected: bool, m: BlobId, t: i64) {
        let repo = &mut self.repos[r as usize];
        touch(&mut repo.tags_dir, t);
        let ix = match repo.tag_ix.get(name) {
            Some(&i) => i,
            None => {
                repo.tags.push(TagState {
                    name: name.to_string(),
                    protected,
                    alive: false,
                    created: t,
                    current: m,
                    current_modified: t,
                    index: BTreeMap::new(),
                });
                repo.tag_ix.insert(name.to_string(), repo.tags.len() - 1);
                repo.tags.len() - 1
            }
        };
        let tag = &mut repo.tags[ix];
        if !tag.alive {
            tag.alive = true;
            tag.created = t;
            tag.current = m;
            tag.index.clear();
            repo.current_of.entry(m).or_default().push(ix);
        } else if tag.current != m {
            let old = tag.current;
            if let Some(v) = repo.current_of.get_mut(&old) {
                v.retain(|&x| x != ix);
            }
            tag.current = m;
            repo.current_of.entry(m).or_default().push(ix);
        }
        let tag = &mut repo.tags[ix];
        tag.current_modified = t;
        tag.index
            .entry(m)
            .and_modify(|s| s.modified = t)
            .or_insert(Stamp::at(t));
    }

    fn api_delete(&mut self, r: u32, m: BlobId, t: i64) {
        let repo = &mut self.repos[r as usize];
        if let Some(rev) = repo.revisions.get_mut(&m) {
            rev.deleted = Some(t);
        }
        if let Some(tags) = repo.current_of.remove(&m) {
            for ix in tags {
                let tag = &mut repo.tags[ix];
                tag.alive = false;
                tag.index.clear();
                touch(&mut repo.tags_dir, t);
            }
        }
    }

    fn cleanup(&mut self, r: u32, keep: i64, t: i64) {
        let repo = &self.repos[r as usize];
        if repo.deleted.is_some() {
            return;
        }
        let mut doomed = Vec::new();
        for (&m, rev) in &repo.revisions {
            if rev.deleted.is_some()
                || rev.stamp.modified >= t - keep
                || repo.children.contains(&m)
                || !self.blobs[m as usize].present
            {
                continue;
            }
            let protected = repo
                .current_of
                .get(&m)
                .is_some_and(|v| v.iter().any(|&ix| repo.tags[ix].protected));
            if !protected {
                doomed.push(m);
            }
        }
        for m in doomed {
            if self.rng.chance(0.85) {
                self.api_delete(r, m, t);
            }
        }
    }

    fn gc(&mut self, t: i64) {
        let marked = mark(self.plan, &self.blobs, &self.repos);
        for (b, st) in self.blobs.iter_mut().enumerate() {
            if st.present && !marked[b] {
                st.present = false;
                st.swept = t;
            }
        }
    }

    fn push(&mut self, r: u32, target: Target, t: i64) -> BlobId {
        match target {
            Target::Image(i) => {
                self.push_image(r, i, t);
                self.plan.images[i as usize].manifest.unwrap_or(0)
            }
            Target::Index(x) => {
                let index = &self.plan.indexes[x as usize];
                let children = index.children.clone();
                let blob = index.blob;
                let n = children.len() as i64;
                for (k, c) in children.into_iter().enumerate() {
                    let ct = t - 30 * (n - k as i64);
                    self.push_image(r, c, ct);
                    if let Some(m) = self.plan.images[c as usize].manifest {
                        self.repos[r as usize].children.insert(m);
                    }
                }
                self.put_manifest(r, blob, t);
                blob
            }
        }
    }
}

/// Replay every event of `plan`.
pub fn simulate(plan: &Plan, seed: u64) -> Final {
    let mut sim = Sim {
        plan,
        blobs: vec![BlobState::default(); plan.blobs.len()],
        repos: vec![RepoState::default(); plan.repos.len()],
        rng: Rng::derive(seed, &[9]),
    };
    for e in &plan.events {
        let t = e.t;
        match &e.ev {
            Ev::Push { repo, target, tags } => {
                let m = sim.push(*repo, *target, t);
                for tag in tags {
                    sim.set_tag(*repo, &tag.name, tag.protected, m, t);
                }
            }
            Ev::FailedPush { repo, image } => sim.push_image(*repo, *image, t),
            Ev::Cleanup { repo, keep } => sim.cleanup(*repo, *keep, t),
            Ev::Gc => sim.gc(t),
            Ev::DeleteRepo { repo } => sim.repos[*repo as usize].deleted = Some(t),
            Ev::Upload { repo, upload } => {
                let r = &mut sim.repos[*repo as usize];
                r.seen(t);
                r.uploads.push(*upload);
                touch(&mut r.uploads_dir, t);
            }
        }
    }
    Final {
        blobs: sim.blobs,
        repos: sim.repos,
    }
}
