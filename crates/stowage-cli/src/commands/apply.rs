//! `stowage apply PLAN`, `stowage restore DIR`, `stowage quarantine purge DIR`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use stowage_model::escape::escape;
use stowage_model::time::human_bytes;
use stowage_plan::Plan;
use stowage_plan::apply::{ApplyOptions, CacheStep, Mode, cache_step, default_journal};
use stowage_storage::registry_config::BlobCache;

use crate::args::{ApplyArgs, Format, GlobalArgs, PurgeArgs, RegistryCacheArg, RestoreArgs};
use crate::exit;
use crate::output;
use crate::pipeline;
use crate::settings::{Settings, parse_age};

pub fn run(s: &Settings, a: &ApplyArgs) -> Result<i32> {
    let plan = Plan::read(&a.plan)?;
    if plan.is_empty() {
        println!("the plan is empty: nothing to do");
        return Ok(exit::OK);
    }
    // Retention and surgery plans collect what they free only with --gc.
    let gc_gated = plan.retention.is_some() || plan.surgery.is_some();
    let mut what = format!(
        "{} tags, {} blobs ({}), {} manifests, {} history entries, {} layer links, {} uploads, {} empty directories from {}",
        plan.tags.len(),
        if gc_gated && !a.gc {
            0
        } else {
            plan.blobs.len()
        },
        human_bytes(if gc_gated && !a.gc {
            0
        } else {
            plan.blob_bytes
        }),
        plan.manifests.len(),
        plan.tag_index_entries.len(),
        plan.layer_links.len(),
        plan.uploads.len(),
        plan.empty_dirs.len(),
        plan.storage
    );
    if let Some(sg) = &plan.surgery {
        what = format!(
            "{}: {} repositories, {} links to create; {what}",
            sg.operation.as_str(),
            sg.repositories.len(),
            sg.links.len()
        );
    }
    let verb = if a.quarantine.is_some() {
        "move to quarantine"
    } else {
        "DELETE"
    };
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "refusing to {verb} without confirmation: stdin is not a terminal; pass --yes to apply {}",
                a.plan.display()
            );
        }
        eprint!("{verb} {what}?\nType 'yes' to continue: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        if line.trim() != "yes" {
            note!("not applied");
            return Ok(exit::OK);
        }
    }
    // A registry config that enables GitLab's metadata database: never overridable.
    if let Some(e) = &s.metadata_database {
        bail!("{}", e.refusal());
    }
    let mut opts = options(s, a)?;
    opts.ignore_metadata_signature = s.ignore_metadata_signature;
    if opts.mode == Mode::Online {
        note!(
            "apply: online (the registry may keep serving): fence, settle {}s, {}, verify, then delete",
            opts.settle.as_secs(),
            match &opts.cache {
                CacheStep::Nothing => "no cache to empty".to_string(),
                CacheStep::Restart { command, .. } => format!("restart the registry ({command})"),
                CacheStep::Redis { addr, .. } =>
                    format!("invalidate the blob keys in redis at {addr}"),
            }
        );
    }
    let progress = |m: &str| note!("apply: {}", escape(m));
    let rep = match &plan.retention {
        Some(ret) => {
            let protect = stowage_plan::retention::recheck(
                &plan,
                ret,
                s.now,
                s.storage.clone(),
                |p: &std::path::Path| pipeline::load_pulls(p).map_err(|e| format!("{e:#}")),
            )?;
            stowage_plan::apply::apply_checked(
                &s.writable,
                &plan,
                &opts,
                Some(&protect),
                &progress,
            )?
        }
        None => stowage_plan::apply::apply(&s.writable, &plan, &opts, &progress)?,
    };
    for w in &rep.warnings {
        note!("warning: {}", escape(w));
    }
    let mut out = output::stdout();
    match s.format {
        Format::Table => print_table(&mut out, a, &opts, &rep)?,
        _ => output::json(&mut out, &rep)?,
    }
    out.flush()?;
    Ok(if rep.skipped.is_empty() {
        exit::OK
    } else {
        exit::FINDINGS
    })
}

/// The human summary of an apply: counts, what was skipped or restored and why, where the
/// journal and any kept batch are, and what the operator still has to do.
fn print_table(
    out: &mut dyn Write,
    a: &ApplyArgs,
    opts: &ApplyOptions,
    rep: &stowage_plan::apply::ApplyReport,
) -> Result<()> {
    writeln!(
        out,
        "{}: {} tags, {} blobs, {} manifests, {} history entries, {} layer links, {} uploads, {} directories; {} freed in {:.1}s",
        if a.quarantine.is_some() || a.keep_quarantine.is_some() {
            "quarantined"
        } else {
            "deleted"
        },
        rep.tags,
        rep.blobs,
        rep.manifests,
        rep.tag_index_entries,
        rep.layer_links,
        rep.uploads,
        rep.empty_dirs,
        human_bytes(rep.bytes_freed),
        rep.seconds
    )?;
    if rep.repository_sections > 0 || rep.links_created > 0 {
        writeln!(
            out,
            "surgery: {} repository sections removed, {} links created and read back",
            rep.repository_sections, rep.links_created
        )?;
    }
    if rep.already_done > 0 {
        writeln!(
            out,
            "already done by an earlier, interrupted run: {}",
            rep.already_done
        )?;
    }
    if !rep.skipped.is_empty() {
        writeln!(
            out,
            "skipped {} (changed since the plan, or still needed):",
            rep.skipped.len()
        )?;
        for sk in &rep.skipped {
            writeln!(out, "  {}: {}", escape(&sk.path), escape(&sk.reason))?;
        }
    }
    if opts.mode == Mode::Online {
        writeln!(
            out,
            "online: {} fenced, settled {}s; cache: {}; {} restored",
            rep.fenced,
            rep.settle_seconds,
            rep.cache,
            rep.restored.len()
        )?;
        for x in &rep.restored {
            writeln!(out, "  restored {}: {}", escape(&x.path), escape(&x.reason))?;
        }
    }
    writeln!(out, "journal: {}", rep.journal.display())?;
    if let Some(q) = &a.quarantine {
        writeln!(
            out,
            "quarantine: {} (stowage restore {} puts it back)",
            q.display(),
            q.display()
        )?;
    } else if let (Some(q), Some(age)) = (&opts.quarantine, &a.keep_quarantine) {
        writeln!(
            out,
            "fenced targets kept in {} (stowage quarantine purge {} --older-than {age} deletes them)",
            q.display(),
            q.display()
        )?;
    }
    if opts.mode == Mode::Offline {
        writeln!(
            out,
            "Restart the registry (or flush its redis blob-descriptor cache) before it serves again: its cache may still claim deleted blobs exist."
        )?;
    }
    Ok(())
}

/// Resolve apply's options: the mode, the settle wait, and what the registry's blob
/// descriptor cache needs (refusing an online apply that cannot be made safe).
fn options(s: &Settings, a: &ApplyArgs) -> Result<ApplyOptions> {
    let mode = if a.offline {
        Mode::Offline
    } else {
        Mode::Online
    };
    // A flag that contradicts the registry's own config is a mistake, not an override: the
    // config is what the running registry read.
    if let (Some(flag), Some(c)) = (a.registry_cache, &s.registry_config) {
        let agrees = matches!(
            (flag, &c.blob_cache),
            (RegistryCacheArg::None, BlobCache::None)
                | (RegistryCacheArg::Inmemory, BlobCache::InMemory)
                | (RegistryCacheArg::Redis, BlobCache::Redis { .. })
        );
        if !agrees {
            bail!(
                "--registry-cache {flag:?} contradicts the registry config, whose blob descriptor cache is {:?}",
                c.blob_cache
            );
        }
    }
    let cache_setting = match (a.registry_cache, &s.registry_config) {
        (Some(RegistryCacheArg::None), _) => Some(BlobCache::None),
        (Some(RegistryCacheArg::Inmemory), _) => Some(BlobCache::InMemory),
        (Some(RegistryCacheArg::Redis), Some(c))
            if matches!(c.blob_cache, BlobCache::Redis { .. }) =>
        {
            Some(c.blob_cache.clone())
        }
        (Some(RegistryCacheArg::Redis), _) => Some(BlobCache::Redis {
            addr: a.redis_addr.clone(),
            password: None,
            db: 0,
        }),
        (None, Some(c)) => Some(c.blob_cache.clone()),
        (None, None) => None,
    };
    let cache = match (mode, &cache_setting) {
        // A redis cache outlives the stopped registry: its keys are deleted offline too.
        (Mode::Offline, Some(BlobCache::Redis { addr, password, db })) if !addr.is_empty() => {
            CacheStep::Redis {
                addr: addr.clone(),
                password: password.clone(),
                db: *db,
            }
        }
        (Mode::Offline, _) => CacheStep::Nothing,
        (Mode::Online, _) => cache_step(
            cache_setting.as_ref(),
            a.registry_restart.as_deref(),
            a.registry_url.as_deref(),
        )
        .map_err(|why| anyhow::anyhow!("refusing an online apply: {why}"))?,
    };
    let settle = parse_age(&a.settle).context("--settle")?;
    if let Some(k) = &a.keep_quarantine {
        parse_age(k).context("--keep-quarantine")?;
    }
    let quarantine = match (&a.quarantine, mode) {
        (Some(q), _) => Some(q.clone()),
        (None, Mode::Offline) => None,
        // Online: fence into the storage's own place, else beside the plan file (object
        // stores keep the data in the bucket; the directory holds the journal).
        (None, Mode::Online) => Some(s.writable.default_quarantine().unwrap_or_else(|| {
            let mut p = a.plan.as_os_str().to_owned();
            p.push(".quarantine");
            std::path::PathBuf::from(p)
        })),
    };
    let mut opts = ApplyOptions::new(s.now, cache);
    opts.journal = a
        .journal
        .clone()
        // Kept batches hold their journal (`stowage restore` reads it there).
        .or_else(|| {
            (a.quarantine.is_none() && a.keep_quarantine.is_none())
                .then(|| default_journal(&a.plan))
        });
    opts.quarantine = quarantine;
    opts.concurrency = s.concurrency;
    opts.require_quiet = a.require_quiet;
    opts.registry_readonly = s.registry_config.as_ref().map(|c| c.readonly);
    opts.gc = a.gc;
    opts.mode = mode;
    opts.settle = std::time::Duration::from_secs(settle.max(0) as u64);
    opts.keep_fenced = a.quarantine.is_some() || a.keep_quarantine.is_some();
    Ok(opts)
}

pub fn restore(s: &Settings, a: &RestoreArgs) -> Result<i32> {
    let rep = stowage_plan::quarantine::restore(&s.writable, &a.dir)
        .with_context(|| format!("restoring from {}", a.dir.display()))?;
    let mut out = output::stdout();
    match s.format {
        Format::Table => {
            writeln!(
                out,
                "restored {} paths and {} directories from {} batch(es)",
                rep.restored,
                rep.directories,
                rep.batches.len()
            )?;
            for (p, why) in &rep.failed {
                writeln!(out, "  NOT restored {}: {}", escape(p), escape(why))?;
            }
            if !rep.created_left.is_empty() {
                writeln!(
                    out,
                    "the apply also created {} link(s) (a repo-move's destination), left in place; to undo the destination too, remove exactly these:",
                    rep.created_left.len()
                )?;
                for p in &rep.created_left {
                    writeln!(out, "  {}", escape(p))?;
                }
            }
        }
        _ => output::json(&mut out, &rep)?,
    }
    out.flush()?;
    Ok(if rep.failed.is_empty() {
        exit::OK
    } else {
        exit::FINDINGS
    })
}

pub fn purge(g: &GlobalArgs, a: &PurgeArgs) -> Result<i32> {
    let age = parse_age(&a.older_than)?;
    let now = crate::settings::resolve_now(g)?;
    // Object stores keep quarantined data in the bucket: purging needs the storage too.
    let storage = if g.storage.is_some() || g.registry_config.is_some() {
        Some(Settings::resolve(g)?)
    } else {
        None
    };
    let removed = stowage_plan::quarantine::purge_in(
        storage
            .as_ref()
            .map(|s| &*s.writable as &dyn stowage_storage::StorageWrite),
        &a.dir,
        age,
        now,
    )
    .with_context(|| format!("purging {}", a.dir.display()))?;
    for r in &removed {
        println!("purged {}", r.display());
    }
    if removed.is_empty() {
        println!("no batch older than {}", a.older_than);
    }
    Ok(exit::OK)
}
