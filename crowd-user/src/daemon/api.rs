//! The Local API and its metrics listener as processes start them (`crowd run`'s daemon and
//! `crowd api`): the API's shared state over the store and its change feed, bound on its
//! address (TLS when configured, a warning beyond loopback without it), and `/metrics`.
use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, Result};

use crate::{
    engine::profile::Profile,
    lapi::{self, ApiState},
    store::Location,
};

/// What the Local API shares with the rest of the process.
pub struct Shared {
    /// Request counters (and what `/metrics` shows).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Notifications of pushed alerts.
    pub notify: crate::notify::Dispatcher,
    /// The store's change feed (`crate::store::changes`).
    pub changes: tokio::sync::watch::Receiver<u64>,
    /// How the web console is served.
    pub console: crate::console::Options,
}

/// Binds the API and serves it on the current runtime until `shutdown`.
///
/// # Errors
/// The address is taken or the store does not open.
pub async fn start(
    listen: SocketAddr,
    loc: &Location,
    profile: Profile,
    shared: Shared,
    tls: &lapi::tls::TlsArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(tokio::task::JoinHandle<()>, Arc<ApiState>)> {
    let Shared { metrics, notify, changes, mut console } = shared;
    let tls_cfg = lapi::tls::server_config(tls)?;
    console.secure = tls_cfg.is_some();
    if console.remote && !console.secure {
        tracing::warn!(
            "--console-remote without TLS: console passwords and session cookies cross the network in clear \
             (give --tls-cert and --tls-key)"
        );
    }
    let roles = lapi::tls::Roles { bouncers: tls.tls_bouncers_ou.clone(), agents: tls.tls_agents_ou.clone() };
    // Opening a store blocks (PostgreSQL's client runs its own runtime): off the async threads.
    let l = loc.clone();
    let state: Arc<ApiState> = tokio::task::spawn_blocking(move || -> Result<Arc<ApiState>> {
        drop(crate::rules::open_store(&l)?);
        Ok(ApiState::new(&l, profile, changes, metrics, notify, roles, console)?)
    })
    .await??;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("local API: binding {listen}"))?;
    tracing::info!(%listen, tls = tls_cfg.is_some(), "local API listening (web console under /console/)");
    if !listen.ip().is_loopback() && tls_cfg.is_none() {
        tracing::warn!(
            %listen,
            "the local API listens beyond loopback without TLS: bouncer keys, agent passwords and tokens cross \
             the network in clear (give --tls-cert and --tls-key)"
        );
    }
    crate::console::start(&state);
    let st = state.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = lapi::serve(listener, st, tls_cfg, shutdown).await {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    Ok((task, state))
}

/// Serves `/metrics` on `listen` (meant for loopback) for the life of the runtime.
///
/// # Errors
/// The address is taken.
pub async fn start_metrics(
    listen: SocketAddr,
    metrics: Arc<crate::metrics::Metrics>,
    db: Arc<lapi::StorePool>,
    maps: Option<crate::enforce::Settings>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("metrics: binding {listen}"))?;
    let app = lapi::metrics_router(metrics, db, maps);
    tracing::info!(%listen, "Prometheus metrics on /metrics");
    if !listen.ip().is_loopback() {
        tracing::warn!(%listen, "metrics are served beyond loopback, without authentication");
    }
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
