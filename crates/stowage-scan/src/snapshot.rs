//! A subtree listed in one go ([`Storage::list_tree`]) that answers the scanner's listings and
//! stats below it without further requests.
//!
//! On an object store a walk costs a request per directory and per file, while one flat
//! listing returns 1,000 keys with their size and date per request. The scanner takes a
//! snapshot of each blob shard and each repository section (`_layers`, `_manifests`,
//! `_uploads`) when the backend prefers it ([`Storage::prefers_tree_listing`]) and then runs
//! the very same code over the snapshot as over the live storage, so both strategies find
//! the same things. Directories are what the keys imply (an object store has no others).

use std::collections::{BTreeMap, HashMap};

use stowage_storage::{EntryKind, ErrorKind, Meta, Storage, StorageError};

/// One listed subtree: directory path -> its entries.
pub(crate) struct Snapshot {
    root: String,
    dirs: HashMap<String, BTreeMap<String, (EntryKind, Option<Meta>)>>,
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
        let mut dirs: HashMap<String, BTreeMap<String, (EntryKind, Option<Meta>)>> = HashMap::new();
        storage.list_tree_range(root, after, before, &mut |e| {
            let mut dir = root.to_owned();
            let mut parts = e.path.split('/').peekable();
            while let Some(name) = parts.next() {
                let entries = dirs.entry(dir.clone()).or_default();
                if parts.peek().is_none() {
                    entries.insert(name.to_owned(), (e.kind, e.meta.clone()));
                } else {
                    // A key that is also a prefix (`a` and `a/b`) is a directory to us, as
                    // it would be to the registry's walk.
                    entries.insert(name.to_owned(), (EntryKind::Dir, None));
                    dir = stowage_storage::join(&dir, name);
                }
            }
        })?;
        Ok(Snapshot {
            root: root.to_owned(),
            dirs,
        })
    }

    /// Whether `path` lies at or below this snapshot's root.
    pub(crate) fn covers(&self, path: &str) -> bool {
        path == self.root
            || (path.starts_with(&self.root) && path.as_bytes().get(self.root.len()) == Some(&b'/'))
    }

    pub(crate) fn list(
        &self,
        path: &str,
    ) -> Result<impl Iterator<Item = (&str, EntryKind)>, StorageError> {
        self.dirs
            .get(path)
            .map(|d| d.iter().map(|(n, (k, _))| (n.as_str(), *k)))
            .ok_or_else(|| StorageError::new(ErrorKind::NotFound, path))
    }

    pub(crate) fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        match self.dirs.get(dir).and_then(|d| d.get(name)) {
            Some((EntryKind::File, Some(m))) => Ok(m.clone()),
            _ => Err(StorageError::new(ErrorKind::NotFound, path)),
        }
    }
}
