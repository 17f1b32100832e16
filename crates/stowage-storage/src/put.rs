//! Writing whole files: the one creating operation, used only by `stowage migrate` to fill a
//! target storage (never by a command that reads or plans, never on the source).
//!
//! Why a trait of its own rather than a method of [`StorageWrite`]: deleting and creating are
//! different powers (apply deletes what a plan lists and never creates; migrate creates and
//! never deletes), so each caller gets only the one it needs.
//!
//! The contract every backend keeps:
//! - **all or nothing**: a reader of `path` sees the old file (or none) or the whole new one,
//!   never a part. A filesystem writes to a staging file outside the layout and renames it
//!   into place; an object store makes one PUT or completes a multipart upload only after
//!   the last part;
//! - **the body decides**: the body is read to its end *before* anything becomes visible, and
//!   an error from the body (a digest check that failed, a short read) aborts the write. So a
//!   caller that verifies while it streams (migrate's sha256 check) never leaves a bad copy;
//! - **no symbolic link is followed** below the layout root (`beneath`), as for deletions.
//!
//! [`StorageWrite`]: crate::StorageWrite

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags, Timespec, Timestamps};
use stowage_model::Timestamp;

use crate::{ErrorKind, FsStorage, Storage, StorageError, beneath};

/// Creating access to a registry's layout root (the target of a migration).
pub trait StoragePut: Storage {
    /// Write `size` bytes read from `body` to `path` (creating parent directories where they
    /// exist), replacing what is there, all or nothing (see the module doc). `modified` is
    /// kept as the file's modification time where the backend can set it (a filesystem; an
    /// object store's `LastModified` is the time of the write).
    fn put(
        &self,
        path: &str,
        body: &mut dyn Read,
        size: u64,
        modified: Option<Timestamp>,
    ) -> Result<(), StorageError>;

    /// Remove what writing left outside the layout (a filesystem's empty staging directory)
    /// once no write is in progress. Nothing by default.
    fn put_finished(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

impl<T: StoragePut + ?Sized> StoragePut for std::sync::Arc<T> {
    fn put(
        &self,
        path: &str,
        body: &mut dyn Read,
        size: u64,
        modified: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        (**self).put(path, body, size, modified)
    }
    fn put_finished(&self) -> Result<(), StorageError> {
        (**self).put_finished()
    }
}

/// Where a filesystem stages files before renaming them into place: beside `docker/` in the
/// rootdirectory (same filesystem, so the rename is atomic; outside `docker/registry/v2`, so
/// the registry never sees a half-written file, and one left by a killed run is harmless).
pub const STAGING_DIR: &str = "stowage-staging";

static STAGED: AtomicU64 = AtomicU64::new(0);

impl FsStorage {
    fn staging(&self) -> Result<PathBuf, StorageError> {
        let root = self.root();
        if !root.ends_with(stowage_layout::LAYOUT_ROOT) {
            return Err(StorageError {
                kind: ErrorKind::Other,
                path: root.display().to_string(),
                source: Some(std::io::Error::other(format!(
                    "writing needs a layout root ending in {} (files are staged beside docker/)",
                    stowage_layout::LAYOUT_ROOT
                ))),
            });
        }
        let base = root
            .ancestors()
            .nth(3)
            .ok_or_else(|| StorageError::new(ErrorKind::Other, root.display().to_string()))?;
        Ok(base.join(STAGING_DIR))
    }

    fn open_staging(&self) -> Result<(PathBuf, OwnedFd), StorageError> {
        let dir = self.staging()?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io(dir.display().to_string(), e))?;
        let fd = beneath::open_base(&dir)?;
        Ok((dir, fd))
    }
}

fn io_err(path: &str, e: impl Into<std::io::Error>) -> StorageError {
    StorageError::io(path, e.into())
}

impl StoragePut for FsStorage {
    fn put(
        &self,
        path: &str,
        body: &mut dyn Read,
        size: u64,
        modified: Option<Timestamp>,
    ) -> Result<(), StorageError> {
        let (parent, name) = beneath::split(path)?;
        let (staging, sfd) = self.open_staging()?;
        let tmp = format!(
            "{}-{}",
            std::process::id(),
            STAGED.fetch_add(1, Ordering::Relaxed)
        );
        let shown_tmp = staging.join(&tmp).display().to_string();
        let fd = rustix::fs::openat(
            &sfd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| io_err(&shown_tmp, e))?;
        let written = (|| {
            let mut file = std::fs::File::from(fd);
            let n = std::io::copy(body, &mut file).map_err(|e| StorageError::io(path, e))?;
            if n != size {
                return Err(StorageError {
                    kind: ErrorKind::Other,
                    path: path.to_owned(),
                    source: Some(std::io::Error::other(format!(
                        "read {n} bytes where {size} were expected"
                    ))),
                });
            }
            file.flush().map_err(|e| io_err(&shown_tmp, e))?;
            if let Some(t) = modified {
                let ts = Timespec {
                    tv_sec: t.0.div_euclid(1_000_000_000),
                    tv_nsec: t.0.rem_euclid(1_000_000_000) as _,
                };
                let times = Timestamps {
                    last_access: ts,
                    last_modification: ts,
                };
                rustix::fs::futimens(file.as_fd(), &times).map_err(|e| io_err(&shown_tmp, e))?;
            }
            // Durable before it is journaled as copied: a power cut must not leave a
            // journaled blob empty.
            file.sync_all().map_err(|e| io_err(&shown_tmp, e))
        })();
        let renamed = written.and_then(|()| {
            let root = beneath::open_base(self.root())?;
            let dir = beneath::create_dir(root.as_fd(), parent)?;
            if beneath::kind_at(dir.as_fd(), name, path)? == Some(rustix::fs::FileType::Symlink) {
                return Err(StorageError::new(ErrorKind::Symlink, path));
            }
            rustix::fs::renameat(&sfd, tmp.as_str(), &dir, name).map_err(|e| {
                let mut se = io_err(path, e);
                if e == rustix::io::Errno::XDEV {
                    se.source = Some(std::io::Error::other(format!(
                        "{} is on another filesystem than the storage",
                        staging.display()
                    )));
                }
                se
            })
        });
        if renamed.is_err() {
            let _ = rustix::fs::unlinkat(&sfd, tmp.as_str(), rustix::fs::AtFlags::empty());
        }
        renamed
    }

    fn put_finished(&self) -> Result<(), StorageError> {
        let dir = self.staging()?;
        match std::fs::remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(StorageError::io(dir.display().to_string(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, FsStorage) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("docker/registry/v2");
        std::fs::create_dir_all(&root).unwrap();
        let s = FsStorage::open(&root).unwrap();
        (d, s)
    }

    #[test]
    fn put_creates_parents_keeps_the_date_and_replaces() {
        let (d, s) = storage();
        let t = Timestamp::from_secs(1_600_000_000);
        s.put("blobs/sha256/ab/abcd/data", &mut &b"hello"[..], 5, Some(t))
            .unwrap();
        assert_eq!(s.read("blobs/sha256/ab/abcd/data", 10).unwrap(), b"hello");
        assert_eq!(s.stat("blobs/sha256/ab/abcd/data").unwrap().modified, t);
        s.put("blobs/sha256/ab/abcd/data", &mut &b"bye"[..], 3, None)
            .unwrap();
        assert_eq!(s.read("blobs/sha256/ab/abcd/data", 10).unwrap(), b"bye");
        s.put_finished().unwrap();
        assert!(!d.path().join(STAGING_DIR).exists());
    }

    /// A body that fails (a digest check) or ends short leaves nothing behind.
    #[test]
    fn a_failing_or_short_body_leaves_nothing() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("sha256 mismatch"))
            }
        }
        let (d, s) = storage();
        let e = s.put("a/b/link", &mut Failing, 3, None).unwrap_err();
        assert!(e.to_string().contains("sha256 mismatch"), "{e}");
        let e = s.put("a/b/link", &mut &b"ab"[..], 3, None).unwrap_err();
        assert!(e.to_string().contains("2 bytes where 3"), "{e}");
        assert!(s.stat("a/b/link").unwrap_err().is_not_found());
        assert_eq!(
            std::fs::read_dir(d.path().join(STAGING_DIR))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn put_never_writes_through_a_symlink_or_outside() {
        let (d, s) = storage();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, s.root().join("repositories")).unwrap();
        let e = s
            .put("repositories/a/link", &mut &b"x"[..], 1, None)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        for bad in ["../x", "/etc/x", "a//b", "a/./b"] {
            assert!(s.put(bad, &mut &b"x"[..], 1, None).is_err(), "{bad}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
