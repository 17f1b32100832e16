//! Pull data for a plain `distribution` registry: its access logs and notification events
//! turned into [`UsageEvent`]s for the history database (`stowage-history`, module `usage`).
//!
//! - [`parse`]: one log line -> a request (logrus text and JSON, combined, GitLab).
//! - [`filter`]: scanners and probes are not use ([`Filter`], a default list).
//! - [`resolve`]: a pull by tag is attributed to the digest the tag pointed at *then*
//!   ([`TagTimeline`], from the storage's tag history).
//! - [`notify`]: the registry's notification envelope.
//! - [`Ingest`]: lines in, events and bookkeeping out.
//!
//! ```
//! use stowage_usage::{Filter, Ingest, TagTimeline};
//! let (filter, tags) = (Filter::default(), TagTimeline::default());
//! let mut ing = Ingest::new(&filter, &tags);
//! ing.line(r#"10.0.0.1 - - [23/Nov/2026:07:35:03 +0000] "GET /v2/a/manifests/sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e HTTP/1.1" 200 426 "" "docker/24""#, || "stdin:1".into());
//! let done = ing.finish();
//! assert_eq!(done.events.len(), 1);
//! ```

pub mod events;
pub mod filter;
pub mod lines;
pub mod notify;
pub mod parse;
pub mod resolve;
pub mod view;

use std::collections::HashMap;

use events::{IngestStats, UsageAction, UsageEvent};
use sha2::{Digest as _, Sha256};
use stowage_model::time::Timestamp;

pub use filter::{DEFAULT_IGNORED_USER_AGENTS, Filter, FilterConfig, FilterError};
pub use lines::{LineRead, MAX_LINE, read_line};
pub use notify::{NotifyError, Received, Window, parse_envelope, parse_envelope_within};
pub use parse::{Format, Line, Request, manifest_target, parse_line};
pub use resolve::TagTimeline;

/// The key of a request with an id (see `events` and the store's `usage` module): logs and notifications
/// of the same request share it.
pub fn key_of_request(request_id: &str, action: UsageAction) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"request\0");
    h.update(request_id.as_bytes());
    h.update(b"\0");
    h.update(action.as_str().as_bytes());
    truncate(h.finalize().as_slice())
}

fn key_of_line(line: &str, occurrence: u32) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"line\0");
    h.update(line.as_bytes());
    h.update(b"\0");
    h.update(occurrence.to_le_bytes());
    truncate(h.finalize().as_slice())
}

fn truncate(d: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// The earliest date a log line of this registry can plausibly carry: its oldest blob
/// (by modification time) less `skew_secs`; `None` for an empty registry.
/// After a copy that did not keep modification times this is the copy's date, and older
/// real lines are rejected (and counted): the safe side, since retention then sees less
/// pull data, never more.
pub fn earliest_plausible(inv: &stowage_model::Inventory, skew_secs: i64) -> Option<Timestamp> {
    inv.blobs
        .iter()
        .map(|b| b.modified())
        .filter(|t| t.0 > 0)
        .min()
        .map(|t| t.saturating_sub_secs(skew_secs))
}

/// Unparseable lines shown as examples.
const EXAMPLES: usize = 5;

/// Log lines in ([`Ingest::line`]), events and bookkeeping out ([`Ingest::finish`]).
pub struct Ingest<'a> {
    filter: &'a Filter,
    tags: &'a TagTimeline,
    stats: IngestStats,
    events: Vec<UsageEvent>,
    /// Events from combined-format lines, kept apart: when the same input also has logrus
    /// access lines (`docker logs` mixes the registry's stdout and stderr), each request is in
    /// both, and the logrus line (with request id and user) is the one counted.
    combined: Vec<UsageEvent>,
    combined_requests: u64,
    structured: bool,
    occurrences: HashMap<[u8; 16], u32>,
    examples: Vec<String>,
    /// Lines dated after this are rejected (counted, not recorded): see [`Ingest::reject_after`].
    latest: Option<Timestamp>,
    /// Lines dated before this are rejected likewise: see [`Ingest::reject_before`].
    earliest: Option<Timestamp>,
}

/// What an ingest produced.
#[derive(Debug)]
pub struct Ingested {
    pub events: Vec<UsageEvent>,
    pub stats: IngestStats,
    /// A few unparseable lines, with where they came from.
    pub examples: Vec<String>,
    /// Combined-format requests left out because logrus lines of the same requests were present.
    pub combined_skipped: u64,
}

impl<'a> Ingest<'a> {
    pub fn new(filter: &'a Filter, tags: &'a TagTimeline) -> Ingest<'a> {
        Ingest {
            filter,
            tags,
            stats: IngestStats::default(),
            events: Vec::new(),
            combined: Vec::new(),
            combined_requests: 0,
            structured: false,
            occurrences: HashMap::new(),
            examples: Vec::new(),
            latest: None,
            earliest: None,
        }
    }

    /// Reject lines dated after `t` (now plus the allowed clock skew): a log cannot hold
    /// what has not happened yet, and a line from the future would make its day look covered.
    pub fn reject_after(mut self, t: Timestamp) -> Ingest<'a> {
        self.latest = Some(t);
        self
    }

    /// Reject lines dated before `t`: the registry's first write less the allowed skew
    /// ([`earliest_plausible`]). A registry cannot have served a pull before it stored
    /// anything, and one line dated 1971 would otherwise claim the registry was watched since
    /// then (issue 25: forged evidence unblocking a `not_pulled_within` deletion).
    pub fn reject_before(mut self, t: Timestamp) -> Ingest<'a> {
        self.earliest = Some(t);
        self
    }

    /// A line longer than the limit was skipped ([`read_line`] gave [`LineRead::TooLong`]).
    pub fn too_long(&mut self) {
        self.stats.lines_read += 1;
        self.stats.too_long += 1;
    }

    /// Whether a line dated `t` is outside what the logs can hold (counted when so).
    fn rejected(&mut self, t: Timestamp) -> bool {
        let out = self.latest.is_some_and(|l| t > l) || self.earliest.is_some_and(|e| t < e);
        if out {
            self.stats.rejected += 1;
            self.stats.coverage.rejected += 1;
        }
        out
    }

    /// One line; `origin` (e.g. `access.log.2.gz:1234`) is only called for an example.
    pub fn line(&mut self, line: &str, origin: impl FnOnce() -> String) {
        self.stats.lines_read += 1;
        match parse_line(line) {
            Line::Blank => {}
            Line::Other(t) => {
                self.stats.other_lines += 1;
                if let Some(t) = t
                    && !self.rejected(t)
                {
                    self.stats.saw(t);
                }
            }
            Line::Unparseable(why) => {
                self.stats.unparseable += 1;
                if self.examples.len() < EXAMPLES {
                    let mut l: String = line.trim_end().chars().take(200).collect();
                    if l.len() < line.trim_end().len() {
                        l.push('…');
                    }
                    self.examples.push(format!("{}: {why}: {l}", origin()));
                }
            }
            Line::Request(r) => {
                if self.rejected(r.time) {
                    return;
                }
                self.stats.saw(r.time);
                if r.format == Format::Combined {
                    self.combined_requests += 1;
                } else {
                    self.stats.requests += 1;
                    self.structured = true;
                }
                if let Some(ev) = self.event(&r, line) {
                    if r.format == Format::Combined {
                        self.combined.push(ev);
                    } else {
                        self.count(&ev);
                        self.events.push(ev);
                    }
                }
            }
        }
    }

    fn event(&mut self, r: &Request<'_>, line: &str) -> Option<UsageEvent> {
        let target = manifest_target(&r.uri)?;
        let ok = (200..300).contains(&r.status) || r.status == 304;
        let action = match r.method.as_ref() {
            "GET" | "HEAD" if ok => UsageAction::Pull,
            "PUT" if ok => UsageAction::Push,
            "DELETE" if ok => UsageAction::Delete,
            _ => {
                // Counted as a manifest request, not recorded (failed, or another method).
                if r.format != Format::Combined {
                    self.stats.manifest_events += 1;
                }
                return None;
            }
        };
        if r.format != Format::Combined {
            self.stats.manifest_events += 1;
        }
        let key = match &r.request_id {
            Some(id) => key_of_request(id, action),
            None => {
                let k = key_of_line(line.trim_end_matches(['\r', '\n']), 0);
                let n = self.occurrences.entry(k).or_insert(0);
                *n += 1;
                key_of_line(line.trim_end_matches(['\r', '\n']), *n - 1)
            }
        };
        let (digest, unresolved) = if target.is_digest {
            (Some(target.reference.clone()), None)
        } else if action == UsageAction::Delete {
            (None, None)
        } else {
            match self
                .tags
                .resolve(&target.repository, &target.reference, r.time)
            {
                Ok(d) => (Some(d.to_string()), None),
                Err(why) => (None, Some(why.to_string())),
            }
        };
        let ignored = self
            .filter
            .check(r.user_agent.as_deref(), r.remote_addr.as_deref());
        Some(UsageEvent {
            key,
            at: r.time,
            action,
            method: Some(r.method.to_string()),
            repository: target.repository,
            reference: target.reference,
            digest,
            unresolved,
            status: Some(r.status),
            user_agent: r.user_agent.as_ref().map(|c| c.to_string()),
            remote_addr: r.remote_addr.as_ref().map(|c| c.to_string()),
            user: r.user.as_ref().map(|c| c.to_string()),
            ignored,
            source: r.format.source().to_string(),
        })
    }

    fn count(&mut self, e: &UsageEvent) {
        if e.ignored.is_some() && e.action == UsageAction::Pull {
            self.stats.ignored += 1;
        }
        if e.action == UsageAction::Pull && e.ignored.is_none() && e.digest.is_none() {
            self.stats.unresolved += 1;
        }
    }

    /// Take the events gathered so far that are final (from logrus and GitLab lines), so a
    /// long input can be written in batches; combined-format events wait for [`finish`],
    /// which knows whether logrus lines of the same requests came too.
    ///
    /// [`finish`]: Ingest::finish
    pub fn take_events(&mut self) -> Vec<UsageEvent> {
        std::mem::take(&mut self.events)
    }

    /// Events gathered and not yet taken (to decide when to take them).
    pub fn pending(&self) -> usize {
        self.events.len()
    }

    /// The remaining events (combined-format ones unless logrus lines were present) and the
    /// bookkeeping of the whole input.
    pub fn finish(mut self) -> Ingested {
        let mut combined_skipped = 0;
        if self.structured {
            combined_skipped = self.combined_requests;
            self.combined.clear();
        } else {
            self.stats.requests += self.combined_requests;
            self.stats.manifest_events += self.combined.len() as u64;
            let combined = std::mem::take(&mut self.combined);
            for e in &combined {
                self.count(e);
            }
            self.events.extend(combined);
        }
        Ingested {
            events: self.events,
            stats: self.stats,
            examples: self.examples,
            combined_skipped,
        }
    }
}
