//! Quarantine: an apply with `--quarantine DIR` moves every target into `DIR/batch-<plan>/`,
//! keeping the storage layout below it, with the batch's journal beside it. `restore` replays
//! the journal backwards: it recreates the directories the apply removed and moves every file
//! and directory back, byte-identical (a rename). `purge` deletes batches older than an age.

use std::path::{Path, PathBuf};

use serde::Serialize;
use stowage_model::time::Timestamp;
use stowage_storage::StorageWrite;

use crate::journal;

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    pub batches: Vec<String>,
    pub restored: u64,
    pub directories: u64,
    /// Paths that could not be put back, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Batch directories under a quarantine directory (or the batch itself), sorted.
pub fn batches(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if dir.join("journal.ndjson").exists() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() && e.path().join("journal.ndjson").exists() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Put back everything quarantined under `dir` (one batch or all of them).
pub fn restore<S: StorageWrite>(storage: &S, dir: &Path) -> std::io::Result<RestoreReport> {
    let mut rep = RestoreReport::default();
    for batch in batches(dir)? {
        let entries = journal::read(&batch.join("journal.ndjson"))?;
        let mut failed_here = 0;
        // Directories the apply removed (they were empty): recreate first.
        for e in entries
            .iter()
            .filter(|e| e.status == "done" && e.op == "rmdir")
        {
            match storage.create_dir_all(&e.path) {
                Ok(()) => rep.directories += 1,
                Err(err) => {
                    failed_here += 1;
                    rep.failed.push((e.path.clone(), err.to_string()));
                }
            }
        }
        // Moves, newest first.
        for e in entries
            .iter()
            .rev()
            .filter(|e| e.status == "done" && e.op == "move")
        {
            match storage.move_back(&batch, &e.path) {
                Ok(true) => rep.restored += 1,
                Ok(false) => {}
                Err(err) => {
                    failed_here += 1;
                    rep.failed.push((e.path.clone(), err.to_string()));
                }
            }
        }
        rep.batches.push(batch.display().to_string());
        if failed_here == 0 {
            // Everything is back: the batch holds only empty directories and its journal.
            std::fs::remove_dir_all(&batch)?;
        }
    }
    Ok(rep)
}

/// Delete quarantine batches created more than `older_than` seconds before `now`. Returns the
/// removed batch directories.
pub fn purge(dir: &Path, older_than: i64, now: Timestamp) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for batch in batches(dir)? {
        let created = std::fs::read_to_string(batch.join("batch.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["created_at"].as_str().and_then(Timestamp::parse_rfc3339));
        let created = match created {
            Some(c) => c,
            None => Timestamp::from_system_time(std::fs::metadata(&batch)?.modified()?),
        };
        if created.seconds_until(now) >= older_than {
            std::fs::remove_dir_all(&batch)?;
            removed.push(batch);
        }
    }
    Ok(removed)
}
