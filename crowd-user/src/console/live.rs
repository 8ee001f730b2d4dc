//! What moves on the console: the live feed (`GET /console/events`, server-sent events: `change`
//! when the store changed, `overview` when a new overview is ready, `kernel` every second with
//! this host's XDP counters), the kernel sampler (one task reads the counters every second, for
//! every viewer, and keeps the last five minutes for the overview's chart), the parse trail of
//! an alert's line (the rules of this process, as `crowd explain` shows it), and the edges'
//! reported counters (CrowdSec's usage metrics).
use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::stream::Stream;
use minijinja::context;

use super::{Console, session::User};
use crate::{lapi::ApiState, store::UsageRow};

/// How often an open feed checks that its session still lives (logout, expiry, user deleted).
const RECHECK: Duration = Duration::from_secs(15);

/// Samples kept: five minutes, one a second.
const HISTORY: usize = 300;

/// One reading of this host's XDP counters (totals since the program was loaded).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    /// When, Unix seconds.
    pub t: f64,
    /// Packets seen.
    pub seen: u64,
    /// Passed.
    pub passed: u64,
    /// Dropped.
    pub dropped: u64,
    /// Allowlisted.
    pub allowlisted: u64,
}

/// The kernel sampler's feed and history.
#[derive(Default)]
pub struct Sampler {
    rx: OnceLock<tokio::sync::watch::Receiver<Sample>>,
    history: Mutex<VecDeque<Sample>>,
}

impl Sampler {
    /// Starts the task reading the counters every second, when this process enforces (once).
    pub fn start(st: &Arc<ApiState>) {
        if st.console.opts.maps.is_none() || st.console.sampler.rx.get().is_some() {
            return;
        }
        let (tx, rx) = tokio::sync::watch::channel(Sample::default());
        if st.console.sampler.rx.set(rx).is_err() {
            return;
        }
        let weak = Arc::downgrade(st);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(st) = weak.upgrade() else { return };
                let Some(k) = super::pages::kernel(&st) else { continue };
                let s = Sample {
                    t: crate::clock::unix_now_f64(),
                    seen: k.seen,
                    passed: k.passed,
                    dropped: k.dropped,
                    allowlisted: k.allowlisted,
                };
                if let Ok(mut h) = st.console.sampler.history.lock() {
                    if h.len() == HISTORY {
                        h.pop_front();
                    }
                    h.push_back(s);
                }
                let _ = tx.send(s);
            }
        });
    }

    /// The drops per second over the kept history (`[t, rate]`), and the last reading.
    pub fn rates(&self) -> (Vec<(f64, f64)>, Option<Sample>) {
        let Ok(h) = self.history.lock() else { return (Vec::new(), None) };
        let rates = h
            .iter()
            .zip(h.iter().skip(1))
            .filter(|(a, b)| b.t > a.t)
            .map(|(a, b)| (b.t, b.dropped.saturating_sub(a.dropped) as f64 / (b.t - a.t)))
            .collect();
        (rates, h.back().copied())
    }
}

struct Feed {
    /// The session is checked again every [`RECHECK`]: a feed ends with its session.
    session: (String, Arc<ApiState>, tokio::time::Interval),
    stopping: tokio::sync::watch::Receiver<bool>,
    changes: tokio::sync::watch::Receiver<u64>,
    overview: tokio::sync::watch::Receiver<Arc<super::overview::Overview>>,
    kernel: Option<tokio::sync::watch::Receiver<Sample>>,
}

/// `GET /console/events`.
pub async fn events(State(st): State<Arc<ApiState>>, user: User) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut overview = st.console.overview.feed(&st).await;
    overview.mark_unchanged();
    let mut changes = st.changes.clone();
    changes.mark_unchanged();
    Sampler::start(&st);
    let kernel = st.console.sampler.rx.get().cloned();
    let stopping = st.console.stopping.subscribe();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let feed = Feed { session: (user.session, st.clone(), recheck), stopping, changes, overview, kernel };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        if *f.stopping.borrow() {
            return None;
        }
        let ev = tokio::select! {
            // It only ever becomes true.
            _ = f.stopping.changed() => return None,
            _ = f.session.2.tick() => {
                let (h, st) = (f.session.0.clone(), f.session.1.clone());
                match st.db.run(move |s| s.console_session(&h, crate::clock::unix_now())).await {
                    Ok(Some(_)) => Event::default().comment("session checked"),
                    _ => return None,
                }
            }
            r = f.changes.changed() => {
                if r.is_err() {
                    return None;
                }
                // Changes come in bursts (an alert, then its decisions): one event for a burst.
                tokio::time::sleep(Duration::from_millis(100)).await;
                f.changes.mark_unchanged();
                Event::default().event("change").data(f.changes.borrow().to_string())
            }
            r = f.overview.changed() => {
                if r.is_err() {
                    return None;
                }
                Event::default().event("overview").data(f.overview.borrow().change.to_string())
            }
            r = async { f.kernel.as_mut().expect("guarded").changed().await }, if f.kernel.is_some() => {
                if r.is_err() {
                    return None;
                }
                let s = *f.kernel.as_ref().expect("guarded").borrow();
                Event::default().event("kernel").data(serde_json::to_string(&s).unwrap_or_default())
            }
        };
        Some((Ok(ev), f))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

impl Console {
    /// The parse trail of `line` (labels' `type` `kind`) through this process's rules, built
    /// once at first use; `None` when the rules do not load.
    pub fn trail(&self, kind: &str, line: &str) -> Option<serde_json::Value> {
        let mut held = self.rules.lock().ok()?;
        if held.is_none() {
            match crate::rules::detector(self.opts.config_dir.as_ref(), crate::engine::profile::Profile::default()) {
                Ok(d) => *held = Some(d),
                Err(e) => {
                    tracing::warn!(error = %e, "console: the rules for parse trails do not load");
                    return None;
                }
            }
        }
        held.as_ref().map(|d| crate::cli::replay::explain_value(d, kind, line))
    }
}

/// An edge's (or bouncer's) last usage report, as the fleet page shows it: dropped packets in
/// the last window and per second, per origin, and since its program was loaded.
pub fn edge_ctx(u: &UsageRow, now: i64) -> minijinja::Value {
    let body: serde_json::Value = serde_json::from_str(&u.body).unwrap_or_default();
    let window = body["metrics"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    let secs = window["meta"]["window_size_seconds"].as_f64().unwrap_or(0.0);
    let items = window["items"].as_array().cloned().unwrap_or_default();
    let sum =
        |name: &str| -> f64 { items.iter().filter(|i| i["name"] == name).filter_map(|i| i["value"].as_f64()).sum() };
    let mut by_origin: Vec<(String, u64)> = Vec::new();
    for i in items.iter().filter(|i| i["name"] == "dropped") {
        let o = i["labels"]["origin"].as_str().unwrap_or("").to_owned();
        let n = i["value"].as_f64().unwrap_or(0.0) as u64;
        match by_origin.iter_mut().find(|(k, _)| *k == o) {
            Some(e) => e.1 += n,
            None => by_origin.push((o, n)),
        }
    }
    let dropped = sum("dropped");
    context! {
        name => &u.name, kind => &u.kind, r#type => &u.r#type, received => u.received_at,
        stale => now - u.received_at > 3600,
        version => body["version"].as_str().unwrap_or(""),
        window => secs as i64, dropped => dropped as u64,
        rate => if secs > 0.0 { format!("{:.1}", dropped / secs) } else { String::new() },
        dropped_total => items.iter().find(|i| i["name"] == "dropped_total").and_then(|i| i["value"].as_u64()),
        active => sum("active_decisions") as u64, by_origin => by_origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_report_reads_as_rates_per_origin() {
        let body = serde_json::json!({"type": "crowd-enforce", "version": "0.1.0", "metrics": [{"meta": {"window_size_seconds": 10, "utc_now_timestamp": 100},
            "items": [{"name": "dropped", "unit": "packet", "value": 30, "labels": {"origin": "crowdsec"}},
                      {"name": "dropped", "unit": "packet", "value": 20, "labels": {"origin": "CAPI"}},
                      {"name": "dropped_total", "unit": "packet", "value": 900},
                      {"name": "active_decisions", "unit": "ip", "value": 4, "labels": {"origin": "CAPI"}}]}]});
        let u = UsageRow {
            kind: "remediation_components".into(),
            name: "edge1".into(),
            r#type: "crowd-enforce".into(),
            received_at: 100,
            body: body.to_string(),
        };
        let v = edge_ctx(&u, 110);
        assert_eq!(v.get_attr("dropped").unwrap().as_usize(), Some(50));
        assert_eq!(v.get_attr("rate").unwrap().as_str(), Some("5.0"));
        assert_eq!(v.get_attr("dropped_total").unwrap().as_usize(), Some(900));
        assert_eq!(v.get_attr("active").unwrap().as_usize(), Some(4));
        assert!(!v.get_attr("stale").unwrap().is_true());
    }
}
