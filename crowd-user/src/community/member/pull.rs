//! Blocklists in: a decision stream answer (`/v3`) and blocklist links applied to the store as
//! decisions of origin `CAPI` (the community list, under one alert
//! `crowdsecurity/community-blocklist` per pull, as CrowdSec records it) and `lists` (scenario
//! `lists:<name>`), from where the Local API serves them to bouncers and the daemon puts bans
//! into XDP (the local allowlist and the host's own addresses still win there). Every value and
//! duration is checked: a bad one is skipped and counted, never the pull (CrowdSec's client
//! rolls the whole pull back).
use serde_json::Value;

use crate::{
    community::wire,
    store::{DecisionFilter, NewAlert, NewDecision, Store, StoreError},
};

/// What one pull changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Decisions added (or refreshed).
    pub added: usize,
    /// Decisions ended.
    pub deleted: usize,
    /// Values or durations that did not check.
    pub skipped: usize,
}

/// A checked `(scope, value)`: `Ip` or `Range` in canonical form.
fn target(scope: &str, value: &str) -> Option<(&'static str, String)> {
    match scope.to_ascii_lowercase().as_str() {
        "ip" => wire::ip_value(value).map(|ip| ("Ip", ip.to_string())),
        "range" => wire::range_value(value).map(|(ip, bits)| ("Range", format!("{ip}/{bits}"))),
        _ => None,
    }
}

fn secs(duration: &str) -> Option<u64> {
    crate::clock::go_duration_secs(duration).filter(|s| *s >= 1.0).map(|s| s as u64)
}

/// Applies one `/v3` stream answer; `links` are returned for the caller to fetch.
///
/// # Errors
/// Store errors (nothing of the pull is kept then).
pub fn apply_stream(s: &mut Store, answer: &Value, now: i64) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    let mut fresh = Vec::new();
    for group in answer["new"].as_array().into_iter().flatten() {
        let scenario = group["scenario"].as_str().unwrap_or("crowdsecurity/community-blocklist");
        let scope = group["scope"].as_str().unwrap_or("");
        for d in group["decisions"].as_array().into_iter().flatten() {
            let checked = d["value"].as_str().and_then(|v| target(scope, v)).zip(d["duration"].as_str().and_then(secs));
            match checked {
                Some(((scope, value), duration_secs)) => fresh.push(NewDecision {
                    origin: "CAPI".into(),
                    scenario: scenario.into(),
                    scope: scope.into(),
                    value,
                    kind: "ban".into(),
                    duration_secs,
                    ..Default::default()
                }),
                None => applied.skipped += 1,
            }
        }
    }
    let mut gone = Vec::new();
    for group in answer["deleted"].as_array().into_iter().flatten() {
        let scope = group["scope"].as_str().unwrap_or("");
        for v in group["decisions"].as_array().into_iter().flatten() {
            match v.as_str().and_then(|v| target(scope, v)) {
                Some(t) => gone.push(t),
                None => applied.skipped += 1,
            }
        }
    }
    // A refreshed value replaces the one before (CrowdSec deletes and re-inserts).
    for (scope, value) in gone.iter().cloned().chain(fresh.iter().map(|d| (scope_of(&d.scope), d.value.clone()))) {
        let f = DecisionFilter {
            origins: vec!["CAPI".into()],
            scopes: vec![scope.into()],
            value: Some(value),
            simulated: true,
            ..Default::default()
        };
        let ended = s.delete_matching(&f, now)?.len();
        if gone.iter().any(|(sc, v)| *sc == scope && f.value.as_deref() == Some(v.as_str())) {
            applied.deleted += ended;
        }
    }
    if !fresh.is_empty() {
        let alert = NewAlert {
            scenario: "crowdsecurity/community-blocklist".into(),
            scope: String::new(),
            value: String::new(),
            events_count: 0,
            machine_id: String::new(),
            body: String::new(),
        };
        applied.added = s.record(Some(&alert), &fresh, now)?.len();
    }
    Ok(applied)
}

fn scope_of(s: &str) -> &'static str {
    if s == "Range" { "Range" } else { "Ip" }
}

/// Replaces the decisions of blocklist `name` with the values of its body (one per line;
/// a bad line is skipped and counted, never the list).
///
/// # Errors
/// Store errors.
pub fn apply_list(s: &mut Store, name: &str, body: &str, duration_secs: u64, now: i64) -> Result<Applied, StoreError> {
    let scenario = format!("lists:{name}");
    let mut applied = Applied::default();
    let mut fresh = Vec::new();
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let t = if line.contains('/') { target("range", line) } else { target("ip", line) };
        match t {
            Some((scope, value)) => fresh.push(NewDecision {
                origin: "lists".into(),
                scenario: scenario.clone(),
                scope: scope.into(),
                value,
                kind: "ban".into(),
                duration_secs,
                ..Default::default()
            }),
            None => applied.skipped += 1,
        }
    }
    let f = DecisionFilter { origins: vec!["lists".into()], simulated: true, ..Default::default() };
    let before: Vec<_> = s.query(&f, now)?.into_iter().filter(|d| d.scenario == scenario).collect();
    let keep: std::collections::HashSet<&str> = fresh.iter().map(|d| d.value.as_str()).collect();
    for d in before.iter().filter(|d| !keep.contains(d.value.as_str())) {
        applied.deleted +=
            s.delete_matching(&DecisionFilter { id: Some(d.id), simulated: true, ..Default::default() }, now)?.len();
    }
    let known: std::collections::HashSet<&str> = before.iter().map(|d| d.value.as_str()).collect();
    let new: Vec<NewDecision> = fresh.iter().filter(|d| !known.contains(d.value.as_str())).cloned().collect();
    if !new.is_empty() {
        applied.added = s.record(None, &new, now)?.len();
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_bad_value_is_skipped_and_the_rest_applied() {
        let mut s = Store::memory().unwrap();
        let now = 1_800_000_000;
        let answer = json!({"new": [
            {"scenario": "crowdsecurity/ssh-bf", "scope": "Ip", "decisions": [
                {"value": "203.0.113.7", "duration": "48h0m0s"}, {"value": "203.0.113.300", "duration": "1h"},
                {"value": "203.0.113.8", "duration": "soon"}, {"value": "::ffff:198.51.100.1", "duration": "1h"}]},
            {"scenario": "x", "scope": "range", "decisions": [{"value": "198.51.100.9/24", "duration": "1h"}]}],
            "deleted": [{"scope": "Ip", "decisions": ["192.0.2.1", "not-an-ip"]}]});
        let a = apply_stream(&mut s, &answer, now).unwrap();
        assert_eq!((a.added, a.skipped), (3, 3), "{a:?}");
        let f = DecisionFilter { origins: vec!["CAPI".into()], ..Default::default() };
        let mut values: Vec<String> = s.query(&f, now).unwrap().into_iter().map(|d| d.value).collect();
        values.sort();
        assert_eq!(values, ["198.51.100.0/24", "198.51.100.1", "203.0.113.7"]);
        // Refreshed, then deleted.
        apply_stream(&mut s, &json!({"new": [{"scenario": "s", "scope": "Ip", "decisions": [{"value": "203.0.113.7", "duration": "1h"}]}]}), now).unwrap();
        assert_eq!(s.query(&f, now).unwrap().len(), 3, "a refresh replaces, it does not add");
        let a =
            apply_stream(&mut s, &json!({"deleted": [{"scope": "Ip", "decisions": ["203.0.113.7"]}]}), now).unwrap();
        assert_eq!(a.deleted, 1);
        assert_eq!(s.query(&f, now).unwrap().len(), 2);
    }

    #[test]
    fn a_list_replaces_its_values() {
        let mut s = Store::memory().unwrap();
        let now = 1_800_000_000;
        let a = apply_list(&mut s, "org-acme", "192.0.2.5\nbad line\n198.51.100.0/24\n", 86400, now).unwrap();
        assert_eq!((a.added, a.skipped), (2, 1));
        let a = apply_list(&mut s, "org-acme", "192.0.2.6\n198.51.100.0/24\n", 86400, now).unwrap();
        assert_eq!((a.added, a.deleted), (1, 1));
        let f = DecisionFilter { origins: vec!["lists".into()], ..Default::default() };
        let rows = s.query(&f, now).unwrap();
        assert!(rows.iter().all(|d| d.scenario == "lists:org-acme"));
        assert_eq!(rows.len(), 2);
    }
}
