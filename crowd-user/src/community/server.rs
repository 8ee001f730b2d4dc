//! The community server's HTTP side: CrowdSec's central API under `/v2` (1.4.x) and `/v3`
//! (1.5+), the organisations' blocklist links, `/health` and Prometheus `/metrics`. Routes check
//! and answer; the [`engine`](super::engine) does the consensus work after the answer.
//!
//! Members authenticate with a JWT from `watchers/login` (HS256, `sub` and numeric `exp`, never
//! an `organization_id` claim: that would make CrowdSec 1.5+ start its PAPI client). A member's
//! address is its TCP peer, or the `X-Forwarded-For` of a configured trusted proxy; only its
//! prefix (/24, /48) and ASN are stored.
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use sha2::Digest;

use super::{
    config::{HubConfig, contains},
    engine::{EngineHandle, Msg},
    wire,
};
use crate::{
    clock::unix_now,
    lapi::{ApiError, StorePool, auth},
    store::MemberRow,
};

/// Body limit for signals (a bulk import becomes one huge signal; CrowdSec's own answers 413).
pub const SIGNALS_BODY: usize = 16 << 20;

/// What the handlers share.
pub struct Hub {
    /// The store.
    pub db: Arc<StorePool>,
    /// Settings.
    pub cfg: Arc<HubConfig>,
    /// Token and link signing key.
    key: Vec<u8>,
    /// The engine.
    pub engine: EngineHandle,
    asn_db: Option<maxminddb::Reader<Vec<u8>>>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

impl Hub {
    /// The server over `db`, signing with the stored key (made once, so tokens outlive restarts).
    ///
    /// # Errors
    /// Store errors, an unreadable ASN database.
    pub async fn new(db: Arc<StorePool>, loc: crate::store::Location, cfg: HubConfig) -> Result<Arc<Hub>, ApiError> {
        let cfg = Arc::new(cfg);
        let key = db.run(|s| s.secret("community-jwt", auth::random_token)).await?.into_bytes();
        let asn_db = match &cfg.asn_db {
            Some(p) => Some(
                maxminddb::Reader::open_readfile(p)
                    .map_err(|e| ApiError::Internal(format!("ASN database `{}`: {e}", p.display())))?,
            ),
            None => None,
        };
        let engine = super::engine::start(db.clone(), loc, cfg.clone()).await?;
        Ok(Arc::new(Hub { db, cfg, key, engine, asn_db }))
    }

    /// The member's address: the peer, or what a trusted proxy says it forwarded.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = crate::addr::canonical_ip(peer);
        if self.cfg.trusted_proxies.iter().any(|n| contains(*n, peer))
            && let Some(fwd) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
            && let Some(ip) = fwd.split(',').next_back().and_then(|s| s.trim().parse::<IpAddr>().ok())
        {
            return crate::addr::canonical_ip(ip);
        }
        peer
    }

    /// The ASN of `ip`: the operator's table first, then the database; 0 when unknown.
    fn asn(&self, ip: IpAddr) -> u32 {
        if let Some((_, asn)) = self.cfg.asns.iter().find(|(n, _)| contains(*n, ip)) {
            return *asn;
        }
        self.asn_db
            .as_ref()
            .and_then(|r| r.lookup(ip).ok())
            .and_then(|l| l.decode::<maxminddb::geoip2::Asn>().ok().flatten())
            .and_then(|a| a.autonomous_system_number)
            .unwrap_or(0)
    }

    /// A link's capability token for `org`.
    fn link_token(&self, org: &str) -> String {
        let mut h = sha2::Sha256::new();
        h.update(&self.key);
        h.update(b"\0list\0");
        h.update(org.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn token(&self, machine: &str, now: u64) -> Result<(String, u64), ApiError> {
        let exp = now + self.cfg.token_ttl.as_secs();
        let claims = Claims { sub: machine.to_owned(), exp, iat: now };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.key),
        )
        .map(|t| (t, exp))
        .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// `/24` of an IPv4 address, `/48` of an IPv6 one, as text.
#[must_use]
pub fn prefix_of(ip: IpAddr) -> String {
    match crate::addr::canonical_ip(ip) {
        IpAddr::V4(a) => format!("{}/24", std::net::Ipv4Addr::from(u32::from(a) & 0xffff_ff00)),
        IpAddr::V6(a) => format!("{}/48", std::net::Ipv6Addr::from(u128::from(a) & !((1u128 << 80) - 1))),
    }
}

/// An authenticated member (from its token).
pub struct Member(pub MemberRow);

impl FromRequestParts<Arc<Hub>> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("Unauthorized".into()))?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &jsonwebtoken::DecodingKey::from_secret(&hub.key), &v)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?
            .claims;
        let m = hub.db.run(move |s| s.member(&claims.sub)).await?;
        m.map(Member).ok_or_else(|| ApiError::Unauthorized("unknown machine".into()))
    }
}

fn credentials(headers: &HeaderMap, body: &[u8]) -> Result<wire::Credentials, ApiError> {
    let c: wire::Credentials = crate::lapi::alerts::parse_json(headers, body)?;
    if c.machine_id.trim().is_empty() || c.password.is_empty() {
        return Err(ApiError::BadRequest("machine_id and password are required".into()));
    }
    Ok(c)
}

/// `POST watchers`: registration with an organisation's enrollment key (`registration_token`).
async fn register(State(hub): State<Arc<Hub>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let c = credentials(&headers, &body)?;
    let key = c.registration_token.clone().unwrap_or_default();
    let hash = if key.is_empty() { String::new() } else { auth::hash_key(key.trim()) };
    let org = hub.db.run(move |s| s.org_for_key(&hash)).await?;
    let org = match org {
        Some(o) => o,
        None if hub.cfg.open_registration && key.is_empty() => c.machine_id.clone(),
        None => return Err(ApiError::Forbidden),
    };
    let pw = c.password.clone();
    let phc = tokio::task::spawn_blocking(move || auth::hash_password(&pw))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let (id, now) = (c.machine_id.clone(), unix_now());
    let added = hub
        .db
        .run(move |s| {
            s.add_org(&org, "", now)?;
            s.add_member(&id, &phc, &org, false, now)
        })
        .await?;
    if !added {
        return Ok((StatusCode::CONFLICT, Json(json!({"message": "User already registered."}))).into_response());
    }
    Ok((StatusCode::CREATED, Json(json!({"message": "OK"}))).into_response())
}

/// `POST watchers/login`.
async fn login(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let c = credentials(&headers, &body)?;
    let id = c.machine_id.clone();
    let m = hub.db.run(move |s| s.member(&id)).await?;
    let wrong = || ApiError::Unauthorized("The machine_id or password is incorrect".into());
    let m = m.ok_or_else(wrong)?;
    let (pw, phc) = (c.password.clone(), m.password_hash.clone());
    if !tokio::task::spawn_blocking(move || auth::verify_password(&pw, &phc)).await.unwrap_or(false) {
        return Err(wrong());
    }
    let ip = hub.client(peer.ip(), &headers);
    let (prefix, asn) = (prefix_of(ip), hub.asn(ip));
    let scenarios = c.scenarios.unwrap_or_default().join(",");
    let now = unix_now();
    let (id, p2) = (m.machine_id.clone(), prefix.clone());
    hub.db.run(move |s| s.member_login(&id, &p2, i64::from(asn), &scenarios, now)).await?;
    let r = super::consensus::Reporter {
        machine: m.machine_id.clone(),
        org: m.org.clone(),
        egress: ip,
        asn,
        registered_at: m.created_at,
        sensor: m.sensor,
    };
    let _ = hub.engine.tx.send(Msg::Member(r)).await;
    let (token, exp) = hub.token(&m.machine_id, now.unsigned_abs())?;
    let expire = crate::clock::rfc3339(i64::try_from(exp).unwrap_or(i64::MAX));
    Ok(Json(json!({"code": 200, "expire": expire, "token": token})))
}

/// `POST signals`: answered at once; each item is checked alone (a bad one is skipped and
/// counted), the good ones go to the engine.
async fn signals(
    Member(m): Member,
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = crate::lapi::alerts::parse_json(&headers, &body)?;
    let c = &hub.engine.counters;
    let mut good = Vec::with_capacity(items.len());
    for item in &items {
        match wire::signal(item, &m.machine_id, hub.cfg.share_context) {
            Ok(s) => good.push(s),
            Err(e) => {
                c.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(machine = %m.machine_id, error = %e, "signal skipped");
            }
        }
    }
    let n = good.len() as u64;
    if !good.is_empty() {
        if hub.engine.tx.try_send(Msg::Signals(good)).is_ok() {
            c.accepted.fetch_add(n, Ordering::Relaxed);
        } else {
            c.shed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Json(json!({"message": "OK"})))
}

/// The entries a member gets: the community list (tailored to the scenarios it runs) and its
/// organisation's list; everything when `since` is `None`, else what changed after it.
async fn entries(
    hub: &Arc<Hub>,
    m: &MemberRow,
    since: Option<i64>,
) -> Result<(Vec<crate::store::EntryRow>, i64), ApiError> {
    let (org, now) = (m.org.clone(), unix_now());
    let job = move |s: &mut crate::store::Store| {
        let seq = s.list_seq()?;
        let rows = match since {
            None => {
                let mut r = s.list_entries("", now)?;
                r.extend(s.list_entries(&org, now)?);
                r
            }
            Some(n) => s.list_changes(&[String::new(), org], n, seq)?,
        };
        Ok((rows, seq))
    };
    // A full list is a long read: on the full-pull workers, never delaying logins and signals.
    let (mut rows, seq) = if since.is_none() { hub.db.run_long(job).await? } else { hub.db.run(job).await? };
    if hub.cfg.tailor && !m.scenarios.is_empty() {
        let runs: std::collections::HashSet<&str> = m.scenarios.split(',').collect();
        rows.retain(|e| !e.list.is_empty() || runs.contains(e.scenario.as_str()));
    }
    Ok((rows, seq))
}

async fn stream(
    hub: Arc<Hub>,
    m: MemberRow,
    q: HashMap<String, String>,
    v3: bool,
    host: String,
) -> Result<Response, ApiError> {
    let startup = q.get("startup").is_some_and(|v| v == "true" || v == "1") || m.last_pull.is_none();
    let since = (!startup).then_some(m.last_seq);
    let (mut rows, mut seq) = entries(&hub, &m, since).await?;
    // crowd's long poll: `wait=30s` holds an empty delta until something is published.
    let wait = q.get("wait").and_then(|w| humantime::parse_duration(w).ok()).unwrap_or(Duration::ZERO);
    if rows.is_empty() && !startup && !wait.is_zero() {
        let mut published = hub.engine.published.clone();
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        while rows.is_empty() && tokio::time::Instant::now() < deadline {
            if tokio::time::timeout_at(deadline, published.changed()).await.is_err() {
                break;
            }
            (rows, seq) = entries(&hub, &m, since).await?;
        }
    }
    let now = unix_now();
    // An empty answer moves nothing but the time: written at most once a minute.
    if seq != m.last_seq || now - m.last_pull.unwrap_or(0) >= 60 {
        let id = m.machine_id.clone();
        hub.db.run(move |s| s.member_pulled(&id, seq, now)).await?;
    }
    let body = if v3 {
        let base = hub.cfg.url.clone().unwrap_or_else(|| format!("http://{host}/"));
        let link = wire::Link {
            name: wire::list_name(&m.org),
            url: format!("{base}v3/lists/{}?token={}", m.org, hub.link_token(&m.org)),
            remediation: "ban",
            scope: "ip",
            duration: crate::clock::go_duration(hub.cfg.org_list_duration),
        };
        wire::stream_v3(&rows, vec![link], now)
    } else {
        wire::stream_v2(&rows, now)
    };
    let mut r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if !wait.is_zero() {
        // Tells the member this server holds its deltas, so it asks again at once after any
        // answer (an answer that changed nothing in its store included).
        r.headers_mut().insert(LONG_POLL, header::HeaderValue::from(wait.min(MAX_WAIT).as_secs()));
    }
    Ok(r)
}

/// The answer header saying the stream held the request up to that many seconds (crowd's
/// long poll); a server without it answers at once and is polled on an interval.
pub const LONG_POLL: &str = "x-crowd-long-poll";

/// The longest a stream request is held.
const MAX_WAIT: Duration = Duration::from_secs(60);

fn host(headers: &HeaderMap) -> String {
    headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_owned()
}

async fn stream_v2(
    Member(m): Member,
    State(hub): State<Arc<Hub>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    stream(hub, m, q, false, host(&headers)).await
}

async fn stream_v3(
    Member(m): Member,
    State(hub): State<Arc<Hub>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    stream(hub, m, q, true, host(&headers)).await
}

/// `GET /v3/lists/{org}?token=`: an organisation's list as plain text, one value per line
/// (capability URL: CrowdSec fetches links without credentials), with `If-Modified-Since`.
async fn list_link(
    State(hub): State<Arc<Hub>>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if q.get("token").is_none_or(|t| *t != hub.link_token(&org)) {
        return Err(ApiError::Forbidden);
    }
    let (now, o2) = (unix_now(), org.clone());
    let (rows, changed) = hub.db.run(move |s| Ok((s.list_entries(&o2, now)?, s.list_changed_at(&o2)?))).await?;
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    // HTTP dates count whole seconds: a list changed in the current second may change again
    // within it, so it is announced a second older (the client's next `If-Modified-Since` then
    // gets the list again rather than a 304 that would hide that change for good).
    let stamp = if changed >= unix_now() { changed - 1 } else { changed };
    let last_modified = chrono::DateTime::from_timestamp(stamp, 0)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default();
    if since.is_some_and(|s| changed <= s) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::LAST_MODIFIED, last_modified)]).into_response());
    }
    let body: String = rows
        .iter()
        .filter(|e| wire::ip_value(&e.value).is_some() || wire::range_value(&e.value).is_some())
        .map(|e| format!("{}\n", e.value))
        .collect();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()), (header::LAST_MODIFIED, last_modified)], body)
        .into_response())
}

/// `POST watchers/enroll`: joins the organisation whose key is `attachment_key`.
async fn enroll(
    Member(m): Member,
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let e: wire::Enroll = crate::lapi::alerts::parse_json(&headers, &body)?;
    let key = e.attachment_key.unwrap_or_default();
    if key.trim().is_empty() {
        return Err(ApiError::Forbidden);
    }
    let hash = auth::hash_key(key.trim());
    let Some(org) = hub.db.run(move |s| s.org_for_key(&hash)).await? else {
        return Err(ApiError::Forbidden);
    };
    if org == m.org {
        return Ok((StatusCode::OK, Json(json!({"message": "already enrolled"}))).into_response());
    }
    let (id, o2) = (m.machine_id.clone(), org.clone());
    hub.db.run(move |s| s.set_member_org(&id, &o2)).await?;
    let member = hub.db.run({
        let id = m.machine_id.clone();
        move |s| s.member(&id)
    });
    if let Some(r) = member.await?.as_ref().and_then(super::engine::reporter_of) {
        let _ = hub.engine.tx.send(Msg::Member(r)).await;
    }
    Ok((StatusCode::CREATED, Json(json!({"message": "enrolled", "organization": org}))).into_response())
}

/// `POST metrics`, `usage-metrics`: accepted and dropped (JSON checked).
async fn accept(_m: Member, headers: HeaderMap, body: Bytes) -> Result<Json<Value>, ApiError> {
    let _: Value = crate::lapi::alerts::parse_json(&headers, &body)?;
    Ok(Json(json!({"message": "OK"})))
}

async fn health() -> &'static str {
    "ok"
}

/// Prometheus text of the engine's counters.
async fn prometheus(State(hub): State<Arc<Hub>>) -> String {
    let c = &hub.engine.counters;
    let f = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    format!(
        "# TYPE crowd_community_signals_total counter\n\
         crowd_community_signals_total{{result=\"accepted\"}} {}\n\
         crowd_community_signals_total{{result=\"skipped\"}} {}\n\
         crowd_community_signals_total{{result=\"counted\"}} {}\n\
         crowd_community_signals_total{{result=\"refused\"}} {}\n\
         crowd_community_signals_total{{result=\"canary\"}} {}\n\
         # TYPE crowd_community_batches_shed_total counter\ncrowd_community_batches_shed_total {}\n\
         # TYPE crowd_community_entries_total counter\n\
         crowd_community_entries_total{{change=\"published\"}} {}\n\
         crowd_community_entries_total{{change=\"withdrawn\"}} {}\n",
        f(&c.accepted),
        f(&c.skipped),
        f(&c.counted),
        f(&c.refused),
        f(&c.canaries),
        f(&c.shed),
        f(&c.published),
        f(&c.withdrawn),
    )
}

/// The routes shared by `/v2` and `/v3`.
fn common() -> Router<Arc<Hub>> {
    Router::new()
        .route("/watchers", post(register).layer(DefaultBodyLimit::max(crate::lapi::SMALL_BODY)))
        .route("/watchers/login", post(login).layer(DefaultBodyLimit::max(crate::lapi::SMALL_BODY)))
        .route("/watchers/enroll", post(enroll))
        .route("/signals", post(signals).layer(DefaultBodyLimit::max(SIGNALS_BODY)))
        .route("/metrics", post(accept))
        .route("/metrics/", post(accept))
        .route("/usage-metrics", post(accept))
}

/// The server's routes.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .nest("/v2", common().route("/decisions/stream", get(stream_v2)))
        .nest("/v3", common().route("/decisions/stream", get(stream_v3)).route("/lists/{org}", get(list_link)))
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        // CrowdSec 1.7 gzips bodies over 5 KiB.
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .with_state(hub)
}

/// Serves on `listener` until `shutdown`.
///
/// # Errors
/// I/O errors of the listener.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: Arc<Hub>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(hub).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_keep_only_the_network() {
        assert_eq!(super::prefix_of("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        assert_eq!(super::prefix_of("2001:db8:1:2::5".parse().unwrap()), "2001:db8:1::/48");
        assert_eq!(super::prefix_of("::ffff:198.51.100.3".parse().unwrap()), "198.51.100.0/24");
    }
}
