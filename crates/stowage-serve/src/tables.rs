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

/// Columns the tag table sorts by (each then by repository and tag), the default first.
pub const TAG_SORTS: [&str; 10] = [
    "exclusive",
    "name",
    "shared",
    "total",
    "moved",
    "pushed",
    "built",
    "age",
    "last_pulled",
    "digest",
];

/// Search, sort and paging of a table the server orders: the blob table (`/api/v1/blobs`),
/// the tag table (`/api/v1/tag-rows`) and the repository table (`/api/v1/repository-rows`).
/// One struct, so the three cannot drift in names, defaults or limits (issue 24: they were
/// three copies); what `q` matches and which columns `sort` takes is each endpoint's, said
/// in its description and checked by [`TableQuery::check`].
#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TableQuery {
    /// Case-insensitive search (what it matches: the endpoint's description).
    pub q: Option<String>,
    /// The column to sort by, one of the endpoint's (its description lists them, the first
    /// being the default).
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    #[serde(default)]
    pub offset: usize,
    /// At most 1000 (default 50).
    pub limit: Option<usize>,
}

/// A [`TableQuery`] checked against a table's columns.
pub struct Checked {
    pub query: TableQuery,
    /// The column (the table's first when none was asked).
    pub sort: &'static str,
    pub desc: bool,
    /// Rows per page, 1 to 1000.
    pub limit: usize,
}

impl TableQuery {
    /// The query with its column and page size, or the JSON 400 that names what is wrong
    /// (`sorts`: the table's columns, its default first).
    pub fn check(
        q: Result<Query<TableQuery>, QueryRejection>,
        sorts: &[&'static str],
    ) -> Result<Checked, Response> {
        let Query(q) = q.map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))?;
        let limit = q.limit.unwrap_or(50);
        if limit == 0 || limit > 1000 {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "limit must be between 1 and 1000",
            ));
        }
        let sort = match q.sort.as_deref() {
            None => sorts[0],
            Some(o) => *sorts.iter().find(|c| **c == o).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("sort must be one of {}, not {o:?}", sorts.join(", ")),
                )
            })?,
        };
        let desc = match q.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("order must be asc or desc, not {o:?}"),
                ));
            }
        };
        Ok(Checked {
            query: q,
            sort,
            desc,
            limit,
        })
    }

    /// The search, lower-cased and trimmed ("" when none).
    pub fn needle(&self) -> String {
        self.q.as_deref().unwrap_or("").trim().to_lowercase()
    }
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
pub fn tag_page(s: &Snapshot, c: &Checked) -> TagPage {
    let needle = c.query.needle();
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
    rows.sort_by(|a, b| by_key(c.sort, a, b, c.desc));
    TagPage {
        total: rows.len(),
        offset: c.query.offset,
        rows: rows
            .into_iter()
            .skip(c.query.offset)
            .take(c.limit)
            .cloned()
            .collect(),
    }
}

/// Every tag, searched, sorted by any column and paged (the dashboard's tag table).
///
/// `q` matches `repository:tag` and the digest (substring); `sort` is one of `exclusive`
/// (default), `name`, `shared`, `total`, `moved`, `pushed`, `built`, `age` (the reverse of
/// `built`), `last_pulled`, `digest`, each then by repository and tag; rows without the date
/// sort last.
#[utoipa::path(get, path = "/api/v1/tag-rows", params(TableQuery), responses(
    (status = 200, body = TagPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn tag_rows(
    State(st): St,
    q: Result<Query<TableQuery>, QueryRejection>,
) -> Response {
    let c = match TableQuery::check(q, &TAG_SORTS) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(s) = st.current() else {
        return no_scan_yet(&st);
    };
    match tokio::task::spawn_blocking(move || tag_page(&s, &c)).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
    }
}
