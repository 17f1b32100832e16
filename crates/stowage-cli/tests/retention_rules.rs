//! The newer retention rules end to end on the real registry (issue 23): grouping across
//! repositories, the platform selector, and cosign signatures stored in another repository
//! (`COSIGN_REPOSITORY`), through plan -> apply --gc; then the real registry serves every kept
//! image completely (skopeo copy --all) and none of the deleted ones. `gc --orphan-signatures`
//! on the same images removes only the signature whose subject was deleted.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use stowage_testkit::real::{self, Server};

const LATER: &str = "2099-01-01T00:00:00Z";

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

fn v2(root: &Path) -> std::path::PathBuf {
    root.join("docker/registry/v2")
}

/// The digest a tag points at, from its `current` link.
fn tag_digest(root: &Path, repo: &str, tag: &str) -> String {
    let p = v2(root).join(format!(
        "repositories/{repo}/_manifests/tags/{tag}/current/link"
    ));
    std::fs::read_to_string(p).unwrap()
}

/// Date a tag (its current link, its index entry and the revision link of its target) `day`
/// days after 2020-01-01: the policy's time source (`tag_updated`) and the keep-newest floor
/// then do not depend on how fast the pushes ran.
fn date_tag(root: &Path, repo: &str, tag: &str, day: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800 + day * 86_400);
    let digest = tag_digest(root, repo, tag);
    let hex = digest.strip_prefix("sha256:").unwrap();
    let m = v2(root).join(format!("repositories/{repo}/_manifests"));
    for p in [
        m.join(format!("tags/{tag}/current/link")),
        m.join(format!("tags/{tag}/index/sha256/{hex}/link")),
        m.join(format!("revisions/sha256/{hex}/link")),
    ] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
}

/// The `repository:tag` of every tag a plan removes.
fn removed_tags(plan: &Value) -> Vec<String> {
    plan["tags"]
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
        .collect()
}

/// `stowage apply PLAN --yes` online with no cache step and no settle wait, at `LATER`;
/// its JSON report.
fn apply_json(root: &Path, plan: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["apply", plan.to_str().unwrap(), "--yes"];
    args.extend(["--registry-cache", "none", "--settle", "0s"]);
    args.extend_from_slice(extra);
    args.extend(["--format", "json", "--now", LATER]);
    serde_json::from_str(&ok(&stowage(root, &args))).unwrap()
}

/// Warning- and error-level findings of `stowage check`, as `kind path`.
fn problems(root: &Path) -> Vec<String> {
    let v: Value = serde_json::from_str(&ok(&stowage(
        root,
        &["check", "--no-progress", "--format", "json", "--now", LATER],
    )))
    .unwrap();
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| format!("{} {}", f["kind"], f["path"]))
        .collect()
}

const POLICY: &str = r#"apiVersion: retention.v1
kind: RetentionPolicy
settings:
  cosign_repositories: ["glob:signatures/**"]
policies:
  - id: ci
    scope: {repositories: ["glob:apps/a", "glob:apps/b"]}
    select: {tags: ["regex:(?P<branch>[a-z]+)-[0-9]{7}"]}
    keep:
      - {id: last-2-over-apps, group_by: [branch], across_repositories: true, last: 2}
    otherwise: delete
  - id: arm
    scope: {repositories: ["glob:apps/c"]}
    select: {platforms: ["linux/arm64/v8"]}
    otherwise: delete
  - id: sigs
    scope: {repositories: ["glob:signatures/**"]}
    select: {referrers: orphaned}
    otherwise: delete
"#;

/// Pushes, with skopeo into the real registry: four CI builds of branch `main` over apps/a and
/// apps/b (alternating, oldest first), an arm64 and an amd64 image in apps/c (the arm64 one
/// older), and in signatures/app cosign signature tags for team/app/web:1.0 (live), for the
/// oldest build (live now, deleted by this plan) and for a digest stored nowhere (an orphan,
/// another manifest). Returns the orphan's tag and every reference pushed.
fn push_images(root: &Path, dir: &Path) -> (String, Vec<String>) {
    let layout = dir.join("oci");
    real::oci_layout(&layout);
    let server = Server::start(root);
    let h = server.host();
    let builds = [
        ("api-build1", "apps/a:main-1111111"),
        ("api-build2", "apps/b:main-2222222"),
        ("worker-1", "apps/a:main-3333333"),
        ("worker-2", "apps/b:main-4444444"),
    ];
    for (name, dest) in builds {
        real::push(&layout, name, &h, dest);
    }
    // Single-platform images that no index references: a child of the fixture's index is
    // kept in every repository while the index survives (the closure is global by digest).
    let platforms = dir.join("oci-platforms");
    real::oci_platform_layout(&platforms);
    real::push(&platforms, "arm-only", &h, "apps/c:arm-1");
    real::push(&platforms, "amd-only", &h, "apps/c:amd-1");
    let web = tag_digest(root, "team/app/web", "1.0");
    let oldest = tag_digest(root, "apps/a", "main-1111111");
    let orphan = format!("sha256-{}.sig", "e".repeat(64));
    let mut pushed: Vec<String> = builds.iter().map(|(_, d)| d.to_string()).collect();
    pushed.extend(["apps/c:arm-1".into(), "apps/c:amd-1".into()]);
    for subject in [&web, &oldest] {
        let tag = format!("{}.sig", subject.replace(':', "-"));
        real::push(&layout, "web-sig", &h, &format!("signatures/app:{tag}"));
        pushed.push(format!("signatures/app:{tag}"));
    }
    real::push(
        &layout,
        "digestonly",
        &h,
        &format!("signatures/app:{orphan}"),
    );
    pushed.push(format!("signatures/app:{orphan}"));
    drop(server);
    for (day, (_, dest)) in builds.iter().enumerate() {
        let (repo, tag) = dest.split_once(':').unwrap();
        date_tag(root, repo, tag, day as u64);
    }
    date_tag(root, "apps/c", "arm-1", 4);
    date_tag(root, "apps/c", "amd-1", 5);
    date_tag(root, "signatures/app", &orphan, 1);
    for subject in [&web, &oldest] {
        let tag = format!("{}.sig", subject.replace(':', "-"));
        date_tag(root, "signatures/app", &tag, 10);
    }
    (orphan, pushed)
}

#[test]
fn grouping_across_repositories_platforms_and_signatures_elsewhere_on_the_real_registry() {
    let fx = real::build(false);
    let root = fx.rootdirectory();
    let dir = fx.dir.path();
    let (orphan, pushed) = push_images(&root, dir);
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let plan_file = dir.join("plan.json");
    let plan: Value = serde_json::from_str(&ok(&stowage(
        &root,
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
            LATER,
            "--expires",
            "1h",
        ],
    )))
    .unwrap();
    let mut removed = removed_tags(&plan);
    removed.sort();
    // Across repositories the last 2 builds of `main` are main-3333333 (apps/a) and
    // main-4444444 (apps/b); counted per repository, every build would be kept. The arm64
    // image goes, the amd64 one stays. Only the signature whose subject is stored nowhere is
    // an orphan; the one of the build this plan deletes is orphaned only after it.
    assert_eq!(
        removed,
        [
            "apps/a:main-1111111".to_string(),
            "apps/b:main-2222222".to_string(),
            "apps/c:arm-1".to_string(),
            format!("signatures/app:{orphan}"),
        ],
        "{:#}",
        plan["retention"]["images"]
    );
    let reasons = plan["retention"]["images"].to_string();
    assert!(reasons.contains("last-2-over-apps"), "{reasons}");
    assert!(reasons.contains("protection/subject"), "{reasons}");

    let before = problems(&root);
    let rep = apply_json(&root, &plan_file, &["--gc"]);
    assert_eq!(rep["skipped"], Value::Array(vec![]), "{rep:#}");
    assert_eq!(
        rep["bytes_freed"], plan["retention"]["bytes"]["reclaimable_after_gc"],
        "freed bytes equal the preview"
    );

    let server = Server::start(&root);
    let kept: Vec<String> = fx
        .tagged_refs()
        .into_iter()
        .chain(pushed)
        .filter(|r| !removed.contains(r))
        .collect();
    for want in ["apps/a:main-3333333", "apps/b:main-4444444", "apps/c:amd-1"] {
        assert!(
            kept.iter().any(|k| k == want),
            "{want} missing from {kept:?}"
        );
    }
    let failed = server.pull_all(&kept);
    assert!(
        failed.is_empty(),
        "kept images broken after apply: {failed:?}"
    );
    for r in &removed {
        let (repo, tag) = r.rsplit_once(':').unwrap();
        assert_eq!(server.manifest_status(repo, tag), 404, "{r} still served");
    }
    drop(server);
    let new: Vec<String> = problems(&root)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(new.is_empty(), "{new:#?}");
}

/// `gc -m --tidy --orphan-signatures` (issue 23). The oldest build is deleted through the
/// registry's API (skopeo delete): its signature in `signatures/app` is then orphaned and
/// goes; the signature of the live web image stays (it is the same manifest: only the tag
/// goes), and so does the signature of a digest this storage never held (an image of
/// another registry, for all stowage knows). The real registry serves every kept image.
#[test]
fn gc_removes_orphaned_signatures_only_on_the_real_registry() {
    let fx = real::build(false);
    let root = fx.rootdirectory();
    let dir = fx.dir.path();
    let (unknown, pushed) = push_images(&root, dir);
    let oldest = tag_digest(&root, "apps/a", "main-1111111");
    let orphan = format!("{}.sig", oldest.replace(':', "-"));
    let server = Server::start(&root);
    let o = Command::new("skopeo")
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}/apps/a@{oldest}", server.host()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(server);
    let plan_file = dir.join("gc.json");
    let gc = |out: Option<&Path>, format: &str| {
        let mut args = vec!["gc", "-m", "--tidy", "--orphan-signatures", "--no-progress"];
        args.extend(["--now", LATER, "--format", format]);
        if let Some(p) = out {
            args.extend(["-o", p.to_str().unwrap()]);
        }
        ok(&stowage(&root, &args))
    };
    let plan: Value = serde_json::from_str(&gc(Some(&plan_file), "json")).unwrap();
    let removed = removed_tags(&plan);
    assert_eq!(removed, [format!("signatures/app:{orphan}")], "{plan:#}");
    assert_eq!(plan["tags"][0]["orphan_of"], oldest.as_str());
    assert!(
        plan["blocked"].to_string().contains(&unknown),
        "the unknown subject's signature is named as kept: {plan:#}"
    );
    // Its manifest is the web signature's too: it stays.
    let sig_manifest = tag_digest(&root, "signatures/app", &orphan);
    assert!(
        !plan["manifests"].to_string().contains(&sig_manifest),
        "{plan:#}"
    );
    // The report's card says the same, with the command that plans it.
    let html = dir.join("r.html");
    ok(&stowage(
        &root,
        &["--now", LATER, "report", "--html", html.to_str().unwrap()],
    ));
    let page = std::fs::read_to_string(&html).unwrap();
    let start = page.find("id=\"stowage-data\">").unwrap() + "id=\"stowage-data\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&page[start..end]).unwrap();
    let card = data["reclaimable"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reason"] == "orphaned_signatures")
        .unwrap_or_else(|| panic!("no orphaned-signature card: {:#}", data["reclaimable"]));
    assert_eq!(card["count"], 1);
    assert!(
        card["command"]
            .as_str()
            .unwrap()
            .contains("--orphan-signatures")
    );
    // The table says which subject is gone.
    let table = gc(None, "table");
    assert!(table.contains("ORPHANED SIGNATURE TAG"), "{table}");
    assert!(table.contains(&oldest), "{table}");

    let before = problems(&root);
    let rep = apply_json(&root, &plan_file, &[]);
    assert_eq!(rep["skipped"], Value::Array(vec![]), "{rep:#}");
    assert_eq!(rep["tags"], 1, "{rep:#}");
    assert_eq!(
        rep["bytes_freed"], plan["bytes"],
        "freed bytes equal the preview"
    );

    let server = Server::start(&root);
    let gone = "apps/a:main-1111111".to_string();
    let kept: Vec<String> = fx
        .tagged_refs()
        .into_iter()
        .chain(pushed)
        .filter(|r| !removed.contains(r) && *r != gone)
        .collect();
    assert!(kept.contains(&format!("signatures/app:{unknown}")));
    let failed = server.pull_all(&kept);
    assert!(
        failed.is_empty(),
        "kept images broken after apply: {failed:?}"
    );
    assert_eq!(server.manifest_status("signatures/app", &orphan), 404);
    drop(server);
    let new: Vec<String> = problems(&root)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(new.is_empty(), "{new:#?}");
}
