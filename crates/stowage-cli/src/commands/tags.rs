//! `stowage tags REPO`: tags with digest, type, platforms, sizes, when moved, and history.

use std::io::Write;

use anyhow::{Result, bail};
use serde::Serialize;
use stowage_graph::Graph;
use stowage_model::time::{Timestamp, human_bytes};
use stowage_report::table::{Align, Table};
use stowage_report::{TagRecord, schema, tag_records};

use super::inventory::short;
use super::{findings_exit, load};
use crate::args::{Format, TagsArgs};
use crate::output;
use crate::settings::Settings;

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    repository: &'a str,
    generated_at: Timestamp,
    tags: &'a [TagRecord],
}

fn kind_label(mt: Option<&str>) -> &'static str {
    match mt {
        Some(stowage_model::manifest::OCI_INDEX) => "oci-index",
        Some(stowage_model::manifest::DOCKER_LIST) => "docker-list",
        Some(stowage_model::manifest::OCI_MANIFEST) => "oci",
        Some(stowage_model::manifest::DOCKER_SCHEMA2) => "docker-v2",
        Some(stowage_model::manifest::DOCKER_SCHEMA1)
        | Some(stowage_model::manifest::DOCKER_SCHEMA1_SIGNED) => "docker-v1",
        Some(_) => "other",
        None => "?",
    }
}

pub fn run(s: &Settings, a: &TagsArgs) -> Result<i32> {
    let loaded = load(s, false)?;
    let inv = &loaded.inv;
    let name = a.repository.trim_matches('/');
    let Some(ri) = inv
        .repositories
        .iter()
        .position(|r| r.name.as_str() == name)
    else {
        let mut near: Vec<&str> = inv
            .repositories
            .iter()
            .map(|r| r.name.as_str())
            .filter(|r| r.contains(name) || name.contains(r.rsplit('/').next().unwrap_or(r)))
            .collect();
        near.truncate(5);
        if near.is_empty() {
            bail!(
                "no repository {name:?} in {} ({} repositories; `stowage du` lists them)",
                inv.root,
                inv.repositories.len()
            );
        }
        bail!("no repository {name:?}; did you mean {}?", near.join(", "));
    };
    let g = Graph::new(inv);
    let u = stowage_graph::usage(&g);
    let rows = tag_records(&g, &u, ri);
    let mut out = output::stdout();
    match s.format {
        Format::Json => output::json(
            &mut out,
            &Document {
                schema: schema("tags"),
                repository: name,
                generated_at: s.now,
                tags: &rows,
            },
        )?,
        Format::Ndjson => {
            for r in &rows {
                output::ndjson(&mut out, r)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record([
                "repository",
                "tag",
                "digest",
                "media_type",
                "platforms",
                "total",
                "exclusive",
                "moved",
                "history",
            ])?;
            for r in &rows {
                w.write_record([
                    r.repository.as_str(),
                    &r.tag,
                    r.digest.as_deref().unwrap_or(""),
                    r.media_type.unwrap_or(""),
                    &r.platforms.join(";"),
                    &r.total.to_string(),
                    &r.exclusive.to_string(),
                    &r.moved.map(|m| m.rfc3339()).unwrap_or_default(),
                    &r.history.len().to_string(),
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut t = Table::new(&[
                ("TAG", Align::Left),
                ("DIGEST", Align::Left),
                ("TYPE", Align::Left),
                ("PLATFORMS", Align::Left),
                ("SIZE", Align::Right),
                ("EXCLUSIVE", Align::Right),
                ("MOVED", Align::Left),
                ("HISTORY", Align::Right),
            ]);
            for r in &rows {
                t.row(vec![
                    r.tag.clone(),
                    r.digest.as_deref().map(short).unwrap_or_else(|| "-".into()),
                    match &r.artifact_type {
                        Some(_) => "artifact".into(),
                        None => kind_label(r.media_type).into(),
                    },
                    if r.platforms.is_empty() {
                        "-".into()
                    } else {
                        r.platforms.join(",")
                    },
                    human_bytes(r.total),
                    human_bytes(r.exclusive),
                    r.moved
                        .map(|m| m.human(&s.tz))
                        .unwrap_or_else(|| "-".into()),
                    r.history.len().to_string(),
                ]);
            }
            out.write_all(t.render().as_bytes())?;
            if a.history {
                for r in &rows {
                    writeln!(out, "\n{}:{} history (newest first):", r.repository, r.tag)?;
                    for h in &r.history {
                        let cur = if Some(&h.digest) == r.digest.as_ref() {
                            " (current)"
                        } else {
                            ""
                        };
                        let gone = if h.exists { "" } else { " (blob gone)" };
                        writeln!(out, "  {}  {}{cur}{gone}", h.date.human(&s.tz), h.digest)?;
                    }
                }
            }
            writeln!(
                out,
                "\nSIZE = distinct bytes of the image (all platforms); EXCLUSIVE = freed by deleting this tag and collecting untagged manifests."
            )?;
        }
    }
    out.flush()?;
    Ok(findings_exit(&loaded.findings))
}
