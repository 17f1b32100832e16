//! `stowage inventory`: one record per blob (and optionally per link and upload file).

use anyhow::Result;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use stowage_graph::{BlobKind, Graph, Summary};
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::table::{Align, Table, abbreviate};
use stowage_report::{
    BlobRecord, BlobRecordBuilder, LinkRecord, UploadRecord, link_records, schema, upload_records,
};

use super::{findings_exit, load};
use crate::args::{BlobSort, Format, InventoryArgs, KindArg};
use crate::output;
use crate::settings::{Settings, parse_age, parse_size};

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    root: &'a str,
    generated_at: Timestamp,
    summary: &'a Summary,
    blobs: &'a [BlobRecord],
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<&'a [LinkRecord]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploads: Option<&'a [UploadRecord]>,
    findings: usize,
}

pub fn globset(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p)?);
    }
    Ok(Some(b.build()?))
}

fn kind_matches(k: BlobKind, wanted: &[KindArg]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| {
            matches!(
                (w, k),
                (KindArg::Manifest, BlobKind::Manifest)
                    | (KindArg::Index, BlobKind::Index)
                    | (KindArg::Config, BlobKind::Config)
                    | (KindArg::Layer, BlobKind::Layer)
                    | (KindArg::Unknown, BlobKind::Unknown)
            )
        })
}

pub fn run(s: &Settings, a: &InventoryArgs) -> Result<i32> {
    let repo_glob = globset(&a.repo)?;
    let older = a.older_than.as_deref().map(parse_age).transpose()?;
    let newer = a.newer_than.as_deref().map(parse_age).transpose()?;
    let min_size = a.min_size.as_deref().map(parse_size).transpose()?;
    let loaded = load(s, false)?;
    let inv = &loaded.inv;
    let g = Graph::new(inv);
    let referenced = g.mark(g.all_revision_roots(), false);
    let summary = stowage_graph::summary(&g, &referenced, &loaded.findings, s.now, 7 * 86400);

    let mut b = BlobRecordBuilder::new(&g);
    let mut records: Vec<BlobRecord> = Vec::new();
    for (i, blob) in inv.blobs.iter().enumerate() {
        let id = i as u32;
        let refd = referenced[i];
        if (a.unreferenced && refd) || (a.referenced && !refd) {
            continue;
        }
        if min_size.is_some_and(|m| blob.size < m) {
            continue;
        }
        let age = blob.modified.seconds_until(s.now);
        if older.is_some_and(|o| age < o) || newer.is_some_and(|n| age >= n) {
            continue;
        }
        if !kind_matches(g.blob_kind(id), &a.kind) {
            continue;
        }
        let rec = b.record(id, refd);
        if let Some(gs) = &repo_glob {
            if !rec
                .repositories
                .iter()
                .chain(rec.linked_in.iter())
                .any(|r| gs.is_match(r))
            {
                continue;
            }
        }
        records.push(rec);
    }
    match a.sort {
        BlobSort::Digest => {}
        BlobSort::Size => {
            records.sort_by(|x, y| x.size.cmp(&y.size).then_with(|| x.digest.cmp(&y.digest)))
        }
        BlobSort::Date => records.sort_by(|x, y| {
            x.modified
                .cmp(&y.modified)
                .then_with(|| x.digest.cmp(&y.digest))
        }),
        BlobSort::Kind => {
            records.sort_by(|x, y| x.kind.cmp(&y.kind).then_with(|| x.digest.cmp(&y.digest)))
        }
    }
    if a.reverse {
        records.reverse();
    }
    if let Some(n) = a.limit {
        records.truncate(n);
    }
    let repo_ok = |name: &str| repo_glob.as_ref().is_none_or(|gs| gs.is_match(name));
    let links: Option<Vec<LinkRecord>> = a.links.then(|| {
        inv.repositories
            .iter()
            .filter(|r| repo_ok(r.name.as_str()))
            .flat_map(|r| link_records(&g, r))
            .collect()
    });
    let uploads: Option<Vec<UploadRecord>> = a.uploads.then(|| {
        inv.repositories
            .iter()
            .filter(|r| repo_ok(r.name.as_str()))
            .flat_map(|r| upload_records(r, s.now))
            .collect()
    });

    let mut out = output::stdout();
    match s.format {
        Format::Json => output::json(
            &mut out,
            &Document {
                schema: schema("inventory"),
                root: &inv.root,
                generated_at: s.now,
                summary: &summary,
                blobs: &records,
                links: links.as_deref(),
                uploads: uploads.as_deref(),
                findings: loaded.findings.len(),
            },
        )?,
        Format::Ndjson => {
            for r in &records {
                output::ndjson(&mut out, r)?;
            }
            for l in links.iter().flatten() {
                output::ndjson(&mut out, l)?;
            }
            for u in uploads.iter().flatten() {
                output::ndjson(&mut out, u)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record([
                "digest",
                "size",
                "modified",
                "created",
                "kind",
                "referenced",
                "repositories",
                "tags",
                "path",
            ])?;
            for r in &records {
                w.write_record([
                    r.digest.as_str(),
                    &r.size.to_string(),
                    &r.modified.rfc3339(),
                    &r.created.map(|c| c.rfc3339()).unwrap_or_default(),
                    r.kind.as_str(),
                    if r.referenced { "true" } else { "false" },
                    &r.repositories.join(";"),
                    &r.tags.join(";"),
                    &r.path,
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            use std::io::Write;
            let mut t = Table::new(&[
                ("DIGEST", Align::Left),
                ("SIZE", Align::Right),
                ("MODIFIED", Align::Left),
                ("KIND", Align::Left),
                ("REFERENCED", Align::Left),
                ("REPOSITORIES", Align::Left),
                ("TAGS", Align::Left),
            ]);
            for r in &records {
                t.row(vec![
                    short(&r.digest),
                    human_bytes(r.size),
                    r.modified.human(&s.tz),
                    r.kind.as_str().into(),
                    if r.referenced {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    abbreviate(&r.repositories, 2),
                    abbreviate(&r.tags, 2),
                ]);
            }
            out.write_all(t.render().as_bytes())?;
            if let Some(links) = &links {
                let mut t = Table::new(&[
                    ("LINK", Align::Left),
                    ("REPOSITORY", Align::Left),
                    ("TAG", Align::Left),
                    ("DIGEST", Align::Left),
                    ("MODIFIED", Align::Left),
                    ("TARGET", Align::Left),
                ]);
                for l in links {
                    t.row(vec![
                        l.kind.into(),
                        l.repository.clone(),
                        l.tag.clone().unwrap_or_else(|| "-".into()),
                        short(&l.digest),
                        l.modified.human(&s.tz),
                        if l.target_exists {
                            "exists".into()
                        } else {
                            "MISSING".into()
                        },
                    ]);
                }
                writeln!(out)?;
                out.write_all(t.render().as_bytes())?;
            }
            if let Some(ups) = &uploads {
                let mut t = Table::new(&[
                    ("UPLOAD", Align::Left),
                    ("REPOSITORY", Align::Left),
                    ("STARTED", Align::Left),
                    ("SIZE", Align::Right),
                ]);
                for u in ups {
                    t.row(vec![
                        u.id.clone(),
                        u.repository.clone(),
                        u.started_at
                            .map(|t| t.human(&s.tz))
                            .unwrap_or_else(|| "unknown".into()),
                        human_bytes(u.total_size),
                    ]);
                }
                writeln!(out)?;
                out.write_all(t.render().as_bytes())?;
            }
            writeln!(out)?;
            write_summary(&mut out, &summary, records.len())?;
        }
    }
    use std::io::Write;
    out.flush()?;
    Ok(findings_exit(&loaded.findings))
}

pub fn short(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_string(),
    }
}

pub fn write_summary(out: &mut impl std::io::Write, s: &Summary, shown: usize) -> Result<()> {
    writeln!(
        out,
        "{shown} blobs shown of {} ({}); {} repositories, {} tags, {} manifests ({} untagged)",
        s.blobs,
        human_bytes(s.blob_bytes),
        s.repositories,
        s.tags,
        s.manifests,
        s.untagged_manifests
    )?;
    writeln!(
        out,
        "unreferenced: {} blobs, {} (the registry's GC would delete them); untagged manifests alone hold {}; uploads: {} ({}), {} older than 7 days",
        s.unreferenced_blobs,
        human_bytes(s.unreferenced_bytes),
        human_bytes(s.untagged_exclusive_bytes),
        s.uploads,
        human_bytes(s.upload_bytes),
        s.stale_uploads
    )?;
    Ok(())
}
