//! Golden tests of crowd's own parsers and scenarios:
//! - decisions: one folder per case under `scenarios/tests/<case>/` with `type` (the log type),
//!   `input.log` and `expected.json` (the decisions as `[{"scenario", "value"}]`);
//! - line variants: `scenarios/tests/variants/<service>.yaml`, each real line shape a service
//!   writes (and hostile ones) with the source address crowd must take from it and the scenarios
//!   it must feed (none for lines that are not failures).
//!
//! Adding a case adds a folder or an entry.
use std::{collections::BTreeMap, path::Path};

use crowd::{
    config,
    detect::Detector,
    engine::{event::Line, profile::Profile},
};

#[test]
fn every_golden_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tests");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("scenarios/tests")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let kind = std::fs::read_to_string(case.join("type")).expect("type").trim().to_owned();
        let input = std::fs::read_to_string(case.join("input.log")).expect("input.log");
        let expected: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(case.join("expected.json")).expect("expected.json")).expect("json");
        let (pipeline, env, scenarios) = config::defaults::load().expect("embedded configuration");
        let mut d = Detector::new(pipeline, env, scenarios, Profile::default(), 2026);
        let mut got = Vec::new();
        for raw in input.lines() {
            let line = Line {
                raw: raw.to_owned(),
                src: "input.log".into(),
                module: "file",
                labels: BTreeMap::from([("type".to_owned(), kind.clone())]).into(),
            };
            got.extend(d.feed(line, 0.0).decisions());
        }
        got.extend(d.finish().decisions());
        let mut got: Vec<(String, String)> = got.into_iter().map(|d| (d.scenario, d.value)).collect();
        let mut want: Vec<(String, String)> = expected
            .iter()
            .map(|v| (v["scenario"].as_str().unwrap_or("").to_owned(), v["value"].as_str().unwrap_or("").to_owned()))
            .collect();
        got.sort();
        want.sort();
        if got != want {
            failures.push(format!(
                "{}: got {got:?}, want {want:?}",
                case.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A file of line variants.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Variants {
    /// The log type of every line.
    r#type: String,
    cases: Vec<Variant>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    /// What the line is: the software, version and message.
    note: String,
    line: String,
    /// The source address crowd must extract (absent: the line must feed nothing).
    source_ip: Option<String>,
    /// The scenarios the line must feed, exactly.
    #[serde(default)]
    feeds: Vec<String>,
}

#[test]
fn every_line_variant_names_its_real_source_and_feeds_what_it_should() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tests/variants");
    let mut files: Vec<_> = std::fs::read_dir(&root).expect("variants").flatten().map(|e| e.path()).collect();
    files.sort();
    let (pipeline, env, scenarios) = config::defaults::load().expect("embedded configuration");
    let d = Detector::new(pipeline, env, scenarios, Profile::default(), 2026);
    let (mut failures, mut total) = (Vec::new(), 0);
    for f in &files {
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let v: Variants = serde_yaml::from_str(&std::fs::read_to_string(f).expect("read")).expect(&name);
        for c in &v.cases {
            total += 1;
            let line = Line {
                raw: c.line.clone(),
                src: "variants".into(),
                module: "file",
                labels: BTreeMap::from([("type".to_owned(), v.r#type.clone())]).into(),
            };
            let (evt, _, mut feeds) = d.explain(line, 0.0);
            let got_ip = evt.as_ref().and_then(|e| e.meta.get("source_ip")).map(ToString::to_string);
            let mut want = c.feeds.clone();
            feeds.sort();
            want.sort();
            let ip_ok = match &c.source_ip {
                Some(ip) => got_ip.as_deref() == Some(ip.as_str()),
                None => feeds.is_empty(),
            };
            if !ip_ok || feeds != want {
                failures.push(format!(
                    "{name}: {}\n  line: {}\n  source_ip: got {got_ip:?}, want {:?}\n  feeds: got {feeds:?}, want {want:?}",
                    c.note, c.line, c.source_ip
                ));
            }
        }
    }
    assert!(total >= 50, "{total} variants");
    assert!(failures.is_empty(), "{} of {total} variants wrong:\n{}", failures.len(), failures.join("\n"));
}
