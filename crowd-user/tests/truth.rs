//! Detection against ground truth: `../shared/tools/genlogs.py` writes a seeded sshd auth.log
//! with fast, slow and low-and-slow brute-forcers among benign users and background noise; the
//! embedded parsers and scenarios must ban every attacker and no benign source, also when a
//! flood of a million one-event sources is mixed in and detection holds only 64 MiB.
use std::{collections::BTreeMap, collections::HashSet, path::Path, process::Command};

use crowd::{
    config,
    detect::Detector,
    engine::{event::Line, profile::Profile},
};

#[test]
fn every_generated_ssh_attacker_is_banned_and_no_benign_source() {
    check("ssh", "auth.log", "syslog", 60_000);
}

#[test]
fn every_generated_http_scanner_is_banned_and_no_benign_visitor_or_crawler() {
    check("nginx", "access.log", "nginx", 60_000);
}

#[test]
fn every_attacker_is_still_banned_in_a_flood_of_a_million_one_event_sources_within_64_mib() {
    let flood = Flood { lines: 1_000_000, budget: 64 << 20 };
    let evicted = check_with("ssh", "auth.log", "syslog", 60_000, Some(flood));
    assert!(evicted > 0, "the budget was never reached: nothing evicted");
}

/// One-event sources mixed into the log (each a failed password from an address of its own,
/// stamped as the line before it) and the memory budget detection runs within.
#[derive(Clone, Copy)]
struct Flood {
    lines: usize,
    budget: usize,
}

fn check(kind: &str, file: &str, log_type: &str, lines: usize) {
    check_with(kind, file, log_type, lines, None);
}

/// Runs the check; returns the buckets evicted.
fn check_with(kind: &str, file: &str, log_type: &str, lines: usize, flood: Option<Flood>) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let genlogs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/genlogs.py");
    let st = Command::new("python3")
        .arg(&genlogs)
        .args([
            "--out-dir",
            dir.path().to_str().expect("utf-8"),
            "--lines",
            &lines.to_string(),
            "--kind",
            kind,
            "--seed",
            "7",
        ])
        .output()
        .expect("python3 and ../shared/tools/genlogs.py");
    assert!(st.status.success(), "genlogs: {}", String::from_utf8_lossy(&st.stderr));
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("{file}.truth.json"))).expect("truth"))
            .expect("json");
    let set = |k: &str| {
        truth[k].as_array().expect(k).iter().map(|v| v.as_str().expect("ip").to_owned()).collect::<HashSet<_>>()
    };
    let (attackers, benign) = (set("attackers"), set("benign"));
    let (pipeline, env, scenarios) = config::defaults::load().expect("embedded configuration");
    let mut d = Detector::new(pipeline, env, scenarios, Profile::default(), 2026);
    if let Some(f) = flood {
        d.set_memory_budget(f.budget);
    }
    let text = std::fs::read_to_string(dir.path().join(file)).expect("log");
    let labels = std::sync::Arc::new(BTreeMap::from([("type".to_owned(), log_type.to_owned())]));
    let mut banned = HashSet::new();
    let n = text.lines().count().max(1);
    let (mut flooded, mut peak) = (0usize, 0usize);
    for (i, raw) in text.lines().enumerate() {
        let line = Line { raw: raw.to_owned(), src: file.into(), module: "file", labels: labels.clone() };
        banned.extend(d.feed(line, 0.0).decisions().into_iter().map(|x| x.value));
        let Some(f) = flood else { continue };
        // 100.64.0.0/10 holds the flood's million addresses; the generator uses none of them.
        let stamp = raw.get(..15).unwrap_or_default();
        while flooded < f.lines * (i + 1) / n {
            let ip = std::net::Ipv4Addr::from(0x6440_0000 + u32::try_from(flooded).expect("small"));
            let raw = format!("{stamp} edge sshd[77]: Failed password for invalid user x from {ip} port 4242 ssh2");
            let line = Line { raw, src: file.into(), module: "file", labels: labels.clone() };
            banned.extend(d.feed(line, 0.0).decisions().into_iter().map(|x| x.value));
            flooded += 1;
        }
        peak = peak.max(d.state().bytes());
    }
    if let Some(f) = flood {
        assert!(peak <= f.budget, "detection state peaked at {peak} bytes for a budget of {}", f.budget);
    }
    banned.extend(d.finish().decisions().into_iter().map(|x| x.value));
    // A decision bans an address, or a range (an IPv6 /64) and every address inside it.
    let nets: Vec<ipnet::IpNet> = banned
        .iter()
        .filter_map(|v| v.parse().ok().or_else(|| v.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)))
        .collect();
    let is_banned = |ip: &String| ip.parse::<std::net::IpAddr>().is_ok_and(|a| nets.iter().any(|n| n.contains(&a)));
    let missed: Vec<_> = attackers.iter().filter(|a| !is_banned(a)).collect();
    let wrong: Vec<_> = benign.iter().filter(|b| is_banned(b)).collect();
    assert!(attackers.len() > 20, "the generator made attackers");
    assert!(missed.is_empty(), "missed {} of {} attackers: {missed:?}", missed.len(), attackers.len());
    assert!(wrong.is_empty(), "banned benign sources: {wrong:?}");
    d.state().evicted()
}
