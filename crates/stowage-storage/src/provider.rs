//! Provider inventory reports: S3 Inventory, GCS Storage Insights inventory reports and Azure
//! Blob Inventory, read into a [`Listing`].
//!
//! Each provider writes a manifest (JSON) naming its data files, and data files of one row
//! per object: CSV, optionally gzip-compressed, or Parquet (with the `parquet` feature:
//! `provider/parquet.rs`; refused by name without it). What is used of a row: the object's name, size, last-modified date and ETag (the
//! scan cache reuses an unchanged tag link by it). Formats, as documented by each provider:
//!
//! - **S3** (`manifest.json`): `sourceBucket`, `creationTimestamp` (ms, when the listing
//!   began), `fileFormat` (`CSV`), `fileSchema` (the columns of the headerless CSV, e.g.
//!   `Bucket, Key, Size, LastModifiedDate, ETag`), `files[].key` (keys in the destination
//!   bucket). Keys in the CSV are URL-encoded. Rows of versioned buckets with
//!   `IsLatest=false` or `IsDeleteMarker=true` are not current objects and are skipped.
//! - **GCS** (`*.manifest`): `snapshot_time`, `report_shards_file_names` (beside the
//!   manifest); the CSV has a header (`bucket`, `name`, `size`, `updated`, `etag`, ...).
//! - **Azure** (`*-manifest.json`): `inventoryStartTime`, `destinationContainer`,
//!   `files[].blob` (paths in the destination container); the CSV has a header (`Name`,
//!   `Content-Length`, `Last-Modified`, `Etag`, ...), names prefixed by their container.
//!
//! The report's date is when the provider began listing (S3 `creationTimestamp`, GCS
//! `snapshot_time`, Azure `inventoryStartTime`): the earliest moment the rows can describe.

use std::io::Read;

use stowage_model::Timestamp;

use crate::listing::Listing;

#[cfg(feature = "parquet")]
mod parquet;

/// Which provider wrote a report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    S3,
    Gcs,
    Azure,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::S3 => "S3 Inventory",
            Provider::Gcs => "GCS inventory report",
            Provider::Azure => "Azure Blob Inventory",
        }
    }
}

/// A report's manifest.
#[derive(Clone, Debug)]
pub struct Report {
    pub provider: Provider,
    /// When the provider began listing.
    pub date: Timestamp,
    /// Data files as the manifest names them: S3, keys in the destination bucket; GCS,
    /// names beside the manifest; Azure, paths in the destination container.
    pub files: Vec<String>,
    /// The bucket or container the report lists, when the manifest says.
    pub source: Option<String>,
    /// S3: the columns of its headerless CSV.
    columns: Option<Vec<String>>,
}

/// A report that cannot be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    #[error("{file}: not an inventory manifest of S3, GCS or Azure: {why}")]
    Manifest { file: String, why: String },
    #[error("{file}: {why}")]
    Data { file: String, why: String },
}

fn manifest_err(file: &str, why: impl Into<String>) -> ProviderError {
    ProviderError::Manifest {
        file: file.to_owned(),
        why: why.into(),
    }
}

/// The data formats this build reads, for the refusals.
const READABLE: &str = if cfg!(feature = "parquet") {
    "CSV (optionally gzip) and Parquet are read; configure the report as one of them"
} else {
    "only CSV (optionally gzip) is read by this build (Parquet needs the `parquet` feature); configure the report as CSV"
};

/// Parse a manifest (`file` names it in errors).
pub fn parse_manifest(file: &str, bytes: &[u8]) -> Result<Report, ProviderError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| manifest_err(file, format!("not JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    // Returns whether the data files are Parquet (they name their own columns).
    let format_ok = |f: Option<&str>| -> Result<bool, ProviderError> {
        match f.map(str::to_ascii_lowercase).as_deref() {
            None | Some("csv") => Ok(false),
            Some("parquet") if cfg!(feature = "parquet") => Ok(true),
            Some(other) => Err(manifest_err(
                file,
                format!("data files in {other}: {READABLE}"),
            )),
        }
    };
    let strings = |arr: Option<&serde_json::Value>, field: Option<&str>| -> Vec<String> {
        arr.and_then(|a| a.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| match field {
                Some(k) => f.get(k).and_then(|x| x.as_str()).map(str::to_owned),
                None => f.as_str().map(str::to_owned),
            })
            .collect()
    };
    let time = |k: &str| -> Result<Timestamp, ProviderError> {
        s(k).and_then(Timestamp::parse_rfc3339)
            .ok_or_else(|| manifest_err(file, format!("{k} is missing or not an RFC 3339 time")))
    };
    let report = if v.get("fileSchema").is_some() || v.get("sourceBucket").is_some() {
        let parquet = format_ok(s("fileFormat"))?;
        let ms: i64 = s("creationTimestamp")
            .and_then(|t| t.parse().ok())
            .or_else(|| v.get("creationTimestamp").and_then(|t| t.as_i64()))
            .ok_or_else(|| manifest_err(file, "creationTimestamp is missing"))?;
        let columns: Vec<String> = s("fileSchema")
            .ok_or_else(|| manifest_err(file, "fileSchema is missing"))?
            .split(',')
            .map(|c| c.trim().to_owned())
            .collect();
        Report {
            provider: Provider::S3,
            date: Timestamp(ms.saturating_mul(1_000_000)),
            files: strings(v.get("files"), Some("key")),
            source: s("sourceBucket").map(str::to_owned),
            // A Parquet report's fileSchema is a message type; its files name their columns.
            columns: (!parquet).then_some(columns),
        }
    } else if v.get("report_shards_file_names").is_some() || v.get("snapshot_time").is_some() {
        let cfg = v.get("report_config");
        let fmt = cfg
            .and_then(|c| c.get("parquet_options"))
            .map(|_| "parquet");
        format_ok(fmt)?;
        Report {
            provider: Provider::Gcs,
            date: time("snapshot_time")?,
            files: strings(v.get("report_shards_file_names"), None),
            source: cfg
                .and_then(|c| c.pointer("/source_bucket"))
                .and_then(|b| b.as_str())
                .map(|b| b.rsplit('/').next().unwrap_or(b).to_owned()),
            columns: None,
        }
    } else if v.get("destinationContainer").is_some() || v.get("inventoryStartTime").is_some() {
        format_ok(v.pointer("/ruleDefinition/format").and_then(|f| f.as_str()))?;
        Report {
            provider: Provider::Azure,
            date: time("inventoryStartTime")?,
            files: strings(v.get("files"), Some("blob")),
            source: None,
            columns: None,
        }
    } else {
        return Err(manifest_err(
            file,
            "none of S3's fileSchema, GCS's report_shards_file_names or Azure's destinationContainer",
        ));
    };
    if report.files.is_empty() {
        return Err(manifest_err(file, "it names no data files"));
    }
    Ok(report)
}

/// Which objects of a report belong to the storage: its bucket (or container; empty: any)
/// and the key prefix of its layout root (`rootdirectory/docker/registry/v2`, no slashes
/// around).
#[derive(Clone, Debug)]
pub struct Scope {
    pub bucket: String,
    pub prefix: String,
}

impl Scope {
    /// The scope of a storage, from its description (`Storage::describe`): an object
    /// store's URL (`s3://bucket/rootdirectory/docker/registry/v2`) says its bucket and
    /// prefix; a filesystem (a bucket's copy, or a generated registry's sparse tree, see
    /// `stowage-gen --inventory`) takes the keys below `docker/registry/v2/` of any bucket,
    /// the rootdirectory being the bucket's root.
    pub fn of_storage(described: &str) -> Scope {
        match described.split_once("://") {
            Some((_, rest)) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Scope {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                }
            }
            None => Scope {
                bucket: String::new(),
                prefix: stowage_layout::LAYOUT_ROOT.to_owned(),
            },
        }
    }
}

/// Add the rows of one data file (`name` for errors; gzip is recognised by its magic
/// bytes) that lie below `scope` to `out`, keys made relative to the layout root. Returns
/// the number of rows kept.
pub fn read_data(
    report: &Report,
    name: &str,
    input: &mut dyn Read,
    scope: &Scope,
    out: &mut Listing,
) -> Result<u64, ProviderError> {
    let data_err = |why: String| ProviderError::Data {
        file: name.to_owned(),
        why,
    };
    // Streamed: a data file of ten million rows is hundreds of megabytes.
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    let bytes =
        std::io::BufRead::fill_buf(&mut input).map_err(|e| data_err(format!("reading: {e}")))?;
    if bytes.starts_with(b"PAR1") {
        #[cfg(feature = "parquet")]
        return parquet::read(report, name, &mut input, scope, out);
        #[cfg(not(feature = "parquet"))]
        return Err(data_err(format!("a Parquet data file: {READABLE}")));
    }
    let reader: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(report.columns.is_none())
        .flexible(true)
        .from_reader(reader);
    let columns: Vec<String> = match &report.columns {
        Some(c) => c.clone(),
        None => csv
            .headers()
            .map_err(|e| data_err(format!("reading the CSV header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect(),
    };
    let col = |names: &[&str]| {
        columns
            .iter()
            .position(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
    };
    let need = |names: &[&str]| {
        col(names).ok_or_else(|| data_err(format!("no {} column in {columns:?}", names[0])))
    };
    let (key_c, size_c, date_c) = match report.provider {
        Provider::S3 => (
            need(&["Key"])?,
            need(&["Size"])?,
            need(&["LastModifiedDate"])?,
        ),
        Provider::Gcs => (need(&["name"])?, need(&["size"])?, need(&["updated"])?),
        Provider::Azure => (
            need(&["Name"])?,
            need(&["Content-Length"])?,
            need(&["Last-Modified"])?,
        ),
    };
    let bucket_c = col(&["Bucket"]);
    let etag_c = col(&["ETag", "Etag", "e_tag"]);
    let latest_c = col(&["IsLatest"]);
    let deleted_c = col(&["IsDeleteMarker"]);
    let filter = Filter::new(report.provider, scope);
    let mut kept = 0;
    for (n, row) in csv.records().enumerate() {
        let line = n + 1;
        let row = row.map_err(|e| data_err(format!("row {line}: {e}")))?;
        let field = |c: usize| row.get(c).unwrap_or("");
        let row_err = |why: String| data_err(format!("row {line}: {why}"));
        if latest_c.is_some_and(|c| field(c).eq_ignore_ascii_case("false"))
            || deleted_c.is_some_and(|c| field(c).eq_ignore_ascii_case("true"))
        {
            continue;
        }
        let decoded;
        let key = match report.provider {
            Provider::S3 => {
                decoded = url_decode(field(key_c))
                    .ok_or_else(|| row_err("key is not URL-encoded UTF-8".into()))?;
                decoded.as_str()
            }
            Provider::Gcs | Provider::Azure => field(key_c),
        };
        let Some(rel) = filter.relative(bucket_c.map(field), key) else {
            continue;
        };
        let size: u64 = field(size_c)
            .parse()
            .map_err(|_| row_err(format!("size {:?} is not a number", field(size_c))))?;
        let date = Timestamp::parse_rfc3339(field(date_c)).ok_or_else(|| {
            row_err(format!(
                "last-modified {:?} is not an RFC 3339 time",
                field(date_c)
            ))
        })?;
        let etag = etag_c.map(field).filter(|e| !e.is_empty());
        out.push(rel, size, date, etag)
            .map_err(|e| data_err(format!("writing the sorted listing: {e}")))?;
        kept += 1;
    }
    Ok(kept)
}

/// Which rows of a data file belong to the storage, and their keys below its layout root:
/// the same for every provider and data format.
struct Filter<'a> {
    scope: &'a Scope,
    below: String,
    /// Azure names are prefixed by their container.
    container: Option<String>,
}

impl<'a> Filter<'a> {
    fn new(provider: Provider, scope: &'a Scope) -> Filter<'a> {
        Filter {
            scope,
            below: format!("{}/", scope.prefix),
            container: (provider == Provider::Azure).then(|| format!("{}/", scope.bucket)),
        }
    }

    /// The key relative to the layout root, or `None` for a row of another bucket, outside
    /// the layout root, or a directory marker.
    fn relative<'k>(&self, bucket: Option<&str>, key: &'k str) -> Option<&'k str> {
        if let Some(b) = bucket
            && !self.scope.bucket.is_empty()
            && b != self.scope.bucket
        {
            return None;
        }
        let key = match &self.container {
            Some(c) => key.strip_prefix(c.as_str()).unwrap_or(key),
            None => key,
        };
        let rel = if self.scope.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(&self.below)?
        };
        // A zero-byte "directory marker" names a directory, not an object in it.
        (!rel.is_empty() && !rel.ends_with('/')).then_some(rel)
    }
}

/// Reads one file of a report by location (a local path or an object URL): `Ok(None)` when
/// there is no such file, `Err` with a message otherwise.
pub type Fetch<'a> = dyn Fn(&str) -> Result<Option<Box<dyn Read + Send>>, String> + 'a;

/// Load a whole report from its manifest at `manifest` (a local path or an object URL):
/// the manifest, then each data file, found beside the manifest or below one of its
/// ancestors (a report names its files from the destination's root: S3 keys, Azure blob
/// paths; GCS names them beside the manifest), keeping the rows below `scope`.
pub fn load(manifest: &str, scope: &Scope, fetch: &Fetch<'_>) -> Result<Listing, ProviderError> {
    let mut bytes = Vec::new();
    fetch(manifest)
        .map_err(|why| manifest_err(manifest, why))?
        .ok_or_else(|| manifest_err(manifest, "no such file"))?
        // A manifest is a few kilobytes; a bound keeps a wrong path from filling memory.
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| manifest_err(manifest, e.to_string()))?;
    let report = parse_manifest(manifest, &bytes)?;
    if let Some(src) = &report.source
        && !scope.bucket.is_empty()
        && *src != scope.bucket
    {
        return Err(manifest_err(
            manifest,
            format!(
                "it lists bucket {src:?}, but the storage is in {:?}",
                scope.bucket
            ),
        ));
    }
    let spill_err = |e: std::io::Error| ProviderError::Data {
        file: manifest.to_owned(),
        why: format!("the sorted listing's temporary file: {e}"),
    };
    let mut listing = Listing::new(
        report.date,
        format!("{} {manifest}", report.provider.as_str()),
    )
    .map_err(spill_err)?;
    let bases = ancestors(manifest);
    let mut kept = 0;
    for name in &report.files {
        let mut found = None;
        for base in &bases {
            let loc = format!("{base}{}", name.trim_start_matches('/'));
            if let Some(b) = fetch(&loc).map_err(|why| ProviderError::Data {
                file: loc.clone(),
                why,
            })? {
                found = Some((loc, b));
                break;
            }
        }
        let (loc, mut data) = found.ok_or_else(|| ProviderError::Data {
            file: name.clone(),
            why: format!(
                "named by {manifest} but found neither beside it nor below any of its parents"
            ),
        })?;
        kept += read_data(&report, &loc, &mut data, scope, &mut listing)?;
    }
    if kept == 0 {
        return Err(manifest_err(
            manifest,
            format!(
                "no object of bucket {:?} below {:?} in its data files: is it this storage's report?",
                scope.bucket, scope.prefix
            ),
        ));
    }
    listing.finish().map_err(spill_err)?;
    Ok(listing)
}

/// `a/b/c/manifest.json` -> `a/b/c/`, `a/b/`, `a/`, `` (and `s3://bkt/x/m` -> `s3://bkt/x/`,
/// `s3://bkt/`): where a report's file names may be rooted, nearest first.
fn ancestors(manifest: &str) -> Vec<String> {
    let (root, rest) = match manifest.split_once("://") {
        Some((scheme, r)) => match r.split_once('/') {
            Some((bucket, path)) => (format!("{scheme}://{bucket}/"), path),
            None => (format!("{scheme}://{r}/"), ""),
        },
        None if manifest.starts_with('/') => ("/".to_owned(), &manifest[1..]),
        None => (String::new(), manifest),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::new();
    for n in (0..parts.len()).rev() {
        let mut b = root.clone();
        for p in &parts[..n] {
            b.push_str(p);
            b.push('/');
        }
        out.push(b);
    }
    out
}

/// Decode S3 Inventory's URL-encoded keys (`%2F`, and `+` for a space).
fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn scope() -> Scope {
        Scope {
            bucket: "reg".into(),
            prefix: "root/docker/registry/v2".into(),
        }
    }

    #[test]
    fn data_files_are_looked_for_beside_and_above_the_manifest() {
        assert_eq!(
            ancestors("s3://inv/p/reg/cfg/2024/manifest.json"),
            [
                "s3://inv/p/reg/cfg/2024/",
                "s3://inv/p/reg/cfg/",
                "s3://inv/p/reg/",
                "s3://inv/p/",
                "s3://inv/"
            ]
        );
        assert_eq!(ancestors("/t/m.json"), ["/t/", "/"]);
        assert_eq!(ancestors("m.json"), [""]);
    }

    #[test]
    fn s3_manifest_and_csv() {
        let m = br#"{"sourceBucket":"reg","destinationBucket":"arn:aws:s3:::inv","version":"2016-11-30",
            "creationTimestamp":"1514944800000","fileFormat":"CSV",
            "fileSchema":"Bucket, Key, Size, LastModifiedDate, ETag, IsLatest, IsDeleteMarker",
            "files":[{"key":"inv/reg/cfg/data/a.csv.gz","size":1,"MD5checksum":"x"}]}"#;
        let r = parse_manifest("manifest.json", m).unwrap();
        assert_eq!(r.provider, Provider::S3);
        assert_eq!(r.date.rfc3339(), "2018-01-03T02:00:00Z");
        assert_eq!(r.files, ["inv/reg/cfg/data/a.csv.gz"]);
        let csv = "\"reg\",\"root/docker/registry/v2/blobs/sha256/ab/ab%2Bc/data\",\"12\",\"2017-01-01T00:00:00.000Z\",\"e1\",\"true\",\"false\"\n\
                   \"reg\",\"root/docker/registry/v2/old\",\"1\",\"2017-01-01T00:00:00.000Z\",\"e2\",\"false\",\"false\"\n\
                   \"other\",\"root/docker/registry/v2/x\",\"1\",\"2017-01-01T00:00:00.000Z\",\"e3\",\"true\",\"false\"\n\
                   \"reg\",\"elsewhere/x\",\"1\",\"2017-01-01T00:00:00.000Z\",\"e4\",\"true\",\"false\"\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
        let mut l = Listing::new(r.date, "t").unwrap();
        assert_eq!(
            read_data(
                &r,
                "a.csv.gz",
                &mut &gz.finish().unwrap()[..],
                &scope(),
                &mut l
            )
            .unwrap(),
            1
        );
        l.finish().unwrap();
        assert_eq!(l.len(), 1);
        let bad = "\"reg\",\"root/docker/registry/v2/k\",\"twelve\",\"2017-01-01T00:00:00Z\",\"e\",\"true\",\"false\"\n";
        let e = read_data(&r, "b.csv", &mut bad.as_bytes(), &scope(), &mut l).unwrap_err();
        assert!(
            e.to_string().contains("b.csv: row 1: size \"twelve\""),
            "{e}"
        );
    }

    #[test]
    fn gcs_and_azure_manifests_and_headers() {
        let g = br#"{"report_config":{"source_bucket":"projects/_/buckets/reg"},"records_processed":2,
            "snapshot_time":"2024-03-01T00:00:00Z","shard_count":1,"report_shards_file_names":["r_0.csv"]}"#;
        let r = parse_manifest("x.manifest", g).unwrap();
        assert_eq!(
            (r.provider, r.source.as_deref()),
            (Provider::Gcs, Some("reg"))
        );
        let csv = "bucket,name,size,updated,etag\nreg,root/docker/registry/v2/a/b,3,2024-01-01T00:00:00.123Z,CJ\n";
        let mut l = Listing::new(r.date, "t").unwrap();
        assert_eq!(
            read_data(&r, "r_0.csv", &mut csv.as_bytes(), &scope(), &mut l).unwrap(),
            1
        );

        let a = br#"{"destinationContainer":"inv","endpoint":"https://acct.blob.core.windows.net",
            "files":[{"blob":"2024/03/01/00-00-00/rule/rule.csv","size":1}],
            "inventoryStartTime":"2024-03-01T00:00:00Z","inventoryCompletionTime":"2024-03-01T00:10:00Z",
            "ruleDefinition":{"format":"Csv"},"status":"Succeeded"}"#;
        let r = parse_manifest("rule-manifest.json", a).unwrap();
        assert_eq!(r.provider, Provider::Azure);
        let csv = "Name,Creation-Time,Last-Modified,Etag,Content-Length\n\
                   reg/root/docker/registry/v2/a/c,2024-01-01T00:00:00.0000000Z,2024-01-02T00:00:00.0000000Z,0x8D,7\n";
        assert_eq!(
            read_data(&r, "rule.csv", &mut csv.as_bytes(), &scope(), &mut l).unwrap(),
            1
        );
        l.finish().unwrap();
        assert_eq!(l.len(), 2);

        let parquet = parse_manifest("m.json", br#"{"fileSchema":"Key","sourceBucket":"b","creationTimestamp":"1","fileFormat":"Parquet","files":[{"key":"k"}]}"#);
        // Read with the `parquet` feature, refused by name without it; ORC never.
        assert_eq!(parquet.is_ok(), cfg!(feature = "parquet"), "{parquet:?}");
        let e = parse_manifest("m.json", br#"{"fileSchema":"Key","sourceBucket":"b","creationTimestamp":"1","fileFormat":"ORC","files":[{"key":"k"}]}"#).unwrap_err();
        assert!(e.to_string().contains("data files in orc"), "{e}");
        assert!(parse_manifest("m.json", b"{}").is_err());
    }
}
