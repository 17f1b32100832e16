//! `POST /api/v1/notifications`: the registry's notification webhook, recorded as pull data,
//! and `GET /api/v1/usage`: last pulls of the served scan's images.
//!
//! The registry (`notifications.endpoints` in its `config.yml`) POSTs an envelope of events
//! and treats any 2xx or 3xx answer as delivered; anything else (and a timeout) is retried
//! with backoff, forever, holding the events of that endpoint in memory meanwhile. So: a
//! well-formed envelope gets 200 as soon as it is recorded (even when every event in it is
//! a blob event or a duplicate); a wrong secret gets 401 and a malformed body 400 (a
//! misconfiguration the registry's log shows, rather than events silently dropped); a
//! failure to write the database gets 500, so the registry retries (the write is one
//! transaction, and events are keyed, so a retry never double counts).
//!
//! Pull data decides deletions (`not_pulled_within`), so the webhook is guarded: it needs
//! the shared secret, or an explicit `insecure_loopback` (`--insecure-loopback-webhook`,
//! loopback binds only); without a secret the `Host` header must name a loopback address or
//! the bound one (a DNS-rebinding page cannot reach it); the body must be the registry's
//! envelope media type (a cross-origin form or `text/plain` POST cannot be); the body is
//! limited to [`BODY_LIMIT`]; and events dated outside the receiver's window (before it
//! started, less the skew, or in the future) are rejected and counted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stowage_history::{Db, SourceKind};
use stowage_usage::Filter;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{error, same};

/// The header carrying the shared secret (set with `headers:` in the registry's endpoint).
pub const SECRET_HEADER: &str = "x-stowage-secret";

/// Largest notification body accepted: 1 MiB. The registry sends an envelope per batch of
/// events (a few KiB); anything larger is refused with 413 before it is buffered whole.
pub const BODY_LIMIT: usize = 1 << 20;

/// Envelope media types the registry sends (2.x: v1; distribution 3.x: v2, same shape).
pub const ENVELOPE_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
];

/// Allowed clock skew between the registry and stowage: 15 minutes either way.
pub const SKEW_SECS: i64 = 15 * 60;

/// Where notifications go.
pub struct Notifications {
    pub db: Mutex<Db>,
    pub db_path: PathBuf,
    pub filter: Filter,
    /// When set, `X-Stowage-Secret` must carry it (and the bearer token is not needed on
    /// this route: the registry sends the header it is configured with).
    pub secret: Option<String>,
    /// Without a secret, the webhook answers 403 unless this is set
    /// (`--insecure-loopback-webhook`; the CLI allows it on loopback binds only).
    pub insecure_loopback: bool,
    /// Without a secret, the `Host` header must name a loopback address, `localhost`, or one
    /// of these (the bound addresses).
    pub allowed_hosts: Vec<String>,
    /// When the receiver started: events dated before it (less [`SKEW_SECS`]) or after now
    /// (plus it) are rejected and counted. `None`: no date check (tests of old envelopes).
    pub started: Option<stowage_model::time::Timestamp>,
}

/// Whether a `Host` header value names a loopback address, `localhost` or an allowed host.
pub(crate) fn host_ok(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(h) = host else { return false };
    let h = h.trim().to_ascii_lowercase();
    // `[v6]:port`, `[v6]`, `name:port`, `name`.
    let name = match h.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Whether the `Content-Type` is the registry's envelope (parameters ignored).
pub(crate) fn envelope_type_ok(h: &HeaderMap) -> bool {
    h.get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| ENVELOPE_TYPES.contains(&t.as_str()))
}

/// Answer to a delivered envelope.
#[derive(Serialize, ToSchema)]
pub struct NotifyAnswer {
    /// Events in the envelope.
    pub events: u64,
    /// Manifest pull/push/delete events newly recorded.
    pub recorded: u64,
    /// Already recorded (a retry, or the same request ingested from the logs).
    pub duplicates: u64,
    /// Blob events, mounts and unusable events.
    pub skipped: u64,
    /// Events dated outside the receiver's window (before it started, or in the future):
    /// not recorded.
    pub rejected: u64,
}

pub(crate) fn secret_ok(n: &Notifications, h: &HeaderMap) -> bool {
    match &n.secret {
        None => true,
        Some(s) => h
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| same(v.trim().as_bytes(), s.as_bytes())),
    }
}

/// The webhook's guards, in order: secret (or the explicit insecure loopback mode with a
/// loopback or bound `Host`), then the envelope media type.
fn guard(n: &Notifications, headers: &HeaderMap) -> Option<Response> {
    if !secret_ok(n, headers) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing X-Stowage-Secret header",
        ));
    }
    if n.secret.is_none() {
        if !n.insecure_loopback {
            return Some(error(
                StatusCode::FORBIDDEN,
                "the notification webhook needs a shared secret: start stowage serve with --notify-secret-file \
                 (or --insecure-loopback-webhook on a loopback address)",
            ));
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok());
        if !host_ok(host, &n.allowed_hosts) {
            return Some(error(
                StatusCode::MISDIRECTED_REQUEST,
                "the Host header names neither a loopback address nor this server's address",
            ));
        }
    }
    if !envelope_type_ok(headers) {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/vnd.docker.distribution.events.v1+json (or v2), as the registry sends",
        ));
    }
    None
}

/// Receive the registry's notification envelope
/// (`application/vnd.docker.distribution.events.v1+json`, or v2 from distribution 3.x).
#[utoipa::path(post, path = "/api/v1/notifications",
    request_body(content = Object, content_type = "application/vnd.docker.distribution.events.v1+json"),
    responses(
        (status = 200, body = NotifyAnswer),
        (status = 400, body = crate::api::ErrorBody, description = "not an envelope"),
        (status = 401, body = crate::api::ErrorBody, description = "wrong or missing X-Stowage-Secret"),
        (status = 403, body = crate::api::ErrorBody, description = "no secret configured and not --insecure-loopback-webhook"),
        (status = 413, body = crate::api::ErrorBody, description = "body larger than 1 MiB"),
        (status = 415, body = crate::api::ErrorBody, description = "not the envelope media type"),
        (status = 421, body = crate::api::ErrorBody, description = "without a secret: Host is not loopback or the bound address"),
        (status = 404, body = crate::api::ErrorBody, description = "notifications not enabled (no --history)"),
        (status = 500, body = crate::api::ErrorBody, description = "could not record; the registry retries")))]
pub(crate) async fn notifications(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(n) = st.notifications.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "notifications are not enabled: start stowage serve with --history DB",
        );
    };
    if let Some(refused) = guard(&n, &headers) {
        return refused;
    }
    let window = n.started.map(|started| {
        let now = stowage_model::time::Timestamp::from_system_time(std::time::SystemTime::now());
        stowage_usage::Window::new(started, now, SKEW_SECS)
    });
    let rec = match stowage_usage::parse_envelope_within(&body, &n.filter, window) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let total = rec.total;
    let skipped = rec.skipped;
    let rejected = rec.coverage.rejected;
    // A push or a delete changes what the dashboard shows: scan again now rather than at
    // the next interval (a scan already running may have listed before the push; the next
    // interval's scan sees it then).
    let changed = rec.events.iter().any(|e| {
        matches!(
            e.action,
            stowage_usage::events::UsageAction::Push | stowage_usage::events::UsageAction::Delete
        )
    });
    let n2 = n.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut db = n2
            .db
            .lock()
            .map_err(|_| "database lock poisoned".to_string())?;
        let at = rec.last_at.unwrap_or_default();
        db.record_usage(
            SourceKind::Notifications,
            &rec.coverage,
            rec.total,
            &rec.events,
            None,
            at,
        )
        .map_err(|e| e.to_string())
    })
    .await;
    if changed && matches!(done, Ok(Ok(_))) {
        st.trigger();
    }
    match done {
        Ok(Ok(r)) => axum::Json(NotifyAnswer {
            events: total,
            recorded: r.recorded,
            duplicates: r.duplicates,
            skipped,
            rejected,
        })
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Last pulls of the served scan's images, bytes by last-pull age (as `stowage usage
/// --format json`, without the store's status).
#[utoipa::path(get, path = "/api/v1/usage", responses(
    (status = 200, description = "the usage view", body = Object),
    (status = 404, body = crate::api::ErrorBody, description = "no --history database"),
    (status = 503, body = crate::api::ErrorBody, description = "no completed scan yet")))]
pub(crate) async fn usage(State(st): State<Arc<AppState>>) -> Response {
    let Some(n) = st.notifications.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "no pull data: start stowage serve with --history DB",
        );
    };
    let Some(s) = st.current() else {
        return crate::api::no_scan_yet(&st);
    };
    let r = tokio::task::spawn_blocking(move || {
        let pulls =
            n.db.lock()
                .map_err(|_| "database lock poisoned".to_string())?
                .pull_summary()
                .map_err(|e| e.to_string())?;
        let g = s.analysis.graph();
        Ok::<_, String>(stowage_usage::view::build(&g, &pulls, s.finished_at))
    })
    .await;
    match r {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
