//! The consensus engine's unit tests: quorum and diversity, duplicates, canaries and
//! suspension, the allowlist, hysteresis, re-announcement, trust, sensors, caps and incrementality.
use super::*;

const T0: i64 = 1_700_000_000;
const HOUR: i64 = 3_600;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Default parameters without warm-up.
fn open() -> Params {
    Params { warmup_secs: 0, warmup_signals: 0, warmup_days: 0, ..Params::default() }
}

/// One organisation `o{i}` with machine `m{i}` per `(third octet, asn)`, trust 0.75.
fn engine(params: Params, orgs: &[(u8, u32)]) -> Consensus {
    let mut c = Consensus::new(params, Canaries::default());
    for (i, &(net, asn)) in orgs.iter().enumerate() {
        c.add_reporter(Reporter {
            machine: format!("m{i}"),
            org: format!("o{i}"),
            egress: IpAddr::V4(Ipv4Addr::new(20, 0, net, 10 + i as u8)),
            asn,
            registered_at: T0 - 30 * DAY,
            sensor: false,
        });
        c.set_trust(&format!("o{i}"), 3.0, 1.0, T0);
    }
    c
}

fn diverse(n: u8) -> Vec<(u8, u32)> {
    (0..n).map(|i| (i + 1, 100 + u32::from(i))).collect()
}

fn rep(m: usize, addr: &str, at: i64) -> Report {
    Report { machine: format!("m{m}"), ip: ip(addr), scenario: "crowdsecurity/ssh-bf".into(), at }
}

fn values(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.value.as_str()).collect()
}

fn listed(c: &Consensus) -> Vec<String> {
    c.listed().map(|e| e.value.clone()).collect()
}

#[test]
fn three_diverse_orgs_list_at_next_tick() {
    let mut c = engine(open(), &diverse(3));
    assert_eq!(c.report(&rep(0, "203.0.113.7", T0), T0), Outcome::Counted);
    assert_eq!(c.report(&rep(1, "203.0.113.7", T0 + 10), T0 + 10), Outcome::Counted);
    assert!(c.tick(T0 + 20).is_empty());
    assert_eq!(
        c.explain(ip("203.0.113.7"), T0 + 20).reason,
        "2 of 3 organisations, 2 of 3 egress prefixes, score 1.50 of 1.50"
    );
    assert_eq!(c.report(&rep(2, "203.0.113.7", T0 + 30), T0 + 30), Outcome::Counted);
    let ch = c.tick(T0 + 40);
    assert_eq!(values(&ch.listed), ["203.0.113.7"]);
    let e = &ch.listed[0];
    assert_eq!((e.scope, e.until, e.scenario.as_str()), (Scope::Ip, T0 + 40 + 2 * DAY, "crowdsecurity/ssh-bf"));
    assert!(e.score > 2.2 && e.score <= 2.25, "{}", e.score);
    assert_eq!(listed(&c), ["203.0.113.7"]);
    let x = c.explain(ip("203.0.113.7"), T0 + 40);
    assert!(x.listed && x.orgs == 3 && x.prefixes == 3 && x.asns == 3 && !x.canary);
    assert!(!x.reason.contains("o0") && !x.reason.contains("m0"), "{}", x.reason);
}

#[test]
fn three_orgs_behind_one_prefix_do_not_list() {
    let mut c = engine(open(), &[(1, 100), (1, 200), (1, 300)]);
    for m in 0..3 {
        assert_eq!(c.report(&rep(m, "203.0.113.7", T0), T0), Outcome::Counted);
    }
    assert!(c.tick(T0 + 1).is_empty());
    let x = c.explain(ip("203.0.113.7"), T0 + 1);
    assert_eq!((x.orgs, x.prefixes), (3, 1));
    assert!(x.score < 0.8, "one prefix weighs as one org: {}", x.score);
}

#[test]
fn three_prefixes_in_one_asn_do_not_list() {
    let mut c = engine(open(), &[(1, 100), (2, 100), (3, 100)]);
    for m in 0..3 {
        c.report(&rep(m, "203.0.113.7", T0), T0);
    }
    assert!(c.tick(T0 + 1).is_empty());
    assert_eq!(c.explain(ip("203.0.113.7"), T0 + 1).reason, "1 of 2 ASNs");
}

#[test]
fn one_org_with_many_machines_counts_once() {
    let mut c = engine(open(), &[]);
    for i in 0..100u8 {
        c.add_reporter(Reporter {
            machine: format!("s{i}"),
            org: "sybil".into(),
            egress: IpAddr::V4(Ipv4Addr::new(30, i, 0, 1)),
            asn: 1000 + u32::from(i),
            registered_at: T0 - 60 * DAY,
            sensor: false,
        });
    }
    c.set_trust("sybil", 50.0, 1.0, T0);
    let mut outcomes = Vec::new();
    for i in 0..100u8 {
        let r = Report { machine: format!("s{i}"), ip: ip("203.0.113.7"), scenario: "x".into(), at: T0 };
        outcomes.push(c.report(&r, T0));
    }
    assert_eq!(outcomes.iter().filter(|&&o| o == Outcome::Counted).count(), 1);
    assert!(c.tick(T0 + 1).is_empty());
    assert_eq!(c.explain(ip("203.0.113.7"), T0 + 1).orgs, 1);
}

#[test]
fn duplicates_within_the_window() {
    let mut c = engine(open(), &diverse(1));
    c.add_reporter(Reporter {
        machine: "m0b".into(),
        org: "o0".into(),
        egress: ip("20.0.9.9"),
        asn: 999,
        registered_at: T0,
        sensor: false,
    });
    assert_eq!(c.report(&rep(0, "203.0.113.7", T0), T0), Outcome::Counted);
    assert_eq!(c.report(&rep(0, "203.0.113.7", T0 + HOUR), T0 + HOUR), Outcome::Duplicate);
    let other = Report { machine: "m0b".into(), ..rep(0, "203.0.113.7", T0 + HOUR) };
    assert_eq!(c.report(&other, T0 + HOUR), Outcome::Duplicate);
    assert_eq!(c.report(&rep(0, "203.0.113.8", T0 + HOUR), T0 + HOUR), Outcome::Counted);
    assert_eq!(c.report(&rep(0, "203.0.113.7", T0 + DAY), T0 + DAY), Outcome::Counted);
}

#[test]
fn stale_future_and_unknown_reports() {
    let mut c = engine(open(), &diverse(1));
    let now = T0 + 10 * DAY;
    assert_eq!(c.report(&rep(0, "203.0.113.7", now - DAY), now), Outcome::Stale);
    assert_eq!(c.report(&rep(0, "203.0.113.7", now + 301), now), Outcome::Stale);
    assert_eq!(c.report(&rep(0, "203.0.113.7", now + 300), now), Outcome::Counted);
    assert_eq!(c.report(&rep(0, "203.0.113.8", now - DAY + 1), now), Outcome::Counted);
    assert_eq!(c.report(&rep(7, "203.0.113.9", now), now), Outcome::Unknown);
    c.remove_reporter("m0");
    assert_eq!(c.report(&rep(0, "203.0.113.9", now), now), Outcome::Unknown);
}

#[test]
fn canary_penalty_zeroing_and_suspension() {
    let mut c = engine(open(), &diverse(2));
    let before = c.trust("o0");
    assert_eq!(c.report(&rep(0, "8.8.8.8", T0), T0), Outcome::Canary);
    // (3, 1) + 5 on beta: weight 0 while zeroed, 3/9 afterwards.
    assert_eq!(c.trust("o0"), 0.0);
    let t = c.org_trust("o0").expect("known org");
    assert!((t.beta - 6.0).abs() < 1e-9 && !t.suspended && t.zeroed_until == T0 + 7 * DAY);
    assert_eq!(c.report(&rep(0, "203.0.113.7", T0 + 60), T0 + 60), Outcome::Suspended);
    // The same canary again the same day is one hit.
    assert_eq!(c.report(&rep(0, "8.8.8.8", T0 + 120), T0 + 120), Outcome::Canary);
    assert!(!c.org_trust("o0").is_some_and(|t| t.suspended));
    let later = T0 + 8 * DAY;
    assert_eq!(c.report(&rep(0, "203.0.113.7", later), later), Outcome::Counted);
    assert!(c.trust("o0") < before);
    // Second hit within 30 days: suspended until lifted, even after the 7 days.
    assert_eq!(c.report(&rep(0, "2606:4700:4700::1111", later + 60), later + 60), Outcome::Canary);
    let much_later = later + 20 * DAY;
    assert_eq!(c.report(&rep(0, "203.0.113.8", much_later), much_later), Outcome::Suspended);
    assert!(c.org_trust("o0").is_some_and(|t| t.suspended));
    assert!(c.lift_suspension("o0"));
    assert_eq!(c.report(&rep(0, "203.0.113.8", much_later), much_later), Outcome::Counted);
    // Other organisations are unaffected.
    assert_eq!(c.report(&rep(1, "203.0.113.8", much_later), much_later), Outcome::Counted);
}

#[test]
fn trust_warm_up_and_suspension_outlive_a_restart() {
    let mut c = engine(open(), &diverse(2));
    c.report(&rep(0, "203.0.113.7", T0), T0);
    c.report(&rep(1, "8.8.8.8", T0), T0);
    c.report(&rep(1, "1.1.1.1", T0 + DAY), T0 + DAY);
    let states = c.org_states();
    let mut fresh = engine(open(), &diverse(2));
    for s in &states {
        fresh.restore_org(s);
    }
    assert_eq!(fresh.org_states(), states);
    fresh.tick(T0 + DAY);
    assert_eq!(fresh.org_trust("o0"), c.org_trust("o0"));
    assert!(fresh.org_trust("o1").is_some_and(|t| t.suspended), "a suspension survives");
    assert_eq!(fresh.report(&rep(1, "203.0.113.9", T0 + DAY + 60), T0 + DAY + 60), Outcome::Suspended);
}

#[test]
fn canary_hits_withdraw_what_only_those_orgs_supported() {
    let mut c = engine(open(), &diverse(3));
    for m in 0..3 {
        c.report(&rep(m, "203.0.113.7", T0), T0);
    }
    assert_eq!(values(&c.tick(T0 + 1).listed), ["203.0.113.7"]);
    c.report(&rep(0, "1.1.1.1", T0 + 2), T0 + 2);
    assert!(c.tick(T0 + 3).is_empty(), "two orgs keep it (hysteresis)");
    c.report(&rep(1, "9.9.9.9", T0 + 4), T0 + 4);
    assert_eq!(values(&c.tick(T0 + 5).withdrawn), ["203.0.113.7"]);
    assert!(listed(&c).is_empty());
}

#[test]
fn member_egress_addresses_are_canaries() {
    let mut c = engine(open(), &diverse(4));
    // 198.51.100.20 is listed before it becomes a member's egress address.
    for m in 0..3 {
        c.report(&rep(m, "198.51.100.20", T0), T0);
    }
    assert_eq!(values(&c.tick(T0 + 1).listed), ["198.51.100.20"]);
    c.add_reporter(Reporter {
        machine: "new".into(),
        org: "newcomer".into(),
        egress: ip("::ffff:198.51.100.20"),
        asn: 7,
        registered_at: T0,
        sensor: false,
    });
    assert_eq!(values(&c.tick(T0 + 2).withdrawn), ["198.51.100.20"]);
    assert_eq!(c.report(&rep(3, "198.51.100.20", T0 + 3), T0 + 3), Outcome::Canary);
    assert_eq!(c.report(&rep(3, "20.0.1.10", T0 + 3), T0 + 3), Outcome::Canary, "o0's egress");
    assert!(c.explain(ip("20.0.1.10"), T0 + 3).canary);
}

#[test]
fn bogons_are_refused_without_penalty_and_documentation_ranges_are_public() {
    let mut c = engine(open(), &diverse(1));
    let t = c.org_trust("o0");
    for bogon in [
        "0.1.2.3",
        "10.1.2.3",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "172.16.5.5",
        "192.168.1.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fc00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:10.0.0.1",
    ] {
        assert_eq!(c.report(&rep(0, bogon, T0), T0), Outcome::NotPublic, "{bogon}");
        assert!(c.explain(ip(bogon), T0).canary);
    }
    assert_eq!(c.org_trust("o0"), t);
    for public in ["192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1", "8.8.8.9"] {
        assert_eq!(c.report(&rep(0, public, T0), T0), Outcome::Counted, "{public}");
    }
    let mut never = Canaries::new(vec![(ip("192.0.2.0"), 24), (ip("2001:db8::"), 32)]);
    never.add((ip("198.51.100.0"), 24));
    assert!(never.contains(ip("192.0.2.55")) && never.contains(ip("2001:db8:1::5")));
    assert!(never.contains(ip("198.51.100.1")) && !never.contains(ip("203.0.113.1")));
    assert!(never.is_bogon(ip("::ffff:192.168.0.1")) && !never.is_bogon(ip("8.8.8.8")));
}

#[test]
fn operator_allowlist_withdraws_at_next_tick_and_blocks_relisting() {
    let mut c = engine(open(), &diverse(3));
    for addr in ["203.0.113.7", "203.0.113.8", "198.51.100.1"] {
        for m in 0..3 {
            c.report(&rep(m, addr, T0), T0);
        }
    }
    assert_eq!(c.tick(T0 + 1).listed.len(), 3);
    c.allow((ip("203.0.113.0"), 24));
    let ch = c.tick(T0 + 2);
    assert_eq!(values(&ch.withdrawn), ["203.0.113.7", "203.0.113.8"]);
    assert_eq!(listed(&c), ["198.51.100.1"]);
    assert_eq!(c.report(&rep(0, "203.0.113.9", T0 + DAY), T0 + DAY), Outcome::Allowed);
    assert_eq!(c.org_trust("o0").map(|t| t.beta), Some(1.0), "no penalty");
    assert!(c.disallow((ip("203.0.113.0"), 24)));
    for m in 0..3 {
        assert_eq!(c.report(&rep(m, "203.0.113.7", T0 + DAY + 1), T0 + DAY + 1), Outcome::Counted);
    }
    // 198.51.100.1 is re-announced at the same tick (half of its 48 h are left).
    assert_eq!(values(&c.tick(T0 + DAY + 2).listed), ["198.51.100.1", "203.0.113.7"]);
}

#[test]
fn withdrawn_with_hysteresis_after_the_window() {
    let mut c = engine(open(), &diverse(3));
    for m in 0..3 {
        c.report(&rep(m, "203.0.113.7", T0), T0);
    }
    assert_eq!(c.tick(T0).listed.len(), 1);
    // Score 2.25 halves every day (and trust decays a little): still >= 0.75 after W, below it
    // after about log2(3) days.
    let mut withdrawn_at = None;
    for h in 1..=72 {
        let ch = c.tick(T0 + h * HOUR);
        if !ch.withdrawn.is_empty() {
            withdrawn_at = Some(h);
            break;
        }
    }
    assert_eq!(withdrawn_at, Some(38), "log2(2.25 / 0.75) days = 38.04 h, a bit less with decay");
    assert!(listed(&c).is_empty());
    assert!(!c.explain(ip("203.0.113.7"), T0 + 40 * HOUR).listed);
}

#[test]
fn reannounced_before_it_lapses_while_it_qualifies() {
    let mut c = engine(open(), &diverse(3));
    let mut until = None;
    for h in 0..(5 * 24) {
        let now = T0 + h * HOUR;
        if h % 6 == 0 {
            for m in 0..3 {
                c.report(&rep(m, "203.0.113.7", now), now);
            }
        }
        let ch = c.tick(now);
        if let Some(e) = ch.listed.first() {
            until = Some(e.until);
        }
        assert!(ch.withdrawn.is_empty());
        let u = until.expect("listed at the first tick");
        assert!(u - now > DAY - HOUR, "hour {h}: until {u} too close");
    }
    assert_eq!(c.listed().count(), 1);
}

#[test]
fn ipv4_mapped_addresses_are_normalised() {
    let mut c = engine(open(), &diverse(3));
    for m in 0..3 {
        c.report(&rep(m, "::ffff:203.0.113.9", T0), T0);
    }
    assert_eq!(values(&c.tick(T0 + 1).listed), ["203.0.113.9"]);
    assert!(c.explain(ip("203.0.113.9"), T0 + 1).listed);
    assert!(c.explain(ip("::ffff:203.0.113.9"), T0 + 1).listed);
    assert_eq!(normalise(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
    assert_eq!(egress_prefix(ip("2001:db8:1:2::5")), ip("2001:db8:1::"));
    assert_eq!(egress_prefix(ip("::ffff:198.51.100.77")), ip("198.51.100.0"));
}

#[test]
fn ipv6_reporters_use_48_prefixes() {
    let mut c = engine(open(), &[]);
    for (i, egress) in ["2001:db8:1:1::1", "2001:db8:1:2::1", "2001:db8:2::1"].iter().enumerate() {
        c.add_reporter(Reporter {
            machine: format!("m{i}"),
            org: format!("o{i}"),
            egress: ip(egress),
            asn: 100 + i as u32,
            registered_at: T0 - 30 * DAY,
            sensor: false,
        });
        c.set_trust(&format!("o{i}"), 3.0, 1.0, T0);
    }
    for m in 0..3 {
        c.report(&rep(m, "2001:db8:99::7", T0), T0);
    }
    assert!(c.tick(T0 + 1).is_empty(), "two of the orgs share 2001:db8:1::/48");
    assert_eq!(c.explain(ip("2001:db8:99::7"), T0 + 1).prefixes, 2);
}

#[test]
fn warm_up_keeps_new_orgs_out() {
    let mut c = engine(Params::default(), &diverse(3));
    for m in 0..3 {
        c.report(&rep(m, "203.0.113.7", T0), T0);
    }
    assert!(c.tick(T0 + 1).is_empty());
    assert_eq!(c.explain(ip("203.0.113.7"), T0 + 1).orgs, 0);
    // Ten signals on three days, then they count.
    for day in 1..=3 {
        for k in 0..4 {
            for m in 0..3 {
                let now = T0 + day * DAY + k;
                c.report(&rep(m, &format!("198.51.100.{}", 10 * day + k), now), now);
            }
        }
    }
    let now = T0 + 3 * DAY + 10;
    for m in 0..3 {
        c.report(&rep(m, "203.0.113.8", now), now);
    }
    assert!(c.tick(now).listed.iter().any(|e| e.value == "203.0.113.8"));
}

#[test]
fn trust_resolves_after_the_horizon() {
    let mut c = engine(open(), &diverse(5));
    for m in 0..4 {
        c.report(&rep(m, "203.0.113.7", T0), T0);
    }
    c.report(&rep(4, "198.51.100.66", T0), T0);
    c.tick(T0 + 1);
    c.tick(T0 + 3 * DAY - 1);
    let t0 = c.org_trust("o0").expect("o0");
    assert!(t0.alpha < 3.0 && t0.beta == 1.0, "only decay before the horizon: {t0:?}");
    c.tick(T0 + 3 * DAY);
    let t0 = c.org_trust("o0").expect("o0");
    let t4 = c.org_trust("o4").expect("o4");
    let decay = 0.98f64.powi(3);
    assert!((t0.alpha - (3.0 * decay + 1.0)).abs() < 1e-9, "agreement: {t0:?}");
    assert!((t4.beta - 2.0).abs() < 1e-9, "contradiction: {t4:?}");
    assert!(c.trust("o0") > 0.75 && c.trust("o4") < 0.75);
}

#[test]
fn sensors_list_alone_but_not_canaries() {
    let mut c = engine(open(), &[]);
    c.add_reporter(Reporter {
        machine: "pot".into(),
        org: "operator".into(),
        egress: ip("198.18.0.1"),
        asn: 1,
        registered_at: T0,
        sensor: true,
    });
    let r = |addr: &str| Report { machine: "pot".into(), ip: ip(addr), scenario: "honeypot".into(), at: T0 };
    assert_eq!(c.report(&r("203.0.113.50"), T0), Outcome::Counted);
    let ch = c.tick(T0 + 1);
    assert_eq!(values(&ch.listed), ["203.0.113.50"]);
    assert_eq!(ch.listed[0].scenario, "honeypot");
    // A sensor that reports a canary is zeroed like any reporter: what it listed goes.
    assert_eq!(c.report(&r("8.8.4.4"), T0), Outcome::Canary);
    assert_eq!(values(&c.tick(T0 + 2).withdrawn), ["203.0.113.50"]);
    let mut quiet = engine(Params { sensor_alone: false, ..open() }, &[]);
    quiet.add_reporter(Reporter {
        machine: "pot".into(),
        org: "operator".into(),
        egress: ip("198.18.0.1"),
        asn: 1,
        registered_at: T0,
        sensor: true,
    });
    quiet.report(&r("203.0.113.50"), T0);
    assert!(quiet.tick(T0 + 1).is_empty());
}

#[test]
fn published_list_is_capped_by_score() {
    let mut c = engine(Params { max_entries: 2, ..open() }, &diverse(5));
    // Scores grow with the number of orgs: .51 has 5, .52 has 4, .53 has 3.
    for (addr, n) in [("203.0.113.53", 3), ("203.0.113.52", 4), ("203.0.113.51", 5)] {
        for m in 0..n {
            c.report(&rep(m, addr, T0), T0);
        }
    }
    let ch = c.tick(T0 + 1);
    assert_eq!(values(&ch.listed), ["203.0.113.51", "203.0.113.52"]);
    assert_eq!(listed(&c), ["203.0.113.51", "203.0.113.52"]);
    c.allow((ip("203.0.113.51"), 32));
    let ch = c.tick(T0 + 2);
    assert_eq!(values(&ch.withdrawn), ["203.0.113.51"]);
    assert_eq!(values(&ch.listed), ["203.0.113.53"], "the waiting entry moves up");
    assert_eq!(listed(&c), ["203.0.113.52", "203.0.113.53"]);
}

#[test]
fn idle_ticks_do_no_work_and_old_reports_are_dropped() {
    let mut c = engine(open(), &diverse(1));
    c.tick(T0);
    for i in 0..100_000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x2d00_0000 + i));
        let r = Report { machine: "m0".into(), ip: addr, scenario: "x".into(), at: T0 };
        assert_eq!(c.report(&r, T0), Outcome::Counted);
    }
    assert!(c.tick(T0 + 1).is_empty());
    assert_eq!(c.last_tick_work(), 100_000, "every touched address once");
    for k in 2..50 {
        assert!(c.tick(T0 + k * 60).is_empty());
        assert_eq!(c.last_tick_work(), 0, "nothing touched, nothing due");
    }
    assert_eq!(c.tracked_addresses(), 100_000);
    // Trust resolution (H) and pruning (max(2W, H)) are due at T0 + 3 days.
    assert!(c.tick(T0 + 3 * DAY).is_empty());
    assert_eq!(c.last_tick_work(), 100_000);
    assert_eq!(c.tracked_addresses(), 0);
    assert!(c.org_trust("o0").is_some_and(|t| t.beta > 1000.0), "100k uncorroborated reports");
}

#[test]
fn ingest_ten_thousand_reports_timing() {
    let mut c = engine(open(), &diverse(4));
    let start = std::time::Instant::now();
    for i in 0..10_000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x2d00_0000 + i / 3));
        let m = (i % 3) as usize + usize::from(i % 7 == 0);
        let r = Report { machine: format!("m{m}"), ip: addr, scenario: "x".into(), at: T0 + i64::from(i) };
        c.report(&r, T0 + i64::from(i));
    }
    let ingest = start.elapsed();
    let ch = c.tick(T0 + 10_000);
    println!(
        "10,000 reports in {ingest:?}, tick in {:?}: {} listed, {} addresses",
        start.elapsed() - ingest,
        ch.listed.len(),
        c.last_tick_work()
    );
    assert!(!ch.listed.is_empty());
}

#[test]
fn scenarios_are_counted_per_address() {
    let mut c = engine(open(), &diverse(3));
    for (m, s) in [(0, "b"), (1, "a"), (2, "b")] {
        let r = Report { scenario: s.into(), ..rep(m, "203.0.113.7", T0) };
        c.report(&r, T0);
    }
    assert_eq!(c.scenarios_of(ip("203.0.113.7")), [("b", 2), ("a", 1)]);
    assert_eq!(c.tick(T0 + 1).listed[0].scenario, "b");
}
