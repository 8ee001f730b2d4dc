//! `crowd allowlist add|del|list`: the store's allowlist, which every decision is checked
//! against when it is recorded (whoever makes it: detection, agents, the CLI, the console, the
//! community). Adding an entry ends the active decisions it overlaps.
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Format, output};
use crate::{addr::Target, store::Location};

/// `crowd allowlist` subcommands.
#[derive(Debug, Subcommand)]
pub enum AllowlistCommand {
    /// Never ban an address or range (ends the decisions on it now).
    Add {
        /// The address or range.
        target: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove an entry.
    Del {
        /// The address or range, as listed.
        target: String,
    },
    /// List the entries.
    List,
}

/// Runs a `crowd allowlist` command on the store at `loc`.
///
/// # Errors
/// Bad targets; store errors.
pub fn dispatch(loc: &Location, cmd: &AllowlistCommand, fmt: Format) -> Result<()> {
    let mut s = crate::rules::open_store(loc)?;
    let now = crate::lapi::decisions::now();
    match cmd {
        AllowlistCommand::Add { target, reason } => {
            let p = Target::parse(target)?;
            for n in &p.notes {
                eprintln!("note: {n}");
            }
            let ended = s.allow(p.target, reason, "cli", now)?;
            match fmt {
                Format::Json => output::json(&json!({"target": p.target.to_string(), "ended": ended})),
                Format::Table => {
                    println!("{} allowlisted; {} active decision(s) on it ended", p.target, ended.len());
                }
            }
        }
        AllowlistCommand::Del { target } => {
            let t = Target::parse(target)?.target;
            if !s.disallow(t)? {
                bail!("{t} is not in the allowlist");
            }
            match fmt {
                Format::Json => output::json(&json!({"target": t.to_string(), "removed": true})),
                Format::Table => println!("{t} removed from the allowlist"),
            }
        }
        AllowlistCommand::List => {
            let rows = s.allowlist()?;
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["TARGET", "REASON", "BY", "SINCE"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.value.clone(),
                                r.reason.clone(),
                                r.created_by.clone(),
                                crate::clock::rfc3339(r.created_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
    }
    Ok(())
}
