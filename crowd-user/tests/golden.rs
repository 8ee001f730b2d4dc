//! Golden tests of crowd's own parsers and scenarios: one folder per case under
//! `scenarios/tests/<case>/` with `type` (the log type), `input.log` and `expected.json` (the
//! decisions as `[{"scenario", "value"}]`). Adding a case adds a folder.
use std::{collections::BTreeMap, path::Path};

use crowd::{
    config,
    detect::Detector,
    engine::{event::Line, profile::Profile},
};

#[test]
fn every_golden_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tests");
    let mut cases: Vec<_> = std::fs::read_dir(&root).expect("scenarios/tests").flatten().map(|e| e.path()).collect();
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
