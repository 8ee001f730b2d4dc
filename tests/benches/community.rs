//! `cargo xtask bench community`: the community server (`crowd community serve`, release
//! binary, SQLite store in a temporary directory, loopback only, documentation addresses only).
//!
//! 1. Signal intake: 50 members in distinct organisations, logged in from distinct /48s of
//!    2001:db8::/32 through a trusted proxy's `X-Forwarded-For`, post batches of 50 signals
//!    (CrowdSec's batch) at once until 200k signals are sent (50k with `CROWD_BENCH_QUICK=1`).
//!    Reported: signals/s answered by the HTTP side with p50/p99 of `POST /v3/signals`, then the
//!    time until the engine has processed them all (`counted` + `refused` on `GET /metrics`) and
//!    the end-to-end rate; the server's CPU time by thread (tokio workers: HTTP, JSON, consensus;
//!    `store-*`: SQLite), and the in-process cost per signal of each phase (JSON + checks,
//!    SQLite writes, consensus) on one core, to say which dominates.
//! 2. Consensus update: `crowd::community::consensus` in process, `report()` of 10k new
//!    signals and one `tick()`, on an empty consensus and on one already holding the intake's
//!    state.
//! 3. A full list served: 100k entries published into the running server's store (after its
//!    start: the engine's start-up reconciliation withdraws stored entries its consensus does not
//!    support), one start-up pull on `/v2` and `/v3` (time, bytes, peak RSS), then 10,000
//!    members (2,000 quick) each doing one delta pull after one new entry (stopped after 90 s,
//!    25 s quick, the count reported): total time, bytes, p50/p99, peak RSS, and the delta's
//!    store query alone. Logins: a sample with crowd's own Argon2 hash gives the login rate; the
//!    10,000 log in with a cheap Argon2 hash (m=8 KiB, t=1) so the login path runs without
//!    minutes of key stretching (the server verifies with the hash's own parameters).
//! 4. Listing delay: K organisations (the quorum, 3) report one attacker; a member of another
//!    organisation long-polls its delta (`wait=10s`) until the entry is there. 20 trials, p50/p99.
//!
//! Writes `target/bench/community.json`. Figures are printed, never asserted.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Barrier, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crowd::{
    community::{
        consensus::{Canaries, Consensus, DAY, Params, Report, Reporter},
        wire,
    },
    store::{Location, NewSignal, Publish, Store},
};
use crowd_tests::{Killed, crowd_bin, lapi::free_port};
use serde_json::{Value, json};

const BATCH: usize = 50;
const MEMBERS: usize = 50;
const PASSWORD: &str = "bench-password-0123456789";
const SCENARIOS: [&str; 8] = [
    "crowdsecurity/ssh-bf",
    "crowdsecurity/ssh-slow-bf",
    "crowdsecurity/http-probing",
    "crowdsecurity/http-crawl-non_statics",
    "crowdsecurity/http-bad-user-agent",
    "crowdsecurity/http-sensitive-files",
    "crowdsecurity/CVE-2021-41773",
    "crowdsecurity/nginx-req-limit-exceeded",
];

/// Quorum 3 of organisations, /48s and 2 ASNs, no warm-up (members are new), the score of
/// three new organisations lists; members' addresses come through loopback's proxy.
const CONFIG: &str = "consensus:
  quorum_orgs: 3
  quorum_prefixes: 3
  quorum_asns: 2
  warmup: 0
  warmup_signals: 0
  warmup_days: 0
  list_score: 0.9
trusted_proxies: [127.0.0.0/8]
asns: {\"2001:db8::/33\": 64500, \"2001:db8:8000::/33\": 64501}
";

fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs())
        .expect("time")
}

fn pct(v: &[f64], p: f64) -> f64 {
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Member `i`'s egress: its own /48, ASN 64500 for even `i` and 64501 for odd.
fn member_ip(i: usize) -> IpAddr {
    let net = (i % 2) as u16 * 0x8000 + 1 + i as u16;
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, 0x10))
}

/// Attacker `n` of the intake: 2001:db8:ffff::/48 (away from every member's address).
fn attacker(n: usize) -> String {
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, (n >> 16) as u16, n as u16).to_string()
}

/// One signal as CrowdSec 1.5+ sends it (`POST /v3/signals` item).
fn signal_json(ip: &str, scenario: &str, at: &str, n: usize) -> String {
    format!(
        r#"{{"alert_id":{n},"context":[],"created_at":"{at}","decisions":[{{"duration":"4h0m0s","id":{n},"origin":"crowdsec","scenario":"{scenario}","scope":"Ip","simulated":false,"type":"ban","until":"{at}","uuid":"6c0d4a4e-0000-4000-8000-{n:012}","value":"{ip}"}}],"machine_id":"bench-agent","message":"Ip {ip} performed '{scenario}' (6 events over 2s)","scenario":"{scenario}","scenario_hash":"4441dcff07020f6690d998b7101e642359ba405c2abb83565bbbdcee36de280f","scenario_trust":"certified","scenario_version":"0.3","source":{{"as_name":"","as_number":"","cn":"","ip":"{ip}","latitude":0,"longitude":0,"range":"","scope":"Ip","value":"{ip}"}},"start_at":"{at}","stop_at":"{at}","uuid":"0a6a4a4e-0000-4000-8000-{n:012}"}}"#
    )
}

fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

/// CPU seconds of each of `pid`'s threads, summed by thread name (digits dropped: `store-3` →
/// `store-`).
fn cpu_by_thread(pid: u32) -> HashMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in dir.flatten() {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        let name: String =
            head.split_once(" (").map_or("?", |(_, n)| n).trim_end_matches(|c: char| c.is_ascii_digit()).into();
        let f: Vec<&str> = rest.split(' ').collect();
        // After the name: state is field 3, utime 14 and stime 15 (1-based, whole line).
        let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += ticks / hz;
    }
    out
}

fn cpu_delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(k, a)| (k.clone(), a - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.005)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

struct Hub {
    addr: SocketAddr,
    state: PathBuf,
    child: Killed,
    _dir: tempfile::TempDir,
}

impl Hub {
    /// `crowd community serve` on a fresh store, `seed` run on it before the start.
    fn start(seed: impl FnOnce(&mut Store)) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        std::fs::write(state.join("community.yaml"), CONFIG).expect("config");
        {
            let mut s = Store::open_at(&Location::new(&state, None)).expect("store");
            seed(&mut s);
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(crowd_bin())
            .args(["community", "--state-dir"])
            .arg(&state)
            .args(["serve", "--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.join("serve.log")).expect("log"))
            .spawn()
            .expect("crowd community serve");
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(60), "the server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Hub { addr, state, child: Killed(child), _dir: dir }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn store(&self) -> Store {
        Store::open_at(&Location::new(&self.state, None)).expect("store")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Logs `machine` in (from `from` through the proxy when given); its token.
    fn login(&self, a: &ureq::Agent, v: &str, machine: &str, from: Option<IpAddr>, scenarios: &[&str]) -> String {
        let body = json!({"machine_id": machine, "password": PASSWORD, "scenarios": scenarios}).to_string();
        let mut req = a.post(self.url(&format!("/{v}/watchers/login"))).header("Content-Type", "application/json");
        if let Some(ip) = from {
            req = req.header("X-Forwarded-For", &ip.to_string());
        }
        let mut r = req.send(body.as_str()).expect("login");
        let text = r.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(r.status().as_u16(), 200, "login {machine}: {text}");
        let j: Value = serde_json::from_str(&text).expect("login json");
        j["token"].as_str().expect("token").to_owned()
    }

    /// `POST /v3/signals`: the status.
    fn post_signals(&self, a: &ureq::Agent, token: &str, body: &str) -> u16 {
        a.post(self.url("/v3/signals"))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body)
            .map_or(0, |r| r.status().as_u16())
    }

    /// A stream pull: status, body.
    fn pull(&self, a: &ureq::Agent, token: &str, path: &str) -> (u16, Vec<u8>) {
        match a.get(self.url(path)).header("Authorization", &format!("Bearer {token}")).call() {
            Ok(mut r) => {
                let body = r.body_mut().with_config().limit(1 << 34).read_to_vec().unwrap_or_default();
                (r.status().as_u16(), body)
            }
            Err(_) => (0, Vec::new()),
        }
    }

    fn metric(&self, a: &ureq::Agent, result: &str) -> u64 {
        let text = a
            .get(self.url("/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        let key = format!("crowd_community_signals_total{{result=\"{result}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    }

    fn metric_line(&self, a: &ureq::Agent, name: &str) -> u64 {
        let text = a
            .get(self.url("/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    }
}

/// The 50 intake members (org `org{i}`) plus `poller` (org `pollers`), registered in the store.
fn seed_members(s: &mut Store, hash: &str) {
    let t = now() - 30 * DAY;
    for i in 0..MEMBERS {
        s.add_org(&format!("org{i}"), "", t).expect("org");
        s.add_member(&format!("m{i}"), hash, &format!("org{i}"), false, t).expect("member");
    }
    s.add_org("pollers", "", t).expect("org");
    s.add_member("poller", hash, "pollers", false, t).expect("member");
}

/// Part 4: K organisations report one attacker; a member of another organisation long-polls.
fn listing_delay(hub: &Hub, tokens: &[String], poller: &str, trials: usize) -> Value {
    let a = agent(Duration::from_secs(30));
    // The poller's cursor: everything so far.
    hub.pull(&a, poller, "/v2/decisions/stream?startup=true");
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poll = {
        let (seen, stop, token, url) = (seen.clone(), stop.clone(), poller.to_owned(), hub.url(""));
        std::thread::spawn(move || {
            let a = agent(Duration::from_secs(30));
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = a
                    .get(format!("{url}/v2/decisions/stream?wait=10s"))
                    .header("Authorization", &format!("Bearer {token}"))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_vec().ok());
                let at = Instant::now();
                polls += 1;
                let Some(body) = r else { continue };
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                for d in v["new"].as_array().into_iter().flatten() {
                    if d["origin"] == "CAPI"
                        && let Some(val) = d["value"].as_str()
                    {
                        seen.lock().expect("lock").entry(val.to_owned()).or_insert(at);
                    }
                }
            }
            polls
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let k = 3;
    let mut ms = Vec::new();
    let mut missed = 0;
    for t in 0..trials {
        // 198.51.100.0/24 then 203.0.113.0/24: one attacker per trial.
        let ip = if t < 250 { format!("198.51.100.{}", t + 1) } else { format!("203.0.113.{}", t - 249) };
        for tok in &tokens[..k - 1] {
            hub.post_signals(&a, tok, &format!("[{}]", signal_json(&ip, SCENARIOS[0], &rfc3339_now(), t)));
        }
        // The first K-1 are processed (and ticked) before the K-th is sent; the jitter keeps
        // the trials from locking onto the engine's tick phase.
        std::thread::sleep(Duration::from_millis(400 + (t as u64 * 7919) % 211));
        let t0 = Instant::now();
        hub.post_signals(&a, &tokens[k - 1], &format!("[{}]", signal_json(&ip, SCENARIOS[0], &rfc3339_now(), t)));
        let got = loop {
            if let Some(at) = seen.lock().expect("lock").get(&ip) {
                break Some(at.saturating_duration_since(t0));
            }
            if t0.elapsed() > Duration::from_secs(5) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match got {
            Some(d) => ms.push(d.as_secs_f64() * 1000.0),
            None => missed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Wake the long poll: one more listing.
    let ip = "203.0.113.254";
    for tok in &tokens[..k] {
        hub.post_signals(&a, tok, &format!("[{}]", signal_json(ip, SCENARIOS[0], &rfc3339_now(), 9999)));
    }
    let polls = poll.join().expect("poller");
    let ms = sorted(ms);
    println!(
        "4. the K-th (K={k}) organisation's signal → entry in another member's delta (long poll wait=10s), {trials} trials: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{} ({polls} polls)",
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        pct(&ms, 1.0),
        if missed > 0 { format!(", {missed} not listed within 5 s") } else { String::new() }
    );
    json!({"k": k, "trials": trials, "ms_p50": pct(&ms, 0.5), "ms_p99": pct(&ms, 0.99), "ms_max": pct(&ms, 1.0),
           "missed": missed, "polls": polls})
}

/// Part 1: the members post `total` signals in batches of 50, all at once.
fn intake(hub: &Hub, tokens: &[String], total: usize, pool: usize) -> Value {
    let batches = total / BATCH;
    let at = rfc3339_now();
    // Bodies made before the clock starts (the clients share this machine's two CPUs).
    let t = Instant::now();
    let bodies: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..MEMBERS)
            .map(|m| {
                let at = &at;
                s.spawn(move || {
                    (0..batches)
                        .filter(|b| b % MEMBERS == m)
                        .map(|b| {
                            let items: Vec<String> = (0..BATCH)
                                .map(|j| {
                                    let n = b * BATCH + j;
                                    // Spread over the pool so that organisations overlap.
                                    let who = (n.wrapping_mul(2_654_435_761) >> 7) % pool;
                                    signal_json(&attacker(who), SCENARIOS[n % SCENARIOS.len()], at, n)
                                })
                                .collect();
                            format!("[{}]", items.join(","))
                        })
                        .collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("bodies")).collect()
    });
    let body_bytes: usize = bodies.iter().flatten().map(String::len).sum();
    eprintln!(
        "  (bodies: {} batches, {:.1} MB, made in {:.1} s)",
        batches,
        body_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let m = agent(Duration::from_secs(10));
    let base = hub.metric(&m, "counted") + hub.metric(&m, "refused");
    let accepted0 = hub.metric(&m, "accepted");
    let pid = hub.pid();
    let cpu0 = cpu_by_thread(pid);
    let barrier = Arc::new(Barrier::new(MEMBERS + 1));
    let handles: Vec<_> = bodies
        .into_iter()
        .zip(tokens.iter().cloned())
        .map(|(mine, token)| {
            let (barrier, url) = (barrier.clone(), hub.url("/v3/signals"));
            std::thread::spawn(move || {
                let a = agent(Duration::from_secs(60));
                let auth = format!("Bearer {token}");
                let (mut ms, mut failed) = (Vec::with_capacity(mine.len()), 0usize);
                barrier.wait();
                for body in &mine {
                    let t = Instant::now();
                    let ok = a
                        .post(&url)
                        .header("Authorization", &auth)
                        .header("Content-Type", "application/json")
                        .send(body.as_str())
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_vec().ok().map(|_| r.status().as_u16() == 200))
                        .unwrap_or(false);
                    if ok {
                        ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        failed += 1;
                    }
                }
                (ms, failed)
            })
        })
        .collect();
    barrier.wait();
    let t0 = Instant::now();
    let (mut ms, mut failed) = (Vec::new(), 0);
    for h in handles {
        let (m, f) = h.join().expect("client");
        ms.extend(m);
        failed += f;
    }
    let http_s = t0.elapsed().as_secs_f64();
    let cpu_http = cpu_by_thread(pid);
    let accepted = hub.metric(&m, "accepted") - accepted0;
    let shed = hub.metric_line(&m, "crowd_community_batches_shed_total ");
    // The engine: until counted + refused reach what was accepted, or stop moving for 5 s.
    let (mut last, mut moved) = (0u64, Instant::now());
    let engine_s = loop {
        let done = hub.metric(&m, "counted") + hub.metric(&m, "refused") - base;
        if done >= accepted {
            break t0.elapsed().as_secs_f64();
        }
        if done != last {
            (last, moved) = (done, Instant::now());
        } else if moved.elapsed() > Duration::from_secs(5) {
            eprintln!("  the engine stopped at {done} of {accepted}");
            break moved.duration_since(t0).as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let processed = hub.metric(&m, "counted") + hub.metric(&m, "refused") - base;
    let cpu_end = cpu_by_thread(pid);
    let published = hub.metric_line(&m, "crowd_community_entries_total{change=\"published\"} ");
    let ms = sorted(ms);
    let sent = ms.len() * BATCH;
    let http_rate = sent as f64 / http_s;
    let e2e_rate = processed as f64 / engine_s;
    println!(
        "1. signal intake: {MEMBERS} members, {sent} signals in {} batches of {BATCH} ({:.0} MB of JSON), {failed} failed requests",
        ms.len(),
        body_bytes as f64 / 1e6
    );
    println!(
        "   HTTP side: {http_rate:.0} signals/s ({:.1} s), POST /v3/signals p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; accepted {accepted}, batches shed {shed}",
        http_s,
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        pct(&ms, 1.0)
    );
    println!(
        "   engine: {processed} processed {:.1} s after the first request → {e2e_rate:.0} signals/s end to end; {published} entries published",
        engine_s
    );
    let show = |label: &str, d: &[(String, f64)]| {
        let parts: Vec<String> =
            d.iter().map(|(k, v)| format!("{k}{}: {v:.1} s", if k.ends_with('-') { "*" } else { "" })).collect();
        println!("   server CPU {label}: {}", parts.join(", "));
    };
    let d_http = cpu_delta(&cpu0, &cpu_http);
    let d_drain = cpu_delta(&cpu_http, &cpu_end);
    show(&format!("during the posts ({http_s:.1} s wall)"), &d_http);
    show(&format!("after them, until processed ({:.1} s wall)", (engine_s - http_s).max(0.0)), &d_drain);
    let cpu_json =
        |d: &[(String, f64)]| d.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>();
    json!({"members": MEMBERS, "batch": BATCH, "signals_sent": sent, "failed_requests": failed, "attacker_pool": pool,
           "http_s": http_s, "http_signals_per_s": http_rate, "post_ms_p50": pct(&ms, 0.5), "post_ms_p99": pct(&ms, 0.99),
           "post_ms_max": pct(&ms, 1.0), "accepted": accepted, "batches_shed": shed, "processed": processed,
           "processed_s": engine_s, "processed_signals_per_s": e2e_rate, "entries_published": published,
           "cpu_s_during_posts": cpu_json(&d_http), "cpu_s_after_posts": cpu_json(&d_drain)})
}

/// The in-process cost of each phase of a signal, one core: JSON and checks, SQLite, consensus.
fn phases(dir: &Path, pool: usize) -> Value {
    let at = rfc3339_now();
    let n_batches = 200;
    let bodies: Vec<String> = (0..n_batches)
        .map(|b| {
            let items: Vec<String> = (0..BATCH)
                .map(|j| {
                    let n = b * BATCH + j;
                    signal_json(&attacker((n * 7919) % pool), SCENARIOS[n % SCENARIOS.len()], &at, n)
                })
                .collect();
            format!("[{}]", items.join(","))
        })
        .collect();
    // JSON as the route does it: the body into values, each item checked into a signal.
    let t = Instant::now();
    let mut batches: Vec<Vec<NewSignal>> = Vec::new();
    for b in &bodies {
        let items: Vec<Value> = serde_json::from_slice(b.as_bytes()).expect("json");
        batches.push(items.iter().map(|i| wire::signal(i, "m0", false).expect("signal")).collect());
    }
    let n = (n_batches * BATCH) as f64;
    let json_us = t.elapsed().as_secs_f64() * 1e6 / n;
    // SQLite as the engine does it (engine.rs `store` and `tail`): up to 10,000 queued signals
    // in one transaction, read back in order, then each organisation's list.
    let mut s = Store::open_at(&Location::new(dir, None)).expect("store");
    let now = now();
    let all: Vec<NewSignal> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, x)| {
            x.iter().cloned().map(move |mut y| {
                y.machine_id = format!("m{}", b % MEMBERS);
                y
            })
        })
        .collect();
    let t = Instant::now();
    let mut cursor = 0;
    for chunk in all.chunks(10_000) {
        s.add_signals(chunk, now).expect("signals");
        let rows = s.signals_after(cursor, 20_000).expect("read back");
        let mut lists: HashMap<String, Vec<Publish>> = HashMap::new();
        for (seq, x, _) in &rows {
            cursor = cursor.max(*seq);
            lists.entry(format!("org{}", &x.machine_id[1..])).or_default().push(Publish {
                scope: "Ip".into(),
                value: x.value.clone(),
                scenario: x.scenario.clone(),
                until: now + DAY,
            });
        }
        for (org, list) in lists {
            s.apply_list(&org, &list, &[], now).expect("list");
        }
    }
    let sqlite_us = t.elapsed().as_secs_f64() * 1e6 / n;
    println!(
        "   in process, one core, per signal: JSON parse + checks {json_us:.1} µs, SQLite (signal stored, read back, organisation list row) {sqlite_us:.1} µs (consensus: see 2.)"
    );
    json!({"json_parse_check_us_per_signal": json_us, "sqlite_us_per_signal": sqlite_us})
}

fn params() -> Params {
    Params { warmup_secs: 0, warmup_signals: 0, warmup_days: 0, list_score: 0.9, ..Params::default() }
}

fn reporters(c: &mut Consensus, t0: i64) {
    for i in 0..MEMBERS {
        c.add_reporter(Reporter {
            machine: format!("m{i}"),
            org: format!("org{i}"),
            egress: member_ip(i),
            asn: 64500 + (i % 2) as u32,
            registered_at: t0 - 30 * DAY,
            sensor: false,
        });
    }
}

/// Part 2: 10k reports and one tick, on an empty consensus and on one holding `warm` reports.
fn consensus_update(warm: usize, pool: usize) -> Value {
    let t0 = now();
    let report = |n: usize, t: i64| Report {
        machine: format!("m{}", n % MEMBERS),
        ip: attacker((n.wrapping_mul(2_654_435_761) >> 7) % pool).parse().expect("ip"),
        scenario: SCENARIOS[n % SCENARIOS.len()].into(),
        at: t,
    };
    let round = |c: &mut Consensus, from: usize, t: i64| {
        let rs: Vec<Report> = (from..from + 10_000).map(|n| report(n, t)).collect();
        let s = Instant::now();
        for r in &rs {
            c.report(r, t);
        }
        let report_ms = s.elapsed().as_secs_f64() * 1000.0;
        let s = Instant::now();
        let ch = c.tick(t);
        (report_ms, s.elapsed().as_secs_f64() * 1000.0, ch.listed.len(), ch.withdrawn.len())
    };
    let mut c = Consensus::new(params(), Canaries::new(Vec::new()));
    reporters(&mut c, t0);
    let (cold_r, cold_t, cold_listed, _) = round(&mut c, 0, t0);
    let mut c = Consensus::new(params(), Canaries::new(Vec::new()));
    reporters(&mut c, t0);
    let s = Instant::now();
    for (k, chunk) in (0..warm).collect::<Vec<_>>().chunks(10_000).enumerate() {
        let t = t0 - 600 + k as i64;
        for &n in chunk {
            c.report(&report(n, t), t);
        }
        c.tick(t);
    }
    let warm_s = s.elapsed().as_secs_f64();
    let (mut rs, mut ts, mut listed) = (Vec::new(), Vec::new(), 0);
    for k in 0..5 {
        let (r, t, l, _) = round(&mut c, warm + k * 10_000, t0 + k as i64);
        rs.push(r);
        ts.push(t);
        listed += l;
    }
    let (rs, ts) = (sorted(rs), sorted(ts));
    let listed_now = c.listed().count();
    println!(
        "2. consensus, 10k new signals over {pool} attackers from {MEMBERS} organisations: empty state report() {cold_r:.1} ms + tick() {cold_t:.1} ms ({cold_listed} listed)"
    );
    println!(
        "   after {warm} signals ({} addresses tracked, loaded in {warm_s:.1} s): report() p50 {:.1} ms (max {:.1}), tick() p50 {:.1} ms (max {:.1}) over 5 rounds, {listed} new listings ({listed_now} listed)",
        c.tracked_addresses(),
        pct(&rs, 0.5),
        pct(&rs, 1.0),
        pct(&ts, 0.5),
        pct(&ts, 1.0)
    );
    json!({"signals": 10_000, "empty": {"report_ms": cold_r, "tick_ms": cold_t, "listed": cold_listed},
           "warm": {"prior_signals": warm, "tracked_addresses": c.tracked_addresses(), "report_ms_p50": pct(&rs, 0.5),
                    "report_ms_max": pct(&rs, 1.0), "tick_ms_p50": pct(&ts, 0.5), "tick_ms_max": pct(&ts, 1.0),
                    "listed": listed_now}})
}

/// Entry `i` of the seeded list: the documentation /24s' 762 addresses, then 2001:db8:1::/48.
fn entry_value(i: usize) -> String {
    let v4 = [[198, 51, 100], [203, 0, 113], [192, 0, 2]];
    if i < 3 * 254 {
        let p = v4[i / 254];
        format!("{}.{}.{}.{}", p[0], p[1], p[2], i % 254 + 1)
    } else {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16).to_string()
    }
}

/// Part 3: a full list of `entries` served, then `members` delta pulls.
fn full_list(entries: usize, members: usize, real_logins: usize, cap: Duration) -> Value {
    let real = crowd::lapi::auth::hash_password(PASSWORD).expect("hash");
    let cheap = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"crowd-bench-salt").expect("salt");
        let p = argon2::Params::new(8, 1, 1, None).expect("params");
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
            .hash_password(PASSWORD.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    };
    let t = Instant::now();
    let hub = Hub::start(|s| {
        let t = now() - DAY;
        s.add_member("puller", &real, "pullers", false, t).expect("member");
        for i in 0..members {
            let hash = if i < real_logins { &real } else { &cheap };
            s.add_member(&format!("p{i}"), hash, &format!("porg{}", i / 10), false, t).expect("member");
        }
    });
    let setup_s = t.elapsed().as_secs_f64();
    let pid = hub.pid();
    let idle_kib = crowd_tests::status_kib(pid, "VmRSS");
    // Published after the start: the engine's reconciliation at start would withdraw them.
    let mut store = hub.store();
    let until = now() + 2 * DAY;
    let list: Vec<Publish> = (0..entries)
        .map(|i| Publish {
            scope: "Ip".into(),
            value: entry_value(i),
            scenario: SCENARIOS[i % SCENARIOS.len()].into(),
            until,
        })
        .collect();
    let t = Instant::now();
    let seq = store.apply_list("", &list, &[], now()).expect("seed");
    let seed_s = t.elapsed().as_secs_f64();
    let a = agent(Duration::from_secs(600));
    let token = hub.login(&a, "v3", "puller", None, &SCENARIOS);
    let full = |v: &str| {
        let t = Instant::now();
        let (status, body) = hub.pull(&a, &token, &format!("/{v}/decisions/stream?startup=true"));
        assert_eq!(status, 200, "startup pull: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        let n = serde_json::from_slice::<Value>(&body).ok().map_or(0, |j| {
            j["new"]
                .as_array()
                .map_or(0, |a| a.iter().map(|d| d["decisions"].as_array().map_or(1, Vec::len)).sum::<usize>())
        });
        (t.elapsed().as_secs_f64(), body.len(), n)
    };
    let (v2_s, v2_bytes, v2_n) = full("v2");
    let v2_kib = crowd_tests::status_kib(pid, "VmHWM");
    let (v3_s, v3_bytes, v3_n) = full("v3");
    let pull_kib = crowd_tests::status_kib(pid, "VmHWM");
    println!(
        "3. full list of {entries} entries (published into the running server's store in {seed_s:.1} s; server start with {members} members {setup_s:.1} s)"
    );
    println!(
        "   startup pull /v2: {v2_s:.2} s, {:.1} MB, {v2_n} decisions; /v3: {v3_s:.2} s, {:.1} MB, {v3_n} decisions; server RSS idle {} MiB, peak {} MiB after /v2, {} MiB after /v3",
        v2_bytes as f64 / 1e6,
        v3_bytes as f64 / 1e6,
        idle_kib / 1024,
        v2_kib / 1024,
        pull_kib / 1024
    );
    // Logins: the sample with crowd's Argon2 parameters, then the rest with the cheap hash.
    let threads = 16usize;
    let login_all = |ids: Vec<usize>| -> (f64, Vec<(usize, String)>) {
        let t = Instant::now();
        let chunks: Vec<Vec<usize>> =
            (0..threads).map(|k| ids.iter().copied().filter(|i| i % threads == k).collect()).collect();
        let out: Vec<(usize, String)> = std::thread::scope(|s| {
            let hs: Vec<_> = chunks
                .into_iter()
                .map(|mine| {
                    let hub = &hub;
                    s.spawn(move || {
                        let a = agent(Duration::from_secs(120));
                        mine.into_iter()
                            .map(|i| (i, hub.login(&a, "v3", &format!("p{i}"), None, &SCENARIOS)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().expect("logins")).collect()
        });
        (t.elapsed().as_secs_f64(), out)
    };
    let (real_s, mut tokens) = login_all((0..real_logins.min(members)).collect());
    let real_rate = real_logins as f64 / real_s;
    let (cheap_s, more) = login_all((real_logins..members).collect());
    tokens.extend(more);
    tokens.sort();
    let cheap_rate = (members - real_logins) as f64 / cheap_s;
    println!(
        "   logins: {real_logins} with crowd's Argon2 hash in {real_s:.1} s ({real_rate:.0}/s: {members} would take {:.0} s); {} with a cheap hash (m=8 KiB, t=1) in {cheap_s:.1} s ({cheap_rate:.0}/s)",
        members as f64 / real_rate,
        members - real_logins
    );
    // Every member has pulled before: its next pull is a delta.
    let t = Instant::now();
    for i in 0..members {
        store.member_pulled(&format!("p{i}"), seq, now()).expect("cursor");
    }
    let cursor_s = t.elapsed().as_secs_f64();
    let fresh = "203.0.113.250";
    let one = [Publish { scope: "Ip".into(), value: fresh.into(), scenario: SCENARIOS[0].into(), until }];
    let hwm_before = crowd_tests::status_kib(pid, "VmHWM");
    store.apply_list("", &one, &[], now()).expect("publish");
    let t = Instant::now();
    let tokens = Arc::new(tokens);
    let results: Vec<(Vec<f64>, usize, usize, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                let (hub, tokens) = (&hub, tokens.clone());
                s.spawn(move || {
                    let a = agent(Duration::from_secs(60));
                    let (mut ms, mut bytes, mut with, mut failed) = (Vec::new(), 0, 0, 0);
                    for (i, tok) in tokens.iter().filter(|(i, _)| i % threads == k) {
                        if t.elapsed() > cap {
                            break;
                        }
                        let v = if i % 2 == 0 { "v2" } else { "v3" };
                        let t = Instant::now();
                        let (status, body) = hub.pull(&a, tok, &format!("/{v}/decisions/stream"));
                        if status == 200 {
                            ms.push(t.elapsed().as_secs_f64() * 1000.0);
                            bytes += body.len();
                            with += usize::from(String::from_utf8_lossy(&body).contains(fresh));
                        } else {
                            failed += 1;
                        }
                    }
                    (ms, bytes, with, failed)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("pullers")).collect()
    });
    let delta_s = t.elapsed().as_secs_f64();
    let peak_kib = crowd_tests::status_kib(pid, "VmHWM");
    // The delta's query alone, in this process on the same store (one change after `seq`).
    let lists = [String::new(), "porg0".to_owned()];
    let t = Instant::now();
    for _ in 0..20 {
        store.list_changes(&lists, seq, seq + 1).expect("changes");
    }
    let query_ms = t.elapsed().as_secs_f64() * 1000.0 / 20.0;
    let (mut ms, mut bytes, mut with, mut failed) = (Vec::new(), 0, 0, 0);
    for (m, b, w, f) in results {
        ms.extend(m);
        bytes += b;
        with += w;
        failed += f;
    }
    let ms = sorted(ms);
    let pulled = ms.len() + failed;
    let capped = if pulled < members {
        format!(" (stopped at the {:.0} s cap: {pulled} of {members} pulled)", cap.as_secs_f64())
    } else {
        String::new()
    };
    println!(
        "   {members} members' delta pulls after one new entry ({threads} client threads, half /v2 half /v3): {delta_s:.1} s ({:.0} pulls/s), {:.2} MB, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {with} had the entry, {failed} failed; peak RSS {} MiB (before {} MiB){capped}; the delta query alone (Store::list_changes) {query_ms:.1} ms",
        ms.len() as f64 / delta_s,
        bytes as f64 / 1e6,
        pct(&ms, 0.5),
        pct(&ms, 0.99),
        pct(&ms, 1.0),
        peak_kib / 1024,
        hwm_before / 1024
    );
    json!({"entries": entries, "seed_s": seed_s,
           "startup_v2": {"s": v2_s, "bytes": v2_bytes, "decisions": v2_n, "rss_peak_kib": v2_kib},
           "startup_v3": {"s": v3_s, "bytes": v3_bytes, "decisions": v3_n, "rss_peak_kib": pull_kib},
           "rss_idle_kib": idle_kib,
           "logins": {"argon2_default": real_logins, "argon2_default_s": real_s, "argon2_default_per_s": real_rate,
                      "cheap": members - real_logins, "cheap_s": cheap_s, "cheap_per_s": cheap_rate},
           "cursor_setup_s": cursor_s,
           "delta": {"members": members, "pulled": pulled, "cap_s": cap.as_secs_f64(), "s": delta_s, "pulls_per_s": ms.len() as f64 / delta_s, "bytes": bytes,
                     "ms_p50": pct(&ms, 0.5), "ms_p99": pct(&ms, 0.99), "ms_max": pct(&ms, 1.0),
                     "with_entry": with, "failed": failed, "rss_peak_kib": peak_kib, "list_changes_ms": query_ms}})
}

fn main() {
    let quick = std::env::var_os("CROWD_BENCH_QUICK").is_some();
    let total = if quick { 50_000 } else { 200_000 };
    let pool = 10_000;
    let started = Instant::now();
    println!(
        "community server (crowd community serve), release build, SQLite, loopback{}\n",
        if quick { ", quick" } else { "" }
    );

    // Parts 4 and 1 on one server: 50 members from distinct /48s in two ASNs.
    let hash = crowd::lapi::auth::hash_password(PASSWORD).expect("hash");
    let hub = Hub::start(|s| seed_members(s, &hash));
    let a = agent(Duration::from_secs(60));
    let tokens: Vec<String> =
        (0..MEMBERS).map(|i| hub.login(&a, "v3", &format!("m{i}"), Some(member_ip(i)), &SCENARIOS)).collect();
    let poller = hub.login(&a, "v2", "poller", Some("2001:db8:7fff::10".parse().expect("ip")), &SCENARIOS);
    let delay = listing_delay(&hub, &tokens, &poller, 20);
    let intake = intake(&hub, &tokens, total, pool);
    let log = std::fs::read_to_string(hub.state.join("serve.log")).unwrap_or_default();
    for l in log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).take(5) {
        eprintln!("   server: {l}");
    }
    drop(hub);
    let dir = tempfile::tempdir().expect("tempdir");
    let phases = phases(dir.path(), pool);
    let consensus = consensus_update(total, pool);
    let members = if quick { 2_000 } else { 10_000 };
    let cap = Duration::from_secs(if quick { 25 } else { 90 });
    let list = full_list(100_000, members, if quick { 50 } else { 100 }, cap);
    let out = json!({"quick": quick, "intake": intake, "phases": phases, "consensus": consensus, "full_list": list,
                     "listing_delay": delay, "total_s": started.elapsed().as_secs_f64()});
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("community.json"), serde_json::to_string_pretty(&out).expect("json")).expect("write");
    println!("\nwrote target/bench/community.json ({:.0} s)", started.elapsed().as_secs_f64());
}
