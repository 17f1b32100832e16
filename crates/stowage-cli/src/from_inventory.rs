//! `--from-inventory`: the storage listed from a provider's inventory report
//! (`stowage_storage::provider`), read live (`stowage_storage::listing::ListedStorage`).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
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
    let Some((_, rest)) = described.split_once("://") else {
        bail!(
            "--from-inventory reads the inventory report of a bucket, but the storage {described} is a filesystem"
        );
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let scope = Scope {
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
    };
    let listing = provider::load(report, &scope, fetch)
        .with_context(|| format!("reading the inventory report {report}"))?;
    let (source, date) = (listing.source.clone(), listing.date);
    Ok((Arc::new(ListedStorage::new(listing, storage)), source, date))
}
