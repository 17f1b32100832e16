//! `stowage report --html FILE`: the self-contained HTML report, with every blob in a CSV
//! file beside it. Also the analysis shared by `metrics`, `snapshot` and `serve`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use stowage_model::time::human_bytes;
use stowage_plan::Plan;

use stowage_report::overview::Limits;

use super::findings_exit;
use crate::output::atomic_write;
use crate::pipeline::analyse;
use crate::settings::Settings;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Write the report here (one self-contained HTML file).
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
    /// Blobs listed in the page (the largest); every blob goes to the CSV file.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub top: usize,
    /// Show what this plan (from `stowage gc --out`) deletes, per repository and reason.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Where the per-blob CSV goes (default: beside the report, FILE's stem + `-blobs.csv`).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Record this scan in a history database (SQLite) and chart its growth in the report.
    #[arg(long, value_name = "DB")]
    pub history: Option<PathBuf>,
}

fn default_csv(html: &Path) -> PathBuf {
    let stem = html
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    html.with_file_name(format!("{stem}-blobs.csv"))
}

pub fn run(s: &Settings, a: &ReportArgs) -> Result<i32> {
    // Fail on a bad plan before spending a scan on it.
    let plan = a.plan.as_deref().map(Plan::read).transpose()?;
    let limits = Limits {
        top_blobs: a.top,
        ..Limits::default()
    };
    let (loaded, mut an) = analyse(s, &limits)?;
    let g = loaded.graph();
    if let Some(p) = &plan {
        an.overview.set_plan(
            stowage_report::plan_view::plan_impact(p, &g).with_context(|| {
                format!("{}", a.plan.as_deref().unwrap_or(Path::new("")).display())
            })?,
        );
    }
    if let Some(db) = &a.history {
        an.overview.history = Some(crate::pipeline::record_and_chart(
            db,
            &loaded,
            &an.overview.summary.summary,
            s.now,
        )?);
        an.overview.pulls = crate::pipeline::report_section(db, &g, s.now)?;
        crate::pipeline::set_last_pulled(db, &mut an.overview, None, &g)?;
    }
    // Days until full needs the history's growth; the filesystem's free bytes are a
    // measurement of this moment, so a report without --history stays byte-identical for
    // the same storage and --now.
    if a.history.is_some() {
        an.overview.capacity = crate::pipeline::capacity(s, an.overview.history.as_ref());
    }
    let csv = a.csv.clone().unwrap_or_else(|| default_csv(&a.html));
    // Link the CSV by its name when it sits beside the report, else by its path.
    let same_dir = csv.parent().map(Path::to_path_buf).unwrap_or_default()
        == a.html.parent().map(Path::to_path_buf).unwrap_or_default();
    an.overview.blobs.csv = Some(if same_dir {
        csv.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        std::path::absolute(&csv)
            .unwrap_or(csv.clone())
            .to_string_lossy()
            .into_owned()
    });
    atomic_write(&csv, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        stowage_report::overview::write_blob_csv(&g, loaded.referenced(), &mut w)?;
        use std::io::Write;
        w.flush()?;
        Ok(())
    })?;
    let html = stowage_report::html::render(&an.overview)?;
    atomic_write(&a.html, |f| {
        use std::io::Write;
        f.write_all(html.as_bytes())?;
        Ok(())
    })?;
    note!(
        "report written to {} ({}; {} of {} blobs listed), every blob in {}",
        a.html.display(),
        human_bytes(html.len() as u64),
        an.overview.blobs.rows.len(),
        an.overview.blobs.total,
        csv.display()
    );
    Ok(findings_exit(loaded.finding_counts()))
}
