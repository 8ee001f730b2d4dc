//! Unit tests of bucket semantics (the golden hub tests run through `crowd hubtest`).
use std::sync::Arc;

use super::*;
use crate::engine::expr::DataFiles;

fn env() -> Env {
    Env::new(Arc::new(DataFiles::default()))
}

fn scenario(yaml: &str) -> Scenario {
    let spec: ScenarioSpec = serde_yaml::from_str(yaml).unwrap();
    Scenario::compile(&spec, &env()).unwrap()
}

fn evt(ip: &str, user: &str, t: f64) -> Event {
    let mut e = Event { time: t, ..Event::default() };
    e.meta.insert("log_type".into(), "ssh_failed-auth".into());
    e.meta.insert("source_ip".into(), ip.into());
    e.meta.insert("target_user".into(), user.into());
    e
}

const LEAKY: &str = "type: leaky\nname: t/bf\nfilter: evt.Meta.log_type == 'ssh_failed-auth'\ngroupby: evt.Meta.source_ip\ncapacity: 5\nleakspeed: 10s\nblackhole: 1m\nlabels:\n  remediation: true\n";

#[test]
fn leaky_overflows_on_capacity_plus_one() {
    let env = env();
    let mut b = Buckets::new(vec![scenario(LEAKY)]);
    for i in 0..5 {
        assert!(b.pour(evt("192.0.2.1", "u", f64::from(i)), &env).is_empty(), "event {i}");
    }
    let a = b.pour(evt("192.0.2.1", "u", 5.0), &env);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].events_count, a[0].scope.as_str(), a[0].value.as_str()), (6, "Ip", "192.0.2.1"));
    assert!(a[0].remediation);
    // Blackholed for a minute: no second alert.
    for i in 0..10 {
        assert!(b.pour(evt("192.0.2.1", "u", 6.0 + f64::from(i)), &env).is_empty());
    }
}

#[test]
fn leaking_keeps_a_slow_source_under_capacity() {
    let env = env();
    let mut b = Buckets::new(vec![scenario(LEAKY)]);
    for i in 0..50 {
        assert!(b.pour(evt("192.0.2.2", "u", f64::from(i) * 10.0), &env).is_empty(), "one every leak: never overflows");
    }
}

#[test]
fn keys_are_separate_and_filter_applies() {
    let env = env();
    let mut b = Buckets::new(vec![scenario(LEAKY)]);
    for i in 0..5 {
        b.pour(evt("192.0.2.3", "u", f64::from(i)), &env);
        b.pour(evt("192.0.2.4", "u", f64::from(i)), &env);
    }
    let mut other = evt("192.0.2.3", "u", 5.0);
    other.meta.insert("log_type".into(), "something_else".into());
    assert!(b.pour(other, &env).is_empty());
    assert_eq!(b.pour(evt("192.0.2.4", "u", 5.0), &env).len(), 1);
}

#[test]
fn distinct_counts_each_value_once() {
    let env = env();
    let sc = scenario(&format!("{LEAKY}distinct: evt.Meta.target_user\n"));
    let mut b = Buckets::new(vec![sc]);
    for i in 0..20 {
        assert!(b.pour(evt("192.0.2.5", "same", f64::from(i) * 0.1), &env).is_empty());
    }
    for (i, u) in ["a", "b", "c", "d"].iter().enumerate() {
        assert!(b.pour(evt("192.0.2.5", u, 3.0 + i as f64 * 0.1), &env).is_empty());
    }
    assert_eq!(b.pour(evt("192.0.2.5", "e", 4.0), &env).len(), 1, "sixth distinct user overflows");
}

#[test]
fn trigger_and_counter() {
    let env = env();
    let trig = scenario("type: trigger\nname: t/trig\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\n");
    let count = scenario("type: counter\nname: t/count\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\nduration: 1m\n");
    let mut b = Buckets::new(vec![trig, count]);
    assert_eq!(b.pour(evt("192.0.2.6", "u", 0.0), &env).len(), 1);
    assert_eq!(b.pour(evt("192.0.2.6", "u", 1.0), &env).len(), 1);
    let a = b.pour(evt("192.0.2.7", "u", 120.0), &env);
    let counted: Vec<_> = a.iter().filter(|a| a.scenario == "t/count").collect();
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].events_count, 2);
}

#[test]
fn a_flood_of_sources_stays_within_the_budget_and_spares_the_attackers() {
    let env = env();
    let budget = 256 << 10;
    let mut b = Buckets::new(vec![scenario(LEAKY)]).with_budget(budget);
    // Four attackers half-way to an overflow (leaking 1 per 10 s), then a flood of one-event
    // sources, then each attacker's last failures.
    let attackers = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"];
    for a in attackers {
        for k in 0..4 {
            assert!(b.pour(evt(a, "u", f64::from(k) * 0.1), &env).is_empty());
        }
    }
    let mut peak = 0;
    for i in 0..40_000u32 {
        let ip = std::net::Ipv4Addr::from(0xC633_6400 + i).to_string();
        b.pour(evt(&ip, "u", 1.0 + f64::from(i) * 0.0001), &env);
        peak = peak.max(b.bytes());
    }
    assert!(peak <= budget + budget / 4, "peak {peak} bytes for a budget of {budget}");
    assert!(b.evicted() > 30_000, "{} evicted", b.evicted());
    assert_eq!(b.evictions().collect::<Vec<_>>(), [("t/bf", b.evicted())]);
    let mut alerts = Vec::new();
    for a in attackers {
        for k in 0..2 {
            alerts.extend(b.pour(evt(a, "u", 5.0 + f64::from(k) * 0.1), &env));
        }
    }
    let got: Vec<&str> = alerts.iter().map(|a| a.value.as_str()).collect();
    assert_eq!(got, attackers, "every attacker's bucket survived the flood");
}

#[test]
fn an_alert_carries_its_first_time_and_the_overflowing_event_without_a_queue() {
    let env = env();
    let mut b = Buckets::new(vec![scenario(LEAKY)]);
    let mut a = Vec::new();
    for i in 0..6 {
        a.extend(b.pour(evt("192.0.2.8", &format!("u{i}"), 100.0 + f64::from(i)), &env));
    }
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].first, a[0].at, a[0].events_count), (100.0, 105.0, 6));
    assert_eq!(a[0].events.len(), 1, "the overflowing event only");
    assert_eq!(a[0].events[0].meta.get("target_user").map(|s| s.as_str()), Some("u5"));
    // Kept queues (crowd hubtest): the last capacity + 1 events.
    let mut b = Buckets::new(vec![scenario(LEAKY)]).keeping_queues();
    let mut a = Vec::new();
    for i in 0..6 {
        a.extend(b.pour(evt("192.0.2.8", &format!("u{i}"), 100.0 + f64::from(i)), &env));
    }
    assert_eq!(a[0].events.len(), 6);
}

#[test]
fn durations() {
    assert_eq!(crate::clock::go_duration_secs("10s"), Some(10.0));
    assert_eq!(crate::clock::go_duration_secs("1m30s"), Some(90.0));
    assert_eq!(crate::clock::go_duration_secs("500ms"), Some(0.5));
    assert_eq!(crate::clock::go_duration_secs("2h"), Some(7200.0));
    assert_eq!(crate::clock::go_duration_secs("ten"), None);
}

#[test]
fn bad_specs_are_refused() {
    let spec: ScenarioSpec = serde_yaml::from_str("type: leaky\nname: x\nfilter: \"true\"\ncapacity: 5\n").unwrap();
    assert!(Scenario::compile(&spec, &env()).unwrap_err().to_string().contains("leakspeed"));
    assert!(serde_yaml::from_str::<ScenarioSpec>("type: leaky\nname: x\nfilter: \"true\"\ncapacityy: 5\n").is_err());
}

#[test]
fn overflows_poured_back_carry_their_alert_not_the_log_lines() {
    // CrowdSec's reprocessed overflow has no `Meta`: a scenario on log lines never sees it, one
    // on overflows (`evt.GetType()`, `evt.Overflow.Alert.Source.IP`) does.
    let env = env();
    let trigger = "type: trigger\nname: t/one\nfilter: evt.Meta.log_type == 'ssh_failed-auth'\ngroupby: evt.Meta.source_ip\nreprocess: true\nlabels:\n  remediation: true\n";
    let on_lines = "type: trigger\nname: t/lines\nfilter: evt.Meta.log_type == 'ssh_failed-auth' && evt.GetType() == 'log'\ngroupby: evt.Meta.source_ip\n";
    let on_overflows = "type: leaky\nname: t/repeat\nfilter: evt.GetType() == 'overflow' && evt.Overflow.Alert.Remediation == true\ngroupby: evt.Overflow.Alert.Source.IP\ncapacity: 0\nleakspeed: 1m\nlabels:\n  remediation: true\n";
    let mut b = Buckets::new(vec![scenario(trigger), scenario(on_lines), scenario(on_overflows)]);
    let mut a = b.pour(evt("192.0.2.7", "u", 0.0), &env);
    a.sort_by(|x, y| x.scenario.cmp(&y.scenario));
    let got: Vec<(&str, &str, &str)> =
        a.iter().map(|x| (x.scenario.as_str(), x.value.as_str(), x.ip.as_str())).collect();
    assert_eq!(
        got,
        [
            ("t/lines", "192.0.2.7", "192.0.2.7"),
            ("t/one", "192.0.2.7", "192.0.2.7"),
            ("t/repeat", "192.0.2.7", "192.0.2.7")
        ],
        "the overflow reaches only the overflow scenario, with its alert's source"
    );
}

#[test]
fn ipv6_sources_count_per_configured_prefix_and_alert_as_its_range() {
    let grouped = "type: leaky\nname: t/bf6\nfilter: evt.Meta.log_type == 'ssh_failed-auth'\ngroupby: IpPrefix(evt.Meta.source_ip)\nscope:\n  type: Range\n  expression: IpPrefix(evt.Meta.source_ip)\ncapacity: 5\nleakspeed: 10s\nlabels:\n  remediation: true\n";
    let env = env();
    let mut b = Buckets::new(vec![scenario(grouped)]);
    // Six addresses of one /64: one bucket, one alert on the /64 that keeps the last address.
    let mut alerts = Vec::new();
    for i in 1..=6 {
        alerts.extend(b.pour(evt(&format!("2001:db8:1:2::{i:x}"), "u", f64::from(i)), &env));
    }
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!((a.scope.as_str(), a.value.as_str(), a.ip.as_str()), ("Range", "2001:db8:1:2::/64", "2001:db8:1:2::6"));
    assert_eq!(a.overflow_alert().source.range, "2001:db8:1:2::/64");
    // IPv4 stays per address and alerts as an Ip.
    let mut v4 = Vec::new();
    for i in 1..=6 {
        v4.extend(b.pour(evt(&format!("192.0.2.{i}"), "u", f64::from(i)), &env));
        v4.extend(b.pour(evt("198.51.100.9", "u", f64::from(i)), &env));
    }
    let got: Vec<_> = v4.iter().map(|a| (a.scope.as_str(), a.value.as_str(), a.ip.as_str())).collect();
    assert_eq!(got, [("Ip", "198.51.100.9", "198.51.100.9")]);
    // At 128 bits (`--ipv6-prefix 128`) each IPv6 address counts alone.
    env.set_ipv6_prefix(128);
    let mut b = Buckets::new(vec![scenario(grouped)]);
    let mut none = Vec::new();
    for i in 1..=6 {
        none.extend(b.pour(evt(&format!("2001:db8:1:3::{i:x}"), "u", f64::from(i)), &env));
    }
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn replaying_pours_undated_events_into_triggers_only() {
    // CrowdSec's time machine: a leaky bucket takes only dated events (`MarshaledTime`); a
    // trigger overflows whatever the event's date.
    let env = env();
    let trigger =
        "type: trigger\nname: t/one\nfilter: evt.Meta.log_type == 'ssh_failed-auth'\ngroupby: evt.Meta.source_ip\n";
    let dated = |ip: &str, t: f64| {
        let mut e = evt(ip, "u", t);
        e.enriched.insert("MarshaledTime".into(), "2024-01-01T00:00:00Z".into());
        e
    };
    let mut replay = Buckets::new(vec![scenario(LEAKY), scenario(trigger)]).replaying();
    let mut live = Buckets::new(vec![scenario(LEAKY), scenario(trigger)]);
    let (mut r, mut l, mut d) = (Vec::new(), Vec::new(), Vec::new());
    let mut replay_dated = Buckets::new(vec![scenario(LEAKY)]).replaying();
    for i in 0..6 {
        r.extend(replay.pour(evt("192.0.2.8", "u", f64::from(i)), &env));
        l.extend(live.pour(evt("192.0.2.8", "u", f64::from(i)), &env));
        d.extend(replay_dated.pour(dated("192.0.2.8", f64::from(i)), &env));
    }
    let names = |a: &[Alert]| a.iter().map(|x| x.scenario.clone()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(names(&r), ["t/one".to_owned()].into(), "undated: triggers only");
    assert_eq!(names(&l), ["t/bf".to_owned(), "t/one".to_owned()].into(), "live: every scenario");
    assert_eq!(names(&d), ["t/bf".to_owned()].into(), "dated replay: the leaky bucket too");
}

#[test]
fn bayesian_buckets_are_checked_as_crowdsec_checks_them() {
    let env = env();
    let good = "type: bayesian\nname: t/bayes\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\nleakspeed: 30s\ncapacity: -1\nbayesian_prior: 0.5\nbayesian_threshold: 0.8\nbayesian_conditions:\n- condition: any(queue.Queue, {.Meta.target_user == 'admin'})\n  prob_given_evil: 0.9\n  prob_given_benign: 0.2\n";
    let spec: ScenarioSpec = serde_yaml::from_str(good).unwrap();
    assert!(Scenario::compile(&spec, &env).is_ok());
    for (bad, field) in [
        (good.replace("capacity: -1", "capacity: 5"), "capacity"),
        (good.replace("bayesian_prior: 0.5", "bayesian_prior: 0"), "bayesian_prior"),
        (good.replace("bayesian_threshold: 0.8", "bayesian_threshold: 1.5"), "bayesian_threshold"),
        (good.replace("type: bayesian", "type: leaky"), "bayesian_conditions"),
    ] {
        let spec: ScenarioSpec = serde_yaml::from_str(&bad).unwrap();
        let e = Scenario::compile(&spec, &env).unwrap_err();
        assert_eq!(e.field, field, "{bad}: {e}");
    }
    // One admin login: posterior 0.5 -> 0.818 > 0.8, an alert; another user: 0.5 -> 0.111.
    let mut b = Buckets::new(vec![scenario(good)]);
    assert!(b.pour(evt("192.0.2.9", "bob", 0.0), &env).is_empty());
    assert_eq!(b.pour(evt("192.0.2.10", "admin", 1.0), &env).len(), 1);
}
