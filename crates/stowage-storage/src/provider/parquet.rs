//! Parquet data files of the providers' inventory reports: S3 Inventory (`fileFormat:
//! Parquet`; columns `bucket`, `key`, `size`, `last_modified_date` as a millisecond
//! timestamp, `e_tag`, `is_latest`, `is_delete_marker`; keys are *not* URL-encoded, unlike
//! the CSV), GCS inventory reports with `parquet_options` (`bucket`, `name`, `size`,
//! `updated`, `etag`) and Azure Blob Inventory in Parquet (`Name`, `Content-Length`,
//! `Last-Modified`, `Etag`). Columns are found by name, case-insensitively; dates may be
//! Parquet timestamps (milli- or microseconds) or RFC 3339 strings, sizes any integer.
//!
//! Parquet needs random access (the footer first), and a data file comes as a stream (from
//! an object store), so it is copied to an anonymous temporary file first: memory stays
//! bounded whatever the file's size. Only the needed columns are decoded (a projection).

use std::io::Read;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;
use stowage_model::Timestamp;

use super::{Filter, ProviderError, Report, Scope};
use crate::listing::Listing;

/// The column names each role may have, lowercase.
const KEY: &[&str] = &["key", "name"];
const SIZE: &[&str] = &["size", "content-length"];
const DATE: &[&str] = &[
    "last_modified_date",
    "lastmodifieddate",
    "updated",
    "last-modified",
];
const ETAG: &[&str] = &["e_tag", "etag"];
const BUCKET: &[&str] = &["bucket"];
const LATEST: &[&str] = &["is_latest", "islatest"];
const DELETED: &[&str] = &["is_delete_marker", "isdeletemarker"];

#[derive(Copy, Clone, PartialEq, Eq)]
enum Role {
    Key,
    Size,
    Date,
    Etag,
    Bucket,
    Latest,
    Deleted,
}

fn role(name: &str) -> Option<Role> {
    let n = name.to_ascii_lowercase();
    let is = |names: &[&str]| names.contains(&n.as_str());
    Some(if is(KEY) {
        Role::Key
    } else if is(SIZE) {
        Role::Size
    } else if is(DATE) {
        Role::Date
    } else if is(ETAG) {
        Role::Etag
    } else if is(BUCKET) {
        Role::Bucket
    } else if is(LATEST) {
        Role::Latest
    } else if is(DELETED) {
        Role::Deleted
    } else {
        return None;
    })
}

pub(super) fn read(
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
    let mut file =
        tempfile::tempfile().map_err(|e| data_err(format!("creating a temporary copy: {e}")))?;
    std::io::copy(input, &mut file).map_err(|e| data_err(format!("reading: {e}")))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| data_err(format!("not a readable Parquet file: {e}")))?;
    let schema = reader.metadata().file_metadata().schema();
    // The projection: the top-level columns with a role, in file order.
    let mut fields = Vec::new();
    let mut roles = Vec::new();
    for f in schema.get_fields() {
        if let Some(r) = role(f.name())
            && !roles.contains(&r)
            && f.is_primitive()
        {
            fields.push(f.clone());
            roles.push(r);
        }
    }
    for (r, names) in [(Role::Key, KEY), (Role::Size, SIZE), (Role::Date, DATE)] {
        if !roles.contains(&r) {
            return Err(data_err(format!("no {} column", names.join(" or "))));
        }
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()
        .map_err(|e| data_err(format!("projecting its columns: {e}")))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| data_err(format!("reading its rows: {e}")))?;
    let filter = Filter::new(report.provider, scope);
    let mut kept = 0;
    for (n, row) in rows.enumerate() {
        let line = n + 1;
        let row_err = |why: String| data_err(format!("row {line}: {why}"));
        let row = row.map_err(|e| row_err(e.to_string()))?;
        let mut key = None;
        let (mut size, mut date, mut etag, mut bucket) = (None, None, None, None);
        let mut current = true;
        for ((_, field), r) in row.get_column_iter().zip(&roles) {
            match r {
                Role::Key => key = text(field),
                Role::Size => {
                    size = Some(
                        integer(field)
                            .ok_or_else(|| row_err(format!("size {field} is not a number")))?,
                    )
                }
                Role::Date => {
                    date =
                        Some(time(field).ok_or_else(|| {
                            row_err(format!("last-modified {field} is not a time"))
                        })?)
                }
                Role::Etag => etag = text(field).filter(|e| !e.is_empty()),
                Role::Bucket => bucket = text(field),
                Role::Latest => current &= !matches!(field, Field::Bool(false)),
                Role::Deleted => current &= !matches!(field, Field::Bool(true)),
            }
        }
        if !current {
            continue; // a non-current version or a delete marker
        }
        let key = key.ok_or_else(|| row_err("no key".into()))?;
        let Some(rel) = filter.relative(bucket, key) else {
            continue;
        };
        let (Some(size), Some(date)) = (size, date) else {
            return Err(row_err("no size or no last-modified date".into()));
        };
        out.push(rel, size, date, etag)
            .map_err(|e| data_err(format!("writing the sorted listing: {e}")))?;
        kept += 1;
    }
    Ok(kept)
}

fn text(f: &Field) -> Option<&str> {
    match f {
        Field::Str(s) => Some(s),
        Field::Bytes(b) => std::str::from_utf8(b.data()).ok(),
        _ => None,
    }
}

fn integer(f: &Field) -> Option<u64> {
    match *f {
        Field::Long(n) => u64::try_from(n).ok(),
        Field::Int(n) => u64::try_from(n).ok(),
        Field::ULong(n) => Some(n),
        Field::UInt(n) => Some(n.into()),
        Field::Str(ref s) => s.parse().ok(),
        _ => None,
    }
}

fn time(f: &Field) -> Option<Timestamp> {
    match *f {
        Field::TimestampMillis(ms) => Some(Timestamp(ms.checked_mul(1_000_000)?)),
        Field::TimestampMicros(us) => Some(Timestamp(us.checked_mul(1_000)?)),
        Field::Str(ref s) => Timestamp::parse_rfc3339(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::super::{Provider, parse_manifest, read_data, tests::scope};
    use crate::listing::Listing;

    /// S3 Inventory's Parquet columns (a subset, as a real report orders them).
    const S3: &str = "message s3.inventory { required binary bucket (STRING); required binary key (STRING);
        optional boolean is_latest; optional boolean is_delete_marker; optional int64 size;
        optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); optional binary e_tag (STRING); }";

    fn s3_file(rows: &[(&str, &str, bool, bool, i64)]) -> Vec<u8> {
        let ty = Arc::new(parse_message_type(S3).unwrap());
        let mut w =
            SerializedFileWriter::new(Vec::new(), ty, Arc::new(WriterProperties::new())).unwrap();
        let mut rg = w.next_row_group().unwrap();
        let strs = |i: usize| -> Vec<ByteArray> {
            rows.iter()
                .map(|r| {
                    ByteArray::from(match i {
                        0 => r.0,
                        1 => r.1,
                        _ => "e",
                    })
                })
                .collect()
        };
        let ones = vec![1i16; rows.len()];
        let mut n = 0;
        while let Some(mut c) = rg.next_column().unwrap() {
            match n {
                0 => c.typed::<ByteArrayType>().write_batch(&strs(0), None, None),
                1 => c.typed::<ByteArrayType>().write_batch(&strs(1), None, None),
                2 => c.typed::<BoolType>().write_batch(
                    &rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    Some(&ones),
                    None,
                ),
                3 => c.typed::<BoolType>().write_batch(
                    &rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                    Some(&ones),
                    None,
                ),
                4 => c.typed::<Int64Type>().write_batch(
                    &rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                    Some(&ones),
                    None,
                ),
                5 => c.typed::<Int64Type>().write_batch(
                    &vec![1_483_228_800_000i64; rows.len()],
                    Some(&ones),
                    None,
                ),
                _ => c
                    .typed::<ByteArrayType>()
                    .write_batch(&strs(2), Some(&ones), None),
            }
            .unwrap();
            c.close().unwrap();
            n += 1;
        }
        rg.close().unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn s3_parquet_rows_raw_keys_current_versions_of_the_bucket_below_the_root() {
        let m =
            br#"{"sourceBucket":"reg","creationTimestamp":"1514944800000","fileFormat":"Parquet",
            "fileSchema":"message s3.inventory { required binary bucket; }",
            "files":[{"key":"inv/reg/cfg/data/a.parquet"}]}"#;
        let r = parse_manifest("manifest.json", m).unwrap();
        assert_eq!(r.provider, Provider::S3);
        let bytes = s3_file(&[
            // Parquet keys are raw: `%2B` is three characters of the key.
            (
                "reg",
                "root/docker/registry/v2/blobs/sha256/ab/ab%2B+c/data",
                true,
                false,
                12,
            ),
            ("reg", "root/docker/registry/v2/old", false, false, 1),
            ("reg", "root/docker/registry/v2/deleted", true, true, 0),
            ("other", "root/docker/registry/v2/x", true, false, 1),
            ("reg", "elsewhere/x", true, false, 1),
            ("reg", "root/docker/registry/v2/dir/", true, false, 0),
        ]);
        let mut l = Listing::new(r.date, "t").unwrap();
        let kept = read_data(&r, "a.parquet", &mut &bytes[..], &scope(), &mut l).unwrap();
        assert_eq!(kept, 1);
        l.finish().unwrap();
        assert_eq!(l.len(), 1);
        let e = read_data(
            &r,
            "b.parquet",
            &mut &b"PAR1 not really"[..],
            &scope(),
            &mut l,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("b.parquet: not a readable Parquet file"), "{e}");
    }
}
