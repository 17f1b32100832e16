//! The headless-browser checks' plumbing, shared by the tests that open the HTML report or
//! the dashboard in Debian's chromium (`testkit/browser/*.mjs`, driven by playwright-core):
//! the check that the browser is installed, running a check script, and a `stowage serve`
//! on a free loopback port that is killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace_root;

/// Fails (never skips) when chromium or playwright-core is missing.
pub fn require() {
    let browser = workspace_root().join("testkit/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && browser.join("node_modules/playwright-core").exists(),
        "chromium or playwright-core missing: run scripts/install-test-deps.sh (scripts/test.sh does)"
    );
}

/// Run `testkit/browser/<script>` with `mode target expected shots`; it must print
/// "N passed, 0 failed" and exit 0.
pub fn run_check(script: &str, mode: &str, target: &str, expected: &Path, shots: &Path) {
    let o = Command::new("node")
        .arg(workspace_root().join("testkit/browser").join(script))
        .args([mode, target])
        .arg(expected)
        .arg(shots)
        .output()
        .expect("node runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{out}{err}");
    assert!(
        o.status.success(),
        "browser check {script} of the {mode} failed:\n{out}\n{err}"
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

/// A `stowage serve` this test started, killed (by its pid) when dropped.
pub struct Dashboard {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dashboard {
    /// `stowage --storage ROOT GLOBAL... serve --listen 127.0.0.1:0 --interval 1h SERVE...`,
    /// once its first scan is served (bounded wait: 600 x 50 ms).
    pub fn start(stowage: &Path, root: &Path, global: &[&str], serve: &[&str]) -> Dashboard {
        let mut child = Command::new(stowage)
            .arg("--storage")
            .arg(root)
            .args(global)
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "1h"])
            .args(serve)
            .env("TZ", "UTC")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("stowage serve starts");
        let mut line = String::new();
        let mut err = BufReader::new(child.stderr.take().expect("piped"));
        err.read_line(&mut line).expect("a first line");
        // Keep reading: with the pipe closed, the server's next line on stderr (a cache's
        // note at each scan) would fail to print and panic the scan.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let d = Dashboard { child, addr };
        for _ in 0..600 {
            if d.get("/api/v1/status")
                .is_some_and(|r| r.contains("\"generation\":1"))
            {
                return d;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "the dashboard never finished its first scan: {:?}",
            d.get("/api/v1/status")
        );
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// A plain HTTP/1.1 GET: the whole answer (status line, headers, body).
    pub fn get(&self, path: &str) -> Option<String> {
        let mut c = std::net::TcpStream::connect(&self.addr).ok()?;
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        Some(s)
    }
}

/// Where screenshots go: `<dir>/browser-screenshots` (a test passes its
/// `CARGO_TARGET_TMPDIR`).
pub fn shots(dir: &Path) -> PathBuf {
    let d = dir.join("browser-screenshots");
    std::fs::create_dir_all(&d).expect("screenshot directory");
    d
}
