//! The Local API's JSON, shaped as CrowdSec's models (`pkg/models`): decisions as bouncers get
//! them, alerts as agents push them, usage-metrics reports (`AllMetrics`) as bouncers and agents
//! send them, and the error body.
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
    let last = a.events.last();
    let enriched = |k: &str| last.and_then(|e| e.enriched.get(k)).map(ToString::to_string).filter(|v| !v.is_empty());
    // The events kept (the last ten), as CrowdSec's: their meta, plus where the line came from
    // and the line itself (`crowd_line`, `crowd_line_type`: what the console's parse trail runs).
    let events: Vec<serde_json::Value> = a.events[a.events.len().saturating_sub(10)..]
        .iter()
        .map(|e| {
            let mut meta: Vec<serde_json::Value> =
                e.meta.iter().map(|(k, v)| serde_json::json!({"key": k.as_str(), "value": v.as_str()})).collect();
            let mut line = e.line.raw.clone();
            if line.len() > 1024 {
                let mut end = 1024;
                while !line.is_char_boundary(end) {
                    end -= 1;
                }
                line.truncate(end);
            }
            if !e.meta.contains_key("datasource_path") && !e.line.src.is_empty() {
                meta.push(serde_json::json!({"key": "datasource_path", "value": &*e.line.src}));
            }
            meta.push(serde_json::json!({"key": "crowd_line", "value": line}));
            if let Some(t) = e.line.labels.get("type") {
                meta.push(serde_json::json!({"key": "crowd_line_type", "value": t}));
            }
            serde_json::json!({"timestamp": at(e.time), "meta": meta})
        })
        .collect();
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
        "events": events,
        "source": {"scope": a.scope, "value": a.value, "ip": ip, "cn": enriched("IsoCode"),
                   "as_number": enriched("ASNNumber"), "as_name": enriched("ASNOrg"),
                   "latitude": enriched("Latitude").and_then(|v| v.parse::<f64>().ok()),
                   "longitude": enriched("Longitude").and_then(|v| v.parse::<f64>().ok())},
        "decisions": decisions.iter().map(|d| serde_json::json!({
            "duration": go_duration_signed(i64::try_from(d.duration_secs).unwrap_or(i64::MAX)),
            "origin": d.origin, "scenario": d.scenario, "scope": d.scope, "type": d.kind, "value": d.value,
            "simulated": d.simulated,
        })).collect::<Vec<_>>(),
    })
}

/// A usage-metrics report (`POST /v1/usage-metrics`, CrowdSec's `models.AllMetrics`), checked:
/// each component's object as it was sent, in its list.
#[derive(Debug, Default)]
pub struct UsageReport {
    /// `remediation_components` (bouncers).
    pub remediation_components: Vec<serde_json::Value>,
    /// `log_processors` (agents).
    pub log_processors: Vec<serde_json::Value>,
}

/// The fields of a component that CrowdSec's swagger types (`BaseMetrics` plus the remediation
/// component's and the log processor's own); unknown fields are ignored, as Go does.
#[derive(Deserialize)]
#[allow(dead_code)] // Read for their types only.
struct ComponentSpec {
    version: Option<String>,
    utc_startup_timestamp: Option<i64>,
    os: Option<OsSpec>,
    feature_flags: Option<Vec<String>>,
    metrics: Option<Vec<DetailedSpec>>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    last_pull: Option<i64>,
    hub_items: Option<serde_json::Map<String, serde_json::Value>>,
    datasources: Option<std::collections::HashMap<String, i64>>,
    last_push: Option<i64>,
    last_update: Option<i64>,
}

#[derive(Deserialize)]
struct OsSpec {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct DetailedSpec {
    meta: Option<MetaSpec>,
    items: Option<Vec<ItemSpec>>,
}

#[derive(Deserialize)]
struct MetaSpec {
    window_size_seconds: Option<i64>,
    utc_now_timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct ItemSpec {
    name: Option<String>,
    unit: Option<String>,
    value: Option<f64>,
    labels: Option<std::collections::HashMap<String, String>>,
}

/// The swagger's `maxLength` for item names, units and label values.
const MAX_LEN: usize = 255;

impl ComponentSpec {
    /// What CrowdSec's validation would refuse, in its words (`<path> in body is required`).
    fn problems(&self, at: &str, out: &mut Vec<String>) {
        let mut need = |present: bool, field: &str| {
            if !present {
                out.push(format!("{at}.{field} in body is required"));
            }
        };
        need(self.version.is_some(), "version");
        need(self.utc_startup_timestamp.is_some(), "utc_startup_timestamp");
        if let Some(os) = &self.os {
            need(os.name.is_some(), "os.name");
            need(os.version.is_some(), "os.version");
        }
        for (i, m) in self.metrics.iter().flatten().enumerate() {
            let at = format!("{at}.metrics.{i}");
            let mut need = |present: bool, field: &str| {
                if !present {
                    out.push(format!("{at}.{field} in body is required"));
                }
            };
            need(m.items.is_some(), "items");
            need(m.meta.is_some(), "meta");
            if let Some(meta) = &m.meta {
                need(meta.utc_now_timestamp.is_some(), "meta.utc_now_timestamp");
                need(meta.window_size_seconds.is_some(), "meta.window_size_seconds");
            }
            for (j, item) in m.items.iter().flatten().enumerate() {
                let at = format!("{at}.items.{j}");
                for (field, v) in [("name", &item.name), ("unit", &item.unit)] {
                    match v {
                        None => out.push(format!("{at}.{field} in body is required")),
                        Some(s) if s.len() > MAX_LEN => {
                            out.push(format!("{at}.{field} in body should be at most {MAX_LEN} chars long"));
                        }
                        Some(_) => {}
                    }
                }
                if item.value.is_none() {
                    out.push(format!("{at}.value in body is required"));
                }
                for (k, v) in item.labels.iter().flatten() {
                    if v.len() > MAX_LEN {
                        out.push(format!("{at}.labels.{k} in body should be at most {MAX_LEN} chars long"));
                    }
                }
            }
        }
    }
}

impl UsageReport {
    /// Checks a body as CrowdSec's `AllMetrics`: an object whose optional
    /// `remediation_components` and `log_processors` are arrays of objects with the swagger's
    /// types and required fields (`version`, `utc_startup_timestamp`, and in each metrics window
    /// `meta.{utc_now_timestamp,window_size_seconds}` and `items[].{name,unit,value}`), and whose
    /// optional `lapi` is an object. Unknown fields are kept.
    ///
    /// # Errors
    /// What is wrong, for a `{"message": ...}`: bad JSON, a wrong type (with the component's
    /// path), or CrowdSec's `validation failure list:` of missing fields.
    pub fn parse(body: &[u8]) -> Result<UsageReport, String> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
        let serde_json::Value::Object(mut top) = v else {
            return Err("the body must be a JSON object (CrowdSec's AllMetrics)".into());
        };
        if !matches!(top.get("lapi"), None | Some(serde_json::Value::Null | serde_json::Value::Object(_))) {
            return Err("`lapi` must be an object".into());
        }
        let mut problems = Vec::new();
        let mut list = |key: &str| -> Result<Vec<serde_json::Value>, String> {
            let items = match top.remove(key) {
                None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
                Some(serde_json::Value::Array(a)) => a,
                Some(_) => return Err(format!("`{key}` must be an array")),
            };
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}.{i}");
                if !item.is_object() {
                    return Err(format!("{at} must be an object"));
                }
                let spec = ComponentSpec::deserialize(item).map_err(|e| format!("{at}: {e}"))?;
                spec.problems(&at, &mut problems);
            }
            Ok(items)
        };
        let report = UsageReport {
            remediation_components: list("remediation_components")?,
            log_processors: list("log_processors")?,
        };
        if problems.is_empty() { Ok(report) } else { Err(format!("validation failure list:\n{}", problems.join("\n"))) }
    }
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

    #[test]
    fn usage_reports_are_checked_like_crowdsec() {
        let fw = r#"{"remediation_components": [{"version": "v0.0.31", "type": "crowdsec-firewall-bouncer",
            "utc_startup_timestamp": 1707399316, "os": {"name": "debian", "version": "12"}, "feature_flags": [],
            "metrics": [{"meta": {"utc_now_timestamp": 1707399916, "window_size_seconds": 600},
              "items": [{"name": "dropped", "unit": "packet", "value": 100, "labels": {"ip_type": "ipv4", "origin": "CAPI"}},
                        {"name": "processed", "unit": "byte", "value": 3.5}]}], "extra": true}],
            "log_processors": []}"#;
        let r = UsageReport::parse(fw.as_bytes()).unwrap();
        assert_eq!(r.remediation_components.len(), 1);
        assert!(r.log_processors.is_empty());
        assert_eq!(r.remediation_components[0]["extra"], true, "unknown fields are kept");
        assert!(UsageReport::parse(b"{}").unwrap().remediation_components.is_empty());

        let err = |b: &str| UsageReport::parse(b.as_bytes()).unwrap_err();
        assert!(err("{not json").starts_with("invalid JSON"));
        assert!(err("[]").contains("object"));
        assert!(err(r#"{"remediation_components": {}}"#).contains("`remediation_components` must be an array"));
        assert!(err(r#"{"log_processors": [1]}"#).contains("log_processors.0 must be an object"));
        assert!(err(r#"{"lapi": 3}"#).contains("`lapi`"));
        // CrowdSec's own cases (test/bats/08_metrics_bouncer.bats).
        assert_eq!(
            err(r#"{"remediation_components": [{"version": "v1.0"}], "log_processors": []}"#),
            "validation failure list:\nremediation_components.0.utc_startup_timestamp in body is required"
        );
        let e = err(
            r#"{"remediation_components": [{"version": "v1.0", "utc_startup_timestamp": "2021-09-01T00:00:00Z"}]}"#,
        );
        assert!(e.starts_with("remediation_components.0: invalid type: string"), "{e}");
        let e = err(
            r#"{"remediation_components": [{"version": "v1.0", "utc_startup_timestamp": 1, "metrics": [{"meta": {}}]}]}"#,
        );
        assert_eq!(
            e,
            "validation failure list:\nremediation_components.0.metrics.0.items in body is required\n\
             remediation_components.0.metrics.0.meta.utc_now_timestamp in body is required\n\
             remediation_components.0.metrics.0.meta.window_size_seconds in body is required"
        );
        let long = "x".repeat(256);
        let e = err(&format!(
            r#"{{"log_processors": [{{"version": "v1", "utc_startup_timestamp": 1, "metrics": [{{"meta":
            {{"utc_now_timestamp": 1, "window_size_seconds": 1}}, "items": [{{"name": "{long}", "value": 1}}]}}]}}]}}"#
        ));
        assert!(e.contains("log_processors.0.metrics.0.items.0.name in body should be at most 255 chars long"), "{e}");
        assert!(e.contains("log_processors.0.metrics.0.items.0.unit in body is required"), "{e}");
    }
}
