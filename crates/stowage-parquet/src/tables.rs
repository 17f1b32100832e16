//! The columns of every table stowage writes as Parquet, one function per JSON schema, so
//! that the Parquet schema is declared once, beside the writer, and stays the JSON records'
//! fields (same names, same meaning; `docs/analytics.md` lists them). A nested JSON field
//! (a tag's history) is its own table, keyed by the parent's columns, as engines join them.
//!
//! [`File`] writes one table to a path, creating its parent directories: the Hive layout
//! (`lake/registry=prod/date=2030-01-01/du.parquet`) is just a path.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Column, Kind, ParquetError, TableWriter};

fn cols(spec: &[(&str, Kind)]) -> Vec<Column> {
    spec.iter().map(|(n, k)| Column::new(n, *k)).collect()
}

/// `inventory`: one row per blob (`stowage.inventory/v1`).
pub fn inventory() -> Vec<Column> {
    cols(&[
        ("digest", Kind::Str),
        ("size", Kind::Int),
        ("modified", Kind::Time),
        ("created", Kind::Time),
        ("kind", Kind::Str),
        ("media_type", Kind::Str),
        ("referenced", Kind::Bool),
        ("repositories", Kind::StrList),
        ("tags", Kind::StrList),
        ("manifests", Kind::StrList),
        ("linked_in", Kind::StrList),
        ("path", Kind::Str),
        ("last_pulled", Kind::Time),
    ])
}

/// `inventory --links`: one row per link file (`stowage.inventory.links/v1`).
pub fn inventory_links() -> Vec<Column> {
    cols(&[
        ("kind", Kind::Str),
        ("repository", Kind::Str),
        ("tag", Kind::Str),
        ("digest", Kind::Str),
        ("modified", Kind::Time),
        ("target_exists", Kind::Bool),
        ("state", Kind::Str),
        ("path", Kind::Str),
    ])
}

/// `inventory --uploads`: one row per upload directory (`stowage.inventory.uploads/v1`).
pub fn inventory_uploads() -> Vec<Column> {
    cols(&[
        ("repository", Kind::Str),
        ("id", Kind::Str),
        ("started_at", Kind::Time),
        ("age_seconds", Kind::Int),
        ("data_size", Kind::Int),
        ("total_size", Kind::Int),
        ("modified", Kind::Time),
        ("path", Kind::Str),
    ])
}

/// `du`: one row per node of the repository tree, in pre-order (`stowage.du/v1`).
pub fn du() -> Vec<Column> {
    cols(&[
        ("name", Kind::Str),
        ("depth", Kind::Int),
        ("repository", Kind::Bool),
        ("total", Kind::Int),
        ("exclusive", Kind::Int),
        ("shared", Kind::Int),
        ("own_total", Kind::Int),
        ("own_exclusive", Kind::Int),
        ("repositories", Kind::Int),
        ("tags", Kind::Int),
        ("manifests", Kind::Int),
        ("untagged_manifests", Kind::Int),
        ("upload_bytes", Kind::Int),
    ])
}

/// `tags REPO`: one row per tag (`stowage.tags/v1`); `last_pulled` and `pulls` with `--db`.
pub fn tags() -> Vec<Column> {
    cols(&[
        ("repository", Kind::Str),
        ("tag", Kind::Str),
        ("digest", Kind::Str),
        ("media_type", Kind::Str),
        ("platforms", Kind::StrList),
        ("artifact_type", Kind::Str),
        ("total", Kind::Int),
        ("exclusive", Kind::Int),
        ("moved", Kind::Time),
        ("last_pulled", Kind::Time),
        ("pulls", Kind::Int),
    ])
}

/// A tag's `history`, one row per entry, newest first (`stowage.tags.history/v1`).
pub fn tag_history() -> Vec<Column> {
    cols(&[
        ("repository", Kind::Str),
        ("tag", Kind::Str),
        ("digest", Kind::Str),
        ("date", Kind::Time),
        ("exists", Kind::Bool),
    ])
}

/// `history`: growth per repository between two snapshots (`stowage.history/v1`), each row
/// with the two snapshots' ids and dates.
pub fn history_growth() -> Vec<Column> {
    cols(&[
        ("from_id", Kind::Int),
        ("from_taken_at", Kind::Time),
        ("to_id", Kind::Int),
        ("to_taken_at", Kind::Time),
        ("repository", Kind::Str),
        ("from_total", Kind::Int),
        ("to_total", Kind::Int),
        ("total_change", Kind::Int),
        ("exclusive_change", Kind::Int),
        ("tags_change", Kind::Int),
        ("tags_pushed", Kind::StrList),
        ("tags_removed", Kind::StrList),
    ])
}

/// `history --list`: one row per snapshot (`stowage.history.snapshots/v1`).
pub fn history_snapshots() -> Vec<Column> {
    cols(&[
        ("id", Kind::Int),
        ("taken_at", Kind::Time),
        ("storage", Kind::Str),
        ("blobs", Kind::Int),
        ("blob_bytes", Kind::Int),
        ("repositories", Kind::Int),
        ("tags", Kind::Int),
    ])
}

/// The columns of the table whose schema is `stowage.<kind>/v1` (`inventory`, `du`,
/// `tags.history`, ...), or `None` for a kind with no table.
pub fn columns(kind: &str) -> Option<Vec<Column>> {
    Some(match kind {
        "inventory" => inventory(),
        "inventory.links" => inventory_links(),
        "inventory.uploads" => inventory_uploads(),
        "du" => du(),
        "tags" => tags(),
        "tags.history" => tag_history(),
        "history" => history_growth(),
        "history.snapshots" => history_snapshots(),
        _ => return None,
    })
}

/// One table being written to a file.
pub struct File {
    path: PathBuf,
    w: TableWriter<BufWriter<std::fs::File>>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File").field("path", &self.path).finish()
    }
}

impl File {
    /// Create `path` (and its parent directories) for a table of `columns` under `schema`.
    pub fn create(path: &Path, schema: &str, columns: &[Column]) -> Result<File, ParquetError> {
        let io = |source| ParquetError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ParquetError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let f = std::fs::File::create(path).map_err(io)?;
        Ok(File {
            path: path.to_path_buf(),
            w: TableWriter::new(BufWriter::with_capacity(1 << 16, f), schema, columns)
                .map_err(|e| e.at(path))?,
        })
    }

    /// Add one row (a JSON object; see [`TableWriter::push`]).
    pub fn push(&mut self, row: &Value) -> Result<(), ParquetError> {
        self.w.push(row).map_err(|e| e.at(&self.path))
    }

    /// Write the footer and flush.
    pub fn finish(self) -> Result<(), ParquetError> {
        let path = self.path;
        let mut out = self.w.finish().map_err(|e| e.at(&path))?;
        out.flush()
            .map_err(|source| ParquetError::Io { path, source })
    }
}

/// Write a whole table: `rows` serialized to JSON objects, pushed in order.
pub fn write<T: serde::Serialize>(
    path: &Path,
    schema: &str,
    columns: &[Column],
    rows: impl IntoIterator<Item = T>,
) -> Result<(), ParquetError> {
    let mut f = File::create(path, schema, columns)?;
    for r in rows {
        let v = serde_json::to_value(r).map_err(|e| ParquetError::Value {
            column: String::new(),
            why: e.to_string(),
        })?;
        f.push(&v)?;
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_file_gets_its_partition_directories_and_names_its_path_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir
            .path()
            .join("lake/registry=a/date=2030-01-01/du.parquet");
        write(
            &p,
            "stowage.du/v1",
            &du(),
            [serde_json::json!({"name": "", "depth": 0, "total": 3})],
        )
        .unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(b"PAR1"));
        let bad = write(&p, "stowage.du/v1", &du(), [serde_json::json!({"name": 3})])
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("du.parquet") && bad.contains("column name"),
            "{bad}"
        );
    }
}
