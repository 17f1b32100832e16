//! `stowage check`: integrity findings; exit 1 when any at or above `--fail-on`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::AtomicU64;

use anyhow::Result;
use serde::Serialize;
use stowage_model::finding::{Finding, Severity};
use stowage_model::time::Timestamp;
use stowage_report::schema;
use stowage_report::table::{Align, Table};

use super::{GraphFindings, load};
use crate::args::{CheckArgs, Format, Level};
use crate::exit;
use crate::output;
use crate::settings::Settings;

#[derive(Serialize)]
struct Document<'a> {
    schema: String,
    root: &'a str,
    generated_at: Timestamp,
    verified_digests: bool,
    counts: BTreeMap<&'static str, usize>,
    findings: &'a [Finding],
    /// Set on a registry whose links are not its metadata (GitLab's metadata database):
    /// "figures are from filesystem metadata only: <evidence>".
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_database: Option<String>,
}

pub fn run(s: &Settings, a: &CheckArgs) -> Result<i32> {
    // `check` may read more than inventory: every link file is read and compared with its path
    // unless --fast is given.
    let mut loaded = load(s, !a.fast, GraphFindings::List)?;
    if a.verify_digests {
        let started = std::time::Instant::now();
        let hashed = AtomicU64::new(0);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // Hashing is CPU-bound locally: one thread per core; on latency-bound storage, the
        // I/O concurrency.
        let conc = if s.storage.backend().is_latency_bound() {
            s.concurrency
        } else {
            cores
        };
        let found = stowage_scan::verify_blobs(
            &*s.storage,
            loaded.inv(),
            &stowage_scan::VerifyOptions { concurrency: conc },
            &hashed,
        );
        if s.verbose {
            let n = hashed.load(std::sync::atomic::Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            note!(
                "verified {n} bytes in {secs:.2}s ({:.0} MB/s)",
                n as f64 / secs / 1e6
            );
        }
        loaded.add_findings(found);
    }
    let threshold = match a.fail_on {
        Level::Info => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Error => Severity::Error,
    };
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for f in &loaded.inv().findings {
        *counts.entry(f.kind.as_str()).or_default() += 1;
    }
    let mut out = output::stdout();
    match s.format {
        Format::Json | Format::Parquet => output::json(
            &mut out,
            &Document {
                schema: schema("check"),
                root: &loaded.inv().root,
                generated_at: s.now,
                verified_digests: a.verify_digests,
                counts,
                findings: &loaded.inv().findings,
                metadata_database: loaded.metadata_database().map(|e| e.label()),
            },
        )?,
        Format::Ndjson => {
            for f in &loaded.inv().findings {
                output::ndjson(&mut out, f)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["severity", "kind", "path", "message"])?;
            for f in &loaded.inv().findings {
                w.write_record([
                    f.severity().to_string().as_str(),
                    f.kind.as_str(),
                    &f.path,
                    &f.message,
                ])?;
            }
            w.flush()?;
        }
        Format::Table => {
            if loaded.inv().findings.is_empty() {
                writeln!(out, "no problems found in {}", loaded.inv().root)?;
            } else {
                let mut t = Table::new(&[
                    ("SEVERITY", Align::Left),
                    ("KIND", Align::Left),
                    ("PATH", Align::Left),
                    ("PROBLEM", Align::Left),
                ]);
                let mut sorted: Vec<&Finding> = loaded.inv().findings.iter().collect();
                sorted.sort_by(|x, y| y.severity().cmp(&x.severity()).then_with(|| x.cmp(y)));
                for f in sorted {
                    t.row(vec![
                        f.severity().to_string(),
                        f.kind.to_string(),
                        f.path.clone(),
                        f.message.to_string(),
                    ]);
                }
                out.write_all(t.render().as_bytes())?;
                writeln!(out)?;
                for (k, n) in &counts {
                    writeln!(out, "{n:>6}  {k}")?;
                }
            }
        }
    }
    out.flush()?;
    let failing = loaded
        .inv()
        .findings
        .iter()
        .any(|f| f.severity() >= threshold);
    Ok(if failing { exit::FINDINGS } else { exit::OK })
}
