//! Bouncer routes: `GET/HEAD /v1/decisions` (query mode), `GET/HEAD /v1/decisions/stream`
//! (full pull with `startup=true`, else the delta since this bouncer's last pull, kept
//! server-side), machine deletes, and `POST /v1/usage-metrics` (bouncers' and agents' reports,
//! checked as CrowdSec's `AllMetrics` and kept, the latest per component, for the console).
//!
//! A full pull is one read of the store shared by the pulls that arrive together, kept
//! gzip-compressed and streamed to each at its socket's pace ([`super::snapshot`]), so a
//! million decisions never sit in memory as one plain body, nor once per bouncer. crowd's extension: `wait=DURATION` on a delta pull
//! holds the request until something changes (at most 60 s): a long poll that `crowd enforce`
//! uses to get decisions within milliseconds. Unknown parameters are ignored, as CrowdSec does.
use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{
    ApiError, ApiState,
    auth::{Bouncer, Caller, Machine},
    model::{UsageReport, WireDecision},
    snapshot::{self, Compressor},
};
use crate::{
    addr::Target,
    store::{AddrMatch, Cursor, DecisionFilter, DecisionRow, StreamPart},
};

/// Ended decisions a full pull still lists (CrowdSec's default flush age).
pub const KEEP_DELETED_SECS: i64 = 7 * 86400;
const CHUNK: usize = 64 << 10;

pub use crate::clock::unix_now as now;

/// CrowdSec's canonical scope names (query filters are case-insensitive for the known ones).
#[must_use]
pub fn canonical_scope(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "ip" => "Ip".into(),
        "range" => "Range".into(),
        "country" => "Country".into(),
        "as" => "AS".into(),
        _ => s.to_owned(),
    }
}

fn list(q: &HashMap<String, String>, key: &str) -> Vec<String> {
    q.get(key)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn truthy(q: &HashMap<String, String>, key: &str) -> Option<bool> {
    q.get(key).map(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The filter a query string asks for.
///
/// # Errors
/// [`ApiError::BadRequest`] for an `ip`/`range` that is not one, or a bad `limit`.
pub fn filter(q: &HashMap<String, String>, default_scopes: &[&str]) -> Result<DecisionFilter, ApiError> {
    let mut scopes: Vec<String> = list(q, "scopes");
    scopes.extend(list(q, "scope"));
    if scopes.is_empty() {
        scopes = default_scopes.iter().map(|s| (*s).to_owned()).collect();
    }
    let contains = truthy(q, "contains").unwrap_or(true);
    let addr = match (q.get("ip"), q.get("range")) {
        (Some(v), _) | (None, Some(v)) if !v.is_empty() => {
            let t: Target = v.parse().map_err(|e| ApiError::BadRequest(format!("`{v}`: {e}")))?;
            Some(AddrMatch { target: t, contains })
        }
        _ => None,
    };
    let limit = match q.get("limit") {
        Some(l) => Some(l.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("limit `{l}` is not a number")))?),
        None => None,
    };
    Ok(DecisionFilter {
        scopes: scopes.iter().map(|s| canonical_scope(s)).collect(),
        value: q.get("value").filter(|v| !v.is_empty()).cloned(),
        kind: q.get("type").filter(|v| !v.is_empty()).cloned(),
        addr,
        origins: list(q, "origins").into_iter().chain(list(q, "origin")).collect(),
        scenarios_containing: list(q, "scenarios_containing"),
        scenarios_not_containing: list(q, "scenarios_not_containing"),
        simulated: truthy(q, "simulated").unwrap_or(false),
        id: None,
        limit,
        newest_first: false,
        before_id: None,
    })
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

/// `HEAD /v1/decisions[/stream]`: the key is checked, nothing else happens.
pub async fn head(_b: Bouncer) -> StatusCode {
    StatusCode::OK
}

/// `GET /v1/decisions`: active decisions matching the filters, or `null`.
///
/// # Errors
/// Bad filters, store errors.
pub async fn query(
    _b: Bouncer,
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let f = filter(&q, &[])?;
    let t = now();
    let rows = st.db.run(move |s| s.query(&f, t)).await?;
    if rows.is_empty() {
        return Ok(json_response(b"null".to_vec()));
    }
    let wire: Vec<WireDecision<'_>> = rows.iter().map(|r| WireDecision::of(r, t)).collect();
    Ok(json_response(serde_json::to_vec(&wire).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// Writes one stream body: into memory, or chunk by chunk into a snapshot's compressor.
struct Writer<'a> {
    buf: Vec<u8>,
    out: Option<&'a mut Compressor>,
    first: bool,
    count: usize,
    now: i64,
    /// Writing the `new` half.
    new_part: bool,
}

impl Writer<'_> {
    fn new(now: i64, out: Option<&mut Compressor>) -> Writer<'_> {
        Writer { buf: Vec::new(), out, first: true, count: 0, now, new_part: true }
    }
    fn raw(&mut self, s: &[u8]) {
        self.buf.extend_from_slice(s);
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }
    /// Hands what is buffered to the compressor; an in-memory answer keeps it all.
    fn flush(&mut self) {
        if let Some(c) = &mut self.out {
            c.write(&self.buf);
            self.buf.clear();
        }
    }
    fn item(&mut self, r: &DecisionRow) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.count += 1;
        if let (Some(c), true) = (&self.out, self.new_part) {
            c.lists_until(r.until);
        }
        let _ = serde_json::to_writer(&mut self.buf, &WireDecision::of(r, self.now));
        if self.buf.len() >= CHUNK {
            self.flush();
        }
    }
}

/// `GET /v1/decisions/stream`.
///
/// # Errors
/// Bad filters, store errors.
pub async fn stream(
    Bouncer(b): Bouncer,
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: header::HeaderMap,
) -> Result<Response, ApiError> {
    let f = filter(&q, &["ip", "range"])?;
    let startup = truthy(&q, "startup").unwrap_or(false) || b.last_pull.is_none();
    if startup {
        let gzip =
            headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| v.to_str().is_ok_and(snapshot::accepts_gzip));
        return Ok(full_pull(&st, b.id, f, gzip));
    }
    let since = Cursor { last_seq: b.last_seq, last_pull: b.last_pull.unwrap_or(0) };
    let wait = q
        .get("wait")
        .and_then(|w| humantime::parse_duration(w).ok())
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = st.changes.clone();
    loop {
        changes.mark_unchanged();
        let f2 = f.clone();
        let t = now();
        let (body, count, cursor) = st
            .db
            .run(move |s| {
                let mut w = Writer::new(t, None);
                let cur = write_pull(s, &mut w, &f2, Some(since), t)?;
                Ok((w.buf, w.count, cur))
            })
            .await?;
        let timed_out = tokio::time::Instant::now() >= deadline;
        if count > 0 || timed_out {
            // An empty answer moves nothing but the pull's time; a window that had nothing to
            // send stays correct from the older time, so an idle poller writes once a minute.
            if count > 0 || t - since.last_pull >= 60 {
                let id = b.id;
                st.db.run(move |s| s.set_bouncer_pull(id, cursor)).await?;
            }
            return Ok(json_response(body));
        }
        // Nothing yet: wait for a change (or the deadline), then look again.
        let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
    }
}

/// Writes `{"new": [...], "deleted": [...]}` for one pull (both halves cut at the same change number).
fn write_pull(
    s: &mut crate::store::Store,
    w: &mut Writer,
    f: &DecisionFilter,
    since: Option<Cursor>,
    t: i64,
) -> Result<Cursor, crate::store::StoreError> {
    w.raw(b"{\"new\": [");
    let cur = s.stream(f, since, None, t, KEEP_DELETED_SECS, StreamPart::New, |r| w.item(r))?;
    w.raw(b"], \"deleted\": [");
    w.first = true;
    w.new_part = false;
    s.stream(f, since, Some(cur.last_seq), t, KEEP_DELETED_SECS, StreamPart::Deleted, |r| w.item(r))?;
    w.raw(b"]}");
    Ok(cur)
}

/// A full pull: a shared snapshot of the rows (see [`super::snapshot`]), gzip-compressed if the
/// client takes it; the bouncer's cursor moves only once all of it was sent.
fn full_pull(st: &Arc<ApiState>, bouncer: i64, f: DecisionFilter, gzip: bool) -> Response {
    let t = now();
    let version = *st.changes.borrow();
    let snap = st.snapshots.get(&st.db, &f.clone(), version, t, move |s, c| {
        let t = now();
        let mut w = Writer::new(t, Some(c));
        let cur = write_pull(s, &mut w, &f, None, t)?;
        w.flush();
        Ok(cur)
    });
    let db = st.db.clone();
    let body = snapshot::body(snap, gzip, move |cur| async move {
        if let Err(e) = db.run(move |s| s.set_bouncer_pull(bouncer, cur)).await {
            tracing::error!(error = %e, "saving a bouncer's cursor");
        }
    });
    let mut r = ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response();
    r.headers_mut().insert(header::VARY, header::HeaderValue::from_static("accept-encoding"));
    if gzip {
        r.headers_mut().insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("gzip"));
    }
    r
}

fn deleted_answer(n: usize) -> Json<serde_json::Value> {
    Json(serde_json::json!({"nbDeleted": n.to_string()}))
}

/// `DELETE /v1/decisions`: ends the active decisions matching the filters.
///
/// # Errors
/// Bad filters, store errors.
pub async fn delete(
    _m: Machine,
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut f = filter(&q, &[])?;
    if let Some(s) = q.get("scenario") {
        f.scenarios_containing = vec![s.clone()];
    }
    f.simulated = true;
    let t = now();
    let gone = st.db.run(move |s| s.delete_matching(&f, t)).await?;
    Ok(deleted_answer(gone.len()))
}

/// `DELETE /v1/decisions/:id`.
///
/// # Errors
/// A bad id, store errors.
pub async fn delete_one(
    _m: Machine,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::BadRequest(format!("decision id `{id}` is not a number")))?;
    let f = DecisionFilter { id: Some(id), simulated: true, ..Default::default() };
    let t = now();
    let gone = st.db.run(move |s| s.delete_matching(&f, t)).await?;
    if gone.is_empty() {
        return Err(ApiError::NotFound("decision not found".into()));
    }
    Ok(deleted_answer(gone.len()))
}

/// `POST /v1/usage-metrics`: a bouncer's or an agent's usage report, checked as CrowdSec's
/// `AllMetrics` ([`UsageReport::parse`]) and kept as its latest ([`crate::store::Store::usage_put`]).
///
/// As in CrowdSec, a bouncer sends exactly one `remediation_components` item and an agent one
/// `log_processors` item (the other list is ignored). The row is named after the authenticated
/// caller (the bouncer's name, the machine id), never the body's `name`, and the stored object's
/// `name` is set to it, so nobody writes or impersonates another's report. The type is the
/// body's `type` (else the bouncer's User-Agent type) for bouncers, `log-processor` for agents.
///
/// # Errors
/// 400 with what is wrong (CrowdSec answers 422 for missing fields; bouncers only log either),
/// 403/401 for bad credentials, store errors.
pub async fn usage_metrics(who: Caller, State(st): State<Arc<ApiState>>, body: Bytes) -> Result<StatusCode, ApiError> {
    let report = UsageReport::parse(&body).map_err(ApiError::BadRequest)?;
    let one = |mut items: Vec<serde_json::Value>, what: &str| match items.len() {
        1 => Ok(items.remove(0)),
        0 => Err(ApiError::BadRequest(format!("Missing {what} data"))),
        _ => Err(ApiError::BadRequest(format!("Payload has more than one {what}"))),
    };
    let (kind, name, kind_of, mut item) = match who {
        Caller::Bouncer(b) => {
            let item = one(report.remediation_components, "remediation component")?;
            let t = item.get("type").and_then(serde_json::Value::as_str).filter(|t| !t.is_empty());
            let t = t.map_or(b.kind, str::to_owned);
            ("remediation_components", b.name, t, item)
        }
        Caller::Machine(id) => {
            let item = one(report.log_processors, "log processor")?;
            ("log_processors", id, "log-processor".to_owned(), item)
        }
    };
    item["name"] = serde_json::Value::String(name.clone());
    let (at, body) = (now(), item.to_string());
    st.db.run(move |s| s.usage_put(kind, &name, &kind_of, at, &body)).await?;
    Ok(StatusCode::CREATED)
}
