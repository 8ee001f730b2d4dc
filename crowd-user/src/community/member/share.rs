//! Signals out: the store's alerts, in order, as CrowdSec signals. The alerts table is the
//! outbox: a cursor (the last alert number shared, kept in the store; numbers are
//! commit-ordered, so it never passes an alert that commits later) moves only once the server took
//! a batch, so alerts made while the server is down or the daemon restarts are sent when it is
//! back, each once. Not shared: alerts whose decisions came from the community itself
//! (`CAPI`, `lists`), simulated ones, and manual ones unless the admin says so; only `Ip` and
//! `Range` sources. Signals carry no log lines and no context.
use serde_json::{Value, json};

use crate::store::{AlertRow, DecisionRow, Store, StoreError};

/// The store secret holding the last alert shared.
pub const CURSOR: &str = "community-shared-alert";
/// Signals per request (CrowdSec's client sends at most 50).
pub const BATCH: usize = 50;

/// The signal of an alert, or `None` when it is not shared.
#[must_use]
pub fn signal(a: &AlertRow, decisions: &[DecisionRow], share_manual: bool) -> Option<Value> {
    let body: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    if decisions.iter().any(|d| d.origin == "CAPI" || d.origin == "lists") {
        return None;
    }
    if body["simulated"].as_bool() == Some(true) || (!decisions.is_empty() && decisions.iter().all(|d| d.simulated)) {
        return None;
    }
    let manual = decisions.first().is_some_and(|d| d.origin == "cscli" || d.origin == "cscli-import");
    if manual && !share_manual {
        return None;
    }
    let scope = match a.scope.to_ascii_lowercase().as_str() {
        "ip" => "Ip",
        "range" => "Range",
        _ => return None,
    };
    let at = crate::clock::rfc3339(a.created_at);
    let text = |k: &str| body[k].as_str().map(str::to_owned);
    let src = &body["source"];
    let mut source = json!({"scope": scope, "value": a.value});
    for k in ["ip", "range", "as_number", "as_name", "cn"] {
        if let Some(v) = src[k].as_str().filter(|v| !v.is_empty()) {
            source[k] = json!(v);
        }
    }
    let hash = text("scenario_hash").unwrap_or_default();
    let version = text("scenario_version").unwrap_or_default();
    let trust = if manual {
        "manual"
    } else if hash.is_empty() {
        "custom"
    } else if version.is_empty() || version == "?" {
        "tainted"
    } else {
        "certified"
    };
    let ds: Vec<Value> = decisions
        .iter()
        .map(|d| {
            let left = std::time::Duration::from_secs((d.until - a.created_at).max(0).unsigned_abs());
            json!({"uuid": d.uuid, "origin": d.origin, "type": d.kind, "scope": d.scope, "value": d.value,
                   "duration": crate::clock::go_duration(left), "scenario": d.scenario,
                   "until": crate::clock::rfc3339(d.until), "simulated": d.simulated})
        })
        .collect();
    Some(json!({
        "scenario": a.scenario,
        "scenario_hash": hash,
        "scenario_version": version,
        "scenario_trust": trust,
        "message": format!("{} by {} {}", a.scenario, scope, a.value),
        "source": source,
        "start_at": text("start_at").unwrap_or_else(|| at.clone()),
        "stop_at": text("stop_at").unwrap_or_else(|| at.clone()),
        "created_at": at,
        "machine_id": a.machine_id,
        "uuid": text("uuid").unwrap_or_default(),
        "decisions": ds,
        "context": null,
    }))
}

/// The next batch to send: the signals of the alerts after the cursor (up to [`BATCH`]
/// alerts looked at), and the cursor to save once the server took them.
///
/// # Errors
/// Store errors.
pub fn next_batch(s: &mut Store, share_manual: bool) -> Result<(Vec<Value>, i64, i64), StoreError> {
    let cursor: i64 = s.get_secret(CURSOR)?.and_then(|v| v.parse().ok()).unwrap_or(0);
    let alerts = s.alerts_after(cursor, BATCH as i64)?;
    let mut out = Vec::new();
    let mut last = cursor;
    for (seq, a) in &alerts {
        last = *seq;
        if let Some(sig) = signal(a, &s.alert_decisions(a.id)?, share_manual) {
            out.push(sig);
        }
    }
    Ok((out, cursor, last))
}

/// Moves the cursor once a batch was taken.
///
/// # Errors
/// Store errors.
pub fn commit(s: &mut Store, last: i64) -> Result<(), StoreError> {
    s.replace_secret(CURSOR, &last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scope: &str, body: &str) -> AlertRow {
        AlertRow {
            id: 7,
            scenario: "crowd/ssh-bf".into(),
            scope: scope.into(),
            value: "203.0.113.7".into(),
            events_count: 6,
            created_at: 1_800_000_000,
            machine_id: String::new(),
            body: body.into(),
        }
    }

    fn decision(origin: &str, simulated: bool) -> DecisionRow {
        DecisionRow {
            id: 1,
            alert_id: Some(7),
            origin: origin.into(),
            scenario: "crowd/ssh-bf".into(),
            scope: "Ip".into(),
            value: "203.0.113.7".into(),
            kind: "ban".into(),
            until: 1_800_014_400,
            created_at: 1_800_000_000,
            deleted_at: None,
            simulated,
            reason: String::new(),
            uuid: "u-1".into(),
        }
    }

    #[test]
    fn what_is_shared_and_how() {
        let s = signal(&row("Ip", ""), &[decision("crowdsec", false)], false).expect("shared");
        assert_eq!(s["source"], json!({"scope": "Ip", "value": "203.0.113.7"}));
        assert_eq!(s["scenario_trust"], "custom");
        assert_eq!(s["decisions"][0]["duration"], "4h0m0s");
        assert!(s["context"].is_null());
        assert!(signal(&row("Ip", ""), &[decision("CAPI", false)], false).is_none(), "the community's own");
        assert!(signal(&row("Ip", ""), &[decision("crowdsec", true)], false).is_none(), "simulated");
        assert!(signal(&row("Ip", ""), &[decision("cscli", false)], false).is_none(), "manual");
        assert_eq!(signal(&row("Ip", ""), &[decision("cscli", false)], true).unwrap()["scenario_trust"], "manual");
        assert!(signal(&row("username", ""), &[], false).is_none());
        let body = r#"{"scenario_hash": "abc", "scenario_version": "0.2", "start_at": "2027-01-15T08:00:00Z", "source": {"cn": "FR", "as_number": "64500"}}"#;
        let s = signal(&row("Ip", body), &[], false).unwrap();
        assert_eq!(
            (s["scenario_trust"].as_str(), s["start_at"].as_str()),
            (Some("certified"), Some("2027-01-15T08:00:00Z"))
        );
        assert_eq!(s["source"]["cn"], "FR");
    }
}
