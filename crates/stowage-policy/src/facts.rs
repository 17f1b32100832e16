//! The selectors that look inside images (`select.platforms`, `size`, `annotations`,
//! `labels`), compiled: what the evaluation matches against `eval::ManifestFacts` and the
//! bytes an image references.

use crate::file::Select;
use crate::values::{Pattern, parse_bytes};

/// The selectors that look inside images.
#[derive(Clone, Debug, Default)]
pub struct FactsC {
    pub platforms: Vec<Pattern>,
    pub larger_than: Option<u64>,
    pub smaller_than: Option<u64>,
    pub annotations: Vec<(String, Pattern)>,
    pub labels: Vec<(String, Pattern)>,
}

impl FactsC {
    /// Whether the caller must read manifests and configs (`eval::ManifestFacts`):
    /// annotations, labels, and platforms of single-platform images.
    pub fn needs_reads(&self) -> bool {
        !(self.platforms.is_empty() && self.annotations.is_empty() && self.labels.is_empty())
    }
}

/// `select.platforms`, `select.size`, `select.annotations`, `select.labels`.
pub(crate) fn compile_facts(sel: &Select, at: &str, errs: &mut Vec<String>) -> FactsC {
    let mut f = FactsC::default();
    for t in &sel.platforms {
        match Pattern::parse(t) {
            Ok(p) => f.platforms.push(p),
            Err(e) => errs.push(format!("{at}.select.platforms: {e}")),
        }
    }
    if let Some(s) = &sel.size {
        let mut bytes = |what: &str, v: &Option<String>| {
            v.as_ref().and_then(|t| {
                parse_bytes(t)
                    .map_err(|e| errs.push(format!("{at}.select.size.{what}: {e}")))
                    .ok()
            })
        };
        f.larger_than = bytes("larger_than", &s.larger_than);
        f.smaller_than = bytes("smaller_than", &s.smaller_than);
        if s.larger_than.is_none() && s.smaller_than.is_none() {
            errs.push(format!(
                "{at}.select.size: empty (larger_than, smaller_than or both)"
            ));
        }
        if let (Some(l), Some(s)) = (f.larger_than, f.smaller_than)
            && l >= s
        {
            errs.push(format!(
                "{at}.select.size: larger_than {l} and smaller_than {s} select nothing"
            ));
        }
    }
    for (name, map, out) in [
        ("annotations", &sel.annotations, &mut f.annotations),
        ("labels", &sel.labels, &mut f.labels),
    ] {
        for (k, v) in map {
            if k.is_empty() {
                errs.push(format!("{at}.select.{name}: an empty key"));
                continue;
            }
            match Pattern::parse(v) {
                Ok(p) => out.push((k.clone(), p)),
                Err(e) => errs.push(format!("{at}.select.{name}.{k}: {e}")),
            }
        }
    }
    f
}
