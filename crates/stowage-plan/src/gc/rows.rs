//! A GC plan as compact rows: what [`super::build_rows`] makes, before it is a [`Plan`].
//!
//! A plan's big lists (the blobs, untagged manifests, history entries and layer links to
//! delete, and what the plan keeps unlike the registry) name things the scan already holds:
//! a row here is their ids in the scan's tables (4 to 40 bytes), where a [`BlobAction`] or a
//! [`Kept`] with its reason text is 80 to 250. The records are made from the rows one at a
//! time, each by one function, both by [`GcPlan::into_plan`] (the whole [`Plan`], for apply's
//! checks, the table and `--pulls`) and by [`GcPlan::write_json`] (`super::stream`), which
//! writes the same bytes without holding them: `gc -m` at 10 million objects held 890 MiB,
//! 400 MiB of it its plan (issue 22, `bench/scale.md`).

use std::collections::HashSet;
use std::io::Write;

use stowage_graph::Graph;
use stowage_model::inventory::BlobId;
use stowage_model::time::Timestamp;

use super::{Why, why_kept};
use crate::plan::{
    BlobAction, Kept, KeptManifest, LinkAction, ListingSource, ManifestAction, Plan, Reason,
    TagIndexAction,
};

/// Why a blob goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlobWhy {
    /// No manifest revision reaches it.
    Unreferenced,
    /// Only untagged manifests (which go) reach it.
    Untagged,
    /// Only expired manifests of a pull-through cache reach it.
    CacheExpired,
}

/// A blob to delete: `inv.blobs[id]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlobRow {
    pub id: BlobId,
    pub why: BlobWhy,
}

/// An untagged (or expired) manifest to delete: revision `id` of repository `repo`.
#[derive(Clone, Debug)]
pub(crate) struct ManifestRow {
    pub repo: u32,
    pub id: BlobId,
    pub modified: Timestamp,
    pub reason: Reason,
}

/// Why a tag-history entry goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TagIndexWhy {
    /// Its manifest is deleted by the plan.
    UntaggedManifest,
    /// Its blob is gone, or goes in the plan.
    Dangling,
}

impl TagIndexWhy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TagIndexWhy::UntaggedManifest => "untagged-manifest",
            TagIndexWhy::Dangling => "dangling",
        }
    }
}

/// A history entry of tag `tag` (an index into the repository's tags) to delete.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TagIndexRow {
    pub repo: u32,
    pub tag: u32,
    pub id: BlobId,
    pub why: TagIndexWhy,
}

/// A `_layers` link to delete; `present`: its blob exists (and goes in the plan).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkRow {
    pub repo: u32,
    pub id: BlobId,
    pub present: bool,
}

impl LinkRow {
    pub(crate) fn why(&self) -> &'static str {
        if self.present {
            "blob-deleted"
        } else {
            "dangling"
        }
    }
}

/// Why the plan keeps a blob (or manifest) the registry's GC would delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeptWhy {
    /// Modified (pushed) within the grace period.
    Grace,
    /// The scan was incomplete (blobs) or the repository was (manifests).
    Incomplete,
    /// Reachable from a kept manifest: [`why_kept`] names it when the row is written.
    Reached,
}

/// A blob the registry's GC would delete that the plan keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeptRow {
    pub id: BlobId,
    pub why: KeptWhy,
}

/// A manifest (revision `id` of `repo`) the registry's GC would delete that the plan keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeptManifestRow {
    pub repo: u32,
    pub id: BlobId,
    pub why: KeptWhy,
}

/// A GC plan whose big lists are rows into the scan's tables; everything else is in `head`
/// (a [`Plan`] whose row lists are empty). Made by [`super::build_rows`].
pub struct GcPlan<'a> {
    pub(crate) g: &'a Graph<'a>,
    pub(crate) head: Plan,
    pub(crate) blobs: Vec<BlobRow>,
    pub(crate) manifests: Vec<ManifestRow>,
    pub(crate) tag_index_entries: Vec<TagIndexRow>,
    pub(crate) layer_links: Vec<LinkRow>,
    pub(crate) kept: Vec<KeptRow>,
    pub(crate) kept_manifests: Vec<KeptManifestRow>,
    /// The final mark and the held-back untagged manifests, for [`why_kept`].
    pub(crate) marked: Vec<bool>,
    pub(crate) held: HashSet<BlobId>,
    pub(crate) opaque_repos: Vec<u32>,
    pub(crate) parents: stowage_graph::Parents,
}

impl<'a> GcPlan<'a> {
    /// Bytes the plan frees (blobs and uploads).
    pub fn bytes(&self) -> u64 {
        self.head.bytes
    }

    /// The plan was made from a provider's inventory report (`Plan::listing`).
    pub fn set_listing(&mut self, listing: Option<ListingSource>) {
        self.head.listing = listing;
    }

    /// Every digest the plan names ([`Plan::named_digests`] of the whole plan, without
    /// making its records).
    pub fn named_digests(&self) -> Vec<stowage_model::digest::Digest> {
        let inv = self.g.inv;
        let mut out = self.head.named_digests();
        let ids = self
            .blobs
            .iter()
            .map(|r| r.id)
            .chain(self.manifests.iter().map(|r| r.id))
            .chain(self.tag_index_entries.iter().map(|r| r.id))
            .chain(self.layer_links.iter().map(|r| r.id))
            .chain(self.kept.iter().map(|r| r.id))
            .chain(self.kept_manifests.iter().map(|r| r.id));
        out.extend(ids.map(|id| inv.digest(id)));
        out.sort();
        out.dedup();
        out
    }

    /// The whole plan, every record made.
    pub fn into_plan(self) -> Plan {
        let mut p = self.head.clone();
        p.manifests = self.manifests.iter().map(|r| self.manifest(r)).collect();
        p.tag_index_entries = self
            .tag_index_entries
            .iter()
            .map(|r| self.tag_index(r))
            .collect();
        p.layer_links = self.layer_links.iter().map(|r| self.link(r)).collect();
        p.blobs = self.blobs.iter().map(|r| self.blob(r)).collect();
        p.kept_unlike_registry = self.kept.iter().map(|r| self.kept(r)).collect();
        p.manifests_kept_unlike_registry = self
            .kept_manifests
            .iter()
            .map(|r| self.kept_manifest(r))
            .collect();
        p
    }

    /// The plan file (`Plan::write_json`'s bytes), each record made as it is written.
    pub fn write_json(&self, w: &mut dyn Write) -> std::io::Result<()> {
        super::stream::write_json(self, w)
    }

    fn repo(&self, ri: u32) -> String {
        self.g.inv.repositories[ri as usize].name.to_string()
    }

    pub(crate) fn blob(&self, r: &BlobRow) -> BlobAction {
        let b = &self.g.inv.blobs[r.id as usize];
        BlobAction {
            digest: b.digest.digest(),
            size: b.size,
            modified: b.modified(),
            reason: match r.why {
                BlobWhy::Unreferenced => "unreferenced".into(),
                BlobWhy::Untagged => "untagged".into(),
                BlobWhy::CacheExpired => crate::cache::EXPIRED.into(),
            },
        }
    }

    pub(crate) fn manifest(&self, r: &ManifestRow) -> ManifestAction {
        ManifestAction {
            repository: self.repo(r.repo),
            digest: self.g.inv.digest(r.id),
            modified: r.modified,
            reason: r.reason.to_string(),
        }
    }

    pub(crate) fn tag_index(&self, r: &TagIndexRow) -> TagIndexAction {
        let repo = &self.g.inv.repositories[r.repo as usize];
        TagIndexAction {
            repository: repo.name.to_string(),
            tag: repo.tags[r.tag as usize].name.to_string(),
            digest: self.g.inv.digest(r.id),
            reason: r.why.as_str().into(),
        }
    }

    pub(crate) fn link(&self, r: &LinkRow) -> LinkAction {
        LinkAction {
            repository: self.repo(r.repo),
            digest: self.g.inv.digest(r.id),
            reason: r.why().into(),
        }
    }

    fn why(&self) -> Why<'_> {
        Why {
            marked: &self.marked,
            held: &self.held,
            opaque_repos: &self.opaque_repos,
            parents: &self.parents,
        }
    }

    pub(crate) fn kept(&self, r: &KeptRow) -> Kept {
        let b = &self.g.inv.blobs[r.id as usize];
        Kept {
            digest: b.digest.digest(),
            size: b.size,
            reason: match r.why {
                KeptWhy::Grace => "modified within the grace period".into(),
                KeptWhy::Incomplete => "deletion blocked: the scan was incomplete".into(),
                KeptWhy::Reached => why_kept(self.g, r.id, self.why()).into(),
            },
        }
    }

    pub(crate) fn kept_manifest(&self, r: &KeptManifestRow) -> KeptManifest {
        KeptManifest {
            repository: self.repo(r.repo),
            digest: self.g.inv.digest(r.id),
            reason: match r.why {
                KeptWhy::Grace => "pushed within the grace period".into(),
                KeptWhy::Incomplete => "its repository could not be read completely".into(),
                KeptWhy::Reached => why_kept(self.g, r.id, self.why()).into(),
            },
        }
    }
}

/// A GC plan's big lists, record by record: from a whole [`Plan`] or made from a
/// [`GcPlan`]'s rows as they are read (a table of a 100M-object registry's plan is then
/// printed without the plan in memory: at 1M objects `gc -m`'s table took 163 MB,
/// its JSON 60 MB).
pub trait PlanLists {
    /// The scalar fields and the short lists.
    fn head(&self) -> &Plan;
    fn manifest_records(&self) -> Box<dyn Iterator<Item = ManifestAction> + '_>;
    fn blob_records(&self) -> Box<dyn Iterator<Item = BlobAction> + '_>;
    fn kept_records(&self) -> Box<dyn Iterator<Item = Kept> + '_>;
    fn kept_manifest_records(&self) -> Box<dyn Iterator<Item = KeptManifest> + '_>;
    /// How many manifests, blobs, history entries and layer links the plan deletes.
    fn counts(&self) -> [usize; 4];
}

impl PlanLists for Plan {
    fn head(&self) -> &Plan {
        self
    }
    fn manifest_records(&self) -> Box<dyn Iterator<Item = ManifestAction> + '_> {
        Box::new(self.manifests.iter().cloned())
    }
    fn blob_records(&self) -> Box<dyn Iterator<Item = BlobAction> + '_> {
        Box::new(self.blobs.iter().cloned())
    }
    fn kept_records(&self) -> Box<dyn Iterator<Item = Kept> + '_> {
        Box::new(self.kept_unlike_registry.iter().cloned())
    }
    fn kept_manifest_records(&self) -> Box<dyn Iterator<Item = KeptManifest> + '_> {
        Box::new(self.manifests_kept_unlike_registry.iter().cloned())
    }
    fn counts(&self) -> [usize; 4] {
        [
            self.manifests.len(),
            self.blobs.len(),
            self.tag_index_entries.len(),
            self.layer_links.len(),
        ]
    }
}

impl PlanLists for GcPlan<'_> {
    fn head(&self) -> &Plan {
        &self.head
    }
    fn manifest_records(&self) -> Box<dyn Iterator<Item = ManifestAction> + '_> {
        Box::new(self.manifests.iter().map(|r| self.manifest(r)))
    }
    fn blob_records(&self) -> Box<dyn Iterator<Item = BlobAction> + '_> {
        Box::new(self.blobs.iter().map(|r| self.blob(r)))
    }
    fn kept_records(&self) -> Box<dyn Iterator<Item = Kept> + '_> {
        Box::new(self.kept.iter().map(|r| self.kept(r)))
    }
    fn kept_manifest_records(&self) -> Box<dyn Iterator<Item = KeptManifest> + '_> {
        Box::new(self.kept_manifests.iter().map(|r| self.kept_manifest(r)))
    }
    fn counts(&self) -> [usize; 4] {
        [
            self.manifests.len(),
            self.blobs.len(),
            self.tag_index_entries.len(),
            self.layer_links.len(),
        ]
    }
}
