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
/// Failed logins allowed per client address and name within [`WINDOW`] seconds.
const MAX_FAILURES: usize = 5;
/// Failed logins allowed per client address within [`WINDOW`] seconds, whatever the names.
const MAX_FAILURES_PER_ADDRESS: usize = 30;
const WINDOW: i64 = 60;
/// Password checks running at once (Argon2 takes its memory and a CPU each).
const CHECKS: usize = 2;

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

/// Recent login attempts that failed (or are being checked), per client address and name and
/// per address. An attempt is counted before its password is checked, so parallel guesses
/// count too; a success takes its own back.
pub struct Limiter {
    attempts: Mutex<HashMap<(IpAddr, String), Vec<i64>>>,
    per_address: Mutex<HashMap<IpAddr, Vec<i64>>>,
    checks: tokio::sync::Semaphore,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter {
            attempts: Mutex::default(),
            per_address: Mutex::default(),
            checks: tokio::sync::Semaphore::new(CHECKS),
        }
    }
}

fn take<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Vec<i64>>, k: K, now: i64, max: usize) -> Result<(), i64> {
    if m.len() > 10_000 {
        m.retain(|_, v| v.iter().any(|t| *t > now - WINDOW));
    }
    let v = m.entry(k).or_default();
    v.retain(|t| *t > now - WINDOW);
    if v.len() >= max {
        return Err((v[0] + WINDOW - now).max(1));
    }
    v.push(now);
    Ok(())
}

impl Limiter {
    /// Counts an attempt of `name` from `ip`; `Err(seconds)` to wait when there were too many.
    fn begin(&self, ip: IpAddr, name: &str, now: i64) -> Result<(), i64> {
        let (Ok(mut a), Ok(mut p)) = (self.attempts.lock(), self.per_address.lock()) else { return Ok(()) };
        let key = (ip, name.to_lowercase());
        if let Some(v) = a.get_mut(&key) {
            v.retain(|t| *t > now - WINDOW);
            if v.len() >= MAX_FAILURES {
                return Err((v[0] + WINDOW - now).max(1));
            }
        }
        take(&mut p, ip, now, MAX_FAILURES_PER_ADDRESS)?;
        take(&mut a, key, now, MAX_FAILURES)
    }

    /// The attempt succeeded: it does not count.
    fn succeeded(&self, ip: IpAddr, name: &str) {
        if let Ok(mut a) = self.attempts.lock()
            && let Some(v) = a.get_mut(&(ip, name.to_lowercase()))
        {
            v.pop();
        }
        if let Ok(mut p) = self.per_address.lock()
            && let Some(v) = p.get_mut(&ip)
        {
            v.pop();
        }
    }
}

/// What a console user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Looks and changes.
    Admin,
    /// Only looks.
    Viewer,
}

impl Role {
    /// The role a stored name means (an unknown one only looks).
    #[must_use]
    pub fn parse(s: &str) -> Role {
        if s == "admin" { Role::Admin } else { Role::Viewer }
    }

    /// Its name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// The signed-in user of a request.
#[derive(Clone, Debug)]
pub struct User {
    /// Login name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's key in the store (its cookie's SHA-256).
    pub session: String,
}

impl User {
    /// May change things.
    #[must_use]
    pub fn admin(&self) -> bool {
        self.role == Role::Admin
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
            NoUser::Failed(m) => {
                tracing::warn!(error = %m, "console: reading a session");
                (StatusCode::INTERNAL_SERVER_ERROR, "the store failed: see the daemon's log").into_response()
            }
        }
    }
}

impl FromRequestParts<Arc<ApiState>> for User {
    type Rejection = NoUser;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<ApiState>) -> Result<User, NoUser> {
        let page = parts.method == axum::http::Method::GET && !parts.headers.contains_key("hx-request");
        let Some(t) = cookie(&parts.headers) else { return Err(NoUser::SignIn(page)) };
        let session = digest(&t);
        let h = session.clone();
        let found =
            st.db.run(move |s| s.console_session(&h, now())).await.map_err(|e| NoUser::Failed(e.to_string()))?;
        let s = found.ok_or(NoUser::SignIn(page))?;
        Ok(User { name: s.user, role: Role::parse(&s.role), csrf: s.csrf, session })
    }
}

/// A change's checks: an admin, with the session's CSRF token (form field `csrf` or header
/// `X-CSRF-Token`). 403 otherwise, with the reason.
pub fn may_change(user: &User, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Page> {
    if !user.admin() {
        return Err(view::refused(StatusCode::FORBIDDEN, "viewers cannot change anything"));
    }
    carries_token(user, headers, form_token)
}

/// The request carries the session's CSRF token (header `X-CSRF-Token` or form field `csrf`);
/// 403 otherwise.
fn carries_token(user: &User, headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Page> {
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).or(form_token).unwrap_or("");
    if sent.is_empty() || !same(sent, &user.csrf) {
        return Err(view::refused(
            StatusCode::FORBIDDEN,
            "the form is stale or forged (CSRF token missing or wrong): reload the page",
        ));
    }
    Ok(())
}

/// A hash no password matches, checked when the name is unknown.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&token()).unwrap_or_default())
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
    let Ok(form) = view::form::<LoginForm>(&body) else {
        return again(StatusCode::BAD_REQUEST, "give a name and a password");
    };
    let name = form.name.trim().to_owned();
    let ip = crate::addr::canonical_ip(peer.ip());
    if let Err(wait) = st.console.sessions.begin(ip, &name, t) {
        return again(StatusCode::TOO_MANY_REQUESTS, &format!("too many failed attempts: try again in {wait} s"));
    }
    let n = name.clone();
    let user = match st.db.run(move |s| s.console_user(&n)).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "console: reading a user");
            return again(StatusCode::INTERNAL_SERVER_ERROR, "the store failed: see the daemon's log");
        }
    };
    // Argon2 takes a while: off the async threads, a few at a time; an unknown name is checked
    // against a dummy hash, so that it takes as long as a wrong password.
    let password = form.password;
    let ok = {
        let Ok(_permit) = st.console.sessions.checks.acquire().await else {
            return again(StatusCode::SERVICE_UNAVAILABLE, "stopping");
        };
        tokio::task::spawn_blocking(move || match user {
            Some(u) => crate::lapi::auth::verify_password(&password, &u.password_hash),
            None => {
                let _ = crate::lapi::auth::verify_password(&password, dummy_hash());
                false
            }
        })
        .await
        .unwrap_or(false)
    };
    if !ok {
        tracing::warn!(user = %name, from = %ip, "console: failed login");
        let (who, what) = (name.clone(), format!("from {ip}"));
        let _ = st.db.run(move |s| s.audit(t, &who, "failed login", &what)).await;
        return again(StatusCode::UNAUTHORIZED, "wrong name or password");
    }
    st.console.sessions.succeeded(ip, &name);
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
    if let Err(refused) = carries_token(&user, &headers, token.as_deref()) {
        return refused.into_response();
    }
    let (h, who) = (user.session.clone(), user.name.clone());
    let _ = st
        .db
        .run(move |s| {
            s.console_session_delete(&h)?;
            s.audit(now(), &who, "logout", "")
        })
        .await;
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
            assert_eq!(l.begin(ip, "ann", 100), Ok(()));
        }
        assert_eq!(l.begin(ip, "Ann", 110), Err(50), "attempts count before they are checked; names fold case");
        assert_eq!(l.begin("192.0.2.2".parse().unwrap(), "ann", 110), Ok(()), "per address");
        assert_eq!(l.begin(ip, "bob", 110), Ok(()), "per name: another user can still sign in");
        assert_eq!(l.begin(ip, "ann", 161), Ok(()), "the window passed");
        // A success gives its attempt back.
        let l = Limiter::default();
        for _ in 0..20 {
            assert_eq!(l.begin(ip, "ann", 100), Ok(()));
            l.succeeded(ip, "ann");
        }
        // Many names from one address: capped too.
        let l = Limiter::default();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            assert_eq!(l.begin(ip, &format!("u{i}"), 100), Ok(()));
        }
        assert!(l.begin(ip, "another", 100).is_err());
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
        let admin = User { name: "a".into(), role: Role::Admin, csrf: "tok".into(), session: String::new() };
        let viewer = User { role: Role::Viewer, ..admin.clone() };
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
