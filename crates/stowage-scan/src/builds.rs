//! Image build dates: every config blob a manifest names, read once (in parallel, on a pool
//! of the I/O concurrency, like `verify_blobs`) and judged by `stowage_model::build`.
//!
//! Why here: it is a read of the storage that only the inventory can direct (which blobs are
//! configs), like the scan's manifest phase; the analysis above stays pure. A config shared
//! by many manifests is read once; an index takes its newest platform's date (the platforms
//! known; if none is, the first platform's reason).

use std::collections::HashMap;

use stowage_layout as layout;
use stowage_model::build::{Build, BuildDate, BuildDates, ConfigDates, Unknown, parse_config};
use stowage_model::inventory::{BlobId, Inventory, ManifestRecord, RefRole};
use stowage_model::time::Timestamp;
use stowage_storage::Storage;

/// The registry's manifest limit; image configs are well below it.
const CONFIG_LIMIT: u64 = 4 << 20;

fn config_of(inv: &Inventory, m: &ManifestRecord) -> Option<BlobId> {
    inv.refs_of(m)
        .iter()
        .find(|r| r.role() == RefRole::Config)
        .map(|r| r.id())
}

/// Read the build date of every manifest of `inv`, judged at `now`.
pub fn read_build_dates(
    storage: &dyn Storage,
    inv: &Inventory,
    now: Timestamp,
    concurrency: usize,
) -> BuildDates {
    use rayon::prelude::*;
    let mut configs: Vec<BlobId> = inv
        .manifests
        .iter()
        .filter_map(|m| config_of(inv, m))
        .collect();
    configs.sort_unstable();
    configs.dedup();
    let read = |id: &BlobId| -> (BlobId, Result<ConfigDates, Unknown>) {
        // A blob the scan could not see (a symbolic-link directory, a data that is not a
        // regular file) is not read through: unknown, like a missing one.
        let seen = |b: &stowage_model::inventory::BlobFile| {
            inv.unlisted
                .binary_search(&layout::blob_dir(&b.digest))
                .is_err()
                && inv
                    .unlisted
                    .binary_search(&layout::blob_data(&b.digest))
                    .is_err()
        };
        let dates = match inv.blob(*id) {
            Some(b) if seen(b) => storage
                .read(&layout::blob_data(&b.digest), CONFIG_LIMIT)
                .map_err(|_| Unknown::Unreadable)
                .and_then(|bytes| parse_config(&bytes)),
            _ => Err(Unknown::Unreadable),
        };
        (*id, dates)
    };
    let read_all: Vec<(BlobId, Result<ConfigDates, Unknown>)> =
        match rayon::ThreadPoolBuilder::new()
            .num_threads(concurrency.max(1))
            .build()
        {
            Ok(pool) => pool.install(|| configs.par_iter().map(read).collect()),
            // No pool (thread limit): the same reads, one after the other.
            Err(_) => configs.iter().map(read).collect(),
        };
    let by_config: HashMap<BlobId, Result<ConfigDates, Unknown>> = read_all.into_iter().collect();
    let single = |m: &ManifestRecord| -> Option<Build> {
        let c = config_of(inv, m)?;
        Some(match by_config.get(&c) {
            Some(Ok(d)) => Build {
                date: d.date(now),
                config: *d,
            },
            Some(Err(u)) => Build {
                date: BuildDate::Unknown(*u),
                config: ConfigDates::default(),
            },
            None => Build {
                date: BuildDate::Unknown(Unknown::Unreadable),
                config: ConfigDates::default(),
            },
        })
    };
    let mut by_manifest = HashMap::new();
    for m in &inv.manifests {
        if let Some(b) = single(m) {
            by_manifest.insert(m.id, b);
        }
    }
    for m in &inv.manifests {
        if config_of(inv, m).is_some() {
            continue;
        }
        let children: Vec<Build> = inv
            .children_of(m)
            .map(|c| {
                by_manifest.get(&c).copied().unwrap_or(Build {
                    date: BuildDate::Unknown(Unknown::NoConfig),
                    config: ConfigDates::default(),
                })
            })
            .collect();
        let newest = children
            .iter()
            .filter(|b| b.date.at().is_some())
            .max_by_key(|b| b.date.at());
        let b = newest.or(children.first()).copied().unwrap_or(Build {
            date: BuildDate::Unknown(Unknown::NoConfig),
            config: ConfigDates::default(),
        });
        by_manifest.insert(m.id, b);
    }
    BuildDates { by_manifest, now }
}
