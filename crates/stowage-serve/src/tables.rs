//! The dashboard's tag and repository tables: every tag and every repository of the last
//! scan, searched, sorted by any column and paged on the server (issue 19: the page sent
//! `sort=size` whatever header was clicked, could not search tags at all, and sorted only the
//! top repositories in the browser). The rows are built once per scan (`Snapshot::tags`,
//! `Overview::repositories`).

use std::cmp::Ordering;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stowage_report::overview::{RepoRow, TagRow};
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
    /// The query with its column and page size, or why it is a 400 (`sorts`: the table's
    /// columns, its default first).
    pub fn check(
        q: Result<Query<TableQuery>, QueryRejection>,
        sorts: &[&'static str],
    ) -> Result<Checked, String> {
        let Query(q) = q.map_err(|e| e.body_text())?;
        let limit = q.limit.unwrap_or(50);
        if limit == 0 || limit > 1000 {
            return Err("limit must be between 1 and 1000".into());
        }
        let sort = match q.sort.as_deref() {
            None => sorts[0],
            Some(o) => *sorts
                .iter()
                .find(|c| **c == o)
                .ok_or_else(|| format!("sort must be one of {}, not {o:?}", sorts.join(", ")))?,
        };
        let desc = match q.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(o) => return Err(format!("order must be asc or desc, not {o:?}")),
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

/// Order of two optional dates: present ones as asked, a missing one after every present one
/// in both orders.
fn by_date(
    x: Option<stowage_model::Timestamp>,
    y: Option<stowage_model::Timestamp>,
    desc: bool,
) -> Ordering {
    match (x, y) {
        (Some(x), Some(y)) if desc => y.cmp(&x),
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Order of two tag rows by `key` (each then by repository and tag).
fn by_key(key: &str, a: &TagRow, b: &TagRow, desc: bool) -> Ordering {
    let dir = |o: Ordering| if desc { o.reverse() } else { o };
    let o = match key {
        "name" => dir((&a.repository, &a.tag).cmp(&(&b.repository, &b.tag))),
        "shared" => dir(a.shared.cmp(&b.shared)),
        "total" => dir(a.total.cmp(&b.total)),
        "moved" => by_date(a.moved, b.moved, desc),
        "pushed" => by_date(a.pushed, b.pushed, desc),
        "built" => by_date(a.built, b.built, desc),
        // Age is the reverse of the build date.
        "age" => by_date(a.built, b.built, !desc),
        "last_pulled" => by_date(a.last_pulled, b.last_pulled, desc),
        "digest" => dir(a.digest.cmp(&b.digest)),
        _ => dir(a.exclusive.cmp(&b.exclusive)),
    };
    o.then_with(|| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)))
}

/// One page of the tag table.
pub fn tag_page(s: &Snapshot, c: &Checked) -> TagPage {
    let needle = c.query.needle();
    let (total, rows) = paged(
        &s.tags,
        |r| {
            needle.is_empty()
                || format!("{}:{}", r.repository, r.tag)
                    .to_lowercase()
                    .contains(&needle)
                || r.digest.as_deref().is_some_and(|d| d.contains(&needle))
        },
        |a, b| by_key(c.sort, a, b, c.desc),
        c,
    );
    TagPage {
        total,
        offset: c.query.offset,
        rows,
    }
}

/// The rows `keep` matches, sorted by `order`: how many, and the page `c` asks for.
fn paged<R: Clone>(
    rows: &[R],
    keep: impl Fn(&R) -> bool,
    order: impl Fn(&R, &R) -> Ordering,
    c: &Checked,
) -> (usize, Vec<R>) {
    let mut matched: Vec<&R> = rows.iter().filter(|r| keep(r)).collect();
    matched.sort_by(|a, b| order(a, b));
    let total = matched.len();
    let page = matched
        .into_iter()
        .skip(c.query.offset)
        .take(c.limit)
        .cloned()
        .collect();
    (total, page)
}

/// Answer a table's request: the query checked against the table's columns (`sorts`), then
/// the page built by `page` on a blocking thread from the snapshot being served.
pub(crate) async fn answer<P: Serialize + Send + 'static>(
    st: &crate::AppState,
    q: Result<Query<TableQuery>, QueryRejection>,
    sorts: &[&'static str],
    page: fn(&Snapshot, &Checked) -> P,
) -> Response {
    let c = match TableQuery::check(q, sorts) {
        Ok(c) => c,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(s) = st.current() else {
        return no_scan_yet(st);
    };
    match tokio::task::spawn_blocking(move || page(&s, &c)).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"),
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
    answer(&st, q, &TAG_SORTS, tag_page).await
}

/// Columns the repository table sorts by (each then by name), the default first.
pub const REPOSITORY_SORTS: [&str; 11] = [
    "exclusive",
    "repository",
    "shared",
    "total",
    "tags",
    "untagged_manifests",
    "untagged_bytes",
    "last_pushed",
    "newest_build",
    "last_pulled",
    "manifests",
];

#[derive(Serialize, ToSchema)]
pub struct RepositoryPage {
    /// Repositories matching the query.
    pub total: usize,
    pub offset: usize,
    pub rows: Vec<RepoRow>,
}

/// Order of two repository rows by `key` (each then by name).
fn repo_by_key(key: &str, a: &RepoRow, b: &RepoRow, desc: bool) -> Ordering {
    let dir = |o: Ordering| if desc { o.reverse() } else { o };
    let o = match key {
        "repository" => dir(a.repository.cmp(&b.repository)),
        "shared" => dir(a.shared.cmp(&b.shared)),
        "total" => dir(a.total.cmp(&b.total)),
        "tags" => dir(a.tags.cmp(&b.tags)),
        "manifests" => dir(a.manifests.cmp(&b.manifests)),
        "untagged_manifests" => dir(a.untagged_manifests.cmp(&b.untagged_manifests)),
        "untagged_bytes" => dir(a.untagged_bytes.cmp(&b.untagged_bytes)),
        "last_pushed" => by_date(a.last_pushed, b.last_pushed, desc),
        "newest_build" => by_date(a.newest_build, b.newest_build, desc),
        "last_pulled" => by_date(a.last_pulled, b.last_pulled, desc),
        _ => dir(a.exclusive.cmp(&b.exclusive)),
    };
    o.then_with(|| a.repository.cmp(&b.repository))
}

/// One page of the repository table.
pub fn repository_page(s: &Snapshot, c: &Checked) -> RepositoryPage {
    let needle = c.query.needle();
    let (total, rows) = paged(
        &s.overview.repositories,
        |r| needle.is_empty() || r.repository.to_lowercase().contains(&needle),
        |a, b| repo_by_key(c.sort, a, b, c.desc),
        c,
    );
    RepositoryPage {
        total,
        offset: c.query.offset,
        rows,
    }
}

/// Every repository, searched, sorted by any column and paged (the dashboard's repository
/// table).
///
/// `q` matches the repository name (substring); `sort` is one of `exclusive` (default),
/// `repository`, `shared`, `total`, `tags`, `untagged_manifests`, `untagged_bytes`,
/// `last_pushed`, `newest_build`, `last_pulled`, `manifests`, each then by name; rows without
/// the date sort last.
#[utoipa::path(get, path = "/api/v1/repository-rows", params(TableQuery), responses(
    (status = 200, body = RepositoryPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn repository_rows(
    State(st): St,
    q: Result<Query<TableQuery>, QueryRejection>,
) -> Response {
    answer(&st, q, &REPOSITORY_SORTS, repository_page).await
}
