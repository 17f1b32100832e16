//! Exit codes, defined in one place.
//!
//! - `0`: success.
//! - `1`: the command ran, and found integrity problems at or above the failure threshold
//!   (`check`: warnings by default, `--fail-on` to change; other read commands: errors).
//! - `2`: the command could not run (bad arguments, unreadable storage root, ...).

pub const OK: i32 = 0;
pub const FINDINGS: i32 = 1;
pub const ERROR: i32 = 2;
