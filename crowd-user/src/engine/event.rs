//! The event that flows through the parser stages and into the scenarios: CrowdSec's `evt`.
//!
//! The field names follow CrowdSec's (`Line.Raw`, `Parsed`, `Meta`, `Enriched`, `StrTime`), so
//! that hub expressions such as `evt.Parsed.program == 'sshd'` read what they expect.
use std::{collections::BTreeMap, sync::Arc};

use expr::Value;
use indexmap::IndexMap;

/// One line as acquisition read it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    /// The text, without its newline.
    pub raw: String,
    /// Where it came from (a file path, `journalctl`, a syslog peer): shared by its lines.
    pub src: Arc<str>,
    /// The acquisition module (`file`, `journalctl`, `syslog`).
    pub module: &'static str,
    /// Acquisition labels; `type` selects the parsers (`syslog`, `nginx`, ...).
    pub labels: Labels,
}

/// A source's labels, shared by all its lines.
pub type Labels = Arc<BTreeMap<String, String>>;

/// Labels holding only `type` (embedded defaults, replay, explain).
#[must_use]
pub fn type_label(kind: &str) -> Labels {
    Arc::new(BTreeMap::from([("type".to_owned(), kind.to_owned())]))
}

pub use super::fields::{Fields, Str};

/// A readable field of the event, its path parsed once (expressions and `apply_on` read fields
/// at every event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRef {
    /// `Parsed.k`, or a bare `k` (`apply_on: message`).
    Parsed(String),
    /// `Meta.k`.
    Meta(String),
    /// `Enriched.k`.
    Enriched(String),
    /// `Line.Raw`.
    Raw,
    /// `Line.Src`.
    Src,
    /// `Line.Module`.
    Module,
    /// `Line.Labels.k`.
    Label(String),
    /// `StrTime`.
    StrTime,
}

impl FieldRef {
    /// Parses a CrowdSec path (`evt.` optional), or `None` for a path that names no string field.
    #[must_use]
    pub fn parse(path: &str) -> Option<FieldRef> {
        let path = path.strip_prefix("evt.").unwrap_or(path);
        if let Some(k) = path.strip_prefix("Line.Labels.") {
            return Some(FieldRef::Label(k.to_owned()));
        }
        Some(match path.split_once('.') {
            Some(("Parsed", k)) => FieldRef::Parsed(k.to_owned()),
            Some(("Meta", k)) => FieldRef::Meta(k.to_owned()),
            Some(("Enriched", k)) => FieldRef::Enriched(k.to_owned()),
            Some(("Line", "Raw")) => FieldRef::Raw,
            Some(("Line", "Src")) => FieldRef::Src,
            Some(("Line", "Module")) => FieldRef::Module,
            None if path == "StrTime" => FieldRef::StrTime,
            None => FieldRef::Parsed(path.to_owned()),
            _ => return None,
        })
    }
}

/// An event: a line and everything the parsers learnt from it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// The line.
    pub line: Line,
    /// Fields captured by grok and `parsed:` statics.
    pub parsed: Fields,
    /// Fields the scenarios group and report by (`source_ip`, `log_type`, ...).
    pub meta: Fields,
    /// Enrichment results (GeoIP, ASN, ...).
    pub enriched: Fields,
    /// The log's own timestamp as text (set by statics), parsed by the date enricher.
    pub str_time: Str,
    /// The event time in Unix seconds: the log's own time once parsed, else the read time.
    pub time: f64,
    /// Set by a whitelist node: the event is parsed but feeds no scenario.
    pub whitelisted: bool,
    /// Why it was whitelisted.
    pub whitelist_reason: String,
    /// The stage the event is in.
    pub stage: String,
    /// JSON documents decoded by `UnmarshalJSON(..., evt.Unmarshaled, "key")`, by key.
    pub unmarshaled: serde_json::Map<String, serde_json::Value>,
    /// For an overflow (run through the postoverflow parsers, or poured back into the scenarios
    /// by `reprocess: true`): its alert. Such an event has `Type` 1 and `evt.Overflow.Alert`.
    pub overflow: Option<Box<OverflowAlert>>,
}

/// `evt.Overflow.Alert` as postoverflow parsers and reprocessing scenarios read it (CrowdSec's
/// `models.Alert`, the fields expressions use); statics may rewrite its source's `Value` and
/// `Scope` (`ipv6_to_range`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverflowAlert {
    /// `Scenario`.
    pub scenario: String,
    /// `Remediation`.
    pub remediation: bool,
    /// `EventsCount`.
    pub events_count: usize,
    /// `Source`.
    pub source: AlertSource,
}

/// `evt.Overflow.Alert.Source`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertSource {
    /// `Scope` (`Ip`, `Range`, ...).
    pub scope: String,
    /// `Value`.
    pub value: String,
    /// `IP`: the address the alert is about (empty for other scopes).
    pub ip: String,
    /// `Range`.
    pub range: String,
    /// `AsNumber`.
    pub as_number: String,
    /// `AsName`.
    pub as_name: String,
    /// `Cn` (country).
    pub cn: String,
}

impl OverflowAlert {
    fn to_value(&self) -> Value {
        let s = |v: &str| Value::String(v.to_owned());
        let src = &self.source;
        Value::Map(IndexMap::from([
            ("Scenario".to_owned(), s(&self.scenario)),
            ("Remediation".to_owned(), Value::Bool(self.remediation)),
            ("EventsCount".to_owned(), Value::Integer(i64::try_from(self.events_count).unwrap_or(i64::MAX))),
            (
                "Source".to_owned(),
                Value::Map(IndexMap::from([
                    ("Scope".to_owned(), s(&src.scope)),
                    ("Value".to_owned(), s(&src.value)),
                    ("IP".to_owned(), s(&src.ip)),
                    ("Range".to_owned(), s(&src.range)),
                    ("AsNumber".to_owned(), s(&src.as_number)),
                    ("AsName".to_owned(), s(&src.as_name)),
                    ("Cn".to_owned(), s(&src.cn)),
                ])),
            ),
        ]))
    }
}

/// Converts decoded JSON into an expr value, as Go decodes JSON into `interface{}`.
#[must_use]
pub fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        // Go's encoding/json decodes every number into a float64.
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_to_value).collect()),
        serde_json::Value::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect()),
    }
}

fn map_value(m: &Fields) -> Value {
    Value::Map(m.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect())
}

impl Event {
    /// A new event for a line read at `now` (Unix seconds).
    #[must_use]
    pub fn new(line: Line, now: f64) -> Event {
        // Room for what the usual parsers set: no regrowth while parsing.
        Event {
            line,
            time: now,
            parsed: Fields::with_capacity(24),
            // Most lines are never parsed: these take room at their first field.
            meta: Fields::default(),
            enriched: Fields::default(),
            ..Event::default()
        }
    }

    /// The label `type`, which selects the parsers.
    #[must_use]
    pub fn log_type(&self) -> &str {
        self.line.labels.get("type").map_or("", String::as_str)
    }

    /// The event as an expr value, for expressions over `evt`.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let labels = Value::Map(self.line.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
        let line = Value::Map(IndexMap::from([
            ("Raw".to_owned(), Value::String(self.line.raw.clone())),
            ("Src".to_owned(), Value::String(self.line.src.to_string())),
            ("Module".to_owned(), Value::String(self.line.module.to_owned())),
            ("Labels".to_owned(), labels),
        ]));
        Value::Map(IndexMap::from([
            ("Line".to_owned(), line),
            ("Parsed".to_owned(), map_value(&self.parsed)),
            ("Meta".to_owned(), map_value(&self.meta)),
            ("Enriched".to_owned(), map_value(&self.enriched)),
            ("StrTime".to_owned(), Value::String(self.str_time.to_string())),
            ("Stage".to_owned(), Value::String(self.stage.clone())),
            ("Whitelisted".to_owned(), Value::Bool(self.whitelisted)),
            ("Type".to_owned(), Value::Integer(i64::from(self.overflow.is_some()))),
            // Unix seconds (CrowdSec's is a time.Time; `duration()` and `MedianInterval` work in
            // seconds here).
            ("Time".to_owned(), Value::Float(self.time)),
            (
                "Overflow".to_owned(),
                Value::Map(IndexMap::from([
                    ("Alert".to_owned(), self.overflow.as_ref().map_or(Value::Nil, |a| a.to_value())),
                    ("Whitelisted".to_owned(), Value::Bool(self.overflow.is_some() && self.whitelisted)),
                ])),
            ),
            (
                "Unmarshaled".to_owned(),
                Value::Map(self.unmarshaled.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect()),
            ),
        ]))
    }

    /// Reads a field by CrowdSec path (`Line.Raw`, `Parsed.message`, `evt.Meta.source_ip`).
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&str> {
        self.field(&FieldRef::parse(path)?)
    }

    /// Reads a field named by a path parsed once.
    #[must_use]
    pub fn field(&self, f: &FieldRef) -> Option<&str> {
        match f {
            FieldRef::Parsed(k) => self.parsed.get(k.as_str()).map(Str::as_str),
            FieldRef::Meta(k) => self.meta.get(k.as_str()).map(Str::as_str),
            FieldRef::Enriched(k) => self.enriched.get(k.as_str()).map(Str::as_str),
            FieldRef::Raw => Some(&self.line.raw),
            FieldRef::Src => Some(&self.line.src),
            FieldRef::Module => Some(self.line.module),
            FieldRef::Label(k) => self.line.labels.get(k.as_str()).map(String::as_str),
            FieldRef::StrTime => Some(&self.str_time),
        }
    }

    /// Writes a field by CrowdSec path (`evt.StrTime`, `Parsed.x`, `evt.Meta.y`).
    ///
    /// # Errors
    /// The path names no writable field.
    pub fn set(&mut self, path: &str, value: Str) -> Result<(), String> {
        let path = path.strip_prefix("evt.").unwrap_or(path);
        match path.split_once('.') {
            Some(("Parsed", k)) => drop(self.parsed.insert(k.into(), value)),
            Some(("Meta", k)) => drop(self.meta.insert(k.into(), value)),
            Some(("Enriched", k)) => drop(self.enriched.insert(k.into(), value)),
            None if path == "StrTime" => self.str_time = value,
            Some(("Line", "Module")) => {
                // CrowdSec's datasource names (the field holds a `&'static str`).
                const MODULES: [&str; 16] = [
                    "file",
                    "journalctl",
                    "syslog",
                    "docker",
                    "wineventlog",
                    "cloudwatch",
                    "kinesis",
                    "kafka",
                    "k8s-audit",
                    "s3",
                    "loki",
                    "http",
                    "appsec",
                    "victorialogs",
                    "kubernetes",
                    "journald",
                ];
                let Some(m) = MODULES.iter().find(|m| **m == value.as_str()) else {
                    return Err(format!("`{value}` is not a datasource `{path}` can name"));
                };
                self.line.module = m;
            }
            Some(("Overflow", rest)) if self.overflow.is_some() => {
                let a = self.overflow.as_mut().expect("checked");
                let slot = match rest {
                    "Alert.Source.Value" => &mut a.source.value,
                    "Alert.Source.Scope" => &mut a.source.scope,
                    "Alert.Source.Range" => &mut a.source.range,
                    "Alert.Source.IP" => &mut a.source.ip,
                    "Alert.Scenario" => &mut a.scenario,
                    _ => return Err(format!("`{path}` is not a field a static can write")),
                };
                *slot = value.to_string();
            }
            _ => return Err(format!("`{path}` is not a field a static can write")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_set_by_path() {
        let mut e = Event::default();
        e.line.raw = "x".into();
        e.set("evt.Parsed.program", "sshd".into()).unwrap();
        e.set("Meta.source_ip", "192.0.2.1".into()).unwrap();
        e.set("evt.StrTime", "Feb 12 14:10:21".into()).unwrap();
        e.set("evt.Line.Module", "wineventlog".into()).unwrap();
        assert_eq!(e.line.module, "wineventlog");
        assert!(e.set("evt.Line.Module", "not-a-datasource".into()).is_err());
        assert_eq!(e.get("evt.Parsed.program"), Some("sshd"));
        assert_eq!(e.get("program"), Some("sshd"));
        assert_eq!(e.get("Line.Raw"), Some("x"));
        assert_eq!(e.get("evt.Meta.source_ip"), Some("192.0.2.1"));
        assert_eq!(e.str_time, "Feb 12 14:10:21");
        assert!(e.set("evt.Line.Raw", "y".into()).is_err());
    }
}
