//! `stowage serve`: the read-only dashboard, JSON API and `/metrics` (crate stowage-serve).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use stowage_history::SnapshotPolicy;
use stowage_model::time::Timestamp;
use stowage_report::overview::Limits;
use stowage_serve::{AppState, Snapshot, check_bind};

use super::{GraphFindings, load};
use crate::pipeline::METRICS_TOP_REPOSITORIES;
use crate::settings::{Settings, parse_age};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. A non-loopback address needs --token-file (or
    /// --unprotected-non-loopback).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Scan again this often (requests are served from the last completed scan meanwhile).
    #[arg(long, default_value = "15m", value_name = "DURATION")]
    pub interval: String,
    /// Require `Authorization: Bearer TOKEN` on every request; TOKEN is this file's content.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Allow a non-loopback address without a token (something else must protect it).
    #[arg(long)]
    pub unprotected_non_loopback: bool,
    /// Record each scan in this history database and chart it on the dashboard.
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
    /// With --history: the registry's notification webhook (`POST /api/v1/notifications`)
    /// must carry this file's content in the `X-Stowage-Secret` header (docs/usage.md).
    #[arg(long, value_name = "FILE", requires = "history")]
    pub notify_secret_file: Option<PathBuf>,
    /// With --history and no --notify-secret-file: accept the webhook without a secret, on a
    /// loopback address only (Host checked). Anyone who can reach it can forge pull data.
    #[arg(long, requires = "history", conflicts_with = "notify_secret_file")]
    pub insecure_loopback_webhook: bool,
    /// With --history: which scans become snapshots: `changed` (only when a figure, a
    /// repository or a tag changed), `daily` (at most one per UTC day), `every`, or `never`
    /// (the database only receives notifications).
    #[arg(long, value_enum, default_value = "changed", requires = "history")]
    pub snapshots: SnapshotsArg,
    #[command(flatten)]
    pub filter: crate::args::FilterArgs,
    /// Largest blobs embedded in the page (the table pages through all of them).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub top: usize,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotsArg {
    Changed,
    Daily,
    Every,
    Never,
}

impl From<SnapshotsArg> for SnapshotPolicy {
    fn from(a: SnapshotsArg) -> SnapshotPolicy {
        match a {
            SnapshotsArg::Changed => SnapshotPolicy::Changed,
            SnapshotsArg::Daily => SnapshotPolicy::Daily,
            SnapshotsArg::Every => SnapshotPolicy::Every,
            SnapshotsArg::Never => SnapshotPolicy::Never,
        }
    }
}

/// `now_pinned`: `--now` was given, so every scan uses it (reproducible tests).
pub fn run(mut s: Settings, a: &ServeArgs, now_pinned: bool) -> Result<i32> {
    // Scans repeat in the background: no progress display.
    s.progress = false;
    let token = match &a.token_file {
        Some(f) => Some(read_secret(f)?),
        None => None,
    };
    let addrs = check_bind(&a.listen, token.is_some(), a.unprotected_non_loopback)?;
    let notifications = match &a.history {
        Some(db) => {
            let secret = match &a.notify_secret_file {
                Some(f) => Some(read_secret(f)?),
                None => None,
            };
            if a.insecure_loopback_webhook && !addrs.iter().all(|x| x.ip().is_loopback()) {
                bail!(
                    "--insecure-loopback-webhook is for loopback addresses only ({} is not): use --notify-secret-file",
                    a.listen
                );
            }
            Some(stowage_serve::Notifications {
                db: std::sync::Mutex::new(stowage_history::Db::open(db)?),
                db_path: db.clone(),
                filter: a.filter.filter()?,
                secret,
                insecure_loopback: a.insecure_loopback_webhook,
                allowed_hosts: addrs.iter().map(|x| x.ip().to_string()).collect(),
                // Events dated before the receiver started were not sent to it (wall clock:
                // the registry dates events by its own).
                started: Some(Timestamp::from_system_time(std::time::SystemTime::now())),
            })
        }
        None => None,
    };
    let interval =
        std::time::Duration::from_secs(parse_age(&a.interval).context("--interval")?.max(1) as u64);
    let fixed_now = s.now;
    let pinned = now_pinned;
    let history = a.history.clone();
    let top = a.top;
    let policy = SnapshotPolicy::from(a.snapshots);
    let settings = Arc::new(s);
    let loader: stowage_serve::Loader = Arc::new(move || {
        // Each scan runs at its own time, unless --now pins it (tests).
        let now = if pinned {
            fixed_now
        } else {
            Timestamp::from_system_time(std::time::SystemTime::now())
        };
        scan(&settings, now, top, history.as_deref(), policy).map_err(|e| format!("{e:#}"))
    });
    let state = AppState::with_notifications(loader, token, notifications);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addrs[..])
            .await
            .with_context(|| format!("listening on {}", a.listen))?;
        let local = listener.local_addr()?;
        note!(
            "stowage dashboard on http://{local}/ (API: /api/v1, OpenAPI: /api/openapi.json, metrics: /metrics){}; scanning every {}{}",
            if state.token.is_some() {
                ", bearer token required"
            } else {
                ""
            },
            a.interval,
            if state.notifications.is_some() {
                format!("; registry notifications: http://{local}/api/v1/notifications")
            } else {
                String::new()
            }
        );
        stowage_serve::serve(listener, state, interval)
            .await
            .context("serving")
    })?;
    Ok(crate::exit::OK)
}

/// A token or secret file: printable ASCII, no spaces, surrounding whitespace trimmed.
fn read_secret(f: &std::path::Path) -> Result<String> {
    let t = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        bail!("{} is empty", f.display());
    }
    if !t.chars().all(|c| c.is_ascii_graphic()) {
        bail!(
            "the secret in {} must be printable ASCII without spaces",
            f.display()
        );
    }
    Ok(t)
}

/// One scan for the dashboard (and the history database, when given).
fn scan(
    s: &Settings,
    now: Timestamp,
    top: usize,
    history: Option<&std::path::Path>,
    policy: SnapshotPolicy,
) -> Result<Snapshot> {
    // The duration is a measurement shown as such (a metric), never part of a decision.
    let started = std::time::Instant::now();
    let mut loaded = load(s, false, GraphFindings::List)?;
    loaded.read_build_dates(&*s.storage, s.concurrency);
    let limits = Limits {
        top_blobs: top,
        ..Limits::default()
    };
    let mut snap = Snapshot::build(loaded, &limits, METRICS_TOP_REPOSITORIES, 0.0);
    if let Some(db) = history {
        // The same two calls as `report --history`.
        let series = crate::pipeline::record_and_chart_with(
            db,
            &snap.analysis,
            &snap.overview.summary.summary,
            now,
            policy,
        )?;
        snap.overview.history = Some(series);
        snap.overview.pulls = crate::pipeline::report_section(db, &snap.analysis.graph(), now)?;
        crate::pipeline::set_last_pulled(
            db,
            &mut snap.overview,
            Some(&mut snap.tags),
            &snap.analysis.graph(),
        )?;
    }
    snap.overview.capacity = crate::pipeline::capacity(s, snap.overview.history.as_ref());
    snap.seconds = started.elapsed().as_secs_f64();
    Ok(snap)
}
