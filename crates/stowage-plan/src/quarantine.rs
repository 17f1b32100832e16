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
    /// Links a surgery's apply created (a repo-move's destination) that restore leaves in
    /// place: restore only puts back what was moved. After restoring a move, its source is
    /// whole again and these are what to remove to undo the destination (all of them were
    /// absent before the apply: links that were there already are not listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub created_left: Vec<String>,
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
        // Moves, newest first. An `intent` without `done` may have happened (the process
        // died in between): put back whatever is there.
        let mut seen = std::collections::HashSet::new();
        for e in entries
            .iter()
            .rev()
            .filter(|e| (e.status == "done" || e.status == "intent") && e.op == "move")
        {
            if !seen.insert(e.path.as_str()) {
                continue;
            }
            match storage.move_back(&batch, &e.path) {
                Ok(true) => rep.restored += 1,
                Ok(false) => {}
                Err(err) => {
                    failed_here += 1;
                    rep.failed.push((e.path.clone(), err.to_string()));
                }
            }
        }
        rep.created_left.extend(created_by(&entries));
        rep.batches.push(batch.display().to_string());
        // Remove the batch only when nothing but directories and its own files is left in it:
        // never delete quarantined data restore did not put back.
        if failed_here == 0 && !holds_data(&batch)? {
            std::fs::remove_dir_all(&batch)?;
        }
    }
    Ok(rep)
}

/// The links an apply created, from its journal: `done` without a reason (created then),
/// an `intent` with no outcome (the process died: it may have been created), and a link a
/// resumed run found "already there" after an earlier run's unfinished `intent`.
fn created_by(entries: &[journal::Entry]) -> Vec<String> {
    use std::collections::BTreeSet;
    let mut created = BTreeSet::new();
    let mut pending = BTreeSet::new();
    let mut unfinished = BTreeSet::new();
    for e in entries {
        match (e.status.as_str(), e.op.as_str()) {
            ("begin", _) => unfinished.append(&mut pending),
            ("intent", "create") => {
                pending.insert(e.path.clone());
            }
            ("done", "create") => {
                pending.remove(&e.path);
                if e.reason.is_empty() || unfinished.contains(&e.path) {
                    created.insert(e.path.clone());
                }
            }
            ("skipped", "create") => {
                pending.remove(&e.path);
            }
            _ => {}
        }
    }
    created.append(&mut pending);
    created.into_iter().collect()
}

/// Whether a batch still holds any file besides its journal and batch record.
pub(crate) fn holds_data(batch: &Path) -> std::io::Result<bool> {
    let mut stack = vec![batch.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if d != batch
                || !matches!(
                    e.file_name().to_str(),
                    Some("journal.ndjson" | "batch.json")
                )
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Delete quarantine batches created more than `older_than` seconds before `now`. Returns the
/// removed batch directories.
pub fn purge(dir: &Path, older_than: i64, now: Timestamp) -> std::io::Result<Vec<PathBuf>> {
    purge_in(None, dir, older_than, now)
}

/// [`purge`], also deleting the data a storage keeps outside the batch directory (an object
/// store's quarantine prefix). Without a storage, a batch whose record says its data lives
/// elsewhere is refused rather than orphaned.
pub fn purge_in(
    storage: Option<&dyn StorageWrite>,
    dir: &Path,
    older_than: i64,
    now: Timestamp,
) -> std::io::Result<Vec<PathBuf>> {
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
            let data = std::fs::read_to_string(batch.join("batch.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["data"].as_str().map(str::to_owned));
            match (storage, data) {
                (Some(s), _) => s
                    .purge_quarantine(&batch)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
                (None, Some(d)) if d.contains("://") => {
                    return Err(std::io::Error::other(format!(
                        "{}: its data is in {d}; pass --storage (or --registry-config) so it is purged too",
                        batch.display()
                    )));
                }
                _ => {}
            }
            std::fs::remove_dir_all(&batch)?;
            removed.push(batch);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_storage::FsStorage;

    #[test]
    fn restore_puts_back_a_move_whose_done_line_was_lost() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("v2");
        std::fs::create_dir_all(root.join("blobs/sha256/ab/abcd")).unwrap();
        std::fs::write(root.join("blobs/sha256/ab/abcd/data"), b"bytes").unwrap();
        let s = FsStorage::open(&root).unwrap();
        let batch = t.path().join("q/batch-1");
        std::fs::create_dir_all(&batch).unwrap();
        // The apply wrote its intent and renamed, then died before writing `done`.
        let mut j = journal::Journal::open(&batch.join("journal.ndjson")).unwrap();
        j.write(journal::entry("intent", "move", "blobs/sha256/ab/abcd"))
            .unwrap();
        assert!(s.move_to("blobs/sha256/ab/abcd", &batch).unwrap());
        let rep = restore(&s, &t.path().join("q")).unwrap();
        assert_eq!(rep.restored, 1);
        assert_eq!(
            std::fs::read(root.join("blobs/sha256/ab/abcd/data")).unwrap(),
            b"bytes"
        );
        assert!(!batch.exists());
    }

    #[test]
    fn a_batch_still_holding_data_is_not_removed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("v2");
        std::fs::create_dir_all(&root).unwrap();
        let s = FsStorage::open(&root).unwrap();
        let batch = t.path().join("q/batch-2");
        std::fs::create_dir_all(batch.join("blobs/sha256/cd/cdef")).unwrap();
        std::fs::write(batch.join("blobs/sha256/cd/cdef/data"), b"x").unwrap();
        journal::Journal::open(&batch.join("journal.ndjson")).unwrap();
        restore(&s, &t.path().join("q")).unwrap();
        assert!(
            batch.join("blobs/sha256/cd/cdef/data").exists(),
            "unjournalled data must survive a restore"
        );
    }
}
