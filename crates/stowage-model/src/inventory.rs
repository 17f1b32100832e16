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
use crate::time::Timestamp;

/// Index of a digest: `< blobs.len()` names a present blob, otherwise
/// `missing[id - blobs.len()]`, a digest that something references but `blobs/` lacks.
pub type BlobId = u32;

/// One `blobs/sha256/<hh>/<hex>/data` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobFile {
    pub digest: Sha256,
    pub size: u64,
    pub modified: Timestamp,
    /// Birth time (`statx` `btime`) where the filesystem records it.
    pub created: OptTimestamp,
}

/// An optional [`Timestamp`] in 8 bytes (`Option<Timestamp>` takes 16): the blob table is the
/// largest table of a scan, one row per blob, so its rows are kept at 56 bytes.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OptTimestamp(i64);

impl OptTimestamp {
    /// No value (`i64::MIN` nanoseconds, 1677: never a real file time).
    pub const NONE: OptTimestamp = OptTimestamp(i64::MIN);

    pub fn get(self) -> Option<Timestamp> {
        (self != Self::NONE).then_some(Timestamp(self.0))
    }
}

impl From<Option<Timestamp>> for OptTimestamp {
    fn from(t: Option<Timestamp>) -> OptTimestamp {
        match t {
            Some(t) if t.0 != i64::MIN => OptTimestamp(t.0),
            // The one value the sentinel takes is moved by a nanosecond rather than lost.
            Some(_) => OptTimestamp(i64::MIN + 1),
            None => Self::NONE,
        }
    }
}

impl std::fmt::Debug for OptTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// What we know of a link file's content.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The digest named by the path.
    pub target: BlobId,
    pub state: LinkState,
    pub modified: Timestamp,
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

/// One tag directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub current: Option<CurrentLink>,
    /// Every digest the tag ever pointed to (`index/sha256/<hex>/link`), sorted by target.
    pub index: Vec<Link>,
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
    /// Sorted by id.
    pub uploads: Vec<Upload>,
    pub odd_links: Vec<OddLink>,
    /// Non-sha256 `_layers` alias links: (digest named by the path, content).
    pub aliases: Vec<(Digest, Option<Digest>)>,
    /// False when some part of the repository could not be listed or read. Nothing is ever
    /// planned for deletion on the strength of an incomplete repository.
    pub complete: bool,
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
            uploads: Vec::new(),
            odd_links: Vec::new(),
            aliases: Vec::new(),
            complete: true,
        }
    }

    pub fn revision(&self, id: BlobId) -> Option<&Link> {
        self.revisions
            .binary_search_by_key(&id, |l| l.target)
            .ok()
            .map(|i| &self.revisions[i])
    }

    pub fn layer(&self, id: BlobId) -> Option<&Link> {
        self.layers
            .binary_search_by_key(&id, |l| l.target)
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
            .filter(move |l| !tagged.contains(&l.target))
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

/// One reference of a manifest.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub id: BlobId,
    pub role: RefRole,
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
    pub media_type: Option<String>,
    pub artifact_type: Option<String>,
    /// One per child, in child order (index kinds only). Shared: a registry holds a handful
    /// of distinct platforms across hundreds of thousands of index children.
    pub platforms: Vec<Option<std::sync::Arc<Platform>>>,
}

/// A manifest blob that the scan read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRecord {
    pub id: BlobId,
    pub status: ManifestStatus,
    pub kind: Option<ManifestKind>,
    /// Config, layers, children and artifact blobs, in manifest order, duplicates removed.
    pub refs: Box<[Ref]>,
    /// OCI `subject`.
    pub subject: Option<BlobId>,
    pub extra: Option<Box<ManifestExtra>>,
}

impl ManifestRecord {
    /// Kinds whose references we could not (fully) learn: the graph keeps, for safety,
    /// everything their repository links.
    pub fn is_opaque(&self) -> bool {
        self.status != ManifestStatus::Parsed || self.kind == Some(ManifestKind::Unknown)
    }

    pub fn children(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.refs
            .iter()
            .filter(|r| r.role == RefRole::Child)
            .map(|r| r.id)
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
    /// Referenced but absent digests, sorted.
    pub missing: Vec<Digest>,
    /// Sorted by id.
    pub manifests: Vec<ManifestRecord>,
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
            && let Ok(i) = self.blobs.binary_search_by(|b| b.digest.cmp(h))
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

    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.repositories[i])
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
        assert_eq!(std::mem::size_of::<BlobFile>(), 56);
        assert_eq!(std::mem::size_of::<Link>(), 16);
        assert_eq!(std::mem::size_of::<Ref>(), 8);
    }

    #[test]
    fn optional_timestamps_round_trip() {
        for t in [
            None,
            Some(Timestamp(0)),
            Some(Timestamp(-5)),
            Some(Timestamp(i64::MAX)),
        ] {
            assert_eq!(OptTimestamp::from(t).get(), t);
        }
        assert_eq!(
            OptTimestamp::from(Some(Timestamp(i64::MIN))).get(),
            Some(Timestamp(i64::MIN + 1))
        );
    }
}
