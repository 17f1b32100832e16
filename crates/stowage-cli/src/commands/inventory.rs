//! `stowage inventory`: one record per blob (and optionally per link and upload file).

use anyhow::Result;
use globset::{GlobSet, GlobSetBuilder};
use stowage_graph::{BlobKind, Summary};
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::table::{Align, Table, abbreviate_first};
use stowage_report::{
    BlobRecordBuilder, LinkRecord, UploadRecord, link_records, schema, upload_records,
};

use super::{GraphFindings, findings_exit, load};
use crate::args::{BlobSort, Format, InventoryArgs, KindArg};
use crate::output;
use crate::settings::{Settings, parse_age, parse_size};

pub fn globset(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // Limits and a clean error, as every pattern (stowage_model::pattern).
        b.add(stowage_model::pattern::glob(p, Default::default())?);
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
    let loaded = load(s, false, GraphFindings::Count)?;
    let inv = loaded.inv();
    let g = loaded.graph();
    let referenced = loaded.referenced();
    let summary = loaded.summary(s.now, 7 * 86400);

    // Select and order blob ids first (cheap), then build each record only while writing it:
    // memory stays proportional to the number of blobs, not to the size of the output (a
    // base layer's record lists every tag that uses it). With no filter and the default
    // order, the selection is every blob in table order and no list is kept.
    let mut b = BlobRecordBuilder::new(&g);
    let selects = a.unreferenced
        || a.referenced
        || min_size.is_some()
        || older.is_some()
        || newer.is_some()
        || !a.kind.is_empty()
        || repo_glob.is_some();
    let ids = if !selects && a.sort == BlobSort::Digest && !a.reverse && a.limit.is_none() {
        Ids::All(inv.blobs.len() as u32)
    } else {
        let mut ids: Vec<u32> = Vec::new();
        for (i, blob) in inv.blobs.iter().enumerate() {
            let id = i as u32;
            let refd = referenced[i];
            if (a.unreferenced && refd) || (a.referenced && !refd) {
                continue;
            }
            if min_size.is_some_and(|m| blob.size < m) {
                continue;
            }
            let age = blob.modified().seconds_until(s.now);
            if older.is_some_and(|o| age < o) || newer.is_some_and(|n| age >= n) {
                continue;
            }
            if !kind_matches(g.blob_kind(id), &a.kind) {
                continue;
            }
            if let Some(gs) = &repo_glob {
                let (repos, _) = b.owner_ids(id);
                let mut names = repos
                    .iter()
                    .chain(g.layer_repos(id))
                    .map(|&r| inv.repositories[r as usize].name.as_str());
                if !names.any(|r| gs.is_match(r)) {
                    continue;
                }
            }
            ids.push(id);
        }
        let blob = |id: &u32| &inv.blobs[*id as usize];
        match a.sort {
            BlobSort::Digest => {}
            BlobSort::Size => ids.sort_by_key(|id| (blob(id).size, *id)),
            BlobSort::Date => ids.sort_by_key(|id| (blob(id).modified(), *id)),
            BlobSort::Kind => ids.sort_by_key(|id| (g.blob_kind(*id), *id)),
        }
        if a.reverse {
            ids.reverse();
        }
        if let Some(n) = a.limit {
            ids.truncate(n);
        }
        Ids::List(ids)
    };
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

    let last_pulled: Option<Vec<Option<Timestamp>>> = match &a.db {
        Some(db) => {
            let h = stowage_history::Db::open_existing(db)?;
            Some(stowage_usage::view::blob_last_pulled(
                &g,
                &h.pull_summary()?,
            ))
        }
        None => None,
    };
    // With --db, each record gains `last_pulled` (null: not pulled since the data began).
    #[derive(serde::Serialize)]
    struct WithPull<'r, R: serde::Serialize> {
        #[serde(flatten)]
        record: &'r R,
        last_pulled: Option<Timestamp>,
    }
    let lp = |id: u32| last_pulled.as_ref().and_then(|v| v[id as usize]);

    let mut out = output::stdout();
    match s.format {
        Format::Json => {
            // Written piece by piece so records never all sit in memory; still one JSON
            // document, one blob record per line.
            out.write_all(b"{\n")?;
            writeln!(
                out,
                "  \"schema\": {},",
                serde_json::to_string(&schema("inventory"))?
            )?;
            writeln!(out, "  \"root\": {},", serde_json::to_string(&inv.root)?)?;
            writeln!(
                out,
                "  \"generated_at\": {},",
                serde_json::to_string(&s.now)?
            )?;
            writeln!(out, "  \"summary\": {},", serde_json::to_string(&summary)?)?;
            writeln!(out, "  \"findings\": {},", loaded.finding_counts().total())?;
            out.write_all(b"  \"blobs\": [")?;
            for (n, id) in ids.iter().enumerate() {
                out.write_all(if n == 0 { b"\n    " } else { b",\n    " })?;
                let r = b.record(id, referenced[id as usize]);
                if last_pulled.is_some() {
                    serde_json::to_writer(
                        &mut out,
                        &WithPull {
                            record: &r,
                            last_pulled: lp(id),
                        },
                    )?;
                } else {
                    serde_json::to_writer(&mut out, &r)?;
                }
            }
            out.write_all(b"\n  ]")?;
            if let Some(l) = &links {
                write!(out, ",\n  \"links\": {}", serde_json::to_string(l)?)?;
            }
            if let Some(u) = &uploads {
                write!(out, ",\n  \"uploads\": {}", serde_json::to_string(u)?)?;
            }
            out.write_all(b"\n}\n")?;
        }
        Format::Ndjson => {
            for id in ids.iter() {
                let r = b.record(id, referenced[id as usize]);
                if last_pulled.is_some() {
                    output::ndjson(
                        &mut out,
                        &WithPull {
                            record: &r,
                            last_pulled: lp(id),
                        },
                    )?;
                } else {
                    output::ndjson(&mut out, &r)?;
                }
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
            let mut head = vec![
                "digest",
                "size",
                "modified",
                "created",
                "kind",
                "referenced",
                "repositories",
                "tags",
                "path",
            ];
            if last_pulled.is_some() {
                head.push("last_pulled");
            }
            w.write_record(&head)?;
            for id in ids.iter() {
                let r = &b.record(id, referenced[id as usize]);
                let mut row: Vec<String> = vec![
                    r.digest(),
                    r.size().to_string(),
                    r.modified().rfc3339(),
                    r.created().map(|c| c.rfc3339()).unwrap_or_default(),
                    r.kind().as_str().to_string(),
                    if r.referenced { "true" } else { "false" }.to_string(),
                    r.repository_names().collect::<Vec<_>>().join(";"),
                    r.tag_names().collect::<Vec<_>>().join(";"),
                    r.path(),
                ];
                if last_pulled.is_some() {
                    row.push(lp(id).map(|t| t.rfc3339()).unwrap_or_default());
                }
                w.write_record(&row)?;
            }
            w.flush()?;
        }
        Format::Table => {
            use std::io::Write;
            let mut cols = vec![
                ("DIGEST", Align::Left),
                ("SIZE", Align::Right),
                ("MODIFIED", Align::Left),
                ("KIND", Align::Left),
                ("REFERENCED", Align::Left),
                ("REPOSITORIES", Align::Left),
                ("TAGS", Align::Left),
            ];
            if last_pulled.is_some() {
                cols.push(("LAST PULLED", Align::Left));
            }
            let mut t = Table::new(&cols);
            for id in ids.iter() {
                let r = &b.record(id, referenced[id as usize]);
                let mut row = vec![
                    short(&r.digest()),
                    human_bytes(r.size()),
                    r.modified().human(&s.tz),
                    r.kind().as_str().into(),
                    if r.referenced {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    abbreviate_first(
                        &r.repository_names()
                            .take(2)
                            .map(str::to_owned)
                            .collect::<Vec<_>>(),
                        r.repositories.len(),
                    ),
                    abbreviate_first(&r.tag_names().take(2).collect::<Vec<_>>(), r.tags.len()),
                ];
                if last_pulled.is_some() {
                    row.push(lp(id).map(|t| t.human(&s.tz)).unwrap_or_else(|| "-".into()));
                }
                t.row(row);
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
            write_summary(&mut out, &summary, ids.len())?;
        }
    }
    use std::io::Write;
    out.flush()?;
    Ok(findings_exit(loaded.finding_counts()))
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

/// The blobs an inventory lists, in output order.
enum Ids {
    /// Every blob, in table (digest) order.
    All(u32),
    List(Vec<u32>),
}

impl Ids {
    fn len(&self) -> usize {
        match self {
            Ids::All(n) => *n as usize,
            Ids::List(v) => v.len(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Ids::All(n) => Box::new(0..*n),
            Ids::List(v) => Box::new(v.iter().copied()),
        }
    }
}
