//! `crowd replay` and `crowd explain`: run log files (or one line) through the whole detection
//! pipeline with the logs' own timestamps as the clock, and print what it decided.
use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use chrono::Datelike;
use serde_json::json;

use super::{Format, output};
use crate::{
    config::{self, crowdsec::ConfigDir},
    detect::Detector,
    engine::{
        event::{Labels, Line, type_label},
        profile::Profile,
    },
};

/// The profile: CrowdSec's defaults, or the profiles of `profiles` (a `profiles.yaml`), else of
/// `<config>/profiles.yaml` when that exists.
///
/// # Errors
/// An unreadable or invalid profiles file (nothing of it is used).
pub fn profile(config_dir: Option<&PathBuf>, profiles: Option<&PathBuf>) -> Result<Profile> {
    let from_config = match config_dir {
        Some(d) => ConfigDir::open(d)?.profiles(),
        None => None,
    };
    let path = profiles.cloned().or(from_config);
    let mut p = Profile::default();
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading `{}`", path.display()))?;
        p.rules = crate::engine::profile::load_rules(&path, &text)?;
    }
    Ok(p)
}

/// Builds a detector from `--config DIR` (a hub-layout folder) or the embedded defaults.
///
/// # Errors
/// Configuration that does not load, with file, line and field.
pub fn detector(config_dir: Option<&PathBuf>, profile: Profile) -> Result<Detector> {
    detector_with(config_dir, profile, false)
}

/// [`detector`]; with `skip_invalid`, files that do not load are left out (each named in a
/// warning) instead of refusing to start.
///
/// # Errors
/// Configuration that does not load (without `skip_invalid`), with file, line and field.
pub fn detector_with(config_dir: Option<&PathBuf>, profile: Profile, skip_invalid: bool) -> Result<Detector> {
    let (pipeline, env, scenarios) = load(config_dir, skip_invalid)?;
    let post = match config_dir {
        Some(dir) => {
            let (post, skipped) = ConfigDir::open(dir)?.hub.postoverflows(&env, skip_invalid)?;
            for err in &skipped {
                tracing::warn!(error = %err, "skipped: this postoverflow did not load");
            }
            post
        }
        None => crate::engine::parser::Pipeline::new(Vec::new()),
    };
    Ok(Detector::new(pipeline, env, scenarios, profile, chrono::Utc::now().year()).with_postoverflows(post))
}

/// Parsers, expression environment and scenarios of `--config DIR` (a hub-layout folder or an
/// installed CrowdSec's configuration directory), or the embedded defaults. A directory that
/// yields no parser or no scenario is an error that says what was found and where crowd looked.
///
/// # Errors
/// Configuration that does not load (without `skip_invalid`), with file, line and field; an
/// empty configuration.
pub fn load(
    config_dir: Option<&PathBuf>,
    skip_invalid: bool,
) -> Result<(crate::engine::parser::Pipeline, crate::engine::expr::Env, Vec<crate::engine::scenario::Scenario>)> {
    let Some(dir) = config_dir else { return Ok(config::defaults::load()?) };
    let c = ConfigDir::open(dir)?;
    let (p, e, s, skipped) = c
        .hub
        .load_all_with(skip_invalid)
        .with_context(|| format!("loading `{}` (--skip-invalid leaves bad files out)", dir.display()))?;
    for err in &skipped {
        tracing::warn!(error = %err, "skipped: this file did not load");
    }
    if p.is_empty() || s.is_empty() {
        anyhow::bail!(
            "`{}`: {} parsers and {} scenarios loaded ({} files skipped): nothing to detect with. crowd looked in the {}",
            dir.display(),
            p.len(),
            s.len(),
            skipped.len(),
            c.describe()
        );
    }
    tracing::info!(config = %dir.display(), parsers = p.len(), scenarios = s.len(), "configuration loaded");
    Ok((p, e, s))
}

/// The simulation settings of `--config DIR` when it is a CrowdSec configuration with a
/// `simulation.yaml`, else those of the state directory.
///
/// # Errors
/// A simulation file that is not CrowdSec's shape.
pub fn simulation(config_dir: Option<&PathBuf>, state_dir: &std::path::Path) -> Result<super::simulation::Simulation> {
    match config_dir.map(|d| ConfigDir::open(d)).transpose()?.and_then(|c| c.simulation()) {
        Some(p) => super::simulation::load_file(&p),
        None => super::simulation::load(state_dir),
    }
}

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
    fmt: Format,
) -> Result<()> {
    let mut prof = profile(config_dir, profiles)?;
    if let Some(sim) = config_dir.map(|d| ConfigDir::open(d)).transpose()?.and_then(|c| c.simulation()) {
        let sim = super::simulation::load_file(&sim)?;
        prof.simulation = sim.simulation;
        prof.simulation_exclusions = sim.exclusions;
    }
    let mut d = detector(config_dir, prof)?;
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
        Format::Json => output::json(
            &json!({"decisions": decisions, "counts": d.counts, "seconds": secs, "peak_rss_kib": peak_rss_kib()}),
        ),
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
    let d = detector(config_dir, Profile::default())?;
    let (evt, dump, feeds) = d.explain(line(text, &"explain".into(), &type_label(kind)), 0.0);
    let stages: Vec<_> = dump
        .stages
        .iter()
        .flat_map(|(stage, ps)| ps.iter().map(move |(name, e)| json!({"stage": stage, "parser": name, "success": e.last().is_some_and(|x| x.success)})))
        .collect();
    let v = json!({
        "parsed": evt.is_some(),
        "stages": stages,
        "meta": evt.as_ref().map(|e| e.meta.clone()),
        "fields": evt.as_ref().map(|e| e.parsed.clone()),
        "scenarios": feeds,
    });
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
            match &evt {
                None => println!("not parsed"),
                Some(e) => {
                    for (k, val) in &e.meta {
                        println!("meta.{k} = {val}");
                    }
                    println!("feeds: {}", if feeds.is_empty() { "no scenario".to_owned() } else { feeds.join(", ") });
                }
            }
        }
    }
    Ok(())
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
    use crate::engine::scenario::{Kind, Scope};
    let scenarios = load(config_dir, true)?.2;
    let sim = simulation(config_dir, state_dir)?;
    let rows: Vec<serde_json::Value> = scenarios
        .iter()
        .map(|s| {
            let kind = match s.kind {
                Kind::Trigger => "trigger".to_owned(),
                Kind::Leaky { capacity, leak } => format!("leaky (capacity {capacity}, leak {leak}s)"),
                Kind::Counter { duration } => format!("counter ({duration}s)"),
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
