//! The grok library against the hub's own pattern files (`../shared/crowdsec-hub/patterns`):
//! the common patterns compile and capture as CrowdSec's do, and the hand-written syslog reader
//! gives exactly the regex's fields on every line of the hub's test logs, a generated auth.log
//! (`../shared/tools/genlogs.py`) and seeded mutations of them.
use std::{collections::HashMap, path::Path};

use crowd::engine::grok::{Grok, Patterns};

fn shared() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn hub_library() -> Patterns {
    let dir = shared().join("crowdsec-hub/patterns");
    let mut p = Patterns::with_base();
    for f in std::fs::read_dir(&dir).expect("the hub's patterns in ../shared").flatten() {
        p.add_text(&std::fs::read_to_string(f.path()).expect("pattern file"));
    }
    p
}

#[test]
fn the_hub_library_compiles_the_common_patterns() {
    let p = hub_library();
    assert!(p.len() > 200, "{} patterns", p.len());
    let g = p.compile("^%{SYSLOGLINE}", &HashMap::new()).unwrap();
    let c =
        g.captures("Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 192.0.2.176 port 53502").unwrap();
    let get = |k: &str| c.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("program"), Some("sshd"));
    assert_eq!(get("pid"), Some("16378"));
    assert_eq!(get("message"), Some("Invalid user pascal from 192.0.2.176 port 53502"));
    assert_eq!(get("timestamp"), Some("Feb 12 14:10:21"));
    // Other patterns keep the regex.
    assert!(!p.compile("^%{SYSLOGBASE} %{GREEDYDATA:message}", &HashMap::new()).unwrap().reads_syslog_by_hand());
}

fn lines() -> Vec<String> {
    let mut lines = Vec::new();
    for t in std::fs::read_dir(shared().join("crowdsec-hub/tests")).expect("hub tests").flatten() {
        for f in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "log") {
                let text = String::from_utf8_lossy(&std::fs::read(f.path()).unwrap_or_default()).into_owned();
                lines.extend(text.lines().map(str::to_owned));
            }
        }
    }
    // A generated auth.log (sshd, sudo, cron, systemd-logind lines).
    let dir = tempfile::tempdir().expect("tempdir");
    let st = std::process::Command::new("python3")
        .arg(shared().join("tools/genlogs.py"))
        .args(["--out-dir", dir.path().to_str().expect("utf-8"), "--lines", "20000", "--kind", "ssh", "--seed", "3"])
        .output()
        .expect("python3 and ../shared/tools/genlogs.py");
    assert!(st.status.success(), "genlogs: {}", String::from_utf8_lossy(&st.stderr));
    let auth = std::fs::read_to_string(dir.path().join("auth.log")).expect("auth.log");
    lines.extend(auth.lines().map(str::to_owned));
    let more = crowd::fuzzing::syslog_mutations(&lines, 100_000);
    lines.extend(more);
    lines
}

#[test]
fn the_syslog_reader_agrees_with_the_regex_on_the_hubs_logs() {
    let own = Patterns::with_base().compile("^%{SYSLOGLINE}", &HashMap::new()).expect("SYSLOGLINE");
    let hub: Grok = hub_library().compile("^%{SYSLOGLINE}", &HashMap::new()).expect("SYSLOGLINE");
    let lines = lines();
    for g in [hub, own] {
        assert!(g.reads_syslog_by_hand(), "the reader is on for SYSLOGLINE");
        let wrong: Vec<String> = lines.iter().filter_map(|l| g.reader_disagreement(l)).take(3).collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
        let read = lines.iter().filter(|l| g.captures(l).is_some()).count();
        assert!(read > lines.len() / 4, "read {read} of {}", lines.len());
    }
}
