//! The Local API (axum): CrowdSec's wire contract for bouncers (`/v1/decisions`, the stream)
//! and agents (watchers, alerts, heartbeat), so existing bouncers and automation work unchanged.
//!
//! Owns the HTTP layer only: every read and write goes through [`StorePool`] (a pool of store
//! connections used on blocking threads). A poller watches the database's change counter, so a
//! decision written by any process (this daemon's detection, `crowd decisions add`, another
//! agent) wakes the long-polling stream clients at once (`wait=` on the stream: crowd's push
//! extension; CrowdSec's bouncers never send it and poll as before).
//!
//! Files: `auth.rs` (API keys, JWT, passwords), `decisions.rs` (bouncer routes), `alerts.rs`
//! (watchers, alerts, heartbeat), `model.rs` (the JSON).
pub mod alerts;
pub mod auth;
pub mod decisions;
pub mod model;
mod pool;
pub mod snapshot;
pub mod tls;

pub use pool::{LONG_WORKERS, StorePool, short_workers};

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokio::sync::watch;

use crate::{
    engine::profile::Profile,
    store::{Location, Store, StoreError},
};

/// Body limit for routes anyone may call (CrowdSec's).
pub const SMALL_BODY: usize = 2 << 20;
/// The store secret that signs agents' tokens.
pub const JWT_SECRET: &str = "jwt";
/// Body limit for authenticated routes (CrowdSec's).
pub const BIG_BODY: usize = 50 << 20;

/// What the handlers share.
pub struct ApiState {
    /// The store.
    pub db: Arc<StorePool>,
    /// Profiles applied to alerts pushed without decisions.
    pub profile: Mutex<Profile>,
    /// The JWT signing key (reloaded when `crowd machines rotate-key` replaces it).
    jwt_key: Arc<RwLock<Vec<u8>>>,
    /// Bumped whenever the database changes.
    pub changes: watch::Receiver<u64>,
    /// Request counters (and what `/metrics` shows).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Notifications of pushed alerts (profiles' `notifications:`).
    pub notify: crate::notify::Dispatcher,
    /// Which client-certificate OUs make bouncers and agents.
    pub roles: tls::Roles,
    /// Full pulls being served (shared by the pulls with the same filter).
    pub snapshots: Arc<snapshot::Snapshots>,
    /// The web console's state.
    pub console: crate::console::Console,
}

/// An API error, answered as CrowdSec does: a status and `{"message": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401 (machines).
    #[error("{0}")]
    Unauthorized(String),
    /// 403 (bouncers).
    #[error("access forbidden")]
    Forbidden,
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "local API");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        if let ApiError::Unauthorized(m) = &self {
            return (status, Json(serde_json::json!({"code": 401, "message": m}))).into_response();
        }
        (status, Json(model::ErrorBody { message: self.to_string(), errors: None })).into_response()
    }
}

impl ApiState {
    /// The API state over the store at `loc`: opens it, loads or makes the JWT key (reloaded
    /// when `changes`, the store's change feed, says the store moved).
    ///
    /// # Errors
    /// Store errors.
    pub fn new(
        loc: &Location,
        profile: Profile,
        changes: watch::Receiver<u64>,
        metrics: Arc<crate::metrics::Metrics>,
        notify: crate::notify::Dispatcher,
        roles: tls::Roles,
        console: crate::console::Options,
    ) -> Result<Arc<ApiState>, StoreError> {
        let db = StorePool::open(loc)?;
        let key = Store::open_at(loc)?.secret(JWT_SECRET, auth::random_token)?;
        let key = Arc::new(RwLock::new(key.into_bytes()));
        // A rotated key takes effect at the next change: tokens signed with the old one fail.
        let (jwt_key, mut rx, keys) = (key.clone(), changes.clone(), db.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Ok(Some(k)) = keys.run(|s| s.get_secret(JWT_SECRET)).await else { continue };
                if let Ok(mut held) = jwt_key.write()
                    && *held != k.as_bytes()
                {
                    tracing::info!("token signing key replaced: earlier tokens are refused");
                    *held = k.into_bytes();
                }
            }
        });
        Ok(Arc::new(ApiState {
            db,
            profile: Mutex::new(profile),
            jwt_key: key,
            changes,
            metrics,
            notify,
            roles,
            snapshots: Arc::default(),
            console: crate::console::Console::new(console),
        }))
    }
}

impl ApiState {
    /// The key tokens are signed and checked with now.
    #[must_use]
    pub fn jwt_key(&self) -> Vec<u8> {
        self.jwt_key.read().map(|k| k.clone()).unwrap_or_default()
    }
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({"status": "up"}))
}

/// The API's OpenAPI document (kept in `docs/openapi.yaml`).
pub const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI)
}

/// Counts each request by its route pattern, method and status.
async fn count(State(st): State<Arc<ApiState>>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(unknown)".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let code = resp.status().as_u16().to_string();
    st.metrics.requests.get_or_create(&crate::metrics::RouteLabels { route, method, code }).inc();
    resp
}

/// `/metrics` (its own listener, loopback): the counters, plus the store's active decisions and
/// the XDP program's packet counters read now (the pinned maps opened once, at the first scrape
/// that finds them, not at every scrape).
pub fn metrics_router(
    metrics: Arc<crate::metrics::Metrics>,
    db: Arc<StorePool>,
    maps: Option<crate::enforce::Settings>,
) -> Router {
    let opened: Arc<Mutex<Option<crate::enforce::maps::BanMaps>>> = Arc::new(Mutex::new(None));
    let handler = move || {
        let (metrics, db, maps, opened) = (metrics.clone(), db.clone(), maps.clone(), opened.clone());
        async move {
            let now = decisions::now();
            match db.run(move |s| Ok((s.active_counts(now)?, s.list_counts(now)?))).await {
                Ok((rows, lists)) => {
                    metrics.set_decisions(&rows);
                    metrics.set_lists(&lists);
                }
                Err(e) => tracing::warn!(error = %e, "metrics: counting decisions"),
            }
            if let Some(settings) = &maps
                && let Ok(mut held) = opened.lock()
            {
                if held.is_none() {
                    *held = crate::enforce::maps::BanMaps::open(settings).ok();
                }
                if let Some(Ok(s)) = held.as_ref().map(crate::enforce::maps::BanMaps::stats) {
                    metrics.set_xdp(&s);
                }
            }
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
        }
    };
    Router::new().route("/metrics", get(handler))
}

/// The routes, CrowdSec's paths and methods.
pub fn router(state: Arc<ApiState>) -> Router {
    let open = Router::new()
        .route("/v1/watchers", post(alerts::register))
        .route("/v1/watchers/login", post(alerts::login))
        .layer(DefaultBodyLimit::max(SMALL_BODY));
    let authed = Router::new()
        .route("/v1/decisions", get(decisions::query).head(decisions::head).delete(decisions::delete))
        .route("/v1/decisions/stream", get(decisions::stream).head(decisions::head))
        .route("/v1/decisions/{id}", axum::routing::delete(decisions::delete_one))
        .route("/v1/alerts", post(alerts::push).get(alerts::list).head(alerts::list).delete(alerts::delete))
        .route("/v1/alerts/{id}", get(alerts::one).head(alerts::one).delete(alerts::delete_one))
        .route("/v1/heartbeat", get(alerts::heartbeat))
        .route("/v1/refresh_token", get(alerts::refresh))
        .route("/v1/usage-metrics", post(decisions::usage_metrics))
        .layer(DefaultBodyLimit::max(BIG_BODY));
    Router::new()
        .route("/health", get(health))
        .route("/openapi.yaml", get(openapi))
        .merge(open)
        .merge(authed)
        .nest("/console", crate::console::router(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), count))
        // Agents may gzip their bodies (CrowdSec accepts it); answers are never compressed.
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The console's live feeds end first: a graceful shutdown waits for every response.
    let console = state.clone();
    let shutdown = async move {
        shutdown.await;
        console.console.stop();
    };
    match tls {
        Some(cfg) => {
            tls::serve(listener, cfg, router(state), shutdown).await;
            Ok(())
        }
        None => {
            axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: serde_yaml::Value = serde_yaml::from_str(super::OPENAPI).expect("valid YAML");
        let paths = doc["paths"].as_mapping().expect("paths");
        let router = include_str!("mod.rs");
        let mut n = 0;
        for line in router.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
            let path = line.split('"').nth(1).expect("a path");
            assert!(
                paths.contains_key(serde_yaml::Value::String(path.to_owned())),
                "{path} is not in docs/openapi.yaml"
            );
            n += 1;
        }
        assert!(n >= 10, "found only {n} routes in the router");
    }
}
