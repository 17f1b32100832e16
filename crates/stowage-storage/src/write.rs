//! Deletion, moves and link creation: the only mutating operations stowage has.
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

    /// The modification time of the file `path` inside quarantine batch `batch` (a fenced
    /// link): an online apply restores a fenced link the registry wrote again between the
    /// re-check and the fence. `Ok(None)` when there is no such file.
    fn quarantined_modified(
        &self,
        batch: &Path,
        path: &str,
    ) -> Result<Option<stowage_model::Timestamp>, StorageError>;

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

    /// Replace the file `name` at the storage driver's root (a pull-through cache's
    /// `scheduler-state.json`) with `bytes`, atomically: a reader sees the old file or the new
    /// one, never a part. `None` when the backend cannot address the driver's root.
    fn replace_at_driver_root(&self, name: &str, bytes: &[u8]) -> Option<Result<(), StorageError>> {
        let _ = (name, bytes);
        None
    }

    /// A read-only view of what quarantine batch `batch` holds, in the layout's own shape
    /// (`repositories/<name>/_manifests/...`), so a scan of it shows exactly what was fenced.
    /// An online apply compares a fenced repository section with the plan through it: a push
    /// that landed between the re-check and the fence is in the fenced copy, nowhere else.
    /// `None` where a fenced copy does not keep what that comparison needs (an object
    /// store's copy takes the copy's date as its own): there, such plans apply offline.
    fn quarantine_view(&self, batch: &Path) -> Option<Result<Box<dyn Storage>, StorageError>> {
        let _ = batch;
        None
    }

    /// Whether [`StorageWrite::quarantine_view`] is available (an online apply that removes
    /// whole repositories needs it, and is refused up front where it is not).
    fn can_view_quarantine(&self) -> bool {
        false
    }

    /// Whether [`StorageWrite::create_file`] works here (a `repo-move` plan is refused up
    /// front where it does not).
    fn can_create_files(&self) -> bool {
        false
    }

    /// Create the small file `path` (a link `repo-move` writes) with `content`, creating its
    /// parent directories, never replacing anything: `Ok(false)` when `path` exists already
    /// (a resumed apply, or the registry wrote it; the caller reads it back and compares).
    /// The file appears whole or not at all, so the registry never reads a partial link.
    /// Backends that cannot do that refuse (the default).
    fn create_file(&self, path: &str, content: &[u8]) -> Result<bool, StorageError> {
        let _ = content;
        Err(StorageError {
            kind: ErrorKind::Other,
            path: path.to_string(),
            source: Some(std::io::Error::other(
                "this storage backend cannot create links",
            )),
        })
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
    fn quarantined_modified(
        &self,
        batch: &Path,
        path: &str,
    ) -> Result<Option<stowage_model::Timestamp>, StorageError> {
        (**self).quarantined_modified(batch, path)
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
    fn replace_at_driver_root(&self, name: &str, bytes: &[u8]) -> Option<Result<(), StorageError>> {
        (**self).replace_at_driver_root(name, bytes)
    }
    fn can_create_files(&self) -> bool {
        (**self).can_create_files()
    }
    fn quarantine_view(&self, batch: &Path) -> Option<Result<Box<dyn Storage>, StorageError>> {
        (**self).quarantine_view(batch)
    }
    fn can_view_quarantine(&self) -> bool {
        (**self).can_view_quarantine()
    }
    fn create_file(&self, path: &str, content: &[u8]) -> Result<bool, StorageError> {
        (**self).create_file(path, content)
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

/// A quarantine batch directory, or `None` when it does not exist (purged: nothing in it).
fn open_batch(batch: &Path) -> Result<Option<std::os::fd::OwnedFd>, StorageError> {
    match beneath::open_base(batch) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn refuse_symlink(path: &str) -> StorageError {
    StorageError::new(ErrorKind::Symlink, path)
}

/// Every path is resolved beneath the layout root without following a symbolic link
/// (`beneath`): a plan or journal entry can never make apply act outside the storage, even
/// if a directory of the tree was swapped for a link after the plan was made.
impl StorageWrite for FsStorage {
    fn replace_at_driver_root(&self, name: &str, bytes: &[u8]) -> Option<Result<(), StorageError>> {
        let dir = self.driver_root()?.to_path_buf();
        Some(replace_file(&dir, name, bytes))
    }

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
        // The key is refused before anything else, batch or no batch.
        beneath::split(path)?;
        let Some(batch) = open_batch(src)? else {
            return Ok(false);
        };
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
        // The key is refused before anything else, batch or no batch.
        beneath::split(path)?;
        let Some(base) = open_batch(batch)? else {
            return Ok(false);
        };
        let Some((dir, name)) = parent_of(base.as_fd(), path)? else {
            return Ok(false);
        };
        beneath::remove_at(dir.as_fd(), &name, path)
    }

    fn quarantined_modified(
        &self,
        batch: &Path,
        path: &str,
    ) -> Result<Option<stowage_model::Timestamp>, StorageError> {
        // The key is refused before anything else, batch or no batch.
        beneath::split(path)?;
        let Some(base) = open_batch(batch)? else {
            return Ok(None);
        };
        let Some((dir, name)) = parent_of(base.as_fd(), path)? else {
            return Ok(None);
        };
        match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            // Whole seconds: what the scanner keeps, and what `maybe_after` compares.
            Ok(st) => Ok(Some(stowage_model::Timestamp::from_secs(st.st_mtime))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(StorageError::io(path, std::io::Error::from(e))),
        }
    }

    fn create_dir_all(&self, path: &str) -> Result<(), StorageError> {
        let root = self.root_fd()?;
        beneath::create_dir(root.as_fd(), path).map(|_| ())
    }

    fn can_create_files(&self) -> bool {
        true
    }

    fn create_file(&self, path: &str, content: &[u8]) -> Result<bool, StorageError> {
        let root = self.root_fd()?;
        let (parent, name) = beneath::split(path)?;
        let dir = beneath::create_dir(root.as_fd(), parent)?;
        beneath::write_new(dir.as_fd(), name, content, path)
    }

    fn quarantine_view(&self, batch: &Path) -> Option<Result<Box<dyn Storage>, StorageError>> {
        // A rename keeps every file's inode, so its modification time too: the fenced copy
        // is the section as it was, dates included.
        Some(FsStorage::open(batch).map(|s| Box::new(s) as Box<dyn Storage>))
    }

    fn can_view_quarantine(&self) -> bool {
        true
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

/// Write `dir/name` atomically ([`beneath::replace`]: a fresh, exclusively created
/// temporary file beside it (`.<name>.stowage-tmp-<pid>-<ns>`, outside the layout, so no
/// scan counts it) with the old file's owner and mode, flushed, renamed over the old one,
/// and the directory flushed). The registry itself writes the scheduler state with a
/// truncate-and-write `PutContent`; a crash in the middle of that leaves a truncated file on
/// which registry 2.8 refuses to start, so ours must never leave one.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let fd = beneath::open_base(dir)?;
    beneath::replace(
        fd.as_fd(),
        name,
        bytes,
        &dir.join(name).display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Review finding: the state file's temporary name was fixed and opened following
    /// symbolic links, so a link planted there by the registry's user made a root apply
    /// write through it. Now the name is fresh and created exclusively: a planted link (at
    /// the old name) and its target stay untouched, and no temporary file is left.
    #[test]
    fn replacing_the_state_file_never_writes_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("scheduler-state.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".scheduler-state.json.stowage-tmp"))
            .unwrap();
        replace_file(&root, "scheduler-state.json", b"{\"new\":1}").unwrap();
        assert_eq!(
            fs::read(root.join("scheduler-state.json")).unwrap(),
            b"{\"new\":1}"
        );
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        let mut names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".scheduler-state.json.stowage-tmp", "scheduler-state.json"]
        );
    }

    /// The state file itself replaced by a symbolic link: refused, and neither the link nor
    /// what it points at changes (its 0777 and owner are never lent to a new file).
    #[test]
    fn a_state_file_that_is_a_symbolic_link_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("scheduler-state.json")).unwrap();
        assert!(replace_file(&root, "scheduler-state.json", b"{}").is_err());
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        let meta = fs::symlink_metadata(root.join("scheduler-state.json")).unwrap();
        assert!(meta.file_type().is_symlink());
    }

    /// A storage whose `repositories/team` was swapped for a symbolic link to a directory
    /// outside it after the plan was made (issue: escape from the root in apply).
    fn swapped() -> (tempfile::TempDir, FsStorage, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("docker/registry/v2");
        fs::create_dir_all(root.join("repositories")).unwrap();
        let outside = d.path().join("outside");
        fs::create_dir_all(outside.join("app/_uploads/empty")).unwrap();
        fs::create_dir_all(outside.join("app/_layers")).unwrap();
        fs::write(outside.join("app/_layers/keep"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("repositories/team")).unwrap();
        let s = FsStorage::open(&root).unwrap();
        (d, s, outside)
    }

    #[test]
    fn apply_never_removes_or_moves_through_a_symlinked_ancestor() {
        let (d, s, outside) = swapped();
        let q = d.path().join("q/batch-1");
        fs::create_dir_all(&q).unwrap();
        let e = s
            .remove_empty_dir("repositories/team/app/_uploads/empty")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        let e = s.delete("repositories/team/app/_layers").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        let e = s.move_to("repositories/team/app/_layers", &q).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        // The link itself is not a target either.
        let e = s.delete("repositories/team").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        assert!(outside.join("app/_uploads/empty").is_dir());
        assert!(outside.join("app/_layers/keep").is_file());
        assert!(s.root().join("repositories/team").is_symlink());
    }

    #[test]
    fn restore_and_create_never_write_through_a_symlinked_ancestor() {
        let (d, s, outside) = swapped();
        let q = d.path().join("q/batch-1");
        fs::create_dir_all(q.join("repositories/team/app/_manifests")).unwrap();
        fs::write(q.join("repositories/team/app/_manifests/x"), b"x").unwrap();
        let e = s
            .move_back(&q, "repositories/team/app/_manifests/x")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        let e = s
            .create_dir_all("repositories/team/app/_manifests")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        assert!(!outside.join("app/_manifests").exists());
    }

    #[test]
    fn traversal_keys_are_refused_before_any_system_call() {
        let (_d, s, _) = swapped();
        for k in ["../outside", "repositories/../../outside", "/etc", "a//b"] {
            assert!(s.delete(k).is_err(), "{k}");
            assert!(s.remove_empty_dir(k).is_err(), "{k}");
        }
    }

    #[test]
    fn moves_and_removals_work_beneath_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("docker/registry/v2");
        fs::create_dir_all(root.join("blobs/sha256/ab/abcd")).unwrap();
        fs::write(root.join("blobs/sha256/ab/abcd/data"), b"data").unwrap();
        fs::create_dir_all(root.join("repositories/a/_uploads/u")).unwrap();
        let s = FsStorage::open(&root).unwrap();
        let q = d.path().join("stowage-quarantine/batch-1");
        s.check_quarantine(&q).unwrap();
        assert!(s.move_to("blobs/sha256/ab/abcd", &q).unwrap());
        assert!(!s.move_to("blobs/sha256/ab/abcd", &q).unwrap(), "gone");
        assert!(q.join("blobs/sha256/ab/abcd/data").is_file());
        // The registry wrote it again meanwhile: never overwritten.
        fs::create_dir_all(root.join("blobs/sha256/ab/abcd")).unwrap();
        fs::write(root.join("blobs/sha256/ab/abcd/data"), b"data").unwrap();
        assert!(s.move_back(&q, "blobs/sha256/ab/abcd").is_err());
        fs::remove_dir_all(root.join("blobs/sha256/ab/abcd")).unwrap();
        assert!(s.move_back(&q, "blobs/sha256/ab/abcd").unwrap());
        assert_eq!(
            fs::read(root.join("blobs/sha256/ab/abcd/data")).unwrap(),
            b"data"
        );
        assert!(s.move_to("blobs/sha256/ab/abcd", &q).unwrap());
        assert!(s.delete_quarantined(&q, "blobs/sha256/ab/abcd").unwrap());
        assert!(!q.join("blobs/sha256/ab/abcd").exists());
        assert!(s.remove_empty_dir("repositories/a/_uploads/u").unwrap());
        assert!(!s.remove_empty_dir("repositories/a").unwrap(), "not empty");
        assert!(s.delete("repositories/a").unwrap());
        assert_eq!(
            s.default_quarantine(),
            Some(d.path().canonicalize().unwrap().join("stowage-quarantine"))
        );
    }

    #[test]
    fn created_files_appear_whole_never_replace_and_never_follow_a_link() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("docker/registry/v2");
        fs::create_dir_all(root.join("repositories")).unwrap();
        let s = FsStorage::open(&root).unwrap();
        let p = "repositories/new/app/_layers/sha256/ab/link";
        // Leftover temporary files of an interrupted write (this version's and the fixed
        // name of earlier ones) are removed.
        let d_ab = root.join("repositories/new/app/_layers/sha256/ab");
        fs::create_dir_all(&d_ab).unwrap();
        fs::write(d_ab.join("link.stowage.tmp"), b"partial").unwrap();
        fs::write(d_ab.join(".link.stowage-tmp-1-2"), b"partial").unwrap();
        assert!(s.create_file(p, b"sha256:ab").unwrap());
        assert_eq!(fs::read(root.join(p)).unwrap(), b"sha256:ab");
        assert_eq!(
            fs::read_dir(&d_ab).unwrap().count(),
            1,
            "only the link is left"
        );
        assert!(
            !s.create_file(p, b"sha256:cd").unwrap(),
            "exists: not replaced"
        );
        assert_eq!(fs::read(root.join(p)).unwrap(), b"sha256:ab");
        let (_d, s, outside) = swapped();
        let e = s
            .create_file("repositories/team/app/_layers/x/link", b"x")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Symlink, "{e}");
        assert!(!outside.join("app/_layers/x").exists());
        assert!(s.create_file("../escape", b"x").is_err());
    }

    /// Review finding: links and directories a root apply created were root's, 755/644, so
    /// the registry (its own user) could not write below them afterwards. They now take the
    /// owner of the directory they are made in and its mode (files without execute bits),
    /// set on the open descriptor. Needs root to give files away (skipped otherwise).
    #[test]
    fn created_links_and_directories_take_the_owner_and_mode_of_their_parent() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let d = tempfile::tempdir().unwrap();
        // Our own user is the one that owns what we just made.
        if fs::metadata(d.path()).unwrap().uid() != 0 {
            eprintln!("skipped: needs root to create files for another user");
            return;
        }
        let root = d.path().join("docker/registry/v2");
        fs::create_dir_all(root.join("repositories")).unwrap();
        let repos = root.join("repositories");
        std::os::unix::fs::chown(&repos, Some(4321), Some(4322)).unwrap();
        fs::set_permissions(&repos, fs::Permissions::from_mode(0o2775)).unwrap();
        let s = FsStorage::open(&root).unwrap();
        let p = "repositories/new/app/_layers/sha256/ab/link";
        assert!(s.create_file(p, b"sha256:ab").unwrap());
        let mut dir = root.join("repositories/new");
        for part in ["app", "_layers", "sha256", "ab", ""] {
            let m = fs::symlink_metadata(&dir).unwrap();
            assert_eq!((m.uid(), m.gid()), (4321, 4322), "{}", dir.display());
            assert_eq!(m.mode() & 0o7777, 0o2775, "{}", dir.display());
            if !part.is_empty() {
                dir = dir.join(part);
            }
        }
        let m = fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 4322));
        assert_eq!(m.mode() & 0o7777, 0o664);
        // A symbolic link planted at the fixed temporary name of earlier versions is
        // neither followed nor an obstacle.
        let outside = d.path().join("outside");
        fs::write(&outside, b"precious").unwrap();
        let q = "repositories/new/app/_layers/sha256/cd/link";
        fs::create_dir_all(root.join("repositories/new/app/_layers/sha256/cd")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(format!("{q}.stowage.tmp"))).unwrap();
        assert!(s.create_file(q, b"sha256:cd").unwrap());
        assert_eq!(fs::read(&outside).unwrap(), b"precious");
        assert_eq!(fs::read(root.join(q)).unwrap(), b"sha256:cd");
    }
}
