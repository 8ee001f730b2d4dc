//! Detection against ground truth: `../shared/tools/genlogs.py` writes a seeded sshd auth.log
//! with fast, slow and low-and-slow brute-forcers among benign users and background noise; the
//! embedded parsers and scenarios must ban every attacker and no benign source.
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

fn check(kind: &str, file: &str, log_type: &str, lines: usize) {
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
    let text = std::fs::read_to_string(dir.path().join(file)).expect("log");
    let labels = std::sync::Arc::new(BTreeMap::from([("type".to_owned(), log_type.to_owned())]));
    let mut banned = HashSet::new();
    for raw in text.lines() {
        let line = Line { raw: raw.to_owned(), src: file.into(), module: "file", labels: labels.clone() };
        banned.extend(d.feed(line, 0.0).decisions().into_iter().map(|x| x.value));
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
}
