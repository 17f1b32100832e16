//! Deletion and moves: the only mutating operations stowage has.
//!
//! Implemented by backends, called **only** by the apply engine (`stowage-plan::apply`), and
//! only for targets a plan lists after they have been re-checked (ARCHITECTURE.md invariant 1).
//! Every method is idempotent where the registry's layout allows it: deleting something that is
//! already gone reports `Ok(false)`, so an interrupted apply can simply be resumed.

use std::path::Path;

use crate::{ErrorKind, FsStorage, Storage, StorageError};

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

fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

impl StorageWrite for FsStorage {
    fn delete(&self, path: &str) -> Result<bool, StorageError> {
        let p = self.full(path)?;
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if gone(&e) => return Ok(false),
            Err(e) => return Err(StorageError::io(path, e)),
        };
        let r = if meta.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if gone(&e) => Ok(false),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    fn remove_empty_dir(&self, path: &str) -> Result<bool, StorageError> {
        match std::fs::remove_dir(self.full(path)?) {
            Ok(()) => Ok(true),
            Err(e) if gone(&e) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(false),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    fn move_to(&self, path: &str, dest: &Path) -> Result<bool, StorageError> {
        let from = self.full(path)?;
        if let Err(e) = std::fs::symlink_metadata(&from) {
            return if gone(&e) {
                Ok(false)
            } else {
                Err(StorageError::io(path, e))
            };
        }
        let to = dest.join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StorageError::io(parent.display().to_string(), e))?;
        }
        if std::fs::symlink_metadata(&to).is_ok() {
            // A previous, interrupted move left a copy: keep the quarantined one only if the
            // source is gone; here the source exists, so refuse rather than guess.
            return Err(StorageError {
                kind: ErrorKind::Other,
                path: to.display().to_string(),
                source: Some(std::io::Error::other("already in quarantine")),
            });
        }
        std::fs::rename(&from, &to).map_err(|e| StorageError::io(path, e))?;
        Ok(true)
    }

    fn move_back(&self, src: &Path, path: &str) -> Result<bool, StorageError> {
        // Validate the key before touching anything (a journal is a file a person can edit).
        self.full(path)?;
        let from = src.join(path);
        if let Err(e) = std::fs::symlink_metadata(&from) {
            return if gone(&e) {
                Ok(false)
            } else {
                Err(StorageError::io(from.display().to_string(), e))
            };
        }
        let to = self.full(path)?;
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(StorageError {
                kind: ErrorKind::Other,
                path: path.to_string(),
                source: Some(std::io::Error::other(
                    "exists in the storage again; not overwritten",
                )),
            });
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StorageError::io(path, e))?;
        }
        std::fs::rename(&from, &to).map_err(|e| StorageError::io(path, e))?;
        Ok(true)
    }

    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        std::fs::create_dir_all(self.full(path)?).map_err(|e| StorageError::io(path, e))
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
