//! The tag table's server-side sort and search (`/api/v1/tag-rows`), and 413/414/431 answered
//! in JSON to a real HTTP client (curl) over a socket (issue 19: they were hyper's or axum's
//! plain-text or empty bodies).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use stowage_model::time::Timestamp;
use stowage_report::overview::Limits;
use stowage_serve::{AppState, Snapshot};

fn snapshot(root: &std::path::Path) -> Snapshot {
    let fs = stowage_storage::FsStorage::open(root).unwrap();
    let inv = stowage_scan::scan(
        &fs,
        &stowage_scan::ScanOptions {
            concurrency: 2,
            verify_links: false,
            ..Default::default()
        },
        &stowage_scan::Progress::default(),
    )
    .unwrap();
    let mut analysis = stowage_analysis::Analysis::new(
        inv,
        &stowage_analysis::Options {
            now: Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
            ..Default::default()
        },
    );
    analysis.read_build_dates(&fs, 2);
    Snapshot::build(analysis, &Limits::default(), 3, 0.25)
}

/// A server on a loopback port with one completed scan of the sample, receiving
/// notifications (secret `s3cret`).
async fn server() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<()>>,
    (stowage_testkit::Sample, tempfile::TempDir),
) {
    let sample = stowage_testkit::sample();
    let root = sample.layout_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let n = stowage_serve::Notifications {
        db: std::sync::Mutex::new(stowage_history::Db::open(&path).unwrap()),
        db_path: path,
        filter: stowage_usage::Filter::default(),
        secret: Some("s3cret".into()),
        insecure_loopback: true,
        allowed_hosts: vec![],
        started: None,
    };
    let st = AppState::with_notifications(Arc::new(move || Ok(snapshot(&root))), None, Some(n));
    st.scan_now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let h = tokio::spawn(stowage_serve::serve(
        listener,
        st,
        std::time::Duration::from_secs(3600),
    ));
    (addr, h, (sample, dir))
}

/// curl's status code, content type and body.
async fn curl(args: Vec<String>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code} %{content_type}"])
            .args(&args)
            .output()
            .expect("curl (a test dependency: apt-get install curl)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, tail) = text.rsplit_once('\n').unwrap();
        let (code, ct) = tail.split_once(' ').unwrap_or((tail, ""));
        (code.parse().unwrap(), ct.to_string(), body.to_string())
    })
    .await
    .unwrap()
}

fn json_error(code: u16, ct: &str, body: &str, want: u16) {
    assert_eq!(code, want, "{body}");
    assert!(ct.starts_with("application/json"), "{want}: {ct:?} {body}");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], want);
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_gets_json_for_413_414_and_431() {
    let (addr, h, _s) = server().await;
    let base = format!("http://{addr}");
    // 414: a request target over 8 KiB (below hyper's own 64 KiB limit).
    let long = format!("{base}/api/v1/blobs?q={}", "a".repeat(9000));
    let (code, ct, body) = curl(vec![long]).await;
    json_error(code, &ct, &body, 414);
    // 431: one header of 20 KiB; and 70 headers.
    let (code, ct, body) = curl(vec![
        "-H".into(),
        format!("X-Big: {}", "b".repeat(20 << 10)),
        format!("{base}/api/v1/status"),
    ])
    .await;
    json_error(code, &ct, &body, 431);
    let mut args = Vec::new();
    for i in 0..70 {
        args.push("-H".to_string());
        args.push(format!("X-H{i}: v"));
    }
    args.push(format!("{base}/api/v1/status"));
    let (code, ct, body) = curl(args).await;
    json_error(code, &ct, &body, 431);
    // 413: a notification body over 1 MiB.
    let big = std::env::temp_dir().join(format!("stowage-413-{}.json", std::process::id()));
    std::fs::write(&big, vec![b' '; (1 << 20) + 10]).unwrap();
    let (code, ct, body) = curl(vec![
        "-X".into(),
        "POST".into(),
        "-H".into(),
        "Content-Type: application/vnd.docker.distribution.events.v1+json".into(),
        "-H".into(),
        format!("{}: s3cret", stowage_serve::SECRET_HEADER),
        "--data-binary".into(),
        format!("@{}", big.display()),
        format!("{base}/api/v1/notifications"),
    ])
    .await;
    std::fs::remove_file(&big).unwrap();
    json_error(code, &ct, &body, 413);
    // A request within the limits is answered normally.
    let (code, _, _) = curl(vec![format!("{base}/api/v1/status")]).await;
    assert_eq!(code, 200);
    h.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_rows_are_searched_sorted_by_every_column_and_paged() {
    let (addr, h, _s) = server().await;
    let base = format!("http://{addr}/api/v1/tag-rows");
    let page = |q: String| get_json(format!("{base}?{q}"));
    let all = page("limit=1000".into()).await;
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 3, "{all}");
    for sort in [
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
    ] {
        for order in ["asc", "desc"] {
            let p = page(format!("limit=1000&sort={sort}&order={order}")).await;
            let rows = p["rows"].as_array().unwrap();
            assert_eq!(rows.len() as u64, total, "{sort}");
            let key = |r: &Value| -> Value {
                match sort {
                    "name" => Value::Array(vec![r["repository"].clone(), r["tag"].clone()]),
                    "age" => r["built"].clone(),
                    k => r[k].clone(),
                }
            };
            let asc = (order == "asc") != (sort == "age");
            check_order(rows, key, asc, &format!("{sort} {order}"));
        }
    }
    // Search: a tag name finds its rows and nothing else; the count is the match count.
    let first = &all["rows"][0];
    let needle = format!(
        "{}:{}",
        first["repository"].as_str().unwrap(),
        first["tag"].as_str().unwrap()
    );
    let p = page(format!("q={}", needle.replace(':', "%3A"))).await;
    assert!(p["total"].as_u64().unwrap() >= 1);
    for r in p["rows"].as_array().unwrap() {
        let name = format!(
            "{}:{}",
            r["repository"].as_str().unwrap(),
            r["tag"].as_str().unwrap()
        );
        assert!(name.contains(&needle), "{name}");
    }
    // Paging: offset and limit slice the same order.
    let p1 = page("limit=1&offset=1&sort=name&order=asc".into()).await;
    let pa = page("limit=1000&sort=name&order=asc".into()).await;
    assert_eq!(p1["rows"][0], pa["rows"][1]);
    // A column it cannot sort by is a JSON 400 naming the columns.
    let (code, ct, body) = curl(vec![format!("{base}?sort=color")]).await;
    json_error(code, &ct, &body, 400);
    assert!(body.contains("last_pulled"), "{body}");
    h.abort();
}

fn cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_u64().unwrap().cmp(&y.as_u64().unwrap()),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| cmp(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(x.len().cmp(&y.len())),
        _ => panic!("{a} vs {b}"),
    }
}

/// Present values are ordered as asked; absent (null) values come last either way.
fn check_order(rows: &[Value], key: impl Fn(&Value) -> Value, asc: bool, what: &str) {
    let present: Vec<Value> = rows.iter().map(&key).filter(|v| !v.is_null()).collect();
    if let Some(i) = rows.iter().position(|r| key(r).is_null()) {
        assert!(rows[i..].iter().all(|r| key(r).is_null()), "{what}");
    }
    for w in present.windows(2) {
        let o = cmp(&w[0], &w[1]);
        assert!(
            if asc { o.is_le() } else { o.is_ge() },
            "{what}: {} then {}",
            w[0],
            w[1]
        );
    }
}

/// Issue 19: the dashboard's repository table is searched, sorted by every column and paged
/// on the server, like the tag table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_rows_are_searched_sorted_by_every_column_and_paged() {
    let (addr, h, _s) = server().await;
    let base = format!("http://{addr}/api/v1/repository-rows");
    let page = |q: String| get_json(format!("{base}?{q}"));
    let all = page("limit=1000".into()).await;
    let total = all["total"].as_u64().unwrap();
    // Every repository, not only the report's top rows.
    let report = get_json(format!("http://{addr}/api/v1/repositories")).await;
    let repositories = report
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["repository"] == true)
        .count() as u64;
    assert_eq!(total, repositories, "{all}");
    for sort in [
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
    ] {
        for order in ["asc", "desc"] {
            let p = page(format!("limit=1000&sort={sort}&order={order}")).await;
            let rows = p["rows"].as_array().unwrap();
            assert_eq!(rows.len() as u64, total, "{sort}");
            check_order(
                rows,
                |r| r[sort].clone(),
                order == "asc",
                &format!("{sort} {order}"),
            );
        }
    }
    // Search: a substring of the name, the total is the match count.
    let p = page("q=TEAM%2F&limit=1000".into()).await;
    let rows = p["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert_eq!(p["total"].as_u64().unwrap() as usize, rows.len());
    assert!(
        rows.iter()
            .all(|r| r["repository"].as_str().unwrap().contains("team/"))
    );
    // Paging slices the same order.
    let p1 = page("limit=1&offset=2&sort=repository&order=asc".into()).await;
    let pa = page("limit=1000&sort=repository&order=asc".into()).await;
    assert_eq!(p1["rows"][0], pa["rows"][2]);
    let (code, ct, body) = curl(vec![format!("{base}?sort=color")]).await;
    json_error(code, &ct, &body, 400);
    assert!(body.contains("untagged_bytes"), "{body}");
    h.abort();
}

/// A 200 answer's JSON.
async fn get_json(url: String) -> Value {
    let (code, _, body) = curl(vec![url]).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}
