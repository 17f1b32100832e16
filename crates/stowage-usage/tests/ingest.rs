//! Ingest through the store: dedupe on re-ingest, filters, tag-at-time, notifications and
//! logs of the same request, and no input line panics.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use stowage_history::{Db, SourceKind, UsageAction};
use stowage_model::time::Timestamp;
use stowage_usage::{Filter, FilterConfig, Ingest, TagTimeline, parse_envelope, parse_line};

const A: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const B: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn text(time: &str, id: &str, method: &str, uri: &str, status: u16, ua: &str) -> String {
    format!(
        r#"time="{time}" level=info msg="response completed" go.version=go1.19.8 http.request.host="registry:5000" http.request.id={id} http.request.method={method} http.request.remoteaddr="10.0.0.5:41234" http.request.uri={uri} http.request.useragent="{ua}" http.response.contenttype=application/vnd.oci.image.manifest.v1+json http.response.duration=3.1ms http.response.status={status} http.response.written=512"#
    )
}

fn timeline() -> TagTimeline {
    let mut tl = TagTimeline::default();
    tl.add("team/app", "latest", t("2026-11-01T00:00:00Z"), A);
    tl.add("team/app", "latest", t("2026-11-10T00:00:00Z"), B);
    tl.finish();
    tl
}

fn lines() -> Vec<String> {
    vec![
        r#"time="2026-10-31T23:00:00Z" level=info msg="listening on [::]:5000""#.to_string(),
        text(
            "2026-11-05T10:00:00.5Z",
            "r1",
            "GET",
            "/v2/team/app/manifests/latest",
            200,
            "docker/24.0.7",
        ),
        text(
            "2026-11-12T10:00:00.5Z",
            "r2",
            "HEAD",
            "/v2/team/app/manifests/latest",
            200,
            "containerd/1.7.2",
        ),
        text(
            "2026-11-12T11:00:00Z",
            "r3",
            "GET",
            "/v2/team/app/manifests/latest",
            200,
            "Trivy/0.50.1",
        ),
        text(
            "2026-11-12T12:00:00Z",
            "r4",
            "GET",
            "/v2/team/app/manifests/nope",
            404,
            "docker/24",
        ),
        text(
            "2026-11-12T13:00:00Z",
            "r5",
            "GET",
            "/v2/team/app/blobs/sha256:00",
            200,
            "docker/24",
        ),
        text(
            "2026-10-20T13:00:00Z",
            "r6",
            "GET",
            "/v2/team/app/manifests/latest",
            200,
            "docker/24",
        ),
        "garbage line".to_string(),
        String::new(),
    ]
}

#[test]
fn ingest_records_resolves_filters_and_dedupes() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("h.db")).unwrap();
    let (f, tl) = (Filter::default(), timeline());
    for round in 0..2 {
        let mut ing = Ingest::new(&f, &tl);
        for (i, l) in lines().iter().enumerate() {
            ing.line(l, || format!("test.log:{}", i + 1));
        }
        let mut done = ing.finish();
        let st = &done.stats;
        assert_eq!(st.lines_read, 9);
        assert_eq!(st.unparseable, 1);
        assert_eq!(
            done.examples,
            vec!["test.log:8: not a registry log format: garbage line"]
        );
        assert_eq!(st.other_lines, 1);
        assert_eq!(st.requests, 6);
        assert_eq!(st.manifest_events, 5);
        assert_eq!(st.ignored, 1);
        assert_eq!(st.unresolved, 1, "the pull before the tag's history");
        assert_eq!(done.events.len(), 4);
        let cov = st.coverage.clone();
        let r = db
            .record_usage(
                SourceKind::Logs,
                &cov,
                st.lines_read,
                &done.events,
                Some(&mut done.stats),
                t("2026-11-20T00:00:00Z"),
            )
            .unwrap();
        if round == 0 {
            assert_eq!((r.recorded, r.duplicates), (4, 0));
        } else {
            assert_eq!((r.recorded, r.duplicates), (0, 4));
        }
    }
    let s = db.pull_summary().unwrap();
    // The log has lines on 2026-10-20 and 2026-11-12 and nothing in between: a gap, so the
    // data covers only the run of days that ends with the newest (issue 25 item 3).
    assert_eq!(s.data_begins, Some(t("2026-11-12T10:00:00.5Z")));
    assert_eq!(s.data_ends, Some(t("2026-11-12T13:00:00Z")));
    // The tag moved between the two pulls: each pull went to the digest of its time.
    let got: Vec<(&str, u64, Timestamp)> = s
        .pulls
        .iter()
        .map(|p| (p.digest.as_str(), p.pulls, p.last_pulled))
        .collect();
    assert_eq!(
        got,
        vec![
            (A, 1, t("2026-11-05T10:00:00.5Z")),
            (B, 1, t("2026-11-12T10:00:00.5Z")),
        ]
    );
    let status = db.usage_status().unwrap();
    assert_eq!(status.ignored[0].reason, "user agent *trivy*");
    assert_eq!(status.ingests.len(), 2);
    assert_eq!(status.ingests[1].duplicates, 4);
}

#[test]
fn combined_lines_count_only_without_logrus_lines() {
    let (f, tl) = (Filter::default(), timeline());
    let comb = r#"10.0.0.5 - - [05/Nov/2026:10:00:00 +0000] "GET /v2/team/app/manifests/latest HTTP/1.1" 200 512 "" "docker/24.0.7""#;
    let mut ing = Ingest::new(&f, &tl);
    ing.line(comb, String::new);
    let done = ing.finish();
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].digest.as_deref(), Some(A));
    assert_eq!(done.events[0].source, "log:combined");
    // `docker logs` output: both lines of the same request; the logrus one is counted.
    let mut ing = Ingest::new(&f, &tl);
    ing.line(&lines()[1], String::new);
    ing.line(comb, String::new);
    let done = ing.finish();
    assert_eq!(done.events.len(), 1);
    assert_eq!(done.events[0].source, "log:text");
    assert_eq!(done.combined_skipped, 1);
    // Two identical combined lines (same second, same client) are two pulls, and stay two on
    // re-ingest (keyed by occurrence).
    let mut ing = Ingest::new(&f, &tl);
    ing.line(comb, String::new);
    ing.line(comb, String::new);
    let done = ing.finish();
    assert_eq!(done.events.len(), 2);
    assert_ne!(done.events[0].key, done.events[1].key);
}

#[test]
fn address_filters_apply() {
    let f = Filter::new(&FilterConfig {
        ignore_addresses: vec!["10.0.0.0/24".into()],
        ..FilterConfig::default()
    })
    .unwrap();
    let tl = timeline();
    let mut ing = Ingest::new(&f, &tl);
    ing.line(&lines()[1], String::new);
    let done = ing.finish();
    assert_eq!(
        done.events[0].ignored.as_deref(),
        Some("address 10.0.0.0/24")
    );
    assert_eq!(done.stats.ignored, 1);
}

#[test]
fn a_notification_and_the_log_line_of_the_same_request_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(&dir.path().join("h.db")).unwrap();
    let f = Filter::default();
    let body = serde_json::json!({"events": [
        {"id": "e1", "timestamp": "2026-11-05T10:00:00.5Z", "action": "pull",
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": A, "size": 512,
                    "length": 512, "repository": "team/app", "url": "http://r/v2/team/app/manifests/sha256:..", "tag": "latest"},
         "request": {"id": "r1", "addr": "10.0.0.5:41234", "host": "registry:5000", "method": "GET", "useragent": "docker/24.0.7"},
         "actor": {"name": "ci"}, "source": {"addr": "registry:5000", "instanceID": "i"}},
        {"id": "e2", "timestamp": "2026-11-05T10:00:01Z", "action": "pull",
         "target": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": B, "repository": "team/app"},
         "request": {"id": "r9", "method": "GET", "useragent": "docker/24.0.7"}},
        {"id": "e3", "timestamp": "2026-11-05T10:00:02Z", "action": "push",
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": B, "repository": "team/app", "tag": "v2"},
         "request": {"id": "r10", "method": "PUT", "useragent": "docker/24.0.7"}},
        {"id": "e4", "timestamp": "2026-11-05T10:00:03Z", "action": "pull",
         "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": B, "repository": "team/app"},
         "request": {"id": "r11", "method": "GET", "useragent": "grype/0.74"}}
    ]})
    .to_string();
    let rec = parse_envelope(body.as_bytes(), &f).unwrap();
    assert_eq!(rec.total, 4);
    assert_eq!(rec.skipped, 1, "the blob pull");
    assert_eq!(rec.events.len(), 3);
    assert_eq!(rec.events[0].user.as_deref(), Some("ci"));
    assert_eq!(rec.events[1].action, UsageAction::Push);
    assert!(rec.events[2].ignored.is_some());
    let last = rec.last_at.unwrap();
    let r = db
        .record_usage(
            SourceKind::Notifications,
            &rec.coverage,
            rec.total,
            &rec.events,
            None,
            last,
        )
        .unwrap();
    assert_eq!(r.recorded, 3);
    // The same request's access-log line: a duplicate.
    let tl = timeline();
    let mut ing = Ingest::new(&f, &tl);
    ing.line(&lines()[1], String::new);
    let done = ing.finish();
    let r = db
        .record_usage(
            SourceKind::Logs,
            &stowage_history::Coverage::default(),
            1,
            &done.events,
            None,
            last,
        )
        .unwrap();
    assert_eq!((r.recorded, r.duplicates), (0, 1));
    assert_eq!(db.pull_summary().unwrap().pulls.len(), 1);
    assert_eq!(
        db.tag_pushes().unwrap(),
        vec![(
            "team/app".to_string(),
            "v2".to_string(),
            t("2026-11-05T10:00:02Z"),
            B.to_string()
        )]
    );
    assert!(parse_envelope(b"{not json", &f).is_err());
    assert!(parse_envelope(b"[1,2]", &f).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn no_line_panics(s in "\\PC{0,300}") {
        let _ = parse_line(&s);
        let (f, tl) = (Filter::default(), TagTimeline::default());
        let mut ing = Ingest::new(&f, &tl);
        ing.line(&s, String::new);
        let _ = ing.finish();
    }

    #[test]
    fn no_mangled_registry_line_panics(cut in 0usize..700, junk in "[\"\\\\=\\[\\] {}a-z0-9:/]{0,12}") {
        for l in lines() {
            let mut m: String = l.chars().take(cut).collect();
            m.push_str(&junk);
            let _ = parse_line(&m);
            let _ = parse_line(&format!("{{\"log\":\"{m}\"}}"));
        }
        let _ = parse_envelope(junk.as_bytes(), &Filter::default());
    }
}

/// Issue 25 item 3, for logs: a line dated before the registry stored anything (a forged or
/// mis-dated 1971 line) is rejected and counted, so it cannot claim coverage or a pull; lines
/// from the registry's life are kept. The bound comes from the inventory's oldest blob.
#[test]
fn log_lines_dated_before_the_registry_existed_are_rejected() {
    use stowage_model::digest::Sha256;
    use stowage_model::inventory::{BlobFile, Inventory};
    let mut inv = Inventory::default();
    for (i, at) in ["2026-10-15T00:00:00Z", "2026-10-01T12:00:00Z"]
        .iter()
        .enumerate()
    {
        inv.blobs
            .push(BlobFile::new(Sha256([i as u8 + 1; 32]), 10, t(at)));
    }
    let earliest = stowage_usage::earliest_plausible(&inv, 900).unwrap();
    assert_eq!(earliest, t("2026-10-01T11:45:00Z"));
    assert_eq!(
        stowage_usage::earliest_plausible(&Inventory::default(), 900),
        None
    );

    let (f, tl) = (Filter::default(), timeline());
    let mut ing = Ingest::new(&f, &tl)
        .reject_after(t("2026-11-20T00:00:00Z"))
        .reject_before(earliest);
    let forged = text(
        "1971-01-01T00:00:00Z",
        "old",
        "GET",
        "/v2/team/app/manifests/latest",
        200,
        "docker/24.0.7",
    );
    let real = text(
        "2026-11-12T10:00:00Z",
        "new",
        "GET",
        "/v2/team/app/manifests/latest",
        200,
        "docker/24.0.7",
    );
    ing.line(&forged, || "a.log:1".into());
    ing.line(&real, || "a.log:2".into());
    let done = ing.finish();
    assert_eq!(done.stats.rejected, 1);
    assert_eq!(done.stats.first_at, Some(t("2026-11-12T10:00:00Z")));
    assert_eq!(done.events.len(), 1);
}
