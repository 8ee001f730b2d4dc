//! CrowdSec's own engine test cases (`../shared/crowdsec-hub/engine-tests`), run from there: parser
//! cases (events in, the fields each stage must leave) and leaky-bucket cases (events with their
//! own times in, the overflows expected). Every case must pass except those listed in
//! `UNSUPPORTED` with the reason; a case listed there that starts passing fails the test too, so
//! the list stays true.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use crowd::{
    config::load::{parsers_from_file, scenarios_from_text},
    engine::{
        event::{Event, Fields, Line},
        expr::{DataFiles, Env},
        grok::Patterns,
        parser::{Ctx, Pipeline},
        scenario::{Alert, Buckets},
    },
};
use serde_json::Value;

const UNSUPPORTED: &[(&str, &str)] =
    &[("parser/reverse-dns-enrich", "needs a DNS resolver (reverse DNS is off by default; tests have no network)")];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/crowdsec-hub/engine-tests")
}

fn read_value(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    } else {
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

fn string_map(v: Option<&Value>) -> Fields {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default()
}

/// An input event as the cases write them.
fn event_from(v: &Value) -> Event {
    let line = v.get("Line");
    let mut e = Event {
        line: Line {
            raw: line.and_then(|l| l.get("Raw")).and_then(Value::as_str).unwrap_or_default().to_owned(),
            src: "".into(),
            module: "file",
            labels: std::sync::Arc::new(
                string_map(line.and_then(|l| l.get("Labels")))
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
        },
        meta: string_map(v.get("Meta")),
        parsed: string_map(v.get("Parsed")),
        enriched: string_map(v.get("Enriched")),
        str_time: v.get("StrTime").and_then(Value::as_str).unwrap_or_default().into(),
        ..Event::default()
    };
    if let Some(t) = v.get("MarshaledTime").and_then(Value::as_str) {
        let t = chrono::DateTime::parse_from_rfc3339(t).expect("MarshaledTime");
        e.time = t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9;
    }
    e
}

/// The `{{.TestDirectory}}` files a case lists, with their stage for parsers.
fn listed(dir: &Path, list: &str) -> Vec<(PathBuf, String)> {
    // A Go template: substituted before the YAML is read.
    let text = std::fs::read_to_string(dir.join(list)).expect("list");
    let text = text.replace("{{.TestDirectory}}", &dir.display().to_string());
    let v: Value = serde_yaml::from_str(&text).expect("a YAML list");
    v.as_array()
        .expect("a list")
        .iter()
        .map(|f| {
            let name = f["filename"].as_str().expect("filename");
            (PathBuf::from(name), f.get("stage").and_then(Value::as_str).unwrap_or("s00-raw").to_owned())
        })
        .collect()
}

/// Data files named by `dest_file` in the case's YAML, read relative to the cases' folder.
fn data_for(files: &[(PathBuf, String)], base: &Path) -> DataFiles {
    let mut d = DataFiles::default();
    for (f, _) in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for l in text.lines().filter_map(|l| l.trim().strip_prefix("dest_file:")) {
            let name = l.trim().trim_matches(['"', '\'']).to_owned();
            let Ok(content) = std::fs::read_to_string(base.join(&name)) else { continue };
            let lines: Vec<String> =
                content.lines().map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect();
            d.lines.insert(name, lines);
        }
    }
    d
}

fn same(expected: &Value, actual: Option<&crowd::engine::event::Str>) -> bool {
    let want = match expected {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    actual.map_or("", |a| a.as_str()) == want
}

fn check_map(what: &str, expected: Option<&Value>, actual: &Fields) -> Vec<String> {
    let Some(m) = expected.and_then(Value::as_object) else { return Vec::new() };
    m.iter()
        .filter(|(k, v)| !same(v, actual.get(k)))
        .map(|(k, v)| format!("{what}.{k}: want {v}, got {:?}", actual.get(k)))
        .collect()
}

fn run_parser_case(dir: &Path) -> Result<(), String> {
    let files = listed(dir, "parsers.yaml");
    let mut data = data_for(&files, &root().join("parser"));
    // The cases' MaxMind test databases sit beside them.
    data.geoip = Arc::new(crowd::engine::geoip::GeoIp::open_dir(&root().join("parser"))?);
    let env = Env::new(Arc::new(data));
    let mut patterns = Patterns::with_base();
    let pat_dir = root().join("../patterns");
    for f in std::fs::read_dir(&pat_dir).map_err(|e| e.to_string())?.flatten() {
        patterns.add_text(&std::fs::read_to_string(f.path()).map_err(|e| e.to_string())?);
    }
    let mut parsers = Vec::new();
    for (f, stage) in &files {
        parsers.extend(parsers_from_file(f, stage, &mut patterns, &env).map_err(|e| e.to_string())?);
    }
    let pipeline = Pipeline::new(parsers);
    let ctx = Ctx { env: &env, year: 2024 };
    let test = read_value(&dir.join("test.yaml"));
    let lines = test["lines"].as_array().cloned().unwrap_or_default();
    let results = test["results"].as_array().cloned().unwrap_or_default();
    let mut errors = Vec::new();
    for (n, (input, want)) in lines.iter().zip(results.iter().chain(std::iter::repeat(&Value::Null))).enumerate() {
        let out = pipeline.process(event_from(input), &ctx, None);
        if want.is_null() {
            if out.is_some() {
                errors.push(format!("event {n}: parsed, no result expected"));
            }
            continue;
        }
        let process = want.get("Process").and_then(Value::as_bool).unwrap_or(true);
        let Some(evt) = out else {
            if process {
                errors.push(format!("event {n}: not parsed"));
            }
            continue;
        };
        if !process {
            errors.push(format!("event {n}: parsed, expected Process: false"));
            continue;
        }
        let mut e = check_map("Meta", want.get("Meta"), &evt.meta);
        e.extend(check_map("Parsed", want.get("Parsed"), &evt.parsed));
        e.extend(check_map("Enriched", want.get("Enriched"), &evt.enriched));
        if let Some(w) = want.get("Whitelisted").and_then(Value::as_bool)
            && w != evt.whitelisted
        {
            e.push(format!("Whitelisted: want {w}"));
        }
        if let Some(u) = want.get("Unmarshaled").and_then(Value::as_object) {
            for (k, v) in u {
                if evt.unmarshaled.get(k) != Some(v) {
                    e.push(format!("Unmarshaled.{k}: want {v}, got {:?}", evt.unmarshaled.get(k)));
                }
            }
        }
        errors.extend(e.into_iter().map(|m| format!("event {n}: {m}")));
    }
    if results.len() > lines.len() {
        errors.push(format!("{} results for {} lines", results.len(), lines.len()));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

fn alert_matches(want: &Value, got: &Alert) -> bool {
    let inner = &want["Alert"]["Alert"];
    if inner["scenario"].as_str().is_some_and(|s| s != got.scenario)
        || inner["events_count"].as_u64().is_some_and(|c| c != got.events_count as u64)
    {
        return false;
    }
    let sources = want["Alert"].get("sources").or_else(|| want["Alert"].get("Sources"));
    let Some(sources) = sources.and_then(Value::as_object) else { return true };
    let last = got.events.last();
    let enriched = |k: &str| last.and_then(|e| e.enriched.get(k)).cloned().unwrap_or_default();
    let source_ip = last.and_then(|e| e.meta.get("source_ip")).cloned().unwrap_or_default();
    sources.iter().all(|(key, s)| {
        key == &got.value
            && s["scope"].as_str().is_none_or(|x| x == got.scope)
            && s["value"].as_str().is_none_or(|x| x == got.value)
            && s["ip"].as_str().is_none_or(|x| x == got.ip || x == source_ip)
            && s["as_name"].as_str().is_none_or(|x| x == enriched("ASNOrg"))
            && s["as_number"].as_str().is_none_or(|x| x == enriched("ASNumber"))
            && s["cn"].as_str().is_none_or(|x| x == enriched("IsoCode"))
    })
}

fn run_bucket_case(dir: &Path) -> Result<(), String> {
    let files: Vec<(PathBuf, String)> = listed(dir, "scenarios.yaml");
    let env = Env::new(Arc::new(data_for(&files, &root().join("leakybucket"))));
    let mut scenarios = Vec::new();
    for (f, _) in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        scenarios.extend(scenarios_from_text(f, &text, &env).map_err(|e| e.to_string())?);
    }
    let mut buckets = Buckets::new(scenarios);
    let test = read_value(&dir.join("test.json"));
    let mut alerts = Vec::new();
    for l in test["lines"].as_array().cloned().unwrap_or_default() {
        alerts.extend(buckets.pour(event_from(&l), &env));
    }
    // CrowdSec's harness waits a few seconds (wall time) for overflows after the last event;
    // counters whose duration ends within that wait report, longer ones do not.
    let last = test["lines"].as_array().and_then(|l| l.last()).map_or(0.0, |l| event_from(l).time);
    alerts.extend(buckets.expire(last + 5.0, &env));
    // An empty result is CrowdSec's underflow (a bucket that leaked empty): no alert.
    let wanted: Vec<Value> = test["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["Alert"].as_object().is_some_and(|a| !a.is_empty()))
        .collect();
    let mut unmatched: Vec<&Alert> = alerts.iter().collect();
    let mut missing = Vec::new();
    for w in &wanted {
        match unmatched.iter().position(|a| alert_matches(w, a)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(w["Alert"]["Alert"]["scenario"].as_str().unwrap_or("?").to_owned()),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return Ok(());
    }
    let extra: Vec<String> = unmatched
        .iter()
        .map(|a| format!("{} {} {} ({} events)", a.scenario, a.scope, a.value, a.events_count))
        .collect();
    Err(format!("missing {missing:?}; unexpected {extra:?}"))
}

#[test]
fn crowdsec_engine_cases() {
    let root = root();
    if !root.exists() {
        panic!("{} is missing: the engine cases are read from ../shared", root.display());
    }
    let mut failed = Vec::new();
    let mut passed = 0;
    for (kind, run) in
        [("parser", run_parser_case as fn(&Path) -> Result<(), String>), ("leakybucket", run_bucket_case)]
    {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("test.yaml").exists() || p.join("test.json").exists())
            .collect();
        dirs.sort();
        for d in dirs {
            let name = format!("{kind}/{}", d.file_name().unwrap().to_string_lossy());
            let unsupported = UNSUPPORTED.iter().find(|(n, _)| *n == name);
            let result = std::panic::catch_unwind(|| run(&d)).unwrap_or_else(|_| Err("panicked".into()));
            match (result, unsupported) {
                (Ok(()), None) => passed += 1,
                (Err(e), Some((_, why))) => println!("skip {name}: {why} ({e})"),
                (Ok(()), Some(_)) => failed.push(format!("{name}: passes now; remove it from UNSUPPORTED")),
                (Err(e), None) => failed.push(format!("{name}: {e}")),
            }
        }
    }
    println!("engine cases: {passed} passed, {} unsupported, {} failed", UNSUPPORTED.len(), failed.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
