//! Agent routes: machine registration and login (JWT), alerts pushed, searched and deleted,
//! heartbeat. An alert pushed without decisions goes through crowd's profiles (allowlists and
//! our own addresses first); one that carries decisions (from `cscli`-style tools) keeps them,
//! but never against an allowlisted address.
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    ApiError, ApiState,
    auth::{self, Machine},
    decisions::{canonical_scope, now},
    model::{Alert, AlertDecision, WireDecision},
};
use crate::{
    addr::Target,
    store::{AddrMatch, AlertFilter, AlertRow, NewAlert, NewDecision},
};

/// Parses a JSON body; a declared content type other than JSON is refused.
///
/// # Errors
/// 415 for a wrong content type, 400 for JSON that does not fit (with serde's line and column).
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
        && !ct.to_ascii_lowercase().contains("json")
    {
        return Err(ApiError::UnsupportedMedia(format!("content type `{ct}`: expected application/json")));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    machine_id: String,
    password: String,
    #[serde(default)]
    #[allow(dead_code)]
    registration_token: Option<String>,
}

/// `POST /v1/watchers`: registers a machine (to be validated with `crowd machines validate`).
///
/// # Errors
/// Bad bodies, a taken name, store errors.
pub async fn register(
    State(st): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let r: Register = parse_json(&headers, &body)?;
    if r.machine_id.is_empty() || r.password.is_empty() || r.machine_id.len() > 128 {
        return Err(ApiError::BadRequest(
            "machine_id and password are required (machine_id: at most 128 bytes)".into(),
        ));
    }
    let id = r.machine_id.clone();
    if st.db.run(move |s| s.machine(&id)).await?.is_some() {
        return Err(ApiError::Forbidden);
    }
    let hash = auth::hash_password(&r.password)?;
    let ip = peer.ip().to_string();
    let t = now();
    st.db.run(move |s| s.upsert_machine(&r.machine_id, &hash, false, &ip, t)).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
struct Login {
    machine_id: String,
    password: String,
    /// `null` from `cscli` (which logs in to read, not to push): the scenarios known are kept.
    #[serde(default)]
    scenarios: Option<Vec<String>>,
}

fn token_answer(token: &str, exp: u64) -> Json<Value> {
    let expire = crate::clock::rfc3339(i64::try_from(exp).unwrap_or(0));
    Json(json!({"code": 200, "expire": expire, "token": token}))
}

/// `POST /v1/watchers/login`.
///
/// # Errors
/// 401 for unknown, unvalidated or wrong credentials; bad bodies.
pub async fn login(
    State(st): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let l: Login = parse_json(&headers, &body)?;
    let id = l.machine_id.clone();
    let m = st.db.run(move |s| s.machine(&id)).await?;
    let denied = || ApiError::Unauthorized("incorrect Username or Password".into());
    let m = m.ok_or_else(denied)?;
    let (pw, phc) = (l.password.clone(), m.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&pw, &phc)).await.unwrap_or(false);
    if !ok || !m.validated {
        return Err(denied());
    }
    let t = now();
    let (token, exp) = auth::issue(&st.jwt_key(), &m.machine_id, u64::try_from(t).unwrap_or(0))?;
    // As CrowdSec: only a non-empty list replaces the scenarios on record.
    let scenarios = l.scenarios.filter(|s| !s.is_empty()).map(|s| s.join(","));
    let ip = peer.ip().to_string();
    st.db.run(move |s| s.touch_machine(&l.machine_id, scenarios.as_deref(), &ip, t)).await?;
    Ok(token_answer(&token, exp))
}

/// `GET /v1/refresh_token`.
///
/// # Errors
/// Signing failures.
pub async fn refresh(Machine(id): Machine, State(st): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let (token, exp) = auth::issue(&st.jwt_key(), &id, u64::try_from(now()).unwrap_or(0))?;
    Ok(token_answer(&token, exp))
}

/// `GET /v1/heartbeat`.
///
/// # Errors
/// Store errors.
pub async fn heartbeat(
    Machine(id): Machine,
    State(st): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<StatusCode, ApiError> {
    let (t, ip) = (now(), peer.ip().to_string());
    st.db.run(move |s| s.touch_machine(&id, None, &ip, t)).await?;
    Ok(StatusCode::OK)
}

/// A pushed decision as the store takes it, or why it is refused.
fn decision_of(d: &AlertDecision, a: &Alert) -> Result<NewDecision, ApiError> {
    let secs = crate::clock::go_duration_secs(&d.duration).filter(|s| *s > 0.0).ok_or_else(|| {
        ApiError::BadRequest(format!("decision duration `{}` is not a positive Go duration", d.duration))
    })?;
    let scope = canonical_scope(&d.scope);
    let value = if scope == "Ip" || scope == "Range" {
        let t: Target = d.value.parse().map_err(|e| ApiError::BadRequest(format!("decision value: {e}")))?;
        t.to_string()
    } else {
        d.value.clone()
    };
    Ok(NewDecision {
        origin: if d.origin.is_empty() { "crowdsec".into() } else { d.origin.clone() },
        scenario: if d.scenario.is_empty() { a.scenario.clone() } else { d.scenario.clone() },
        scope,
        value,
        kind: if d.kind.is_empty() { "ban".into() } else { d.kind.clone() },
        duration_secs: secs as u64,
        simulated: d.simulated.unwrap_or(a.simulated),
        reason: String::new(),
        uuid: d.uuid.clone().unwrap_or_default(),
    })
}

/// `POST /v1/alerts`: stores the alerts and their decisions; answers their ids.
///
/// # Errors
/// Bad bodies (nothing is stored), store errors.
pub async fn push(
    Machine(machine): Machine,
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Vec<String>>), ApiError> {
    let alerts: Vec<Alert> = parse_json(&headers, &body)?;
    // Everything is checked before anything is stored.
    let mut batch = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.iter().enumerate() {
        // `source.value` must be there but may be empty: `cscli decisions import` sends
        // `{"scope": "cscli/manual-import", "value": ""}`.
        if a.scenario.is_empty() || a.source.scope.is_empty() {
            return Err(ApiError::BadRequest(format!("alert {i}: scenario and source.scope are required")));
        }
        // As CrowdSec: an alert that carries decisions keeps them (the profiles only choose its
        // notifications); one without goes through the profiles once, as this host's alerts do.
        let (decisions, notify) = match &a.decisions {
            Some(ds) if !ds.is_empty() => {
                let ds = ds
                    .iter()
                    .map(|d| decision_of(d, a))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ApiError::BadRequest(format!("alert {i}: {e}")))?;
                let mut profile = st.profile.lock().map_err(|e| ApiError::Internal(e.to_string()))?;
                let notify = profile.notifications_for(&engine_alert(a));
                (ds.into_iter().filter(|d| !allowlisted(&profile, d)).collect(), notify)
            }
            _ => profiled(&st, a)?,
        };
        let mut stored = a.clone();
        stored.decisions = None;
        let body = serde_json::to_string(&stored).map_err(|e| ApiError::Internal(e.to_string()))?;
        let alert = NewAlert {
            scenario: a.scenario.clone(),
            scope: canonical_scope(&a.source.scope),
            value: a.source.value.clone(),
            events_count: u64::try_from(a.events_count).unwrap_or(0),
            machine_id: machine.clone(),
            body,
        };
        batch.push((alert, decisions, notify));
    }
    let t = now();
    let ids = st
        .db
        .run(move |s| {
            let mut ids = Vec::new();
            let mut sent = Vec::new();
            for (a, ds, notify) in &batch {
                let (id, _) = s.record_alert(Some(a), ds, t)?;
                let id = id.unwrap_or_default();
                ids.push(id.to_string());
                if !notify.is_empty()
                    && let Some(row) = s.alert(id)?
                {
                    sent.push((notify.clone(), served(t, &row, &s.alert_decisions(id)?)));
                }
            }
            Ok((ids, sent))
        })
        .await?;
    let (ids, sent) = ids;
    for (names, alert) in &sent {
        st.notify.notify(names, alert);
    }
    Ok((StatusCode::CREATED, Json(ids)))
}

fn allowlisted(profile: &crate::engine::profile::Profile, d: &NewDecision) -> bool {
    let Ok(t) = d.value.parse::<Target>() else { return false };
    let hit = profile.protecting(&t).is_some();
    if hit {
        tracing::warn!(value = %d.value, "a pushed decision targets an allowlisted address: dropped");
    }
    hit
}

/// A pushed alert as the profiles see it.
fn engine_alert(a: &Alert) -> crate::engine::scenario::Alert {
    crate::engine::scenario::Alert {
        scenario: a.scenario.clone(),
        events_count: usize::try_from(a.events_count).unwrap_or(0),
        events: Vec::new(),
        scope: canonical_scope(&a.source.scope),
        value: a.source.value.clone(),
        remediation: a.remediation.unwrap_or(false),
        at: crate::clock::unix_now_f64(),
        first: crate::clock::unix_now_f64(),
        ip: a.source.ip.clone().unwrap_or_default(),
    }
}

/// Decisions and notifications from crowd's profiles for an alert pushed without decisions.
fn profiled(st: &ApiState, a: &Alert) -> Result<(Vec<NewDecision>, Vec<String>), ApiError> {
    let mut profile = st.profile.lock().map_err(|e| ApiError::Internal(e.to_string()))?;
    let verdict = profile.evaluate(&engine_alert(a));
    let decided = match verdict.decisions {
        Ok(ds) => ds,
        Err(why) => {
            tracing::debug!(scenario = %a.scenario, value = %a.source.value, ?why, "pushed alert: no decision");
            return Ok((Vec::new(), verdict.notifications));
        }
    };
    let decisions = decided
        .into_iter()
        .map(|d| NewDecision {
            origin: d.origin,
            scenario: d.scenario,
            scope: d.scope,
            value: d.value,
            kind: d.kind,
            duration_secs: d.duration_secs,
            simulated: d.simulated || a.simulated,
            reason: String::new(),
            uuid: String::new(),
        })
        .collect();
    Ok((decisions, verdict.notifications))
}

/// An alert as served: its stored body with its id, machine, time and decisions.
fn served(st_now: i64, row: &AlertRow, decisions: &[crate::store::DecisionRow]) -> Value {
    let mut v: Value = serde_json::from_str(&row.body).unwrap_or_else(|_| {
        json!({
            "scenario": row.scenario, "scenario_hash": "", "scenario_version": "", "message": "",
            "events_count": row.events_count, "start_at": "", "stop_at": "", "capacity": 0, "leakspeed": "",
            "simulated": false, "events": [], "source": {"scope": row.scope, "value": row.value},
        })
    });
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(row.id));
        o.insert("machine_id".into(), json!(row.machine_id));
        o.insert("created_at".into(), json!(crate::clock::rfc3339(row.created_at)));
        // Inside alerts CrowdSec always writes `simulated` (cscli dereferences it).
        let ds: Vec<Value> = decisions
            .iter()
            .map(|d| {
                let mut w = serde_json::to_value(WireDecision::of(d, st_now)).unwrap_or(Value::Null);
                if let Some(m) = w.as_object_mut() {
                    m.insert("simulated".into(), json!(d.simulated));
                }
                w
            })
            .collect();
        o.insert("decisions".into(), Value::Array(ds));
        // Times as Go's `time.Time.String()`, as CrowdSec's `FormatOneAlert` writes them.
        for k in ["start_at", "stop_at"] {
            go_time(o.get_mut(k));
        }
        if let Some(Value::Array(evs)) = o.get_mut("events") {
            for e in evs {
                go_time(e.get_mut("timestamp"));
            }
        }
    }
    v
}

/// Rewrites an RFC 3339 time in place as Go prints it (other values are left as they are).
fn go_time(v: Option<&mut Value>) {
    if let Some(v) = v
        && let Some(t) = v.as_str().and_then(crate::clock::go_time_string)
    {
        *v = Value::String(t);
    }
}

/// The alert filter a query string asks for.
fn alert_filter(q: &HashMap<String, String>, t: i64) -> Result<AlertFilter, ApiError> {
    let ago = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|v| {
                humantime::parse_duration(v)
                    .map(|d| t - i64::try_from(d.as_secs()).unwrap_or(0))
                    .map_err(|e| ApiError::BadRequest(format!("`{k}={v}`: {e}")))
            })
            .transpose()
    };
    // As CrowdSec: `ip`/`range` match the alerts' decisions (containing the address, or inside
    // the range with `contains=false`), `scenario`/`origin`/`decision_type` too.
    let decision_addr = match q.get("ip").or_else(|| q.get("range")) {
        Some(v) => Some(AddrMatch {
            target: v.parse::<Target>().map_err(|e| ApiError::BadRequest(format!("`{v}`: {e}")))?,
            contains: q.get("contains").is_none_or(|c| c != "false"),
        }),
        None => None,
    };
    Ok(AlertFilter {
        scope: q.get("scope").map(|s| canonical_scope(s)),
        value: q.get("value").cloned(),
        decision_scenario: q.get("scenario").cloned(),
        decision_type: q.get("decision_type").cloned(),
        decision_origin: q.get("origin").cloned(),
        // As CrowdSec: asking for an origin includes every origin (`include_capi` is ignored).
        local_decisions_only: !q.contains_key("origin") && q.get("include_capi").is_some_and(|v| v == "false"),
        decision_addr,
        since: ago("since")?,
        until: ago("until")?,
        created_before: ago("created_before")?,
        has_active_decision: q.get("has_active_decision").map(|v| v == "true"),
        // CrowdSec's default is 100; `limit=0` (`cscli ... list -a`) means all.
        limit: Some(
            q.get("limit")
                .map(|l| l.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("limit `{l}` is not a number"))))
                .transpose()?
                .unwrap_or(100),
        )
        .filter(|l| *l > 0),
        ..AlertFilter::default()
    })
}

/// `GET /v1/alerts`.
///
/// # Errors
/// Bad filters, store errors.
pub async fn list(
    _m: Machine,
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let t = now();
    let f = alert_filter(&q, t)?;
    let out: Vec<Value> = st
        .db
        .run(move |s| {
            let rows = s.alerts(&f, t)?;
            rows.iter().map(|r| Ok(served(t, r, &s.alert_decisions(r.id)?))).collect()
        })
        .await?;
    // No match is `null`, as CrowdSec's empty Go slice (cscli prints it).
    Ok(Json(if out.is_empty() { Value::Null } else { Value::Array(out) }))
}

fn alert_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::BadRequest(format!("alert id `{id}` is not a number")))
}

/// `GET /v1/alerts/:id`.
///
/// # Errors
/// 404, store errors.
pub async fn one(
    _m: Machine,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = alert_id(&id)?;
    let t = now();
    let got = st
        .db
        .run(move |s| match s.alert(id)? {
            Some(r) => Ok(Some(served(t, &r, &s.alert_decisions(r.id)?))),
            None => Ok(None),
        })
        .await?;
    got.map(Json).ok_or_else(|| ApiError::NotFound("object not found".into()))
}

/// `DELETE /v1/alerts`: deletes the matching alerts and ends their decisions.
///
/// # Errors
/// Bad filters, store errors.
pub async fn delete(
    _m: Machine,
    State(st): State<Arc<ApiState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let t = now();
    let mut f = alert_filter(&q, t)?;
    f.limit = None;
    let n = st.db.run(move |s| s.delete_alerts(&f, None, t)).await?;
    Ok(Json(json!({"nbDeleted": n.to_string()})))
}

/// `DELETE /v1/alerts/:id`.
///
/// # Errors
/// 404, store errors.
pub async fn delete_one(
    _m: Machine,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = alert_id(&id)?;
    let t = now();
    let n = st.db.run(move |s| s.delete_alerts(&AlertFilter::default(), Some(id), t)).await?;
    if n == 0 {
        return Err(ApiError::NotFound("object not found".into()));
    }
    Ok(Json(json!({"nbDeleted": n.to_string()})))
}
