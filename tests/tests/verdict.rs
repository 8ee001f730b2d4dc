//! Verdicts of the XDP program on crafted frames, through BPF_PROG_TEST_RUN (privileged).
//!
//! Each test loads the program against its own pin directory, writes bans with the same code
//! the CLI uses, runs frames through the real program in the kernel and checks the verdict and
//! the counters.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::programs::{TestRun, TestRunOptions};
use crowd::{
    addr::Target,
    clock::{BootClock, boot_now_ns},
    enforce::{maps::BanMaps, object},
};
use crowd_common::{Ban, Origin};
use crowd_tests::{
    PinDir,
    packet::{TPID_8021AD, TPID_8021Q, arp, ipv4, ipv6},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

struct Fixture {
    loaded: object::Loaded,
    maps: BanMaps,
    _pins: PinDir,
}

impl Fixture {
    fn new() -> Fixture {
        let pins = PinDir::new();
        let loaded = object::load(&pins.settings).expect("load");
        let maps = BanMaps::open(&pins.settings).expect("open maps");
        Fixture { loaded, maps, _pins: pins }
    }

    fn run(&mut self, frame: &[u8]) -> u32 {
        let opts = TestRunOptions { data_in: Some(frame), ..TestRunOptions::default() };
        self.loaded.program().test_run(opts).expect("test run").return_value
    }

    fn ban(&mut self, target: &str) {
        self.ban_until(target, 0);
    }

    fn ban_until(&mut self, target: &str, expires_at_ns: u64) {
        let t: Target = target.parse().expect("target");
        self.maps.insert_ban(t, Ban::new(expires_at_ns, 7, Origin::Manual)).expect("ban");
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("v4")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("v6")
}

#[test]
fn exact_v4_hit_and_miss() {
    let mut f = Fixture::new();
    f.ban("192.0.2.10");
    assert_eq!(f.run(&ipv4(v4("192.0.2.10"), &[], 0)), XDP_DROP);
    assert_eq!(f.run(&ipv4(v4("192.0.2.11"), &[], 0)), XDP_PASS);
    let s = f.maps.stats().expect("stats");
    assert_eq!((s.seen, s.passed, s.dropped_exact, s.dropped_range), (2, 1, 1, 0));
    let hit = f.maps.lookup(IpAddr::V4(v4("192.0.2.10")));
    assert_eq!(hit.exact.expect("exact entry").ban.drops, 1, "per-ban drop counter");
}

#[test]
fn exact_v6_hit_and_miss() {
    let mut f = Fixture::new();
    f.ban("2001:db8::10");
    assert_eq!(f.run(&ipv6(v6("2001:db8::10"), &[])), XDP_DROP);
    assert_eq!(f.run(&ipv6(v6("2001:db8::11"), &[])), XDP_PASS);
}

#[test]
fn range_hits_v4_and_v6_and_only_inside() {
    let mut f = Fixture::new();
    f.ban("198.51.100.0/24");
    f.ban("2001:db8:bad::/48");
    assert_eq!(f.run(&ipv4(v4("198.51.100.200"), &[], 0)), XDP_DROP);
    assert_eq!(f.run(&ipv4(v4("198.51.101.1"), &[], 0)), XDP_PASS);
    assert_eq!(f.run(&ipv6(v6("2001:db8:bad:1::5"), &[])), XDP_DROP);
    assert_eq!(f.run(&ipv6(v6("2001:db8:bae::5"), &[])), XDP_PASS);
    let s = f.maps.stats().expect("stats");
    assert_eq!(s.dropped_range, 2);
    // Removing the last range turns the trie lookup off again, and the verdict follows.
    assert!(f.maps.remove_ban("198.51.100.0/24".parse().expect("t")).expect("remove"));
    assert_eq!(f.run(&ipv4(v4("198.51.100.200"), &[], 0)), XDP_PASS);
}

#[test]
fn vlan_and_qinq_frames_are_parsed() {
    let mut f = Fixture::new();
    f.ban("192.0.2.20");
    f.ban("2001:db8::20");
    for tags in [&[TPID_8021Q][..], &[TPID_8021AD, TPID_8021Q][..], &[TPID_8021Q, TPID_8021Q][..]] {
        assert_eq!(f.run(&ipv4(v4("192.0.2.20"), tags, 0)), XDP_DROP, "v4 tags {tags:x?}");
        assert_eq!(f.run(&ipv4(v4("192.0.2.21"), tags, 0)), XDP_PASS, "v4 tags {tags:x?}");
        assert_eq!(f.run(&ipv6(v6("2001:db8::20"), tags)), XDP_DROP, "v6 tags {tags:x?}");
    }
    // A third tag is deeper than crowd parses: passed and counted as unparsable, never aborted.
    let before = f.maps.stats().expect("stats").unparsable;
    assert_eq!(f.run(&ipv4(v4("192.0.2.20"), &[TPID_8021AD, TPID_8021Q, TPID_8021Q], 0)), XDP_PASS);
    assert_eq!(f.maps.stats().expect("stats").unparsable, before + 1);
}

#[test]
fn ipv4_options_do_not_hide_the_source() {
    let mut f = Fixture::new();
    f.ban("192.0.2.30");
    for words in 0..=10 {
        assert_eq!(f.run(&ipv4(v4("192.0.2.30"), &[], words)), XDP_DROP, "{words} option words");
    }
    // A header length below five words is malformed: pass and count.
    let mut bad = ipv4(v4("192.0.2.30"), &[], 0);
    bad[14] = 0x44;
    assert_eq!(f.run(&bad), XDP_PASS);
    assert_eq!(f.maps.stats().expect("stats").unparsable, 1);
}

#[test]
fn allowlist_wins_over_exact_and_range_bans() {
    let mut f = Fixture::new();
    f.ban("192.0.2.40");
    f.ban("198.51.100.0/24");
    f.ban("2001:db8::40");
    f.maps.allow("192.0.2.40".parse().expect("t")).expect("allow");
    f.maps.allow("198.51.100.128/25".parse().expect("t")).expect("allow");
    f.maps.allow("2001:db8::/64".parse().expect("t")).expect("allow");
    assert_eq!(f.run(&ipv4(v4("192.0.2.40"), &[], 0)), XDP_PASS);
    assert_eq!(f.run(&ipv4(v4("198.51.100.200"), &[], 0)), XDP_PASS);
    assert_eq!(f.run(&ipv4(v4("198.51.100.20"), &[], 0)), XDP_DROP);
    assert_eq!(f.run(&ipv6(v6("2001:db8::40"), &[])), XDP_PASS);
    let s = f.maps.stats().expect("stats");
    assert_eq!(s.allowlisted, 3);
    let hits: u64 = f.maps.allowlist().expect("list").iter().map(|a| a.allow.hits).sum();
    assert_eq!(hits, 3);
    // Removing the allowlist entry re-enables the ban.
    assert!(f.maps.disallow("192.0.2.40".parse().expect("t")).expect("disallow"));
    assert_eq!(f.run(&ipv4(v4("192.0.2.40"), &[], 0)), XDP_DROP);
}

#[test]
fn expired_bans_pass_and_are_swept() {
    let mut f = Fixture::new();
    // Expired a second ago: the program's coarse clock is exact to a jiffy.
    let past = boot_now_ns() - 1_000_000_000;
    f.ban_until("192.0.2.50", past);
    f.ban_until("198.51.100.0/24", past);
    f.ban_until("192.0.2.51", BootClock::now().expiry_after(Some(std::time::Duration::from_secs(3600))));
    assert_eq!(f.run(&ipv4(v4("192.0.2.50"), &[], 0)), XDP_PASS);
    assert_eq!(f.run(&ipv4(v4("198.51.100.1"), &[], 0)), XDP_PASS);
    assert_eq!(f.run(&ipv4(v4("192.0.2.51"), &[], 0)), XDP_DROP);
    assert_eq!(f.maps.stats().expect("stats").expired, 2);
    assert_eq!(f.maps.sweep_expired(boot_now_ns()).expect("sweep"), 2);
    assert_eq!(f.maps.bans().expect("bans").len(), 1);
}

#[test]
fn an_expired_exact_ban_falls_back_to_a_live_range() {
    let mut f = Fixture::new();
    f.ban_until("192.0.2.60", boot_now_ns() - 1_000_000_000);
    f.ban("192.0.2.0/24");
    assert_eq!(f.run(&ipv4(v4("192.0.2.60"), &[], 0)), XDP_DROP);
}

#[test]
fn arp_and_other_non_ip_traffic_always_passes() {
    let mut f = Fixture::new();
    f.ban("192.0.2.70");
    f.ban("192.0.2.0/24");
    assert_eq!(f.run(&arp(v4("192.0.2.70"))), XDP_PASS);
    let mut lldp = arp(v4("192.0.2.70"));
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    assert_eq!(f.run(&lldp), XDP_PASS);
    assert_eq!(f.maps.stats().expect("stats").non_ip, 2);
}

#[test]
fn every_truncation_passes_without_abort() {
    let mut f = Fixture::new();
    f.ban("192.0.2.80");
    f.ban("2001:db8::80");
    let frames: [(&str, Vec<u8>, usize); 4] = [
        ("v4", ipv4(v4("192.0.2.80"), &[], 0), 14 + 20),
        ("v4 qinq", ipv4(v4("192.0.2.80"), &[TPID_8021AD, TPID_8021Q], 0), 22 + 20),
        ("v6", ipv6(v6("2001:db8::80"), &[]), 14 + 40),
        ("v6 vlan", ipv6(v6("2001:db8::80"), &[TPID_8021Q]), 18 + 40),
    ];
    for (name, frame, header_end) in &frames {
        assert_eq!(f.run(frame), XDP_DROP, "{name} full frame");
        for len in 0..=64.min(frame.len()) {
            let opts = TestRunOptions { data_in: Some(&frame[..len]), ..TestRunOptions::default() };
            match f.loaded.program().test_run(opts) {
                // The kernel refuses to run XDP on less than an Ethernet header.
                Err(_) if len < 14 => {}
                Err(e) => panic!("{name} cut at {len}: test run failed: {e}"),
                Ok(r) => {
                    let want = if len >= *header_end { XDP_DROP } else { XDP_PASS };
                    assert_eq!(r.return_value, want, "{name} cut at {len} bytes");
                }
            }
        }
    }
    let s = f.maps.stats().expect("stats");
    assert_eq!(s.seen, s.passed + s.dropped_exact + s.dropped_range, "every packet is either passed or dropped");
    assert!(s.unparsable > 0);
}

#[test]
fn bulk_load_in_batches_and_full_map_is_reported() {
    let mut f = Fixture::new();
    let cap = f.maps.settings().exact_capacity as usize;
    let entries: Vec<(Target, Ban)> = (0..cap + 10)
        .map(|i| {
            let ip = Ipv4Addr::from(0xC633_6400u32 + u32::try_from(i).expect("small")); // from 198.51.100.0 upwards
            (Target::Ip(IpAddr::V4(ip)), Ban::new(0, 0, Origin::List))
        })
        .collect();
    let err = f.maps.insert_many(&entries).expect_err("more entries than capacity");
    let msg = err.to_string();
    assert!(msg.contains("is full") && msg.contains("CROWD_BANS_V4"), "{msg}");
    // What fitted is there and enforced; nothing else was lost.
    let n = f.maps.counts()[0];
    assert!(n >= cap - 64 && n <= cap, "{n} of {cap}");
    assert_eq!(f.run(&ipv4(Ipv4Addr::from(0xC633_6400u32), &[], 0)), XDP_DROP);
    // A single insert into the full map is refused with a clear error too.
    let e = f.maps.insert_ban("203.0.113.250".parse().expect("t"), Ban::new(0, 0, Origin::Manual)).expect_err("full");
    assert!(e.to_string().contains("203.0.113.250"), "{e}");
}
