//! The console's handlers through its router, in process (no browser): who may look and
//! change, the CSRF check, what bad input answers, and that a ban reaches the store.
use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{Request, StatusCode, header},
};
use tower::ServiceExt;

use crate::lapi::ApiState;

struct Fixture {
    app: Router,
    st: Arc<ApiState>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let loc = crate::store::Location::new(dir.path(), None);
    let mut s = crate::store::Store::open_at(&loc).unwrap();
    for (name, role) in [("ann", "admin"), ("vic", "viewer")] {
        let hash = super::hash_password(&format!("{name}-password-1234")).unwrap();
        s.console_user_put(name, &hash, role, 1).unwrap();
    }
    let mut profile = crate::engine::profile::Profile::default();
    profile.protect(["192.0.2.1".parse().unwrap()]);
    let (_tx, changes) = tokio::sync::watch::channel(0u64);
    let st = ApiState::new(
        &loc,
        profile,
        changes,
        crate::metrics::Metrics::new(),
        crate::notify::Dispatcher::default(),
        crate::lapi::tls::Roles::default(),
        super::Options::default(),
    )
    .unwrap();
    let peer: SocketAddr = "127.0.0.1:5555".parse().unwrap();
    let app = crate::lapi::router(st.clone()).layer(MockConnectInfo(peer));
    Fixture { app, st, _dir: dir }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn form(path: &str, cookie: Option<&str>, csrf: Option<&str>, body: &str) -> Request<Body> {
    let mut r = Request::post(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, format!("crowd_console={c}"));
    }
    if let Some(t) = csrf {
        r = r.header("x-csrf-token", t);
    }
    r.body(Body::from(body.to_owned())).unwrap()
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "localhost:8080")
        .header(header::COOKIE, format!("crowd_console={cookie}"))
        .body(Body::empty())
        .unwrap()
}

/// Signs `name` in: its cookie and CSRF token.
async fn sign_in(f: &Fixture, name: &str) -> (String, String) {
    let (status, h, _) =
        call(&f.app, form("/console/login", None, None, &format!("name={name}&password={name}-password-1234"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = h.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"), "{set}");
    let cookie = set.split(';').next().unwrap().trim_start_matches("crowd_console=").to_owned();
    let (_, _, page) = call(&f.app, get("/console/decisions", &cookie)).await;
    let csrf = page.split("X-CSRF-Token\": \"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn logins_roles_csrf_and_bad_input() {
    let f = fixture().await;
    // Not signed in: pages go to the login page, changes get 401.
    let (status, h, _) =
        call(&f.app, Request::get("/console/overview").header(header::HOST, "[::1]:8080").body(Body::empty()).unwrap())
            .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(h.get(header::LOCATION).unwrap(), "/console/login");
    let (status, _, _) = call(&f.app, form("/console/decisions", None, None, "target=192.0.2.9&duration=1h")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A wrong password: the form again, with why.
    let (status, _, page) = call(&f.app, form("/console/login", None, None, "name=ann&password=nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("wrong name or password"), "{page}");
    let (admin, token) = sign_in(&f, "ann").await;
    // An edge's usage report shows on the overview and the fleet page.
    let report = r#"{"type": "crowd-enforce", "metrics": [{"meta": {"window_size_seconds": 100, "utc_now_timestamp": 1},
        "items": [{"name": "dropped", "unit": "packet", "value": 250, "labels": {"origin": "CAPI"}}]}]}"#;
    f.st.db
        .run(move |s| {
            s.usage_put("remediation_components", "edge-7", "crowd-enforce", crate::clock::unix_now(), report)
        })
        .await
        .unwrap();
    for p in ["/console/overview", "/console/fleet"] {
        let (_, _, page) = call(&f.app, get(p, &admin)).await;
        assert!(page.contains("edge-7") && page.contains("2.5"), "{p}: {page}");
    }
    // Every page renders.
    for p in ["/console/overview", "/console/alerts", "/console/decisions", "/console/fleet", "/console/audit"] {
        let (status, _, page) = call(&f.app, get(p, &admin)).await;
        assert_eq!(status, StatusCode::OK, "{p}: {page}");
        assert!(page.contains("ann · admin"), "{p}");
    }
    // A ban: without the token refused, with it stored and audited.
    let (status, _, _) =
        call(&f.app, form("/console/decisions", Some(&admin), None, "target=203.0.113.9&duration=1h")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, h, msg) =
        call(&f.app, form("/console/decisions", Some(&admin), Some(&token), "target=203.0.113.9&duration=1h&reason=r"))
            .await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(h.get("HX-Trigger").unwrap(), "console-changed");
    let rows =
        f.st.db.run(|s| s.query(&crate::store::DecisionFilter::default(), crate::clock::unix_now())).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].value.as_str(), rows[0].origin.as_str(), rows[0].reason.as_str()),
        ("203.0.113.9", "cscli", "r")
    );
    let audit = f.st.db.run(|s| s.audit_log(10)).await.unwrap();
    assert!(
        audit.iter().any(|a| a.user == "ann" && a.action == "ban" && a.detail.contains("203.0.113.9")),
        "{audit:?}"
    );
    // Bad input: a message naming what is wrong.
    for (body, status, says) in [
        ("target=203.0.113.999&duration=1h", StatusCode::BAD_REQUEST, "not an IP address"),
        ("target=0.0.0.0/0&duration=1h", StatusCode::BAD_REQUEST, "covers every address"),
        ("target=203.0.113.10&duration=forever", StatusCode::BAD_REQUEST, "expected e.g. 4h"),
        ("target=192.0.2.1&duration=1h", StatusCode::CONFLICT, "allowlisted or one of this host"),
        ("duration=1h", StatusCode::BAD_REQUEST, "the form does not read"),
    ] {
        let (got, _, msg) = call(&f.app, form("/console/decisions", Some(&admin), Some(&token), body)).await;
        assert_eq!(got, status, "{body}: {msg}");
        assert!(msg.contains(says), "{body}: {msg}");
    }
    let big = format!("target=203.0.113.11&duration=1h&reason={}", "x".repeat(70_000));
    let (got, _, msg) = call(&f.app, form("/console/decisions", Some(&admin), Some(&token), &big)).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "{msg}");
    // Extend and unban.
    let id = rows[0].id;
    let (got, _, msg) =
        call(&f.app, form(&format!("/console/decisions/{id}/extend"), Some(&admin), Some(&token), "duration=2d")).await;
    assert_eq!(got, StatusCode::OK, "{msg}");
    let (got, _, msg) =
        call(&f.app, form(&format!("/console/decisions/{id}/delete"), Some(&admin), Some(&token), "")).await;
    assert_eq!(got, StatusCode::OK, "{msg}");
    let (got, _, _) =
        call(&f.app, form(&format!("/console/decisions/{id}/delete"), Some(&admin), Some(&token), "")).await;
    assert_eq!(got, StatusCode::NOT_FOUND, "already gone");
    // A pending machine: shown with a Validate control, validated by it.
    f.st.db.run(|s| s.upsert_machine("agent-9", "hash", false, "192.0.2.9", 1)).await.unwrap();
    let (_, _, page) = call(&f.app, get("/console/fleet", &admin)).await;
    assert!(page.contains("name=\"machine\" value=\"agent-9\""), "{page}");
    let (got, _, msg) =
        call(&f.app, form("/console/machines/validate", Some(&admin), Some(&token), "machine=agent-9")).await;
    assert_eq!(got, StatusCode::OK, "{msg}");
    let m = f.st.db.run(|s| s.machine("agent-9")).await.unwrap().unwrap();
    assert!(m.validated);
    let (got, _, _) =
        call(&f.app, form("/console/machines/validate", Some(&admin), Some(&token), "machine=nobody")).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    // No kernel here: the kernel allowlist says so.
    let (got, _, msg) =
        call(&f.app, form("/console/kernel-allowlist", Some(&admin), Some(&token), "target=198.51.100.1")).await;
    assert_eq!(got, StatusCode::CONFLICT, "{msg}");
    // The allowlist: ends the ban on it, refuses new ones, and goes.
    let (got, _, msg) =
        call(&f.app, form("/console/decisions", Some(&admin), Some(&token), "target=198.51.100.0/24&duration=1h"))
            .await;
    assert_eq!(got, StatusCode::OK, "{msg}");
    let (got, _, msg) =
        call(&f.app, form("/console/allowlist", Some(&admin), Some(&token), "target=198.51.100.1&reason=monitor"))
            .await;
    assert_eq!(got, StatusCode::OK, "{msg}");
    assert!(msg.contains("1 active decision(s) on it ended"), "{msg}");
    let (got, _, msg) =
        call(&f.app, form("/console/decisions", Some(&admin), Some(&token), "target=198.51.100.1&duration=1h")).await;
    assert_eq!(got, StatusCode::CONFLICT, "{msg}");
    assert!(msg.contains("the allowlist holds 198.51.100.1"), "{msg}");
    let (_, _, page) = call(&f.app, get("/console/decisions", &admin)).await;
    assert!(page.contains("monitor"), "the allowlist is listed");
    let (got, _, _) =
        call(&f.app, form("/console/allowlist/delete", Some(&admin), Some(&token), "target=198.51.100.1")).await;
    assert_eq!(got, StatusCode::OK);
    let (got, _, _) =
        call(&f.app, form("/console/allowlist/delete", Some(&admin), Some(&token), "target=198.51.100.1")).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    // A viewer sees no control and is refused.
    let (viewer, vtoken) = sign_in(&f, "vic").await;
    let (_, _, page) = call(&f.app, get("/console/decisions", &viewer)).await;
    assert!(!page.contains("ban-form") && !page.contains("Unban"), "{page}");
    let (got, _, msg) =
        call(&f.app, form("/console/decisions", Some(&viewer), Some(&vtoken), "target=203.0.113.12&duration=1h")).await;
    assert_eq!(got, StatusCode::FORBIDDEN);
    assert!(msg.contains("viewers cannot change anything"), "{msg}");
    // Logout ends the session (another session's token does not do).
    let (got, _, _) = call(&f.app, form("/console/logout", Some(&viewer), Some(&token), "")).await;
    assert_eq!(got, StatusCode::FORBIDDEN);
    let (got, _, _) = call(&f.app, form("/console/logout", Some(&viewer), Some(&vtoken), "")).await;
    assert_eq!(got, StatusCode::SEE_OTHER);
    let (got, _, _) = call(&f.app, get("/console/overview", &viewer)).await;
    assert_eq!(got, StatusCode::SEE_OTHER, "the session ended");
}

#[tokio::test]
async fn remote_clients_are_refused_unless_allowed_and_logins_are_rate_limited() {
    let f = fixture().await;
    let far: SocketAddr = "198.51.100.7:5555".parse().unwrap();
    let remote = crate::lapi::router(f.st.clone()).layer(MockConnectInfo(far));
    let (got, _, body) =
        call(&remote, Request::get("/console/login").header(header::HOST, "127.0.0.1").body(Body::empty()).unwrap())
            .await;
    assert_eq!(got, StatusCode::FORBIDDEN);
    assert!(body.contains("--console-remote"), "{body}");
    // A page of another site whose name resolves to 127.0.0.1 sends its own name.
    let rebound =
        Request::get("/console/login").header(header::HOST, "attacker.example:8080").body(Body::empty()).unwrap();
    let (got, _, body) = call(&f.app, rebound).await;
    assert_eq!(got, StatusCode::FORBIDDEN, "{body}");
    // A change posted from another site's page.
    let mut cross = form("/console/login", None, None, "name=ann&password=ann-password-1234");
    cross.headers_mut().insert(header::ORIGIN, "http://attacker.example".parse().unwrap());
    let (got, _, body) = call(&f.app, cross).await;
    assert_eq!(got, StatusCode::FORBIDDEN, "{body}");
    let mut same = form("/console/login", None, None, "name=ann&password=ann-password-1234");
    same.headers_mut().insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
    let (got, _, body) = call(&f.app, same).await;
    assert_eq!(got, StatusCode::SEE_OTHER, "{body}");
    for _ in 0..5 {
        let (got, _, _) = call(&f.app, form("/console/login", None, None, "name=ann&password=nope")).await;
        assert_eq!(got, StatusCode::UNAUTHORIZED);
    }
    let (got, _, page) = call(&f.app, form("/console/login", None, None, "name=ann&password=ann-password-1234")).await;
    assert_eq!(got, StatusCode::TOO_MANY_REQUESTS, "the right password waits too");
    assert!(page.contains("too many failed attempts"), "{page}");
}

#[test]
fn local_hosts_are_addresses_and_localhost() {
    for h in ["127.0.0.1", "127.0.0.1:8080", "localhost", "LOCALHOST:80", "[::1]:8080", "[::1]", "192.0.2.1:443"] {
        assert!(super::local_host(h), "{h}");
    }
    for h in ["", "attacker.example", "attacker.example:8080", "localhost.attacker.example", "127.0.0.1.nip.io"] {
        assert!(!super::local_host(h), "{h}");
    }
}
