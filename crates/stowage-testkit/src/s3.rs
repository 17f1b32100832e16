//! A real S3-compatible server on loopback for tests: `s3s-fs` (crates.io, installed by
//! `scripts/install-test-deps.sh`), which serves a directory as buckets: every subdirectory
//! of its root is a bucket, every file below it an object whose `LastModified` is the file's
//! mtime. A test can therefore put a fixture into a bucket by copying files, and compare what
//! stowage reads over S3 with what it reads from the very same files.
//!
//! When `s3s-fs` is not installed, [`S3Server::start`] says so loudly on stderr and returns
//! `None` so the test can end early, unless `STOWAGE_REQUIRE_REAL` is set (the test suite's
//! entry point sets it after installing the server), in which case the test fails.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "stowage-test-access";
pub const SECRET_KEY: &str = "stowage-test-secret-key";
pub const REGION: &str = "us-east-1";
const BINARY: &str = "s3s-fs";

/// Whether the server binary is on PATH.
pub fn available() -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {BINARY}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `true` when the test may go on; `false` (after a loud message) when it must end early.
/// Panics when the server is missing and `STOWAGE_REQUIRE_REAL` is set.
pub fn require(test: &str) -> bool {
    if available() {
        return true;
    }
    assert!(
        std::env::var_os("STOWAGE_REQUIRE_REAL").is_none(),
        "{BINARY} is not installed and STOWAGE_REQUIRE_REAL is set: run scripts/install-test-deps.sh"
    );
    eprintln!(
        "\n*** SKIPPED {test}: {BINARY} (the loopback S3 server) is not installed; \
         run scripts/install-test-deps.sh (scripts/test.sh does, and sets STOWAGE_REQUIRE_REAL) ***\n"
    );
    false
}

/// A running `s3s-fs` on 127.0.0.1; stopped when dropped.
pub struct S3Server {
    pub port: u16,
    /// The served directory: `<root>/<bucket>/<key>`.
    pub root: PathBuf,
    child: Child,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl S3Server {
    /// Serve `root` (created if missing). `None` when the server is not installed (see the
    /// module doc).
    pub fn start(root: &Path, test: &str) -> Option<S3Server> {
        if !require(test) {
            return None;
        }
        std::fs::create_dir_all(root).unwrap();
        let root = root.canonicalize().unwrap();
        let log = root.with_extension("s3s-fs.log");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(BINARY)
                .args(["--host", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
                .spawn()
                .unwrap();
            for _ in 0..200 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(S3Server {
                        port,
                        root,
                        child,
                        log,
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "{BINARY} did not start on a free loopback port after 5 tries; see {}",
            log.display()
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket (a directory of the served root) and return its directory.
    pub fn bucket(&self, name: &str) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Environment for a child process (stowage, the registry's GC) to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// The registry 2.8 `storage:` section for this server's `bucket` below `rootdirectory`.
    pub fn registry_storage_yaml(&self, bucket: &str, rootdirectory: &str) -> String {
        format!(
            "storage:\n  s3:\n    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: {REGION}\n    regionendpoint: {}\n    bucket: {bucket}\n    rootdirectory: {rootdirectory}\n    secure: false\n    v4auth: true\n    forcepathstyle: true\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n  redirect:\n    disable: true\n",
            self.endpoint()
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copy a directory tree (files and directories, mtimes kept) into `dest`: how a test puts a
/// filesystem fixture into an `s3s-fs` bucket.
pub fn copy_tree(src: &Path, dest: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", src.display(), dest.display());
}
