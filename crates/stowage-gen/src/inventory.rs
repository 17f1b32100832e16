//! Inventory mode (`stowage-gen --inventory`): the same registry, written as the provider's
//! inventory report of its bucket instead of as a tree, so that scale runs (10 and 100
//! million objects) need no disk for blobs.
//!
//! Written under `<out>`:
//! - `inventory/manifest.json` and `inventory/data/objects-<n>.csv.gz`: an S3 Inventory
//!   (headerless CSV, gzip, URL-encoded keys; `fileSchema` `Bucket, Key, Size,
//!   LastModifiedDate, ETag`) of bucket `generated`, one row per object the tree would hold,
//!   keys `docker/registry/v2/...` (the rootdirectory is the bucket's root), dated as the
//!   tree's files; a data file per ten million rows;
//! - `docker/registry/v2/...`: only the files a scan reads (manifests, indexes, tag
//!   `current` links, upload `startedat` files), so that `stowage --storage <out>
//!   --from-inventory <out>/inventory/manifest.json` scans it: listed from the report, read
//!   from the sparse tree.
//!
//! ETags are content-derived (the first 16 bytes of the content's SHA-256, hex), as S3's MD5
//! ETags are: equal content, equal ETag.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use stowage_layout as layout;
use stowage_model::digest::{Digest, Sha256};

use crate::content::{hex, sha256};
use crate::plan::{BlobSpec, Plan};
use crate::sim::Final;
use crate::write::{LAYOUT, Materialized, blob_bytes};

/// The report's bucket.
pub const BUCKET: &str = "generated";
/// Rows per data file.
const ROWS_PER_FILE: u64 = 10_000_000;

/// Streams rows into gzip'd CSV data files.
struct Rows<'a> {
    out: &'a Path,
    file: Option<flate2::write::GzEncoder<BufWriter<fs::File>>>,
    files: Vec<(String, u64)>,
    rows: u64,
    in_file: u64,
    bytes: u64,
}

impl Rows<'_> {
    fn row(&mut self, key: &str, size: u64, t: i64, etag: &str) -> Result<()> {
        if self.file.is_none() || self.in_file >= ROWS_PER_FILE {
            self.close()?;
            let name = format!("inventory/data/objects-{}.csv.gz", self.files.len());
            let p = self.out.join(&name);
            let f = fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
            self.file = Some(flate2::write::GzEncoder::new(
                BufWriter::with_capacity(1 << 20, f),
                flate2::Compression::fast(),
            ));
            self.files.push((name, 0));
            self.in_file = 0;
        }
        let w = self.file.as_mut().context("no data file")?;
        // Keys here are the registry's own: lowercase names, digits, `._-/:` (tags may hold
        // `.`, `_`, `-`): nothing that URL encoding changes but `:`, which S3 encodes.
        writeln!(
            w,
            "\"{BUCKET}\",\"{}\",\"{size}\",\"{}\",\"{etag}\"",
            key.replace(':', "%3A"),
            crate::time::rfc3339(t).replace('Z', ".000Z")
        )?;
        self.rows += 1;
        self.in_file += 1;
        self.bytes += size;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.finish()?.flush()?;
            if let Some(last) = self.files.last_mut() {
                last.1 = self.in_file;
            }
        }
        Ok(())
    }
}

fn etag(content: &[u8]) -> String {
    hex(&sha256(content))[..32].to_owned()
}

fn link_etag(d: &[u8; 32]) -> String {
    etag(format!("sha256:{}", hex(d)).as_bytes())
}

/// Write a file of the sparse tree (creating its directory).
fn sparse(out: &Path, key: &str, bytes: &[u8], t: i64) -> Result<()> {
    let p = out.join(key);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    crate::write::write_file(&p, bytes, t).with_context(|| format!("writing {}", p.display()))
}

/// Write the report and the sparse tree; returns (objects, bytes) listed.
pub fn write(
    out: &Path,
    plan: &Plan,
    fin: &Final,
    m: &Materialized,
    now: i64,
) -> Result<(u64, u64)> {
    fs::create_dir_all(out.join("inventory/data"))
        .with_context(|| format!("creating {}/inventory/data", out.display()))?;
    let mut rows = Rows {
        out,
        file: None,
        files: Vec::new(),
        rows: 0,
        in_file: 0,
        bytes: 0,
    };
    for (b, st) in fin.blobs.iter().enumerate() {
        if !st.present {
            continue;
        }
        let d = &m.digest[b];
        let key = format!("{LAYOUT}/{}", layout::blob_data(&Sha256(*d)));
        if matches!(plan.blobs[b], BlobSpec::Manifest(_) | BlobSpec::Index(_)) {
            sparse(out, &key, &blob_bytes(plan, m, b as u32), st.written)?;
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
                out,
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
            sparse(out, &key, started.as_bytes(), up.started)?;
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
    rows.close()?;
    let files: Vec<String> = rows
        .files
        .iter()
        .map(|(name, n)| {
            format!("    {{\"key\": \"{name}\", \"size\": {n}, \"MD5checksum\": \"0\"}}")
        })
        .collect();
    let manifest = format!(
        "{{\n  \"sourceBucket\": \"{BUCKET}\",\n  \"destinationBucket\": \"arn:aws:s3:::{BUCKET}-inventory\",\n  \"version\": \"2016-11-30\",\n  \"creationTimestamp\": \"{}\",\n  \"fileFormat\": \"CSV\",\n  \"fileSchema\": \"Bucket, Key, Size, LastModifiedDate, ETag\",\n  \"files\": [\n{}\n  ]\n}}\n",
        now * 1000,
        files.join(",\n")
    );
    let p = out.join("inventory/manifest.json");
    fs::write(&p, manifest).with_context(|| format!("writing {}", p.display()))?;
    Ok((rows.rows, rows.bytes))
}
