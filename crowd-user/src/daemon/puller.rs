//! `crowd enforce`'s data plane: the XDP enforcer alone on an edge host, fed by a remote Local API.
//!
//! It pulls CrowdSec's decision stream with its bouncer key: a full pull first (`startup=true`),
//! then deltas. With `--push` (the default) each delta request carries crowd's `wait=` extension,
//! so the API answers the moment a decision changes (a long poll: milliseconds, not the 10 s of
//! a polling bouncer); against a plain CrowdSec API it polls every `--update-frequency`. After any
//! error it reconnects with a full pull, which also removes the bans the API no longer has, so a
//! disconnection never leaves a gap or a stale ban.
use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::{
    addr::Target,
    clock::{BootClock, boot_now_ns},
    enforce::{
        Settings,
        attach::{self, Mode},
        maps::BanMaps,
        object,
    },
    reconcile::apply_one,
};

/// How long one long poll may be held by the API.
const HOLD: &str = "25s";

/// A decision as the stream serves it.
#[derive(Debug, Deserialize)]
struct Wire {
    duration: String,
    id: i64,
    #[serde(default)]
    origin: String,
    scope: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
    #[serde(default)]
    simulated: bool,
}

#[derive(Debug, Deserialize)]
struct StreamAnswer {
    new: Option<Vec<Wire>>,
    deleted: Option<Vec<Wire>>,
}

/// Whether the enforcer acts on this decision (bans on addresses and ranges, not simulated).
fn enforced(w: &Wire) -> Option<Target> {
    let scope_ok = w.scope.eq_ignore_ascii_case("ip") || w.scope.eq_ignore_ascii_case("range");
    if !scope_ok || !w.kind.eq_ignore_ascii_case("ban") || w.simulated {
        return None;
    }
    w.value.parse().ok()
}

/// Applies one stream answer; a full one also removes the decision bans it does not list.
fn apply(maps: &mut BanMaps, a: &StreamAnswer, full: bool) -> Result<(usize, usize)> {
    let clock = BootClock::now();
    let (mut added, mut removed) = (0, 0);
    for w in a.deleted.iter().flatten() {
        if let Some(t) = enforced(w)
            && apply_one(maps, t, 0, w.id, &w.origin, &clock)?
        {
            removed += 1;
        }
    }
    let mut listed = HashSet::new();
    for w in a.new.iter().flatten() {
        let Some(t) = enforced(w) else { continue };
        let left = crate::clock::go_duration_secs_signed(&w.duration).unwrap_or(4 * 3600);
        listed.insert(t);
        if apply_one(maps, t, left, w.id, &w.origin, &clock)? {
            added += 1;
        }
    }
    if full {
        for e in maps.bans()? {
            let id = e.ban.decision_id;
            let from_a_decision = id != 0 && id & (1 << 63) == 0;
            if from_a_decision && !listed.contains(&e.target) && maps.remove_ban(e.target)? {
                removed += 1;
            }
        }
    }
    Ok((added, removed))
}

/// Options of `crowd enforce`.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// The Local API (`http://198.51.100.1:8080`).
    #[arg(long)]
    pub lapi: String,
    /// The bouncer key (`crowd bouncers add` on the API host); not needed with `--cert`.
    #[arg(long, env = "CROWD_LAPI_KEY", hide_env_values = true, required_unless_present = "cert")]
    pub key: Option<String>,
    /// Poll like CrowdSec's bouncers instead of holding a long poll (for a CrowdSec API).
    #[arg(long)]
    pub poll: bool,
    /// The polling period with `--poll`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub update_frequency: Duration,
    /// Trust this CA (PEM) for an `https://` API instead of the system's.
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for an API that authenticates bouncers by certificate.
    #[arg(long, requires = "key_file")]
    pub cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long = "cert-key", id = "key_file", requires = "cert")]
    pub cert_key: Option<std::path::PathBuf>,
}

/// The client TLS settings `--ca-cert`, `--cert` and `--cert-key` ask for.
///
/// # Errors
/// Unreadable or invalid PEM files, named.
fn tls_config(args: &Options) -> Result<ureq::tls::TlsConfig> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading `{}`", p.display()));
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &args.ca_cert {
        let c =
            Certificate::from_pem(&read(ca)?).with_context(|| format!("`{}`: not a PEM certificate", ca.display()))?;
        tls = tls.root_certs(RootCerts::Specific(Arc::new(vec![c])));
    }
    if let (Some(cert), Some(key)) = (&args.cert, &args.cert_key) {
        let c = Certificate::from_pem(&read(cert)?)
            .with_context(|| format!("`{}`: not a PEM certificate", cert.display()))?;
        let k =
            PrivateKey::from_pem(&read(key)?).with_context(|| format!("`{}`: not a PEM private key", key.display()))?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[c], k)));
    }
    Ok(tls.build())
}

/// The thread that keeps the maps in line with the remote API until `stop`.
fn spawn_puller(settings: &Settings, args: &Options, stop: Arc<AtomicBool>) -> Result<()> {
    let mut maps = BanMaps::open(settings)?;
    let base = args.lapi.trim_end_matches('/').to_owned();
    let (key, poll, every) = (args.key.clone(), args.poll, args.update_frequency);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls_config(args)?)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(120)))
        .user_agent(concat!("crowd-enforce/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    std::thread::Builder::new().name("lapi-pull".into()).spawn(move || {
        let mut synced = false;
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            let url = match (synced, poll) {
                (false, _) => format!("{base}/v1/decisions/stream?startup=true"),
                (true, true) => format!("{base}/v1/decisions/stream"),
                (true, false) => format!("{base}/v1/decisions/stream?wait={HOLD}"),
            };
            let mut req = agent.get(&url);
            if let Some(k) = &key {
                req = req.header("X-Api-Key", k);
            }
            let res = req.call();
            let answer = match res {
                Ok(mut r) if r.status() == 200 => {
                    let body = r.body_mut().with_config().limit(4 << 30).reader();
                    serde_json::from_reader::<_, StreamAnswer>(std::io::BufReader::new(body))
                        .map_err(|e| format!("reading the stream: {e}"))
                }
                Ok(r) if r.status() == 403 => Err("the API refused the key (403)".to_owned()),
                Ok(r) => Err(format!("the API answered {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(a) => {
                    match apply(&mut maps, &a, !synced) {
                        Ok((0, 0)) => {}
                        Ok((added, removed)) => tracing::info!(added, removed, full = !synced, "decisions applied"),
                        Err(e) => tracing::error!(error = %e, "applying decisions"),
                    }
                    if !synced {
                        tracing::info!(api = %base, "in sync with the Local API");
                    }
                    synced = true;
                    backoff = Duration::from_millis(100);
                    if poll {
                        std::thread::sleep(every);
                    }
                }
                Err(e) => {
                    tracing::warn!(api = %base, error = %e, retry_in = ?backoff, "Local API unreachable: enforcing the bans in hand");
                    synced = false;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    })?;
    Ok(())
}

/// `crowd enforce`: attach, follow the remote API, sweep; exit leaving enforcement on.
///
/// # Errors
/// Start-up failures.
pub fn run(settings: &Settings, ifaces: &[String], mode: Mode, args: &Options) -> Result<()> {
    let mut loaded = object::load(settings)?;
    let mut maps = BanMaps::open(settings)?;
    maps.refresh_config()?;
    let stop = Arc::new(AtomicBool::new(false));
    spawn_puller(settings, args, stop.clone())?;
    for iface in ifaces {
        let a = attach::attach(&mut loaded, &settings.pin_dir, iface, mode)
            .with_context(|| format!("attaching to `{iface}`"))?;
        tracing::info!(iface = %a.iface, mode = a.mode, replaced = a.replaced, "enforcing");
    }
    println!("crowd: enforcing on {} with decisions from {}", ifaces.join(", "), args.lapi);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut sweep = tokio::time::interval(Duration::from_secs(10));
        let mut rebuild = tokio::time::interval(Duration::from_secs(300));
        rebuild.tick().await;
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    if let Err(e) = maps.sweep_expired(boot_now_ns()) {
                        tracing::error!(error = %e, "sweeping expired bans");
                    }
                    if let Err(e) = maps.refresh_config() {
                        tracing::error!(error = %e, "refreshing the program's config");
                    }
                }
                _ = rebuild.tick() => {
                    if let Err(e) = maps.rebuild_filters() {
                        tracing::error!(error = %e, "rebuilding the prefilters");
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(loaded);
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_durations() {
        assert_eq!(crate::clock::go_duration_secs_signed("4h0m0s"), Some(14400));
        assert_eq!(crate::clock::go_duration_secs_signed("3h51m57.363171728s"), Some(13917));
        assert_eq!(crate::clock::go_duration_secs_signed("-18897h25m52s"), Some(-(18897 * 3600 + 25 * 60 + 52)));
        assert_eq!(crate::clock::go_duration_secs_signed("garbage"), None);
    }

    #[test]
    fn only_unsimulated_bans_on_addresses_are_enforced() {
        let w = |scope: &str, kind: &str, value: &str, simulated: bool| Wire {
            duration: "1h".into(),
            id: 1,
            origin: "crowdsec".into(),
            scope: scope.into(),
            kind: kind.into(),
            value: value.into(),
            simulated,
        };
        assert!(enforced(&w("Ip", "ban", "192.0.2.1", false)).is_some());
        assert!(enforced(&w("Range", "ban", "192.0.2.0/24", false)).is_some());
        assert!(enforced(&w("Ip", "captcha", "192.0.2.1", false)).is_none());
        assert!(enforced(&w("Ip", "ban", "192.0.2.1", true)).is_none());
        assert!(enforced(&w("Country", "ban", "FR", false)).is_none());
        let nulls: StreamAnswer = serde_json::from_str(r#"{"deleted": null, "new": null}"#).unwrap();
        assert!(nulls.new.is_none() && nulls.deleted.is_none());
    }
}
