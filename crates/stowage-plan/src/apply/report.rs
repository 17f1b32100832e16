//! What an apply reports: what it did, what it skipped or put back and why, and why it did
//! not run at all (kept apart from the orchestration in `mod.rs`).

use std::path::PathBuf;

use serde::Serialize;

/// One skipped target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skip {
    pub path: String,
    pub reason: String,
}

/// A fenced target put back by an online apply, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Restored {
    pub path: String,
    pub reason: String,
}

/// What an apply did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub plan: String,
    pub manifests: u64,
    /// Tags removed (retention).
    pub tags: u64,
    pub tag_index_entries: u64,
    pub layer_links: u64,
    pub blobs: u64,
    pub uploads: u64,
    pub empty_dirs: u64,
    /// Surgery: repository sections (`_manifests`, `_layers`, `_uploads`) removed.
    #[serde(skip_serializing_if = "is_zero")]
    pub repository_sections: u64,
    /// Surgery (repo-move, repo-copy): links created under the destination and read back.
    #[serde(skip_serializing_if = "is_zero")]
    pub links_created: u64,
    /// Actions that found their target already gone (done by an interrupted earlier run).
    pub already_done: u64,
    pub bytes_freed: u64,
    pub skipped: Vec<Skip>,
    /// Online: `online` or `offline`.
    pub mode: String,
    /// Online: targets fenced (moved out of the layout) by this run.
    pub fenced: u64,
    /// Online: the settle wait, in seconds.
    pub settle_seconds: u64,
    /// Online: what was done about the registry's blob descriptor cache.
    pub cache: String,
    /// Online: fenced targets put back because something written since the plan needs them.
    pub restored: Vec<Restored>,
    pub warnings: Vec<String>,
    pub seconds: f64,
    pub quarantine: Option<PathBuf>,
    pub journal: PathBuf,
    /// Cache GC plans: what was done to `scheduler-state.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_state: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why an apply did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error("the plan was made for {plan}, not for {storage}")]
    WrongStorage { plan: String, storage: String },
    #[error("the registry looks live and --require-quiet was given: {0}")]
    Live(String),
    #[error("journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("journal {0} belongs to another plan; use another journal or finish that apply first")]
    ForeignJournal(PathBuf),
    #[error("quarantine: {0}")]
    Quarantine(String),
    #[error("re-scan failed: {0}")]
    Scan(String),
    #[error("the plan is blocked and cannot be applied: {0}")]
    Blocked(String),
    #[error("the plan expired at {0}; make a new plan (`stowage plan`)")]
    Expired(String),
    #[error("in-use protection changed since the plan, nothing was removed: {0}")]
    InUse(String),
    #[error("an online apply cannot be made safe: {0}")]
    UnsafeOnline(String),
    /// A surgery's link could not be created or read back as planned: the apply stopped
    /// before removing anything.
    #[error("surgery: {0}")]
    Surgery(String),
    #[error(
        "the registry's cache could not be emptied ({0}); every fenced target was put back, nothing was deleted"
    )]
    CacheStep(String),
}
