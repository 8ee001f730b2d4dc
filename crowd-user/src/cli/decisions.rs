//! `crowd decisions list|add|delete`: decisions in the store, applied to the kernel maps at once
//! when they are pinned (the daemon reconciles them anyway).
use crate::clock::unix_now as now;
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::{Format, output};
use crate::{
    addr::Target,
    clock::BootClock,
    enforce::{EnforceError, Settings, maps::BanMaps},
    reconcile::ban_for,
    store::{Location, NewDecision},
};

/// `crowd decisions` subcommands.
#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// Active decisions.
    List {
        /// Only this origin (`crowdsec`, `cscli`, `CAPI` for the community list, `lists` for
        /// organisation and blocklist links), case-insensitive.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Add a decision (ban).
    Add {
        /// An address or range.
        target: String,
        /// How long (`4h`, `30m`, `2d`).
        #[arg(long, default_value = "4h")]
        duration: String,
        /// Why.
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// Import decisions from a list, CrowdSec's CSV or CrowdSec's JSON (all or nothing).
    Import {
        /// The file (`-`: standard input).
        #[arg(short, long)]
        input: std::path::PathBuf,
        /// The format (default: from the name or the content).
        #[arg(long, value_enum)]
        format: Option<super::import::ImportFormat>,
        /// Duration for entries without one.
        #[arg(long, default_value = "4h")]
        duration: String,
        /// Type for entries without one.
        #[arg(long = "type", default_value = "ban")]
        kind: String,
        /// Reason (scenario) for entries without one.
        #[arg(long, default_value = "manual import")]
        reason: String,
    },
    /// Delete decisions by target, by id, or all.
    Delete {
        /// The address or range, as decided.
        target: Option<String>,
        /// A decision id.
        #[arg(long)]
        id: Option<i64>,
        /// Every active decision.
        #[arg(long)]
        all: bool,
    },
}

/// The maps, if crowd's maps are pinned (a CLI change applies at once); `None` otherwise.
fn maps(settings: &Settings) -> Option<BanMaps> {
    match BanMaps::open(settings) {
        Ok(m) => Some(m),
        Err(EnforceError::NotInitialised(_)) => None,
        Err(e) => {
            eprintln!("warning: the kernel maps were not updated: {e}");
            None
        }
    }
}

/// Runs a `crowd decisions` subcommand.
///
/// # Errors
/// Bad input (named), store or map errors.
pub fn dispatch(settings: &Settings, loc: &Location, cmd: &DecisionsCommand, fmt: Format) -> Result<()> {
    let mut store = crate::rules::open_store(loc)?;
    let t = now();
    match cmd {
        DecisionsCommand::List { origin } => {
            let mut rows = store.active(t)?;
            if let Some(o) = origin {
                rows.retain(|r| r.origin.eq_ignore_ascii_case(o));
            }
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["ID", "SCOPE", "VALUE", "TYPE", "ORIGIN", "SCENARIO", "EXPIRES IN"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.scope.clone(),
                                r.value.clone(),
                                r.kind.clone(),
                                r.origin.clone(),
                                r.scenario.clone(),
                                crate::clock::go_duration(std::time::Duration::from_secs(
                                    u64::try_from(r.until - t).unwrap_or(0),
                                )),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        DecisionsCommand::Add { target, duration, reason } => {
            let p = Target::parse(target)?;
            for n in &p.notes {
                eprintln!("note: {n}");
            }
            let d = super::map::parse_ban_duration(duration)?.context("--duration: a decision needs a duration")?;
            let decision = NewDecision {
                origin: "cscli".into(),
                scenario: reason.clone(),
                scope: if matches!(p.target, Target::Ip(_)) { "Ip".into() } else { "Range".into() },
                value: p.target.to_string(),
                kind: "ban".into(),
                duration_secs: d.as_secs(),
                simulated: false,
                reason: reason.clone(),
                uuid: String::new(),
            };
            let Some(&id) = store.record(None, std::slice::from_ref(&decision), t)?.first() else {
                anyhow::bail!("{} is allowlisted (crowd allowlist list): not banned", decision.value);
            };
            if let Some(mut m) = maps(settings) {
                let row = store.get(id)?.context("decision just recorded")?;
                m.insert_ban(p.target, ban_for(&row, t, &BootClock::now()))?;
            }
            match fmt {
                Format::Json => {
                    output::json(&json!({"id": id, "value": decision.value, "duration_secs": decision.duration_secs}))
                }
                Format::Table => {
                    println!("decision {id}: ban {} for {}", decision.value, humantime::format_duration(d))
                }
            }
        }
        DecisionsCommand::Import { input, format, duration, kind, reason } => {
            let started = std::time::Instant::now();
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(input).with_context(|| format!("reading `{}`", input.display()))?
            };
            let name = input.to_string_lossy();
            let fmt_in = format.unwrap_or_else(|| super::import::guess(&name, &text));
            let duration =
                super::map::parse_ban_duration(duration)?.context("--duration: decisions need a duration")?;
            let defaults = super::import::Defaults { duration, kind: kind.clone(), reason: reason.clone() };
            let mut all = super::import::parse(&text, fmt_in, &defaults).with_context(|| format!("`{name}`"))?;
            // Never our own addresses (the profiles' rule).
            let mut ours = crate::engine::profile::Profile::default();
            ours.protect(crate::addr::local_addresses());
            let before = all.len();
            all.retain(|d| d.value.parse::<Target>().map_or(true, |t| ours.protecting(&t).is_none()));
            let skipped = before - all.len();
            let ids = store.record(None, &all, t)?;
            let mut enforced = 0;
            if let Some(mut m) = maps(settings) {
                let clock = BootClock::now();
                let entries: Vec<(Target, crowd_common::Ban)> = all
                    .iter()
                    .zip(&ids)
                    .filter(|(d, _)| crate::engine::profile::enforced_in_kernel(&d.kind, &d.scope, d.simulated))
                    .filter_map(|(d, id)| {
                        let t: Target = d.value.parse().ok()?;
                        let expiry = clock.expiry_after(Some(std::time::Duration::from_secs(d.duration_secs)));
                        let ban = crowd_common::Ban::new(
                            expiry,
                            u64::try_from(*id).ok()?,
                            crate::reconcile::origin(&d.origin),
                        );
                        Some((t, ban))
                    })
                    .collect();
                enforced = m.insert_many(&entries)?;
            }
            let secs = started.elapsed().as_secs_f64();
            match fmt {
                Format::Json => output::json(
                    &json!({"imported": ids.len(), "skipped_own_addresses": skipped, "enforced": enforced, "seconds": secs}),
                ),
                Format::Table => {
                    println!("imported {} decision(s) in {secs:.2} s", ids.len());
                    if skipped > 0 {
                        println!("skipped {skipped} entr(y/ies) covering this host's own addresses");
                    }
                }
            }
        }
        DecisionsCommand::Delete { target, id, all } => {
            anyhow::ensure!(target.is_some() || id.is_some() || *all, "name a target, --id N, or --all");
            let value = target.as_deref().map(|s| Target::parse(s).map(|p| p.target.to_string())).transpose()?;
            let gone = store.delete(value.as_deref(), *id, t)?;
            if let Some(mut m) = maps(settings) {
                for r in &gone {
                    if let Ok(tg) = r.value.parse::<Target>() {
                        let _ = m.remove_ban(tg)?;
                    }
                }
            }
            match fmt {
                Format::Json => output::json(&json!({"deleted": gone.iter().map(|r| r.id).collect::<Vec<_>>()})),
                Format::Table => println!("deleted {} decision(s)", gone.len()),
            }
        }
    }
    Ok(())
}
