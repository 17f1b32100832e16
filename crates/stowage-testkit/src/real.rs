//! Driving the real registry (Debian's `docker-registry`, distribution 2.8) and skopeo from
//! tests, through the project's own scripts in `testkit/real-registry/`.
//!
//! These need the tools `scripts/install-test-deps.sh` installs; a missing tool fails the test
//! with that instruction (the test suite's entry point installs them first).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::workspace_root;

fn script(name: &str) -> PathBuf {
    workspace_root().join("testkit/real-registry").join(name)
}

fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed: run scripts/install-test-deps.sh (scripts/test.sh does)"
    );
}

/// A fixture built by `testkit/real-registry/build.sh`.
pub struct RealFixture {
    pub dir: tempfile::TempDir,
}

impl RealFixture {
    pub fn rootdirectory(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }
    pub fn api_state(&self) -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.dir.path().join("api-state.json")).unwrap(),
        )
        .unwrap()
    }
    /// Every `repo:tag` the registry's API reported.
    pub fn tagged_refs(&self) -> Vec<String> {
        let v = self.api_state();
        let mut refs: Vec<String> = v["manifests"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        refs.sort();
        refs
    }
}

/// Build a fresh real-registry fixture (about 3 seconds).
pub fn build(with_digest_only_repo: bool) -> RealFixture {
    let fx = build_inner(with_digest_only_repo, None);
    // The build's config names the old location; point it at the storage's new home.
    write_config(
        &fx.dir.path().join("storage"),
        &fx.dir.path().join("config.yml"),
    );
    fx
}

/// Build the fixture with the registry on the storage a YAML `storage:` section names (its
/// `s3` driver against a loopback server, say). The fixture's `config.yml` keeps that section,
/// so `registry_gc_dry_run` and stowage's `--registry-config` read the same storage.
pub fn build_on(storage_section: &Path) -> RealFixture {
    build_inner(false, Some(storage_section))
}

fn build_inner(with_digest_only_repo: bool, storage_section: Option<&Path>) -> RealFixture {
    require("docker-registry");
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fx");
    let mut c = Command::new("bash");
    c.arg(script("build.sh")).arg(&target).env(
        "WITH_DIGEST_ONLY_REPO",
        if with_digest_only_repo { "1" } else { "0" },
    );
    if let Some(f) = storage_section {
        c.env("STORAGE_SECTION_FILE", f);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "build.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // Move the outputs up so `dir` owns them.
    for entry in std::fs::read_dir(&target).unwrap() {
        let e = entry.unwrap();
        std::fs::rename(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    RealFixture { dir }
}

/// Write the fixture's deterministic OCI image layout (the images `build.sh` pushes) into
/// `dir`, for tests that push again.
pub fn oci_layout(dir: &Path) {
    let o = Command::new("python3")
        .arg(script("oci_writer.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oci_writer.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Write two single-platform images no index references (`arm-only`: linux/arm64/v8,
/// `amd-only`: linux/amd64) as an OCI image layout into `dir`, for platform selectors.
pub fn oci_platform_layout(dir: &Path) {
    let o = Command::new("python3")
        .arg(script("oci_writer.py"))
        .arg("--platforms")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oci_writer.py --platforms failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Write one image per date (`built-0`, `built-1`, ...) whose config `created` (and build
/// step) is that date (RFC 3339) as an OCI image layout into `dir`, for build-date tests.
pub fn oci_dated_layout(dir: &Path, dates: &[&str]) {
    let o = Command::new("python3")
        .arg(script("oci_writer.py"))
        .arg("--built")
        .arg(dates.join(","))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "oci_writer.py --built failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Push `oci:<layout>:<name>` to `docker://<host>/<dest>` with skopeo, keeping digests.
pub fn push(layout: &Path, name: &str, host: &str, dest: &str) {
    require("skopeo");
    let o = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:{name}", layout.display()))
        .arg(format!("docker://{host}/{dest}"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo push of {name} to {dest} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Write a registry config for `rootdirectory` (filesystem driver, delete enabled).
pub fn write_config(rootdirectory: &Path, at: &Path) {
    let text =
        std::fs::read_to_string(workspace_root().join("fixtures/sample-config.yml")).unwrap();
    std::fs::write(at, text.replace("ROOTDIR", rootdirectory.to_str().unwrap())).unwrap();
}

/// Output of `docker-registry garbage-collect --dry-run [--delete-untagged] CONFIG`: the blob
/// digests it would delete, and the manifests (with `--delete-untagged`).
pub struct GcDryRun {
    pub blobs: BTreeSet<String>,
    pub manifests: BTreeSet<String>,
    pub exit_ok: bool,
    pub stderr: String,
}

pub fn registry_gc_dry_run(config: &Path, delete_untagged: bool) -> GcDryRun {
    require("docker-registry");
    let mut c = Command::new("docker-registry");
    // Its AWS SDK panics on a custom CA bundle (see build.sh); our S3 endpoints are plain HTTP.
    c.env_remove("AWS_CA_BUNDLE");
    c.arg("garbage-collect").arg("--dry-run");
    if delete_untagged {
        c.arg("--delete-untagged");
    }
    let o = c.arg(config).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    GcDryRun {
        blobs: text
            .lines()
            .filter_map(|l| l.strip_prefix("blob eligible for deletion: "))
            .map(|s| s.trim().to_string())
            .collect(),
        manifests: text
            .lines()
            .filter_map(|l| l.strip_prefix("manifest eligible for deletion: "))
            .map(|s| s.trim().to_string())
            .collect(),
        exit_ok: o.status.success(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A real registry serving a storage tree; stopped when dropped.
pub struct Server {
    pub port: u16,
    pid: u32,
}

impl Server {
    pub fn start(rootdirectory: &Path) -> Server {
        Server::start_inner(rootdirectory, None, &[])
    }

    /// With serve.sh's environment options (`SERVE_DIR` for the log, `LOG_FORMATTER`,
    /// `NOTIFY_URL`, `NOTIFY_SECRET`).
    pub fn start_env(rootdirectory: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_inner(rootdirectory, None, env)
    }

    /// Serve the storage a YAML `storage:` section names (see [`build_on`]).
    pub fn start_on(storage_section: &Path) -> Server {
        Server::start_inner(Path::new("-"), Some(storage_section), &[])
    }

    fn start_inner(
        rootdirectory: &Path,
        storage_section: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Server {
        require("docker-registry");
        let mut c = Command::new("bash");
        c.arg(script("serve.sh")).arg(rootdirectory);
        c.envs(env.iter().copied());
        if let Some(f) = storage_section {
            c.env("STORAGE_SECTION_FILE", f);
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "serve.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        let mut it = out.split_whitespace();
        let port = it
            .next()
            .and_then(|p| p.parse().ok())
            .expect("serve.sh prints PORT PID");
        let pid = it
            .next()
            .and_then(|p| p.parse().ok())
            .expect("serve.sh prints PORT PID");
        Server { port, pid }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pull every reference completely (`skopeo copy --all`). Returns the failures.
    pub fn pull_all(&self, refs: &[String]) -> Vec<String> {
        require("skopeo");
        if refs.is_empty() {
            return Vec::new();
        }
        let o = Command::new("bash")
            .arg(script("pull-all.sh"))
            .arg(self.host())
            .args(refs)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL "))
            .map(|s| s.to_string())
            .chain(if o.status.success() || o.status.code() == Some(1) {
                None
            } else {
                Some(format!(
                    "pull-all.sh: {}",
                    String::from_utf8_lossy(&o.stderr)
                ))
            })
            .collect()
    }

    /// HTTP status of `GET /v2/<repo>/manifests/<reference>` with every manifest type accepted.
    pub fn manifest_status(&self, repo: &str, reference: &str) -> u16 {
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Accept: {accept}"))
            .arg(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}
