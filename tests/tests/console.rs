//! The web console in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` (WebDriver), against `crowd run` enforcing with XDP in a network namespace
//! built here (documentation addresses only). The console listens on the namespace's loopback;
//! the browser reaches it through a relay (`Netns::forward`). Checked: a wrong password is
//! refused; the overview's counts are the store's; a log line appended to the followed file
//! puts its alert and decision on the open pages without a reload (timed, under 2 s); a ban
//! made on the console drops the attacker's packets in the namespace and its drop count rises
//! on the page, and its unban lets them pass; bad input gets a message on the page; a viewer
//! sees no control and its requests are refused (403), as a change without the CSRF token is;
//! logging out ends the session. Screenshots of every page go to `target/console/` and are
//! checked not blank. Privileged; needs `chromium` and `chromium-driver` (`cargo xtask setup`).
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crowd_tests::{Killed, PinDir, banned, browser::Browser, crowd_bin, netns::Link, unique, wait_for};

const ADMIN_PW: &str = "admin-password-0123";
const VIEWER_PW: &str = "viewer-password-0123";
/// The link's own attacker address (its client namespace holds it).
const ATTACKER: &str = "192.0.2.66";

fn crowd(state: &Path, args: &[&str]) -> String {
    let out = Command::new(crowd_bin()).args(args).arg("--state-dir").arg(state).output().unwrap();
    assert!(out.status.success(), "crowd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A POST with a session cookie (and a CSRF token): status and body.
fn post(url: &str, cookie: &str, csrf: Option<&str>, form: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let mut req = agent.post(url).header("Cookie", &format!("crowd_console={cookie}"));
    if let Some(t) = csrf {
        req = req.header("X-CSRF-Token", t);
    }
    let mut resp = req.content_type("application/x-www-form-urlencoded").send(form.as_bytes()).unwrap();
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
}

fn session_cookie(b: &Browser) -> String {
    b.cookies().iter().find(|c| c.name() == "crowd_console").map(|c| c.value().to_owned()).expect("a session cookie")
}

/// The page's CSRF token (the `hx-headers` of its body).
fn csrf(b: &Browser) -> String {
    let h = b.attr("body", "hx-headers").expect("hx-headers");
    let v: serde_json::Value = serde_json::from_str(&h).unwrap();
    v["X-CSRF-Token"].as_str().unwrap().to_owned()
}

fn sign_in(b: &Browser, base: &str, name: &str, password: &str) {
    b.goto(&format!("{base}/login"));
    b.fill("#name", name);
    b.fill("#password", password);
    b.click("#sign-in");
}

#[test]
fn the_console_shows_and_steers_a_daemon_in_a_real_browser() {
    crowd_tests::require_root();
    let tag = unique("co");
    let link = Link::new(&tag);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let log = state.join("auth.log");
    std::fs::write(&log, "").unwrap();
    crowd(&state, &["console", "users", "add", "admin", "--role", "admin", "--password", ADMIN_PW]);
    crowd(&state, &["console", "users", "add", "viewer", "--role", "viewer", "--password", VIEWER_PW]);
    let pins = PinDir::new();
    let daemon = link
        .server
        .command(crowd_bin())
        .arg("--pin-dir")
        .arg(pins.path())
        .args(["run", "--iface", &link.server_if, "--no-metrics", "--api-listen", "127.0.0.1:8080", "--state-dir"])
        .arg(&state)
        .arg("--watch")
        .arg(format!("{}=syslog", log.display()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = Killed(daemon);
    let attached = pins.path().join("links").join(&link.server_if);
    wait_for("the daemon to attach", Duration::from_secs(30), Duration::from_millis(20), || attached.exists());
    // Two manual decisions before anyone looks.
    crowd(&state, &["decisions", "add", "198.51.100.20", "--duration", "2h"]);
    crowd(&state, &["decisions", "add", "198.51.100.0/28", "--duration", "3h"]);
    let relay = link.server.forward("127.0.0.1:8080".parse().unwrap());
    let base = format!("http://{relay}/console");
    wait_for("the console to answer", Duration::from_secs(20), Duration::from_millis(50), || {
        ureq::get(&format!("{base}/login")).call().is_ok()
    });

    let b = Browser::start();
    eprintln!("chromium ready in {} ms", b.started_in().as_millis());
    // Not signed in: the login page. A wrong password is refused.
    b.goto(&format!("{base}/overview"));
    assert!(b.current_url().ends_with("/console/login"), "{}", b.current_url());
    b.screenshot("login");
    sign_in(&b, &base, "admin", "not-the-password");
    // The form posts and the answer page loads after the password check (Argon2: slow in a
    // debug build on a busy machine): wait for it.
    b.wait_for_text("#login-error", "wrong name or password", Duration::from_secs(15));
    sign_in(&b, &base, "admin", ADMIN_PW);
    b.wait_for_css("#who", Duration::from_secs(15));
    assert!(b.current_url().ends_with("/console/overview"), "{}", b.current_url());
    assert_eq!(b.text("#who"), "admin · admin");

    // The overview's counts are what the Local API serves its bouncers.
    let key: serde_json::Value =
        serde_json::from_str(&crowd(&state, &["bouncers", "add", "fw", "-o", "json"])).unwrap();
    let key = key["api_key"].as_str().unwrap().to_owned();
    let served = |path: &str| -> serde_json::Value {
        let mut r = ureq::get(&format!("http://{relay}{path}")).header("X-Api-Key", &key).call().unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let listed = served("/v1/decisions");
    let n = listed.as_array().unwrap().len();
    assert_eq!(n, 2, "{listed}");
    assert_eq!(b.text("#decisions-total"), n.to_string());
    assert_eq!(b.text("[data-origin=\"manual\"]"), n.to_string());
    assert_eq!(b.text("#alerts-24h"), "0");
    b.screenshot("overview-empty");

    // A log line on the followed file: its alert and decision on the open overview, no reload.
    let x = "192.0.2.77";
    let t = Instant::now();
    crowd_tests::append_sshd_failures(&log, x, 8);
    b.wait_for_text("#overview-body", x, Duration::from_secs(5));
    wait_for("the decision on the overview", Duration::from_secs(5), Duration::from_millis(20), || {
        b.text("#decisions-total").parse::<usize>().is_ok_and(|shown| shown > n)
    });
    let on_overview = t.elapsed();
    eprintln!("log lines → alert and decision on the open overview: {} ms", on_overview.as_millis());
    // Once the store settles, the page says what it holds (two of crowd's scenarios fire).
    let count = |args: &[&str]| -> usize {
        let v: serde_json::Value = serde_json::from_str(&crowd(&state, args)).unwrap();
        v.as_array().unwrap().len()
    };
    let agrees = || {
        let d = served("/v1/decisions").as_array().map_or(0, Vec::len);
        let a = count(&["alerts", "list", "-o", "json"]);
        let local = d - n;
        b.text("#decisions-total") == d.to_string()
            && b.text("#alerts-24h") == a.to_string()
            && b.text("[data-origin=\"local\"]") == local.to_string()
    };
    wait_for("the overview to agree with the store", Duration::from_secs(5), Duration::from_millis(100), agrees);
    // The same on the open alerts page, for another attacker.
    b.goto(&format!("{base}/alerts"));
    let y = "192.0.2.78";
    let t = Instant::now();
    crowd_tests::append_sshd_failures(&log, y, 8);
    b.wait_for_text("#alert-rows", y, Duration::from_secs(5));
    let on_alerts = t.elapsed();
    eprintln!("log lines → alert on the open alerts page: {} ms", on_alerts.as_millis());
    b.screenshot("alerts");
    b.goto(&format!("{base}/decisions"));
    assert!(b.text("#decision-rows").contains(y), "{}", b.text("#decision-rows"));
    assert!(
        on_overview < Duration::from_secs(2) && on_alerts < Duration::from_secs(2),
        "{on_overview:?} {on_alerts:?}"
    );
    // An alert's page: its source, decision, events and the parse trail of its line.
    b.goto(&format!("{base}/alerts?source={y}"));
    b.click("#alert-rows a");
    b.wait_for_css("#alert-source", Duration::from_secs(5));
    assert!(b.text("#alert-source").contains(y));
    assert!(b.text("#alert-decisions").contains(y));
    assert!(b.source().contains("Failed password for root from 192.0.2.78"), "the event's line is shown");
    let trail = b.text("#trail");
    assert!(trail.contains("ok"), "the parse trail shows the parsers that took the line: {trail}");
    b.screenshot("alert");

    // Ban from the console: the kernel drops the attacker; the page counts the drops.
    b.goto(&format!("{base}/decisions"));
    assert!(link.ping(ATTACKER), "the attacker passes before the ban");
    b.fill("#ban-target", "300.1.1.1");
    b.click("#ban-submit");
    b.wait_for_text("#msg", "is not an IP address", Duration::from_secs(5));
    b.fill("#ban-target", ATTACKER);
    b.fill("#ban-duration", "soon");
    b.click("#ban-submit");
    b.wait_for_text("#msg", "expected e.g. 4h", Duration::from_secs(5));
    b.fill("#ban-duration", "1h");
    b.fill("#ban-reason", "seen on the console");
    let t = Instant::now();
    b.click("#ban-submit");
    b.wait_for_text("#msg", "banned", Duration::from_secs(5));
    let msg = b.text("#msg");
    let id: i64 =
        msg.trim_start_matches("decision ").split(':').next().unwrap().parse().unwrap_or_else(|_| panic!("{msg}"));
    let ip: std::net::IpAddr = ATTACKER.parse().unwrap();
    wait_for("the ban in the map", Duration::from_secs(5), Duration::from_millis(10), || banned(&pins.settings, ip));
    eprintln!("console ban → map: {} ms", t.elapsed().as_millis());
    assert!(!link.ping(ATTACKER), "the attacker's packets still pass");
    assert!(!link.ping(ATTACKER));
    assert!(link.ping("192.0.2.3"), "an innocent source is dropped");
    let cell = format!("[data-decision=\"{id}\"]");
    let t = Instant::now();
    loop {
        let shown = b.text(&cell);
        if shown.parse::<u64>().is_ok_and(|n| n >= 2) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the drop count on the page stays {shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.screenshot("decisions");
    // The overview draws the drops per second, live, while the attacker keeps sending.
    b.goto(&format!("{base}/overview"));
    b.wait_for_css("#drops-chart canvas", Duration::from_secs(5));
    let flood = link
        .client
        .command("ping")
        .args(["-c", "25", "-i", "0.2", "-W", "1", "-I", ATTACKER, "192.0.2.1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _flood = Killed(flood);
    wait_for("a live drop rate on the overview", Duration::from_secs(6), Duration::from_millis(100), || {
        b.text("#drop-rate").parse::<f64>().is_ok_and(|r| r > 0.0)
    });
    std::thread::sleep(Duration::from_millis(2500));
    b.screenshot("overview");
    b.goto(&format!("{base}/decisions"));
    b.click(&format!("#unban-{id}"));
    b.wait_for_text("#msg", "deleted", Duration::from_secs(5));
    wait_for("the attacker to pass again", Duration::from_secs(5), Duration::from_millis(50), || link.ping(ATTACKER));
    let admin_cookie = session_cookie(&b);
    let admin_csrf = csrf(&b);
    // A change without the CSRF token is refused, with it accepted.
    let (status, body) = post(&format!("{base}/decisions"), &admin_cookie, None, "target=192.0.2.90&duration=1h");
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        post(&format!("{base}/decisions"), &admin_cookie, Some(&admin_csrf), "target=192.0.2.90&duration=1h");
    assert_eq!(status, 200, "{body}");
    // Huge forms get a message.
    let huge = format!("target=192.0.2.91&duration=1h&reason={}", "x".repeat(100_000));
    let (status, body) = post(&format!("{base}/decisions"), &admin_cookie, Some(&admin_csrf), &huge);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("too large"), "{body}");

    // The allowlist wins: an address allowlisted on the console gets an alert but no ban.
    b.goto(&format!("{base}/decisions"));
    let z = "192.0.2.79";
    b.fill("#allow-target", z);
    b.click("#allow-submit");
    b.wait_for_text("#msg", "allowlisted", Duration::from_secs(5));
    b.wait_for_text("#allowlist", z, Duration::from_secs(5));
    crowd_tests::append_sshd_failures(&log, z, 8);
    b.goto(&format!("{base}/alerts"));
    b.wait_for_text("#alert-rows", z, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!banned(&pins.settings, z.parse().unwrap()), "an allowlisted address is banned in the kernel");
    let served = served(&format!("/v1/decisions?ip={z}"));
    assert!(served.is_null() || served.as_array().is_some_and(Vec::is_empty), "{served}");
    let listed = crowd(&state, &["allowlist", "list", "-o", "json"]);
    assert!(listed.contains(z) && listed.contains("admin"), "{listed}");

    // Fleet and audit.
    b.goto(&format!("{base}/fleet"));
    assert!(b.exists("#machines") && b.exists("#bouncers") && b.exists("#edges"));
    b.screenshot("fleet");
    b.goto(&format!("{base}/audit"));
    let audit = b.text("#audit");
    assert!(audit.contains("ban") && audit.contains(ATTACKER) && audit.contains("unban"), "{audit}");
    b.screenshot("audit");
    b.set_window_size(390, 844);
    b.goto(&format!("{base}/overview"));
    b.wait_for_css("#drops-chart canvas", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500));
    b.screenshot("overview-phone");
    b.set_window_size(1280, 900);

    // Logout ends the session.
    b.click("#logout");
    b.wait_for_css("#sign-in", Duration::from_secs(5));
    let (status, _) =
        post(&format!("{base}/decisions"), &admin_cookie, Some(&admin_csrf), "target=192.0.2.92&duration=1h");
    assert_eq!(status, 401, "the logged-out session still works");

    // A viewer: no control on the page, and its requests are refused.
    sign_in(&b, &base, "viewer", VIEWER_PW);
    b.wait_for_css("#who", Duration::from_secs(15));
    b.goto(&format!("{base}/decisions"));
    assert!(!b.exists("#ban-form"), "a viewer is offered the ban form");
    assert!(!b.exists("button.unban"), "a viewer is offered unban buttons");
    let (cookie, token) = (session_cookie(&b), csrf(&b));
    let (status, body) = post(&format!("{base}/decisions"), &cookie, Some(&token), "target=192.0.2.93&duration=1h");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("viewers cannot change anything"), "{body}");
    let listed = crowd(&state, &["decisions", "list", "-o", "json"]);
    assert!(!listed.contains("192.0.2.93") && !listed.contains("192.0.2.92"), "{listed}");
    b.close();
}

/// The console of `crowd api` on PostgreSQL (a fleet's shared store), over HTTP: its overview
/// counts what the Local API serves its bouncers, and a ban made on it is served to them.
#[test]
fn the_console_of_an_api_on_postgresql_counts_and_bans_what_bouncers_see() {
    let api = crowd_tests::lapi::Api::start_pg();
    api.crowd(&["console", "users", "add", "ann", "--role", "admin", "--password", ADMIN_PW]);
    let agent = api.machine("agent1");
    api.push_ssh_bf(&agent, "203.0.113.5");
    api.crowd(&["decisions", "add", "198.51.100.9", "--duration", "1h"]);
    let key = api.bouncer("fw");
    let served = api.get("/v1/decisions", &key).json();
    let n = served.as_array().map_or(0, Vec::len);
    assert_eq!(n, 2, "{served}");
    let agent_http: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let mut resp = agent_http
        .post(&format!("{}/console/login", api.url))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("name=ann&password={ADMIN_PW}").as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{}", resp.body_mut().read_to_string().unwrap_or_default());
    let set = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().trim_start_matches("crowd_console=").to_owned();
    let page = |path: &str| -> String {
        let mut r = agent_http
            .get(&format!("{}/console{path}", api.url))
            .header("Cookie", &format!("crowd_console={cookie}"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.body_mut().read_to_string().unwrap()
    };
    let overview = page("/overview");
    assert!(overview.contains(&format!("id=\"decisions-total\">{n}<")), "{overview}");
    assert!(overview.contains("203.0.113.5"), "the alert's source is among the top sources");
    let token = page("/decisions").split("X-CSRF-Token\": \"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let (status, body) = post(
        &format!("{}/console/decisions", api.url),
        &cookie,
        Some(&token),
        "target=192.0.2.44&duration=2h&reason=pg",
    );
    assert_eq!(status, 200, "{body}");
    let served = api.get("/v1/decisions?ip=192.0.2.44", &key).json();
    assert_eq!(served[0]["origin"], "cscli", "{served}");
    assert_eq!(served[0]["scenario"], "pg", "{served}");
    let alerts = page("/alerts?source=203.0.113.5");
    assert!(alerts.contains("ssh-bf") && alerts.contains("agent1"), "{alerts}");
    assert!(page("/audit").contains("192.0.2.44"));
    assert!(page("/fleet").contains("agent1") && page("/fleet").contains("fw"));
}

/// An open console keeps a live feed (server-sent events, a response that never ends): it ends
/// with its session (logout), and the API still stops at once on SIGTERM.
#[test]
fn an_open_live_feed_ends_with_its_session_and_does_not_hold_the_api_at_shutdown() {
    use std::io::{Read, Write};
    let mut api = crowd_tests::lapi::Api::start();
    api.crowd(&["console", "users", "add", "ann", "--role", "viewer", "--password", VIEWER_PW]);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let login = || {
        let resp = agent
            .post(&format!("{}/console/login", api.url))
            .content_type("application/x-www-form-urlencoded")
            .send(format!("name=ann&password={VIEWER_PW}").as_bytes())
            .unwrap();
        let set = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
        set.split(';').next().unwrap().to_owned()
    };
    let open = |cookie: &str| {
        let mut feed = std::net::TcpStream::connect(api.addr).unwrap();
        write!(
            feed,
            "GET /console/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        feed.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = [0u8; 512];
        let n = feed.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");
        feed
    };
    // Logout ends the feed of that session (it checks its session every 15 s).
    let cookie = login();
    let mut feed = open(&cookie);
    let mut r = agent.get(&format!("{}/console/overview", api.url)).header("Cookie", &cookie).call().unwrap();
    let page = r.body_mut().read_to_string().unwrap();
    let token = page.split("X-CSRF-Token\": \"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let out = agent
        .post(&format!("{}/console/logout", api.url))
        .header("Cookie", &cookie)
        .content_type("application/x-www-form-urlencoded")
        .send(format!("csrf={token}").as_bytes())
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    // The response ends (its last chunk); the connection itself may stay for keep-alive.
    let t = Instant::now();
    let mut rest = Vec::new();
    while !rest.ends_with(b"0\r\n\r\n") {
        let mut buf = [0u8; 4096];
        let n = feed.read(&mut buf).unwrap_or(0);
        assert!(n > 0 && t.elapsed() < Duration::from_secs(40), "the feed outlived its session: {:?}", t.elapsed());
        rest.extend_from_slice(&buf[..n]);
    }
    eprintln!("the feed ended {} ms after its logout", t.elapsed().as_millis());
    // Another session's feed: SIGTERM stops the API at once.
    let _feed = open(&login());
    let t = Instant::now();
    let status = api.terminate(Duration::from_secs(10));
    assert!(status.is_some(), "crowd api still runs 10 s after SIGTERM with a live feed open");
    eprintln!("stopped {} ms after SIGTERM with a live feed open", t.elapsed().as_millis());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}
