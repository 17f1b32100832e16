//! Pull-through caches end to end, with real components only: an upstream registry 2.8
//! filled by skopeo (the real-registry fixture), a second registry 2.8 in proxy mode pulling
//! through it, so the storage and `scheduler-state.json` are what the registry itself wrote.
//! Time is advanced by editing expiries in a copy (registry 2.8 has no `proxy.ttl`).
//!
//! One test runs the phases in order because they share the (slow to make) cache:
//! figures and findings, the registry's own expiry on the copy (the #4191 break), the cache
//! GC plan (shared layer kept, pulled-by-digest kept), apply with the scheduler state edit,
//! the proxy on the collected copy serving every image (kept ones with the upstream down,
//! evicted ones re-fetched from it), and the fail-safe on a truncated state file.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use stowage_testkit::browser;
use stowage_testkit::real::{self, Server};

/// The images pulled through the cache: tags, an OCI index (children pulled by `--all`), and
/// a child pulled by digest (untagged in the cache: goharbor/harbor#23570).
const KEPT: &[&str] = &[
    "multiarch/tool:1.0",
    "multiarch/tool@sha256:d6864101001859b2d2945c4445f9e4538e92a3616ec2619bbd4ae4789d03e05b",
    "team/app/web:1.0",
];
/// Expired by the test; shares its base layer (sha256:376a3e…) with multiarch/tool.
const EVICTED: &[&str] = &["library/base:1.0"];
const BASE_MANIFEST: &str =
    "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e";
const SHARED_LAYER: &str =
    "sha256:376a3eef07ac031be8f8a81cf8673d0d0ac35181599cd39d46d643c59ee5a5ec";

fn stowage(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("--storage")
        .arg(root)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "stowage failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn state_path(root: &Path) -> PathBuf {
    root.join("scheduler-state.json")
}

fn read_state(root: &Path) -> serde_json::Map<String, Value> {
    serde_json::from_slice::<Value>(&std::fs::read(state_path(root)).unwrap())
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn count_links(root: &Path, kind: &str) -> usize {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find '{}' -path '*/{kind}/*' -name link | wc -l",
            root.join("docker/registry/v2/repositories").display()
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Wait until the registry has saved an entry for every link it wrote (it saves every 5 s,
/// and schedules a blob after its background copy finished).
fn await_state(root: &Path) {
    for _ in 0..200 {
        if state_path(root).exists() {
            let st = read_state(root);
            let blobs = st.values().filter(|e| e["EntryType"] == 0).count();
            let manifests = st.values().filter(|e| e["EntryType"] == 1).count();
            if blobs == count_links(root, "_layers")
                && manifests == count_links(root, "revisions")
                && blobs > 0
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the proxy did not save its scheduler state within 20 s");
}

/// Set the expiry of every entry of `repo` to `at` (RFC 3339), as a later `now` would see it.
fn expire(root: &Path, repo: &str, at: &str) {
    let mut st = read_state(root);
    for (k, v) in st.iter_mut() {
        if k.starts_with(&format!("{repo}@")) {
            v["ExpiryData"] = Value::String(at.into());
        }
    }
    std::fs::write(state_path(root), serde_json::to_vec(&st).unwrap()).unwrap();
}

fn copy(from: &Path, to: &Path) {
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success()
    );
}

fn proxy(root: &Path, upstream_port: u16, dir: &Path) -> Server {
    Server::start_env(
        root,
        &[
            (
                "PROXY_REMOTEURL",
                &format!("http://127.0.0.1:{upstream_port}"),
            ),
            ("SERVE_DIR", dir.to_str().unwrap()),
        ],
    )
}

fn upstream_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
}

#[test]
fn pull_through_cache_end_to_end() {
    let up = real::build(false);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let up_dir = w.join("upstream-serve");
    let upstream = Server::start_env(
        &up.rootdirectory(),
        &[("SERVE_DIR", up_dir.to_str().unwrap())],
    );
    let up_port = upstream.port;
    let cache = fill(w, up_port);
    let state = read_state(&cache);
    assert!(state.contains_key(&format!("library/base@{SHARED_LAYER}")));
    assert!(state.contains_key(&format!("multiarch/tool@{SHARED_LAYER}")));

    // Why apply refuses a running cache: deleting under a running proxy with the inmemory
    // blob descriptor cache (Debian's default) gives the empty-200 symptom.
    empty_200_under_a_running_proxy(&cache, up_port, w);
    fresh_figures(&cache, &state);
    let (aged, expired_bytes) = aged_copy(&cache, &state, w);
    figures_and_policy_cap(&aged, w, expired_bytes);
    pages_show_the_cache(&aged, w);
    registry_expiry_deletes_the_shared_layer(&aged, up_port, w);
    plan_and_apply(&aged, w, expired_bytes);
    serve_after_gc(&aged, &up.rootdirectory(), &up_dir, upstream, w);
    fail_safe(&cache, w);
}

/// Issue 20: the HTML report and the dashboard of the aged cache show its figures (the
/// "expired but still stored" card, the cached repositories, per blob when it was cached and
/// when its TTL expires) as `stowage cache` computes them, in a real browser.
fn pages_show_the_cache(aged: &Path, w: &Path) {
    browser::require();
    let cache = json(&stowage(aged, &["--format", "json", "cache", "--objects"]));
    let expected = w.join("cache-expected.json");
    std::fs::write(&expected, serde_json::json!({ "cache": cache }).to_string()).unwrap();
    let shots = browser::shots(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let html = w.join("cache-report.html");
    let o = stowage(aged, &["report", "--html", html.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    browser::run_check(
        "cache.mjs",
        "report",
        html.to_str().unwrap(),
        &expected,
        &shots,
    );
    let d = browser::Dashboard::start(Path::new(env!("CARGO_BIN_EXE_stowage")), aged, &[], &[]);
    browser::run_check("cache.mjs", "dashboard", &d.url(), &expected, &shots);
}

fn shared_data(root: &Path) -> PathBuf {
    let hex = SHARED_LAYER.trim_start_matches("sha256:");
    root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ))
}

/// Fill a cache through a proxy; returns its rootdirectory once its state is saved.
fn fill(w: &Path, up_port: u16) -> PathBuf {
    // 1. Fill the cache through the proxy.
    let cache = w.join("cache");
    std::fs::create_dir_all(cache.join("docker/registry/v2")).unwrap();
    {
        let px = proxy(&cache, up_port, &w.join("px-fill"));
        let all: Vec<String> = KEPT.iter().chain(EVICTED).map(|s| s.to_string()).collect();
        assert_eq!(px.pull_all(&all), Vec::<String>::new());
        await_state(&cache);
    }
    // The proxy stops without saving again; let it exit before the storage is copied.
    std::thread::sleep(Duration::from_millis(300));
    cache
}

fn fresh_figures(cache: &Path, state: &serde_json::Map<String, Value>) {
    // 2. Figures and findings as the registry wrote them: nothing expired yet.
    let f = json(&stowage(cache, &["--format", "json", "cache"]));
    assert_eq!(f["schema"], "stowage.cache/v1");
    assert_eq!(f["state"], "read");
    assert_eq!(f["entries"].as_u64().unwrap() as usize, state.len());
    assert_eq!(f["expired_entries"], 0);
    assert_eq!(f["expired_stored_bytes"], 0);
    let check = json(&stowage(cache, &["--format", "json", "check"]));
    let kinds: Vec<&str> = check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["kind"].as_str())
        .filter(|k| k.starts_with("cache_"))
        .collect();
    assert_eq!(kinds, Vec::<&str>::new(), "a fresh cache is consistent");
}

fn aged_copy(cache: &Path, state: &serde_json::Map<String, Value>, w: &Path) -> (PathBuf, u64) {
    // 3. A week later for library/base only: its entries expired.
    let aged = w.join("aged");
    copy(cache, &aged);
    expire(&aged, "library/base", "2000-01-01T00:00:00Z");
    let f = json(&stowage(&aged, &["--format", "json", "cache"]));
    let base_entries = state
        .keys()
        .filter(|k| k.starts_with("library/base@"))
        .count();
    assert_eq!(
        f["expired_entries"].as_u64().unwrap() as usize,
        base_entries
    );
    let expired_bytes = f["expired_stored_bytes"].as_u64().unwrap();
    assert!(expired_bytes > 0);

    (aged, expired_bytes)
}

/// The cache figures in du, tags and explain, and the policy's cache rule being the same
/// plan as `gc --cache-max-bytes` (read-only).
fn figures_and_policy_cap(aged: &Path, w: &Path, expired_bytes: u64) {
    let o = stowage(aged, &["--format", "json", "du"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("expired but still stored"),
        "the header's headline"
    );
    let du = json(&o);
    assert_eq!(du["cache"]["expired_stored_bytes"], expired_bytes);
    let tags = json(&stowage(
        aged,
        &["--format", "json", "tags", "library/base"],
    ));
    let tc = tags["cache"].as_array().unwrap();
    assert!(
        !tc.is_empty() && tc.iter().all(|t| t["expired"] == true),
        "{tc:?}"
    );
    let target = format!("library/base@{BASE_MANIFEST}");
    let ex = json(&stowage(aged, &["--format", "json", "explain", &target]));
    assert!(
        ex["facts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f[0] == "cached manifest in library/base"
                && f[1].as_str().unwrap().contains("expired but still stored")),
        "{ex}"
    );
    let policy = w.join("cache-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: retention.v1\nkind: RetentionPolicy\nprotections: {grace_period: 0s}\ncache: {max_bytes: \"1\", evict: least_recently_pulled}\npolicies: []\n",
    )
    .unwrap();
    let from_policy = json(&stowage(
        aged,
        &[
            "--format",
            "json",
            "plan",
            "--policy",
            policy.to_str().unwrap(),
        ],
    ));
    let from_flag = json(&stowage(
        aged,
        &[
            "--format",
            "json",
            "gc",
            "--grace",
            "0s",
            "--cache-max-bytes",
            "1",
        ],
    ));
    for k in ["manifests", "blobs", "blob_bytes", "tags"] {
        assert_eq!(from_policy[k], from_flag[k], "{k}");
    }
    let (a, b) = (
        &from_policy["cache"]["size_cap"],
        &from_flag["cache"]["size_cap"],
    );
    assert_eq!(a["images"], b["images"]);
    assert!(!a["images"].as_array().unwrap().is_empty());
    // Every cached image with an entry goes; the bytes are exact: what expired plus what
    // each capped image frees.
    let capped: u64 = a["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["bytes_freed"].as_u64().unwrap())
        .sum();
    assert_eq!(
        from_policy["blob_bytes"].as_u64().unwrap(),
        expired_bytes + capped
    );
}

fn registry_expiry_deletes_the_shared_layer(aged: &Path, up_port: u16, w: &Path) {
    // 3a. What the registry itself does with that state (#4191): started on a copy, it fires
    // the expired entries at once, and library/base's blob entry for the shared layer
    // deletes the layer's data for every repository, though multiarch/tool still needs it.
    let by_registry = w.join("by-registry");
    copy(aged, &by_registry);
    let hex = SHARED_LAYER.trim_start_matches("sha256:");
    {
        let _px = proxy(&by_registry, up_port, &w.join("px-registry"));
        // The expired entries fire in the background as the scheduler starts.
        for _ in 0..50 {
            if !shared_data(&by_registry).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        !shared_data(&by_registry).exists(),
        "the registry deleted the shared layer"
    );
    assert!(
        std::fs::read_to_string(w.join("px-registry/registry.log"))
            .unwrap()
            .contains(&format!(
                "Deleting blob: /docker/registry/v2/blobs/sha256/{}/{hex}",
                &hex[..2]
            ))
    );
}

fn plan_and_apply(aged: &Path, w: &Path, expired_bytes: u64) {
    // 4. The cache GC plan: library/base evicted; the shared layer and the image pulled by
    // digest kept; the state edit extends nothing kept below its need.
    let plan_path = w.join("plan.json");
    let out = stowage(
        aged,
        &[
            "--verbose",
            "--format",
            "json",
            "gc",
            "--grace",
            "0s",
            "-o",
            plan_path.to_str().unwrap(),
        ],
    );
    // The state file is seen before the scan: one scan, with every file stat-ed.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("scanned in").count(), 1, "{err}");
    let plan = json(&out);
    assert_eq!(plan["options"]["cache"], true);
    let evicted: Vec<String> = plan["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}@{}",
                m["repository"].as_str().unwrap(),
                m["digest"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        evicted.contains(&format!("library/base@{BASE_MANIFEST}")),
        "{evicted:?}"
    );
    assert!(
        evicted.iter().all(|m| m.starts_with("library/base@")),
        "{evicted:?}"
    );
    let blobs: Vec<&str> = plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    assert!(
        !blobs.contains(&SHARED_LAYER),
        "the shared layer stays (#4191)"
    );
    assert!(
        blobs.contains(&BASE_MANIFEST),
        "the manifest's data goes too (#4957)"
    );
    assert_eq!(plan["blob_bytes"].as_u64().unwrap(), expired_bytes);
    let edit = &plan["cache"];
    assert!(edit["remove"].as_array().unwrap().len() >= 2);
    // Extended: library/base's entry for the shared layer (multiarch/tool still needs it),
    // and entries the registry itself scheduled too early: multiarch/tool's layers were
    // cached with the OCI index's children, and the docker child pulled by digest later
    // found them local, so nothing rescheduled them for its own, later expiry.
    let extended: Vec<&str> = edit["extend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["to"].as_str().unwrap() > e["from"].as_str().unwrap());
            assert!(
                !e["needed_by"]
                    .as_str()
                    .unwrap()
                    .starts_with("library/base@")
            );
            e["key"].as_str().unwrap()
        })
        .collect();
    assert!(extended.contains(&format!("library/base@{SHARED_LAYER}").as_str()));

    // 5. Apply: refused online (the running registry would undo it), done offline.
    let o = stowage(
        aged,
        &[
            "apply",
            "--yes",
            "--registry-cache",
            "none",
            plan_path.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stop the pull-through cache registry"),
        "{err}"
    );
    let o = stowage(
        aged,
        &["apply", "--yes", "--offline", plan_path.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = read_state(aged);
    assert!(
        after
            .keys()
            .all(|k| !k.starts_with("library/base@") || k.ends_with(SHARED_LAYER))
    );
    assert!(after[&format!("library/base@{SHARED_LAYER}")]["ExpiryData"] != "2000-01-01T00:00:00Z");
    let f = json(&stowage(aged, &["--format", "json", "cache"]));
    assert_eq!(f["expired_entries"], 0);
    assert_eq!(f["expired_stored_bytes"], 0);
}

fn serve_after_gc(aged: &Path, up_root: &Path, up_dir: &Path, upstream: Server, w: &Path) {
    let up_port = upstream.port;
    // 6. The proxy on the collected copy (registry 2.8 in proxy mode does not start while
    // its upstream is unreachable: it pings it at start). Then the upstream stops: every kept
    // image is served locally, the evicted one is gone.
    assert!(shared_data(aged).exists(), "stowage kept the shared layer");
    {
        let px = proxy(aged, up_port, &w.join("px-after"));
        drop(upstream);
        std::thread::sleep(Duration::from_millis(500));
        let kept: Vec<String> = KEPT.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            px.pull_all(&kept),
            Vec::<String>::new(),
            "kept images, upstream down"
        );
        let evicted: Vec<String> = EVICTED.iter().map(|s| s.to_string()).collect();
        assert_eq!(px.pull_all(&evicted), evicted, "evicted, upstream down");

        // Upstream back on its port: everything pulls, the evicted image from the upstream.
        let _upstream = Server::start_env(
            up_root,
            &[
                ("SERVE_DIR", up_dir.to_str().unwrap()),
                ("PORT", &up_port.to_string()),
            ],
        );
        let before = upstream_log(up_dir).len();
        let all: Vec<String> = KEPT.iter().chain(EVICTED).map(|s| s.to_string()).collect();
        assert_eq!(
            px.pull_all(&all),
            Vec::<String>::new(),
            "100% pull after GC"
        );
        // The access log: the evicted image's manifest and blobs came from the upstream;
        // for the kept ones the proxy only asked where their tags point (its tag service
        // always does) and fetched no manifest or blob.
        let fetched = upstream_log(up_dir)[before..].to_string();
        let gets = |prefix: &str| fetched.matches(&format!("\"GET /v2/{prefix}")).count();
        assert!(gets("library/base/manifests/") > 0, "{fetched}");
        assert!(gets("library/base/blobs/") > 0, "{fetched}");
        for kept in ["multiarch/tool/", "team/app/web/"] {
            assert_eq!(
                gets(&format!("{kept}manifests/")) + gets(&format!("{kept}blobs/")),
                0
            );
        }
    }
}

fn fail_safe(cache: &Path, w: &Path) {
    // 7. Fail-safe: a truncated state file is a finding, and nothing is evicted on it.
    let bad = w.join("bad");
    copy(cache, &bad);
    expire(&bad, "library/base", "2000-01-01T00:00:00Z");
    let text = std::fs::read(state_path(&bad)).unwrap();
    std::fs::write(state_path(&bad), &text[..text.len() / 2]).unwrap();
    let check = json(&stowage(&bad, &["--format", "json", "check"]));
    assert!(
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "cache_state_unusable")
    );
    let plan = json(&stowage(&bad, &["--format", "json", "gc", "--grace", "0s"]));
    assert_eq!(plan["manifests"].as_array().unwrap().len(), 0);
    assert_eq!(plan["blobs"].as_array().unwrap().len(), 0);
    assert_eq!(plan["cache"]["state_usable"], false);
}

/// A copy of the cache served by a proxy with `inmemory` descriptors: once a blob has been
/// served, removing its data under the running registry (what an online apply would do)
/// leaves HEAD answering 200 and GET answering 200 with an empty body.
fn empty_200_under_a_running_proxy(cache: &Path, up_port: u16, w: &Path) {
    let live = w.join("live");
    copy(cache, &live);
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(live.join(format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &BASE_MANIFEST[7..9],
            &BASE_MANIFEST[7..]
        )))
        .unwrap(),
    )
    .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let size = manifest["config"]["size"].as_u64().unwrap();
    let px = Server::start_env(
        &live,
        &[
            ("PROXY_REMOTEURL", &format!("http://127.0.0.1:{up_port}")),
            ("SERVE_DIR", w.join("px-live").to_str().unwrap()),
            ("BLOB_CACHE", "inmemory"),
        ],
    );
    let url = format!("http://{}/v2/library/base/blobs/{config}", px.host());
    let get = |method: &str| -> (String, usize) {
        let o = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg(&url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.len())
    };
    assert_eq!(get("GET"), ("200".to_string(), size as usize));
    let hex = &config[7..];
    std::fs::remove_dir_all(live.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}",
        &hex[..2]
    )))
    .unwrap();
    let (code, len) = get("GET");
    assert_eq!((code.as_str(), len), ("200", 0), "the empty-200 symptom");
}
