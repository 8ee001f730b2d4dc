//! Notifications: CrowdSec's `http` notification plugin configuration (`notifications/*.yaml`:
//! `type: http`, `name`, `url`, `method`, `headers`, `format`, `timeout`, `max_retry`,
//! `group_wait`, `group_threshold`), named by profiles' `notifications:`.
//!
//! `format` is a template over the alerts of one delivery: CrowdSec's default `{{.|toJson}}` sends
//! them as a JSON array; any other is a Go `text/template` as CrowdSec's (`crate::gotmpl`), or a
//! minijinja (Jinja) template that sees them as `alerts` (one with `{%` blocks, or that is no Go
//! template); one that is neither is refused at load, named.
//! Each notifier has its own thread: alerts are grouped for `group_wait` (or until
//! `group_threshold` of them), sent with `timeout`, and retried `max_retry` times with doubling
//! waits; a failure is logged, never fatal.
use std::{
    path::Path,
    sync::mpsc::{Receiver, RecvTimeoutError, Sender},
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::Value;

/// Why a notification file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {field}: {message}")]
pub struct NotifyError {
    /// The file.
    pub path: String,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    max_retry: Option<u32>,
    #[serde(default)]
    group_wait: Option<String>,
    #[serde(default)]
    group_threshold: Option<usize>,
    // Accepted for compatibility, not used.
    #[serde(default)]
    #[allow(dead_code)]
    log_level: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    skip_tls_verification: Option<bool>,
}

/// How a delivery's body is made.
#[derive(Clone, Debug)]
enum Format {
    Json,
    Go(std::sync::Arc<crate::gotmpl::GoTemplate>),
    Jinja(String),
}

/// One configured HTTP notifier.
#[derive(Clone, Debug)]
pub struct Notifier {
    /// Its name (what profiles refer to).
    pub name: String,
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    format: Format,
    timeout: Duration,
    max_retry: u32,
    group_wait: Duration,
    group_threshold: usize,
}

fn dur(path: &str, field: &str, v: Option<&str>, default: Duration) -> Result<Duration, NotifyError> {
    match v {
        None => Ok(default),
        Some(s) => crate::clock::go_duration_secs(s).map(Duration::from_secs_f64).ok_or_else(|| NotifyError {
            path: path.into(),
            field: field.into(),
            message: format!("`{s}` is not a duration"),
        }),
    }
}

impl Notifier {
    /// Reads one `http` notification file (other types are `Ok(None)`: not handled by crowd).
    ///
    /// # Errors
    /// A field that does not fit, named with the file.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Option<Notifier>, NotifyError> {
        let p = path.display().to_string();
        let spec: Spec = serde_yaml::from_str(text).map_err(|e| NotifyError {
            path: p.clone(),
            field: e.location().map_or_else(String::new, |l| format!("line {}", l.line())),
            message: e.to_string(),
        })?;
        if spec.kind != "http" {
            return Ok(None);
        }
        let format = match spec.format.as_deref().map(str::trim) {
            None => Format::Json,
            Some(f) if f.replace(' ', "") == "{{.|toJson}}" => Format::Json,
            Some(f) => {
                let go =
                    if f.contains("{%") { Err("a Jinja block".to_owned()) } else { crate::gotmpl::GoTemplate::new(f) };
                match go {
                    Ok(t) => Format::Go(std::sync::Arc::new(t)),
                    Err(go_err) => {
                        let mut env = minijinja::Environment::new();
                        env.add_template("t", f).map_err(|e| NotifyError {
                            path: p.clone(),
                            field: "format".into(),
                            message: format!("neither a Go template ({go_err}) nor a Jinja one ({e})"),
                        })?;
                        Format::Jinja(f.to_owned())
                    }
                }
            }
        };
        Ok(Some(Notifier {
            name: spec.name,
            url: spec.url,
            method: spec.method.unwrap_or_else(|| "POST".into()).to_uppercase(),
            headers: spec.headers.into_iter().collect(),
            format,
            timeout: dur(&p, "timeout", spec.timeout.as_deref(), Duration::from_secs(10))?,
            max_retry: spec.max_retry.unwrap_or(3),
            group_wait: dur(&p, "group_wait", spec.group_wait.as_deref(), Duration::ZERO)?,
            group_threshold: spec.group_threshold.unwrap_or(0),
        }))
    }

    /// The body for a group of alerts.
    ///
    /// # Errors
    /// Template rendering errors.
    pub fn body(&self, alerts: &[Value]) -> Result<String, String> {
        match &self.format {
            Format::Json => serde_json::to_string(alerts).map_err(|e| e.to_string()),
            Format::Go(t) => t.render(alerts),
            Format::Jinja(t) => {
                let mut env = minijinja::Environment::new();
                env.add_template("t", t).map_err(|e| e.to_string())?;
                env.get_template("t")
                    .and_then(|t| t.render(minijinja::context! { alerts => alerts }))
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn send(&self, agent: &ureq::Agent, body: &str) -> Result<(), String> {
        let mut req = ureq::http::Request::builder().method(self.method.as_str()).uri(&self.url);
        let mut typed = false;
        for (k, v) in &self.headers {
            typed |= k.eq_ignore_ascii_case("content-type");
            req = req.header(k, v);
        }
        if !typed && matches!(self.format, Format::Json) {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.to_owned()).map_err(|e| e.to_string())?;
        match agent.run(req) {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Delivers one group, retrying.
    fn deliver(&self, agent: &ureq::Agent, alerts: &[Value]) {
        let body = match self.body(alerts) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(notifier = %self.name, error = %e, "notification template");
                return;
            }
        };
        let mut wait = Duration::from_millis(500);
        for attempt in 0..=self.max_retry {
            match self.send(agent, &body) {
                Ok(()) => return,
                Err(e) if attempt < self.max_retry => {
                    tracing::warn!(notifier = %self.name, error = %e, attempt, "notification failed: retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => tracing::error!(notifier = %self.name, error = %e, "notification dropped after retries"),
            }
        }
    }

    fn run(self, rx: Receiver<Value>) {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(self.timeout)).build().into();
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            let until = Instant::now() + self.group_wait;
            while self.group_threshold == 0 || group.len() < self.group_threshold {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match rx.recv_timeout(left) {
                    Ok(a) => group.push(a),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            self.deliver(&agent, &group);
        }
    }
}

/// Every notifier of a folder (`*.yaml`), all or nothing.
///
/// # Errors
/// The first file that does not load.
pub fn load_dir(dir: &Path) -> Result<Vec<Notifier>, NotifyError> {
    let (ok, mut bad) = load_dir_each(dir)?;
    if bad.is_empty() { Ok(ok) } else { Err(bad.remove(0)) }
}

/// Every notifier of a folder that loads, and the errors of those that do not (an installed
/// CrowdSec's folder holds plugin files crowd does not run, such as `slack.yaml`).
///
/// # Errors
/// The folder cannot be read.
pub fn load_dir_each(dir: &Path) -> Result<(Vec<Notifier>, Vec<NotifyError>), NotifyError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| NotifyError { path: dir.display().to_string(), field: String::new(), message: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for f in files {
        let loaded = std::fs::read_to_string(&f)
            .map_err(|e| NotifyError { path: f.display().to_string(), field: String::new(), message: e.to_string() })
            .and_then(|text| {
                warn_if_exposed(&f, &text);
                Notifier::from_yaml(&f, &text)
            });
        match loaded {
            Ok(n) => out.extend(n),
            Err(e) => bad.push(e),
        }
    }
    Ok((out, bad))
}

/// Notification files may carry credentials (`Authorization` headers, tokens in URLs) and say
/// where alerts go: one that others may change, or read while it holds headers, gets a warning.
fn warn_if_exposed(path: &Path, text: &str) {
    let Some(mode) = crate::private::mode(path) else { return };
    if mode & 0o022 != 0 {
        tracing::warn!(file = %path.display(), mode = format!("{mode:04o}"), "a notification file others may change");
    } else if mode & 0o004 != 0 && text.contains("headers") {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:04o}"),
            "a notification file with headers (credentials?) that every local user may read: chmod 600 it"
        );
    }
}

/// Hands alerts to the notifiers' threads.
#[derive(Clone, Default)]
pub struct Dispatcher {
    senders: Vec<(String, Sender<Value>)>,
}

impl Dispatcher {
    /// Starts one thread per notifier.
    #[must_use]
    pub fn start(notifiers: Vec<Notifier>) -> Dispatcher {
        let mut senders = Vec::new();
        for n in notifiers {
            let (tx, rx) = std::sync::mpsc::channel();
            let name = n.name.clone();
            if std::thread::Builder::new().name(format!("notify-{name}")).spawn(move || n.run(rx)).is_ok() {
                senders.push((name, tx));
            }
        }
        Dispatcher { senders }
    }

    /// Sends `alert` to the notifiers named (unknown names are logged once per call).
    pub fn notify(&self, names: &[String], alert: &Value) {
        for name in names {
            match self.senders.iter().find(|(n, _)| n == name) {
                Some((_, tx)) => {
                    let _ = tx.send(alert.clone());
                }
                None => tracing::warn!(notifier = %name, "a profile names a notification that is not configured"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowdsec_http_config_loads_and_renders() {
        let y = "type: http\nname: http_default\nlog_level: info\nformat: |\n  {{.|toJson}}\nurl: http://127.0.0.1:9/x\nmethod: POST\nheaders:\n  Authorization: token\nmax_retry: 2\ntimeout: 5s\n";
        let n = Notifier::from_yaml(Path::new("http.yaml"), y).unwrap().unwrap();
        assert_eq!((n.name.as_str(), n.max_retry, n.timeout), ("http_default", 2, Duration::from_secs(5)));
        let a = serde_json::json!({"scenario": "crowdsecurity/ssh-bf"});
        assert_eq!(n.body(std::slice::from_ref(&a)).unwrap(), r#"[{"scenario":"crowdsecurity/ssh-bf"}]"#);
        let j = "type: http\nname: j\nurl: http://127.0.0.1:9/\nformat: '{% for a in alerts %}{{ a.scenario }};{% endfor %}'\n";
        let n = Notifier::from_yaml(Path::new("j.yaml"), j).unwrap().unwrap();
        assert_eq!(n.body(&[a.clone(), a]).unwrap(), "crowdsecurity/ssh-bf;crowdsecurity/ssh-bf;");
        assert!(Notifier::from_yaml(Path::new("s.yaml"), "type: slack\nname: s\nurl: x\n").unwrap().is_none());
        // A Go template, as CrowdSec users write them.
        let go = "type: http\nname: g\nurl: x\nformat: '{{range .}}{{.Scenario}} {{.Source.IP}};{{end}}'\n";
        let n = Notifier::from_yaml(Path::new("g.yaml"), go).unwrap().unwrap();
        let b = serde_json::json!({"scenario": "s", "source": {"ip": "192.0.2.1"}});
        assert_eq!(n.body(&[b.clone(), b]).unwrap(), "s 192.0.2.1;s 192.0.2.1;");
        // Neither Go nor Jinja: refused at load, naming the field.
        let bad = "type: http\nname: b\nurl: x\nformat: '{{range .}}{{end'\n";
        assert_eq!(Notifier::from_yaml(Path::new("b.yaml"), bad).unwrap_err().field, "format");
        assert!(Notifier::from_yaml(Path::new("u.yaml"), "type: http\nname: u\nurl: x\ncolour: red\n").is_err());
    }
}
