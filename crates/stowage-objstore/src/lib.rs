//! Object storage (S3 and S3-compatible servers, Google Cloud Storage, Azure Blob) behind
//! stowage's [`Storage`] and [`StorageWrite`] traits, on the `object_store` crate (arrow-rs).
//!
//! Main type: [`ObjectStorage`], opened from a URL (`s3://bucket/rootdirectory`,
//! `gs://bucket/prefix`, `az://container/prefix`) and [`Options`] (endpoint, region,
//! path-style addressing, plain HTTP, keys). Keys are the registry's own: the layout root is
//! `<rootdirectory>/docker/registry/v2`, exactly as the registry's `s3` driver writes them.
//!
//! ```no_run
//! use stowage_objstore::{ObjectStorage, Options};
//! use stowage_storage::Storage;
//! let opts = Options { endpoint: Some("http://127.0.0.1:9000".into()), ..Options::default() };
//! let (s, _how) = ObjectStorage::open("s3://registry/prod", &opts).unwrap();
//! assert_eq!(s.describe(), "s3://registry/prod/docker/registry/v2");
//! ```
//!
//! # The async bridge
//! `Storage` is synchronous and the scanner fans out on rayon threads (as many as
//! `--concurrency`). `object_store` is async. Every backend shares one small multi-thread tokio
//! runtime (its workers drive the HTTP connections); each trait call runs its future with
//! `Handle::block_on` on the calling rayon thread. So N scanner threads keep N requests in
//! flight at once: concurrency is exactly the scanner's pool size, nothing is queued behind
//! a single async executor thread, and nothing is spawned that could outlive a call.
//!
//! # What maps to what
//! - A "directory" is a key prefix; it exists while a key lies below it. Listing an empty
//!   prefix is `NotFound`, as a missing directory is on a filesystem. Empty directories
//!   cannot exist, so [`StorageWrite::remove_empty_dir`] is always `Ok(false)`.
//! - `list_dir` is one delimiter listing (`ListObjectsV2 delimiter=/`, paginated); files come
//!   with size and `LastModified`, which stands in for the file date.
//! - [`Storage::list_tree`] is one flat paginated listing (1,000 keys per request, with size
//!   and date): the scanner lists each blob shard and each repository section this way
//!   instead of a request per directory and per file.
//! - Deleting a directory deletes every key under the prefix (batched `DeleteObjects` where
//!   the service has it). Quarantine copies to `<rootdirectory>/stowage-quarantine/<batch>/`
//!   (outside `docker/registry/v2`, so the registry never sees it), then deletes; restore
//!   copies back, refusing to overwrite, then deletes the quarantined copy. Copies get a new
//!   `LastModified`: a restored blob looks recently written (the grace period then holds it).
//!
//! Every error names the key it concerns, relative to the layout root, like the filesystem
//! backend's.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod driver_root;
mod put;
mod range;

pub use put::PART_SIZE;

pub use config::{ObjectUrl, Options, Scheme, is_object_url};

use std::future::Future;
use std::io::Read;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Buf, Bytes};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as Key;
use object_store::{ListResult, ObjectMeta, ObjectStore, ObjectStoreExt};
use stowage_layout::LAYOUT_ROOT;
use stowage_model::Timestamp;
use stowage_storage::{
    BackendKind, Entry, EntryKind, ErrorKind, Meta, OpCounters, RootLayout, Storage, StorageError,
    StorageWrite, TreeEntry,
};

/// Where quarantined objects go, below the registry's rootdirectory.
pub const QUARANTINE_PREFIX: &str = "stowage-quarantine";

/// Opening an object store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error("{url}: {why}")]
    Url { url: String, why: String },
    #[error("{url}: this build of stowage has no {scheme} support (cargo feature {feature})")]
    NotBuilt {
        url: String,
        scheme: &'static str,
        feature: &'static str,
    },
    #[error("{url}: cannot configure the client")]
    Build {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot start the object-store runtime: {0}")]
    Runtime(String),
    #[error("{url}: cannot list the storage")]
    Storage {
        url: String,
        #[source]
        source: StorageError,
    },
    #[error(
        "{url}: no {LAYOUT_ROOT} below it, and it has no blobs/ or repositories/: is this the registry's rootdirectory?"
    )]
    NoLayout { url: String },
}

/// The one runtime every object store shares (see "The async bridge").
fn runtime() -> Result<&'static tokio::runtime::Runtime, OpenError> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stowage-objstore")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| OpenError::Runtime(e.clone()))
}

/// A registry layout root in an object store.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The same store as a paginated lister (S3, GCS, Azure), so every request is counted and
    /// delimiter listings are paginated; `None` for stores without it (in-memory tests).
    lister: Option<Arc<dyn PaginatedListStore>>,
    scheme: Scheme,
    container: String,
    /// Key prefix of the layout root, no leading or trailing `/` ("" is the bucket root).
    root: String,
    rt: tokio::runtime::Handle,
    counters: OpCounters,
    /// Keys per listing page (the service's maximum, 1,000 on S3, when `None`).
    page_size: Option<usize>,
    /// Multipart part size of writes (`put.rs`).
    part_size: usize,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("url", &self.describe())
            .finish()
    }
}

fn to_meta(m: &ObjectMeta) -> Meta {
    Meta {
        size: m.size,
        modified: Timestamp::from_system_time(m.last_modified.into()),
        created: None,
        etag: m.e_tag.clone(),
    }
}

/// Map an `object_store` error to a storage error naming `path`.
fn err(path: &str, e: object_store::Error) -> StorageError {
    let kind = match &e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    };
    // object_store's messages already spell out their whole chain of causes: keep the text
    // once, not the chain as well (it would be printed again by every `{:#}`).
    StorageError {
        kind,
        path: path.to_owned(),
        source: Some(std::io::Error::other(e.to_string())),
    }
}

/// Refuse keys that could leave the layout root or that no listing produces: the one rule of
/// every backend ([`StorageError::key`]).
fn check_rel(rel: &str) -> Result<(), StorageError> {
    StorageError::key(rel).map(|_| ())
}

impl ObjectStorage {
    /// Open `url` (`s3://bucket/rootdirectory`, ...): build the client, then find the layout
    /// root below the prefix as the filesystem backend does (the rootdirectory holding
    /// `docker/registry/v2`, or the `v2` prefix itself).
    pub fn open(url: &str, opts: &Options) -> Result<(ObjectStorage, RootLayout), OpenError> {
        let parsed = ObjectUrl::parse(url)?;
        let (store, lister) = config::build(&parsed, opts)?;
        let s = ObjectStorage::with_store(
            store,
            lister,
            parsed.scheme,
            &parsed.container,
            &parsed.prefix,
        )?;
        s.resolve(url)
    }

    /// Wrap an already built store whose layout root (or rootdirectory, see
    /// [`ObjectStorage::open`]) is `prefix`. Tests use this with `object_store`'s in-memory
    /// store.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        lister: Option<Arc<dyn PaginatedListStore>>,
        scheme: Scheme,
        container: &str,
        prefix: &str,
    ) -> Result<ObjectStorage, OpenError> {
        Ok(ObjectStorage {
            store,
            lister,
            scheme,
            container: container.to_owned(),
            root: prefix.trim_matches('/').to_owned(),
            rt: runtime()?.handle().clone(),
            counters: OpCounters::default(),
            page_size: None,
            part_size: PART_SIZE,
        })
    }

    /// The bucket (or container) and the key prefix of the layout root, without slashes
    /// around: which keys of a provider's inventory report are this storage's.
    pub fn bucket_and_prefix(&self) -> (&str, &str) {
        (&self.container, &self.root)
    }

    /// Read one whole object named by its URL (`s3://bucket/key`) with the same client
    /// options as a storage (a provider inventory report in its destination bucket).
    /// `Ok(None)` when there is no such object.
    pub fn read_url(url: &str, opts: &Options, limit: u64) -> Result<Option<Vec<u8>>, OpenError> {
        let parsed = ObjectUrl::parse(url)?;
        let (store, lister) = config::build(&parsed, opts)?;
        let s = ObjectStorage::with_store(store, lister, parsed.scheme, &parsed.container, "")?;
        match s.get(parsed.prefix.trim_matches('/'), limit) {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(OpenError::Storage {
                url: url.to_owned(),
                source: e,
            }),
        }
    }

    /// List at most `n` keys per request (tests use small pages to exercise pagination).
    pub fn with_page_size(mut self, n: usize) -> ObjectStorage {
        self.page_size = Some(n.max(1));
        self
    }

    fn resolve(mut self, url: &str) -> Result<(ObjectStorage, RootLayout), OpenError> {
        let given = self.root.clone();
        let has_children = |s: &ObjectStorage| -> Result<Vec<String>, OpenError> {
            let mut names = Vec::new();
            match s.list_dir("", &mut |e| {
                names.push(String::from_utf8_lossy(e.name).into_owned())
            }) {
                Ok(()) => Ok(names),
                Err(e) if e.is_not_found() => Ok(names),
                Err(source) => Err(OpenError::Storage {
                    url: url.to_owned(),
                    source,
                }),
            }
        };
        if given.ends_with(LAYOUT_ROOT) {
            return Ok((self, RootLayout::LayoutRoot));
        }
        self.root = stowage_storage::join(&given, LAYOUT_ROOT);
        if !has_children(&self)?.is_empty() {
            return Ok((self, RootLayout::RootDirectory));
        }
        self.root = given;
        let names = has_children(&self)?;
        if names.iter().any(|n| n == "blobs" || n == "repositories") {
            return Ok((self, RootLayout::LayoutRoot));
        }
        Err(OpenError::NoLayout {
            url: url.to_owned(),
        })
    }

    /// The URL of a key prefix (`s3://bucket/a/b`).
    fn url_of(&self, key: &str) -> String {
        format!("{}://{}/{}", self.scheme.as_str(), self.container, key)
    }

    fn full(&self, rel: &str) -> Result<String, StorageError> {
        check_rel(rel)?;
        Ok(stowage_storage::join(&self.root, rel))
    }

    fn key(&self, rel: &str) -> Result<Key, StorageError> {
        let full = self.full(rel)?;
        Key::parse(&full).map_err(|e| StorageError {
            kind: ErrorKind::Other,
            path: rel.to_owned(),
            source: Some(std::io::Error::other(e)),
        })
    }

    /// Run one request on the shared runtime, counted.
    fn run<T>(&self, counter: &AtomicU64, fut: impl Future<Output = T>) -> T {
        counter.fetch_add(1, Ordering::Relaxed);
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let r = self.rt.block_on(fut);
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        r
    }

    /// Every page of a listing of the directory `full` (a key prefix without its trailing
    /// `/`, `""` for the bucket root), with a `/` delimiter or without one (flat, recursive).
    /// One request per page.
    fn pages(
        &self,
        full: &str,
        delimiter: bool,
        f: &mut dyn FnMut(ListResult),
    ) -> Result<(), object_store::Error> {
        let prefix = (!full.is_empty()).then(|| format!("{full}/"));
        self.pages_raw(prefix.as_deref(), full, delimiter, f)
    }

    /// [`ObjectStorage::pages`] with the literal prefix the service gets (`dir` is the same
    /// as a directory, for stores without paginated listing).
    fn pages_raw(
        &self,
        prefix: Option<&str>,
        dir: &str,
        delimiter: bool,
        f: &mut dyn FnMut(ListResult),
    ) -> Result<(), object_store::Error> {
        match &self.lister {
            Some(lister) => {
                let mut token = None;
                loop {
                    let opts = PaginatedListOptions {
                        delimiter: delimiter.then_some("/".into()),
                        page_token: token.take(),
                        max_keys: self.page_size,
                        ..Default::default()
                    };
                    let page =
                        self.run(&self.counters.lists, lister.list_paginated(prefix, opts))?;
                    f(page.result);
                    match page.page_token {
                        Some(t) if !t.is_empty() => token = Some(t),
                        _ => return Ok(()),
                    }
                }
            }
            None => {
                let key = Key::parse(dir)?;
                let key = (!dir.is_empty()).then_some(key);
                if delimiter {
                    let r = self.run(
                        &self.counters.lists,
                        self.store.list_with_delimiter(key.as_ref()),
                    )?;
                    f(r);
                    Ok(())
                } else {
                    let objects: Vec<ObjectMeta> = self.run(
                        &self.counters.lists,
                        self.store.list(key.as_ref()).try_collect(),
                    )?;
                    f(ListResult {
                        common_prefixes: Vec::new(),
                        objects,
                        extensions: Default::default(),
                    });
                    Ok(())
                }
            }
        }
    }

    /// Every key at or below `full`: the key itself, if it is an object, and every key under
    /// the prefix `full/`. One listing of the bare prefix `full` (no HEAD: whether a target
    /// is a file or a directory does not matter), keeping only what is at or below it, not
    /// siblings that merely share its first characters.
    fn keys_at(&self, rel_for_errors: &str, full: &str) -> Result<Vec<Key>, StorageError> {
        let mut keys = Vec::new();
        let below = format!("{full}/");
        self.pages_raw(Some(full), full, false, &mut |r| {
            keys.extend(
                r.objects
                    .into_iter()
                    .map(|m| m.location)
                    .filter(|k| k.as_ref() == full || k.as_ref().starts_with(&below)),
            )
        })
        .map_err(|e| err(rel_for_errors, e))?;
        // Stores without a paginated listing list whole path segments only, and object_store's
        // Azure listing drops the object named exactly by the prefix (found by the conformance
        // suite on Azurite): look for the key itself.
        if keys.is_empty() && (self.lister.is_none() || self.scheme == Scheme::Azure) {
            let key = Key::parse(full).map_err(|e| err(rel_for_errors, e.into()))?;
            match self.run(&self.counters.stats, self.store.head(&key)) {
                Ok(_) => keys.push(key),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err(rel_for_errors, e)),
            }
        }
        Ok(keys)
    }

    /// Delete keys, batched where the service allows (S3 `DeleteObjects`, 1,000 per call).
    /// A key already gone is not an error.
    fn delete_keys(&self, rel_for_errors: &str, keys: Vec<Key>) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        let n = keys.len() as u64;
        let stream = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
        let results: Vec<object_store::Result<Key>> = self.run(
            &self.counters.writes,
            self.store.delete_stream(stream).collect(),
        );
        self.counters.writes.fetch_add(n - 1, Ordering::Relaxed);
        for r in results {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err(rel_for_errors, e)),
            }
        }
        Ok(())
    }

    fn copy(&self, rel_for_errors: &str, from: &Key, to: &Key) -> Result<(), StorageError> {
        self.run(&self.counters.writes, self.store.copy(from, to))
            .map_err(|e| err(rel_for_errors, e))
    }

    /// `<rootdirectory>/stowage-quarantine/<batch name>`, a key prefix outside the layout.
    fn quarantine_root(&self, batch: &FsPath) -> Result<String, StorageError> {
        let shown = batch.display().to_string();
        let name = batch
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| check_rel(n).is_ok() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| StorageError {
                kind: ErrorKind::Other,
                path: shown.clone(),
                source: Some(std::io::Error::other(
                    "a quarantine batch needs a plain UTF-8 directory name",
                )),
            })?;
        let Some(base) = self.root.strip_suffix(LAYOUT_ROOT) else {
            return Err(StorageError {
                kind: ErrorKind::Other,
                path: shown,
                source: Some(std::io::Error::other(format!(
                    "quarantine on an object store needs a layout root ending in {LAYOUT_ROOT} (the quarantine prefix goes beside it)"
                ))),
            });
        };
        Ok(stowage_storage::join(
            base.trim_end_matches('/'),
            &format!("{QUARANTINE_PREFIX}/{name}"),
        ))
    }

    fn get(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        let key = self.key(path)?;
        self.run(&self.counters.reads, async {
            let r = self.store.get(&key).await.map_err(|e| err(path, e))?;
            let meta = to_meta(&r.meta);
            // The size comes with the response headers: refuse before reading the body.
            if r.meta.size > limit {
                return Err(StorageError::new(ErrorKind::TooLarge { limit }, path));
            }
            let bytes = r.bytes().await.map_err(|e| err(path, e))?;
            if bytes.len() as u64 > limit {
                return Err(StorageError::new(ErrorKind::TooLarge { limit }, path));
            }
            self.counters
                .bytes_read
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok((bytes.to_vec(), meta))
        })
    }
}

impl Storage for ObjectStorage {
    fn describe(&self) -> String {
        self.url_of(&self.root)
    }

    fn backend(&self) -> BackendKind {
        BackendKind::ObjectStore {
            scheme: self.scheme.as_str().to_owned(),
        }
    }

    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        let full = self.full(path)?;
        let mut entries: Vec<(String, EntryKind, Option<Meta>)> = Vec::new();
        self.pages(&full, true, &mut |r| {
            for p in r.common_prefixes {
                if let Some(n) = p.filename() {
                    entries.push((n.to_owned(), EntryKind::Dir, None));
                }
            }
            for m in r.objects {
                // A zero-byte "directory marker" (`a/b/`, made by some consoles) names the
                // directory itself: not an entry of it.
                if m.location.as_ref() == full {
                    continue;
                }
                if let Some(n) = m.location.filename() {
                    entries.push((n.to_owned(), EntryKind::File, Some(to_meta(&m))));
                }
            }
        })
        .map_err(|e| err(path, e))?;
        if entries.is_empty() {
            return Err(StorageError::new(ErrorKind::NotFound, path));
        }
        for (name, kind, meta) in entries {
            visit(Entry {
                name: name.as_bytes(),
                kind,
                meta,
            });
        }
        Ok(())
    }

    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        let key = self.key(path)?;
        self.run(&self.counters.stats, self.store.head(&key))
            .map(|m| to_meta(&m))
            .map_err(|e| err(path, e))
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.get(path, limit).map(|(b, _)| b)
    }

    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.get(path, limit)
    }

    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        driver_root::read(self, name, limit)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let key = self.key(path)?;
        let r = self
            .run(&self.counters.reads, self.store.get(&key))
            .map_err(|e| err(path, e))?;
        Ok(Box::new(StreamRead {
            rt: self.rt.clone(),
            stream: r.into_stream(),
            buf: Bytes::new(),
            path: path.to_owned(),
        }))
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }

    fn prefers_tree_listing(&self) -> bool {
        true
    }

    fn list_tree(
        &self,
        path: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        let full = self.full(path)?;
        let strip = if full.is_empty() { 0 } else { full.len() + 1 };
        let mut any = false;
        self.pages(&full, false, &mut |r| {
            for m in r.objects {
                let Some(rel) = m.location.as_ref().get(strip..) else {
                    continue;
                };
                if rel.is_empty() {
                    continue;
                }
                any = true;
                visit(TreeEntry {
                    path: rel,
                    kind: EntryKind::File,
                    meta: Some(to_meta(&m)),
                });
            }
        })
        .map_err(|e| err(path, e))?;
        if !any {
            return Err(StorageError::new(ErrorKind::NotFound, path));
        }
        Ok(())
    }

    fn list_tree_range(
        &self,
        path: &str,
        after: Option<&str>,
        before: Option<&str>,
        visit: &mut dyn FnMut(TreeEntry<'_>),
    ) -> Result<(), StorageError> {
        let Some(lister) = self.lister.clone() else {
            // No paginated listing (the in-memory store): the whole subtree, filtered.
            return self.list_tree(path, &mut |e| {
                if after.is_none_or(|a| e.path > a) && before.is_none_or(|b| e.path < b) {
                    visit(e)
                }
            });
        };
        self.range_pages(&lister, path, after, before, visit)?;
        // An empty range is not an error: whether anything at all lies below `path` was
        // known from the listing that named the range.
        Ok(())
    }
}

impl StorageWrite for ObjectStorage {
    fn replace_at_driver_root(&self, name: &str, bytes: &[u8]) -> Option<Result<(), StorageError>> {
        driver_root::replace(self, name, bytes)
    }

    fn delete(&self, path: &str) -> Result<bool, StorageError> {
        let full = self.full(path)?;
        let keys = self.keys_at(path, &full)?;
        if keys.is_empty() {
            return Ok(false);
        }
        self.delete_keys(path, keys)?;
        Ok(true)
    }

    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError> {
        check_rel(path)?;
        Ok(false)
    }

    fn can_create_files(&self) -> bool {
        true
    }

    fn create_file(&self, path: &str, content: &[u8]) -> Result<bool, StorageError> {
        self.create_new(path, content)
    }

    fn move_to(&self, path: &str, dest: &FsPath) -> Result<bool, StorageError> {
        let full = self.full(path)?;
        let qroot = self.quarantine_root(dest)?;
        let keys = self.keys_at(path, &full)?;
        if keys.is_empty() {
            return Ok(false);
        }
        // Copy everything first, then delete: an interruption leaves the source whole (a
        // re-run copies again, over the same bytes, and finishes).
        let strip = if self.root.is_empty() {
            0
        } else {
            self.root.len() + 1
        };
        for k in &keys {
            let rel = &k.as_ref()[strip..];
            let to =
                Key::parse(stowage_storage::join(&qroot, rel)).map_err(|e| err(rel, e.into()))?;
            self.copy(rel, k, &to)?;
        }
        self.delete_keys(path, keys)?;
        Ok(true)
    }

    fn move_back(&self, src: &FsPath, path: &str) -> Result<bool, StorageError> {
        check_rel(path)?;
        let qroot = self.quarantine_root(src)?;
        let qfull = stowage_storage::join(&qroot, path);
        let keys = self.keys_at(path, &qfull)?;
        if keys.is_empty() {
            return Ok(false);
        }
        let mut pairs = Vec::with_capacity(keys.len());
        for k in keys {
            let rel = k.as_ref()[qroot.len() + 1..].to_owned();
            let to = self.key(&rel)?;
            match self.run(&self.counters.stats, self.store.head(&to)) {
                Ok(_) => {
                    return Err(StorageError {
                        kind: ErrorKind::Other,
                        path: rel,
                        source: Some(std::io::Error::other(
                            "exists in the storage again; not overwritten",
                        )),
                    });
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(err(&rel, e)),
            }
            pairs.push((rel, k, to));
        }
        for (rel, from, to) in &pairs {
            self.copy(rel, from, to)?;
        }
        self.delete_keys(path, pairs.into_iter().map(|(_, from, _)| from).collect())?;
        Ok(true)
    }

    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        // Directories are key prefixes: they exist once something is below them.
        check_rel(path)
    }

    fn quarantined_modified(
        &self,
        _batch: &FsPath,
        path: &str,
    ) -> Result<Option<stowage_model::Timestamp>, StorageError> {
        // A quarantined object is a copy: its LastModified is the copy's time, not the
        // original's, so it cannot tell whether the registry rewrote the link between the
        // re-check and the fence. Unknown, not "fresh" (which would restore every fenced
        // link). The window this leaves on object stores is documented in ARCHITECTURE.md.
        check_rel(path)?;
        Ok(None)
    }

    fn delete_quarantined(&self, batch: &FsPath, path: &str) -> Result<bool, StorageError> {
        check_rel(path)?;
        let qroot = self.quarantine_root(batch)?;
        let qfull = stowage_storage::join(&qroot, path);
        let keys = self.keys_at(path, &qfull)?;
        if keys.is_empty() {
            return Ok(false);
        }
        self.delete_keys(path, keys)?;
        Ok(true)
    }

    fn check_quarantine(&self, dest: &FsPath) -> Result<(), StorageError> {
        self.quarantine_root(dest)?;
        // The batch directory stays local: it holds the journal and the batch record.
        std::fs::create_dir_all(dest).map_err(|e| StorageError::io(dest.display().to_string(), e))
    }

    fn quarantine_location(&self, batch: &FsPath) -> String {
        match self.quarantine_root(batch) {
            Ok(q) => format!("{}/", self.url_of(&q)),
            Err(e) => format!("(no quarantine location: {e})"),
        }
    }

    fn purge_quarantine(&self, batch: &FsPath) -> Result<(), StorageError> {
        let qroot = self.quarantine_root(batch)?;
        let shown = self.url_of(&qroot);
        let mut keys = Vec::new();
        self.pages(&qroot, false, &mut |r| {
            keys.extend(r.objects.into_iter().map(|m| m.location))
        })
        .map_err(|e| err(&shown, e))?;
        self.delete_keys(&shown, keys)
    }
}

/// A GET body as `std::io::Read`, pulled chunk by chunk on the shared runtime (hashing big
/// blobs without holding them in memory).
struct StreamRead {
    rt: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    buf: Bytes,
    path: String,
}

impl Read for StreamRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => {
                    return Err(std::io::Error::other(format!("{}: {e}", self.path)));
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}
