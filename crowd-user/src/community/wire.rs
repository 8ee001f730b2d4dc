//! CrowdSec's central API JSON, as the server reads and writes it: signals (1.4.x and 1.5+
//! shapes, read item by item so one bad item is skipped, never the batch), logins, and the
//! decision stream in its two shapes (`/v2`: flat decisions with `origin`; `/v3`: grouped by
//! scenario and scope, with `links`). Every value and duration is checked before it is served:
//! one bad one makes CrowdSec's client roll back a whole pull.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{EntryRow, NewSignal};

/// `POST watchers` and `watchers/login`.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    /// Login.
    pub machine_id: String,
    /// Password.
    pub password: String,
    /// Scenarios the member runs (login only; `null` is an empty list).
    #[serde(default)]
    pub scenarios: Option<Vec<String>>,
    /// The enrollment key (registration).
    #[serde(default)]
    pub registration_token: Option<String>,
}

/// `POST watchers/enroll`.
#[derive(Debug, Deserialize)]
pub struct Enroll {
    /// The organisation's enrollment key.
    #[serde(default)]
    pub attachment_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SignalSource {
    scope: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct SignalItem {
    scenario: String,
    source: SignalSource,
    #[serde(default)]
    start_at: Option<String>,
    stop_at: String,
    #[serde(default)]
    context: Option<Value>,
}

/// Why a signal item was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Not a signal object.
    #[error("not a signal: {0}")]
    Shape(String),
    /// A scope other than Ip and Range.
    #[error("scope `{0}` is not shared")]
    Scope(String),
    /// A value that is not an address or prefix of its scope.
    #[error("`{0}` is not a valid {1}")]
    Value(String, &'static str),
    /// A time that is not RFC 3339.
    #[error("`{0}` is not an RFC 3339 time")]
    Time(String),
    /// An empty scenario name.
    #[error("no scenario")]
    Scenario,
}

/// Parses an RFC 3339 time (with or without fractions) into Unix seconds.
#[must_use]
pub fn unix_of(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp())
}

/// A canonical `Ip` value: the address (IPv4-mapped IPv6 as IPv4).
#[must_use]
pub fn ip_value(v: &str) -> Option<IpAddr> {
    v.trim().parse::<IpAddr>().ok().map(crate::addr::canonical_ip)
}

/// A canonical `Range` value: the network address and length, host bits cleared.
#[must_use]
pub fn range_value(v: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = v.trim().split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    match ip {
        IpAddr::V4(a) if bits <= 32 => {
            let m = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            Some((IpAddr::V4((u32::from(a) & m).into()), bits))
        }
        IpAddr::V6(a) if bits <= 128 => {
            let m = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            Some((IpAddr::V6((u128::from(a) & m).into()), bits))
        }
        _ => None,
    }
}

/// An address or CIDR as `(network, length)`: an address alone is a /32 or /128.
#[must_use]
pub fn prefix_value(v: &str) -> Option<(IpAddr, u8)> {
    range_value(v).or_else(|| ip_value(v).map(|ip| (ip, if ip.is_ipv4() { 32 } else { 128 })))
}

/// The canonical text of a prefix: the address alone for a /32 or /128, else `net/len`.
#[must_use]
pub fn prefix_text((ip, bits): (IpAddr, u8)) -> String {
    if bits == if ip.is_ipv4() { 32 } else { 128 } { ip.to_string() } else { format!("{ip}/{bits}") }
}

/// One item of a `POST signals` body, checked, as the signal to store (reported by `machine`).
///
/// # Errors
/// Why it is skipped.
pub fn signal(item: &Value, machine: &str, keep_context: bool) -> Result<NewSignal, Skip> {
    let s = SignalItem::deserialize(item).map_err(|e| Skip::Shape(e.to_string()))?;
    if s.scenario.trim().is_empty() {
        return Err(Skip::Scenario);
    }
    let (scope, value) = match s.source.scope.to_ascii_lowercase().as_str() {
        "ip" => {
            ("Ip", ip_value(&s.source.value).ok_or_else(|| Skip::Value(s.source.value.clone(), "address"))?.to_string())
        }
        "range" => {
            let (ip, bits) =
                range_value(&s.source.value).ok_or_else(|| Skip::Value(s.source.value.clone(), "range"))?;
            ("Range", format!("{ip}/{bits}"))
        }
        _ => return Err(Skip::Scope(s.source.scope)),
    };
    let at = unix_of(&s.stop_at)
        .or_else(|| s.start_at.as_deref().and_then(unix_of))
        .ok_or_else(|| Skip::Time(s.stop_at.clone()))?;
    let context = if keep_context { s.context.filter(|c| !c.is_null()).map(|c| c.to_string()) } else { None };
    Ok(NewSignal { machine_id: machine.to_owned(), scope: scope.into(), value, scenario: s.scenario, at, context })
}

/// An entry checked for serving: its value parses in its scope and it has time left.
fn servable(e: &EntryRow, now: i64) -> Option<String> {
    let ok = match e.scope.as_str() {
        "Ip" => ip_value(&e.value).is_some(),
        "Range" => range_value(&e.value).is_some(),
        _ => false,
    };
    if !ok {
        return None;
    }
    let left = if e.deleted { 3600 } else { e.until - now };
    (left >= 1).then(|| crate::clock::go_duration(std::time::Duration::from_secs(left.unsigned_abs())))
}

/// The name an organisation's list has in CrowdSec's clients.
#[must_use]
pub fn list_name(org: &str) -> String {
    format!("org-{org}")
}

#[derive(Serialize)]
struct Flat<'a> {
    duration: String,
    origin: &'static str,
    scenario: std::borrow::Cow<'a, str>,
    scope: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct FlatStream<'a> {
    deleted: Vec<Flat<'a>>,
    new: Vec<Flat<'a>>,
}

/// The `/v2` stream body (JSON bytes, written straight from the rows: a 100k-entry list never
/// becomes a tree of values): flat decisions, `origin` CAPI for the community list and `lists`
/// for the organisation's. Entries that fail the checks are left out.
#[must_use]
pub fn stream_v2(entries: &[EntryRow], now: i64) -> Vec<u8> {
    let (mut new, mut deleted) = (Vec::new(), Vec::new());
    for e in entries {
        let Some(duration) = servable(e, now) else { continue };
        let (origin, scenario) = match (e.list.is_empty(), e.deleted) {
            (_, true) => (if e.list.is_empty() { "CAPI" } else { "lists" }, "deleted".into()),
            (true, false) => ("CAPI", std::borrow::Cow::Borrowed(e.scenario.as_str())),
            (false, false) => ("lists", list_name(&e.list).into()),
        };
        let d = Flat { duration, origin, scenario, scope: &e.scope, kind: "ban", value: &e.value };
        if e.deleted { deleted.push(d) } else { new.push(d) }
    }
    serde_json::to_vec(&FlatStream { deleted, new }).unwrap_or_default()
}

/// A `links.blocklists` item.
#[derive(Debug, Serialize)]
pub struct Link {
    /// Unique name.
    pub name: String,
    /// Capability URL.
    pub url: String,
    /// Decision type.
    pub remediation: &'static str,
    /// Scope (lowercase, as CrowdSec's lists say it).
    pub scope: &'static str,
    /// Go duration.
    pub duration: String,
}

#[derive(Serialize)]
struct Item<'a> {
    value: &'a str,
    duration: String,
}

#[derive(Serialize)]
struct Group<'a> {
    scenario: &'a str,
    scope: &'a str,
    decisions: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Gone<'a> {
    scope: &'a str,
    decisions: Vec<&'a str>,
}

#[derive(Serialize)]
struct Links {
    blocklists: Vec<Link>,
}

#[derive(Serialize)]
struct Grouped<'a> {
    deleted: Vec<Gone<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<Links>,
    new: Vec<Group<'a>>,
}

/// The `/v3` stream body (JSON bytes): the community list grouped by scenario and scope; the
/// organisation's list goes in `links` (entries of other lists are left out here).
#[must_use]
pub fn stream_v3(entries: &[EntryRow], links: Vec<Link>, now: i64) -> Vec<u8> {
    use std::collections::BTreeMap;
    let mut new: BTreeMap<(&str, &str), Vec<Item<'_>>> = BTreeMap::new();
    let mut deleted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.list.is_empty()) {
        let Some(duration) = servable(e, now) else { continue };
        if e.deleted {
            deleted.entry(&e.scope).or_default().push(&e.value);
        } else {
            new.entry((&e.scenario, &e.scope)).or_default().push(Item { value: &e.value, duration });
        }
    }
    let body = Grouped {
        deleted: deleted.into_iter().map(|(scope, decisions)| Gone { scope, decisions }).collect(),
        links: (!links.is_empty()).then_some(Links { blocklists: links }),
        new: new.into_iter().map(|((scenario, scope), decisions)| Group { scenario, scope, decisions }).collect(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(list: &str, scope: &str, value: &str, until: i64, deleted: bool) -> EntryRow {
        EntryRow {
            list: list.into(),
            scope: scope.into(),
            value: value.into(),
            scenario: "crowdsecurity/ssh-bf".into(),
            until,
            deleted,
            seq: 1,
        }
    }

    #[test]
    fn a_bad_item_is_skipped_with_a_reason() {
        let ok = json!({"scenario": "crowdsecurity/ssh-bf", "source": {"scope": "ip", "value": "::ffff:203.0.113.7"},
                        "start_at": "2026-11-27T10:00:00Z", "stop_at": "2026-11-27T10:00:03.123+01:00"});
        let s = signal(&ok, "m1", false).unwrap();
        assert_eq!((s.scope.as_str(), s.value.as_str(), s.at), ("Ip", "203.0.113.7", 1_795_770_003));
        let r = json!({"scenario": "x", "source": {"scope": "Range", "value": "198.51.100.9/24"}, "stop_at": "2026-11-27T10:00:03Z"});
        assert_eq!(signal(&r, "m1", false).unwrap().value, "198.51.100.0/24");
        let bad =
            json!({"scenario": "x", "source": {"scope": "Ip", "value": "1.2.3"}, "stop_at": "2026-11-27T10:00:03Z"});
        assert_eq!(signal(&bad, "m1", false), Err(Skip::Value("1.2.3".into(), "address")));
        let user = json!({"scenario": "x", "source": {"scope": "username", "value": "root"}, "stop_at": "2026-11-27T10:00:03Z"});
        assert!(matches!(signal(&user, "m1", false), Err(Skip::Scope(_))));
        assert!(matches!(signal(&json!(3), "m1", false), Err(Skip::Shape(_))));
        let t = json!({"scenario": "x", "source": {"scope": "Ip", "value": "192.0.2.1"}, "stop_at": "yesterday"});
        assert!(matches!(signal(&t, "m1", false), Err(Skip::Time(_))));
    }

    #[test]
    fn only_valid_values_with_time_left_are_served() {
        let now = 1000;
        let e = [
            entry("", "Ip", "203.0.113.7", now + 7200, false),
            entry("", "Ip", "203.0.113.300", now + 7200, false),
            entry("", "Ip", "203.0.113.8", now, false),
            entry("", "Range", "198.51.100.0/24", now + 60, false),
            entry("", "Ip", "203.0.113.9", now - 5, true),
            entry("acme", "Ip", "192.0.2.5", now + 60, false),
        ];
        let v2: Value = serde_json::from_slice(&stream_v2(&e, now)).unwrap();
        let values: Vec<&str> = v2["new"].as_array().unwrap().iter().map(|d| d["value"].as_str().unwrap()).collect();
        assert_eq!(values, ["203.0.113.7", "198.51.100.0/24", "192.0.2.5"]);
        assert_eq!(v2["new"][0]["duration"], "2h0m0s");
        assert_eq!(v2["new"][2]["origin"], "lists");
        assert_eq!(v2["new"][2]["scenario"], "org-acme");
        assert_eq!(v2["deleted"][0]["value"], "203.0.113.9");
        let v3: Value = serde_json::from_slice(&stream_v3(&e, vec![], now)).unwrap();
        assert_eq!(v3["new"].as_array().unwrap().len(), 2, "{v3}");
        assert_eq!(v3["deleted"], json!([{"scope": "Ip", "decisions": ["203.0.113.9"]}]));
        assert!(v3.get("links").is_none());
    }
}
