//! `stowage cache`: a pull-through cache's contents by expiry (what each repository,
//! manifest and blob is, when it was cached, when its TTL expires, and the expired bytes
//! still stored). Arguments -> `Analysis::cache_figures` -> render.

use std::io::Write;

use anyhow::{Result, bail};
use serde::Serialize;
use stowage_analysis::cache::CacheFigures;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::schema;
use stowage_report::table::{Align, Table};

use super::{GraphFindings, load};
use crate::args::Format;
use crate::output;
use crate::settings::Settings;

#[derive(clap::Args, Debug)]
pub struct CacheArgs {
    /// Also list every cached object (one row per scheduler entry).
    #[arg(long)]
    pub objects: bool,
}

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    root: &'a str,
    generated_at: Timestamp,
    #[serde(flatten)]
    cache: &'a CacheFigures,
}

pub fn run(s: &Settings, a: &CacheArgs) -> Result<i32> {
    let loaded = load(s, false, GraphFindings::Count)?;
    let Some(f) = loaded.cache_figures() else {
        bail!(
            "{} is not a pull-through cache: no scheduler-state.json beside docker/ and no proxy.remoteurl in --registry-config",
            loaded.inv().root
        );
    };
    let mut out = output::stdout();
    match s.format {
        Format::Json | Format::Parquet | Format::Ndjson | Format::Csv => output::json(
            &mut out,
            &Document {
                schema: schema("cache"),
                root: &loaded.inv().root,
                generated_at: s.now,
                cache: &f,
            },
        )?,
        Format::Table => print(&mut out, &f, a, s)?,
    }
    out.flush()?;
    Ok(crate::exit::OK)
}

fn when(t: Option<Timestamp>, s: &Settings) -> String {
    t.map(|t| t.human(&s.tz)).unwrap_or_else(|| "-".into())
}

fn print(out: &mut impl Write, f: &CacheFigures, a: &CacheArgs, s: &Settings) -> Result<()> {
    writeln!(
        out,
        "pull-through cache{} (by {}); scheduler state: {}",
        f.remote_url
            .as_deref()
            .map(|u| format!(" of {}", stowage_model::escape::escape(u)))
            .unwrap_or_default(),
        f.detected_by.join(", "),
        f.state
    )?;
    writeln!(
        out,
        "{} entries ({} manifests, {} blobs), {} expired; expired but still stored: {} in {} blobs; next expiry {}",
        f.entries,
        f.manifest_entries,
        f.blob_entries,
        f.expired_entries,
        human_bytes(f.expired_stored_bytes),
        f.expired_stored_blobs,
        when(f.next_expiry, s)
    )?;
    if !f.repositories.is_empty() {
        writeln!(out)?;
        let mut t = Table::new(&[
            ("REPOSITORY", Align::Left),
            ("MANIFESTS", Align::Right),
            ("BLOBS", Align::Right),
            ("EXPIRED", Align::Right),
            ("LAST CACHED", Align::Left),
            ("NEXT EXPIRY", Align::Left),
        ]);
        for r in &f.repositories {
            t.row(vec![
                stowage_model::escape::escape(&r.repository).into_owned(),
                r.manifests.to_string(),
                r.blobs.to_string(),
                r.expired.to_string(),
                when(r.last_cached, s),
                when(r.next_expiry, s),
            ]);
        }
        out.write_all(t.render().as_bytes())?;
    }
    if a.objects && !f.objects.is_empty() {
        writeln!(out)?;
        let mut t = Table::new(&[
            ("REPOSITORY", Align::Left),
            ("KIND", Align::Left),
            ("DIGEST", Align::Left),
            ("TAGS", Align::Left),
            ("SIZE", Align::Right),
            ("CACHED", Align::Left),
            ("EXPIRES", Align::Left),
            ("STATE", Align::Left),
        ]);
        for o in &f.objects {
            let state = match (o.expired, o.linked, o.stored) {
                (_, false, _) => "no link",
                (_, _, false) => "no data",
                (true, _, _) => "expired",
                (false, _, _) => "cached",
            };
            t.row(vec![
                stowage_model::escape::escape(&o.repository).into_owned(),
                format!("{:?}", o.kind).to_lowercase(),
                o.digest.clone(),
                stowage_model::escape::escape(&o.tags.join(",")).into_owned(),
                human_bytes(o.size),
                o.cached_at.human(&s.tz),
                o.expires.human(&s.tz),
                state.into(),
            ]);
        }
        out.write_all(t.render().as_bytes())?;
    }
    Ok(())
}
