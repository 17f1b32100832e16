//! Retention end to end on a real-registry fixture, through the binary: plan, a refused apply
//! when an in-use source starts protecting a planned image, apply --gc into a quarantine, the
//! real registry serves every kept image completely (skopeo copy --all) and none of the
//! deleted ones, the freed bytes equal the preview, and restore brings the deleted ones back.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use stowage_testkit::real::{self, Server};

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
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Warning- and error-level findings of `stowage check`, as `kind path`.
fn problems(root: &Path, now: &str) -> Vec<String> {
    let check = stowage(
        root,
        &["check", "--no-progress", "--format", "json", "--now", now],
    );
    let v: Value = serde_json::from_slice(&check.stdout).unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| format!("{} {}", f["kind"], f["path"]))
        .collect()
}

/// Dates every link of `team/app/web` explicitly, so the keep-newest floor does not depend on
/// push timing (the fixture's pushes often land within one second): the tagged image and
/// its tags on 2020-01-01, each untagged revision one minute later. The untagged image is
/// then the newest and the floor keeps it, whatever the machine.
fn date_web_links(root: &Path) {
    use std::time::{Duration, SystemTime};
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    let set = |p: &Path, t: SystemTime| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let manifests = root.join("docker/registry/v2/repositories/team/app/web/_manifests");
    let mut tagged = Vec::new();
    for tag in std::fs::read_dir(manifests.join("tags")).unwrap() {
        let tag = tag.unwrap().path();
        let current = tag.join("current/link");
        tagged.push(std::fs::read_to_string(&current).unwrap());
        set(&current, t0);
        for entry in std::fs::read_dir(tag.join("index/sha256")).unwrap() {
            set(&entry.unwrap().path().join("link"), t0);
        }
    }
    for rev in std::fs::read_dir(manifests.join("revisions/sha256")).unwrap() {
        let rev = rev.unwrap().path();
        let digest = format!("sha256:{}", rev.file_name().unwrap().to_str().unwrap());
        let later = if tagged.contains(&digest) {
            t0
        } else {
            t0 + Duration::from_secs(60)
        };
        set(&rev.join("link"), later);
    }
}

const POLICY: &str = r#"apiVersion: retention.v1
kind: RetentionPolicy
metadata: {name: e2e}
protections:
  keep_newest_per_repository: 1
  in_use:
    registry_aliases: ["registry.example.com"]
    sources:
      - {name: deployed, format: image-refs, path: deployed.txt}
policies:
  - id: web
    scope: {repositories: ["glob:team/app/web"]}
    select: {tags: ["glob:1.0"]}
    otherwise: delete
  - id: tool
    scope: {repositories: ["glob:multiarch/*"]}
    select: {tags: ["glob:1.0"]}
    overrides: {keep_newest_per_repository: 0}
    otherwise: delete
  - id: api
    scope: {repositories: ["glob:team/app/api"]}
    otherwise: delete
"#;

#[test]
fn plan_apply_gc_quarantine_restore_against_the_real_registry() {
    let fx = real::build(false);
    let root = fx.rootdirectory();
    let dir = fx.dir.path();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let deployed = dir.join("deployed.txt");
    std::fs::write(&deployed, "registry.example.com/team/app/api:latest\n").unwrap();
    let plan_file = dir.join("plan.json");
    let later = "2099-01-01T00:00:00Z";
    date_web_links(&root);

    let planned = plan_and_review(&root, &policy, &plan_file, later);
    refused_while_in_use_names_a_planned_image(&root, &deployed, &plan_file, later);
    apply_gc_serve_and_restore(&fx, &plan_file, later, &planned);
}

/// What the plan deletes, as the test checks it after apply.
struct Planned {
    tags: Vec<String>,
    manifests: Vec<(String, String)>,
    preview: u64,
}

/// Plan twice (the same bytes), then check what it deletes and keeps, and how `explain` and
/// `plan show` present it.
fn plan_and_review(root: &Path, policy: &Path, plan_file: &Path, later: &str) -> Planned {
    let out = ok(&stowage(
        root,
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "-o",
            plan_file.to_str().unwrap(),
            "--format",
            "json",
            "--no-progress",
            "--now",
            later,
            "--expires",
            "1h",
        ],
    ));
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["kind"], "retention");
    // Deterministic: the same inputs and --now give the same bytes.
    let again = ok(&stowage(
        root,
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
            "--no-progress",
            "--now",
            later,
            "--expires",
            "1h",
        ],
    ));
    assert_eq!(out, again);

    let tags: Vec<String> = plan["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["repository"].as_str().unwrap(),
                t["tag"].as_str().unwrap()
            )
        })
        .collect();
    assert!(tags.contains(&"team/app/web:1.0".to_string()), "{tags:?}");
    assert!(tags.contains(&"multiarch/tool:1.0".to_string()), "{tags:?}");
    assert!(
        tags.iter()
            .any(|t| t.starts_with("team/app/web:sha256-") && t.ends_with(".sig")),
        "the cosign tag goes with its signature: {tags:?}"
    );
    assert!(
        !tags.iter().any(|t| t.starts_with("team/app/api:")),
        "in use: team/app/api:latest (and v2, the same digest) stay: {tags:?}"
    );
    assert!(!tags.contains(&"multiarch/tool:1.0-docker".to_string()));
    let ret = &plan["retention"];
    let preview = ret["bytes"]["reclaimable_after_gc"].as_u64().unwrap();
    assert!(preview > 0);
    assert!(
        ret["bytes"]["shared_kept"].as_u64().unwrap() > 0,
        "base layers are shared with kept images"
    );
    let deleted_manifests: Vec<(String, String)> = plan["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["repository"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The OCI index goes with both its platform children; its reasons are explained.
    assert!(
        deleted_manifests
            .iter()
            .filter(|(r, _)| r == "multiarch/tool")
            .count()
            >= 3,
        "{deleted_manifests:?}"
    );
    let explain = ok(&stowage(
        root,
        &["explain", plan_file.to_str().unwrap(), "multiarch/tool:1.0"],
    ));
    assert!(
        explain.contains("decision: DELETE") && explain.contains("delete: tool/otherwise"),
        "{explain}"
    );
    assert!(explain.contains("child sha256:"), "{explain}");
    let explain = ok(&stowage(
        root,
        &[
            "explain",
            plan_file.to_str().unwrap(),
            "team/app/api:latest",
        ],
    ));
    assert!(explain.contains("protection/in_use(deployed)"), "{explain}");
    let show = ok(&stowage(
        root,
        &["plan", "show", plan_file.to_str().unwrap()],
    ));
    assert!(
        show.contains("web/otherwise") && show.contains("freed after GC"),
        "{show}"
    );

    Planned {
        tags,
        manifests: deleted_manifests,
        preview,
    }
}

/// An in-use source that now names a planned image: the apply is refused, nothing moves.
fn refused_while_in_use_names_a_planned_image(
    root: &Path,
    deployed: &Path,
    plan_file: &Path,
    later: &str,
) {
    std::fs::write(
        deployed,
        "registry.example.com/team/app/api:latest\nteam/app/web:1.0\n",
    )
    .unwrap();
    let before = ok(&stowage(
        root,
        &[
            "inventory",
            "--format",
            "json",
            "--no-progress",
            "--now",
            later,
        ],
    ));
    let refused = stowage(
        root,
        &[
            "apply",
            plan_file.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
            "--gc",
            "--now",
            later,
        ],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("in-use protection changed") && err.contains("team/app/web:1.0"),
        "{err}"
    );
    assert_eq!(
        before,
        ok(&stowage(
            root,
            &[
                "inventory",
                "--format",
                "json",
                "--no-progress",
                "--now",
                later
            ]
        ))
    );
    std::fs::write(deployed, "registry.example.com/team/app/api:latest\n").unwrap();
}

/// Apply with --gc into a quarantine: freed bytes equal the preview, the real registry serves
/// every kept image and none of the deleted ones, `check` finds nothing new; restore brings
/// the deleted ones back.
fn apply_gc_serve_and_restore(
    fx: &real::RealFixture,
    plan_file: &Path,
    later: &str,
    planned: &Planned,
) {
    let root = fx.rootdirectory();
    let dir = fx.dir.path();
    let Planned {
        tags,
        manifests: deleted_manifests,
        preview,
    } = planned;
    let preview = *preview;
    let problems_before = problems(&root, later);
    let q = dir.join("quarantine");
    let rep: Value = serde_json::from_str(&ok(&stowage(
        &root,
        &[
            "apply",
            plan_file.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
            "--gc",
            "--quarantine",
            q.to_str().unwrap(),
            "--format",
            "json",
            "--now",
            later,
        ],
    )))
    .unwrap();
    assert_eq!(rep["skipped"].as_array().unwrap().len(), 0, "{rep:#}");
    assert_eq!(
        rep["bytes_freed"].as_u64().unwrap(),
        preview,
        "freed bytes equal the preview"
    );
    assert_eq!(rep["tags"].as_u64().unwrap() as usize, tags.len());

    let server = Server::start(&root);
    let kept: Vec<String> = fx
        .tagged_refs()
        .into_iter()
        .filter(|r| !tags.contains(r))
        .collect();
    assert!(kept.len() >= 4, "{kept:?}");
    let failed = server.pull_all(&kept);
    assert!(
        failed.is_empty(),
        "kept images broken after apply: {failed:?}"
    );
    for t in tags {
        let (repo, tag) = t.rsplit_once(':').unwrap();
        assert_eq!(server.manifest_status(repo, tag), 404, "{t} still served");
    }
    for (repo, d) in deleted_manifests {
        assert_eq!(
            server.manifest_status(repo, d),
            404,
            "{repo}@{d} still served"
        );
    }
    // Nothing left dangling: no problem the storage did not already have before the apply
    // (the fixture has empty revision directories from an API DELETE).
    let after = problems(&root, later);
    let new: Vec<&String> = after
        .iter()
        .filter(|p| !problems_before.contains(p))
        .collect();
    assert!(new.is_empty(), "{new:#?}");
    drop(server);

    // Restore: the deleted images come back whole.
    ok(&stowage(&root, &["restore", q.to_str().unwrap()]));
    let server = Server::start(&root);
    let failed = server.pull_all(&fx.tagged_refs());
    assert!(failed.is_empty(), "after restore: {failed:?}");
}

#[test]
fn a_blocked_plan_is_not_applied() {
    let fx = real::build(false);
    let root = fx.rootdirectory();
    let policy = fx.dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: retention.v1\nkind: RetentionPolicy\nprotections:\n  keep_newest_per_repository: 0\npolicies:\n  - id: all\n    scope: {repositories: ['glob:**']}\n    otherwise: delete\n",
    )
    .unwrap();
    let plan_file = fx.dir.path().join("plan.json");
    let o = stowage(
        &root,
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "-o",
            plan_file.to_str().unwrap(),
            "--no-progress",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "a blocked plan exits 1");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("BLOCKED") && out.contains("every image would be deleted"),
        "{out}"
    );
    let a = stowage(
        &root,
        &[
            "apply",
            plan_file.to_str().unwrap(),
            "--yes",
            "--registry-cache",
            "none",
            "--settle",
            "0s",
        ],
    );
    assert!(!a.status.success());
    assert!(String::from_utf8_lossy(&a.stderr).contains("blocked"));
    let server = Server::start(&root);
    assert!(server.pull_all(&fx.tagged_refs()).is_empty());
}

#[test]
fn the_report_shows_what_a_retention_plan_deletes_per_rule() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let dir = s.dir.path();
    let policy = dir.join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: retention.v1\nkind: RetentionPolicy\npolicies:\n  - id: web\n    scope: {repositories: ['glob:team/app/web']}\n    select: {tags: ['glob:1.0']}\n    otherwise: delete\n",
    )
    .unwrap();
    let plan_file = dir.join("plan.json");
    ok(&stowage(
        &root,
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "-o",
            plan_file.to_str().unwrap(),
            "--no-progress",
        ],
    ));
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let freed = plan["retention"]["bytes"]["reclaimable_after_gc"]
        .as_u64()
        .unwrap();
    assert!(freed > 0);
    let html = dir.join("r.html");
    let o = stowage(
        &root,
        &[
            "report",
            "--html",
            html.to_str().unwrap(),
            "--plan",
            plan_file.to_str().unwrap(),
            "--no-progress",
        ],
    );
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("web/otherwise"),
        "the plan's rule is in the page"
    );
    assert!(
        page.contains("\"kind\":\"retention\""),
        "the plan section is a retention plan"
    );
}

/// A registry access-log line (logrus text formatter, as registry 2.8 writes it).
fn pull_line(time: &str, repo: &str, reference: &str) -> String {
    format!(
        r#"time="{time}" level=info msg="response completed" go.version=go1.19.8 http.request.host="registry.example.com" http.request.id=id-{time}-{repo} http.request.method=GET http.request.remoteaddr="10.0.0.7:41234" http.request.uri=/v2/{repo}/manifests/{reference} http.request.useragent="docker/24.0.7 go/go1.20.10" http.response.contenttype=application/vnd.oci.image.manifest.v1+json http.response.duration=3.1ms http.response.status=200 http.response.written=558"#
    )
}

#[test]
fn retention_with_pull_data_from_the_registry_log() {
    let s = stowage_testkit::sample();
    let root = s.rootdirectory();
    let dir = s.dir.path();
    let web = "sha256:974eb04a16c1df9017e3ba6709049651d64aeaef4e4a6369b0f06dd27d26f611";
    let base = "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e";
    let log = dir.join("registry.log");
    // Two pulls, and a base-endpoint probe every day: coverage is the run of days with data
    // (a day without any line is a gap, and nothing before it is covered).
    let mut lines: Vec<String> = (15..=23)
        .map(|d| {
            pull_line(&format!("2026-11-{d}T00:00:00Z"), "x", "")
                .replace("/v2/x/manifests/", "/v2/")
        })
        .collect();
    lines.push(pull_line("2026-11-15T10:00:00Z", "library/base", base));
    lines.push(pull_line("2026-11-22T10:00:00Z", "team/app/web", web));
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    // The registry existed before its log: lines dated before its oldest blob are rejected
    // (issue 25), and the sample's blobs were written on 2026-11-23.
    let st = Command::new("find")
        .arg(root.join("docker/registry/v2/blobs"))
        .args(["-exec", "touch", "-d", "2026-11-01T00:00:00Z", "{}", "+"])
        .status()
        .unwrap();
    assert!(st.success());
    let db = dir.join("history.db");
    ok(&stowage(
        &root,
        &[
            "usage",
            "ingest",
            "--db",
            db.to_str().unwrap(),
            log.to_str().unwrap(),
            "--no-progress",
        ],
    ));
    let policy = dir.join("p.yaml");
    let write_policy = |window: &str| {
        std::fs::write(
            &policy,
            format!(
                "apiVersion: retention.v1\nkind: RetentionPolicy\nsettings:\n  pull_sources: [{{type: stowage-history, path: history.db}}]\nprotections:\n  keep_newest_per_repository: 0\npolicies:\n  - id: p\n    scope: {{repositories: ['glob:team/app/web', 'glob:library/base']}}\n    delete:\n      - id: unused\n        not_pulled_within: {window}\n    otherwise: keep\n"
            ),
        )
        .unwrap()
    };
    write_policy("2d");
    let o = stowage(
        &root,
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
            "--no-progress",
            "--now",
            "2026-11-23T12:00:00Z",
        ],
    );
    let plan: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let decision = |repo: &str, d: &str| -> String {
        plan["retention"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["repository"] == repo && i["digest"] == d)
            .map(|i| i["decision"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{repo}@{d} not in the plan"))
    };
    assert_eq!(decision("team/app/web", web), "keep", "pulled yesterday");
    assert_eq!(
        decision("library/base", base),
        "delete",
        "last pulled 8 days ago"
    );
    // A window the data does not cover is refused, not read as "never pulled".
    write_policy("30d");
    let o = stowage(
        &root,
        &[
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--no-progress",
            "--now",
            "2026-11-23T12:00:00Z",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not covered"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
