//! One log line in, one [`Line`] out: the registry's access-log formats, recognised per line.
//!
//! - **logrus text** (distribution 2.x/3.x, `log.formatter: text`, the default; stderr): `key=value`
//!   pairs, values Go-quoted when they contain spaces or quotes. The request line is the one
//!   with `http.response.status` (`msg="response completed"`, or `"response completed with
//!   error"`); other lines also carry `http.request.*` fields but no status.
//! - **logrus JSON** (`log.formatter: json`, and `logstash`'s `@timestamp`): the same keys.
//! - **combined** (distribution's access log on stdout, gorilla's Apache combined format):
//!   `ADDR - USER [23/Nov/2026:07:35:03 +0000] "GET /v2/... HTTP/1.1" 200 426 "REF" "UA"`.
//! - **GitLab** (its registry's JSON access log, from labkit): `method`, `uri`, `status`,
//!   `remote_ip`/`remote_addr`, `user_agent`, `correlation_id`, `time`.
//!
//! Wrappers are taken off first: Docker's `json-file` lines (`{"log": "...", "stream": ...}`)
//! and `kubectl logs --timestamps` prefixes. Nothing here panics on any input (a property
//! test feeds it arbitrary strings).

use std::borrow::Cow;

use serde::Deserialize;
use stowage_model::time::Timestamp;

/// Which log format a request line was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Json,
    Combined,
    Gitlab,
}

impl Format {
    /// The `source` recorded with each event.
    pub fn source(self) -> &'static str {
        match self {
            Format::Text => "log:text",
            Format::Json => "log:json",
            Format::Combined => "log:combined",
            Format::Gitlab => "log:gitlab",
        }
    }
}

/// One HTTP request as a log line describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub format: Format,
    pub time: Timestamp,
    pub method: Cow<'a, str>,
    pub uri: Cow<'a, str>,
    pub status: u16,
    pub user_agent: Option<Cow<'a, str>>,
    pub remote_addr: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    /// The registry's request id (logrus `http.request.id`, GitLab `correlation_id`): the
    /// same id is in the notification events of the request.
    pub request_id: Option<Cow<'a, str>>,
}

/// What a line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Request(Request<'a>),
    /// A log line that is not a request (start-up, errors, debug), with its time if any.
    Other(Option<Timestamp>),
    Blank,
    /// Not a format we know, or a known format with a broken field.
    Unparseable(&'static str),
}

/// Parse one line (without its newline).
pub fn parse_line(line: &str) -> Line<'_> {
    parse_depth(line.trim_end_matches(['\r', '\n']), 0)
}

fn parse_depth(line: &str, depth: u8) -> Line<'_> {
    let t = line.trim_start();
    if t.trim_end().is_empty() {
        return Line::Blank;
    }
    if t.starts_with('{') {
        return json(t, depth);
    }
    if t.starts_with("time=") || t.starts_with("level=") {
        return text(t);
    }
    // `kubectl logs --timestamps`: an RFC 3339 time, a space, the line.
    if depth == 0
        && t.as_bytes()[0].is_ascii_digit()
        && let Some((first, rest)) = t.split_once(' ')
        && first.len() >= 20
        && first.as_bytes().get(4) == Some(&b'-')
        && first.contains('T')
        && Timestamp::parse_rfc3339(first).is_some()
    {
        return parse_depth(rest, depth + 1);
    }
    if let Some(l) = combined(t) {
        return l;
    }
    if t.contains("msg=") && t.contains("level=") {
        return text(t);
    }
    Line::Unparseable("not a registry log format")
}

// ---- logrus text -------------------------------------------------------------------------

/// Read a Go-quoted string starting after the opening quote; returns (value, rest).
fn go_unquote(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut simple = true;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let v = &s[..i];
                let rest = &s[i + 1..];
                if simple {
                    return Some((Cow::Borrowed(v), rest));
                }
                return Some((Cow::Owned(unescape(v)), rest));
            }
            b'\\' => {
                simple = false;
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(u @ ('x' | 'u' | 'U')) => {
                let n = match u {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = it.by_ref().take(n).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push('\u{fffd}'),
                }
            }
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

fn text(line: &str) -> Line<'_> {
    let mut time = None;
    let mut method = None;
    let mut uri = None;
    let mut status = None;
    let mut ua = None;
    let mut addr = None;
    let mut user = None;
    let mut id = None;
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let Some(eq) = rest.find('=') else {
            return Line::Unparseable("text line: a field without '='");
        };
        let key = &rest[..eq];
        if key.is_empty() || key.contains(' ') {
            return Line::Unparseable("text line: a field without '='");
        }
        rest = &rest[eq + 1..];
        let value: Cow<'_, str>;
        if let Some(q) = rest.strip_prefix('"') {
            let Some((v, r)) = go_unquote(q) else {
                return Line::Unparseable("text line: unterminated quote");
            };
            value = v;
            rest = r;
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = Cow::Borrowed(&rest[..end]);
            rest = &rest[end..];
        }
        match key {
            "time" => time = Some(value),
            "http.request.method" => method = Some(value),
            "http.request.uri" => uri = Some(value),
            "http.response.status" => status = Some(value),
            "http.request.useragent" => ua = Some(value),
            "http.request.remoteaddr" => addr = Some(value),
            "auth.user.name" => user = Some(value),
            "http.request.id" => id = Some(value),
            _ => {}
        }
    }
    let time = match time {
        Some(t) => match Timestamp::parse_rfc3339(&t) {
            Some(t) => Some(t),
            None => return Line::Unparseable("text line: bad time"),
        },
        None => None,
    };
    let (Some(method), Some(uri), Some(status)) = (method, uri, status) else {
        return Line::Other(time);
    };
    let Some(time) = time else {
        return Line::Unparseable("text line: a request without time");
    };
    let Ok(status) = status.parse::<u16>() else {
        return Line::Unparseable("text line: bad http.response.status");
    };
    Line::Request(Request {
        format: Format::Text,
        time,
        method,
        uri,
        status,
        user_agent: ua.filter(|u| !u.is_empty()),
        remote_addr: addr.filter(|a| !a.is_empty()),
        user: user.filter(|u| !u.is_empty()),
        request_id: id.filter(|i| !i.is_empty()),
    })
}

// ---- JSON (logrus and GitLab) ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum Num<'a> {
    N(u64),
    #[serde(borrow)]
    S(Cow<'a, str>),
    Other(#[allow(dead_code)] serde_json::Value),
}

impl Num<'_> {
    fn get(&self) -> Option<u16> {
        match self {
            Num::N(n) => u16::try_from(*n).ok(),
            Num::S(s) => s.parse().ok(),
            Num::Other(_) => None,
        }
    }
}

/// Any string-or-other value: non-strings become `None` (never an error).
#[derive(Deserialize)]
#[serde(untagged)]
enum Str<'a> {
    #[serde(borrow)]
    S(Cow<'a, str>),
    Other(#[allow(dead_code)] serde_json::Value),
}

impl<'a> Str<'a> {
    fn get(self) -> Option<Cow<'a, str>> {
        match self {
            Str::S(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow)]
    time: Option<Str<'a>>,
    #[serde(borrow, rename = "@timestamp")]
    at_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    timestamp: Option<Str<'a>>,
    // distribution (logrus JSON / logstash)
    #[serde(borrow, rename = "http.request.method")]
    d_method: Option<Str<'a>>,
    #[serde(borrow, rename = "http.request.uri")]
    d_uri: Option<Str<'a>>,
    #[serde(borrow, rename = "http.response.status")]
    d_status: Option<Num<'a>>,
    #[serde(borrow, rename = "http.request.useragent")]
    d_ua: Option<Str<'a>>,
    #[serde(borrow, rename = "http.request.remoteaddr")]
    d_addr: Option<Str<'a>>,
    #[serde(borrow, rename = "http.request.id")]
    d_id: Option<Str<'a>>,
    #[serde(borrow, rename = "auth.user.name")]
    d_user: Option<Str<'a>>,
    // GitLab (labkit access logger)
    #[serde(borrow)]
    method: Option<Str<'a>>,
    #[serde(borrow)]
    uri: Option<Str<'a>>,
    #[serde(borrow)]
    status: Option<Num<'a>>,
    #[serde(borrow)]
    user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    remote_ip: Option<Str<'a>>,
    #[serde(borrow)]
    remote_addr: Option<Str<'a>>,
    #[serde(borrow)]
    correlation_id: Option<Str<'a>>,
    #[serde(borrow)]
    auth_user_name: Option<Str<'a>>,
    // Docker json-file wrapper
    #[serde(borrow)]
    log: Option<Str<'a>>,
}

fn json(line: &str, depth: u8) -> Line<'_> {
    let Ok(j) = serde_json::from_str::<JsonLine<'_>>(line) else {
        return Line::Unparseable("JSON line: invalid JSON");
    };
    let time_s = j
        .time
        .and_then(Str::get)
        .or_else(|| j.at_timestamp.and_then(Str::get))
        .or_else(|| j.timestamp.and_then(Str::get));
    let time = match &time_s {
        Some(s) => match Timestamp::parse_rfc3339(s) {
            Some(t) => Some(t),
            None => return Line::Unparseable("JSON line: bad time"),
        },
        None => None,
    };
    if let (Some(m), Some(u), Some(s)) = (j.d_method, j.d_uri, j.d_status) {
        let (Some(method), Some(uri)) = (m.get(), u.get()) else {
            return Line::Other(time);
        };
        let Some(time) = time else {
            return Line::Unparseable("JSON line: a request without time");
        };
        let Some(status) = s.get() else {
            return Line::Unparseable("JSON line: bad http.response.status");
        };
        return Line::Request(Request {
            format: Format::Json,
            time,
            method,
            uri,
            status,
            user_agent: j.d_ua.and_then(Str::get),
            remote_addr: j.d_addr.and_then(Str::get),
            user: j.d_user.and_then(Str::get),
            request_id: j.d_id.and_then(Str::get),
        });
    }
    if let (Some(m), Some(u), Some(s)) = (j.method, j.uri, j.status) {
        let (Some(method), Some(uri)) = (m.get(), u.get()) else {
            return Line::Other(time);
        };
        let Some(time) = time else {
            return Line::Unparseable("JSON line: a request without time");
        };
        let Some(status) = s.get() else {
            return Line::Unparseable("JSON line: bad status");
        };
        return Line::Request(Request {
            format: Format::Gitlab,
            time,
            method,
            uri,
            status,
            user_agent: j.user_agent.and_then(Str::get),
            remote_addr: j
                .remote_ip
                .and_then(Str::get)
                .or_else(|| j.remote_addr.and_then(Str::get)),
            user: j.auth_user_name.and_then(Str::get),
            request_id: j.correlation_id.and_then(Str::get),
        });
    }
    if depth == 0
        && let Some(inner) = j.log.and_then(Str::get)
    {
        // Docker json-file: the registry's own line is inside; owned, so parse a copy.
        return match parse_depth(&inner, depth + 1) {
            Line::Request(r) => Line::Request(r.into_owned()),
            Line::Other(t) => Line::Other(t.or(time)),
            Line::Blank => Line::Other(time),
            Line::Unparseable(w) => Line::Unparseable(w),
        };
    }
    Line::Other(time)
}

impl Request<'_> {
    fn into_owned(self) -> Request<'static> {
        let o = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Request {
            format: self.format,
            time: self.time,
            method: o(self.method),
            uri: o(self.uri),
            status: self.status,
            user_agent: self.user_agent.map(o),
            remote_addr: self.remote_addr.map(o),
            user: self.user.map(o),
            request_id: self.request_id.map(o),
        }
    }
}

// ---- combined ----------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `23/Nov/2026:07:35:03 +0000` -> time.
fn clf_time(s: &str) -> Option<Timestamp> {
    let (dt, zone) = s.split_once(' ')?;
    let mut p = dt.splitn(3, '/');
    let (d, m, rest) = (p.next()?, p.next()?, p.next()?);
    let (y, hms) = rest.split_once(':')?;
    let mi = MONTHS.iter().position(|x| *x == m)? + 1;
    if zone.len() != 5
        || !zone[1..].bytes().all(|b| b.is_ascii_digit())
        || !d.bytes().all(|b| b.is_ascii_digit())
        || !y.bytes().all(|b| b.is_ascii_digit())
        || !hms.bytes().all(|b| b.is_ascii_digit() || b == b':')
        || !zone.is_char_boundary(3)
    {
        return None;
    }
    Timestamp::parse_rfc3339(&format!(
        "{y}-{mi:02}-{d:0>2}T{hms}{}:{}",
        &zone[..3],
        &zone[3..]
    ))
}

/// A quoted field of the combined format (`\"` escaped by gorilla as `\"`).
fn quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    go_unquote(s.strip_prefix('"')?)
}

fn combined(line: &str) -> Option<Line<'_>> {
    let (host, rest) = line.split_once(' ')?;
    let (_ident, rest) = rest.split_once(' ')?;
    let (user, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('[')?;
    let (date, rest) = rest.split_once("] ")?;
    let Some(time) = clf_time(date) else {
        return Some(Line::Unparseable("combined line: bad date"));
    };
    let Some((req, rest)) = quoted(rest) else {
        return Some(Line::Unparseable("combined line: bad request field"));
    };
    let mut rp = req.splitn(3, ' ');
    let (method, uri) = match (rp.next(), rp.next()) {
        (Some(m), Some(u)) => (m.to_string(), u.to_string()),
        _ => return Some(Line::Other(Some(time))),
    };
    let rest = rest.trim_start();
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let Ok(status) = status.parse::<u16>() else {
        return Some(Line::Unparseable("combined line: bad status"));
    };
    // size, then optional "referer" "user agent"
    let rest = rest.split_once(' ').map(|x| x.1).unwrap_or("").trim_start();
    let ua = quoted(rest)
        .and_then(|(_, r)| quoted(r.trim_start()))
        .map(|(u, _)| u);
    let nz = |s: &str| (s != "-" && !s.is_empty()).then(|| Cow::Owned(s.to_string()));
    Some(Line::Request(Request {
        format: Format::Combined,
        time,
        method: Cow::Owned(method),
        uri: Cow::Owned(uri),
        status,
        user_agent: ua
            .filter(|u| !u.is_empty() && u != "-")
            .map(|u| Cow::Owned(u.into_owned())),
        remote_addr: nz(host),
        user: nz(user),
        request_id: None,
    }))
}

// ---- the request's target ----------------------------------------------------------------

/// A manifest request: `/v2/<name>/manifests/<reference>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestTarget {
    pub repository: String,
    /// A tag, or a digest (`sha256:...`).
    pub reference: String,
    pub is_digest: bool,
}

/// The manifest a request URI names, if it names one (a well-formed name and reference).
pub fn manifest_target(uri: &str) -> Option<ManifestTarget> {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    // Absolute-form request targets (`http://host/v2/...`) happen behind some proxies.
    let path = match path.find("/v2/") {
        Some(i) if i > 0 && path.contains("://") => &path[i..],
        _ => path,
    };
    let rest = path.strip_prefix("/v2/")?;
    let i = rest.rfind("/manifests/")?;
    let name = &rest[..i];
    let reference = rest[i + "/manifests/".len()..]
        .replace("%3A", ":")
        .replace("%3a", ":");
    if name.is_empty()
        || !name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
        })
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
    {
        return None;
    }
    let is_digest = reference.contains(':');
    if is_digest {
        reference.parse::<stowage_model::digest::Digest>().ok()?;
    } else if !stowage_model::name::is_valid_tag(&reference) {
        return None;
    }
    Some(ManifestTarget {
        repository: name.to_string(),
        reference,
        is_digest,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub const TEXT_PULL: &str = r#"time="2026-11-23T07:35:03.639773788Z" level=info msg="response completed" go.version=go1.19.8 http.request.host="127.0.0.1:58179" http.request.id=6526ea57-d763-4a3a-8620-4460afadac41 http.request.method=GET http.request.remoteaddr="127.0.0.1:49956" http.request.uri=/v2/library/base/manifests/1.0 http.request.useragent=skopeo/1.9.3 http.response.contenttype=application/vnd.docker.distribution.manifest.v2+json http.response.duration=7.781752ms http.response.status=200 http.response.written=426"#;

    fn req(l: &str) -> Request<'_> {
        match parse_line(l) {
            Line::Request(r) => r,
            other => panic!("not a request: {other:?} for {l}"),
        }
    }

    #[test]
    fn text_response_completed() {
        let r = req(TEXT_PULL);
        assert_eq!(r.format, Format::Text);
        assert_eq!(r.method, "GET");
        assert_eq!(r.uri, "/v2/library/base/manifests/1.0");
        assert_eq!(r.status, 200);
        assert_eq!(r.user_agent.as_deref(), Some("skopeo/1.9.3"));
        assert_eq!(r.remote_addr.as_deref(), Some("127.0.0.1:49956"));
        assert_eq!(
            r.request_id.as_deref(),
            Some("6526ea57-d763-4a3a-8620-4460afadac41")
        );
        assert_eq!(r.time.rfc3339(), "2026-11-23T07:35:03.639773788Z");
    }

    #[test]
    fn text_quoted_values_and_errors() {
        let l = r#"time="2026-11-23T07:35:03.820612088Z" level=error msg="response completed with error" auth.user.name="ci bot" err.code="manifest unknown" err.detail="unknown tag=x" http.request.method=GET http.request.remoteaddr="10.1.2.3" http.request.uri=/v2/nope/manifests/x http.request.useragent="docker/24.0.7 go/go1.20 os/linux \"quoted\"" http.response.duration="762.024µs" http.response.status=404 vars.name=nope vars.reference=x"#;
        let r = req(l);
        assert_eq!(r.status, 404);
        assert_eq!(r.user.as_deref(), Some("ci bot"));
        assert_eq!(
            r.user_agent.as_deref(),
            Some("docker/24.0.7 go/go1.20 os/linux \"quoted\"")
        );
    }

    #[test]
    fn text_line_without_status_is_other() {
        let l = r#"time="2026-11-23T07:35:03.784097329Z" level=info msg="rewriting manifest sha256:6701 in schema1 format to support old client" http.request.method=HEAD http.request.uri=/v2/library/base/manifests/latest vars.name=library/base"#;
        assert!(matches!(parse_line(l), Line::Other(Some(_))));
        let l = r#"time="2026-11-23T07:35:00Z" level=info msg="listening on 127.0.0.1:5000" go.version=go1.19.8"#;
        assert!(matches!(parse_line(l), Line::Other(Some(_))));
    }

    #[test]
    fn json_logrus_line() {
        let l = r#"{"go.version":"go1.19.8","http.request.host":"127.0.0.1:59269","http.request.id":"5dd9c686-f191-4158-af0a-adab0fa71a16","http.request.method":"GET","http.request.remoteaddr":"127.0.0.1:39280","http.request.uri":"/v2/library/base/manifests/1.0","http.request.useragent":"skopeo/1.9.3","http.response.contenttype":"application/vnd.docker.distribution.manifest.v2+json","http.response.duration":"7.168289ms","http.response.status":200,"http.response.written":426,"level":"info","msg":"response completed","time":"2026-11-23T07:35:17.635769683Z"}"#;
        let r = req(l);
        assert_eq!(r.format, Format::Json);
        assert_eq!(r.status, 200);
        assert_eq!(r.uri, "/v2/library/base/manifests/1.0");
        assert_eq!(
            r.request_id.as_deref(),
            Some("5dd9c686-f191-4158-af0a-adab0fa71a16")
        );
    }

    #[test]
    fn logstash_line() {
        let l = r#"{"@timestamp":"2026-11-23T07:35:17.6Z","@version":"1","http.request.method":"HEAD","http.request.uri":"/v2/a/manifests/v1","http.response.status":200,"level":"info","message":"response completed"}"#;
        assert_eq!(req(l).method, "HEAD");
    }

    #[test]
    fn gitlab_access_line() {
        let l = r#"{"content_type":"application/vnd.docker.distribution.manifest.v2+json","correlation_id":"01HF6V8Y2Q3W4E5R6T7Y8U9I0O","duration_ms":12,"host":"registry.example.com","level":"info","method":"GET","msg":"access","proto":"HTTP/1.1","referrer":"","remote_addr":"10.0.3.4:51234","remote_ip":"10.0.3.4","status":200,"system":"http","time":"2026-11-23T07:35:17.635Z","ttfb_ms":11,"uri":"/v2/group/project/app/manifests/v1.2.3","user_agent":"containerd/1.7.2","written_bytes":1123}"#;
        let r = req(l);
        assert_eq!(r.format, Format::Gitlab);
        assert_eq!(r.remote_addr.as_deref(), Some("10.0.3.4"));
        assert_eq!(r.request_id.as_deref(), Some("01HF6V8Y2Q3W4E5R6T7Y8U9I0O"));
        assert_eq!(r.user_agent.as_deref(), Some("containerd/1.7.2"));
    }

    #[test]
    fn combined_line() {
        let l = r#"127.0.0.1 - - [23/Nov/2026:07:35:03 +0000] "HEAD /v2/library/base/manifests/latest HTTP/1.1" 200 1261 "" "trivy/0.50""#;
        let r = req(l);
        assert_eq!(r.format, Format::Combined);
        assert_eq!(r.method, "HEAD");
        assert_eq!(r.user_agent.as_deref(), Some("trivy/0.50"));
        assert_eq!(r.time.rfc3339(), "2026-11-23T07:35:03Z");
        let l = r#"10.0.0.9 - alice [23/Nov/2026:08:35:03 +0100] "GET /v2/a/manifests/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1" 200 10 "-" "containerd/1.7""#;
        let r = req(l);
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert_eq!(r.time.rfc3339(), "2026-11-23T07:35:03Z");
    }

    #[test]
    fn wrappers_are_removed() {
        let docker = serde_json::json!({"log": format!("{TEXT_PULL}\n"), "stream": "stderr", "time": "2026-11-23T07:35:03.64Z"}).to_string();
        assert_eq!(req(&docker).status, 200);
        let kubectl = format!("2026-11-23T07:35:03.640000000Z {TEXT_PULL}");
        assert_eq!(req(&kubectl).uri, "/v2/library/base/manifests/1.0");
    }

    #[test]
    fn garbage_is_unparseable() {
        for l in [
            "hello world",
            "{not json",
            "time=\"unterminated",
            "time=bad level=info msg=x",
            "1.2.3.4 - - [99/Foo/2026:07:35:03 +0000] \"GET / HTTP/1.1\" 200 1 \"\" \"\"",
            "\u{0}\u{1}",
        ] {
            assert!(
                matches!(parse_line(l), Line::Unparseable(_)),
                "{l:?}: {:?}",
                parse_line(l)
            );
        }
        assert_eq!(parse_line("   "), Line::Blank);
    }

    #[test]
    fn manifest_targets() {
        let t = manifest_target("/v2/team/app/manifests/v1.0?x=1").unwrap();
        assert_eq!(
            (t.repository.as_str(), t.reference.as_str(), t.is_digest),
            ("team/app", "v1.0", false)
        );
        let d = "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e";
        let t = manifest_target(&format!("/v2/a/manifests/{}", d.replace(':', "%3A"))).unwrap();
        assert!(t.is_digest);
        assert_eq!(t.reference, d);
        assert!(manifest_target("/v2/a/blobs/sha256:00").is_none());
        assert!(manifest_target("/v2/").is_none());
        assert!(manifest_target("/v2/A/manifests/x").is_none());
        assert!(manifest_target("/v2/a/manifests/sha256:zz").is_none());
        assert!(manifest_target("/v2/a/manifests/").is_none());
    }
}
