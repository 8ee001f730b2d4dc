//! The overview's numbers: decisions in force by origin and scenario, alerts per hour over the
//! last day, top sources, countries and ASNs (among the latest 2,000 alerts), the community
//! membership. Computed from the store on one background task (the first at the first console
//! request, then after changes, at most once a second and at most a third of the time) and
//! kept, so pages after the first never wait on a scan of a large store; the live feed tells
//! open pages when a new one is ready. The kernel's counters and the lines read are not here: they are read per request.
use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Serialize;
use tokio::sync::watch;

use crate::lapi::{ApiState, decisions::now};

/// How many recent alerts the countries and ASNs are counted over.
const RECENT: i64 = 2000;

/// What the overview shows from the store.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overview {
    /// When it was computed, Unix seconds.
    pub at: i64,
    /// The store's change number it reflects.
    pub change: i64,
    /// Active decisions per origin as the console names them (local, CAPI, lists, manual, ...).
    pub by_origin: Vec<(String, i64)>,
    /// All active decisions.
    pub decisions: i64,
    /// Active decisions per scenario (top 10).
    pub by_scenario: Vec<(String, i64)>,
    /// Alerts per hour over the last 24 hours (every hour, zeros included).
    pub alerts_per_hour: Vec<(i64, i64)>,
    /// Alerts over the last 24 hours.
    pub alerts_24h: i64,
    /// Sources with the most alerts over the last 24 hours.
    pub top_sources: Vec<(String, i64)>,
    /// Countries among the latest alerts.
    pub top_countries: Vec<(String, i64)>,
    /// ASNs among the latest alerts.
    pub top_asns: Vec<(String, i64)>,
    /// The community membership (`crowd community status`), if any.
    pub community: Option<serde_json::Value>,
}

/// The origin's name on the console.
#[must_use]
pub fn origin_label(origin: &str) -> &str {
    match origin {
        "crowdsec" => "local",
        "cscli" | "console" => "manual",
        o => o,
    }
}

fn top(counts: HashMap<String, i64>) -> Vec<(String, i64)> {
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(10);
    v
}

/// Computes the overview from the store at `now`.
///
/// # Errors
/// Store errors.
pub fn compute(s: &mut crate::store::Store, now: i64) -> crate::store::Result<Overview> {
    let change = s.last_change()?;
    let since = (now / 3600 - 23) * 3600;
    let o = s.overview(now, since, RECENT)?;
    let mut by_origin: HashMap<String, i64> = HashMap::new();
    for (origin, _, n) in &o.by_origin {
        *by_origin.entry(origin_label(origin).to_owned()).or_default() += n;
    }
    let decisions = by_origin.values().sum();
    let mut hours: Vec<(i64, i64)> = (0..24).map(|h| (since + h * 3600, 0)).collect();
    for (h, n) in &o.alerts_per_hour {
        if let Some(slot) = hours.iter_mut().find(|(t, _)| t == h) {
            slot.1 = *n;
        }
    }
    let (mut countries, mut asns): (HashMap<String, i64>, HashMap<String, i64>) = Default::default();
    for body in &o.recent_bodies {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else { continue };
        let src = &v["source"];
        if let Some(cn) = src["cn"].as_str().filter(|c| !c.is_empty()) {
            *countries.entry(cn.to_owned()).or_default() += 1;
        }
        let asn =
            src["as_number"].as_str().map(str::to_owned).or_else(|| src["as_number"].as_i64().map(|n| n.to_string()));
        if let Some(asn) = asn.filter(|a| !a.is_empty() && a != "0") {
            let name = src["as_name"].as_str().unwrap_or("");
            let key = if name.is_empty() { format!("AS{asn}") } else { format!("AS{asn} {name}") };
            *asns.entry(key).or_default() += 1;
        }
    }
    let community = match s.get_secret(crate::community::member::runner::STATUS)? {
        Some(t) => {
            let mut v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            let lists: serde_json::Map<String, serde_json::Value> =
                s.list_counts(now)?.into_iter().map(|(l, n)| (l, n.into())).collect();
            v["lists"] = lists.into();
            Some(v)
        }
        None => None,
    };
    Ok(Overview {
        at: now,
        change,
        by_origin: top(by_origin),
        decisions,
        by_scenario: o.by_scenario,
        alerts_24h: hours.iter().map(|(_, n)| n).sum(),
        alerts_per_hour: hours,
        top_sources: o.top_sources,
        top_countries: top(countries),
        top_asns: top(asns),
        community,
    })
}

/// The latest overview, and the task keeping it.
#[derive(Default)]
pub struct Cache {
    rx: tokio::sync::OnceCell<watch::Receiver<Arc<Overview>>>,
}

impl Cache {
    /// The feed of overviews (the first console request computes the first one, once, and
    /// starts the task).
    pub async fn feed(&self, st: &Arc<ApiState>) -> watch::Receiver<Arc<Overview>> {
        self.rx
            .get_or_init(|| async {
                // Scans of a large store run on the full-pull workers, not the bouncers'.
                let first = st.db.run_long(|s| compute(s, now())).await.unwrap_or_default();
                let (tx, rx) = watch::channel(Arc::new(first));
                let (db, mut changes) = (st.db.clone(), st.changes.clone());
                tokio::spawn(async move {
                    loop {
                        // After a change, or every 30 s (expiries and the hour's turn change counts).
                        let _ = tokio::time::timeout(Duration::from_secs(30), changes.changed()).await;
                        let t = std::time::Instant::now();
                        match db.run_long(|s| compute(s, now())).await {
                            Ok(o) => {
                                if tx.send(Arc::new(o)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "console: computing the overview"),
                        }
                        // However busy the store: at most one computation a second, and at
                        // most a third of the time spent computing (a store of millions).
                        let rest = (t.elapsed() * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                        tokio::time::sleep(rest).await;
                    }
                });
                rx
            })
            .await
            .clone()
    }

    /// The latest overview.
    pub async fn latest(&self, st: &Arc<ApiState>) -> Arc<Overview> {
        self.feed(st).await.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_origin_hours_countries_and_asns() {
        use crate::store::{NewAlert, NewDecision, Store};
        let mut s = Store::memory().unwrap();
        let now = 1_800_000_000;
        let body = serde_json::json!({"source": {"cn": "FR", "as_number": "64500", "as_name": "Example"}}).to_string();
        let a = NewAlert {
            scenario: "s".into(),
            scope: "Ip".into(),
            value: "192.0.2.7".into(),
            body,
            ..Default::default()
        };
        let d = |origin: &str| NewDecision {
            origin: origin.into(),
            scenario: "s".into(),
            scope: "Ip".into(),
            value: "192.0.2.7".into(),
            kind: "ban".into(),
            duration_secs: 3600,
            simulated: false,
            reason: String::new(),
            uuid: String::new(),
        };
        s.record(Some(&a), &[d("crowdsec"), d("cscli"), d("CAPI")], now - 60).unwrap();
        let o = compute(&mut s, now).unwrap();
        assert_eq!(o.decisions, 3);
        let origins: Vec<&str> = o.by_origin.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(origins, ["CAPI", "local", "manual"]);
        assert_eq!(o.alerts_per_hour.len(), 24);
        assert_eq!(o.alerts_24h, 1);
        assert_eq!(o.top_countries, vec![("FR".to_owned(), 1)]);
        assert_eq!(o.top_asns, vec![("AS64500 Example".to_owned(), 1)]);
        assert!(o.community.is_none());
    }
}
