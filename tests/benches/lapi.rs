//! `cargo xtask bench lapi`: the Local API beside CrowdSec 1.4.6's, on the same decisions.
//!
//! 1. N decisions (1M; 100k with `CROWD_BENCH_QUICK=1`) are imported into each store from one CSV
//!    (`crowd decisions import`, `cscli decisions import`); the import time is reported.
//! 2. Full pull: `GET /v1/decisions/stream?startup=true` with a bouncer key, timed to the last
//!    byte; the API process's peak RSS (`VmHWM`) after it.
//! 3. Query mode: `wrk` (Debian's) from loopback on `GET /v1/decisions?ip=` for an address that
//!    has a decision and one that has none: requests per second.
//! 4. Push delay (crowd only): in a network namespace, `crowd api` and `crowd enforce` (XDP on a
//!    veth); a decision is committed to the store and the edge's ban map polled until it is
//!    there. p50 and p99 over the trials.
//!
//! 5. Burst (crowd only; `CROWD_BENCH_PART=burst` runs it alone): what a fleet does after an
//!    outage. 50 bouncers pull in full at once, then 500 poll deltas for 10 s. Reported: full
//!    pull times, the API's peak RSS over the burst, delta polls per second with p50/p99/max
//!    latency and timeouts (2 s), and its RSS once idle again. The polls run twice: from 500
//!    client threads (which compete with the API for this machine's CPUs, so their tail is
//!    mostly the clients' own scheduling), then from `wrk -c500` (two event-loop threads,
//!    each request with the next poller's key).
//!
//! CrowdSec runs from Debian's `crowdsec` package (installed here if missing, with CAPI
//! registration disabled: no internet) as `crowdsec -no-cs` with its own config, database and
//! loopback port. Writes `target/bench/lapi.json`. `CROWD_BENCH_PART=push` runs only the push delay.
use std::{
    io::Read,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crowd::{
    enforce::maps::BanMaps,
    store::{Location, NewDecision, Store},
};
use crowd_tests::{Killed, PinDir, crowd_bin, lapi::free_port, netns::Link, unique};
use serde_json::json;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(60), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hwm_kib(pid: u32) -> u64 {
    crowd_tests::status_kib(pid, "VmHWM")
}

/// `crowd decisions import` of `csv` into the store in `state`.
fn import(csv: &Path, state: &Path) {
    sh(Command::new(crowd_bin())
        .args(["--pin-dir", "/sys/fs/bpf/crowd-bench-none", "decisions", "import", "-i"])
        .arg(csv)
        .arg("--state-dir")
        .arg(state));
}

/// `crowd api` on the store in `state`, on a free loopback port, once it listens.
fn start_api(state: &Path) -> (Killed, u16) {
    let port = free_port();
    let api = Killed(
        Command::new(crowd_bin())
            .args(["api", "--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crowd api"),
    );
    wait_port(port);
    (api, port)
}

/// The CSV both stores import: `n` addresses from 10.0.0.0 up (data only: never sent a packet).
fn csv(dir: &Path, n: u32) -> PathBuf {
    let p = dir.join(format!("decisions-{n}.csv"));
    let mut s = String::with_capacity(n as usize * 24);
    s.push_str("duration,scope,value\n");
    for i in 0..n {
        let ip = std::net::Ipv4Addr::from(0x0A00_0000 + i);
        s.push_str(&format!("24h,ip,{ip}\n"));
    }
    std::fs::write(&p, s).expect("write csv");
    p
}

/// A full pull: seconds to the last byte, bytes.
fn full_pull(port: u16, key: &str) -> (f64, usize) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(600))).build().into();
    let t = Instant::now();
    let mut r = agent
        .get(format!("http://127.0.0.1:{port}/v1/decisions/stream?startup=true"))
        .header("X-Api-Key", key)
        .call()
        .expect("stream");
    let mut body = Vec::new();
    r.body_mut().with_config().limit(1 << 34).reader().read_to_end(&mut body).expect("read stream");
    (t.elapsed().as_secs_f64(), body.len())
}

/// `wrk` requests per second on one URL.
fn wrk(port: u16, key: &str, path: &str) -> f64 {
    let out = sh(Command::new("wrk")
        .args(["-t2", "-c32", "-d8s", "-H", &format!("X-Api-Key: {key}")])
        .arg(format!("http://127.0.0.1:{port}{path}")));
    out.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{out}"))
}

struct Side {
    import_s: f64,
    pull_s: f64,
    pull_bytes: usize,
    rss_kib: u64,
    rps_hit: f64,
    rps_miss: f64,
}

fn crowd_side(dir: &Path, csv: &Path) -> Side {
    let state = dir.join("crowd");
    let t = Instant::now();
    import(csv, &state);
    let import_s = t.elapsed().as_secs_f64();
    let key = "crowd-bench-key-0123456789";
    sh(Command::new(crowd_bin()).args(["bouncers", "add", "bench", "--key", key, "--state-dir"]).arg(&state));
    let (api, port) = start_api(&state);
    let (pull_s, pull_bytes) = full_pull(port, key);
    let rss_kib = hwm_kib(api.0.id());
    let rps_hit = wrk(port, key, "/v1/decisions?ip=10.0.100.1");
    let rps_miss = wrk(port, key, "/v1/decisions?ip=192.0.2.200");
    Side { import_s, pull_s, pull_bytes, rss_kib, rps_hit, rps_miss }
}

/// The fleet's burst on `crowd api` over `n` decisions (see the module's notes).
fn burst(dir: &Path, csv: &Path, n: u32) -> serde_json::Value {
    const PULLERS: usize = 50;
    const POLLERS: usize = 500;
    const POLLER_AGENT: &str = "crowdsec-firewall-bouncer/v0.0.25";
    let state = dir.join("crowd-burst");
    import(csv, &state);
    let key = |role: &str, i: usize| format!("burst-{role}-{i:04}-0123456789abcdef");
    {
        let mut store = Store::open_at(&Location::new(&state, None)).expect("store");
        for i in 0..PULLERS {
            store.add_bouncer(&format!("pull-{i}"), &crowd::lapi::auth::hash_key(&key("pull", i)), now()).expect("add");
        }
        for i in 0..POLLERS {
            store.add_bouncer(&format!("poll-{i}"), &crowd::lapi::auth::hash_key(&key("poll", i)), now()).expect("add");
        }
        // The pollers have pulled before (their address and agent are known): their next
        // pulls are deltas.
        for i in 0..POLLERS {
            let hash = crowd::lapi::auth::hash_key(&key("poll", i));
            let b = store.bouncer_for(&hash, "127.0.0.1", now()).expect("bouncer").expect("row");
            let (kind, version) = POLLER_AGENT.split_once('/').expect("agent");
            store.set_bouncer_agent(b.id, kind, version).expect("agent");
            let cursor = crowd::store::Cursor { last_seq: 1 << 40, last_pull: now() };
            store.set_bouncer_pull(b.id, cursor).expect("cursor");
        }
    }
    let (api, port) = start_api(&state);
    let pid = api.0.id();
    let idle_kib = crowd_tests::status_kib(pid, "VmRSS");
    let t = Instant::now();
    let pulls: Vec<std::thread::JoinHandle<f64>> = (0..PULLERS)
        .map(|i| {
            let k = key("pull", i);
            std::thread::spawn(move || full_pull(port, &k).0)
        })
        .collect();
    let mut pull_s: Vec<f64> = pulls.into_iter().map(|h| h.join().expect("pull")).collect();
    let burst_s = t.elapsed().as_secs_f64();
    let after_pulls_kib = hwm_kib(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<std::thread::JoinHandle<(Vec<f64>, usize)>> = (0..POLLERS)
        .map(|i| {
            let (k, stop) = (key("poll", i), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent =
                    ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
                let (mut ms, mut failed) = (Vec::new(), 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = agent
                        .get(format!("http://127.0.0.1:{port}/v1/decisions/stream"))
                        .header("X-Api-Key", &k)
                        .header("User-Agent", POLLER_AGENT)
                        .call()
                        .and_then(|mut r| r.body_mut().read_to_vec());
                    match r {
                        Ok(_) => ms.push(t.elapsed().as_secs_f64() * 1000.0),
                        Err(_) => failed += 1,
                    }
                }
                (ms, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ms, mut failed) = (Vec::new(), 0);
    for h in pollers {
        let (m, f) = h.join().expect("poller");
        ms.extend(m);
        failed += f;
    }
    // The same polls from wrk (two event-loop threads, not 500 client threads competing with
    // the API for the two CPUs): each request carries the next poller's key.
    let keys: Vec<String> = (0..POLLERS).map(|i| format!("\"{}\"", key("poll", i))).collect();
    let script = dir.join("pollers.lua");
    std::fs::write(
        &script,
        format!(
            "local keys = {{{}}}\nlocal n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(\"GET\", \"/v1/decisions/stream\", {{[\"X-Api-Key\"] = keys[n % #keys + 1], [\"User-Agent\"] = \"{POLLER_AGENT}\"}})\nend\n",
            keys.join(",")
        ),
    )
    .expect("wrk script");
    let out = sh(Command::new("wrk")
        .args(["-t2", "-c500", "-d10s", "--timeout", "2s", "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{port}/")));
    let wrk_ms = |label: &str| -> f64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| {
                let v = v.trim();
                let num: f64 = v.trim_end_matches(|c: char| c.is_ascii_alphabetic()).parse().unwrap_or(f64::NAN);
                if v.ends_with("us") {
                    num / 1000.0
                } else if v.ends_with("ms") {
                    num
                } else {
                    num * 1000.0
                }
            })
            .unwrap_or(f64::NAN)
    };
    let (wrk_p50, wrk_p99) = (wrk_ms("50%"), wrk_ms("99%"));
    let wrk_rps: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN);
    let wrk_errors = out.lines().find(|l| l.contains("Socket errors") || l.contains("Non-2xx")).unwrap_or("no errors");
    let peak_kib = hwm_kib(pid);
    std::thread::sleep(Duration::from_secs(10));
    let settled_kib = crowd_tests::status_kib(pid, "VmRSS");
    pull_s.sort_by(f64::total_cmp);
    ms.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0);
    let rps = ms.len() as f64 / 10.0;
    println!("\nburst on crowd api over {n} decisions");
    println!(
        "  {PULLERS} simultaneous full pulls: all done in {burst_s:.1} s (each p50 {:.1} s, max {:.1} s)",
        pct(&pull_s, 0.5),
        pct(&pull_s, 1.0)
    );
    println!(
        "  {POLLERS} delta pollers for 10 s: {rps:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {failed} timeouts/errors",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        pct(&ms, 1.0)
    );
    println!(
        "  the same from wrk -c{POLLERS}: {wrk_rps:.0} req/s, p50 {wrk_p50:.1} ms, p99 {wrk_p99:.1} ms, {}",
        wrk_errors.trim()
    );
    println!(
        "  API RSS: {} MiB idle, peak {} MiB (after the pulls {} MiB), {} MiB settled 10 s after",
        idle_kib / 1024,
        peak_kib / 1024,
        after_pulls_kib / 1024,
        settled_kib / 1024
    );
    json!({"decisions": n, "full_pulls": PULLERS, "burst_s": burst_s, "pull_s_p50": pct(&pull_s, 0.5),
           "pull_s_max": pct(&pull_s, 1.0), "pollers": POLLERS, "polls_per_s": rps, "poll_ms_p50": pct(&ms, 0.5),
           "poll_ms_p99": pct(&ms, 0.99), "poll_ms_max": pct(&ms, 1.0), "poll_failures": failed,
           "wrk_polls_per_s": wrk_rps, "wrk_poll_ms_p50": wrk_p50, "wrk_poll_ms_p99": wrk_p99,
           "rss_idle_kib": idle_kib, "rss_peak_kib": peak_kib, "rss_settled_kib": settled_kib})
}

/// Debian's crowdsec, installed without CAPI registration (the postinst would need internet).
fn ensure_crowdsec() {
    if Path::new("/usr/bin/crowdsec").exists()
        && sh(Command::new("dpkg-query").args(["-W", "-f=${Status}", "crowdsec"])).contains("install ok installed")
    {
        return;
    }
    std::fs::create_dir_all("/etc/crowdsec").expect("mkdir");
    let capi = Path::new("/etc/crowdsec/online_api_credentials.yaml");
    if std::fs::metadata(capi).map_or(true, |m| m.len() == 0) {
        std::fs::write(capi, "# crowd's benchmark: no CAPI registration (no internet)\n").expect("write");
    }
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", "crowdsec"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    sh(Command::new("dpkg").args(["--configure", "-a"]).env("DEBIAN_FRONTEND", "noninteractive"));
}

fn crowdsec_side(dir: &Path, csv: &Path) -> Side {
    ensure_crowdsec();
    let cs = dir.join("crowdsec");
    std::fs::create_dir_all(&cs).expect("mkdir");
    let port = free_port();
    let base = std::fs::read_to_string("/etc/crowdsec/config.yaml").expect("crowdsec config");
    let mut c: serde_yaml::Value = serde_yaml::from_str(&base).expect("yaml");
    let set = |c: &mut serde_yaml::Value, path: &[&str], v: serde_yaml::Value| {
        let mut cur = c;
        for k in &path[..path.len() - 1] {
            cur = &mut cur[*k];
        }
        cur[path[path.len() - 1]] = v;
    };
    let s = |v: &str| serde_yaml::Value::String(v.to_owned());
    let d = cs.to_str().expect("utf-8");
    set(&mut c, &["common", "daemonize"], false.into());
    set(&mut c, &["common", "log_media"], s("stdout"));
    set(&mut c, &["common", "log_level"], s("error"));
    set(&mut c, &["db_config", "db_path"], s(&format!("{d}/crowdsec.db")));
    set(&mut c, &["db_config", "log_level"], s("error"));
    set(&mut c, &["db_config", "flush"], serde_yaml::from_str("{max_items: 100000000, max_age: 700d}").expect("yaml"));
    set(&mut c, &["api", "server", "listen_uri"], s(&format!("127.0.0.1:{port}")));
    set(&mut c, &["api", "server", "log_level"], s("error"));
    set(&mut c, &["api", "server", "online_client"], serde_yaml::Value::Null);
    set(&mut c, &["api", "client", "credentials_path"], s(&format!("{d}/lapi.yaml")));
    set(&mut c, &["prometheus", "enabled"], false.into());
    let cfg = cs.join("config.yaml");
    std::fs::write(&cfg, serde_yaml::to_string(&c).expect("yaml")).expect("write config");
    let cscli = |args: &[&str]| sh(Command::new("cscli").arg("-c").arg(&cfg).args(args));
    cscli(&["machines", "add", "bench", "--auto", "--force"]);
    let key = "crowdsec-bench-key-0123456789";
    cscli(&["bouncers", "add", "bench", "-k", key]);
    let api = Killed(
        Command::new("crowdsec")
            .arg("-c")
            .arg(&cfg)
            .arg("-no-cs")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crowdsec"),
    );
    wait_port(port);
    let t = Instant::now();
    cscli(&["decisions", "import", "-i", csv.to_str().expect("utf-8")]);
    let import_s = t.elapsed().as_secs_f64();
    let (pull_s, pull_bytes) = full_pull(port, key);
    let rss_kib = hwm_kib(api.0.id());
    let rps_hit = wrk(port, key, "/v1/decisions?ip=10.0.100.1");
    let rps_miss = wrk(port, key, "/v1/decisions?ip=192.0.2.200");
    Side { import_s, pull_s, pull_bytes, rss_kib, rps_hit, rps_miss }
}

/// Decision committed → in an edge's XDP map, through `crowd api` and `crowd enforce`.
fn push_delay(trials: usize) -> (f64, f64) {
    let link = Link::new(&unique("bl"));
    let pins = PinDir::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("api");
    let bin = crowd_bin();
    let key = "push-bench-key-0123456789";
    sh(Command::new(&bin).args(["bouncers", "add", "edge", "--key", key, "--state-dir"]).arg(&state));
    let _api = Killed(
        link.server
            .command(&bin)
            .args(["api", "--listen", "127.0.0.1:8080", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("api.log")).expect("log"))
            .spawn()
            .expect("api"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let _edge = Killed(
        link.server
            .command(&bin)
            .arg("--pin-dir")
            .arg(pins.path())
            .args(["enforce", "--iface", &link.server_if, "--max-bans", "4096", "--max-ranges", "1024"])
            .args(["--max-allow", "1024", "--lapi", "http://127.0.0.1:8080", "--key", key])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("edge.log")).expect("log"))
            .spawn()
            .expect("enforce"),
    );
    let t = Instant::now();
    while BanMaps::open(&pins.settings).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "the edge never created its maps");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let maps = BanMaps::open(&pins.settings).expect("maps");
    let mut store = Store::open_at(&Location::Sqlite(state.join("crowd.db"))).expect("store");
    let mut delays = Vec::with_capacity(trials);
    for i in 0..trials {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0xCB00_7100 + (i as u32 % 250) + 1)); // 203.0.113.x
        if i > 0 && i % 250 == 0 {
            store.delete(None, None, now()).expect("clear");
            std::thread::sleep(Duration::from_millis(200));
        }
        let d = NewDecision {
            origin: "cscli".into(),
            scenario: "bench".into(),
            scope: "Ip".into(),
            value: ip.to_string(),
            kind: "ban".into(),
            duration_secs: 3600,
            ..NewDecision::default()
        };
        store.record(None, &[d], now()).expect("record");
        let t = Instant::now();
        // Polled every 100 µs, not spun: a spinning core would starve the API and the edge on
        // a small machine and measure the scheduler.
        while maps.lookup(ip).exact.is_none() {
            assert!(t.elapsed() < Duration::from_secs(5), "the ban never reached the edge");
            std::thread::sleep(Duration::from_micros(100));
        }
        delays.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut order: Vec<(usize, f64)> = delays.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!("slowest trials (index, ms): {:?}", &order[..10.min(order.len())]);
    for who in ["edge", "api"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{who}.log"))).unwrap_or_default();
        for l in log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
            eprintln!("{who}: {l}");
        }
    }
    delays.sort_by(f64::total_cmp);
    (delays[delays.len() / 2], delays[(delays.len() * 99) / 100])
}

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs())
        .expect("time")
}

fn main() {
    crowd_tests::require_root();
    let quick = std::env::var_os("CROWD_BENCH_QUICK").is_some();
    if std::env::var("CROWD_BENCH_PART").as_deref() == Ok("push") {
        let (p50, p99) = push_delay(1000);
        println!("push delay, decision committed → edge XDP map (1000 trials): p50 {p50:.2} ms, p99 {p99:.2} ms");
        return;
    }
    let n: u32 = if quick { 100_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = csv(dir.path(), n);
    if std::env::var("CROWD_BENCH_PART").as_deref() == Ok("burst") {
        let b = burst(dir.path(), &file, n);
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::write(target.join("lapi-burst.json"), serde_json::to_string_pretty(&b).expect("json")).expect("write");
        return;
    }
    println!("Local API, {n} active decisions (same CSV for both)\n");
    let ours = crowd_side(dir.path(), &file);
    let theirs = crowdsec_side(dir.path(), &file);
    println!("{:<34} {:>14} {:>16} {:>8}", "", "crowd", "CrowdSec 1.4.6", "ratio");
    let row = |name: &str, a: f64, b: f64, unit: &str, higher_better: bool| {
        let r = if higher_better { a / b } else { b / a };
        println!("{name:<34} {:>10.2} {unit:<3} {:>12.2} {unit:<3} {r:>7.1}x", a, b);
    };
    row("import (s)", ours.import_s, theirs.import_s, "s", false);
    row("stream startup=true (s)", ours.pull_s, theirs.pull_s, "s", false);
    row("  body (MB)", ours.pull_bytes as f64 / 1e6, theirs.pull_bytes as f64 / 1e6, "MB", false);
    row("  API peak RSS (MiB)", ours.rss_kib as f64 / 1024.0, theirs.rss_kib as f64 / 1024.0, "MiB", false);
    row("GET /v1/decisions?ip= hit (req/s)", ours.rps_hit, theirs.rps_hit, "", true);
    row("GET /v1/decisions?ip= miss (req/s)", ours.rps_miss, theirs.rps_miss, "", true);
    let trials = if quick { 200 } else { 1000 };
    let (p50, p99) = push_delay(trials);
    println!("\npush delay, decision committed → edge XDP map ({trials} trials): p50 {p50:.2} ms, p99 {p99:.2} ms");
    println!("(CrowdSec's bouncers poll: up to update_frequency, 10 s by default)");
    let side = |s: &Side| {
        json!({"import_s": s.import_s, "pull_s": s.pull_s, "pull_bytes": s.pull_bytes, "rss_kib": s.rss_kib,
               "rps_hit": s.rps_hit, "rps_miss": s.rps_miss})
    };
    let b = burst(dir.path(), &file, n);
    let out = json!({"decisions": n, "crowd": side(&ours), "crowdsec": side(&theirs),
                     "push_ms": {"p50": p50, "p99": p99, "trials": trials}, "burst": b});
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("lapi.json"), serde_json::to_string_pretty(&out).expect("json")).expect("write");
    println!("\nwrote target/bench/lapi.json");
}
