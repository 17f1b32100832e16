//! The filesystem backend.
//!
//! Listings use the entry types the kernel returns with `getdents` (no stat per entry); stats
//! use `statx` through `symlink_metadata` (size, mtime and, where the filesystem records it, the
//! birth time); reads open with `O_NOFOLLOW | O_NONBLOCK`, refuse anything but a regular file
//! (checked with `fstat` on the open descriptor) and read at most `limit + 1` bytes. Paths are
//! only ever built from names the scanner listed as directories, so no component on the way
//! can be a symbolic link, and the final component is opened without following one.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use stowage_layout::LAYOUT_ROOT;
use stowage_model::Timestamp;

use crate::{
    BackendKind, Entry, EntryKind, ErrorKind, FileType, Meta, OpCounters, Storage, StorageError,
};

/// First buffer of a read whose size is not known: links are 71 bytes, image manifests
/// mostly under 4 KiB, indexes of many platforms a few times that.
const READ_HINT: u64 = 16 << 10;

/// How a user-supplied path was understood.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RootLayout {
    /// The registry's `rootdirectory` (it holds `docker/registry/v2`).
    RootDirectory,
    /// The `docker/registry/v2` directory itself.
    LayoutRoot,
    /// GitLab omnibus: `/var/opt/gitlab` (or its `gitlab-rails/shared/registry`).
    GitLabOmnibus,
}

/// A resolved storage root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRoot {
    /// The `docker/registry/v2` directory.
    pub layout_root: PathBuf,
    pub how: RootLayout,
}

/// Find the layout root from what a user typed: the `rootdirectory`, the `v2` directory, or
/// a GitLab omnibus path.
pub fn resolve_root(path: &Path) -> Result<ResolvedRoot, StorageError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| StorageError::io(shown.clone(), e))?;
    if !meta.is_dir() {
        return Err(StorageError::new(ErrorKind::NotADirectory, shown));
    }
    let is_dir = |p: &Path| std::fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false);
    let candidates = [
        (path.join(LAYOUT_ROOT), RootLayout::RootDirectory),
        (
            path.join("gitlab-rails/shared/registry").join(LAYOUT_ROOT),
            RootLayout::GitLabOmnibus,
        ),
        (
            path.join("shared/registry").join(LAYOUT_ROOT),
            RootLayout::GitLabOmnibus,
        ),
    ];
    for (p, how) in candidates {
        if is_dir(&p) {
            return Ok(ResolvedRoot {
                layout_root: p,
                how,
            });
        }
    }
    // The v2 directory itself: named v2 under docker/registry, or holding blobs/ or repositories/.
    let named_v2 = path.ends_with(LAYOUT_ROOT);
    if named_v2 || is_dir(&path.join("blobs")) || is_dir(&path.join("repositories")) {
        return Ok(ResolvedRoot {
            layout_root: path.to_path_buf(),
            how: RootLayout::LayoutRoot,
        });
    }
    Err(StorageError {
        kind: ErrorKind::NotFound,
        path: format!(
            "{shown} (no {LAYOUT_ROOT} below it, and it has no blobs/ or repositories/: is this the registry's rootdirectory?)"
        ),
        source: None,
    })
}

/// A registry layout root on a (local or network) filesystem.
pub struct FsStorage {
    root: PathBuf,
    backend: BackendKind,
    counters: OpCounters,
    /// `statx` relative to a directory failed as unavailable: stat by path.
    no_statx: AtomicBool,
    /// An `O_PATH` descriptor of the root on a local filesystem, the base of every lookup
    /// (see [`FsStorage::at`]); `None` on a network filesystem.
    root_fd: RwLock<Option<OwnedFd>>,
}

impl FsStorage {
    /// Open the layout root (`.../docker/registry/v2`). The root itself may be reached through
    /// symbolic links (`/var/lib/registry -> /data/registry` is common); nothing below it is.
    pub fn open(layout_root: &Path) -> Result<FsStorage, StorageError> {
        let shown = layout_root.display().to_string();
        let root =
            std::fs::canonicalize(layout_root).map_err(|e| StorageError::io(shown.clone(), e))?;
        let backend = detect_backend(&root);
        let root_fd = RwLock::new(open_root_fd(&root, &backend));
        Ok(FsStorage {
            root,
            backend,
            counters: OpCounters::default(),
            no_statx: AtomicBool::new(false),
            root_fd,
        })
    }

    /// Run `f` with the base directory and the path of `rel` below it: the root's descriptor
    /// and the key itself on a local filesystem, the current directory and the absolute path
    /// otherwise. Why: the kernel walks every component of a path on each open and stat; a
    /// key looked up from the root's descriptor skips the 5 to 10 components above the root
    /// (perf: the path walk was 12% of a `gc`'s CPU at 100k blobs). Not on a network
    /// filesystem, where a descriptor held across a server restart or a re-export can go
    /// stale (`ESTALE`) for good, while a path is looked up again.
    fn at<T>(
        &self,
        rel: &str,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>, &Path) -> T,
    ) -> Result<T, StorageError> {
        let key = StorageError::key(rel)?;
        let guard = self.root_fd.read().unwrap_or_else(|e| e.into_inner());
        Ok(match guard.as_ref() {
            Some(fd) if key.is_root() => f(fd.as_fd(), Path::new(".")),
            Some(fd) => f(fd.as_fd(), Path::new(key.as_str())),
            None if key.is_root() => f(rustix::fs::CWD, &self.root),
            None => f(rustix::fs::CWD, &self.root.join(key.as_str())),
        })
    }

    /// Open the root's descriptor again at the start of each scan (when the root is
    /// listed): a long-running process (the dashboard) sees a root directory that was
    /// replaced by another one (a restore renamed into place) from its next scan on, as a
    /// path would; until then it reads the tree it scanned. Writes (`write.rs`) look the
    /// root up by its path, and `apply` re-scans, so re-opens, before it deletes. A failed
    /// open (the root missing for a moment) is tried again at the next scan.
    fn reopen_root(&self) {
        if self.backend.is_latency_bound() {
            return;
        }
        let fd = open_root_fd(&self.root, &self.backend);
        *self.root_fd.write().unwrap_or_else(|e| e.into_inner()) = fd;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a key, refusing anything that could leave the layout root
    /// ([`StorageError::key`]).
    pub(crate) fn full(&self, rel: &str) -> Result<PathBuf, StorageError> {
        let key = StorageError::key(rel)?;
        if key.is_root() {
            return Ok(self.root.clone());
        }
        Ok(self.root.join(key.as_str()))
    }

    fn read_inner(
        &self,
        path: &str,
        limit: u64,
        want_meta: bool,
    ) -> Result<(Vec<u8>, Option<Meta>), StorageError> {
        self.counters.track(&self.counters.reads, || {
            // The open's own fstat: no second path lookup (on NFS the open already fetched
            // the attributes).
            let (mut f, m) = self.open_nofollow(path)?;
            let meta = want_meta.then(|| meta_of(&m));
            let counted = |n: u64| {
                self.counters
                    .bytes_read
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            };
            let buf = read_to_limit(&mut f, m.len(), limit, path).inspect_err(|e| {
                if matches!(e.kind, ErrorKind::TooLarge { .. }) {
                    // Read to learn it: the limit and one byte more.
                    counted(limit.saturating_add(1));
                }
            })?;
            counted(buf.len() as u64);
            Ok((buf, meta))
        })
    }

    /// Open a regular file for reading, and nothing else. `O_NOFOLLOW`: a symbolic link is
    /// refused (`ELOOP`). `O_NONBLOCK`: opening a FIFO waits for a writer otherwise, forever
    /// (issue 25: a FIFO at a tag's `current/link` hung every command); a socket fails with
    /// `ENXIO`. `O_NOCTTY`: a terminal device never becomes our controlling terminal. The
    /// type is then checked on the descriptor itself (`fstat`), so a file swapped after a
    /// listing or a stat cannot slip through; a non-regular file is closed unread.
    fn open_nofollow(&self, path: &str) -> Result<(File, std::fs::Metadata), StorageError> {
        use rustix::fs::{Mode, OFlags};
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let f = match self.at(path, |dir, p| {
            rustix::fs::openat(dir, p, flags, Mode::empty())
        })? {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NXIO) => {
                // A socket (or a device without a driver): name what it is.
                let t = std::fs::symlink_metadata(self.full(path)?)
                    .map(|m| FileType::of(m.file_type()))
                    .unwrap_or(FileType::Unknown);
                return Err(StorageError::new(ErrorKind::NotAFile(t), path));
            }
            Err(e) => return Err(StorageError::io(path, e.into())),
        };
        let m = f.metadata().map_err(|e| StorageError::io(path, e))?;
        let t = m.file_type();
        if !t.is_file() {
            return Err(StorageError::new(
                ErrorKind::NotAFile(FileType::of(t)),
                path,
            ));
        }
        // Back to blocking reads: O_NONBLOCK means nothing for a regular file on Linux, but a
        // network filesystem's client need not agree. On a local filesystem the call is
        // skipped (one system call per file read: 50k at 100k blobs).
        if self.backend.is_latency_bound() {
            rustix::fs::fcntl_setfl(&f, OFlags::empty())
                .map_err(|e| StorageError::io(path, e.into()))?;
        }
        Ok((f, m))
    }
}

/// The root's `O_PATH` descriptor on a local filesystem (`None` on a network one, or when
/// it cannot be opened: paths are absolute then, as before).
fn open_root_fd(root: &Path, backend: &BackendKind) -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    if backend.is_latency_bound() {
        return None;
    }
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// Name the filesystem type and say whether it is latency-bound (network or FUSE).
fn detect_backend(root: &Path) -> BackendKind {
    // Magic numbers from statfs(2) / linux/magic.h.
    const NETWORK: &[(i64, &str)] = &[
        (0x6969, "nfs"),
        (0x517B, "smb"),
        (0xFF53_4D42, "cifs"),
        (0xFE53_4D42, "smb2"),
        (0x6573_5546, "fuse"),
        (0x0BD0_0BD0, "lustre"),
        (0x00C3_6400, "ceph"),
        (0x0116_1970, "gfs2"),
        (0x7461_636f, "ocfs2"),
        (0x0102_1997, "9p"),
        (0x5346_414F, "afs"),
        (0x4750_4653, "gpfs"),
        (0x1983_0326, "beegfs"),
        (0x0027_e0eb, "cgroup"),
    ];
    const LOCAL: &[(i64, &str)] = &[
        (0xEF53, "ext4"),
        (0x5846_5342, "xfs"),
        (0x9123_683E, "btrfs"),
        (0x0102_1994, "tmpfs"),
        (0x794c_7630, "overlayfs"),
        (0x2FC1_2FC1, "zfs"),
        (0xF2F5_2010, "f2fs"),
    ];
    match rustix::fs::statfs(root) {
        Ok(s) => {
            let t = s.f_type;
            if let Some((_, name)) = NETWORK.iter().find(|(m, _)| *m == t) {
                BackendKind::NetworkFs {
                    fs_type: (*name).to_string(),
                }
            } else if let Some((_, name)) = LOCAL.iter().find(|(m, _)| *m == t) {
                BackendKind::LocalFs {
                    fs_type: (*name).to_string(),
                }
            } else {
                BackendKind::LocalFs {
                    fs_type: format!("0x{t:x}"),
                }
            }
        }
        Err(_) => BackendKind::LocalFs {
            fs_type: "unknown".into(),
        },
    }
}

/// Read what is left of `f`, at most `limit` bytes ([`ErrorKind::TooLarge`] past it), where
/// the descriptor's `fstat` said `size`. The first read asks for the whole file and one byte
/// more; when it returns exactly `size` bytes, that short read is the end of the file, so no
/// second read is made just to see EOF (a regular file reads short only at its end; a file
/// that grew after the `fstat` fills the extra byte and is read on). One read per link and
/// per manifest instead of two: 35k system calls of a `gc` at 100k blobs. A size of 0 (what
/// some FUSE filesystems report for files with content) is read until EOF.
fn read_to_limit(f: &mut File, size: u64, limit: u64, path: &str) -> Result<Vec<u8>, StorageError> {
    let cap = limit.saturating_add(1);
    let first = if size > 0 { size } else { READ_HINT };
    let mut buf =
        vec![0u8; usize::try_from(first.saturating_add(1).min(cap)).unwrap_or(usize::MAX)];
    let mut len = 0usize;
    loop {
        if len == buf.len() {
            if len as u64 >= cap {
                break;
            }
            let grown =
                (buf.len().saturating_mul(2)).min(usize::try_from(cap).unwrap_or(usize::MAX));
            buf.resize(grown.max(len + 1), 0);
        }
        let n = match f.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StorageError::io(path, e)),
        };
        if n == 0 {
            break;
        }
        len += n;
        if size > 0 && len as u64 == size && len < buf.len() {
            break;
        }
    }
    buf.truncate(len);
    if len as u64 > limit {
        return Err(StorageError::new(ErrorKind::TooLarge { limit }, path));
    }
    Ok(buf)
}

/// `statx` of `rel` below `dir`, without following a symbolic link in its last component,
/// checked as [`Storage::stat`] checks (a regular file only). `None` when the kernel has no
/// `statx` or a seccomp filter refuses it (`ENOSYS`, `EPERM`: a permission problem is
/// `EACCES`; the caller stats by path then). The fields are those `std::fs::symlink_metadata`
/// gives [`meta_of`]: size, modification time, and the birth time where the filesystem
/// records one.
fn stat_at(
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &Path,
    shown: &str,
) -> Option<Result<Meta, StorageError>> {
    use rustix::fs::{AtFlags, FileType as Ft, StatxFlags};
    let st = match rustix::fs::statx(
        dir,
        rel,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    ) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => return None,
        Err(e) => return Some(Err(StorageError::io(shown, e.into()))),
    };
    let kind = match Ft::from_raw_mode(st.stx_mode.into()) {
        Ft::RegularFile => None,
        Ft::Symlink => return Some(Err(StorageError::new(ErrorKind::Symlink, shown))),
        Ft::Directory => Some(FileType::Directory),
        Ft::Fifo => Some(FileType::Fifo),
        Ft::Socket => Some(FileType::Socket),
        Ft::CharacterDevice => Some(FileType::CharDevice),
        Ft::BlockDevice => Some(FileType::BlockDevice),
        Ft::Unknown => Some(FileType::Unknown),
    };
    if let Some(t) = kind {
        return Some(Err(StorageError::new(ErrorKind::NotAFile(t), shown)));
    }
    let at = |t: rustix::fs::StatxTimestamp| {
        Timestamp(
            t.tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.tv_nsec)),
        )
    };
    let has_btime = StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::BTIME);
    Some(Ok(Meta {
        size: st.stx_size,
        modified: at(st.stx_mtime),
        created: has_btime.then(|| at(st.stx_btime)),
        etag: None,
    }))
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        size: m.len(),
        modified: m
            .modified()
            .map(Timestamp::from_system_time)
            .unwrap_or_default(),
        created: m.created().ok().map(Timestamp::from_system_time),
        etag: None,
    }
}

impl Storage for FsStorage {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn backend(&self) -> BackendKind {
        self.backend.clone()
    }

    fn capacity(&self) -> Option<(u64, u64)> {
        let s = rustix::fs::statvfs(&self.root).ok()?;
        Some((
            s.f_blocks.saturating_mul(s.f_frsize),
            s.f_bavail.saturating_mul(s.f_frsize),
        ))
    }

    fn list_dir(&self, path: &str, visit: &mut dyn FnMut(Entry<'_>)) -> Result<(), StorageError> {
        use rustix::fs::{AtFlags, FileType as Ft, Mode, OFlags};
        self.counters.track(&self.counters.lists, || {
            let io = |e: rustix::io::Errno| StorageError::io(path, e.into());
            // open + getdents only: std's read_dir goes through glibc's opendir, which adds
            // an fstat per directory (46k at 100k blobs) to check what open(O_DIRECTORY)
            // already guarantees.
            if path.is_empty() {
                // The start of a scan: see the directory the root's path names now.
                self.reopen_root();
            }
            let fd = self
                .at(path, |dir, p| {
                    // O_NOFOLLOW: a directory the scanner names without having listed
                    // it (a tag's `index/sha256/` in a `gc -m` scan) is never a symbolic
                    // link followed; Linux answers ENOTDIR, reported as the link it is.
                    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
                    match rustix::fs::openat(dir, p, flags | OFlags::CLOEXEC, Mode::empty()) {
                        Err(rustix::io::Errno::NOTDIR)
                            if rustix::fs::statat(dir, p, AtFlags::SYMLINK_NOFOLLOW)
                                .is_ok_and(|st| Ft::from_raw_mode(st.st_mode) == Ft::Symlink) =>
                        {
                            Err(rustix::io::Errno::LOOP)
                        }
                        r => r,
                    }
                })?
                .map_err(io)?;
            let mut dir = rustix::fs::Dir::new(fd).map_err(io)?;
            while let Some(ent) = dir.read() {
                let ent = ent.map_err(io)?;
                let name = ent.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                // d_type from getdents; an lstat only where the filesystem leaves it unknown.
                let t = match ent.file_type() {
                    Ft::Unknown => {
                        let st = rustix::fs::statat(
                            dir.fd().map_err(io)?,
                            ent.file_name(),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| {
                            let p = format!("{path}/{}", String::from_utf8_lossy(name));
                            StorageError::io(p, e.into())
                        })?;
                        Ft::from_raw_mode(st.st_mode)
                    }
                    t => t,
                };
                let kind = match t {
                    Ft::Symlink => EntryKind::Symlink,
                    Ft::Directory => EntryKind::Dir,
                    Ft::RegularFile => EntryKind::File,
                    _ => EntryKind::Other,
                };
                visit(Entry {
                    name,
                    kind,
                    meta: None,
                });
            }
            Ok(())
        })
    }

    fn stat(&self, path: &str) -> Result<Meta, StorageError> {
        self.counters.track(&self.counters.stats, || {
            if !self.no_statx.load(Ordering::Relaxed) {
                match self.at(path, |dir, p| stat_at(dir, p, path))? {
                    Some(r) => return r,
                    // No statx here (an old kernel, or a seccomp filter that refuses it, as
                    // older container runtimes did): stat by path from now on, as std does.
                    None => self.no_statx.store(true, Ordering::Relaxed),
                }
            }
            let m = std::fs::symlink_metadata(self.full(path)?)
                .map_err(|e| StorageError::io(path, e))?;
            let t = m.file_type();
            if t.is_symlink() {
                return Err(StorageError::new(ErrorKind::Symlink, path));
            }
            if !t.is_file() {
                return Err(StorageError::new(
                    ErrorKind::NotAFile(FileType::of(t)),
                    path,
                ));
            }
            Ok(meta_of(&m))
        })
    }

    fn stat_below(
        &self,
        dir: &str,
        rels: &[&str],
        visit: &mut dyn FnMut(usize, Result<Meta, StorageError>),
    ) {
        use rustix::fs::{Mode, OFlags};
        // O_PATH: the directory is only a starting point for the lookups, never read. A
        // directory that cannot be opened answers each path on its own (the same errors a
        // stat by path gives, each naming its path).
        let fd = if self.no_statx.load(Ordering::Relaxed) || rels.len() < 2 {
            None
        } else {
            // Counted as a stat: on a network filesystem the open is a lookup.
            self.counters.stats.fetch_add(1, Ordering::Relaxed);
            self.at(dir, |base, p| {
                rustix::fs::openat(
                    base,
                    p,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            })
            .ok()
            .flatten()
        };
        for (i, rel) in rels.iter().enumerate() {
            let shown = crate::join(dir, rel);
            let r = match &fd {
                Some(_) if self.no_statx.load(Ordering::Relaxed) => None,
                Some(fd) => match StorageError::key(&shown) {
                    Ok(_) => match stat_at(fd.as_fd(), Path::new(rel), &shown) {
                        Some(r) => {
                            self.counters.stats.fetch_add(1, Ordering::Relaxed);
                            Some(r)
                        }
                        None => {
                            // No statx here (an old kernel, or a seccomp filter that
                            // refuses it, as older container runtimes did): stat by path
                            // from now on, as std does.
                            self.no_statx.store(true, Ordering::Relaxed);
                            None
                        }
                    },
                    Err(e) => Some(Err(e)),
                },
                None => None,
            };
            match r {
                Some(r) => visit(i, r),
                None => visit(i, self.stat(&shown)),
            }
        }
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        self.read_inner(path, limit, false).map(|(b, _)| b)
    }

    fn read_with_meta(&self, path: &str, limit: u64) -> Result<(Vec<u8>, Meta), StorageError> {
        self.read_inner(path, limit, true).map(|(b, m)| {
            (
                b,
                m.unwrap_or(Meta {
                    size: 0,
                    modified: Timestamp::EPOCH,
                    created: None,
                    etag: None,
                }),
            )
        })
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        self.counters
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(self.open_nofollow(path)?.0))
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }

    fn read_at_driver_root(
        &self,
        name: &str,
        limit: u64,
    ) -> Option<Result<Option<Vec<u8>>, StorageError>> {
        let path = self.driver_root()?.join(name);
        Some(read_regular_nofollow(&path, limit))
    }
}

impl FsStorage {
    /// The `rootdirectory` holding the layout, when the storage was opened through it (the
    /// layout root is `<rootdirectory>/docker/registry/v2`).
    pub fn driver_root(&self) -> Option<&Path> {
        if !self.root().ends_with(LAYOUT_ROOT) {
            return None;
        }
        self.root().parent()?.parent()?.parent()
    }
}

/// A whole regular file of at most `limit` bytes, never through a symbolic link or from a
/// FIFO; `Ok(None)` when it does not exist. Errors name the path.
fn read_regular_nofollow(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, StorageError> {
    use rustix::fs::OFlags;
    let shown = path.display().to_string();
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(StorageError::new(ErrorKind::Symlink, shown));
        }
        Err(e) => return Err(StorageError::io(shown, e)),
    };
    let m = f
        .metadata()
        .map_err(|e| StorageError::io(shown.clone(), e))?;
    if !m.file_type().is_file() {
        return Err(StorageError::new(
            ErrorKind::NotAFile(FileType::of(m.file_type())),
            shown,
        ));
    }
    if m.len() > limit {
        return Err(StorageError::new(ErrorKind::TooLarge { limit }, shown));
    }
    read_to_limit(&mut f, m.len(), limit, &shown).map(Some)
}

#[cfg(test)]
mod tests;
