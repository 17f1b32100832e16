//! Pure rendering: the records stowage prints (a versioned, documented JSON schema) and the
//! human tables, CSV and NDJSON built from them.
//!
//! Every JSON document carries `"schema": "stowage.<kind>/v1"`; fields are only ever added
//! within a major version (documented in `docs/json-schema.md`). Records are built from the
//! graph here and serialised by the caller, so the CLI, the HTML report and the dashboard all
//! print the same thing.
//!
//! The report's modules: [`overview`] (every figure the HTML report, the dashboard and the
//! metrics show, `stowage.report/v1`), [`html`] (the self-contained page), [`metrics`]
//! (Prometheus text), [`plan_view`] (what a plan deletes, per repository and reason), [`ages`]
//! (image build dates in the tables, bytes by image age).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ages;
pub mod capacity;
pub mod html;
pub mod metrics;
pub mod overview;
pub mod plan_view;
pub mod reclaim;
pub mod table;
pub mod views;

pub use views::*;

/// The current major version of every JSON schema stowage prints.
pub const SCHEMA_VERSION: u32 = 1;

/// `stowage.<kind>/v1`.
pub fn schema(kind: &str) -> String {
    format!("stowage.{kind}/v{SCHEMA_VERSION}")
}
