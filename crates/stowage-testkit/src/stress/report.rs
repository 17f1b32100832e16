//! What a stress run found, and the table the test and `bench/online-stress.sh` print.

use std::fmt::Write as _;
use std::time::Duration;

use super::pushers::{PullFailure, PushOutcome};
use super::{InvocationOutcome, Scenario, Setup, render};

/// Raw observations of [`super::run`], before summarising.
pub(super) struct Observed {
    pub pushes: Vec<PushOutcome>,
    pub broken: Vec<(String, String)>,
    pub kept_broken: Vec<(String, String)>,
    pub pulls: usize,
    pub pull_failures: Vec<PullFailure>,
    pub invocations: Vec<InvocationOutcome>,
    pub trigger_at: Option<Duration>,
    pub collected_at: Duration,
    pub phases: Vec<(&'static str, Duration)>,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub label: String,
    pub pushes: Vec<PushOutcome>,
    /// Pushes the client was told succeeded that do not pull: `ref (details): error`.
    pub broken: Vec<String>,
    /// Kept images that do not pull afterwards.
    pub kept_broken: Vec<String>,
    pub pulls: usize,
    /// Pulls of kept images that failed while the collector ran (transient or not).
    pub pull_failures: Vec<PullFailure>,
    pub invocations: Vec<InvocationOutcome>,
    pub trigger_at: Option<Duration>,
    pub collected_at: Duration,
    /// Blobs of victims nobody pushed again that are gone from the storage / their number.
    pub garbage_removed: usize,
    pub garbage_total: usize,
    /// Cross-repository mount requests in the registry's access log, by answer.
    pub mounts_201: usize,
    pub mounts_202: usize,
    /// Wall time of the run's phases (informational, never asserted).
    pub phases: Vec<(&'static str, Duration)>,
}

impl RunResult {
    pub fn succeeded(&self) -> usize {
        self.pushes.iter().filter(|p| p.result.is_ok()).count()
    }

    /// Pushes the client saw fail (a visible failure: the client retries).
    pub fn failed(&self) -> Vec<String> {
        self.pushes
            .iter()
            .filter_map(|p| {
                let e = p.result.as_ref().err()?;
                Some(format!(
                    "{}:{} ({}): {e}",
                    p.push.repo,
                    p.push.tag,
                    p.push.kind.name()
                ))
            })
            .collect()
    }

    /// Visible push failures counted by kind: the push kind and the registry's error code (or
    /// the tail of skopeo's message).
    pub fn failure_kinds(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for p in &self.pushes {
            let Err(e) = &p.result else { continue };
            let code = e
                .split("\"code\":\"")
                .nth(1)
                .and_then(|c| c.split('"').next())
                .map(str::to_string)
                .unwrap_or_else(|| {
                    e.rsplit(": ")
                        .next()
                        .unwrap_or(e)
                        .chars()
                        .take(60)
                        .collect()
                });
            *m.entry(format!("{} {code}", p.push.kind.name()))
                .or_insert(0) += 1;
        }
        m
    }

    /// When pulls of kept images failed during the run (first and last failure), and the
    /// first failure's message: the transient failure a client saw, if any.
    pub fn pull_outage(&self) -> Option<String> {
        let first = self.pull_failures.iter().min_by_key(|f| f.at)?;
        let last = self.pull_failures.iter().map(|f| f.at).max()?;
        let msg = first.error.rsplit(": ").next().unwrap_or(&first.error);
        Some(format!(
            "+{:.2}s..+{:.2}s ({})",
            first.at.as_secs_f64(),
            last.as_secs_f64(),
            msg.chars().take(80).collect::<String>()
        ))
    }

    /// Pushes that started before the collector finished.
    pub fn raced(&self) -> usize {
        self.pushes
            .iter()
            .filter(|p| p.started < self.collected_at)
            .count()
    }

    /// Everything needed to understand a failed run.
    pub fn explain(&self) -> String {
        let mut s = format!(
            "run {}: trigger at {:?}, collector done at {:.3}s; {} pushes ({} ok, {} raced), {} broken, {} kept broken\n",
            self.label,
            self.trigger_at.map(|t| format!("+{:.3}s", t.as_secs_f64())),
            self.collected_at.as_secs_f64(),
            self.pushes.len(),
            self.succeeded(),
            self.raced(),
            self.broken.len(),
            self.kept_broken.len()
        );
        for b in self.broken.iter().chain(&self.kept_broken) {
            let _ = writeln!(s, "  BROKEN {b}");
        }
        for f in self.failed() {
            let _ = writeln!(s, "  failed visibly: {f}");
        }
        for inv in &self.invocations {
            let _ = writeln!(
                s,
                "collector {:?}: exit {:?}{}\n{}",
                inv.args,
                inv.exit,
                if inv.killed_on_line {
                    " (killed on its line)"
                } else {
                    ""
                },
                render(&inv.output)
            );
        }
        s
    }
}

fn mounts(log: &str) -> (usize, usize) {
    let mut n = (0, 0);
    for l in log
        .lines()
        .filter(|l| l.contains("\"POST /v2/") && l.contains("mount="))
    {
        if l.contains("HTTP/1.1\" 201") {
            n.0 += 1;
        } else if l.contains("HTTP/1.1\" 202") {
            n.1 += 1;
        }
    }
    n
}

pub(super) fn result(sc: &Scenario, st: &Setup, o: Observed) -> RunResult {
    let by_ref = |r: &str| {
        o.pushes
            .iter()
            .find(|p| format!("{}:{}", p.push.repo, p.push.tag) == r)
    };
    let broken = o
        .broken
        .iter()
        .map(|(r, e)| match by_ref(r) {
            Some(p) => format!(
                "{r} (image {} {}, {}, pushed +{:.3}s..+{:.3}s, told success): {e}",
                p.image_name,
                p.digest,
                p.push.kind.name(),
                p.started.as_secs_f64(),
                p.ended.as_secs_f64()
            ),
            None => format!("{r}: {e}"),
        })
        .collect();
    let needed = sc.victims.div_ceil(2);
    let v2 = st.places.storage.join("docker/registry/v2/blobs/sha256");
    let garbage: Vec<&String> = st.victims.list[needed..]
        .iter()
        .flat_map(|i| &i.blobs)
        .collect();
    let garbage_removed = garbage
        .iter()
        .filter(|d| {
            let hex = d.trim_start_matches("sha256:");
            !v2.join(&hex[..2]).join(hex).join("data").exists()
        })
        .count();
    let (mounts_201, mounts_202) = mounts(&st.registry.log());
    RunResult {
        label: sc.label.clone(),
        pushes: o.pushes,
        broken,
        kept_broken: o
            .kept_broken
            .iter()
            .map(|(r, e)| format!("{r} (kept): {e}"))
            .collect(),
        pulls: o.pulls,
        pull_failures: o.pull_failures,
        invocations: o.invocations,
        trigger_at: o.trigger_at,
        collected_at: o.collected_at,
        garbage_removed,
        garbage_total: garbage.len(),
        mounts_201,
        mounts_202,
        phases: o.phases,
    }
}

/// Totals over the runs of one collector.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub collector: String,
    pub runs: usize,
    pub pushes_ok: usize,
    pub raced: usize,
    pub failed_visibly: usize,
    pub broken: usize,
    pub kept_broken: usize,
    pub pull_failures: usize,
    pub garbage_removed: usize,
    pub garbage_total: usize,
}

impl Summary {
    pub fn add(&mut self, r: &RunResult) {
        self.runs += 1;
        self.pushes_ok += r.succeeded();
        self.raced += r.raced();
        self.failed_visibly += r.failed().len();
        self.broken += r.broken.len();
        self.kept_broken += r.kept_broken.len();
        self.pull_failures += r.pull_failures.len();
        self.garbage_removed += r.garbage_removed;
        self.garbage_total += r.garbage_total;
    }
}

/// A Markdown table of summaries.
pub fn table(rows: &[Summary]) -> String {
    let mut s = String::from(
        "| collector | runs | pushes ok | started during GC | failed visibly | broken (silently) | kept broken | pulls failed during GC | garbage removed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | **{}** | {} | {} | {}/{} |",
            r.collector,
            r.runs,
            r.pushes_ok,
            r.raced,
            r.failed_visibly,
            r.broken,
            r.kept_broken,
            r.pull_failures,
            r.garbage_removed,
            r.garbage_total
        );
    }
    s
}
