//! A pull-through cache's figures as plain data: what `stowage-analysis::cache` computes from
//! the scheduler state and the storage, and what `du`'s JSON, the HTML report and the
//! dashboard show. Here (not in the analysis crate) so the renderer can carry them without
//! depending on the analysis, as the growth series does (`crate::series`).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Per cached repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CachedRepository {
    pub repository: String,
    pub manifests: usize,
    pub blobs: usize,
    pub expired: usize,
    pub first_cached: Option<Timestamp>,
    pub last_cached: Option<Timestamp>,
    /// The next expiry still to come (none when every entry has expired).
    pub next_expiry: Option<Timestamp>,
}

/// The headline figures and per-repository rows, without per-object detail (`du`'s JSON, the
/// report's and the dashboard's cache section).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheOverview {
    /// `proxy.remoteurl` from the registry's config, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_url: Option<String>,
    /// What said this is a cache: `scheduler-state.json`, `config proxy.remoteurl`.
    pub detected_by: Vec<String>,
    /// `read`, `absent`, `unknown` or `unusable: <why>`.
    pub state: String,
    pub entries: usize,
    pub expired_entries: usize,
    /// Stored bytes only expired cached objects reach (what `stowage gc` reclaims now).
    pub expired_stored_bytes: u64,
    pub expired_stored_blobs: usize,
    pub next_expiry: Option<Timestamp>,
    pub repositories: Vec<CachedRepository>,
}

/// One stored blob's scheduler entries (one per repository that cached it), summed up: the
/// blob table's cache columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCache {
    /// Entries naming it (blob entries, and a manifest's own entry for a manifest blob).
    pub entries: usize,
    /// The first fetch from the upstream.
    pub first_cached: Timestamp,
    /// The last expiry among its entries: its links are all gone by then.
    pub expires: Timestamp,
    /// Every entry has expired (its data is still stored: the registry's expiry removes
    /// links, not data).
    pub expired: bool,
}

impl BlobCache {
    /// Add one entry (cached at `cached`, expiring at `expires`, `expired` at `now`).
    pub fn add(this: &mut Option<BlobCache>, cached: Timestamp, expires: Timestamp, expired: bool) {
        *this = Some(match *this {
            None => BlobCache {
                entries: 1,
                first_cached: cached,
                expires,
                expired,
            },
            Some(b) => BlobCache {
                entries: b.entries + 1,
                first_cached: b.first_cached.min(cached),
                expires: b.expires.max(expires),
                expired: b.expired && expired,
            },
        });
    }
}
