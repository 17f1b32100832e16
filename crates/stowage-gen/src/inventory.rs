//! Inventory mode (`stowage-gen --inventory`): the same registry, written as the provider's
//! inventory report of its bucket instead of as a tree, so that scale runs (10 and 100
//! million objects) need no disk for blobs.
//!
//! Written under `<out>`:
//! - `inventory/manifest.json` and `inventory/data/objects-<n>.csv.gz`: an S3 Inventory
//!   (headerless CSV, gzip, URL-encoded keys; `fileSchema` `Bucket, Key, Size,
//!   LastModifiedDate, ETag`; or `objects-<n>.parquet` with S3's Parquet columns, [`Format`]) of bucket `generated`, one row per object the tree would hold,
//!   keys `docker/registry/v2/...` (the rootdirectory is the bucket's root), dated as the
//!   tree's files; a data file per ten million rows;
//! - `inventory/reads.pack` ([`PACK`]): only the files a scan reads (manifests, indexes, tag
//!   `current` links, upload `startedat` files) in one file (`stowage_storage::pack`), so
//!   that `stowage --storage <out>/inventory/reads.pack --from-inventory
//!   <out>/inventory/manifest.json` scans it: listed from the report, read from the pack. No
//!   tree at all: a directory and a file per manifest cost about 1.7 KB of disk per blob,
//!   the pack holds the bytes only.
//!
//! ETags are content-derived (the first 16 bytes of the content's SHA-256, hex), as S3's MD5
//! ETags are: equal content, equal ETag.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use stowage_layout as layout;
use stowage_model::digest::{Digest, Sha256};

use stowage_storage::pack::PackWriter;

use crate::content::{hex, sha256};
use crate::plan::{BlobSpec, Plan};
use crate::sim::Final;
use crate::write::{LAYOUT, Materialized, blob_bytes};

/// The pack of the files a scan reads, in `<out>`.
pub const PACK: &str = "inventory/reads.pack";
/// The report's bucket.
pub const BUCKET: &str = "generated";
/// Rows per data file.
const ROWS_PER_FILE: u64 = 10_000_000;

/// The data files' format (S3 Inventory's `fileFormat`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Headerless CSV, gzip'd, keys URL-encoded (`objects-<n>.csv.gz`).
    #[default]
    Csv,
    /// Parquet with S3's column names (`bucket`, `key`, `size`, `last_modified_date`,
    /// `e_tag`), keys as they are (`objects-<n>.parquet`), written by `stowage-parquet`.
    Parquet,
}

/// One open data file.
enum DataFile {
    Csv(flate2::write::GzEncoder<BufWriter<fs::File>>),
    Parquet(Box<stowage_parquet::TableWriter<BufWriter<fs::File>>>),
}

/// The S3 Inventory Parquet columns written (names as S3 writes them).
fn parquet_columns() -> Vec<stowage_parquet::Column> {
    use stowage_parquet::{Column, Kind};
    vec![
        Column::new("bucket", Kind::Str),
        Column::new("key", Kind::Str),
        Column::new("size", Kind::Int),
        Column::new("last_modified_date", Kind::Time),
        Column::new("e_tag", Kind::Str),
    ]
}

/// Streams rows into the report's data files, a new one every [`ROWS_PER_FILE`] rows.
pub(crate) struct Rows<'a> {
    out: &'a Path,
    format: Format,
    file: Option<DataFile>,
    files: Vec<(String, u64)>,
    pub(crate) rows: u64,
    in_file: u64,
    pub(crate) bytes: u64,
}

impl Rows<'_> {
    pub(crate) fn new(out: &Path, format: Format) -> Rows<'_> {
        Rows {
            out,
            format,
            file: None,
            files: Vec::new(),
            rows: 0,
            in_file: 0,
            bytes: 0,
        }
    }

    fn open(&mut self) -> Result<()> {
        self.close()?;
        let ext = match self.format {
            Format::Csv => "csv.gz",
            Format::Parquet => "parquet",
        };
        let name = format!("inventory/data/objects-{}.{ext}", self.files.len());
        let p = self.out.join(&name);
        let f = fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
        let w = BufWriter::with_capacity(1 << 20, f);
        self.file = Some(match self.format {
            Format::Csv => DataFile::Csv(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::fast(),
            )),
            Format::Parquet => DataFile::Parquet(Box::new(
                stowage_parquet::TableWriter::new(w, "s3.inventory", &parquet_columns())
                    .with_context(|| format!("starting {}", p.display()))?,
            )),
        });
        self.files.push((name, 0));
        self.in_file = 0;
        Ok(())
    }

    pub(crate) fn row(&mut self, key: &str, size: u64, t: i64, etag: &str) -> Result<()> {
        if self.file.is_none() || self.in_file >= ROWS_PER_FILE {
            self.open()?;
        }
        let date = crate::time::rfc3339(t).replace('Z', ".000Z");
        match self.file.as_mut().context("no data file")? {
            // Keys here are the registry's own: lowercase names, digits, `._-/:` (tags may
            // hold `.`, `_`, `-`): nothing that URL encoding changes but `:`, which S3
            // encodes in CSV (and leaves as it is in Parquet).
            DataFile::Csv(w) => writeln!(
                w,
                "\"{BUCKET}\",\"{}\",\"{size}\",\"{date}\",\"{etag}\"",
                key.replace(':', "%3A"),
            )?,
            DataFile::Parquet(w) => w
                .push(&serde_json::json!({
                    "bucket": BUCKET, "key": key, "size": size,
                    "last_modified_date": date, "e_tag": etag,
                }))
                .context("writing a Parquet row")?,
        }
        self.rows += 1;
        self.in_file += 1;
        self.bytes += size;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some(f) = self.file.take() {
            match f {
                DataFile::Csv(f) => f.finish()?.flush()?,
                DataFile::Parquet(w) => w.finish().context("finishing a Parquet file")?.flush()?,
            }
            if let Some(last) = self.files.last_mut() {
                last.1 = self.in_file;
            }
        }
        Ok(())
    }

    /// Close the last data file and write `inventory/manifest.json` dated `now`.
    pub(crate) fn finish(&mut self, now: i64) -> Result<()> {
        self.close()?;
        let files: Vec<String> = self
            .files
            .iter()
            .map(|(name, n)| {
                format!("    {{\"key\": \"{name}\", \"size\": {n}, \"MD5checksum\": \"0\"}}")
            })
            .collect();
        let (format, schema) = match self.format {
            Format::Csv => ("CSV", "Bucket, Key, Size, LastModifiedDate, ETag".to_owned()),
            // S3 writes a Parquet report's fileSchema as the files' message type.
            Format::Parquet => (
                "Parquet",
                "message s3.inventory { required binary bucket (STRING); required binary key (STRING); optional int64 size; optional int64 last_modified_date (TIMESTAMP(MICROS,true)); optional binary e_tag (STRING);}".to_owned(),
            ),
        };
        let manifest = format!(
            "{{\n  \"sourceBucket\": \"{BUCKET}\",\n  \"destinationBucket\": \"arn:aws:s3:::{BUCKET}-inventory\",\n  \"version\": \"2016-11-30\",\n  \"creationTimestamp\": \"{}\",\n  \"fileFormat\": \"{format}\",\n  \"fileSchema\": \"{schema}\",\n  \"files\": [\n{}\n  ]\n}}\n",
            now * 1000,
            files.join(",\n")
        );
        let p = self.out.join("inventory/manifest.json");
        fs::write(&p, manifest).with_context(|| format!("writing {}", p.display()))
    }
}

fn etag(content: &[u8]) -> String {
    hex(&sha256(content))[..32].to_owned()
}

fn link_etag(d: &[u8; 32]) -> String {
    etag(format!("sha256:{}", hex(d)).as_bytes())
}

/// The pack's key for a key of the report (relative to the layout root).
fn pack_key(key: &str) -> &str {
    key.strip_prefix(LAYOUT)
        .map_or(key, |k| k.trim_start_matches('/'))
}

/// A report being written: its data files and the pack, shard after shard.
pub struct Report<'a> {
    rows: Rows<'a>,
    pack: PackWriter,
    pack_path: std::path::PathBuf,
}

impl<'a> Report<'a> {
    pub fn create(out: &'a Path, format: Format) -> Result<Report<'a>> {
        fs::create_dir_all(out.join("inventory/data"))
            .with_context(|| format!("creating {}/inventory/data", out.display()))?;
        let pack_path = out.join(PACK);
        let pack = PackWriter::create(&pack_path)
            .with_context(|| format!("creating {}", pack_path.display()))?;
        Ok(Report {
            rows: Rows::new(out, format),
            pack,
            pack_path,
        })
    }

    /// Rows and bytes so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.rows.rows, self.rows.bytes)
    }

    /// Write the manifest and the pack's index: the report is complete.
    pub fn finish(mut self, now: i64) -> Result<(u64, u64)> {
        self.rows.finish(now)?;
        let counts = self.counts();
        self.pack
            .finish()
            .with_context(|| format!("writing {}", self.pack_path.display()))?;
        Ok(counts)
    }

    /// Add the objects of one generated registry (or shard).
    pub fn add(&mut self, plan: &Plan, fin: &Final, m: &Materialized) -> Result<()> {
        add(
            &mut self.rows,
            &mut self.pack,
            &self.pack_path,
            plan,
            fin,
            m,
        )
    }
}

/// Write the report and the pack of what a scan reads; returns (objects, bytes) listed.
pub fn write(
    out: &Path,
    plan: &Plan,
    fin: &Final,
    m: &Materialized,
    now: i64,
    format: Format,
) -> Result<(u64, u64)> {
    let mut r = Report::create(out, format)?;
    r.add(plan, fin, m)?;
    r.finish(now)
}

fn add(
    rows: &mut Rows<'_>,
    pack: &mut PackWriter,
    pack_path: &Path,
    plan: &Plan,
    fin: &Final,
    m: &Materialized,
) -> Result<()> {
    let mut sparse = |key: &str, bytes: &[u8], t: i64| {
        pack.add(pack_key(key), bytes, t)
            .with_context(|| format!("writing {}", pack_path.display()))
    };
    for (b, st) in fin.blobs.iter().enumerate() {
        if !st.present {
            continue;
        }
        let d = &m.digest[b];
        let key = format!("{LAYOUT}/{}", layout::blob_data(&Sha256(*d)));
        if matches!(plan.blobs[b], BlobSpec::Manifest(_) | BlobSpec::Index(_)) {
            sparse(&key, &blob_bytes(plan, m, b as u32), st.written)?;
        }
        rows.row(&key, m.size[b], st.written, &hex(d)[..32])?;
    }
    for (r, spec) in plan.repos.iter().enumerate() {
        let st = &fin.repos[r];
        if st.created.is_none() || st.deleted.is_some() {
            continue;
        }
        let name = &spec.name;
        let dg = |b: u32| Digest::Sha256(Sha256(m.digest[b as usize]));
        let link = |dir: String| format!("{LAYOUT}/{}/link", dir.trim_end_matches("/link"));
        for (&b, s) in &st.layer_links {
            let key = format!("{LAYOUT}/{}", layout::layer_link(name, &dg(b)));
            rows.row(&key, 71, s.modified, &link_etag(&m.digest[b as usize]))?;
        }
        for (&b, rev) in &st.revisions {
            if rev.deleted.is_none() {
                let key = link(layout::revision_dir(name, &dg(b)));
                rows.row(
                    &key,
                    71,
                    rev.stamp.modified,
                    &link_etag(&m.digest[b as usize]),
                )?;
            }
        }
        for tag in st.tags.iter().filter(|t| t.alive) {
            let d = &m.digest[tag.current as usize];
            let key = format!("{LAYOUT}/{}/current/link", layout::tag_dir(name, &tag.name));
            sparse(
                &key,
                format!("sha256:{}", hex(d)).as_bytes(),
                tag.current_modified,
            )?;
            rows.row(&key, 71, tag.current_modified, &link_etag(d))?;
            for (&b, s) in &tag.index {
                let key = link(layout::tag_index_dir(name, &tag.name, &dg(b)));
                rows.row(&key, 71, s.modified, &link_etag(&m.digest[b as usize]))?;
            }
        }
        for &u in &st.uploads {
            let up = &plan.uploads[u as usize];
            let dir = format!("{LAYOUT}/{}", layout::upload_dir(name, &up.uuid));
            let started = crate::time::rfc3339(up.started);
            let key = format!("{dir}/startedat");
            sparse(&key, started.as_bytes(), up.started)?;
            rows.row(
                &key,
                started.len() as u64,
                up.started,
                &etag(started.as_bytes()),
            )?;
            let total: u64 = up.chunks.iter().map(|c| c.0).sum();
            let last = up.chunks.last().map_or(up.started, |c| c.1);
            let data = crate::content::upload_data(up.seed, total);
            rows.row(&format!("{dir}/data"), total, last, &etag(&data))?;
            // The resumable-upload hash states, as the tree holds them.
            let hs = format!("{dir}/hashstates/sha256");
            let state = crate::content::go_sha256_state(&[]);
            rows.row(
                &format!("{hs}/0"),
                state.len() as u64,
                up.started,
                &etag(&state),
            )?;
            let mut off = 0u64;
            for &(len, t) in &up.chunks {
                off += len;
                let state = crate::content::go_sha256_state(&data[..off as usize]);
                rows.row(&format!("{hs}/{off}"), state.len() as u64, t, &etag(&state))?;
            }
        }
    }
    Ok(())
}
