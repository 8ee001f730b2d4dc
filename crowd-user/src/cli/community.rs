//! `crowd community ...`: the community server (`serve`) and its operator's commands:
//! organisations and their enrollment keys, member machines, the operator allowlist, the
//! published list, and `explain` (why an address is listed or not, rebuilt from the stored
//! signals by the same pure consensus the server runs; it never names a reporter).
use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Format, output};
use crate::{
    clock::unix_now,
    community::{config::HubConfig, engine, wire},
    lapi::auth,
    store::Location,
};

/// `crowd community` commands.
#[derive(Debug, Subcommand)]
pub enum CommunityCommand {
    /// Join a community (crowd's server or a CrowdSec-compatible central API): registers and
    /// writes `online_api_credentials.yaml` into the state directory; `crowd run` and
    /// `crowd api` then share their alerts and pull its lists.
    Register {
        /// The server's URL (a `/` is added if missing).
        #[arg(long)]
        url: String,
        /// The organisation's enrollment key.
        #[arg(long)]
        enroll_key: Option<String>,
        /// This machine's login (default: the host name and a random suffix).
        #[arg(long)]
        name: Option<String>,
        /// Credentials given by the operator: only write them, do not register.
        #[arg(long)]
        password: Option<String>,
    },
    /// This host's membership: registered, last pull, signals sent and refused.
    Status,
    /// Forget this host's membership (the credentials file goes).
    Unregister,
    /// Run the community server (CrowdSec's central API under /v2 and /v3).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
    /// Organisations: members enrolled with one key share their reports at once.
    Orgs {
        /// What to do.
        #[command(subcommand)]
        command: OrgsCommand,
    },
    /// Member machines.
    Machines {
        /// What to do.
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// The operator's allowlist: never published, withdrawn at the next delta.
    Allow {
        /// What to do.
        #[command(subcommand)]
        command: AllowCommand,
    },
    /// The published community list (or an organisation's).
    List {
        /// An organisation's list instead.
        #[arg(long)]
        org: Option<String>,
    },
    /// Why an address is listed or not.
    Explain {
        /// The address.
        ip: std::net::IpAddr,
    },
}

/// `crowd community orgs`.
#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Add an organisation and print its enrollment key.
    Add {
        /// Its name.
        name: String,
        /// The key (default: a random one).
        #[arg(long)]
        key: Option<String>,
    },
    /// List organisations.
    List,
    /// Delete an organisation and its machines.
    Delete {
        /// Its name.
        name: String,
    },
}

/// `crowd community machines`.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Register a machine in an organisation (prints its password).
    Add {
        /// Its login.
        machine_id: String,
        /// Its organisation (made if new).
        #[arg(long)]
        org: String,
        /// The password (default: a random one).
        #[arg(long)]
        password: Option<String>,
        /// An operator sensor (honeypot): its reports may list alone.
        #[arg(long)]
        sensor: bool,
    },
    /// List machines.
    List,
    /// Delete a machine.
    Delete {
        /// Its login.
        machine_id: String,
    },
}

/// `crowd community allow`.
#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Allow an address or CIDR.
    Add {
        /// Address or CIDR.
        value: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove an address or CIDR.
    Del {
        /// Address or CIDR.
        value: String,
    },
    /// List the allowlist.
    List,
}

/// An allowlist value in its canonical text.
fn allow_value(value: &str) -> Result<String> {
    wire::prefix_value(value).map(wire::prefix_text).with_context(|| format!("`{value}` is not an address or CIDR"))
}

/// Runs a `crowd community` command on the store at `loc` with the server's configuration.
///
/// # Errors
/// Bad arguments, store errors, a configuration that does not load.
pub fn dispatch(
    state_dir: &std::path::Path,
    loc: &Location,
    config: &std::path::Path,
    cmd: &CommunityCommand,
    fmt: Format,
) -> Result<()> {
    if let Some(done) = member(state_dir, loc, cmd, fmt) {
        return done;
    }
    let cfg = HubConfig::load(config).map_err(|e| anyhow::anyhow!(e))?;
    if let CommunityCommand::Serve { listen } = cmd {
        return serve(*listen, loc, cfg);
    }
    let mut s = crate::rules::open_store(loc)?;
    let now = unix_now();
    match cmd {
        CommunityCommand::Serve { .. }
        | CommunityCommand::Register { .. }
        | CommunityCommand::Status
        | CommunityCommand::Unregister => unreachable!("handled above"),
        CommunityCommand::Orgs { command: OrgsCommand::Add { name, key } } => {
            let key = key.clone().unwrap_or_else(auth::random_token);
            if !s.add_org(name, &auth::hash_key(&key), now)? {
                bail!("organisation `{name}` exists");
            }
            match fmt {
                Format::Json => output::json(&json!({"name": name, "enroll_key": key})),
                Format::Table => println!("organisation `{name}` added; enrollment key: {key}"),
            }
        }
        CommunityCommand::Orgs { command: OrgsCommand::List } => {
            let rows = s.orgs()?;
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["NAME", "KEY"],
                    &rows
                        .iter()
                        .map(|o| vec![o.name.clone(), if o.has_key { "yes" } else { "no" }.into()])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        CommunityCommand::Orgs { command: OrgsCommand::Delete { name } } => {
            if !s.delete_org(name)? {
                bail!("no organisation named `{name}`");
            }
            println!("organisation `{name}` deleted");
        }
        CommunityCommand::Machines { command: MembersCommand::Add { machine_id, org, password, sensor } } => {
            let pw = password.clone().unwrap_or_else(auth::random_token);
            let hash = auth::hash_password(&pw).map_err(|e| anyhow::anyhow!("{e}"))?;
            s.add_org(org, "", now)?;
            if !s.add_member(machine_id, &hash, org, *sensor, now)? {
                bail!("machine `{machine_id}` exists");
            }
            match fmt {
                Format::Json => output::json(&json!({"machine_id": machine_id, "password": pw, "org": org})),
                Format::Table => println!("machine `{machine_id}` added to `{org}`; password: {pw}"),
            }
        }
        CommunityCommand::Machines { command: MembersCommand::List } => {
            let rows = s.members()?;
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["MACHINE", "ORG", "PREFIX", "ASN", "SENSOR"],
                    &rows
                        .iter()
                        .map(|m| {
                            vec![
                                m.machine_id.clone(),
                                m.org.clone(),
                                m.egress_prefix.clone(),
                                m.asn.to_string(),
                                if m.sensor { "yes" } else { "no" }.into(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        CommunityCommand::Machines { command: MembersCommand::Delete { machine_id } } => {
            if !s.delete_member(machine_id)? {
                bail!("no machine named `{machine_id}`");
            }
            println!("machine `{machine_id}` deleted");
        }
        CommunityCommand::Allow { command: AllowCommand::Add { value, reason } } => {
            let v = allow_value(value)?;
            s.cm_allow(&v, reason, now)?;
            println!("`{v}` allowed: withdrawn from the community list at the next delta");
        }
        CommunityCommand::Allow { command: AllowCommand::Del { value } } => {
            let v = allow_value(value)?;
            if !s.cm_disallow(&v)? {
                bail!("`{v}` is not in the allowlist");
            }
            println!("`{v}` removed from the allowlist");
        }
        CommunityCommand::Allow { command: AllowCommand::List } => {
            let rows = s.cm_allowlist()?;
            match fmt {
                Format::Json => {
                    output::json(&rows.iter().map(|(v, r)| json!({"value": v, "reason": r})).collect::<Vec<_>>())
                }
                Format::Table => output::table(
                    &["VALUE", "REASON"],
                    &rows.iter().map(|(v, r)| vec![v.clone(), r.clone()]).collect::<Vec<_>>(),
                ),
            }
        }
        CommunityCommand::List { org } => {
            let rows = s.list_entries(org.as_deref().unwrap_or(""), now)?;
            match fmt {
                Format::Json => output::json(&rows),
                Format::Table => output::table(
                    &["SCOPE", "VALUE", "SCENARIO", "EXPIRES IN"],
                    &rows
                        .iter()
                        .map(|e| {
                            let left = std::time::Duration::from_secs((e.until - now).max(0).unsigned_abs());
                            vec![e.scope.clone(), e.value.clone(), e.scenario.clone(), crate::clock::go_duration(left)]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        CommunityCommand::Explain { ip } => {
            let members = s.members()?;
            let (c, allowed, _) = engine::rebuild(&cfg, &mut s, &members, now)?;
            let p = &cfg.params;
            let e = c.explain(*ip, now);
            let allowed = allowed.iter().any(|n| crate::community::config::contains(*n, *ip));
            match fmt {
                Format::Json => output::json(&json!({
                    "ip": ip.to_string(), "listed": e.listed, "organisations": e.orgs, "prefixes": e.prefixes,
                    "asns": e.asns, "score": e.score, "canary": e.canary, "allowed": allowed, "reason": e.reason,
                    "quorum": {"organisations": p.quorum_orgs, "prefixes": p.quorum_prefixes, "asns": p.quorum_asns, "score": p.list_score},
                })),
                Format::Table => {
                    println!("{ip}: {}", if e.listed { "listed" } else { "not listed" });
                    println!(
                        "  reported by {} organisation(s) (quorum {}), from {} prefix(es) (needs {}) in {} ASN(s) (needs {})",
                        e.orgs, p.quorum_orgs, e.prefixes, p.quorum_prefixes, e.asns, p.quorum_asns
                    );
                    println!(
                        "  score {:.2} (lists at {:.2}); canary: {}; operator allowlist: {}",
                        e.score, p.list_score, e.canary, allowed
                    );
                    println!("  {}", e.reason);
                }
            }
        }
    }
    Ok(())
}

fn serve(listen: SocketAddr, loc: &Location, cfg: HubConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let stop = crate::daemon::stop_signal()?;
        let l = loc.clone();
        // Opening a store blocks (PostgreSQL's client runs its own runtime): not on this one.
        let db = tokio::task::spawn_blocking(move || {
            drop(crate::rules::open_store(&l)?);
            Ok::<_, anyhow::Error>(crate::lapi::StorePool::open(&l)?)
        })
        .await??;
        let hub = crate::community::server::Hub::new(db, loc.clone(), cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
        tracing::info!(%listen, "community server listening");
        println!("crowd: community server on http://{listen}/ (v2 and v3)");
        crate::community::server::serve(listener, hub, stop).await?;
        Ok(())
    })
}

/// The member's commands; `None` for the server's.
fn member(state_dir: &std::path::Path, loc: &Location, cmd: &CommunityCommand, fmt: Format) -> Option<Result<()>> {
    use crate::community::member::{client, credentials::Credentials, runner::STATUS};
    Some(match cmd {
        CommunityCommand::Register { url, enroll_key, name, password } => (|| {
            crate::rules::state_dir(state_dir)?;
            let url = if url.ends_with('/') { url.clone() } else { format!("{url}/") };
            let login = name.clone().unwrap_or_else(|| {
                let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), &auth::random_token()[..8])
            });
            let pw = match password {
                Some(p) => p.clone(),
                None => {
                    let pw = auth::random_token();
                    client::register(&url, &login, &pw, enroll_key.as_deref())
                        .with_context(|| format!("registering at {url}"))?;
                    pw
                }
            };
            let creds = Credentials { url: url.clone(), login: login.clone(), password: pw };
            let mut c = client::Client::new(creds.clone(), Vec::new());
            c.login().with_context(|| format!("logging in at {url}"))?;
            creds.save(state_dir)?;
            match fmt {
                Format::Json => output::json(&json!({"url": url, "login": login})),
                Format::Table => println!(
                    "registered at {url} as `{login}`; credentials in {}; restart crowd to share and pull",
                    crate::community::member::credentials::path(state_dir).display()
                ),
            }
            Ok(())
        })(),
        CommunityCommand::Status => (|| {
            let creds = Credentials::load(state_dir).map_err(anyhow::Error::msg)?;
            let status: serde_json::Value = match creds {
                None => json!({"registered": false}),
                Some(c) => {
                    let mut s = crate::rules::open_store(loc)?;
                    let st: serde_json::Value =
                        s.get_secret(STATUS)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| json!({}));
                    let f = crate::store::DecisionFilter::default();
                    let rows = s.query(&f, unix_now())?;
                    let capi = rows.iter().filter(|d| d.origin == "CAPI").count();
                    let lists = rows.iter().filter(|d| d.origin == "lists").count();
                    let by_list: serde_json::Map<String, serde_json::Value> =
                        s.list_counts(unix_now())?.into_iter().map(|(l, n)| (l, json!(n))).collect();
                    json!({"registered": true, "url": c.url, "login": c.login, "signals": st["signals"],
                           "pull": st["pull"], "entries": {"CAPI": capi, "lists": lists, "by_list": by_list}})
                }
            };
            match fmt {
                Format::Json => output::json(&status),
                Format::Table => println!("{}", serde_json::to_string_pretty(&status)?),
            }
            Ok(())
        })(),
        CommunityCommand::Unregister => (|| {
            let p = crate::community::member::credentials::path(state_dir);
            match std::fs::remove_file(&p) {
                Ok(()) => println!("{} removed: restart crowd to stop sharing and pulling", p.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("not a member: no {}", p.display()),
                Err(e) => return Err(e.into()),
            }
            Ok(())
        })(),
        _ => return None,
    })
}

/// The state directory a command uses by default.
#[must_use]
pub fn default_state_dir(cmd: &CommunityCommand) -> PathBuf {
    match cmd {
        CommunityCommand::Register { .. } | CommunityCommand::Status | CommunityCommand::Unregister => {
            PathBuf::from("/var/lib/crowd")
        }
        _ => PathBuf::from("/var/lib/crowd-community"),
    }
}

/// The configuration file's default place in a state directory.
#[must_use]
pub fn default_config(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("community.yaml")
}
