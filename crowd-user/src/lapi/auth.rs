//! Local API authentication: bouncer API keys (`X-Api-Key`, kept as SHA-512 hex, identity
//! (key, address) like CrowdSec), machine passwords (Argon2) and the machines' JWTs (HS256,
//! one hour, from `Authorization: Bearer` or the `jwt` cookie).
use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use base64::Engine;
use sha2::{Digest, Sha512};

use super::{ApiError, ApiState};
use crate::store::BouncerRow;

/// How long a machine token lasts (CrowdSec: one hour).
pub const TOKEN_TTL_SECS: u64 = 3600;

/// 32 random bytes as base64 without padding (the shape of CrowdSec's bouncer keys).
#[must_use]
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
}

/// The stored form of an API key.
#[must_use]
pub fn hash_key(key: &str) -> String {
    Sha512::digest(key.as_bytes()).iter().fold(String::with_capacity(128), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An Argon2 PHC string for a machine password.
///
/// # Errors
/// Argon2 failures (never for sane input).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ApiError::Internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::Internal(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Whether `password` matches a PHC string.
#[must_use]
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A machine token's claims.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The machine id.
    pub id: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Issued at.
    pub orig_iat: u64,
}

/// A signed token for `machine` and its expiry.
///
/// # Errors
/// Signing failures.
pub fn issue(key: &[u8], machine: &str, now: u64) -> Result<(String, u64), ApiError> {
    let exp = now + TOKEN_TTL_SECS;
    let claims = Claims { id: machine.to_owned(), exp, orig_iat: now };
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(key))
        .map(|t| (t, exp))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The claims of a valid, unexpired token.
///
/// # Errors
/// [`ApiError::Unauthorized`] for forged, malformed or expired tokens.
pub fn verify(key: &[u8], token: &str) -> Result<Claims, ApiError> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, &jsonwebtoken::DecodingKey::from_secret(key), &v)
        .map(|d| d.claims)
        .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))
}

/// The client's address as CrowdSec records it.
#[must_use]
pub fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| crate::addr::canonical_ip(c.0.ip()).to_string())
        .unwrap_or_default()
}

/// An authenticated bouncer (from `X-Api-Key`).
pub struct Bouncer(pub BouncerRow);

impl FromRequestParts<Arc<ApiState>> for Bouncer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let Some(key) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) else {
            // No key: a verified client certificate with a bouncers' OU will do.
            let role = parts.extensions.get::<super::tls::Peer>().and_then(|p| state.roles.of(p));
            let Some(super::tls::CertRole::Bouncer(cn)) = role else { return Err(ApiError::Forbidden) };
            let (ip, now) = (client_ip(parts), super::decisions::now());
            let row = state.db.run(move |s| s.tls_bouncer(&cn, &ip, now)).await?;
            return row.map(Bouncer).ok_or(ApiError::Forbidden);
        };
        let hash = hash_key(key.trim());
        let ip = client_ip(parts);
        let agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let now = super::decisions::now();
        let row = state
            .db
            .run(move |s| {
                let Some(b) = s.bouncer_for(&hash, &ip, now)? else { return Ok(None) };
                let (kind, version) = agent.split_once('/').unwrap_or((agent.as_str(), ""));
                if !agent.is_empty() && (b.kind != kind || b.version != version) {
                    s.set_bouncer_agent(b.id, kind, version)?;
                }
                Ok(Some(b))
            })
            .await?;
        row.map(Bouncer).ok_or(ApiError::Forbidden)
    }
}

/// An authenticated, validated machine (from its JWT).
pub struct Machine(pub String);

impl FromRequestParts<Arc<ApiState>> for Machine {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let token = h("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| h("cookie")?.split(';').find_map(|c| c.trim().strip_prefix("jwt=").map(str::to_owned)));
        let Some(token) = token else {
            // No token: a verified client certificate with an agents' OU makes machine `<CN>@<ip>`.
            let role = parts.extensions.get::<super::tls::Peer>().and_then(|p| state.roles.of(p));
            let Some(super::tls::CertRole::Agent(cn)) = role else {
                return Err(ApiError::Unauthorized("auth header is empty".into()));
            };
            let ip = client_ip(parts);
            let id = format!("{cn}@{ip}");
            let (m, now) = (id.clone(), super::decisions::now());
            // Not a PHC string: no password ever matches it, so only the certificate logs it in.
            state.db.run(move |s| s.upsert_machine(&m, "tls", true, &ip, now)).await?;
            return Ok(Machine(id));
        };
        let claims = verify(&state.jwt_key(), token.trim())?;
        let id = claims.id.clone();
        let m = state.db.run(move |s| s.machine(&id)).await?;
        match m {
            Some(m) if m.validated => Ok(Machine(claims.id)),
            _ => Err(ApiError::Unauthorized("machine unknown or not validated".into())),
        }
    }
}

/// A bouncer or an agent: routes both may call (`POST /v1/usage-metrics`). An `X-Api-Key`
/// makes a bouncer, a token (header or cookie) a machine; with neither, a client certificate
/// decides by its OU.
pub enum Caller {
    /// From its API key or certificate.
    Bouncer(BouncerRow),
    /// Its machine id.
    Machine(String),
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let has = |name: &str| parts.headers.contains_key(name);
        let jwt_cookie = parts
            .headers
            .get("cookie")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.split(';').any(|c| c.trim().starts_with("jwt=")));
        if has("x-api-key") {
            return Bouncer::from_request_parts(parts, state).await.map(|b| Caller::Bouncer(b.0));
        }
        if !has("authorization")
            && !jwt_cookie
            && let Ok(b) = Bouncer::from_request_parts(parts, state).await
        {
            return Ok(Caller::Bouncer(b.0));
        }
        Machine::from_request_parts(parts, state).await.map(|m| Caller::Machine(m.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_like_crowdsec() {
        // sha512("abc"), as `echo -n abc | sha512sum` prints it.
        assert!(hash_key("abc").starts_with("ddaf35a193617aba"));
        assert_eq!(hash_key("abc").len(), 128);
        assert_ne!(random_token(), random_token());
        assert!(!random_token().contains('='));
    }

    #[test]
    fn tokens_expire_and_forgeries_fail() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let (t, exp) = issue(b"k1", "m1", now).unwrap();
        assert_eq!(exp, now + TOKEN_TTL_SECS);
        assert_eq!(verify(b"k1", &t).unwrap().id, "m1");
        assert!(verify(b"k2", &t).is_err(), "another key");
        let (old, _) = issue(b"k1", "m1", now - 2 * TOKEN_TTL_SECS).unwrap();
        assert!(verify(b"k1", &old).is_err(), "expired");
        assert!(verify(b"k1", "not.a.token").is_err());
    }

    #[test]
    fn passwords() {
        let h = hash_password("s3cret").unwrap();
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret!", &h));
        assert!(!verify_password("s3cret", "garbage"));
    }
}
