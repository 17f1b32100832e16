//! Pure rendering: the records stowage prints (a versioned, documented JSON schema) and the
//! human tables, CSV and NDJSON built from them.
//!
//! Every JSON document carries `"schema": "stowage.<kind>/v1"`; fields are only ever added
//! within a major version (documented in `docs/json-schema.md`). Records are built from the
//! graph here and serialised by the caller, so the CLI, the HTML report and the dashboard all
//! print the same thing.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod table;
pub mod views;

pub use views::*;

/// The current major version of every JSON schema stowage prints.
pub const SCHEMA_VERSION: u32 = 1;

/// `stowage.<kind>/v1`.
pub fn schema(kind: &str) -> String {
    format!("stowage.{kind}/v{SCHEMA_VERSION}")
}
