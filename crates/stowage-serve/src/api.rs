//! The HTTP surface: the dashboard page, the JSON API (documented by [`ApiDoc`]), `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use stowage_model::inventory::BlobId;
use stowage_report::DuRecord;
use stowage_report::metrics::ScanInfo;
use stowage_report::overview::{BlobRow, blob_row};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::tables::{Checked, TableQuery};
use crate::{AppState, Snapshot};

/// The OpenAPI document of the JSON API (`GET /api/openapi.json`, and `docs/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stowage dashboard API",
        description = "Read-only views of a container registry's storage, from the last completed scan. Every error is JSON: {\"error\": message, \"status\": code}. With a token configured, send `Authorization: Bearer TOKEN`."
    ),
    paths(status, scan, report, repositories, tags, crate::tables::tag_rows, crate::tables::repository_rows, findings, blobs, blobs_csv, metrics, openapi, crate::notify::notifications, crate::notify::usage),
    components(schemas(Status, ScanStarted, ErrorBody, crate::notify::NotifyAnswer, BlobPage, BlobRow, FindingPage, ApiFinding, DuRecord, Tag, crate::tables::TagPage, stowage_report::overview::TagRow, crate::tables::RepositoryPage, stowage_report::overview::RepoRow)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// A JSON error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub status: u16,
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: msg.into(),
            status: status.as_u16(),
        }),
    )
        .into_response()
}

pub(crate) fn no_scan_yet(state: &AppState) -> Response {
    let msg = match state.last_error() {
        Some(e) => format!("no completed scan yet; the last attempt failed: {e}"),
        None => "no completed scan yet; the first scan is running".to_string(),
    };
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

pub(crate) type St = State<Arc<AppState>>;

/// The router: every route, the token check, JSON fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/status", get(status))
        .route("/api/v1/scan", axum::routing::post(scan))
        .route("/api/v1/report", get(report))
        .route("/api/v1/repositories", get(repositories))
        .route("/api/v1/tags", get(tags))
        .route("/api/v1/tag-rows", get(crate::tables::tag_rows))
        .route(
            "/api/v1/repository-rows",
            get(crate::tables::repository_rows),
        )
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/blobs", get(blobs))
        .route("/api/v1/blobs.csv", get(blobs_csv))
        .route(
            "/api/v1/notifications",
            axum::routing::post(crate::notify::notifications).layer(
                axum::extract::DefaultBodyLimit::max(crate::notify::BODY_LIMIT),
            ),
        )
        .route("/api/v1/usage", get(crate::notify::usage))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or API endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed (this server is read-only: GET, and POST /api/v1/scan and /api/v1/notifications)",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn(request_limits))
        .layer(middleware::from_fn(json_errors))
        // No other route reads a body; should one ever extract it, this is its limit (the
        // notification route's own, above, is the inner layer and wins there).
        .layer(axum::extract::DefaultBodyLimit::max(OTHER_BODY_LIMIT))
        .with_state(state)
}

/// Body limit of every route but the webhook: they read none (`GET`, and `POST
/// /api/v1/scan` without a body), so 4 KiB instead of axum's default 2 MB.
pub const OTHER_BODY_LIMIT: usize = 4 << 10;

/// The longest request target (path and query) answered; a longer one is 414, in JSON. Below
/// hyper's own limit (64 KiB, answered by hyper itself with an empty body), so every request
/// a client can send gets a JSON answer.
pub const MAX_URI_BYTES: usize = 8 << 10;
/// Request headers answered at most (names and values); more is 431, in JSON. Below hyper's
/// own limits (100 headers, ~400 KiB), for the same reason.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
pub const MAX_HEADERS: usize = 64;

/// 414 and 431 as JSON errors (hyper answers its own, larger limits with an empty body).
async fn request_limits(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return error(
            StatusCode::URI_TOO_LONG,
            format!("the request target is {target} bytes; at most {MAX_URI_BYTES} are accepted"),
        );
    }
    let h = req.headers();
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if h.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "{} request headers of {bytes} bytes; at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes are accepted",
                h.len()
            ),
        );
    }
    next.run(req).await
}

/// Equal in time independent of where the strings differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer TOKEN` header; the scheme is case-insensitive
/// (RFC 9110 section 11.1: `bearer` was refused).
fn bearer_token(v: &str) -> Option<&str> {
    let (scheme, rest) = v.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

/// Every error answer is JSON, also those made below the handlers (axum's 413 for a body
/// over the limit was plain text).
async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if status.as_u16() < 400 || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let msg = String::from_utf8_lossy(&text).trim().to_string();
    let mut out = error(
        status,
        if msg.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            msg
        },
    );
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

fn cookie_token(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix("stowage_token="))
        .map(str::to_string)
        .next()
}

async fn auth(State(st): St, req: Request, next: Next) -> Response {
    let Some(token) = st.token.as_deref() else {
        return next.run(req).await;
    };
    // The registry's webhook authenticates with its shared secret when one is configured.
    if req.uri().path() == "/api/v1/notifications"
        && st
            .notifications
            .as_ref()
            .is_some_and(|n| n.secret.is_some())
    {
        return next.run(req).await;
    }
    let h = req.headers();
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()));
    let cookie = cookie_token(h).is_some_and(|t| same(t.as_bytes(), token.as_bytes()));
    if bearer || cookie {
        return next.run(req).await;
    }
    // `?token=...` once: set the cookie and redirect to the same page without it.
    if let Some(q) = req.uri().query() {
        let given = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        if same(given.as_bytes(), token.as_bytes()) {
            let rest: Vec<&str> = q
                .split('&')
                .filter(|kv| !kv.starts_with("token="))
                .collect();
            let mut loc = req.uri().path().to_string();
            if !rest.is_empty() {
                loc.push('?');
                loc.push_str(&rest.join("&"));
            }
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let (Ok(l), Ok(c)) = (
                HeaderValue::from_str(&loc),
                HeaderValue::from_str(&format!(
                    "stowage_token={token}; HttpOnly; SameSite=Strict; Path=/"
                )),
            ) {
                r.headers_mut().insert(header::LOCATION, l);
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            return r;
        }
    }
    let browser = h
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let mut r = if browser {
        // A person with a browser: say how to get in, not raw JSON.
        let body = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>stowage dashboard: token required</title></head><body style=\"font-family:sans-serif;padding:2em\"><h1>A token is required</h1><p>This dashboard is protected by a token (the file given to <code>stowage serve --token-file</code>). Open this address once with <code>?token=TOKEN</code> added, e.g. <code>/?token=TOKEN</code>: the browser then keeps it in a cookie. Programs send <code>Authorization: Bearer TOKEN</code>.</p></body></html>";
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required (Authorization: Bearer TOKEN; in a browser, open the page once with ?token=TOKEN)",
        )
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"stowage\""),
    );
    r
}

async fn page(State(st): St) -> Response {
    let Some(s) = st.current() else {
        let body = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\"><link rel=\"icon\" href=\"data:,\"><title>stowage dashboard</title></head><body style=\"font-family:sans-serif;padding:2em\"><p>The first scan of the registry storage is running; this page reloads by itself.</p></body></html>";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response();
    };
    match stowage_report::html::render(&s.overview) {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Scanner state.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// A scan is running now.
    pub scanning: bool,
    /// Completed scans since start; changes when a new scan is served.
    pub generation: u64,
    /// The `now` of the scan being served (RFC 3339), if any.
    pub last_success: Option<String>,
    pub scan_duration_seconds: f64,
    /// Why the last scan failed, if it did (the previous one is still served).
    pub last_error: Option<String>,
    pub scans_success: u64,
    pub scans_failure: u64,
}

fn status_of(st: &AppState) -> Status {
    let cur = st.current();
    Status {
        scanning: st.scanning(),
        generation: st.generation(),
        last_success: cur.as_ref().map(|s| s.finished_at.rfc3339()),
        scan_duration_seconds: cur.as_ref().map_or(0.0, |s| s.seconds),
        last_error: st.last_error(),
        scans_success: st.scans_success.load(std::sync::atomic::Ordering::SeqCst),
        scans_failure: st.scans_failure.load(std::sync::atomic::Ordering::SeqCst),
    }
}

#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = Status)))]
async fn status(State(st): St) -> Response {
    axum::Json(status_of(&st)).into_response()
}

/// Answer of `POST /api/v1/scan`.
#[derive(Serialize, ToSchema)]
pub struct ScanStarted {
    /// False when a scan was already running (it will serve the fresh result too).
    pub started: bool,
    pub status: Status,
}

/// Start a new (read-only) scan now; requests keep being served from the last one.
#[utoipa::path(post, path = "/api/v1/scan", responses((status = 202, body = ScanStarted)))]
async fn scan(State(st): St) -> Response {
    let started = st.trigger();
    (
        StatusCode::ACCEPTED,
        axum::Json(ScanStarted {
            started,
            status: status_of(&st),
        }),
    )
        .into_response()
}

/// Everything the dashboard shows: schema `stowage.report/v1` (docs/json-schema.md).
#[utoipa::path(get, path = "/api/v1/report", responses(
    (status = 200, description = "the stowage.report/v1 document", body = Object),
    (status = 503, body = ErrorBody, description = "no completed scan yet")))]
async fn report(State(st): St) -> Response {
    match st.current() {
        Some(s) => axum::Json(&s.overview).into_response(),
        None => no_scan_yet(&st),
    }
}

/// Repositories and namespaces as a tree in pre-order (children by name), with sizes.
#[utoipa::path(get, path = "/api/v1/repositories", responses(
    (status = 200, body = [DuRecord]), (status = 503, body = ErrorBody)))]
async fn repositories(State(st): St) -> Response {
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    let rows: Vec<&DuRecord> = s.overview.tree.iter().map(|n| &n.node).collect();
    axum::Json(rows).into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TagsQuery {
    /// Repository name, e.g. `team/app/api`.
    pub repository: String,
}

/// A tag (`stowage tags REPO --format json` records).
#[derive(Serialize, ToSchema)]
pub struct Tag {
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub platforms: Vec<String>,
    pub total: u64,
    pub exclusive: u64,
    pub moved: Option<String>,
    /// Digests the tag pointed at, newest first.
    pub history: Vec<String>,
}

fn bad_query(e: QueryRejection) -> Response {
    error(StatusCode::BAD_REQUEST, e.body_text())
}

/// A repository's tags with digest, platforms, sizes and history.
#[utoipa::path(get, path = "/api/v1/tags", params(TagsQuery), responses(
    (status = 200, body = [Tag]), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn tags(State(st): St, q: Result<Query<TagsQuery>, QueryRejection>) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    let Some(ri) = s
        .inv()
        .repositories
        .iter()
        .position(|r| r.name.as_str() == q.repository)
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no repository {:?}", q.repository),
        );
    };
    let rows = blocking(move || {
        stowage_report::tag_records(&s.analysis.graph(), s.analysis.usage(), ri)
            .into_iter()
            .map(|t| Tag {
                repository: t.repository,
                tag: t.tag,
                digest: t.digest,
                media_type: t.media_type.map(str::to_string),
                platforms: t.platforms,
                total: t.total,
                exclusive: t.exclusive,
                moved: t.moved.map(|m| m.rfc3339()),
                history: t.history.into_iter().map(|h| h.digest).collect(),
            })
            .collect::<Vec<_>>()
    })
    .await;
    match rows {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(r) => r,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    /// Only this kind (`tag_dangling`, ...).
    pub kind: Option<String>,
    #[serde(default)]
    pub offset: usize,
    /// At most 1000.
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiFinding {
    pub kind: String,
    pub severity: String,
    pub path: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct FindingPage {
    pub total: usize,
    pub offset: usize,
    pub findings: Vec<ApiFinding>,
}

/// Integrity findings (as `stowage check` lists them), paged.
#[utoipa::path(get, path = "/api/v1/findings", params(FindingsQuery), responses(
    (status = 200, body = FindingPage), (status = 400, body = ErrorBody)))]
async fn findings(State(st): St, q: Result<Query<FindingsQuery>, QueryRejection>) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let limit = q.limit.unwrap_or(100);
    if limit > 1000 {
        return error(StatusCode::BAD_REQUEST, "limit must be at most 1000");
    }
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    if let Some(k) = &q.kind
        && !stowage_model::finding::FindingKind::ALL
            .iter()
            .any(|x| x.as_str() == k)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown finding kind {k:?}"),
        );
    }
    let all: Vec<_> = s
        .findings()
        .iter()
        .filter(|f| q.kind.as_deref().is_none_or(|k| f.kind.as_str() == k))
        .collect();
    axum::Json(FindingPage {
        total: all.len(),
        offset: q.offset,
        findings: all
            .into_iter()
            .skip(q.offset)
            .take(limit)
            .map(|f| ApiFinding {
                kind: f.kind.as_str().into(),
                severity: f.severity().to_string(),
                path: f.path.clone(),
                message: f.message.to_string(),
            })
            .collect(),
    })
    .into_response()
}

/// Columns the blob table sorts by, the default first.
pub const BLOB_SORTS: [&str; 5] = ["size", "date", "digest", "kind", "referenced"];

#[derive(Serialize, ToSchema)]
pub struct BlobPage {
    /// Blobs matching the query.
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<BlobRow>,
}

fn blob_page(s: &Snapshot, c: &Checked) -> BlobPage {
    let g = s.analysis.graph();
    let (q, limit) = (&c.query, c.limit);
    let needle = c.query.needle();
    // Blobs needed by repositories whose name matches: one walk over their revisions.
    let by_repo: Option<Vec<bool>> = (!needle.is_empty()).then(|| {
        let roots: Vec<BlobId> = s
            .inv()
            .repositories
            .iter()
            .filter(|r| r.name.as_str().contains(&needle))
            .flat_map(|r| r.revisions.iter().map(|l| l.target()))
            .collect();
        let mut m = vec![false; g.len()];
        if !roots.is_empty() {
            let mut scratch = stowage_graph::Scratch::new(g.len());
            g.for_each_descendant_of_all(&roots, &mut scratch, |id| m[id as usize] = true);
        }
        m
    });
    let matches = |id: BlobId| -> bool {
        if needle.is_empty() {
            return true;
        }
        let i = id as usize;
        let refd = s.referenced()[i];
        s.inv().blobs[i].digest.to_string().contains(&needle)
            || g.blob_kind(id).as_str() == needle
            || (needle == "unreferenced" && !refd)
            || (needle == "referenced" && refd)
            || by_repo.as_ref().is_some_and(|m| m[i])
    };
    let asc = !c.desc;
    let natural: Vec<BlobId>;
    let order: &[BlobId] = match c.sort {
        "date" => &s.by_date,
        "kind" => &s.by_kind,
        "referenced" => &s.by_referenced,
        "digest" => {
            natural = (0..s.inv().blobs.len() as BlobId).collect();
            &natural
        }
        _ => &s.by_size,
    };
    let mut total = 0;
    let mut ids = Vec::new();
    let mut visit = |id: BlobId| {
        if matches(id) {
            if total >= q.offset && ids.len() < limit {
                ids.push(id);
            }
            total += 1;
        }
    };
    if asc {
        order.iter().copied().for_each(&mut visit);
    } else {
        order.iter().rev().copied().for_each(&mut visit);
    }
    let mut scratch = stowage_graph::Scratch::new(g.len());
    let mut rows: Vec<BlobRow> = ids
        .into_iter()
        .map(|id| blob_row(&g, &mut scratch, id, s.referenced()[id as usize], 10))
        .collect();
    if let Some(c) = &s.blob_cache {
        stowage_analysis::cache::fill_blob_rows(c, &mut rows);
    }
    BlobPage {
        total,
        offset: q.offset,
        rows,
    }
}

/// Every blob, paged, searchable and sortable.
///
/// `q` matches digests (substring), kinds (`layer`), `referenced`/`unreferenced`, and repository names (substring: every blob such a
/// repository needs); `sort` is one of `size` (default), `date` (creation, else
/// modification), `digest`, `kind` or `referenced` (each then by size).
#[utoipa::path(get, path = "/api/v1/blobs", params(TableQuery), responses(
    (status = 200, body = BlobPage), (status = 400, body = ErrorBody)))]
async fn blobs(State(st): St, q: Result<Query<TableQuery>, QueryRejection>) -> Response {
    crate::tables::answer(&st, q, &BLOB_SORTS, blob_page).await
}

/// Every blob as CSV (the columns of `stowage inventory --format csv`).
#[utoipa::path(get, path = "/api/v1/blobs.csv", responses(
    (status = 200, content_type = "text/csv", body = String), (status = 503, body = ErrorBody)))]
async fn blobs_csv(State(st): St) -> Response {
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    // Streamed: a writer thread sends chunks, so a million rows never sit in memory at once.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        struct Chunks(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>);
        impl std::io::Write for Chunks {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .blocking_send(Ok(buf.to_vec()))
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let g = s.analysis.graph();
        let w = std::io::BufWriter::with_capacity(1 << 16, Chunks(tx));
        // A closed connection ends the writer with an error; nothing else to do.
        let _ = stowage_report::overview::write_blob_csv(&g, s.referenced(), w);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"blobs.csv\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, content_type = "text/plain; version=0.0.4", body = String),
    (status = 503, body = ErrorBody)))]
async fn metrics(State(st): St) -> Response {
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    let text = stowage_report::metrics::render(
        &s.overview,
        &s.repos,
        &ScanInfo {
            duration_seconds: s.seconds,
            last_success_unix: s.finished_at.0 as f64 / 1e9,
            scans_success: Some(st.scans_success.load(std::sync::atomic::Ordering::SeqCst)),
            scans_failure: Some(st.scans_failure.load(std::sync::atomic::Ordering::SeqCst)),
            scan_in_progress: Some(st.scanning()),
        },
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", responses((status = 200, body = Object)))]
async fn openapi() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
