//! A storage whose listings come from a provider's inventory report and whose reads go to
//! the live storage ([`ListedStorage`]).
//!
//! At a hundred million objects a full LIST is 100,000 requests; the providers list buckets
//! daily for free (S3 Inventory, GCS Storage Insights, Azure Blob Inventory; parsed by
//! [`crate::provider`]). [`Listing`] holds those keys sorted, in one string arena (no
//! allocation per key), and answers `list_dir`, `stat` and `list_tree` by binary search:
//! the scanner runs unchanged over it, taking its usual snapshots, and issues no LIST
//! request at all. Reads (tag `current` links, manifests, odd-sized links) go to the live
//! storage and are counted there, so `--verbose` shows what was really requested.
//!
//! Staleness is explicit: the listing is as of the report's date ([`Listing::date`]), which
//! the CLI makes the scan's date. An object deleted since is still listed (a read of it
//! fails and is a finding; a plan naming it finds it gone at apply's live re-check), one
//! added since is not (a manifest naming it sees it missing; nothing unlisted is planned).

use std::io::Read;

use stowage_model::Timestamp;

use crate::{
    BackendKind, Entry, EntryKind, ErrorKind, Meta, OpCounters, Storage, StorageError, TreeEntry,
};

/// One listed object: 24 bytes plus its key's bytes in the arena.
#[derive(Copy, Clone, Debug)]
struct Row {
    /// Offset of the key in the arena (keys are relative to the layout root).
    off: u64,
    size: u64,
    /// Nanoseconds since the epoch (the `LastModified` of the report).
    modified: i64,
}

/// Keys, sizes and dates of a listing, sorted by key.
#[derive(Debug, Default)]
pub struct Listing {
    arena: String,
    /// Key ends: `arena[rows[i].off .. ends[i]]`.
    rows: Vec<Row>,
    ends: Vec<u64>,
    /// ETags of tag `current` links only (the scan cache reuses an unchanged tag link; no
    /// other key's ETag is ever asked for, so none is kept).
    etags: std::collections::HashMap<u32, Box<str>>,
    /// The report's date: what the listing says is as of then.
    pub date: Timestamp,
    /// For humans: where the listing came from.
    pub source: String,
}

impl Listing {
    /// An empty listing as of `date`.
    pub fn new(date: Timestamp, source: impl Into<String>) -> Listing {
        Listing {
            date,
            source: source.into(),
            ..Listing::default()
        }
    }

    /// Add a key (relative to the layout root).
    pub fn push(&mut self, key: &str, size: u64, modified: Timestamp, etag: Option<&str>) {
        let off = self.arena.len() as u64;
        self.arena.push_str(key);
        if let Some(e) = etag
            && key.ends_with("/current/link")
        {
            self.etags.insert(self.rows.len() as u32, e.into());
        }
        self.rows.push(Row {
            off,
            size,
            modified: modified.0,
        });
        self.ends.push(self.arena.len() as u64);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes held (for the scale figures).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.ends.capacity() * 8
            + self.etags.capacity() * 40
    }

    fn key_at(&self, i: usize) -> &str {
        &self.arena[self.rows[i].off as usize..self.ends[i] as usize]
    }

    /// Sort by key and drop duplicate keys (a report listing a key twice keeps its last
    /// row). Must be called once all keys are pushed.
    pub fn finish(&mut self) {
        let mut order: Vec<u32> = (0..self.rows.len() as u32).collect();
        // Stable: of equal keys, the last pushed stays last and wins the dedup below.
        order.sort_by(|&a, &b| self.key_at(a as usize).cmp(self.key_at(b as usize)));
        order.dedup_by(|later, earlier| {
            let same = self.key_at(*later as usize) == self.key_at(*earlier as usize);
            if same {
                *earlier = *later;
            }
            same
        });
        let mut arena = String::with_capacity(self.arena.len());
        let mut rows = Vec::with_capacity(order.len());
        let mut ends = Vec::with_capacity(order.len());
        let mut etags = std::collections::HashMap::new();
        for &i in &order {
            let i = i as usize;
            let off = arena.len() as u64;
            arena.push_str(self.key_at(i));
            if let Some(e) = self.etags.remove(&(i as u32)) {
                etags.insert(rows.len() as u32, e);
            }
            rows.push(Row {
                off,
                ..self.rows[i]
            });
            ends.push(arena.len() as u64);
        }
        arena.shrink_to_fit();
        self.arena = arena;
        self.rows = rows;
        self.ends = ends;
        self.etags = etags;
    }

    /// First row whose key is `>= k`.
    fn lower_bound(&self, k: &str) -> usize {
        let (mut lo, mut hi) = (0, self.rows.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.key_at(mid) < k {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn meta(&self, i: usize) -> Meta {
        let r = &self.rows[i];
        Meta {
            size: r.size,
            modified: Timestamp(r.modified),
            created: None,
            etag: self.etags.get(&(i as u32)).map(|e| e.to_string()),
        }
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
        let l = &self.listing;
        let prefix = prefix_of(path);
        let mut i = l.lower_bound(&prefix);
        let mut any = false;
        while i < l.len() {
            let Some(rest) = l.key_at(i).strip_prefix(prefix.as_str()) else {
                break;
            };
            any = true;
            match rest.split_once('/') {
                Some((name, _)) => {
                    visit(Entry {
                        name: name.as_bytes(),
                        kind: EntryKind::Dir,
                        meta: None,
                    });
                    // Skip the whole subdirectory: '0' is the byte after '/'.
                    i = l.lower_bound(&format!("{prefix}{name}0"));
                }
                None => {
                    // A key that is also a prefix (`a` and `a/b`) is a directory, as on
                    // the object store's own listing, reported once.
                    let dir_follows = i + 1 < l.len()
                        && l.key_at(i + 1)
                            .strip_prefix(prefix.as_str())
                            .is_some_and(|n| {
                                n.strip_prefix(rest).is_some_and(|t| t.starts_with('/'))
                            });
                    if !dir_follows && !rest.is_empty() {
                        visit(Entry {
                            name: rest.as_bytes(),
                            kind: EntryKind::File,
                            meta: Some(l.meta(i)),
                        });
                    }
                    i += 1;
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
        let l = &self.listing;
        let i = l.lower_bound(path);
        if i < l.len() && l.key_at(i) == path {
            Ok(l.meta(i))
        } else {
            Err(StorageError::new(ErrorKind::NotFound, path))
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

    fn prefers_tree_listing(&self) -> bool {
        true
    }

    fn list_tree(
        &self,
        path: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        if self.range(path, None, None, visit) {
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
        self.range(path, after, before, visit);
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
    ) -> bool {
        let l = &self.listing;
        let prefix = prefix_of(path);
        let start = l.lower_bound(&prefix);
        let any = start < l.len() && l.key_at(start).starts_with(prefix.as_str());
        let mut i = match after {
            Some(a) => l.lower_bound(&format!("{prefix}{a}")),
            None => start,
        };
        while i < l.len() {
            let Some(rel) = l.key_at(i).strip_prefix(prefix.as_str()) else {
                break;
            };
            if before.is_some_and(|b| rel >= b) {
                break;
            }
            if !rel.is_empty() && after.is_none_or(|a| rel > a) {
                visit(TreeEntry {
                    path: rel,
                    kind: EntryKind::File,
                    meta: Some(l.meta(i)),
                });
            }
            i += 1;
        }
        any
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
        let mut l = Listing::new(Timestamp(0), "test");
        for (n, k) in keys.iter().enumerate() {
            l.push(k, n as u64, Timestamp(n as i64), Some("e"));
        }
        l.finish();
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
        let mut l = Listing::new(Timestamp(0), "t");
        l.push("k", 1, Timestamp(1), None);
        l.push("j", 2, Timestamp(2), None);
        l.push("k", 3, Timestamp(3), None);
        l.finish();
        assert_eq!(l.len(), 2);
        let s = ListedStorage::new(l, live());
        assert_eq!(s.stat("k").unwrap().size, 3);
    }
}
