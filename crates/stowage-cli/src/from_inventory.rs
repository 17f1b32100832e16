//! `--from-inventory`: the storage listed from a provider's inventory report
//! (`stowage_storage::provider`), read live (`stowage_storage::listing::ListedStorage`).

use std::sync::Arc;

use anyhow::{Context, Result};
use stowage_model::Timestamp;
use stowage_storage::Storage;
use stowage_storage::listing::ListedStorage;
use stowage_storage::provider::{self, Fetch, Scope};

/// Wrap `storage` so that its listings come from the report at `report`. Returns the
/// storage, the report's description and its date.
pub fn wrap(
    storage: Arc<dyn Storage>,
    report: &str,
    fetch: &Fetch<'_>,
) -> Result<(Arc<dyn Storage>, String, Timestamp)> {
    // The storage's own URL says which bucket and prefix the report's keys must be in.
    let described = storage.describe();
    let scope = match described.split_once("://") {
        Some((_, rest)) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            Scope {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            }
        }
        // A filesystem holding a bucket's copy (or a generated registry's sparse tree, see
        // stowage-gen --inventory): the report's keys below `docker/registry/v2/` of any
        // bucket, the rootdirectory being the bucket's root.
        None => Scope {
            bucket: String::new(),
            prefix: stowage_layout::LAYOUT_ROOT.to_owned(),
        },
    };
    let listing = provider::load(report, &scope, fetch)
        .with_context(|| format!("reading the inventory report {report}"))?;
    let (source, date) = (listing.source.clone(), listing.date);
    Ok((Arc::new(ListedStorage::new(listing, storage)), source, date))
}
