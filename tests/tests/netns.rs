//! End to end in two network namespaces joined by veth (documentation addresses only): the
//! `crowd` binary attaches to the server side and real ICMP, UDP and TCP traffic is dropped or
//! passed. Privileged; each test builds and deletes its own namespaces and pin directory.
use std::{
    net::IpAddr,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crowd_tests::{
    PinDir, crowd_bin,
    netns::{Echo, Link, tcp_probe, udp_probe},
    unique,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_millis(400);

struct World {
    link: Link,
    pins: PinDir,
    _echo: Echo,
    port: u16,
    state: String,
    _state_dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let pins = PinDir::new();
        let link = Link::new(&unique("cw"));
        let port = 7000 + u16::try_from(std::process::id() % 1000).expect("small");
        let echo = Echo::start(&link.server, port);
        let state_dir = tempfile::tempdir().expect("tempdir");
        let state = state_dir.path().to_str().expect("utf-8").to_owned();
        World { link, pins, _echo: echo, port, state, _state_dir: state_dir }
    }

    /// Runs the crowd CLI in the root namespace (maps are global through the pins).
    fn crowd(&self, args: &[&str]) -> Output {
        let out =
            Command::new(crowd_bin()).arg("--pin-dir").arg(self.pins.path()).args(args).output().expect("run crowd");
        assert!(out.status.success(), "crowd {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn crowd_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_slice(&self.crowd(&a).stdout).expect("json output")
    }

    /// Runs crowd inside the server namespace (attach needs to see the interface).
    fn crowd_in_server(&self, args: &[&str]) -> Output {
        let out = self
            .link
            .server
            .command(crowd_bin())
            .arg("--pin-dir")
            .arg(self.pins.path())
            .args(args)
            .output()
            .expect("run crowd");
        assert!(out.status.success(), "crowd {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn attach(&self) {
        self.crowd_in_server(&["attach", "--iface", &self.link.server_if, "--max-bans", "4096"]);
    }

    fn daemon(&self) -> Child {
        self.daemon_with(&["--no-detect", "--state-dir", &self.state])
    }

    fn daemon_with(&self, extra: &[&str]) -> Child {
        self.link
            .server
            .command(crowd_bin())
            .arg("--pin-dir")
            .arg(self.pins.path())
            .args(["run", "--iface", &self.link.server_if, "--max-bans", "4096", "--sweep-every", "1s"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn daemon")
    }

    /// A daemon following an empty syslog auth.log of its own (in `dir`), attached and reading.
    fn watching(&self, dir: &std::path::Path) -> (std::path::PathBuf, Child) {
        let log = dir.join("auth.log");
        std::fs::write(&log, "").expect("create log");
        let watch = format!("{}=syslog", log.display());
        let state = dir.join("state");
        let d = self.daemon_with(&["--watch", &watch, "--state-dir", state.to_str().expect("utf-8")]);
        self.wait_attached();
        std::thread::sleep(Duration::from_millis(300));
        (log, d)
    }

    /// Waits (up to 10 s) until pings from `src` go unanswered.
    fn wait_dropped(&self, src: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.link.ping(src) {
            assert!(Instant::now() < deadline, "{what} was never dropped");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_attached(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.pins.path().join("links").join(&self.link.server_if).exists() {
            assert!(Instant::now() < deadline, "daemon did not attach");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (icmp, udp, tcp) reachability from `src`.
    fn reach(&self, src: &str) -> (bool, bool, bool) {
        let ip: IpAddr = src.parse().expect("ip");
        let port = self.port;
        let icmp = self.link.ping(src);
        let (udp, tcp) = self.link.client.within(move || (udp_probe(ip, port, WAIT), tcp_probe(ip, port, WAIT)));
        (icmp, udp, tcp)
    }
}

const ALL: (bool, bool, bool) = (true, true, true);
const NONE: (bool, bool, bool) = (false, false, false);

#[test]
fn banned_source_is_dropped_over_icmp_udp_tcp_and_others_pass() {
    let w = World::new();
    w.attach();
    assert_eq!(w.reach("192.0.2.2"), ALL, "before the ban");
    w.crowd(&["map", "add", "192.0.2.2", "--reason", "test"]);
    assert_eq!(w.reach("192.0.2.2"), NONE, "banned source");
    assert_eq!(w.reach("192.0.2.3"), ALL, "other source");
    let stats = w.crowd_json(&["map", "stats"]);
    assert!(stats["dropped"].as_u64().expect("dropped") >= 3, "{stats}");
    assert!(stats["passed"].as_u64().expect("passed") >= 3, "{stats}");
    let list = w.crowd_json(&["map", "list"]);
    assert_eq!(list[0]["target"], "192.0.2.2");
    assert!(list[0]["drops"].as_u64().expect("drops") >= 3, "{list}");
    w.crowd(&["map", "del", "192.0.2.2"]);
    assert_eq!(w.reach("192.0.2.2"), ALL, "after unban");
}

#[test]
fn cidr_and_ipv6_bans() {
    let w = World::new();
    w.attach();
    w.crowd(&["map", "add", "192.0.2.64/26"]);
    assert_eq!(w.reach("192.0.2.66"), NONE, "inside the range");
    assert_eq!(w.reach("192.0.2.3"), ALL, "outside the range");
    w.crowd(&["map", "add", "2001:db8::2"]);
    assert_eq!(w.reach("2001:db8::2"), NONE, "banned v6 address");
    assert_eq!(w.reach("2001:db8::3"), ALL, "other v6 address");
    w.crowd(&["map", "del", "2001:db8::2"]);
    w.crowd(&["map", "add", "2001:db8::/126"]);
    assert_eq!(w.reach("2001:db8::2"), NONE, "v6 range");
    w.crowd(&["map", "allow", "add", "2001:db8::3"]);
    assert_eq!(w.reach("2001:db8::3"), ALL, "allowlisted inside a banned v6 range");
    w.crowd(&["map", "flush"]);
    assert_eq!(w.reach("192.0.2.66"), ALL, "after flush");
    assert_eq!(w.reach("2001:db8::2"), ALL, "after flush");
}

#[test]
fn a_ban_added_with_the_cli_takes_effect_at_once() {
    let w = World::new();
    w.attach();
    let port = w.port;
    // The very first datagram after `crowd map add` returns must be dropped: no polling delay.
    for _ in 0..5 {
        w.crowd(&["map", "add", "192.0.2.2"]);
        let dropped = w.link.client.within(move || !udp_probe("192.0.2.2".parse().expect("ip"), port, WAIT));
        assert!(dropped, "first packet after the ban got through");
        w.crowd(&["map", "del", "192.0.2.2"]);
        let passed = w.link.client.within(move || udp_probe("192.0.2.2".parse().expect("ip"), port, WAIT));
        assert!(passed, "first packet after the unban was dropped");
    }
}

/// Sends UDP from `src` every millisecond until stopped; counts echoes received.
fn flood(
    w: &World,
    src: &'static str,
    stop: Arc<AtomicBool>,
    echoes: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let port = w.port;
    w.link.client.spawn(move || {
        let ip: IpAddr = src.parse().expect("ip");
        while !stop.load(Ordering::Relaxed) {
            sent.fetch_add(1, Ordering::Relaxed);
            if udp_probe(ip, port, Duration::from_millis(1)) {
                echoes.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

#[test]
fn killing_and_restarting_the_daemon_keeps_drops_going_without_a_gap() {
    let w = World::new();
    let mut d = w.daemon();
    w.wait_attached();
    w.crowd(&["map", "add", "192.0.2.2"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (bad_echo, bad_sent, good_echo, good_sent) =
        (Arc::default(), Arc::default(), Arc::<AtomicU64>::default(), Arc::default());
    let t1 = flood(&w, "192.0.2.2", stop.clone(), Arc::clone(&bad_echo), Arc::clone(&bad_sent));
    let t2 = flood(&w, "192.0.2.3", stop.clone(), Arc::clone(&good_echo), Arc::clone(&good_sent));
    std::thread::sleep(Duration::from_millis(300));
    // SIGKILL: no clean-up at all. The pinned link keeps the program on the interface.
    d.kill().expect("kill");
    d.wait().expect("wait");
    std::thread::sleep(Duration::from_millis(500));
    let mut d2 = w.daemon();
    std::thread::sleep(Duration::from_millis(1500));
    let good_mid = good_echo.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    t1.join().expect("flood");
    t2.join().expect("flood");
    let _ = Command::new("kill").arg("-TERM").arg(d2.id().to_string()).status();
    let _ = d2.wait();
    let (be, bs, ge, gs) = (
        bad_echo.load(Ordering::Relaxed),
        bad_sent.load(Ordering::Relaxed),
        good_echo.load(Ordering::Relaxed),
        good_sent.load(Ordering::Relaxed),
    );
    eprintln!("banned source: {be} of {bs} echoed; other source: {ge} of {gs} echoed");
    assert!(bs > 100 && gs > 100, "the floods ran ({bs}, {gs})");
    assert_eq!(be, 0, "a banned packet got through during the restart");
    assert!(ge > good_mid && ge * 10 > gs * 9, "the link carried the other source throughout ({ge} of {gs})");
    let list = w.crowd_json(&["map", "list"]);
    assert!(list[0]["drops"].as_u64().expect("drops") >= bs.saturating_sub(5), "{list}");
}

fn append(path: &std::path::Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).expect("open log");
    for l in lines {
        writeln!(f, "{l}").expect("write");
    }
}

fn failed_logins(ip: &str, n: usize) -> Vec<String> {
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S");
    (0..n)
        .map(|i| format!("{stamp} edge sshd[{}]: Failed password for root from {ip} port {} ssh2", 100 + i, 40000 + i))
        .collect()
}

#[test]
fn brute_force_in_a_watched_log_gets_the_attacker_dropped_and_never_ourselves() {
    let w = World::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, d) = w.watching(dir.path());
    assert_eq!(w.reach("192.0.2.2"), ALL, "before the attack");
    // Our own address brute-forcing (a misconfigured local client) must never be banned.
    append(&log, &failed_logins("192.0.2.1", 8));
    let started = Instant::now();
    append(&log, &failed_logins("192.0.2.2", 8));
    let port = w.port;
    let mut dropped_after = None;
    while started.elapsed() < Duration::from_secs(5) {
        if !w.link.client.within(move || udp_probe("192.0.2.2".parse().expect("ip"), port, Duration::from_millis(50))) {
            dropped_after = Some(started.elapsed());
            break;
        }
    }
    stop(d);
    let after = dropped_after.expect("the attacker was never dropped");
    eprintln!("log line to dropped packet: {} ms (including a 50 ms probe)", after.as_millis());
    assert_eq!(w.reach("192.0.2.3"), ALL, "another source still passes");
    let got = w.crowd_json(&["map", "get", "192.0.2.1"]);
    assert_eq!(got["verdict"], "pass", "our own address was banned: {got}");
    assert!(got["exact"].is_null(), "{got}");
    let list = w.crowd_json(&["map", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "only the attacker: {list}");
    assert_eq!(list[0]["origin"], "crowd");
}

#[test]
fn an_ipv6_attacker_is_dropped_with_its_slash_64_but_allowlisted_and_own_neighbours_pass() {
    let w = World::new();
    // A second /64 on the client, routed from the server: one the server holds no address in.
    for a in ["2001:db8:5:6::2/64", "2001:db8:5:6::3/64", "2001:db8:5:6::7/64"] {
        w.link.client.ip(&["addr", "add", a, "dev", &w.link.client_if, "nodad"]);
    }
    w.link.server.ip(&["-6", "route", "add", "2001:db8:5:6::/64", "dev", &w.link.server_if]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, d) = w.watching(dir.path());
    assert_eq!(w.reach("2001:db8:5:6::3"), ALL, "before the attack");
    w.crowd(&["map", "allow", "add", "2001:db8:5:6::7"]);
    // Six failed passwords, each from another address of the /64.
    let lines: Vec<String> = (0..6).flat_map(|i| failed_logins(&format!("2001:db8:5:6::1{i}"), 1)).collect();
    append(&log, &lines);
    w.wait_dropped("2001:db8:5:6::3", "the /64");
    assert_eq!(w.reach("2001:db8:5:6::2"), NONE, "another address of the attacking /64");
    assert_eq!(w.reach("2001:db8:5:6::7"), ALL, "an allowlisted address inside the banned /64");
    assert_eq!(w.reach("2001:db8::3"), ALL, "another /64");
    // The server's own /64: the attacking address alone is banned.
    append(&log, &failed_logins("2001:db8::2", 6));
    w.wait_dropped("2001:db8::2", "the attacker in our own /64");
    assert_eq!(w.reach("2001:db8::3"), ALL, "a neighbour in our own /64");
    stop(d);
    let list = w.crowd_json(&["map", "list"]);
    let mut values: Vec<String> =
        list.as_array().expect("list").iter().filter_map(|e| e["target"].as_str().map(str::to_owned)).collect();
    values.sort();
    assert_eq!(values, ["2001:db8:5:6::/64", "2001:db8::2"], "{list}");
}

#[test]
fn the_maps_are_a_cache_of_the_store() {
    let w = World::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().to_str().expect("utf-8").to_owned();
    w.attach();
    w.crowd(&["decisions", "--state-dir", &state, "add", "192.0.2.2", "--duration", "1h"]);
    assert_eq!(w.reach("192.0.2.2"), NONE, "a stored decision applies at once");
    w.crowd(&["map", "flush"]);
    assert_eq!(w.reach("192.0.2.2"), ALL, "flushed from the kernel");
    // A daemon start reconciles the maps with the store.
    let mut d = w.daemon_with(&["--no-detect", "--state-dir", &state]);
    let started = Instant::now();
    while w.crowd_json(&["map", "list"]).as_array().is_none_or(Vec::is_empty) {
        assert!(started.elapsed() < Duration::from_secs(10), "the daemon did not restore the decision");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(w.reach("192.0.2.2"), NONE, "restored from the store");
    let listed = w.crowd_json(&["decisions", "--state-dir", &state, "list"]);
    assert_eq!(listed[0]["value"], "192.0.2.2");
    w.crowd(&["decisions", "--state-dir", &state, "delete", "192.0.2.2"]);
    assert_eq!(w.reach("192.0.2.2"), ALL, "deleted decisions leave the maps");
    let _ = Command::new("kill").arg("-TERM").arg(d.id().to_string()).status();
    let _ = d.wait();
}

#[test]
fn detach_removes_everything() {
    let w = World::new();
    w.attach();
    w.crowd(&["map", "add", "192.0.2.2"]);
    assert_eq!(w.reach("192.0.2.2"), NONE);
    let link = w.link.server.run("ip", &["-d", "link", "show", &w.link.server_if]);
    assert!(String::from_utf8_lossy(&link.stdout).contains("prog/xdp"), "attached");
    w.crowd(&["detach", "--iface", &w.link.server_if, "--purge"]);
    assert_eq!(w.reach("192.0.2.2"), ALL, "after detach");
    let link = w.link.server.run("ip", &["-d", "link", "show", &w.link.server_if]);
    assert!(!String::from_utf8_lossy(&link.stdout).contains("prog/xdp"), "no program left on the interface");
    assert!(!w.pins.path().exists(), "pin directory removed");
}

#[test]
fn clear_errors_for_bad_input() {
    let w = World::new();
    let run = |args: &[&str]| {
        let o = Command::new(crowd_bin()).arg("--pin-dir").arg(w.pins.path()).args(args).output().expect("run");
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = run(&["map", "list"]);
    assert!(!ok && err.contains("no crowd maps are pinned"), "{err}");
    let (ok, err) = run(&["attach", "--iface", "crowd-nonexistent0"]);
    assert!(!ok && err.contains("unknown interface `crowd-nonexistent0`"), "{err}");
    let (ok, err) = run(&["map", "add", "192.0.2.300"]);
    assert!(!ok && err.contains("`192.0.2.300` is not an IP address or CIDR range"), "{err}");
    let (ok, err) = run(&["map", "add", "192.0.2.1", "--duration", "soon"]);
    assert!(!ok && err.contains("--duration `soon`"), "{err}");
    let (ok, err) = run(&["map", "add", "192.0.2.77/24"]);
    assert!(ok && err.contains("host bits set: using `192.0.2.0/24`"), "{err}");
    let o = Command::new(crowd_bin())
        .args(["--pin-dir", "/tmp/crowd-not-bpffs", "map", "add", "192.0.2.1"])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not on a bpf filesystem"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A daemon following a fresh log with `profiles` (a `profiles.yaml` text) in a state of its
/// own; returns (daemon, log path, state dir, the tempdir holding them).
fn daemon_with_profiles(
    w: &World,
    profiles: &str,
    extra: &[&str],
) -> (Child, std::path::PathBuf, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").expect("create log");
    let p = dir.path().join("profiles.yaml");
    std::fs::write(&p, profiles).expect("profiles");
    let state = dir.path().join("state").to_str().expect("utf-8").to_owned();
    let watch = format!("{}=syslog", log.display());
    let mut args =
        vec!["--watch", watch.as_str(), "--state-dir", state.as_str(), "--profiles", p.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let d = w.daemon_with(&args);
    w.wait_attached();
    std::thread::sleep(Duration::from_millis(300));
    (d, log, state, dir)
}

fn stop(mut d: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(d.id().to_string()).status();
    let _ = d.wait();
}

/// The types of the store's active decisions on `value`, sorted.
fn stored(w: &World, state: &str, value: &str) -> Vec<String> {
    let v = w.crowd_json(&["decisions", "--state-dir", state, "list"]);
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["value"] == value)
        .map(|d| d["type"].as_str().unwrap_or("").to_owned())
        .collect();
    // (Two scenarios overflow on the burst: each alert has the same decisions.)
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_decision_of_an_alert_is_kept_and_only_bans_reach_the_kernel() {
    let w = World::new();
    // A captcha first, then a ban: both stored, the ban in the kernel.
    let two = "name: two\nfilters: [Alert.Remediation == true]\ndecisions: [{type: captcha, duration: 1h}, {type: ban, duration: 2h}]\n";
    let (d, log, state, _dir) = daemon_with_profiles(&w, two, &[]);
    append(&log, &failed_logins("192.0.2.2", 8));
    let t = Instant::now();
    while stored(&w, &state, "192.0.2.2").len() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stored(&w, &state, "192.0.2.2"), ["ban", "captcha"], "both decisions of the alert");
    assert_eq!(w.reach("192.0.2.2"), NONE, "the ban is enforced");
    let list = w.crowd_json(&["map", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "one kernel entry, the ban: {list}");
    stop(d);

    // A profile that asks for a captcha only: stored and served, never dropped by the kernel.
    // (Detached first: the next daemon's new link pin is the sign that it follows the log.)
    w.crowd_in_server(&["detach", "--iface", &w.link.server_if]);
    w.crowd(&["map", "flush"]);
    let captcha = "name: captcha\nfilters: [Alert.Remediation == true]\ndecisions: [{type: captcha, duration: 1h}]\n";
    let (d, log, state, _dir) = daemon_with_profiles(&w, captcha, &[]);
    append(&log, &failed_logins("192.0.2.3", 8));
    let t = Instant::now();
    while stored(&w, &state, "192.0.2.3").is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stored(&w, &state, "192.0.2.3"), ["captcha"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(w.reach("192.0.2.3"), ALL, "a captcha client still gets through the kernel");
    assert_eq!(w.crowd_json(&["map", "list"]).as_array().map(Vec::len), Some(0), "nothing in the maps");
    stop(d);
}

#[test]
fn without_the_api_the_daemon_still_follows_the_store_and_serves_metrics() {
    let w = World::new();
    let metrics_port = 16_000 + u16::try_from(std::process::id() % 1000).expect("small");
    let listen = format!("127.0.0.1:{metrics_port}");
    let (d, _log, state, _dir) =
        daemon_with_profiles(&w, "name: x\nfilters: ['false']\n", &["--no-api", "--metrics-listen", listen.as_str()]);
    // Another process writes the store (as another host's API on a shared PostgreSQL would):
    // the daemon's change feed applies it within a second, not at the 30 s reconcile.
    let t = Instant::now();
    // `decisions add` also writes the maps itself: write the store with a pin dir that does not
    // exist, so only the daemon can bring the ban into the kernel.
    crowd_tests::crowd_on_store(std::path::Path::new(&state), &["decisions", "add", "192.0.2.2", "--duration", "1h"]);
    while w.reach("192.0.2.2") != NONE {
        assert!(t.elapsed() < Duration::from_secs(5), "the store's decision never reached the maps");
    }
    let took = t.elapsed();
    eprintln!("decision written by another process → dropped, without the API: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}: only the periodic reconcile applied it");
    // Metrics are served although the API is off.
    let body = w.link.server.within(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).expect("metrics listener");
        use std::io::{Read, Write};
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    assert!(body.contains("200 OK") && body.contains("xdp"), "{body}");
    stop(d);
}

/// The sum of `crowd_lines_read_total` over every source, as the daemon's `/metrics` says.
fn lines_read(w: &World, port: u16) -> u64 {
    let body = w.link.server.within(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    body.lines()
        .filter(|l| l.starts_with("crowd_lines_read_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn write_lines(log: &std::path::Path, from: usize, to: usize) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(log).expect("open log");
    for n in from..to {
        writeln!(f, "Dec  2 10:00:00 host app[1]: line {n}").expect("write");
        if n % 2_000 == 0 {
            f.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn wait_read(w: &World, port: u16, want: u64, what: &str) {
    let t = Instant::now();
    loop {
        let got = lines_read(w, port);
        assert!(got <= want, "{what}: {got} lines read, more than the {want} written (a line read twice)");
        if got == want {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{what}: {got} of {want} lines read");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_line_is_read_once_across_rotations_and_a_sigkill() {
    // 30,000 lines: a rename rotation, a SIGKILL and restart (lines written while the daemon is
    // down are read after it), then a copy-truncate rotation. The daemon is killed once it has
    // read everything and saved its positions: what its state promises (lines still in flight at
    // the kill are another matter: positions are saved at most once a second).
    let w = World::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").expect("create log");
    let state = dir.path().join("state");
    let port = 17_000 + u16::try_from(std::process::id() % 1000).expect("small");
    let (watch, listen) = (format!("{}=syslog", log.display()), format!("127.0.0.1:{port}"));
    let args = [
        "--watch",
        watch.as_str(),
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--no-api",
        "--metrics-listen",
        listen.as_str(),
    ];
    let d = w.daemon_with(&args);
    w.wait_attached();
    std::thread::sleep(Duration::from_millis(300));

    write_lines(&log, 0, 10_000);
    // Rename rotation: the old file is drained, the new one read from its start.
    std::fs::rename(&log, dir.path().join("auth.log.1")).expect("rename");
    write_lines(&log, 10_000, 15_000);
    wait_read(&w, port, 15_000, "after a rename rotation");
    // The saved position has reached the end of the file (saved at most a second or two after
    // the last read), then SIGKILL.
    let positions = state.join("positions.json");
    let size = std::fs::metadata(&log).expect("log").len();
    let key = log.display().to_string();
    let t = Instant::now();
    loop {
        let saved: Value =
            std::fs::read_to_string(&positions).ok().and_then(|p| serde_json::from_str(&p).ok()).unwrap_or(Value::Null);
        if saved[&key]["offset"].as_u64() == Some(size) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the position never reached the end: {saved}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut d = d;
    d.kill().expect("SIGKILL");
    let _ = d.wait();
    // Written while the daemon is down: read after the restart, from the saved position.
    write_lines(&log, 15_000, 20_000);
    let d = w.daemon_with(&args);
    wait_read(&w, port, 5_000, "after a SIGKILL and a restart");
    // Copy-truncate rotation (once everything was read: lines appended between the copy and the
    // truncation are lost by any reader, logrotate says so).
    std::fs::copy(&log, dir.path().join("auth.log.2")).expect("copy");
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).expect("truncate");
    write_lines(&log, 20_000, 30_000);
    wait_read(&w, port, 15_000, "after a copy-truncate rotation");
    // And nothing more comes (no line read twice late).
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(lines_read(&w, port), 15_000, "lines read again late");
    stop(d);
}
