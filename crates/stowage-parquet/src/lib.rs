//! Parquet output of stowage's record tables, for the analytics engines users already run
//! (DuckDB, Spark, Trino, Athena): `stowage inventory -o FILE.parquet`.
//!
//! A [`TableWriter`] writes rows given as JSON objects (the very records the JSON and NDJSON
//! outputs print), picking the declared [`Column`]s by name: the Parquet schema *is* the JSON
//! schema, flattened, and the schema's versioned name (`stowage.inventory/v1`) is kept in
//! the file's key-value metadata under `stowage.schema`. Every column is nullable (a field a
//! record lacks is null); times are `TIMESTAMP(MICROS, UTC)`; lists of names are Parquet
//! `LIST`s of strings. Rows are buffered per row group ([`ROW_GROUP_ROWS`]), so memory is
//! bounded whatever the number of records. Snappy-compressed, Parquet's usual codec.
//!
//! ```
//! use stowage_parquet::{Column, Kind, TableWriter};
//! let cols = [Column::new("digest", Kind::Str), Column::new("size", Kind::Int)];
//! let mut w = TableWriter::new(Vec::new(), "stowage.inventory/v1", &cols).unwrap();
//! w.push(&serde_json::json!({"digest": "sha256:00", "size": 3})).unwrap();
//! let bytes = w.finish().unwrap();
//! assert!(bytes.starts_with(b"PAR1"));
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;
use stowage_model::Timestamp;

pub mod tables;

/// Rows per row group: large enough for good compression and column statistics, small
/// enough that a row group's buffers stay a few tens of megabytes.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// A column's type.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string (UTF-8).
    Str,
    /// A signed 64-bit integer (sizes, counts).
    Int,
    Bool,
    /// An RFC 3339 time in JSON, a UTC timestamp (microseconds) in Parquet.
    Time,
    /// A list of strings (repositories, tags).
    StrList,
}

/// A column: the JSON field it is read from, and its type.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

impl Column {
    pub fn new(name: &str, kind: Kind) -> Column {
        Column {
            name: name.to_owned(),
            kind,
        }
    }
}

/// Writing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParquetError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("column {column}: {why}")]
    Value { column: String, why: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    At {
        path: std::path::PathBuf,
        source: Box<ParquetError>,
    },
}

impl ParquetError {
    /// This error, naming the file it happened in.
    fn at(self, path: &std::path::Path) -> ParquetError {
        match self {
            e @ (ParquetError::Io { .. } | ParquetError::At { .. }) => e,
            e => ParquetError::At {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

/// One column's buffered values and levels for the current row group.
#[derive(Default)]
struct Buf {
    strs: Vec<ByteArray>,
    ints: Vec<i64>,
    bools: Vec<bool>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

/// Writes one table (see the module doc).
pub struct TableWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    columns: Vec<Column>,
    bufs: Vec<Buf>,
    rows: usize,
}

impl<W: Write + Send> std::fmt::Debug for TableWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("columns", &self.columns)
            .field("rows", &self.rows)
            .finish()
    }
}

fn message_type(columns: &[Column]) -> String {
    let mut m = String::from("message stowage {\n");
    for c in columns {
        let n = &c.name;
        m.push_str(&match c.kind {
            Kind::Str => format!("  OPTIONAL BYTE_ARRAY {n} (UTF8);\n"),
            Kind::Int => format!("  OPTIONAL INT64 {n};\n"),
            Kind::Bool => format!("  OPTIONAL BOOLEAN {n};\n"),
            Kind::Time => format!("  OPTIONAL INT64 {n} (TIMESTAMP(MICROS,true));\n"),
            Kind::StrList => format!(
                "  OPTIONAL group {n} (LIST) {{ REPEATED group list {{ REQUIRED BYTE_ARRAY element (UTF8); }} }}\n"
            ),
        });
    }
    m.push('}');
    m
}

impl<W: Write + Send> TableWriter<W> {
    /// Start a file with these columns; `schema` (the JSON schema's versioned name) goes
    /// into the file's metadata.
    pub fn new(out: W, schema: &str, columns: &[Column]) -> Result<TableWriter<W>, ParquetError> {
        let ty = Arc::new(parse_message_type(&message_type(columns))?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("stowage {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "stowage.schema".to_owned(),
                schema.to_owned(),
            )]))
            .build();
        Ok(TableWriter {
            writer: SerializedFileWriter::new(out, ty, Arc::new(props))?,
            columns: columns.to_vec(),
            bufs: columns.iter().map(|_| Buf::default()).collect(),
            rows: 0,
        })
    }

    /// Add one row: a JSON object whose fields are the columns (others are ignored).
    pub fn push(&mut self, row: &Value) -> Result<(), ParquetError> {
        for (c, b) in self.columns.iter().zip(&mut self.bufs) {
            let v = row.get(&c.name).unwrap_or(&Value::Null);
            let bad = |why: &str| ParquetError::Value {
                column: c.name.clone(),
                why: format!("{why}: {v}"),
            };
            if v.is_null() {
                b.def.push(0);
                if c.kind == Kind::StrList {
                    b.rep.push(0);
                }
                continue;
            }
            match c.kind {
                Kind::Str => {
                    let s = v.as_str().ok_or_else(|| bad("not a string"))?;
                    b.strs.push(ByteArray::from(s));
                    b.def.push(1);
                }
                Kind::Int => {
                    let n = v
                        .as_i64()
                        .or_else(|| v.as_u64().map(|u| u.min(i64::MAX as u64) as i64))
                        .ok_or_else(|| bad("not an integer"))?;
                    b.ints.push(n);
                    b.def.push(1);
                }
                Kind::Bool => {
                    b.bools
                        .push(v.as_bool().ok_or_else(|| bad("not a boolean"))?);
                    b.def.push(1);
                }
                Kind::Time => {
                    let t = v
                        .as_str()
                        .and_then(Timestamp::parse_rfc3339)
                        .ok_or_else(|| bad("not an RFC 3339 time"))?;
                    b.ints.push(t.0.div_euclid(1000));
                    b.def.push(1);
                }
                Kind::StrList => {
                    let items = v.as_array().ok_or_else(|| bad("not a list"))?;
                    if items.is_empty() {
                        b.def.push(1);
                        b.rep.push(0);
                    }
                    for (i, item) in items.iter().enumerate() {
                        let s = item.as_str().ok_or_else(|| bad("not a list of strings"))?;
                        b.strs.push(ByteArray::from(s));
                        b.def.push(2);
                        b.rep.push(if i == 0 { 0 } else { 1 });
                    }
                }
            }
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = rg.next_column()? {
            let b = std::mem::take(&mut self.bufs[i]);
            let rep = (self.columns[i].kind == Kind::StrList).then_some(&b.rep[..]);
            match self.columns[i].kind {
                Kind::Str | Kind::StrList => {
                    col.typed::<ByteArrayType>()
                        .write_batch(&b.strs, Some(&b.def), rep)?;
                }
                Kind::Int | Kind::Time => {
                    col.typed::<Int64Type>()
                        .write_batch(&b.ints, Some(&b.def), None)?;
                }
                Kind::Bool => {
                    col.typed::<BoolType>()
                        .write_batch(&b.bools, Some(&b.def), None)?;
                }
            }
            col.close()?;
            i += 1;
        }
        rg.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Write what is buffered and the footer; returns the output.
    pub fn finish(mut self) -> Result<W, ParquetError> {
        self.flush()?;
        Ok(self.writer.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn rows_round_trip_with_nulls_lists_and_times() {
        let cols = [
            Column::new("digest", Kind::Str),
            Column::new("size", Kind::Int),
            Column::new("referenced", Kind::Bool),
            Column::new("modified", Kind::Time),
            Column::new("tags", Kind::StrList),
            Column::new("media_type", Kind::Str),
        ];
        let mut w = TableWriter::new(Vec::new(), "stowage.inventory/v1", &cols).unwrap();
        w.push(&serde_json::json!({"digest":"a","size":1,"referenced":true,
            "modified":"2030-01-01T00:00:00Z","tags":["r:1","r:2"]}))
            .unwrap();
        w.push(
            &serde_json::json!({"digest":"b","size":2,"referenced":false,
            "modified":"2030-01-01T00:00:01.5Z","tags":[],"media_type":"x"}),
        )
        .unwrap();
        let e = w.push(&serde_json::json!({"size":"big"})).unwrap_err();
        assert!(e.to_string().contains("column size: not an integer"), "{e}");
        let bytes = bytes::Bytes::from(
            TableWriter::new(Vec::new(), "s", &cols)
                .and_then(|mut w| {
                    w.push(&serde_json::json!({"digest":"a","tags":["t"]}))?;
                    w.finish()
                })
                .unwrap(),
        );
        let r = SerializedFileReader::new(bytes).unwrap();
        let meta = r.metadata().file_metadata();
        assert_eq!(meta.num_rows(), 1);
        let kv = meta.key_value_metadata().unwrap();
        assert_eq!(kv[0].value.as_deref(), Some("s"));
        let row = r.get_row_iter(None).unwrap().next().unwrap().unwrap();
        let text = row.to_string();
        assert!(text.contains("digest: \"a\""), "{text}");
        assert!(text.contains("tags: [\"t\"]"), "{text}");
    }
}
