//! Storage surgery end to end (issue 21): `stowage plan repo-delete | repo-move | tag-delete`
//! then `stowage apply` (online, while the real registry serves), then the real registry and
//! skopeo: every kept image pulls completely (`skopeo copy --all`), what was removed answers
//! 404, moved tags keep their digests, and `stowage check` finds nothing new.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real::Server;

fn stowage(storage: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(storage)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Plan with `args`, then apply online (the registry keeps serving; it has no blob cache),
/// collecting what the surgery frees. Returns the plan.
fn plan_and_apply(root: &Path, dir: &Path, args: &[&str]) -> Value {
    plan_and_apply_with(root, dir, args, &["--gc", "--registry-cache", "none"])
}

fn plan_and_apply_with(root: &Path, dir: &Path, args: &[&str], apply: &[&str]) -> Value {
    let plan = dir.join(format!("plan-{}.json", args.join("-").replace('/', "_")));
    let mut a = vec!["plan"];
    a.extend_from_slice(args);
    a.extend([
        "--grace",
        "0s",
        "-o",
        plan.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&ok(&stowage(root, &a))).unwrap();
    // Online: the registry keeps serving; fenced sections are compared with the plan.
    let mut a = vec!["apply", plan.to_str().unwrap(), "--yes", "--settle", "0s"];
    a.extend_from_slice(apply);
    let out = ok(&stowage(root, &a));
    assert!(out.contains("surgery:") || out.contains("tags"), "{out}");
    v
}

/// `stowage check`'s counts per finding kind.
fn check_counts(root: &Path) -> serde_json::Map<String, Value> {
    let o = stowage(root, &["check", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["counts"].as_object().cloned().unwrap_or_default()
}

fn assert_nothing_new(before: &serde_json::Map<String, Value>, root: &Path) {
    for (k, n) in check_counts(root) {
        let was = before.get(&k).and_then(Value::as_u64).unwrap_or(0);
        assert!(n.as_u64().unwrap() <= was, "check: {k} {n} (was {was})");
    }
}

/// Every tagged reference of the sample, minus those of `gone` repositories.
fn refs_except(gone: &[&str]) -> Vec<String> {
    let api = stowage_testkit::sample_api_state();
    api["manifests"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|r| !gone.iter().any(|g| r.rsplit_once(':').unwrap().0 == *g))
        .cloned()
        .collect()
}

fn catalog(s: &Server) -> Vec<String> {
    let o = Command::new("curl")
        .arg("-s")
        .arg(format!("http://{}/v2/_catalog", s.host()))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// The digest the registry serves for `repo:reference` (`Docker-Content-Digest`).
fn served_digest(s: &Server, repo: &str, reference: &str) -> String {
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    let o = Command::new("curl")
        .args(["-s", "-I", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!(
            "http://{}/v2/{repo}/manifests/{reference}",
            s.host()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("docker-content-digest:")
                .map(|d| d.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn repo_move_of_a_multi_arch_repository_serves_every_tag_at_the_same_digest() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let checked = check_counts(&root);
    let server = Server::start(&root);
    let tags = ["1.0", "1.0-docker"];
    let before: Vec<String> = tags
        .iter()
        .map(|t| served_digest(&server, "multiarch/tool", t))
        .collect();
    assert!(
        before.iter().all(|d| d.starts_with("sha256:")),
        "{before:?}"
    );
    // The registry serves while apply runs: the move is online.
    let plan = plan_and_apply(
        &root,
        s.dir.path(),
        &["repo-move", "multiarch/tool", "moved/tool"],
    );
    assert_eq!(plan["kind"], "surgery");
    assert_eq!(plan["surgery"]["operation"], "repo-move");
    for (t, d) in tags.iter().zip(&before) {
        assert_eq!(
            &served_digest(&server, "moved/tool", t),
            d,
            "moved/tool:{t}"
        );
        assert_eq!(server.manifest_status("multiarch/tool", t), 404);
    }
    let moved: Vec<String> = tags.iter().map(|t| format!("moved/tool:{t}")).collect();
    assert_eq!(server.pull_all(&moved), Vec::<String>::new());
    let c = catalog(&server);
    assert!(c.contains(&"moved/tool".to_string()), "{c:?}");
    assert!(!c.contains(&"multiarch/tool".to_string()), "{c:?}");
    assert_eq!(
        server.pull_all(&refs_except(&["multiarch/tool"])),
        Vec::<String>::new()
    );
    assert_nothing_new(&checked, &root);
}

#[test]
fn repo_copy_keeps_the_source_and_a_nested_copy_survives_deleting_its_parent() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let checked = check_counts(&root);
    let server = Server::start(&root);
    plan_and_apply(
        &root,
        s.dir.path(),
        &["repo-move", "--copy", "team/app/web", "team/app/web/inner"],
    );
    let all = refs_except(&[]);
    assert_eq!(
        server.pull_all(&all),
        Vec::<String>::new(),
        "the source still pulls"
    );
    let inner: Vec<String> = all
        .iter()
        .filter_map(|r| r.strip_prefix("team/app/web:"))
        .map(|t| format!("team/app/web/inner:{t}"))
        .collect();
    assert_eq!(inner.len(), 2);
    assert_eq!(
        server.pull_all(&inner),
        Vec::<String>::new(),
        "the copy pulls"
    );
    assert_nothing_new(&checked, &root);
    // Deleting the parent names the nested repository and keeps it.
    let plan = plan_and_apply(&root, s.dir.path(), &["repo-delete", "team/app/web"]);
    assert_eq!(plan["surgery"]["nested_kept"][0], "team/app/web/inner");
    assert_eq!(
        server.pull_all(&inner),
        Vec::<String>::new(),
        "nested: kept"
    );
    assert_eq!(server.manifest_status("team/app/web", "1.0"), 404);
    assert!(!catalog(&server).contains(&"team/app/web".to_string()));
    assert_eq!(
        server.pull_all(&refs_except(&["team/app/web"])),
        Vec::<String>::new()
    );
    assert_nothing_new(&checked, &root);
}

#[test]
fn repo_delete_by_glob_leaves_every_other_repository_pulling() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let checked = check_counts(&root);
    let server = Server::start(&root);
    let gone = ["team/app/api", "team/app/worker"];
    let plan = plan_and_apply(
        &root,
        s.dir.path(),
        &["repo-delete", "team/app/{api,worker}"],
    );
    let removed: Vec<&str> = plan["surgery"]["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repository"].as_str().unwrap())
        .collect();
    assert_eq!(removed, gone);
    // Bytes: what the plan frees is gone from the storage, what it keeps shared is there.
    let blob = |d: &Value| {
        let d = d
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        root.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{d}/data",
            &d[..2]
        ))
    };
    assert!(!plan["blobs"].as_array().unwrap().is_empty(), "{plan}");
    assert!(
        !plan["surgery"]["shared"].as_array().unwrap().is_empty(),
        "{plan}"
    );
    for b in plan["blobs"].as_array().unwrap() {
        assert!(!blob(&b["digest"]).exists(), "{b}");
    }
    for b in plan["surgery"]["shared"].as_array().unwrap() {
        assert!(blob(&b["digest"]).exists(), "{b}");
    }
    let c = catalog(&server);
    for g in gone {
        assert!(!c.contains(&g.to_string()), "{c:?}");
    }
    assert_eq!(server.manifest_status("team/app/api", "latest"), 404);
    assert_eq!(server.manifest_status("team/app/worker", "stable"), 404);
    assert_eq!(server.pull_all(&refs_except(&gone)), Vec::<String>::new());
    assert_nothing_new(&checked, &root);
}

#[test]
fn tag_delete_leaves_the_other_tags_of_the_same_manifest_pulling() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let checked = check_counts(&root);
    let server = Server::start(&root);
    let plan = plan_and_apply(&root, s.dir.path(), &["tag-delete", "library/base:1.0"]);
    assert_eq!(plan["tags"].as_array().unwrap().len(), 1);
    assert!(
        plan["blobs"].as_array().unwrap().is_empty(),
        "latest keeps it"
    );
    assert_eq!(server.manifest_status("library/base", "1.0"), 404);
    let kept: Vec<String> = refs_except(&[])
        .into_iter()
        .filter(|r| r != "library/base:1.0")
        .collect();
    assert_eq!(server.pull_all(&kept), Vec::<String>::new());
    assert_nothing_new(&checked, &root);
}

/// A real `redis-server` on a free loopback port, stopped on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server: run scripts/install-test-deps.sh");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Redis {
                    child,
                    port,
                    _dir: dir,
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not listen on {port}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_deleted_repository_is_not_served_from_the_registry_redis_cache() {
    // The registry's redis cache keeps which blobs each repository holds
    // (`repository::<name>::blobs`): a manifest of a deleted repository whose blob stays
    // (no --gc here) would still be served by digest were that set left.
    let redis = Redis::start();
    let addr = format!("127.0.0.1:{}", redis.port);
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let server = Server::start_env(&root, &[("BLOB_CACHE", "redis"), ("REDIS_ADDR", &addr)]);
    let api = stowage_testkit::sample_api_state();
    let digest = api["manifests"]["team/app/api:latest"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let refs = ["team/app/api:latest".to_string()];
    assert_eq!(
        server.pull_all(&refs),
        Vec::<String>::new(),
        "fills the cache"
    );
    assert_eq!(server.manifest_status("team/app/api", &digest), 200);
    // Every blob of the image, by digest, in the repository (the registry's repository-scoped
    // blob cache answers these).
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
    let m = Command::new("curl")
        .args(["-s", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg(format!(
            "http://{}/v2/team/app/api/manifests/{digest}",
            server.host()
        ))
        .output()
        .unwrap();
    let m: Value = serde_json::from_slice(&m.stdout).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    let blob_status = |d: &str| -> u16 {
        let o = Command::new("curl")
            .args(["-s", "-I", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!(
                "http://{}/v2/team/app/api/blobs/{d}",
                server.host()
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    };
    for b in &blobs {
        assert_eq!(blob_status(b), 200, "{b}");
    }
    plan_and_apply_with(
        &root,
        s.dir.path(),
        &["repo-delete", "team/app/api"],
        &["--registry-cache", "redis", "--redis-addr", &addr],
    );
    assert_eq!(server.manifest_status("team/app/api", "latest"), 404);
    assert_eq!(server.manifest_status("team/app/api", &digest), 404);
    for b in &blobs {
        assert_eq!(
            blob_status(b),
            404,
            "{b} is still served in the deleted repository"
        );
    }
    assert_eq!(
        server.pull_all(&refs_except(&["team/app/api"])),
        Vec::<String>::new()
    );
}
