//! Which pulls are not "use": vulnerability scanners, probes and chosen addresses.
//!
//! A scanner pulling every image every night would make every image "recently pulled"
//! (aws/containers-roadmap#921: Amazon Inspector refreshes ECR's "last pulled"). Matched
//! events are still recorded, with the filter that matched, so `stowage usage` can show how
//! many pulls each filter excluded; they are left out of every pull count.

use std::net::IpAddr;

use globset::{GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// User agents ignored unless `no_default_ignores` (globs, case-insensitive, whole string).
pub const DEFAULT_IGNORED_USER_AGENTS: &[&str] = &[
    "*trivy*",
    "*clair*",
    "*grype*",
    "*syft*",
    "*snyk*",
    "*anchore*",
    "*harbor-scanner*",
    "*twistlock*",
    "*prisma-cloud*",
    "*neuvector*",
    "*xray*",
    "*docker-scout*",
    "kube-probe/*",
    "*blackbox*exporter*",
    "prometheus/*",
    "*health*check*",
];

/// The filter settings (flags, or the `usage` file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct FilterConfig {
    /// Globs on the user agent (case-insensitive, whole string: `trivy/*`, `*scanner*`).
    pub ignore_user_agents: Vec<String>,
    /// Source addresses: an IP or a CIDR (`10.8.0.0/16`, `2001:db8::/32`).
    pub ignore_addresses: Vec<String>,
    /// Do not add [`DEFAULT_IGNORED_USER_AGENTS`].
    pub no_default_ignores: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    #[error("user agent glob {glob:?}: {reason}")]
    Glob { glob: String, reason: String },
    #[error("address {addr:?}: not an IP address or CIDR (10.0.0.0/8, 2001:db8::/32)")]
    Address { addr: String },
}

/// A compiled filter.
#[derive(Clone, Debug)]
pub struct Filter {
    globs: GlobSet,
    names: Vec<String>,
    nets: Vec<(IpAddr, u8, String)>,
}

impl Default for Filter {
    fn default() -> Filter {
        // The default list compiles: tested.
        Filter::new(&FilterConfig::default()).unwrap_or(Filter {
            globs: GlobSet::empty(),
            names: Vec::new(),
            nets: Vec::new(),
        })
    }
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, b)) => (ip.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & m == u128::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|v4| in_net(IpAddr::V4(v4), net, bits)),
        _ => false,
    }
}

/// The IP of a logged remote address: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678`, `::1`, or an
/// `X-Forwarded-For` list (`client, proxy`: the first is the client).
pub fn remote_ip(addr: &str) -> Option<IpAddr> {
    let a = addr.split(',').next().unwrap_or(addr).trim();
    if let Ok(ip) = a.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    let host = a.rsplit_once(':').map(|x| x.0).unwrap_or(a);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

impl Filter {
    pub fn new(c: &FilterConfig) -> Result<Filter, FilterError> {
        let mut b = GlobSetBuilder::new();
        let mut names = Vec::new();
        let defaults: &[&str] = if c.no_default_ignores {
            &[]
        } else {
            DEFAULT_IGNORED_USER_AGENTS
        };
        for g in defaults
            .iter()
            .copied()
            .chain(c.ignore_user_agents.iter().map(String::as_str))
        {
            let glob = stowage_model::pattern::glob(
                g,
                stowage_model::pattern::GlobOptions {
                    case_insensitive: true,
                    literal_separator: false,
                    backslash_escape: true,
                },
            )
            .map_err(|e| FilterError::Glob {
                glob: stowage_model::escape::escape(&g.chars().take(60).collect::<String>())
                    .into_owned(),
                reason: e.to_string(),
            })?;
            b.add(glob);
            names.push(format!("user agent {g}"));
        }
        let globs = b.build().map_err(|e| FilterError::Glob {
            glob: String::new(),
            reason: e.to_string(),
        })?;
        let mut nets = Vec::new();
        for a in &c.ignore_addresses {
            let (ip, bits) =
                parse_net(a.trim()).ok_or_else(|| FilterError::Address { addr: a.clone() })?;
            nets.push((ip, bits, format!("address {}", a.trim())));
        }
        Ok(Filter { globs, names, nets })
    }

    /// The first filter that matches, by name (`user agent *trivy*`, `address 10.0.0.0/8`).
    pub fn check(&self, user_agent: Option<&str>, remote_addr: Option<&str>) -> Option<String> {
        if let Some(ua) = user_agent
            && let Some(&i) = self.globs.matches(ua).iter().min()
        {
            return self.names.get(i).cloned();
        }
        if !self.nets.is_empty()
            && let Some(ip) = remote_addr.and_then(remote_ip)
        {
            for (net, bits, name) in &self.nets {
                if in_net(ip, *net, *bits) {
                    return Some(name.clone());
                }
            }
        }
        None
    }

    /// The filters in effect, by name.
    pub fn describe(&self) -> Vec<String> {
        self.names
            .iter()
            .chain(self.nets.iter().map(|n| &n.2))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_list_catches_scanners_not_clients() {
        let f = Filter::default();
        for ua in [
            "Trivy/0.50.1",
            "trivy/0.50 go-containerregistry",
            "clair/v4.7",
            "grype/0.74.0",
            "harbor-scanner-trivy/0.30",
            "kube-probe/1.28",
            "Blackbox Exporter/0.24.0",
            "Snyk-Container/1.0",
        ] {
            assert!(f.check(Some(ua), None).is_some(), "{ua}");
        }
        for ua in [
            "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1 os/linux arch/amd64",
            "containerd/1.7.2",
            "skopeo/1.9.3",
            "cri-o/1.28",
            "go-containerregistry/v0.19.0",
        ] {
            assert_eq!(f.check(Some(ua), None), None, "{ua}");
        }
        assert_eq!(
            f.check(Some("trivy/1"), None).as_deref(),
            Some("user agent *trivy*")
        );
    }

    #[test]
    fn user_globs_and_addresses() {
        let f = Filter::new(&FilterConfig {
            ignore_user_agents: vec!["inspector*".into()],
            ignore_addresses: vec![
                "10.8.0.0/16".into(),
                "2001:db8::/32".into(),
                "192.0.2.7".into(),
            ],
            no_default_ignores: true,
        })
        .unwrap();
        assert_eq!(f.check(Some("trivy/1"), None), None);
        assert!(f.check(Some("Inspector-Scan/2"), None).is_some());
        assert_eq!(
            f.check(None, Some("10.8.3.4:5555")).as_deref(),
            Some("address 10.8.0.0/16")
        );
        assert!(f.check(None, Some("10.9.3.4:5555")).is_none());
        assert!(f.check(None, Some("[2001:db8::1]:443")).is_some());
        assert!(f.check(None, Some("192.0.2.7")).is_some());
        assert!(f.check(None, Some("192.0.2.7, 10.0.0.1")).is_some());
        assert!(f.check(None, Some("::ffff:10.8.0.1")).is_some());
        assert!(f.check(None, Some("not an address")).is_none());
    }

    #[test]
    fn bad_settings_are_errors() {
        let bad = |a: &str| FilterConfig {
            ignore_addresses: vec![a.into()],
            ..FilterConfig::default()
        };
        assert!(Filter::new(&bad("10.0.0.0/33")).is_err());
        assert!(Filter::new(&bad("ten")).is_err());
        let g = FilterConfig {
            ignore_user_agents: vec!["a[".into()],
            ..FilterConfig::default()
        };
        assert!(Filter::new(&g).is_err());
    }
}
