//! Pure domain types of stowage. No I/O, no clock.
//!
//! - [`digest`]: `Sha256` (32 bytes, the hot type) and `Digest` (any algorithm the registry
//!   validates), parsed strictly.
//! - [`name`]: repository and tag names, read leniently and checked against the strict grammar.
//! - [`time`]: `Timestamp` (nanoseconds, UTC) and human formatting helpers.
//! - [`manifest`]: stored manifest bytes -> kind and references (Docker schema 1/2, manifest
//!   lists, OCI manifests, indexes and artifacts).
//! - [`inventory`]: the raw facts a scan produces, with interned `BlobId`s.
//! - [`finding`]: integrity findings with stable kinds and severities.
//! - [`pulls`]: `PullByReference`, pull counts as the usage store gives them to retention.
//! - [`signature`]: tags that name a subject manifest (cosign, the referrers tag schema).
//! - [`build`]: image build dates from config blobs (`created`, build steps), judged.
//! - [`key`]: `StorageKey`, a path below the layout root, validated once for every backend.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod build;
pub mod cached;
pub mod digest;
pub mod escape;
pub mod finding;
pub mod inventory;
pub mod key;
pub mod manifest;
pub mod name;
pub mod pattern;
pub mod pulls;
pub mod scheduler;
pub mod series;
pub mod signature;
pub mod time;
pub mod units;

pub use digest::{Digest, Sha256};
pub use finding::{Finding, FindingKind, Severity};
pub use inventory::{BlobId, Inventory};
pub use key::{KeyError, StorageKey};
pub use name::RepositoryName;
pub use time::Timestamp;
