//! The Local API's JSON, shaped as CrowdSec's models (`pkg/models`): decisions as bouncers get
//! them, alerts as agents push them, and the error body.
use serde::{Deserialize, Serialize};

use crate::store::DecisionRow;

/// A decision as `/v1/decisions` and the stream serve it (Go field order; `until` left out like
/// CrowdSec; `duration` is the time left, negative for ended ones).
#[derive(Debug, Serialize)]
pub struct WireDecision<'a> {
    /// Time left, Go style (`3h59m57s`, `-12s`).
    pub duration: String,
    /// Id.
    pub id: i64,
    /// Origin (`crowdsec`, `cscli`, ...).
    pub origin: &'a str,
    /// Scenario.
    pub scenario: &'a str,
    /// Scope (`Ip`, `Range`).
    pub scope: &'a str,
    /// Only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// Type (`ban`).
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// Uuid.
    pub uuid: &'a str,
    /// Address or range.
    pub value: &'a str,
}

/// Go's `time.Duration.String()` at second precision, negative allowed.
#[must_use]
pub fn go_duration_signed(secs: i64) -> String {
    let d = crate::clock::go_duration(std::time::Duration::from_secs(secs.unsigned_abs()));
    if secs < 0 { format!("-{d}") } else { d }
}

impl<'a> WireDecision<'a> {
    /// The wire form of a stored decision at `now`.
    #[must_use]
    pub fn of(r: &'a DecisionRow, now: i64) -> Self {
        let end = r.deleted_at.map_or(r.until, |d| d.min(r.until));
        WireDecision {
            duration: go_duration_signed(end - now),
            id: r.id,
            origin: &r.origin,
            scenario: &r.scenario,
            scope: &r.scope,
            simulated: r.simulated,
            kind: &r.kind,
            uuid: &r.uuid,
            value: &r.value,
        }
    }
}

/// An alert's source.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Source {
    /// `Ip`, `Range`, ...
    pub scope: String,
    /// The address, range, ...
    pub value: String,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// AS number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<String>,
    /// AS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
    /// Country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cn: Option<String>,
    /// Latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// A decision inside a pushed alert.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AlertDecision {
    /// Go duration (`4h`).
    pub duration: String,
    /// Origin.
    #[serde(default)]
    pub origin: String,
    /// Scenario.
    #[serde(default)]
    pub scenario: String,
    /// Scope.
    pub scope: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Value.
    pub value: String,
    /// Simulated.
    #[serde(default)]
    pub simulated: Option<bool>,
    /// Uuid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Id (in answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Until (in answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// An alert as agents push it (`models.Alert`). Fields crowd does not use are kept as given
/// (`events`, `meta`, `labels`) and served back unchanged.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Alert {
    /// Set in answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Set in answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// Scenario.
    pub scenario: String,
    /// Scenario hash.
    pub scenario_hash: String,
    /// Scenario version.
    pub scenario_version: String,
    /// Message.
    pub message: String,
    /// Events in the bucket.
    pub events_count: i64,
    /// Start (RFC 3339).
    pub start_at: String,
    /// Stop (RFC 3339).
    pub stop_at: String,
    /// Capacity.
    pub capacity: i64,
    /// Leak speed.
    pub leakspeed: String,
    /// Simulated.
    pub simulated: bool,
    /// The events.
    pub events: serde_json::Value,
    /// The source.
    pub source: Source,
    /// Decisions it carries (then profiles are not run).
    #[serde(default)]
    pub decisions: Option<Vec<AlertDecision>>,
    /// Remediation wanted.
    #[serde(default)]
    pub remediation: Option<bool>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<serde_json::Value>,
    /// Meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Uuid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Set in answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// An alert of this host's scenarios as CrowdSec's JSON (`models.Alert`): what `GET /v1/alerts`
/// serves and notifications send.
#[must_use]
pub fn local_alert(
    a: &crate::engine::scenario::Alert,
    decisions: &[crate::engine::profile::Decision],
) -> serde_json::Value {
    let at = |t: f64| {
        chrono::DateTime::from_timestamp(t.floor() as i64, ((t.fract()) * 1e9) as u32)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default()
    };
    let first = a.first;
    let ip = if a.scope.eq_ignore_ascii_case("ip") { Some(a.value.clone()) } else { None };
    let simulated = decisions.iter().any(|d| d.simulated);
    serde_json::json!({
        "scenario": a.scenario,
        "scenario_hash": "",
        "scenario_version": "",
        "message": format!("{} {} performed '{}' ({} events over {:.0}s) at {}", a.scope, a.value, a.scenario,
                           a.events_count, (a.at - first).max(0.0), at(a.at)),
        "events_count": a.events_count,
        "start_at": at(first),
        "stop_at": at(a.at),
        "capacity": 0,
        "leakspeed": "",
        "simulated": simulated,
        "remediation": a.remediation,
        "events": [],
        "source": {"scope": a.scope, "value": a.value, "ip": ip},
        "decisions": decisions.iter().map(|d| serde_json::json!({
            "duration": go_duration_signed(i64::try_from(d.duration_secs).unwrap_or(i64::MAX)),
            "origin": d.origin, "scenario": d.scenario, "scope": d.scope, "type": d.kind, "value": d.value,
            "simulated": d.simulated,
        })).collect::<Vec<_>>(),
    })
}

/// The error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
    /// Details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_go_style_without_days() {
        assert_eq!(go_duration_signed(4 * 3600), "4h0m0s");
        assert_eq!(go_duration_signed(3 * 86400 + 61), "72h1m1s");
        assert_eq!(go_duration_signed(-12), "-12s");
        assert_eq!(go_duration_signed(0), "0s");
    }

    #[test]
    fn crowdsec_alert_sample_parses() {
        let a: Vec<Alert> = serde_json::from_str(
            r#"[{"capacity":5,"decisions":null,"events":[{"meta":[{"key":"source_ip","value":"192.0.2.195"}],"timestamp":"2020-10-02T17:09:08Z"}],
            "events_count":6,"labels":null,"leakspeed":"10s","message":"Ip 192.0.2.195 performed 'crowdsecurity/ssh-bf'",
            "remediation":true,"scenario":"crowdsecurity/ssh-bf","scenario_hash":"4441dcff","scenario_version":"0.1","simulated":false,
            "source":{"as_name":"TEST","cn":"FR","ip":"192.0.2.195","latitude":50.6,"longitude":3.07,"range":"192.0.2.0/24","scope":"Ip","value":"192.0.2.195"},
            "start_at":"2020-10-26T09:50:32.025353849+01:00","stop_at":"2020-10-26T09:50:32.055534398+01:00"}]"#,
        )
        .unwrap();
        assert_eq!(a[0].source.value, "192.0.2.195");
        assert!(a[0].decisions.is_none());
    }
}
