//! Profiles: turn alerts into decisions. Today the default profile of CrowdSec (`ban` for 4h on
//! `Ip` and `Range` alerts that ask for a remediation), with the rule that allowlisted and our
//! own addresses are never banned, and simulation mode (decisions recorded, not enforced).
use std::{net::IpAddr, time::Duration};

use ipnet::IpNet;

use super::scenario::Alert;
use crate::addr::{Target, canonical_ip};

/// A decision taken on an alert.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The scenario that raised the alert.
    pub scenario: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// The address or range.
    pub value: String,
    /// `ban`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How long, in seconds.
    pub duration_secs: u64,
    /// `crowd` (decided by this host's scenarios).
    pub origin: String,
    /// Recorded only (simulation mode): not enforced.
    pub simulated: bool,
}

impl Decision {
    /// The ban target, if the value parses.
    #[must_use]
    pub fn target(&self) -> Option<Target> {
        self.value.parse().ok()
    }

    /// The duration.
    #[must_use]
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }
}

/// Why an alert got no decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The scenario does not ask for a remediation.
    NoRemediation,
    /// The scope is neither `Ip` nor `Range`, or the value is not an address or range.
    Scope,
    /// The address is allowlisted or one of ours.
    Allowlisted(String),
}

/// The profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Ban duration.
    pub ban: Duration,
    /// Addresses and ranges never banned (our own addresses, the configured allowlist).
    pub never: Vec<IpNet>,
    /// Simulation mode.
    pub simulation: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Profile { ban: Duration::from_secs(4 * 3600), never: Vec::new(), simulation: false }
    }
}

impl Profile {
    /// Adds addresses that must never be banned.
    pub fn protect(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        self.never.extend(ips.into_iter().map(|ip| IpNet::from(canonical_ip(ip))));
    }

    /// The decision for an alert, or why there is none.
    ///
    /// # Errors
    /// [`Skip`] saying why no decision was taken.
    pub fn decide(&self, a: &Alert) -> Result<Decision, Skip> {
        if !a.remediation {
            return Err(Skip::NoRemediation);
        }
        if !a.scope.eq_ignore_ascii_case("ip") && !a.scope.eq_ignore_ascii_case("range") {
            return Err(Skip::Scope);
        }
        let target: Target = a.value.parse().map_err(|_| Skip::Scope)?;
        let hit = self.never.iter().find(|n| match target {
            Target::Ip(ip) => n.contains(&ip),
            // A range that holds a protected address is refused whole.
            Target::Net(net) => n.contains(&net.network()) || net.contains(&n.network()),
        });
        if let Some(n) = hit {
            return Err(Skip::Allowlisted(n.to_string()));
        }
        Ok(Decision {
            scenario: a.scenario.clone(),
            scope: if matches!(target, Target::Ip(_)) { "Ip".into() } else { "Range".into() },
            value: target.to_string(),
            kind: "ban".into(),
            duration_secs: self.ban.as_secs(),
            origin: "crowd".into(),
            simulated: self.simulation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(value: &str, scope: &str, remediation: bool) -> Alert {
        Alert {
            scenario: "s".into(),
            events_count: 6,
            events: vec![],
            scope: scope.into(),
            value: value.into(),
            remediation,
            at: 0.0,
        }
    }

    #[test]
    fn default_profile_bans_four_hours() {
        let d = Profile::default().decide(&alert("192.0.2.9", "Ip", true)).unwrap();
        assert_eq!((d.kind.as_str(), d.duration_secs, d.scope.as_str()), ("ban", 4 * 3600, "Ip"));
        assert_eq!(Profile::default().decide(&alert("192.0.2.0/24", "Range", true)).unwrap().scope, "Range");
    }

    #[test]
    fn no_remediation_no_decision() {
        assert_eq!(Profile::default().decide(&alert("192.0.2.9", "Ip", false)), Err(Skip::NoRemediation));
        assert_eq!(Profile::default().decide(&alert("alice", "username", true)), Err(Skip::Scope));
    }

    #[test]
    fn our_addresses_are_never_banned() {
        let mut p = Profile::default();
        p.protect(["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
        assert!(matches!(p.decide(&alert("192.0.2.1", "Ip", true)), Err(Skip::Allowlisted(_))));
        assert!(matches!(p.decide(&alert("::ffff:192.0.2.1", "Ip", true)), Err(Skip::Allowlisted(_))));
        assert!(matches!(p.decide(&alert("192.0.2.0/24", "Range", true)), Err(Skip::Allowlisted(_))));
        assert!(p.decide(&alert("192.0.2.2", "Ip", true)).is_ok());
    }
}
