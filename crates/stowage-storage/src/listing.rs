//! A storage whose listings come from a provider's inventory report and whose reads go to
//! the live storage ([`ListedStorage`]).
//!
//! At a hundred million objects a full LIST is 100,000 requests; the providers list buckets
//! daily for free (S3 Inventory, GCS Storage Insights, Azure Blob Inventory; parsed by
//! [`crate::provider`]). [`Listing`] holds those keys sorted in a temporary file
//! ([`crate::spill`]: an external sort; only a block index stays in memory) and answers
//! `list_dir`, `stat` and `list_tree` by binary search: the scanner runs unchanged over it,
//! taking its usual snapshots, and issues no LIST request at all. Reads (tag `current` links, manifests, odd-sized links) go to the live
//! storage and are counted there, so `--verbose` shows what was really requested.
//!
//! Staleness is explicit: the listing is as of the report's date ([`Listing::date`]), which
//! the CLI makes the scan's date. An object deleted since is still listed (a read of it
//! fails and is a finding; a plan naming it finds it gone at apply's live re-check), one
//! added since is not (a manifest naming it sees it missing; nothing unlisted is planned).

use std::io::Read;

use stowage_model::Timestamp;

use crate::spill::{Builder, EntryRef as Row, Sorted};
use crate::{
    BackendKind, Entry, EntryKind, ErrorKind, Meta, OpCounters, Storage, StorageError, TreeEntry,
};

/// The keys, sizes and dates of a report (see the module doc): pushed, then finished.
#[derive(Debug)]
pub struct Listing {
    builder: Option<Builder>,
    sorted: Option<Sorted>,
    /// The report's date: what the listing says is as of then.
    pub date: Timestamp,
    /// For humans: where the listing came from.
    pub source: String,
}

impl Listing {
    /// An empty listing as of `date` (its file goes to a new temporary directory).
    pub fn new(date: Timestamp, source: impl Into<String>) -> std::io::Result<Listing> {
        Ok(Listing {
            builder: Some(Builder::new()?),
            sorted: None,
            date,
            source: source.into(),
        })
    }

    /// Add a key (relative to the layout root). Only tag `current` links keep their ETag
    /// (the scan cache reuses an unchanged tag link; no other key's ETag is asked for).
    pub fn push(
        &mut self,
        key: &str,
        size: u64,
        modified: Timestamp,
        etag: Option<&str>,
    ) -> std::io::Result<()> {
        let etag = etag.filter(|_| key.ends_with("/current/link"));
        match &mut self.builder {
            Some(b) => b.push(key, size, modified.0, etag),
            None => Err(std::io::Error::other("listing already finished")),
        }
    }

    /// Sort (a key listed twice keeps its last row). Called once, after the last push.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(b) = self.builder.take() {
            self.sorted = Some(b.finish()?);
        }
        Ok(())
    }

    /// Number of keys (once finished).
    pub fn len(&self) -> usize {
        self.sorted.as_ref().map_or(0, Sorted::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on disk of the finished listing's sorted file, and the most its temporary
    /// directory held while sorting (`$TMPDIR`: what a report of many objects needs free).
    pub fn disk_bytes(&self) -> (u64, u64) {
        self.sorted.as_ref().map_or((0, 0), Sorted::disk_bytes)
    }

    /// Bytes of memory the finished listing keeps (its block index).
    pub fn index_bytes(&self) -> usize {
        self.sorted.as_ref().map_or(0, Sorted::index_bytes)
    }

    fn cursor(
        &self,
        k: &str,
        path: &str,
    ) -> Result<Option<crate::spill::Cursor<'_>>, StorageError> {
        match &self.sorted {
            Some(s) => s.seek(k).map(Some).map_err(|e| {
                StorageError::io(format!("{path} (in the listing of {})", self.source), e)
            }),
            None => Ok(None),
        }
    }
}

fn meta(r: &Row<'_>) -> Meta {
    Meta {
        size: r.size,
        modified: Timestamp(r.modified),
        created: None,
        etag: r.etag.map(str::to_owned),
    }
}

fn prefix_of(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

/// Listings from a [`Listing`], everything else from the live storage.
pub struct ListedStorage {
    listing: Listing,
    live: std::sync::Arc<dyn Storage>,
}

impl std::fmt::Debug for ListedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListedStorage")
            .field("source", &self.listing.source)
            .field("keys", &self.listing.len())
            .finish()
    }
}

impl ListedStorage {
    /// `listing` must be [`Listing::finish`]ed.
    pub fn new(listing: Listing, live: std::sync::Arc<dyn Storage>) -> ListedStorage {
        ListedStorage { listing, live }
    }

    pub fn listing(&self) -> &Listing {
        &self.listing
    }

    /// `--from-inventory`: `live`, listed from the provider's report whose manifest is at
    /// `report` (a path or a URL `fetch` reads), keeping the rows of `live`'s own bucket and
    /// prefix ([`crate::provider::Scope::of_storage`]). The report's description and date
    /// are in [`Listing::source`] and [`Listing::date`].
    pub fn from_report(
        live: std::sync::Arc<dyn Storage>,
        report: &str,
        fetch: &crate::provider::Fetch<'_>,
    ) -> Result<ListedStorage, crate::provider::ProviderError> {
        let scope = crate::provider::Scope::of_storage(&live.describe());
        let listing = crate::provider::load(report, &scope, fetch)?;
        Ok(ListedStorage::new(listing, live))
    }
}

impl Storage for ListedStorage {
    fn describe(&self) -> String {
        // The storage is the live one (plans name it; the cache keys on it).
        self.live.describe()
    }

    fn backend(&self) -> BackendKind {
        self.live.backend()
    }

    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        let prefix = prefix_of(path);
        let io = |e| StorageError::io(path.to_owned(), e);
        let Some(mut c) = self.listing.cursor(&prefix, path)? else {
            return Err(StorageError::new(ErrorKind::NotFound, path));
        };
        let mut any = false;
        while let Some(e) = c.peek() {
            let Some(rest) = e.key.strip_prefix(prefix.as_str()) else {
                break;
            };
            any = true;
            match rest.split_once('/') {
                Some((name, _)) => {
                    let name = name.to_owned();
                    visit(Entry {
                        name: name.as_bytes(),
                        kind: EntryKind::Dir,
                        meta: None,
                    });
                    // Skip the whole subdirectory: '0' is the byte after '/'.
                    c.skip_to(&format!("{prefix}{name}0")).map_err(io)?;
                }
                None => {
                    let (name, m) = (rest.to_owned(), meta(&e));
                    c.advance().map_err(io)?;
                    // A key that is also a prefix (`a` and `a/b`) is a directory, as on
                    // the object store's own listing: reported once, as the directory.
                    let dir_follows = c.peek().is_some_and(|n| {
                        n.key
                            .strip_prefix(prefix.as_str())
                            .and_then(|r| r.strip_prefix(name.as_str()))
                            .is_some_and(|t| t.starts_with('/'))
                    });
                    if !dir_follows && !name.is_empty() {
                        visit(Entry {
                            name: name.as_bytes(),
                            kind: EntryKind::File,
                            meta: Some(m),
                        });
                    }
                }
            }
        }
        if any {
            Ok(())
        } else {
            Err(StorageError::new(ErrorKind::NotFound, path))
        }
    }

    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        match self.listing.cursor(path, path)? {
            Some(c) => match c.peek() {
                Some(e) if e.key == path => Ok(meta(&e)),
                _ => Err(StorageError::new(ErrorKind::NotFound, path)),
            },
            None => Err(StorageError::new(ErrorKind::NotFound, path)),
        }
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.live.read(path, limit)
    }

    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.live.read_with_meta(path, limit)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        self.live.open(path)
    }

    fn counters(&self) -> &OpCounters {
        self.live.counters()
    }
    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, crate::StorageError>> {
        self.live.read_at_driver_root(name, limit)
    }

    fn prefers_tree_listing(&self) -> bool {
        true
    }

    fn list_tree(
        &self,
        path: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        if self.range(path, None, None, visit)? {
            Ok(())
        } else {
            Err(StorageError::new(ErrorKind::NotFound, path))
        }
    }

    fn list_tree_range(
        &self,
        path: &str,
        after: Option<&str>,
        before: Option<&str>,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        self.range(path, after, before, visit)?;
        Ok(())
    }
}

impl ListedStorage {
    /// Visit the keys below `path` in the range; whether any key lies below `path`.
    fn range(
        &self,
        path: &str,
        after: Option<&str>,
        before: Option<&str>,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<bool, StorageError> {
        let prefix = prefix_of(path);
        let io = |e| StorageError::io(path.to_owned(), e);
        let any = match self.listing.cursor(&prefix, path)? {
            Some(c) => c.peek().is_some_and(|e| e.key.starts_with(prefix.as_str())),
            None => false,
        };
        let start = match after {
            Some(a) => format!("{prefix}{a}"),
            None => prefix.clone(),
        };
        let Some(mut c) = self.listing.cursor(&start, path)? else {
            return Ok(false);
        };
        while let Some(e) = c.peek() {
            let Some(rel) = e.key.strip_prefix(prefix.as_str()) else {
                break;
            };
            if before.is_some_and(|b| rel >= b) {
                break;
            }
            if !rel.is_empty() && after.is_none_or(|a| rel > a) {
                visit(TreeEntry {
                    path: rel,
                    kind: EntryKind::File,
                    meta: Some(meta(&e)),
                });
            }
            c.advance().map_err(io)?;
        }
        Ok(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live storage the tests never read through.
    fn live() -> std::sync::Arc<dyn Storage> {
        std::sync::Arc::new(crate::FsStorage::open(&std::env::temp_dir()).unwrap())
    }

    fn storage(keys: &[&str]) -> ListedStorage {
        let mut l = Listing::new(Timestamp(0), "test").unwrap();
        for (n, k) in keys.iter().enumerate() {
            l.push(k, n as u64, Timestamp(n as i64), Some("e")).unwrap();
        }
        l.finish().unwrap();
        ListedStorage::new(l, live())
    }

    fn names(s: &ListedStorage, p: &str) -> Vec<(String, EntryKind)> {
        let mut v = Vec::new();
        s.list_dir(p, &mut |e| {
            v.push((String::from_utf8_lossy(e.name).into_owned(), e.kind))
        })
        .unwrap();
        v
    }

    #[test]
    fn directories_are_what_the_keys_imply() {
        let s = storage(&[
            "repositories/b/_layers/x/link",
            "blobs/sha256/ab/abcd/data",
            "repositories/a/_manifests/tags/t/current/link",
            "repositories/a/_layers/y/link",
            "repositories/a-b/_layers/z/link",
            "top",
        ]);
        assert_eq!(
            names(&s, ""),
            vec![
                ("blobs".into(), EntryKind::Dir),
                ("repositories".into(), EntryKind::Dir),
                ("top".into(), EntryKind::File)
            ]
        );
        let mut r: Vec<String> = names(&s, "repositories").into_iter().map(|e| e.0).collect();
        r.sort();
        assert_eq!(r, ["a", "a-b", "b"]);
        assert!(
            s.list_dir("nothing", &mut |_| {})
                .unwrap_err()
                .is_not_found()
        );
        assert_eq!(s.stat("top").unwrap().size, 5);
        assert!(s.stat("repositories").unwrap_err().is_not_found());
        // Only tag links keep their ETag.
        assert_eq!(
            s.stat("repositories/a/_manifests/tags/t/current/link")
                .unwrap()
                .etag
                .as_deref(),
            Some("e")
        );
        assert_eq!(s.stat("repositories/a/_layers/y/link").unwrap().etag, None);
        let mut tree = Vec::new();
        s.list_tree("repositories/a", &mut |e| tree.push(e.path.to_owned()))
            .unwrap();
        assert_eq!(tree, ["_layers/y/link", "_manifests/tags/t/current/link"]);
        let mut part = Vec::new();
        // Byte order: `a-b/` sorts before `a/`.
        s.list_tree_range("repositories", Some("a-b0"), Some("b"), &mut |e| {
            part.push(e.path.to_owned())
        })
        .unwrap();
        assert_eq!(
            part,
            ["a/_layers/y/link", "a/_manifests/tags/t/current/link"]
        );
    }

    #[test]
    fn a_key_listed_twice_keeps_its_last_row() {
        let mut l = Listing::new(Timestamp(0), "t").unwrap();
        l.push("k", 1, Timestamp(1), None).unwrap();
        l.push("j", 2, Timestamp(2), None).unwrap();
        l.push("k", 3, Timestamp(3), None).unwrap();
        l.finish().unwrap();
        assert_eq!(l.len(), 2);
        let s = ListedStorage::new(l, live());
        assert_eq!(s.stat("k").unwrap().size, 3);
    }
}
