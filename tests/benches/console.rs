//! `cargo xtask bench console`: the web console (`/console/` of `crowd api`, release binary) on
//! a large store. Figures are printed, never asserted.
//!
//! 1. Seeding: a fresh SQLite store (migrated by `crowd::store::Store`) gets 1,000,000 active
//!    decisions and 100,000 alerts (100k and 10k with `CROWD_BENCH_QUICK=1`) in one transaction
//!    of prepared inserts, its indexes rebuilt after the load (no `ANALYZE`: crowd never runs it,
//!    so the planner sees what it sees in production). Each alert, spread over the last 24 h and
//!    drawn from ~10 scenarios and a skewed set of sources (top sources mean something), carries
//!    one `crowdsec` decision and a CrowdSec-like body (`source.cn`, `as_number`, `as_name` for
//!    most; this host's alerts keep their log lines for the parse trail); the other decisions are
//!    ~90% `crowdsec`, some `CAPI`, some `cscli`, a few ranges. Plus four agents, eight bouncers.
//! 2. `crowd api --no-metrics` on it, an admin console user, a login over HTTP (the cookie).
//! 3. The first overview (computed at the first request, which waits for it), then the
//!    background recompute: a decision committed by another connection → the first
//!    `overview.json` whose `change` moved (includes the store watcher's 10 ms poll). One trial
//!    lands in the task's rest after a run (twice its computing time), two after it.
//! 4. Server time per page: sequential requests (5 warm-ups, then 200, or fewer when a page is
//!    slow: 12 s per page at most), client-side wall time over loopback, keep-alive, the body
//!    gzip-compressed as a browser asks: p50/p99/max. A page whose series overlapped a background
//!    overview recompute (every 30 s, or after a change) is marked.
//! 5. Bytes of a first load of the overview with `Accept-Encoding: gzip`: the page and every
//!    `/console/assets/` file its HTML names, compressed (as sent) and not, per item.
//! 6. The API's memory: `VmRSS` after start, after the first overview, after the page series;
//!    `VmHWM` (peak).
//!
//! Writes `target/bench/console.json` (`console-quick.json` when quick). `CROWD_BENCH_KEEP=1`
//! keeps the seeded state directory (to look at query plans with `sqlite3` afterwards).
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crowd::store::{NewDecision, Store};
use crowd_tests::{Killed, crowd_bin, crowd_on_store, lapi::free_port};
use serde_json::json;

const PASSWORD: &str = "console-bench-password";
const WARMUP: usize = 5;
const SERIES: usize = 200;
const PAGE_BUDGET: Duration = Duration::from_secs(12);

/// The scenarios with their weights (the last one is rare: its filter walks far).
const SCENARIOS: [(&str, u64); 10] = [
    ("crowdsecurity/ssh-bf", 30),
    ("crowdsecurity/http-probing", 18),
    ("crowdsecurity/ssh-slow-bf", 12),
    ("crowdsecurity/http-crawl-non_statics", 10),
    ("crowdsecurity/http-bad-user-agent", 8),
    ("crowdsecurity/http-sensitive-files", 7),
    ("crowdsecurity/http-path-traversal-probing", 5),
    ("crowdsecurity/http-admin-interface-probing", 5),
    ("crowdsecurity/ssh-cve-2024-6387", 4),
    ("crowdsecurity/CVE-2021-41773", 1),
];
const COUNTRIES: [(&str, u64); 12] = [
    ("CN", 20),
    ("US", 18),
    ("RU", 10),
    ("DE", 8),
    ("NL", 7),
    ("VN", 7),
    ("BR", 6),
    ("IN", 6),
    ("FR", 5),
    ("KR", 5),
    ("GB", 4),
    ("SG", 4),
];
const ASNS: [(&str, &str); 12] = [
    ("14061", "DIGITALOCEAN-ASN"),
    ("16509", "AMAZON-02"),
    ("4134", "Chinanet"),
    ("45090", "Shenzhen Tencent Computer Systems Company Limited"),
    ("63949", "Akamai Connected Cloud"),
    ("24940", "Hetzner Online GmbH"),
    ("16276", "OVH SAS"),
    ("9009", "M247 Europe SRL"),
    ("51167", "Contabo GmbH"),
    ("396982", "GOOGLE-CLOUD-PLATFORM"),
    ("8075", "MICROSOFT-CORP-MSN-AS-BLOCK"),
    ("4837", "CHINA UNICOM China169 Backbone"),
];
/// Sources that send many alerts each (chosen with a skew), then a long tail.
const HEAVY: u64 = 50;
const TAIL: u64 = 40_000;

/// splitmix64: a deterministic data set without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn weighted<'a, T>(&mut self, items: &'a [(T, u64)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut r = self.below(total);
        for (item, w) in items {
            if r < *w {
                return item;
            }
            r -= w;
        }
        &items[items.len() - 1].0
    }
}

/// The k-th address: a bijection of u32 (distinct k, distinct addresses; data only).
fn ip_of(k: u64) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x2000_0000u32.wrapping_add((k as u32).wrapping_mul(2_654_435_761)))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// What the page series need from the data set.
struct Seeded {
    /// A source with many alerts (and decisions).
    heavy_ip: String,
    /// An alert id in the middle of the table (one of this host's, with log lines).
    mid_alert: i64,
    rare_scenario: &'static str,
    seed_s: f64,
}

/// A CrowdSec-like alert body (`models.Alert`), with crowd's log lines for this host's alerts.
fn alert_body(rng: &mut Rng, scenario: &str, ip: &str, at: i64, local: bool, events: u64) -> String {
    let ssh = scenario.contains("ssh");
    let geo = (rng.below(100) < 75).then(|| (*rng.weighted(&COUNTRIES), ASNS[rng.below(ASNS.len() as u64) as usize]));
    let (cn, (asn, as_name)) = geo.unwrap_or(("", ("", "")));
    let evs: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            let t = at - 2 + i;
            let mut meta = vec![
                json!({"key": "source_ip", "value": ip}),
                json!({"key": "service", "value": if ssh { "ssh" } else { "http" }}),
                json!({"key": "log_type", "value": if ssh { "ssh_failed-auth" } else { "http_access-log" }}),
                json!({"key": "IsoCode", "value": cn}),
                json!({"key": "ASNNumber", "value": asn}),
                json!({"key": "ASNOrg", "value": as_name}),
            ];
            if local {
                let (path, kind, line) = if ssh {
                    let stamp = chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%b %e %H:%M:%S").to_string());
                    let line = format!(
                        "{} bench sshd[{}]: Failed password for invalid user admin from {ip} port {} ssh2",
                        stamp.unwrap_or_default(),
                        1000 + rng.below(30000),
                        1024 + rng.below(60000)
                    );
                    ("/var/log/auth.log", "syslog", line)
                } else {
                    let stamp =
                        chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%d/%b/%Y:%H:%M:%S +0000").to_string());
                    let line = format!(
                        "{ip} - - [{}] \"GET /.env HTTP/1.1\" 404 162 \"-\" \"Mozilla/5.0 (bench)\"",
                        stamp.unwrap_or_default()
                    );
                    ("/var/log/nginx/access.log", "nginx", line)
                };
                meta.push(json!({"key": "datasource_path", "value": path}));
                meta.push(json!({"key": "crowd_line", "value": line}));
                meta.push(json!({"key": "crowd_line_type", "value": kind}));
            }
            json!({"timestamp": rfc3339(t), "meta": meta})
        })
        .collect();
    json!({
        "scenario": scenario, "scenario_hash": "", "scenario_version": "",
        "message": format!("Ip {ip} performed '{scenario}' ({events} events over 3s) at {}", rfc3339(at)),
        "events_count": events, "start_at": rfc3339(at - 3), "stop_at": rfc3339(at),
        "capacity": 5, "leakspeed": "10s", "simulated": false, "remediation": true, "events": evs,
        "source": {"scope": "Ip", "value": ip, "ip": ip, "cn": cn, "as_number": asn, "as_name": as_name,
                   "range": "", "latitude": 0.0, "longitude": 0.0},
        "decisions": [{"duration": "4h", "origin": "crowdsec", "scenario": scenario, "scope": "Ip",
                       "type": "ban", "value": ip, "simulated": false}],
    })
    .to_string()
}

/// Fills the store in `state` (see the module's notes): migrated by `Store::open`, then one
/// transaction of prepared inserts on the SQLite file, its indexes dropped during the load and
/// rebuilt after it (from their own definitions in `sqlite_master`).
fn seed(state: &Path, decisions: u64, alerts: u64, t: i64) -> Seeded {
    let started = Instant::now();
    std::fs::create_dir_all(state).expect("state dir");
    let db = state.join("crowd.db");
    drop(Store::open(&db).expect("store"));
    let mut conn = rusqlite::Connection::open(&db).expect("sqlite");
    conn.execute_batch("PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;")
        .expect("pragmas");
    let tx = conn.transaction().expect("begin");
    let indexes: Vec<(String, String)> = {
        let mut st = tx
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
                 AND tbl_name IN ('alerts', 'decisions')",
            )
            .expect("indexes");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("indexes").collect::<Result<_, _>>().expect("rows")
    };
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX {name}")).expect("drop index");
    }
    let mut rng = Rng(0x00C0_FFEE);
    let mut mid_alert = 0;
    {
        let mut put_alert = tx
            .prepare(
                "INSERT INTO alerts (id, scenario, scope, value, events_count, created_at, machine_id, body) \
                 VALUES (?1, ?2, 'Ip', ?3, ?4, ?5, ?6, ?7)",
            )
            .expect("prepare");
        let mut put_decision = tx
            .prepare(
                "INSERT INTO decisions (id, alert_id, origin, scenario, scope, value, type, until, created_at, \
                 simulated, reason, uuid, start_ip, end_ip, seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ban', ?7, ?8, 0, '', ?9, ?10, ?11, ?1)",
            )
            .expect("prepare");
        let mut decision =
            |rng: &mut Rng, id: u64, alert: Option<u64>, origin: &str, scenario: &str, value: &str, at: i64| {
                let target: crowd::addr::Target = value.parse().expect("target");
                let (start, end) = crowd::addr::bounds(&target);
                let scope = if value.contains('/') { "Range" } else { "Ip" };
                let until = t + 4 * 3600 + rng.below(6 * 86_400) as i64;
                let r = rng.next();
                let uuid = format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    r >> 32,
                    r & 0xffff,
                    id & 0xfff,
                    (r >> 16) & 0xfff,
                    id
                );
                put_decision
                    .execute(rusqlite::params![id, alert, origin, scenario, scope, value, until, at, uuid, start, end])
                    .expect("insert decision");
            };
        for id in 1..=alerts {
            let at = t - 86_400 + ((id - 1) * 86_400 / alerts) as i64;
            let k =
                if rng.below(100) < 30 { (HEAVY as f64 * rng.unit().powi(2)) as u64 } else { HEAVY + rng.below(TAIL) };
            let ip = ip_of(k).to_string();
            let scenario = *rng.weighted(&SCENARIOS);
            let local = rng.below(100) < 75;
            let events = 5 + rng.below(45);
            let machine = if local { String::new() } else { format!("agent-{}", 1 + rng.below(4)) };
            let body = alert_body(&mut rng, scenario, &ip, at, local, events);
            put_alert.execute(rusqlite::params![id, scenario, ip, events, at, machine, body]).expect("insert alert");
            decision(&mut rng, id, Some(id), "crowdsec", scenario, &ip, at);
            if mid_alert == 0 && id > alerts / 2 && local && scenario.contains("ssh") {
                mid_alert = id as i64;
            }
        }
        // The other decisions, spread over the last day.
        let bulk = decisions.saturating_sub(alerts);
        for j in 0..bulk {
            let at = t - 86_400 + (j * 86_400 / bulk.max(1)) as i64;
            let (origin, scenario) = match j % 50 {
                0..=3 => ("CAPI", *rng.weighted(&SCENARIOS)),
                4 => ("cscli", "manual 'ban' from 'bench'"),
                _ => ("crowdsec", *rng.weighted(&SCENARIOS)),
            };
            let ip = ip_of(j);
            let (value, origin) = if j % 2000 == 7 {
                let o = ip.octets();
                let v = if j % 20_000 == 7 {
                    format!("{}.{}.0.0/16", o[0], o[1])
                } else {
                    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
                };
                (v, if j % 4000 == 7 { "cscli" } else { "CAPI" })
            } else {
                (ip.to_string(), origin)
            };
            decision(&mut rng, alerts + 1 + j, None, origin, scenario, &value, at);
        }
    }
    tx.execute("UPDATE change_seq SET n = (SELECT COALESCE(MAX(seq), 0) FROM decisions)", []).expect("change_seq");
    for (_, sql) in &indexes {
        tx.execute_batch(sql).expect("create index");
    }
    tx.commit().expect("commit");
    drop(conn);
    // A small fleet, through the store: four agents (the alerts' machines) and eight bouncers.
    let mut store = Store::open(&db).expect("store");
    for m in 1..=4 {
        let id = format!("agent-{m}");
        store.upsert_machine(&id, "x", true, &format!("192.0.2.{m}"), t).expect("machine");
        store.touch_machine(&id, Some("crowdsecurity/ssh-bf,crowdsecurity/http-probing"), "192.0.2.1", t).expect("hb");
    }
    for b in 0..8 {
        store.add_bouncer(&format!("bouncer-{b}"), &format!("{b:064x}"), t).expect("bouncer");
    }
    drop(store);
    let heavy_ip = ip_of(0).to_string();
    Seeded { heavy_ip, mid_alert, rare_scenario: SCENARIOS[9].0, seed_s: started.elapsed().as_secs_f64() }
}

/// Where `crowd api` writes its log: beside the state directory.
fn dir_log(state: &Path) -> std::path::PathBuf {
    state.with_file_name("api.log")
}

/// The process's CPU time so far, clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// Waits until the API is idle (under 10% of a CPU over 0.3 s, twice), so a background overview
/// computation does not share the CPUs with a measurement.
fn settle(pid: u32) {
    let t = Instant::now();
    let (mut last, mut quiet) = (cpu_ticks(pid), 0);
    while quiet < 2 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu_ticks(pid);
        quiet = if now - last <= 3 { quiet + 1 } else { 0 };
        last = now;
    }
}

/// A signed-in console client (keep-alive; ureq asks for gzip, as browsers do).
struct Client {
    agent: ureq::Agent,
    base: String,
    cookie: String,
    log: std::path::PathBuf,
}

impl Client {
    fn login(port: u16, log: std::path::PathBuf) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let r = agent
            .post(format!("{base}/console/login"))
            .send_form([("name", "bench"), ("password", PASSWORD)])
            .expect("login");
        assert_eq!(r.status().as_u16(), 303, "login answered {}", r.status());
        let cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().and_then(|c| c.strip_prefix("crowd_console=")))
            .expect("a crowd_console cookie")
            .to_owned();
        Client { agent, base, cookie, log }
    }

    /// GET `path`: the body (asserts 200).
    fn get(&self, path: &str) -> Vec<u8> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Cookie", format!("crowd_console={}", self.cookie))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}; the API's log: {}", self.log.display()));
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        r.body_mut().with_config().limit(1 << 30).read_to_vec().expect("body")
    }

    fn overview(&self) -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&self.get("/console/overview.json")).expect("json")["overview"]
            .clone()
    }
}

/// One GET on a fresh connection with `Accept-Encoding: gzip`: the body as sent (de-chunked,
/// still compressed) and decoded.
fn wire_get(port: u16, path: &str, cookie: &str) -> (Vec<u8>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: crowd_console={cookie}\r\n\
         Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "GET {path}: {}", head.lines().next().unwrap_or(""));
    let mut body = raw[split..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let (mut out, mut rest) = (Vec::new(), &body[..]);
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).expect("size");
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    let decoded = if head.contains("content-encoding: gzip") {
        let mut d = Vec::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut d).expect("gunzip");
        d
    } else {
        body.clone()
    };
    (body, decoded)
}

fn pct(v: &[f64], p: f64) -> f64 {
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(f64::NAN)
}

/// Sequential GETs of `path`: the sorted wall times (ms).
fn series(c: &Client, path: &str) -> Vec<f64> {
    for _ in 0..WARMUP {
        c.get(path);
    }
    let start = Instant::now();
    let mut ms = Vec::with_capacity(SERIES);
    while ms.len() < SERIES && (ms.len() < 20 || start.elapsed() < PAGE_BUDGET) {
        let t = Instant::now();
        c.get(path);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    ms
}

fn main() {
    let quick = std::env::var_os("CROWD_BENCH_QUICK").is_some();
    let (n_dec, n_alerts) = if quick { (100_000, 10_000) } else { (1_000_000, 100_000) };
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    if std::env::var_os("CROWD_BENCH_KEEP").is_some() {
        println!("keeping the seeded state directory: {}", dir.keep().join("state").display());
    }
    let t0 = now();
    let seeded = seed(&state, n_dec, n_alerts, t0);
    let db_mib = std::fs::metadata(state.join("crowd.db")).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    println!("console on {n_dec} active decisions and {n_alerts} alerts (SQLite)\n");
    println!(
        "seeding (one SQLite transaction, indexes rebuilt after): {:.1} s ({:.0} rows/s), database {db_mib:.0} MiB",
        seeded.seed_s,
        (n_dec + n_alerts) as f64 / seeded.seed_s
    );
    // The store's overview queries alone, in this process (the background task's work).
    let mut store = Store::open(&state.join("crowd.db")).expect("store");
    let since = (t0 / 3600 - 23) * 3600;
    let t = Instant::now();
    let o = store.overview(now(), since, 2000).expect("overview");
    let store_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "Store::overview in process (decisions by origin and scenario, alerts per hour, top sources, 2000 bodies): \
         {store_ms:.0} ms; top source {} with {} alerts",
        o.top_sources.first().map_or("-", |s| s.0.as_str()),
        o.top_sources.first().map_or(0, |s| s.1)
    );
    crowd_on_store(&state, &["console", "users", "add", "bench", "--role", "admin", "--password", PASSWORD]);

    let port = free_port();
    let api = Killed(
        Command::new(crowd_bin())
            .args(["api", "--no-metrics", "--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir_log(&state)).expect("api log"))
            .spawn()
            .expect("crowd api"),
    );
    let pid = api.0.id();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(60), "crowd api never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    settle(pid);
    let rss_start = crowd_tests::status_kib(pid, "VmRSS");
    let c = Client::login(port, dir_log(&state));

    // The first overview: computed at this request.
    let t = Instant::now();
    let page = c.get("/console/overview");
    let cold_ms = t.elapsed().as_secs_f64() * 1000.0;
    let rss_cold = crowd_tests::status_kib(pid, "VmRSS");
    println!("\nfirst overview (computed synchronously at the first request): {cold_ms:.0} ms, {} bytes", page.len());

    // The background recompute after a store change from another connection. The task rests
    // twice its last computing time (1 to 30 s) after each run: a change made during the rest
    // waits for its end (the first trial, made as soon as the API is idle again after the
    // computation the login's write started); the others are made after the rest.
    let mut recompute = Vec::new();
    let mut last = cold_ms;
    for i in 0..3u32 {
        settle(pid);
        if i > 0 {
            std::thread::sleep(Duration::from_secs_f64((2.0 * last / 1000.0).clamp(1.0, 30.0) + 0.3));
        }
        let before = c.overview()["change"].as_i64().unwrap_or(0);
        let d = NewDecision {
            origin: "cscli".into(),
            scenario: "bench".into(),
            scope: "Ip".into(),
            value: format!("198.51.100.{}", 10 + i),
            kind: "ban".into(),
            duration_secs: 3600,
            ..NewDecision::default()
        };
        store.record(None, &[d], now()).expect("record");
        let t = Instant::now();
        while c.overview()["change"].as_i64().unwrap_or(0) <= before {
            assert!(t.elapsed() < Duration::from_secs(120), "the overview never moved");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if i > 0 {
            // A computation alone (the first trial also waited out a rest).
            last = ms;
        }
        recompute.push(ms);
    }
    drop(store);
    println!(
        "background recompute, decision committed → overview.json shows it (includes the store watcher's 10 ms \
         poll): {:.0} ms when made during the task's rest after a run, {} ms when the task was idle",
        recompute[0],
        recompute[1..].iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(", ")
    );

    // Server time per page.
    let pages = [
        ("overview", "/console/overview".to_owned()),
        ("alerts", "/console/alerts".to_owned()),
        ("alerts, rare scenario", format!("/console/alerts?scenario={}", seeded.rare_scenario.replace('/', "%2F"))),
        ("alerts, one source", format!("/console/alerts?source={}", seeded.heavy_ip)),
        ("alerts, page in the middle", format!("/console/alerts?before={}", n_alerts / 2)),
        ("decisions", "/console/decisions".to_owned()),
        ("decisions, one address", format!("/console/decisions?ip={}", seeded.heavy_ip)),
        ("one alert", format!("/console/alerts/{}", seeded.mid_alert)),
        ("fleet", "/console/fleet".to_owned()),
    ];
    println!(
        "\nserver time per page: sequential GETs over loopback, client wall time (keep-alive, gzip), \
         {WARMUP} warm-ups; target p99 < 100 ms"
    );
    println!("{:<28} {:>5} {:>9} {:>9} {:>9} {:>8}  path", "page", "n", "p50 ms", "p99 ms", "max ms", "html B");
    let mut page_figures = Vec::new();
    let mut missed = Vec::new();
    for (name, path) in &pages {
        settle(pid);
        let at_before = c.overview()["at"].as_i64();
        let bytes = c.get(path).len();
        let ms = series(&c, path);
        let overlapped = c.overview()["at"].as_i64() != at_before;
        let (p50, p99, max) = (pct(&ms, 0.5), pct(&ms, 0.99), pct(&ms, 1.0));
        println!(
            "{name:<28} {:>5} {p50:>9.1} {p99:>9.1} {max:>9.1} {bytes:>8}  {path}{}",
            ms.len(),
            if overlapped { "  (* a background overview recompute ran during the series)" } else { "" }
        );
        if p99 >= 100.0 {
            missed.push(format!("{name} (p99 {p99:.0} ms)"));
        }
        page_figures.push(json!({"page": name, "path": path, "n": ms.len(), "p50_ms": p50, "p99_ms": p99,
                                 "max_ms": max, "bytes": bytes, "recompute_overlapped": overlapped}));
    }
    let rss_pages = crowd_tests::status_kib(pid, "VmRSS");

    // Bytes of a first load of the overview.
    let (page_gz, page_raw) = wire_get(port, "/console/overview", &c.cookie);
    let html = String::from_utf8_lossy(&page_raw).into_owned();
    let mut assets: Vec<String> = Vec::new();
    for part in html.split("/console/assets/").skip(1) {
        let name = part.split(['"', '\'', '?', ' ', '>']).next().unwrap_or("").to_owned();
        if !name.is_empty() && !assets.contains(&name) {
            assets.push(name);
        }
    }
    println!("\nfirst load of the overview (Accept-Encoding: gzip; bodies, headers not counted):");
    println!("{:<34} {:>12} {:>12}", "item", "sent bytes", "raw bytes");
    let mut items = vec![("/console/overview".to_owned(), page_gz.len(), page_raw.len())];
    for a in &assets {
        let path = format!("/console/assets/{a}");
        let (gz, raw) = wire_get(port, &path, &c.cookie);
        items.push((path, gz.len(), raw.len()));
    }
    for (path, gz, raw) in &items {
        println!("{path:<34} {gz:>12} {raw:>12}");
    }
    let (total_gz, total_raw): (usize, usize) = items.iter().fold((0, 0), |(a, b), (_, g, r)| (a + g, b + r));
    println!("{:<34} {total_gz:>12} {total_raw:>12}", "total");
    let rss_end = crowd_tests::status_kib(pid, "VmRSS");
    let hwm = crowd_tests::status_kib(pid, "VmHWM");
    println!(
        "\nAPI memory: VmRSS {} MiB after start, {} MiB after the first overview, {} MiB after the page series, \
         {} MiB at the end; VmHWM (peak) {} MiB",
        rss_start / 1024,
        rss_cold / 1024,
        rss_pages / 1024,
        rss_end / 1024,
        hwm / 1024
    );

    let worst = page_figures.iter().map(|p| p["p99_ms"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
    println!("\nsummary ({n_dec} decisions, {n_alerts} alerts)");
    println!("  seeding: {:.1} s", seeded.seed_s);
    println!("  first overview: {cold_ms:.0} ms");
    println!(
        "  background recompute after a change: {:.0} ms with the task idle, {:.0} ms when it was resting",
        (recompute[1] + recompute[2]) / 2.0,
        recompute[0]
    );
    println!(
        "  pages: worst p99 {worst:.1} ms; {}",
        if missed.is_empty() { "all under 100 ms".to_owned() } else { format!("over 100 ms: {}", missed.join(", ")) }
    );
    println!(
        "  first load: {:.1} KB sent ({:.1} KB raw), target < 200 KB: {}",
        total_gz as f64 / 1000.0,
        total_raw as f64 / 1000.0,
        if total_gz < 200_000 { "met" } else { "missed" }
    );
    println!("  API memory: {} MiB resident after the pages, peak {} MiB", rss_pages / 1024, hwm / 1024);

    let out = json!({"decisions": n_dec, "alerts": n_alerts, "seed_s": seeded.seed_s, "db_mib": db_mib,
        "store_overview_ms": store_ms, "first_overview_ms": cold_ms,
        "recompute_ms": {"during_rest": recompute[0], "idle": &recompute[1..]}, "pages": page_figures,
        "first_load": items.iter().map(|(p, g, r)| json!({"path": p, "sent": g, "raw": r})).collect::<Vec<_>>(),
        "first_load_sent": total_gz, "first_load_raw": total_raw,
        "rss_kib": {"start": rss_start, "first_overview": rss_cold, "after_pages": rss_pages, "end": rss_end,
                    "peak": hwm}});
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&target).expect("mkdir");
    let name = if quick { "console-quick.json" } else { "console.json" };
    std::fs::write(target.join(name), serde_json::to_string_pretty(&out).expect("json")).expect("write");
    println!("\nwrote target/bench/{name}");
}
