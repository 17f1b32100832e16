//! `stowage migrate`: copy a registry's storage to another backend (filesystem, S3, GCS,
//! Azure) without pulling and pushing images, in an order the registry can serve from at
//! every moment, verified, resumable and incremental.
//!
//! Why: moving a registry between backends is "pull and push everything" through the API
//! (slow, and it rewrites what it cannot keep) or a raw copy nobody checks. The storage is
//! content-addressed, so a copy can check every blob against its own name, and the layout
//! says which files point at which: copying blobs before the links that name them means
//! the target never has a link to a blob it does not hold, even when it is interrupted.
//!
//! [`migrate`] runs one migration:
//! 1. **list** both sides (object stores: flat paginated listings; filesystems: a parallel
//!    walk), and read the journal of earlier runs;
//! 2. **blobs**: each `blobs/sha256/<hh>/<hex>/data` the target does not hold with the same
//!    size streams from the source into the target while its SHA-256 is computed; the write
//!    becomes visible only if the digest matches ([`stowage_storage::StoragePut`] is all or
//!    nothing), so a corrupt source blob is reported and not copied;
//!    A blob the target holds with the right size that no run of this journal wrote is
//!    hashed there first and copied again unless it matches (`trust_size` skips that).
//! 3. **links**, in four waves: `_layers` links (and any other file below `repositories/`),
//!    revision links, tag history (`tags/<t>/index`), then tag `current` links, so a tag
//!    appears last, once everything it needs is there. A link naming a blob the target
//!    does not hold (dangling in the source, left out by `--reachable-only`, or whose copy
//!    failed) is not copied, and is reported; a repository where a link or a blob it names
//!    failed gets none of its later waves (held back and reported), so no manifest or tag
//!    of it is served whose config, layers or children the target lacks.
//!
//! Each file written is journaled after its write completed ([`journal`]): a run killed at
//! any point resumes where it stopped, and after a finished run `incremental` copies only
//! what changed in the source since (a cut-over with a short freeze). Nothing is ever
//! deleted, in the source or the target: files only the target has are reported.
//! `_uploads` (pushes in progress) are left out: an upload cannot be resumed from another
//! backend's state files, and the registry purges them anyway.
//!
//! Read-only by default: without [`Options::execute`] it lists and compares, and reports
//! what it would copy.
//!
//! Dates: a filesystem target keeps each file's modification time; an object store sets
//! `LastModified` to the time of the write, so on an object-store target every blob and
//! link looks new (grace periods and age-based retention count from the migration).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod copy;
pub mod journal;
pub mod open;
mod run;
mod walk;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde::Serialize;
use stowage_storage::{EntryKind, StorageError};

pub use run::migrate;

/// The report's JSON schema name.
pub const SCHEMA: &str = "stowage.migrate/v1";

/// How to migrate. The default is the safe choice: a dry run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Copies in flight (64 on object stores, where each is a round trip).
    pub concurrency: usize,
    /// Write to the target; otherwise only report what would be copied.
    pub execute: bool,
    /// Go on from a journal whose migration finished: copy what changed since.
    pub incremental: bool,
    /// Leave out blobs no manifest reaches (what `gc` would delete), and the links to them.
    pub reachable_only: bool,
    /// After copying, read every blob back from the target and check its digest.
    pub verify: bool,
    /// Take a blob the target holds with the source's size as the same blob without
    /// hashing it. Off by default: such a blob that no run of this journal wrote is read
    /// back and hashed, and copied again if its bytes differ (a truncated or corrupt copy of
    /// the right length would otherwise be served). Blobs this journal wrote were checked
    /// on the way and are never hashed again.
    pub trust_size: bool,
    /// The journal file.
    pub journal: PathBuf,
    /// The time a finished run is journaled with.
    pub now: stowage_model::Timestamp,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: 8,
            execute: false,
            incremental: false,
            reachable_only: false,
            verify: false,
            trust_size: false,
            journal: PathBuf::from("stowage-migrate.journal"),
            now: stowage_model::Timestamp::EPOCH,
        }
    }
}

/// Objects and their bytes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub objects: u64,
    pub bytes: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }
}

/// A file not copied, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Skip {
    pub path: String,
    pub why: String,
}

impl Skip {
    pub(crate) fn kind(path: String, kind: EntryKind) -> Skip {
        let why = match kind {
            EntryKind::Symlink => "a symbolic link: never followed, not copied",
            EntryKind::Dir => "a directory where a file was expected",
            _ => "not a regular file (FIFO, socket or device): not copied",
        };
        Skip {
            path,
            why: why.into(),
        }
    }
}

/// The blob check of `--verify`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verified {
    pub blobs: Counts,
    /// Blobs whose bytes in the target do not match their digest, or could not be read.
    pub bad: Vec<Skip>,
}

/// What a migration did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub source: String,
    pub target: String,
    pub dry_run: bool,
    pub journal: String,
    /// An unfinished run's journal was continued.
    pub resumed: bool,
    /// A finished run's journal was continued (`--incremental`).
    pub incremental: bool,
    /// Written to the target by this run (would be, in a dry run): blobs, then links.
    pub blobs_copied: Counts,
    pub links_copied: Counts,
    /// Blobs the target already held with the same digest and size (hashed in the target
    /// unless this journal wrote them or `trust_size`).
    pub blobs_present: Counts,
    /// Links unchanged in the source since the journal recorded their copy.
    pub links_unchanged: Counts,
    /// Blobs no manifest reaches, left out by `--reachable-only`.
    pub unreferenced_left_out: Counts,
    /// Files of uploads in progress (`_uploads`), never copied.
    pub uploads_left_out: Counts,
    /// Links not copied because they name a blob the target does not hold.
    pub dangling_links: Vec<Skip>,
    /// Links not written (yet) because an earlier wave of their repository failed: a
    /// revision whose layer link is missing, a tag whose revision is (a re-run writes them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<Skip>,
    /// What the listing found and cannot copy (symbolic links, special files, non-UTF-8).
    pub skipped: Vec<Skip>,
    /// Copies that failed (the run is then not journaled as finished).
    pub failed: Vec<Skip>,
    /// Files the target holds and the source does not (never deleted: reported).
    pub only_in_target: Counts,
    pub only_in_target_sample: Vec<String>,
    pub verified: Option<Verified>,
    pub seconds: f64,
    /// Copied objects and bytes per second of the whole run (listing included).
    pub objects_per_second: f64,
    pub bytes_per_second: f64,
}

impl Report {
    /// Everything written (blobs and links).
    pub fn copied(&self) -> Counts {
        Counts {
            objects: self.blobs_copied.objects + self.links_copied.objects,
            bytes: self.blobs_copied.bytes + self.links_copied.bytes,
        }
    }

    /// The target is a faithful copy of what was selected: nothing failed, nothing checked
    /// bad.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
            && self.held_back.is_empty()
            && self.verified.as_ref().is_none_or(|v| v.bad.is_empty())
    }
}

/// The steps of a migration, for progress displays.
pub const PHASES: [&str; 6] = [
    "listing",
    "scanning (reachable only)",
    "copying blobs",
    "copying links",
    "verifying",
    "done",
];

/// Live counters for a progress display (read from another thread).
#[derive(Debug, Default)]
pub struct Progress {
    /// Index into [`PHASES`].
    pub phase: AtomicU8,
    pub objects_done: AtomicU64,
    pub bytes_done: AtomicU64,
    pub objects_total: AtomicU64,
    pub bytes_total: AtomicU64,
}

impl Progress {
    pub fn phase_name(&self) -> &'static str {
        PHASES[(self.phase.load(Ordering::Relaxed) as usize).min(PHASES.len() - 1)]
    }
    pub(crate) fn start(&self, phase: usize, objects: u64, bytes: u64) {
        self.phase.store(phase as u8, Ordering::Relaxed);
        self.objects_done.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        self.objects_total.store(objects, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }
    pub(crate) fn tick(&self, bytes: u64) {
        self.objects_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Why a migration could not run (failures of single copies are in [`Report::failed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("listing {what}")]
    List {
        what: String,
        #[source]
        source: StorageError,
    },
    #[error("{}: the journal cannot be read or written", path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    JournalFormat { path: PathBuf, why: String },
    #[error(
        "{} says this migration finished at {at}: pass --incremental to copy what changed since, or another --journal to start over",
        journal.display()
    )]
    AlreadyDone { journal: PathBuf, at: String },
    #[error("the source and the target are the same storage ({0})")]
    SameStorage(String),
    #[error("scanning the source for --reachable-only")]
    Scan(#[source] stowage_scan::ScanError),
    #[error(
        "--reachable-only needs a complete scan of the source, and {0}: copy everything (drop --reachable-only) or fix what the scan could not read"
    )]
    Incomplete(String),
    #[error("cannot start the copy threads: {0}")]
    Pool(String),
}
