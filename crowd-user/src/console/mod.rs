//! The web console under `/console/` of the Local API (`crowd run` and `crowd api`): pages
//! rendered on the server (minijinja templates embedded in the binary), htmx for forms and live
//! updates over server-sent events, uPlot for charts; every asset is embedded (no CDN).
//!
//! Owns the console's HTTP layer: who may look (`session.rs`: console users, cookies, CSRF,
//! login rate limit), what is shown (`pages.rs`, `overview.rs`), what may be changed
//! (`actions.rs`: ban, unban, extend, allowlist, machine validation, each recorded in the
//! audit log) and the live feed (`live.rs`). Reads and writes go through the API's
//! [`StorePool`](crate::lapi::StorePool); the kernel's counters through the pinned maps when
//! this process enforces (`crowd run`).
//!
//! By default it answers loopback clients only (`--console-remote` opens it to others; give the
//! API TLS then, which also marks its cookies `Secure`).
mod actions;
mod live;
mod overview;
mod pages;
mod session;
#[cfg(test)]
mod tests;
mod view;

pub use session::{ROLES, hash_password};

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
};

use crate::lapi::ApiState;

/// How the console is served.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Answer clients beyond loopback.
    pub remote: bool,
    /// The API is served over TLS: cookies are `Secure`.
    pub secure: bool,
    /// The pinned maps of the XDP program this process enforces with (kernel counters,
    /// per-ban drops, the kernel allowlist), if any.
    pub maps: Option<crate::enforce::Settings>,
    /// This host's name, as the fleet page shows it.
    pub host: String,
    /// The `--config` folder whose rules the parse trails run (embedded rules without it).
    pub config_dir: Option<std::path::PathBuf>,
}

/// `--console-remote` (flattened into `crowd run` and `crowd api`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConsoleArgs {
    /// Let the web console (/console/) answer clients beyond loopback (use TLS then).
    #[arg(long)]
    pub console_remote: bool,
}

/// The console's state in the API process.
pub struct Console {
    opts: Options,
    sessions: session::Limiter,
    overview: overview::Cache,
    kernel: Mutex<Option<crate::enforce::maps::BanMaps>>,
    rules: Mutex<Option<crate::detect::Detector>>,
    sampler: live::Sampler,
    /// Set when the API shuts down: live feeds end (a server-sent stream never ends by itself,
    /// and a graceful shutdown waits for every response).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Console {
    /// A console served with `opts`.
    #[must_use]
    pub fn new(mut opts: Options) -> Console {
        if opts.host.is_empty() {
            opts.host =
                std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        }
        Console {
            opts,
            sessions: session::Limiter::default(),
            overview: overview::Cache::default(),
            kernel: Mutex::new(None),
            rules: Mutex::new(None),
            sampler: live::Sampler::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Ends the live feeds (the API is shutting down).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Runs `f` on the pinned maps (opened at first use), if this process has them.
    fn with_maps<T>(&self, f: impl FnOnce(&mut crate::enforce::maps::BanMaps) -> T) -> Option<T> {
        let settings = self.opts.maps.as_ref()?;
        let mut held = self.kernel.lock().ok()?;
        if held.is_none() {
            *held = crate::enforce::maps::BanMaps::open(settings).ok();
        }
        held.as_mut().map(f)
    }
}

/// Starts what the console keeps up to date in the background (the kernel sampler, when this
/// process enforces), so the overview's chart has history when someone first looks.
pub fn start(st: &Arc<ApiState>) {
    live::Sampler::start(st);
}

/// The console's routes, to nest under `/console`.
pub fn router(state: Arc<ApiState>) -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(|| async { axum::response::Redirect::to("/console/overview") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/overview", get(pages::overview))
        .route("/overview.json", get(pages::overview_json))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}", get(pages::alert))
        .route("/decisions", get(pages::decisions).post(actions::ban))
        .route("/decisions/{id}/delete", post(actions::unban))
        .route("/decisions/{id}/extend", post(actions::extend))
        .route("/allowlist", post(actions::allow))
        .route("/allowlist/delete", post(actions::disallow))
        .route("/kernel-allowlist", post(actions::kernel_allow))
        .route("/kernel-allowlist/delete", post(actions::kernel_disallow))
        .route("/fleet", get(pages::fleet))
        .route("/machines/validate", post(actions::validate))
        .route("/audit", get(pages::audit))
        .route("/events", get(live::events))
        .route("/assets/{name}", get(view::asset))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(state, guard))
}

/// Whether `host` (a `Host` header) names this machine by address or as `localhost`: a page of
/// another site that rebinds its name to 127.0.0.1 sends its own name.
fn local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Loopback only unless `--console-remote` (and then only for this machine's own names);
/// changes only from the console's own pages (`Origin`); no caching of pages; framing refused.
async fn guard(
    State(st): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let refuse = |why: &'static str| (StatusCode::FORBIDDEN, why).into_response();
    if !st.console.opts.remote {
        if !crate::addr::canonical_ip(peer.ip()).is_loopback() {
            return refuse("the console answers loopback clients only (start crowd with --console-remote, and TLS)");
        }
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !local_host(host) {
            return refuse("the console answers requests for localhost or an address only (a page of another site?)");
        }
    }
    if req.method() == axum::http::Method::POST
        && let Some(origin) = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok())
    {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same = origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host));
        if !same {
            return refuse("a change from another site's page is refused (Origin is not this console)");
        }
    }
    let asset = req.uri().path().starts_with("/console/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ),
    );
    if !asset {
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    }
    resp
}
