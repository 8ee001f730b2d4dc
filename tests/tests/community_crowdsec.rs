//! Debian's `crowdsec` 1.4.6 and crowd as peer members of crowd's community server (`crowd
//! community serve`), on loopback. An attacker Y is listed by a signal from crowd (a `crowd api`
//! registered as a member, sharing an alert its agent pushed) plus two CrowdSec-format signals
//! from other organisations, before crowdsec starts: crowdsec's startup pull bans Y. Crowdsec's
//! agent then detects a brute force by X (the hub's `crowdsecurity/ssh-bf` on an sshd log the test
//! writes); its Local API pushes the signal, which the server puts in crowdsec's organisation's
//! list at once; with two more organisations' signals X is listed and crowd's member, which never
//! saw X, serves it to its bouncers: an attacker each peer blocks from the other's report.
//!
//! CrowdSec runs with its Local API and agent in one process, with a private configuration in a
//! temporary directory (as in `crowdsec_client.rs`: the hub's parsers and scenarios linked
//! read-only, its own data dir, SQLite database, acquisition file, console settings and
//! credentials; its local machine made with its own `cscli machines add`). The package's service,
//! `/etc/crowdsec`'s credentials and `/var/lib/crowdsec`'s database are never used. The other
//! organisations are simulated over HTTP with `X-Forwarded-For` from documentation addresses
//! through the server's trusted proxy (loopback). Unprivileged; needs the `crowdsec` package
//! (`cargo xtask test` installs it), and fails without it rather than skip.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crowd_tests::{Killed, crowd_bin, lapi::free_port, wait_for};
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

const CSCLI: &str = "/usr/bin/cscli";
const CROWDSEC: &str = "/usr/bin/crowdsec";
const BASE_CONFIG: &str = "/etc/crowdsec/config.yaml";
const PROFILES: &str = "/etc/crowdsec/profiles.yaml";
const HUB: &str = "/var/lib/crowdsec/hub";

/// The hub items the private configuration installs (linked, read-only): syslog lines, sshd,
/// dates, and the ssh brute-force scenario.
const HUB_ITEMS: &[(&str, &str)] = &[
    ("parsers/s00-raw", "parsers/s00-raw/crowdsecurity/syslog-logs.yaml"),
    ("parsers/s01-parse", "parsers/s01-parse/crowdsecurity/sshd-logs.yaml"),
    ("parsers/s02-enrich", "parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml"),
    ("scenarios", "scenarios/crowdsecurity/ssh-bf.yaml"),
];

/// A quorum the test meets with three simulated organisations (trust 1/3 each before any
/// history: score 1 against 0.5), no warm-up, members behind loopback's trusted proxy.
const CONFIG: &str = "consensus:
  quorum_orgs: 3
  quorum_prefixes: 1
  quorum_asns: 1
  warmup: 0
  warmup_signals: 0
  warmup_days: 0
  list_score: 0.5
trusted_proxies: [127.0.0.0/8]
asns: {198.51.100.0/24: 64500, 203.0.113.0/24: 64501}
";

/// The CrowdSec instance's login at the community server, and its organisation.
const MEMBER: &str = "cs146-member";
const ORG: &str = "acme";
const PASSWORD: &str = "community-pw-0123456789";
/// Listed by crowd's member and two other organisations before crowdsec starts.
const Y: &str = "203.0.113.50";
/// Brute-forces the sshd crowdsec's agent reads; listed with two other organisations' signals.
const X: &str = "192.0.2.77";

/// `crowd community serve` on loopback with its state directory.
struct Hub {
    addr: SocketAddr,
    state: PathBuf,
    _child: Killed,
    _dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Hub {
    fn start() -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        std::fs::write(state.join("community.yaml"), CONFIG).expect("write community.yaml");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(crowd_bin())
            .args(["community", "--state-dir"])
            .arg(&state)
            .args(["serve", "--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("crowd community serve");
        let child = Killed(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "the community server did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Hub { addr, state, _child: child, _dir: dir, agent }
    }

    /// `crowd community --state-dir <state> ARGS`, which must succeed; its stdout.
    fn crowd(&self, args: &[&str]) -> String {
        let out = Command::new(crowd_bin())
            .args(["community", "--state-dir"])
            .arg(&self.state)
            .args(args)
            .output()
            .expect("run crowd community");
        assert!(out.status.success(), "crowd community {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// `crowd community -o json ARGS`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.crowd(&[&["-o", "json"], args].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("crowd community {args:?}: not JSON ({e}): {out}"))
    }

    /// The values of the community list, or of `org`'s list.
    fn listed(&self, org: Option<&str>) -> Vec<Value> {
        let v = match org {
            Some(o) => self.json(&["list", "--org", o]),
            None => self.json(&["list"]),
        };
        v.as_array().cloned().unwrap_or_default()
    }

    /// An HTTP request to the server; status and JSON body.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, Value) {
        let mut req = ureq::http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut resp = self.agent.run(req.body(body).expect("request")).expect("send");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (resp.status().as_u16(), v)
    }

    /// Logs `machine` in on `/v2` from `from` (through the trusted proxy); its token.
    fn login(&self, machine: &str, from: &str) -> String {
        let body = json!({"machine_id": machine, "password": PASSWORD, "scenarios": ["crowdsecurity/ssh-bf"]});
        let (status, j) = self.send("POST", "/v2/watchers/login", &[("X-Forwarded-For", from)], Some(&body));
        assert_eq!(status, 200, "login {machine}: {j}");
        j["token"].as_str().expect("token").to_owned()
    }
}

/// A 1.4.6-shaped signal for `ip`.
fn ssh_bf(ip: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!({"scenario": "crowdsecurity/ssh-bf", "scenario_hash": "abc", "scenario_version": "0.1",
           "scenario_trust": "certified", "message": "ssh-bf", "source": {"scope": "Ip", "value": ip, "ip": ip},
           "start_at": now, "stop_at": now, "created_at": now, "machine_id": "local-agent"})
}

/// Organisations orgC and orgD (their machines made on first use) report `ip`, from two
/// documentation prefixes through the trusted proxy.
fn signal(hub: &Hub, ip: &str) {
    for (id, org, from) in [("c1", "orgC", "203.0.113.20"), ("d1", "orgD", "198.51.100.30")] {
        let known = hub.json(&["machines", "list"]);
        if !known.as_array().is_some_and(|a| a.iter().any(|m| m["machine_id"] == id)) {
            hub.crowd(&["machines", "add", id, "--org", org, "--password", PASSWORD]);
        }
        let token = hub.login(id, from);
        let (status, body) = hub.send(
            "POST",
            "/v2/signals",
            &[("Authorization", &format!("Bearer {token}"))],
            Some(&json!([ssh_bf(ip)])),
        );
        assert_eq!(status, 200, "{id}'s signal: {body}");
    }
}

fn require_crowdsec() {
    for path in [CSCLI, CROWDSEC, BASE_CONFIG, PROFILES] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: this test needs Debian's `crowdsec` 1.4.6 package, which `cargo xtask test` \
             installs (offline, not started: xtask/src/setup.rs)"
        );
    }
}

/// A private CrowdSec configuration with its Local API on `lapi` and the community server as its
/// central API, in a temporary directory.
struct Private {
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Private {
    fn new(hub: &Hub, lapi: SocketAddr) -> Private {
        require_crowdsec();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let etc = d.join("etc");
        for (sub, item) in HUB_ITEMS {
            let target = Path::new(HUB).join(item);
            assert!(target.exists(), "{} is missing from the crowdsec package's hub", target.display());
            std::fs::create_dir_all(etc.join(sub)).expect("mkdir");
            std::os::unix::fs::symlink(&target, etc.join(sub).join(target.file_name().expect("name")))
                .expect("symlink");
        }
        std::os::unix::fs::symlink("/etc/crowdsec/patterns", etc.join("patterns")).expect("symlink patterns");
        std::fs::create_dir_all(etc.join("notifications")).expect("mkdir");
        std::fs::create_dir_all(d.join("data")).expect("mkdir");
        std::fs::write(etc.join("simulation.yaml"), "simulation: off\n").expect("write");
        std::fs::copy(PROFILES, etc.join("profiles.yaml")).expect("copy profiles.yaml");
        // Every trust class shared (1.4.6's defaults for a missing file, written out).
        std::fs::write(
            etc.join("console.yaml"),
            "share_manual_decisions: false\nshare_custom: true\nshare_tainted: true\n",
        )
        .expect("write console.yaml");
        // Parsed strictly by 1.4.6: url (with its trailing slash), login, password only.
        std::fs::write(
            d.join("online_api_credentials.yaml"),
            format!("url: http://{}/\nlogin: {MEMBER}\npassword: {PASSWORD}\n", hub.addr),
        )
        .expect("write online credentials");
        std::fs::write(d.join("auth.log"), "").expect("write");
        std::fs::write(
            d.join("acquis.yaml"),
            format!("filenames:\n  - {}\nlabels:\n  type: syslog\n", d.join("auth.log").display()),
        )
        .expect("write acquis");

        let base = std::fs::read_to_string(BASE_CONFIG).expect("read the package's config.yaml");
        let mut c: Yaml = serde_yaml::from_str(&base).expect("config.yaml is YAML");
        let p = |rel: &str| Yaml::String(format!("{}/{rel}", d.display()));
        let set = |c: &mut Yaml, path: &[&str], v: Yaml| {
            let mut m = c.as_mapping_mut().expect("mapping");
            for key in &path[..path.len() - 1] {
                m = m
                    .entry((*key).into())
                    .or_insert_with(|| Yaml::Mapping(Default::default()))
                    .as_mapping_mut()
                    .expect("section");
            }
            m.insert(path[path.len() - 1].into(), v);
        };
        set(&mut c, &["common", "daemonize"], false.into());
        set(&mut c, &["common", "log_media"], "stdout".into());
        set(&mut c, &["common", "log_level"], "info".into());
        set(&mut c, &["common", "log_dir"], p(""));
        set(&mut c, &["common", "working_dir"], p(""));
        set(&mut c, &["config_paths", "config_dir"], p("etc/"));
        set(&mut c, &["config_paths", "data_dir"], p("data/"));
        set(&mut c, &["config_paths", "simulation_path"], p("etc/simulation.yaml"));
        set(&mut c, &["config_paths", "notification_dir"], p("etc/notifications/"));
        set(&mut c, &["config_paths", "hub_dir"], format!("{HUB}/").into());
        set(&mut c, &["config_paths", "index_path"], format!("{HUB}/.index.json").into());
        set(&mut c, &["crowdsec_service", "acquisition_path"], p("acquis.yaml"));
        if let Some(s) = c.get_mut("crowdsec_service").and_then(Yaml::as_mapping_mut) {
            s.remove("acquisition_dir");
        }
        set(&mut c, &["db_config", "db_path"], p("data/crowdsec.db"));
        set(&mut c, &["prometheus", "enabled"], false.into());
        set(&mut c, &["api", "client", "credentials_path"], p("local_api_credentials.yaml"));
        set(&mut c, &["api", "server", "listen_uri"], lapi.to_string().into());
        set(&mut c, &["api", "server", "profiles_path"], p("etc/profiles.yaml"));
        set(&mut c, &["api", "server", "console_path"], p("etc/console.yaml"));
        set(&mut c, &["api", "server", "online_client", "credentials_path"], p("online_api_credentials.yaml"));
        let cfg = d.join("config.yaml");
        std::fs::write(&cfg, serde_yaml::to_string(&c).expect("yaml")).expect("write config");
        let cs = Private { dir, cfg };
        // The agent's machine on its own Local API, made and validated by its own cscli.
        let creds = cs.dir.path().join("local_api_credentials.yaml");
        cs.ok(&[
            "machines",
            "add",
            "local-agent",
            "--password",
            "local-agent-pw-0123456789",
            "-f",
            creds.to_str().expect("utf-8"),
            "--url",
            &format!("http://{lapi}/"),
        ]);
        cs
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `cscli -c <private config> ARGS`, which must exit 0; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = Command::new(CSCLI).arg("-c").arg(&self.cfg).args(args).output().expect("run cscli");
        assert!(
            out.status.success(),
            "cscli {args:?} failed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `cscli decisions list -a -o json ARGS`: the alerts (an empty list for `null`).
    fn alerts_with_decisions(&self, args: &[&str]) -> Vec<Value> {
        let out = self.ok(&[&["decisions", "list", "-a", "-o", "json"], args].concat());
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            Ok(Value::Null) => vec![],
            other => panic!("cscli decisions list -a -o json: {other:?}: {out}"),
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn crowdsec_1_4_6_and_crowd_each_block_an_attacker_the_other_reported() {
    require_crowdsec();
    let started = Instant::now();
    let hub = Hub::start();
    hub.crowd(&["machines", "add", MEMBER, "--org", ORG, "--password", PASSWORD]);

    // crowd as a member (organisation orgB): a `crowd api` registered with operator-given
    // credentials; its agent's alert on Y is shared as a signal.
    hub.crowd(&["machines", "add", "crowd-edge", "--org", "orgB", "--password", PASSWORD]);
    let edge_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(crowd_bin())
        .args(["community", "--state-dir"])
        .arg(edge_dir.path())
        .args(["register", "--url", &format!("http://{}/", hub.addr), "--name", "crowd-edge", "--password", PASSWORD])
        .output()
        .expect("crowd community register");
    assert!(out.status.success(), "register: {}", String::from_utf8_lossy(&out.stderr));
    let edge = crowd_tests::lapi::Api::start_in(edge_dir.path().to_owned(), Some(edge_dir), None);
    let edge_agent = edge.machine("edge-agent");
    let edge_bouncer = edge.bouncer("edge-fw");
    edge.get("/v1/decisions/stream?startup=true", &edge_bouncer);
    edge.push_ssh_bf(&edge_agent, Y);
    wait_for(
        &format!("crowd's signal on {Y} in orgB's list"),
        Duration::from_secs(10),
        Duration::from_millis(100),
        || hub.listed(Some("orgB")).iter().any(|e| e["value"] == Y),
    );
    // Two more organisations, in CrowdSec 1.4.x's signal format: Y is listed before crowdsec starts.
    signal(&hub, Y);
    wait_for(&format!("{Y} in the community list"), Duration::from_secs(10), Duration::from_millis(100), || {
        hub.listed(None).iter().any(|e| e["value"] == Y)
    });

    // CrowdSec 1.4.6, Local API and agent, with the community server as its central API.
    let lapi: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let cs = Private::new(&hub, lapi);
    let log_path = cs.path("crowdsec.log");
    let out = std::fs::File::create(&log_path).expect("crowdsec log");
    let _crowdsec = Killed(
        Command::new(CROWDSEC)
            .arg("-c")
            .arg(&cs.cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start crowdsec"),
    );
    let show = || tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 60);
    let cs_started = Instant::now();
    // Its log and the server's view are shown if it does not get there.
    let check = |what: &str, limit: Duration| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(!log.contains("level=fatal"), "crowdsec exited:\n{}", tail(&log, 60));
        assert!(
            cs_started.elapsed() < limit,
            "{what}: not after {:?}\nmembers: {}\ncrowdsec log (tail):\n{}",
            cs_started.elapsed(),
            hub.crowd(&["-o", "json", "machines", "list"]),
            tail(&log, 60)
        );
        log
    };
    wait_for("crowdsec to start reading", Duration::from_secs(60), Duration::from_millis(200), || {
        check("crowdsec reading its log", Duration::from_secs(58)).contains("Starting processing data")
    });
    eprintln!("crowdsec reading after {} ms", cs_started.elapsed().as_millis());

    // (b) Its startup pull (once its agent registered a scenario) brings Y, from the community.
    let mut pulled = Value::Null;
    let took = wait_for("the startup pull", Duration::from_secs(60), Duration::from_millis(500), || {
        check("the startup pull to bring the community list", Duration::from_secs(40));
        let alerts = cs.alerts_with_decisions(&["--ip", Y]);
        match alerts.first() {
            Some(a) => {
                pulled = a.clone();
                true
            }
            None => false,
        }
    });
    eprintln!("startup pull seen after {} ms: {pulled:#}", took.as_millis());
    let d = pulled["decisions"].as_array().and_then(|d| d.iter().find(|d| d["value"] == Y)).cloned();
    let d = d.unwrap_or_else(|| panic!("no decision for {Y}: {pulled:#}"));
    assert_eq!(d["origin"], "CAPI", "{pulled:#}");
    assert_eq!(d["type"], "ban", "{pulled:#}");
    assert_eq!(d["scope"], "Ip", "{pulled:#}");
    assert_eq!(d["scenario"], "crowdsecurity/ssh-bf", "{pulled:#}");
    // 1.4.6 files the community list under one alert of its own.
    assert_eq!(pulled["source"]["scope"], "crowdsecurity/community-blocklist", "{pulled:#}");
    assert_eq!(pulled["scenario"], "update : +1/-0 IPs", "{pulled:#}");

    // (c) The agent detects X; the Local API pushes its signal at its next tick (30 s ± 15 s,
    // then every 30 s), and the server puts X in the member organisation's list at once.
    let first_batch = Instant::now();
    let mut last_batch: Option<Instant> = None;
    let took =
        wait_for(&format!("a local decision for {X}"), Duration::from_secs(60), Duration::from_millis(500), || {
            check("the agent's decision", Duration::from_secs(100));
            if last_batch.is_none_or(|t| t.elapsed() > Duration::from_secs(12)) {
                crowd_tests::append_sshd_failures_local(&cs.path("auth.log"), X, 8);
                last_batch = Some(Instant::now());
            }
            !cs.alerts_with_decisions(&["--ip", X]).is_empty()
        });
    eprintln!("sshd lines to a local ban of {X}: {} ms", took.as_millis());
    let local = cs.alerts_with_decisions(&["--ip", X]);
    let d = &local[0]["decisions"][0];
    assert_eq!(
        (d["origin"].as_str(), d["scenario"].as_str()),
        (Some("crowdsec"), Some("crowdsecurity/ssh-bf")),
        "{local:?}"
    );
    let detected = Instant::now();
    let took = wait_for(
        &format!("{X} in {ORG}'s list on the community server"),
        Duration::from_secs(62),
        Duration::from_millis(250),
        || {
            let log = check("the pushed signal", Duration::from_secs(180));
            assert!(
                detected.elapsed() < Duration::from_secs(60),
                "{X} not in {ORG}'s list 60 s after crowdsec's local ban (push every 30 s ± 15 s)\n\
                 {ORG}'s list: {:?}\nexplain: {}\nmetrics: {}\ncrowdsec log (tail):\n{}",
                hub.listed(Some(ORG)),
                hub.crowd(&["-o", "json", "explain", X]),
                hub.send("GET", "/metrics", &[], None).1,
                tail(&log, 60)
            );
            hub.listed(Some(ORG)).iter().any(|e| e["value"] == X)
        },
    );
    eprintln!(
        "{X}: local ban to {ORG}'s list {} ms (first sshd batch {} ms ago)",
        took.as_millis(),
        first_batch.elapsed().as_millis()
    );
    let list = hub.listed(Some(ORG));
    let e = list.iter().find(|e| e["value"] == X).expect("listed");
    assert_eq!(e["scope"], "Ip", "{e}");
    assert_eq!(e["scenario"], "crowdsecurity/ssh-bf", "{e}");
    let explain = hub.json(&["explain", X]);
    assert_eq!(explain["organisations"], 1, "one organisation reported {X}: {explain}");
    assert_eq!(explain["listed"], false, "one organisation does not list it for the community: {explain}");
    assert!(!hub.listed(None).iter().any(|e| e["value"] == X), "{X} is not in the community list");

    // (a) The 1.4.6 Local API logged in as the member, from loopback, with its scenarios.
    let members = hub.json(&["machines", "list"]);
    let m = members.as_array().and_then(|a| a.iter().find(|m| m["machine_id"] == MEMBER)).cloned();
    let m = m.unwrap_or_else(|| panic!("{MEMBER} not listed: {members}"));
    eprintln!("the member after crowdsec's login: {m}");
    assert_eq!(m["org"], ORG, "{m}");
    assert_eq!(m["egress_prefix"], "127.0.0.0/24", "{m}");
    assert!(m["last_login"].as_i64().is_some(), "{m}");
    assert!(m["last_pull"].as_i64().is_some(), "{m}");
    // 1.4.6 reads its scenarios once, when its Local API starts (before its agent registered
    // any), and sends them again only when its token is renewed: an empty list, which the
    // server reads as "no tailoring".
    assert!(m["scenarios"].is_string(), "{m}");

    // (d) A sibling machine of the organisation gets X inline at once (1.4.x: origin `lists`).
    hub.crowd(&["machines", "add", "acme-web2", "--org", ORG, "--password", PASSWORD]);
    let token = hub.login("acme-web2", "198.51.100.60");
    let (status, stream) =
        hub.send("GET", "/v2/decisions/stream?startup=true", &[("Authorization", &format!("Bearer {token}"))], None);
    assert_eq!(status, 200, "{stream}");
    let new = stream["new"].as_array().cloned().unwrap_or_default();
    let x = new.iter().find(|d| d["value"] == X).unwrap_or_else(|| panic!("{X} not in the sibling's pull: {stream}"));
    assert_eq!((x["origin"].as_str(), x["scenario"].as_str()), (Some("lists"), Some("org-acme")), "{stream}");
    let y = new.iter().find(|d| d["value"] == Y).unwrap_or_else(|| panic!("{Y} not in the sibling's pull: {stream}"));
    assert_eq!(y["origin"], "CAPI", "{stream}");

    // (e) Two more organisations report X: it is listed, and crowd's member, which never saw X,
    // serves it to its bouncer as a community decision (crowd's long poll: seconds).
    let t = Instant::now();
    signal(&hub, X);
    let got = wait_for(&format!("{X} at crowd's member"), Duration::from_secs(15), Duration::from_millis(50), || {
        edge.get("/v1/decisions/stream", &edge_bouncer).json()["new"]
            .as_array()
            .is_some_and(|n| n.iter().any(|d| d["value"] == X))
    });
    eprintln!("{X}: the third organisation's signal to crowd's member's bouncer: {} ms", got.as_millis());
    let capi = edge.crowd(&["decisions", "list", "--origin", "CAPI", "-o", "json"]);
    assert!(capi.contains(X) && capi.contains(Y), "crowd's member holds both as community decisions: {capi}");
    assert!(t.elapsed() < Duration::from_secs(15));
    let explain = hub.json(&["explain", X]);
    assert_eq!(explain["listed"], true, "{explain}");
    assert_eq!(explain["organisations"], 3, "crowdsec's, orgC's and orgD's reports: {explain}");

    // What crowdsec says it did with the central API, and nothing went wrong there.
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    for said in [
        "capi metrics: metrics sent successfully",
        "crowdsecurity/community-blocklist : added 1 entries",
        "Signal push: ",
    ] {
        assert!(log.contains(said), "`{said}` not in crowdsec's log:\n{}", show());
    }
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=error") || l.contains("level=fatal") || l.contains("level=warn"))
        .filter(|l| l.to_ascii_lowercase().contains("capi") || l.contains("apic") || l.contains("signal"))
        .collect();
    assert!(errors.is_empty(), "central API errors in crowdsec's log:\n{}\n{}", errors.join("\n"), show());
    eprintln!("total {} ms", started.elapsed().as_millis());
}
