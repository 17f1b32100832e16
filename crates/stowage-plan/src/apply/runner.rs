//! One action at a time: journal the intent, act, journal the outcome, count it.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use stowage_storage::StorageWrite;

use super::{ApplyError, ApplyReport, Skip};
use crate::journal::{self, Journal, entry};

/// What kind of target an action removes (for the report's counts).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tag,
    Manifest,
    TagIndex,
    LayerLink,
    Blob,
    Upload,
    EmptyDir,
    /// A repository's `_manifests`, `_layers` or `_uploads` (surgery).
    Section,
}

pub(crate) struct Runner<'a, S: StorageWrite> {
    pub storage: &'a S,
    pub journal: Mutex<Journal>,
    /// The batch targets are moved into: the quarantine (offline with `--quarantine`) or the
    /// fence (online). `None`: targets are deleted.
    pub batch: Option<PathBuf>,
    pub report: Mutex<ApplyReport>,
    /// Paths an earlier, interrupted run of this plan acted on (`intent` or `done`).
    pub done_before: HashSet<String>,
    /// Fenced paths an earlier run began to purge (`intent` or `done`): a repository section
    /// among them is partly gone, so the rest of that repository is never put back.
    pub purged_before: HashSet<String>,
    /// Paths moved into the batch, by this run or an earlier one, and not yet restored or
    /// purged: what an online apply verifies after settling.
    pub fenced: Mutex<BTreeSet<String>>,
}

impl<S: StorageWrite> Runner<'_, S> {
    pub fn journal(&self, e: journal::Entry) -> Result<(), ApplyError> {
        let mut j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let path = j.path().to_path_buf();
        j.write(e)
            .map(|_| ())
            .map_err(|source| ApplyError::Journal { path, source })
    }

    /// Journal a step of the apply itself (fence done, settle, cache, verify).
    /// Synced to disk: the moves before it must survive a power loss, not only a kill (the
    /// fenced set of a resumed apply is read from the journal).
    pub fn step(&self, op: &str, reason: impl Into<String>) -> Result<(), ApplyError> {
        let mut e = entry("step", op, "");
        e.reason = reason.into();
        self.journal(e)?;
        let mut j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let path = j.path().to_path_buf();
        j.sync()
            .map_err(|source| ApplyError::Journal { path, source })
    }

    pub fn skip(&self, path: &str, reason: impl Into<String>) -> Result<(), ApplyError> {
        let reason = reason.into();
        let mut e = entry("skipped", "", path);
        e.reason = reason.clone();
        self.journal(e)?;
        self.report().skipped.push(Skip {
            path: path.into(),
            reason,
        });
        Ok(())
    }

    pub fn report(&self) -> std::sync::MutexGuard<'_, ApplyReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remove (delete, or move into the batch) one path. Returns whether something was
    /// removed now.
    pub fn remove(&self, kind: Kind, path: &str, bytes: u64) -> Result<bool, ApplyError> {
        let op = if kind == Kind::EmptyDir {
            "rmdir"
        } else if self.batch.is_some() {
            "move"
        } else {
            "delete"
        };
        test_delay_hook();
        self.journal(entry("intent", op, path))?;
        let r = match (kind, &self.batch) {
            (Kind::EmptyDir, _) => self.storage.remove_empty_dir(path),
            (_, Some(q)) => self.storage.move_to(path, q),
            (_, None) => self.storage.delete(path),
        };
        match r {
            Ok(true) => {
                self.journal(entry("done", op, path))?;
                if op == "move" {
                    self.fenced
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path.to_string());
                }
                let mut rep = self.report();
                *count(&mut rep, kind) += 1;
                rep.bytes_freed += bytes;
                drop(rep);
                test_kill_hook();
                Ok(true)
            }
            Ok(false) => {
                let mut e = entry("skipped", op, path);
                if kind == Kind::EmptyDir {
                    e.reason = "not empty (or gone)".into();
                    self.journal(e)?;
                } else {
                    e.reason = "already gone".into();
                    self.journal(e)?;
                    let mut rep = self.report();
                    rep.already_done += 1;
                    if self.done_before.contains(path) {
                        // Done by an interrupted earlier run of this plan: it counts as freed.
                        rep.bytes_freed += bytes;
                    }
                }
                Ok(false)
            }
            Err(e) => {
                self.skip(path, format!("failed: {e}"))?;
                Ok(false)
            }
        }
    }
}

pub(crate) fn count(rep: &mut ApplyReport, kind: Kind) -> &mut u64 {
    match kind {
        Kind::Tag => &mut rep.tags,
        Kind::Manifest => &mut rep.manifests,
        Kind::TagIndex => &mut rep.tag_index_entries,
        Kind::LayerLink => &mut rep.layer_links,
        Kind::Blob => &mut rep.blobs,
        Kind::Upload => &mut rep.uploads,
        Kind::EmptyDir => &mut rep.empty_dirs,
        Kind::Section => &mut rep.repository_sections,
    }
}

/// A test hook: `STOWAGE_TEST_KILL_AFTER=N` kills the process (SIGABRT, no cleanup) after the
/// N-th completed action, so tests can interrupt an apply at exact points and resume it.
pub(crate) fn test_kill_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DONE: AtomicU64 = AtomicU64::new(0);
    if let Some(n) = std::env::var("STOWAGE_TEST_KILL_AFTER")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        && DONE.fetch_add(1, Ordering::SeqCst) + 1 >= n
    {
        std::process::abort();
    }
}

/// A test hook: `STOWAGE_TEST_ACTION_DELAY_MS=N` sleeps before every removal, after its
/// re-check, as a slow or very large store does anyway: the stress tests widen every race
/// window between a check and the act it allows with it.
pub(crate) fn test_delay_hook() {
    if let Some(ms) = std::env::var("STOWAGE_TEST_ACTION_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        && ms > 0
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
