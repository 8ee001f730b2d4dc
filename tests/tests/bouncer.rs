//! A real client no one here wrote: Debian's `crowdsec-firewall-bouncer` (nftables mode), run
//! inside a network namespace of its own (its nftables tables live and die with it) against
//! `crowd api` on that namespace's loopback. A decision added with `crowd decisions add` must
//! appear in the bouncer's nftables set, and its deletion must remove it. Privileged.
use std::{process::Stdio, time::Duration};

use crowd_tests::{Killed, crowd_bin, netns::Netns, require_root, unique, wait_for};

const BOUNCER: &str = "/usr/bin/crowdsec-firewall-bouncer";

fn set_has(ns: &Netns, family: &str, table: &str, set: &str, ip: &str) -> bool {
    let out = ns.run("nft", &["list", "set", family, table, set]);
    String::from_utf8_lossy(&out.stdout).contains(ip)
}

/// How often the tests look again.
const POLL: Duration = Duration::from_millis(50);

#[test]
fn crowdsec_firewall_bouncer_follows_crowd_decisions() {
    require_root();
    assert!(
        std::path::Path::new(BOUNCER).exists(),
        "{BOUNCER} is missing: `cargo xtask setup` installs Debian's crowdsec-firewall-bouncer"
    );
    let ns = Netns::new(&unique("cfb"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let crowd = |args: &[&str]| crowd_tests::crowd_on_store(&state, args);
    let key: serde_json::Value = serde_json::from_str(&crowd(&["bouncers", "add", "firewall", "-o", "json"])).unwrap();
    let key = key["api_key"].as_str().unwrap().to_owned();

    let _api = Killed(
        ns.command(crowd_bin())
            .args(["api", "--listen", "127.0.0.1:8080", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("crowd api to listen", Duration::from_secs(10), POLL, || {
        ns.run("bash", &["-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]).status.success()
    });

    let cfg = dir.path().join("bouncer.yaml");
    std::fs::write(
        &cfg,
        format!(
            "mode: nftables\nupdate_frequency: 200ms\ndaemonize: false\nlog_mode: file\nlog_dir: {logs}\nlog_level: debug\n\
             api_url: http://127.0.0.1:8080/\napi_key: {key}\ninsecure_skip_verify: false\ndisable_ipv6: false\n\
             deny_action: DROP\ndeny_log: false\nsupported_decisions_types:\n  - ban\n\
             blacklists_ipv4: crowdsec-blacklists\nblacklists_ipv6: crowdsec6-blacklists\n\
             nftables:\n  ipv4:\n    enabled: true\n    set-only: false\n    table: crowdsec\n    chain: crowdsec-chain\n\
             \x20 ipv6:\n    enabled: true\n    set-only: false\n    table: crowdsec6\n    chain: crowdsec6-chain\n\
             prometheus:\n  enabled: false\n  listen_addr: 127.0.0.1\n  listen_port: 60601\n",
            logs = dir.path().display()
        ),
    )
    .unwrap();
    let _bouncer =
        Killed(ns.command(BOUNCER).arg("-c").arg(&cfg).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let log = dir.path().join("crowdsec-firewall-bouncer.log");
    let show_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Let it make its start-up pull first, so the decision below travels as a delta.
    wait_for("the bouncer's first pull", Duration::from_secs(20), POLL, || {
        let list: serde_json::Value = serde_json::from_str(&crowd(&["bouncers", "list", "-o", "json"])).unwrap();
        list[0]["last_pull"].is_i64()
    });
    crowd(&["decisions", "add", "192.0.2.77", "--duration", "1h"]);
    crowd(&["decisions", "add", "2001:db8::77", "--duration", "1h"]);
    let t = wait_for("192.0.2.77 in the bouncer's nftables set", Duration::from_secs(20), POLL, || {
        set_has(&ns, "ip", "crowdsec", "crowdsec-blacklists", "192.0.2.77")
    });
    eprintln!("decision to nftables set: {} ms", t.as_millis());
    wait_for("2001:db8::77 in the IPv6 set", Duration::from_secs(5), POLL, || {
        set_has(&ns, "ip6", "crowdsec6", "crowdsec6-blacklists", "2001:db8::77")
    });
    // The bouncer identified itself.
    let list: serde_json::Value = serde_json::from_str(&crowd(&["bouncers", "list", "-o", "json"])).unwrap();
    assert_eq!(list[0]["type"], "crowdsec-firewall-bouncer", "{list}\n{}", show_log());
    assert_eq!(list[0]["ip_address"], "127.0.0.1");

    crowd(&["decisions", "delete", "192.0.2.77"]);
    wait_for("192.0.2.77 to leave the set", Duration::from_secs(20), POLL, || {
        !set_has(&ns, "ip", "crowdsec", "crowdsec-blacklists", "192.0.2.77")
    });
    assert!(set_has(&ns, "ip6", "crowdsec6", "crowdsec6-blacklists", "2001:db8::77"), "the other one stays");
}
