//! `--config DIR` on an installed CrowdSec's configuration directory, laid out as Debian's
//! crowdsec 1.4.6 installs it: `config.yaml` (with `config.yaml.local` over it) naming the data
//! folder, `parsers/<stage>/*.yaml` and `scenarios/*.yaml` as symlinks into the hub (here
//! `../shared/crowdsec-hub`), patterns in `patterns/`, `simulation: off` in YAML 1.1. The same
//! files must detect the same attack as when they are loaded from the hub's own layout, and a
//! directory that yields nothing must say so.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use crowd::{engine::event::Line, rules};

fn hub() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/crowdsec-hub").canonicalize().expect("../shared hub")
}

const PARSERS: [(&str, &str); 4] = [
    ("s00-raw", "syslog-logs"),
    ("s01-parse", "sshd-logs"),
    ("s02-enrich", "dateparse-enrich"),
    ("s02-enrich", "whitelists"),
];
const SCENARIOS: [&str; 2] = ["ssh-bf", "ssh-slow-bf"];

/// A Debian-shaped `/etc/crowdsec` in `root/etc`, its data in `root/data`.
fn debian_layout(root: &Path) -> PathBuf {
    let (etc, data, hub) = (root.join("etc"), root.join("data"), hub());
    for (stage, name) in PARSERS {
        std::fs::create_dir_all(etc.join("parsers").join(stage)).unwrap();
        std::os::unix::fs::symlink(
            hub.join(format!("parsers/{stage}/crowdsecurity/{name}.yaml")),
            etc.join(format!("parsers/{stage}/{name}.yaml")),
        )
        .unwrap();
    }
    std::fs::create_dir_all(etc.join("scenarios")).unwrap();
    for name in SCENARIOS {
        std::os::unix::fs::symlink(
            hub.join(format!("scenarios/crowdsecurity/{name}.yaml")),
            etc.join(format!("scenarios/{name}.yaml")),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(hub.join("patterns"), etc.join("patterns")).unwrap();
    std::fs::create_dir_all(etc.join("postoverflows/s01-whitelist")).unwrap();
    std::os::unix::fs::symlink(
        hub.join("postoverflows/s01-whitelist/crowdsecurity/cdn-whitelist.yaml"),
        etc.join("postoverflows/s01-whitelist/cdn-whitelist.yaml"),
    )
    .unwrap();
    // The data folder: the hub's data files (Cloudflare's ranges for the CDN whitelist).
    std::os::unix::fs::symlink(hub.join("data"), &data).unwrap();
    std::fs::write(
        etc.join("config.yaml"),
        format!(
            "common:\n  daemonize: true\nconfig_paths:\n  config_dir: {e}/\n  data_dir: /var/lib/crowdsec/nowhere/\n  \
             simulation_path: {e}/simulation.yaml\n  hub_dir: /var/lib/crowdsec/hub/\ncrowdsec_service:\n  \
             acquisition_path: {e}/acquis.yaml\n  parser_routines: 1\napi:\n  server:\n    profiles_path: \
             {e}/profiles.yaml\n",
            e = etc.display()
        ),
    )
    .unwrap();
    std::fs::write(etc.join("config.yaml.local"), format!("config_paths:\n  data_dir: {}/\n", data.display())).unwrap();
    std::fs::write(etc.join("simulation.yaml"), "simulation: off\n# exclusions:\n#  - crowdsecurity/ssh-bf\n").unwrap();
    etc
}

fn brute_force(ip: &str) -> Vec<String> {
    (0..12)
        .map(|i| {
            format!(
                "Dec  2 10:00:{i:02} host sshd[{}]: Failed password for root from {ip} port {} ssh2",
                100 + i,
                4000 + i
            )
        })
        .collect()
}

fn banned(config: &Path) -> Vec<(String, String)> {
    banned_from(config, &["203.0.113.77", "173.245.48.9"])
}

fn banned_from(config: &Path, sources: &[&str]) -> Vec<(String, String)> {
    let profile = rules::profile(Some(&config.to_owned()), None).unwrap();
    let mut d = rules::detector(Some(&config.to_owned()), profile).unwrap();
    let labels = Arc::new(BTreeMap::from([("type".to_owned(), "syslog".to_owned())]));
    let mut out = Vec::new();
    for raw in sources.iter().flat_map(|ip| brute_force(ip)) {
        let line = Line { raw, src: "auth.log".into(), module: "file", labels: labels.clone() };
        out.extend(d.feed(line, 0.0).decisions().into_iter().map(|x| (x.scenario, x.value)));
    }
    out.extend(d.finish().decisions().into_iter().map(|x| (x.scenario, x.value)));
    out.sort();
    out.dedup();
    out
}

#[test]
fn an_installed_crowdsec_configuration_is_read_as_it_is() {
    let t = tempfile::tempdir().unwrap();
    let etc = debian_layout(t.path());
    let (pipeline, _, scenarios) = rules::load(Some(&etc), false).unwrap();
    let from_links = pipeline.len();
    assert!(from_links >= PARSERS.len(), "every installed parser, through its symlink: {from_links}");
    let mut names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "crowdsecurity/ssh-bf",
            "crowdsecurity/ssh-bf_user-enum",
            "crowdsecurity/ssh-slow-bf",
            "crowdsecurity/ssh-slow-bf_user-enum"
        ]
    );
    let sim = rules::simulation(Some(&etc), t.path()).unwrap();
    assert!(!sim.simulation, "`simulation: off` read as YAML 1.1");

    let got = banned(&etc);
    assert!(got.contains(&("crowdsecurity/ssh-bf".into(), "203.0.113.77".into())), "{got:?}");
    // The installed postoverflow whitelists Cloudflare's ranges (its data file from data_dir).
    assert!(got.iter().all(|(_, v)| v != "173.245.48.9"), "a CDN address was banned: {got:?}");

    // The same files from the hub's own layout decide the same.
    let hub_layout = t.path().join("hub");
    for (stage, name) in PARSERS {
        let d = hub_layout.join(format!("parsers/{stage}/crowdsecurity"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(hub().join(format!("parsers/{stage}/crowdsecurity/{name}.yaml")), d.join(format!("{name}.yaml")))
            .unwrap();
    }
    std::fs::create_dir_all(hub_layout.join("scenarios/crowdsecurity")).unwrap();
    for name in SCENARIOS {
        std::fs::copy(
            hub().join(format!("scenarios/crowdsecurity/{name}.yaml")),
            hub_layout.join(format!("scenarios/crowdsecurity/{name}.yaml")),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(hub().join("patterns"), hub_layout.join("patterns")).unwrap();
    assert_eq!(rules::load(Some(&hub_layout), false).unwrap().0.len(), from_links);
    // Without the postoverflow (the hub layout here has none), the CDN address is banned too.
    let without = banned(&hub_layout);
    assert!(without.iter().any(|(_, v)| v == "173.245.48.9"), "{without:?}");
    assert_eq!(banned_from(&hub_layout, &["203.0.113.77"]), got);
}

#[test]
fn a_configuration_with_nothing_to_detect_with_says_where_it_looked() {
    let t = tempfile::tempdir().unwrap();
    let etc = debian_layout(t.path());
    std::fs::remove_dir_all(etc.join("scenarios")).unwrap();
    let e = rules::load(Some(&etc), false).err().expect("refused").to_string();
    assert!(e.contains("parsers and 0 scenarios"), "{e}");
    assert!(e.contains("CrowdSec configuration") && e.contains("scenarios"), "{e}");
    // An empty folder that is no configuration at all.
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = rules::load(Some(&empty), false).err().expect("refused").to_string();
    assert!(e.contains("0 parsers and 0 scenarios") && e.contains("hub folder"), "{e}");
}
