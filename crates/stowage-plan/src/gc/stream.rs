//! A [`GcPlan`] written as its plan file without making the [`Plan`]: the same serializer
//! (`serde_json`'s pretty printer) is handed the same fields in the same order, and each
//! list's records are made from the rows one at a time by the functions
//! [`GcPlan::into_plan`] uses, so the bytes are [`Plan::write_json`]'s (tested on generated
//! registries and on the golden sample: `tests/gc_stream.rs`).

use std::io::Write;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::rows::GcPlan;
use crate::plan::Plan;

/// A list serialized from an iterator made on demand (the rows, mapped to records).
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `Vec`'s own `Serialize` is `collect_seq` over its slice: the same calls.
        s.collect_seq((self.0)())
    }
}

/// The plan's fields in `Plan`'s order, with `Plan`'s skip rules.
struct View<'p, 'a>(&'p GcPlan<'a>);

impl Serialize for View<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        // Every field named: a field added to `Plan` does not compile here until it is
        // written here too.
        let Plan {
            schema,
            kind,
            created_at,
            storage,
            options,
            bytes,
            blob_bytes,
            upload_bytes,
            manifests: _,
            tag_index_entries: _,
            layer_links: _,
            blobs: _,
            uploads,
            empty_dirs,
            held_back,
            kept_unlike_registry: _,
            manifests_kept_unlike_registry: _,
            blocked,
            tags,
            retention,
            would_break,
            listing,
            cache,
            surgery,
        } = &p.head;
        let skipped = usize::from(retention.is_none())
            + usize::from(listing.is_none())
            + usize::from(cache.is_none())
            + usize::from(surgery.is_none());
        let mut st = s.serialize_struct("Plan", 24 - skipped)?;
        st.serialize_field("schema", schema)?;
        st.serialize_field("kind", kind)?;
        st.serialize_field("created_at", created_at)?;
        st.serialize_field("storage", storage)?;
        st.serialize_field("options", options)?;
        st.serialize_field("bytes", bytes)?;
        st.serialize_field("blob_bytes", blob_bytes)?;
        st.serialize_field("upload_bytes", upload_bytes)?;
        st.serialize_field(
            "manifests",
            &Seq(|| p.manifests.iter().map(|r| p.manifest(r))),
        )?;
        st.serialize_field(
            "tag_index_entries",
            &Seq(|| p.tag_index_entries.iter().map(|r| p.tag_index(r))),
        )?;
        st.serialize_field(
            "layer_links",
            &Seq(|| p.layer_links.iter().map(|r| p.link(r))),
        )?;
        st.serialize_field("blobs", &Seq(|| p.blobs.iter().map(|r| p.blob(r))))?;
        st.serialize_field("uploads", uploads)?;
        st.serialize_field("empty_dirs", empty_dirs)?;
        st.serialize_field("held_back", held_back)?;
        st.serialize_field(
            "kept_unlike_registry",
            &Seq(|| p.kept.iter().map(|r| p.kept(r))),
        )?;
        st.serialize_field(
            "manifests_kept_unlike_registry",
            &Seq(|| p.kept_manifests.iter().map(|r| p.kept_manifest(r))),
        )?;
        st.serialize_field("blocked", blocked)?;
        st.serialize_field("tags", tags)?;
        match retention {
            Some(r) => st.serialize_field("retention", r)?,
            None => st.skip_field("retention")?,
        }
        st.serialize_field("would_break", would_break)?;
        match listing {
            Some(l) => st.serialize_field("listing", l)?,
            None => st.skip_field("listing")?,
        }
        match cache {
            Some(c) => st.serialize_field("cache", c)?,
            None => st.skip_field("cache")?,
        }
        match surgery {
            Some(x) => st.serialize_field("surgery", x)?,
            None => st.skip_field("surgery")?,
        }
        st.end()
    }
}

/// [`GcPlan::write_json`]: pretty JSON and a newline, as [`Plan::write_json`] writes.
pub(super) fn write_json(p: &GcPlan<'_>, w: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &View(p))?;
    w.write_all(b"\n")
}
