//! `stowage snapshot --db FILE`: record this scan in the history database.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use stowage_history::{Db, snapshot_data};
use stowage_model::time::human_bytes;
use stowage_report::overview::Limits;

use crate::pipeline::analyse;
use crate::settings::Settings;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// The history database (SQLite; created when absent, upgraded when older).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
}

pub fn run(s: &Settings, a: &SnapshotArgs) -> Result<i32> {
    let limits = Limits {
        top_blobs: 0,
        ..Limits::default()
    };
    let (loaded, an) = analyse(s, &limits)?;
    let mut h = Db::open(&a.db)?;
    let data = snapshot_data(
        &loaded.graph(),
        loaded.usage(),
        &an.overview.summary.summary,
        s.now,
    );
    let id = h
        .record(&data)
        .with_context(|| format!("recording the scan in {}", a.db.display()))?;
    note!(
        "snapshot {id} recorded in {}: {} repositories, {} tags, {} blobs ({})",
        a.db.display(),
        data.repositories.len(),
        data.tags.len(),
        data.blobs.len(),
        human_bytes(data.summary.blob_bytes)
    );
    Ok(crate::exit::OK)
}
