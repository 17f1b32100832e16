//! The clients of the stress harness: skopeo (a real client: it checks what the destination
//! already has and mounts across repositories when its blob-info cache knows a source) and the
//! distribution API by hand with curl (HEAD-then-skip, cross-repository mount, monolithic
//! upload, manifest PUT), which gives exact control of each step. Every call has a timeout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc;
use super::registry::script;

const SKOPEO_TIMEOUT: Duration = Duration::from_secs(60);
const CURL_TIMEOUT_S: &str = "30";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One generated image: `stress_images.py`'s line.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub digest: String,
    /// Config first, then the layers.
    pub blobs: Vec<String>,
}

/// An OCI layout of deterministic images (`testkit/real-registry/stress_images.py`).
#[derive(Debug, Clone)]
pub struct Images {
    pub layout: PathBuf,
    pub list: Vec<Image>,
}

impl Images {
    pub fn generate(layout: &Path, count: usize, seed: u64, prefix: &str) -> Images {
        let mut c = Command::new("python3");
        c.arg(script("stress_images.py"))
            .arg(layout)
            .arg(count.to_string())
            .arg(seed.to_string())
            .arg(prefix);
        let o = proc::run(&mut c, Duration::from_secs(60), "stress_images.py").unwrap();
        assert!(o.ok(), "stress_images.py failed: {}", o.stderr);
        let list = o
            .stdout
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Image {
                    name: f[0].to_string(),
                    digest: f[1].to_string(),
                    blobs: f[3].split(',').map(str::to_string).collect(),
                }
            })
            .collect();
        Images {
            layout: layout.to_path_buf(),
            list,
        }
    }

    /// The file holding a blob (or manifest) of the layout.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        self.layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

/// skopeo with a private policy, registries.conf and registries.d, so host settings do not
/// matter (skopeo's blob-info cache stays the host's: it decides upload versus mount).
#[derive(Debug, Clone)]
pub struct Skopeo {
    dir: PathBuf,
}

impl Skopeo {
    pub fn new(dir: &Path) -> Skopeo {
        std::fs::create_dir_all(dir.join("registries.d")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(
            dir.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("registries.conf"), "").unwrap();
        Skopeo {
            dir: dir.to_path_buf(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("skopeo");
        c.env(
            "CONTAINERS_REGISTRIES_CONF",
            self.dir.join("registries.conf"),
        )
        .arg("--policy")
        .arg(self.dir.join("policy.json"))
        .arg("--registries.d")
        .arg(self.dir.join("registries.d"))
        .arg("--tmpdir")
        .arg(self.dir.join("tmp"))
        .arg("copy")
        .arg("--quiet");
        c
    }

    /// `skopeo copy --preserve-digests oci:LAYOUT:NAME docker://HOST/DEST`; Ok when exit 0.
    pub fn push(&self, images: &Images, name: &str, host: &str, dest: &str) -> Result<(), String> {
        let mut c = self.cmd();
        c.args([
            "--dest-tls-verify=false",
            "--dest-no-creds",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:{name}", images.layout.display()))
        .arg(format!("docker://{host}/{dest}"));
        let o = proc::run(&mut c, SKOPEO_TIMEOUT, &format!("skopeo push {dest}"))?;
        if o.ok() {
            Ok(())
        } else {
            Err(format!("skopeo push {dest}: {}", o.stderr.trim()))
        }
    }

    /// Pull `REF` completely (`skopeo copy --all`, which checks every blob's digest) into a
    /// scratch layout under `scratch`, and check the manifest digest is `want`.
    pub fn pull_check(
        &self,
        host: &str,
        reference: &str,
        want: &str,
        scratch: &Path,
    ) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(scratch);
        let mut c = self.cmd();
        c.args(["--all", "--src-tls-verify=false", "--src-no-creds"])
            .arg(format!("docker://{host}/{reference}"))
            .arg(format!("oci:{}:x", scratch.display()));
        let o = proc::run(&mut c, SKOPEO_TIMEOUT, &format!("skopeo pull {reference}"))?;
        let result = if !o.ok() {
            Err(o.stderr.trim().to_string())
        } else {
            let index = std::fs::read_to_string(scratch.join("index.json")).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&index).unwrap_or_default();
            match v["manifests"][0]["digest"].as_str() {
                Some(d) if d == want => Ok(()),
                other => Err(format!("pulled manifest {other:?}, pushed {want}")),
            }
        };
        let _ = std::fs::remove_dir_all(scratch);
        result
    }
}

/// An HTTP answer from curl.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub location: Option<String>,
    pub digest: Option<String>,
    pub body: String,
}

/// One request with curl: `-i` output split into the status, two headers and the body.
pub fn http(
    method: &str,
    url: &str,
    headers: &[String],
    body: Option<&Path>,
) -> Result<Resp, String> {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-i",
        "--max-time",
        CURL_TIMEOUT_S,
        "-H",
        "Expect:",
        "-X",
        method,
    ]);
    if method == "HEAD" {
        c.arg("-I");
    }
    for h in headers {
        c.arg("-H").arg(h);
    }
    if let Some(f) = body {
        c.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    c.arg(url);
    let o = proc::run(
        &mut c,
        Duration::from_secs(40),
        &format!("curl {method} {url}"),
    )?;
    if !o.ok() {
        return Err(format!("curl {method} {url}: {}", o.stderr.trim()));
    }
    let (head, body) = o.stdout.split_once("\r\n\r\n").unwrap_or((&o.stdout, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("curl {method} {url}: no status line in {head:?}"))?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    Ok(Resp {
        status,
        location: header("location"),
        digest: header("docker-content-digest"),
        body: body.to_string(),
    })
}

fn expect(r: Resp, want: u16, what: &str) -> Result<Resp, String> {
    if r.status == want {
        Ok(r)
    } else {
        Err(format!("{what}: HTTP {} {}", r.status, r.body.trim()))
    }
}

/// The distribution API of one registry, by hand.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
}

impl Api {
    pub fn new(host: &str) -> Api {
        Api {
            base: format!("http://{host}"),
        }
    }

    fn abs(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        }
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`'s status.
    pub fn head_blob(&self, repo: &str, digest: &str) -> Result<u16, String> {
        Ok(http(
            "HEAD",
            &format!("{}/v2/{repo}/blobs/{digest}", self.base),
            &[],
            None,
        )?
        .status)
    }

    /// `DELETE /v2/<repo>/manifests/<digest>`: 202 expected.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<(), String> {
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.base);
        expect(
            http("DELETE", &url, &[], None)?,
            202,
            &format!("DELETE {repo}@{digest}"),
        )
        .map(|_| ())
    }

    /// Monolithic upload: POST, then PUT the bytes with `?digest=`. 201 expected.
    pub fn upload(&self, repo: &str, digest: &str, file: &Path) -> Result<(), String> {
        let r = http(
            "POST",
            &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            &[],
            None,
        )?;
        let r = expect(r, 202, &format!("POST upload {repo}"))?;
        self.finish_upload(repo, r.location.as_deref(), digest, file)
    }

    fn finish_upload(
        &self,
        repo: &str,
        location: Option<&str>,
        digest: &str,
        file: &Path,
    ) -> Result<(), String> {
        let loc = self.abs(location.ok_or_else(|| format!("upload to {repo}: no Location"))?);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = http(
            "PUT",
            &format!("{loc}{sep}digest={digest}"),
            &["Content-Type: application/octet-stream".to_string()],
            Some(file),
        )?;
        expect(r, 201, &format!("PUT upload {repo} {digest}")).map(|_| ())
    }

    /// Cross-repository mount; returns true when mounted (201). When the registry answers 202
    /// (it started an upload instead), the upload is completed with `file`, as clients do.
    pub fn mount_or_upload(
        &self,
        repo: &str,
        digest: &str,
        from: &str,
        file: &Path,
    ) -> Result<bool, String> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let r = http("POST", &url, &[], None)?;
        match r.status {
            201 => Ok(true),
            202 => self
                .finish_upload(repo, r.location.as_deref(), digest, file)
                .map(|_| false),
            s => Err(format!(
                "POST mount {digest} {from} -> {repo}: HTTP {s} {}",
                r.body.trim()
            )),
        }
    }

    /// `PUT /v2/<repo>/manifests/<tag>`: 201 with the expected digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        digest: &str,
        file: &Path,
    ) -> Result<(), String> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let r = http(
            "PUT",
            &url,
            &[format!("Content-Type: {OCI_MANIFEST}")],
            Some(file),
        )?;
        let r = expect(r, 201, &format!("PUT manifest {repo}:{tag}"))?;
        match r.digest {
            Some(d) if d == digest => Ok(()),
            d => Err(format!(
                "PUT manifest {repo}:{tag}: registry says digest {d:?}, pushed {digest}"
            )),
        }
    }
}
