//! `crowd replay` and `crowd explain`: run log files (or one line) through the whole detection
//! pipeline with the logs' own timestamps as the clock, and print what it decided.
use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use serde_json::json;

use super::{Format, output};
use crate::{
    config::crowdsec::ConfigDir,
    engine::{
        event::{Labels, Line, type_label},
        profile::Profile,
    },
};

fn line(raw: &str, src: &Arc<str>, labels: &Labels) -> Line {
    Line { raw: raw.to_owned(), src: src.clone(), module: "file", labels: labels.clone() }
}

/// `crowd replay --type TYPE FILE...`.
///
/// # Errors
/// Unreadable files or bad configuration.
pub fn replay(
    kind: &str,
    files: &[PathBuf],
    config_dir: Option<&PathBuf>,
    profiles: Option<&PathBuf>,
    tuning: crate::rules::Tuning,
    fmt: Format,
) -> Result<()> {
    let mut prof = crate::rules::profile(config_dir, profiles)?;
    if let Some(sim) = config_dir.map(|d| ConfigDir::open(d)).transpose()?.and_then(|c| c.simulation()) {
        crate::rules::load_simulation_file(&sim)?.apply_to(&mut prof, false);
    }
    let mut d = crate::rules::detector(config_dir, prof)?.replaying();
    tuning.apply(&mut d);
    let started = std::time::Instant::now();
    let mut decisions = Vec::new();
    let mut alerts = 0usize;
    let labels = type_label(kind);
    for f in files {
        // Streamed: memory does not grow with the file. `-` is standard input.
        let mut reader: Box<dyn std::io::BufRead> = if f.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(f).with_context(|| format!("reading `{}`", f.display()))?;
            Box::new(std::io::BufReader::with_capacity(1 << 20, file))
        };
        let src: Arc<str> = f.display().to_string().into();
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut buf)
                .with_context(|| format!("reading `{}`", f.display()))?;
            if n == 0 {
                break;
            }
            // from_utf8 validates ASCII a word at a time; the lossy path only for bad bytes.
            let raw =
                std::str::from_utf8(&buf).map_or_else(|_| String::from_utf8_lossy(&buf), std::borrow::Cow::Borrowed);
            let raw = raw.trim_end_matches(['\n', '\r']);
            if raw.is_empty() {
                continue;
            }
            let out = d.feed(line(raw, &src, &labels), 0.0);
            alerts += out.raised.len();
            decisions.extend(out.decisions());
        }
    }
    let out = d.finish();
    alerts += out.raised.len();
    decisions.extend(out.decisions());
    let secs = started.elapsed().as_secs_f64();
    if d.counts.lines > 0 && d.counts.parsed == 0 {
        eprintln!(
            "warning: none of the {} lines was parsed as `{kind}`: no parser of {} takes them (is --type right?)",
            d.counts.lines,
            config_dir.map_or_else(|| "crowd's embedded rules".to_owned(), |p| format!("`{}`", p.display()))
        );
    }
    match fmt {
        Format::Json => {
            let st = d.state();
            let evicted: serde_json::Map<String, serde_json::Value> =
                st.evictions().map(|(s, n)| (s.to_owned(), n.into())).collect();
            output::json(&json!({"decisions": decisions, "counts": d.counts, "seconds": secs,
                "peak_rss_kib": peak_rss_kib(),
                "state": {"bytes": st.bytes(), "peak_bytes": st.peak_bytes(), "keys": st.keys(), "buckets": st.len(),
                    "evicted": evicted}}))
        }
        Format::Table => {
            output::table(
                &["SCENARIO", "SCOPE", "VALUE", "DECISION", "DURATION"],
                &decisions
                    .iter()
                    .map(|x| {
                        vec![
                            x.scenario.clone(),
                            x.scope.clone(),
                            x.value.clone(),
                            x.kind.clone(),
                            format!("{}s", x.duration_secs),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            let c = d.counts;
            println!(
                "{} lines ({} parsed, {} unparsed, {} whitelisted) in {secs:.2}s: {alerts} alerts, {} decisions",
                c.lines, c.parsed, c.unparsed, c.whitelisted, c.decisions
            );
        }
    }
    Ok(())
}

/// `crowd explain --type TYPE LINE`.
///
/// # Errors
/// Bad configuration.
pub fn explain(kind: &str, text: &str, config_dir: Option<&PathBuf>, fmt: Format) -> Result<()> {
    let d = crate::rules::detector(config_dir, Profile::default())?;
    let v = explain_value(&d, kind, text);
    let stages = v["stages"].as_array().cloned().unwrap_or_default();
    match fmt {
        Format::Json => output::json(&v),
        Format::Table => {
            for s in &stages {
                println!(
                    "{:<11} {:<28} {}",
                    s["stage"].as_str().unwrap_or(""),
                    s["parser"].as_str().unwrap_or(""),
                    if s["success"] == true { "ok" } else { "-" }
                );
            }
            if v["parsed"] != true {
                println!("not parsed");
            } else {
                for (k, val) in v["meta"].as_object().into_iter().flatten() {
                    println!("meta.{k} = {}", val.as_str().unwrap_or(""));
                }
                let feeds: Vec<&str> =
                    v["scenarios"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect();
                println!("feeds: {}", if feeds.is_empty() { "no scenario".to_owned() } else { feeds.join(", ") });
            }
        }
    }
    Ok(())
}

/// What `crowd explain` shows for a line of type `kind` (labels' `type`), as JSON: whether it
/// parsed, each parser's success per stage, the meta and fields, the scenarios it feeds.
#[must_use]
pub fn explain_value(d: &crate::detect::Detector, kind: &str, text: &str) -> serde_json::Value {
    let (evt, dump, feeds) = d.explain(line(text, &"explain".into(), &type_label(kind)), 0.0);
    let stages: Vec<_> = dump
        .stages
        .iter()
        .flat_map(|(stage, ps)| ps.iter().map(move |(name, e)| json!({"stage": stage, "parser": name, "success": e.last().is_some_and(|x| x.success)})))
        .collect();
    json!({
        "parsed": evt.is_some(),
        "stages": stages,
        "meta": evt.as_ref().map(|e| e.meta.clone()),
        "fields": evt.as_ref().map(|e| e.parsed.clone()),
        "scenarios": feeds,
    })
}

/// This process's peak resident memory (`VmHWM`: the memory of this program only; a spawned
/// process's `ru_maxrss` also counts its parent's pages from before `exec`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `crowd scenarios list`: the scenarios crowd would run (from `--config` or the embedded
/// defaults), with their bucket kind and whether they are simulated.
///
/// # Errors
/// Configuration that does not load; unreadable simulation settings.
pub fn list_scenarios(config_dir: Option<&PathBuf>, state_dir: &std::path::Path, fmt: super::Format) -> Result<()> {
    use crate::engine::scenario::{BucketKind, Scope};
    let scenarios = crate::rules::load(config_dir, true)?.2;
    let sim = crate::rules::simulation(config_dir, state_dir)?;
    let rows: Vec<serde_json::Value> = scenarios
        .iter()
        .map(|s| {
            let kind = match s.kind {
                BucketKind::Trigger => "trigger".to_owned(),
                BucketKind::Leaky { capacity, leak } => format!("leaky (capacity {capacity}, leak {leak}s)"),
                BucketKind::Counter { duration } => format!("counter ({duration}s)"),
            };
            let scope = match &s.scope {
                Scope::Ip => "Ip".to_owned(),
                Scope::Expr { name, .. } => name.clone(),
            };
            serde_json::json!({"name": s.name, "type": kind, "scope": scope, "remediation": s.remediation,
                               "simulated": sim.simulated(&s.name)})
        })
        .collect();
    match fmt {
        super::Format::Json => super::output::json(&rows),
        super::Format::Table => super::output::table(
            &["NAME", "TYPE", "SCOPE", "REMEDIATION", "SIMULATED"],
            &rows
                .iter()
                .map(|r| {
                    ["name", "type", "scope", "remediation", "simulated"]
                        .iter()
                        .map(|k| match &r[*k] {
                            serde_json::Value::String(s) => s.clone(),
                            v => v.to_string(),
                        })
                        .collect()
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}
