//! The CrowdSec hub's own tests (`../shared/crowdsec-hub/tests`), run through `crowd hubtest run`
//! and scored by `../shared/tools/hubtest-score` (the asserts CrowdSec's `cscli hubtest` checks):
//! the semantics crowd shares with CrowdSec, end to end, on every parser and scenario with a test.
//! Prints the score and each test that fails; fails below the score reached when this test was
//! written, and when a test that passed then fails.
use std::{path::Path, process::Command};

use crowd_tests::crowd_bin;

/// Tests that pass, each for a semantic of CrowdSec's the engine follows (date layouts without
/// weekday checks, undated events in replays, Go time methods, grok's field precedence and base
/// patterns, `ParseKVLax`, Go's sort order of the results, the XML helpers, `override_statics`),
/// with the least passing when this test was written. Those that fail here need data files the
/// hub downloads (GeoIP databases, CVE lists) or depend on CrowdSec's goroutine scheduling.
const MUST_PASS: [&str; 9] = [
    "baikal-bf",
    "proxmox-logs",
    "aws-nwo-login",
    "proxmox-iptables-logs",
    "unifi-cef",
    "authelia-bf",
    "windows-logs",
    "windows-bf",
    "cve-2023-23397",
];
const LEAST_PASSING: usize = 265;

#[test]
fn the_hubs_own_tests_pass_as_with_crowdsec() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let hub = shared.join("crowdsec-hub");
    let run = format!("{} hubtest run --hub {{hub}} --out {{out}} {{test}}", crowd_bin().display());
    let out = Command::new("python3")
        .arg(shared.join("tools/hubtest-score"))
        .arg("--tests")
        .arg(hub.join("tests"))
        .arg("--hub")
        .arg(&hub)
        .args(["--run", &run])
        .output()
        .expect("python3 runs the scorer");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the scorer: {}", String::from_utf8_lossy(&out.stderr));
    for line in text.lines().filter(|l| !l.starts_with("PASS")) {
        eprintln!("{line}");
    }
    let total = text.lines().last().unwrap_or_default();
    let passed: usize = total
        .strip_prefix("hub tests: ")
        .and_then(|t| t.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in the scorer's output:\n{text}"));
    for name in MUST_PASS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("PASS  {name} "))),
            "hub test {name} no longer passes:\n{text}"
        );
    }
    assert!(passed >= LEAST_PASSING, "{passed} hub tests pass, {LEAST_PASSING} did: {total}");
}
