//! The live half of the dataplane benchmark: packets per second dropped on a veth link.
//!
//! A generator namespace sends frames into one end of a veth pair with the kernel's XDP
//! live-frames test mode (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES running a program
//! that returns XDP_TX); the other end, in its own namespace, runs crowd's program (the source is
//! banned) or the drop-all program. The rate is what the receiving program counted (crowd's own
//! drop counter; a per-CPU counter in `bench_drop_count`; the kernel's run-time stats would add
//! two clock reads a packet) over the wall time of the generator's run. Runs alternate crowd and
//! drop-all, since the host is noisy, and the ratio of the medians is reported.
use std::{
    net::Ipv4Addr,
    os::fd::AsFd,
    time::{Duration, Instant},
};

use aya::programs::Xdp;
use crowd::{
    addr::Target,
    enforce::{Settings, attach, maps::BanMaps, object::Loaded, sys},
};
use crowd_common::{Ban, Origin};
use crowd_tests::{netns::Netns, packet::ipv4, unique};
use serde_json::{Value, json};

fn ifindex_in(ns: &Netns, name: &'static str) -> u32 {
    ns.within(move || attach::ifindex(name).expect("ifindex"))
}

fn bench_count(loaded: &mut Loaded) -> u64 {
    let m: aya::maps::PerCpuArray<_, u64> =
        aya::maps::PerCpuArray::try_from(loaded.ebpf.map_mut("CROWD_BENCH").expect("CROWD_BENCH"))
            .expect("per-cpu array");
    m.get(&0, 0).expect("count").iter().sum()
}

/// Sends `n` frames from the generator namespace; returns the wall time.
fn generate(gen_ns: &Netns, tx: &Xdp, frame: &[u8], ifindex: u32, n: u32) -> Duration {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    // The kernel wants data_end equal to the frame's length.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&u32::try_from(frame.len()).expect("small").to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    let fd = tx.fd().expect("tx fd").as_fd().try_clone_to_owned().expect("dup");
    let frame = frame.to_vec();
    gen_ns.within(move || {
        // Re-open the program by fd inside the namespace thread (the fd is process-wide).
        let started = Instant::now();
        let r = sys::test_run_live_frames(fd.as_fd(), &frame, &ctx, n, 256);
        assert!(r.is_ok(), "live frames test run: {r:?}");
        started.elapsed()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the live comparison; returns the figures (also printed).
pub fn run(loaded: &mut Loaded, settings: &Settings, quick: bool) -> Value {
    let tag = unique("cb");
    let gen_ns = Netns::new(&format!("{tag}g"));
    let dut = Netns::new(&format!("{tag}d"));
    let ok = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            "cbg0",
            "netns",
            &gen_ns.name,
            "type",
            "veth",
            "peer",
            "name",
            "cbd0",
            "netns",
            &dut.name,
        ])
        .status()
        .expect("ip");
    assert!(ok.success(), "veth pair");
    gen_ns.ip(&["link", "set", "cbg0", "up"]);
    dut.ip(&["link", "set", "cbd0", "up"]);
    dut.ip(&["addr", "add", "192.0.2.1/24", "dev", "cbd0"]);
    let g_idx = ifindex_in(&gen_ns, "cbg0");
    let d_idx = ifindex_in(&dut, "cbd0");

    let src = Ipv4Addr::new(198, 51, 100, 1);
    let mut maps = BanMaps::open(settings).expect("maps");
    maps.insert_ban(Target::Ip(src.into()), Ban::new(0, 1, Origin::Manual)).expect("ban");
    let mut frame = ipv4(src, &[], 0);
    frame.resize(64, 0);
    let n: u32 = if quick { 2_000_000 } else { 10_000_000 };

    let (mut crowd_pps, mut drop_pps) = (Vec::new(), Vec::new());
    for _round in 0..5 {
        // crowd on the receiving end (attached through a pinned link, as in production).
        let pin_dir = settings.pin_dir.clone();
        let prog_fd = loaded.program().fd().expect("fd").as_fd().try_clone_to_owned().expect("dup");
        dut.within(move || link_attach(&pin_dir, "cbd0", &prog_fd, d_idx));
        let before = maps.stats().expect("stats").dropped_exact;
        let tx = loaded.extra_program("bench_tx").expect("bench_tx");
        let took = generate(&gen_ns, tx, &frame, g_idx, n);
        let got = maps.stats().expect("stats").dropped_exact - before;
        crowd_pps.push(got as f64 / took.as_secs_f64());
        attach::detach(&settings.pin_dir, "cbd0").expect("detach");

        // drop-all on the same link.
        let drop = loaded.extra_program("bench_drop_count").expect("bench_drop_count");
        let drop_fd = drop.fd().expect("fd").as_fd().try_clone_to_owned().expect("dup");
        let pin_dir = settings.pin_dir.clone();
        dut.within(move || link_attach(&pin_dir, "cbd0", &drop_fd, d_idx));
        let before = bench_count(loaded);
        let tx = loaded.extra_program("bench_tx").expect("bench_tx");
        let took = generate(&gen_ns, tx, &frame, g_idx, n);
        let got = bench_count(loaded) - before;
        drop_pps.push(got as f64 / took.as_secs_f64());
        attach::detach(&settings.pin_dir, "cbd0").expect("detach");
    }
    let _ = maps.remove_ban(Target::Ip(src.into()));
    let (c, d) = (median(crowd_pps.clone()), median(drop_pps.clone()));
    println!("\nveth live frames ({n} frames of 64 bytes a run, 5 alternating runs, medians)\n");
    println!("{:<9} {:>12}", "program", "Mpps");
    println!("{:<9} {:>12.2}", "drop_all", d / 1e6);
    println!("{:<9} {:>12.2}", "crowd", c / 1e6);
    println!("crowd / drop_all: {:.1}%", 100.0 * c / d);
    json!({"frames_per_run": n, "crowd_pps": crowd_pps, "drop_all_pps": drop_pps, "crowd_median_pps": c, "drop_all_median_pps": d, "ratio": c / d})
}

/// Attaches a program fd to an interface in driver mode through a bpf link pinned like crowd's.
fn link_attach(pin_dir: &std::path::Path, iface: &str, prog: &std::os::fd::OwnedFd, ifindex: u32) {
    let link = sys::xdp_link_create_driver(prog.as_fd(), ifindex).expect("bpf_link_create (driver mode)");
    let pin = attach::link_pin(pin_dir, iface);
    let _ = std::fs::create_dir_all(pin.parent().expect("links dir"));
    sys::obj_pin(link.as_fd(), &pin).expect("pin link");
}
