//! `crowd decisions import`: decisions from a plain list (one address or range per line, `#`
//! comments), CrowdSec's CSV (a header naming any of `duration,origin,reason,scope,type,value`)
//! or CrowdSec's JSON (an array of such objects). The whole file is checked before anything is
//! stored: one bad entry refuses the file, naming its line (or index) and field.
use std::time::Duration;

use serde::Deserialize;

use crate::{addr::Target, store::NewDecision};

/// The origin of imported decisions (CrowdSec's).
pub const ORIGIN: &str = "cscli-import";

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// One address or range per line.
    Values,
    /// CrowdSec's CSV.
    Csv,
    /// CrowdSec's JSON.
    Json,
}

/// Defaults for fields an entry leaves out.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// Duration.
    pub duration: Duration,
    /// Type.
    pub kind: String,
    /// Reason (the decision's scenario).
    pub reason: String,
}

/// A refused entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{place}, field `{field}`: {message}")]
pub struct ImportError {
    /// `line 12` or `entry 3`.
    pub place: String,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    value: String,
}

/// Guesses the format from the file name, then the first non-blank character.
#[must_use]
pub fn guess(name: &str, text: &str) -> ImportFormat {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".json") || text.trim_start().starts_with('[') {
        ImportFormat::Json
    } else if lower.ends_with(".csv") || text.lines().next().is_some_and(|l| l.contains(',') && l.contains("value")) {
        ImportFormat::Csv
    } else {
        ImportFormat::Values
    }
}

fn decision(e: Entry, d: &Defaults, place: impl Fn() -> String) -> Result<NewDecision, ImportError> {
    let err = |field: &str, message: String| ImportError { place: place(), field: field.into(), message };
    let secs = match &e.duration {
        Some(s) if !s.is_empty() => crate::clock::go_duration_secs(s)
            .or_else(|| humantime::parse_duration(s).ok().map(|d| d.as_secs_f64()))
            .filter(|v| *v >= 1.0)
            .ok_or_else(|| err("duration", format!("`{s}` is not a duration (examples: 4h, 30m, 7d)")))?
            as u64,
        _ => d.duration.as_secs(),
    };
    let target: Target = e.value.trim().parse().map_err(|x| err("value", format!("{x}")))?;
    let scope = match e.scope.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "ip" | "range") => {
            if matches!(target, Target::Ip(_)) {
                "Ip"
            } else {
                "Range"
            }
        }
        Some(other) => return Err(err("scope", format!("`{other}`: only ip and range decisions can be imported"))),
    };
    Ok(NewDecision {
        origin: e.origin.filter(|o| !o.is_empty()).unwrap_or_else(|| ORIGIN.into()),
        scenario: e.reason.filter(|r| !r.is_empty()).unwrap_or_else(|| d.reason.clone()),
        scope: scope.into(),
        value: target.to_string(),
        kind: e.kind.filter(|k| !k.is_empty()).unwrap_or_else(|| d.kind.clone()),
        duration_secs: secs,
        simulated: false,
        reason: String::new(),
        uuid: String::new(),
    })
}

/// Parses a whole input.
///
/// # Errors
/// The first bad entry, with its line or index and field.
pub fn parse(text: &str, format: ImportFormat, d: &Defaults) -> Result<Vec<NewDecision>, ImportError> {
    match format {
        ImportFormat::Values => text
            .lines()
            .enumerate()
            .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| decision(Entry { value: l.to_owned(), ..Entry::default() }, d, || format!("line {}", i + 1)))
            .collect(),
        ImportFormat::Csv => {
            let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
            let Some((_, header)) = lines.next() else { return Ok(Vec::new()) };
            let cols: Vec<String> = header.split(',').map(|c| c.trim().to_ascii_lowercase()).collect();
            for c in &cols {
                if !["duration", "origin", "reason", "scope", "type", "value"].contains(&c.as_str()) {
                    return Err(ImportError {
                        place: "line 1".into(),
                        field: c.clone(),
                        message: "unknown column (known: duration, origin, reason, scope, type, value)".into(),
                    });
                }
            }
            if !cols.iter().any(|c| c == "value") {
                return Err(ImportError {
                    place: "line 1".into(),
                    field: "value".into(),
                    message: "no value column".into(),
                });
            }
            lines
                .map(|(i, l)| {
                    let cells: Vec<&str> = l.split(',').map(str::trim).collect();
                    let get = |name: &str| {
                        cols.iter().position(|c| c == name).and_then(|p| cells.get(p)).map(|s| (*s).to_owned())
                    };
                    let e = Entry {
                        duration: get("duration"),
                        origin: get("origin"),
                        reason: get("reason"),
                        scope: get("scope"),
                        kind: get("type"),
                        value: get("value").unwrap_or_default(),
                    };
                    decision(e, d, || format!("line {}", i + 1))
                })
                .collect()
        }
        ImportFormat::Json => {
            let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| ImportError {
                place: format!("line {}", e.line()),
                field: "json".into(),
                message: e.to_string(),
            })?;
            entries.into_iter().enumerate().map(|(i, e)| decision(e, d, || format!("entry {}", i + 1))).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Defaults {
        Defaults { duration: Duration::from_secs(3600), kind: "ban".into(), reason: "import".into() }
    }

    #[test]
    fn three_formats() {
        let v = parse("# list\n192.0.2.1\n\n198.51.100.0/24 # a range\n", ImportFormat::Values, &d()).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[1].scope.as_str(), v[1].duration_secs, v[1].origin.as_str()), ("Range", 3600, ORIGIN));
        let c =
            parse("duration,scope,value\n24h,ip,192.0.2.1\n,range,2001:db8::/32\n", ImportFormat::Csv, &d()).unwrap();
        assert_eq!((c[0].duration_secs, c[1].scope.as_str()), (86400, "Range"));
        let j = parse(
            r#"[{"duration":"4h","origin":"my-list","reason":"r","scope":"ip","type":"ban","value":"192.0.2.9"}]"#,
            ImportFormat::Json,
            &d(),
        )
        .unwrap();
        assert_eq!((j[0].origin.as_str(), j[0].scenario.as_str(), j[0].duration_secs), ("my-list", "r", 14400));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = parse("192.0.2.1\nnot-an-ip\n", ImportFormat::Values, &d()).unwrap_err();
        assert_eq!((e.place.as_str(), e.field.as_str()), ("line 2", "value"));
        let e = parse("duration,value\nforever,192.0.2.1\n", ImportFormat::Csv, &d()).unwrap_err();
        assert_eq!((e.place.as_str(), e.field.as_str()), ("line 2", "duration"));
        let e = parse("when,value\n1h,192.0.2.1\n", ImportFormat::Csv, &d()).unwrap_err();
        assert_eq!(e.field, "when");
        let e = parse(r#"[{"value":"192.0.2.1"},{"value":"192.0.2.2","colour":"red"}]"#, ImportFormat::Json, &d())
            .unwrap_err();
        assert_eq!(e.field, "json");
        let e = parse(r#"[{"value":"192.0.2.1","scope":"country"}]"#, ImportFormat::Json, &d()).unwrap_err();
        assert_eq!((e.place.as_str(), e.field.as_str()), ("entry 1", "scope"));
    }

    #[test]
    fn formats_are_guessed() {
        assert_eq!(guess("x.json", ""), ImportFormat::Json);
        assert_eq!(guess("-", "duration,value\n"), ImportFormat::Csv);
        assert_eq!(guess("list.txt", "192.0.2.1\n"), ImportFormat::Values);
    }
}
