//! Storage errors, typed by failure kind rather than by backend, each naming its path.

use std::fmt;
use std::io;

use stowage_model::StorageKey;

/// What went wrong, independent of the backend.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    NotADirectory,
    /// A symbolic link where a file or directory was expected; never followed.
    Symlink,
    /// Not a regular file where one was expected (a FIFO, socket, device or directory): never
    /// read, since opening or reading a FIFO or a device can block forever or never end.
    NotAFile(FileType),
    /// Larger than the caller's limit.
    TooLarge {
        limit: u64,
    },
    /// `ESTALE` and friends on network filesystems.
    Stale,
    TimedOut,
    Other,
}

/// What a path that should be a regular file turned out to be.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileType {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    /// Anything else the platform reports.
    Unknown,
}

impl FileType {
    pub fn of(t: std::fs::FileType) -> FileType {
        use std::os::unix::fs::FileTypeExt;
        if t.is_dir() {
            FileType::Directory
        } else if t.is_fifo() {
            FileType::Fifo
        } else if t.is_socket() {
            FileType::Socket
        } else if t.is_char_device() {
            FileType::CharDevice
        } else if t.is_block_device() {
            FileType::BlockDevice
        } else {
            FileType::Unknown
        }
    }

    /// For messages: "a FIFO", "a character device".
    pub fn describe(self) -> &'static str {
        match self {
            FileType::Directory => "a directory",
            FileType::Fifo => "a FIFO (named pipe)",
            FileType::Socket => "a socket",
            FileType::CharDevice => "a character device",
            FileType::BlockDevice => "a block device",
            FileType::Unknown => "not a regular file",
        }
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// An I/O error with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub struct StorageError {
    pub kind: ErrorKind,
    pub path: String,
    #[source]
    pub source: Option<io::Error>,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::NotFound => "not found".to_string(),
            ErrorKind::PermissionDenied => "permission denied".to_string(),
            ErrorKind::NotADirectory => "not a directory".to_string(),
            ErrorKind::Symlink => "is a symbolic link (not followed)".to_string(),
            ErrorKind::NotAFile(t) => format!("is {t}, not a regular file; not opened"),
            ErrorKind::TooLarge { limit } => format!("larger than {limit} bytes"),
            ErrorKind::Stale => "stale file handle".to_string(),
            ErrorKind::TimedOut => "timed out".to_string(),
            ErrorKind::Other => "I/O error".to_string(),
        };
        let path = if self.path.is_empty() {
            "<root>"
        } else {
            &self.path
        };
        match &self.source {
            Some(e)
                if !matches!(
                    self.kind,
                    ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::NotAFile(_)
                ) =>
            {
                write!(f, "{path}: {what}: {e}")
            }
            _ => write!(f, "{path}: {what}"),
        }
    }
}

impl StorageError {
    pub fn new(kind: ErrorKind, path: impl Into<String>) -> StorageError {
        StorageError {
            kind,
            path: path.into(),
            source: None,
        }
    }

    pub fn io(path: impl Into<String>, e: io::Error) -> StorageError {
        let kind = match e.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::NotADirectory => ErrorKind::NotADirectory,
            io::ErrorKind::TimedOut => ErrorKind::TimedOut,
            io::ErrorKind::StaleNetworkFileHandle => ErrorKind::Stale,
            _ => match e.raw_os_error() {
                Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => ErrorKind::Symlink,
                Some(code) if code == rustix::io::Errno::STALE.raw_os_error() => ErrorKind::Stale,
                _ => ErrorKind::Other,
            },
        };
        StorageError {
            kind,
            path: path.into(),
            source: Some(e),
        }
    }

    /// Parse `path` as a key below the layout root ([`StorageKey::parse`]: the one rule for
    /// every backend), naming the path when it is refused.
    pub fn key(path: &str) -> Result<StorageKey<'_>, StorageError> {
        StorageKey::parse(path).map_err(|why| StorageError {
            kind: ErrorKind::Other,
            path: path.to_owned(),
            source: Some(io::Error::other(why)),
        })
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}
