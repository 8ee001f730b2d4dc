//! `crowd enforce`'s usage-metrics report (CrowdSec's `POST /v1/usage-metrics`, which its
//! go-cs-bouncer sends every 15 minutes): a pure function from two snapshots of the XDP
//! program's counters, taken at the start and the end of a window, to the `AllMetrics` JSON.
//! No I/O and no clock here: the puller (`puller.rs`) reads the maps, passes the times in and
//! sends the result.
//!
//! Items, named as CrowdSec's firewall bouncer names them (packets only: the kernel program
//! counts no bytes):
//! - `processed` (packet): packets the program ran on in the window (`Stats.seen`);
//! - `dropped` (packet), per origin and IP family: packets the bans dropped in the window, from
//!   the per-ban `drops` counters: for a ban in both snapshots the growth of its counter (its
//!   whole count if the counter went back, i.e. it was removed and re-added), plus the whole
//!   count of a ban that is new. A ban removed during the window takes its last drops with it:
//!   the per-origin sums can fall short of the program's totals, never exceed them;
//! - `active_decisions` (ip), per origin and IP family: unexpired entries in the maps now (a
//!   range counts as one);
//! - `dropped_total` (packet, crowd's own): `Stats.dropped_exact + dropped_range` since the
//!   program's maps were created, so a reader needs no sum of windows.
use std::collections::{BTreeMap, HashMap};

use crowd_common::Origin;
use serde_json::{Value, json};

use crate::addr::Target;

/// The `type` `crowd enforce` reports.
pub const TYPE: &str = "crowd-enforce";

/// One ban as a report counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanCount {
    /// Its [`Origin`] byte.
    pub origin: u8,
    /// Packets it dropped so far.
    pub drops: u64,
    /// Not expired.
    pub active: bool,
}

/// The program's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// When (Unix seconds).
    pub at: i64,
    /// `Stats.seen`, summed over the CPUs.
    pub seen: u64,
    /// `Stats.dropped_exact + dropped_range`.
    pub dropped: u64,
    /// Every ban in the maps.
    pub bans: HashMap<Target, BanCount>,
}

/// What stays the same from one report to the next.
#[derive(Clone, Debug)]
pub struct Component {
    /// The name sent (the Local API files the report under the authenticated bouncer anyway).
    pub name: String,
    /// crowd's version.
    pub version: String,
    /// The kernel release (`uname -r`).
    pub os_version: String,
    /// When `crowd enforce` started (Unix seconds).
    pub startup: i64,
}

/// A counter's growth from `prev` to `cur`; a counter that went back was reset, so all of it is
/// new.
fn grown(prev: u64, cur: u64) -> u64 {
    if cur >= prev { cur - prev } else { cur }
}

/// The report of the window from `prev` to `cur`, with the time of the last successful pull.
#[must_use]
pub fn report(c: &Component, prev: &Snapshot, cur: &Snapshot, last_pull: Option<i64>) -> Value {
    // (origin, family) → (dropped in the window, active entries now).
    let mut groups: BTreeMap<(&'static str, &'static str), (u64, u64)> = BTreeMap::new();
    for (target, b) in &cur.bans {
        let family = if target.is_ipv4() { "ipv4" } else { "ipv6" };
        let g = groups.entry((Origin::from_u8(b.origin).name(), family)).or_default();
        g.0 += prev.bans.get(target).map_or(b.drops, |p| grown(p.drops, b.drops));
        g.1 += u64::from(b.active);
    }
    let mut items = vec![
        json!({"name": "processed", "unit": "packet", "value": grown(prev.seen, cur.seen)}),
        json!({"name": "dropped_total", "unit": "packet", "value": cur.dropped}),
    ];
    for ((origin, family), (dropped, active)) in groups {
        let labels = json!({"origin": origin, "ip_type": family});
        items.push(json!({"name": "dropped", "unit": "packet", "value": dropped, "labels": labels}));
        items.push(json!({"name": "active_decisions", "unit": "ip", "value": active, "labels": labels}));
    }
    let mut rc = json!({
        "name": c.name,
        "type": TYPE,
        "version": c.version,
        "os": {"name": "linux", "version": c.os_version},
        "feature_flags": [],
        "utc_startup_timestamp": c.startup,
        "metrics": [{
            "meta": {"window_size_seconds": (cur.at - prev.at).max(0), "utc_now_timestamp": cur.at},
            "items": items,
        }],
    });
    if let Some(t) = last_pull {
        rc["last_pull"] = json!(t);
    }
    json!({"remediation_components": [rc]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(origin: Origin, drops: u64, active: bool) -> BanCount {
        BanCount { origin: origin as u8, drops, active }
    }

    fn component() -> Component {
        Component { name: TYPE.into(), version: "0.1.0".into(), os_version: "6.18.0".into(), startup: 1000 }
    }

    fn item<'a>(r: &'a Value, name: &str, labels: Option<(&str, &str)>) -> Option<&'a Value> {
        r["remediation_components"][0]["metrics"][0]["items"].as_array().unwrap().iter().find(|i| {
            i["name"] == name && labels.is_none_or(|(o, f)| i["labels"]["origin"] == o && i["labels"]["ip_type"] == f)
        })
    }

    #[test]
    fn windows_count_growth_new_bans_and_resets() {
        let t = |s: &str| s.parse::<Target>().unwrap();
        let prev = Snapshot {
            at: 1000,
            seen: 500,
            dropped: 40,
            bans: HashMap::from([
                (t("192.0.2.1"), ban(Origin::Manual, 10, true)),
                (t("192.0.2.2"), ban(Origin::Manual, 20, true)),
                (t("198.51.100.0/24"), ban(Origin::Community, 5, true)),
                (t("192.0.2.9"), ban(Origin::Local, 5, true)),
            ]),
        };
        let cur = Snapshot {
            at: 1900,
            seen: 800,
            dropped: 95,
            bans: HashMap::from([
                // +7
                (t("192.0.2.1"), ban(Origin::Manual, 17, true)),
                // Removed and added again: its 3 are new.
                (t("192.0.2.2"), ban(Origin::Manual, 3, false)),
                // Unchanged.
                (t("198.51.100.0/24"), ban(Origin::Community, 5, true)),
                // New: all of its 30.
                (t("2001:db8::1"), ban(Origin::Manual, 30, true)),
                // 192.0.2.9 is gone: its drops since `prev` are not known.
            ]),
        };
        let r = report(&component(), &prev, &cur, Some(1890));
        let rc = &r["remediation_components"][0];
        assert_eq!(rc["type"], "crowd-enforce");
        assert_eq!(rc["os"], json!({"name": "linux", "version": "6.18.0"}));
        assert_eq!((rc["utc_startup_timestamp"].as_i64(), rc["last_pull"].as_i64()), (Some(1000), Some(1890)));
        assert_eq!(rc["feature_flags"], json!([]));
        assert_eq!(rc["metrics"][0]["meta"], json!({"window_size_seconds": 900, "utc_now_timestamp": 1900}));
        assert_eq!(item(&r, "processed", None).unwrap()["value"], 300);
        assert_eq!(item(&r, "processed", None).unwrap().get("labels"), None);
        assert_eq!(item(&r, "dropped_total", None).unwrap()["value"], 95);
        assert_eq!(item(&r, "dropped", Some(("manual", "ipv4"))).unwrap()["value"], 10);
        assert_eq!(item(&r, "dropped", Some(("manual", "ipv6"))).unwrap()["value"], 30);
        assert_eq!(item(&r, "dropped", Some(("community", "ipv4"))).unwrap()["value"], 0);
        assert_eq!(item(&r, "active_decisions", Some(("manual", "ipv4"))).unwrap()["value"], 1, "one expired");
        assert_eq!(item(&r, "active_decisions", Some(("community", "ipv4"))).unwrap()["unit"], "ip");
        assert!(item(&r, "dropped", Some(("crowd", "ipv4"))).is_none(), "a gone origin is not reported");
        // What the Local API checks, it accepts.
        crate::lapi::model::UsageReport::parse(r.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn a_first_report_without_a_pull_and_a_reset_program() {
        let prev = Snapshot { at: 50, seen: 900, dropped: 9, bans: HashMap::new() };
        let cur = Snapshot { at: 40, seen: 100, dropped: 1, bans: HashMap::new() };
        let r = report(&component(), &prev, &cur, None);
        let rc = &r["remediation_components"][0];
        assert!(rc.get("last_pull").is_none());
        assert_eq!(rc["metrics"][0]["meta"]["window_size_seconds"], 0, "never negative");
        assert_eq!(item(&r, "processed", None).unwrap()["value"], 100, "the counters were reset");
        assert_eq!(rc["metrics"][0]["items"].as_array().unwrap().len(), 2);
    }
}
