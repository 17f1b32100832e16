//! From a URL and options to a configured `object_store` client.
//!
//! Credentials follow the usual chains of each service, in this order:
//! - S3: keys given in [`Options`] (the registry config's `accesskey`/`secretkey`), then the
//!   environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the
//!   static keys of the shared credentials file's profile (`AWS_PROFILE`, else `default`;
//!   `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), then what `object_store` finds
//!   itself: web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, EKS), container credentials (ECS)
//!   and the instance metadata service (EC2). Region: [`Options`], `AWS_REGION` /
//!   `AWS_DEFAULT_REGION`, the profile's `region` in `~/.aws/config`, else `us-east-1`.
//!   Endpoint: [`Options`], else `AWS_ENDPOINT_URL`.
//! - GCS: `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS`, application default
//!   credentials, the metadata server.
//! - Azure: `AZURE_STORAGE_ACCOUNT_NAME` with `AZURE_STORAGE_ACCOUNT_KEY`, a SAS token, or a
//!   managed identity (the `object_store` environment variables).

use std::collections::HashMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::list::PaginatedListStore;

use crate::OpenError;

/// Which service a URL names.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
        }
    }
}

/// Whether `s` is an object-store URL stowage knows (`s3://`, `gs://`, `az://`, `azure://`).
pub fn is_object_url(s: &str) -> bool {
    ["s3://", "gs://", "az://", "azure://"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// A parsed object-store URL: `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    pub scheme: Scheme,
    /// Bucket (S3, GCS) or container (Azure).
    pub container: String,
    /// Key prefix, no leading or trailing `/` (the registry's `rootdirectory`).
    pub prefix: String,
}

impl ObjectUrl {
    pub fn parse(url: &str) -> Result<ObjectUrl, OpenError> {
        let bad = |why: &str| OpenError::Url {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("not a URL (s3://bucket/prefix, gs://..., az://...)"))?;
        let scheme = match scheme {
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" => Scheme::Azure,
            other => {
                return Err(bad(&format!(
                    "unknown scheme {other:?} (s3, gs, az or azure)"
                )));
            }
        };
        let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if container.is_empty() {
            return Err(bad("no bucket (or container) name"));
        }
        if container.contains(['?', '#', '@']) {
            return Err(bad(
                "query strings and credentials do not belong in the URL",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|c| c == "." || c == ".." || (c.is_empty() && !prefix.is_empty()))
        {
            return Err(bad("the prefix has an empty, . or .. component"));
        }
        Ok(ObjectUrl {
            scheme,
            container: container.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// How to reach the service. Everything is optional; see the module doc for defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// A custom endpoint (`http://127.0.0.1:9000`: MinIO, Ceph RGW, a test server). S3 and
    /// Azure.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// S3: path-style requests (`endpoint/bucket/key`). Default: path-style with a custom
    /// endpoint (as the registry's driver does with `regionendpoint`), virtual-hosted on AWS.
    pub path_style: Option<bool>,
    /// Plain HTTP. Default: allowed only when the endpoint is on loopback (or
    /// `AWS_ALLOW_HTTP=true`).
    pub allow_http: Option<bool>,
    /// Static keys (the registry config's `accesskey` and `secretkey`).
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Idle HTTP connections kept per host: the scanner's concurrency, so none is reopened.
    pub pool_size: Option<usize>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether an endpoint URL points at this machine.
fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// The `[name]` (or `[profile name]`) section of an AWS ini file.
fn ini_section(text: &str, names: &[String]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = names.iter().any(|n| n == h.trim());
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}

fn aws_file(var: &str, default: &str) -> Option<String> {
    let path = env(var).or_else(|| env("HOME").map(|h| format!("{h}/.aws/{default}")))?;
    std::fs::read_to_string(path).ok()
}

fn aws_profile() -> String {
    env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned())
}

/// Static keys of the shared credentials file's profile.
fn profile_credentials() -> Option<(String, String, Option<String>)> {
    let text = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")?;
    let s = ini_section(&text, &[aws_profile()]);
    Some((
        s.get("aws_access_key_id")?.clone(),
        s.get("aws_secret_access_key")?.clone(),
        s.get("aws_session_token").cloned(),
    ))
}

fn profile_region() -> Option<String> {
    let text = aws_file("AWS_CONFIG_FILE", "config")?;
    let p = aws_profile();
    ini_section(&text, &[format!("profile {p}"), p])
        .get("region")
        .cloned()
}

type Built = (Arc<dyn ObjectStore>, Option<Arc<dyn PaginatedListStore>>);

fn both<S: ObjectStore + PaginatedListStore>(s: S) -> Built {
    let a = Arc::new(s);
    (a.clone(), Some(a))
}

#[allow(unused_variables)]
pub(crate) fn build(url: &ObjectUrl, opts: &Options) -> Result<Built, OpenError> {
    let shown = format!("{}://{}", url.scheme.as_str(), url.container);
    let build_err = |source| OpenError::Build {
        url: shown.clone(),
        source,
    };
    let mut client = object_store::ClientOptions::new();
    if let Some(n) = opts.pool_size {
        client = client.with_pool_max_idle_per_host(n);
    }
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| env("AWS_ENDPOINT"));
    let allow_http = opts
        .allow_http
        .or_else(|| endpoint.as_deref().filter(|e| is_loopback(e)).map(|_| true));
    if let Some(a) = allow_http {
        client = client.with_allow_http(a);
    }
    // Say why plainly, before any request (the client's own error is "builder error").
    let env_allows = env("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(e) = endpoint.as_deref().filter(|e| e.starts_with("http://"))
        && allow_http != Some(true)
        && !env_allows
    {
        return Err(OpenError::Url {
            url: e.to_owned(),
            why: "plain HTTP to an endpoint that is not on loopback is refused: pass --allow-http \
                  (or set `secure: false` in the registry config)"
                .to_owned(),
        });
    }
    match url.scheme {
        Scheme::S3 => {
            #[cfg(feature = "aws")]
            {
                use object_store::aws::AmazonS3Builder;
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&url.container)
                    .with_client_options(client);
                let region = opts
                    .region
                    .clone()
                    .or_else(|| env("AWS_REGION"))
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .or_else(profile_region);
                if let Some(r) = region {
                    b = b.with_region(r);
                }
                if let Some(e) = &endpoint {
                    b = b.with_endpoint(e);
                }
                let path_style = opts.path_style.unwrap_or(endpoint.is_some());
                b = b.with_virtual_hosted_style_request(!path_style);
                match (&opts.access_key, &opts.secret_key) {
                    (Some(k), Some(s)) => {
                        b = b.with_access_key_id(k).with_secret_access_key(s);
                    }
                    _ if env("AWS_ACCESS_KEY_ID").is_none() => {
                        if let Some((k, s, t)) = profile_credentials() {
                            b = b.with_access_key_id(k).with_secret_access_key(s);
                            if let Some(t) = t {
                                b = b.with_token(t);
                            }
                        }
                    }
                    _ => {}
                }
                Ok(both(b.build().map_err(build_err)?))
            }
            #[cfg(not(feature = "aws"))]
            Err(OpenError::NotBuilt {
                url: shown,
                scheme: "s3",
                feature: "aws",
            })
        }
        Scheme::Gcs => {
            #[cfg(feature = "gcp")]
            {
                use object_store::gcp::GoogleCloudStorageBuilder;
                let b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&url.container)
                    .with_client_options(client);
                Ok(both(b.build().map_err(build_err)?))
            }
            #[cfg(not(feature = "gcp"))]
            Err(OpenError::NotBuilt {
                url: shown,
                scheme: "gs",
                feature: "gcp",
            })
        }
        Scheme::Azure => {
            #[cfg(feature = "azure")]
            {
                use object_store::azure::MicrosoftAzureBuilder;
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(&url.container)
                    .with_client_options(client);
                if let Some(e) = &opts.endpoint {
                    b = b.with_endpoint(e.clone());
                }
                Ok(both(b.build().map_err(build_err)?))
            }
            #[cfg(not(feature = "azure"))]
            Err(OpenError::NotBuilt {
                url: shown,
                scheme: "az",
                feature: "azure",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = ObjectUrl::parse("s3://reg/prod/").unwrap();
        assert_eq!(
            (u.scheme, u.container.as_str(), u.prefix.as_str()),
            (Scheme::S3, "reg", "prod")
        );
        assert_eq!(ObjectUrl::parse("s3://reg").unwrap().prefix, "");
        assert_eq!(
            ObjectUrl::parse("azure://c/a/b").unwrap().scheme,
            Scheme::Azure
        );
        assert_eq!(ObjectUrl::parse("gs://b/x").unwrap().scheme, Scheme::Gcs);
        for bad in [
            "s3://",
            "s3:///x",
            "ftp://b/x",
            "s3://b/a//b",
            "s3://b/../x",
            "/var/lib/registry",
        ] {
            assert!(ObjectUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(is_object_url("az://c") && !is_object_url("/srv/s3://x"));
    }

    #[test]
    fn loopback_endpoints() {
        for e in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:80",
            "127.0.0.5",
        ] {
            assert!(is_loopback(e), "{e}");
        }
        for e in [
            "http://minio:9000",
            "https://s3.amazonaws.com",
            "http://10.0.0.1",
        ] {
            assert!(!is_loopback(e), "{e}");
        }
    }

    #[test]
    fn aws_ini_sections() {
        let text = "[default]\naws_access_key_id = A\n# comment\n[profile ci]\nregion=eu-west-1\n[ci]\nAWS_SECRET_ACCESS_KEY = S\n";
        let d = ini_section(text, &["default".into()]);
        assert_eq!(d.get("aws_access_key_id").map(String::as_str), Some("A"));
        let ci = ini_section(text, &["profile ci".into(), "ci".into()]);
        assert_eq!(ci.get("region").map(String::as_str), Some("eu-west-1"));
        assert_eq!(
            ci.get("aws_secret_access_key").map(String::as_str),
            Some("S")
        );
    }
}
