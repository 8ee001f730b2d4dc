//! The console's pages (GET): overview, alerts (filtered and paginated on the server, newest
//! first, by id), an alert with its events, source and decisions, decisions (search by address:
//! the ranges that contain it too) with their drops counted in the kernel, the fleet (agents,
//! bouncers and edges with their freshness and reported counters), and the audit log. Table
//! bodies are also served alone (`?rows=1`) for the live feed to refresh.
use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Json, Response},
};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{
    session::User,
    view::{self, Page},
};
use crate::{
    addr::Target,
    lapi::{ApiState, decisions::now},
    store::{AddrMatch, AlertFilter, DecisionFilter, DecisionRow},
};

/// Rows per page.
pub const PAGE: i64 = 50;
/// An agent or bouncer silent for longer is shown stale.
pub const STALE_SECS: i64 = 300;

/// What the XDP program counted on this host (since the program was loaded).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Kernel {
    /// Packets seen.
    pub seen: u64,
    /// Passed.
    pub passed: u64,
    /// Dropped (exact and range bans).
    pub dropped: u64,
    /// Allowlisted.
    pub allowlisted: u64,
}

/// This host's kernel counters, when it enforces.
pub fn kernel(st: &ApiState) -> Option<Kernel> {
    let s = st.console.with_maps(|m| m.stats().ok())??;
    Some(Kernel {
        seen: s.seen,
        passed: s.passed,
        dropped: s.dropped_exact + s.dropped_range,
        allowlisted: s.allowlisted,
    })
}

/// Lines read and parsed per source, from this process's counters.
fn lines(st: &ApiState) -> Vec<(String, u64, u64)> {
    let text = st.metrics.render();
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    for l in text.lines() {
        let (which, rest) = if let Some(r) = l.strip_prefix("crowd_lines_read_total{") {
            (0, r)
        } else if let Some(r) = l.strip_prefix("crowd_parser_hits_ok_total{") {
            (1, r)
        } else {
            continue;
        };
        let Some((labels, n)) = rest.rsplit_once("} ") else { continue };
        let source = labels.split("source=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_owned();
        let n = n.trim().parse::<f64>().unwrap_or(0.0) as u64;
        let i = out.iter().position(|(s, _, _)| *s == source).unwrap_or_else(|| {
            out.push((source, 0, 0));
            out.len() - 1
        });
        if which == 0 { out[i].1 += n } else { out[i].2 += n }
    }
    out
}

/// `GET /console/overview`.
pub async fn overview(State(st): State<Arc<ApiState>>, user: User) -> Page {
    let o = st.console.overview.latest(&st).await;
    let t = now();
    // The other hosts of the fleet: what their edges last reported.
    let edges: Vec<minijinja::Value> = match st.db.run(|s| s.usage()).await {
        Ok(rows) => {
            rows.iter().filter(|u| u.kind == "remediation_components").map(|u| super::live::edge_ctx(u, t)).collect()
        }
        Err(e) => return view::failed(e),
    };
    view::render(
        "overview.html",
        context! { user => user_ctx(&user), now => t, page => "overview", o => &*o, edges => edges,
                   drops => st.console.sampler.rates(),
        kernel => kernel(&st), lines => lines(&st), host => &st.console.opts.host },
    )
}

/// `GET /console/overview.json`: the overview and the kernel's counters (the charts' data).
pub async fn overview_json(State(st): State<Arc<ApiState>>, _user: User) -> Response {
    let o = st.console.overview.latest(&st).await;
    Json(serde_json::json!({"overview": &*o, "kernel": kernel(&st), "now": now()})).into_response()
}

fn user_ctx(u: &User) -> minijinja::Value {
    context! { name => &u.name, role => u.role.name(), admin => u.admin(), csrf => &u.csrf }
}

/// The alerts page's filters.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct AlertQuery {
    scenario: Option<String>,
    source: Option<String>,
    machine: Option<String>,
    origin: Option<String>,
    /// Hours back.
    hours: Option<i64>,
    before: Option<i64>,
    rows: Option<u8>,
}

fn some(s: Option<&String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl AlertQuery {
    fn filter(&self, t: i64) -> Result<AlertFilter, String> {
        let mut f = AlertFilter {
            scenario: some(self.scenario.as_ref()),
            machine_id: some(self.machine.as_ref()).map(|m| if m == "(this host)" { String::new() } else { m }),
            decision_origin: some(self.origin.as_ref()),
            since: self.hours.filter(|h| *h > 0).map(|h| t - h.min(24 * 3660) * 3600),
            before_id: self.before,
            limit: Some(PAGE),
            ..AlertFilter::default()
        };
        if let Some(src) = some(self.source.as_ref()) {
            match src.parse::<Target>() {
                // An address or range: alerts about it or whose decisions hold it.
                Ok(target) => {
                    f.value = None;
                    f.decision_addr = None;
                    if matches!(target, Target::Ip(_)) {
                        f.value = Some(target.to_string());
                    } else {
                        f.decision_addr = Some(AddrMatch { target, contains: false });
                    }
                }
                Err(_) if src.chars().all(|c| c.is_ascii_alphanumeric() || ".:-_/".contains(c)) => f.value = Some(src),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(f)
    }
}

/// `GET /console/alerts`.
pub async fn alerts(State(st): State<Arc<ApiState>>, user: User, Query(q): Query<AlertQuery>) -> Page {
    let t = now();
    let live = serde_urlencoded::to_string(AlertQuery { rows: Some(1), ..q.clone_filters() }).unwrap_or_default();
    let f = match q.filter(t) {
        Ok(f) => f,
        Err(why) => {
            let mut p = view::render(
                "alerts.html",
                context! { user => user_ctx(&user), now => t, page => "alerts", rows => Vec::<()>::new(), q => &q,
                qs => live, error => format!("source: {why}") },
            );
            p.status = StatusCode::BAD_REQUEST;
            return p;
        }
    };
    let rows = match st.db.run(move |s| s.alerts(&f, t)).await {
        Ok(r) => r,
        Err(e) => return view::failed(e),
    };
    let next = if rows.len() as i64 == PAGE { rows.last().map(|a| a.id) } else { None };
    let rows: Vec<minijinja::Value> = rows
        .iter()
        .map(|a| {
            context! { id => a.id, scenario => &a.scenario, scope => &a.scope, value => &a.value,
            events => a.events_count, at => a.created_at,
            machine => if a.machine_id.is_empty() { "(this host)" } else { a.machine_id.as_str() } }
        })
        .collect();
    let more = next.map(|b| {
        let mut qs = serde_urlencoded::to_string(AlertQuery { before: Some(b), rows: None, ..q.clone_filters() })
            .unwrap_or_default();
        if qs.is_empty() {
            qs = format!("before={b}");
        }
        qs
    });
    let ctx = context! { user => user_ctx(&user), now => t, page => "alerts", rows => rows, q => &q, more => more, qs => live };
    view::render(if q.rows == Some(1) { "alert_rows.html" } else { "alerts.html" }, ctx)
}

impl AlertQuery {
    fn clone_filters(&self) -> AlertQuery {
        AlertQuery {
            scenario: self.scenario.clone(),
            source: self.source.clone(),
            machine: self.machine.clone(),
            origin: self.origin.clone(),
            hours: self.hours,
            before: None,
            rows: None,
        }
    }
}

/// `GET /console/alerts/{id}`.
pub async fn alert(State(st): State<Arc<ApiState>>, user: User, Path(id): Path<i64>) -> Page {
    let got = st.db.run(move |s| Ok((s.alert(id)?, s.alert_decisions(id)?))).await;
    let (a, ds) = match got {
        Ok((Some(a), ds)) => (a, ds),
        Ok((None, _)) => return view::refused(StatusCode::NOT_FOUND, &format!("no alert {id}")),
        Err(e) => return view::failed(e),
    };
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap_or_default();
    let events: Vec<minijinja::Value> = body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let meta: Vec<(String, String)> = e["meta"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| Some((m["key"].as_str()?.to_owned(), m["value"].as_str().unwrap_or("").to_owned())))
                .collect();
            let line = meta.iter().find(|(k, _)| k == "crowd_line").map(|(_, v)| v.clone());
            let kind = meta.iter().find(|(k, _)| k == "crowd_line_type").map(|(_, v)| v.clone());
            let meta: Vec<_> = meta.into_iter().filter(|(k, _)| !k.starts_with("crowd_line")).collect();
            context! { timestamp => e["timestamp"].as_str().unwrap_or(""), meta => meta, line => line, kind => kind }
        })
        .collect();
    // The parse trail of the last event's line, when the line was kept and rules are at hand.
    let trail = events.last().and_then(|e| {
        let line: String = e.get_attr("line").ok()?.as_str()?.to_owned();
        let kind: String =
            e.get_attr("kind").ok().and_then(|k| k.as_str().map(str::to_owned)).unwrap_or_else(|| "syslog".into());
        Some((line, kind))
    });
    let trail = match trail {
        Some((line, kind)) => {
            let st = st.clone();
            tokio::task::spawn_blocking(move || st.console.trail(&kind, &line)).await.ok().flatten()
        }
        None => None,
    };
    let t = now();
    let decisions: Vec<minijinja::Value> = ds.iter().map(|d| decision_ctx(d, t, None)).collect();
    let source = &body["source"];
    view::render(
        "alert.html",
        context! { user => user_ctx(&user), now => t, page => "alerts", a => context! {
            id => a.id, scenario => &a.scenario, scope => &a.scope, value => &a.value, events_count => a.events_count,
            at => a.created_at, machine => if a.machine_id.is_empty() { "(this host)" } else { a.machine_id.as_str() },
            message => body["message"].as_str().unwrap_or(""),
            start => body["start_at"].as_str().unwrap_or(""), stop => body["stop_at"].as_str().unwrap_or(""),
            cn => source["cn"].as_str().unwrap_or(""), asn => source["as_number"].as_str().unwrap_or(""),
            as_name => source["as_name"].as_str().unwrap_or(""), range => source["range"].as_str().unwrap_or(""),
        }, events => events, decisions => decisions, trail => trail },
    )
}

fn decision_ctx(d: &DecisionRow, t: i64, drops: Option<u64>) -> minijinja::Value {
    let active = d.deleted_at.is_none() && d.until > t;
    context! { id => d.id, value => &d.value, scope => &d.scope, kind => &d.kind, origin => &d.origin,
    label => super::overview::origin_label(&d.origin), scenario => &d.scenario, until => d.until,
    created => d.created_at, active => active, simulated => d.simulated, alert => d.alert_id, drops => drops }
}

/// The kernel's drop counts of `rows` on this host (when it enforces): the packets its entry
/// dropped, shown only on the decision that wrote that entry (others on the same target show
/// none). Off the async threads: map reads are system calls.
async fn kernel_drops(st: &Arc<ApiState>, rows: Vec<DecisionRow>) -> (Vec<DecisionRow>, Vec<Option<u64>>) {
    if st.console.opts.maps.is_none() {
        let n = rows.len();
        return (rows, vec![None; n]);
    }
    let st = st.clone();
    let work = tokio::task::spawn_blocking(move || {
        let drops = st.console.with_maps(|m| {
            let ranges: std::collections::HashMap<Target, crowd_common::Ban> =
                if rows.iter().any(|d| d.value.contains('/')) {
                    m.range_bans().unwrap_or_default().into_iter().map(|e| (e.target, e.ban)).collect()
                } else {
                    std::collections::HashMap::new()
                };
            rows.iter()
                .map(|d| {
                    let target: Target = d.value.parse().ok()?;
                    let ban = match target {
                        Target::Ip(_) => m.ban_of(target)?,
                        Target::Net(_) => *ranges.get(&target)?,
                    };
                    (i64::try_from(ban.decision_id).ok() == Some(d.id)).then_some(ban.drops)
                })
                .collect::<Vec<_>>()
        });
        let n = rows.len();
        (rows, drops.unwrap_or_else(|| vec![None; n]))
    });
    work.await.unwrap_or_default()
}

/// The decisions page's search.
#[derive(Debug, Default, Deserialize)]
pub struct DecisionQuery {
    ip: Option<String>,
    before: Option<i64>,
    rows: Option<u8>,
}

/// `GET /console/decisions`.
pub async fn decisions(State(st): State<Arc<ApiState>>, user: User, Query(q): Query<DecisionQuery>) -> Page {
    let t = now();
    let mut f = DecisionFilter {
        simulated: true,
        limit: Some(PAGE * 2),
        newest_first: true,
        before_id: q.before,
        ..DecisionFilter::default()
    };
    let ip = some(q.ip.as_ref());
    if let Some(ip) = &ip {
        match ip.parse::<Target>() {
            Ok(target) => f.addr = Some(AddrMatch { target, contains: true }),
            Err(e) => return view::refused(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let rows = match st.db.run(move |s| s.query(&f, t)).await {
        Ok(r) => r,
        Err(e) => return view::failed(e),
    };
    let more = if rows.len() as i64 == PAGE * 2 { rows.last().map(|d| d.id) } else { None };
    let (rows, drops) = kernel_drops(&st, rows).await;
    let rows: Vec<minijinja::Value> = rows.iter().zip(drops).map(|(d, n)| decision_ctx(d, t, n)).collect();
    let allowlist = match st.db.run(|s| s.allowlist()).await {
        Ok(l) => l,
        Err(e) => return view::failed(e),
    };
    let allow = if st.console.opts.maps.is_some() {
        let st = st.clone();
        tokio::task::spawn_blocking(move || st.console.with_maps(|m| m.allowlist().unwrap_or_default()))
            .await
            .ok()
            .flatten()
            .map(|l| {
                l.iter().map(|a| context! { target => a.target.to_string(), hits => a.allow.hits }).collect::<Vec<_>>()
            })
    } else {
        None
    };
    let ctx = context! { user => user_ctx(&user), now => t, page => "decisions", rows => rows, ip => ip,
    kernel => st.console.opts.maps.is_some(), allow => allow, more => more, before => q.before,
    allowlist => allowlist };
    view::render(if q.rows == Some(1) { "decision_rows.html" } else { "decisions.html" }, ctx)
}

/// `GET /console/fleet`.
pub async fn fleet(State(st): State<Arc<ApiState>>, user: User) -> Page {
    let got = st.db.run(|s| Ok((s.machines()?, s.bouncers()?, s.usage()?))).await;
    let (machines, bouncers, usage) = match got {
        Ok(v) => v,
        Err(e) => return view::failed(e),
    };
    let t = now();
    let stale = |last: Option<i64>| last.is_none_or(|l| t - l > STALE_SECS);
    let machines: Vec<minijinja::Value> = machines
        .iter()
        .map(|m| {
            context! { id => &m.machine_id, ip => &m.ip_address, validated => m.validated, last => m.last_heartbeat,
            stale => stale(m.last_heartbeat), scenarios => m.scenarios.split(',').filter(|s| !s.is_empty()).count() }
        })
        .collect();
    let bouncers: Vec<minijinja::Value> = bouncers
        .iter()
        .map(|b| {
            context! { name => &b.name, ip => &b.ip_address, kind => &b.kind, version => &b.version,
            last => b.last_pull, stale => stale(b.last_pull) }
        })
        .collect();
    let edges: Vec<minijinja::Value> = usage.iter().map(|u| super::live::edge_ctx(u, t)).collect();
    let ctx = context! { user => user_ctx(&user), now => t, page => "fleet", machines => machines, bouncers => bouncers,
    edges => edges, kernel => kernel(&st), host => &st.console.opts.host, stale_secs => STALE_SECS };
    view::render("fleet.html", ctx)
}

/// `GET /console/audit`.
pub async fn audit(State(st): State<Arc<ApiState>>, user: User) -> Page {
    let rows = match st.db.run(|s| s.audit_log(500)).await {
        Ok(r) => r,
        Err(e) => return view::failed(e),
    };
    view::render("audit.html", context! { user => user_ctx(&user), now => now(), page => "audit", rows => rows })
}
