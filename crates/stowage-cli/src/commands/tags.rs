//! `stowage tags REPO`: tags with digest, type, platforms, sizes, when moved, and history.

use std::io::Write;

use anyhow::{Result, bail};
use serde::Serialize;
use stowage_graph::Graph;
use stowage_model::inventory::Inventory;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::table::{Align, Table};
use stowage_report::{TagRecord, schema};

use super::{GraphFindings, findings_exit, load};
use crate::args::{Format, TagsArgs};
use crate::output;
use crate::output::short;
use crate::settings::Settings;

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    repository: &'a str,
    generated_at: Timestamp,
    tags: &'a [TagRecord],
    /// With --db: per tag, its image's last pull.
    #[serde(skip_serializing_if = "Option::is_none")]
    pulls: Option<&'a [TagPull]>,
    /// Set on a registry whose links are not its metadata (GitLab's metadata database):
    /// "figures are from filesystem metadata only: <evidence>".
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_database: Option<String>,
    /// A pull-through cache: per tag, when its manifest was cached and its TTL expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<&'a [stowage_analysis::cache::TagCache]>,
}

/// A tag's image's pulls (the image, and what it references, e.g. an index's children).
#[derive(Serialize)]
struct TagPull {
    tag: String,
    /// `None`: not pulled since the data began (or no data: see `data_begins`).
    last_pulled: Option<Timestamp>,
    pulls: u64,
    bucket: stowage_usage::view::Bucket,
    data_begins: Option<Timestamp>,
}

fn tag_pulls(
    db: &std::path::Path,
    g: &Graph<'_>,
    repo: &str,
    rows: &[TagRecord],
    now: Timestamp,
) -> Result<Vec<TagPull>> {
    let (v, _) = crate::pipeline::pull_view(db, g, now)?;
    Ok(rows
        .iter()
        .map(|r| {
            let img = v
                .images
                .iter()
                .find(|i| i.repository == repo && Some(&i.digest) == r.digest.as_ref());
            TagPull {
                tag: r.tag.clone(),
                last_pulled: img.and_then(|i| i.last_pulled),
                pulls: img.map_or(0, |i| i.pulls),
                bucket: img.map_or(
                    stowage_usage::view::Bucket::of(None, v.data_begins.is_some(), now),
                    |i| i.bucket,
                ),
                data_begins: v.data_begins,
            }
        })
        .collect())
}

/// The build date, or `? reason` when unknown (never a guess).
fn built_cell(r: &TagRecord, fmt: impl Fn(Timestamp) -> String) -> String {
    match (r.built, r.build_unknown) {
        (Some(t), _) => fmt(t),
        (None, Some(why)) => format!("? {why}"),
        (None, None) => "-".into(),
    }
}

/// The tags table, each row with its pulls (with `--db`), and their history beside it
/// (`FILE.history.parquet`, one row per entry, keyed by repository and tag).
fn write_parquet(
    path: &std::path::Path,
    rows: &[TagRecord],
    pulls: Option<&[TagPull]>,
) -> Result<()> {
    let mut tagged = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let mut v = serde_json::to_value(r)?;
        if let (Some(p), Some(o)) = (pulls.and_then(|p| p.get(i)), v.as_object_mut()) {
            o.insert("last_pulled".into(), serde_json::to_value(p.last_pulled)?);
            o.insert("pulls".into(), p.pulls.into());
        }
        tagged.push(v);
    }
    output::write_parquet(path, "tags", tagged)?;
    let history = rows.iter().flat_map(|r| {
        r.history.iter().map(move |h| {
            serde_json::json!({
                "repository": r.repository, "tag": r.tag,
                "digest": h.digest, "date": h.date, "exists": h.exists,
            })
        })
    });
    output::write_parquet(
        &path.with_extension("history.parquet"),
        "tags.history",
        history,
    )
}

fn kind_label(mt: Option<&str>) -> &'static str {
    match mt {
        Some(stowage_model::manifest::OCI_INDEX) => "oci-index",
        Some(stowage_model::manifest::DOCKER_LIST) => "docker-list",
        Some(stowage_model::manifest::OCI_MANIFEST) => "oci",
        Some(stowage_model::manifest::DOCKER_SCHEMA2) => "docker-v2",
        Some(stowage_model::manifest::DOCKER_SCHEMA1)
        | Some(stowage_model::manifest::DOCKER_SCHEMA1_SIGNED) => "docker-v1",
        Some(_) => "other",
        None => "?",
    }
}

pub fn run(s: &Settings, a: &TagsArgs) -> Result<i32> {
    let mut loaded = load(s, false, GraphFindings::Count)?;
    let name = a.repository.trim_matches('/');
    let ri = find_repository(loaded.inv(), name)?;
    loaded.read_build_dates(&*s.storage, s.concurrency);
    let g = loaded.graph();
    let rows = loaded.tag_records(ri);
    let pulls = match &a.db {
        Some(db) => Some(tag_pulls(db, &g, name, &rows, s.now)?),
        None => None,
    };
    let cache = loaded.cache_figures().map(|c| {
        let tags: Vec<(String, Option<String>)> = rows
            .iter()
            .map(|r| (r.tag.clone(), r.digest.clone()))
            .collect();
        c.tags(name, &tags)
    });
    if let Some(path) = output::parquet_target(s.format, a.output.as_deref())? {
        write_parquet(path, &rows, pulls.as_deref())?;
        return Ok(findings_exit(loaded.finding_counts()));
    }
    let mut out = output::to(a.output.as_deref())?;
    match s.format {
        // Parquet went to its files above.
        Format::Json | Format::Parquet => output::json(
            &mut out,
            &Document {
                cache: cache.as_deref(),
                schema: schema("tags"),
                repository: name,
                generated_at: s.now,
                tags: &rows,
                pulls: pulls.as_deref(),
                metadata_database: loaded.metadata_database().map(|e| e.label()),
            },
        )?,
        Format::Ndjson => {
            for r in &rows {
                output::ndjson(&mut out, r)?;
            }
        }
        Format::Csv => write_csv(&mut out, &rows, pulls.as_deref())?,
        Format::Table => write_table(&mut out, s, a, &rows, pulls.as_deref(), cache.as_deref())?,
    }
    out.flush()?;
    Ok(findings_exit(loaded.finding_counts()))
}

/// The index of repository `name`; an unknown name is an error that suggests up to five
/// near names (a substring either way), or says how to list them.
fn find_repository(inv: &Inventory, name: &str) -> Result<usize> {
    if let Some(ri) = inv
        .repositories
        .iter()
        .position(|r| r.name.as_str() == name)
    {
        return Ok(ri);
    }
    let mut near: Vec<&str> = inv
        .repositories
        .iter()
        .map(|r| r.name.as_str())
        .filter(|r| r.contains(name) || name.contains(r.rsplit('/').next().unwrap_or(r)))
        .collect();
    near.truncate(5);
    if near.is_empty() {
        bail!(
            "no repository {name:?} in {} ({} repositories; `stowage du` lists them)",
            inv.root,
            inv.repositories.len()
        );
    }
    bail!("no repository {name:?}; did you mean {}?", near.join(", "));
}

fn write_csv(out: &mut impl Write, rows: &[TagRecord], pulls: Option<&[TagPull]>) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "repository",
        "tag",
        "digest",
        "media_type",
        "platforms",
        "total",
        "exclusive",
        "moved",
        "history",
        "last_pulled",
        "built",
    ])?;
    for (i, r) in rows.iter().enumerate() {
        w.write_record([
            r.repository.as_str(),
            &r.tag,
            r.digest.as_deref().unwrap_or(""),
            r.media_type.unwrap_or(""),
            &r.platforms.join(";"),
            &r.total.to_string(),
            &r.exclusive.to_string(),
            &r.moved.map(|m| m.rfc3339()).unwrap_or_default(),
            &r.history.len().to_string(),
            &pulls
                .and_then(|p| p.get(i))
                .and_then(|p| p.last_pulled)
                .map(|t| t.rfc3339())
                .unwrap_or_default(),
            &built_cell(r, |t| t.rfc3339()),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The table (a LAST PULLED column only with --db), each tag's history with --history, and
/// a legend for the two size columns.
fn write_table(
    out: &mut impl Write,
    s: &Settings,
    a: &TagsArgs,
    rows: &[TagRecord],
    pulls: Option<&[TagPull]>,
    cache: Option<&[stowage_analysis::cache::TagCache]>,
) -> Result<()> {
    let pull_cell = |i: usize| -> String {
        let Some(p) = pulls.and_then(|p| p.get(i)) else {
            return String::new();
        };
        match p.last_pulled {
            Some(t) => t.human(&s.tz),
            None if p.data_begins.is_none() => "no data".into(),
            None => "never".into(),
        }
    };
    let mut cols = vec![
        ("TAG", Align::Left),
        ("DIGEST", Align::Left),
        ("TYPE", Align::Left),
        ("PLATFORMS", Align::Left),
        ("SIZE", Align::Right),
        ("EXCLUSIVE", Align::Right),
        ("MOVED", Align::Left),
        ("BUILT", Align::Left),
        ("HISTORY", Align::Right),
    ];
    if pulls.is_some() {
        cols.push(("LAST PULLED", Align::Left));
    }
    if cache.is_some() {
        cols.push(("CACHED", Align::Left));
        cols.push(("TTL EXPIRES", Align::Left));
    }
    let mut t = Table::new(&cols);
    for (i, r) in rows.iter().enumerate() {
        let mut row = vec![
            r.tag.clone(),
            r.digest.as_deref().map(short).unwrap_or_else(|| "-".into()),
            match &r.artifact_type {
                Some(_) => "artifact".into(),
                None => kind_label(r.media_type).into(),
            },
            if r.platforms.is_empty() {
                "-".into()
            } else {
                r.platforms.join(",")
            },
            human_bytes(r.total),
            human_bytes(r.exclusive),
            r.moved
                .map(|m| m.human(&s.tz))
                .unwrap_or_else(|| "-".into()),
            built_cell(r, |t| t.human(&s.tz)),
            r.history.len().to_string(),
        ];
        if pulls.is_some() {
            row.push(pull_cell(i));
        }
        if let Some(c) = cache.and_then(|c| c.get(i)) {
            let when = |t: Option<Timestamp>| t.map_or_else(|| "-".into(), |t| t.human(&s.tz));
            row.push(when(c.cached_at));
            row.push(format!(
                "{}{}",
                when(c.expires),
                if c.expired { " (expired)" } else { "" }
            ));
        }
        t.row(row);
    }
    out.write_all(t.render().as_bytes())?;
    if a.history {
        write_histories(out, s, rows)?;
    }
    writeln!(
        out,
        "\nSIZE = distinct bytes of the image (all platforms); EXCLUSIVE = freed by deleting this tag and collecting untagged manifests.\nBUILT = the image config's created date (survives copies of the storage; MOVED does not); \"? reason\" when it is unknown."
    )?;
    Ok(())
}

/// Each tag's history, newest first, marking the current digest and digests whose blob is gone.
fn write_histories(out: &mut impl Write, s: &Settings, rows: &[TagRecord]) -> Result<()> {
    for r in rows {
        writeln!(
            out,
            "\n{}:{} history (newest first):",
            stowage_model::escape::escape(&r.repository),
            stowage_model::escape::escape(&r.tag)
        )?;
        for h in &r.history {
            let cur = if Some(&h.digest) == r.digest.as_ref() {
                " (current)"
            } else {
                ""
            };
            let gone = if h.exists { "" } else { " (blob gone)" };
            writeln!(out, "  {}  {}{cur}{gone}", h.date.human(&s.tz), h.digest)?;
        }
    }
    Ok(())
}
