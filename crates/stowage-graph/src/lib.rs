//! The reference graph over an [`Inventory`], pure: reachability, GC marking, size accounting
//! (total, exclusive, shared) and integrity findings.
//!
//! # Model
//! Nodes are [`BlobId`]s (every digest the scan saw, present or missing). Edges run from a
//! manifest to what it needs: config, layers, index children, artifact blobs. Referrers
//! (OCI `subject`) are kept as a reverse index: a referrer lives while its subject lives.
//! Repositories enter through their links: revision links make a manifest part of a
//! repository, tag `current` links name what is tagged.
//!
//! All adjacency is stored as CSR arrays of `u32` (offsets + targets; sparse tables keep
//! offsets only for the rows that have values), built in two linear passes over the
//! inventory with no intermediate pair lists; walks use a reusable stamp array, so a walk
//! allocates nothing per node. Nothing here does I/O or reads the clock.
//!
//! # Safety rules (ARCHITECTURE.md invariants 2 and 3)
//! - A manifest we could not read or parse, or whose media type is unknown, is *opaque*:
//!   marking it marks everything its repositories link (`_layers` targets and every
//!   revision), because the registry demands those links for anything a manifest references.
//! - Revision links whose content could not be trusted (invalid, mismatched) count as roots
//!   for both the digest their path names and the one their content names.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod index;
mod signatures;
mod sizes;
mod verdicts;

pub use index::{Graph, GraphIndex, Parents, Scratch};
pub use signatures::{OrphanSignature, SubjectStatus, Subjects, orphan_signatures};
pub use sizes::{NodeUsage, TagUsage, Usage, usage};
pub use verdicts::{
    BlobKind, Summary, analyze_findings, count_findings, summary, tagged_roots, tagged_roots_except,
};

/// Sentinel for "no value" in `u32` tables.
pub const NONE: u32 = u32::MAX;
