//! `crowd enforce`'s data plane: the XDP enforcer alone on an edge host, fed by a remote Local API.
//!
//! It pulls CrowdSec's decision stream with its bouncer key: a full pull first (`startup=true`),
//! then deltas. With `--push` (the default) each delta request carries crowd's `wait=` extension,
//! so the API answers the moment a decision changes (a long poll: milliseconds, not the 10 s of
//! a polling bouncer); against a plain CrowdSec API it polls every `--update-frequency`. After any
//! error it reconnects with a full pull, which also removes the bans the API no longer has, so a
//! disconnection never leaves a gap or a stale ban.
//!
//! A second thread reports usage metrics to the same API (`POST /v1/usage-metrics`, as CrowdSec's
//! bouncers do): 10 s after start, then every `--usage-metrics-interval` (15 min), and once more
//! at a clean shutdown; the report (`usage.rs`) covers the window since the last one the API
//! took. Its failures are logged (a warning, then debug lines until it succeeds again) and never
//! touch enforcement.
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::{
    addr::Target,
    clock::{BootClock, boot_now_ns, unix_now},
    daemon::usage::{self, BanCount, Snapshot},
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
/// The first usage report comes this long after start (or after the interval, if shorter).
const FIRST_REPORT: Duration = Duration::from_secs(10);

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
    /// How often to report usage metrics (packets processed and dropped, bans per origin) to the
    /// Local API, as CrowdSec's bouncers do; the first report goes 10 s after start. `0` disables.
    #[arg(long, value_parser = interval, default_value = "15m")]
    pub usage_metrics_interval: Duration,
}

/// A Go-style duration (`15m`, `1h30m`, `0`).
fn interval(s: &str) -> Result<Duration, String> {
    crate::clock::go_duration_secs(s)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a duration (`15m`, `1h`, `0` to disable)"))
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

/// A client of the API with `timeout` for a whole request.
fn agent(args: &Options, timeout: Duration) -> Result<ureq::Agent> {
    Ok(ureq::Agent::config_builder()
        .tls_config(tls_config(args)?)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(timeout))
        .user_agent(concat!("crowd-enforce/", env!("CARGO_PKG_VERSION")))
        .build()
        .into())
}

/// The thread that keeps the maps in line with the remote API until `stop`; it records the time
/// of each successful pull in `last_pull`.
fn spawn_puller(settings: &Settings, args: &Options, stop: Arc<AtomicBool>, last_pull: Arc<AtomicI64>) -> Result<()> {
    let mut maps = BanMaps::open(settings)?;
    let base = args.lapi.trim_end_matches('/').to_owned();
    let (key, poll, every) = (args.key.clone(), args.poll, args.update_frequency);
    let agent = agent(args, Duration::from_secs(120))?;
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
                    last_pull.store(unix_now(), Ordering::Relaxed);
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

/// The program's counters now.
fn snapshot(maps: &BanMaps) -> Result<Snapshot> {
    let stats = maps.stats()?;
    let now_ns = boot_now_ns();
    let bans: HashMap<_, _> = maps
        .bans()?
        .into_iter()
        .map(|e| (e.target, BanCount { origin: e.ban.origin, drops: e.ban.drops, active: !e.ban.is_expired(now_ns) }))
        .collect();
    Ok(Snapshot { at: unix_now(), seen: stats.seen, dropped: stats.dropped_exact + stats.dropped_range, bans })
}

/// The kernel release (`uname -r`).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The thread that reports usage metrics (none with a zero interval): after [`FIRST_REPORT`],
/// then every interval, and a last time when `quit` is dropped. A report the API did not take
/// is folded into the next one (the window grows).
fn spawn_reporter(
    settings: &Settings,
    args: &Options,
    last_pull: Arc<AtomicI64>,
    quit: mpsc::Receiver<()>,
) -> Result<Option<JoinHandle<()>>> {
    let every = args.usage_metrics_interval;
    if every.is_zero() {
        tracing::info!("usage metrics disabled");
        return Ok(None);
    }
    let maps = BanMaps::open(settings)?;
    let agent = agent(args, Duration::from_secs(10))?;
    let url = format!("{}/v1/usage-metrics", args.lapi.trim_end_matches('/'));
    let key = args.key.clone();
    let me = usage::Component {
        name: usage::TYPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        os_version: kernel_release(),
        startup: unix_now(),
    };
    let send = move |body: String, last: bool| -> Result<(), String> {
        let mut req = agent.post(&url).header("content-type", "application/json");
        if let Some(k) = &key {
            req = req.header("X-Api-Key", k);
        }
        if last {
            // Shutting down: do not hold the exit for long.
            req = req.config().timeout_global(Some(Duration::from_secs(3))).build();
        }
        match req.send(body) {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) if r.status() == 404 => Err("the API has no usage-metrics route (404: an older one?)".into()),
            Ok(mut r) => {
                let status = r.status();
                let text = r.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
                Err(format!("the API answered {status}: {}", text.trim()))
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let thread = std::thread::Builder::new().name("usage-metrics".into()).spawn(move || {
        let mut prev = snapshot(&maps).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "reading the counters");
            Snapshot { at: me.startup, ..Snapshot::default() }
        });
        let (mut wait, mut failing) = (FIRST_REPORT.min(every), false);
        loop {
            let last = !matches!(quit.recv_timeout(wait), Err(mpsc::RecvTimeoutError::Timeout));
            wait = every;
            let cur = match snapshot(&maps) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the counters for usage metrics");
                    if last {
                        break;
                    }
                    continue;
                }
            };
            let lp = Some(last_pull.load(Ordering::Relaxed)).filter(|t| *t > 0);
            match send(usage::report(&me, &prev, &cur, lp).to_string(), last) {
                Ok(()) => {
                    if failing {
                        tracing::info!("usage metrics sent again");
                    } else {
                        tracing::debug!("usage metrics sent");
                    }
                    (prev, failing) = (cur, false);
                }
                Err(e) if failing => tracing::debug!(error = %e, "sending usage metrics"),
                Err(e) => {
                    tracing::warn!(error = %e, "sending usage metrics (enforcement goes on; next failures at debug)");
                    failing = true;
                }
            }
            if last {
                break;
            }
        }
    })?;
    Ok(Some(thread))
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
    let last_pull = Arc::new(AtomicI64::new(0));
    spawn_puller(settings, args, stop.clone(), last_pull.clone())?;
    let (quit_reporter, quit) = mpsc::channel::<()>();
    let reporter = spawn_reporter(settings, args, last_pull, quit)?;
    for iface in ifaces {
        let a = attach::attach(&mut loaded, &settings.pin_dir, iface, mode)
            .with_context(|| format!("attaching to `{iface}`"))?;
        tracing::info!(iface = %a.iface, mode = a.mode, replaced = a.replaced, "enforcing");
    }
    println!("crowd: enforcing on {} with decisions from {}", ifaces.join(", "), args.lapi);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ran = rt.block_on(async move {
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
    });
    // The last usage report (the window since the previous one).
    drop(quit_reporter);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    ran
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
    fn usage_intervals_are_go_durations() {
        assert_eq!(interval("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(interval("0"), Ok(Duration::ZERO));
        assert!(interval("soon").is_err());
        assert!(interval("-1s").is_err());
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
