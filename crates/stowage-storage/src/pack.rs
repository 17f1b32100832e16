//! A pack: the files a scan listed from a provider inventory reads (manifests, tag `current`
//! links, upload dates), in one file, for scale runs (`stowage-gen --inventory` writes one;
//! `stowage --storage FILE.pack --from-inventory ...` reads it through [`PackStorage`]).
//!
//! Why: at 10 and 100 million objects the sparse tree of those files costs a directory and a
//! file per manifest (about 1.7 KB of disk per blob, most of it block and inode overhead);
//! a pack holds the bytes only. It is a benchmark fixture, not a way to store a registry: it
//! has no directories (listings come from the report), and it refuses every write.
//!
//! Layout (integers little-endian): the magic [`MAGIC`]; the entries, each `key length
//! (u32)`, the key (relative to the layout root), `modified (i64 seconds)`, `length (u32)`,
//! the bytes; then the index, `(hash of the key (u64), entry offset (u64))` sorted by hash;
//! then the footer, `index offset (u64)`, `entries (u64)`, [`MAGIC`]. A lookup is a binary
//! search of the index with positioned reads (memory stays constant whatever the pack's
//! size), then the entry's key is compared, so a hash collision costs a step, never a wrong
//! file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use stowage_model::Timestamp;

use crate::{BackendKind, Entry, ErrorKind, Meta, OpCounters, Storage, StorageError};

/// The pack's first and last 8 bytes.
pub const MAGIC: &[u8; 8] = b"STWPACK1";

/// FNV-1a, 64 bits: stable across builds and platforms, as the pack's index needs.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes a pack: [`PackWriter::add`] each file, then [`PackWriter::finish`]. Holds 16 bytes
/// per entry until then (the index, sorted at the end).
pub struct PackWriter {
    path: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    index: Vec<(u64, u64)>,
}

impl PackWriter {
    pub fn create(path: &Path) -> std::io::Result<PackWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(MAGIC)?;
        Ok(PackWriter {
            path: path.to_path_buf(),
            out,
            offset: MAGIC.len() as u64,
            index: Vec::new(),
        })
    }

    /// Add the file at `key` (relative to the layout root), modified at `modified` (seconds).
    pub fn add(&mut self, key: &str, bytes: &[u8], modified: i64) -> std::io::Result<()> {
        let too_big = |what| std::io::Error::other(format!("{key}: {what} over 4 GiB"));
        let klen = u32::try_from(key.len()).map_err(|_| too_big("key"))?;
        let blen = u32::try_from(bytes.len()).map_err(|_| too_big("file"))?;
        self.index.push((key_hash(key), self.offset));
        self.out.write_all(&klen.to_le_bytes())?;
        self.out.write_all(key.as_bytes())?;
        self.out.write_all(&modified.to_le_bytes())?;
        self.out.write_all(&blen.to_le_bytes())?;
        self.out.write_all(bytes)?;
        self.offset += 16 + u64::from(klen) + u64::from(blen);
        Ok(())
    }

    /// Write the index and the footer; returns the number of entries.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.index.sort_unstable();
        for (h, off) in &self.index {
            self.out.write_all(&h.to_le_bytes())?;
            self.out.write_all(&off.to_le_bytes())?;
        }
        self.out.write_all(&self.offset.to_le_bytes())?;
        self.out
            .write_all(&(self.index.len() as u64).to_le_bytes())?;
        self.out.write_all(MAGIC)?;
        self.out
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        Ok(self.index.len() as u64)
    }
}

/// A read-only [`Storage`] over a pack (see the module doc). Lists nothing: it is meant
/// under a [`crate::listing::ListedStorage`], which lists from the report.
pub struct PackStorage {
    path: PathBuf,
    file: File,
    index_at: u64,
    entries: u64,
    counters: OpCounters,
}

impl PackStorage {
    /// Open the pack at `path`, checking its magic and footer.
    pub fn open(path: &Path) -> Result<PackStorage, StorageError> {
        let name = path.display().to_string();
        let bad = |why: &str| {
            StorageError::io(
                name.clone(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_owned()),
            )
        };
        let file = File::open(path).map_err(|e| StorageError::io(name.clone(), e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(name.clone(), e))?
            .len();
        let mut head = [0u8; 8];
        let mut foot = [0u8; 24];
        if len < 32
            || file.read_exact_at(&mut head, 0).is_err()
            || file.read_exact_at(&mut foot, len - 24).is_err()
            || &head != MAGIC
            || &foot[16..] != MAGIC
        {
            return Err(bad("not a stowage pack (no STWPACK1 magic and footer)"));
        }
        let index_at = u64::from_le_bytes(foot[..8].try_into().unwrap_or_default());
        let entries = u64::from_le_bytes(foot[8..16].try_into().unwrap_or_default());
        if index_at.checked_add(entries.saturating_mul(16)) != Some(len - 24) {
            return Err(bad("its footer does not match its length"));
        }
        Ok(PackStorage {
            path: path.to_path_buf(),
            file,
            index_at,
            entries,
            counters: OpCounters::default(),
        })
    }

    fn read_only(&self, path: &str) -> StorageError {
        self.io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "a stowage pack is a read-only benchmark fixture",
            ),
        )
    }

    fn io(&self, path: &str, e: std::io::Error) -> StorageError {
        StorageError::io(format!("{}:{path}", self.path.display()), e)
    }

    fn u64_at(&self, path: &str, at: u64) -> Result<u64, StorageError> {
        let mut b = [0u8; 8];
        self.file
            .read_exact_at(&mut b, at)
            .map_err(|e| self.io(path, e))?;
        Ok(u64::from_le_bytes(b))
    }

    /// The entry for `path`: its bytes (when `with_bytes`), length and date.
    fn find(&self, path: &str, with_bytes: bool) -> Result<(Vec<u8>, Meta), StorageError> {
        let h = key_hash(path);
        // The first index slot whose hash is >= h.
        let (mut lo, mut hi) = (0u64, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.u64_at(path, self.index_at + mid * 16)? < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut slot = lo;
        while slot < self.entries && self.u64_at(path, self.index_at + slot * 16)? == h {
            let off = self.u64_at(path, self.index_at + slot * 16 + 8)?;
            let mut klen = [0u8; 4];
            self.file
                .read_exact_at(&mut klen, off)
                .map_err(|e| self.io(path, e))?;
            let klen = u64::from(u32::from_le_bytes(klen));
            let mut rest = vec![0u8; klen as usize + 12];
            self.file
                .read_exact_at(&mut rest, off + 4)
                .map_err(|e| self.io(path, e))?;
            if &rest[..klen as usize] == path.as_bytes() {
                let k = klen as usize;
                let modified = i64::from_le_bytes(rest[k..k + 8].try_into().unwrap_or_default());
                let blen = u32::from_le_bytes(rest[k + 8..k + 12].try_into().unwrap_or_default());
                let mut bytes = Vec::new();
                if with_bytes {
                    bytes = vec![0u8; blen as usize];
                    self.file
                        .read_exact_at(&mut bytes, off + 16 + klen)
                        .map_err(|e| self.io(path, e))?;
                }
                let meta = Meta {
                    size: u64::from(blen),
                    modified: Timestamp(modified.saturating_mul(1_000_000_000)),
                    created: None,
                    etag: None,
                };
                return Ok((bytes, meta));
            }
            slot += 1;
        }
        Err(StorageError::new(ErrorKind::NotFound, path))
    }
}

impl Storage for PackStorage {
    fn describe(&self) -> String {
        format!("{} (a stowage pack)", self.path.display())
    }

    fn backend(&self) -> BackendKind {
        BackendKind::LocalFs {
            fs_type: "stowage pack".into(),
        }
    }

    fn list_dir(&self, path: &str, _visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        self.counters.track(&self.counters.lists, || {
            Err(StorageError::new(ErrorKind::NotFound, path))
        })
    }

    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        self.counters
            .track(&self.counters.stats, || Ok(self.find(path, false)?.1))
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        Ok(self.read_with_meta(path, limit)?.0)
    }

    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.counters.track(&self.counters.reads, || {
            let (_, meta) = self.find(path, false)?;
            if meta.size > limit {
                return Err(StorageError::new(ErrorKind::TooLarge { limit }, path));
            }
            let (bytes, meta) = self.find(path, true)?;
            self.counters
                .bytes_read
                .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            Ok((bytes, meta))
        })
    }

    fn open(&self, path: &str) -> Result<Box<dyn std::io::Read + Send>, StorageError> {
        let (bytes, _) = self.read_with_meta(path, u64::from(u32::MAX))?;
        Ok(Box::new(std::io::Cursor::new(bytes)))
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }

    /// The pack holds every file a scan reads, so a file at the driver's root (a cache's
    /// `scheduler-state.json`) is in it under `../<name>`, or absent.
    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        Some(match self.read(&format!("../{name}"), limit) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        })
    }
}

/// A pack is a fixture: every write is refused (apply never gets that far on one).
impl crate::StorageWrite for PackStorage {
    fn delete(&self, path: &str) -> Result<bool, StorageError> {
        Err(self.read_only(path))
    }
    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError> {
        Err(self.read_only(path))
    }
    fn move_to(&self, path: &str, _dest: &Path) -> Result<bool, StorageError> {
        Err(self.read_only(path))
    }
    fn move_back(&self, _src: &Path, path: &str) -> Result<bool, StorageError> {
        Err(self.read_only(path))
    }
    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        Err(self.read_only(path))
    }
    fn delete_quarantined(&self, _batch: &Path, path: &str) -> Result<bool, StorageError> {
        Err(self.read_only(path))
    }
    fn quarantined_modified(
        &self,
        _batch: &Path,
        path: &str,
    ) -> Result<Option<Timestamp>, StorageError> {
        Err(self.read_only(path))
    }
    fn check_quarantine(&self, dest: &Path) -> Result<(), StorageError> {
        Err(self.read_only(&dest.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pack_reads_back_what_was_added_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.pack");
        let mut w = PackWriter::create(&p).unwrap();
        for i in 0..500 {
            w.add(&format!("blobs/{i}/data"), format!("c{i}").as_bytes(), i)
                .unwrap();
        }
        assert_eq!(w.finish().unwrap(), 500);
        let s = PackStorage::open(&p).unwrap();
        for i in [0, 7, 499] {
            let (b, m) = s.read_with_meta(&format!("blobs/{i}/data"), 100).unwrap();
            assert_eq!(b, format!("c{i}").as_bytes());
            assert_eq!(m.modified, Timestamp(i * 1_000_000_000));
            assert_eq!(
                s.stat(&format!("blobs/{i}/data")).unwrap().size,
                b.len() as u64
            );
        }
        assert!(s.read("blobs/500/data", 100).unwrap_err().is_not_found());
        assert!(matches!(
            s.read("blobs/1/data", 1).unwrap_err().kind,
            ErrorKind::TooLarge { .. }
        ));
        std::fs::write(&p, b"not a pack at all, not at all").unwrap();
        assert!(PackStorage::open(&p).is_err());
    }
}
