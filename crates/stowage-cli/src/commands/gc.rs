//! `stowage gc`: build a garbage-collection plan (read-only) and print or save it.

use std::io::Write;

use anyhow::{Context, Result};
use stowage_model::escape::escape;
use stowage_model::time::human_bytes;
use stowage_plan::gc::PlanLists;
use stowage_plan::{GcOptions, Plan};
use stowage_policy::file::WouldBreakAction;
use stowage_report::table::{self, Align, Table};

use super::{GraphFindings, load};
use crate::args::{Format, GcArgs};
use crate::output;
use crate::settings::{Settings, parse_age};

pub fn options(a: &GcArgs) -> Result<GcOptions> {
    let grace = parse_age(&a.grace).context("--grace")?;
    let uploads = match (&a.uploads_older_than, a.tidy) {
        (Some(s), _) => Some(parse_age(s).context("--uploads-older-than")?),
        (None, true) => Some(7 * 86400),
        (None, false) => None,
    };
    Ok(GcOptions {
        delete_untagged: a.delete_untagged,
        grace_seconds: grace,
        uploads_older_than_seconds: uploads,
        dangling_links: a.dangling_links || a.tidy,
        empty_dirs: a.empty_dirs || a.tidy,
        cache: false,
        cache_max_bytes: a
            .cache_max_bytes
            .as_deref()
            .map(crate::settings::parse_size)
            .transpose()
            .context("--cache-max-bytes")?,
        orphan_signatures: a.orphan_signatures,
    })
}

/// Whether the registry is a pull-through cache, known before scanning: its `config.yml`
/// names a remote, or its scheduler state file is there (read once more by the scan). A cache's plan
/// follows its scheduler entries, which need every blob stated, so it is scanned whole
/// from the start, once (it was scanned twice: a scan that stated only candidates, then
/// the full one).
fn is_pull_through_cache(s: &Settings) -> bool {
    let remote = s
        .registry_config
        .as_ref()
        .and_then(|c| c.proxy_remoteurl.as_deref());
    !stowage_analysis::cache::detected_before_scan(&*s.storage, remote).is_empty()
}

pub fn run(s: &Settings, a: &GcArgs) -> Result<i32> {
    let mut opts = options(a)?;
    // A plain `gc` (with or without -m) stats only what its plan names. The options that
    // look at every blob's presence or every link's file (dangling links, empty
    // directories, orphaned signatures) and a cache's size cap stat everything.
    // Where the storage lists sizes and dates with its listing (object stores, a provider
    // report), everything is stated anyway.
    let every_file = opts.dangling_links
        || opts.empty_dirs
        || opts.orphan_signatures
        || opts.cache_max_bytes.is_some();
    let cache = is_pull_through_cache(s);
    let mut candidates_only = !(every_file || s.storage.prefers_tree_listing() || cache);
    // A plain `gc` (no -m) plans nothing from the tags' history: not listed on a disk (two
    // listings per tag), not kept from a listing or a report (8 bytes an entry: at 1M
    // objects of the CI shape, 608k entries, more than a tenth of the scan's memory). So
    // history it cannot read does not make its repository incomplete either: it is not a
    // root, and the registry's own GC never reads it.
    let skip_history = !opts.delete_untagged && !every_file && !cache;
    let mut loaded = crate::pipeline::load_stating(
        s,
        false,
        GraphFindings::Count,
        candidates_only,
        skip_history,
    )?;
    if (candidates_only || skip_history) && !loaded.proxy_cache().is_empty() {
        // A cache's plan follows its scheduler entries and plans its stale history: scan
        // it whole. (Known before the scan as a rule, `is_pull_through_cache`; this is for
        // a state file written, or readable, only between that look and the scan.)
        candidates_only = false;
        loaded = load(s, false, GraphFindings::Count)?;
    }
    super::refuse_deleting(&loaded, s)?;
    if !loaded.proxy_cache().is_empty() {
        anyhow::ensure!(
            !opts.delete_untagged,
            "this storage is a pull-through cache: its untagged manifests are images pulled by digest, not garbage (goharbor/harbor#23570); `stowage gc` without --delete-untagged evicts the expired ones"
        );
        opts.cache = true;
    } else {
        anyhow::ensure!(
            opts.cache_max_bytes.is_none(),
            "--cache-max-bytes is for pull-through caches, and this storage is not one (no scheduler-state.json, no proxy.remoteurl)"
        );
    }
    // The pull data orders a size cap (least recently pulled first) and checks the plan.
    let pulls = a
        .pulls
        .as_deref()
        .map(crate::pipeline::load_pulls)
        .transpose()?;
    let order = stowage_plan::cache::CapOrder {
        pulls: pulls.as_ref(),
        ..Default::default()
    };
    let loaded = if candidates_only {
        // Settle the registry: stat what the plan names, until it names nothing unstated.
        let settled = stowage_analysis::settle(loaded, &*s.storage, s.concurrency, |l| {
            let named =
                stowage_plan::gc::build_rows(&l.graph(), &opts, s.now, order).named_digests();
            ((), named)
        });
        match settled {
            Ok((l, ())) => l,
            Err(e) => {
                note!("note: {e}");
                load(s, false, GraphFindings::Count)?
            }
        }
    } else {
        loaded
    };
    // Again on the registry the plan is made from: a scan that stated only candidates
    // knows the dates the metadata-database signature counts only once the plan settled
    // (every unlinked blob is a candidate, stated by then).
    super::refuse_deleting(&loaded, s)?;
    let g = loaded.graph();
    let mut rows = stowage_plan::gc::build_rows(&g, &opts, s.now, order);
    rows.set_listing(
        s.listing
            .as_ref()
            .map(|(report, date)| stowage_plan::plan::ListingSource {
                report: report.clone(),
                date: *date,
            }),
    );
    if pulls.is_none() {
        // The plan file made from its rows as it is written, never whole in memory (at 10
        // million objects the whole plan was 400 MiB: issue 22). Same bytes. The table
        // too: its rows are made twice (widths, then lines), none kept.
        emit(a, s, rows.bytes(), |w| rows.write_json(w))?;
        if matches!(s.format, Format::Table) {
            let mut out = output::stdout();
            print_plan(&mut out, &rows, s)?;
            out.flush()?;
        }
        return Ok(crate::exit::OK);
    }
    // The pull check reads (and marks) the whole plan.
    let mut plan = rows.into_plan();
    if let Some(data) = pulls {
        let action = match a.would_break.as_str() {
            "block" => WouldBreakAction::Block,
            "accept" => WouldBreakAction::Accept,
            _ => WouldBreakAction::Warn,
        };
        stowage_plan::replay::check(&mut plan, Some(&data), action, None, s.now);
        let wb = &plan.would_break;
        if !wb.pulls.is_empty() && action != WouldBreakAction::Accept {
            note!(
                "{}: {} (--would-break {})",
                if action == WouldBreakAction::Block {
                    "blocked"
                } else {
                    "warning"
                },
                escape(&wb.note),
                action.as_str()
            );
            for b in &wb.pulls {
                note!(
                    "  {} ({} pulled as {}, last {} by {})",
                    escape(&b.image),
                    b.pulls,
                    escape(&b.reference),
                    b.last_pulled.rfc3339(),
                    escape(&b.client)
                );
            }
        }
    }
    emit(a, s, plan.bytes, |w| plan.write_json(w))?;
    if matches!(s.format, Format::Table) {
        let mut out = output::stdout();
        print_plan(&mut out, &plan, s)?;
        out.flush()?;
    }
    Ok(crate::exit::OK)
}

/// The plan file to `--out` (with the notes that say what next), and, unless the output is
/// a table, to standard output; `write` writes the plan file.
fn emit(
    a: &GcArgs,
    s: &Settings,
    bytes: u64,
    write: impl Fn(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    if let Some(path) = &a.out {
        crate::output::write_file(path, |w| write(w))?;
        note!(
            "plan written to {} ({} to free); review it, then: stowage apply {}",
            path.display(),
            human_bytes(bytes),
            path.display()
        );
        note!(
            "{}",
            stowage_plan::apply::mode_hint(s.registry_config.as_ref().map(|c| &c.blob_cache))
        );
    }
    if !matches!(s.format, Format::Table) {
        let mut out = output::stdout();
        write(&mut out)?;
        out.flush()?;
    }
    Ok(())
}

pub fn print_plan(out: &mut impl Write, lists: &dyn PlanLists, s: &Settings) -> Result<()> {
    let p = lists.head();
    let [n_manifests, n_blobs, n_history, n_links] = lists.counts();
    print_orphan_signatures(out, p)?;
    if n_manifests > 0 {
        let header = [
            (
                if p.cache.is_some() {
                    "EXPIRED MANIFEST"
                } else {
                    "UNTAGGED MANIFEST"
                },
                Align::Left,
            ),
            ("REPOSITORY", Align::Left),
            ("PUSHED", Align::Left),
        ];
        let rows = || {
            lists
                .manifest_records()
                .map(|m| vec![m.digest.to_string(), m.repository, m.modified.human(&s.tz)])
        };
        table::stream(&header, rows, out)?;
        writeln!(out)?;
    }
    if n_blobs > 0 {
        let header = [
            ("BLOB", Align::Left),
            ("SIZE", Align::Right),
            ("MODIFIED", Align::Left),
            ("WHY", Align::Left),
        ];
        let rows = || {
            lists.blob_records().map(|b| {
                vec![
                    b.digest.to_string(),
                    human_bytes(b.size),
                    b.modified.human(&s.tz),
                    b.reason.to_string(),
                ]
            })
        };
        table::stream(&header, rows, out)?;
        writeln!(out)?;
    }
    if !p.uploads.is_empty() {
        let mut t = Table::new(&[
            ("UPLOAD", Align::Left),
            ("REPOSITORY", Align::Left),
            ("SIZE", Align::Right),
            ("STARTED", Align::Left),
        ]);
        for u in &p.uploads {
            t.row(vec![
                u.id.clone(),
                u.repository.clone(),
                human_bytes(u.size),
                u.started_at
                    .map(|t| t.human(&s.tz))
                    .unwrap_or_else(|| "unknown".into()),
            ]);
        }
        out.write_all(t.render().as_bytes())?;
        writeln!(out)?;
    }
    let mut kept = lists.kept_records().peekable();
    if kept.peek().is_some() {
        writeln!(
            out,
            "Kept, although the registry's own GC would delete them:"
        )?;
        for k in kept {
            writeln!(
                out,
                "  {} ({}): {}",
                k.digest.short(),
                human_bytes(k.size),
                k.reason
            )?;
        }
        writeln!(out)?;
    }
    let mut kept = lists.kept_manifest_records().peekable();
    if kept.peek().is_some() {
        writeln!(
            out,
            "Manifests kept, although the registry's GC --delete-untagged would delete them:"
        )?;
        for k in kept {
            writeln!(out, "  {}@{}: {}", k.repository, k.digest.short(), k.reason)?;
        }
        writeln!(out)?;
    }
    for b in &p.blocked {
        writeln!(out, "BLOCKED: {b}")?;
    }
    if let Some(c) = &p.cache {
        writeln!(
            out,
            "cache: {} expired images evicted, {} tags; {}: {} entries removed, {} extended (still needed by a live image)",
            c.evicted_manifests,
            p.tags.len(),
            c.file,
            c.remove.len(),
            c.extend.len()
        )?;
        writeln!(out, "apply: {}", c.note)?;
    }
    writeln!(
        out,
        "plan: {} blobs ({}), {} untagged manifests, {} history entries, {} layer links, {} uploads ({}), {} directories; frees {} in all",
        n_blobs,
        human_bytes(p.blob_bytes),
        n_manifests,
        n_history,
        n_links,
        p.uploads.len(),
        human_bytes(p.upload_bytes),
        p.empty_dirs.len(),
        human_bytes(p.bytes)
    )?;
    let h = &p.held_back;
    if !h.blobs.is_empty() || !h.manifests.is_empty() || !h.uploads.is_empty() {
        writeln!(
            out,
            "held back by the {}s grace period: {} blobs ({}), {} manifests, {} uploads ({})",
            p.options.grace_seconds,
            h.blobs.len(),
            human_bytes(h.blob_bytes),
            h.manifests.len(),
            h.uploads.len(),
            human_bytes(h.upload_bytes)
        )?;
    }
    if !p.would_break.action.is_empty() {
        // Checked with --pulls: say what was found (the pulls themselves are on stderr).
        writeln!(out, "recent pulls: {}", escape(&p.would_break.note))?;
    }
    // The head's big lists are empty when the records come from rows: the counts decide.
    if p.is_empty() && n_manifests + n_blobs + n_history + n_links == 0 {
        writeln!(out, "nothing to do")?;
    }
    Ok(())
}

/// `--orphan-signatures`: the signature tags removed because their subject is gone.
fn print_orphan_signatures(out: &mut impl Write, p: &Plan) -> Result<()> {
    let orphans: Vec<_> = p.tags.iter().filter(|t| t.orphan_of.is_some()).collect();
    if !orphans.is_empty() {
        let mut t = Table::new(&[
            ("ORPHANED SIGNATURE TAG", Align::Left),
            ("REPOSITORY", Align::Left),
            ("SUBJECT (IN NO REPOSITORY)", Align::Left),
        ]);
        for o in orphans {
            t.row(vec![
                escape(&o.tag).into_owned(),
                escape(&o.repository).into_owned(),
                o.orphan_of
                    .as_ref()
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
            ]);
        }
        out.write_all(t.render().as_bytes())?;
        writeln!(out)?;
    }
    if !p.held_back.tags.is_empty() {
        writeln!(
            out,
            "{} orphaned signature tags are newer than the grace period and kept for now",
            p.held_back.tags.len()
        )?;
        writeln!(out)?;
    }
    Ok(())
}
