//! Fleet enforcement: one Local API host and two edges, each in network namespaces built here
//! (documentation addresses only). The API namespace holds a bridge (198.51.100.1/24) with a
//! veth to each edge's server namespace; each edge runs `crowd enforce` with XDP on its own
//! protected interface. A ban made on the API host must drop the attacker's packets on both
//! edges (the delay is printed); its deletion must let them through again; and an edge that
//! loses the API resyncs when it comes back, picking up what changed meanwhile. Each edge
//! reports its usage metrics every second; the packets it dropped reach the API's store. Privileged.
use std::{
    collections::HashMap,
    net::IpAddr,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crowd_tests::{
    Killed, PinDir, banned, crowd_bin,
    netns::{Link, Netns, ip},
    unique, wait_for,
};

struct Edge {
    link: Link,
    pins: PinDir,
    _enforce: Option<Killed>,
}

const API: &str = "198.51.100.1:8080";
const ATTACKER: &str = "192.0.2.66";

fn start_api(api_ns: &Netns, state: &std::path::Path) -> Killed {
    let child = api_ns
        .command(crowd_bin())
        .args(["api", "--listen", API, "--state-dir"])
        .arg(state)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let probe = format!("exec 3<>/dev/tcp/{}/{}", "198.51.100.1", 8080);
    wait_for("the API to listen", Duration::from_secs(10), POLL, || {
        api_ns.run("bash", &["-c", &probe]).status.success()
    });
    Killed(child)
}

/// How often the tests look again.
const POLL: Duration = Duration::from_micros(500);

/// What the edges' usage reports showed, by bouncer name: the most packets of origin `manual`
/// one window dropped, and the largest `dropped_total`.
type Seen = Arc<Mutex<HashMap<String, (f64, f64)>>>;

/// Reads the API's stored usage reports every 20 ms until `stop` (each report replaces the
/// last, so a window with drops is seen only until the next one).
fn watch_usage(state: PathBuf, stop: Arc<AtomicBool>) -> Seen {
    let seen = Seen::default();
    let out = seen.clone();
    std::thread::spawn(move || {
        let mut store = crowd::store::Store::open_at(&crowd::store::Location::new(&state, None)).unwrap();
        while !stop.load(Ordering::Relaxed) {
            for r in store.usage().unwrap_or_default() {
                let Ok(body) = serde_json::from_str::<serde_json::Value>(&r.body) else { continue };
                if r.r#type != "crowd-enforce" {
                    continue;
                }
                let items = body["metrics"][0]["items"].as_array().cloned().unwrap_or_default();
                let value = |name: &str, origin: Option<&str>| {
                    items
                        .iter()
                        .filter(|i| i["name"] == name && origin.is_none_or(|o| i["labels"]["origin"] == o))
                        .filter_map(|i| i["value"].as_f64())
                        .sum::<f64>()
                };
                let (dropped, total) = (value("dropped", Some("manual")), value("dropped_total", None));
                let mut s = seen.lock().unwrap();
                let e = s.entry(r.name).or_default();
                *e = (e.0.max(dropped), e.1.max(total));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    out
}

#[test]
fn a_ban_on_the_api_host_drops_on_every_edge() {
    crowd_tests::require_root();
    let tag = unique("fl");
    let api_ns = Netns::new(&format!("{tag}a"));
    api_ns.ip(&["link", "add", "br0", "type", "bridge"]);
    api_ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "br0"]);
    api_ns.ip(&["link", "set", "br0", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("api");
    let crowd = |args: &[&str]| crowd_tests::crowd_on_store(&state, args);
    let key: serde_json::Value = serde_json::from_str(&crowd(&["bouncers", "add", "edges", "-o", "json"])).unwrap();
    let key = key["api_key"].as_str().unwrap().to_owned();
    let api = start_api(&api_ns, &state);
    let stop_watching = Arc::new(AtomicBool::new(false));
    let usage = watch_usage(state.clone(), stop_watching.clone());

    let mut edges = Vec::new();
    for i in 0..2u8 {
        let link = Link::new(&format!("{tag}{i}"));
        let (up, down) = (format!("{tag}{i}u"), format!("{tag}{i}d"));
        ip(&[
            "link",
            "add",
            &up,
            "netns",
            &api_ns.name,
            "type",
            "veth",
            "peer",
            "name",
            &down,
            "netns",
            &link.server.name,
        ]);
        api_ns.ip(&["link", "set", &up, "master", "br0", "up"]);
        link.server.ip(&["addr", "add", &format!("198.51.100.{}/24", 10 + i), "dev", &down]);
        link.server.ip(&["link", "set", &down, "up"]);
        let pins = PinDir::new();
        let child = link
            .server
            .command(crowd_bin())
            .arg("--pin-dir")
            .arg(pins.path())
            .args(["enforce", "--iface", &link.server_if, "--max-bans", "4096", "--max-ranges", "1024"])
            .args(["--max-allow", "1024", "--lapi", &format!("http://{API}"), "--key", &key])
            .args(["--usage-metrics-interval", "1s"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        edges.push(Edge { link, pins, _enforce: Some(Killed(child)) });
    }
    // Both edges in sync (one key from two addresses: two bouncer rows).
    wait_for("both edges to pull", Duration::from_secs(30), POLL, || {
        let v: serde_json::Value = serde_json::from_str(&crowd(&["bouncers", "list", "-o", "json"])).unwrap();
        v.as_array().unwrap().iter().filter(|b| b["last_pull"].is_i64()).count() == 2
    });
    for e in &edges {
        assert!(e.link.ping(ATTACKER), "the attacker passes before any ban");
    }

    let attacker: IpAddr = ATTACKER.parse().unwrap();
    let t0 = Instant::now();
    crowd(&["decisions", "add", ATTACKER, "--duration", "1h", "--reason", "fleet test"]);
    let cli = t0.elapsed();
    let mut delays = Vec::new();
    for (i, e) in edges.iter().enumerate() {
        wait_for(&format!("the ban on edge {i}"), Duration::from_secs(5), POLL, || banned(&e.pins.settings, attacker));
        delays.push(t0.elapsed());
    }
    eprintln!(
        "ban made on the API host → in both edges' maps: {:?} / {:?} (the CLI itself took {:?})",
        delays[0], delays[1], cli
    );
    for (i, e) in edges.iter().enumerate() {
        assert!(!e.link.ping(ATTACKER), "edge {i} still answers the banned attacker");
        assert!(e.link.ping("192.0.2.3"), "edge {i} drops an innocent source");
    }
    // Each edge's next usage report counts the attacker's dropped ping, under its bouncer row.
    wait_for("both edges' usage reports of the drops", Duration::from_secs(10), POLL, || {
        let s = usage.lock().unwrap();
        s.len() == 2 && s.values().all(|(dropped, total)| *dropped >= 1.0 && *total >= 1.0)
    });
    stop_watching.store(true, Ordering::Relaxed);
    eprintln!("usage reports: {:?}", usage.lock().unwrap());

    crowd(&["decisions", "delete", ATTACKER]);
    for (i, e) in edges.iter().enumerate() {
        wait_for(&format!("the unban on edge {i}"), Duration::from_secs(5), POLL, || {
            !banned(&e.pins.settings, attacker)
        });
        assert!(e.link.ping(ATTACKER), "edge {i}: the attacker passes after the deletion");
    }

    // The API goes away; a ban and an unban happen meanwhile; the edges catch up on return.
    crowd(&["decisions", "add", "192.0.2.3", "--duration", "1h"]);
    for e in &edges {
        wait_for("192.0.2.3 banned", Duration::from_secs(5), POLL, || {
            banned(&e.pins.settings, "192.0.2.3".parse().unwrap())
        });
    }
    drop(api);
    crowd(&["decisions", "delete", "192.0.2.3"]);
    crowd(&["decisions", "add", ATTACKER, "--duration", "1h"]);
    std::thread::sleep(Duration::from_millis(300));
    for e in &edges {
        assert!(banned(&e.pins.settings, "192.0.2.3".parse().unwrap()), "bans in hand stay while the API is away");
    }
    let _api = start_api(&api_ns, &state);
    for (i, e) in edges.iter().enumerate() {
        wait_for(&format!("edge {i} to resync"), Duration::from_secs(15), POLL, || {
            banned(&e.pins.settings, attacker) && !banned(&e.pins.settings, "192.0.2.3".parse().unwrap())
        });
    }
}

#[test]
fn an_edge_authenticates_with_a_client_certificate_over_tls() {
    crowd_tests::require_root();
    let link = Link::new(&unique("ft"));
    let pins = PinDir::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crowd_tests::lapi::make_ca(d, "ca");
    crowd_tests::lapi::issue(
        d,
        "ca",
        "server",
        "/CN=localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    crowd_tests::lapi::issue(d, "ca", "edge", "/CN=edge1/OU=bouncer-ou", "extendedKeyUsage=clientAuth\n");
    let p = |f: &str| d.join(f).to_str().unwrap().to_owned();
    let state = d.join("api");
    let _api = Killed(
        link.server
            .command(crowd_bin())
            .args(["api", "--listen", "127.0.0.1:8443", "--tls-cert", &p("server.pem"), "--tls-key", &p("server.key")])
            .args(["--tls-client-ca", &p("ca.pem"), "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the TLS API to listen", Duration::from_secs(10), POLL, || {
        link.server.run("bash", &["-c", "exec 3<>/dev/tcp/127.0.0.1/8443"]).status.success()
    });
    let _edge = Killed(
        link.server
            .command(crowd_bin())
            .arg("--pin-dir")
            .arg(pins.path())
            .args([
                "enforce",
                "--iface",
                &link.server_if,
                "--max-bans",
                "4096",
                "--max-ranges",
                "1024",
                "--max-allow",
                "1024",
            ])
            .args(["--lapi", "https://localhost:8443", "--ca-cert", &p("ca.pem"), "--cert", &p("edge.pem")])
            .args(["--cert-key", &p("edge.key")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let crowd = |args: &[&str]| crowd_tests::crowd_on_store(&state, args);
    wait_for("the edge's first pull over TLS", Duration::from_secs(30), POLL, || {
        let v: serde_json::Value = serde_json::from_str(&crowd(&["bouncers", "list", "-o", "json"])).unwrap();
        v.as_array().unwrap().iter().any(|b| b["name"] == "edge1@127.0.0.1" && b["last_pull"].is_i64())
    });
    assert!(link.ping(ATTACKER));
    crowd(&["decisions", "add", ATTACKER, "--duration", "1h"]);
    let attacker: IpAddr = ATTACKER.parse().unwrap();
    let t = wait_for("the ban over TLS", Duration::from_secs(5), POLL, || banned(&pins.settings, attacker));
    eprintln!("ban → edge map over TLS with a client certificate: {t:?}");
    assert!(!link.ping(ATTACKER), "the banned attacker still gets answers");
    assert!(link.ping("192.0.2.3"));
}
