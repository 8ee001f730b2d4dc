//! The community server's configuration (`community.yaml`): read strictly, every duration and
//! prefix checked once, compiled into [`HubConfig`] with the consensus [`Params`]. Errors name
//! the file, the line and the field.
use std::{collections::BTreeMap, net::IpAddr, path::Path, time::Duration};

use serde::Deserialize;

use super::consensus::Params;

/// A CIDR or an address, as the operator writes it.
fn prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (s, None),
    };
    let ip: IpAddr = ip.trim().parse().map_err(|_| format!("`{s}` is not an address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => {
            b.trim().parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("`{s}`: bad prefix length"))?
        }
        None => max,
    };
    Ok((ip, bits))
}

/// Whether `ip` is inside `net`.
#[must_use]
pub fn contains(net: (IpAddr, u8), ip: IpAddr) -> bool {
    match (net.0, crate::addr::canonical_ip(ip)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let m = if net.1 == 0 { 0 } else { u32::MAX << (32 - u32::from(net.1)) };
            u32::from(n) & m == u32::from(a) & m
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let m = if net.1 == 0 { 0 } else { u128::MAX << (128 - u32::from(net.1)) };
            u128::from(n) & m == u128::from(a) & m
        }
        _ => false,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    url: Option<String>,
    #[serde(default)]
    consensus: ConsensusSpec,
    #[serde(default)]
    never: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    asn_db: Option<String>,
    #[serde(default)]
    asns: BTreeMap<String, u32>,
    token_ttl: Option<String>,
    #[serde(default)]
    share_context: bool,
    retention: Option<String>,
    org_list_duration: Option<String>,
    tailor: Option<bool>,
    #[serde(default)]
    open_registration: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsensusSpec {
    quorum_orgs: Option<u32>,
    quorum_prefixes: Option<u32>,
    quorum_asns: Option<u32>,
    window: Option<String>,
    warmup: Option<String>,
    warmup_signals: Option<u32>,
    warmup_days: Option<u32>,
    list_duration: Option<String>,
    keep: Option<String>,
    max_entries: Option<usize>,
    sensor_alone: Option<bool>,
    min_trust: Option<f64>,
    list_score: Option<f64>,
    keep_score: Option<f64>,
}

/// The server's settings, checked.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Public base URL (ends with `/`), for blocklist links.
    pub url: Option<String>,
    /// Consensus parameters.
    pub params: Params,
    /// The operator's never-list (canaries).
    pub never: Vec<(IpAddr, u8)>,
    /// Proxies whose `X-Forwarded-For` names the member's address.
    pub trusted_proxies: Vec<(IpAddr, u8)>,
    /// GeoLite2-ASN database.
    pub asn_db: Option<std::path::PathBuf>,
    /// ASNs by prefix, the operator's table (checked before the database).
    pub asns: Vec<((IpAddr, u8), u32)>,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Keep signals' `context`.
    pub share_context: bool,
    /// How long signals are kept.
    pub retention: Duration,
    /// Duration of organisation list entries.
    pub org_list_duration: Duration,
    /// Serve each member only entries of the scenarios it runs.
    pub tailor: bool,
    /// Registration without an enrollment key (the machine gets an organisation of its own).
    pub open_registration: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            url: None,
            params: Params::default(),
            never: Vec::new(),
            trusted_proxies: Vec::new(),
            asn_db: None,
            asns: Vec::new(),
            token_ttl: Duration::from_secs(24 * 3600),
            share_context: false,
            retention: Duration::from_secs(30 * 86400),
            org_list_duration: Duration::from_secs(24 * 3600),
            tailor: true,
            open_registration: false,
        }
    }
}

fn dur(field: &str, v: Option<&String>, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(format!("{field}: `{s}` is not a duration such as 24h")),
        },
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl HubConfig {
    /// Reads `path` (an absent file gives the defaults).
    ///
    /// # Errors
    /// The file's name with the line and the field that is wrong.
    pub fn load(path: &Path) -> Result<HubConfig, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HubConfig::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the YAML text of a configuration.
    ///
    /// # Errors
    /// The line and the field that is wrong.
    pub fn parse(text: &str) -> Result<HubConfig, String> {
        let spec: Spec = if text.trim().is_empty() {
            Spec::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| match e.location() {
                Some(l) => format!("line {}: {e}", l.line()),
                None => e.to_string(),
            })?
        };
        let d = HubConfig::default();
        let c = &spec.consensus;
        let mut p = Params::default();
        p.quorum_orgs = c.quorum_orgs.unwrap_or(p.quorum_orgs).max(1);
        p.quorum_prefixes = c.quorum_prefixes.unwrap_or(p.quorum_prefixes);
        p.quorum_asns = c.quorum_asns.unwrap_or(p.quorum_asns);
        p.window_secs = secs(dur("consensus.window", c.window.as_ref(), Duration::from_secs(p.window_secs as u64))?);
        p.warmup_secs = match &c.warmup {
            Some(s) if s.trim() == "0" || s.trim() == "0s" => 0,
            other => secs(dur("consensus.warmup", other.as_ref(), Duration::from_secs(p.warmup_secs as u64))?),
        };
        p.warmup_signals = c.warmup_signals.unwrap_or(p.warmup_signals);
        p.warmup_days = c.warmup_days.unwrap_or(p.warmup_days);
        p.list_secs =
            secs(dur("consensus.list_duration", c.list_duration.as_ref(), Duration::from_secs(p.list_secs as u64))?);
        p.keep_secs = secs(dur("consensus.keep", c.keep.as_ref(), Duration::from_secs(p.keep_secs as u64))?);
        p.max_entries = c.max_entries.unwrap_or(p.max_entries);
        p.sensor_alone = c.sensor_alone.unwrap_or(p.sensor_alone);
        p.min_trust = c.min_trust.unwrap_or(p.min_trust);
        p.list_score = c.list_score.unwrap_or(p.list_score);
        p.keep_score = c.keep_score.unwrap_or(p.keep_score);
        let nets = |field: &str, v: &[String]| -> Result<Vec<(IpAddr, u8)>, String> {
            v.iter().map(|s| prefix(s).map_err(|e| format!("{field}: {e}"))).collect()
        };
        let url = match spec.url {
            Some(u) if !u.ends_with('/') => {
                return Err(format!("url: `{u}` must end with `/` (CrowdSec's clients need it)"));
            }
            u => u,
        };
        Ok(HubConfig {
            url,
            params: p,
            never: nets("never", &spec.never)?,
            trusted_proxies: nets("trusted_proxies", &spec.trusted_proxies)?,
            asn_db: spec.asn_db.map(Into::into),
            asns: spec
                .asns
                .iter()
                .map(|(k, v)| prefix(k).map(|n| (n, *v)).map_err(|e| format!("asns: {e}")))
                .collect::<Result<_, _>>()?,
            token_ttl: dur("token_ttl", spec.token_ttl.as_ref(), d.token_ttl)?,
            share_context: spec.share_context,
            retention: dur("retention", spec.retention.as_ref(), d.retention)?,
            org_list_duration: dur("org_list_duration", spec.org_list_duration.as_ref(), d.org_list_duration)?,
            tailor: spec.tailor.unwrap_or(d.tailor),
            open_registration: spec.open_registration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = HubConfig::parse("").unwrap();
        assert_eq!(c.params.quorum_orgs, 3);
        let c = HubConfig::parse(
            "consensus:\n  quorum_orgs: 2\n  window: 12h\n  warmup: 0\nnever: [203.0.113.0/24]\nasns: {198.51.100.0/24: 64500}\n",
        )
        .unwrap();
        assert_eq!((c.params.quorum_orgs, c.params.window_secs, c.params.warmup_secs), (2, 43200, 0));
        assert!(contains(c.never[0], "203.0.113.9".parse().unwrap()));
        assert_eq!(c.asns[0].1, 64500);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let e = HubConfig::parse("consensus:\n  quorum: 2\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("quorum"), "{e}");
        let e = HubConfig::parse("never: [300.1.1.1]\n").unwrap_err();
        assert!(e.contains("never") && e.contains("300.1.1.1"), "{e}");
        let e = HubConfig::parse("url: http://x\n").unwrap_err();
        assert!(e.contains("end with"), "{e}");
        let e = HubConfig::parse("token_ttl: soon\n").unwrap_err();
        assert!(e.contains("token_ttl"), "{e}");
    }
}
