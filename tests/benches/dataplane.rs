//! `cargo xtask bench dataplane`: what crowd's XDP program costs per packet.
//!
//! BPF_PROG_TEST_RUN with a large repeat count gives ns per packet for the program alone, for an
//! empty XDP_PASS program and a drop-all program (the limits), then crowd's program with 0, 1k and
//! 1M exact bans per family, each with and without 10k ranges per family, hit and miss, IPv4 and
//! IPv6. Prints a table and writes `target/bench/dataplane.json`. Then a live run on a veth pair
//! (see `live`): packets per second dropped by crowd against drop-all on the same link.
//! `CROWD_BENCH_QUICK=1` uses fewer repeats for a quick look.
mod live;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use crowd::{
    addr::Target,
    clock::BootClock,
    enforce::{Settings, maps::BanMaps, object, pins},
};
use crowd_common::{Ban, Origin};
use crowd_tests::packet::{ipv4, ipv6};
use serde_json::{Value, json};

/// xorshift64*: a seeded generator, so every run bans the same addresses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn v4(&mut self) -> Ipv4Addr {
        // Public-looking unicast space, away from the documentation ranges used for misses.
        Ipv4Addr::from(0x0100_0000 + (self.next() as u32) % 0xDE00_0000)
    }
    fn v6(&mut self) -> Ipv6Addr {
        Ipv6Addr::from(
            (0x2400u128 << 112) | (u128::from(self.next()) << 48) | u128::from(self.next() & 0xffff_ffff_ffff),
        )
    }
}

fn ns_per_packet(prog: &Xdp, frame: &[u8], repeat: u32, expect: u32) -> f64 {
    // Warm up, then keep the lowest of nine runs: this host is noisy (steal time, other tenants),
    // and noise only ever adds time.
    let _ = prog.test_run(TestRunOptions { data_in: Some(frame), repeat: repeat / 10, ..TestRunOptions::default() });
    let mut best = f64::MAX;
    for _ in 0..9 {
        let r = prog
            .test_run(TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::default() })
            .expect("test run");
        assert_eq!(r.return_value, expect, "unexpected verdict in the benchmark");
        best = best.min(r.duration.as_nanos() as f64);
    }
    best
}

struct Case {
    family: &'static str,
    hit: Vec<u8>,
    miss: Vec<u8>,
}

fn main() {
    crowd_tests::require_root();
    let quick = std::env::var_os("CROWD_BENCH_QUICK").is_some();
    let repeat: u32 = if quick { 200_000 } else { 2_000_000 };
    let big = if quick { 100_000 } else { 1_000_000 };
    let mut settings = Settings::new(format!("/sys/fs/bpf/{}", crowd_tests::unique("crowd-bench-")));
    settings.exact_capacity = crowd_common::capacity::EXACT;
    settings.range_capacity = 16 * 1024;
    let _ = pins::purge(&settings.pin_dir);
    let mut loaded = object::load(&settings).expect("load");
    let mut maps = BanMaps::open(&settings).expect("maps");
    let mut rows: Vec<Value> = Vec::new();
    let mut table: Vec<[String; 6]> = Vec::new();
    let mut record = |program: &str, family: &str, exact: usize, ranges: usize, case: &str, ns: f64| {
        rows.push(json!({"program": program, "family": family, "exact_bans": exact, "ranges": ranges, "case": case, "ns_per_packet": ns}));
        table.push([
            program.into(),
            family.into(),
            exact.to_string(),
            ranges.to_string(),
            case.into(),
            format!("{ns:.1}"),
        ]);
    };

    let miss_v4 = ipv4(Ipv4Addr::new(192, 0, 2, 200), &[], 0);
    let miss_v6 = ipv6("2001:db8::200".parse().expect("v6"), &[]);
    for (name, expect) in [("bench_pass", 2), ("bench_drop", 1)] {
        let label = if expect == 2 { "empty" } else { "drop_all" };
        let p = loaded.extra_program(name).expect("reference program");
        for (family, frame) in [("ipv4", &miss_v4), ("ipv6", &miss_v6)] {
            let ns = ns_per_packet(p, frame, repeat, expect);
            record(label, family, 0, 0, if expect == 2 { "miss" } else { "hit" }, ns);
        }
    }

    let clock = BootClock::now();
    let ttl =
        if std::env::var_os("CROWD_BENCH_PERMANENT").is_some() { None } else { Some(Duration::from_secs(4 * 3600)) };
    let ban = Ban::new(clock.expiry_after(ttl), 1, Origin::Local);
    let mut rng = Rng(0x00c0_ffee);
    let mut exact_v4: Vec<(Target, Ban)> = Vec::new();
    let mut exact_v6: Vec<(Target, Ban)> = Vec::new();
    // 10k ranges per family: IPv4 /16 to /28, IPv6 /40 to /64, in their own part of the space.
    let ranges: Vec<(Target, Ban)> = (0..10_000)
        .flat_map(|i| {
            let l4 = 16 + (i % 13) as u8;
            let l6 = 40 + (i % 25) as u8;
            let a4 = Ipv4Addr::from(0xE000_0000u32.wrapping_sub(1 + (rng.next() as u32 % 0x1000_0000)));
            let a6 = Ipv6Addr::from((0x2a00u128 << 112) | (u128::from(rng.next()) << 48));
            [
                (Target::Net(ipnet::IpNet::V4(ipnet::Ipv4Net::new(a4, l4).expect("len")).trunc()), ban),
                (Target::Net(ipnet::IpNet::V6(ipnet::Ipv6Net::new(a6, l6).expect("len")).trunc()), ban),
            ]
        })
        .collect();
    let range_hit_v4 = match ranges[0].0 {
        Target::Net(n) => n.addr(),
        Target::Ip(_) => unreachable!(),
    };
    let range_hit_v6 = match ranges[1].0 {
        Target::Net(n) => n.addr(),
        Target::Ip(_) => unreachable!(),
    };

    let sizes: &[usize] = if std::env::var_os("CROWD_BENCH_LIVE_ONLY").is_some() { &[] } else { &[0, 1_000, big] };
    for &exact in sizes {
        while exact_v4.len() < exact {
            exact_v4.push((Target::Ip(IpAddr::V4(rng.v4())), ban));
            exact_v6.push((Target::Ip(IpAddr::V6(rng.v6())), ban));
        }
        let started = std::time::Instant::now();
        maps.insert_many(&exact_v4).expect("load v4 bans");
        maps.insert_many(&exact_v6).expect("load v6 bans");
        if exact == big {
            eprintln!("loaded {} exact bans per family in {:.2}s (batched)", exact, started.elapsed().as_secs_f64());
        }
        for with_ranges in [false, true] {
            if with_ranges {
                maps.insert_many(&ranges).expect("load ranges");
            }
            let n_ranges = if with_ranges { 10_000 } else { 0 };
            let cases = [
                Case {
                    family: "ipv4",
                    hit: match exact_v4.first() {
                        Some((Target::Ip(IpAddr::V4(a)), _)) => ipv4(*a, &[], 0),
                        _ => ipv4(range_hit_v4.to_string().parse().expect("v4"), &[], 0),
                    },
                    miss: miss_v4.clone(),
                },
                Case {
                    family: "ipv6",
                    hit: match exact_v6.first() {
                        Some((Target::Ip(IpAddr::V6(a)), _)) => ipv6(*a, &[]),
                        _ => ipv6(range_hit_v6.to_string().parse().expect("v6"), &[]),
                    },
                    miss: miss_v6.clone(),
                },
            ];
            for c in &cases {
                let prog = loaded.program();
                if exact > 0 || with_ranges {
                    let ns = ns_per_packet(prog, &c.hit, repeat, 1);
                    record("crowd", c.family, exact, n_ranges, "hit", ns);
                }
                let ns = ns_per_packet(prog, &c.miss, repeat, 2);
                record("crowd", c.family, exact, n_ranges, "miss", ns);
            }
            if with_ranges {
                for (t, _) in &ranges {
                    maps.remove_ban(*t).expect("remove range");
                }
                // What the daemon does periodically: clear the prefilter bits of removed bans.
                maps.rebuild_filters().expect("rebuild filters");
            }
        }
    }

    println!("\nBPF_PROG_TEST_RUN, {repeat} repeats, lowest of 9 runs (ns per packet)\n");
    println!("{:<9} {:<6} {:>10} {:>7} {:<5} {:>8}", "program", "family", "exact_bans", "ranges", "case", "ns/pkt");
    for r in &table {
        println!("{:<9} {:<6} {:>10} {:>7} {:<5} {:>8}", r[0], r[1], r[2], r[3], r[4], r[5]);
    }
    if std::env::var_os("CROWD_BENCH_LIVE_EMPTY").is_some() {
        maps.flush().expect("flush");
    }
    let live = live::run(&mut loaded, &settings, quick);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(dir.join("dataplane.json"), serde_json::to_string_pretty(&rows).expect("json")).expect("write");
    std::fs::write(dir.join("dataplane-live.json"), serde_json::to_string_pretty(&live).expect("json")).expect("write");
    println!("\nwrote target/bench/dataplane.json and target/bench/dataplane-live.json");
    drop(maps);
    drop(loaded);
    let _ = pins::purge(&settings.pin_dir);
}
