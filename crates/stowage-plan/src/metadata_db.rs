//! Registries whose link files are not the truth: GitLab's registry with its metadata
//! database enabled.
//!
//! Once `database.enabled` is on, GitLab's registry keeps repositories, tags and blob links in
//! PostgreSQL and neither writes nor reads the filesystem's `_layers`, revision and tag links
//! (gitlab-org/container-registry MR 1298). Every blob pushed since then has no link, so a plan
//! built from the storage would delete images in use: every deleting plan (`gc`, `gc -m`,
//! `plan --policy`, and `apply` of any plan) must be refused there, and read figures are
//! "filesystem metadata only".
//!
//! Two kinds of evidence: the registry's config (given with `--registry-config`, or GitLab
//! omnibus's `/var/opt/gitlab/registry/config.yml` found from the storage path), and a
//! storage signature for when no config is at hand ([`signature`]): blobs written well after
//! the newest link of any kind, which a registry that writes links never produces in numbers
//! (an upload is linked into its repository as it completes).

use std::fmt;

use stowage_model::inventory::Inventory;
use stowage_model::time::Timestamp;

/// What to use instead, named in every refusal.
pub const INSTEAD: &str = "use GitLab's own online garbage collection, which runs inside the registry \
     when its metadata database is enabled (GitLab docs: \"Container registry metadata database\", \
     online garbage collection)";

/// A blob counts for the signature when it is this much newer than the newest link
/// (one day: a push writes its links within seconds of its blobs).
pub const SIGNATURE_MARGIN_SECS: i64 = 86_400;
/// ... and the signature needs at least this many such blobs (a few blobs of abandoned
/// pushes, whose manifests never came, are ordinary garbage).
pub const SIGNATURE_MIN_BLOBS: u64 = 10;

/// Why stowage believes the storage's links are not the registry's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Evidence {
    /// `database.enabled: true` in this registry config.
    Config { path: String },
    /// Blobs far newer than any link.
    Signature {
        blobs_after: u64,
        newest_link: Option<Timestamp>,
    },
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Config { path } => write!(
                f,
                "the registry config {path} enables GitLab's metadata database (database.enabled: true)"
            ),
            Evidence::Signature {
                blobs_after,
                newest_link: Some(t),
            } => write!(
                f,
                "{blobs_after} blobs were written more than a day after the newest link file ({}), \
                 the signature of GitLab's metadata database (its registry writes no link files)",
                t.rfc3339()
            ),
            Evidence::Signature {
                blobs_after,
                newest_link: None,
            } => write!(
                f,
                "{blobs_after} blobs and not one link file, the signature of GitLab's metadata database \
                 (its registry writes no link files)"
            ),
        }
    }
}

impl Evidence {
    /// The refusal of a deleting plan or an apply, with what to do instead.
    pub fn refusal(&self) -> String {
        format!(
            "refusing to plan deletions: {self}. The filesystem's links are not this registry's metadata, \
             so every blob pushed since the database was enabled looks unreferenced and would be deleted; {INSTEAD}"
        )
    }

    /// The label of read commands' figures.
    pub fn label(&self) -> String {
        format!("figures are from filesystem metadata only: {self}")
    }
}

/// The storage signature of a registry that stopped writing links (see the module docs).
pub fn signature(inv: &Inventory) -> Option<Evidence> {
    let newest_link = inv
        .repositories
        .iter()
        .flat_map(|r| {
            r.layers
                .iter()
                .chain(&r.revisions)
                .chain(&r.tag_links)
                // A scan that stated only candidates leaves other links without a time
                // (it would read as 2106 and hide every blob): the newest known link can
                // only be earlier, which finds more blobs after it, never fewer.
                .filter(|l| l.is_stated())
                .map(|l| l.modified())
                .chain(r.tags.iter().filter_map(|t| t.current.map(|c| c.modified)))
        })
        .max();
    // No link at all is not this signature: a storage without `repositories/` is already
    // incomplete knowledge (nothing is deleted), and an empty one is what deleting every
    // repository through the API leaves.
    let t = newest_link?;
    let blobs_after = inv
        .blobs
        .iter()
        // Unstated blobs are linked ones (every unlinked blob is a candidate, stated before
        // a plan is final: `stowage_analysis::settle`), which this signature does not count.
        .filter(|b| b.is_stated() && t.seconds_until(b.modified()) > SIGNATURE_MARGIN_SECS)
        .count() as u64;
    (blobs_after >= SIGNATURE_MIN_BLOBS).then_some(Evidence::Signature {
        blobs_after,
        newest_link: Some(t),
    })
}
