//! Signatures whose subject is gone: a cosign tag (`sha256-<hex>.sig|.att|.sbom`) or a
//! referrers-tag-schema index (`sha256-<hex>`) naming a manifest that lived in this storage
//! and that nothing here can serve any more.
//!
//! Three answers, not two, because a tag name is weak evidence:
//! - **alive**: the subject is needed by something linked: a revision of any repository (with
//!   `COSIGN_REPOSITORY` signatures live apart from their images, and nothing in the layout
//!   says which repository they sign), an index child or referrer of one, a `_layers` link
//!   (the 2.1.0 bug: 2.x serves manifests linked there), or an odd revision link;
//! - **gone**: not alive, and the storage shows it held that manifest: its blob is still
//!   here (the registry's GC has not run since), a revision directory of it is left without
//!   its link (what the registry's manifest DELETE leaves, GC or not), or a tag's history
//!   names it;
//! - **unknown**: the storage never held it. This registry may be the `COSIGN_REPOSITORY`
//!   of images stored in another one, or the tag only looks like a signature's: kept.
//!
//! All of it only when the scan read every repository: a subject in a namespace that could
//! not be listed is unknown, never gone.

use std::collections::HashSet;

use stowage_layout::{self as layout, Part, PathInfo};
use stowage_model::digest::Digest;
use stowage_model::finding::FindingKind;
use stowage_model::inventory::{BlobId, LinkKind};
use stowage_model::signature;
use stowage_model::time::Timestamp;

use crate::index::Graph;

/// One signature tag whose subject is not alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanSignature {
    /// Index into `inventory.repositories`.
    pub repository: u32,
    /// Index into that repository's `tags`.
    pub tag: u32,
    /// The manifest the tag points at (the signature, attestation, SBOM or referrers index).
    pub manifest: BlobId,
    /// Its `current` link's modification time (for the grace period).
    pub modified: Timestamp,
    /// The subject the tag names.
    pub subject: Digest,
    /// `false`: the storage never held the subject (kept, see the module docs).
    pub gone: bool,
}

/// What a subject digest is now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SubjectStatus {
    Alive,
    Gone,
    Unknown,
}

/// The subjects' status over one graph, computed once.
pub struct Subjects<'g, 'a> {
    g: &'g Graph<'a>,
    alive: Vec<bool>,
    by_digest: HashSet<&'a Digest>,
    in_history: HashSet<BlobId>,
    /// Digests whose revision directory is left without its link (a manifest DELETE).
    deleted: HashSet<Digest>,
}

impl<'g, 'a> Subjects<'g, 'a> {
    /// `None` when the scan missed a namespace or read a repository only in part.
    pub fn new(g: &'g Graph<'a>) -> Option<Subjects<'g, 'a>> {
        let inv = g.inv;
        if !inv.unlisted.is_empty() || inv.repositories.iter().any(|r| !r.complete) {
            return None;
        }
        let mut roots = g.all_revision_roots();
        let mut by_digest: HashSet<&'a Digest> = HashSet::new();
        let mut in_history = HashSet::new();
        for r in &inv.repositories {
            roots.extend(r.layers.iter().map(|l| l.target()));
            in_history.extend(r.tag_links.iter().map(|l| l.target()));
            for o in &r.odd_links {
                if o.kind == LinkKind::Revision {
                    by_digest.insert(&o.path_digest);
                    by_digest.extend(o.content.as_ref());
                }
            }
        }
        let deleted = inv
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::EmptyDirectory)
            .filter_map(|f| match layout::classify(&f.path) {
                PathInfo::RevisionLink {
                    digest,
                    part: Part::Dir,
                    ..
                } => Some(digest),
                _ => None,
            })
            .collect();
        Some(Subjects {
            g,
            alive: g.mark(roots, true),
            by_digest,
            in_history,
            deleted,
        })
    }

    pub fn status(&self, subject: &Digest) -> SubjectStatus {
        let inv = self.g.inv;
        let id = inv.id_of(subject);
        if self.by_digest.contains(subject) || id.is_some_and(|id| self.alive[id as usize]) {
            return SubjectStatus::Alive;
        }
        let held = self.deleted.contains(subject)
            || id.is_some_and(|id| inv.is_present(id) || self.in_history.contains(&id));
        if held {
            SubjectStatus::Gone
        } else {
            SubjectStatus::Unknown
        }
    }
}

/// Every signature tag whose subject is gone or unknown, in inventory order; `None` when the
/// scan was incomplete.
pub fn orphan_signatures(g: &Graph<'_>) -> Option<Vec<OrphanSignature>> {
    let subjects = Subjects::new(g)?;
    let mut out = Vec::new();
    for (ri, r) in g.inv.repositories.iter().enumerate() {
        for (ti, t) in r.tags.iter().enumerate() {
            let (Some(subject), Some(current)) = (signature::subject(&t.name), t.current) else {
                continue;
            };
            let Some(manifest) = current.target else {
                continue;
            };
            let gone = match subjects.status(&subject) {
                SubjectStatus::Alive => continue,
                SubjectStatus::Gone => true,
                SubjectStatus::Unknown => false,
            };
            out.push(OrphanSignature {
                repository: ri as u32,
                tag: ti as u32,
                manifest,
                modified: current.modified,
                subject,
                gone,
            });
        }
    }
    Some(out)
}
