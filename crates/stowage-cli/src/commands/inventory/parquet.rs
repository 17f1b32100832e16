//! `inventory -o FILE.parquet`: the blob records as a Parquet table (`stowage-parquet`),
//! with the JSON records' field names and the `stowage.inventory/v1` schema name. Links and
//! uploads go beside it (`FILE.links.parquet`, `FILE.uploads.parquet`) when asked for.

use std::path::Path;

use anyhow::Result;

use super::View;

#[cfg(feature = "parquet")]
pub fn write(v: &View<'_, '_>, path: &Path) -> Result<()> {
    use stowage_parquet::tables;
    use stowage_report::{BlobRecordBuilder, schema};

    // Blob records are built one at a time (a base layer's lists every tag that uses it).
    let mut w = tables::File::create(path, &schema("inventory"), &tables::inventory())?;
    let mut b = BlobRecordBuilder::new(v.g);
    let mut buf = Vec::new();
    for id in v.ids.iter() {
        buf.clear();
        v.record_json(&mut b, id, &mut buf)?;
        w.push(&serde_json::from_slice(&buf)?)?;
    }
    w.finish()?;
    let side = |suffix: &str| path.with_extension(format!("{suffix}.parquet"));
    if let Some(links) = &v.links {
        crate::output::write_parquet(&side("links"), "inventory.links", links)?;
    }
    if let Some(ups) = &v.uploads {
        crate::output::write_parquet(&side("uploads"), "inventory.uploads", ups)?;
    }
    Ok(())
}

#[cfg(not(feature = "parquet"))]
pub fn write(_: &View<'_, '_>, path: &Path) -> Result<()> {
    anyhow::bail!(
        "{}: this build of stowage has no Parquet output; build it with the default features (or --features parquet)",
        path.display()
    )
}
