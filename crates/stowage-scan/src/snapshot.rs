//! A subtree listed in one go ([`Storage::list_tree`]) that answers the scanner's listings and
//! stats below it without further requests.
//!
//! On an object store a walk costs a request per directory and per file, while one flat
//! listing returns 1,000 keys with their size and date per request. The scanner takes a
//! snapshot of each blob shard and each repository section (`_layers`, `_manifests`,
//! `_uploads`) when the backend prefers it ([`Storage::prefers_tree_listing`]) and then runs
//! the very same code over the snapshot as over the live storage, so both strategies find
//! the same things. Directories are what the keys imply (an object store has no others).

//!
//! Memory: one sorted row per key (its path in one shared string, its size, date and ETag),
//! about 100 bytes per blob: not a map per directory. A tree of `BTreeMap`s per directory
//! cost a map node (eleven slots, over a kilobyte) per blob directory holding its one `data`
//! file, which made the snapshots of a large blob store most of a scan's peak memory
//! (issue 22: bytes per blob).

use stowage_model::Timestamp;
use stowage_storage::{EntryKind, ErrorKind, Meta, Storage, StorageError};

/// One key of the listing: its path (relative to the snapshot's root) in [`Snapshot::paths`].
struct Row {
    at: u32,
    len: u32,
    /// A file, or what a walk found instead (a symbolic link, ...), never followed.
    kind: EntryKind,
    size: u64,
    modified: Timestamp,
    created: Option<Timestamp>,
    etag: Option<Box<str>>,
}

/// One listed subtree: its keys, sorted by path; directories are what the keys imply.
pub(crate) struct Snapshot {
    root: String,
    paths: String,
    rows: Vec<Row>,
}

impl Snapshot {
    /// List everything below `root` (`NotFound` when nothing is there).
    pub(crate) fn take(storage: &dyn Storage, root: &str) -> Result<Snapshot, StorageError> {
        Self::take_range(storage, root, None, None)
    }

    /// List what lies below `root` between `after` and `before` (relative paths, see
    /// [`Storage::list_tree_range`]): the answers cover only that range.
    pub(crate) fn take_range(
        storage: &dyn Storage,
        root: &str,
        after: Option<&str>,
        before: Option<&str>,
    ) -> Result<Snapshot, StorageError> {
        let mut paths = String::new();
        let mut rows = Vec::new();
        storage.list_tree_range(root, after, before, &mut |e| {
            let at = paths.len() as u32;
            paths.push_str(e.path);
            let m = e.meta.as_ref();
            rows.push(Row {
                at,
                len: e.path.len() as u32,
                kind: e.kind,
                size: m.map_or(0, |m| m.size),
                modified: m.map_or(Timestamp::EPOCH, |m| m.modified),
                created: m.and_then(|m| m.created),
                etag: m.and_then(|m| m.etag.as_deref()).map(Box::from),
            });
        })?;
        let mut snap = Snapshot {
            root: root.to_owned(),
            paths,
            rows,
        };
        if !snap.sorted() {
            let Snapshot {
                paths, mut rows, ..
            } = snap;
            rows.sort_by(|a, b| {
                paths[a.at as usize..][..a.len as usize]
                    .cmp(&paths[b.at as usize..][..b.len as usize])
            });
            snap = Snapshot {
                root: root.to_owned(),
                paths,
                rows,
            };
        }
        Ok(snap)
    }

    fn sorted(&self) -> bool {
        self.rows
            .windows(2)
            .all(|w| self.path(&w[0]) <= self.path(&w[1]))
    }

    fn path(&self, r: &Row) -> &str {
        &self.paths[r.at as usize..][..r.len as usize]
    }

    /// Whether `path` lies at or below this snapshot's root.
    pub(crate) fn covers(&self, path: &str) -> bool {
        path == self.root
            || (path.starts_with(&self.root) && path.as_bytes().get(self.root.len()) == Some(&b'/'))
    }

    /// `path` relative to the root ("" for the root itself).
    fn relative<'p>(&self, path: &'p str) -> &'p str {
        path.get(self.root.len()..)
            .unwrap_or("")
            .trim_start_matches('/')
    }

    /// The rows at or below the relative directory `rel` ("" for the root): those whose
    /// path starts with `rel/`.
    fn below(&self, rel: &str) -> &[Row] {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let start = self
            .rows
            .partition_point(|r| self.path(r) < prefix.as_str());
        let n = self.rows[start..]
            .iter()
            .take_while(|r| self.path(r).starts_with(prefix.as_str()))
            .count();
        &self.rows[start..start + n]
    }

    pub(crate) fn list(
        &self,
        path: &str,
    ) -> Result<impl Iterator<Item = (&str, EntryKind)>, StorageError> {
        let rel = self.relative(path);
        let skip = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let rows = self.below(rel);
        if rows.is_empty() {
            return Err(StorageError::new(ErrorKind::NotFound, path));
        }
        // Each child once: a file, or a directory (a key that is also a prefix, `a` and
        // `a/b`, is a directory, as it would be to the registry's walk).
        let mut out: Vec<(&str, EntryKind)> = Vec::new();
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for r in rows {
            let rest = &self.path(r)[skip..];
            let (name, kind) = match rest.split_once('/') {
                Some((name, _)) => (name, EntryKind::Dir),
                None => (rest, r.kind),
            };
            match seen.get(name) {
                Some(&i) => {
                    if kind == EntryKind::Dir {
                        out[i].1 = EntryKind::Dir;
                    }
                }
                None => {
                    seen.insert(name, out.len());
                    out.push((name, kind));
                }
            }
        }
        Ok(out.into_iter())
    }

    pub(crate) fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        let rel = self.relative(path);
        let i = self.rows.partition_point(|r| self.path(r) < rel);
        match self.rows.get(i) {
            Some(r)
                if r.kind == EntryKind::File
                    && !rel.is_empty()
                    && self.path(r) == rel
                    && self.below(rel).is_empty() =>
            {
                Ok(Meta {
                    size: r.size,
                    modified: r.modified,
                    created: r.created,
                    etag: r.etag.as_deref().map(str::to_owned),
                })
            }
            _ => Err(StorageError::new(ErrorKind::NotFound, path)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use stowage_storage::listing::{ListedStorage, Listing};

    use super::*;

    fn listed(keys: &[&str]) -> ListedStorage {
        let mut l = Listing::new(Timestamp(0), "test").unwrap();
        for (i, k) in keys.iter().enumerate() {
            l.push(k, i as u64, Timestamp(i as i64 * 1_000_000_000), None)
                .unwrap();
        }
        l.finish().unwrap();
        let live = stowage_storage::FsStorage::open(&std::env::temp_dir()).unwrap();
        ListedStorage::new(l, Arc::new(live))
    }

    #[test]
    fn rows_answer_listings_and_stats_as_the_directory_tree_did() {
        // `a` is a key and a prefix (a directory, as to the registry's walk); `a-b` sorts
        // between `a` and `a/x` by path, though not by name.
        let st = listed(&["r/a", "r/a-b", "r/a/x", "r/d/e/f", "r/d/g", "other/z"]);
        let snap = Snapshot::take(&st, "r").unwrap();
        let mut top: Vec<_> = snap.list("r").unwrap().collect();
        top.sort_by_key(|e| e.0);
        assert_eq!(
            top,
            [
                ("a", EntryKind::Dir),
                ("a-b", EntryKind::File),
                ("d", EntryKind::Dir)
            ]
        );
        let mut d: Vec<_> = snap.list("r/d").unwrap().collect();
        d.sort_by_key(|e| e.0);
        assert_eq!(d, [("e", EntryKind::Dir), ("g", EntryKind::File)]);
        assert!(snap.list("r/zz").is_err_and(|e| e.is_not_found()));
        assert!(snap.list("r/a-b").is_err_and(|e| e.is_not_found()));
        assert_eq!(snap.stat("r/d/e/f").unwrap().size, 3);
        assert_eq!(
            snap.stat("r/a-b").unwrap().modified,
            Timestamp(1_000_000_000)
        );
        assert!(snap.stat("r/a").unwrap_err().is_not_found(), "a directory");
        assert!(snap.stat("r/d").unwrap_err().is_not_found());
        assert!(snap.stat("r").unwrap_err().is_not_found());
        assert!(snap.covers("r/a/x") && !snap.covers("other/z") && !snap.covers("rx"));
    }
}
