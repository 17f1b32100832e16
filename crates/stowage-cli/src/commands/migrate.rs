//! `stowage migrate --from STORAGE --to STORAGE`: copy a registry to another backend
//! (`stowage-migrate` does the work). A dry run unless `--yes`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use stowage_migrate::open::{self, Endpoint};
use stowage_migrate::{Counts, Options, Progress, Report};
use stowage_model::escape::escape;
use stowage_model::time::human_bytes;

use crate::args::{Format, GlobalArgs};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The registry to copy: its rootdirectory, or s3://bucket/rootdirectory (gs://, az://).
    #[arg(long, value_name = "PATH|URL")]
    pub from: String,
    /// Where to copy it: a directory (its docker/registry/v2 is created) or a URL.
    #[arg(long, value_name = "PATH|URL")]
    pub to: String,
    /// Copy. Without it, list what would be copied and write nothing.
    #[arg(long)]
    pub yes: bool,
    /// Go on after a finished migration: copy only what changed in the source since (for a
    /// cut-over: run once live, then again during a short freeze).
    #[arg(long)]
    pub incremental: bool,
    /// Leave out blobs no manifest reaches (what gc would delete) and the links to them.
    #[arg(long)]
    pub reachable_only: bool,
    /// After copying, read every blob back from the target and check its sha256 (each
    /// copied blob is already checked on the way).
    #[arg(long)]
    pub verify: bool,
    /// Take a target blob of the source's size as the same blob without hashing it (faster
    /// on a large target; by default a blob no run of this journal wrote is hashed there).
    #[arg(long)]
    pub trust_size: bool,
    /// The journal (default: stowage-migrate-<hash of --from and --to>.journal here).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// The source's object-store endpoint (default: --s3-endpoint, AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub from_endpoint: Option<String>,
    /// The target's object-store endpoint (default: --s3-endpoint, AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub to_endpoint: Option<String>,
    /// The source's S3 region (default: --s3-region, the environment).
    #[arg(long, value_name = "REGION")]
    pub from_region: Option<String>,
    /// The target's S3 region (default: --s3-region, the environment).
    #[arg(long, value_name = "REGION")]
    pub to_region: Option<String>,
}

fn endpoint(g: &GlobalArgs, e: &Option<String>, r: &Option<String>, conc: usize) -> Endpoint {
    Endpoint {
        endpoint: e.clone().or_else(|| g.s3_endpoint.clone()),
        region: r.clone().or_else(|| g.s3_region.clone()),
        path_style: g.s3_path_style.then_some(true),
        allow_http: g.allow_http.then_some(true),
        pool_size: Some(conc),
    }
}

/// The default journal: one per pair of storages (as opened: `/srv/reg` and `/srv/reg/`
/// are the same), in the working directory.
fn default_journal(from: &str, to: &str) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{from}\n{to}").as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("stowage-migrate-{hex}.journal"))
}

pub fn run(g: &GlobalArgs, a: &MigrateArgs) -> Result<i32> {
    let now = crate::settings::resolve_now(g)?;
    let url = |s: &str| s.contains("://");
    // Object stores want many requests in flight; two local disks about two per core.
    let concurrency = g
        .concurrency
        .unwrap_or(if url(&a.from) || url(&a.to) { 64 } else { 8 });
    let from = open::source(
        &a.from,
        &endpoint(g, &a.from_endpoint, &a.from_region, concurrency),
    )
    .with_context(|| format!("the source {}", a.from))?;
    let to = open::target(
        &a.to,
        &endpoint(g, &a.to_endpoint, &a.to_region, concurrency),
        a.yes,
    )
    .with_context(|| format!("the target {}", a.to))?;
    let opts = Options {
        concurrency,
        execute: a.yes,
        incremental: a.incremental,
        reachable_only: a.reachable_only,
        verify: a.verify,
        trust_size: a.trust_size,
        journal: a
            .journal
            .clone()
            .unwrap_or_else(|| default_journal(&from.describe(), &to.describe())),
        now,
    };
    let progress = Arc::new(Progress::default());
    let show = !g.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let display = show.then(|| start_display(progress.clone()));
    let report = stowage_migrate::migrate(&*from, &*to, &opts, &progress);
    if let Some((stop, h)) = display {
        stop.store(true, Ordering::Relaxed);
        let _ = h.join();
    }
    let report = report?;
    match g.format {
        Format::Json | Format::Ndjson => println!("{}", serde_json::to_string_pretty(&report)?),
        _ => print!("{}", render(&report)),
    }
    Ok(if report.ok() {
        crate::exit::OK
    } else {
        crate::exit::ERROR
    })
}

type DisplayHandle = (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
);

fn start_display(p: Arc<Progress>) -> DisplayHandle {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::new_spinner();
        while !s.load(Ordering::Relaxed) {
            bar.set_message(format!(
                "{}: {}/{} objects, {} of {}",
                p.phase_name(),
                p.objects_done.load(Ordering::Relaxed),
                p.objects_total.load(Ordering::Relaxed),
                human_bytes(p.bytes_done.load(Ordering::Relaxed)),
                human_bytes(p.bytes_total.load(Ordering::Relaxed)),
            ));
            bar.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
    });
    (stop, h)
}

fn counts(c: Counts) -> String {
    format!("{} objects, {}", c.objects, human_bytes(c.bytes))
}

/// The human report (names escaped: they come from the storage).
fn render(r: &Report) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "to copy" } else { "copied" };
    out += &format!(
        "{} {} -> {}\n",
        if r.dry_run { "dry run:" } else { "migrated" },
        escape(&r.source),
        escape(&r.target)
    );
    if r.resumed {
        out += "resumed from the journal of an unfinished run\n";
    }
    if r.incremental {
        out += "incremental: only what changed since the last finished run\n";
    }
    out += &format!("blobs {verb}: {}\n", counts(r.blobs_copied));
    out += &format!("links {verb}: {}\n", counts(r.links_copied));
    out += &format!("blobs already in the target: {}\n", counts(r.blobs_present));
    out += &format!(
        "links unchanged since the journal: {}\n",
        counts(r.links_unchanged)
    );
    if r.unreferenced_left_out.objects > 0 {
        out += &format!(
            "unreferenced blobs left out: {}\n",
            counts(r.unreferenced_left_out)
        );
    }
    if r.uploads_left_out.objects > 0 {
        out += &format!(
            "uploads in progress left out: {}\n",
            counts(r.uploads_left_out)
        );
    }
    let lists: [(&str, &[stowage_migrate::Skip]); 4] = [
        (
            "links not copied (their blob is not in the target)",
            &r.dangling_links,
        ),
        (
            "links held back (an earlier link of their repository failed; re-run)",
            &r.held_back,
        ),
        ("not copied", &r.skipped),
        ("FAILED", &r.failed),
    ];
    for (title, list) in lists {
        if !list.is_empty() {
            out += &format!("{title}: {}\n", list.len());
            for s in list.iter().take(20) {
                out += &format!("  {}: {}\n", escape(&s.path), escape(&s.why));
            }
        }
    }
    if r.only_in_target.objects > 0 {
        out += &format!(
            "only in the target (kept; nothing is deleted): {}\n",
            counts(r.only_in_target)
        );
        for k in &r.only_in_target_sample {
            out += &format!("  {}\n", escape(k));
        }
    }
    if let Some(v) = &r.verified {
        out += &format!(
            "verified in the target: {}, {} bad\n",
            counts(v.blobs),
            v.bad.len()
        );
        for s in v.bad.iter().take(20) {
            out += &format!("  {}: {}\n", escape(&s.path), escape(&s.why));
        }
    }
    if r.dry_run {
        out += "nothing written: pass --yes to copy\n";
    } else {
        out += &format!(
            "{} in {:.1}s: {:.0} objects/s, {}/s; journal {}\n",
            counts(r.copied()),
            r.seconds,
            r.objects_per_second,
            human_bytes(r.bytes_per_second as u64),
            escape(&r.journal)
        );
    }
    out
}
