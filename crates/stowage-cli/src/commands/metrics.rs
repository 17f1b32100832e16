//! `stowage metrics`: Prometheus metrics for the node-exporter textfile collector.
//!
//! Exits 0 whatever the findings: the findings are in the metrics (`stowage_findings`), and a
//! cron job should not mail on every run.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use stowage_report::metrics::{ScanInfo, render};
use stowage_report::overview::Limits;

use crate::output::atomic_write;
use crate::pipeline::analyse;
use crate::settings::Settings;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Write here atomically (temporary file, then rename) instead of stdout, e.g.
    /// /var/lib/prometheus/node-exporter/stowage.prom.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also record this scan in a history database (SQLite).
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
}

pub fn run(s: &Settings, a: &MetricsArgs) -> Result<i32> {
    let limits = Limits {
        top_blobs: 0,
        ..Limits::default()
    };
    let (loaded, mut an) = analyse(s, &limits)?;
    if let Some(db) = &a.history {
        crate::pipeline::record_and_chart(db, &loaded, &an.overview.summary.summary, s.now)?;
        an.overview.pulls = crate::pipeline::report_section(db, &loaded.graph(), s.now)?;
    }
    an.overview.capacity = crate::pipeline::capacity(s, an.overview.history.as_ref());
    let text = render(
        &an.overview,
        &an.repos,
        &ScanInfo {
            duration_seconds: an.seconds,
            last_success_unix: s.now.0 as f64 / 1e9,
            ..ScanInfo::default()
        },
    );
    match &a.out {
        Some(path) => atomic_write(path, |f| {
            f.write_all(text.as_bytes())?;
            Ok(())
        })?,
        None => {
            let mut out = crate::output::stdout();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(crate::exit::OK)
}
