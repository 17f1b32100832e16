//! Paths resolved beneath a directory without following any symbolic link.
//!
//! Why: `apply`, `restore` and `quarantine purge` act on paths that come from a plan or a
//! journal (files a person can edit) inside a tree that other processes write. A path such
//! as `repositories/team/_uploads` is harmless as text, but if `team` became a symbolic link
//! to `/etc` after the plan was made, `std::fs::remove_dir("<root>/repositories/team/...")`
//! would act outside the storage. Every mutating operation therefore opens the parent
//! directory of its target relative to a directory descriptor of the root, with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (Linux 5.6+) and
//! a component-by-component `O_NOFOLLOW | O_DIRECTORY` walk otherwise, then acts on the last
//! component with the `*at` calls (`unlinkat`, `renameat2(RENAME_NOREPLACE)`, `mkdirat`),
//! which never follow a symbolic link in their last component either.
//!
//! A symbolic link anywhere on the way is an [`ErrorKind::Symlink`] error naming the path.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{ErrorKind, StorageError};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Split a relative key into its components, refusing anything that could leave the base
/// ([`StorageError::key`]: absolute paths, empty, `.` and `..` components).
pub(crate) fn components(rel: &str) -> Result<Vec<&str>, StorageError> {
    let key = StorageError::key(rel)?;
    if key.is_root() {
        return Ok(Vec::new());
    }
    Ok(key.as_str().split('/').collect())
}

fn err(path: &str, e: Errno) -> StorageError {
    let kind_symlink = e == Errno::LOOP || e == Errno::XDEV;
    let mut se = StorageError::io(path, io::Error::from(e));
    if kind_symlink {
        // ELOOP: RESOLVE_NO_SYMLINKS or O_NOFOLLOW met a link; EXDEV: RESOLVE_BENEATH saw
        // the path leave the base (only possible through a link, as `..` is refused).
        se.kind = ErrorKind::Symlink;
        se.source = Some(io::Error::other(
            "a component is a symbolic link or leaves the storage; not followed",
        ));
    }
    se
}

/// Open a directory by absolute path (the storage root or a quarantine batch: chosen by the
/// operator, so links in *its own* path are theirs to make).
pub(crate) fn open_base(dir: &Path) -> Result<OwnedFd, StorageError> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StorageError::io(dir.display().to_string(), io::Error::from(e)))
}

/// Open the directory `rel` beneath `base`, following no symbolic link. `rel` may be "".
pub(crate) fn open_dir(base: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd, StorageError> {
    let parts = components(rel)?;
    if parts.is_empty() {
        return rustix::fs::openat(base, ".", DIR_FLAGS, Mode::empty()).map_err(|e| err(rel, e));
    }
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(base, rel, DIR_FLAGS, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        // No openat2 (kernel < 5.6, or a seccomp filter that refuses it): walk.
        Err(Errno::NOSYS) | Err(Errno::PERM) => walk(base, &parts, false, rel),
        // ENOTDIR on a symlinked component with O_DIRECTORY: report it as what it is.
        Err(Errno::NOTDIR) => walk(base, &parts, false, rel),
        Err(e) => Err(err(rel, e)),
    }
}

/// Open the directory `rel` beneath `base`, creating missing components (mode 0755), and
/// following no symbolic link.
pub(crate) fn create_dir(base: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd, StorageError> {
    let parts = components(rel)?;
    walk(base, &parts, true, rel)
}

fn walk(
    base: BorrowedFd<'_>,
    parts: &[&str],
    create: bool,
    rel: &str,
) -> Result<OwnedFd, StorageError> {
    let mut cur =
        rustix::fs::openat(base, ".", DIR_FLAGS, Mode::empty()).map_err(|e| err(rel, e))?;
    for (i, c) in parts.iter().enumerate() {
        let shown = parts[..=i].join("/");
        // A directory made here takes its parent's owner and mode: made with the mode (the
        // umask may narrow it), then given both on its descriptor below.
        let like = if create {
            let like = Inherit::from_dir(cur.as_fd(), &shown)?;
            match rustix::fs::mkdirat(&cur, *c, Mode::from_raw_mode(like.dir_mode & 0o777)) {
                Ok(()) => Some(like),
                Err(Errno::EXIST) => None,
                Err(e) => return Err(err(&shown, e)),
            }
        } else {
            None
        };
        cur = match rustix::fs::openat(&cur, *c, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOTDIR) | Err(Errno::LOOP) => {
                // O_NOFOLLOW | O_DIRECTORY on a link fails with ENOTDIR or ELOOP: tell which.
                let st = rustix::fs::statat(&cur, *c, AtFlags::SYMLINK_NOFOLLOW);
                let e = match st {
                    Ok(s) if FileType::from_raw_mode(s.st_mode) == FileType::Symlink => Errno::LOOP,
                    _ => Errno::NOTDIR,
                };
                return Err(err(&shown, e));
            }
            Err(e) => return Err(err(&shown, e)),
        };
        if let Some(like) = like {
            like.give(cur.as_fd(), like.dir_mode, &shown)?;
        }
    }
    Ok(cur)
}

/// The owner and mode a new entry in a directory takes: the directory's owner, and its
/// permission bits (a directory) or those without the execute bits (a file): what the
/// registry's own user and umask gave the directory. Why: an apply run as root would
/// otherwise leave root-owned, 755/644 directories and links in a tree the registry (its
/// own user) must write into afterwards (review finding).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Inherit {
    uid: u32,
    gid: u32,
    pub dir_mode: u32,
    pub file_mode: u32,
}

impl Inherit {
    pub(crate) fn from_dir(dir: BorrowedFd<'_>, shown: &str) -> Result<Inherit, StorageError> {
        let st = rustix::fs::fstat(dir).map_err(|e| err(shown, e))?;
        Ok(Inherit::from_stat(&st))
    }

    fn from_stat(st: &rustix::fs::Stat) -> Inherit {
        let mode = st.st_mode & 0o7777;
        Inherit {
            uid: st.st_uid,
            gid: st.st_gid,
            dir_mode: mode,
            file_mode: mode & 0o666,
        }
    }

    /// Give the open `fd` this owner and `mode`, on the descriptor (never through a path).
    /// Changing the owner needs privilege: an unprivileged apply's files stay its own, as
    /// they always were (EPERM ignored); the mode is always set.
    pub(crate) fn give(
        &self,
        fd: BorrowedFd<'_>,
        mode: u32,
        shown: &str,
    ) -> Result<(), StorageError> {
        let st = rustix::fs::fstat(fd).map_err(|e| err(shown, e))?;
        if st.st_uid != self.uid || st.st_gid != self.gid {
            let uid = rustix::fs::Uid::from_raw(self.uid);
            let gid = rustix::fs::Gid::from_raw(self.gid);
            match rustix::fs::fchown(fd, Some(uid), Some(gid)) {
                Ok(()) | Err(Errno::PERM) => {}
                Err(e) => return Err(err(shown, e)),
            }
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| err(shown, e))
    }
}

/// Write `content` into a fresh temporary file beside `name` in `dir`
/// (`.<name>.stowage-tmp-<pid>-<ns>`), created exclusively (`O_CREAT | O_EXCL |
/// O_NOFOLLOW`: never an existing file, never through a symbolic link someone who can write
/// the directory planted), given `owner`'s owner and `mode` on the open descriptor, and
/// synced. Returns the temporary name; the caller renames it into place. The one way stowage
/// writes a file, shared by link creation and the cache state's replacement.
pub(crate) fn write_temp(
    dir: BorrowedFd<'_>,
    name: &str,
    content: &[u8],
    owner: Option<&Inherit>,
    mode: u32,
    shown: &str,
) -> Result<String, StorageError> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = format!("{}{}-{nonce}", temp_prefix(name), std::process::id());
    let flags = OFlags::WRONLY
        .union(OFlags::CREATE)
        .union(OFlags::EXCL)
        .union(OFlags::NOFOLLOW)
        .union(OFlags::CLOEXEC);
    let fd = rustix::fs::openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600))
        .map_err(|e| err(shown, e))?;
    let fill = || -> Result<(), StorageError> {
        match owner {
            Some(o) => o.give(fd.as_fd(), mode, shown)?,
            None => {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(shown, e))?
            }
        }
        let mut written = 0;
        while written < content.len() {
            match rustix::io::write(&fd, &content[written..]) {
                Ok(0) => return Err(err(shown, Errno::IO)),
                Ok(n) => written += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(err(shown, e)),
            }
        }
        rustix::fs::fsync(&fd).map_err(|e| err(shown, e))
    };
    if let Err(e) = fill() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return Err(e);
    }
    Ok(tmp)
}

fn temp_prefix(name: &str) -> String {
    format!(".{name}.stowage-tmp-")
}

/// Remove what an interrupted [`write_temp`] for `name` left in `dir` (its own names only;
/// `unlinkat` never follows a link).
fn remove_stale_temps(dir: BorrowedFd<'_>, name: &str, shown: &str) -> Result<(), StorageError> {
    let prefix = temp_prefix(name);
    let mut stale = Vec::new();
    let dup = rustix::io::dup(dir).map_err(|e| err(shown, e))?;
    let mut d = rustix::fs::Dir::new(dup).map_err(|e| err(shown, e))?;
    while let Some(ent) = d.read() {
        let ent = ent.map_err(|e| err(shown, e))?;
        let n = ent.file_name().to_bytes();
        // The fixed name earlier versions used, too.
        if n.starts_with(prefix.as_bytes()) || n == format!("{name}.stowage.tmp").as_bytes() {
            stale.push(n.to_vec());
        }
    }
    for n in stale {
        let n = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&n);
        match rustix::fs::unlinkat(dir, n, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(err(shown, e)),
        }
    }
    Ok(())
}

/// `a/b/c` -> (`a/b`, `c`).
pub(crate) fn split(rel: &str) -> Result<(&str, &str), StorageError> {
    components(rel)?;
    match rel.rsplit_once('/') {
        Some((parent, name)) => Ok((parent, name)),
        None if !rel.is_empty() => Ok(("", rel)),
        None => Err(StorageError {
            kind: ErrorKind::Other,
            path: rel.to_string(),
            source: Some(io::Error::other("the storage root itself is not a target")),
        }),
    }
}

/// The type of `name` in `dir`, without following it; `None` when it does not exist.
pub(crate) fn kind_at(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
) -> Result<Option<FileType>, StorageError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(FileType::from_raw_mode(s.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(err(shown, e)),
    }
}

/// Remove `name` in `dir`: a file (or any non-directory, a link itself included), or a
/// directory and everything below it, never following a link. `Ok(false)` when gone.
pub(crate) fn remove_at(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
) -> Result<bool, StorageError> {
    match kind_at(dir, name, shown)? {
        None => Ok(false),
        Some(FileType::Directory) => {
            remove_tree(dir, name, shown)?;
            Ok(true)
        }
        Some(_) => match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(err(shown, e)),
        },
    }
}

fn remove_tree(parent: BorrowedFd<'_>, name: &str, shown: &str) -> Result<(), StorageError> {
    let fd = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(err(shown, e)),
    };
    let mut names: Vec<(Vec<u8>, Option<FileType>)> = Vec::new();
    {
        let dup = rustix::io::dup(&fd).map_err(|e| err(shown, e))?;
        let mut d = rustix::fs::Dir::new(dup).map_err(|e| err(shown, e))?;
        while let Some(ent) = d.read() {
            let ent = ent.map_err(|e| err(shown, e))?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let t = ent.file_type();
            names.push((n.to_vec(), (t != FileType::Unknown).then_some(t)));
        }
    }
    for (n, t) in names {
        let child = String::from_utf8_lossy(&n).into_owned();
        let child_shown = format!("{shown}/{child}");
        let n = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&n);
        let t = match t {
            Some(t) => t,
            None => match rustix::fs::statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => FileType::from_raw_mode(s.st_mode),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(err(&child_shown, e)),
            },
        };
        if t == FileType::Directory {
            let c = n.to_str().map(str::to_owned).unwrap_or(child);
            remove_tree(fd.as_fd(), &c, &child_shown)?;
        } else {
            match rustix::fs::unlinkat(&fd, n, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(err(&child_shown, e)),
            }
        }
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(err(shown, e)),
    }
}

/// Rename `from_dir/name` to `to_dir/name`, refusing to replace anything there (the
/// registry may have written the same path meanwhile: its copy wins).
pub(crate) fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    to_dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
) -> Result<(), StorageError> {
    match rustix::fs::renameat_with(from_dir, name, to_dir, name, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => Err(StorageError {
            kind: ErrorKind::Other,
            path: shown.to_string(),
            source: Some(io::Error::other("the destination exists; not overwritten")),
        }),
        // Filesystems without RENAME_NOREPLACE (some network filesystems): check, then
        // rename. A directory rename still refuses a non-empty destination by itself.
        Err(Errno::INVAL) | Err(Errno::NOSYS) => {
            if kind_at(to_dir, name, shown)?.is_some() {
                return Err(StorageError {
                    kind: ErrorKind::Other,
                    path: shown.to_string(),
                    source: Some(io::Error::other("the destination exists; not overwritten")),
                });
            }
            rustix::fs::renameat(from_dir, name, to_dir, name).map_err(|e| err(shown, e))
        }
        Err(e) => Err(err(shown, e)),
    }
}

/// Write `content` to the new file `dir/name`: into a fresh temporary file first
/// ([`write_temp`]: exclusive, owner and mode those the directory gives its entries
/// ([`Inherit`])), then renamed into place without replacing anything, and the directory
/// synced. `Ok(false)` (and the temporary file removed) when `name` exists already.
/// Temporary files an interrupted earlier write left for `name` are removed first.
pub(crate) fn write_new(
    dir: BorrowedFd<'_>,
    name: &str,
    content: &[u8],
    shown: &str,
) -> Result<bool, StorageError> {
    remove_stale_temps(dir, name, shown)?;
    if kind_at(dir, name, shown)?.is_some() {
        return Ok(false);
    }
    let like = Inherit::from_dir(dir, shown)?;
    let tmp = write_temp(dir, name, content, Some(&like), like.file_mode, shown)?;
    let placed =
        match rustix::fs::renameat_with(dir, tmp.as_str(), dir, name, RenameFlags::NOREPLACE) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            // Without RENAME_NOREPLACE: a hard link never replaces either.
            Err(Errno::INVAL) | Err(Errno::NOSYS) => {
                match rustix::fs::linkat(dir, tmp.as_str(), dir, name, AtFlags::empty()) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(err(shown, e)),
                }
            }
            Err(e) => return Err(err(shown, e)),
        };
    match rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(err(shown, e)),
    }
    rustix::fs::fsync(dir).map_err(|e| err(shown, e))?;
    Ok(placed)
}

/// Replace `dir/name` with `content` atomically: [`write_temp`] (keeping the old file's
/// owner and mode, 0644 for a new one), renamed over it, the directory synced.
pub(crate) fn replace(
    dir: BorrowedFd<'_>,
    name: &str,
    content: &[u8],
    shown: &str,
) -> Result<(), StorageError> {
    // Only a regular file is replaced, and only a file's permissions are inherited: a
    // symbolic link planted in its place (by whoever can write the directory) would lend
    // its 0777 and its owner to the new file (review of issue 20).
    let old = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Some(Inherit::from_stat(&st)),
            FileType::Symlink => return Err(err(shown, Errno::LOOP)),
            _ => return Err(err(shown, Errno::INVAL)),
        },
        Err(Errno::NOENT) => None,
        Err(e) => return Err(err(shown, e)),
    };
    let mode = old.map_or(0o644, |o| o.file_mode);
    let tmp = write_temp(dir, name, content, old.as_ref(), mode, shown)?;
    if let Err(e) = rustix::fs::renameat(dir, tmp.as_str(), dir, name) {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return Err(err(shown, e));
    }
    rustix::fs::fsync(dir).map_err(|e| err(shown, e))
}
