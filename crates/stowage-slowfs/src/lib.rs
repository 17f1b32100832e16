//! `stowage-slowfs`: a read-only FUSE passthrough that charges every filesystem operation a
//! fixed delay, the project's own "NFS on one machine".
//!
//! Registries often sit on NFS, where every operation is a network round trip. This filesystem
//! mirrors a source directory and makes each operation (lookup, getattr, opendir, readdir(plus),
//! open, read, readlink, statfs) wait the delay before answering. Requests are answered by a
//! pool of workers (`threads`, 64 by default), so concurrent operations overlap as NFS requests
//! do on their slots: 64 requests in flight cost one delay, a sequential client pays one per
//! operation. Attributes and entries are cached by the kernel for [`TTL`] only, so a fresh mount
//! starts cold. Faults ([`Fault`]) make every operation on chosen paths fail with a chosen errno.
//!
//! Model details, matching the C reference (`shared/tools/slowfs.c`):
//! - one `readdir` round trip returns the whole directory (the kernel's further `readdir` calls
//!   on the same stream are free), with entry types; the kernel then looks up each name it needs;
//! - `release`/`releasedir` (close) are free; everything else pays once per request;
//! - symbolic links are passed through as links (`readlink`), never followed by the filesystem.
//!
//! Use [`Mount::start`] in tests (the session runs on background threads of the test process and
//! unmounts on drop), or the `stowage-slowfs` binary:
//!
//! ```text
//! stowage-slowfs SOURCE MOUNTPOINT --delay-us 500 [--fail PREFIX=EIO ...] [--threads 64]
//! ```
//!
//! Mounting needs `/dev/fuse`: root mounts with the mount system call; another user needs
//! Debian's `fuse3` package (`fusermount3`) and a `/dev/fuse` it can open (fuser opens it first;
//! some containers make it root-only). The mount is `ro,default_permissions`, fsname `stowage-slowfs`; a
//! client's `statfs` sees FUSE's `f_type` (0x65735546).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

mod fs;
mod pool;

/// An errno (`rustix::io::Errno`): `Errno::IO`, `Errno::STALE`, `Errno::ACCESS`,
/// `Errno::TIMEDOUT`...
pub use rustix::io::Errno;

/// How long the kernel may cache attributes and entries.
pub const TTL: Duration = Duration::from_secs(1);

/// Default size of the worker pool (operations in flight at once).
pub const DEFAULT_THREADS: usize = 64;

/// `FUSE_SUPER_MAGIC`, the `f_type` a client's `statfs` sees on the mount.
pub const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Every operation on a path (relative to the source, no leading `/`) that starts with `prefix`
/// (as a string: `a/b` also matches `a/bc`; write `a/b/` for what is below `a/b` only) fails with
/// `errno` after the delay. A lookup of such a name fails, so `stat` does, while the parent's
/// listing still shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub prefix: String,
    pub errno: Errno,
}

/// The fault kinds accepted by `--fail PREFIX=KIND`.
pub const FAULT_KINDS: [(&str, Errno); 4] = [
    ("EIO", Errno::IO),
    ("ESTALE", Errno::STALE),
    ("EACCES", Errno::ACCESS),
    ("ETIMEDOUT", Errno::TIMEDOUT),
];

/// Parse `PREFIX=KIND`, KIND one of EIO, ESTALE, EACCES, ETIMEDOUT (the last `=` splits).
pub fn parse_fault(s: &str) -> Result<Fault, String> {
    let (prefix, kind) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected PREFIX=KIND, got {s:?}"))?;
    let errno = FAULT_KINDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(kind))
        .map(|&(_, errno)| errno)
        .ok_or_else(|| format!("unknown fault kind {kind:?} (EIO, ESTALE, EACCES or ETIMEDOUT)"))?;
    Ok(Fault {
        prefix: prefix.trim_start_matches('/').to_owned(),
        errno,
    })
}

/// What to mount.
#[derive(Clone, Debug)]
pub struct Options {
    /// Charged to every operation before it is answered.
    pub delay: Duration,
    pub faults: Vec<Fault>,
    /// Worker threads: the number of operations in flight at once.
    pub threads: usize,
    /// Ask the kernel for READDIRPLUS (listings carry attributes, as NFS READDIRPLUS does; the
    /// kernel then needs no lookup per listed name). Off by default, like the C reference.
    pub readdirplus: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            delay: Duration::ZERO,
            faults: Vec::new(),
            threads: DEFAULT_THREADS,
            readdirplus: false,
        }
    }
}

/// Kinds of charged operation, for [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Getattr,
    Readlink,
    Opendir,
    Readdir,
    Open,
    Read,
    Statfs,
}

impl Op {
    pub const ALL: [Op; 8] = [
        Op::Lookup,
        Op::Getattr,
        Op::Readlink,
        Op::Opendir,
        Op::Readdir,
        Op::Open,
        Op::Read,
        Op::Statfs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Readlink => "readlink",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Open => "open",
            Op::Read => "read",
            Op::Statfs => "statfs",
        }
    }
}

/// Counts of the operations charged the delay so far.
#[derive(Debug, Default)]
pub struct Stats {
    counts: [AtomicU64; 8],
}

impl Stats {
    fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    /// All charged operations.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} operations", self.total())?;
        let mut sep = " (";
        for op in Op::ALL {
            let n = self.get(op);
            if n > 0 {
                write!(f, "{sep}{} {n}", op.name())?;
                sep = ", ";
            }
        }
        if sep == ", " {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A mounted filesystem whose requests are not served yet: [`Session::run`] serves them until
/// the filesystem is unmounted (by an [`Unmounter`], `fusermount3 -u` or `umount`).
pub struct Session {
    inner: fuser::Session<fs::SlowFs>,
    mountpoint: PathBuf,
    stats: Arc<Stats>,
}

impl Session {
    /// Mount `source` at `mountpoint` (both directories). The mount is live when this returns.
    pub fn mount(source: &Path, mountpoint: &Path, options: &Options) -> io::Result<Session> {
        let stats = Arc::new(Stats::default());
        let filesystem = fs::SlowFs::new(source, options, Arc::clone(&stats))?;
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::RO,
            fuser::MountOption::DefaultPermissions,
            fuser::MountOption::FSName("stowage-slowfs".into()),
            fuser::MountOption::Subtype("stowage-slowfs".into()),
            fuser::MountOption::NoDev,
            fuser::MountOption::NoSuid,
        ];
        // One event loop reads requests and queues them; the pool's workers answer them.
        config.n_threads = Some(1);
        let inner = fuser::Session::new(filesystem, mountpoint, &config)?;
        Ok(Session {
            inner,
            mountpoint: mountpoint.to_path_buf(),
            stats,
        })
    }

    /// Something another thread can unmount this filesystem with.
    pub fn unmounter(&mut self) -> Unmounter {
        Unmounter {
            inner: Some(self.inner.unmount_callable()),
            mountpoint: self.mountpoint.clone(),
        }
    }

    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serve requests until the filesystem is unmounted.
    pub fn run(self) -> io::Result<()> {
        self.inner.run()
    }
}

/// Unmounts a [`Session`]'s filesystem from another thread.
pub struct Unmounter {
    /// Taken by the first attempt.
    inner: Option<fuser::SessionUnmounter>,
    mountpoint: PathBuf,
}

impl Unmounter {
    /// Unmount. Returns `Ok(true)` when unmounted, `Ok(false)` when the mount was busy and was
    /// detached lazily instead (it goes away, and the session ends, once no one uses it).
    pub fn unmount(&mut self) -> io::Result<bool> {
        use rustix::mount::{UnmountFlags, unmount};
        let first = match self.inner.take() {
            // fuser's own unmount (it knows whether its mount is still there).
            Some(mut inner) => match inner.unmount() {
                Ok(()) => return Ok(true),
                Err(e) => e,
            },
            // Tried before and failed: fuser no longer holds the mount; do it by path.
            None => match unmount(&self.mountpoint, UnmountFlags::empty()) {
                Ok(()) => return Ok(true),
                Err(e) => io::Error::from(e),
            },
        };
        match unmount(&self.mountpoint, UnmountFlags::DETACH) {
            Ok(()) => Ok(false),
            Err(Errno::PERM) => {
                // Not root: the setuid helper can detach it.
                let status = std::process::Command::new("fusermount3")
                    .args(["-u", "-z", "-q", "--"])
                    .arg(&self.mountpoint)
                    .status()?;
                if status.success() {
                    Ok(false)
                } else {
                    Err(first)
                }
            }
            Err(_) => Err(first),
        }
    }
}

/// A mount for tests: the source mounted on a fresh temporary directory, served by background
/// threads of this process, unmounted on drop.
pub struct Mount {
    unmounter: Unmounter,
    session: Option<JoinHandle<io::Result<()>>>,
    stats: Arc<Stats>,
    // Dropped after the unmount (fields drop in order, after `Drop::drop`).
    dir: tempfile::TempDir,
}

impl Mount {
    /// Mount `source` with `delay` per operation and `faults` (path prefix relative to `source`,
    /// errno), with the default pool size.
    pub fn start(source: &Path, delay: Duration, faults: &[(String, Errno)]) -> io::Result<Mount> {
        let faults = faults
            .iter()
            .map(|(prefix, errno)| Fault {
                prefix: prefix.trim_start_matches('/').to_owned(),
                errno: *errno,
            })
            .collect();
        Mount::with_options(
            source,
            &Options {
                delay,
                faults,
                ..Options::default()
            },
        )
    }

    pub fn with_options(source: &Path, options: &Options) -> io::Result<Mount> {
        let dir = tempfile::Builder::new()
            .prefix("stowage-slowfs-")
            .tempdir()?;
        let mut session = Session::mount(source, dir.path(), options)?;
        let unmounter = session.unmounter();
        let stats = session.stats();
        let handle = std::thread::Builder::new()
            .name("slowfs-session".into())
            .spawn(move || session.run())?;
        Ok(Mount {
            unmounter,
            session: Some(handle),
            stats,
            dir,
        })
    }

    /// The mountpoint.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Operations charged so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Unmount now, reporting errors (drop does the same, silently).
    pub fn unmount(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if self.unmounter.unmount()? {
            // Unmounted: the session ends at once; wait for it (and its workers).
            session
                .join()
                .map_err(|_| io::Error::other("stowage-slowfs session thread panicked"))??;
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            eprintln!(
                "stowage-slowfs: unmounting {}: {e}",
                self.dir.path().display()
            );
        }
    }
}
