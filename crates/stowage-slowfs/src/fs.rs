//! The filesystem: a read-only passthrough whose every answered operation first waits the delay
//! on a worker of the pool (`pool.rs`), so that concurrent operations overlap.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};

use crate::pool::Pool;
use crate::{Op, Options, Stats, TTL};

/// The largest read answered at once (the kernel asks for at most `max_pages` pages anyway).
const MAX_READ: u32 = 1 << 20;

pub(crate) struct SlowFs {
    shared: Arc<Shared>,
    pool: Pool,
    readdirplus: bool,
}

impl SlowFs {
    pub(crate) fn new(source: &Path, options: &Options, stats: Arc<Stats>) -> io::Result<SlowFs> {
        let source = source.canonicalize()?;
        if !source.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", source.display()),
            ));
        }
        let faults = options
            .faults
            .iter()
            .map(|f| {
                let prefix = f.prefix.trim_start_matches('/').as_bytes().to_vec();
                (prefix, Errno::from_i32(f.errno.raw_os_error()))
            })
            .collect();
        let shared = Arc::new(Shared {
            source,
            delay: options.delay,
            faults,
            nodes: RwLock::new(Nodes::new()),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            stats,
        });
        let pool = Pool::new(options.threads.max(1), Arc::clone(&shared))?;
        Ok(SlowFs {
            shared,
            pool,
            readdirplus: options.readdirplus,
        })
    }
}

/// Lock a mutex, ignoring poisoning (a panicking worker must not take the filesystem down).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Inode numbers are ours: one per relative path seen (by lookup or in a listing), never reused.
/// `forget` is ignored, so a mount's table grows with the paths it has served; a mount lives for
/// one test or one benchmark run.
struct Nodes {
    /// `paths[ino - 1]`; the root (ino 1) is the empty path.
    paths: Vec<Arc<Path>>,
    ids: HashMap<Arc<Path>, u64>,
}

impl Nodes {
    fn new() -> Nodes {
        let root: Arc<Path> = Arc::from(Path::new(""));
        let mut ids = HashMap::new();
        ids.insert(Arc::clone(&root), INodeNo::ROOT.0);
        Nodes {
            paths: vec![root],
            ids,
        }
    }
}

pub(crate) struct Shared {
    source: PathBuf,
    delay: Duration,
    faults: Vec<(Vec<u8>, Errno)>,
    nodes: RwLock<Nodes>,
    files: Mutex<HashMap<u64, Arc<File>>>,
    dirs: Mutex<HashMap<u64, Arc<Dir>>>,
    next_fh: AtomicU64,
    stats: Arc<Stats>,
}

/// An open directory: its listing is read by the first `readdir` (offset 0), which pays one
/// round trip for the whole directory, as an NFS READDIR(PLUS) with a large reply does; the
/// kernel's further `readdir` calls for the same stream are answered from it at no cost.
struct Dir {
    ino: u64,
    rel: Arc<Path>,
    entries: Mutex<Option<Arc<[DirEnt]>>>,
}

struct DirEnt {
    name: OsString,
    ino: u64,
    kind: FileType,
    /// Filled for readdirplus only; `None` when the entry could not be stat-ed.
    attr: OnceLock<Option<FileAttr>>,
    /// The entry's path is under a fault prefix (readdirplus then gives no usable attributes).
    faulty: bool,
}

impl Shared {
    /// Pay the round trip of one operation (on a worker).
    pub(crate) fn pay(&self, op: Op) {
        thread_local!(static SLACK_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        self.stats.count(op);
        if self.delay.is_zero() {
            return;
        }
        if !SLACK_SET.get() {
            // Sleep exactly the delay: the default 50 us timer slack would add 10% to 500 us.
            let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
            SLACK_SET.set(true);
        }
        std::thread::sleep(self.delay);
    }

    fn rel(&self, ino: INodeNo) -> Result<Arc<Path>, Errno> {
        let nodes = self
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        usize::try_from(ino.0)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| nodes.paths.get(i))
            .cloned()
            .ok_or(Errno::ESTALE)
    }

    fn id(&self, rel: &Path) -> u64 {
        {
            let nodes = self
                .nodes
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(&id) = nodes.ids.get(rel) {
                return id;
            }
        }
        let mut nodes = self
            .nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&id) = nodes.ids.get(rel) {
            return id;
        }
        let rel: Arc<Path> = Arc::from(rel);
        nodes.paths.push(Arc::clone(&rel));
        let id = nodes.paths.len() as u64;
        nodes.ids.insert(rel, id);
        id
    }

    fn fault(&self, rel: &Path) -> Option<Errno> {
        let bytes = rel.as_os_str().as_bytes();
        self.faults
            .iter()
            .find(|(prefix, _)| bytes.starts_with(prefix))
            .map(|&(_, errno)| errno)
    }

    fn check(&self, rel: &Path) -> Result<(), Errno> {
        match self.fault(rel) {
            Some(errno) => Err(errno),
            None => Ok(()),
        }
    }

    fn full(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.source.clone()
        } else {
            self.source.join(rel)
        }
    }

    /// `lstat` of a relative path, with our inode number: symbolic links are never followed.
    fn stat(&self, rel: &Path) -> Result<FileAttr, Errno> {
        let md = std::fs::symlink_metadata(self.full(rel)).map_err(errno)?;
        let ino = self.id(rel);
        attr(ino, &md).ok_or(Errno::EIO)
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let dir = self.rel(parent)?;
        let child: PathBuf = match name.as_bytes() {
            b"." => dir.to_path_buf(),
            b".." => dir.parent().map(Path::to_path_buf).unwrap_or_default(),
            _ => dir.join(name),
        };
        self.check(&child)?;
        self.stat(&child)
    }

    fn getattr(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        let rel = self.rel(ino)?;
        self.check(&rel)?;
        self.stat(&rel)
    }

    fn readlink(&self, ino: INodeNo) -> Result<Vec<u8>, Errno> {
        let rel = self.rel(ino)?;
        self.check(&rel)?;
        let target = std::fs::read_link(self.full(&rel)).map_err(errno)?;
        Ok(target.into_os_string().into_vec())
    }

    fn open(&self, ino: INodeNo, flags: OpenFlags) -> Result<u64, Errno> {
        let rel = self.rel(ino)?;
        self.check(&rel)?;
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return Err(Errno::EROFS);
        }
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            self.full(&rel),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| Errno::from_i32(e.raw_os_error()))?;
        let fh = self.new_fh();
        lock(&self.files).insert(fh, Arc::new(File::from(fd)));
        Ok(fh)
    }

    fn read(&self, ino: INodeNo, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let rel = self.rel(ino)?;
        self.check(&rel)?;
        let file = lock(&self.files).get(&fh.0).cloned().ok_or(Errno::EBADF)?;
        let mut buf = vec![0u8; size.min(MAX_READ) as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(errno(e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn opendir(&self, ino: INodeNo) -> Result<u64, Errno> {
        let rel = self.rel(ino)?;
        self.check(&rel)?;
        // Opening checks existence, type and permission; the listing is read by `readdir`.
        drop(std::fs::read_dir(self.full(&rel)).map_err(errno)?);
        let fh = self.new_fh();
        let dir = Dir {
            ino: ino.0,
            rel,
            entries: Mutex::new(None),
        };
        lock(&self.dirs).insert(fh, Arc::new(dir));
        Ok(fh)
    }

    fn dir(&self, fh: FileHandle) -> Result<Arc<Dir>, Errno> {
        lock(&self.dirs).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// Read the whole directory (one round trip, paid by the caller), with `.` and `..`.
    fn list(&self, dir: &Dir) -> Result<Arc<[DirEnt]>, Errno> {
        self.check(&dir.rel)?;
        let parent = dir.rel.parent().map(|p| self.id(p)).unwrap_or(dir.ino);
        let mut entries = vec![
            DirEnt::new(".".into(), dir.ino, FileType::Directory, false),
            DirEnt::new("..".into(), parent, FileType::Directory, false),
        ];
        for entry in std::fs::read_dir(self.full(&dir.rel)).map_err(errno)? {
            let entry = entry.map_err(errno)?;
            // The entry type comes with the listing (getdents' d_type); no stat here.
            let Some(kind) = entry.file_type().ok().and_then(FileType::from_std) else {
                continue;
            };
            let name = entry.file_name();
            let rel = dir.rel.join(&name);
            let faulty = self.fault(&rel).is_some();
            entries.push(DirEnt::new(name, self.id(&rel), kind, faulty));
        }
        let entries: Arc<[DirEnt]> = entries.into();
        *lock(&dir.entries) = Some(Arc::clone(&entries));
        Ok(entries)
    }

    fn statfs(&self, ino: INodeNo) -> Result<rustix::fs::StatVfs, Errno> {
        let rel = self.rel(ino)?;
        self.check(&rel)?;
        rustix::fs::statvfs(self.full(&rel)).map_err(|e| Errno::from_i32(e.raw_os_error()))
    }
}

impl DirEnt {
    fn new(name: OsString, ino: u64, kind: FileType, faulty: bool) -> DirEnt {
        DirEnt {
            name,
            ino,
            kind,
            attr: OnceLock::new(),
            faulty,
        }
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from_i32(
        e.raw_os_error()
            .unwrap_or(rustix::io::Errno::IO.raw_os_error()),
    )
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nanos = u32::try_from(nsecs).unwrap_or(0);
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nanos),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nanos),
    }
}

fn attr(ino: u64, md: &Metadata) -> Option<FileAttr> {
    Some(FileAttr {
        ino: INodeNo(ino),
        size: md.size(),
        blocks: md.blocks(),
        atime: time(md.atime(), md.atime_nsec()),
        mtime: time(md.mtime(), md.mtime_nsec()),
        ctime: time(md.ctime(), md.ctime_nsec()),
        crtime: md.created().unwrap_or(UNIX_EPOCH),
        kind: FileType::from_std(md.file_type())?,
        perm: (md.mode() & 0o7777) as u16,
        nlink: u32::try_from(md.nlink()).unwrap_or(u32::MAX),
        uid: md.uid(),
        gid: md.gid(),
        rdev: u32::try_from(md.rdev()).unwrap_or(0),
        blksize: u32::try_from(md.blksize()).unwrap_or(4096),
        flags: 0,
    })
}

/// Fill a `readdir` reply from `offset` (entry `i` has offset `i + 1`).
fn fill_dir(entries: &[DirEnt], offset: u64, mut reply: ReplyDirectory) {
    for (i, e) in entries.iter().enumerate().skip(offset as usize) {
        if reply.add(INodeNo(e.ino), i as u64 + 1, e.kind, &e.name) {
            break;
        }
    }
    reply.ok();
}

/// Fill a `readdirplus` reply; attributes were read with the listing (same round trip).
fn fill_dir_plus(entries: &[DirEnt], offset: u64, mut reply: ReplyDirectoryPlus) {
    for (i, e) in entries.iter().enumerate().skip(offset as usize) {
        let Some(Some(attr)) = e.attr.get() else {
            continue;
        };
        // A faulty entry is listed, but with zero TTLs: any use of it comes back to us (and fails).
        let ttl = if e.faulty { Duration::ZERO } else { TTL };
        if reply.add(
            INodeNo(e.ino),
            i as u64 + 1,
            &e.name,
            &ttl,
            attr,
            Generation(0),
        ) {
            break;
        }
    }
    reply.ok();
}

impl Filesystem for SlowFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // Lookups in one directory may run in parallel, as on NFS (libfuse 3 asks for this too).
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        if self.readdirplus {
            let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_os_string();
        self.pool
            .submit(Op::Lookup, move |sh| match sh.lookup(parent, &name) {
                Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
                Err(e) => reply.error(e),
            });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.pool
            .submit(Op::Getattr, move |sh| match sh.getattr(ino) {
                Ok(attr) => reply.attr(&TTL, &attr),
                Err(e) => reply.error(e),
            });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.pool
            .submit(Op::Readlink, move |sh| match sh.readlink(ino) {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(e),
            });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.pool
            .submit(Op::Open, move |sh| match sh.open(ino, flags) {
                // No FOPEN_KEEP_CACHE: the kernel drops the file's cached pages at each open.
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(e),
            });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.pool
            .submit(Op::Read, move |sh| match sh.read(ino, fh, offset, size) {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(e),
            });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Closing is free (the client does not wait for it), as in the C reference.
        lock(&self.shared.files).remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.pool
            .submit(Op::Opendir, move |sh| match sh.opendir(ino) {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(e),
            });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let dir = match self.shared.dir(fh) {
            Ok(dir) => dir,
            Err(e) => return reply.error(e),
        };
        if offset > 0 {
            let listed = lock(&dir.entries).clone();
            if let Some(entries) = listed {
                return fill_dir(&entries, offset, reply);
            }
        }
        self.pool
            .submit(Op::Readdir, move |sh| match sh.list(&dir) {
                Ok(entries) => fill_dir(&entries, offset, reply),
                Err(e) => reply.error(e),
            });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let dir = match self.shared.dir(fh) {
            Ok(dir) => dir,
            Err(e) => return reply.error(e),
        };
        if offset > 0 {
            let listed = lock(&dir.entries).clone();
            if let Some(entries) = listed {
                return fill_dir_plus(&entries, offset, reply);
            }
        }
        self.pool.submit(Op::Readdir, move |sh| {
            let entries = match sh.list(&dir) {
                Ok(entries) => entries,
                Err(e) => return reply.error(e),
            };
            for e in entries.iter() {
                let rel = match e.name.as_bytes() {
                    b"." => dir.rel.to_path_buf(),
                    b".." => dir.rel.parent().map(Path::to_path_buf).unwrap_or_default(),
                    _ => dir.rel.join(&e.name),
                };
                e.attr.get_or_init(|| sh.stat(&rel).ok());
            }
            fill_dir_plus(&entries, offset, reply)
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.shared.dirs).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.pool
            .submit(Op::Statfs, move |sh| match sh.statfs(ino) {
                Ok(st) => reply.statfs(
                    st.f_blocks,
                    st.f_bfree,
                    st.f_bavail,
                    st.f_files,
                    st.f_ffree,
                    u32::try_from(st.f_bsize).unwrap_or(4096),
                    u32::try_from(st.f_namemax).unwrap_or(255),
                    u32::try_from(st.f_frsize).unwrap_or(4096),
                ),
                Err(e) => reply.error(e),
            });
    }
}
