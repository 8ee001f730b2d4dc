//! Debian's `crowdsec` 1.4.6 as a real client of crowd's Local API, as CrowdSec users run it:
//! its `cscli` (`lapi status`, `decisions add/list/delete` with their filters, `alerts
//! list/inspect/delete`, JSON and table output) and its agent (`crowdsec -no-api` tailing an sshd
//! log, detecting a brute force with the hub's `crowdsecurity/ssh-bf` and pushing the alert that
//! crowd's API turns into a ban), each against a `crowd api` process on loopback. What is checked
//! is what CrowdSec 1.4.6's own Local API would make these programs do and print (exit codes, JSON,
//! counts), and what crowd's store then holds.
//!
//! Every program runs with a private configuration in a temporary directory: a copy of
//! `/etc/crowdsec/config.yaml` rewritten to use a config dir of its own (the hub's parsers and
//! scenarios linked read-only from `/var/lib/crowdsec/hub`), its own data dir, database path,
//! acquisition file and Local API credentials (a machine made with `crowd machines add`), no API
//! server, no Prometheus. The package's service, `/etc/crowdsec`'s credentials and
//! `/var/lib/crowdsec`'s database are never used. Unprivileged; needs the `crowdsec` package
//! (`cargo xtask test` installs it), and fails without it rather than skip.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crowd_tests::{Killed, lapi::Api, wait_for};
use serde_json::Value;
use serde_yaml::Value as Yaml;

const CSCLI: &str = "/usr/bin/cscli";
const CROWDSEC: &str = "/usr/bin/crowdsec";
const BASE_CONFIG: &str = "/etc/crowdsec/config.yaml";
const HUB: &str = "/var/lib/crowdsec/hub";

/// The hub items the private configurations install (linked, read-only): syslog lines, sshd, dates,
/// and the ssh brute-force scenarios.
const HUB_ITEMS: &[(&str, &str)] = &[
    ("parsers/s00-raw", "parsers/s00-raw/crowdsecurity/syslog-logs.yaml"),
    ("parsers/s01-parse", "parsers/s01-parse/crowdsecurity/sshd-logs.yaml"),
    ("parsers/s02-enrich", "parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml"),
    ("scenarios", "scenarios/crowdsecurity/ssh-bf.yaml"),
];

const PASSWORD: &str = "cs-client-pw-0123456789";

fn require_crowdsec() {
    for path in [CSCLI, CROWDSEC, BASE_CONFIG] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: these tests need Debian's `crowdsec` 1.4.6 package, which `cargo xtask test` \
             installs (offline, not started: xtask/src/setup.rs)"
        );
    }
}

/// One finished `cscli` run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A private CrowdSec configuration pointed at a `crowd api`, with its temporary directory.
struct Private {
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Private {
    /// A configuration whose Local API client logs in as `machine` (made here, validated).
    fn new(api: &Api, machine: &str) -> Private {
        require_crowdsec();
        api.crowd(&["machines", "add", machine, "--password", PASSWORD]);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let etc = d.join("etc");
        for (sub, item) in HUB_ITEMS {
            let target = Path::new(HUB).join(item);
            assert!(target.exists(), "{} is missing from the crowdsec package's hub", target.display());
            std::fs::create_dir_all(etc.join(sub)).expect("mkdir");
            std::os::unix::fs::symlink(&target, etc.join(sub).join(target.file_name().expect("name")))
                .expect("symlink");
        }
        std::os::unix::fs::symlink("/etc/crowdsec/patterns", etc.join("patterns")).expect("symlink patterns");
        std::fs::create_dir_all(etc.join("notifications")).expect("mkdir");
        std::fs::create_dir_all(d.join("data")).expect("mkdir");
        std::fs::write(etc.join("simulation.yaml"), "simulation: off\n").expect("write");
        std::fs::write(
            d.join("local_api_credentials.yaml"),
            format!("url: http://{}/\nlogin: {machine}\npassword: {PASSWORD}\n", api.addr),
        )
        .expect("write credentials");
        let log = d.join("auth.log");
        std::fs::write(&log, "").expect("write");
        std::fs::write(d.join("acquis.yaml"), format!("filenames:\n  - {}\nlabels:\n  type: syslog\n", log.display()))
            .expect("write acquis");

        let base = std::fs::read_to_string(BASE_CONFIG).expect("read the package's config.yaml");
        let mut c: Yaml = serde_yaml::from_str(&base).expect("config.yaml is YAML");
        let p = |rel: &str| Yaml::String(format!("{}/{rel}", d.display()));
        let set = |c: &mut Yaml, section: &str, key: &str, v: Yaml| {
            let m = c.as_mapping_mut().expect("mapping");
            let s = m.entry(section.into()).or_insert_with(|| Yaml::Mapping(Default::default()));
            s.as_mapping_mut().expect("section").insert(key.into(), v);
        };
        set(&mut c, "common", "daemonize", false.into());
        set(&mut c, "common", "log_media", "stdout".into());
        set(&mut c, "common", "log_level", "info".into());
        set(&mut c, "common", "log_dir", p(""));
        set(&mut c, "common", "working_dir", p(""));
        set(&mut c, "config_paths", "config_dir", p("etc/"));
        set(&mut c, "config_paths", "data_dir", p("data/"));
        set(&mut c, "config_paths", "simulation_path", p("etc/simulation.yaml"));
        set(&mut c, "config_paths", "notification_dir", p("etc/notifications/"));
        set(&mut c, "config_paths", "hub_dir", format!("{HUB}/").into());
        set(&mut c, "config_paths", "index_path", format!("{HUB}/.index.json").into());
        set(&mut c, "crowdsec_service", "acquisition_path", p("acquis.yaml"));
        if let Some(s) = c.get_mut("crowdsec_service").and_then(Yaml::as_mapping_mut) {
            s.remove("acquisition_dir");
        }
        set(&mut c, "db_config", "db_path", p("data/crowdsec.db"));
        set(&mut c, "prometheus", "enabled", false.into());
        let api_section = c.get_mut("api").and_then(Yaml::as_mapping_mut).expect("api section");
        // No Local API server here: crowd is the server.
        api_section.remove("server");
        let client = api_section
            .entry("client".into())
            .or_insert_with(|| Yaml::Mapping(Default::default()))
            .as_mapping_mut()
            .expect("api.client");
        client.insert("credentials_path".into(), p("local_api_credentials.yaml"));
        let cfg = d.join("config.yaml");
        std::fs::write(&cfg, serde_yaml::to_string(&c).expect("yaml")).expect("write config");
        Private { dir, cfg }
    }

    fn auth_log(&self) -> PathBuf {
        self.dir.path().join("auth.log")
    }

    /// Runs `cscli -c <private config> ARGS`.
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(CSCLI).arg("-c").arg(&self.cfg).args(args).output().expect("run cscli");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cscli ARGS`, which must exit 0; returns the run.
    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, Some(0), "cscli {args:?} failed\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
        r
    }

    /// `cscli ARGS -o json`, which must exit 0 and print JSON.
    fn json(&self, args: &[&str]) -> Value {
        let r = self.ok(&[args, &["-o", "json"]].concat());
        serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("cscli {args:?}: not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr))
    }

    /// `cscli decisions list -o json FILTERS`: the listed decisions as `value:type`, sorted.
    fn listed(&self, filters: &[&str]) -> Vec<String> {
        let v = self.json(&[&["decisions", "list"], filters].concat());
        let mut out: Vec<String> = array(&v)
            .iter()
            .flat_map(|a| a["decisions"].as_array().cloned().unwrap_or_default())
            .map(|d| format!("{}:{}", d["value"].as_str().unwrap_or("?"), d["type"].as_str().unwrap_or("?")))
            .collect();
        out.sort();
        out
    }

    /// A delete command (`decisions delete ...` or `alerts delete ...`), which must exit 0: the
    /// count cscli reports (`N decision(s) deleted`, `N alert(s) deleted`).
    fn deleted(&self, args: &[&str]) -> u64 {
        let r = self.ok(args);
        let what = if args[0] == "decisions" { " decision(s) deleted" } else { " alert(s) deleted" };
        let n = r.stderr.find(what).and_then(|end| {
            let start = r.stderr[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
            r.stderr[start..end].parse().ok()
        });
        n.unwrap_or_else(|| panic!("cscli {args:?}: no `N{what}` in its output\nstderr: {}", r.stderr))
    }
}

/// A JSON list as a vector (`null` is an empty list for these checks).
fn array(v: &Value) -> Vec<Value> {
    match v {
        Value::Null => vec![],
        Value::Array(a) => a.clone(),
        other => panic!("not a list: {other}"),
    }
}

/// The active decisions in crowd's store, as `value:type`, sorted.
fn stored(api: &Api) -> Vec<String> {
    let mut out: Vec<String> = store_decisions(api)
        .iter()
        .map(|d| format!("{}:{}", d["value"].as_str().unwrap_or("?"), d["type"].as_str().unwrap_or("?")))
        .collect();
    out.sort();
    out
}

/// `crowd decisions list -o json`, only the active ones.
fn store_decisions(api: &Api) -> Vec<Value> {
    let v: Value = serde_json::from_str(&api.crowd(&["decisions", "list", "-o", "json"])).expect("json");
    let now = chrono::Utc::now().timestamp();
    array(&v).into_iter().filter(|d| d["deleted_at"].is_null() && d["until"].as_i64().unwrap_or(0) > now).collect()
}

/// `crowd alerts list -o json`.
fn store_alerts(api: &Api) -> Vec<Value> {
    array(&serde_json::from_str(&api.crowd(&["alerts", "list", "-o", "json"])).expect("json"))
}

/// A Go duration of at most a few hours as seconds (`3h59m58s`, `59m3.5s`).
fn go_secs(d: &str) -> f64 {
    let mut total = 0.0;
    let mut num = String::new();
    for c in d.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {d}"));
                total += n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                };
                num.clear();
            }
            _ => panic!("bad duration {d}"),
        }
    }
    total
}

fn strs(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// The three decisions of the brief, added with `cscli decisions add`.
fn add_three(cs: &Private) {
    for args in [
        &["--ip", "192.0.2.10", "--duration", "4h", "--reason", "x"][..],
        &["--range", "198.51.100.0/24"],
        &["--ip", "192.0.2.11", "--type", "captcha"],
    ] {
        let r = cs.ok(&[&["decisions", "add"], args].concat());
        assert!(r.stderr.contains("Decision successfully added"), "{}", r.stderr);
    }
}

#[test]
fn cscli_adds_and_lists_decisions_with_their_filters() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");

    let r = cs.ok(&["lapi", "status"]);
    assert!(r.stderr.contains("You can successfully interact with Local API"), "{}", r.stderr);

    add_three(&cs);
    // In crowd's store, as CrowdSec's API stores them: cscli's origin, the reason as scenario.
    let st = store_decisions(&api);
    assert_eq!(stored(&api), strs(&["192.0.2.10:ban", "192.0.2.11:captcha", "198.51.100.0/24:ban"]), "{st:?}");
    let by_value = |v: &str| st.iter().find(|d| d["value"] == v).cloned().expect("stored");
    for (value, scope, scenario) in [
        ("192.0.2.10", "Ip", "x"),
        ("198.51.100.0/24", "Range", "manual 'ban' from 'cscli-test'"),
        ("192.0.2.11", "Ip", "manual 'captcha' from 'cscli-test'"),
    ] {
        let d = by_value(value);
        assert_eq!(d["origin"], "cscli", "{d}");
        assert_eq!(d["scope"], scope, "{d}");
        assert_eq!(d["scenario"], scenario, "{d}");
        let left = d["until"].as_i64().unwrap() - chrono::Utc::now().timestamp();
        assert!((4 * 3600 - 120..=4 * 3600).contains(&left), "4h decision with {left}s left: {d}");
    }

    // `cscli decisions list -o json`: the alerts carrying them, newest first.
    let v = cs.json(&["decisions", "list"]);
    let list = array(&v);
    assert_eq!(list.len(), 3, "{v:#}");
    for a in &list {
        assert_eq!(a["machine_id"], "cscli-test", "{a:#}");
        assert_eq!(a["simulated"], false, "{a:#}");
        let d = &a["decisions"][0];
        assert_eq!(a["decisions"].as_array().map(Vec::len), Some(1), "{a:#}");
        assert_eq!(d["origin"], "cscli", "{a:#}");
        assert_eq!(d["simulated"], false, "{a:#}");
        assert_eq!(a["source"]["value"], d["value"], "{a:#}");
        let left = go_secs(d["duration"].as_str().expect("duration"));
        assert!((4.0 * 3600.0 - 120.0..=4.0 * 3600.0).contains(&left), "{a:#}");
    }
    let ids: Vec<i64> = list.iter().map(|a| a["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // The filters, with CrowdSec's meanings.
    let all = strs(&["192.0.2.10:ban", "192.0.2.11:captcha", "198.51.100.0/24:ban"]);
    let cases: &[(&[&str], Vec<String>)] = &[
        (&[], all.clone()),
        // An address: the decisions that contain it.
        (&["--ip", "198.51.100.7"], strs(&["198.51.100.0/24:ban"])),
        (&["--ip", "192.0.2.10"], strs(&["192.0.2.10:ban"])),
        (&["--ip", "192.0.2.99"], vec![]),
        (&["--range", "198.51.100.0/24"], strs(&["198.51.100.0/24:ban"])),
        (&["--range", "198.51.0.0/16"], vec![]),
        // --contained: the decisions inside the range.
        (&["--range", "198.51.0.0/16", "--contained"], strs(&["198.51.100.0/24:ban"])),
        (&["--range", "192.0.2.0/24", "--contained"], strs(&["192.0.2.10:ban", "192.0.2.11:captcha"])),
        (&["--type", "captcha"], strs(&["192.0.2.11:captcha"])),
        (&["--type", "ban"], strs(&["192.0.2.10:ban", "198.51.100.0/24:ban"])),
        (&["--origin", "cscli"], all.clone()),
        (&["--origin", "crowdsec"], vec![]),
        (&["--scenario", "x"], strs(&["192.0.2.10:ban"])),
        (&["--scenario", "manual 'captcha' from 'cscli-test'"], strs(&["192.0.2.11:captcha"])),
        (&["--scope", "range"], strs(&["198.51.100.0/24:ban"])),
        (&["--value", "192.0.2.11"], strs(&["192.0.2.11:captcha"])),
        // --since/--until: alerts started after / before now minus the duration.
        (&["--since", "1h"], all.clone()),
        (&["--since", "1d"], all.clone()),
        (&["--until", "1h"], vec![]),
        (&["--until", "0s"], all.clone()),
        (&["--no-simu"], all.clone()),
        (&["--limit", "1"], strs(&["192.0.2.11:captcha"])),
    ];
    for (filters, want) in cases {
        assert_eq!(&cs.listed(filters), want, "cscli decisions list {filters:?}");
    }

    // IPv6: an address inside a /48, an exact address.
    cs.ok(&["decisions", "add", "--range", "2001:db8:1::/48", "--duration", "1h"]);
    cs.ok(&["decisions", "add", "--ip", "2001:db8::5", "--duration", "1h"]);
    assert_eq!(cs.listed(&["--ip", "2001:db8:1::9"]), strs(&["2001:db8:1::/48:ban"]));
    assert_eq!(cs.listed(&["--ip", "2001:db8::5"]), strs(&["2001:db8::5:ban"]));
    assert_eq!(
        cs.listed(&["--range", "2001:db8::/32", "--contained"]),
        strs(&["2001:db8:1::/48:ban", "2001:db8::5:ban"])
    );
    let v6 = cs.json(&["decisions", "list", "--ip", "2001:db8::5"]);
    let left = go_secs(v6[0]["decisions"][0]["duration"].as_str().expect("duration"));
    assert!((3600.0 - 120.0..=3600.0).contains(&left), "{v6:#}");

    // The human and raw outputs (cscli 1.4.6 dereferences every decision's `simulated` there).
    let table = cs.ok(&["decisions", "list"]).stdout;
    for want in ["Ip:192.0.2.10", "Range:198.51.100.0/24", "captcha", "Range:2001:db8:1::/48"] {
        assert!(table.contains(want), "{want} missing from\n{table}");
    }
    let table = cs.ok(&["decisions", "list", "--machine"]).stdout;
    assert!(table.contains("cscli-test"), "{table}");
    let raw = cs.ok(&["decisions", "list", "-o", "raw"]).stdout;
    assert!(raw.starts_with("id,source,ip,reason,action,"), "{raw}");
    assert!(raw.contains(",cscli,Ip:192.0.2.10,x,ban,"), "{raw}");
    let table = cs.ok(&["alerts", "list"]).stdout;
    assert!(table.contains("Ip:192.0.2.11") && table.contains("captcha:1"), "{table}");
    let nothing = cs.ok(&["decisions", "list", "--origin", "crowdsec"]).stdout;
    assert_eq!(nothing.trim(), "No active decisions");
}

#[test]
fn cscli_deletes_decisions_by_ip_id_type_range_and_all() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");
    for args in [
        &["--ip", "192.0.2.20"][..],
        &["--ip", "192.0.2.21"],
        &["--ip", "192.0.2.22", "--type", "captcha"],
        &["--ip", "192.0.2.23", "--type", "captcha"],
        &["--range", "198.51.100.0/24"],
        &["--range", "203.0.113.0/24"],
        &["--ip", "2001:db8::20"],
        &["--ip", "192.0.2.30"],
        &["--ip", "192.0.2.31"],
    ] {
        cs.ok(&[&["decisions", "add"], args].concat());
    }
    assert_eq!(stored(&api).len(), 9);

    assert_eq!(cs.deleted(&["decisions", "delete", "--ip", "192.0.2.20"]), 1);
    assert!(!stored(&api).contains(&"192.0.2.20:ban".to_owned()), "{:?}", stored(&api));
    assert_eq!(cs.listed(&["--ip", "192.0.2.20"]), Vec::<String>::new());

    let id = store_decisions(&api).iter().find(|d| d["value"] == "192.0.2.21").expect("stored")["id"]
        .as_i64()
        .expect("id")
        .to_string();
    assert_eq!(cs.deleted(&["decisions", "delete", "--id", &id]), 1);
    assert!(!stored(&api).contains(&"192.0.2.21:ban".to_owned()), "{:?}", stored(&api));
    // An id that never was: CrowdSec answers an error, cscli exits 1.
    let r = cs.run(&["decisions", "delete", "--id", "987654"]);
    assert_eq!(r.code, Some(1), "delete --id 987654: {}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Unable to delete decision"), "{}", r.stderr);

    assert_eq!(cs.deleted(&["decisions", "delete", "--type", "captcha"]), 2);
    assert_eq!(cs.listed(&["--type", "captcha"]), Vec::<String>::new());

    assert_eq!(cs.deleted(&["decisions", "delete", "--range", "198.51.100.0/24"]), 1);
    // An address deletes the decisions that contain it.
    assert_eq!(cs.deleted(&["decisions", "delete", "--ip", "203.0.113.9"]), 1);
    assert_eq!(cs.deleted(&["decisions", "delete", "--ip", "2001:db8::20"]), 1);
    // Nothing matches: 0, exit 0.
    assert_eq!(cs.deleted(&["decisions", "delete", "--ip", "192.0.2.200"]), 0);
    assert_eq!(stored(&api), strs(&["192.0.2.30:ban", "192.0.2.31:ban"]));

    // --contained: the decisions inside a range.
    cs.ok(&["decisions", "add", "--ip", "192.0.2.32"]);
    assert_eq!(cs.deleted(&["decisions", "delete", "--range", "192.0.2.30/31", "--contained"]), 2);
    assert_eq!(stored(&api), strs(&["192.0.2.32:ban"]));

    cs.ok(&["decisions", "add", "--ip", "192.0.2.33"]);
    assert_eq!(cs.deleted(&["decisions", "delete", "--all"]), 2);
    assert_eq!(stored(&api), Vec::<String>::new());
    assert_eq!(cs.ok(&["decisions", "list"]).stdout.trim(), "No active decisions");
    // Without a filter cscli refuses before asking the API.
    let r = cs.run(&["decisions", "delete"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
}

#[test]
fn cscli_lists_inspects_and_deletes_alerts() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");
    for args in [
        &["--ip", "192.0.2.40", "--reason", "first"][..],
        &["--ip", "192.0.2.41", "--reason", "second"],
        &["--range", "198.51.100.0/24", "--reason", "third"],
        &["--ip", "2001:db8::40", "--reason", "fourth"],
    ] {
        cs.ok(&[&["decisions", "add"], args].concat());
    }

    let v = cs.json(&["alerts", "list"]);
    let list = array(&v);
    assert_eq!(list.len(), 4, "{v:#}");
    let mut seen: Vec<String> = list.iter().map(|a| a["source"]["value"].as_str().unwrap_or("?").to_owned()).collect();
    seen.sort();
    assert_eq!(seen, strs(&["192.0.2.40", "192.0.2.41", "198.51.100.0/24", "2001:db8::40"]));
    for a in &list {
        assert_eq!(a["machine_id"], "cscli-test", "{a:#}");
        assert_eq!(a["scenario"], a["decisions"][0]["scenario"], "{a:#}");
        assert_eq!(a["events_count"], 1, "{a:#}");
        assert!(a["start_at"].as_str().is_some_and(|s| s.ends_with(" +0000 UTC")), "Go's time.String(): {a:#}");
    }
    let id_of = |value: &str| -> String {
        list.iter().find(|a| a["source"]["value"] == value).expect("listed")["id"].as_i64().expect("id").to_string()
    };
    // The same filters as for decisions.
    let values = |filters: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = array(&cs.json(&[&["alerts", "list"], filters].concat()))
            .iter()
            .map(|a| a["source"]["value"].as_str().unwrap_or("?").to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(values(&["--ip", "192.0.2.40"]), strs(&["192.0.2.40"]));
    assert_eq!(values(&["--ip", "198.51.100.3"]), strs(&["198.51.100.0/24"]));
    assert_eq!(values(&["--range", "192.0.2.0/24", "--contained"]), strs(&["192.0.2.40", "192.0.2.41"]));
    assert_eq!(values(&["--scenario", "second"]), strs(&["192.0.2.41"]));
    assert_eq!(values(&["--since", "1h"]).len(), 4);
    assert_eq!(values(&["--until", "1h"]), Vec::<String>::new());
    assert_eq!(values(&["--limit", "2"]).len(), 2);

    let first = id_of("192.0.2.40");
    let a = cs.json(&["alerts", "inspect", "-d", &first]);
    assert_eq!(a["id"].as_i64().map(|i| i.to_string()), Some(first.clone()), "{a:#}");
    assert_eq!(a["source"]["value"], "192.0.2.40", "{a:#}");
    assert_eq!(a["source"]["scope"], "Ip", "{a:#}");
    assert_eq!(a["scenario"], "first", "{a:#}");
    assert_eq!(a["machine_id"], "cscli-test", "{a:#}");
    assert_eq!(a["decisions"][0]["value"], "192.0.2.40", "{a:#}");
    assert_eq!(a["decisions"][0]["type"], "ban", "{a:#}");
    let human = cs.ok(&["alerts", "inspect", "-d", &first]).stdout;
    assert!(human.contains("Ip:192.0.2.40") && human.contains("cscli-test"), "{human}");

    // Deleting an alert ends its decision.
    assert_eq!(cs.deleted(&["alerts", "delete", "--ip", "192.0.2.40"]), 1);
    assert!(!stored(&api).contains(&"192.0.2.40:ban".to_owned()), "{:?}", stored(&api));
    let r = cs.run(&["alerts", "inspect", &first]);
    assert_eq!(r.code, Some(1), "inspect of a deleted alert: {}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("can't find alert with id"), "{}", r.stderr);

    let second = id_of("192.0.2.41");
    assert_eq!(cs.deleted(&["alerts", "delete", "--id", &second]), 1);
    assert!(!store_alerts(&api).iter().any(|a| a["value"] == "192.0.2.41"), "{:?}", store_alerts(&api));
    assert!(!stored(&api).contains(&"192.0.2.41:ban".to_owned()), "{:?}", stored(&api));

    assert_eq!(cs.deleted(&["alerts", "delete", "--ip", "192.0.2.200"]), 0);
    assert_eq!(cs.deleted(&["alerts", "delete", "--all"]), 2);
    assert_eq!(store_alerts(&api).len(), 0);
    assert_eq!(stored(&api), Vec::<String>::new());
    assert_eq!(cs.ok(&["alerts", "list"]).stdout.trim(), "No active alerts");
}

/// CrowdSec 1.4.6 answers an alert search that finds nothing with `null` (a nil Go slice), so
/// `cscli ... -o json` prints `null`.
#[test]
fn cscli_prints_null_for_no_alerts_as_with_crowdsec() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");
    for args in [&["alerts", "list"][..], &["decisions", "list"]] {
        let r = cs.ok(&[args, &["-o", "json"]].concat());
        assert_eq!(r.stdout.trim(), "null", "cscli {args:?} -o json on an empty store\nstderr: {}", r.stderr);
    }
    cs.ok(&["decisions", "add", "--ip", "192.0.2.50"]);
    let r = cs.ok(&["decisions", "list", "--ip", "192.0.2.51", "-o", "json"]);
    assert_eq!(r.stdout.trim(), "null", "no match\nstderr: {}", r.stderr);
}

/// `cscli decisions list -a` and `--limit 0` (and the same for alerts) ask for `limit=0`, which
/// CrowdSec reads as "no limit"; `-a` also asks for `include_capi=true` (every origin).
#[test]
fn cscli_lists_everything_with_all_and_limit_0() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");
    add_three(&cs);
    let all = strs(&["192.0.2.10:ban", "192.0.2.11:captcha", "198.51.100.0/24:ban"]);
    assert_eq!(cs.listed(&["--all"]), all, "cscli decisions list --all");
    assert_eq!(cs.listed(&["--limit", "0"]), all, "cscli decisions list --limit 0");
    assert_eq!(array(&cs.json(&["alerts", "list", "--all"])).len(), 3, "cscli alerts list --all");
    assert_eq!(array(&cs.json(&["alerts", "list", "--limit", "0"])).len(), 3, "cscli alerts list --limit 0");
}

/// `cscli decisions import` pushes one alert whose source is `{scope: cscli/manual-import, value:
/// ""}` and whose decisions have the origin `cscli-import` and, whatever the file says, the scope
/// `Ip` (cscli 1.4.6's `--scope` default overrides the file's; a range keeps working as a range).
/// CrowdSec accepts it (201); a plain `decisions list` (`include_capi=false`: origins crowdsec and
/// cscli only) leaves the imports out, `--origin cscli-import` (which turns `include_capi` on)
/// shows them.
#[test]
fn cscli_imports_decisions() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");
    cs.ok(&["decisions", "add", "--ip", "192.0.2.90"]);
    let csv = cs.dir.path().join("decisions.csv");
    std::fs::write(
        &csv,
        "duration,scope,value,reason\n24h,ip,192.0.2.70,imported\n24h,range,198.51.100.0/24,imported\n1h,ip,2001:db8::70,imported\n",
    )
    .expect("write csv");
    let r = cs.ok(&["decisions", "import", "-i", csv.to_str().expect("utf-8")]);
    assert!(r.stderr.contains("3 decisions successfully imported"), "{}", r.stderr);
    let json = cs.dir.path().join("decisions.json");
    std::fs::write(&json, r#"[{"duration": "2h", "type": "captcha", "value": "192.0.2.71"}]"#).expect("write json");
    cs.ok(&["decisions", "import", "-i", json.to_str().expect("utf-8")]);

    let st = store_decisions(&api);
    assert_eq!(
        stored(&api),
        strs(&["192.0.2.70:ban", "192.0.2.71:captcha", "192.0.2.90:ban", "198.51.100.0/24:ban", "2001:db8::70:ban"]),
        "{st:?}"
    );
    for d in st.iter().filter(|d| d["value"] != "192.0.2.90") {
        assert_eq!(d["origin"], "cscli-import", "{d}");
        let left = d["until"].as_i64().unwrap() - chrono::Utc::now().timestamp();
        let want = match d["value"].as_str() {
            Some("2001:db8::70") => 3600,
            Some("192.0.2.71") => 7200,
            _ => 24 * 3600,
        };
        assert!((want - 120..=want).contains(&left), "{left}s left: {d}");
    }
    assert_eq!(cs.listed(&[]), strs(&["192.0.2.90:ban"]), "only crowdsec and cscli origins by default");
    assert_eq!(
        cs.listed(&["--origin", "cscli-import"]),
        strs(&["192.0.2.70:ban", "192.0.2.71:captcha", "198.51.100.0/24:ban", "2001:db8::70:ban"])
    );
    // As CrowdSec 1.4.6: `--ip` selects alerts by their decisions, and cscli prints every
    // decision of the alerts selected (the import's one alert holds all three).
    assert_eq!(
        cs.listed(&["--origin", "cscli-import", "--ip", "198.51.100.7"]),
        strs(&["192.0.2.70:ban", "198.51.100.0/24:ban", "2001:db8::70:ban"])
    );
    let al = store_alerts(&api);
    let id = al.iter().find(|a| a["scenario"] == "add: 3 IPs").unwrap_or_else(|| panic!("the import's alert: {al:?}"))
        ["id"]
        .as_i64()
        .expect("id")
        .to_string();
    let a = cs.json(&["alerts", "inspect", &id]);
    assert_eq!(a["source"]["scope"], "cscli/manual-import", "{a:#}");
    assert_eq!(a["decisions"].as_array().map(Vec::len), Some(3), "{a:#}");
    assert_eq!(cs.deleted(&["decisions", "delete", "--scenario", "imported"]), 3);
}

/// CrowdSec's SQLite tables are `AUTOINCREMENT`: an alert id is never given again, even once the
/// newest alerts are deleted, so an id a user noted (`cscli alerts inspect N`) never names
/// another alert.
#[test]
fn alert_ids_are_not_reused_after_deletion() {
    let api = Api::start();
    let cs = Private::new(&api, "cscli-test");
    cs.ok(&["decisions", "add", "--ip", "192.0.2.60"]);
    cs.ok(&["decisions", "add", "--ip", "192.0.2.61"]);
    let max = |v: &Value| array(v).iter().filter_map(|a| a["id"].as_i64()).max().unwrap_or(0);
    let before = max(&cs.json(&["alerts", "list"]));
    assert_eq!(cs.deleted(&["alerts", "delete", "--all"]), 2);
    cs.ok(&["decisions", "add", "--ip", "192.0.2.62"]);
    let after = max(&cs.json(&["alerts", "list"]));
    assert!(after > before, "a new alert took id {after}, already given to a deleted alert (ids up to {before})");
}

#[test]
fn crowdsec_agent_detects_ssh_bf_and_crowd_bans() {
    let api = Api::start();
    let cs = Private::new(&api, "agent-test");
    let agent_log = cs.dir.path().join("crowdsec.log");
    let out = std::fs::File::create(&agent_log).expect("agent log");
    let _agent = Killed(
        Command::new(CROWDSEC)
            .arg("-c")
            .arg(&cs.cfg)
            .arg("-no-api")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("start crowdsec"),
    );
    let show = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    // Its log is shown if it does not get there (`wait_for` would only say it timed out).
    let started = std::time::Instant::now();
    wait_for("the agent to start reading", Duration::from_secs(60), Duration::from_millis(200), || {
        let log = show();
        assert!(!log.contains("level=fatal"), "crowdsec exited:\n{log}");
        assert!(started.elapsed() < Duration::from_secs(58), "crowdsec is not reading after 58 s:\n{log}");
        log.contains("Starting processing data")
    });

    // The agent follows the file from its end, from a moment it does not log: a batch it missed
    // is followed by another (ssh-bf: more than 5 failures within its 10 s leak).
    let attacker = "203.0.113.77";
    let first_batch = std::time::Instant::now();
    let mut last_batch: Option<std::time::Instant> = None;
    let took = wait_for(
        "crowd to ban 203.0.113.77 from the agent's alert",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let waited = first_batch.elapsed();
            assert!(
                waited < Duration::from_secs(58),
                "no ban after 58 s; crowd's alerts: {:?}\nagent:\n{}",
                store_alerts(&api),
                show()
            );
            if last_batch.is_none_or(|t| t.elapsed() > Duration::from_secs(12)) {
                crowd_tests::append_sshd_failures_local(&cs.auth_log(), attacker, 8);
                last_batch = Some(std::time::Instant::now());
            }
            store_decisions(&api).iter().any(|d| d["value"] == attacker)
        },
    );
    eprintln!("sshd lines to a ban in crowd's store: {} ms (from the first batch)", took.as_millis());

    let st = store_decisions(&api);
    let d = st.iter().find(|d| d["value"] == attacker).expect("decision");
    assert_eq!(d["origin"], "crowdsec", "{d}\nagent:\n{}", show());
    assert_eq!(d["type"], "ban", "{d}");
    assert_eq!(d["scope"], "Ip", "{d}");
    assert!(d["scenario"].as_str().is_some_and(|s| s.contains("ssh-bf")), "{d}");
    let left = d["until"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((4 * 3600 - 120..=4 * 3600).contains(&left), "the default profile's 4h ban: {left}s left: {d}");
    assert_eq!(st.len(), 1, "only the attacker: {st:?}");

    let al = store_alerts(&api);
    let a = al.iter().find(|a| a["value"] == attacker).unwrap_or_else(|| panic!("no alert for {attacker}: {al:?}"));
    assert_eq!(a["machine_id"], "agent-test", "{a}");
    assert_eq!(a["scenario"], "crowdsecurity/ssh-bf", "{a}");
    assert!(a["events_count"].as_i64().is_some_and(|n| n >= 6), "{a}");
    assert_eq!(a["active_decisions"], 1, "{a}");

    // The same alert through cscli, events included.
    let id = a["id"].as_i64().expect("id").to_string();
    let full = cs.json(&["alerts", "inspect", "-d", &id]);
    assert_eq!(full["machine_id"], "agent-test", "{full:#}");
    assert_eq!(full["scenario"], "crowdsecurity/ssh-bf", "{full:#}");
    assert_eq!(full["source"]["ip"], attacker, "{full:#}");
    assert!(full["scenario_hash"].as_str().is_some_and(|h| h.len() == 64), "{full:#}");
    let events = full["events"].as_array().expect("events");
    assert!(events.len() >= 6, "{full:#}");
    for e in events {
        let meta = e["meta"].as_array().expect("meta");
        let get = |k: &str| meta.iter().find(|m| m["key"] == k).map(|m| m["value"].clone());
        assert_eq!(get("source_ip"), Some(Value::from(attacker)), "{e:#}");
        assert_eq!(get("log_type"), Some(Value::from("ssh_failed-auth")), "{e:#}");
    }
    assert_eq!(cs.listed(&["--ip", attacker, "--origin", "crowdsec"]), strs(&["203.0.113.77:ban"]));
    // Nothing went wrong on the agent's side (the GeoIP enrichers have no databases here: expected).
    let log = show();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=error") || l.contains("level=fatal"))
        .filter(|l| {
            !l.contains("unable to register plugin 'GeoIp") && !l.contains("unable to register plugin 'IpToRange'")
        })
        .collect();
    assert!(errors.is_empty(), "errors in the agent's log:\n{}", errors.join("\n"));
}
