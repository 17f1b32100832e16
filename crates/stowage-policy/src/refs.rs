//! Image references from in-use sources: what is running or deployed.
//!
//! Two formats: a plain list (one reference per line) and `kubectl get pods -A -o json`, from
//! which both the images the pod specs ask for and the image IDs the kubelet resolved
//! (`status.containerStatuses[].imageID`, the digest actually running even when the spec names
//! a tag that has moved since) are taken.

use stowage_model::digest::Digest;

use crate::file::SourceFormat;

/// A parsed image reference: `[host[:port]/]repository[:tag][@digest]`, or a bare digest (a
/// container runtime's image ID).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageRef {
    pub host: Option<String>,
    /// Empty for a bare digest.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            if self.repository.is_empty() {
                write!(f, "{d}")?;
            } else {
                write!(f, "@{d}")?;
            }
        }
        Ok(())
    }
}

/// Parse one reference.
pub fn parse_ref(text: &str) -> Result<ImageRef, String> {
    let mut s = text.trim();
    for scheme in [
        "docker-pullable://",
        "docker://",
        "containerd://",
        "cri-o://",
    ] {
        if let Some(r) = s.strip_prefix(scheme) {
            s = r;
        }
    }
    if s.is_empty() {
        return Err("empty reference".into());
    }
    if let Ok(d) = s.parse::<Digest>() {
        return Ok(ImageRef {
            host: None,
            repository: String::new(),
            tag: None,
            digest: Some(d),
        });
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (
            n,
            Some(
                d.parse::<Digest>()
                    .map_err(|e| format!("{text:?}: bad digest: {e}"))?,
            ),
        ),
        None => (s, None),
    };
    let (host, rest) = match name_tag.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first.to_string()), rest)
        }
        _ => (None, name_tag),
    };
    let (repository, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t.to_string())),
        _ => (rest, None),
    };
    if repository.is_empty()
        || repository.starts_with('/')
        || repository.ends_with('/')
        || repository.contains("//")
        || repository.chars().any(|c| c.is_whitespace())
    {
        return Err(format!("{text:?}: not an image reference"));
    }
    if tag.as_deref().is_some_and(str::is_empty) {
        return Err(format!("{text:?}: empty tag"));
    }
    Ok(ImageRef {
        host,
        repository: repository.to_string(),
        tag,
        digest,
    })
}

/// What a source held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceRefs {
    pub refs: Vec<ImageRef>,
    /// Lines or fields that did not parse as references, with the reason.
    pub invalid: Vec<String>,
}

/// Parse a source's text.
pub fn parse_source(format: SourceFormat, text: &str) -> Result<SourceRefs, String> {
    let mut out = SourceRefs::default();
    let mut push = |raw: &str| match parse_ref(raw) {
        Ok(r) => out.refs.push(r),
        Err(e) => out.invalid.push(e),
    };
    match format {
        SourceFormat::ImageRefs => {
            for line in text.lines() {
                let l = line.split('#').next().unwrap_or("").trim();
                if !l.is_empty() {
                    push(l);
                }
            }
        }
        SourceFormat::KubernetesPodsJson => {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            let pods: Vec<&serde_json::Value> = match v.get("items") {
                Some(serde_json::Value::Array(items)) => items.iter().collect(),
                Some(_) => return Err("`items` is not a list".into()),
                None if v.get("kind").and_then(|k| k.as_str()) == Some("Pod") => vec![&v],
                None => {
                    return Err(
                        "neither a list of pods (`items`) nor a Pod: expected the output of `kubectl get pods -A -o json`"
                            .into(),
                    );
                }
            };
            for pod in pods {
                for list in ["containers", "initContainers", "ephemeralContainers"] {
                    for c in arr(pod.pointer(&format!("/spec/{list}"))) {
                        if let Some(i) = c.get("image").and_then(|i| i.as_str()) {
                            push(i);
                        }
                    }
                }
                for list in [
                    "containerStatuses",
                    "initContainerStatuses",
                    "ephemeralContainerStatuses",
                ] {
                    for c in arr(pod.pointer(&format!("/status/{list}"))) {
                        for key in ["image", "imageID"] {
                            if let Some(i) = c.get(key).and_then(|i| i.as_str())
                                && !i.is_empty()
                            {
                                push(i);
                            }
                        }
                    }
                }
            }
        }
    }
    out.refs.sort();
    out.refs.dedup();
    Ok(out)
}

fn arr(v: Option<&serde_json::Value>) -> impl Iterator<Item = &serde_json::Value> {
    v.and_then(|v| v.as_array())
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// Whether a reference's host names this registry: no host at all (the safe direction), or
/// one of the aliases (compared case-insensitively; `docker.io` forms are not special).
pub fn host_matches(r: &ImageRef, aliases: &[String]) -> bool {
    match &r.host {
        None => true,
        Some(h) => aliases.iter().any(|a| a.eq_ignore_ascii_case(h)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = parse_ref("registry.example.com:5000/apps/api:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.host.as_deref(), Some("registry.example.com:5000"));
        assert_eq!(r.repository, "apps/api");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert!(r.digest.is_some());
        let r = parse_ref("apps/api").unwrap();
        assert_eq!((r.host, r.tag), (None, None));
        let r = parse_ref("localhost/x:y").unwrap();
        assert_eq!(r.host.as_deref(), Some("localhost"));
        let r = parse_ref("docker-pullable://reg.io/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(r.repository, "a");
        let r =
            parse_ref("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
                .unwrap();
        assert!(r.repository.is_empty() && r.digest.is_some());
        assert!(parse_ref("a/b@sha256:zz").is_err());
        assert!(parse_ref("a:").is_err());
        assert!(parse_ref("  ").is_err());
    }

    #[test]
    fn kubernetes_pods() {
        let j = r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"Pod",
          "spec":{"containers":[{"image":"reg.io/apps/api:1.0"}],"initContainers":[{"image":"busybox"}]},
          "status":{"containerStatuses":[{"image":"reg.io/apps/api:1.0","imageID":"reg.io/apps/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}}]}"#;
        let s = parse_source(SourceFormat::KubernetesPodsJson, j).unwrap();
        assert_eq!(s.refs.len(), 3, "{s:?}");
        assert!(
            s.refs
                .iter()
                .any(|r| r.digest.is_some() && r.repository == "apps/api")
        );
        assert!(parse_source(SourceFormat::KubernetesPodsJson, "{}").is_err());
        assert!(parse_source(SourceFormat::KubernetesPodsJson, "nope").is_err());
    }

    #[test]
    fn ref_lists_skip_comments_and_report_bad_lines() {
        let s = parse_source(
            SourceFormat::ImageRefs,
            "# deployed\napps/api:1\n\nbad ref here\n",
        )
        .unwrap();
        assert_eq!(s.refs.len(), 1);
        assert_eq!(s.invalid.len(), 1);
    }
}
