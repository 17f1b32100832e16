//! The dashboard's HTTP surface, through the router (`oneshot`) and once over a real socket,
//! on the committed real-registry sample.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use stowage_model::time::Timestamp;
use stowage_report::overview::Limits;
use stowage_serve::{AppState, Snapshot, router};
use tower::ServiceExt;

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap()
}

fn snapshot(root: &std::path::Path) -> Snapshot {
    let fs = stowage_storage::FsStorage::open(root).unwrap();
    let inv = stowage_scan::scan(
        &fs,
        &stowage_scan::ScanOptions {
            concurrency: 4,
            verify_links: false,
            ..Default::default()
        },
        &stowage_scan::Progress::default(),
    )
    .unwrap();
    let analysis = stowage_analysis::Analysis::new(
        inv,
        &stowage_analysis::Options {
            now: now(),
            ..Default::default()
        },
    );
    // Three repositories by name, the rest as (other).
    Snapshot::build(analysis, &Limits::default(), 3, 0.25)
}

/// A state with one completed scan of the sample (the sample directory lives as long as it).
fn state(token: Option<&str>) -> (Arc<AppState>, stowage_testkit::Sample) {
    let sample = stowage_testkit::sample();
    let root = sample.layout_root();
    let st = AppState::new(
        Arc::new(move || Ok(snapshot(&root))),
        token.map(str::to_string),
    );
    st.scan_now();
    (st, sample)
}

async fn call(
    st: &Arc<AppState>,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let r = router(st.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

async fn get(st: &Arc<AppState>, uri: &str) -> (StatusCode, Value) {
    let (s, h, b) = call(st, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert!(
        h.get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{uri}: not JSON"
    );
    (s, serde_json::from_slice(&b).unwrap())
}

#[tokio::test]
async fn report_and_repositories_match_the_sample() {
    let (st, _s) = state(None);
    let (s, v) = get(&st, "/api/v1/report").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["schema"], "stowage.report/v1");
    assert_eq!(v["live"], true);
    assert_eq!(v["summary"]["blobs"], 42);
    assert_eq!(v["summary"]["repositories"], 6);
    assert_eq!(v["summary"]["unreferenced_blobs"], 6);

    let (s, v) = get(&st, "/api/v1/repositories").await;
    assert_eq!(s, StatusCode::OK);
    let rows = v.as_array().unwrap();
    assert_eq!(rows[0]["name"], "/");
    let web = rows.iter().find(|r| r["name"] == "team/app/web").unwrap();
    // 256 KiB base layer shared with everything, plus web's own blobs.
    assert_eq!(web["own_total"], 267_130);
    assert_eq!(web["own_exclusive"], 4523);
    assert_eq!(web["shared"], 267_130 - 4523);

    let (s, v) = get(&st, "/api/v1/tags?repository=multiarch/tool").await;
    assert_eq!(s, StatusCode::OK);
    let tags: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["1.0", "1.0-docker"]);
    assert_eq!(
        v[0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64/v8"])
    );
}

#[tokio::test]
async fn blobs_are_paged_sorted_and_searched() {
    let (st, _s) = state(None);
    let (s, v) = get(&st, "/api/v1/blobs?limit=5").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["total"], 42);
    let sizes: Vec<u64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes.len(), 5);
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert_eq!(sizes[0], 262_607, "the shared base layer is the largest");

    // The next page continues where the first ended; ascending starts at the smallest.
    let (_, p2) = get(&st, "/api/v1/blobs?limit=5&offset=5").await;
    assert!(p2["rows"][0]["size"].as_u64().unwrap() <= sizes[4]);
    let (_, asc) = get(&st, "/api/v1/blobs?limit=42&order=asc&sort=size").await;
    let asc: Vec<u64> = asc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["size"].as_u64().unwrap())
        .collect();
    assert!(asc.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(asc.len(), 42);

    let (_, un) = get(&st, "/api/v1/blobs?q=unreferenced&limit=100").await;
    assert_eq!(un["total"], 6);
    assert!(
        un["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["referenced"] == false)
    );

    // A repository name finds every blob that repository needs.
    let (_, mt) = get(&st, "/api/v1/blobs?q=multiarch&limit=100").await;
    let rows = mt["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| {
        r["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "multiarch/tool")
    }));

    // A digest prefix finds that blob.
    let (_, one) = get(&st, "/api/v1/blobs?q=376a3eef").await;
    assert_eq!(one["total"], 1);
    assert_eq!(one["rows"][0]["kind"], "layer");
}

/// Issue 19 item 4: the dashboard sorted by size whatever column header was clicked; the
/// API now sorts by kind and by referenced too (each then by size), both ways.
#[tokio::test]
async fn blobs_sort_by_kind_and_by_referenced() {
    let (st, _s) = state(None);
    let col = |v: &Value, k: &str| -> Vec<Value> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[k].clone())
            .collect()
    };
    for order in ["asc", "desc"] {
        let (s, v) = get(
            &st,
            &format!("/api/v1/blobs?limit=42&sort=kind&order={order}"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let kinds: Vec<String> = col(&v, "kind")
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        if order == "desc" {
            sorted.reverse();
        }
        assert_eq!(kinds, sorted, "{order}");
        assert!(
            kinds.first() != kinds.last(),
            "more than one kind: {kinds:?}"
        );
    }
    let (_, v) = get(&st, "/api/v1/blobs?limit=42&sort=referenced&order=asc").await;
    let refd: Vec<bool> = col(&v, "referenced")
        .iter()
        .map(|r| r.as_bool().unwrap())
        .collect();
    assert_eq!(refd.iter().filter(|r| !**r).count(), 6);
    assert!(
        refd[..6].iter().all(|r| !r) && refd[6..].iter().all(|r| *r),
        "{refd:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_json_4xx() {
    let (st, _s) = state(None);
    for (uri, want) in [
        ("/api/v1/blobs?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/blobs?limit=5000", StatusCode::BAD_REQUEST),
        ("/api/v1/blobs?limit=abc", StatusCode::BAD_REQUEST),
        ("/api/v1/blobs?offset=-1", StatusCode::BAD_REQUEST),
        ("/api/v1/blobs?sort=owner", StatusCode::BAD_REQUEST),
        ("/api/v1/blobs?order=up", StatusCode::BAD_REQUEST),
        ("/api/v1/blobs?bogus=1", StatusCode::BAD_REQUEST),
        ("/api/v1/tags", StatusCode::BAD_REQUEST),
        (
            "/api/v1/tags?repository=nope/nothing",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/findings?kind=nonsense", StatusCode::BAD_REQUEST),
        ("/api/v1/findings?limit=100000", StatusCode::BAD_REQUEST),
        ("/nope", StatusCode::NOT_FOUND),
        // Blob contents are never served, by any path.
        (
            "/v2/library/base/blobs/sha256:376a3eef",
            StatusCode::NOT_FOUND,
        ),
        ("/blobs/sha256/37/376a3eef/data", StatusCode::NOT_FOUND),
    ] {
        let (s, v) = get(&st, uri).await;
        assert_eq!(s, want, "{uri}: {v}");
        assert_eq!(v["status"], want.as_u16(), "{uri}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{uri}");
    }
    // Nothing can be deleted or changed: other methods are refused, in JSON.
    for (method, uri) in [
        ("DELETE", "/api/v1/report"),
        ("PUT", "/api/v1/blobs"),
        ("POST", "/api/v1/report"),
        ("GET", "/api/v1/scan"),
    ] {
        let (s, _, b) = call(
            &st,
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["status"], 405);
    }
}

#[tokio::test]
async fn before_the_first_scan_everything_is_503_json_and_the_page_waits() {
    let st = AppState::new(Arc::new(|| Err("storage unreadable".into())), None);
    st.scan_now();
    let (s, v) = get(&st, "/api/v1/report").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"].as_str().unwrap().contains("storage unreadable"));
    let (s, v) = get(&st, "/api/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["scans_failure"], 1);
    assert_eq!(v["last_error"], "storage unreadable");
    let (s, _, b) = call(&st, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8(b).unwrap().contains("first scan"));
}

#[tokio::test]
async fn a_failed_rescan_keeps_serving_the_last_good_scan() {
    let sample = stowage_testkit::sample();
    let root = sample.layout_root();
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    let st = AppState::new(
        Arc::new(move || {
            if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Ok(snapshot(&root))
            } else {
                Err("permission denied".into())
            }
        }),
        None,
    );
    st.scan_now();
    st.scan_now();
    let (s, v) = get(&st, "/api/v1/report").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["summary"]["blobs"], 42);
    let (_, v) = get(&st, "/api/v1/status").await;
    assert_eq!(v["generation"], 1);
    assert_eq!(v["last_error"], "permission denied");
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let (st, _s) = state(Some("s3cret-token"));
    let (s, h, b) = call(
        &st,
        Request::get("/api/v1/report").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.get(header::WWW_AUTHENTICATE).is_some());
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["status"], 401);
    for uri in ["/", "/metrics", "/api/openapi.json", "/nope"] {
        let (s, _, _) = call(&st, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (s, _, _) = call(
        &st,
        Request::post("/api/v1/scan").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no scan without the token");
    let (s, _, _) = call(
        &st,
        Request::get("/api/v1/report")
            .header(header::AUTHORIZATION, "Bearer wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(
        &st,
        Request::get("/api/v1/report")
            .header(header::AUTHORIZATION, "Bearer s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // A browser: ?token= once sets an HttpOnly cookie and redirects without the token.
    let (s, h, _) = call(
        &st,
        Request::get("/?token=s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/");
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let (s, _, b) = call(
        &st,
        Request::get("/")
            .header(header::COOKIE, "stowage_token=s3cret-token")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8(b).unwrap().contains("stowage dashboard"));
    let (s, _, _) = call(
        &st,
        Request::get("/?token=wrong").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_bound_repositories_and_count_scans() {
    let (st, _s) = state(None);
    let (s, h, b) = call(&st, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(b).unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("stowage_repository_bytes{"))
        .collect();
    // Top 3 plus (other).
    assert_eq!(series.len(), 4, "{series:?}");
    assert!(series[3].starts_with("stowage_repository_bytes{repository=\"(other)\"}"));
    assert!(text.contains("stowage_other_repositories 3\n"));
    assert!(text.contains("stowage_scans_total{result=\"success\"} 1\n"));
    assert!(text.contains("stowage_scan_in_progress 0\n"));
    assert!(text.contains("stowage_last_success_timestamp_seconds 1796083200\n"));
}

#[tokio::test]
async fn the_page_embeds_the_data_and_the_csv_has_every_blob() {
    let (st, _s) = state(None);
    let (s, h, b) = call(&st, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(b).unwrap();
    assert!(html.contains("<script type=\"application/json\" id=\"stowage-data\">"));
    assert!(html.contains("connect-src 'self'"));
    let (s, h, b) = call(
        &st,
        Request::get("/api/v1/blobs.csv")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = String::from_utf8(b).unwrap();
    assert_eq!(csv.lines().count(), 43, "header + 42 blobs");
    assert!(
        csv.starts_with("digest,size,modified,created,kind,referenced,repositories,tags,path\n")
    );
}

#[tokio::test]
async fn openapi_lists_every_route_and_docs_copy_is_current() {
    let (st, _s) = state(None);
    let (s, v) = get(&st, "/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let paths: Vec<&String> = v["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/api/v1/status",
        "/api/v1/scan",
        "/api/v1/report",
        "/api/v1/repositories",
        "/api/v1/tags",
        "/api/v1/findings",
        "/api/v1/blobs",
        "/api/v1/blobs.csv",
        "/metrics",
    ] {
        assert!(paths.iter().any(|x| x.as_str() == p), "{p} missing");
    }
    // docs/openapi.json is generated from the code; STOWAGE_UPDATE_OPENAPI=1 rewrites it.
    let file = stowage_testkit::workspace_root().join("docs/openapi.json");
    let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
    if std::env::var_os("STOWAGE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap_or_default(),
        text,
        "docs/openapi.json is stale: run STOWAGE_UPDATE_OPENAPI=1 cargo nextest run -p stowage-serve"
    );
}

#[tokio::test]
async fn over_a_real_socket_with_a_rescan_on_demand() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (st, _s) = state(Some("tok"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(stowage_serve::serve(
        listener,
        st.clone(),
        std::time::Duration::from_secs(3600),
    ));
    async fn http(addr: std::net::SocketAddr, req: &str) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }
    let unauth = http(
        addr,
        "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(unauth.starts_with("HTTP/1.1 401"), "{unauth}");
    let ok = http(
        addr,
        "POST /api/v1/scan HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
    // serve() starts a scan itself, so this one may or may not have started; either way the
    // generation grows past the initial scan. Bounded wait: 600 x 50 ms.
    let mut generation = 0;
    for _ in 0..600 {
        generation = st.generation();
        if generation >= 2 && !st.scanning() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(generation >= 2, "no rescan completed");
    let status = http(
        addr,
        "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    assert!(v["generation"].as_u64().unwrap() >= 2);
    assert_eq!(v["last_success"], "2026-12-01T00:00:00Z");
    server.abort();
}

fn notify_state(
    secret: Option<&str>,
) -> (Arc<AppState>, stowage_testkit::Sample, tempfile::TempDir) {
    notify_state_with(secret, true, None)
}

fn notify_state_with(
    secret: Option<&str>,
    insecure_loopback: bool,
    started: Option<Timestamp>,
) -> (Arc<AppState>, stowage_testkit::Sample, tempfile::TempDir) {
    let sample = stowage_testkit::sample();
    let root = sample.layout_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let n = stowage_serve::Notifications {
        db: std::sync::Mutex::new(stowage_history::Db::open(&path).unwrap()),
        db_path: path,
        filter: stowage_usage::Filter::default(),
        secret: secret.map(str::to_string),
        insecure_loopback,
        allowed_hosts: vec!["10.0.0.5".into()],
        started,
    };
    let st = AppState::with_notifications(
        Arc::new(move || Ok(snapshot(&root))),
        Some("tok".into()),
        Some(n),
    );
    st.scan_now();
    (st, sample, dir)
}

/// An envelope as registry 2.8 posts it: a manifest pull by tag, and a blob pull.
fn envelope() -> String {
    serde_json::json!({"events": [
        {"id": "0a1b", "timestamp": "2026-11-30T10:00:00.123456789Z", "action": "pull",
         "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 426,
                    "digest": "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e",
                    "length": 426, "repository": "library/base",
                    "url": "http://127.0.0.1:5000/v2/library/base/manifests/sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e",
                    "tag": "1.0"},
         "request": {"id": "6526ea57", "addr": "127.0.0.1:49956", "host": "127.0.0.1:5000", "method": "GET", "useragent": "skopeo/1.9.3"},
         "actor": {}, "source": {"addr": "host:5000", "instanceID": "c0ffee"}},
        {"id": "0a1c", "timestamp": "2026-11-30T10:00:00.2Z", "action": "pull",
         "target": {"mediaType": "application/octet-stream", "size": 411,
                    "digest": "sha256:cc5e2aaeb89720445fcb3df6d16559b3bac8cf509ed4765ae69cb6a26695086e",
                    "length": 411, "repository": "library/base"},
         "request": {"id": "09e5c317", "addr": "127.0.0.1:49960", "method": "GET", "useragent": "skopeo/1.9.3"},
         "actor": {}, "source": {}}
    ]})
    .to_string()
}

fn post(body: &str, secret: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/api/v1/notifications")
        .header(
            header::CONTENT_TYPE,
            "application/vnd.docker.distribution.events.v1+json",
        )
        .header(header::HOST, "127.0.0.1:8080");
    if let Some(s) = secret {
        r = r.header("X-Stowage-Secret", s);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn the_registry_webhook_records_pulls_once_and_checks_its_secret() {
    let (st, _s, _d) = notify_state(Some("s3cret"));
    // Valid envelope, right secret (no bearer token needed on this route): 200.
    let (s, _, b) = call(&st, post(&envelope(), Some("s3cret"))).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["events"], 2);
    assert_eq!(v["recorded"], 1);
    assert_eq!(v["skipped"], 1);
    // The registry retries after a timeout: the same envelope is a duplicate, still 200.
    let (s, _, b) = call(&st, post(&envelope(), Some("s3cret"))).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (v["recorded"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    // Wrong or missing secret: 401; malformed body: 400; both JSON errors.
    let (s, _, _) = call(&st, post(&envelope(), Some("nope"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&st, post(&envelope(), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, b) = call(&st, post("{\"events\": [", Some("s3cret"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("not a notification envelope"));
    // Other routes still need the bearer token.
    let (s, _) = get(&st, "/api/v1/usage").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, b) = call(
        &st,
        Request::get("/api/v1/usage")
            .header(header::AUTHORIZATION, "Bearer tok")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).unwrap();
    let pulled: Vec<&Value> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["pulls"].as_u64() > Some(0))
        .collect();
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0]["repository"], "library/base");
    assert_eq!(pulled[0]["bucket"], "week");
    assert_eq!(v["data_begins"], "2026-11-30T10:00:00.123456789Z");
}

#[tokio::test]
async fn without_a_secret_the_webhook_needs_the_bearer_token() {
    let (st, _s, _d) = notify_state(None);
    let (s, _, _) = call(&st, post(&envelope(), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut r = post(&envelope(), None);
    r.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
    let (s, _, _) = call(&st, r).await;
    assert_eq!(s, StatusCode::OK);
    // Without --history: 404, so a misconfigured endpoint shows in the registry's log.
    let (st, _s) = state(None);
    let (s, _, _) = call(&st, post(&envelope(), None)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// An envelope of one manifest pull at `at`.
fn envelope_at(at: &str, id: &str) -> String {
    serde_json::json!({"events": [
        {"id": id, "timestamp": at, "action": "pull",
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 426,
                    "digest": "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e",
                    "repository": "library/base"},
         "request": {"id": id, "method": "GET", "useragent": "docker/27"}}
    ]})
    .to_string()
}

/// Issue 25 item 3: one forged event dated 1971, POSTed cross-origin as `text/plain` to a
/// loopback `serve` without a secret, was accepted and made decades of pull data "covered".
#[tokio::test]
async fn forged_pull_data_is_refused_and_cannot_widen_coverage() {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let started = now.saturating_sub_secs(3600);
    // No secret and not --insecure-loopback-webhook: refused.
    let (st, _s, _d) = notify_state_with(None, false, Some(started));
    let mut r = post(&envelope(), None);
    r.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
    let (s, _, _) = call(&st, r).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // With a secret: a cross-origin text/plain POST (what a web page can send without a
    // preflight) is refused for its media type.
    let (st, _s, d) = notify_state_with(Some("s3cret"), false, Some(started));
    let mut r = post(
        &envelope_at("1971-01-01T00:00:00Z", "forged"),
        Some("s3cret"),
    );
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
    let (s, _, _) = call(&st, r).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Well-formed, right secret, but dated 1971 (before the receiver started): rejected and
    // counted, nothing recorded.
    let (s, _, b) = call(
        &st,
        post(
            &envelope_at("1971-01-01T00:00:00Z", "forged"),
            Some("s3cret"),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (v["recorded"].as_u64(), v["rejected"].as_u64()),
        (Some(0), Some(1))
    );
    // A real event now is recorded; coverage begins with it, not in 1971.
    let at = now.rfc3339();
    let (s, _, b) = call(&st, post(&envelope_at(&at, "real"), Some("s3cret"))).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["recorded"], 1);
    let db = stowage_history::Db::open_existing(&d.path().join("h.db")).unwrap();
    assert_eq!(db.pull_summary().unwrap().data_begins, Some(now));
    let status = db.usage_status().unwrap();
    assert_eq!(status.sources[0].rejected, 1);
    // In the insecure loopback mode, the Host header must be loopback or the bound address
    // (a DNS-rebinding page sends its own name).
    let (st, _s, _d) = notify_state_with(None, true, Some(started));
    let mut r = post(&envelope_at(&at, "rebind"), None);
    r.headers_mut()
        .insert(header::HOST, "attacker.example:8080".parse().unwrap());
    r.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
    let (s, _, _) = call(&st, r).await;
    assert_eq!(s, StatusCode::MISDIRECTED_REQUEST);
    for host in ["localhost:8080", "[::1]:8080", "10.0.0.5:8080"] {
        let mut r = post(&envelope_at(&at, host), None);
        r.headers_mut().insert(header::HOST, host.parse().unwrap());
        r.headers_mut()
            .insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        let (s, _, _) = call(&st, r).await;
        assert_eq!(s, StatusCode::OK, "{host}");
    }
    // Bodies are limited: 413 beyond 1 MiB.
    let big = format!(
        "{{\"events\": [], \"pad\": \"{}\"}}",
        "x".repeat(stowage_serve::BODY_LIMIT)
    );
    let (st, _s, _d) = notify_state_with(Some("s3cret"), false, Some(started));
    let (s, _, _) = call(&st, post(&big, Some("s3cret"))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Issue 19, "Smaller": `Authorization: bearer` (lowercase scheme) is a bearer token; a
/// browser's 401 says how to use `?token=`; a 413 is JSON like every other error.
#[tokio::test]
async fn lowercase_bearer_browser_401_and_json_413() {
    let (st, _s) = state(Some("s3cret-token"));
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (s, _, _) = call(
            &st,
            Request::get("/api/v1/status")
                .header(header::AUTHORIZATION, format!("{scheme} s3cret-token"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{scheme}");
    }
    let (s, h, b) = call(
        &st,
        Request::get("/")
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let html = h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html");
    let page = String::from_utf8(b).unwrap();
    assert!(s == StatusCode::UNAUTHORIZED && html && page.contains("?token=TOKEN"));
    let (s, v) = get(&st, "/api/v1/report").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"].as_str().unwrap().contains("?token="), "{v}");

    let started = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let (st, _s, _d) = notify_state_with(Some("s3cret"), false, Some(started));
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(stowage_serve::BODY_LIMIT));
    let (s, h, b) = call(&st, post(&big, Some("s3cret"))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let ct = h[header::CONTENT_TYPE].to_str().unwrap();
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(
        ct.starts_with("application/json") && v["status"] == 413,
        "{ct} {v}"
    );
}
