//! `inventory -o FILE.parquet`: the blob records as a Parquet table (`stowage-parquet`),
//! with the JSON records' field names and the `stowage.inventory/v1` schema name. Links and
//! uploads go beside it (`FILE.links.parquet`, `FILE.uploads.parquet`) when asked for.

use std::path::Path;

use anyhow::Result;

use super::View;

#[cfg(feature = "parquet")]
pub fn write(v: &View<'_, '_>, path: &Path) -> Result<()> {
    use anyhow::Context;
    use stowage_parquet::{Column, Kind, TableWriter};
    use stowage_report::{BlobRecordBuilder, schema};

    let blob_cols = [
        Column::new("digest", Kind::Str),
        Column::new("size", Kind::Int),
        Column::new("modified", Kind::Time),
        Column::new("created", Kind::Time),
        Column::new("kind", Kind::Str),
        Column::new("media_type", Kind::Str),
        Column::new("referenced", Kind::Bool),
        Column::new("repositories", Kind::StrList),
        Column::new("tags", Kind::StrList),
        Column::new("manifests", Kind::StrList),
        Column::new("linked_in", Kind::StrList),
        Column::new("path", Kind::Str),
        Column::new("last_pulled", Kind::Time),
    ];
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // `lake/registry=prod/date=2030-01-01/inventory.parquet`: the partition directories.
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let create = |p: &Path| {
        std::fs::File::create(p)
            .map(|f| std::io::BufWriter::with_capacity(1 << 16, f))
            .with_context(|| format!("writing {}", p.display()))
    };
    let mut w = TableWriter::new(create(path)?, &schema("inventory"), &blob_cols)?;
    let mut b = BlobRecordBuilder::new(v.g);
    let mut buf = Vec::new();
    for id in v.ids.iter() {
        buf.clear();
        v.record_json(&mut b, id, &mut buf)?;
        w.push(&serde_json::from_slice(&buf)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut f = w.finish()?;
    std::io::Write::flush(&mut f).with_context(|| format!("writing {}", path.display()))?;
    let side = |suffix: &str| path.with_extension(format!("{suffix}.parquet"));
    if let Some(links) = &v.links {
        let cols = [
            Column::new("kind", Kind::Str),
            Column::new("repository", Kind::Str),
            Column::new("tag", Kind::Str),
            Column::new("digest", Kind::Str),
            Column::new("modified", Kind::Time),
            Column::new("target_exists", Kind::Bool),
            Column::new("path", Kind::Str),
        ];
        let p = side("links");
        let mut w = TableWriter::new(create(&p)?, &schema("inventory.links"), &cols)?;
        for l in links {
            w.push(&serde_json::to_value(l)?)?;
        }
        std::io::Write::flush(&mut w.finish()?)?;
    }
    if let Some(ups) = &v.uploads {
        let cols = [
            Column::new("repository", Kind::Str),
            Column::new("id", Kind::Str),
            Column::new("started_at", Kind::Time),
            Column::new("total_size", Kind::Int),
            Column::new("path", Kind::Str),
        ];
        let p = side("uploads");
        let mut w = TableWriter::new(create(&p)?, &schema("inventory.uploads"), &cols)?;
        for u in ups {
            w.push(&serde_json::to_value(u)?)?;
        }
        std::io::Write::flush(&mut w.finish()?)?;
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
