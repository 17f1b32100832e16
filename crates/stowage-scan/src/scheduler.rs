//! Reading a pull-through cache's TTL state (`<rootdirectory>/scheduler-state.json`) into
//! the inventory: the I/O half of [`stowage_model::scheduler`] (which parses, purely).
//!
//! The file sits beside `docker/`, outside the layout the rest of the scan walks, so it is
//! read through [`Storage::read_at_driver_root`]; a backend that cannot address the driver's
//! root leaves the state [`SchedulerFile::Unknown`]. A file that is there but unusable is a
//! `cache_state_unusable` finding and [`SchedulerFile::Bad`]: a cache GC then evicts
//! nothing (fail-safe), and the registry itself would not start on it.

use stowage_model::finding::{Finding, FindingKind};
use stowage_model::scheduler::{self, MAX_STATE_BYTES, STATE_FILE, SchedulerFile};
use stowage_storage::Storage;

/// The finding path of the state file, relative to the layout root like every other.
pub const STATE_PATH: &str = "../../../scheduler-state.json";

/// Read and parse the state file; a finding when it is there but unusable.
pub fn read_state(storage: &dyn Storage) -> (SchedulerFile, Option<Finding>) {
    match storage.read_at_driver_root(STATE_FILE, MAX_STATE_BYTES) {
        None => (SchedulerFile::Unknown, None),
        Some(Ok(None)) => (SchedulerFile::Absent, None),
        Some(Ok(Some(bytes))) => match scheduler::parse(&bytes) {
            Ok(st) => (SchedulerFile::Read(st), None),
            Err(e) => bad(format!("{STATE_FILE}: {e}")),
        },
        Some(Err(e)) => bad(format!("{STATE_FILE}: {e}")),
    }
}

fn bad(reason: String) -> (SchedulerFile, Option<Finding>) {
    let f = Finding::new(
        FindingKind::CacheStateUnusable,
        STATE_PATH,
        format!("{reason}; no cached object is evicted on its strength"),
    );
    (SchedulerFile::Bad(reason), Some(f))
}
