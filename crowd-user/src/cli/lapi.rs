//! `crowd api` (the Local API alone), `crowd bouncers add|list|delete` and
//! `crowd machines add|list|delete|validate`: the API's credentials, kept in the store.
use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Format, output};
use crate::{
    engine::profile::Profile,
    lapi::{self, auth},
    store::Location,
};

/// Default listen address (CrowdSec's).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `crowd bouncers` subcommands.
#[derive(Debug, Subcommand)]
pub enum BouncersCommand {
    /// Add a bouncer and print its API key (shown once; only its hash is kept).
    Add {
        /// Its name.
        name: String,
        /// Use this key instead of a random one.
        #[arg(short, long)]
        key: Option<String>,
    },
    /// List bouncers.
    List,
    /// Delete a bouncer (and the `NAME@IP` rows its key made).
    Delete {
        /// Its name.
        name: String,
    },
}

/// `crowd machines` subcommands.
#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// Add a validated machine.
    Add {
        /// Its login.
        machine_id: String,
        /// Its password (random if absent; printed).
        #[arg(long)]
        password: Option<String>,
    },
    /// List machines.
    List,
    /// Allow a registered machine to log in.
    Validate {
        /// Its login.
        machine_id: String,
    },
    /// Delete a machine.
    Delete {
        /// Its login.
        machine_id: String,
    },
    /// Replace the key that signs agents' tokens: every token issued so far stops working at
    /// once (running APIs on this store pick the new key up), and agents log in again.
    RotateKey,
}

fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), crate::clock::rfc3339)
}

/// Runs a `crowd bouncers` subcommand.
///
/// # Errors
/// Store errors, a taken name, an unknown bouncer.
pub fn bouncers(loc: &Location, cmd: &BouncersCommand, fmt: Format) -> Result<()> {
    let mut s = crate::rules::open_store(loc)?;
    let now = lapi::decisions::now();
    match cmd {
        BouncersCommand::Add { name, key } => {
            let key = key.clone().unwrap_or_else(auth::random_token);
            if !s.add_bouncer(name, &auth::hash_key(&key), now)? {
                bail!("a bouncer named `{name}` exists already (delete it first)");
            }
            match fmt {
                Format::Json => output::json(&json!({"name": name, "api_key": key})),
                Format::Table => {
                    println!("API key for `{name}`:\n\n   {key}\n\nKeep it: it will not be shown again.");
                }
            }
        }
        BouncersCommand::List => {
            let rows = s.bouncers()?;
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["NAME", "IP ADDRESS", "TYPE", "VERSION", "LAST PULL", "AUTH"],
                    &rows
                        .iter()
                        .map(|b| {
                            vec![
                                b.name.clone(),
                                b.ip_address.clone(),
                                b.kind.clone(),
                                b.version.clone(),
                                when(b.last_pull),
                                b.auth_type.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        BouncersCommand::Delete { name } => {
            let n = s.delete_bouncer(name)?;
            if n == 0 {
                bail!("no bouncer named `{name}`");
            }
            match fmt {
                Format::Json => output::json(&json!({"deleted": name, "rows": n})),
                Format::Table => println!("bouncer `{name}` deleted"),
            }
        }
    }
    Ok(())
}

/// Runs a `crowd machines` subcommand.
///
/// # Errors
/// Store errors, an unknown machine.
pub fn machines(loc: &Location, cmd: &MachinesCommand, fmt: Format) -> Result<()> {
    let mut s = crate::rules::open_store(loc)?;
    let now = lapi::decisions::now();
    match cmd {
        MachinesCommand::Add { machine_id, password } => {
            let pw = password.clone().unwrap_or_else(auth::random_token);
            let hash = auth::hash_password(&pw).map_err(|e| anyhow::anyhow!("{e}"))?;
            s.upsert_machine(machine_id, &hash, true, "", now)?;
            match fmt {
                Format::Json => output::json(&json!({"machine_id": machine_id, "password": pw})),
                Format::Table => println!("machine `{machine_id}` added (validated); password: {pw}"),
            }
        }
        MachinesCommand::List => {
            let rows = s.machines()?;
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["NAME", "IP ADDRESS", "VALIDATED", "LAST HEARTBEAT"],
                    &rows
                        .iter()
                        .map(|m| {
                            vec![
                                m.machine_id.clone(),
                                m.ip_address.clone(),
                                if m.validated { "yes".into() } else { "no".into() },
                                when(m.last_heartbeat),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        MachinesCommand::Validate { machine_id } => {
            if !s.validate_machine(machine_id)? {
                bail!("no machine named `{machine_id}`");
            }
            println!("machine `{machine_id}` validated");
        }
        MachinesCommand::Delete { machine_id } => {
            if !s.delete_machine(machine_id)? {
                bail!("no machine named `{machine_id}`");
            }
            println!("machine `{machine_id}` deleted");
        }
        MachinesCommand::RotateKey => {
            s.replace_secret(lapi::JWT_SECRET, &lapi::auth::random_token())?;
            println!("token signing key replaced: every agent must log in again");
        }
    }
    Ok(())
}

/// Default Prometheus listen address (CrowdSec's).
pub const DEFAULT_METRICS: &str = "127.0.0.1:6060";

/// `crowd api`: the Local API alone (no enforcement, no log reading), until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up failures.
#[allow(clippy::too_many_arguments)] // `crowd api`'s flags, one argument each.
pub fn serve(
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    member: Option<(&std::path::Path, crate::community::member::runner::Options)>,
    loc: &Location,
    profile: Profile,
    notify: crate::notify::Dispatcher,
    tls: &lapi::tls::TlsArgs,
    console: crate::console::Options,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let stop = crate::daemon::stop_signal()?;
        let l = loc.clone();
        let changes = tokio::task::spawn_blocking(move || {
            drop(crate::rules::open_store(&l)?);
            Ok::<_, anyhow::Error>(crate::store::changes::watch(&l, crate::store::changes::POLL)?)
        })
        .await??;
        // A member of a community (credentials in the state directory): signals out, lists in.
        let member_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some((dir, opts)) = member {
            let (dir, l, s) = (dir.to_owned(), loc.clone(), member_stop.clone());
            tokio::task::spawn_blocking(move || crate::community::member::runner::start_if_member(&dir, &l, opts, s))
                .await??;
        }
        let shared = crate::daemon::api::Shared { metrics: crate::metrics::Metrics::new(), notify, changes, console };
        let (task, api) = crate::daemon::api::start(listen, loc, profile, shared, tls, stop).await?;
        if let Some(m) = metrics_listen {
            crate::daemon::api::start_metrics(m, api.metrics.clone(), api.db.clone(), None).await?;
        }
        let scheme = if tls.tls_cert.is_some() { "https" } else { "http" };
        println!("crowd: local API on {scheme}://{listen}/");
        let _ = task.await;
        Ok(())
    })
}

/// `crowd metrics`: what the daemon's (or `crowd api`'s) Prometheus endpoint says, as a table.
///
/// # Errors
/// The endpoint does not answer (named).
pub fn show_metrics(url: &str, fmt: Format) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let text = agent
        .get(url)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .with_context(|| format!("reading {url} (is `crowd run` or `crowd api` running with metrics on?)"))?;
    let rows: Vec<(String, String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_owned(), labels.to_owned(), value.to_owned()))
        })
        .collect();
    match fmt {
        Format::Json => {
            output::json(&rows.iter().map(|(n, l, v)| json!({"name": n, "labels": l, "value": v})).collect::<Vec<_>>())
        }
        Format::Table => output::table(
            &["METRIC", "LABELS", "VALUE"],
            &rows.iter().map(|(n, l, v)| vec![n.clone(), l.clone(), v.clone()]).collect::<Vec<_>>(),
        ),
    }
    Ok(())
}
