//! HTTP contract tests of the Local API against CrowdSec's wire contract: a real `crowd api`
//! process on loopback, driven by an HTTP client (unprivileged). Cases follow CrowdSec's own
//! functional tests: an address inside a range, IPv6 ranges, `null` for nothing, expired
//! decisions in `deleted`, two bouncers with separate delta state, one key from two addresses.
//! Every case runs twice: on SQLite and on a PostgreSQL database of its own (the same schema
//! and queries through the store's two backends).
use crowd_tests::lapi::Api;

/// One `#[test]` per backend for each case.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        $(mod $case {
            #[test]
            fn sqlite() {
                super::$case(&crowd_tests::lapi::Api::start());
            }
            #[test]
            fn postgres() {
                super::$case(&crowd_tests::lapi::Api::start_pg());
            }
        })*
    };
}

on_both_backends!(
    query_mode_matches_addresses_ranges_and_answers_null,
    keys_are_checked_and_stored_hashed,
    stream_startup_deltas_deleted_and_separate_bouncers,
    dedup_sends_the_longest_decision,
    one_key_from_two_addresses_gets_two_rows_and_two_cursors,
    machines_register_log_in_and_push_alerts_through_profiles,
    bad_input_gets_a_clear_4xx_and_stores_nothing,
    usage_metrics_are_checked_and_kept,
    big_deltas_arrive_whole,
    full_pulls_share_one_read_gzip_for_who_asks_and_cursors_move_when_all_is_sent,
    alerts_are_served_as_cscli_reads_them,
);
use serde_json::{Value, json};

fn values(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(|d| d["value"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn query_mode_matches_addresses_ranges_and_answers_null(api: &Api) {
    let key = api.bouncer("fw");
    api.crowd(&["decisions", "add", "192.0.2.7", "--duration", "1h"]);
    api.crowd(&["decisions", "add", "198.51.100.0/24", "--duration", "2d"]);
    api.crowd(&["decisions", "add", "2001:db8:aa::/48", "--duration", "1h"]);

    let a = api.get("/v1/decisions?ip=198.51.100.77", &key);
    assert_eq!(a.status, 200);
    assert!(a.content_type.starts_with("application/json"), "{}", a.content_type);
    let d = a.json();
    assert_eq!(values(&d), ["198.51.100.0/24"]);
    let one = &d[0];
    assert_eq!(one["scope"], "Range");
    assert_eq!(one["type"], "ban");
    assert_eq!(one["origin"], "cscli");
    let dur = one["duration"].as_str().unwrap();
    assert!(dur.starts_with("47h59m") || dur == "48h0m0s", "remaining time, no day unit: {dur}");
    assert!(one.get("until").is_none(), "until is not sent to bouncers");
    // Field order follows CrowdSec's Go struct.
    assert!(a.body.find("\"duration\"") < a.body.find("\"id\"") && a.body.find("\"type\"") < a.body.find("\"value\""));

    assert_eq!(values(&api.get("/v1/decisions?ip=2001:db8:aa:1::9", &key).json()), ["2001:db8:aa::/48"]);
    assert_eq!(values(&api.get("/v1/decisions?ip=192.0.2.7", &key).json()), ["192.0.2.7"]);
    // Nothing: the literal null.
    let a = api.get("/v1/decisions?ip=203.0.113.9", &key);
    assert_eq!((a.status, a.body.as_str()), (200, "null"));
    // Unknown parameters are ignored; scope and range filters work.
    assert_eq!(values(&api.get("/v1/decisions?scope=range&whatever=1", &key).json()).len(), 2);
    assert_eq!(values(&api.get("/v1/decisions?range=192.0.2.0/24&contains=false", &key).json()), ["192.0.2.7"]);
    assert_eq!(api.get("/v1/decisions?origins=crowdsec", &key).body, "null");
    assert_eq!(values(&api.get("/v1/decisions?origins=cscli&scenarios_containing=MANUAL", &key).json()).len(), 3);
    // Bad addresses are a clear 400; SQL-looking values are data.
    let a = api.get("/v1/decisions?ip=1.2.3.4'%20OR%201=1--", &key);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.json()["message"].as_str().unwrap().contains("not an IP address"));
    assert_eq!(api.get("/v1/decisions?value=x'%3BDROP%20TABLE%20decisions--", &key).body, "null");
    assert_eq!(values(&api.get("/v1/decisions", &key).json()).len(), 3, "still there");
    // HEAD answers 200 with no body.
    let a = api.send("HEAD", "/v1/decisions", &[("X-Api-Key", &key)], None);
    assert_eq!((a.status, a.body.as_str()), (200, ""));
}

fn keys_are_checked_and_stored_hashed(api: &Api) {
    let key = api.bouncer("fw");
    for bad in [None, Some("nope"), Some("")] {
        let h: Vec<(&str, &str)> = bad.map(|k| vec![("X-Api-Key", k)]).unwrap_or_default();
        let a = api.send("GET", "/v1/decisions", &h, None);
        assert_eq!(a.status, 403);
        assert_eq!(a.json(), json!({"message": "access forbidden"}));
        let a = api.send("GET", "/v1/decisions/stream?startup=true", &h, None);
        assert_eq!(a.status, 403);
    }
    assert_eq!(api.get("/v1/decisions", &key).status, 200);
    let stored = api.stored_bouncers();
    assert!(stored.contains("fw"), "the bouncer's row is where we look");
    assert!(!stored.contains(&key), "the key itself is never stored");
    api.crowd(&["bouncers", "delete", "fw"]);
    assert_eq!(api.get("/v1/decisions", &key).status, 403, "a deleted bouncer's key stops working");
    let a = api.send("GET", "/v1/nothing-here", &[], None);
    assert_eq!(a.status, 404);
    let a = api.send("PUT", "/v1/decisions", &[("X-Api-Key", &key)], None);
    assert_eq!(a.status, 405);
}

fn stream_startup_deltas_deleted_and_separate_bouncers(api: &Api) {
    let (k1, k2) = (api.bouncer("fw1"), api.bouncer("fw2"));
    api.crowd(&["decisions", "add", "192.0.2.1", "--duration", "1h"]);
    // Long enough to outlive the next pull on a loaded machine, short enough to wait out.
    api.crowd(&["decisions", "add", "192.0.2.2", "--duration", "3s"]);

    let s = api.get("/v1/decisions/stream?startup=true", &k1).json();
    assert_eq!(values(&s["new"]), ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(s["deleted"], json!([]));
    // Nothing new: empty lists, not null.
    let a = api.get("/v1/decisions/stream", &k1);
    assert_eq!(a.json(), json!({"new": [], "deleted": []}));

    api.crowd(&["decisions", "add", "192.0.2.3", "--duration", "1h"]);
    api.crowd(&["decisions", "delete", "192.0.2.1"]);
    std::thread::sleep(std::time::Duration::from_millis(3100)); // 192.0.2.2 expires
    let s = api.get("/v1/decisions/stream", &k1).json();
    assert_eq!(values(&s["new"]), ["192.0.2.3"]);
    assert_eq!(values(&s["deleted"]), ["192.0.2.1", "192.0.2.2"], "deleted and expired");
    let d = s["deleted"][0]["duration"].as_str().unwrap();
    assert!(d.starts_with('-') || d == "0s", "ended decisions have no time left: {d}");

    // fw2 never pulled: its first pull is a full one, whatever fw1 did.
    let s = api.get("/v1/decisions/stream?startup=false", &k2).json();
    assert_eq!(values(&s["new"]), ["192.0.2.3"]);
    // And a startup pull after deltas is full again.
    let s = api.get("/v1/decisions/stream?startup=true", &k1).json();
    assert_eq!(values(&s["new"]), ["192.0.2.3"]);
    assert!(values(&s["deleted"]).contains(&"192.0.2.1".to_owned()));
    // Scopes default to ip,range; others only when asked.
    api.crowd(&["decisions", "add", "192.0.2.0/28", "--duration", "1h"]);
    let s = api.get("/v1/decisions/stream?scopes=ip", &k1).json();
    assert_eq!(s["new"], json!([]), "a range is not in scope ip: {s}");
}

fn dedup_sends_the_longest_decision(api: &Api) {
    let key = api.bouncer("fw");
    api.crowd(&["decisions", "add", "192.0.2.5", "--duration", "1h"]);
    api.crowd(&["decisions", "add", "192.0.2.5", "--duration", "5h"]);
    api.crowd(&["decisions", "add", "192.0.2.5", "--duration", "2h"]);
    let s = api.get("/v1/decisions/stream?startup=true", &key).json();
    assert_eq!(s["new"].as_array().unwrap().len(), 1, "{s}");
    assert!(s["new"][0]["duration"].as_str().unwrap().starts_with("4h59m") || s["new"][0]["duration"] == "5h0m0s");
    // Query mode lists all three.
    assert_eq!(api.get("/v1/decisions?ip=192.0.2.5", &key).json().as_array().unwrap().len(), 3);
}

fn one_key_from_two_addresses_gets_two_rows_and_two_cursors(api: &Api) {
    let key = api.bouncer("shared");
    api.crowd(&["decisions", "add", "192.0.2.9", "--duration", "1h"]);
    let req = format!(
        "GET /v1/decisions/stream?startup=true HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\nUser-Agent: crowdsec-firewall-bouncer/v0.0.25\r\nConnection: close\r\n\r\n"
    );
    assert!(api.raw_from("127.0.0.1", &req).contains("192.0.2.9"));
    assert!(api.raw_from("127.0.0.2", &req).contains("192.0.2.9"));
    let list: Value = serde_json::from_str(&api.crowd(&["bouncers", "list", "-o", "json"])).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["shared", "shared@127.0.0.2"]);
    assert_eq!(list[0]["type"], "crowdsec-firewall-bouncer");
    assert_eq!(list[0]["version"], "v0.0.25");
    assert!(list[1]["last_pull"].is_i64());
    // Deleting the bouncer removes the rows its key made.
    api.crowd(&["bouncers", "delete", "shared"]);
    let list: Value = serde_json::from_str(&api.crowd(&["bouncers", "list", "-o", "json"])).unwrap();
    assert_eq!(list, json!([]));
}

fn machines_register_log_in_and_push_alerts_through_profiles(api: &Api) {
    let key = api.bouncer("fw");
    // Registration, then login refused until validated.
    let reg = r#"{"machine_id":"agent1","password":"pw-agent-1"}"#;
    assert_eq!(api.send("POST", "/v1/watchers", &[], Some(reg)).status, 201);
    assert_eq!(api.send("POST", "/v1/watchers", &[], Some(reg)).status, 403, "taken");
    let login = r#"{"machine_id":"agent1","password":"pw-agent-1","scenarios":["crowdsecurity/ssh-bf"]}"#;
    assert_eq!(api.send("POST", "/v1/watchers/login", &[], Some(login)).status, 401);
    api.crowd(&["machines", "validate", "agent1"]);
    let bad = r#"{"machine_id":"agent1","password":"wrong"}"#;
    assert_eq!(api.send("POST", "/v1/watchers/login", &[], Some(bad)).status, 401);
    let a = api.send("POST", "/v1/watchers/login", &[], Some(login));
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["code"], 200);
    assert!(v["expire"].as_str().unwrap().ends_with('Z'));
    let token = v["token"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    assert_eq!(api.send("GET", "/v1/heartbeat", &h, None).status, 200);

    // An alert without decisions goes through the default profile: ban 4h on the Ip.
    let alert = crowd_tests::lapi::ssh_bf_alert;
    let a = api.send("POST", "/v1/alerts", &h, Some(&alert("192.0.2.50", Value::Null)));
    assert_eq!(a.status, 201, "{}", a.body);
    let ids = a.json();
    assert!(ids[0].as_str().unwrap().parse::<i64>().is_ok(), "ids are strings: {ids}");
    let d = api.get("/v1/decisions?ip=192.0.2.50", &key).json();
    assert_eq!(d[0]["scenario"], "crowdsecurity/ssh-bf");
    assert_eq!(d[0]["origin"], "crowdsec");
    assert!(d[0]["duration"].as_str().unwrap().starts_with("3h59m") || d[0]["duration"] == "4h0m0s");

    // An alert carrying decisions keeps them.
    let ds = json!([{"duration": "30m", "origin": "cscli", "scenario": "manual", "scope": "Range", "type": "ban", "value": "203.0.113.0/24"}]);
    assert_eq!(api.send("POST", "/v1/alerts", &h, Some(&alert("203.0.113.0/24", ds))).status, 201);
    assert_eq!(values(&api.get("/v1/decisions?ip=203.0.113.200", &key).json()), ["203.0.113.0/24"]);

    // Our own address is never banned, whatever an agent says.
    let a = api.send("POST", "/v1/alerts", &h, Some(&alert("127.0.0.1", Value::Null)));
    assert_eq!(a.status, 201);
    assert_eq!(api.get("/v1/decisions?ip=127.0.0.1", &key).body, "null");

    // Alerts are searchable, one by one, with their decisions.
    // As CrowdSec: `scenario` matches the alerts' decisions (the carried one is `manual`, and our
    // own address got none).
    let list = api.send("GET", "/v1/alerts?scenario=crowdsecurity/ssh-bf", &h, None).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(api.send("GET", "/v1/alerts", &h, None).json().as_array().unwrap().len(), 3);
    let id = ids[0].as_str().unwrap();
    let one = api.send("GET", &format!("/v1/alerts/{id}"), &h, None).json();
    assert_eq!(one["source"]["value"], "192.0.2.50");
    assert_eq!(one["machine_id"], "agent1");
    assert_eq!(one["decisions"][0]["value"], "192.0.2.50");
    assert_eq!(api.send("GET", "/v1/alerts/999999", &h, None).status, 404);
    let with = api.send("GET", "/v1/alerts?has_active_decision=true", &h, None).json();
    assert_eq!(with.as_array().unwrap().len(), 2);

    // Deleting decisions by filter answers CrowdSec's count.
    let a = api.send("DELETE", "/v1/decisions?ip=192.0.2.50", &h, None);
    assert_eq!(a.json(), json!({"nbDeleted": "1"}));
    assert_eq!(api.get("/v1/decisions?ip=192.0.2.50", &key).body, "null");
    let a = api.send("DELETE", &format!("/v1/alerts/{id}"), &h, None);
    assert_eq!(a.json(), json!({"nbDeleted": "1"}));

    // Machines' routes refuse bouncer keys and forged or missing tokens.
    assert_eq!(api.send("GET", "/v1/alerts", &[("X-Api-Key", &key)], None).status, 401);
    let forged = format!("Bearer {}x", &token[..token.len() - 1]);
    assert_eq!(api.send("GET", "/v1/alerts", &[("Authorization", &forged)], None).status, 401);
    let other = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6ImFnZW50MSIsImV4cCI6NDEwMjQ0NDgwMCwib3JpZ19pYXQiOjB9.c2lnbmF0dXJl";
    assert_eq!(api.send("GET", "/v1/alerts", &[("Authorization", other)], None).status, 401);
    let machines: Value = serde_json::from_str(&api.crowd(&["machines", "list", "-o", "json"])).unwrap();
    assert_eq!(machines[0]["scenarios"], "crowdsecurity/ssh-bf");
}

fn bad_input_gets_a_clear_4xx_and_stores_nothing(api: &Api) {
    let key = api.bouncer("fw");
    let token = api.machine("agent");
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    let count = || api.get("/v1/decisions", &key).body;

    let a = api.send("POST", "/v1/alerts", &h, Some("[{not json"));
    assert_eq!(a.status, 400);
    assert!(a.json()["message"].as_str().unwrap().contains("invalid JSON"), "{}", a.body);
    let a = api.send("POST", "/v1/alerts", &[h[0], ("Content-Type", "text/plain")], Some("[]"));
    assert_eq!(a.status, 415, "{}", a.body);
    let missing = json!([{"scenario": "x"}]).to_string();
    assert_eq!(api.send("POST", "/v1/alerts", &h, Some(&missing)).status, 400);
    // A batch with one bad decision stores nothing, not even the good alert before it.
    let good = json!({
        "capacity": 1, "events": [], "events_count": 1, "leakspeed": "1s", "message": "m", "scenario": "s",
        "scenario_hash": "", "scenario_version": "", "simulated": false, "start_at": "", "stop_at": "",
        "source": {"scope": "Ip", "value": "192.0.2.1"},
        "decisions": [{"duration": "1h", "scope": "Ip", "type": "ban", "value": "192.0.2.1"}]
    });
    let mut bad = good.clone();
    bad["decisions"][0]["value"] = json!("192.0.2.300");
    let a = api.send("POST", "/v1/alerts", &h, Some(&json!([good, bad]).to_string()));
    assert_eq!(a.status, 400);
    assert!(a.body.contains("alert 1"), "{}", a.body);
    let mut bad_dur = good.clone();
    bad_dur["decisions"][0]["duration"] = json!("forever");
    assert_eq!(api.send("POST", "/v1/alerts", &h, Some(&json!([bad_dur]).to_string())).status, 400);
    assert_eq!(count(), "null", "nothing stored");
    // Huge bodies: over the unauthenticated limit (2 MiB).
    let huge = format!(r#"{{"machine_id":"{}","password":"x"}}"#, "a".repeat(3 << 20));
    // (The server may answer 413 and close before the client has written it all.)
    if let Ok(a) = api.try_send("POST", "/v1/watchers", &[], Some(&huge)) {
        assert_eq!(a.status, 413, "{}", a.body);
    }
    let machines: Value = serde_json::from_str(&api.crowd(&["machines", "list", "-o", "json"])).unwrap();
    assert_eq!(machines.as_array().unwrap().len(), 1, "the huge registration stored nothing");
    let a = api.send("POST", "/v1/watchers", &[], Some(r#"{"machine_id":"x","password":"y","extra":1}"#));
    assert_eq!(a.status, 400, "unknown fields: {}", a.body);
    // Expired-looking, malformed tokens.
    assert_eq!(api.send("GET", "/v1/heartbeat", &[("Authorization", "Bearer a.b.c")], None).status, 401);
    assert_eq!(api.send("GET", "/v1/heartbeat", &[], None).status, 401);
    // And the server still serves.
    assert_eq!(api.send("GET", "/health", &[], None).status, 200);
    assert_eq!(api.send("POST", "/v1/alerts", &h, Some(&json!([good]).to_string())).status, 201);
    assert_eq!(values(&api.get("/v1/decisions", &key).json()), ["192.0.2.1"]);
}

fn usage_metrics_are_checked_and_kept(api: &Api) {
    let key = api.bouncer("fw");
    let usage = || {
        let loc = crowd::store::Location::new(&api.state, api.db.as_deref());
        crowd::store::Store::open_at(&loc).expect("open the store").usage().expect("usage rows")
    };
    // The firewall bouncer's report (go-cs-bouncer's shape), claiming another bouncer's name.
    let body = json!({"remediation_components": [{
        "name": "someone-else", "type": "crowdsec-firewall-bouncer", "version": "v0.0.31",
        "os": {"name": "debian", "version": "12"}, "feature_flags": [], "utc_startup_timestamp": 1_707_399_316,
        "metrics": [{"meta": {"utc_now_timestamp": 1_707_400_216, "window_size_seconds": 900}, "items": [
            {"name": "dropped", "unit": "packet", "value": 23, "labels": {"ip_type": "ipv4", "origin": "CAPI"}},
            {"name": "dropped", "unit": "byte", "value": 1034, "labels": {"ip_type": "ipv4", "origin": "CAPI"}},
            {"name": "active_decisions", "unit": "ip", "value": 500, "labels": {"ip_type": "ipv4", "origin": "CAPI"}},
            {"name": "processed", "unit": "packet", "value": 4000, "labels": {"ip_type": "ipv4"}}]}]}],
        "log_processors": []});
    let a = api.send("POST", "/v1/usage-metrics", &[("X-Api-Key", &key)], Some(&body.to_string()));
    assert_eq!(a.status, 201, "{}", a.body);
    let rows = usage();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!((r.kind.as_str(), r.name.as_str()), ("remediation_components", "fw"), "the key's bouncer");
    assert_eq!(r.r#type, "crowdsec-firewall-bouncer");
    assert!((r.received_at - chrono::Utc::now().timestamp()).abs() < 60);
    let kept: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(kept["name"], "fw", "the stored object names the authenticated bouncer");
    assert_eq!(kept["metrics"], body["remediation_components"][0]["metrics"]);

    // Bad bodies: a 400 naming the problem, nothing stored.
    let bad = [
        ("{not json", "invalid JSON"),
        (r#"{"remediation_components": {}}"#, "must be an array"),
        (
            r#"{"remediation_components": [{"version": "v1.0"}]}"#,
            "remediation_components.0.utc_startup_timestamp in body is required",
        ),
        (
            r#"{"remediation_components": [{"version": "v1", "utc_startup_timestamp": "2021-09-01T00:00:00Z"}]}"#,
            "invalid type",
        ),
        (r#"{"remediation_components": [], "log_processors": []}"#, "Missing remediation component data"),
    ];
    for (b, why) in bad {
        let a = api.send("POST", "/v1/usage-metrics", &[("X-Api-Key", &key)], Some(b));
        assert_eq!(a.status, 400, "{b}: {}", a.body);
        let m = a.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(m.contains(why), "{b}: {m}");
    }
    assert_eq!(usage(), rows, "bad reports change nothing");
    assert_eq!(api.send("POST", "/v1/usage-metrics", &[("X-Api-Key", "nope")], Some(&body.to_string())).status, 403);

    // An agent (JWT) reports as a log processor, under its machine id.
    let token = api.machine("agent1");
    let lp = json!({"log_processors": [{"version": "v1.6.3", "utc_startup_timestamp": 1_707_399_316,
        "hub_items": {}, "datasources": {"file": 2}, "metrics": []}]});
    let auth = format!("Bearer {token}");
    let a = api.send("POST", "/v1/usage-metrics", &[("Authorization", &auth)], Some(&lp.to_string()));
    assert_eq!(a.status, 201, "{}", a.body);
    let rows = usage();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].kind.as_str(), rows[0].name.as_str()), ("log_processors", "agent1"));
    let a = api.send("POST", "/v1/usage-metrics", &[("Authorization", &auth)], Some(&body.to_string()));
    assert_eq!((a.status, a.json()["message"].as_str()), (400, Some("Missing log processor data")));
}

/// A loopback webhook receiver: answers 500 to the first `fail` requests, 200 after; sends
/// each body it gets.
fn webhook(fail: usize) -> (u16, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let status = if n < fail { "500 Internal Server Error" } else { "200 OK" };
            let _ = write!(c, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (port, rx)
}

#[test]
fn profiles_notify_a_webhook_with_retries() {
    let (port, got) = webhook(1);
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles.yaml");
    std::fs::write(
        &profiles,
        "name: ban_and_tell\nfilters:\n  - Alert.Remediation == true && Alert.GetScope() == \"Ip\"\n\
         decisions:\n  - type: ban\n    duration: 2h\nnotifications:\n  - hook\non_success: break\n",
    )
    .unwrap();
    let notifications = dir.path().join("notifications");
    std::fs::create_dir(&notifications).unwrap();
    std::fs::write(
        notifications.join("http.yaml"),
        format!(
            "type: http\nname: hook\nlog_level: info\nformat: |\n  {{{{.|toJson}}}}\nurl: http://127.0.0.1:{port}/alerts\n\
             method: POST\nheaders:\n  Authorization: Bearer s3cret\nmax_retry: 3\ntimeout: 5s\n"
        ),
    )
    .unwrap();
    let api = Api::start_with(&[
        "--profiles",
        profiles.to_str().unwrap(),
        "--notifications",
        notifications.to_str().unwrap(),
    ]);
    let token = api.machine("agent");
    let auth = format!("Bearer {token}");
    let alert = json!([{
        "capacity": 5, "events": [], "events_count": 6, "leakspeed": "10s", "message": "m",
        "remediation": true, "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "", "scenario_version": "",
        "simulated": false, "source": {"scope": "Ip", "value": "192.0.2.61"}, "start_at": "", "stop_at": ""
    }]);
    let a = api.send("POST", "/v1/alerts", &[("Authorization", &auth)], Some(&alert.to_string()));
    assert_eq!(a.status, 201, "{}", a.body);
    let wait = std::time::Duration::from_secs(15);
    let (_, first) = got.recv_timeout(wait).expect("the webhook was called");
    let (head, second) = got.recv_timeout(wait).expect("a failed delivery is retried");
    assert_eq!(first, second, "the retry sends the same body");
    assert!(head.contains("authorization: Bearer s3cret") || head.contains("Authorization: Bearer s3cret"), "{head}");
    let v: Value = serde_json::from_str(&second).unwrap();
    assert_eq!(v[0]["scenario"], "crowdsecurity/ssh-bf");
    assert_eq!(v[0]["source"]["value"], "192.0.2.61");
    assert_eq!(v[0]["decisions"][0]["value"], "192.0.2.61");
    assert!(
        v[0]["decisions"][0]["duration"].as_str().unwrap().starts_with("1h59m")
            || v[0]["decisions"][0]["duration"] == "2h0m0s"
    );
    assert!(got.recv_timeout(std::time::Duration::from_millis(1500)).is_err(), "delivered once, not more");
}

#[test]
fn metrics_count_requests_and_decisions() {
    let port = crowd_tests::lapi::free_port();
    let api = Api::start_with(&["--metrics-listen", &format!("127.0.0.1:{port}")]);
    let key = api.bouncer("fw");
    api.crowd(&["decisions", "add", "192.0.2.70", "--duration", "1h"]);
    assert_eq!(api.get("/v1/decisions", &key).status, 200);
    assert_eq!(api.get("/v1/decisions", "wrong").status, 403);
    let out = std::process::Command::new(crowd_tests::crowd_bin())
        .args(["metrics", "--url", &format!("http://127.0.0.1:{port}/metrics"), "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str, labels: &str| {
        m.as_array().unwrap().iter().find(|r| r["name"] == name && r["labels"] == labels).map(|r| r["value"].clone())
    };
    assert_eq!(
        find("crowd_lapi_route_requests_total", r#"route="/v1/decisions",method="GET",code="200""#),
        Some(json!("1"))
    );
    assert_eq!(
        find("crowd_lapi_route_requests_total", r#"route="/v1/decisions",method="GET",code="403""#),
        Some(json!("1"))
    );
    assert_eq!(find("crowd_active_decisions", r#"origin="cscli",action="ban""#), Some(json!("1")), "{m}");
}

#[test]
fn gzip_request_bodies_are_accepted() {
    use std::io::Write;
    let api = Api::start();
    let key = api.bouncer("fw");
    let token = api.machine("agent");
    let alert = json!([{
        "capacity": 1, "events": [], "events_count": 1, "leakspeed": "1s", "message": "m", "scenario": "s",
        "scenario_hash": "", "scenario_version": "", "simulated": false, "start_at": "", "stop_at": "",
        "source": {"scope": "Ip", "value": "192.0.2.90"},
        "decisions": [{"duration": "1h", "scope": "Ip", "type": "ban", "value": "192.0.2.90"}]
    }])
    .to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(alert.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let req = format!(
        "POST /v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut raw = req.into_bytes();
    raw.extend_from_slice(&body);
    let answer = api.raw_bytes_from("127.0.0.1", &raw);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(values(&api.get("/v1/decisions", &key).json()), ["192.0.2.90"]);
}

/// Deltas far over the 64 KiB write chunk: 3,000 new decisions, then 3,000 deleted.
fn big_deltas_arrive_whole(api: &Api) {
    let key = api.bouncer("fw");
    assert_eq!(api.get("/v1/decisions/stream?startup=true", &key).json()["new"], json!([]));
    let list: String = (0..3000u32).map(|i| format!("{}\n", std::net::Ipv4Addr::from(0xC633_6400 + i))).collect();
    let file = api.state.join("big.txt");
    std::fs::write(&file, list).unwrap();
    api.crowd(&["decisions", "import", "-i", file.to_str().unwrap(), "--duration", "1h"]);
    let a = api.get("/v1/decisions/stream", &key);
    assert!(a.body.len() > 200_000, "a big answer: {} bytes", a.body.len());
    let s = a.json();
    assert_eq!(s["new"].as_array().map(Vec::len), Some(3000));
    api.crowd(&["decisions", "delete", "--all"]);
    let s = api.get("/v1/decisions/stream", &key).json();
    assert_eq!(s["deleted"].as_array().map(Vec::len), Some(3000));
    assert_eq!(s["new"], json!([]));
}

/// A full pull by hand: the response's headers (lower-cased) and its body, de-chunked.
fn raw_pull(api: &Api, key: &str, gzip: bool) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api.addr).unwrap();
    let enc = if gzip { "Accept-Encoding: gzip\r\n" } else { "" };
    write!(s, "GET /v1/decisions/stream?startup=true HTTP/1.1\r\nHost: x\r\nX-Api-Key: {key}\r\n{enc}Connection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut rest = &raw[split + 4..];
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
        rest = &rest[eol + 2 + n + 2..];
    }
    (head, body)
}

/// A fleet's simultaneous full pulls are served from one read of the store: the same list to
/// all, gzip-compressed for the clients that say they take it (Go's and ureq's do), plain for
/// the others; each bouncer's cursor moves once it has been sent everything, and a pull after
/// a change sees it (a finished read is not reused once the store moved).
fn full_pulls_share_one_read_gzip_for_who_asks_and_cursors_move_when_all_is_sent(api: &Api) {
    let list: String = (0..3000u32).map(|i| format!("{}\n", std::net::Ipv4Addr::from(0xC633_6400 + i))).collect();
    let file = api.state.join("big.txt");
    std::fs::write(&file, list).unwrap();
    api.crowd(&["decisions", "import", "-i", file.to_str().unwrap(), "--duration", "1h"]);
    let keys: Vec<String> = (0..6).map(|i| api.bouncer(&format!("fw{i}"))).collect();
    let answers: Vec<(String, Vec<u8>)> = std::thread::scope(|sc| {
        let handles: Vec<_> =
            keys.iter().enumerate().map(|(i, k)| sc.spawn(move || raw_pull(api, k, i % 2 == 0))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut lists = Vec::new();
    for (i, (head, body)) in answers.iter().enumerate() {
        let json: Vec<u8> = if i % 2 == 0 {
            assert!(head.contains("content-encoding: gzip"), "asked for gzip: {head}");
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
            assert!(out.len() > 3 * body.len(), "compressed: {} bytes for {}", body.len(), out.len());
            out
        } else {
            assert!(!head.contains("content-encoding"), "did not ask for gzip: {head}");
            body.clone()
        };
        let v: Value = serde_json::from_slice(&json).unwrap_or_else(|e| panic!("pull {i}: {e}"));
        assert_eq!(v["new"].as_array().map(Vec::len), Some(3000), "pull {i}");
        lists.push(values(&v["new"]));
    }
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "every puller gets the same list");
    for k in &keys {
        assert_eq!(api.get("/v1/decisions/stream", k).json(), json!({"new": [], "deleted": []}), "cursor moved");
    }
    // A change after the shared read: the next full pull has it.
    api.crowd(&["decisions", "add", "203.0.113.77", "--duration", "1h"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let late = api.bouncer("late");
    let s = api.get("/v1/decisions/stream?startup=true", &late).json();
    assert_eq!(s["new"].as_array().map(Vec::len), Some(3001), "a full pull after a change sees it");
}

/// What Debian's `cscli` 1.4.6 sends and dereferences: a login with `"scenarios": null`, the
/// `simulated` of every decision inside an alert, `decision_type`/`origin`/`ip` filters on the
/// alerts' decisions, and Go's `time.Time.String()` for `start_at`/`stop_at` (CrowdSec's
/// `FormatOneAlert`).
fn alerts_are_served_as_cscli_reads_them(api: &Api) {
    let token = api.machine("agent1");
    let null_login = r#"{"machine_id":"agent1","password":"s3cret-pw","scenarios":null}"#;
    let a = api.send("POST", "/v1/watchers/login", &[], Some(null_login));
    assert_eq!(a.status, 200, "a login with null scenarios: {}", a.body);
    let machines: Value = serde_json::from_str(&api.crowd(&["machines", "list", "-o", "json"])).unwrap();
    assert_eq!(machines[0]["scenarios"], "crowdsecurity/ssh-bf", "a null list keeps the scenarios known");
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    let alert = |value: &str, scope: &str, kind: &str, origin: &str| {
        json!([{
            "capacity": 0, "events": [], "events_count": 1, "leakspeed": "0", "message": "manual", "remediation": true,
            "scenario": format!("manual '{kind}' from 'agent1'"), "scenario_hash": "", "scenario_version": "",
            "simulated": false, "source": {"scope": scope, "value": value},
            "start_at": "2026-11-28T09:50:32.025353849+01:00", "stop_at": "2026-11-28T09:50:33+01:00",
            "decisions": [{"duration": "4h", "origin": origin, "scenario": "manual", "scope": scope, "type": kind, "value": value}]
        }])
        .to_string()
    };
    for (v, scope, kind, origin) in [
        ("192.0.2.10", "Ip", "ban", "cscli"),
        ("192.0.2.11", "Ip", "captcha", "cscli"),
        ("203.0.113.0/24", "Range", "ban", "crowdsec"),
    ] {
        assert_eq!(api.send("POST", "/v1/alerts", &h, Some(&alert(v, scope, kind, origin))).status, 201);
    }
    let list = |q: &str| {
        let a = api.send("GET", &format!("/v1/alerts{q}"), &h, None);
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        let mut vs: Vec<String> =
            a.json().as_array().unwrap().iter().map(|x| x["source"]["value"].as_str().unwrap().to_owned()).collect();
        vs.sort();
        vs
    };
    assert_eq!(list("?decision_type=captcha"), ["192.0.2.11"]);
    assert_eq!(list("?decision_type=ban"), ["192.0.2.10", "203.0.113.0/24"]);
    assert_eq!(list("?origin=crowdsec"), ["203.0.113.0/24"]);
    assert_eq!(list("?ip=203.0.113.7"), ["203.0.113.0/24"], "an address inside a decision's range");
    assert_eq!(list("?range=192.0.2.0/24&contains=false"), ["192.0.2.10", "192.0.2.11"]);
    assert_eq!(list("?scenario=manual"), ["192.0.2.10", "192.0.2.11", "203.0.113.0/24"], "by the decisions' scenario");
    let all = api.send("GET", "/v1/alerts", &h, None).json();
    for a in all.as_array().unwrap() {
        assert_eq!(a["start_at"], "2026-11-28 08:50:32.025353849 +0000 UTC", "{a}");
        assert_eq!(a["stop_at"], "2026-11-28 08:50:33 +0000 UTC");
        let d = &a["decisions"][0];
        assert_eq!(d["simulated"], false, "cscli dereferences `simulated`: {d}");
        assert!(d["id"].as_i64().is_some());
    }
}

/// `crowd simulation enable` holds for alerts pushed to `crowd api`: their decisions are stored
/// simulated (listed with `simulated=true`, never served to bouncers as bans).
#[test]
fn the_api_honours_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    crowd_tests::crowd_on_store(&state, &["simulation", "enable"]);
    let api = Api::start_in(state, Some(dir), None);
    let key = api.bouncer("fw");
    let token = api.machine("agent1");
    let auth = format!("Bearer {token}");
    let alert = json!([{
        "capacity": 5, "events": [], "events_count": 6, "leakspeed": "10s", "message": "m", "remediation": true,
        "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "", "scenario_version": "", "simulated": false,
        "source": {"ip": "192.0.2.60", "scope": "Ip", "value": "192.0.2.60"},
        "start_at": "2026-11-28T09:50:32Z", "stop_at": "2026-11-28T09:50:33Z"
    }])
    .to_string();
    assert_eq!(api.send("POST", "/v1/alerts", &[("Authorization", &auth)], Some(&alert)).status, 201);
    assert_eq!(api.get("/v1/decisions?ip=192.0.2.60", &key).body, "null", "a simulated decision is not served");
    let sim = api.get("/v1/decisions?ip=192.0.2.60&simulated=true", &key).json();
    assert_eq!(sim[0]["simulated"], true, "{sim}");
}
