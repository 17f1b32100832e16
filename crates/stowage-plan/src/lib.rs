//! Plans and their application.
//!
//! Destructive work follows plan -> review -> apply (ARCHITECTURE.md invariant 1):
//!
//! - [`gc::build`] (pure) turns a scanned graph and [`GcOptions`] into a [`Plan`]: every
//!   manifest, link, blob, upload and directory to remove, with sizes, the total bytes, what
//!   the grace period held back, and where (and why) the plan keeps what the registry's own
//!   GC would delete.
//! - [`apply::apply`] is the only code in stowage that deletes. It re-scans the storage,
//!   re-checks every target (still there, same size and mtime, still unreferenced by anything
//!   that will remain), deletes in a safe order (history entries, revision links, layer links,
//!   blobs, uploads, empty directories), and writes an append-only journal so an interrupted
//!   apply can be resumed. With a quarantine directory it moves instead of deleting, and
//!   [`quarantine::restore`] puts everything back.
//! - [`retention`]: a policy's evaluation turned into a plan; [`retention::pipeline`] is the
//!   one function the plan and apply's protection re-check both call.
//! - [`replay`]: the recent pulls a plan would break; [`simulate`]: a policy evaluated at
//!   each day of a history, with the bytes it would have freed and the pulls it would have
//!   broken.
//! - [`surgery`]: repositories deleted, moved or copied, tags deleted alone (plans of kind
//!   `surgery`; apply creates links only for these, and reads each one back).
//! - [`metadata_db`]: registries whose link files are not their metadata (GitLab's metadata
//!   database): every deleting plan, and apply, is refused there.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod apply;
pub mod cache;
pub mod gc;
pub mod journal;
pub mod keys;
pub mod metadata_db;
pub mod plan;
pub mod quarantine;
pub mod replay;
pub mod retention;
pub mod simulate;
pub mod surgery;

pub use gc::GcOptions;
pub use plan::{Plan, PlanKind};
