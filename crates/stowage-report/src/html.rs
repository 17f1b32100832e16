//! The self-contained HTML report: one file, its CSS and JavaScript inlined (written for this
//! page, no third-party code), the data embedded as JSON in a
//! `<script type="application/json">` element. A Content-Security-Policy forbids every
//! network request (the dashboard's variant allows its own origin, for its API).

use crate::overview::Overview;

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

/// JSON that is safe inside a `<script>` element: `<`, `>` and `&` become `\u003c`-style
/// escapes (valid JSON, so `JSON.parse` gives back the same strings), so no string in the
/// data can close the element (`</script>`) or open a comment (`<!--`).
pub fn script_json(v: &impl serde::Serialize) -> Result<String, serde_json::Error> {
    let s = serde_json::to_string(v)?;
    let mut out = String::with_capacity(s.len() + s.len() / 64);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Render the page.
pub fn render(o: &Overview) -> Result<String, serde_json::Error> {
    let data = script_json(o)?;
    let connect = if o.live { "'self'" } else { "'none'" };
    let title = if o.live {
        "stowage dashboard"
    } else {
        "stowage report"
    };
    let root = escape(&o.root);
    Ok(format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src {connect}">
<meta name="generator" content="stowage {version}">
<link rel="icon" href="data:,">
<title>{title}: {root}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{title}</h1><span class="root">{root}</span>
<span class="meta" id="generated"></span>
<div id="live" hidden></div>
</header>
<main>
<noscript><p>This report needs JavaScript to draw its charts and tables; its data is in the stowage-data element of this file (JSON, schema stowage.report/v1).</p></noscript>
<section><div class="cards" id="headline"></div></section>
<section><h2>Reclaimable now <small>each with the stowage command that plans it; review the plan, then apply it</small></h2><div class="reclaim" id="reclaim"></div></section>
<section><h2>Storage by repository
<span class="seg" id="metric"><button type="button" data-metric="exclusive" aria-pressed="true">exclusive</button><button type="button" data-metric="total" aria-pressed="false">total</button></span>
<span class="seg" id="colour" title="colour of tag tiles"><button type="button" data-colour="repository" aria-pressed="true">by repository</button><button type="button" data-colour="age" aria-pressed="false">by image age</button><button type="button" data-colour="pulled" aria-pressed="false">by last pull</button></span>
<small class="crumbs" id="crumbs"></small></h2>
<div id="treemap"></div><div class="tm-note" id="tm-note"></div><div class="legend" id="tm-legend"></div></section>
<section id="plan-section"><h2 id="plan-title">What the plan deletes</h2><div id="plan"></div></section>
<section>
<div><h2 id="top-repos-title">Top repositories <small>by exclusive bytes; untagged = what gc --delete-untagged frees in it; pushed = newest revision link (file date); built = newest image build date (from its config)</small></h2><div id="top-repos"></div></div>
</section>
<section>
<div><h2 id="top-tags-title">Top tags <small>by exclusive bytes; pushed = revision link (file date); age = since the image was built (config created)</small></h2><div id="top-tags"></div></div>
</section>
<section id="ages-section"><h2>Bytes by image age <small id="ages-note"></small></h2><div id="ages"></div></section>
<section><h2>Bytes by month of creation <small>date used: the file's birth time where the filesystem records one not after its modification time (a later birth is the day of a copy), else its modification time; UTC</small></h2><div class="chart" id="months"></div></section>
<section id="pulls-section" hidden><h2>Last pulled <small id="pulls-note"></small></h2><div id="pulls"></div></section>
<section id="history-section"><h2>Growth <small>from the history database</small></h2><div class="chart" id="history"></div></section>
<section><h2>Integrity findings</h2><div id="findings"></div></section>
<section><h2>Blobs <small id="blob-note"></small></h2><div id="blobs"></div></section>
</main>
<footer>stowage {version}. Exclusive bytes: what deleting exactly that repository or tag, then running the registry's GC, frees. Shared bytes: needed by it and by something else too. Read-only: nothing on this page can change the registry.</footer>
<script type="application/json" id="stowage-data">{data}</script>
<script>{JS}</script>
</body>
</html>
"##,
        version = env!("CARGO_PKG_VERSION"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_element() {
        let v = serde_json::json!({"name": "</script><script>alert(1)</script><!-- & \u{2028}"});
        let s = script_json(&v).unwrap();
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
