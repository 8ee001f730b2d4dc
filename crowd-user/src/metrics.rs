//! Prometheus metrics (`prometheus-client`), served on loopback by the daemon and `crowd api`:
//! lines read, parsed and unparsed per source (CrowdSec's `cs_parser_hits_ok/ko_total`), bucket
//! overflows per scenario, Local API requests per route, method and status; and, read when
//! scraped, the active decisions per origin and type (from the store) and the XDP program's
//! packet counters (from its per-CPU stats map).
use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// A log source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The file, unit or listener.
    pub source: String,
    /// Its `labels.type`.
    pub r#type: String,
}

/// A scenario.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScenarioLabels {
    /// Its name.
    pub name: String,
}

/// An API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern (`/v1/decisions/{id}`).
    pub route: String,
    /// The method.
    pub method: String,
    /// The status code.
    pub code: String,
}

/// Active decisions by origin and type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `crowdsec`, `cscli`, ...
    pub origin: String,
    /// `ban`, ...
    pub action: String,
}

/// A community list.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabels {
    /// `community` (the consensus list) or a blocklist's name (`org-acme`).
    pub list: String,
}

/// XDP verdicts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `passed`, `dropped_exact`, `dropped_range`, `allowlisted`, ...
    pub verdict: String,
}

/// Every metric crowd exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Lines read.
    pub lines_read: Family<SourceLabels, Counter>,
    /// Lines a parser took.
    pub lines_parsed: Family<SourceLabels, Counter>,
    /// Lines no parser took.
    pub lines_unparsed: Family<SourceLabels, Counter>,
    /// Bucket overflows (alerts).
    pub overflows: Family<ScenarioLabels, Counter>,
    /// API requests.
    pub requests: Family<RouteLabels, Counter>,
    /// Active decisions (set when scraped).
    pub decisions: Family<DecisionLabels, Gauge>,
    /// Community decisions in force, per list (set when scraped from the store).
    pub lists: Family<ListLabels, Gauge>,
    /// XDP packets by verdict (set when scraped from the kernel's counters).
    pub packets: Family<VerdictLabels, Gauge>,
    /// Buckets evicted to stay within `--max-memory`, per scenario.
    pub evictions: Family<ScenarioLabels, Counter>,
    /// Bytes of detection state (buckets), and live buckets.
    pub state_bytes: Gauge,
    /// Live buckets.
    pub buckets: Gauge,
}

impl Metrics {
    /// A fresh set, registered under the `crowd_` prefix.
    #[must_use]
    pub fn new() -> Arc<Metrics> {
        let mut r = Registry::with_prefix("crowd");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            lines_read: Family::default(),
            lines_parsed: Family::default(),
            lines_unparsed: Family::default(),
            overflows: Family::default(),
            requests: Family::default(),
            decisions: Family::default(),
            lists: Family::default(),
            packets: Family::default(),
            evictions: Family::default(),
            state_bytes: Gauge::default(),
            buckets: Gauge::default(),
        };
        r.register("lines_read", "Log lines read, per source", m.lines_read.clone());
        r.register("parser_hits_ok", "Lines a parser took, per source", m.lines_parsed.clone());
        r.register("parser_hits_ko", "Lines no parser took, per source", m.lines_unparsed.clone());
        r.register("bucket_overflowed", "Bucket overflows (alerts), per scenario", m.overflows.clone());
        r.register("lapi_route_requests", "Local API requests, per route, method and status", m.requests.clone());
        r.register("active_decisions", "Decisions in force, per origin and type", m.decisions.clone());
        r.register(
            "community_list_entries",
            "Community decisions in force, per list (community: the consensus list)",
            m.lists.clone(),
        );
        r.register("xdp_packets", "Packets the XDP program saw, per verdict (kernel counters)", m.packets.clone());
        r.register(
            "bucket_evictions",
            "Buckets evicted to stay within --max-memory, per scenario",
            m.evictions.clone(),
        );
        r.register("detection_state_bytes", "Bytes of detection state (buckets)", m.state_bytes.clone());
        r.register("buckets", "Live buckets", m.buckets.clone());
        if let Ok(mut reg) = m.registry.lock() {
            *reg = r;
        }
        Arc::new(m)
    }

    /// Sets the list gauges from `(list, count)` rows (others go to zero).
    pub fn set_lists(&self, rows: &[(String, i64)]) {
        self.lists.clear();
        for (list, n) in rows {
            self.lists.get_or_create(&ListLabels { list: list.clone() }).set(*n);
        }
    }

    /// Counts one line of a source and whether a parser took it.
    pub fn line(&self, source: &str, kind: &str, parsed: bool) {
        let l = SourceLabels { source: source.to_owned(), r#type: kind.to_owned() };
        self.lines_read.get_or_create(&l).inc();
        if parsed {
            self.lines_parsed.get_or_create(&l).inc()
        } else {
            self.lines_unparsed.get_or_create(&l).inc()
        };
    }

    /// Sets the decision gauges from `(origin, type, count)` rows (others go to zero).
    pub fn set_decisions(&self, rows: &[(String, String, i64)]) {
        self.decisions.clear();
        for (origin, action, n) in rows {
            self.decisions.get_or_create(&DecisionLabels { origin: origin.clone(), action: action.clone() }).set(*n);
        }
    }

    /// Sets the detection-state gauges and counts new evictions (`seen`: the totals already
    /// counted, per scenario).
    pub fn detection_state(
        &self,
        b: &crate::engine::scenario::Buckets,
        seen: &mut std::collections::HashMap<String, u64>,
    ) {
        self.state_bytes.set(i64::try_from(b.bytes()).unwrap_or(i64::MAX));
        self.buckets.set(i64::try_from(b.len()).unwrap_or(i64::MAX));
        for (name, n) in b.evictions() {
            let before = seen.insert(name.to_owned(), n).unwrap_or(0);
            if n > before {
                self.evictions.get_or_create(&ScenarioLabels { name: name.to_owned() }).inc_by(n - before);
            }
        }
    }

    /// Sets the XDP gauges from the kernel's counters.
    pub fn set_xdp(&self, s: &crowd_common::Stats) {
        let set = |v: &str, n: u64| {
            self.packets.get_or_create(&VerdictLabels { verdict: v.into() }).set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("passed", s.passed);
        set("dropped_exact", s.dropped_exact);
        set("dropped_range", s.dropped_range);
        set("allowlisted", s.allowlisted);
        set("expired", s.expired);
        set("unparsable", s.unparsable);
        set("non_ip", s.non_ip);
    }

    /// The text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_counts() {
        let m = Metrics::new();
        m.line("/var/log/auth.log", "syslog", true);
        m.line("/var/log/auth.log", "syslog", false);
        m.overflows.get_or_create(&ScenarioLabels { name: "crowdsecurity/ssh-bf".into() }).inc();
        m.set_decisions(&[("crowdsec".into(), "ban".into(), 7)]);
        let t = m.render();
        assert!(t.contains(r#"crowd_lines_read_total{source="/var/log/auth.log",type="syslog"} 2"#), "{t}");
        assert!(t.contains(r#"crowd_parser_hits_ok_total{source="/var/log/auth.log",type="syslog"} 1"#), "{t}");
        assert!(t.contains(r#"crowd_bucket_overflowed_total{name="crowdsecurity/ssh-bf"} 1"#), "{t}");
        assert!(t.contains(r#"crowd_active_decisions{origin="crowdsec",action="ban"} 7"#), "{t}");
        m.set_lists(&[("community".into(), 3), ("org-acme".into(), 1)]);
        let t = m.render();
        assert!(t.contains(r#"crowd_community_list_entries{list="org-acme"} 1"#), "{t}");
        m.set_decisions(&[]);
        assert!(!m.render().contains("origin=\"crowdsec\""), "gone decisions leave the gauge");
    }
}
