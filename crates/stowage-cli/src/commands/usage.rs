//! `stowage usage`: which images were pulled when, from the registry's access logs
//! (`stowage usage ingest`) and notifications (`stowage serve --history DB`), kept in the
//! history database. Docs: `docs/usage.md`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use stowage_history::{Coverage, Db, IngestStats, SourceKind, UsageStatus};
use stowage_model::time::{Timestamp, human_age, human_bytes};
use stowage_report::schema;
use stowage_report::table::{Align, Table};
use stowage_usage::view::{Bucket, UsageView};
use stowage_usage::{Ingest, LineRead, TagTimeline};

use super::{GraphFindings, load};
use crate::args::{Format, GlobalArgs};
use crate::output;
use crate::output::short;
use crate::settings::Settings;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: Option<UsageCommand>,
    /// The history database holding the pull data.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// List every image with its last pull, not only those never pulled.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// Read the registry's access logs (files, .gz, or - for stdin) into the database.
    Ingest(IngestArgs),
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Log files (plain or gzip, detected by content); `-` or none: stdin.
    pub files: Vec<PathBuf>,
    /// The history database (created when absent, upgraded when older).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    #[command(flatten)]
    pub filter: crate::args::FilterArgs,
}

fn has_storage(g: &GlobalArgs) -> bool {
    g.storage.is_some() || g.registry_config.is_some()
}

/// Open a log: gzip when it starts with the gzip magic bytes.
fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
    };
    let mut r = BufReader::with_capacity(1 << 18, raw);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 18,
            flate2::bufread::MultiGzDecoder::new(r),
        )))
    } else {
        Ok(Box::new(r))
    }
}

/// Events written per transaction during an ingest.
const BATCH: usize = 200_000;

#[derive(Serialize)]
struct IngestDocument<'a> {
    schema: String,
    #[serde(flatten)]
    stats: &'a IngestStats,
    combined_skipped: u64,
    unparseable_examples: &'a [String],
}

pub fn ingest(g: &GlobalArgs, a: &IngestArgs) -> Result<i32> {
    let now = crate::settings::resolve_now(g)?;
    let filter = a.filter.filter()?;
    let mut db = Db::open(&a.db)?;
    let (tags, earliest) = tag_timeline(g, &db)?;
    let started = std::time::Instant::now();
    // Lines dated in the future (beyond the allowed skew), or before the registry stored
    // anything, are rejected and counted.
    let mut ing = Ingest::new(&filter, &tags)
        .reject_after(now.saturating_sub_secs(-stowage_serve::SKEW_SECS));
    if let Some(e) = earliest {
        ing = ing.reject_before(e);
    }
    let files: Vec<PathBuf> = if a.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        a.files.clone()
    };
    let batched = read_logs(&files, &mut ing, &mut db, &a.db, now)?;
    let mut done = ing.finish();
    done.stats.recorded = batched.recorded;
    done.stats.duplicates = batched.duplicates;
    done.stats.overlapping = batched.overlapping;
    done.stats.inputs = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let coverage = done.stats.coverage.clone();
    let lines = done.stats.lines_read;
    db.record_usage(
        SourceKind::Logs,
        &coverage,
        lines,
        &done.events,
        Some(&mut done.stats),
        now,
    )
    .with_context(|| format!("recording in {}", a.db.display()))?;
    let secs = started.elapsed().as_secs_f64();
    if g.verbose {
        note!(
            "{lines} lines in {secs:.2}s ({:.0} lines/s)",
            lines as f64 / secs.max(1e-9)
        );
    }
    report_ingest(&done);
    if g.format == Format::Json {
        let mut out = output::stdout();
        output::json(
            &mut out,
            &IngestDocument {
                schema: schema("usage-ingest"),
                stats: &done.stats,
                combined_skipped: done.combined_skipped,
                unparseable_examples: &done.examples,
            },
        )?;
        out.flush()?;
    }
    Ok(crate::exit::OK)
}

/// Which digest each tag pointed at when: from the storage's tag history, scanned now (when
/// there is a storage), plus the pushes the database recorded. Also returns the time before
/// which no line is plausible (the registry's oldest blob, less the allowed skew).
fn tag_timeline(g: &GlobalArgs, db: &Db) -> Result<(TagTimeline, Option<Timestamp>)> {
    let mut earliest = None;
    let mut tags = if has_storage(g) {
        let s = Settings::resolve(g)?;
        let loaded = load(&s, false, GraphFindings::Count)?;
        earliest = stowage_usage::earliest_plausible(loaded.inv(), stowage_serve::SKEW_SECS);
        TagTimeline::from_inventory(loaded.inv())
    } else {
        note!(
            "warning: no --storage: pulls by tag cannot be attributed to a digest and are recorded as unresolved"
        );
        TagTimeline::default()
    };
    for (repo, tag, at, digest) in db.tag_pushes()? {
        tags.add(&repo, &tag, at, &digest);
    }
    tags.finish();
    Ok((tags, earliest))
}

/// Feeds every line of `files` ("-" is stdin) to `ing`, recording events in batches of
/// [`BATCH`]: memory stays bounded on a month of logs (dedupe makes a batch written before a
/// failure harmless to write again). Returns what the batches recorded.
fn read_logs(
    files: &[PathBuf],
    ing: &mut Ingest<'_>,
    db: &mut Db,
    db_path: &Path,
    now: Timestamp,
) -> Result<stowage_history::Recorded> {
    let mut buf = Vec::with_capacity(4096);
    let mut batched = stowage_history::Recorded::default();
    for f in files {
        let name = if f.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            f.display().to_string()
        };
        let mut r = open(f)?;
        let mut n = 0u64;
        loop {
            let got = stowage_usage::read_line(&mut *r, &mut buf, stowage_usage::MAX_LINE)
                .with_context(|| format!("reading {name}"))?;
            n += 1;
            match got {
                LineRead::Eof => break,
                LineRead::TooLong => ing.too_long(),
                LineRead::Line => {
                    let line = String::from_utf8_lossy(&buf);
                    ing.line(&line, || format!("{name}:{n}"));
                }
            }
            if ing.pending() >= BATCH {
                let r = db
                    .record_usage(
                        SourceKind::Logs,
                        &Coverage::default(),
                        0,
                        &ing.take_events(),
                        None,
                        now,
                    )
                    .with_context(|| format!("recording in {}", db_path.display()))?;
                batched.recorded += r.recorded;
                batched.duplicates += r.duplicates;
                batched.overlapping += r.overlapping;
            }
        }
    }
    Ok(batched)
}

/// The ingest's counts on stderr, and the unparseable examples.
fn report_ingest(done: &stowage_usage::Ingested) {
    let st = &done.stats;
    if st.overlapping > 0 {
        note!(
            "warning: {} requests were already recorded by the registry's notifications (the logs and the notifications overlap); they are not counted twice",
            st.overlapping
        );
    }
    note!(
        "{} lines: {} requests, {} manifest requests; recorded {} new events ({} duplicates of earlier ingests), {} pulls ignored by filters, {} tag pulls unresolved, {} other lines, {} unparseable{}{}",
        st.lines_read,
        st.requests,
        st.manifest_events,
        st.recorded,
        st.duplicates,
        st.ignored,
        st.unresolved,
        st.other_lines,
        st.unparseable,
        if st.too_long + st.rejected > 0 {
            format!(
                ", {} longer than {} KiB (skipped), {} dated in the future or before the registry's oldest blob (rejected)",
                st.too_long,
                stowage_usage::MAX_LINE >> 10,
                st.rejected
            )
        } else {
            String::new()
        },
        match (st.first_at, st.last_at) {
            (Some(f), Some(l)) => format!("; covering {} to {}", f.rfc3339(), l.rfc3339()),
            _ => String::new(),
        }
    );
    if done.combined_skipped > 0 {
        note!(
            "note: {} combined-format access-log lines skipped: the same requests are in the registry's logrus lines, which are counted",
            done.combined_skipped
        );
    }
    for e in &done.examples {
        note!("unparseable: {e}");
    }
}

#[derive(Serialize)]
struct ViewDocument<'a> {
    schema: String,
    #[serde(flatten)]
    view: &'a UsageView,
    status: &'a UsageStatus,
}

/// The pull view of a scanned storage (shared with `report`).
pub fn run(s: &Settings, a: &UsageArgs) -> Result<i32> {
    let Some(db) = &a.db else {
        bail!("--db FILE is needed: the history database with the pull data");
    };
    let loaded = load(s, false, GraphFindings::Count)?;
    let g = loaded.graph();
    let (v, status) = crate::pipeline::pull_view(db, &g, s.now)?;
    let mut out = output::stdout();
    match s.format {
        Format::Json | Format::Parquet => output::json(
            &mut out,
            &ViewDocument {
                schema: schema("usage"),
                view: &v,
                status: &status,
            },
        )?,
        Format::Ndjson => {
            for i in &v.images {
                output::ndjson(&mut out, i)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record([
                "repository",
                "digest",
                "tags",
                "pushed",
                "size",
                "last_pulled",
                "pulls",
                "bucket",
            ])?;
            for i in &v.images {
                let bucket = serde_json::to_value(i.bucket)?;
                w.write_record([
                    i.repository.as_str(),
                    &i.digest,
                    &i.tags.join(";"),
                    &i.pushed.rfc3339(),
                    &i.size.to_string(),
                    &i.last_pulled.map(|t| t.rfc3339()).unwrap_or_default(),
                    &i.pulls.to_string(),
                    bucket.as_str().unwrap_or_default(),
                ])?;
            }
            w.flush()?;
        }
        Format::Table => table(&mut out, s, a, &v, &status)?,
    }
    out.flush()?;
    Ok(crate::exit::OK)
}

fn table(
    out: &mut impl Write,
    s: &Settings,
    a: &UsageArgs,
    v: &UsageView,
    status: &UsageStatus,
) -> Result<()> {
    match (v.data_begins, v.data_ends) {
        (Some(b), Some(e)) => {
            writeln!(
                out,
                "Pull data from {} to {} ({}).",
                b.human(&s.tz),
                e.human(&s.tz),
                status
                    .sources
                    .iter()
                    .map(|x| x.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )?;
            let stale = e.seconds_until(v.now);
            if stale > 2 * 86_400 {
                writeln!(
                    out,
                    "warning: the newest pull data is {} old: ingest newer logs, or check the notification endpoint.",
                    human_age(stale)
                )?;
            }
        }
        _ => writeln!(
            out,
            "No pull data yet: `stowage usage ingest --db DB LOGS` or notifications to `stowage serve --history DB`. Images are shown as \"no pull data\", not \"never pulled\"."
        )?,
    }
    let mut t = Table::new(&[
        ("LAST PULL", Align::Left),
        ("IMAGES", Align::Right),
        ("BYTES", Align::Right),
    ]);
    for b in &v.buckets {
        t.row(vec![
            b.bucket.map(Bucket::label).unwrap_or("-").to_string(),
            b.images.to_string(),
            human_bytes(b.bytes),
        ]);
    }
    writeln!(out)?;
    out.write_all(t.render().as_bytes())?;
    writeln!(
        out,
        "BYTES: a blob several images need counts with the most recently pulled of them, so \"never pulled\" bytes are what only never-pulled images need."
    )?;
    let list: Vec<_> = v
        .images
        .iter()
        .filter(|i| a.all || i.bucket == Bucket::Never)
        .collect();
    if !list.is_empty() {
        writeln!(
            out,
            "\n{}:",
            if a.all {
                "Images"
            } else {
                "Images never pulled since the data began"
            }
        )?;
        let mut t = Table::new(&[
            ("REPOSITORY", Align::Left),
            ("TAGS", Align::Left),
            ("DIGEST", Align::Left),
            ("PUSHED", Align::Left),
            ("SIZE", Align::Right),
            ("LAST PULLED", Align::Left),
            ("PULLS", Align::Right),
        ]);
        for i in list {
            t.row(vec![
                i.repository.clone(),
                if i.tags.is_empty() {
                    "(untagged)".into()
                } else {
                    i.tags.join(",")
                },
                short(&i.digest),
                i.pushed.human(&s.tz),
                human_bytes(i.size),
                match i.last_pulled {
                    Some(t) => t.human(&s.tz),
                    None if i.bucket == Bucket::NoData => "no data".into(),
                    None => "never".into(),
                },
                i.pulls.to_string(),
            ]);
        }
        out.write_all(t.render().as_bytes())?;
    }
    if !status.ignored.is_empty() {
        writeln!(out, "\nPulls left out by filters:")?;
        for x in &status.ignored {
            writeln!(
                out,
                "  {:>8}  {} (last {})",
                x.pulls,
                x.reason,
                x.last_at.human(&s.tz)
            )?;
        }
    }
    if !status.unresolved.is_empty() {
        writeln!(out, "\nTag pulls not attributed to a digest (not counted):")?;
        for x in &status.unresolved {
            writeln!(out, "  {:>8}  {}", x.pulls, x.reason)?;
        }
        for x in status.unresolved_tags.iter().take(10) {
            writeln!(out, "  {:>8}  {}", x.pulls, x.reason)?;
        }
    }
    Ok(())
}
