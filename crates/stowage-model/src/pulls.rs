//! Pull counts by reference: the one shape the usage store produces and retention consumes.
//!
//! `stowage-usage` aggregates pull events into it, `stowage-history` returns it from the
//! database, and `stowage-policy` (pull data for `time_source: pulled` and the would-break
//! check) and `stowage-plan::replay` read it. It lives here, below all of them, so none of
//! those crates has to depend on another for a plain record (it was written twice, and a
//! field-by-field copy joined the two).

use serde::Serialize;

use crate::time::Timestamp;

/// Counted pulls of one reference (a tag or a digest, as requested) that were served as one
/// manifest (on one UTC day, when read from the history database).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PullByReference {
    pub repository: String,
    /// As requested: a tag, or a digest (`sha256:...`).
    pub reference: String,
    /// The manifest digest served; empty for a tag pull whose digest was not resolved.
    pub digest: String,
    /// The last of these pulls.
    pub last_pulled: Timestamp,
    pub pulls: u64,
    /// Who pulled last (user, user agent and address, as the source recorded them).
    pub client: String,
}
