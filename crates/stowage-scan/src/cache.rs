//! The scan cache: what a re-scan of an unchanged registry need not read again.
//!
//! Two things are read on every scan besides listings: manifests and tag `current` links.
//!
//! - **Manifests** are content-addressed: the bytes stored under a digest never change, so a
//!   manifest read once is kept under `<dir>/v1/manifests/sha256/<hh>/<hex>` and a re-scan
//!   reads it from there. An entry is trusted only when its length is the blob's size in the
//!   storage's listing *and* its SHA-256 is the digest (hashing a few kilobytes costs far less
//!   than a round trip); anything else is a corrupt entry, counted, removed and read again
//!   from the storage, whose bytes then replace it. Bytes the storage returns that do not
//!   hash to their digest are never cached (they are read, and judged, every time).
//! - **Tag links** are not content-addressed (a tag moves), so they are cached per storage
//!   (`<dir>/v1/links/<sha256 of the storage's description>`) with the entity tag the object
//!   store listed for them, and reused only when the listing shows the same ETag: a rewrite
//!   changes it (a single-part upload's ETag is its content's MD5) even within the second
//!   that `LastModified` resolves. Filesystems have no ETag, so their tag links are always
//!   read. The file is rewritten at the end of each scan with the links that scan saw; a
//!   line that does not parse discards the whole file (rebuilt by this scan), never trusted.
//!
//! The cache never fails a scan: an entry that cannot be read or written is counted
//! ([`CacheStats::errors`]) and the storage is read instead. Apply's re-checks do not use it
//! (they scan live, with [`crate::scan`]), and `check` reads the storage itself.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use stowage_model::digest::Sha256;

use stowage_layout::MAX_LINK_LEN;
use stowage_model::inventory::BlobId;
use stowage_storage::StorageError;

use crate::{Ctx, MANIFEST_LIMIT, lock};

/// Figures of one scan's use of the cache.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Manifests read from the cache instead of the storage.
    pub manifest_hits: u64,
    /// Manifests not in the cache (read from the storage, then cached).
    pub manifest_misses: u64,
    /// Entries that failed verification (wrong size or digest): removed and read again.
    pub corrupt: u64,
    /// Tag links whose ETag was unchanged (not read).
    pub link_hits: u64,
    /// Tag links read (new, moved, or on a backend without ETags).
    pub link_misses: u64,
    /// Whether the link file was unreadable or malformed and is being rebuilt.
    pub links_rebuilt: bool,
    /// Cache files that could not be read or written (the storage was read instead).
    pub errors: u64,
}

/// A cache directory opened for one storage (see the module doc).
#[derive(Debug)]
pub struct ScanCache {
    dir: PathBuf,
    links_file: PathBuf,
    /// Tag links of the previous scan: path -> (ETag, content).
    old_links: HashMap<String, (String, Vec<u8>)>,
    /// Tag links this scan saw (written at the end).
    new_links: Mutex<Vec<(String, String, Vec<u8>)>>,
    manifest_hits: AtomicU64,
    manifest_misses: AtomicU64,
    corrupt: AtomicU64,
    link_hits: AtomicU64,
    link_misses: AtomicU64,
    links_rebuilt: bool,
    errors: AtomicU64,
}

/// The cache directory could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cache directory {path}: {source}")]
pub struct CacheError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// The format version: a change of layout or verification starts a new tree.
const VERSION: &str = "v1";
/// The link file's first line.
const LINKS_HEADER: &str = "stowage-link-cache v1";

impl ScanCache {
    /// Open (creating it) the cache under `dir` for the storage `storage` describes.
    pub fn open(dir: &Path, storage: &str) -> Result<ScanCache, CacheError> {
        let root = dir.join(VERSION);
        let links_dir = root.join("links");
        for d in [root.join("manifests/sha256"), links_dir.clone()] {
            std::fs::create_dir_all(&d).map_err(|source| CacheError {
                path: d.display().to_string(),
                source,
            })?;
        }
        let links_file = links_dir.join(Sha256::of(storage.as_bytes()).hex());
        let (old_links, links_rebuilt) = match std::fs::read(&links_file) {
            Ok(bytes) => match parse_links(&bytes) {
                Some(m) => (m, false),
                None => (HashMap::new(), true),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (HashMap::new(), false),
            Err(_) => (HashMap::new(), true),
        };
        Ok(ScanCache {
            dir: root,
            links_file,
            old_links,
            new_links: Mutex::new(Vec::new()),
            manifest_hits: AtomicU64::new(0),
            manifest_misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            link_hits: AtomicU64::new(0),
            link_misses: AtomicU64::new(0),
            links_rebuilt,
            errors: AtomicU64::new(0),
        })
    }

    /// The directory holding this cache's files (for messages).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> CacheStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            manifest_hits: get(&self.manifest_hits),
            manifest_misses: get(&self.manifest_misses),
            corrupt: get(&self.corrupt),
            link_hits: get(&self.link_hits),
            link_misses: get(&self.link_misses),
            links_rebuilt: self.links_rebuilt,
            errors: get(&self.errors),
        }
    }

    fn manifest_path(&self, h: &Sha256) -> PathBuf {
        let hex = h.hex();
        self.dir.join("manifests/sha256").join(&hex[..2]).join(&hex)
    }

    /// The cached manifest `h` whose blob is `size` bytes (`None`: a blob listed, not
    /// stat-ed, whose size is unknown: the digest alone verifies it), verified; `None` (a
    /// miss) when absent or corrupt (a corrupt entry is removed).
    pub fn manifest(&self, h: &Sha256, size: Option<u64>) -> Option<Vec<u8>> {
        let path = self.manifest_path(h);
        match std::fs::read(&path) {
            Ok(bytes)
                if size.is_none_or(|s| bytes.len() as u64 == s) && Sha256::of(&bytes) == *h =>
            {
                self.manifest_hits.fetch_add(1, Ordering::Relaxed);
                Some(bytes)
            }
            Ok(_) => {
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                self.manifest_misses.fetch_add(1, Ordering::Relaxed);
                if std::fs::remove_file(&path).is_err() {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
                self.manifest_misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keep a manifest read from the storage, if its bytes are what its digest says.
    pub fn store_manifest(&self, h: &Sha256, bytes: &[u8]) {
        if Sha256::of(bytes) != *h {
            return;
        }
        let path = self.manifest_path(h);
        if write_atomic(&path, bytes).is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The content of the tag link at `path` when the previous scan saw it with the same
    /// ETag (`None`: read it).
    pub fn link(&self, path: &str, etag: Option<&str>) -> Option<Vec<u8>> {
        let hit = etag.and_then(|e| {
            let e = normalize_etag(e);
            self.old_links
                .get(path)
                .filter(|(old, _)| old == e)
                .map(|(_, bytes)| bytes.clone())
        });
        match &hit {
            Some(_) => self.link_hits.fetch_add(1, Ordering::Relaxed),
            None => self.link_misses.fetch_add(1, Ordering::Relaxed),
        };
        if let (Some(e), Some(b)) = (etag, &hit) {
            self.remember_link(path, e, b);
        }
        hit
    }

    /// Remember a tag link read from the storage with its ETag (nothing without one).
    pub fn store_link(&self, path: &str, etag: Option<&str>, bytes: &[u8]) {
        if let Some(e) = etag {
            self.remember_link(path, e, bytes);
        }
    }

    fn remember_link(&self, path: &str, etag: &str, bytes: &[u8]) {
        let e = normalize_etag(etag);
        // A line per link: fields must not hold the separators. Such names are refused by
        // the registry's grammar anyway; they are simply read every time.
        let clean = |s: &[u8]| !s.iter().any(|&c| c == b'\t' || c == b'\n' || c == b'\r');
        if clean(path.as_bytes()) && clean(e.as_bytes()) && clean(bytes) {
            lock(&self.new_links).push((path.to_owned(), e.to_owned(), bytes.to_vec()));
        }
    }

    /// Write the links this scan saw (replacing the previous file).
    pub fn finish(&self) {
        let mut links = std::mem::take(&mut *lock(&self.new_links));
        links.sort();
        links.dedup_by(|a, b| a.0 == b.0);
        let mut text = Vec::with_capacity(links.len() * 160);
        text.extend_from_slice(LINKS_HEADER.as_bytes());
        text.push(b'\n');
        for (path, etag, bytes) in links {
            text.extend_from_slice(path.as_bytes());
            text.push(b'\t');
            text.extend_from_slice(etag.as_bytes());
            text.push(b'\t');
            text.extend_from_slice(&bytes);
            text.push(b'\n');
        }
        if write_atomic(&self.links_file, &text).is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// S3 lists ETags quoted (`"9b2c..."`); inventory reports give them bare.
fn normalize_etag(e: &str) -> &str {
    e.trim_matches('"')
}

/// The link file, or `None` when any part of it is malformed (the whole file is then
/// rebuilt: a cache is never trusted in part).
fn parse_links(bytes: &[u8]) -> Option<HashMap<String, (String, Vec<u8>)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split_terminator('\n');
    if lines.next()? != LINKS_HEADER || !text.ends_with('\n') {
        return None;
    }
    let mut out = HashMap::new();
    for line in lines {
        let mut f = line.split('\t');
        let (path, etag, content) = (f.next()?, f.next()?, f.next()?);
        if f.next().is_some() || path.is_empty() || etag.is_empty() {
            return None;
        }
        out.insert(
            path.to_owned(),
            (etag.to_owned(), content.as_bytes().to_vec()),
        );
    }
    Some(out)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so
/// a reader (or a crash) never sees half an entry.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl Ctx<'_> {
    /// A manifest's bytes: from the cache when it holds them for this blob's size, else
    /// from the storage (and then cached). A blob of unknown size (not a regular file) is
    /// always read from the storage.
    pub(crate) fn manifest_bytes(&self, id: BlobId, path: &str) -> Result<Vec<u8>, StorageError> {
        let b = &self.table[id as usize];
        let cache = self
            .cache
            .filter(|_| lock(&self.odd_blobs).binary_search(&b.digest).is_err());
        if let Some(c) = cache
            && let Some(bytes) = c.manifest(&b.digest, b.is_stated().then_some(b.size))
        {
            return Ok(bytes);
        }
        let bytes = self.storage.read(path, MANIFEST_LIMIT)?;
        if let Some(c) = cache {
            c.store_manifest(&b.digest, &bytes);
        }
        Ok(bytes)
    }

    /// A tag's `current` link: from the cache when the listing shows it unchanged (same
    /// ETag), else from the storage (and then cached with its ETag).
    pub(crate) fn tag_link_bytes(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Vec<u8>, StorageError> {
        let Some(c) = self.cache else {
            return self.storage.read(path, MAX_LINK_LEN);
        };
        if let Some(b) = c.link(path, etag) {
            return Ok(b);
        }
        let bytes = self.storage.read(path, MAX_LINK_LEN)?;
        c.store_link(path, etag, &bytes);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_entry_is_verified_and_a_corrupt_one_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = ScanCache::open(d.path(), "s3://b/r").unwrap();
        let body = br#"{"schemaVersion":2}"#;
        let h = Sha256::of(body);
        assert_eq!(c.manifest(&h, Some(body.len() as u64)), None);
        c.store_manifest(&h, body);
        assert_eq!(
            c.manifest(&h, Some(body.len() as u64)).as_deref(),
            Some(&body[..])
        );
        // The listing says another size: not trusted.
        assert_eq!(c.manifest(&h, Some(3)), None);
        assert_eq!(c.stats().corrupt, 1);
        // Gone after the failed check; a flipped byte is caught by the digest.
        c.store_manifest(&h, body);
        let mut bad = body.to_vec();
        bad[3] ^= 1;
        std::fs::write(c.manifest_path(&h), &bad).unwrap();
        assert_eq!(c.manifest(&h, Some(body.len() as u64)), None);
        assert_eq!(c.stats().corrupt, 2);
        assert!(!c.manifest_path(&h).exists());
        // Bytes that are not their digest's are never cached.
        c.store_manifest(&h, b"other");
        assert!(!c.manifest_path(&h).exists());
        // A blob listed and not stat-ed (size unknown): the digest alone decides.
        assert_eq!(c.manifest(&h, None), None);
        c.store_manifest(&h, body);
        assert_eq!(c.manifest(&h, None).as_deref(), Some(&body[..]));
        std::fs::write(c.manifest_path(&h), &bad).unwrap();
        assert_eq!(c.manifest(&h, None), None);
    }

    #[test]
    fn tag_links_are_reused_only_with_the_same_etag() {
        let d = tempfile::tempdir().unwrap();
        let link = b"sha256:0000000000000000000000000000000000000000000000000000000000000000";
        {
            let c = ScanCache::open(d.path(), "s3://b/r").unwrap();
            assert_eq!(
                c.link(
                    "repositories/a/_manifests/tags/t/current/link",
                    Some("\"e1\"")
                ),
                None
            );
            c.store_link(
                "repositories/a/_manifests/tags/t/current/link",
                Some("\"e1\""),
                link,
            );
            c.store_link("repositories/a/_manifests/tags/u/current/link", None, link);
            c.finish();
        }
        let c = ScanCache::open(d.path(), "s3://b/r").unwrap();
        let p = "repositories/a/_manifests/tags/t/current/link";
        assert_eq!(c.link(p, Some("e1")).as_deref(), Some(&link[..]));
        assert_eq!(c.link(p, Some("\"e2\"")), None);
        assert_eq!(c.link(p, None), None);
        assert_eq!(
            c.link("repositories/a/_manifests/tags/u/current/link", Some("x")),
            None
        );
        // Another storage has its own links.
        let other = ScanCache::open(d.path(), "s3://b/other").unwrap();
        assert_eq!(other.link(p, Some("e1")), None);
    }

    #[test]
    fn a_malformed_link_file_is_rebuilt_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        let c = ScanCache::open(d.path(), "s").unwrap();
        c.store_link("p", Some("e"), b"sha256:00");
        c.finish();
        let file = c.links_file.clone();
        let mut text = std::fs::read(&file).unwrap();
        text.extend_from_slice(b"q\tonly-two-fields\n");
        std::fs::write(&file, &text).unwrap();
        let c = ScanCache::open(d.path(), "s").unwrap();
        assert!(c.stats().links_rebuilt);
        assert_eq!(c.link("p", Some("e")), None);
        // Truncated mid-line (no final newline): also rebuilt.
        std::fs::write(&file, &text[..text.len() - 3]).unwrap();
        assert!(
            ScanCache::open(d.path(), "s")
                .unwrap()
                .stats()
                .links_rebuilt
        );
    }
}
