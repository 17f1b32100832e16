//! The online-GC stress harness (issue 18): a real registry keeps serving pushes and pulls
//! while a collector (stowage apply, the registry's own `garbage-collect`, anything given as a
//! command line) runs; afterwards every push the client was told succeeded must pull completely.
//!
//! One run ([`run`]):
//! 1. a fresh storage and a real registry ([`Registry`], optionally with the `inmemory` blob
//!    descriptor cache); `victims` deterministic images pushed to `stress/vic-NNN:v1` and
//!    `others` to `keep/k-NNN:v1` (kept); the victims' manifests are then deleted through the
//!    API, so their blobs are garbage; every mtime is set back two hours (past any grace);
//! 2. the `prepare` command lines run (e.g. `stowage gc --delete-untagged --out {plan}`);
//! 3. the `collect` command lines run one after the other, their output streamed; when the
//!    [`Trigger`] fires, `pushers` threads push the first half of the victims again (new
//!    repositories, the old repository, cross-repository mounts: [`pushers::KINDS`]) while
//!    `pullers` threads pull kept images; an invocation can be killed with SIGKILL when a line
//!    says so (then the next one, e.g. the same apply again, resumes);
//! 4. the registry is restarted when it has a cache (as an operator does after a GC), then
//!    every successful push and every kept image is pulled with `skopeo copy --all` and its
//!    manifest digest compared. "Broken" = the client was told the push succeeded, but the
//!    image does not pull.
//!
//! Placeholders in command lines: `{storage}` (the registry's rootdirectory), `{plan}`,
//! `{config}` (the registry's config.yml), `{url}`, `{restart}` (a shell command restarting
//! the registry on its port), `{quarantine}`, `{work}`.
//!
//! Every wait has a timeout, every child is killed on drop, everything lives in one temporary
//! directory (kept, registry stopped, when `STOWAGE_STRESS_KEEP` is set).

pub mod client;
pub mod proc;
pub mod pushers;
pub mod registry;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use client::{Api, Image, Images, Skopeo};
pub use pushers::{Gate, PullFailure, Push, PushKind, PushOutcome};
pub use registry::{BlobCache, Registry};
pub use report::{RunResult, Summary, table};

/// When the pushers start.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// With the first collect invocation.
    Start,
    /// This long after the first collect invocation started.
    After(Duration),
    /// When a line of a collector's output contains one of these strings.
    Line(Vec<String>),
}

/// One command line of a run. `args[0]` is the program.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// SIGKILL the process as soon as a line of its output contains this.
    pub kill_on: Option<String>,
}

impl Invocation {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Invocation {
        Invocation {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            ..Invocation::default()
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Invocation {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn kill_on(mut self, line: &str) -> Invocation {
        self.kill_on = Some(line.to_string());
        self
    }
}

/// One stress run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub label: String,
    pub seed: u64,
    pub victims: usize,
    pub others: usize,
    pub pushers: usize,
    pub pushes_per_pusher: usize,
    pub pullers: usize,
    /// Extra tagged repositories (copies of the first kept one, written straight into the
    /// storage as the registry would have), so that scans take realistic time.
    pub bulk: usize,
    pub cache: BlobCache,
    pub trigger: Trigger,
    pub prepare: Vec<Invocation>,
    pub collect: Vec<Invocation>,
    /// Per invocation; a collector still running then is killed and the run fails.
    pub timeout: Duration,
}

/// The paths and values a run substitutes into its command lines.
pub struct Places {
    pub work: PathBuf,
    pub storage: PathBuf,
    pub plan: PathBuf,
    pub quarantine: PathBuf,
}

impl Places {
    fn fill(&self, reg: &Registry, s: &str) -> String {
        s.replace("{storage}", &self.storage.to_string_lossy())
            .replace("{plan}", &self.plan.to_string_lossy())
            .replace("{quarantine}", &self.quarantine.to_string_lossy())
            .replace("{work}", &self.work.to_string_lossy())
            .replace("{config}", &reg.config().to_string_lossy())
            .replace("{url}", &reg.url())
            .replace("{restart}", &reg.restart_command())
    }

    fn command(&self, reg: &Registry, inv: &Invocation) -> Command {
        let args: Vec<String> = inv.args.iter().map(|a| self.fill(reg, a)).collect();
        let mut c = Command::new(&args[0]);
        c.args(&args[1..]).env("TZ", "UTC");
        for (k, v) in &inv.env {
            c.env(k, self.fill(reg, v));
        }
        c
    }
}

fn victim_repo(i: usize) -> String {
    format!("stress/vic-{i:03}")
}

fn kept_repo(i: usize) -> String {
    format!("keep/k-{i:03}")
}

/// Push every image with skopeo, two at a time.
fn push_all(skopeo: &Skopeo, images: &Images, host: &str, dest: &dyn Fn(usize) -> String) {
    let dests: Vec<String> = (0..images.list.len()).map(dest).collect();
    std::thread::scope(|s| {
        for half in [0, 1] {
            let dests = &dests;
            s.spawn(move || {
                for (i, d) in dests.iter().enumerate().filter(|(i, _)| i % 2 == half) {
                    let name = &images.list[i].name;
                    skopeo
                        .push(images, name, host, d)
                        .unwrap_or_else(|e| panic!("setup: {e}"));
                }
            });
        }
    });
}

/// Set every mtime under `root` back `ago` (files, directories, links themselves).
pub fn age(root: &Path, ago: Duration) {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .saturating_sub(ago)
        .as_secs();
    let mut c = Command::new("find");
    c.arg(root)
        .args(["-exec", "touch", "-h", "-d"])
        .arg(format!("@{t}"))
        .args(["{}", "+"]);
    let o = proc::run(&mut c, Duration::from_secs(120), "find -exec touch").unwrap();
    assert!(o.ok(), "ageing {} failed: {}", root.display(), o.stderr);
}

/// `n` copies of repository `from` as `bulk/r-NNNNN` (same links, same tag).
fn bulk(storage: &Path, from: &str, n: usize) {
    let repos = storage.join("docker/registry/v2/repositories");
    let src = repos.join(from);
    let dst = repos.join("bulk");
    std::fs::create_dir_all(&dst).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(r#"src=$1; dst=$2; shift 2; for i; do cp -r "$src" "$dst/r-$i"; done"#)
            .arg("bash")
            .arg(&src)
            .arg(&dst)
            .args(chunk.iter().map(|i| format!("{i:05}")));
        let o = proc::run(
            &mut c,
            Duration::from_secs(300),
            "copying bulk repositories",
        )
        .unwrap();
        assert!(o.ok(), "copying bulk repositories: {}", o.stderr);
    }
}

/// The set-up of a run: registry, images pushed, victims deleted, tree aged.
pub struct Setup {
    // Fields drop in order: the registry must be stopped before its directory (and the PID
    // file in it) is removed.
    pub registry: Registry,
    pub dir: tempfile::TempDir,
    pub places: Places,
    pub skopeo: Skopeo,
    pub victims: Arc<Images>,
    pub kept: Vec<(String, String)>,
}

pub fn setup(sc: &Scenario) -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("stowage-stress.")
        .tempdir()
        .unwrap();
    let work = dir.path().to_path_buf();
    let places = Places {
        storage: work.join("storage"),
        plan: work.join("plan.json"),
        quarantine: work.join("quarantine"),
        work: work.clone(),
    };
    let registry = Registry::start(&places.storage, &work.join("serve"), sc.cache);
    let skopeo = Skopeo::new(&work.join("skopeo"));
    let victims = Images::generate(&work.join("oci-victims"), sc.victims, sc.seed, "vic");
    let others = Images::generate(&work.join("oci-kept"), sc.others, sc.seed, "keep");
    let host = registry.host();
    push_all(&skopeo, &victims, &host, &|i| {
        format!("{}:v1", victim_repo(i))
    });
    push_all(&skopeo, &others, &host, &|i| format!("{}:v1", kept_repo(i)));
    let api = Api::new(&host);
    for (i, img) in victims.list.iter().enumerate() {
        api.delete_manifest(&victim_repo(i), &img.digest)
            .unwrap_or_else(|e| panic!("setup: {e}"));
    }
    if sc.bulk > 0 {
        bulk(&places.storage, &kept_repo(0), sc.bulk);
    }
    age(&places.storage, Duration::from_secs(2 * 3600));
    let kept = others
        .list
        .iter()
        .enumerate()
        .map(|(i, img)| (format!("{}:v1", kept_repo(i)), img.digest.clone()))
        .collect();
    Setup {
        dir,
        places,
        registry,
        skopeo,
        victims: Arc::new(victims),
        kept,
    }
}

/// Run the prepare command lines; each must exit 0.
fn prepare(sc: &Scenario, st: &Setup) {
    for inv in &sc.prepare {
        let mut c = st.places.command(&st.registry, inv);
        let o =
            proc::run(&mut c, sc.timeout, &inv.args.join(" ")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            o.ok(),
            "[{}] prepare step {:?} failed ({}):\n{}\n{}",
            sc.label,
            inv.args,
            o.status,
            o.stdout,
            o.stderr
        );
    }
}

/// What one collect invocation did.
#[derive(Debug, Clone)]
pub struct InvocationOutcome {
    pub args: Vec<String>,
    pub exit: Option<i32>,
    pub killed_on_line: bool,
    pub output: Vec<proc::Line>,
}

fn matches_trigger(t: &Trigger, line: &str) -> bool {
    matches!(t, Trigger::Line(ss) if ss.iter().any(|s| line.contains(s.as_str())))
}

/// Run the collect invocations in order, opening `gate` per the trigger.
fn collect(sc: &Scenario, st: &Setup, gate: &Gate, start: Instant) -> Vec<InvocationOutcome> {
    let mut outcomes = Vec::new();
    for inv in &sc.collect {
        let mut c = st.places.command(&st.registry, inv);
        let what = format!("[{}] {}", sc.label, inv.args.join(" "));
        let mut child =
            proc::Streamed::spawn(&mut c, &what, start).unwrap_or_else(|e| panic!("{e}"));
        if matches!(sc.trigger, Trigger::Start) {
            gate.open(start.elapsed());
        }
        let began = Instant::now();
        let mut output = Vec::new();
        let mut killed = false;
        let status = loop {
            if let Ok(l) = child.lines.recv_timeout(Duration::from_millis(20)) {
                if matches_trigger(&sc.trigger, &l.text) {
                    gate.open(l.at);
                }
                if !killed && inv.kill_on.as_deref().is_some_and(|k| l.text.contains(k)) {
                    child.guard.kill();
                    killed = true;
                }
                output.push(l);
            }
            if let Trigger::After(d) = sc.trigger
                && start.elapsed() >= d
            {
                gate.open(start.elapsed());
            }
            if let Some(st) = child.guard.try_wait() {
                break st;
            }
            if began.elapsed() > sc.timeout {
                child.guard.kill();
                panic!(
                    "{what} hung: still running after {:?}; its output:\n{}",
                    sc.timeout,
                    render(&output)
                );
            }
        };
        output.extend(child.rest(Duration::from_secs(5)));
        outcomes.push(InvocationOutcome {
            args: inv.args.clone(),
            exit: status.code(),
            killed_on_line: killed,
            output,
        });
    }
    outcomes
}

/// Output lines as `  +1.234s [err] text`.
pub fn render(lines: &[proc::Line]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "  +{:.3}s [{}] {}\n",
                l.at.as_secs_f64(),
                if l.stderr { "err" } else { "out" },
                l.text
            )
        })
        .collect()
}

/// Pull `refs` (reference, digest) in 3 parallel threads; returns the failures.
fn verify(
    skopeo: &Skopeo,
    host: &str,
    refs: &[(String, String)],
    scratch: &Path,
) -> Vec<(String, String)> {
    let chunks: Vec<Vec<(String, String)>> = (0..3)
        .map(|k| refs.iter().skip(k).step_by(3).cloned().collect())
        .collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .into_iter()
            .enumerate()
            .map(|(k, chunk)| {
                let dir = scratch.join(format!("verify-{k}"));
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .filter_map(|(r, d)| {
                            skopeo.pull_check(host, &r, &d, &dir).err().map(|e| (r, e))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// One stress run; see the module docs.
pub fn run(sc: &Scenario) -> RunResult {
    let t0 = Instant::now();
    let st = setup(sc);
    let t_setup = t0.elapsed();
    prepare(sc, &st);
    let needed = sc.victims.div_ceil(2);
    let clients = pushers::Clients {
        images: st.victims.clone(),
        skopeo: st.skopeo.clone(),
        api: Api::new(&st.registry.host()),
        host: st.registry.host(),
        victim_repo: Arc::new(victim_repo),
    };
    let lists = (0..sc.pushers)
        .map(|p| pushers::plan(sc.seed, p, sc.pushes_per_pusher, needed, &victim_repo))
        .collect();
    let gate = Arc::new(Gate::default());
    let start = Instant::now();
    let wait = sc.timeout * sc.collect.len() as u32;
    let push_threads = pushers::spawn_pushers(&clients, lists, gate.clone(), start, wait);
    let stop = Arc::new(AtomicBool::new(false));
    let kept = Arc::new(st.kept.clone());
    let pull_threads = pushers::spawn_pullers(
        &clients,
        sc.pullers,
        kept,
        &st.places.work,
        stop.clone(),
        start,
    );
    let invocations = collect(sc, &st, &gate, start);
    let collected_at = start.elapsed();
    // The collector is done: release pushers whose trigger never fired (they then push into a
    // quiet registry, which the result records).
    gate.open(start.elapsed());
    let pushes: Vec<PushOutcome> = push_threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    stop.store(true, Ordering::SeqCst);
    let (mut pulls, mut pull_failures) = (0, Vec::new());
    for h in pull_threads {
        let (n, f) = h.join().unwrap();
        pulls += n;
        pull_failures.extend(f);
    }
    let t_collect = start.elapsed();
    if sc.cache != BlobCache::None {
        st.registry.restart();
    }
    let t_verify = Instant::now();
    let refs: Vec<(String, String)> = pushes
        .iter()
        .filter(|p| p.result.is_ok())
        .map(|p| (format!("{}:{}", p.push.repo, p.push.tag), p.digest.clone()))
        .collect();
    let host = st.registry.host();
    let broken = verify(&st.skopeo, &host, &refs, &st.places.work);
    let kept_broken = verify(&st.skopeo, &host, &st.kept, &st.places.work);
    let r = report::result(
        sc,
        &st,
        report::Observed {
            pushes,
            broken,
            kept_broken,
            pulls,
            pull_failures,
            invocations,
            trigger_at: gate.opened_at(),
            collected_at,
            phases: vec![
                ("setup", t_setup),
                ("collect+pushes", t_collect),
                ("verify", t_verify.elapsed()),
            ],
        },
    );
    if std::env::var_os("STOWAGE_STRESS_KEEP").is_some() {
        let Setup { dir, registry, .. } = st;
        drop(registry);
        eprintln!(
            "[{}] STOWAGE_STRESS_KEEP: run directory kept: {}",
            sc.label,
            dir.keep().display()
        );
    }
    r
}
