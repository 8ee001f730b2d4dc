//! `crowd hubtest run`: runs one CrowdSec hub test folder through crowd's engine and writes the
//! dumps `../shared/tools/hubtest-score` evaluates the folder's asserts against.
use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, Result};
use chrono::Datelike;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    config::hub::Hub,
    engine::{
        event::{Event, Line},
        parser::{Ctx, Dump},
        scenario::{Alert, Buckets},
    },
};

/// A test folder's `config.yaml`.
#[derive(Debug, Default, Deserialize)]
struct TestConfig {
    #[serde(default)]
    parsers: Vec<String>,
    #[serde(default)]
    scenarios: Vec<String>,
    #[serde(default)]
    postoverflows: Vec<String>,
    #[serde(default)]
    log_file: String,
    #[serde(default)]
    log_type: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Statics run on every line before the first stage (as CrowdSec's hubtest, a parser
    /// `overrides` first in `s00-raw`).
    #[serde(default)]
    override_statics: Vec<serde_yaml::Value>,
}

fn event_json(e: &Event) -> Value {
    json!({
        "Parsed": e.parsed,
        "Meta": e.meta,
        "Enriched": e.enriched,
        "Unmarshaled": e.unmarshaled,
        "Whitelisted": e.whitelisted,
        "WhitelistReason": e.whitelist_reason,
    })
}

/// Runs the test in `test_dir` with parsers from `hub`, writing the dumps into `out`.
///
/// # Errors
/// Unreadable files or configuration that does not load (with file, line and field).
pub fn run(hub: &Path, out: &Path, test_dir: &Path) -> Result<()> {
    let cfg_path = test_dir.join("config.yaml");
    let text = std::fs::read_to_string(&cfg_path).with_context(|| format!("reading `{}`", cfg_path.display()))?;
    let cfg: TestConfig = serde_yaml::from_str(&text).with_context(|| format!("parsing `{}`", cfg_path.display()))?;
    // A CrowdSec configuration directory (`/etc/crowdsec`) names its hub in `config.yaml`.
    let hub = match crate::config::crowdsec::CrowdsecConfig::detect(hub)? {
        Some(c) => c.full_hub(),
        None => Hub::new(hub),
    };
    // The overrides as CrowdSec's hubtest writes them: `s00-raw/00_overrides.yaml`.
    let overrides = tempfile::tempdir().context("a temporary folder for the overrides")?;
    let mut parsers = cfg.parsers.clone();
    if !cfg.override_statics.is_empty() {
        let dir = overrides.path().join("parsers").join("s00-raw");
        std::fs::create_dir_all(&dir)?;
        let node =
            serde_yaml::to_string(&json!({"name": "overrides", "filter": "1==1", "statics": cfg.override_statics}))?;
        let file = dir.join("00_overrides.yaml");
        std::fs::write(&file, node)?;
        parsers.push(file.display().to_string());
    }
    let (pipeline, env) = hub.pipeline(&parsers)?;
    let log = test_dir.join(&cfg.log_file);
    let bytes = std::fs::read(&log).with_context(|| format!("reading `{}`", log.display()))?;
    let ctx = Ctx { env: &env, year: chrono::Utc::now().year() };
    let mut labels = cfg.labels.clone();
    labels.insert("type".into(), cfg.log_type.clone());
    let labels = std::sync::Arc::new(labels);
    let src: std::sync::Arc<str> = cfg.log_file.as_str().into();
    let scenarios = hub.scenarios(&cfg.scenarios, &env)?;
    let mut buckets = Buckets::new(scenarios).keeping_queues().replaying();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut dump = Dump::default();
    let now = crate::clock::unix_now_f64();
    for raw in String::from_utf8_lossy(&bytes).lines() {
        if raw.is_empty() {
            continue;
        }
        let line = Line { raw: raw.to_owned(), src: src.clone(), module: "file", labels: labels.clone() };
        // Read now: a stamp that does not parse dates the event now, as CrowdSec's.
        if let Some(evt) = pipeline.process(Event::new(line, now), &ctx, Some(&mut dump))
            && !evt.whitelisted
        {
            alerts.extend(buckets.pour(evt, &env));
        }
    }
    alerts.extend(buckets.flush(&env));
    // The test's postoverflows, on every overflow (whitelisted ones are not dumped).
    let post = hub.pipeline_in(&cfg.postoverflows, &env)?;
    let alerts = crate::detect::postoverflow(&post, alerts, &ctx, &mut 0);
    // CrowdSec's hub tests list overflows sorted by scenario and sources, descending, by Go's
    // sort.Sort: overflows of one scenario and source end in the order Go leaves them.
    let key = |a: &Alert| format!("{}{}", a.scenario, if a.ip.is_empty() { &a.value } else { &a.ip });
    let mut keyed: Vec<(String, Alert)> = alerts.into_iter().map(|a| (key(&a), a)).collect();
    crate::gosort::sort_by(&mut keyed, |x, y| x.0 > y.0);
    let alerts: Vec<Alert> = keyed.into_iter().map(|(_, a)| a).collect();
    let mut parsers = serde_json::Map::new();
    for (stage, by_parser) in &dump.stages {
        let mut m = serde_json::Map::new();
        for (name, entries) in by_parser {
            m.insert(
                name.clone(),
                entries.iter().map(|d| json!({"Success": d.success, "Evt": event_json(&d.event)})).collect(),
            );
        }
        parsers.insert(stage.clone(), Value::Object(m));
    }
    parsers.insert("success".into(), json!({"": []}));
    std::fs::create_dir_all(out).with_context(|| format!("creating `{}`", out.display()))?;
    std::fs::write(out.join("parser-dump.json"), serde_json::to_vec_pretty(&parsers)?)?;
    let overflows: Vec<Value> = alerts
        .iter()
        .map(|a| {
            // Keyed by the address when there is one (a postoverflow may have made the source
            // its range), as CrowdSec's `Sources`.
            let ip = a.ip.clone();
            let range = if ip.is_empty() && a.scope == "Range" { a.value.clone() } else { String::new() };
            let key = if ip.is_empty() { a.value.clone() } else { ip.clone() };
            json!({"Overflow": {
                "Alert": {
                    "Scenario": a.scenario,
                    "EventsCount": a.events_count,
                    "Remediation": a.remediation,
                    "Events": a.events.iter().map(|e| json!({"Meta": e.meta})).collect::<Vec<_>>(),
                },
                "Sources": {key: {"IP": ip, "Range": range, "Scope": a.scope, "Value": a.value}},
            }})
        })
        .collect();
    std::fs::write(out.join("bucket-dump.json"), serde_json::to_vec_pretty(&overflows)?)?;
    Ok(())
}
