//! A real S3-compatible server on loopback for tests: moto's server mode (`moto_server`, PyPI
//! package `moto[server]`, installed by `scripts/install-test-deps.sh`). It serves
//! ListObjectsV2 (delimiter, pagination), GET, HEAD, PUT, CopyObject, DELETE, DeleteObjects
//! and the multipart calls the registry's `s3` driver needs to accept pushes
//! (ListMultipartUploads among them, which `s3s-fs` 0.14 lacks). State lives in memory.
//!
//! When `moto_server` is not installed, [`require`] says so loudly on stderr and returns
//! `false` so the test can end early, unless `STOWAGE_REQUIRE_REAL` is set (the test suite's
//! entry point sets it after installing the server), in which case the test fails.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::workspace_root;

pub const ACCESS_KEY: &str = "stowage-test-access";
pub const SECRET_KEY: &str = "stowage-test-secret-key";
pub const REGION: &str = "us-east-1";
const BINARY: &str = "moto_server";

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
        "\n*** SKIPPED {test}: {BINARY} (the loopback S3 server, PyPI moto[server]) is not \
         installed; run scripts/install-test-deps.sh (scripts/test.sh does, and sets \
         STOWAGE_REQUIRE_REAL) ***\n"
    );
    false
}

/// A running `moto_server` on 127.0.0.1; stopped when dropped.
pub struct S3Server {
    pub port: u16,
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
    /// Start a server (its log goes to `dir`). `None` when it is not installed (see the
    /// module doc).
    pub fn start(dir: &Path, test: &str) -> Option<S3Server> {
        if !require(test) {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("moto_server.log");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(BINARY)
                .args(["-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            for _ in 0..400 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(S3Server { port, child, log });
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

    /// Create a bucket.
    pub fn bucket(&self, name: &str) {
        let o = Command::new("curl")
            .args(["-fsS", "-X", "PUT"])
            .arg(format!("{}/{name}", self.endpoint()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "creating bucket {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Environment for a child process (stowage, boto3) to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// The registry 2.8 `storage:` section for `bucket` below `rootdirectory` on this server,
    /// as an operator writes it for an S3-compatible store on plain HTTP.
    pub fn registry_storage_yaml(&self, bucket: &str, rootdirectory: &str) -> String {
        format!(
            "storage:\n  s3:\n    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: {REGION}\n    regionendpoint: {}\n    bucket: {bucket}\n    rootdirectory: {rootdirectory}\n    secure: false\n    v4auth: true\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n  redirect:\n    disable: true\n",
            self.endpoint()
        )
    }

    /// Copy every object under `prefix` of `bucket` into `dest` (`dest/<key below prefix>`),
    /// each file's mtime set to the object's `LastModified`: a filesystem copy of the bucket
    /// made by an independent client (boto3, which moto depends on), for comparing what
    /// stowage reads over S3 with what it reads from the same objects on a disk.
    pub fn mirror(&self, bucket: &str, prefix: &str, dest: &Path) {
        let o = Command::new("python3")
            .arg(workspace_root().join("testkit/s3/mirror.py"))
            .args([bucket, prefix])
            .arg(dest)
            .envs(self.env())
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mirror.py failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
