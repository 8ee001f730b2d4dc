//! The daemon (`crowd run`), crowd's one composition root: it owns the threads, their channels,
//! their start-up order and their shutdown.
//!
//! - acquisition → detection → recorder (`detection.rs`): log lines to decisions, bans into the
//!   XDP maps at once, the store after;
//! - the store's change feed (`crate::store::changes`) → the maps: decisions written by the API,
//!   the CLI or another host's API on a shared store, whether this daemon serves the API or not;
//! - the Local API and `/metrics` (`api.rs`, also used by `crowd api`);
//! - the main loop: periodic reconcile of the maps with the store, expiry sweeps, config refresh
//!   and prefilter rebuilds.
//!
//! Start-up order: load the program against the pinned maps, reconcile them with the store, start
//! acquisition and detection, then attach (a log line written once the links are pinned is never
//! missed). On exit the links stay pinned, so enforcement never lapses. `crowd enforce`'s stream
//! puller (`puller.rs`) is the same data plane fed by a remote Local API; it reports its usage
//! metrics to that API (`usage.rs` builds the report).
pub mod api;
mod detection;
pub mod puller;
pub mod usage;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::{
    acquisition::Source,
    clock::{boot_now_ns, unix_now},
    enforce::{
        Settings,
        attach::{self, Mode},
        maps::BanMaps,
        object,
    },
};

/// The daemon's options (`crowd run`'s flags): what it reads, with which rules, where its
/// state is, and what it serves.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// A CrowdSec-format acquisition YAML (default: the auth, mail, web access and error, and
    /// database error logs that exist on this host, and journald for sshd and MariaDB when
    /// their files do not).
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
    #[command(flatten)]
    pub tuning: crate::rules::Tuning,
    #[command(flatten)]
    pub member: crate::community::member::runner::MemberArgs,
    /// Leave out parser and scenario files that do not load (each is named in a warning)
    /// instead of refusing to start.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Also read standard input as lines of this type (e.g. `--stdin syslog`).
    #[arg(long, value_name = "TYPE")]
    pub stdin: Option<String>,
    /// Where the Local API listens (CrowdSec's bouncers and agents use it).
    #[arg(long, default_value = crate::cli::lapi::DEFAULT_LISTEN)]
    pub api_listen: std::net::SocketAddr,
    /// Do not serve the Local API.
    #[arg(long)]
    pub no_api: bool,
    /// Where Prometheus metrics are served (with the Local API).
    #[arg(long, default_value = crate::cli::lapi::DEFAULT_METRICS)]
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
    #[command(flatten)]
    pub console: crate::console::ConsoleArgs,
    /// The store (from the global `--db`).
    #[arg(skip)]
    pub db: Option<String>,
}

impl Options {
    /// Where the store is.
    #[must_use]
    pub fn store(&self) -> crate::store::Location {
        crate::store::Location::new(&self.state_dir, self.db.as_deref())
    }
}

fn sources(args: &Options) -> Result<Vec<Source>> {
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

/// Resolves at Ctrl-C or SIGTERM: how the servers `crowd api` and `crowd community serve` stop.
///
/// # Errors
/// The SIGTERM handler cannot be installed.
pub fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
}

/// `crowd run`: the daemon, in the foreground until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up failures (nothing attached is left half-done: attach errors name the interface).
pub fn run(
    settings: &Settings,
    ifaces: &[String],
    mode: Mode,
    sweep_every: Duration,
    rebuild_every: Duration,
    detect: &Options,
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
    crate::rules::state_dir(&detect.state_dir)?;
    let mut store = crate::rules::open_store(&detect.store())?;
    match crate::reconcile::reconcile(&mut store, &mut maps, unix_now()) {
        Ok(r) => tracing::info!(added = r.added, removed = r.removed, "maps reconciled with the store"),
        Err(e) => tracing::error!(error = %e, "reconciling the maps with the store"),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = crate::metrics::Metrics::new();
    let notify = crate::rules::notifiers(detect.notifications.as_ref(), detect.config.as_ref())?;
    if !detect.no_detect {
        detection::start(settings, detect, stop.clone(), metrics.clone(), notify.clone())?;
    }
    // A member of a community (credentials in the state directory): signals out, lists in.
    crate::community::member::runner::start_if_member(
        &detect.state_dir,
        &detect.store(),
        Default::default(),
        stop.clone(),
    )?;
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
        Some(crate::rules::enforcing_profile(
            detect.config.as_ref(),
            detect.profiles.as_ref(),
            &detect.state_dir,
            detect.simulation,
        )?)
    };
    // The store's change feed: decisions written by the API, the CLI or another host reach the
    // maps as soon as they are committed, whether this daemon serves the API or not.
    let mut changes = crate::store::changes::watch(&detect.store(), crate::store::changes::POLL)?;
    rt.block_on(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
        let api_pool = match api_profile {
            Some(p) => {
                let (stop, state) = (async move { let _ = api_stopped.await; }, &detect.store());
                let console = crate::console::Options {
                    remote: detect.console.console_remote,
                    maps: Some(settings.clone()),
                    config_dir: detect.config.clone(),
                    ..crate::console::Options::default()
                };
                let shared = api::Shared { metrics: metrics.clone(), notify, changes: changes.clone(), console };
                Some(api::start(detect.api_listen, state, p, shared, &detect.tls, stop).await?.1.db.clone())
            }
            None => None,
        };
        if !detect.no_metrics {
            // The API's store connections when it runs, else a pool of their own.
            let db = match api_pool {
                Some(db) => db,
                None => crate::lapi::StorePool::open(&detect.store())?,
            };
            api::start_metrics(detect.metrics_listen, metrics.clone(), db, Some(settings.clone())).await?;
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
