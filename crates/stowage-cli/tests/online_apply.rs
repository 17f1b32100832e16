//! Issue 18's stress test: garbage collection while the real registry keeps serving. Clients
//! push garbage images again (new repositories, the old repository, cross-repository mounts)
//! and pull kept images while `stowage apply` runs; afterwards every push the client was told
//! succeeded must pull completely. The registry's own `garbage-collect` (documented as
//! offline-only) runs on the same interleavings as the anchor: its breakage is reported, not
//! asserted. The harness is `stowage_testkit::stress`; `bench/online-stress.sh` runs the larger
//! version and prints the table.
//!
//! Sizes (small defaults for CI): `STOWAGE_STRESS_RUNS` (per collector, 4), `_IMAGES` (garbage
//! images, 6), `_KEPT` (3), `_PUSHERS` (3), `_PUSHES` (per pusher, 4), `_PULLERS` (1), `_SEED`
//! (18), `_SETTLE` (apply's `--settle`, 2s), `_DELAY_MS` (the slow-hook runs' delay, 300),
//! `_BULK` (extra tagged repositories that make scans slower, 0), `_APPLY_ARGS` (more flags
//! for the online apply),
//! `_COLLECTORS` (`online,repo-delete,registry-gc`; also `offline`, and `today`: the apply
//! command line of before the online apply, no new flags), `_REPORT` (a file the table is appended to).
//! The tests need docker-registry and skopeo: missing, they say so and end early, unless
//! `STOWAGE_REQUIRE_REAL` is set (scripts/test.sh), when they fail.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stowage_testkit::stress::{
    self, Api, BlobCache, Images, Invocation, Registry, RunResult, Scenario, Skopeo, Summary,
    Trigger,
};

const STOWAGE: &str = env!("CARGO_BIN_EXE_stowage");

fn var(name: &str, default: &str) -> String {
    std::env::var(format!("STOWAGE_STRESS_{name}")).unwrap_or_else(|_| default.to_string())
}

fn num(name: &str, default: usize) -> usize {
    var(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("STOWAGE_STRESS_{name} must be a number"))
}

/// docker-registry and skopeo present; or a loud skip; or, under STOWAGE_REQUIRE_REAL, a failure.
fn real_tools(test: &str) -> bool {
    let missing: Vec<&str> = ["docker-registry", "skopeo", "curl", "python3"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("STOWAGE_REQUIRE_REAL").is_none(),
        "{missing:?} not installed and STOWAGE_REQUIRE_REAL is set: run scripts/install-test-deps.sh"
    );
    eprintln!(
        "\n*** SKIPPED {test}: {missing:?} not installed; run scripts/install-test-deps.sh ***\n"
    );
    false
}

/// Whether this build's apply has the online flags (the issue-18 apply).
fn has_online_apply() -> bool {
    let o = Command::new(STOWAGE)
        .args(["apply", "--help"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).contains("--settle")
}

/// A collector under test: its command lines for one run, and the lines that mean "the blob
/// phase starts" (the burst trigger).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Collector {
    Online,
    Offline,
    Today,
    RegistryGc,
    /// `plan repo-delete 'stress/vic-*'` then an online `apply --gc`: the pushers push into
    /// the very repositories being removed, and mount from them.
    RepoDelete,
}

impl Collector {
    fn parse(s: &str) -> Collector {
        match s.trim() {
            "online" => Collector::Online,
            "offline" => Collector::Offline,
            "today" => Collector::Today,
            "registry-gc" => Collector::RegistryGc,
            "repo-delete" => Collector::RepoDelete,
            o => panic!("STOWAGE_STRESS_COLLECTORS: unknown collector {o:?}"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Collector::Online => "stowage apply (online)",
            Collector::Offline => "stowage apply --offline",
            Collector::Today => "stowage apply (before online)",
            Collector::RegistryGc => "docker-registry garbage-collect --delete-untagged",
            Collector::RepoDelete => "stowage repo-delete, apply --gc (online)",
        }
    }

    fn burst_lines(self) -> Vec<String> {
        let l: &[&str] = match self {
            // The online apply's first line says that targets are "fenced": not a trigger.
            Collector::Online => &["re-scanning before removing blobs", "fencing "],
            Collector::RepoDelete => &["removing ", "fencing "],
            Collector::Offline | Collector::Today => &["re-scanning before removing blobs"],
            Collector::RegistryGc => &["blobs marked"],
        };
        l.iter().map(|s| s.to_string()).collect()
    }

    /// Lines that come early in the collector's work, before its blob phase ("midway").
    fn midway_lines(self) -> Vec<String> {
        let l: &[&str] = match self {
            Collector::Online | Collector::RepoDelete => &["settling"],
            Collector::Offline | Collector::Today => &["re-scanning the storage"],
            // It prints each repository as it marks it; keep/ sorts first.
            Collector::RegistryGc => &["keep/"],
        };
        l.iter().map(|s| s.to_string()).collect()
    }

    fn prepare(self) -> Vec<Invocation> {
        match self {
            Collector::RegistryGc => Vec::new(),
            Collector::RepoDelete => vec![Invocation::new(&[
                STOWAGE,
                "--storage",
                "{storage}",
                "plan",
                "repo-delete",
                "stress/vic-*",
                "--grace",
                "0s",
                "--out",
                "{plan}",
            ])],
            _ => vec![gc_plan()],
        }
    }

    fn collect(self, cache: BlobCache, delay_ms: Option<u64>) -> Invocation {
        let inv = match self {
            Collector::RegistryGc => Invocation::new(&[
                "docker-registry",
                "garbage-collect",
                "--delete-untagged",
                "{config}",
            ]),
            Collector::Online => online_apply(cache),
            Collector::RepoDelete => {
                let mut i = online_apply(cache);
                i.args.push("--gc".into());
                i
            }
            Collector::Offline => Invocation::new(&[
                STOWAGE,
                "--storage",
                "{storage}",
                "apply",
                "{plan}",
                "--yes",
                "--offline",
            ]),
            Collector::Today => Invocation::new(&[
                STOWAGE,
                "--storage",
                "{storage}",
                "apply",
                "{plan}",
                "--yes",
            ]),
        };
        match delay_ms {
            Some(ms) => inv.env("STOWAGE_TEST_ACTION_DELAY_MS", &ms.to_string()),
            None => inv,
        }
    }
}

fn gc_plan() -> Invocation {
    Invocation::new(&[
        STOWAGE,
        "--storage",
        "{storage}",
        "gc",
        "--delete-untagged",
        "--out",
        "{plan}",
    ])
}

/// The online apply's command line for a registry with `cache`: the default fence (its own
/// quarantine batch) and the final delete, not `--quarantine`, which keeps what it fenced.
/// `STOWAGE_STRESS_APPLY_ARGS` appends more (space-separated), e.g. `--keep-quarantine 7d`.
fn online_apply(cache: BlobCache) -> Invocation {
    let settle = var("SETTLE", "2s");
    let mut args = vec![
        STOWAGE,
        "--storage",
        "{storage}",
        "apply",
        "{plan}",
        "--yes",
        "--settle",
        &settle,
        "--registry-cache",
        cache.name(),
        "--registry-url",
        "{url}",
    ];
    if cache == BlobCache::InMemory {
        args.extend(["--registry-restart", "{restart}"]);
    }
    let extra = var("APPLY_ARGS", "");
    args.extend(extra.split_whitespace());
    Invocation::new(&args)
}

/// Run `i` of a collector: interleavings and caches rotate with `i`.
fn scenario(c: Collector, i: usize) -> Scenario {
    let delay = num("DELAY_MS", 300) as u64;
    let (name, trigger, delay_ms) = match i % 4 {
        0 => ("start", Trigger::Start, None),
        1 => ("midway", Trigger::Line(c.midway_lines()), None),
        2 => ("burst", Trigger::Line(c.burst_lines()), None),
        _ => ("burst+slow", Trigger::Line(c.burst_lines()), Some(delay)),
    };
    let cache = if (i / 2).is_multiple_of(2) {
        BlobCache::InMemory
    } else {
        BlobCache::None
    };
    Scenario {
        label: format!("{} #{i} {name} cache={cache}", c.label()),
        seed: num("SEED", 18) as u64 + i as u64,
        victims: num("IMAGES", 6),
        others: num("KEPT", 3),
        pushers: num("PUSHERS", 3),
        pushes_per_pusher: num("PUSHES", 4),
        pullers: num("PULLERS", 1),
        bulk: num("BULK", 0),
        cache,
        trigger,
        prepare: c.prepare(),
        collect: vec![c.collect(cache, delay_ms)],
        timeout: Duration::from_secs(300),
    }
}

fn print_and_record(rows: &[Summary]) {
    let t = stress::table(rows);
    eprintln!("\n{t}");
    if let Ok(path) = std::env::var("STOWAGE_STRESS_REPORT") {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("STOWAGE_STRESS_REPORT={path}: {e}"));
        writeln!(f, "{t}").unwrap();
    }
}

/// Issue 18's guarantee: while the registry keeps serving, no push that was reported
/// successful is left unpullable by the online apply; the registry's own GC is the anchor.
#[test]
fn no_successful_push_is_broken_by_an_online_apply() {
    if !real_tools("no_successful_push_is_broken_by_an_online_apply") {
        return;
    }
    let collectors: Vec<Collector> = var("COLLECTORS", "online,repo-delete,registry-gc")
        .split(',')
        .map(Collector::parse)
        .collect();
    let online_needed = collectors.iter().any(|c| {
        matches!(
            c,
            Collector::Online | Collector::Offline | Collector::RepoDelete
        )
    });
    assert!(
        !online_needed || has_online_apply(),
        "this build's `stowage apply` has no --settle: the online apply (issue 18) has not landed; \
         STOWAGE_STRESS_COLLECTORS=today,registry-gc measures the apply of before"
    );
    let runs = num("RUNS", 4);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &c in &collectors {
        let mut sum = Summary {
            collector: c.label().to_string(),
            ..Summary::default()
        };
        for i in 0..runs {
            let r = stress::run(&scenario(c, i));
            eprintln!("{}", one_line(&r));
            sum.add(&r);
            if matches!(c, Collector::Online | Collector::RepoDelete) {
                failures.extend(online_problems(&r, c));
            }
        }
        rows.push(sum);
    }
    print_and_record(&rows);
    assert!(
        failures.is_empty(),
        "the online apply failed its guarantee:\n{}",
        failures.join("\n")
    );
}

fn one_line(r: &RunResult) -> String {
    format!(
        "{}: {} pushes ok ({} started during GC, {} failed visibly), {} broken, {} kept broken, \
         {} pulls ({} failed), garbage removed {}/{}, mounts 201/202: {}/{}, collector exit {:?}, \
         phases {:?}, visible failures {:?}, pulls failed {:?}",
        r.label,
        r.succeeded(),
        r.raced(),
        r.failed().len(),
        r.broken.len(),
        r.kept_broken.len(),
        r.pulls,
        r.pull_failures.len(),
        r.garbage_removed,
        r.garbage_total,
        r.mounts_201,
        r.mounts_202,
        r.invocations.iter().map(|i| i.exit).collect::<Vec<_>>(),
        r.phases,
        r.failure_kinds(),
        r.pull_outage()
    )
}

/// What is wrong with an online run (empty when it kept the guarantee and did its job).
fn online_problems(r: &RunResult, c: Collector) -> Vec<String> {
    let mut p = Vec::new();
    if !r.broken.is_empty() || !r.kept_broken.is_empty() {
        p.push(r.explain());
    }
    let last = r.invocations.last().unwrap();
    // 1 = some targets were kept because something needs them now (reported, not an error).
    if !matches!(last.exit, Some(0 | 1)) {
        p.push(format!(
            "{}: apply exited {:?}\n{}",
            r.label,
            last.exit,
            r.explain()
        ));
    }
    if c == Collector::RepoDelete {
        // Its job: the victims' repositories go, except those pushed to during the apply
        // (kept whole, exit status 1). Its plan's blobs are what deleting them frees, not
        // the victims' garbage of before (only `gc` collects that).
        let removed = last
            .output
            .iter()
            .any(|l| l.text.contains("surgery: ") && !l.text.contains("surgery: 0 repository"));
        if !removed {
            p.push(format!(
                "{}: no repository section was removed\n{}",
                r.label,
                r.explain()
            ));
        }
    } else if r.garbage_removed != r.garbage_total {
        p.push(format!(
            "{}: only {} of {} blobs nobody pushed again were collected",
            r.label, r.garbage_removed, r.garbage_total
        ));
    }
    p
}

/// The harness can see breakage at all: the registry's own GC under its `inmemory` cache, with
/// every push after the GC (the cache still claims the deleted blobs, so the registry accepts
/// pushes that skip or mount them), must leave broken images that the harness reports, and
/// no kept image broken. A harness that never sees a broken image would prove nothing.
#[test]
fn the_harness_sees_what_the_registry_gc_breaks_under_its_inmemory_cache() {
    if !real_tools("the_harness_sees_what_the_registry_gc_breaks_under_its_inmemory_cache") {
        return;
    }
    let mut sc = scenario(Collector::RegistryGc, 0);
    sc.label = "registry GC, then pushes (inmemory cache)".into();
    sc.cache = BlobCache::InMemory;
    (
        sc.victims,
        sc.others,
        sc.pushers,
        sc.pushes_per_pusher,
        sc.pullers,
    ) = (4, 2, 2, 5, 0);
    // Never matches: the pushers start when the GC has finished.
    sc.trigger = Trigger::Line(vec!["\u{0}".into()]);
    let r = stress::run(&sc);
    eprintln!("{}", r.explain());
    assert!(
        !r.broken.is_empty(),
        "the harness saw nothing broken:\n{}",
        r.explain()
    );
    assert!(r.kept_broken.is_empty(), "{}", r.explain());
    assert_eq!(r.garbage_removed, r.garbage_total, "{}", r.explain());
}

/// Kill the apply four ways, with pushers and pullers busy throughout: SIGABRT after 3 fence
/// moves (`STOWAGE_TEST_KILL_AFTER`), kill -9 while the resumed run says it is settling, kill -9
/// when the next resumed run starts verifying (after the settle and the registry restart, while
/// it restores and deletes), then a last run to the end. The apply converges (every garbage
/// blob nobody pushed again is gone) and nothing is lost (every kept image and every push
/// reported successful pulls).
#[test]
fn kill_9_while_settling_and_after_then_resume_converges() {
    if !real_tools("kill_9_while_settling_and_after_then_resume_converges") {
        return;
    }
    assert!(
        has_online_apply(),
        "this build's `stowage apply` has no --settle: the online apply (issue 18) has not landed"
    );
    let settling = var("SETTLE_LINE", "settling");
    let verifying = var("VERIFY_LINE", "verifying");
    let cache = BlobCache::InMemory;
    let mut sc = scenario(Collector::Online, 0);
    sc.label =
        format!("abort after 3 fences, kill -9 settling, kill -9 verifying, resume; cache={cache}");
    sc.cache = cache;
    sc.trigger = Trigger::Start;
    sc.collect = vec![
        online_apply(cache).env("STOWAGE_TEST_KILL_AFTER", "3"),
        online_apply(cache).kill_on(&settling),
        online_apply(cache).kill_on(&verifying),
        online_apply(cache),
    ];
    let r = stress::run(&sc);
    eprintln!("{}", one_line(&r));
    assert_eq!(
        r.invocations[0].exit,
        None,
        "STOWAGE_TEST_KILL_AFTER=3 did not abort the first apply:\n{}",
        r.explain()
    );
    for (i, line) in [(1, &settling), (2, &verifying)] {
        assert!(
            r.invocations[i].killed_on_line,
            "apply run {} never printed a line containing {line:?} (STOWAGE_STRESS_SETTLE_LINE, \
             _VERIFY_LINE), so it was not killed there:\n{}",
            i + 1,
            r.explain()
        );
    }
    let problems = online_problems(&r, Collector::Online);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `HEAD /v2/<repo>/blobs/<digest>` status, and for GET: status, Content-Length, bytes received.
fn blob_answers(reg: &Registry, repo: &str, digest: &str) -> (u16, String) {
    let api = Api::new(&reg.host());
    let head = api.head_blob(repo, digest).unwrap();
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "10", "-o", "/dev/null", "-w"])
        .arg("%{http_code} content-length=%header{content-length} received=%{size_download}")
        .arg(format!("{}/v2/{repo}/blobs/{digest}", reg.url()));
    let o = stress::proc::run(&mut c, Duration::from_secs(20), "curl GET blob").unwrap();
    (head, o.stdout.trim().to_string())
}

/// Push the second image to `exp/m:v1`, delete its manifest through the API and its data
/// from the storage (as a GC does), then PUT the same manifest again (all its layers are
/// there): the PUT's answer, and what a GET of the new tag answers.
fn manifest_blob_deleted(reg: &Registry, images: &Images, skopeo: &Skopeo, dir: &Path) -> String {
    let img = &images.list[1];
    skopeo
        .push(images, &img.name, &reg.host(), "exp/m:v1")
        .unwrap();
    let api = Api::new(&reg.host());
    api.delete_manifest("exp/m", &img.digest).unwrap();
    let hex = img.digest.trim_start_matches("sha256:");
    let v2 = dir.join("storage/docker/registry/v2/blobs/sha256");
    std::fs::remove_dir_all(v2.join(&hex[..2]).join(hex)).unwrap();
    let put = api.put_manifest("exp/m", "v2", &img.digest, &images.blob_file(&img.digest));
    let get = stress::client::http(
        "GET",
        &format!("{}/v2/exp/m/manifests/v2", reg.url()),
        &[format!("Accept: {}", stress::client::OCI_MANIFEST)],
        None,
    )
    .unwrap();
    format!(
        "re-pushed deleted manifest: PUT {}, GET {}",
        put.is_ok(),
        get.status
    )
}

/// What registry 2.8 answers about a blob whose files were deleted under it, with and without
/// its `inmemory` blob descriptor cache (issue 18 asks to establish this by experiment; if a
/// registry update changes any of it, this test says what changed).
#[test]
fn registry_inmemory_cache_answers_for_deleted_blobs_until_restarted() {
    if !real_tools("registry_inmemory_cache_answers_for_deleted_blobs_until_restarted") {
        return;
    }
    for cache in [BlobCache::InMemory, BlobCache::None] {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::start(
            &dir.path().join("storage"),
            &dir.path().join("serve"),
            cache,
        );
        let images = Images::generate(&dir.path().join("oci"), 2, 7, "cache");
        let img = &images.list[0];
        let skopeo = Skopeo::new(&dir.path().join("skopeo"));
        skopeo
            .push(&images, &img.name, &reg.host(), "exp/a:v1")
            .unwrap();
        let api = Api::new(&reg.host());
        let layer = &img.blobs[1];
        let size = std::fs::metadata(images.blob_file(layer)).unwrap().len();
        let mut seen = vec![format!("before: {:?}", blob_answers(&reg, "exp/a", layer))];
        let hex = layer.trim_start_matches("sha256:");
        std::fs::remove_dir_all(
            dir.path()
                .join("storage/docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex),
        )
        .unwrap();
        seen.push(format!("deleted: {:?}", blob_answers(&reg, "exp/a", layer)));
        let mount = format!(
            "{}/v2/exp/b/blobs/uploads/?mount={layer}&from=exp/a",
            reg.url()
        );
        let mounted = stress::client::http("POST", &mount, &[], None)
            .unwrap()
            .status;
        seen.push(format!("mount into exp/b: {mounted}"));
        let put = api.put_manifest("exp/a", "v2", &img.digest, &images.blob_file(&img.digest));
        seen.push(format!("manifest PUT: {}", put.is_ok()));
        let scratch = dir.path().join("pull");
        let pulled = skopeo.pull_check(&reg.host(), "exp/a:v2", &img.digest, &scratch);
        seen.push(format!("pull of the new tag: {}", pulled.is_ok()));
        seen.push(manifest_blob_deleted(&reg, &images, &skopeo, dir.path()));
        reg.restart();
        seen.push(format!(
            "restarted: {:?}",
            blob_answers(&reg, "exp/a", layer)
        ));
        let put = api.put_manifest("exp/a", "v3", &img.digest, &images.blob_file(&img.digest));
        seen.push(format!("manifest PUT after restart: {}", put.is_ok()));
        let before = format!("before: (200, \"200 content-length={size} received={size}\")");
        let want: Vec<String> = match cache {
            BlobCache::InMemory => vec![
                before,
                // The cache answers for the deleted blob: HEAD 200, GET 200 with the old
                // Content-Length and no body (the connection is cut: "unexpected EOF").
                format!("deleted: (200, \"200 content-length={size} received=0\")"),
                // A mount from a repository that still links it succeeds (writes the link).
                "mount into exp/b: 201".into(),
                // A manifest naming it is accepted: a successful push of a broken image.
                "manifest PUT: true".into(),
                "pull of the new tag: false".into(),
                // A manifest deleted through the API, its data deleted by a GC, pushed again
                // in full: 201, the link is written, the data is NOT (the cache says the
                // manifest's blob exists), so the new tag is "manifest unknown".
                "re-pushed deleted manifest: PUT true, GET 404".into(),
                "restarted: (404, \"404 content-length=157 received=157\")".into(),
                "manifest PUT after restart: false".into(),
            ],
            BlobCache::None => vec![
                before,
                "deleted: (404, \"404 content-length=157 received=157\")".into(),
                // No cache: the registry starts an upload instead (202); a client then
                // uploads the bytes it has.
                "mount into exp/b: 202".into(),
                "manifest PUT: false".into(),
                "pull of the new tag: false".into(),
                "re-pushed deleted manifest: PUT true, GET 200".into(),
                "restarted: (404, \"404 content-length=157 received=157\")".into(),
                "manifest PUT after restart: false".into(),
            ],
        };
        assert_eq!(
            seen, want,
            "registry 2.8 with blobdescriptor cache {cache} answered differently"
        );
    }
}
