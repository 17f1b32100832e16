//! Storage surgery the registry's API cannot do (issue 21): delete whole repositories, move
//! or copy a repository to another name, delete a tag alone. Each is a [`Plan`] of kind
//! `surgery` (pure: built from one scanned graph, like [`crate::gc::build`]) that `apply`
//! executes with its usual re-checks, journal, fence and quarantine:
//!
//! - [`repo_delete`]: the repositories' `_manifests` (revisions, tags with their history),
//!   `_layers` and `_uploads` go, then their directories if empty. Repositories nested below
//!   a deleted one are not selected by its name: they are named in the plan and kept. The
//!   blobs the deletion frees are exactly those `gc` frees after it and not before (in the
//!   plan's `blobs`, collected by `apply --gc`); the blobs the repositories use that stay
//!   (shared with what remains, or held back by the grace period) are listed too.
//! - [`repo_move`] (and copy): every link of the source is created under the destination,
//!   `_layers` first, then revisions (single manifests before indexes), then tag history,
//!   then each tag's `current` last, so the registry never serves a destination link to
//!   something the destination cannot serve yet; each created link is read back. Only then
//!   is the source removed (move) as [`repo_delete`] removes a repository. An existing
//!   destination is refused unless `merge`, and tags that would collide (same name, other
//!   digest) are named and refused even then.
//! - [`tag_delete`]: only the tag (its `current` link and history); the manifest stays.
//!   What `gc --delete-untagged` frees after it (and not before) is in the plan's
//!   `manifests`, `tag_index_entries` and `blobs`, removed only by `apply --gc`.
//!
//! The byte accounting is the gc planner's own, run over the storage as scanned and over the
//! same storage without what the surgery removes: the difference is what the surgery frees,
//! so it cannot disagree with `stowage gc` afterwards.

mod build;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stowage_model::digest::Digest;
use stowage_model::inventory::{Inventory, Repository};

pub use build::{SurgeryOptions, repo_delete, repo_move, tag_delete};

use crate::plan::Kept;

/// Which surgery a plan holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    RepoDelete,
    RepoMove,
    RepoCopy,
    TagDelete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::RepoDelete => "repo-delete",
            Operation::RepoMove => "repo-move",
            Operation::RepoCopy => "repo-copy",
            Operation::TagDelete => "tag-delete",
        }
    }
}

/// The surgery section of a plan (`kind: surgery`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Surgery {
    pub operation: Operation,
    /// What was asked, as given (patterns, `SRC DST`, `REPO:TAG`).
    pub requested: Vec<String>,
    /// repo-move / repo-copy: the source, as planned (apply refuses to write anything when
    /// it changed since: the destination would not be what was reviewed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RepositoryState>,
    /// repo-move / repo-copy: the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// Links created under the destination, in the order apply writes them.
    pub links: Vec<LinkCreation>,
    /// Repositories whose sections go (repo-delete; the source of a move), in order.
    pub repositories: Vec<RepositoryState>,
    /// Repositories below a removed (or moved) one that stay, because they were not selected.
    pub nested_kept: Vec<String>,
    /// Destination tags a merge leaves as they are (same name, same digest as the source's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_tags: Vec<String>,
    /// Blobs the removed repositories or tags use that stay after GC, and why.
    pub shared: Vec<Kept>,
    pub shared_bytes: u64,
}

/// A repository as planned: the sections a removal takes, what they hold, and a fingerprint
/// of every link in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryState {
    pub repository: String,
    /// The sections present: `_manifests`, `_layers`, `_uploads`.
    pub sections: Vec<String>,
    pub tags: u64,
    pub revisions: u64,
    pub layers: u64,
    pub uploads: u64,
    /// [`fingerprint`] when planned: apply skips (or, for a move's source, refuses) a
    /// repository whose fingerprint differs (pushed to since the plan).
    pub fingerprint: String,
    /// [`section_fingerprints`] when planned: an apply resumed after an interruption that
    /// removed some sections removes the others only if each is still exactly as planned
    /// (the whole fingerprint cannot tell, part of the repository being gone). Empty in a
    /// plan made before it existed: such a resume keeps what is left.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub section_fingerprints: BTreeMap<String, String>,
}

impl RepositoryState {
    pub fn of(inv: &Inventory, r: &Repository) -> RepositoryState {
        let mut sections = Vec::new();
        if r.has_manifests {
            sections.push("_manifests".to_string());
        }
        if r.has_layers {
            sections.push("_layers".to_string());
        }
        if r.has_uploads {
            sections.push("_uploads".to_string());
        }
        RepositoryState {
            repository: r.name.to_string(),
            sections,
            tags: r.tags.len() as u64,
            revisions: r.revisions.len() as u64,
            layers: r.layers.len() as u64,
            uploads: r.uploads.len() as u64,
            fingerprint: fingerprint(inv, r),
            section_fingerprints: section_fingerprints(inv, r),
        }
    }

    /// The storage keys a removal fences or deletes.
    pub fn section_keys(&self) -> Vec<String> {
        self.sections
            .iter()
            .map(|s| format!("repositories/{}/{s}", self.repository))
            .collect()
    }
}

/// What kind of link a [`LinkCreation`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    Layer,
    Revision,
    TagIndex,
    TagCurrent,
}

/// One link to create: its file holds exactly `digest` (71 bytes for sha256, no newline),
/// as the registry writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkCreation {
    pub repository: String,
    pub kind: LinkKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: Digest,
}

impl LinkCreation {
    /// The link file's storage key.
    pub fn path(&self) -> String {
        let repo = &self.repository;
        let tag = self.tag.as_deref().unwrap_or("");
        match self.kind {
            LinkKind::Layer => stowage_layout::layer_link(repo, &self.digest),
            LinkKind::Revision => stowage_layout::revision_link(repo, &self.digest),
            LinkKind::TagIndex => stowage_layout::tag_index_link(repo, tag, &self.digest),
            LinkKind::TagCurrent => stowage_layout::tag_current_link(repo, tag),
        }
    }
}

/// Where a link lives in a repository (the sections apply fences one by one).
#[derive(Copy, Clone, PartialEq, Eq)]
enum Section {
    Manifests,
    Layers,
    Uploads,
}

/// One line per link of a repository as the scan saw it, with its section, in a fixed
/// order (tags with their current target and date and their history, revisions with their
/// dates, layer links, uploads, odd links): what both fingerprints hash.
///
/// Each group is sorted by what it names, never by the scan's numbering of digests: that
/// numbering follows the order blobs were met, which differs between two scans of the same
/// links when the blobs differ (a fenced copy holds links, not the blobs they name), and the
/// fingerprint must not.
fn link_lines(inv: &Inventory, r: &Repository) -> Vec<(Section, String)> {
    use stowage_model::inventory::LinkKind as K;
    let mut out = Vec::new();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let mut tags: Vec<_> = r.tags.iter().collect();
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    for t in tags {
        let (target, modified) = t.current.map_or((String::new(), 0), |c| {
            (
                c.target
                    .map(|id| inv.digest(id).to_string())
                    .unwrap_or_default(),
                c.modified.secs(),
            )
        });
        out.push((
            Section::Manifests,
            format!("t {} {target} {modified}\n", t.name),
        ));
        let history = r.history(t).iter();
        let history = history.map(|l| format!("h {} {}\n", t.name, inv.digest(l.target())));
        out.extend(
            sorted(history.collect())
                .into_iter()
                .map(|l| (Section::Manifests, l)),
        );
    }
    let revisions = r.revisions.iter();
    let revisions =
        revisions.map(|l| format!("r {} {}\n", inv.digest(l.target()), l.modified().secs()));
    out.extend(
        sorted(revisions.collect())
            .into_iter()
            .map(|l| (Section::Manifests, l)),
    );
    let layers = r
        .layers
        .iter()
        .map(|l| format!("l {}\n", inv.digest(l.target())));
    out.extend(
        sorted(layers.collect())
            .into_iter()
            .map(|l| (Section::Layers, l)),
    );
    let uploads = r
        .uploads
        .iter()
        .map(|u| format!("u {} {}\n", u.id, u.total_size));
    out.extend(
        sorted(uploads.collect())
            .into_iter()
            .map(|l| (Section::Uploads, l)),
    );
    let mut odd: Vec<(Section, String)> = r
        .odd_links
        .iter()
        .map(|o| {
            let section = if o.kind == K::Layer {
                Section::Layers
            } else {
                Section::Manifests
            };
            (section, format!("o {:?} {}\n", o.kind, o.path_digest))
        })
        .collect();
    odd.sort_by(|a, b| a.1.cmp(&b.1));
    out.extend(odd);
    out
}

/// A digest of every link of a repository as the scan saw it: any push, tag move or upload
/// since the plan changes it.
pub fn fingerprint(inv: &Inventory, r: &Repository) -> String {
    let text: String = link_lines(inv, r).into_iter().map(|(_, l)| l).collect();
    sha256_hex(text.as_bytes())
}

/// A digest per section present (`_manifests`, `_layers`, `_uploads`) of the links it holds,
/// the same lines as [`fingerprint`] split by where they live (odd links by their kind).
pub fn section_fingerprints(inv: &Inventory, r: &Repository) -> BTreeMap<String, String> {
    let lines = link_lines(inv, r);
    let text = |want: Section| -> String {
        lines
            .iter()
            .filter(|(s, _)| *s == want)
            .map(|(_, l)| l.as_str())
            .collect()
    };
    let mut out = BTreeMap::new();
    for (name, present, section) in [
        ("_manifests", r.has_manifests, Section::Manifests),
        ("_layers", r.has_layers, Section::Layers),
        ("_uploads", r.has_uploads, Section::Uploads),
    ] {
        if present {
            out.insert(name.to_string(), sha256_hex(text(section).as_bytes()));
        }
    }
    out
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a surgery cannot be planned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SurgeryError {
    #[error("{name:?} is not a repository name: {why}")]
    BadName { name: String, why: String },
    #[error("{0:?} is not REPO:TAG")]
    BadReference(String),
    #[error(transparent)]
    Pattern(#[from] stowage_model::pattern::PatternError),
    #[error("{0:?} matches no repository")]
    NoMatch(String),
    #[error("no repository {0:?} in the storage")]
    NoSuchRepository(String),
    #[error("no tag {tag:?} in repository {repository:?}")]
    NoSuchTag { repository: String, tag: String },
    #[error(
        "repository {0:?} could not be read completely; nothing is planned on the strength of an incomplete repository"
    )]
    Incomplete(String),
    #[error("{src:?} and {dst:?}: {why}")]
    SameRepository {
        src: String,
        dst: String,
        why: &'static str,
    },
    #[error(
        "the destination {dst:?} exists; pass --merge to add {src:?}'s tags to it{}",
        collisions_text(collisions)
    )]
    DestinationExists {
        src: String,
        dst: String,
        collisions: Vec<String>,
    },
    #[error(
        "merging {src:?} into {dst:?} would change where these destination tags point: {}",
        collisions.join(", ")
    )]
    Collisions {
        src: String,
        dst: String,
        collisions: Vec<String>,
    },
    #[error("{repository:?} cannot be copied faithfully: {why}")]
    Unfaithful { repository: String, why: String },
}

fn collisions_text(c: &[String]) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(
            " (tags that would collide, pointing elsewhere in the destination: {})",
            c.join(", ")
        )
    }
}

/// A name given on the command line: the lenient grammar (what the storage can hold), and
/// never a `.` or `..` component (a path out of `repositories/`).
pub(crate) fn check_name(name: &str) -> Result<(), SurgeryError> {
    let bad = |why: String| SurgeryError::BadName {
        name: name.to_string(),
        why,
    };
    if name.split('/').any(|c| c == "." || c == "..") {
        return Err(bad("a . or .. component".into()));
    }
    stowage_model::name::RepositoryName::parse_lenient(name).map_err(|e| bad(e.to_string()))?;
    Ok(())
}
