//! Deletion and moves: the only mutating operations stowage has.
//!
//! Implemented by backends, called **only** by the apply engine (`stowage-plan::apply`), and
//! only for targets a plan lists after they have been re-checked (ARCHITECTURE.md invariant 1).
//! Every method is idempotent where the registry's layout allows it: deleting something that is
//! already gone reports `Ok(false)`, so an interrupted apply can simply be resumed.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;

use crate::{ErrorKind, FsStorage, Storage, StorageError, beneath};

/// Mutating access to a registry's layout root.
pub trait StorageWrite: Storage {
    /// Delete a file, or a directory and everything below it. `Ok(false)` when already gone.
    fn delete(&self, path: &str) -> Result<bool, StorageError>;

    /// Remove a directory only if it is empty. `Ok(false)` when not empty or gone. On an
    /// object store directories do not exist, so this is always `Ok(false)`.
    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError>;

    /// Move a file or directory to `dest/<path>` (quarantine), creating parents, keeping
    /// contents and modification times. `Ok(false)` when the source is already gone.
    fn move_to(&self, path: &str, dest: &Path) -> Result<bool, StorageError>;

    /// Move `src/<path>` back to `<path>` (restore from quarantine). Refuses to overwrite.
    fn move_back(&self, src: &Path, path: &str) -> Result<bool, StorageError>;

    /// Create a directory and its parents (restore recreates directories an apply removed).
    fn create_dir_all(&self, path: &str) -> Result<(), StorageError>;

    /// Delete what a quarantine batch `batch` holds for `path` (a fenced target an online
    /// apply found nobody needs). `Ok(false)` when gone.
    fn delete_quarantined(&self, batch: &Path, path: &str) -> Result<bool, StorageError>;

    /// Where an apply fences its targets when no quarantine directory was given, if the
    /// backend has a natural place (a filesystem: beside `docker/`, on the same filesystem).
    fn default_quarantine(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Whether `dest` can receive moves cheaply (same filesystem: a rename).
    fn check_quarantine(&self, dest: &Path) -> Result<(), StorageError>;

    /// Where the data of the quarantine batch `batch` is kept, for people and for the batch's
    /// record. The batch directory is always local (it holds the journal); a filesystem keeps
    /// the data in it too, an object store under a quarantine prefix of its own bucket
    /// (`<rootdirectory>/stowage-quarantine/<batch name>/`), outside the registry's layout.
    fn quarantine_location(&self, batch: &Path) -> String {
        batch.display().to_string()
    }

    /// Delete the data of quarantine batch `batch` kept outside the batch directory (object
    /// stores). A filesystem keeps it inside, so purging the directory is enough.
    fn purge_quarantine(&self, batch: &Path) -> Result<(), StorageError> {
        let _ = batch;
        Ok(())
    }
}

impl<T: StorageWrite + ?Sized> StorageWrite for std::sync::Arc<T> {
    fn delete(&self, path: &str) -> Result<bool, StorageError> {
        (**self).delete(path)
    }
    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError> {
        (**self).remove_empty_dir(path)
    }
    fn move_to(&self, path: &str, dest: &Path) -> Result<bool, StorageError> {
        (**self).move_to(path, dest)
    }
    fn move_back(&self, src: &Path, path: &str) -> Result<bool, StorageError> {
        (**self).move_back(src, path)
    }
    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        (**self).create_dir_all(path)
    }
    fn delete_quarantined(&self, batch: &Path, path: &str) -> Result<bool, StorageError> {
        (**self).delete_quarantined(batch, path)
    }
    fn default_quarantine(&self) -> Option<std::path::PathBuf> {
        (**self).default_quarantine()
    }
    fn check_quarantine(&self, dest: &Path) -> Result<(), StorageError> {
        (**self).check_quarantine(dest)
    }
    fn quarantine_location(&self, batch: &Path) -> String {
        (**self).quarantine_location(batch)
    }
    fn purge_quarantine(&self, batch: &Path) -> Result<(), StorageError> {
        (**self).purge_quarantine(batch)
    }
}

impl FsStorage {
    fn root_fd(&self) -> Result<std::os::fd::OwnedFd, StorageError> {
        beneath::open_base(self.root())
    }
}

/// The parent directory of `path` beneath `base`, or `None` when it does not exist.
fn parent_of(
    base: BorrowedFd<'_>,
    path: &str,
) -> Result<Option<(std::os::fd::OwnedFd, String)>, StorageError> {
    let (parent, name) = beneath::split(path)?;
    match beneath::open_dir(base, parent) {
        Ok(fd) => Ok(Some((fd, name.to_string()))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(mut e) => {
            if e.path.is_empty() || e.path == parent {
                e.path = path.to_string();
            }
            Err(e)
        }
    }
}

fn refuse_symlink(path: &str) -> StorageError {
    StorageError::new(ErrorKind::Symlink, path)
}

/// Every path is resolved beneath the layout root without following a symbolic link
/// (`beneath`): a plan or journal entry can never make apply act outside the storage, even
/// if a directory of the tree was swapped for a link after the plan was made.
impl StorageWrite for FsStorage {
    fn delete(&self, path: &str) -> Result<bool, StorageError> {
        let root = self.root_fd()?;
        let Some((dir, name)) = parent_of(root.as_fd(), path)? else {
            return Ok(false);
        };
        if beneath::kind_at(dir.as_fd(), &name, path)? == Some(FileType::Symlink) {
            return Err(refuse_symlink(path));
        }
        beneath::remove_at(dir.as_fd(), &name, path)
    }

    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError> {
        let root = self.root_fd()?;
        let Some((dir, name)) = parent_of(root.as_fd(), path)? else {
            return Ok(false);
        };
        match rustix::fs::unlinkat(&dir, name.as_str(), AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) | Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => Ok(false),
            Err(Errno::NOTDIR) => match beneath::kind_at(dir.as_fd(), &name, path)? {
                Some(FileType::Symlink) => Err(refuse_symlink(path)),
                _ => Err(StorageError::new(ErrorKind::NotADirectory, path)),
            },
            Err(e) => Err(StorageError::io(path, std::io::Error::from(e))),
        }
    }

    fn move_to(&self, path: &str, dest: &Path) -> Result<bool, StorageError> {
        let root = self.root_fd()?;
        let Some((from, name)) = parent_of(root.as_fd(), path)? else {
            return Ok(false);
        };
        match beneath::kind_at(from.as_fd(), &name, path)? {
            None => return Ok(false),
            Some(FileType::Symlink) => return Err(refuse_symlink(path)),
            Some(_) => {}
        }
        let batch = beneath::open_base(dest)?;
        let (parent, _) = beneath::split(path)?;
        let to = beneath::create_dir(batch.as_fd(), parent).map_err(|mut e| {
            e.path = dest.join(&e.path).display().to_string();
            e
        })?;
        beneath::rename_noreplace(from.as_fd(), to.as_fd(), &name, path).map_err(|mut e| {
            if e.kind == ErrorKind::Other {
                // A previous, interrupted move left a copy while the source still exists:
                // refuse rather than guess which one is right.
                e.path = dest.join(path).display().to_string();
                e.source = Some(std::io::Error::other("already in quarantine"));
            }
            e
        })?;
        Ok(true)
    }

    fn move_back(&self, src: &Path, path: &str) -> Result<bool, StorageError> {
        let batch = beneath::open_base(src)?;
        let Some((from, name)) = parent_of(batch.as_fd(), path)? else {
            return Ok(false);
        };
        match beneath::kind_at(from.as_fd(), &name, path)? {
            None => return Ok(false),
            Some(FileType::Symlink) => return Err(refuse_symlink(path)),
            Some(_) => {}
        }
        let root = self.root_fd()?;
        let (parent, _) = beneath::split(path)?;
        let to = beneath::create_dir(root.as_fd(), parent)?;
        beneath::rename_noreplace(from.as_fd(), to.as_fd(), &name, path).map_err(|mut e| {
            if e.kind == ErrorKind::Other {
                e.source = Some(std::io::Error::other(
                    "exists in the storage again; not overwritten",
                ));
            }
            e
        })?;
        Ok(true)
    }

    fn delete_quarantined(&self, batch: &Path, path: &str) -> Result<bool, StorageError> {
        let base = beneath::open_base(batch)?;
        let Some((dir, name)) = parent_of(base.as_fd(), path)? else {
            return Ok(false);
        };
        beneath::remove_at(dir.as_fd(), &name, path)
    }

    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        let root = self.root_fd()?;
        beneath::create_dir(root.as_fd(), path).map(|_| ())
    }

    fn default_quarantine(&self) -> Option<std::path::PathBuf> {
        // `<rootdirectory>/stowage-quarantine`: the same filesystem as the storage (a rename
        // is atomic and free) and outside `docker/registry/v2`, which the registry never
        // looks beyond. The layout root is `<rootdirectory>/docker/registry/v2`.
        if !self.root().ends_with("docker/registry/v2") {
            return None;
        }
        let rootdirectory = self.root().parent()?.parent()?.parent()?;
        Some(rootdirectory.join("stowage-quarantine"))
    }

    fn check_quarantine(&self, dest: &Path) -> Result<(), StorageError> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(dest)
            .map_err(|e| StorageError::io(dest.display().to_string(), e))?;
        let a = std::fs::metadata(self.root()).map_err(|e| StorageError::io("", e))?;
        let b =
            std::fs::metadata(dest).map_err(|e| StorageError::io(dest.display().to_string(), e))?;
        if a.dev() != b.dev() {
            return Err(StorageError {
                kind: ErrorKind::Other,
                path: dest.display().to_string(),
                source: Some(std::io::Error::other(
                    "not on the same filesystem as the storage: moves would copy every byte; choose a directory on the same filesystem",
                )),
            });
        }
        let canonical = std::fs::canonicalize(dest)
            .map_err(|e| StorageError::io(dest.display().to_string(), e))?;
        if canonical.starts_with(self.root()) {
            return Err(StorageError {
                kind: ErrorKind::Other,
                path: dest.display().to_string(),
                source: Some(std::io::Error::other(
                    "inside docker/registry/v2: the registry would see it; choose a directory outside",
                )),
            });
        }
        Ok(())
    }
}
