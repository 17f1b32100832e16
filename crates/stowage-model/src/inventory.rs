//! The raw facts a scan produces: what is on storage, before any analysis.
//!
//! Designed for millions of blobs: digests are interned into [`BlobId`]s (a `u32` index) so
//! links and manifest references cost a few bytes each; rare data (aliases, mismatched links,
//! platforms) lives in side tables. Every vector is sorted at the end of a scan, so the same
//! storage always gives the same `Inventory` whatever the concurrency.

use crate::digest::{Digest, Sha256};
use crate::finding::Finding;
use crate::manifest::{ManifestKind, Platform};
use crate::name::RepositoryName;
use crate::time::{Secs, Timestamp};

/// Index of a digest: `< blobs.len()` names a present blob, otherwise
/// `missing[id - blobs.len()]`, a digest that something references but `blobs/` lacks.
pub type BlobId = u32;

/// One `blobs/sha256/<hh>/<hex>/data` file: 44 bytes, the largest table of a scan (one row
/// per blob; times to the second, [`Secs`]). Packed to 4 bytes (the size is read by value):
/// aligned to its `u64` a row was 48, 1.5 MB more at 1M objects. The birth time, which only
/// local filesystems record, is a column of its own ([`Inventory::created`]).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
pub struct BlobFile {
    pub digest: Sha256,
    pub size: u64,
    modified: Secs,
}

impl BlobFile {
    pub fn new(digest: Sha256, size: u64, modified: Timestamp) -> BlobFile {
        BlobFile {
            digest,
            size,
            modified: Secs::new(modified),
        }
    }

    /// A blob the scan listed and did not stat ([`Secs::UNSTATED`]): its size reads 0 and
    /// its time the latest there is, until [`BlobFile::stat`] fills them in.
    pub fn unstated(digest: Sha256) -> BlobFile {
        BlobFile {
            digest,
            size: 0,
            modified: Secs::UNSTATED,
        }
    }

    /// Whether size and times are the storage's (see [`BlobFile::unstated`]).
    pub fn is_stated(&self) -> bool {
        self.modified != Secs::UNSTATED
    }

    /// Fill in what a stat found (the birth time goes to [`Inventory::set_created`]).
    pub fn stat(&mut self, size: u64, modified: Timestamp) {
        self.size = size;
        self.modified = Secs::new(modified);
    }

    /// Modification time, to the second.
    pub fn modified(&self) -> Timestamp {
        let m = self.modified;
        m.get()
    }

    fn modified_secs(&self) -> Secs {
        self.modified
    }
}

impl std::fmt::Debug for BlobFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (digest, size, modified) = (self.digest, self.size, self.modified);
        f.debug_struct("BlobFile")
            .field("digest", &digest)
            .field("size", &size)
            .field("modified", &modified)
            .finish()
    }
}

/// Birth time of a blob, as [`Inventory::created`] keeps it: where the storage recorded
/// one and it is not after the modification time. A birth after the last write is the day
/// the file was copied (`cp -a`, rsync, a restore keep the modification time), not when it
/// was made, so it is unknown then (issue 19 item 1: a copied registry was "created" today).
fn birth(created: Secs, modified: Secs) -> Option<Timestamp> {
    created.get_opt().filter(|&c| c <= modified.get())
}

/// Ids are below 2^29: links keep their state, and references their role, in an id's top
/// bits (a scan of more ids stops with an error; 536 million blobs is far beyond any
/// registry).
pub const MAX_IDS: usize = 1 << 29;

/// What we know of a link file's content.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LinkState {
    /// 71 bytes, not read: the content is the digest the path names (the registry always
    /// writes exactly that), unless corrupted in place. `check` reads every link.
    Assumed,
    /// Read and equal to the digest the path names.
    Verified,
    /// Read, a valid digest, but not the one the path names (see `Repository::odd_links`).
    Differs,
    /// Read, not a digest at all (empty, whitespace, garbage).
    Invalid,
}

/// A link file whose path names a sha256 digest (`_layers`, revisions, tag index entries).
///
/// 8 bytes (a scan holds about two per blob): the target id with the state in its top two
/// bits, and the modification time to the second.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Link {
    packed: u32,
    modified: Secs,
}

const LINK_STATE_SHIFT: u32 = 30;
const ID_MASK_30: u32 = (1 << LINK_STATE_SHIFT) - 1;

impl Link {
    /// `target` must be below [`MAX_IDS`].
    pub fn new(target: BlobId, state: LinkState, modified: Timestamp) -> Link {
        debug_assert!((target as usize) < MAX_IDS);
        Link {
            packed: (target & ID_MASK_30) | ((state as u32) << LINK_STATE_SHIFT),
            modified: Secs::new(modified),
        }
    }

    /// The digest named by the path.
    pub fn target(&self) -> BlobId {
        self.packed & ID_MASK_30
    }

    pub fn state(&self) -> LinkState {
        match self.packed >> LINK_STATE_SHIFT {
            0 => LinkState::Assumed,
            1 => LinkState::Verified,
            2 => LinkState::Differs,
            _ => LinkState::Invalid,
        }
    }

    /// A link the scan listed and did not stat ([`Secs::UNSTATED`]): content assumed to be
    /// the digest its path names, as for a 71-byte link, and its time the latest there is
    /// until [`Link::stat`] fills it in.
    pub fn unstated(target: BlobId) -> Link {
        let mut l = Link::new(target, LinkState::Assumed, Timestamp::EPOCH);
        l.modified = Secs::UNSTATED;
        l
    }

    /// Whether the time is the storage's (see [`Link::unstated`]).
    pub fn is_stated(&self) -> bool {
        self.modified != Secs::UNSTATED
    }

    /// Fill in the modification time a stat found.
    pub fn stat(&mut self, modified: Timestamp) {
        self.modified = Secs::new(modified);
    }

    /// Modification time, to the second.
    pub fn modified(&self) -> Timestamp {
        self.modified.get()
    }

    /// Whether the link may have been written after `t` (same second or later).
    pub fn maybe_after(&self, t: Timestamp) -> bool {
        self.modified.maybe_after(t)
    }

    pub fn set_target(&mut self, target: BlobId) {
        debug_assert!((target as usize) < MAX_IDS);
        self.packed = (self.packed & !ID_MASK_30) | (target & ID_MASK_30);
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("target", &self.target())
            .field("state", &self.state())
            .field("modified", &self.modified)
            .finish()
    }
}

/// Which link family a link belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Layer,
    Revision,
    TagCurrent,
    TagIndex,
}

/// A link whose content differs from its path (side table: rare).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OddLink {
    pub kind: LinkKind,
    /// For tag links, the tag name.
    pub tag: Option<String>,
    /// Digest named by the path.
    pub path_digest: Digest,
    /// The content, when it parses as a digest.
    pub content: Option<Digest>,
}

/// `tags/<name>/current/link`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CurrentLink {
    /// `None` when the content is not a digest (a finding says why).
    pub target: Option<BlobId>,
    pub modified: Timestamp,
}

/// One tag directory: 48 bytes (a big registry has hundreds of thousands). The name is inline
/// up to 24 bytes, so most tags need no allocation for it, and the history lives in the
/// repository's [`Repository::tag_links`] (a boxed list per tag cost 16 bytes here and its
/// allocation's header and rounding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub name: compact_str::CompactString,
    pub current: Option<CurrentLink>,
    /// Every digest the tag ever pointed to (`index/sha256/<hex>/link`): see
    /// [`Repository::history`].
    pub index: Span,
}

/// One `_uploads/<id>/` directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub started_at: Option<Timestamp>,
    /// Size of `data` (bytes received so far), if present.
    pub data_size: Option<u64>,
    /// All files of the upload, including hash states.
    pub total_size: u64,
    /// Newest modification time among its files (the directory's own if empty).
    pub modified: Timestamp,
}

/// One repository directory (any directory under `repositories/` with a `_manifests`,
/// `_layers` or `_uploads` child; the registry 2.x keyed on `_layers`, 3.x on `_manifests`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repository {
    pub name: RepositoryName,
    pub has_manifests: bool,
    pub has_layers: bool,
    pub has_uploads: bool,
    pub has_tags_dir: bool,
    /// Sorted by target.
    pub layers: Vec<Link>,
    /// Sorted by target.
    pub revisions: Vec<Link>,
    /// Sorted by name.
    pub tags: Vec<Tag>,
    /// The tags' history links, each tag's run sorted by target ([`Repository::history`]).
    pub tag_links: Vec<Link>,
    /// Sorted by id.
    pub uploads: Vec<Upload>,
    pub odd_links: Vec<OddLink>,
    /// Non-sha256 `_layers` alias links: (digest named by the path, content).
    pub aliases: Vec<(Digest, Option<Digest>)>,
    /// False when some part of the repository could not be listed or read. Nothing is ever
    /// planned for deletion on the strength of an incomplete repository.
    pub complete: bool,
    /// False when `_manifests/revisions` (or part of it) could not be listed: a manifest
    /// without a revision link here may still have one, so "unlinked" is not a finding.
    pub revisions_listed: bool,
    /// False when `_layers` (or part of it) could not be listed; likewise for layer links.
    pub layers_listed: bool,
}

impl Repository {
    pub fn new(name: RepositoryName) -> Repository {
        Repository {
            name,
            has_manifests: false,
            has_layers: false,
            has_uploads: false,
            has_tags_dir: false,
            layers: Vec::new(),
            revisions: Vec::new(),
            tags: Vec::new(),
            tag_links: Vec::new(),
            uploads: Vec::new(),
            odd_links: Vec::new(),
            aliases: Vec::new(),
            complete: true,
            revisions_listed: true,
            layers_listed: true,
        }
    }

    /// Every digest tag `t` (one of this repository's) ever pointed to
    /// (`index/sha256/<hex>/link`), sorted by target.
    pub fn history(&self, t: &Tag) -> &[Link] {
        self.tag_links.get(t.index.range()).unwrap_or(&[])
    }

    pub fn revision(&self, id: BlobId) -> Option<&Link> {
        self.revisions
            .binary_search_by_key(&id, |l| l.target())
            .ok()
            .map(|i| &self.revisions[i])
    }

    pub fn layer(&self, id: BlobId) -> Option<&Link> {
        self.layers
            .binary_search_by_key(&id, |l| l.target())
            .ok()
            .map(|i| &self.layers[i])
    }

    /// Manifests some tag of this repository points at now (`current` links).
    pub fn tagged(&self) -> std::collections::BTreeSet<BlobId> {
        self.tags
            .iter()
            .filter_map(|t| t.current.and_then(|c| c.target))
            .collect()
    }

    /// Revision links no tag of this repository points at.
    pub fn untagged_revisions(&self) -> impl Iterator<Item = &Link> {
        let tagged = self.tagged();
        self.revisions
            .iter()
            .filter(move |l| !tagged.contains(&l.target()))
    }

    pub fn tag(&self, name: &str) -> Option<&Tag> {
        self.tags
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tags[i])
    }
}

/// The role of a reference inside a manifest.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RefRole {
    Config,
    Layer,
    /// A foreign / non-distributable layer: the registry does not require the blob.
    External,
    /// An index or manifest-list child (a manifest).
    Child,
    /// A blob of the withdrawn OCI artifact manifest.
    ArtifactBlob,
}

/// One reference of a manifest: 4 bytes, the id with the role in its top three bits.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Ref(u32);

const REF_ROLE_SHIFT: u32 = 29;
const ID_MASK_29: u32 = (1 << REF_ROLE_SHIFT) - 1;

impl Ref {
    /// `id` must be below [`MAX_IDS`].
    pub fn new(id: BlobId, role: RefRole) -> Ref {
        debug_assert!((id as usize) < MAX_IDS);
        Ref((id & ID_MASK_29) | ((role as u32) << REF_ROLE_SHIFT))
    }

    pub fn id(self) -> BlobId {
        self.0 & ID_MASK_29
    }

    pub fn role(self) -> RefRole {
        match self.0 >> REF_ROLE_SHIFT {
            0 => RefRole::Config,
            1 => RefRole::Layer,
            2 => RefRole::External,
            3 => RefRole::Child,
            _ => RefRole::ArtifactBlob,
        }
    }

    pub fn set_id(&mut self, id: BlobId) {
        debug_assert!((id as usize) < MAX_IDS);
        *self = Ref::new(id, self.role());
    }
}

impl std::fmt::Debug for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ref")
            .field("id", &self.id())
            .field("role", &self.role())
            .finish()
    }
}

/// Whether a manifest blob could be followed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestStatus {
    Parsed,
    /// Could not be read (I/O error); a finding has the details.
    Unreadable,
    /// Not a manifest the registry can read; a finding has the details.
    Unparseable,
}

/// Rarely needed manifest details, boxed to keep the record small.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ManifestExtra {
    /// Interned (a handful of distinct values).
    pub media_type: Option<std::sync::Arc<str>>,
    pub artifact_type: Option<std::sync::Arc<str>>,
    /// One per child, in child order (index kinds only). Shared: a registry holds a handful
    /// of distinct platforms across hundreds of thousands of index children.
    pub platforms: Vec<Option<std::sync::Arc<Platform>>>,
}

/// A run of a shared table: a manifest's references in [`Inventory::refs`], a tag's history
/// in [`Repository::tag_links`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

const NO_ID: u32 = u32::MAX;

/// A manifest blob that the scan read: 24 bytes. Its references live in one table for the
/// whole inventory ([`Inventory::refs`]) and its rare details in another
/// ([`Inventory::extras`]): a boxed list per manifest cost its allocation's header and
/// rounding on top of the data (about 20 bytes each at 310k manifests).
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub id: BlobId,
    pub status: ManifestStatus,
    pub kind: Option<ManifestKind>,
    /// Config, layers, children and artifact blobs, in manifest order, duplicates removed.
    pub refs: Span,
    subject: u32,
    extra: u32,
}

impl ManifestRecord {
    /// A record with no references, subject or details.
    pub fn new(id: BlobId, status: ManifestStatus, kind: Option<ManifestKind>) -> ManifestRecord {
        ManifestRecord {
            id,
            status,
            kind,
            refs: Span::default(),
            subject: NO_ID,
            extra: NO_ID,
        }
    }

    /// OCI `subject`.
    pub fn subject(&self) -> Option<BlobId> {
        (self.subject != NO_ID).then_some(self.subject)
    }

    pub fn set_subject(&mut self, s: Option<BlobId>) {
        self.subject = s.unwrap_or(NO_ID);
    }

    /// Index into [`Inventory::extras`], if the manifest has details there.
    pub fn extra_index(&self) -> Option<usize> {
        (self.extra != NO_ID).then_some(self.extra as usize)
    }

    pub fn set_extra_index(&mut self, i: Option<usize>) {
        self.extra = i.map_or(NO_ID, |i| i as u32);
    }

    /// Kinds whose references we could not (fully) learn: the graph keeps, for safety,
    /// everything their repository links.
    pub fn is_opaque(&self) -> bool {
        self.status != ManifestStatus::Parsed || self.kind == Some(ManifestKind::Unknown)
    }
}

impl std::fmt::Debug for ManifestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestRecord")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("kind", &self.kind)
            .field("refs", &self.refs)
            .field("subject", &self.subject())
            .field("extra", &self.extra_index())
            .finish()
    }
}

/// Counters of what a scan did (and so what it cost on a network filesystem).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    pub directories_listed: u64,
    pub entries_seen: u64,
    pub stats: u64,
    pub reads: u64,
    pub bytes_read: u64,
}

/// Everything a scan saw.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Inventory {
    /// What was scanned, for humans (a path or URL).
    pub root: String,
    /// Sorted by digest; `BlobId` `i < blobs.len()` is `blobs[i]`.
    pub blobs: Vec<BlobFile>,
    /// The blobs' birth times (`statx` `btime`), by index, where the storage records them
    /// (local filesystems); empty where it records none (object stores, reports), which
    /// keeps 4 bytes per blob off the largest table. Read through [`Inventory::created`].
    pub created: Vec<Secs>,
    /// Referenced but absent digests, sorted.
    pub missing: Vec<Digest>,
    /// Sorted by id.
    pub manifests: Vec<ManifestRecord>,
    /// Every manifest's references, in manifest order ([`ManifestRecord::refs`]).
    pub refs: Vec<Ref>,
    /// Details of indexes, artifacts and unknown kinds ([`ManifestRecord::extra_index`]).
    pub extras: Vec<ManifestExtra>,
    /// Sorted by name.
    pub repositories: Vec<Repository>,
    /// Sorted (kind, path, message).
    pub findings: Vec<Finding>,
    /// Bytes of files outside the known layout (for the storage total).
    pub other_bytes: u64,
    /// Directories under `repositories/` that could not be listed: whatever repositories
    /// live below them are unknown, so no blob may be deleted on the strength of this scan.
    pub unlisted: Vec<String>,
    pub stats: ScanStats,
    /// The pull-through cache's TTL state (`scheduler-state.json` at the driver root), as
    /// far as the backend could read beside the layout.
    pub scheduler: crate::scheduler::SchedulerFile,
}

impl Inventory {
    pub fn digest(&self, id: BlobId) -> Digest {
        let i = id as usize;
        if i < self.blobs.len() {
            Digest::Sha256(self.blobs[i].digest)
        } else {
            self.missing[i - self.blobs.len()].clone()
        }
    }

    pub fn blob(&self, id: BlobId) -> Option<&BlobFile> {
        self.blobs.get(id as usize)
    }

    pub fn is_present(&self, id: BlobId) -> bool {
        (id as usize) < self.blobs.len()
    }

    pub fn id_count(&self) -> usize {
        self.blobs.len() + self.missing.len()
    }

    /// Look a digest up.
    pub fn id_of(&self, d: &Digest) -> Option<BlobId> {
        if let Digest::Sha256(h) = d
            && let Ok(i) = crate::digest::find_sorted(&self.blobs, h, |b| &b.digest)
        {
            return Some(i as BlobId);
        }
        self.missing
            .binary_search(d)
            .ok()
            .map(|i| (i + self.blobs.len()) as BlobId)
    }

    pub fn manifest(&self, id: BlobId) -> Option<&ManifestRecord> {
        self.manifests
            .binary_search_by_key(&id, |m| m.id)
            .ok()
            .map(|i| &self.manifests[i])
    }

    /// The references of manifest `m` (config, layers, children, artifact blobs).
    pub fn refs_of(&self, m: &ManifestRecord) -> &[Ref] {
        self.refs.get(m.refs.range()).unwrap_or(&[])
    }

    /// Index children of manifest `m`.
    pub fn children_of<'s>(&'s self, m: &ManifestRecord) -> impl Iterator<Item = BlobId> + use<'s> {
        self.refs_of(m)
            .iter()
            .filter(|r| r.role() == RefRole::Child)
            .map(|r| r.id())
    }

    /// Media type, artifact type and platforms of manifest `m`, where it has them.
    pub fn extra_of(&self, m: &ManifestRecord) -> Option<&ManifestExtra> {
        m.extra_index().and_then(|i| self.extras.get(i))
    }

    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.repositories[i])
    }

    /// Birth time of blob `id`, to the second, where the storage records one and it is not
    /// after the modification time (see [`Inventory::created`]).
    pub fn created(&self, id: BlobId) -> Option<Timestamp> {
        debug_assert!(
            self.created.is_empty() || self.created.len() == self.blobs.len(),
            "the birth-time column is a row per blob, or none"
        );
        let (c, b) = (self.created.get(id as usize)?, self.blobs.get(id as usize)?);
        birth(*c, b.modified_secs())
    }

    /// The storage recorded a birth time for blob `id`, later than its last write: the file
    /// is a copy.
    pub fn birth_after_write(&self, id: BlobId) -> bool {
        match (self.created.get(id as usize), self.blobs.get(id as usize)) {
            (Some(c), Some(b)) => c.get_opt().is_some_and(|c| c > b.modified()),
            _ => false,
        }
    }

    /// Record blob `id`'s birth time (a stat made after the scan), making the column if
    /// this is its first.
    pub fn set_created(&mut self, id: BlobId, created: Option<Timestamp>) {
        if (created.is_none() && self.created.is_empty()) || id as usize >= self.blobs.len() {
            return;
        }
        if self.created.is_empty() {
            self.created = vec![Secs::NONE; self.blobs.len()];
        }
        if let Some(c) = self.created.get_mut(id as usize) {
            *c = Secs::from_opt(created);
        }
    }

    /// Sum of blob sizes.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Row sizes of the per-blob and per-link tables: a regression here is megabytes per
    /// million blobs (bench/README.md, issue 6).
    #[test]
    fn per_blob_rows_stay_small() {
        assert_eq!(std::mem::size_of::<BlobFile>(), 44);
        assert_eq!(std::mem::size_of::<Link>(), 8);
        assert_eq!(std::mem::size_of::<Ref>(), 4);
        assert_eq!(std::mem::size_of::<ManifestRecord>(), 24);
        assert_eq!(std::mem::size_of::<Tag>(), 48);
        // Plan rows hold digests by value (stowage-plan): the sha256 inline.
        assert_eq!(std::mem::size_of::<crate::digest::Digest>(), 40);
    }

    #[test]
    fn packed_rows_round_trip() {
        let t = Timestamp::from_secs(1_700_000_000);
        for state in [
            LinkState::Assumed,
            LinkState::Verified,
            LinkState::Differs,
            LinkState::Invalid,
        ] {
            for id in [0, 1, 12345, (MAX_IDS - 1) as u32] {
                let mut l = Link::new(id, state, t);
                assert_eq!((l.target(), l.state(), l.modified()), (id, state, t));
                l.set_target(7);
                assert_eq!((l.target(), l.state()), (7, state));
            }
        }
        for role in [
            RefRole::Config,
            RefRole::Layer,
            RefRole::External,
            RefRole::Child,
            RefRole::ArtifactBlob,
        ] {
            for id in [0, 99, (MAX_IDS - 1) as u32] {
                let mut r = Ref::new(id, role);
                assert_eq!((r.id(), r.role()), (id, role));
                r.set_id(3);
                assert_eq!((r.id(), r.role()), (3, role));
            }
        }
    }

    #[test]
    fn blob_times_keep_the_second() {
        let b = BlobFile::new(Sha256([1; 32]), 5, Timestamp(1_700_000_000_999_999_999));
        assert_eq!(b.modified(), Timestamp::from_secs(1_700_000_000));
        let mut inv = Inventory {
            blobs: vec![b],
            ..Default::default()
        };
        assert_eq!(inv.created(0), None);
        inv.set_created(0, None);
        assert!(inv.created.is_empty(), "no column for no birth time");
        let b = BlobFile::new(Sha256([1; 32]), 5, Timestamp(-3));
        assert_eq!(b.modified(), Timestamp::EPOCH, "before 1970: clamped");
        inv.blobs = vec![b, b];
        inv.set_created(0, Some(Timestamp::EPOCH));
        assert_eq!(inv.created(0), Some(Timestamp::EPOCH));
        assert_eq!((inv.created(1), inv.created(7)), (None, None));
        inv.set_created(7, Some(Timestamp::EPOCH));
        assert_eq!(inv.created.len(), 2, "an id out of range adds nothing");
        assert!(!inv.birth_after_write(0));
        // Born after its last write: a copy (cp -a, rsync, restore); the birth is unknown.
        inv.blobs[1] = BlobFile::new(Sha256([2; 32]), 5, Timestamp::from_secs(1_600_000_000));
        inv.set_created(1, Some(Timestamp::from_secs(1_700_000_000)));
        assert_eq!(inv.created(1), None);
        assert!(inv.birth_after_write(1));
    }
}
