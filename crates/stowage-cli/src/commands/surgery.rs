//! `stowage plan repo-delete | repo-move | tag-delete`: storage surgery plans (read-only),
//! printed or saved for `stowage apply` (`stowage_plan::surgery`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use stowage_model::escape::escape_lines;
use stowage_model::time::human_bytes;
use stowage_plan::Plan;
use stowage_plan::surgery::{self, LinkKind, SurgeryOptions};
use stowage_storage::{Storage as _, StorageWrite as _};

use super::{GraphFindings, load};
use crate::args::Format;
use crate::output;
use crate::settings::{Settings, parse_age};

/// What every surgery plan takes.
#[derive(Args, Debug)]
pub struct SurgeryCommon {
    /// Write the plan (JSON) here, for review and `stowage apply`.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Blobs written more recently than this are not counted as freed (a push may be using
    /// them); "0s" turns it off.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub grace: String,
}

#[derive(Args, Debug)]
pub struct RepoDeleteArgs {
    /// Repository names or globs (`team/*` stays within one level, `team/**` goes below).
    /// Repositories nested below a named one are kept unless named too.
    #[arg(required = true, value_name = "REPO")]
    pub repositories: Vec<String>,
    #[command(flatten)]
    pub common: SurgeryCommon,
}

#[derive(Args, Debug)]
pub struct RepoMoveArgs {
    pub source: String,
    pub destination: String,
    /// Keep the source (a copy: the destination's links are created, nothing is removed).
    #[arg(long)]
    pub copy: bool,
    /// The destination exists: add the source's tags to it (tags of the same name must
    /// point at the same digest).
    #[arg(long)]
    pub merge: bool,
    #[command(flatten)]
    pub common: SurgeryCommon,
}

#[derive(Args, Debug)]
pub struct TagDeleteArgs {
    /// `REPO:TAG` (repeatable): the tag and its history go, the manifest stays.
    #[arg(required = true, value_name = "REPO:TAG")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub common: SurgeryCommon,
}

fn options(c: &SurgeryCommon) -> Result<SurgeryOptions> {
    Ok(SurgeryOptions {
        grace_seconds: parse_age(&c.grace).context("--grace")?,
    })
}

pub fn repo_delete(s: &Settings, a: &RepoDeleteArgs) -> Result<i32> {
    let opts = options(&a.common)?;
    let loaded = load(s, false, GraphFindings::Count)?;
    super::refuse_deleting(&loaded, s)?;
    let plan = surgery::repo_delete(&loaded.graph(), &a.repositories, &opts, s.now)?;
    finish(s, &a.common, &plan)
}

pub fn repo_move(s: &Settings, a: &RepoMoveArgs) -> Result<i32> {
    let opts = options(&a.common)?;
    if !s.writable.can_create_files() {
        anyhow::bail!(
            "repo-move writes links, which this storage ({}) cannot do; nothing was planned",
            s.writable.describe()
        );
    }
    let loaded = load(s, false, GraphFindings::Count)?;
    super::refuse_deleting(&loaded, s)?;
    let plan = surgery::repo_move(
        &loaded.graph(),
        &a.source,
        &a.destination,
        a.copy,
        a.merge,
        &opts,
        s.now,
    )?;
    finish(s, &a.common, &plan)
}

pub fn tag_delete(s: &Settings, a: &TagDeleteArgs) -> Result<i32> {
    let opts = options(&a.common)?;
    let loaded = load(s, false, GraphFindings::Count)?;
    super::refuse_deleting(&loaded, s)?;
    let plan = surgery::tag_delete(&loaded.graph(), &a.tags, &opts, s.now)?;
    finish(s, &a.common, &plan)
}

fn finish(s: &Settings, c: &SurgeryCommon, plan: &Plan) -> Result<i32> {
    if let Some(path) = &c.out {
        output::write_file(path, |w| plan.write_json(w))?;
        note!(
            "plan written to {}; review it, then: stowage apply {} (--gc also collects what it frees)",
            path.display(),
            path.display()
        );
        note!(
            "{}",
            stowage_plan::apply::mode_hint(s.registry_config.as_ref().map(|c| &c.blob_cache))
        );
    }
    let mut out = output::stdout();
    match s.format {
        Format::Json | Format::Parquet | Format::Ndjson | Format::Csv => {
            plan.write_json(&mut out)?
        }
        Format::Table => print(&mut out, plan)?,
    }
    out.flush()?;
    Ok(crate::exit::OK)
}

/// The human summary: what goes, what is created, what is freed and what stays shared.
fn print(out: &mut dyn Write, p: &Plan) -> Result<()> {
    let Some(sg) = &p.surgery else {
        return Ok(());
    };
    let mut text = String::new();
    use std::fmt::Write as _;
    writeln!(
        text,
        "{}: {}",
        sg.operation.as_str(),
        sg.requested.join(" ")
    )?;
    for r in &sg.repositories {
        writeln!(
            text,
            "  remove {}: {} tags, {} manifests, {} layer links, {} uploads",
            r.repository, r.tags, r.revisions, r.layers, r.uploads
        )?;
    }
    if !sg.links.is_empty() {
        let n = |k: LinkKind| sg.links.iter().filter(|l| l.kind == k).count();
        writeln!(
            text,
            "  create under {}: {} layer links, {} manifests, {} history entries, {} tags",
            sg.destination.as_deref().unwrap_or("?"),
            n(LinkKind::Layer),
            n(LinkKind::Revision),
            n(LinkKind::TagIndex),
            n(LinkKind::TagCurrent)
        )?;
    }
    for t in &sg.merged_tags {
        writeln!(text, "  already in the destination, same digest: {t}")?;
    }
    for t in &p.tags {
        writeln!(
            text,
            "  remove tag {}:{} ({})",
            t.repository, t.tag, t.digest
        )?;
    }
    for n in &sg.nested_kept {
        writeln!(text, "  kept, nested below but not selected: {n}")?;
    }
    writeln!(
        text,
        "frees after GC: {} blobs ({}), {} manifests; collected by `stowage apply --gc`",
        p.blobs.len(),
        human_bytes(p.blob_bytes),
        p.manifests.len()
    )?;
    writeln!(
        text,
        "kept (shared with what remains, or held back): {} blobs ({})",
        sg.shared.len(),
        human_bytes(sg.shared_bytes)
    )?;
    for b in &p.blocked {
        writeln!(text, "BLOCKED: {b}")?;
    }
    // Names come from the storage and the command line: escaped as a whole.
    out.write_all(escape_lines(&text).as_bytes())?;
    Ok(())
}
