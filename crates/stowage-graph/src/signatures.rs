//! Signatures whose subject is gone: a cosign tag (`sha256-<hex>.sig|.att|.sbom`) or a
//! referrers-tag-schema index (`sha256-<hex>`) naming a manifest that no repository links.
//!
//! The subject is looked for in *every* repository, not only the tag's own: with
//! `COSIGN_REPOSITORY` signatures live apart from their images, and nothing in the layout
//! says which repository they sign. So a signature is orphaned only when its subject is a
//! revision of no repository at all, and only when the scan read every repository: a subject
//! in a namespace that could not be listed is unknown, never gone.

use std::collections::HashSet;

use stowage_model::digest::Digest;
use stowage_model::inventory::{BlobId, LinkKind};
use stowage_model::signature;
use stowage_model::time::Timestamp;

use crate::index::Graph;

/// One orphaned signature tag.
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
    /// The subject the tag names, which no repository links.
    pub subject: Digest,
}

/// Every orphaned signature tag, in inventory order; `None` when the scan missed a namespace
/// or read a repository only in part (the subject might be there).
pub fn orphan_signatures(g: &Graph<'_>) -> Option<Vec<OrphanSignature>> {
    let inv = g.inv;
    if !inv.unlisted.is_empty() || inv.repositories.iter().any(|r| !r.complete) {
        return None;
    }
    // Every digest some repository links as a manifest; an odd revision link (its content
    // not what its path says) counts for both digests.
    let mut linked: HashSet<BlobId> = HashSet::new();
    let mut linked_by_content: HashSet<&Digest> = HashSet::new();
    for r in &inv.repositories {
        linked.extend(r.revisions.iter().map(|l| l.target()));
        for o in &r.odd_links {
            if o.kind == LinkKind::Revision {
                linked_by_content.insert(&o.path_digest);
                linked_by_content.extend(o.content.as_ref());
            }
        }
    }
    let mut out = Vec::new();
    for (ri, r) in inv.repositories.iter().enumerate() {
        for (ti, t) in r.tags.iter().enumerate() {
            let (Some(subject), Some(current)) = (signature::subject(&t.name), t.current) else {
                continue;
            };
            let Some(manifest) = current.target else {
                continue;
            };
            let alive = inv.id_of(&subject).is_some_and(|id| linked.contains(&id))
                || linked_by_content.contains(&subject);
            if !alive {
                out.push(OrphanSignature {
                    repository: ri as u32,
                    tag: ti as u32,
                    manifest,
                    modified: current.modified,
                    subject,
                });
            }
        }
    }
    Some(out)
}
