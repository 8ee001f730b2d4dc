//! `crowd attach`, `crowd detach` and `crowd run` (the daemon).
//!
//! The daemon today owns the data plane only: it loads the program against the pinned maps,
//! attaches (taking over pinned links without a gap), sweeps expired bans and refreshes the
//! program's config. On exit it leaves the links pinned, so enforcement never lapses.
use crate::clock::unix_now;
use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Format, output};
use crate::{
    acquisition::Source,
    clock::boot_now_ns,
    enforce::{
        Settings,
        attach::{self, Mode},
        maps::BanMaps,
        object, pins,
    },
};

/// Detection options of `crowd run`.
#[derive(Clone, Debug, clap::Args)]
pub struct DetectArgs {
    /// A CrowdSec-format acquisition YAML (default: /var/log/auth.log and the usual web logs
    /// that exist on this host).
    #[arg(long)]
    pub acquis: Option<PathBuf>,
    /// Follow a file as a type, e.g. `--watch /var/log/auth.log=syslog` (repeatable).
    #[arg(long, value_name = "PATH=TYPE")]
    pub watch: Vec<String>,
    /// A hub-layout folder of parsers and scenarios, or an installed CrowdSec's configuration
    /// directory such as `/etc/crowdsec` (default: crowd's embedded rules).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where read positions are kept.
    #[arg(long, default_value = "/var/lib/crowd")]
    pub state_dir: PathBuf,
    /// Record decisions without enforcing them.
    #[arg(long)]
    pub simulation: bool,
    /// Run the enforcer only: no log reading.
    #[arg(long)]
    pub no_detect: bool,
    /// A CrowdSec `profiles.yaml` (default: `<config>/profiles.yaml` if present, else
    /// CrowdSec's default profiles: ban 4h on Ip and Range alerts).
    #[arg(long)]
    pub profiles: Option<PathBuf>,
    /// Leave out parser and scenario files that do not load (each is named in a warning)
    /// instead of refusing to start.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Also read standard input as lines of this type (e.g. `--stdin syslog`).
    #[arg(long, value_name = "TYPE")]
    pub stdin: Option<String>,
    /// Where the Local API listens (CrowdSec's bouncers and agents use it).
    #[arg(long, default_value = super::lapi::DEFAULT_LISTEN)]
    pub api_listen: std::net::SocketAddr,
    /// Do not serve the Local API.
    #[arg(long)]
    pub no_api: bool,
    /// Where Prometheus metrics are served (with the Local API).
    #[arg(long, default_value = super::lapi::DEFAULT_METRICS)]
    pub metrics_listen: std::net::SocketAddr,
    /// Do not serve metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// CrowdSec `http` notification files (`*.yaml`) named by the profiles (default:
    /// `<config>/notifications` when it exists).
    #[arg(long)]
    pub notifications: Option<PathBuf>,
    #[command(flatten)]
    pub tls: crate::lapi::tls::TlsArgs,
    /// The store (from the global `--db`).
    #[arg(skip)]
    pub db: Option<String>,
}

impl DetectArgs {
    /// Where the store is.
    #[must_use]
    pub fn store(&self) -> crate::store::Location {
        crate::store::Location::new(&self.state_dir, self.db.as_deref())
    }
}

fn sources(args: &DetectArgs) -> Result<Vec<Source>> {
    let labels = crate::engine::event::type_label;
    let mut out = Vec::new();
    if let Some(a) = &args.acquis {
        let text = std::fs::read_to_string(a).with_context(|| format!("reading `{}`", a.display()))?;
        out.extend(crate::acquisition::parse(a, &text)?);
    }
    for w in &args.watch {
        let (path, kind) = w.rsplit_once('=').with_context(|| format!("--watch `{w}`: expected PATH=TYPE"))?;
        out.push(Source::File(crate::acquisition::FileSource { path: path.into(), labels: labels(kind) }));
    }
    if let Some(kind) = &args.stdin {
        out.push(Source::Stdin { labels: labels(kind) });
    }
    if args.acquis.is_none() && args.watch.is_empty() && args.stdin.is_none() {
        // An installed CrowdSec's acquisition (acquis.yaml and acquis.d/), else the usual logs.
        let crowdsec = match &args.config {
            Some(d) => crate::config::crowdsec::ConfigDir::open(d)?.crowdsec,
            None => None,
        };
        match crowdsec {
            Some(c) => {
                for f in c.acquisition_files() {
                    let text = std::fs::read_to_string(&f).with_context(|| format!("reading `{}`", f.display()))?;
                    out.extend(crate::acquisition::parse(&f, &text)?);
                }
            }
            None => out = crate::acquisition::defaults(),
        }
    }
    Ok(out)
}

/// Starts acquisition and detection threads: decisions go into the pinned maps as soon as made.
fn start_detection(
    settings: &Settings,
    args: &DetectArgs,
    stop: Arc<AtomicBool>,
    metrics: Arc<crate::metrics::Metrics>,
    notify: crate::notify::Dispatcher,
) -> Result<()> {
    let sources = sources(args)?;
    if sources.is_empty() {
        tracing::warn!("no log to follow (give --acquis or --watch): enforcing only");
        return Ok(());
    }
    let mut profile = super::replay::profile(args.config.as_ref(), args.profiles.as_ref())?;
    let sim = super::replay::simulation(args.config.as_ref(), &args.state_dir)?;
    profile.simulation = args.simulation || sim.simulation;
    profile.simulation_exclusions = if args.simulation { Vec::new() } else { sim.exclusions };
    // Repeat offenders are counted across restarts (profiles' GetDecisionsCount).
    if let Ok(mut store) = crate::store::Store::open_at(&args.store()) {
        profile.history = store.decision_counts().unwrap_or_default();
    }
    profile.protect(crate::addr::local_addresses());
    let mut detector = super::replay::detector_with(args.config.as_ref(), profile, args.skip_invalid)?;
    for s in &sources {
        tracing::info!(source = %s.describe(), kind = s.kind(), "reading");
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<crate::acquisition::Read>(4096);
    crate::acquisition::start(sources, Some(&args.state_dir), &tx, &stop).context("starting acquisition")?;
    drop(tx);
    let mut maps = BanMaps::open(settings)?;
    let (record_tx, record_rx) = std::sync::mpsc::channel::<Record>();
    spawn_recorder(settings, &args.store(), record_rx)?;
    std::thread::Builder::new().name("detection".into()).spawn(move || {
        while let Ok((line, now)) = rx.recv() {
            let (src, labels) = (line.src.clone(), line.labels.clone());
            let parsed_before = detector.counts.parsed;
            let out = detector.feed(line, now);
            let kind = labels.get("type").map_or("", String::as_str);
            metrics.line(&src, kind, detector.counts.parsed > parsed_before);
            for r in out.raised {
                metrics.overflows.get_or_create(&crate::metrics::ScenarioLabels { name: r.alert.scenario.clone() }).inc();
                if !r.notifications.is_empty() {
                    notify.notify(&r.notifications, &crate::lapi::model::local_alert(&r.alert, &r.decisions));
                }
                if r.decisions.is_empty() {
                    continue;
                }
                // Enforce first (milliseconds matter): every ban of the alert into the maps (other
                // types only in the store); the recorder thread writes the store and then the
                // records' ids into the bans, so a slow disk never delays the next ban.
                let clock = crate::clock::BootClock::now();
                for d in &r.decisions {
                    tracing::info!(scenario = %d.scenario, source = %d.value, kind = %d.kind, duration = d.duration_secs, simulated = d.simulated, "decision");
                    if let (true, Some(target)) = (d.enforced_in_kernel(), d.target())
                        && let Err(e) = maps.insert_ban(target, crowd_common::Ban::new(clock.expiry_after(Some(d.duration())), 0, crowd_common::Origin::Local))
                    {
                        tracing::error!(source = %d.value, error = %e, "could not enforce a decision");
                    }
                }
                let _ = record_tx.send(Record { alert: r.alert, decisions: r.decisions, clock });
            }
        }
    })?;
    Ok(())
}

/// An alert and its decisions for the store.
struct Record {
    alert: crate::engine::scenario::Alert,
    decisions: Vec<crate::engine::profile::Decision>,
    clock: crate::clock::BootClock,
}

/// The thread that records decisions in the store, off the detection path.
fn spawn_recorder(
    settings: &Settings,
    loc: &crate::store::Location,
    rx: std::sync::mpsc::Receiver<Record>,
) -> Result<()> {
    let mut maps = BanMaps::open(settings)?;
    let mut store = crate::store::Store::open_at(loc)?;
    std::thread::Builder::new().name("recorder".into()).spawn(move || {
        while let Ok(Record { alert, decisions, clock }) = rx.recv() {
            let unix = unix_now();
            let recs: Vec<crate::store::NewDecision> = decisions
                .iter()
                .map(|d| crate::store::NewDecision {
                    origin: d.origin.clone(),
                    scenario: d.scenario.clone(),
                    scope: d.scope.clone(),
                    value: d.value.clone(),
                    kind: d.kind.clone(),
                    duration_secs: d.duration_secs,
                    simulated: d.simulated,
                    reason: String::new(),
                    uuid: String::new(),
                })
                .collect();
            let a = crate::store::NewAlert {
                scenario: alert.scenario.clone(),
                scope: alert.scope.clone(),
                value: alert.value.clone(),
                events_count: alert.events_count as u64,
                body: crate::lapi::model::local_alert(&alert, &decisions).to_string(),
                ..crate::store::NewAlert::default()
            };
            match store.record(Some(&a), &recs, unix) {
                Ok(ids) => {
                    for (d, id) in decisions.iter().zip(ids) {
                        if let (true, Some(target)) = (d.enforced_in_kernel(), d.target())
                            && let Ok(Some(row)) = store.get(id)
                        {
                            let _ = maps.insert_ban(target, crate::reconcile::ban_for(&row, unix, &clock));
                        }
                    }
                }
                Err(e) => tracing::error!(source = %alert.value, error = %e, "could not record decisions"),
            }
        }
    })?;
    Ok(())
}

/// `crowd attach`.
///
/// # Errors
/// Load or attach failures, with the interface named.
pub fn attach(settings: &Settings, ifaces: &[String], mode: Mode, fmt: Format) -> Result<()> {
    let mut loaded = object::load(settings)?;
    let mut done = Vec::new();
    for iface in ifaces {
        let a = attach::attach(&mut loaded, &settings.pin_dir, iface, mode)
            .with_context(|| format!("attaching to `{iface}`"))?;
        done.push(a);
    }
    match fmt {
        Format::Json => output::json(&done),
        Format::Table => {
            for a in &done {
                if a.replaced {
                    println!("{}: program replaced in the pinned link (no gap)", a.iface);
                } else {
                    println!("{}: attached in {} mode", a.iface, a.mode);
                }
            }
        }
    }
    Ok(())
}

/// `crowd detach`.
///
/// # Errors
/// Interfaces crowd is not attached to, or pin removal failures.
pub fn detach(settings: &Settings, ifaces: &[String], all: bool, purge: bool, fmt: Format) -> Result<()> {
    crate::enforce::preflight::require_privileges("detach")?;
    let list: Vec<String> =
        if all { attach::attached(&settings.pin_dir).into_iter().map(|(i, _)| i).collect() } else { ifaces.to_vec() };
    for iface in &list {
        attach::detach(&settings.pin_dir, iface)?;
    }
    let remaining = attach::attached(&settings.pin_dir);
    let purged = if purge {
        if !remaining.is_empty() {
            bail!(
                "not purging: still attached to {}",
                remaining.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        pins::purge(&settings.pin_dir)?;
        true
    } else {
        false
    };
    match fmt {
        Format::Json => output::json(&json!({"detached": list, "purged": purged})),
        Format::Table => {
            for i in &list {
                println!("{i}: detached");
            }
            if purged {
                println!("removed every pinned map under {}", settings.pin_dir.display());
            }
        }
    }
    Ok(())
}

/// `crowd run`: the daemon, in the foreground until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up failures (nothing attached is left half-done: attach errors name the interface).
pub fn daemon(
    settings: &Settings,
    ifaces: &[String],
    mode: Mode,
    sweep_every: Duration,
    rebuild_every: Duration,
    detect: &DetectArgs,
) -> Result<()> {
    let ifaces: Vec<String> = if ifaces.is_empty() {
        vec![attach::default_route_iface().context("no default route: name the interface(s) with --iface")?]
    } else {
        ifaces.to_vec()
    };
    let mut loaded = object::load(settings)?;
    let mut maps = BanMaps::open(settings)?;
    maps.refresh_config()?;
    // The maps are a cache of the store: bring them in line before anything else.
    super::state(&detect.state_dir)?;
    let mut store = super::lapi::open(&detect.store())?;
    match crate::reconcile::reconcile(&mut store, &mut maps, unix_now()) {
        Ok(r) => tracing::info!(added = r.added, removed = r.removed, "maps reconciled with the store"),
        Err(e) => tracing::error!(error = %e, "reconciling the maps with the store"),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = crate::metrics::Metrics::new();
    let notify = super::lapi::notifiers(detect.notifications.as_ref(), detect.config.as_ref())?;
    if !detect.no_detect {
        start_detection(settings, detect, stop.clone(), metrics.clone(), notify.clone())?;
    }
    // Attached last: once the links are pinned, the logs are being followed, so nothing written
    // after the daemon reports itself enforcing is missed.
    for iface in &ifaces {
        let a = attach::attach(&mut loaded, &settings.pin_dir, iface, mode)
            .with_context(|| format!("attaching to `{iface}`"))?;
        tracing::info!(iface = %a.iface, mode = a.mode, replaced = a.replaced, "enforcing");
    }
    println!(
        "crowd: enforcing on {} (pins under {}); Ctrl-C leaves enforcement on",
        ifaces.join(", "),
        settings.pin_dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let api_profile = if detect.no_api {
        None
    } else {
        let mut p = super::replay::profile(detect.config.as_ref(), detect.profiles.as_ref())?;
        let sim = super::replay::simulation(detect.config.as_ref(), &detect.state_dir)?;
        p.simulation = detect.simulation || sim.simulation;
        p.simulation_exclusions = if detect.simulation { Vec::new() } else { sim.exclusions };
        p.protect(crate::addr::local_addresses());
        Some(p)
    };
    // The store's change feed: decisions written by the API, the CLI or another host reach the
    // maps as soon as they are committed, whether this daemon serves the API or not.
    let mut changes = crate::store::changes::watch(&detect.store(), crate::store::changes::POLL)?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(p) = api_profile {
            let (stop, state) = (async move { let _ = api_stopped.await; }, &detect.store());
            let shared = super::lapi::Shared { metrics: metrics.clone(), notify, changes: changes.clone() };
            super::lapi::start(detect.api_listen, state, p, shared, &detect.tls, stop).await?;
        }
        if !detect.no_metrics {
            let db = crate::lapi::Db::open(&detect.store())?;
            super::lapi::start_metrics(detect.metrics_listen, metrics.clone(), db, Some(settings.clone())).await?;
        }
        // Decisions made through the API or the CLI reach the maps as soon as the store changes.
        let mut cursor = None;
        if let Err(e) = tokio::task::block_in_place(|| crate::reconcile::apply_changes(&mut store, &mut maps, &mut cursor, unix_now())) {
            tracing::error!(error = %e, "applying the store's decisions to the maps");
        }
        let mut tick = tokio::time::interval(sweep_every);
        let mut rebuild = tokio::time::interval(rebuild_every);
        rebuild.tick().await;
        let mut reconcile = tokio::time::interval(Duration::from_secs(30));
        reconcile.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    match maps.sweep_expired(boot_now_ns()) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "swept expired bans"),
                        Err(e) => tracing::error!(error = %e, "sweeping expired bans"),
                    }
                    // The boot-time offset only moves across a suspend; keep the program's copy fresh.
                    if let Err(e) = maps.refresh_config() {
                        tracing::error!(error = %e, "refreshing the program's config");
                    }
                }
                Ok(()) = changes.changed() => {
                    match tokio::task::block_in_place(|| crate::reconcile::apply_changes(&mut store, &mut maps, &mut cursor, unix_now())) {
                        Ok(r) if r.added + r.removed > 0 => tracing::info!(added = r.added, removed = r.removed, "store changes applied to the maps"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "applying store changes to the maps"),
                    }
                }
                _ = reconcile.tick() => {
                    match tokio::task::block_in_place(|| crate::reconcile::reconcile(&mut store, &mut maps, unix_now())) {
                        Ok(r) if r.added + r.removed > 0 => tracing::info!(added = r.added, removed = r.removed, "maps reconciled with the store"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "reconciling the maps with the store"),
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
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = api_stop.send(());
        tracing::info!("exiting; the XDP program stays attached through its pinned links");
        drop(loaded);
        Ok::<(), anyhow::Error>(())
    })
}
