//! The registry's notification envelope (`application/vnd.docker.distribution.events.v1+json`;
//! distribution 3.x names it `...events.v2+json`, same shape): `{"events": [...]}`, each event
//! with `id`, `timestamp`, `action` (pull, push, mount, delete), `target` (`mediaType`,
//! `digest`, `repository`, `tag`, ...), `request` (`id`, `addr`, `method`, `useragent`) and
//! `actor.name`.
//!
//! Manifest events only (a manifest or index media type): blob pulls are not image pulls.
//! Deletes carry no media type and are recorded as they come (informational). Each event's
//! key is its request id and action, the same key as the request's logrus access-log line,
//! so a pull seen both in the logs and by notification counts once; events without a
//! request id are keyed by their event id.

use crate::events::{Coverage, UsageAction, UsageEvent};
use serde::Deserialize;
use stowage_model::time::Timestamp;

use crate::filter::Filter;
use crate::key_of_request;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("not a notification envelope: {0}")]
    Json(String),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    events: Vec<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    id: String,
    timestamp: String,
    action: String,
    target: Target,
    request: RequestRecord,
    actor: Actor,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Target {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    repository: String,
    tag: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestRecord {
    id: String,
    addr: String,
    method: String,
    useragent: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Actor {
    name: String,
}

/// What one envelope held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub events: Vec<UsageEvent>,
    /// Events in the envelope.
    pub total: u64,
    /// Blob events, mounts, and events we cannot use (no repository, bad digest, bad time).
    pub skipped: u64,
    /// Earliest and latest event time (of events accepted).
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// The days of the events accepted, and how many were rejected for their date.
    pub coverage: Coverage,
}

/// The times a receiver accepts events from: from when it started listening, less the
/// allowed clock skew, to now plus the skew. The registry sends events as they happen (and
/// retries a failed delivery), so an event dated before the receiver started, or in the
/// future, was not sent to it by the registry: a forged old event would otherwise make
/// years look covered by pull data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub earliest: Timestamp,
    pub latest: Timestamp,
}

impl Window {
    /// `started` and `now`, widened by `skew_secs` each way.
    pub fn new(started: Timestamp, now: Timestamp, skew_secs: i64) -> Window {
        Window {
            earliest: started.saturating_sub_secs(skew_secs),
            latest: now.saturating_sub_secs(-skew_secs),
        }
    }

    fn contains(&self, t: Timestamp) -> bool {
        self.earliest <= t && t <= self.latest
    }
}

fn is_manifest_type(mt: &str) -> bool {
    mt.contains("manifest") || mt.contains("image.index") || mt.contains("prettyjws")
}

/// Parse an envelope body. A malformed envelope is an error; unusable events are skipped.
pub fn parse_envelope(body: &[u8], filter: &Filter) -> Result<Received, NotifyError> {
    parse_envelope_within(body, filter, None)
}

/// [`parse_envelope`], rejecting (and counting) events dated outside `window`.
pub fn parse_envelope_within(
    body: &[u8],
    filter: &Filter,
    window: Option<Window>,
) -> Result<Received, NotifyError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| NotifyError::Json(e.to_string()))?;
    let mut out = Received {
        total: env.events.len() as u64,
        ..Received::default()
    };
    for v in env.events {
        let Ok(e) = serde_json::from_value::<Event>(v) else {
            out.skipped += 1;
            continue;
        };
        let Some(at) = Timestamp::parse_rfc3339(&e.timestamp) else {
            out.skipped += 1;
            continue;
        };
        if window.is_some_and(|w| !w.contains(at)) {
            out.coverage.rejected += 1;
            continue;
        }
        out.coverage.saw(at);
        out.first_at = Some(out.first_at.map_or(at, |f| f.min(at)));
        out.last_at = Some(out.last_at.map_or(at, |l| l.max(at)));
        let action = match e.action.as_str() {
            "pull" => UsageAction::Pull,
            "push" => UsageAction::Push,
            "delete" => UsageAction::Delete,
            _ => {
                out.skipped += 1;
                continue;
            }
        };
        let manifest = is_manifest_type(&e.target.media_type);
        let delete = action == UsageAction::Delete && e.target.media_type.is_empty();
        let digest_ok = e
            .target
            .digest
            .parse::<stowage_model::digest::Digest>()
            .is_ok();
        if e.target.repository.is_empty() || !(manifest || delete) {
            out.skipped += 1;
            continue;
        }
        // A tag delete (3.x) names a tag and no digest; anything else needs a digest.
        let tag_delete = delete && !e.target.tag.is_empty();
        if !digest_ok && !tag_delete {
            out.skipped += 1;
            continue;
        }
        let reference = if e.target.tag.is_empty() {
            e.target.digest.clone()
        } else {
            e.target.tag.clone()
        };
        let nz = |s: String| (!s.is_empty()).then_some(s);
        let ua = nz(e.request.useragent);
        let addr = nz(e.request.addr);
        let key_id = if e.request.id.is_empty() {
            format!("event:{}", e.id)
        } else {
            e.request.id.clone()
        };
        out.events.push(UsageEvent {
            key: key_of_request(&key_id, action),
            at,
            action,
            method: nz(e.request.method),
            repository: e.target.repository,
            reference,
            digest: digest_ok.then_some(e.target.digest),
            unresolved: None,
            status: None,
            ignored: filter.check(ua.as_deref(), addr.as_deref()),
            user_agent: ua,
            remote_addr: addr,
            user: nz(e.actor.name),
            source: "notification".into(),
        });
    }
    Ok(out)
}
