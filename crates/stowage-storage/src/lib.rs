//! The I/O boundary of stowage: read access to a registry's storage.
//!
//! A [`Storage`] is rooted at the layout root (`<rootdirectory>/docker/registry/v2`) and is
//! addressed with `/`-separated relative paths, which is also what object-store keys look like.
//! The trait is small on purpose (object_store's lesson): list one directory, stat one path,
//! read one small file, open one big file. The scanner decides *what* to touch; backends only
//! say how. Listings may carry metadata (object stores return size and mtime with each key;
//! the filesystem returns entry types only), so the scanner stats only what a listing did not
//! already tell it.
//!
//! Invariants every backend keeps:
//! - symbolic links are never followed: they are reported as [`EntryKind::Symlink`] in listings
//!   and as [`ErrorKind::Symlink`] errors on stat or read;
//! - only regular files are stat-ed or read: a FIFO, socket, device or directory is
//!   [`ErrorKind::NotAFile`], found without blocking (a FIFO's `open` waits for a writer);
//! - every error names the path it concerns ([`StorageError`]);
//! - nothing here deletes (deletion lives in the plan/apply crate, behind a separate trait).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod beneath;
mod error;
pub mod faults;
mod fs;
pub mod listing;
pub mod pack;
pub mod provider;
mod put;
pub mod registry_config;
pub mod spill;
mod write;

pub use put::{STAGING_DIR, StoragePut};
pub use write::StorageWrite;

pub use error::{ErrorKind, FileType, StorageError};
pub use fs::{FsStorage, ResolvedRoot, RootLayout, resolve_root};

use std::sync::atomic::{AtomicU64, Ordering};

use stowage_model::Timestamp;

/// What kind of entry a listing returned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Sockets, fifos, devices: nothing the registry writes.
    Other,
}

/// File metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub modified: Timestamp,
    /// Birth time, where the backend records it.
    pub created: Option<Timestamp>,
    /// The object store's entity tag, where the backend has one (`None` on a filesystem).
    /// A single-part upload's ETag is the MD5 of its content, so an unchanged ETag says the
    /// object was not rewritten even when its size and (second-resolution) date are the
    /// same: the scan cache trusts a cached tag link only on an equal ETag.
    pub etag: Option<String>,
}

/// One entry of a directory listing. `name` is the raw name (may be non-UTF-8 on a filesystem).
#[derive(Debug)]
pub struct Entry<'a> {
    pub name: &'a [u8],
    pub kind: EntryKind,
    /// Present when the listing itself carried metadata (object stores).
    pub meta: Option<Meta>,
}

/// One entry of a recursive listing ([`Storage::list_tree`]): a path relative to the listed
/// directory (`sha256/ab/<hex>/link`), never a directory.
#[derive(Debug)]
pub struct TreeEntry<'a> {
    pub path: &'a str,
    pub kind: EntryKind,
    pub meta: Option<Meta>,
}

/// How the storage is reached, which decides sensible concurrency defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// A local filesystem.
    LocalFs {
        fs_type: String,
    },
    /// A network or FUSE filesystem: every operation is a round trip.
    NetworkFs {
        fs_type: String,
    },
    ObjectStore {
        scheme: String,
    },
}

impl BackendKind {
    /// Concurrency that keeps enough requests in flight: latency-bound storage wants many,
    /// a local disk with a warm cache wants about the number of cores.
    pub fn default_concurrency(&self, cores: usize) -> usize {
        match self {
            BackendKind::LocalFs { .. } => (cores * 2).clamp(4, 16),
            BackendKind::NetworkFs { .. } => 64,
            BackendKind::ObjectStore { .. } => 64,
        }
    }

    pub fn is_latency_bound(&self) -> bool {
        !matches!(self, BackendKind::LocalFs { .. })
    }
}

/// Counters of operations issued, shared by all threads.
#[derive(Debug, Default)]
pub struct OpCounters {
    pub lists: AtomicU64,
    pub stats: AtomicU64,
    pub reads: AtomicU64,
    pub bytes_read: AtomicU64,
    pub in_flight: AtomicU64,
    /// Objects written or deleted (object stores: copies and deletes during apply).
    pub writes: AtomicU64,
}

/// A snapshot of [`OpCounters`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct OpSnapshot {
    pub lists: u64,
    pub stats: u64,
    pub reads: u64,
    pub bytes_read: u64,
    pub in_flight: u64,
    pub writes: u64,
}

impl OpCounters {
    pub fn snapshot(&self) -> OpSnapshot {
        OpSnapshot {
            lists: self.lists.load(Ordering::Relaxed),
            stats: self.stats.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    /// Count one operation for its whole duration (in-flight gauge).
    pub fn track<T>(&self, counter: &AtomicU64, f: impl FnOnce() -> T) -> T {
        counter.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let r = f();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        r
    }
}

/// Read-only access to a registry's layout root.
pub trait Storage: Send + Sync {
    /// For humans: what this storage is (`/var/lib/registry/docker/registry/v2`).
    fn describe(&self) -> String;

    fn backend(&self) -> BackendKind;

    /// Size and free bytes (available to unprivileged writers) of the filesystem holding
    /// the storage, where it has one (for the metrics and "days until full").
    fn capacity(&self) -> Option<(u64, u64)> {
        None
    }

    /// Call `visit` for each entry of the directory at `path` ("" is the root), in no
    /// particular order.
    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError>;

    /// Metadata of a regular file, without following symbolic links: a directory, FIFO,
    /// socket or device is [`ErrorKind::NotAFile`] (every path the scanner stats is one where
    /// the registry keeps a regular file).
    fn stat(&self, path: &str) -> Result<Meta, StorageError>;

    /// [`Storage::stat`] of each `rels[i]` below the directory `dir`, answered through
    /// `visit(i, result)` in order; errors name the whole path. Why a batch: on a filesystem
    /// a stat by path walks every component again (`blobs/sha256/ab/<hex>/data` below a
    /// root of six components is ten lookups), and the scanner stats every entry of the
    /// directory it has just listed. One open of `dir` and a stat relative to it walks one
    /// or two. The default stats each path (what wrappers that inject faults want).
    fn stat_below(
        &self,
        dir: &str,
        rels: &[&str],
        visit: &mut dyn FnMut(usize, Result<Meta, StorageError>),
    ) {
        for (i, rel) in rels.iter().enumerate() {
            visit(i, self.stat(&join(dir, rel)));
        }
    }

    /// Read a whole file of at most `limit` bytes ([`ErrorKind::TooLarge`] otherwise). Only
    /// regular files are read ([`ErrorKind::NotAFile`] otherwise): a FIFO would block the
    /// open or the read forever and a device may never end.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError>;

    /// Read a whole small file and its metadata in one go (one open on a filesystem, one GET
    /// on an object store).
    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError>;

    /// Open a file for streaming (hashing big blobs).
    fn open(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError>;

    /// Operation counters.
    fn counters(&self) -> &OpCounters;

    /// Read the file `name` at the storage driver's root (the `rootdirectory` that holds
    /// `docker/registry/v2`: where a pull-through cache keeps `scheduler-state.json`), of at
    /// most `limit` bytes. `None` when the backend cannot address it (an object store, or a
    /// filesystem opened at the layout root itself); `Ok(None)` when there is no such file.
    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        let _ = (name, limit);
        None
    }

    /// Whether [`Storage::list_tree`] is cheaper than walking with [`Storage::list_dir`] and
    /// [`Storage::stat`]. Object stores say yes: one paginated listing returns 1,000 keys with
    /// their size and date per request, where a walk costs a request per directory and per
    /// file. The scanner then lists whole subtrees (a blob shard, a repository's `_layers`)
    /// at once.
    fn prefers_tree_listing(&self) -> bool {
        false
    }

    /// Every file below the directory `path` (recursively), with its metadata where the
    /// backend has it, in no particular order. Directories are not reported: on an object
    /// store they do not exist, they are only key prefixes. `NotFound` when nothing lies
    /// below `path`.
    ///
    /// The default walks with `list_dir` and `stat` (symbolic links and other non-files are
    /// reported with their kind and without metadata, never followed).
    fn list_tree(
        &self,
        path: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let dir = join(path, &rel);
            let mut here: Vec<(String, EntryKind, Option<Meta>)> = Vec::new();
            let mut bad = None;
            self.list_dir(&dir, &mut |e| match std::str::from_utf8(e.name) {
                Ok(n) => here.push((n.to_owned(), e.kind, e.meta)),
                Err(_) => {
                    bad = Some(format!("{dir}/{}", String::from_utf8_lossy(e.name)));
                }
            })?;
            if let Some(b) = bad {
                return Err(StorageError {
                    kind: ErrorKind::Other,
                    path: b,
                    source: Some(std::io::Error::other("name is not UTF-8")),
                });
            }
            for (name, kind, meta) in here {
                let child = join(&rel, &name);
                match kind {
                    EntryKind::Dir => stack.push(child),
                    EntryKind::File => {
                        let meta = match meta {
                            Some(m) => m,
                            None => self.stat(&join(path, &child))?,
                        };
                        visit(TreeEntry {
                            path: &child,
                            kind,
                            meta: Some(meta),
                        });
                    }
                    _ => {
                        visit(TreeEntry {
                            path: &child,
                            kind,
                            meta: None,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Storage::list_tree`] limited to the relative paths `p` with `after < p < before`
    /// (byte order; either bound open), so that a big subtree can be listed as several
    /// ranges at once. Object stores start the listing at `after` (S3's `StartAfter`) and
    /// stop at `before`: a range costs its own pages, not the whole subtree's. `NotFound`
    /// when nothing lies below `path` at all; an empty range is not an error.
    ///
    /// The default lists the whole subtree and filters.
    fn list_tree_range(
        &self,
        path: &str,
        after: Option<&str>,
        before: Option<&str>,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        self.list_tree(path, &mut |e| {
            if after.is_none_or(|a| e.path > a) && before.is_none_or(|b| e.path < b) {
                visit(e)
            }
        })
    }
}

/// `a/b` from `a` and `b`, where either may be empty.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// Shared and boxed storages are storages (the CLI holds its backend as
/// `Arc<dyn StorageWrite>`, chosen at run time).
impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn backend(&self) -> BackendKind {
        (**self).backend()
    }
    fn capacity(&self) -> Option<(u64, u64)> {
        (**self).capacity()
    }
    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        (**self).list_dir(path, visit)
    }
    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        (**self).stat(path)
    }
    fn stat_below(
        &self,
        dir: &str,
        rels: &[&str],
        visit: &mut dyn FnMut(usize, Result<Meta, StorageError>),
    ) {
        (**self).stat_below(dir, rels, visit)
    }
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        (**self).read(path, limit)
    }
    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        (**self).read_with_meta(path, limit)
    }
    fn open(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        (**self).open(path)
    }
    fn counters(&self) -> &OpCounters {
        (**self).counters()
    }
    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        (**self).read_at_driver_root(name, limit)
    }
    fn prefers_tree_listing(&self) -> bool {
        (**self).prefers_tree_listing()
    }
    fn list_tree(
        &self,
        path: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        (**self).list_tree(path, visit)
    }
    fn list_tree_range(
        &self,
        path: &str,
        after: Option<&str>,
        before: Option<&str>,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        (**self).list_tree_range(path, after, before, visit)
    }
}
