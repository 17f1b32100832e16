//! The dashboard's tag table: every tag of the last scan, searched, sorted by any column and
//! paged on the server (issue 19: the page sent `sort=size` whatever header was clicked, and
//! could not search tags at all). The rows are built once per scan (`Snapshot::tags`).

use std::cmp::Ordering;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stowage_report::overview::TagRow;
use utoipa::{IntoParams, ToSchema};

use crate::Snapshot;
use crate::api::{ErrorBody, St, error, no_scan_yet};

/// Columns the tag table sorts by (each then by repository and tag).
pub const TAG_SORTS: [&str; 10] = [
    "name",
    "exclusive",
    "shared",
    "total",
    "moved",
    "pushed",
    "built",
    "age",
    "last_pulled",
    "digest",
];

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TagRowsQuery {
    /// Case-insensitive substring of `repository:tag` or of the digest.
    pub q: Option<String>,
    /// One of `name`, `exclusive` (default), `shared`, `total`, `moved`, `pushed`, `built`,
    /// `age` (the reverse of `built`), `last_pulled`, `digest`. Rows without the date sort last.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    #[serde(default)]
    pub offset: usize,
    /// At most 1000 (default 50).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TagPage {
    /// Tags matching the query.
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<TagRow>,
}

/// Order of two rows by `key`; a missing value is after every present one in both orders
/// (the caller reverses only the present values for `desc`).
fn by_key(key: &str, a: &TagRow, b: &TagRow, desc: bool) -> Ordering {
    let dir = |o: Ordering| if desc { o.reverse() } else { o };
    let opt = |x: Option<stowage_model::Timestamp>, y: Option<stowage_model::Timestamp>, rev| match (
        x, y,
    ) {
        (Some(x), Some(y)) => dir(if rev { y.cmp(&x) } else { x.cmp(&y) }),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let o = match key {
        "name" => dir((&a.repository, &a.tag).cmp(&(&b.repository, &b.tag))),
        "shared" => dir(a.shared.cmp(&b.shared)),
        "total" => dir(a.total.cmp(&b.total)),
        "moved" => opt(a.moved, b.moved, false),
        "pushed" => opt(a.pushed, b.pushed, false),
        "built" => opt(a.built, b.built, false),
        "age" => opt(a.built, b.built, true),
        "last_pulled" => opt(a.last_pulled, b.last_pulled, false),
        "digest" => dir(a.digest.cmp(&b.digest)),
        _ => dir(a.exclusive.cmp(&b.exclusive)),
    };
    o.then_with(|| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)))
}

/// One page of the tag table.
pub fn tag_page(s: &Snapshot, q: &TagRowsQuery, limit: usize) -> TagPage {
    let needle = q.q.as_deref().unwrap_or("").trim().to_lowercase();
    let mut rows: Vec<&TagRow> = s
        .tags
        .iter()
        .filter(|r| {
            needle.is_empty()
                || format!("{}:{}", r.repository, r.tag)
                    .to_lowercase()
                    .contains(&needle)
                || r.digest.as_deref().is_some_and(|d| d.contains(&needle))
        })
        .collect();
    let key = q.sort.as_deref().unwrap_or("exclusive");
    let desc = q.order.as_deref() != Some("asc");
    rows.sort_by(|a, b| by_key(key, a, b, desc));
    TagPage {
        total: rows.len(),
        offset: q.offset,
        rows: rows
            .into_iter()
            .skip(q.offset)
            .take(limit)
            .cloned()
            .collect(),
    }
}

/// Every tag, searched, sorted by any column and paged (the dashboard's tag table).
#[utoipa::path(get, path = "/api/v1/tag-rows", params(TagRowsQuery), responses(
    (status = 200, body = TagPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn tag_rows(
    State(st): St,
    q: Result<Query<TagRowsQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000");
    }
    if let Some(o) = &q.sort
        && !TAG_SORTS.contains(&o.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("sort must be one of {}, not {o:?}", TAG_SORTS.join(", ")),
        );
    }
    if let Some(o) = &q.order
        && !["asc", "desc"].contains(&o.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("order must be asc or desc, not {o:?}"),
        );
    }
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    match tokio::task::spawn_blocking(move || tag_page(&s, &q, limit)).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}
