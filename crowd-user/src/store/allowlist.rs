//! The allowlist every decision is checked against when it is recorded ([`Store::record`]):
//! addresses and ranges never banned, whoever decides (this host's detection, an agent through
//! the Local API, the CLI, the console, the community lists). Adding an entry also ends the
//! active decisions it overlaps, so bouncers and edges lift those bans at their next pull. A
//! range decision that holds an allowlisted address is refused whole, as the profiles refuse
//! it. Edited by `crowd allowlist` and the web console.
use ipnet::IpNet;

use super::{AddrMatch, DecisionFilter, DecisionRow, Result, Store};
use crate::addr::Target;

/// An allowlist entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AllowRow {
    /// The address or range (canonical).
    pub value: String,
    /// Why.
    pub reason: String,
    /// Who added it (a console user, `cli`).
    pub created_by: String,
    /// When, Unix seconds.
    pub created_at: i64,
}

/// The allowlisted network `target` overlaps (holds it or lies in it), if any.
#[must_use]
pub fn overlapping(allowed: &[IpNet], target: Target) -> Option<IpNet> {
    let t = target.net();
    allowed.iter().copied().find(|a| a.contains(&t.network()) || t.contains(&a.network()))
}

/// The allowlisted network a decision on `value` (scope `Ip` or `Range`) overlaps, if any.
#[must_use]
pub fn holding(allowed: &[IpNet], scope: &str, value: &str) -> Option<IpNet> {
    if !scope.eq_ignore_ascii_case("ip") && !scope.eq_ignore_ascii_case("range") {
        return None;
    }
    overlapping(allowed, value.parse::<Target>().ok()?)
}

impl Store {
    /// The allowlist's networks.
    ///
    /// # Errors
    /// Database errors.
    pub fn allowlist_nets(&mut self) -> Result<Vec<IpNet>> {
        let rows = self.conn.all("SELECT value FROM allowlist", &[], |r| r.text(0))?;
        Ok(rows.iter().filter_map(|v| v.parse::<Target>().ok()).map(Target::net).collect())
    }

    /// The allowlist, by value.
    ///
    /// # Errors
    /// Database errors.
    pub fn allowlist(&mut self) -> Result<Vec<AllowRow>> {
        self.conn.all("SELECT value, reason, created_by, created_at FROM allowlist ORDER BY value", &[], |r| {
            Ok(AllowRow { value: r.text(0)?, reason: r.text(1)?, created_by: r.text(2)?, created_at: r.int(3)? })
        })
    }

    /// Allowlists `target` and ends the active decisions it overlaps (returned).
    ///
    /// # Errors
    /// Database errors.
    pub fn allow(&mut self, target: Target, reason: &str, by: &str, now: i64) -> Result<Vec<DecisionRow>> {
        let value = target.to_string();
        self.conn.exec(
            "INSERT INTO allowlist (value, reason, created_by, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (value) DO UPDATE SET reason = excluded.reason",
            &[value.as_str().into(), reason.into(), by.into(), now.into()],
        )?;
        let mut ended = Vec::new();
        // The decisions that hold it (ranges around it too) and those inside it.
        for contains in [true, false] {
            let f = DecisionFilter { addr: Some(AddrMatch { target, contains }), ..DecisionFilter::default() };
            ended.extend(self.delete_matching(&f, now)?);
        }
        self.announce();
        Ok(ended)
    }

    /// Removes `target` from the allowlist; whether it was there.
    ///
    /// # Errors
    /// Database errors.
    pub fn disallow(&mut self, target: Target) -> Result<bool> {
        let existed = self.conn.exec("DELETE FROM allowlist WHERE value = ?1", &[target.to_string().into()])? > 0;
        self.announce();
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewDecision;

    fn ban(v: &str) -> NewDecision {
        NewDecision {
            origin: "crowdsec".into(),
            scenario: "s".into(),
            scope: if v.contains('/') { "Range".into() } else { "Ip".into() },
            value: v.into(),
            kind: "ban".into(),
            duration_secs: 3600,
            simulated: false,
            reason: String::new(),
            uuid: String::new(),
        }
    }

    #[test]
    fn allowlisted_addresses_are_never_recorded_and_adding_ends_their_bans() {
        let mut s = Store::memory().unwrap();
        s.record(None, &[ban("192.0.2.7"), ban("198.51.100.0/24"), ban("203.0.113.9")], 100).unwrap();
        let t = |v: &str| v.parse::<Target>().unwrap();
        // Allowlisting an address inside a banned range ends the range and the address's own ban.
        let ended = s.allow(t("198.51.100.7"), "our monitor", "cli", 110).unwrap();
        assert_eq!(ended.iter().map(|d| d.value.as_str()).collect::<Vec<_>>(), ["198.51.100.0/24"]);
        let ended = s.allow(t("192.0.2.0/28"), "office", "ann", 110).unwrap();
        assert_eq!(ended.iter().map(|d| d.value.as_str()).collect::<Vec<_>>(), ["192.0.2.7"]);
        // From now on: refused, whoever records them; others are recorded.
        let ids = s
            .record(None, &[ban("192.0.2.3"), ban("198.51.100.0/16"), ban("198.51.100.7"), ban("203.0.113.10")], 120)
            .unwrap();
        assert_eq!(ids.len(), 1);
        let active: Vec<String> = s.active(130).unwrap().into_iter().map(|d| d.value).collect();
        assert_eq!(active, ["203.0.113.9", "203.0.113.10"]);
        // Other scopes are not addresses.
        assert!(holding(&s.allowlist_nets().unwrap(), "Country", "FR").is_none());
        assert_eq!(s.allowlist().unwrap().len(), 2);
        assert!(s.disallow(t("192.0.2.0/28")).unwrap());
        assert!(!s.disallow(t("192.0.2.0/28")).unwrap());
        assert_eq!(s.record(None, &[ban("192.0.2.3")], 140).unwrap().len(), 1);
    }
}
