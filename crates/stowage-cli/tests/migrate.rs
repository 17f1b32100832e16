//! `stowage migrate` end to end, between real backends:
//! - filesystem -> S3 (moto): the real registry (`docker-registry` 2.8 on its `s3` driver)
//!   then serves every image of the source (`skopeo copy --all`), with identical digests;
//!   and S3 -> filesystem: the registry on the copy serves them all again;
//! - filesystem -> Azure (Azurite) and -> GCS (fake-gcs-server behind the testkit's shim for
//!   the XML API writes it lacks): `stowage inventory` of the target equals the source's,
//!   digest by digest; GCS -> filesystem: the copy equals the source and the registry serves
//!   every image from it;
//! - a migration killed with SIGKILL half-way resumes from its journal and ends identical.
//!
//! Needs what `scripts/install-test-deps.sh` installs (moto_server, fake-gcs-server,
//! Azurite, docker-registry, skopeo); a missing emulator ends its test with a loud message,
//! unless `STOWAGE_REQUIRE_REAL` is set (scripts/test.sh sets it), when it fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use stowage_testkit::emulators::{Azurite, Gcs};
use stowage_testkit::real::{self, Server};
use stowage_testkit::s3::S3Server;

fn stowage(args: &[&str], env: &[(&'static str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stowage"));
    c.args(args)
        .env("TZ", "UTC")
        .env_remove("STOWAGE_STORAGE")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `stowage migrate ... --yes --format json`, its report.
fn migrate(from: &str, to: &str, extra: &[&str], env: &[(&'static str, String)]) -> Value {
    let mut args = vec![
        "--format", "json", "migrate", "--from", from, "--to", to, "--yes",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(stowage(&args, env).output().unwrap())).unwrap()
}

/// Every blob record of `stowage inventory` (digest, size, kind, the repositories, tags and
/// manifests that need it), without the dates (an object store dates every object by its
/// write).
fn content(
    storage: &str,
    extra: &[&str],
    env: &[(&'static str, String)],
) -> BTreeMap<String, String> {
    let mut args = vec!["--storage", storage];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["inventory", "--format", "ndjson"]);
    let text = ok(stowage(&args, env).output().unwrap());
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        if let Some(o) = v.as_object_mut() {
            o.retain(|k, _| {
                !["modified", "created", "last_modified", "age_days", "date"].contains(&k.as_str())
            });
        }
        let key = v
            .get("digest")
            .or(v.get("path"))
            .map(|d| d.to_string())
            .unwrap_or_else(|| l.to_owned());
        out.insert(key, v.to_string());
    }
    assert!(!out.is_empty());
    out
}

/// The digest the registry serves for each reference.
fn served_digests(server: &Server, refs: &[String]) -> BTreeMap<String, String> {
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    refs.iter()
        .map(|r| {
            let (repo, tag) = r.rsplit_once(':').unwrap();
            let o = Command::new("curl")
                .args(["-fsSI", "-H"])
                .arg(format!("Accept: {accept}"))
                .arg(format!(
                    "http://{}/v2/{repo}/manifests/{tag}",
                    server.host()
                ))
                .output()
                .unwrap();
            let head = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
            let d = head
                .lines()
                .find_map(|l| l.strip_prefix("docker-content-digest:"))
                .unwrap_or("(none)")
                .trim()
                .to_owned();
            (r.clone(), d)
        })
        .collect()
}

#[test]
fn filesystem_to_s3_and_back_the_real_registry_serves_every_image() {
    let work = tempfile::tempdir().unwrap();
    let Some(s3) = S3Server::start(work.path(), "migrate_fs_s3") else {
        return;
    };
    s3.bucket("registry");
    let fx = real::build(true);
    let refs = fx.tagged_refs();
    let src = fx.rootdirectory();
    let before = {
        let server = Server::start(&src);
        served_digests(&server, &refs)
    };
    assert!(
        before.values().all(|d| d.starts_with("sha256:")),
        "{before:?}"
    );
    let env = s3.env();
    let ep = s3.endpoint();
    // A journal in the test's directory: the default is the current directory (the source
    // tree, when tests run).
    let j = work.path().join("to-s3.journal");
    let r = migrate(
        src.to_str().unwrap(),
        "s3://registry/reg",
        &[
            "--to-endpoint",
            &ep,
            "--verify",
            "--journal",
            j.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(r["failed"], serde_json::json!([]), "{r:#}");
    assert!(r["blobs_copied"]["objects"].as_u64().unwrap() > 0);
    assert_eq!(r["verified"]["bad"], serde_json::json!([]));

    // The registry's own s3 driver on the copy serves every image, same digests.
    let section = work.path().join("storage.yml");
    std::fs::write(&section, s3.registry_storage_yaml("registry", "/reg")).unwrap();
    let on_s3 = Server::start_on(&section);
    assert_eq!(on_s3.pull_all(&refs), Vec::<String>::new());
    assert_eq!(served_digests(&on_s3, &refs), before);
    drop(on_s3);

    // And back to a filesystem.
    let back = work.path().join("back");
    let j = work.path().join("back.journal");
    let r = migrate(
        "s3://registry/reg",
        back.to_str().unwrap(),
        &["--from-endpoint", &ep, "--journal", j.to_str().unwrap()],
        &env,
    );
    assert_eq!(r["failed"], serde_json::json!([]), "{r:#}");
    let on_back = Server::start(&back);
    assert_eq!(on_back.pull_all(&refs), Vec::<String>::new());
    assert_eq!(served_digests(&on_back, &refs), before);
    assert_eq!(
        content(back.to_str().unwrap(), &[], &[]),
        content(src.to_str().unwrap(), &[], &[])
    );
}

/// Migrate a fresh real-registry fixture to `url`, check the copy reads back as the source;
/// returns the fixture.
fn to_emulator(
    test: &str,
    url: &str,
    extra: &[&str],
    env: &[(&'static str, String)],
    work: &Path,
) -> real::RealFixture {
    let fx = real::build(true);
    let src = fx.rootdirectory();
    let j = work.join("j.journal");
    let mut args = extra.to_vec();
    args.extend_from_slice(&["--journal", j.to_str().unwrap()]);
    let r = migrate(src.to_str().unwrap(), url, &args, env);
    assert_eq!(r["failed"], serde_json::json!([]), "{test}: {r:#}");
    // The copy reads back as the source, digest by digest (the options that reach the
    // emulator are global flags for reading).
    let read: Vec<&str> = extra
        .chunks(2)
        .filter_map(|kv| match kv {
            ["--to-endpoint", e] => Some(["--s3-endpoint", *e]),
            _ => None,
        })
        .flatten()
        .chain(extra.iter().copied().filter(|a| *a == "--allow-http"))
        .collect();
    assert_eq!(
        content(url, &read, env),
        content(src.to_str().unwrap(), &[], &[]),
        "{test}"
    );
    fx
}

/// Filesystem -> GCS (fake-gcs-server behind the testkit's XML-write shim, see
/// `emulators::Gcs`): the bucket reads back as the source, digest by digest; then GCS ->
/// filesystem: the copy on disk equals the source and the real registry serves every image
/// from it.
#[test]
fn filesystem_to_gcs_and_back_the_registry_serves_every_image() {
    let work = tempfile::tempdir().unwrap();
    let Some(gcs) = Gcs::start(work.path(), "migrate_fs_gcs") else {
        return;
    };
    gcs.bucket("registry");
    let fx = to_emulator(
        "gcs",
        "gs://registry/reg",
        &["--allow-http"],
        &gcs.env(),
        work.path(),
    );
    let src = fx.rootdirectory();
    let back = work.path().join("back");
    let j = work.path().join("gcs.journal");
    let r = migrate(
        "gs://registry/reg",
        back.to_str().unwrap(),
        &["--allow-http", "--journal", j.to_str().unwrap(), "--verify"],
        &gcs.env(),
    );
    assert_eq!(r["failed"], serde_json::json!([]), "{r:#}");
    assert_eq!(
        content(back.to_str().unwrap(), &[], &[]),
        content(src.to_str().unwrap(), &[], &[])
    );
    let server = Server::start(&back);
    assert_eq!(server.pull_all(&fx.tagged_refs()), Vec::<String>::new());
}

#[test]
fn filesystem_to_azure_inventory_matches() {
    let work = tempfile::tempdir().unwrap();
    let Some(az) = Azurite::start(work.path(), "migrate_fs_azure") else {
        return;
    };
    az.container("registry");
    let ep = az.endpoint();
    let _ = to_emulator(
        "azure",
        "az://registry/reg",
        &["--to-endpoint", &ep],
        &az.env(),
        work.path(),
    );
}

#[test]
fn a_migration_killed_half_way_resumes_and_ends_identical() {
    let work = tempfile::tempdir().unwrap();
    let Some(s3) = S3Server::start(work.path(), "migrate_kill") else {
        return;
    };
    s3.bucket("registry");
    let src = work.path().join("src");
    stowage_gen::generate(&stowage_gen::Options::new(&src, 1500)).unwrap();
    let env = s3.env();
    let ep = s3.endpoint();
    let journal = work.path().join("kill.journal");
    let args = [
        "--format",
        "json",
        "--concurrency",
        "4",
        "migrate",
        "--from",
        src.to_str().unwrap(),
        "--to",
        "s3://registry/reg",
        "--to-endpoint",
        &ep,
        "--journal",
        journal.to_str().unwrap(),
        "--yes",
    ];
    let mut child = stowage(&args, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once a few hundred copies are journaled.
    let lines = || {
        std::fs::read_to_string(&journal)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let mut waited = 0;
    while lines() < 300 && waited < 1200 && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the migration ended before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let journaled = lines();
    assert!(journaled >= 300, "{journaled}");

    let r: Value = serde_json::from_str(&ok(stowage(&args, &env).output().unwrap())).unwrap();
    assert_eq!(r["resumed"], true, "{r:#}");
    assert_eq!(r["failed"], serde_json::json!([]), "{r:#}");
    assert!(
        r["blobs_present"]["objects"].as_u64().unwrap() >= 290,
        "{r:#}"
    );
    // Identical to a migration that was never interrupted (the generated source has
    // dangling links by design, which neither copies).
    let j2 = work.path().join("fresh.journal");
    migrate(
        src.to_str().unwrap(),
        "s3://registry/fresh",
        &["--to-endpoint", &ep, "--journal", j2.to_str().unwrap()],
        &env,
    );
    let read = ["--s3-endpoint", ep.as_str()];
    assert_eq!(
        content("s3://registry/reg", &read, &env),
        content("s3://registry/fresh", &read, &env)
    );
}
