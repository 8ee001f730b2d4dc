//! Who is looking: console users (created by `crowd console users add`, Argon2 hashes as
//! machine passwords), sessions (a random cookie, `HttpOnly`, `SameSite=Strict`, `Secure` under
//! TLS, kept in the store by its SHA-256 so several API processes on one database share them),
//! the CSRF token every change must carry (per session, compared in constant time), and the
//! login rate limit (failures per client address).
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::view::{self, Page};
use crate::lapi::{ApiState, decisions::now};

/// The cookie's name.
pub const COOKIE: &str = "crowd_console";
/// How long a session lives, seconds.
pub const SESSION_TTL: i64 = 12 * 3600;
/// The roles: `admin` may change things, `viewer` only looks.
pub const ROLES: &[&str] = &["admin", "viewer"];
/// Failed logins allowed per client address within [`WINDOW`] seconds.
const MAX_FAILURES: usize = 5;
const WINDOW: i64 = 60;

/// An Argon2 hash of a console password (as machine passwords).
///
/// # Errors
/// The hasher failed.
pub fn hash_password(password: &str) -> Result<String, crate::lapi::ApiError> {
    crate::lapi::auth::hash_password(password)
}

fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Recent failed logins per client address.
#[derive(Default)]
pub struct Limiter(Mutex<HashMap<IpAddr, Vec<i64>>>);

impl Limiter {
    /// Seconds to wait before this address may try again (0: it may).
    fn wait(&self, ip: IpAddr, now: i64) -> i64 {
        let Ok(mut m) = self.0.lock() else { return 0 };
        let v = m.entry(ip).or_default();
        v.retain(|t| *t > now - WINDOW);
        if v.len() >= MAX_FAILURES { v[0] + WINDOW - now } else { 0 }
    }

    fn failed(&self, ip: IpAddr, now: i64) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 10_000 {
                m.retain(|_, v| v.iter().any(|t| *t > now - WINDOW));
            }
            m.entry(ip).or_default().push(now);
        }
    }
}

/// The signed-in user of a request.
#[derive(Clone, Debug)]
pub struct User {
    /// Login name.
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl User {
    /// May change things.
    #[must_use]
    pub fn admin(&self) -> bool {
        self.role == "admin"
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Why a request has no user.
pub enum NoUser {
    /// Not signed in: pages go to the login page, other requests get 401.
    SignIn(bool),
    /// The store failed.
    Failed(String),
}

impl IntoResponse for NoUser {
    fn into_response(self) -> Response {
        match self {
            NoUser::SignIn(true) => Redirect::to("/console/login").into_response(),
            NoUser::SignIn(false) => (StatusCode::UNAUTHORIZED, "sign in first").into_response(),
            NoUser::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, m).into_response(),
        }
    }
}

impl FromRequestParts<Arc<ApiState>> for User {
    type Rejection = NoUser;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<ApiState>) -> Result<User, NoUser> {
        let page = parts.method == axum::http::Method::GET && !parts.headers.contains_key("hx-request");
        let Some(t) = cookie(&parts.headers) else { return Err(NoUser::SignIn(page)) };
        let h = digest(&t);
        let found =
            st.db.run(move |s| s.console_session(&h, now())).await.map_err(|e| NoUser::Failed(e.to_string()))?;
        let s = found.ok_or(NoUser::SignIn(page))?;
        Ok(User { name: s.user, role: s.role, csrf: s.csrf })
    }
}

/// A change's checks: an admin, with the session's CSRF token (form field `csrf` or header
/// `X-CSRF-Token`). 403 otherwise, with the reason.
pub fn may_change(user: &User, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Page> {
    if !user.admin() {
        return Err(view::refused(StatusCode::FORBIDDEN, "viewers cannot change anything"));
    }
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).or(form_token).unwrap_or("");
    if sent.is_empty() || !same(sent, &user.csrf) {
        return Err(view::refused(
            StatusCode::FORBIDDEN,
            "the form is stale or forged (CSRF token missing or wrong): reload the page",
        ));
    }
    Ok(())
}

/// `GET /console/login`.
pub async fn login_page() -> Page {
    view::render("login.html", minijinja::context! { error => None::<String> })
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
}

/// `POST /console/login`: a session cookie, or the form again with why not.
pub async fn login(
    State(st): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let t = now();
    let again = |status: StatusCode, why: &str| {
        let mut p = view::render("login.html", minijinja::context! { error => why });
        p.status = status;
        p.into_response()
    };
    let wait = st.console.sessions.wait(peer.ip(), t);
    if wait > 0 {
        return again(StatusCode::TOO_MANY_REQUESTS, &format!("too many failed attempts: try again in {wait} s"));
    }
    let Ok(form) = view::form::<LoginForm>(&body) else {
        return again(StatusCode::BAD_REQUEST, "give a name and a password");
    };
    let name = form.name.trim().to_owned();
    let n = name.clone();
    let user = match st.db.run(move |s| s.console_user(&n)).await {
        Ok(u) => u,
        Err(e) => return again(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    // Argon2 takes a while: off the async threads.
    let password = form.password;
    let ok = tokio::task::spawn_blocking(move || {
        user.is_some_and(|u| crate::lapi::auth::verify_password(&password, &u.password_hash))
    })
    .await
    .unwrap_or(false);
    if !ok {
        st.console.sessions.failed(peer.ip(), t);
        tracing::warn!(user = %name, from = %peer.ip(), "console: failed login");
        return again(StatusCode::UNAUTHORIZED, "wrong name or password");
    }
    let (session, csrf) = (token(), token());
    let (h, who) = (digest(&session), name.clone());
    let stored = st
        .db
        .run(move |s| {
            s.console_session_put(&h, &who, &csrf, t, SESSION_TTL)?;
            s.audit(t, &who, "login", "")
        })
        .await;
    if let Err(e) = stored {
        return again(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    let secure = if st.console.opts.secure { "; Secure" } else { "" };
    let set = format!("{COOKIE}={session}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL}{secure}");
    ([(header::SET_COOKIE, set)], Redirect::to("/console/overview")).into_response()
}

/// `POST /console/logout`: ends the session (CSRF-checked, any role).
pub async fn logout(
    State(st): State<Arc<ApiState>>,
    user: User,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct F {
        csrf: Option<String>,
    }
    let token = view::form::<F>(&body).ok().and_then(|f| f.csrf);
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).or(token.as_deref()).unwrap_or("");
    if !same(sent, &user.csrf) {
        return view::refused(StatusCode::FORBIDDEN, "CSRF token missing or wrong").into_response();
    }
    if let Some(t) = cookie(&headers) {
        let h = digest(&t);
        let _ = st.db.run(move |s| s.console_session_delete(&h)).await;
    }
    let clear = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/console/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_five_failures_for_a_minute() {
        let l = Limiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(l.wait(ip, 100), 0);
            l.failed(ip, 100);
        }
        assert_eq!(l.wait(ip, 110), 50);
        assert_eq!(l.wait("192.0.2.2".parse().unwrap(), 110), 0, "per address");
        assert_eq!(l.wait(ip, 161), 0, "the window passed");
    }

    #[test]
    fn cookies_and_tokens() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; crowd_console=xyz; c=d".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_ne!(token(), token());
        assert_eq!(digest("x").len(), 64);
    }

    #[test]
    fn changes_need_an_admin_and_the_token() {
        let admin = User { name: "a".into(), role: "admin".into(), csrf: "tok".into() };
        let viewer = User { role: "viewer".into(), ..admin.clone() };
        let h = HeaderMap::new();
        assert!(may_change(&admin, &h, Some("tok")).is_ok());
        assert_eq!(may_change(&admin, &h, Some("bad")).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(may_change(&admin, &h, None).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(may_change(&viewer, &h, Some("tok")).unwrap_err().status, StatusCode::FORBIDDEN);
        let mut h = HeaderMap::new();
        h.insert("x-csrf-token", "tok".parse().unwrap());
        assert!(may_change(&admin, &h, None).is_ok());
    }
}
