//! `stowage inventory`: one record per blob (and optionally per link and upload file).

mod parquet;

use std::io::Write;

use anyhow::Result;
use globset::{GlobSet, GlobSetBuilder};
use stowage_graph::{BlobKind, Graph, Summary};
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

/// Everything one inventory output needs: the scan, its graph, the selection and extras.
pub(super) struct View<'a, 'g> {
    pub(super) s: &'a Settings,
    pub(super) loaded: &'a crate::pipeline::Loaded,
    pub(super) g: &'g Graph<'a>,
    pub(super) referenced: &'a [bool],
    pub(super) summary: Summary,
    pub(super) ids: Ids,
    pub(super) links: Option<Vec<LinkRecord>>,
    pub(super) uploads: Option<Vec<UploadRecord>>,
    /// With --db: when each blob was last pulled (null: not since the data began).
    pub(super) last_pulled: Option<Vec<Option<Timestamp>>>,
}

/// With --db, each record gains `last_pulled`.
#[derive(serde::Serialize)]
struct WithPull<'r, R: serde::Serialize> {
    #[serde(flatten)]
    record: &'r R,
    last_pulled: Option<Timestamp>,
}

pub fn run(s: &Settings, a: &InventoryArgs) -> Result<i32> {
    let loaded = load(s, false, GraphFindings::Count)?;
    let inv = loaded.inv();
    let g = loaded.graph();
    let referenced = loaded.referenced();
    let summary = loaded.summary(s.now, 7 * 86400);
    let repo_glob = globset(&a.repo)?;
    let ids = select(s, a, &g, referenced, repo_glob.as_ref())?;
    let repo_ok = |name: &str| repo_glob.as_ref().is_none_or(|gs| gs.is_match(name));
    let links = a.links.then(|| {
        inv.repositories
            .iter()
            .filter(|r| repo_ok(r.name.as_str()))
            .flat_map(|r| link_records(&g, r))
            .collect()
    });
    let uploads = a.uploads.then(|| {
        inv.repositories
            .iter()
            .filter(|r| repo_ok(r.name.as_str()))
            .flat_map(|r| upload_records(r, s.now))
            .collect()
    });
    let last_pulled = match &a.db {
        Some(db) => {
            let h = stowage_history::Db::open_existing(db)?;
            Some(stowage_usage::view::blob_last_pulled(
                &g,
                &h.pull_summary()?,
            ))
        }
        None => None,
    };
    let v = View {
        s,
        loaded: &loaded,
        g: &g,
        referenced,
        summary,
        ids,
        links,
        uploads,
        last_pulled,
    };
    let parquet_file = crate::output::parquet_target(s.format, a.output.as_deref())?;
    match &a.output {
        Some(path) if parquet_file.is_some() => parquet::write(&v, path)?,
        Some(path) => crate::output::write_file(path, |w| {
            v.write(w)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
        })?,
        None => {
            let mut out = output::stdout();
            v.write(&mut out)?;
            out.flush()?;
        }
    }
    Ok(findings_exit(loaded.finding_counts()))
}

/// The blob ids to list, in output order. Selected and ordered first (cheap); records are
/// built only while writing: memory stays proportional to the number of blobs, not to the
/// output (a base layer's record lists every tag that uses it). With no filter and the
/// default order, the selection is every blob in table order and no list is kept.
fn select(
    s: &Settings,
    a: &InventoryArgs,
    g: &Graph<'_>,
    referenced: &[bool],
    repo_glob: Option<&GlobSet>,
) -> Result<Ids> {
    let inv = g.inv;
    let older = a.older_than.as_deref().map(parse_age).transpose()?;
    let newer = a.newer_than.as_deref().map(parse_age).transpose()?;
    let min_size = a.min_size.as_deref().map(parse_size).transpose()?;
    let selects = a.unreferenced
        || a.referenced
        || min_size.is_some()
        || older.is_some()
        || newer.is_some()
        || !a.kind.is_empty()
        || repo_glob.is_some();
    if !selects && a.sort == BlobSort::Digest && !a.reverse && a.limit.is_none() {
        return Ok(Ids::All(inv.blobs.len() as u32));
    }
    let mut b = BlobRecordBuilder::new(g);
    let mut ids: Vec<u32> = Vec::new();
    for (i, blob) in inv.blobs.iter().enumerate() {
        let id = i as u32;
        let refd = referenced[i];
        let age = blob.modified().seconds_until(s.now);
        if (a.unreferenced && refd)
            || (a.referenced && !refd)
            || min_size.is_some_and(|m| blob.size < m)
            || older.is_some_and(|o| age < o)
            || newer.is_some_and(|n| age >= n)
            || !kind_matches(g.blob_kind(id), &a.kind)
        {
            continue;
        }
        if let Some(gs) = repo_glob {
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
    Ok(Ids::List(ids))
}

impl View<'_, '_> {
    fn lp(&self, id: u32) -> Option<Timestamp> {
        self.last_pulled.as_ref().and_then(|v| v[id as usize])
    }

    /// One blob record as JSON (with `last_pulled` under --db).
    pub(super) fn record_json(
        &self,
        b: &mut BlobRecordBuilder<'_, '_>,
        id: u32,
        out: &mut dyn Write,
    ) -> Result<()> {
        let r = b.record(id, self.referenced[id as usize]);
        if self.last_pulled.is_some() {
            serde_json::to_writer(
                out,
                &WithPull {
                    record: &r,
                    last_pulled: self.lp(id),
                },
            )?;
        } else {
            serde_json::to_writer(out, &r)?;
        }
        Ok(())
    }

    fn write(&self, out: &mut dyn Write) -> Result<()> {
        match self.s.format {
            // Parquet went to its file (parquet.rs).
            Format::Json | Format::Parquet => self.write_json(out),
            Format::Ndjson => self.write_ndjson(out),
            Format::Csv => self.write_csv(out),
            Format::Table => self.write_table(out),
        }
    }

    /// Written piece by piece so records never all sit in memory; still one JSON document,
    /// one blob record per line.
    fn write_json(&self, out: &mut dyn Write) -> Result<()> {
        let inv = self.loaded.inv();
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
            serde_json::to_string(&self.s.now)?
        )?;
        writeln!(
            out,
            "  \"summary\": {},",
            serde_json::to_string(&self.summary)?
        )?;
        // GitLab's metadata database: every figure below is from the filesystem's links only.
        if let Some(e) = self.loaded.metadata_database() {
            writeln!(
                out,
                "  \"metadata_database\": {},",
                serde_json::to_string(&e.label())?
            )?;
        }
        writeln!(
            out,
            "  \"findings\": {},",
            self.loaded.finding_counts().total()
        )?;
        out.write_all(b"  \"blobs\": [")?;
        let mut b = BlobRecordBuilder::new(self.g);
        for (n, id) in self.ids.iter().enumerate() {
            out.write_all(if n == 0 { b"\n    " } else { b",\n    " })?;
            self.record_json(&mut b, id, out)?;
        }
        out.write_all(b"\n  ]")?;
        if let Some(l) = &self.links {
            write!(out, ",\n  \"links\": {}", serde_json::to_string(l)?)?;
        }
        if let Some(u) = &self.uploads {
            write!(out, ",\n  \"uploads\": {}", serde_json::to_string(u)?)?;
        }
        out.write_all(b"\n}\n")?;
        Ok(())
    }

    fn write_ndjson(&self, out: &mut dyn Write) -> Result<()> {
        let mut b = BlobRecordBuilder::new(self.g);
        for id in self.ids.iter() {
            self.record_json(&mut b, id, out)?;
            out.write_all(b"\n")?;
        }
        for l in self.links.iter().flatten() {
            serde_json::to_writer(&mut *out, l)?;
            out.write_all(b"\n")?;
        }
        for u in self.uploads.iter().flatten() {
            serde_json::to_writer(&mut *out, u)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write_csv(&self, out: &mut dyn Write) -> Result<()> {
        let mut w = csv::Writer::from_writer(out);
        // The report's per-blob CSV has the same columns (one list).
        let mut head = stowage_report::overview::BLOB_CSV_HEADER.to_vec();
        if self.last_pulled.is_some() {
            head.push("last_pulled");
        }
        // With --links or --uploads, one table of every record: a `record` column says which
        // (blob, link, upload), as in the JSON (the CSV dropped them silently, issue 19).
        let extras = self.links.is_some() || self.uploads.is_some();
        if extras {
            head.insert(0, "record");
        }
        let width = head.len();
        w.write_record(&head)?;
        let mut b = BlobRecordBuilder::new(self.g);
        for id in self.ids.iter() {
            let r = &b.record(id, self.referenced[id as usize]);
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
            if self.last_pulled.is_some() {
                row.push(self.lp(id).map(|t| t.rfc3339()).unwrap_or_default());
            }
            if extras {
                row.insert(0, "blob".into());
            }
            w.write_record(&row)?;
        }
        // digest, size, modified, created, kind, referenced, repositories, tags, path.
        let mut other = |cells: [String; 10]| {
            let mut row: Vec<String> = cells.into();
            row.resize(width, String::new());
            w.write_record(&row)
        };
        for l in self.links.iter().flatten() {
            other([
                "link".into(),
                l.digest.clone(),
                String::new(),
                l.modified.rfc3339(),
                String::new(),
                l.kind.into(),
                l.target_exists.to_string(),
                l.repository.clone(),
                l.tag.clone().unwrap_or_default(),
                l.path.clone(),
            ])?;
        }
        for u in self.uploads.iter().flatten() {
            other([
                "upload".into(),
                String::new(),
                u.total_size.to_string(),
                u.modified.rfc3339(),
                u.started_at.map(|t| t.rfc3339()).unwrap_or_default(),
                "upload".into(),
                String::new(),
                u.repository.clone(),
                String::new(),
                u.path.clone(),
            ])?;
        }
        w.flush()?;
        Ok(())
    }

    fn write_table(&self, out: &mut dyn Write) -> Result<()> {
        let tz = &self.s.tz;
        let mut cols = vec![
            ("DIGEST", Align::Left),
            ("SIZE", Align::Right),
            ("MODIFIED", Align::Left),
            ("KIND", Align::Left),
            ("REFERENCED", Align::Left),
            ("REPOSITORIES", Align::Left),
            ("TAGS", Align::Left),
        ];
        if self.last_pulled.is_some() {
            cols.push(("LAST PULLED", Align::Left));
        }
        let mut t = Table::new(&cols);
        let mut b = BlobRecordBuilder::new(self.g);
        for id in self.ids.iter() {
            let r = &b.record(id, self.referenced[id as usize]);
            let repos: Vec<String> = r.repository_names().take(2).map(str::to_owned).collect();
            let mut row = vec![
                short(&r.digest()),
                human_bytes(r.size()),
                r.modified().human(tz),
                r.kind().as_str().into(),
                if r.referenced { "yes" } else { "no" }.into(),
                abbreviate_first(&repos, r.repositories.len()),
                abbreviate_first(&r.tag_names().take(2).collect::<Vec<_>>(), r.tags.len()),
            ];
            if self.last_pulled.is_some() {
                row.push(
                    self.lp(id)
                        .map(|t| t.human(tz))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            t.row(row);
        }
        out.write_all(t.render().as_bytes())?;
        if let Some(links) = &self.links {
            writeln!(out)?;
            out.write_all(links_table(links, tz).render().as_bytes())?;
        }
        if let Some(ups) = &self.uploads {
            writeln!(out)?;
            out.write_all(uploads_table(ups, tz).render().as_bytes())?;
        }
        writeln!(out)?;
        write_summary(out, &self.summary, self.ids.len())
    }
}

fn links_table(links: &[LinkRecord], tz: &jiff::tz::TimeZone) -> Table {
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
            l.modified.human(tz),
            if l.target_exists { "exists" } else { "MISSING" }.into(),
        ]);
    }
    t
}

fn uploads_table(ups: &[UploadRecord], tz: &jiff::tz::TimeZone) -> Table {
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
                .map(|t| t.human(tz))
                .unwrap_or_else(|| "unknown".into()),
            human_bytes(u.total_size),
        ]);
    }
    t
}

pub fn short(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_string(),
    }
}

pub fn write_summary(
    out: &mut (impl std::io::Write + ?Sized),
    s: &Summary,
    shown: usize,
) -> Result<()> {
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
pub(super) enum Ids {
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

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            Ids::All(n) => Box::new(0..*n),
            Ids::List(v) => Box::new(v.iter().copied()),
        }
    }
}
