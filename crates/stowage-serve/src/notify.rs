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

/// Where notifications go.
pub struct Notifications {
    pub db: Mutex<Db>,
    pub db_path: PathBuf,
    pub filter: Filter,
    /// When set, `X-Stowage-Secret` must carry it (and the bearer token is not needed on
    /// this route: the registry sends the header it is configured with).
    pub secret: Option<String>,
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

/// Receive the registry's notification envelope
/// (`application/vnd.docker.distribution.events.v1+json`, or v2 from distribution 3.x).
#[utoipa::path(post, path = "/api/v1/notifications",
    request_body(content = Object, content_type = "application/vnd.docker.distribution.events.v1+json"),
    responses(
        (status = 200, body = NotifyAnswer),
        (status = 400, body = crate::api::ErrorBody, description = "not an envelope"),
        (status = 401, body = crate::api::ErrorBody, description = "wrong or missing X-Stowage-Secret"),
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
    if !secret_ok(&n, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing X-Stowage-Secret header",
        );
    }
    let rec = match stowage_usage::parse_envelope(&body, &n.filter) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let total = rec.total;
    let skipped = rec.skipped;
    let n2 = n.clone();
    let done = tokio::task::spawn_blocking(move || {
        let cov = rec.first_at.zip(rec.last_at);
        let mut db = n2
            .db
            .lock()
            .map_err(|_| "database lock poisoned".to_string())?;
        let at = rec.last_at.unwrap_or_default();
        db.record_usage(
            SourceKind::Notifications,
            cov,
            rec.total,
            &rec.events,
            None,
            at,
        )
        .map_err(|e| e.to_string())
    })
    .await;
    match done {
        Ok(Ok(r)) => axum::Json(NotifyAnswer {
            events: total,
            recorded: r.recorded,
            duplicates: r.duplicates,
            skipped,
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
        let g = stowage_graph::Graph::new(&s.inv);
        Ok::<_, String>(stowage_usage::view::build(&g, &pulls, s.finished_at))
    })
    .await;
    match r {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
