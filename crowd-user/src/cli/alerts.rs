//! `crowd alerts list|inspect|delete`: the alerts in the store (this host's detections and those
//! agents pushed through the Local API), with their decisions.
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Format, output};
use crate::{
    clock::rfc3339 as when,
    store::{AlertFilter, Location},
};

/// `crowd alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first.
    List {
        /// Only this source value (an address or range).
        #[arg(long)]
        value: Option<String>,
        /// Only this scenario.
        #[arg(long)]
        scenario: Option<String>,
        /// Only alerts made in the last DURATION (`4h`).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One alert, whole, with its decisions.
    Inspect {
        /// Its id.
        id: i64,
    },
    /// Delete alerts (their active decisions end).
    Delete {
        /// One alert.
        #[arg(long)]
        id: Option<i64>,
        /// Every alert about this value.
        #[arg(long)]
        value: Option<String>,
        /// Every alert of this scenario.
        #[arg(long)]
        scenario: Option<String>,
        /// Every alert.
        #[arg(long)]
        all: bool,
    },
}

/// Runs a `crowd alerts` subcommand.
///
/// # Errors
/// Bad arguments, store errors, an unknown alert.
pub fn dispatch(loc: &Location, cmd: &AlertsCommand, fmt: Format) -> Result<()> {
    let mut s = crate::rules::open_store(loc)?;
    let now = crate::lapi::decisions::now();
    match cmd {
        AlertsCommand::List { value, scenario, since, limit } => {
            let since = since
                .as_deref()
                .map(|d| humantime::parse_duration(d).map(|d| now - i64::try_from(d.as_secs()).unwrap_or(0)))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let f = AlertFilter {
                value: value.clone(),
                scenario: scenario.clone(),
                since,
                limit: Some(*limit),
                ..AlertFilter::default()
            };
            let rows = s.alerts(&f, now)?;
            let mut out = Vec::new();
            for r in &rows {
                let ds = s.alert_decisions(r.id)?;
                let active = ds.iter().filter(|d| d.deleted_at.is_none() && d.until > now).count();
                out.push((r.clone(), ds.len(), active));
            }
            match fmt {
                Format::Json => output::json(
                    &out.iter()
                        .map(|(r, n, a)| json!({"id": r.id, "scenario": r.scenario, "scope": r.scope, "value": r.value,
                            "events_count": r.events_count, "created_at": when(r.created_at), "machine_id": r.machine_id,
                            "decisions": n, "active_decisions": a}))
                        .collect::<Vec<_>>(),
                ),
                Format::Table => output::table(
                    &["ID", "VALUE", "SCENARIO", "EVENTS", "DECISIONS", "MACHINE", "CREATED"],
                    &out.iter()
                        .map(|(r, n, a)| {
                            vec![
                                r.id.to_string(),
                                format!("{}:{}", r.scope, r.value),
                                r.scenario.clone(),
                                r.events_count.to_string(),
                                format!("{a} active / {n}"),
                                if r.machine_id.is_empty() { "(this host)".into() } else { r.machine_id.clone() },
                                when(r.created_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        AlertsCommand::Inspect { id } => {
            let Some(r) = s.alert(*id)? else { bail!("no alert {id}") };
            let ds = s.alert_decisions(r.id)?;
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
            let v = json!({"id": r.id, "scenario": r.scenario, "scope": r.scope, "value": r.value,
                "events_count": r.events_count, "created_at": when(r.created_at), "machine_id": r.machine_id,
                "decisions": ds, "alert": body});
            match fmt {
                Format::Json => output::json(&v),
                Format::Table => {
                    println!("alert {}: {} on {}:{}", r.id, r.scenario, r.scope, r.value);
                    println!("  events:   {}", r.events_count);
                    println!("  created:  {}", when(r.created_at));
                    println!("  machine:  {}", if r.machine_id.is_empty() { "(this host)" } else { &r.machine_id });
                    if let Some(m) = body.get("message").and_then(|m| m.as_str()) {
                        println!("  message:  {m}");
                    }
                    for d in &ds {
                        let state = if d.deleted_at.is_some() {
                            "deleted".to_owned()
                        } else if d.until <= now {
                            "expired".to_owned()
                        } else {
                            format!("{} left", crate::lapi::model::go_duration_signed(d.until - now))
                        };
                        println!("  decision {}: {} {} ({}, {state})", d.id, d.kind, d.value, d.origin);
                    }
                }
            }
        }
        AlertsCommand::Delete { id, value, scenario, all } => {
            if id.is_none() && value.is_none() && scenario.is_none() && !all {
                bail!("name --id N, --value V, --scenario S, or --all");
            }
            let f = AlertFilter { value: value.clone(), scenario: scenario.clone(), ..AlertFilter::default() };
            let n = s.delete_alerts(&f, *id, now)?;
            match fmt {
                Format::Json => output::json(&json!({"deleted": n})),
                Format::Table => println!("deleted {n} alert(s)"),
            }
        }
    }
    Ok(())
}
