//! Retention policies, pure (no I/O): the policy file, in-use references, evaluation.
//!
//! - [`file`]: the YAML grammar as typed data (`deny_unknown_fields` everywhere) and its JSON
//!   Schema ([`file::json_schema`], published as `docs/policy.schema.json`).
//! - [`cache`]: the cache rule, a pull-through cache's size cap (its own section).
//! - [`compile`]: checks a policy file (every problem named by where it is) and compiles
//!   patterns, durations and criteria.
//! - [`facts`]: the selectors that look inside images (platform, size, annotations, labels).
//! - [`refs`]: image references from in-use sources (reference lists, `kubectl get pods -o json`).
//! - [`eval`]: one decision with reasons per top-level image and tag, protections, closure
//!   repair and cascades, limits.
//! - [`floor`]: the keep-newest-per-repository ranking and its documented tie-break.
//! - [`limits`]: the policy file's size and nesting limits, checked before parsing.
//! - [`lint`]: warnings about the known traps (`shared/spec/retention.md` §5.6).
//!
//! Byte accounting and the plan document live in `stowage-plan::retention`, which feeds the
//! same apply engine as garbage collection.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cache;
pub mod compile;
pub mod eval;
pub mod facts;
pub mod file;
pub mod floor;
pub mod limits;
pub mod lint;
mod pull_coverage;
pub mod refs;
pub mod values;

pub use compile::{Compiled, PolicyErrors, compile, parse};
pub use eval::{
    Decision, EvalError, Inputs, LoadedSource, ManifestFacts, Outcome, PullData, evaluate,
};
pub use file::{PolicyFile, json_schema};
pub use stowage_model::pulls::PullByReference;
