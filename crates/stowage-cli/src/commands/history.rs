//! `stowage history --db FILE`: growth per repository between two snapshots.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use stowage_history::{Db, Growth, SnapshotInfo};
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::schema;
use stowage_report::table::{Align, Table};

use crate::args::{Format, GlobalArgs};
use crate::output;
use crate::settings::parse_age;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The history database written by `stowage snapshot` (or `--history`).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Start: the first snapshot at or after this time (RFC 3339, an age such as `30d`, or
    /// `#ID`). Default: the snapshot before the last one.
    #[arg(long, value_name = "WHEN")]
    pub from: Option<String>,
    /// End: the last snapshot at or before this time (RFC 3339, an age, or `#ID`).
    /// Default: the last snapshot.
    #[arg(long, value_name = "WHEN")]
    pub to: Option<String>,
    /// List the snapshots instead.
    #[arg(long)]
    pub list: bool,
    /// Write the output to FILE (`--format parquet`, or a name ending in `.parquet`: Parquet).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
}

#[derive(clap::Subcommand, Debug)]
pub enum HistoryCommand {
    /// Remove snapshots older than --keep and thin the rest: all of the last two days, the
    /// last of each day for 30 days, the last of each week beyond (the newest is kept).
    Prune {
        /// Keep snapshots this recent (e.g. 90d).
        #[arg(long, value_name = "AGE")]
        keep: String,
    },
}

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    #[serde(flatten)]
    growth: &'a Growth,
}

enum When {
    Id(i64),
    Time(Timestamp),
}

fn parse_when(s: &str, now: Timestamp) -> Result<When> {
    if let Some(id) = s.strip_prefix('#') {
        return Ok(When::Id(
            id.parse()
                .with_context(|| format!("{s:?}: not a snapshot id"))?,
        ));
    }
    if let Some(t) = Timestamp::parse_rfc3339(s) {
        return Ok(When::Time(t));
    }
    let age = parse_age(s).with_context(|| format!("{s:?}: not a time, an age or #ID"))?;
    Ok(When::Time(now.saturating_sub_secs(age)))
}

fn pick(snaps: &[SnapshotInfo], w: &When, at_or_after: bool) -> Option<i64> {
    match w {
        When::Id(id) => snaps.iter().find(|s| s.id == *id).map(|s| s.id),
        When::Time(t) if at_or_after => snaps.iter().find(|s| s.taken_at >= *t).map(|s| s.id),
        When::Time(t) => snaps.iter().rev().find(|s| s.taken_at <= *t).map(|s| s.id),
    }
}

fn signed(n: i64) -> String {
    if n < 0 {
        format!("-{}", human_bytes(n.unsigned_abs()))
    } else {
        format!("+{}", human_bytes(n as u64))
    }
}

pub fn run(g: &GlobalArgs, a: &HistoryArgs) -> Result<i32> {
    let now = crate::settings::resolve_now(g)?;
    if let Some(HistoryCommand::Prune { keep }) = &a.command {
        let keep = parse_age(keep).context("--keep")?;
        // Read-write, but never created here: check it is one first.
        drop(Db::open_existing(&a.db)?);
        let mut db = Db::open(&a.db)?;
        let p = db.prune(keep, now)?;
        let mut out = output::stdout();
        match g.format {
            Format::Table => writeln!(
                out,
                "{}: {} snapshots removed, {} kept; {} blob rows no kept snapshot saw removed",
                a.db.display(),
                p.removed,
                p.kept,
                p.blobs_removed
            )?,
            _ => output::json(&mut out, &p)?,
        }
        out.flush()?;
        return Ok(crate::exit::OK);
    }
    let db = Db::open_existing(&a.db)?;
    let snaps = db.snapshots()?;
    let parquet = output::parquet_target(g.format, a.output.as_deref())?;
    if a.list {
        if let Some(path) = parquet {
            output::write_parquet(path, "history.snapshots", &snaps)?;
            return Ok(crate::exit::OK);
        }
        let mut out = output::to(a.output.as_deref())?;
        write_snapshots(&mut out, g.format, &snaps)?;
        out.flush()?;
        return Ok(crate::exit::OK);
    }
    let (from, to) = range(a, &snaps, now)?;
    let growth = db.growth(from, to)?;
    if let Some(path) = parquet {
        // Each row says which two snapshots it compares, so tables of many runs concatenate.
        let ends = serde_json::json!({
            "from_id": growth.from.id, "from_taken_at": growth.from.taken_at,
            "to_id": growth.to.id, "to_taken_at": growth.to.taken_at,
        });
        let mut rows = Vec::with_capacity(growth.repositories.len());
        for r in &growth.repositories {
            let mut v = serde_json::to_value(r)?;
            if let (Some(o), Some(e)) = (v.as_object_mut(), ends.as_object()) {
                o.extend(e.clone());
            }
            rows.push(v);
        }
        output::write_parquet(path, "history", rows)?;
        return Ok(crate::exit::OK);
    }
    let mut out = output::to(a.output.as_deref())?;
    match g.format {
        // Parquet went to its file above.
        Format::Json | Format::Parquet => output::json(
            &mut out,
            &Document {
                schema: schema("history"),
                growth: &growth,
            },
        )?,
        Format::Ndjson => {
            for r in &growth.repositories {
                output::ndjson(&mut out, r)?;
            }
        }
        Format::Csv => write_csv(&mut out, &growth)?,
        Format::Table => write_table(&mut out, &growth)?,
    }
    out.flush()?;
    Ok(crate::exit::OK)
}

/// `--list`: the snapshots as a table, or as JSON in every other format.
fn write_snapshots(out: &mut output::Out, format: Format, snaps: &[SnapshotInfo]) -> Result<()> {
    match format {
        Format::Table => {
            let mut t = Table::new(&[
                ("SNAPSHOT", Align::Right),
                ("TAKEN (UTC)", Align::Left),
                ("BLOBS", Align::Right),
                ("BYTES", Align::Right),
                ("REPOSITORIES", Align::Right),
                ("TAGS", Align::Right),
            ]);
            for s in snaps {
                t.row(vec![
                    format!("#{}", s.id),
                    s.taken_at.human(&jiff::tz::TimeZone::UTC),
                    s.blobs.to_string(),
                    human_bytes(s.blob_bytes),
                    s.repositories.to_string(),
                    s.tags.to_string(),
                ]);
            }
            out.write_all(t.render().as_bytes())?;
        }
        _ => output::json(out, &snaps)?,
    }
    Ok(())
}

/// The (from, to) snapshot ids: `--to` defaults to the last snapshot, `--from` to the one
/// before `to`. Fewer than two snapshots is an error unless both ends are given.
fn range(a: &HistoryArgs, snaps: &[SnapshotInfo], now: Timestamp) -> Result<(i64, i64)> {
    if snaps.len() < 2 && (a.from.is_none() || a.to.is_none()) {
        bail!(
            "{} holds {} snapshot(s); growth needs two (record one with `stowage snapshot --db {}`)",
            a.db.display(),
            snaps.len(),
            a.db.display()
        );
    }
    let to = match &a.to {
        Some(w) => pick(snaps, &parse_when(w, now)?, false)
            .with_context(|| format!("no snapshot at or before --to {w}"))?,
        None => snaps[snaps.len() - 1].id,
    };
    let from = match &a.from {
        Some(w) => pick(snaps, &parse_when(w, now)?, true)
            .with_context(|| format!("no snapshot at or after --from {w}"))?,
        None => {
            let i = snaps.iter().position(|s| s.id == to).unwrap_or(0);
            snaps[i.saturating_sub(1)].id
        }
    };
    Ok((from, to))
}

fn write_csv(out: &mut impl Write, growth: &Growth) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "repository",
        "from_total",
        "to_total",
        "total_change",
        "exclusive_change",
        "tags_change",
        "tags_pushed",
        "tags_removed",
    ])?;
    for r in &growth.repositories {
        w.write_record([
            r.repository.clone(),
            r.from_total.map(|v| v.to_string()).unwrap_or_default(),
            r.to_total.map(|v| v.to_string()).unwrap_or_default(),
            r.total_change.to_string(),
            r.exclusive_change.to_string(),
            r.tags_change.to_string(),
            r.tags_pushed.join(";"),
            r.tags_removed.join(";"),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The range, one row per changed repository, and the blob store's change.
fn write_table(out: &mut impl Write, growth: &Growth) -> Result<()> {
    let utc = jiff::tz::TimeZone::UTC;
    writeln!(
        out,
        "from snapshot #{} ({} UTC) to #{} ({} UTC)",
        growth.from.id,
        growth.from.taken_at.human(&utc),
        growth.to.id,
        growth.to.taken_at.human(&utc)
    )?;
    let mut t = Table::new(&[
        ("REPOSITORY", Align::Left),
        ("BEFORE", Align::Right),
        ("AFTER", Align::Right),
        ("GROWTH", Align::Right),
        ("EXCLUSIVE", Align::Right),
        ("TAGS", Align::Right),
        ("PUSHED", Align::Left),
    ]);
    for r in &growth.repositories {
        let mut pushed = r.tags_pushed.join(", ");
        if !r.tags_removed.is_empty() {
            if !pushed.is_empty() {
                pushed.push_str("; ");
            }
            pushed.push_str(&format!("removed {}", r.tags_removed.join(", ")));
        }
        t.row(vec![
            r.repository.clone(),
            r.from_total
                .map(human_bytes)
                .unwrap_or_else(|| "(new)".into()),
            r.to_total
                .map(human_bytes)
                .unwrap_or_else(|| "(gone)".into()),
            signed(r.total_change),
            signed(r.exclusive_change),
            format!("{:+}", r.tags_change),
            pushed,
        ]);
    }
    out.write_all(t.render().as_bytes())?;
    writeln!(
        out,
        "\nblob store: {} ({} -> {}); {} blobs first seen in this range ({}) still present",
        signed(growth.blob_bytes_change),
        human_bytes(growth.from.blob_bytes),
        human_bytes(growth.to.blob_bytes),
        growth.new_blobs,
        human_bytes(growth.new_blob_bytes)
    )?;
    if growth.repositories.is_empty() {
        writeln!(out, "no repository changed")?;
    }
    Ok(())
}
