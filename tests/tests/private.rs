//! crowd's state is root's alone. `crowd api` and `crowd run` create their state from scratch
//! under a umask of 000 (the worst a service manager may give); then, as the unprivileged user
//! `nobody`, no file under either state directory can be read or written, the pinned maps
//! cannot be opened, and tokens signed with guessed keys are refused. As root everything still
//! works, and `crowd machines rotate-key` ends every token issued before it. Privileged.
use std::{
    net::IpAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crowd::enforce::{Settings, maps::BanMaps};
use crowd_tests::{Killed, PinDir, crowd_bin, lapi::Api, netns::Link, unique, wait_for};

/// Runs `args` as `nobody`; true if it succeeded.
fn as_nobody(args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("runuser (util-linux)")
        .success()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// Every path under `dir` (itself included).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// Checks one state directory: modes, and nothing readable, writable or listable by `nobody`.
fn check_private(dir: &Path, must_have: &[&str]) {
    for f in must_have {
        assert!(dir.join(f).exists(), "{} was not created (the test would prove nothing)", dir.join(f).display());
    }
    for p in walk(dir) {
        let (m, s) = (mode(&p), p.to_str().unwrap());
        if p.is_dir() {
            assert_eq!(m, 0o700, "{s}: directory mode {m:04o}");
            assert!(!as_nobody(&["ls", s]), "nobody can list {s}");
        } else {
            assert_eq!(m, 0o600, "{s}: file mode {m:04o}");
            assert!(!as_nobody(&["cat", s]), "nobody can read {s}");
            assert!(!as_nobody(&["sh", "-c", &format!(": >> '{s}'")]), "nobody can write {s}");
        }
        eprintln!("{m:04o} {s}");
    }
}

#[test]
fn nobody_can_read_the_state_open_the_pins_or_forge_a_token() {
    crowd_tests::require_root();
    // SAFETY: umask only swaps this process's mask (its children inherit it); this file holds
    // one test, so no other test's files are affected.
    unsafe { libc::umask(0) };
    let top = tempfile::tempdir().unwrap();
    // The parent is open to everyone: only crowd's own modes protect what is below it.
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let crowd = top.path().join("crowd");
    std::fs::copy(crowd_bin(), &crowd).unwrap();
    std::fs::set_permissions(&crowd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let crowd = crowd.to_str().unwrap().to_owned();

    // `crowd api` from scratch: store, WAL, machines, a decision, simulation settings.
    let api_state = top.path().join("api-state");
    let api = Api::start_in(api_state.clone(), None, None);
    let token = api.machine("agent1");
    api.crowd(&["decisions", "add", "192.0.2.7", "--duration", "1h"]);
    api.crowd(&["simulation", "enable", "crowdsecurity/ssh-bf"]);
    let alerts = |token: &str| api.send("GET", "/v1/alerts", &[("Authorization", &format!("Bearer {token}"))], None);
    assert_eq!(alerts(&token).status, 200, "the agent's own token works");

    // `crowd run` from scratch in a namespace: its store, read positions and pins.
    let link = Link::new(&unique("pv"));
    let pins = PinDir::new();
    let run_state = top.path().join("run-state");
    let log = top.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let _daemon = Killed(
        link.server
            .command(&crowd)
            .arg("--pin-dir")
            .arg(pins.path())
            .args(["run", "--iface", &link.server_if, "--max-bans", "4096", "--max-ranges", "1024"])
            .args(["--max-allow", "1024", "--watch", &format!("{}=syslog", log.display()), "--state-dir"])
            .arg(&run_state)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let attached = pins.path().join("links").join(&link.server_if);
    wait_for("the daemon to attach", Duration::from_secs(20), Duration::from_millis(50), || attached.exists());
    let stamp = chrono::Utc::now().format("%b %e %H:%M:%S");
    let lines: String = (0..8)
        .map(|i| format!("{stamp} edge sshd[{i}]: Failed password for root from 192.0.2.66 port {} ssh2\n", 4000 + i))
        .collect();
    std::fs::write(&log, lines).unwrap();
    let attacker: IpAddr = "192.0.2.66".parse().unwrap();
    let settings: &Settings = &pins.settings;
    wait_for("the daemon to ban the attacker", Duration::from_secs(10), Duration::from_millis(50), || {
        BanMaps::open(settings).is_ok_and(|m| m.lookup(attacker).exact.is_some())
    });
    wait_for("read positions saved", Duration::from_secs(10), Duration::from_millis(100), || {
        run_state.join("positions.json").exists()
    });

    check_private(&api_state, &["crowd.db", "crowd.db-wal", "crowd.db-shm", "simulation.yaml"]);
    check_private(&run_state, &["crowd.db", "positions.json"]);

    // The pins: root's alone, and nobody's crowd cannot open them.
    for p in walk(pins.path()) {
        let m = mode(&p);
        assert_eq!(m & 0o077, 0, "{}: pin mode {m:04o}", p.display());
    }
    let pin_dir = pins.path().to_str().unwrap();
    assert!(!as_nobody(&[&crowd, "--pin-dir", pin_dir, "map", "list"]), "nobody can read the ban maps");
    assert!(!as_nobody(&[&crowd, "--pin-dir", pin_dir, "map", "del", "192.0.2.66"]), "nobody can unban");
    let root_list = Command::new(&crowd).args(["--pin-dir", pin_dir, "map", "list", "-o", "json"]).output().unwrap();
    assert!(root_list.status.success() && String::from_utf8_lossy(&root_list.stdout).contains("192.0.2.66"));

    // Tokens signed with guessed keys are refused; the agent's real one still works.
    let now = crowd::clock::unix_now().unsigned_abs();
    for guess in ["", "secret", "crowd", "jwt", "changeme", "password"] {
        let (forged, _) = crowd::lapi::auth::issue(guess.as_bytes(), "agent1", now).unwrap();
        assert_eq!(alerts(&forged).status, 401, "a token signed with `{guess}` was accepted");
    }
    assert_eq!(alerts(&token).status, 200);
    // Root still runs everything on that state.
    assert!(api.crowd(&["decisions", "list", "-o", "json"]).contains("192.0.2.7"));

    // Rotating the key ends every earlier token at once; a new login works.
    api.crowd(&["machines", "rotate-key"]);
    wait_for("the rotated key to take effect", Duration::from_secs(5), Duration::from_millis(20), || {
        alerts(&token).status == 401
    });
    let a = api.send(
        "POST",
        "/v1/watchers/login",
        &[],
        Some(r#"{"machine_id":"agent1","password":"s3cret-pw","scenarios":["crowdsecurity/ssh-bf"]}"#),
    );
    assert_eq!(a.status, 200, "login after rotation: {}", a.body);
    assert_eq!(alerts(a.json()["token"].as_str().unwrap()).status, 200);
}
