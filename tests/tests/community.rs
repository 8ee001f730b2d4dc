//! The community server's contract (`crowd community serve`) on loopback: registration with an
//! enrollment key, logins and their JWTs, signals (gzip, one bad item skipped), the quorum
//! over organisations, prefixes and ASNs (members' addresses come through a trusted proxy's
//! `X-Forwarded-For`, documentation ranges standing in for public addresses), canaries, the
//! operator allowlist, organisation lists inline (`/v2`) and as links (`/v3`). Every case runs
//! on SQLite and on a PostgreSQL database of its own.
use std::{
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crowd_tests::{Killed, crowd_bin, lapi::free_port, wait_for};
use serde_json::{Value, json};

struct Hub {
    addr: SocketAddr,
    state: PathBuf,
    db: Vec<String>,
    pg_name: Option<String>,
    _child: Killed,
    _dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self._child.0.kill();
        let _ = self._child.0.wait();
        if let Some(name) = &self.pg_name {
            let _ =
                crowd_tests::lapi::pg_admin().batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// One `#[test]` per store for each case.
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        $(mod $case {
            #[test]
            fn sqlite() {
                super::$case(&super::Hub::start(false));
            }
            #[test]
            fn postgres() {
                super::$case(&super::Hub::start(true));
            }
        })*
    };
}

on_both_stores!(
    registration_and_logins_follow_capi_and_tokens_carry_no_organisation,
    a_quorum_of_diverse_organisations_lists_an_attacker_and_nothing_less_does,
    an_organisation_shares_its_reports_at_once_inline_on_v2_and_as_a_link_on_v3,
);

const CONFIG: &str = "consensus:
  quorum_orgs: 3
  quorum_prefixes: 3
  quorum_asns: 2
  warmup: 0
  warmup_signals: 0
  warmup_days: 0
  list_score: 0.9
trusted_proxies: [127.0.0.0/8]
asns: {198.51.100.0/24: 64500, 203.0.113.0/24: 64501}
never: [192.0.2.250]
";

struct Answer {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Hub {
    fn start(pg: bool) -> Hub {
        Hub::start_with(pg, CONFIG)
    }

    fn start_with(pg: bool, config: &'static str) -> Hub {
        let pg_name = pg.then(|| crowd_tests::unique("crowd_cm_").to_lowercase());
        if let Some(name) = &pg_name {
            crowd_tests::lapi::pg_admin().batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        }
        let db: Vec<String> = pg_name
            .iter()
            .flat_map(|n| ["--db".to_owned(), format!("{}/{n}", crowd_tests::lapi::pg_server())])
            .collect();
        let mut hub = Hub::launch(db, config);
        hub.pg_name = pg_name;
        hub
    }

    /// Stops the server process (its database stays).
    fn stop(&mut self) {
        let _ = self._child.0.kill();
        let _ = self._child.0.wait();
    }

    /// Another server process on this one's PostgreSQL database.
    fn replica(&self) -> Hub {
        assert!(self.pg_name.is_some(), "replicas share a PostgreSQL database");
        Hub::launch(self.db.clone(), CONFIG)
    }

    fn launch(db: Vec<String>, config: &str) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_owned();
        std::fs::write(state.join("community.yaml"), config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Hub::spawn(&db, &state, addr);
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Hub { addr, state, db, pg_name: None, _child: Killed(child), _dir: dir, agent }
    }

    fn spawn(db: &[String], state: &std::path::Path, addr: SocketAddr) -> std::process::Child {
        let child = Command::new(crowd_bin())
            .args(db)
            .args(["community", "--state-dir"])
            .arg(state)
            .args(["serve", "--listen", &addr.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("crowd community serve");
        let t = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "the server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Starts the stopped server again, on the same address and store.
    fn resume(&mut self) {
        self._child = Killed(Hub::spawn(&self.db, &self.state, self.addr));
    }

    fn crowd(&self, args: &[&str]) -> String {
        let out = Command::new(crowd_bin())
            .args(&self.db)
            .args(["community", "--state-dir"])
            .arg(&self.state)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "crowd community {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Answer {
        self.try_send(method, path, headers, body).expect("request")
    }

    /// [`Hub::send`] with transport errors returned (a server may close the connection on a
    /// body it refuses before reading all of it).
    fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ureq::Error> {
        let mut req = ureq::http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            req = req.header("content-type", "application/json");
        }
        let mut resp = self.agent.run(req.body(body.unwrap_or_default()).unwrap())?;
        let headers =
            resp.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Ok(Answer { status: resp.status().as_u16(), body, headers })
    }

    /// Logs `machine` in from `from` (through the trusted proxy); the token.
    fn login(&self, v: &str, machine: &str, password: &str, from: &str) -> String {
        let body = json!({"machine_id": machine, "password": password, "scenarios": ["crowdsecurity/ssh-bf"]});
        let a = self.send(
            "POST",
            &format!("/{v}/watchers/login"),
            &[("X-Forwarded-For", from)],
            Some(body.to_string().into_bytes()),
        );
        assert_eq!(a.status, 200, "login {machine}: {}", a.body);
        let j = a.json();
        assert!(chrono::DateTime::parse_from_rfc3339(j["expire"].as_str().unwrap()).is_ok(), "RFC 3339 expire: {j}");
        j["token"].as_str().unwrap().to_owned()
    }

    fn signal(&self, v: &str, token: &str, items: &Value, gzip: bool) -> Answer {
        let auth = format!("Bearer {token}");
        let raw = items.to_string().into_bytes();
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&raw).unwrap();
            let body = enc.finish().unwrap();
            self.send(
                "POST",
                &format!("/{v}/signals"),
                &[("Authorization", &auth), ("Content-Encoding", "gzip")],
                Some(body),
            )
        } else {
            self.send("POST", &format!("/{v}/signals"), &[("Authorization", &auth)], Some(raw))
        }
    }

    fn pull(&self, v: &str, token: &str, startup: bool) -> Value {
        let auth = format!("Bearer {token}");
        let q = if startup { "?startup=true" } else { "" };
        let a = self.send("GET", &format!("/{v}/decisions/stream{q}"), &[("Authorization", &auth)], None);
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }
}

fn ssh_bf(ip: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    json!({"scenario": "crowdsecurity/ssh-bf", "scenario_hash": "abc", "scenario_version": "0.1", "scenario_trust": "certified",
           "message": "ssh-bf", "source": {"scope": "Ip", "value": ip, "ip": ip}, "start_at": now, "stop_at": now,
           "created_at": now, "machine_id": "local-agent-name"})
}

/// Values of a `/v2` list.
fn v2_values(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list.as_array().unwrap().iter().map(|d| d["value"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn registration_and_logins_follow_capi_and_tokens_carry_no_organisation(hub: &Hub) {
    let key = hub.crowd(&["-o", "json", "orgs", "add", "acme"]);
    let key: Value = serde_json::from_str(&key).unwrap();
    let key = key["enroll_key"].as_str().unwrap();
    let reg = |id: &str, k: &str| {
        let body = json!({"machine_id": id, "password": "a-long-password", "registration_token": k});
        hub.send("POST", "/v3/watchers", &[], Some(body.to_string().into_bytes()))
    };
    assert_eq!(reg("m1", key).status, 201);
    assert_eq!(reg("m1", key).status, 409, "a taken id");
    assert_eq!(reg("m2", "not-a-key").status, 403, "an unknown enrollment key");
    assert_eq!(reg("m3", "").status, 403, "registration is closed without a key");
    let a = hub.send(
        "POST",
        "/v2/watchers/login",
        &[],
        Some(br#"{"machine_id":"m1","password":"wrong","scenarios":[]}"#.to_vec()),
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["message"], "The machine_id or password is incorrect");
    let a = hub.send("POST", "/v2/watchers/login", &[], Some(b"{not json".to_vec()));
    assert_eq!(a.status, 400);
    let token = hub.login("v2", "m1", "a-long-password", "198.51.100.10");
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "m1");
    assert!(claims["exp"].is_u64(), "numeric exp: {claims}");
    assert!(claims.get("organization_id").is_none(), "no organization_id (CrowdSec would start PAPI): {claims}");
    // Forged and missing tokens.
    let forged = format!("{}x", &token[..token.len() - 1]);
    for auth in [format!("Bearer {forged}"), "Bearer ".to_owned(), String::new()] {
        let a = hub.send("GET", "/v3/decisions/stream", &[("Authorization", &auth)], None);
        assert_eq!(a.status, 401, "{auth:?}: {}", a.body);
    }
    // Metrics with and without the trailing slash, usage metrics, enrollment.
    let auth = format!("Bearer {token}");
    for p in ["/v2/metrics", "/v2/metrics/", "/v3/metrics/", "/v3/usage-metrics"] {
        let a = hub.send(
            "POST",
            p,
            &[("Authorization", &auth)],
            Some(br#"{"apil_version":"v1.4.6","machines":[],"bouncers":[]}"#.to_vec()),
        );
        assert!((200..300).contains(&a.status), "{p}: {} {}", a.status, a.body);
    }
    let enroll = |k: &str| {
        hub.send(
            "POST",
            "/v3/watchers/enroll",
            &[("Authorization", &auth)],
            Some(json!({"attachment_key": k, "name": "x", "tags": [], "overwrite": false}).to_string().into_bytes()),
        )
    };
    assert_eq!(enroll("nope").status, 403);
    assert_eq!(enroll(key).status, 200, "already in that organisation");
    let other: Value = serde_json::from_str(&hub.crowd(&["-o", "json", "orgs", "add", "other"])).unwrap();
    assert_eq!(enroll(other["enroll_key"].as_str().unwrap()).status, 201);
    let machines: Value = serde_json::from_str(&hub.crowd(&["-o", "json", "machines", "list"])).unwrap();
    assert_eq!(machines[0]["org"], "other");
    assert_eq!(machines[0]["egress_prefix"], "198.51.100.0/24", "only the prefix is kept");
    assert_eq!(machines[0]["asn"], 64500);
}

fn a_quorum_of_diverse_organisations_lists_an_attacker_and_nothing_less_does(hub: &Hub) {
    // Three honest organisations behind distinct /24s in two known ASNs, a Sybil organisation
    // of three machines behind one /24, and a framer.
    let members = [
        ("a1", "orgA", "198.51.100.10"),
        ("b1", "orgB", "203.0.113.20"),
        ("c1", "orgC", "192.0.2.30"),
        ("s1", "sybil", "192.0.2.91"),
        ("s2", "sybil", "192.0.2.92"),
        ("s3", "sybil", "192.0.2.93"),
        ("f1", "framer", "203.0.113.140"),
    ];
    let mut tokens = std::collections::HashMap::new();
    for (id, org, from) in members {
        hub.crowd(&["machines", "add", id, "--org", org, "--password", "pw-123456"]);
        tokens.insert(id, hub.login(if id.ends_with('1') { "v2" } else { "v3" }, id, "pw-123456", from));
    }
    hub.pull("v2", &tokens["s1"], true);
    // The Sybils frame a victim: one organisation, never listed. The framer reports the
    // operator's never-list and a member's own address: canaries.
    for s in ["s1", "s2", "s3"] {
        assert_eq!(hub.signal("v3", &tokens[s], &json!([ssh_bf("198.51.100.77")]), false).status, 200);
    }
    hub.signal("v2", &tokens["f1"], &json!([ssh_bf("192.0.2.250"), ssh_bf("198.51.100.10")]), false);
    // Two honest organisations: below quorum. One bad item in a batch is skipped, not the batch.
    let bad =
        json!({"scenario": "x", "source": {"scope": "Ip", "value": "999.1.1.1"}, "stop_at": "2026-01-01T00:00:00Z"});
    let user =
        json!({"scenario": "x", "source": {"scope": "username", "value": "root"}, "stop_at": "2026-01-01T00:00:00Z"});
    let a = hub.signal("v2", &tokens["a1"], &json!([ssh_bf("203.0.113.66"), bad, user, ssh_bf("10.0.0.1")]), true);
    assert_eq!((a.status, a.json()), (200, json!({"message": "OK"})));
    hub.signal("v2", &tokens["b1"], &json!([ssh_bf("203.0.113.66")]), false);
    std::thread::sleep(Duration::from_millis(600));
    let full = hub.pull("v2", &tokens["a1"], true);
    let capi: Vec<&Value> = full["new"].as_array().unwrap().iter().filter(|d| d["origin"] == "CAPI").collect();
    assert!(capi.is_empty(), "two organisations and a Sybil flood list nothing: {full}");
    assert_eq!(full["new"][0]["origin"], "lists", "orgA's own report is in its own list: {full}");
    let explain: Value = serde_json::from_str(&hub.crowd(&["-o", "json", "explain", "203.0.113.66"])).unwrap();
    assert_eq!((explain["listed"].as_bool(), explain["organisations"].as_u64()), (Some(false), Some(2)), "{explain}");
    // The third organisation: listed in the next delta of every member, v2 and v3.
    let t = Instant::now();
    hub.signal("v2", &tokens["c1"], &json!([ssh_bf("203.0.113.66")]), false);
    let capi = |d: &Value| -> Value {
        let keep = |k: &str| -> Vec<Value> {
            d[k].as_array().unwrap().iter().filter(|x| x["origin"] == "CAPI").cloned().collect()
        };
        json!({"new": keep("new"), "deleted": keep("deleted")})
    };
    let delta = loop {
        let d = capi(&hub.pull("v2", &tokens["s1"], false));
        if !d["new"].as_array().unwrap().is_empty() || t.elapsed() > Duration::from_secs(5) {
            break d;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = t.elapsed();
    eprintln!("K-th organisation's signal to the member's delta: {} ms", took.as_millis());
    assert_eq!(v2_values(&delta["new"]), ["203.0.113.66"], "{delta}");
    assert_eq!(delta["new"][0]["origin"], "CAPI");
    assert_eq!(delta["new"][0]["scope"], "Ip");
    assert_eq!(delta["new"][0]["type"], "ban");
    assert!(delta["new"][0]["duration"].as_str().unwrap().ends_with('s'), "a Go duration: {delta}");
    assert!(took < Duration::from_secs(2), "listed within a delta: {took:?}");
    let v3 = hub.pull("v3", &tokens["b1"], true);
    assert_eq!(v3["new"][0]["scenario"], "crowdsecurity/ssh-bf", "{v3}");
    assert_eq!(v3["new"][0]["scope"], "Ip");
    assert_eq!(v3["new"][0]["decisions"][0]["value"], "203.0.113.66");
    // Never listed: the canaries, the bogon, the Sybils' victim.
    let all = hub.crowd(&["-o", "json", "list"]);
    for never in ["198.51.100.10", "192.0.2.250", "10.0.0.1", "198.51.100.77"] {
        assert!(!all.contains(never), "{never} listed: {all}");
    }
    // The operator's allowlist withdraws it at the next delta.
    hub.crowd(&["allow", "add", "203.0.113.0/24", "--reason", "our partner"]);
    let t = Instant::now();
    let delta = loop {
        let d = capi(&hub.pull("v2", &tokens["s1"], false));
        if !d["deleted"].as_array().unwrap().is_empty() || t.elapsed() > Duration::from_secs(10) {
            break d;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(v2_values(&delta["deleted"]), ["203.0.113.66"], "{delta}");
    let metrics = hub.send("GET", "/metrics", &[], None).body;
    assert!(metrics.contains("crowd_community_signals_total{result=\"skipped\"} 2"), "{metrics}");
}

fn an_organisation_shares_its_reports_at_once_inline_on_v2_and_as_a_link_on_v3(hub: &Hub) {
    hub.crowd(&["machines", "add", "web1", "--org", "acme", "--password", "pw-123456"]);
    hub.crowd(&["machines", "add", "web2", "--org", "acme", "--password", "pw-123456"]);
    hub.crowd(&["machines", "add", "other", "--org", "zeta", "--password", "pw-123456"]);
    let t1 = hub.login("v2", "web1", "pw-123456", "198.51.100.10");
    let t2 = hub.login("v3", "web2", "pw-123456", "203.0.113.20");
    let t3 = hub.login("v2", "other", "pw-123456", "192.0.2.40");
    hub.pull("v2", &t1, true);
    hub.signal("v3", &t2, &json!([ssh_bf("203.0.113.77")]), false);
    std::thread::sleep(Duration::from_millis(500));
    let d = hub.pull("v2", &t1, false);
    assert_eq!(v2_values(&d["new"]), ["203.0.113.77"], "{d}");
    assert_eq!((d["new"][0]["origin"].as_str(), d["new"][0]["scenario"].as_str()), (Some("lists"), Some("org-acme")));
    assert_eq!(hub.pull("v2", &t3, true)["new"], json!([]), "not shared outside the organisation below quorum");
    // v3: the list is a link, fetched without credentials, with If-Modified-Since.
    let v3 = hub.pull("v3", &t2, true);
    let link = &v3["links"]["blocklists"][0];
    assert_eq!(
        (link["name"].as_str(), link["remediation"].as_str(), link["scope"].as_str()),
        (Some("org-acme"), Some("ban"), Some("ip"))
    );
    let url = link["url"].as_str().unwrap();
    let path = &url[url.find("/v3/").unwrap()..];
    let a = hub.send("GET", path, &[], None);
    assert_eq!((a.status, a.body.as_str()), (200, "203.0.113.77\n"));
    // Once the list's second has passed, the same date gets a 304.
    std::thread::sleep(Duration::from_millis(1100));
    let a = hub.send("GET", path, &[], None);
    let modified = a.header("last-modified").unwrap().to_owned();
    assert_eq!(hub.send("GET", path, &[("If-Modified-Since", &modified)], None).status, 304);
    // A change right after a fetch, within the same second, is never hidden by a 304 (HTTP
    // dates count whole seconds).
    for ip in ["203.0.113.78", "203.0.113.79"] {
        let before = hub.send("GET", path, &[], None).header("last-modified").unwrap().to_owned();
        hub.signal("v3", &t2, &json!([ssh_bf(ip)]), false);
        let t = Instant::now();
        let got = loop {
            let b = hub.send("GET", path, &[("If-Modified-Since", &before)], None);
            if b.status == 200 && b.body.contains(ip) {
                break b;
            }
            assert!(t.elapsed() < Duration::from_secs(3), "{ip} hidden behind {} for {before}", b.status);
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(got.body.contains("203.0.113.77"), "{}", got.body);
    }
    let forged = path.replace("token=", "token=0");
    assert_eq!(hub.send("GET", &forged, &[], None).status, 403);
}

/// Two server processes on one PostgreSQL database are replicas: a member may log in to either
/// and use its token on the other, signals sent to either count together, both serve the same
/// list, and when the publishing one (the leader) stops, the other takes over.
#[test]
fn two_servers_on_one_postgresql_are_replicas() {
    let mut first = Hub::start(true);
    let second = first.replica();
    std::thread::sleep(Duration::from_millis(1500));
    for (id, org) in [("a1", "orgA"), ("b1", "orgB"), ("c1", "orgC")] {
        first.crowd(&["machines", "add", id, "--org", org, "--password", "pw-123456"]);
    }
    let ta = first.login("v2", "a1", "pw-123456", "198.51.100.10");
    let tb = second.login("v2", "b1", "pw-123456", "203.0.113.20");
    let tc = first.login("v3", "c1", "pw-123456", "192.0.2.30");
    second.pull("v2", &ta, true);
    first.pull("v2", &tb, true);
    let listed = |hub: &Hub, token: &str, ip: &str| {
        let t = Instant::now();
        loop {
            let d = hub.pull("v2", token, false);
            let hit = d["new"].as_array().unwrap().iter().any(|x| x["origin"] == "CAPI" && x["value"] == ip);
            if hit {
                return t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{ip} not listed on {}: {d}", hub.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    first.signal("v2", &ta, &json!([ssh_bf("203.0.113.66")]), false);
    second.signal("v2", &tb, &json!([ssh_bf("203.0.113.66")]), false);
    second.signal("v3", &tc, &json!([ssh_bf("203.0.113.66")]), false);
    listed(&second, &ta, "203.0.113.66");
    listed(&first, &tb, "203.0.113.66");
    // The first server (the leader: it started first) stops; the second publishes.
    first.stop();
    for t in [&ta, &tb, &tc] {
        second.signal("v2", t, &json!([ssh_bf("203.0.113.67")]), false);
    }
    let took = listed(&second, &ta, "203.0.113.67");
    eprintln!("listed by the remaining replica {} ms after the leader stopped", took.as_millis());
}

/// Bad input gets a clear 4xx or a skipped item, and nothing else is lost: malformed and
/// non-array bodies, an oversized body, an expired token, items with private addresses or scopes
/// that are not shared.
#[test]
fn bad_input_gets_a_clear_4xx_or_a_skipped_item() {
    let hub = Hub::start_with(false, "token_ttl: 2s\nconsensus: {warmup: 0, warmup_signals: 0, warmup_days: 0}\n");
    hub.crowd(&["machines", "add", "m1", "--org", "acme", "--password", "pw-123456"]);
    let token = hub.login("v3", "m1", "pw-123456", "198.51.100.10");
    let auth = format!("Bearer {token}");
    let post = |body: Vec<u8>| hub.send("POST", "/v3/signals", &[("Authorization", &auth)], Some(body));
    let a = post(b"[{not json".to_vec());
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.json()["message"].as_str().unwrap().contains("invalid JSON"), "{}", a.body);
    assert_eq!(post(br#"{"scenario": "x"}"#.to_vec()).status, 400, "not an array");
    let big = format!("[{}]", vec![ssh_bf("203.0.113.5").to_string(); 80_000].join(","));
    assert!(big.len() > 16 << 20);
    match hub.try_send("POST", "/v3/signals", &[("Authorization", &auth)], Some(big.into_bytes())) {
        Ok(a) => assert_eq!(a.status, 413, "oversized: {}", a.body),
        Err(e) => eprintln!("oversized body refused by closing the connection: {e}"),
    }
    let items = json!([ssh_bf("10.1.2.3"), ssh_bf("127.0.0.1"), ssh_bf("203.0.113.5"),
                       {"scenario": "x", "source": {"scope": "Country", "value": "FR"}, "stop_at": "2026-01-01T00:00:00Z"}]);
    let a = post(items.to_string().into_bytes());
    assert_eq!(a.status, 200);
    let t = Instant::now();
    let metrics = loop {
        let m = hub.send("GET", "/metrics", &[], None).body;
        let done = m.contains("result=\"refused\"} 2") && m.contains("result=\"counted\"} 1");
        if done || t.elapsed() > Duration::from_secs(5) {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(metrics.contains("result=\"skipped\"} 1"), "the country item is skipped: {metrics}");
    assert!(metrics.contains("result=\"refused\"} 2"), "private and loopback refused: {metrics}");
    assert!(metrics.contains("result=\"counted\"} 1"), "the public one counts: {metrics}");
    // The organisation's list holds the public address only.
    let list = hub.crowd(&["-o", "json", "list", "--org", "acme"]);
    assert!(list.contains("203.0.113.5") && !list.contains("10.1.2.3") && !list.contains("127.0.0.1"), "{list}");
    std::thread::sleep(Duration::from_millis(3100));
    let a = hub.send("GET", "/v3/decisions/stream", &[("Authorization", &auth)], None);
    assert_eq!(a.status, 401, "an expired token: {}", a.body);
}

/// A temporary state directory registered (with `crowd community register`) as member `edge1`
/// of a new organisation `home`.
fn member_of_home(hub: &Hub) -> tempfile::TempDir {
    let key: Value = serde_json::from_str(&hub.crowd(&["-o", "json", "orgs", "add", "home"])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(crowd_bin())
        .args(["community", "--state-dir"])
        .arg(dir.path())
        .args(["register", "--url", &format!("http://{}", hub.addr), "--name", "edge1", "--enroll-key"])
        .arg(key["enroll_key"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "register: {}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// `crowd api` as a member (issue: crowd as a community member): registered with an
/// organisation's key, it shares an alert an agent pushed (within seconds, not CrowdSec's 10-30 s
/// tick) and stores what the community lists as `CAPI` decisions that its bouncers pull.
#[test]
fn a_local_api_registered_as_member_shares_alerts_and_serves_the_community_list() {
    let hub = Hub::start(false);
    let dir = member_of_home(&hub);
    let state = dir.path().to_owned();
    let creds = std::fs::read_to_string(state.join("online_api_credentials.yaml")).unwrap();
    assert!(creds.contains(&format!("url: http://{}/", hub.addr)) && creds.contains("login: edge1"), "{creds}");
    let metrics = format!("127.0.0.1:{}", crowd_tests::lapi::free_port());
    let api = crowd_tests::lapi::Api::start_in_with(state.clone(), Some(dir), &["--metrics-listen", &metrics]);
    let token = api.machine("agent1");
    let bouncer = api.bouncer("fw");
    api.get("/v1/decisions/stream?startup=true", &bouncer);
    // An agent's alert: shared within seconds.
    api.push_ssh_bf(&token, "203.0.113.90");
    let t = Instant::now();
    loop {
        if hub.crowd(&["-o", "json", "list", "--org", "home"]).contains("203.0.113.90") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the alert was not shared");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("alert pushed to the member's API to its organisation's list: {} ms", t.elapsed().as_millis());
    // Three organisations list an attacker: the member's bouncer gets it as a CAPI decision.
    let t = Instant::now();
    for (id, org, from) in
        [("a1", "orgA", "198.51.100.10"), ("b1", "orgB", "203.0.113.20"), ("c1", "orgC", "192.0.2.30")]
    {
        hub.crowd(&["machines", "add", id, "--org", org, "--password", "pw-123456"]);
        let tok = hub.login("v3", id, "pw-123456", from);
        hub.signal("v3", &tok, &json!([ssh_bf("198.51.100.200")]), false);
    }
    let t_listed = Instant::now();
    let got = loop {
        let s = api.get("/v1/decisions/stream", &bouncer).json();
        if let Some(d) = s["new"].as_array().unwrap().iter().find(|d| d["value"] == "198.51.100.200") {
            break d.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(15), "the community list did not reach the member");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("third organisation's signal to the member's bouncer: {} ms", t_listed.elapsed().as_millis());
    assert_eq!(got["origin"], "CAPI", "{got}");
    let capi = api.crowd(&["decisions", "list", "--origin", "capi", "-o", "json"]);
    assert!(capi.contains("198.51.100.200") && !capi.contains("203.0.113.90"), "{capi}");
    let status = Command::new(crowd_bin())
        .args(["community", "-o", "json", "--state-dir"])
        .arg(&state)
        .arg("status")
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["registered"], true, "{status}");
    assert!(status["signals"]["sent"].as_u64() >= Some(1), "{status}");
    assert!(status["entries"]["CAPI"].as_u64() >= Some(1), "{status}");
    // The member's metrics count community decisions per list: the consensus list, and its
    // organisation's list holding its own shared alert.
    let scrape = || {
        let mut r = ureq::get(&format!("http://{metrics}/metrics")).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    };
    let t = Instant::now();
    let text = loop {
        let text = scrape();
        if text.contains("crowd_community_list_entries{list=\"org-home\"} 1") {
            break text;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no org-home entry in the metrics:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("crowd_community_list_entries{list=\"community\"} 1\n"), "{text}");
}

/// A long-poll answer that changes nothing in the member's store (its organisation reporting an
/// address it already lists again) does not make it poll slowly: the next report still reaches
/// it within seconds. Before the server said that it holds deltas, the member took such an
/// answer for a server that cannot, and waited a minute (`--community-poll`) before asking again.
#[test]
fn a_pull_that_changes_nothing_keeps_the_member_long_polling() {
    let hub = Hub::start(false);
    let dir = member_of_home(&hub);
    let api = crowd_tests::lapi::Api::start_in_with(dir.path().to_owned(), Some(dir), &[]);
    hub.crowd(&["machines", "add", "h2", "--org", "home", "--password", "pw-123456"]);
    let tok = hub.login("v3", "h2", "pw-123456", "198.51.100.40");
    let listed = |ip: &str, within: Duration| {
        let t = Instant::now();
        loop {
            if api.crowd(&["decisions", "list", "--origin", "lists", "-o", "json"]).contains(ip) {
                return t.elapsed();
            }
            assert!(t.elapsed() < within, "{ip} did not reach the member within {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    hub.signal("v3", &tok, &json!([ssh_bf("203.0.113.91")]), false);
    listed("203.0.113.91", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    // The same report again: the list changes (a later end), the member's decisions do not.
    hub.signal("v3", &tok, &json!([ssh_bf("203.0.113.91")]), false);
    std::thread::sleep(Duration::from_secs(2));
    hub.signal("v3", &tok, &json!([ssh_bf("203.0.113.92")]), false);
    let took = listed("203.0.113.92", Duration::from_secs(10));
    eprintln!("organisation's report after an answer that changed nothing, to the member: {} ms", took.as_millis());
}

/// The member's outbox: alerts recorded while the server is down, and across a restart of the
/// member's API, reach the server when it is back, each exactly once.
#[test]
fn signals_made_while_the_server_is_down_arrive_once_it_is_back() {
    let mut hub = Hub::start(false);
    let dir = member_of_home(&hub);
    let state = dir.path().to_owned();
    let org_list = |hub: &Hub| hub.crowd(&["-o", "json", "list", "--org", "home"]);
    let api = crowd_tests::lapi::Api::start_in(state.clone(), None, None);
    let token = api.machine("agent1");
    api.push_ssh_bf(&token, "203.0.113.101");
    let t = Instant::now();
    while !org_list(&hub).contains("203.0.113.101") {
        assert!(t.elapsed() < Duration::from_secs(10), "the first alert was not shared");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server goes away; two alerts, a restart of the member's API, a third alert.
    hub.stop();
    api.push_ssh_bf(&token, "203.0.113.102");
    api.push_ssh_bf(&token, "203.0.113.103");
    std::thread::sleep(Duration::from_millis(2500));
    drop(api);
    let api = crowd_tests::lapi::Api::start_in(state.clone(), Some(dir), None);
    let token = api.machine("agent2");
    api.push_ssh_bf(&token, "203.0.113.104");
    std::thread::sleep(Duration::from_millis(1500));
    hub.resume();
    let t = Instant::now();
    loop {
        let list = org_list(&hub);
        if ["203.0.113.102", "203.0.113.103", "203.0.113.104"].iter().all(|ip| list.contains(ip)) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "not every signal arrived: {list}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("the outbox drained {} ms after the server came back", t.elapsed().as_millis());
    // Exactly once: the restarted server took three signals, not the first again.
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = hub.send("GET", "/metrics", &[], None).body;
    assert!(metrics.contains("crowd_community_signals_total{result=\"accepted\"} 3\n"), "{metrics}");
}

/// A central API that answers badly (invalid addresses, bad durations, a 500, truncated JSON):
/// the member skips what does not check, keeps what does, and keeps pulling; its Local API
/// keeps serving. The server here is a stand-in written for the test.
#[test]
fn bad_server_answers_are_skipped_and_the_member_keeps_going() {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Set while the stand-in holds a slow answer.
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow_now = slow.clone();
    std::thread::spawn(move || {
        let mut deltas = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let expire = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
            let (status, answer) = if path.ends_with("/watchers/login") {
                (200, json!({"code": 200, "expire": expire, "token": "t"}).to_string())
            } else if path.contains("startup=true") {
                let new = json!([{"scenario": "s", "scope": "Ip", "decisions": [
                    {"value": "203.0.113.10", "duration": "4h"}, {"value": "203.0.113.999", "duration": "4h"},
                    {"value": "203.0.113.11", "duration": "four hours"}]},
                    {"scenario": "s", "scope": "ranGe", "decisions": [{"value": "198.51.100.0/24", "duration": "4h"}]}]);
                (200, json!({"new": new, "deleted": []}).to_string())
            } else if path.contains("decisions/stream") {
                deltas += 1;
                match deltas {
                    1 => (500, "{\"message\": \"oops\"}".to_owned()),
                    2 => {
                        // A slow answer, truncated at that.
                        slow_now.store(true, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_secs(3));
                        slow_now.store(false, std::sync::atomic::Ordering::SeqCst);
                        (200, "{\"new\": [{\"scenario\": \"s\", \"sco".to_owned())
                    }
                    3 => (200, json!({"new": [{"scenario": "s", "scope": "Ip", "decisions": [{"value": "203.0.113.12", "duration": "4h"}]}],
                                      "deleted": [{"scope": "Ip", "decisions": ["203.0.113.10", "not an address"]}]}).to_string()),
                    _ => (200, "{\"new\": [], \"deleted\": []}".to_owned()),
                }
            } else {
                (200, "{}".to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_owned();
    std::fs::write(state.join("online_api_credentials.yaml"), format!("url: http://{addr}/\nlogin: m\npassword: p\n"))
        .unwrap();
    let api = crowd_tests::lapi::Api::start_in_with(state, Some(dir), &["--community-poll", "1s"]);
    let key = api.bouncer("fw");
    // While the server is slow to answer, the member's API keeps serving what it has.
    wait_for("the slow answer", Duration::from_secs(30), Duration::from_millis(20), || {
        slow.load(std::sync::atomic::Ordering::SeqCst)
    });
    let t = Instant::now();
    let s = api.get("/v1/decisions/stream?startup=true", &key).json();
    assert!(t.elapsed() < Duration::from_secs(1), "the API waited on the community server: {:?}", t.elapsed());
    assert!(s["new"].as_array().unwrap().iter().any(|d| d["value"] == "203.0.113.10"), "{s}");
    let t = Instant::now();
    let capi = loop {
        let capi = api.crowd(&["decisions", "list", "--origin", "CAPI", "-o", "json"]);
        if capi.contains("203.0.113.12") || t.elapsed() > Duration::from_secs(30) {
            break capi;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(capi.contains("203.0.113.12") && capi.contains("198.51.100.0/24"), "{capi}");
    assert!(!capi.contains("203.0.113.10"), "deleted by the delta: {capi}");
    assert!(!capi.contains("203.0.113.999") && !capi.contains("203.0.113.11"), "{capi}");
    let s = api.get("/v1/decisions/stream", &key).json();
    assert!(s["new"].as_array().unwrap().iter().any(|d| d["value"] == "203.0.113.12"), "{s}");
    assert!(s["deleted"].as_array().unwrap().iter().any(|d| d["value"] == "203.0.113.10"), "{s}");
    // Counted: three values skipped (an invalid address, a bad duration, a bad deletion), two
    // pulls failed (the 500, the truncated answer).
    let out = Command::new(crowd_bin())
        .args(["community", "-o", "json", "--state-dir"])
        .arg(&api.state)
        .arg("status")
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pull"]["skipped_total"], 3, "{status}");
    assert_eq!(status["pull"]["errors_total"], 2, "{status}");
    assert_eq!(status["entries"]["by_list"]["community"], 2, "{status}");
}
