//! Listing every file of a storage's `blobs/` and `repositories/` with its size and date.
//!
//! Object stores list each subtree flat (1,000 keys with size, date and ETag per request);
//! a filesystem is walked directory by directory on the migration's thread pool (a listing
//! and a `stat` per file are each a round trip on NFS). What cannot be copied faithfully is
//! reported, never followed: symbolic links, special files, names that are not UTF-8.

use std::sync::Mutex;

use stowage_model::Timestamp;
use stowage_storage::{EntryKind, Storage, StorageError, join};

use crate::Skip;

/// One file of a listing.
#[derive(Clone, Debug)]
pub(crate) struct File {
    /// Relative to the layout root (`blobs/sha256/ab/<hex>/data`).
    pub key: String,
    pub size: u64,
    pub modified: Timestamp,
    pub etag: Option<String>,
}

/// Every file below `blobs/` and `repositories/`, sorted by key, and what was left out.
pub(crate) struct Listing {
    pub files: Vec<File>,
    pub skipped: Vec<Skip>,
}

/// List `storage`. A missing `blobs/` or `repositories/` is empty (an empty target).
pub(crate) fn list(
    storage: &dyn Storage,
    pool: &rayon::ThreadPool,
) -> Result<Listing, StorageError> {
    let files = Mutex::new(Vec::new());
    let skipped = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    for top in ["blobs", "repositories"] {
        if storage.prefers_tree_listing() {
            let r = storage.list_tree(top, &mut |e| {
                let key = join(top, e.path);
                match (e.kind, e.meta) {
                    (EntryKind::File, Some(m)) => lock(&files).push(File {
                        key,
                        size: m.size,
                        modified: m.modified,
                        etag: m.etag,
                    }),
                    (kind, _) => lock(&skipped).push(Skip::kind(key, kind)),
                }
            });
            match r {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        } else {
            pool.scope(|s| walk(s, storage, top.to_owned(), &files, &skipped, &errors));
        }
    }
    if let Some(e) = errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .next()
    {
        return Err(e);
    }
    let mut files = files.into_inner().unwrap_or_else(|p| p.into_inner());
    files.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let mut skipped = skipped.into_inner().unwrap_or_else(|p| p.into_inner());
    skipped.sort();
    Ok(Listing { files, skipped })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn walk<'s>(
    s: &rayon::Scope<'s>,
    storage: &'s dyn Storage,
    dir: String,
    files: &'s Mutex<Vec<File>>,
    skipped: &'s Mutex<Vec<Skip>>,
    errors: &'s Mutex<Vec<StorageError>>,
) {
    let mut here = Vec::new();
    let r = storage.list_dir(&dir, &mut |e| {
        match std::str::from_utf8(e.name) {
            Ok(n) => here.push((join(&dir, n), e.kind, e.meta)),
            Err(_) => lock(skipped).push(Skip {
                path: join(&dir, &String::from_utf8_lossy(e.name)),
                why: "the name is not UTF-8 (no object store can hold it)".into(),
            }),
        };
    });
    match r {
        Ok(()) => {}
        // The top directories of an empty target, or a directory removed meanwhile.
        Err(e) if e.is_not_found() => return,
        Err(e) => {
            lock(errors).push(e);
            return;
        }
    }
    for (key, kind, meta) in here {
        match kind {
            EntryKind::Dir => s.spawn(move |s| walk(s, storage, key, files, skipped, errors)),
            EntryKind::File => s.spawn(move |_| {
                let m = match meta {
                    Some(m) => Ok(m),
                    None => storage.stat(&key),
                };
                match m {
                    Ok(m) => lock(files).push(File {
                        key,
                        size: m.size,
                        modified: m.modified,
                        etag: m.etag,
                    }),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => lock(errors).push(e),
                }
            }),
            other => lock(skipped).push(Skip::kind(key, other)),
        }
    }
}
