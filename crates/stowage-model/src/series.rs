//! Growth over time as the history database returns it and the report charts it: plain data
//! shared by the store (`stowage-history`) and the renderer (`stowage-report`), so neither
//! depends on the other.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Growth over time, per snapshot (from the history database).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HistorySeries {
    /// Snapshot times, oldest first.
    pub times: Vec<Timestamp>,
    /// Blob store bytes at each time.
    pub blob_bytes: Vec<u64>,
    /// Per repository (the largest now, then `(other)`): total bytes at each time.
    pub repositories: Vec<HistoryLine>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryLine {
    pub name: String,
    pub total: Vec<u64>,
}
