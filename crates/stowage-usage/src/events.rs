//! Pull events and what is known of them: the data model of pull data, pure (no SQLite).
//! `stowage-usage` produces these from access logs and notifications; `stowage-history`
//! stores them and answers with the summaries below, so the store depends on this crate and
//! not the reverse.

use std::collections::BTreeMap;

use serde::Serialize;
use stowage_model::time::Timestamp;

/// Nanoseconds in a day.
pub const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The UTC day (days since 1970-01-01) of `t`.
pub fn day_of(t: Timestamp) -> i64 {
    t.0.div_euclid(NS_PER_DAY)
}

/// What one batch of data covers: its days (first and last time seen each day), and how
/// many events or lines were rejected for being dated outside what the source can send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub days: BTreeMap<i64, (Timestamp, Timestamp)>,
    pub rejected: u64,
}

impl Coverage {
    /// Data was seen at `t`.
    pub fn saw(&mut self, t: Timestamp) {
        let d = self.days.entry(day_of(t)).or_insert((t, t));
        d.0 = d.0.min(t);
        d.1 = d.1.max(t);
    }

    pub fn first(&self) -> Option<Timestamp> {
        self.days.values().next().map(|d| d.0)
    }

    pub fn last(&self) -> Option<Timestamp> {
        self.days.values().next_back().map(|d| d.1)
    }
}

/// What a usage event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageAction {
    Pull,
    Push,
    Delete,
}

impl UsageAction {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageAction::Pull => "pull",
            UsageAction::Push => "push",
            UsageAction::Delete => "delete",
        }
    }
}

/// Which kind of source saw an event (for coverage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Logs,
    Notifications,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Logs => "logs",
            SourceKind::Notifications => "notifications",
        }
    }
}

/// One manifest request (successful or not) or notification event, ready to store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageEvent {
    /// Stable identity (see the module doc): 16 bytes of a hash.
    #[serde(skip)]
    pub key: [u8; 16],
    pub at: Timestamp,
    pub action: UsageAction,
    /// `GET`, `HEAD`, `PUT`, `DELETE` (absent for events that do not say).
    pub method: Option<String>,
    pub repository: String,
    /// As requested: a tag or a digest.
    pub reference: String,
    /// The manifest digest; `None` when a tag could not be resolved.
    pub digest: Option<String>,
    /// Why the tag was not resolved.
    pub unresolved: Option<String>,
    pub status: Option<u16>,
    pub user_agent: Option<String>,
    pub remote_addr: Option<String>,
    pub user: Option<String>,
    /// The filter that excludes it from pull counts (a scanner, an ignored address).
    pub ignored: Option<String>,
    /// `log:text`, `log:json`, `log:combined`, `log:gitlab` or `notification`.
    pub source: String,
}

impl UsageEvent {
    /// Counts as a pull: a successful GET/HEAD (or a pull event), not ignored, digest known.
    pub fn counts_as_pull(&self) -> bool {
        self.action == UsageAction::Pull
            && self.ignored.is_none()
            && self.digest.is_some()
            && self.status.is_none_or(|s| (200..300).contains(&s))
    }
}

/// Bookkeeping of one log ingest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    pub inputs: String,
    pub lines_read: u64,
    /// Access-log lines (any request).
    pub requests: u64,
    /// Manifest requests among them (any method, any status).
    pub manifest_events: u64,
    /// Filled by the store's `record_usage`.
    pub recorded: u64,
    /// Filled by the store's `record_usage`.
    pub duplicates: u64,
    /// Of the duplicates: requests the registry's notifications already recorded (or, for
    /// notifications, the logs): overlapping sources, not counted twice.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overlapping: u64,
    /// Events excluded from pull counts by a filter.
    pub ignored: u64,
    /// Tag pulls whose digest is unknown.
    pub unresolved: u64,
    pub unparseable: u64,
    /// Parseable lines that are not requests (start-up messages, errors without a request).
    pub other_lines: u64,
    /// Lines dated outside what the logs can hold (in the future beyond the allowed clock
    /// skew): not recorded.
    pub rejected: u64,
    /// Lines longer than the limit (`stowage_usage::MAX_LINE`): skipped, not buffered.
    pub too_long: u64,
    /// Earliest and latest time of any line read.
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// The days lines were read for (what the ingest covers; not stored per ingest).
    #[serde(skip)]
    pub coverage: Coverage,
}

impl IngestStats {
    /// A line (of any kind) dated `t` was read: it widens the time range and covers its day.
    pub fn saw(&mut self, t: Timestamp) {
        self.first_at = Some(self.first_at.map_or(t, |f| f.min(t)));
        self.last_at = Some(self.last_at.map_or(t, |l| l.max(t)));
        self.coverage.saw(t);
    }
}

/// What the usage store knows, for retention and views.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PullSummary {
    /// When pull data begins (earliest ingested log line or event); None = no data at all.
    pub data_begins: Option<Timestamp>,
    /// When the newest data point was recorded (for staleness).
    pub data_ends: Option<Timestamp>,
    /// Per (repository, manifest digest "sha256:..."): last pull time and total pulls
    /// (filtered: scanners and ignored addresses excluded).
    pub pulls: Vec<PullRecord>,
}

/// Pulls of one manifest in one repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullRecord {
    pub repository: String,
    pub digest: String,
    pub first_pulled: Timestamp,
    pub last_pulled: Timestamp,
    pub pulls: u64,
}

pub use stowage_model::pulls::PullByReference;

/// [`PullRecord` with the split by method, for views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullDetail {
    pub repository: String,
    pub digest: String,
    pub first_pulled: Timestamp,
    pub last_pulled: Timestamp,
    pub pulls: u64,
    pub head_pulls: u64,
}

/// Coverage of one kind of source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub kind: String,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub received: u64,
    pub recorded: u64,
    pub duplicates: u64,
    /// Events or lines rejected for their date (schema version 3).
    #[serde(skip_serializing_if = "is_zero")]
    pub rejected: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Pulls that a filter excluded, or whose tag could not be resolved, grouped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExcludedPulls {
    /// The filter, or the reason the tag was not resolved.
    pub reason: String,
    pub pulls: u64,
    pub last_at: Timestamp,
}

/// The state of the usage store, for `stowage usage` and the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageStatus {
    pub sources: Vec<SourceInfo>,
    /// Recorded log ingests, oldest first.
    pub ingests: Vec<IngestStats>,
    /// Successful pulls a filter excluded, by filter.
    pub ignored: Vec<ExcludedPulls>,
    /// Successful tag pulls not attributed to a digest, by reason.
    pub unresolved: Vec<ExcludedPulls>,
    /// Successful tag pulls not attributed, by `repository:tag` (at most 50, most pulled first).
    pub unresolved_tags: Vec<ExcludedPulls>,
}

/// A tag set by a push: (repository, tag, time, digest).
pub type TagPush = (String, String, Timestamp, String);

/// What recording did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub recorded: u64,
    /// Already recorded: the same key, or (counted in `overlapping` too) the same request
    /// from the other kind of source.
    pub duplicates: u64,
    /// Events another kind of source (logs against notifications) already recorded: same
    /// repository, manifest (tag or digest), action and method, within [`OVERLAP_NS`]
    /// (addresses are not compared: a notification's carries the port, a log's may not). Not counted again (issue 19 item 8: one pull was 2).
    pub overlapping: u64,
}

/// How far apart in time the registry's notification and its access-log line of one request
/// may be (the notification is dated when the response is written, the log line when the
/// request completes): 2 seconds.
pub const OVERLAP_NS: i64 = 2_000_000_000;
