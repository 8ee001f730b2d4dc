//! A blocking client of a CrowdSec-compatible central API (crowd's community server or
//! CrowdSec's), speaking `/v3`: registration, login (the token kept and renewed a minute before
//! it expires, and after a 401), signals, the decision stream (with crowd's `wait=` long poll
//! when the server is crowd's) and blocklist links with `If-Modified-Since`.
use std::time::Duration;

use serde_json::{Value, json};

use super::credentials::Credentials;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{0}: {1}")]
    Status(u16, String),
    /// The server could not be reached or the answer not read.
    #[error("{0}")]
    Transport(String),
    /// The answer is not what the contract says.
    #[error("unexpected answer: {0}")]
    Invalid(String),
}

/// A member's connection to its central API.
pub struct Client {
    creds: Credentials,
    agent: ureq::Agent,
    scenarios: Vec<String>,
    token: Option<(String, i64)>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent(concat!("crowd/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A successful answer's headers and body, or the server's error.
fn answer(
    r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(ureq::http::HeaderMap, String), ClientError> {
    let mut r = r.map_err(|e| ClientError::Transport(e.to_string()))?;
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if (200..300).contains(&status) {
        Ok((r.headers().clone(), body))
    } else {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        Err(ClientError::Status(status, msg))
    }
}

/// Registers `machine_id` at `url` (ending with `/`) with an organisation's enrollment key.
///
/// # Errors
/// The server's refusal, or no answer.
pub fn register(url: &str, machine_id: &str, password: &str, enroll_key: Option<&str>) -> Result<(), ClientError> {
    let body = json!({"machine_id": machine_id, "password": password, "registration_token": enroll_key});
    answer(
        agent(Duration::from_secs(10))
            .post(format!("{url}v3/watchers"))
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    )
    .map(drop)
}

impl Client {
    /// A client for `creds`, logging in with the scenarios the member runs.
    #[must_use]
    pub fn new(creds: Credentials, scenarios: Vec<String>) -> Client {
        Client { creds, agent: agent(Duration::from_secs(75)), scenarios, token: None }
    }

    /// The server's base URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.creds.url
    }

    /// Logs in (again); the token's expiry (Unix seconds).
    ///
    /// # Errors
    /// Refused credentials, no answer, an answer without a token or an RFC 3339 `expire`.
    pub fn login(&mut self) -> Result<i64, ClientError> {
        let body =
            json!({"machine_id": self.creds.login, "password": self.creds.password, "scenarios": self.scenarios});
        let (_, text) = answer(
            self.agent
                .post(format!("{}v3/watchers/login", self.creds.url))
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )?;
        let v: Value = serde_json::from_str(&text).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let token = v["token"].as_str().ok_or_else(|| ClientError::Invalid("no token".into()))?.to_owned();
        let expire = v["expire"]
            .as_str()
            .and_then(crate::community::wire::unix_of)
            .ok_or_else(|| ClientError::Invalid(format!("expire `{}` is not RFC 3339", v["expire"])))?;
        self.token = Some((token, expire));
        Ok(expire)
    }

    fn bearer(&mut self) -> Result<String, ClientError> {
        let fresh = self.token.as_ref().is_some_and(|(_, exp)| *exp - 60 > crate::clock::unix_now());
        if !fresh {
            self.login()?;
        }
        Ok(format!("Bearer {}", self.token.as_ref().map(|t| t.0.as_str()).unwrap_or_default()))
    }

    /// One authenticated request, logging in again once after a 401.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(ureq::http::HeaderMap, String), ClientError> {
        for attempt in 0..2 {
            let auth = self.bearer()?;
            let url = format!("{}{path}", self.creds.url);
            let r = match (method, body) {
                ("POST", Some(b)) => self
                    .agent
                    .post(&url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send(b.to_string()),
                _ => self.agent.get(&url).header("Authorization", &auth).call(),
            };
            match answer(r) {
                Err(ClientError::Status(401, _)) if attempt == 0 => self.token = None,
                other => return other,
            }
        }
        Err(ClientError::Status(401, "refused after a new login".into()))
    }

    /// Sends signals (CrowdSec's batches are at most 50).
    ///
    /// # Errors
    /// The server's refusal, or no answer.
    pub fn push(&mut self, signals: &[Value]) -> Result<(), ClientError> {
        self.call("POST", "v3/signals", Some(&Value::Array(signals.to_vec()))).map(drop)
    }

    /// The decision stream: everything with `startup`, else what changed since the last pull;
    /// `wait` asks crowd's server to hold an empty answer until something is published; with
    /// whether the server said it holds them (crowd's `x-crowd-long-poll` header).
    ///
    /// # Errors
    /// The server's refusal, no answer, an answer that is not JSON.
    pub fn pull(&mut self, startup: bool, wait: Option<Duration>) -> Result<(Value, bool), ClientError> {
        let mut q = Vec::new();
        if startup {
            q.push("startup=true".to_owned());
        }
        if let Some(w) = wait {
            q.push(format!("wait={}s", w.as_secs()));
        }
        let path = if q.is_empty() {
            "v3/decisions/stream".to_owned()
        } else {
            format!("v3/decisions/stream?{}", q.join("&"))
        };
        let (headers, text) = self.call("GET", &path, None)?;
        let held = headers.contains_key(crate::community::server::LONG_POLL);
        let v = serde_json::from_str(&text).map_err(|e| ClientError::Invalid(format!("stream: {e}")))?;
        Ok((v, held))
    }

    /// A blocklist link's body, or `None` when it did not change since `since` (an HTTP date),
    /// with its `Last-Modified`.
    ///
    /// # Errors
    /// An error status, no answer.
    pub fn fetch_list(&self, url: &str, since: Option<&str>) -> Result<Option<(String, Option<String>)>, ClientError> {
        let mut req = self.agent.get(url);
        if let Some(s) = since {
            req = req.header("If-Modified-Since", s);
        }
        let mut r = req.call().map_err(|e| ClientError::Transport(e.to_string()))?;
        let status = r.status().as_u16();
        if status == 304 {
            return Ok(None);
        }
        let modified = r.headers().get("last-modified").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Status(status, body));
        }
        Ok(Some((body, modified)))
    }
}
