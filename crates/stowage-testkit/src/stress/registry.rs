//! A real registry for the stress harness, started by `testkit/real-registry/serve.sh` with a
//! chosen blob descriptor cache, restartable on the same port by `restart.sh` (by the harness,
//! or by the collector under test through its restart command), and stopped when dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc;
use crate::workspace_root;

/// The registry's `storage.cache.blobdescriptor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCache {
    None,
    /// Debian's default: never forgets that a blob existed, until the process restarts.
    InMemory,
}

impl BlobCache {
    pub fn name(self) -> &'static str {
        match self {
            BlobCache::None => "none",
            BlobCache::InMemory => "inmemory",
        }
    }
}

impl fmt::Display for BlobCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) fn script(name: &str) -> PathBuf {
    workspace_root().join("testkit/real-registry").join(name)
}

/// A running `docker-registry serve` over `rootdirectory`; its config, log and PID file live
/// in `serve_dir`.
pub struct Registry {
    pub port: u16,
    pub rootdirectory: PathBuf,
    pub serve_dir: PathBuf,
    pub cache: BlobCache,
    /// The PID serve.sh reported, for when the PID file is gone (restarts update the file).
    started_pid: u32,
}

impl Registry {
    pub fn start(rootdirectory: &Path, serve_dir: &Path, cache: BlobCache) -> Registry {
        std::fs::create_dir_all(rootdirectory.join("docker/registry/v2")).unwrap();
        let mut c = Command::new("bash");
        c.arg(script("serve.sh"))
            .arg(rootdirectory)
            .env("SERVE_DIR", serve_dir)
            .env("BLOB_CACHE", cache.name());
        let o = proc::run(&mut c, Duration::from_secs(60), "serve.sh").unwrap();
        assert!(o.ok(), "serve.sh failed: {}", o.stderr);
        let mut it = o.stdout.split_whitespace().map(|w| w.parse::<u32>().ok());
        let (Some(Some(port)), Some(Some(started_pid))) = (it.next(), it.next()) else {
            panic!("serve.sh printed {:?}, not PORT PID", o.stdout)
        };
        let port = u16::try_from(port).expect("a port");
        Registry {
            port,
            rootdirectory: rootdirectory.to_path_buf(),
            serve_dir: serve_dir.to_path_buf(),
            cache,
            started_pid,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The registry's config file (also what `docker-registry garbage-collect` reads).
    pub fn config(&self) -> PathBuf {
        self.serve_dir.join("config.yml")
    }

    /// The shell command that restarts this registry on its port (for `--registry-restart`).
    pub fn restart_command(&self) -> String {
        format!(
            "bash {} {}",
            script("restart.sh").display(),
            self.serve_dir.display()
        )
    }

    /// Restart on the same port, as an operator does after a GC; panics if it does not answer.
    pub fn restart(&self) {
        let mut c = Command::new("bash");
        c.arg(script("restart.sh")).arg(&self.serve_dir);
        let o = proc::run(&mut c, Duration::from_secs(60), "restart.sh").unwrap();
        assert!(
            o.ok(),
            "restart.sh failed: {}\n(logs in {})",
            o.stderr,
            self.serve_dir.display()
        );
    }

    /// The registry's current PID (it changes with every restart).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.serve_dir.join("registry.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every log line the registry wrote, across restarts.
    pub fn log(&self) -> String {
        let mut text = String::new();
        let mut n = 1;
        while let Ok(t) = std::fs::read_to_string(self.serve_dir.join(format!("registry.log.{n}")))
        {
            text.push_str(&t);
            n += 1;
        }
        text.push_str(
            &std::fs::read_to_string(self.serve_dir.join("registry.log")).unwrap_or_default(),
        );
        text
    }

    fn is_ours(&self, pid: u32) -> bool {
        let config = self.config();
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&*config.to_string_lossy()))
            .unwrap_or(false)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Only a PID that /proc says runs our config: PIDs get reused.
        let pid = self.pid().unwrap_or(self.started_pid);
        if self.is_ours(pid) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
    }
}
