//! `stowage du`: repositories as a tree, with total, exclusive and shared bytes.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use stowage_graph::Summary;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::table::{Align, Table};
use stowage_report::{DuRecord, du_records, schema};

use super::{GraphFindings, findings_exit, load};
use crate::args::{DuArgs, DuSort, Format};
use crate::output;
use crate::settings::Settings;

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    root: &'a str,
    generated_at: Timestamp,
    summary: &'a Summary,
    nodes: &'a [DuRecord],
    /// Set on a registry whose links are not its metadata (GitLab's metadata database):
    /// "figures are from filesystem metadata only: <evidence>".
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_database: Option<String>,
    /// A pull-through cache: its headline figures and cached repositories.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<stowage_analysis::cache::CacheOverview>,
}

/// How siblings are ordered: a key per row, and whether descending.
type SortKey = fn(&DuRecord) -> (u64, String);

pub fn run(s: &Settings, a: &DuArgs) -> Result<i32> {
    let loaded = load(s, false, GraphFindings::Count)?;
    let summary = loaded.summary(s.now, 7 * 86400);
    let u = loaded.usage();
    let (key, desc): (SortKey, bool) = match a.sort {
        DuSort::Total => (|r| (r.total, r.name.clone()), true),
        DuSort::Exclusive => (|r| (r.exclusive, r.name.clone()), true),
        DuSort::Shared => (|r| (r.shared, r.name.clone()), true),
        DuSort::Name => (|r| (0, r.name.clone()), false),
    };
    let rows = du_records(u, a.depth, key, desc);
    let cache = loaded.cache_figures();
    if let Some(path) = output::parquet_target(s.format, a.output.as_deref())? {
        output::write_parquet(path, "du", &rows)?;
        return Ok(findings_exit(loaded.finding_counts()));
    }
    let mut out = output::to(a.output.as_deref())?;
    match s.format {
        // Parquet went to its file above.
        Format::Json | Format::Parquet => output::json(
            &mut out,
            &Document {
                schema: schema("du"),
                root: &loaded.inv().root,
                generated_at: s.now,
                summary: &summary,
                nodes: &rows,
                metadata_database: loaded.metadata_database().map(|e| e.label()),
                cache: cache.as_ref().map(|c| c.overview()),
            },
        )?,
        Format::Ndjson => {
            for r in &rows {
                output::ndjson(&mut out, r)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for r in &rows {
                w.serialize(r)?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut t = Table::new(&[
                ("REPOSITORY", Align::Left),
                ("TOTAL", Align::Right),
                ("EXCLUSIVE", Align::Right),
                ("SHARED", Align::Right),
                ("TAGS", Align::Right),
                ("MANIFESTS", Align::Right),
                ("UNTAGGED", Align::Right),
                ("UPLOADS", Align::Right),
            ]);
            for r in &rows {
                let leaf = r.name.rsplit('/').next().unwrap_or(&r.name);
                let name = if r.depth == 0 {
                    "(all repositories)".to_string()
                } else {
                    format!(
                        "{}{}{}",
                        "  ".repeat(r.depth as usize - 1),
                        leaf,
                        if r.repository { "" } else { "/" }
                    )
                };
                t.row(vec![
                    name,
                    human_bytes(r.total),
                    human_bytes(r.exclusive),
                    human_bytes(r.shared),
                    r.tags.to_string(),
                    r.manifests.to_string(),
                    r.untagged_manifests.to_string(),
                    human_bytes(r.upload_bytes),
                ]);
            }
            out.write_all(t.render().as_bytes())?;
            writeln!(
                out,
                "\nblob store: {} in {} blobs; unreferenced {} ({} blobs). EXCLUSIVE = freed by deleting that repository (or everything under that namespace) and running GC.",
                human_bytes(summary.blob_bytes),
                summary.blobs,
                human_bytes(summary.unreferenced_bytes),
                summary.unreferenced_blobs
            )?;
            if let Some(c) = &cache {
                cache_table(&mut out, c, s)?;
            }
        }
    }
    out.flush()?;
    Ok(findings_exit(loaded.finding_counts()))
}

/// A pull-through cache's repositories by cache time and expiry, after the headline.
fn cache_table(
    out: &mut impl Write,
    c: &stowage_analysis::cache::CacheFigures,
    s: &Settings,
) -> Result<()> {
    let when = |t: Option<Timestamp>| t.map_or_else(|| "-".into(), |t| t.human(&s.tz));
    writeln!(out, "\n{}", stowage_model::escape::escape(&c.headline()))?;
    if c.repositories.is_empty() {
        return Ok(());
    }
    let mut t = Table::new(&[
        ("CACHED REPOSITORY", Align::Left),
        ("MANIFESTS", Align::Right),
        ("BLOBS", Align::Right),
        ("EXPIRED", Align::Right),
        ("FIRST CACHED", Align::Left),
        ("LAST CACHED", Align::Left),
        ("NEXT EXPIRY", Align::Left),
    ]);
    for r in &c.repositories {
        t.row(vec![
            r.repository.clone(),
            r.manifests.to_string(),
            r.blobs.to_string(),
            r.expired.to_string(),
            when(r.first_cached),
            when(r.last_cached),
            when(r.next_expiry),
        ]);
    }
    writeln!(out)?;
    out.write_all(t.render().as_bytes())?;
    Ok(())
}
