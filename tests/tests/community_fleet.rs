//! Many instances, one crowd: a community server and four `crowd run` daemons, each in network
//! namespaces built here (documentation addresses only). The server's namespace holds a bridge
//! (198.51.100.1/24) with a veth to each daemon's namespace (198.51.100.10-13); each daemon has
//! XDP on its own protected interface facing an attacker namespace (192.0.2.0/24), follows an
//! auth.log of its own and is a member of the community (its own organisation). The attacker
//! brute-forces three of them (lines written to their logs); the fourth, which never saw it,
//! must drop its packets at XDP once the third report is in. The delay from the third log line
//! to the fourth daemon's drop is printed (CrowdSec's members: up to 2 h). Privileged.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crowd_tests::{
    Killed, PinDir, banned, crowd_bin,
    netns::{Link, Netns, ip},
    unique, wait_for,
};

const HUB: &str = "198.51.100.1:8090";
const ATTACKER: &str = "192.0.2.66";
const POLL: Duration = Duration::from_millis(20);

/// Three organisations; the members share one /24 here, which the score counts once (trust 1/3
/// for new organisations), so the score threshold is lowered to one term.
const CONFIG: &str = "consensus:
  quorum_orgs: 3
  quorum_prefixes: 1
  quorum_asns: 1
  warmup: 0
  warmup_signals: 0
  warmup_days: 0
  list_score: 0.3
";

struct Edge {
    link: Link,
    pins: PinDir,
    log: PathBuf,
    _daemon: Killed,
}

fn append(path: &Path, ip: &str, n: usize) {
    use std::io::Write;
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S");
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for i in 0..n {
        writeln!(f, "{stamp} edge sshd[{}]: Failed password for root from {ip} port {} ssh2", 100 + i, 40000 + i)
            .unwrap();
    }
}

fn hub_cli(state: &Path, args: &[&str]) -> String {
    let out = Command::new(crowd_bin()).args(["community", "--state-dir"]).arg(state).args(args).output().unwrap();
    assert!(out.status.success(), "crowd community {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_attacker_seen_by_three_members_is_dropped_by_the_fourth() {
    crowd_tests::require_root();
    let tag = unique("cf");
    let hub_ns = Netns::new(&format!("{tag}h"));
    hub_ns.ip(&["link", "add", "br0", "type", "bridge"]);
    hub_ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "br0"]);
    hub_ns.ip(&["link", "set", "br0", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let hub_state = dir.path().join("hub");
    std::fs::create_dir_all(&hub_state).unwrap();
    std::fs::write(hub_state.join("community.yaml"), CONFIG).unwrap();
    let hub = hub_ns
        .command(crowd_bin())
        .args(["community", "--state-dir"])
        .arg(&hub_state)
        .args(["serve", "--listen", HUB])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _hub = Killed(hub);
    let probe = "exec 3<>/dev/tcp/198.51.100.1/8090";
    wait_for("the community server to listen", Duration::from_secs(20), POLL, || {
        hub_ns.run("bash", &["-c", probe]).status.success()
    });

    let mut edges = Vec::new();
    for i in 0..4u8 {
        let link = Link::new(&format!("{tag}{i}"));
        let (up, down) = (format!("{tag}{i}u"), format!("{tag}{i}d"));
        ip(&[
            "link",
            "add",
            &up,
            "netns",
            &hub_ns.name,
            "type",
            "veth",
            "peer",
            "name",
            &down,
            "netns",
            &link.server.name,
        ]);
        hub_ns.ip(&["link", "set", &up, "master", "br0", "up"]);
        link.server.ip(&["addr", "add", &format!("198.51.100.{}/24", 10 + i), "dev", &down]);
        link.server.ip(&["link", "set", &down, "up"]);
        let state = dir.path().join(format!("edge{i}"));
        std::fs::create_dir_all(&state).unwrap();
        let (machine, org) = (format!("edge{i}"), format!("org{i}"));
        hub_cli(&hub_state, &["machines", "add", &machine, "--org", &org, "--password", "edge-password-123"]);
        // Operator-given credentials, written by `register` from the edge's own namespace.
        let out = link
            .server
            .command(crowd_bin())
            .args(["community", "--state-dir"])
            .arg(&state)
            .args(["register", "--url", &format!("http://{HUB}/"), "--name", &machine, "--password"])
            .arg("edge-password-123")
            .output()
            .unwrap();
        assert!(out.status.success(), "register edge {i}: {}", String::from_utf8_lossy(&out.stderr));
        let log = state.join("auth.log");
        std::fs::write(&log, "").unwrap();
        let pins = PinDir::new();
        let daemon = link
            .server
            .command(crowd_bin())
            .arg("--pin-dir")
            .arg(pins.path())
            .args(["run", "--iface", &link.server_if, "--max-bans", "4096", "--state-dir"])
            .arg(&state)
            .arg("--watch")
            .arg(format!("{}=syslog", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let attached = pins.path().join("links").join(&link.server_if);
        wait_for("the daemon to attach", Duration::from_secs(30), POLL, || attached.exists());
        edges.push(Edge { link, pins, log, _daemon: Killed(daemon) });
    }
    // Every member logged in and pulled once.
    wait_for("every member to pull", Duration::from_secs(30), Duration::from_millis(200), || {
        let v: serde_json::Value =
            serde_json::from_str(&hub_cli(&hub_state, &["-o", "json", "machines", "list"])).unwrap();
        v.as_array().unwrap().iter().filter(|m| m["last_pull"].is_i64()).count() == 4
    });
    for (i, e) in edges.iter().enumerate() {
        assert!(e.link.ping(ATTACKER), "edge {i} answers the attacker before any attack");
    }
    let attacker: IpAddr = ATTACKER.parse().unwrap();
    append(&edges[0].log, ATTACKER, 8);
    append(&edges[1].log, ATTACKER, 8);
    for (i, e) in edges.iter().take(2).enumerate() {
        wait_for(&format!("edge {i} to ban"), Duration::from_secs(10), POLL, || banned(&e.pins.settings, attacker));
    }
    assert!(!banned(&edges[3].pins.settings, attacker), "two reports are below the quorum");
    let t0 = Instant::now();
    append(&edges[2].log, ATTACKER, 8);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !banned(&edges[3].pins.settings, attacker) {
        if Instant::now() > deadline {
            let explain = hub_cli(&hub_state, &["-o", "json", "explain", ATTACKER]);
            let orgs: Vec<String> =
                (0..4).map(|i| hub_cli(&hub_state, &["-o", "json", "list", "--org", &format!("org{i}")])).collect();
            let status: Vec<String> = (0..4)
                .map(|i| {
                    let out = Command::new(crowd_bin())
                        .args(["community", "-o", "json", "--state-dir"])
                        .arg(dir.path().join(format!("edge{i}")))
                        .arg("status")
                        .output()
                        .unwrap();
                    String::from_utf8_lossy(&out.stdout).into_owned()
                })
                .collect();
            panic!("the fourth edge never banned: explain {explain}\norganisation lists {orgs:?}\nmembers {status:?}");
        }
        std::thread::sleep(POLL);
    }
    let in_map = t0.elapsed();
    assert!(!edges[3].link.ping(ATTACKER), "the fourth edge still answers the attacker");
    let dropped = t0.elapsed();
    eprintln!(
        "third member's log line → the fourth member's ban map: {} ms (dropped, ping checked: {} ms)",
        in_map.as_millis(),
        dropped.as_millis()
    );
    assert!(edges[3].link.ping("192.0.2.3"), "the fourth edge drops an innocent source");
    // The fourth edge's map says where the ban came from.
    let out = Command::new(crowd_bin())
        .arg("--pin-dir")
        .arg(edges[3].pins.path())
        .args(["map", "get", ATTACKER, "-o", "json"])
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["exact"]["origin"], "community", "{got}");
    let list = hub_cli(&hub_state, &["-o", "json", "list"]);
    assert!(list.contains(ATTACKER) && !list.contains("198.51.100."), "{list}");
    assert!(in_map < Duration::from_secs(10), "propagation took {in_map:?}");
}
