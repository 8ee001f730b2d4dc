//! A `crowd api` process on a loopback port with its own store, and a small HTTP client for
//! contract tests (status, headers and body as text; 4xx and 5xx are answers, not errors).
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::crowd_bin;

/// A running `crowd api`, killed on drop.
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Its state directory (the store).
    pub state: PathBuf,
    child: Child,
    _dir: Option<tempfile::TempDir>,
    agent: ureq::Agent,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: String,
    /// `Content-Type`.
    pub content_type: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Api {
    /// Starts `crowd api` in a new temporary state directory.
    pub fn start() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        Api::start_in(state, Some(dir), &[])
    }

    /// Starts `crowd api` on `state` with extra arguments.
    pub fn start_in(state: PathBuf, dir: Option<tempfile::TempDir>, extra: &[&str]) -> Api {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(crowd_bin())
            .args(["api", "--listen", &addr.to_string(), "--state-dir"])
            .arg(&state)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start crowd api");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let api = Api { url: format!("http://{addr}"), addr, state, child, _dir: dir, agent };
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "crowd api did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        api
    }

    /// Runs the crowd CLI on this API's store; returns stdout (asserts success).
    pub fn crowd(&self, args: &[&str]) -> String {
        let out = Command::new(crowd_bin()).args(args).arg("--state-dir").arg(&self.state).output().expect("run crowd");
        assert!(out.status.success(), "crowd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds a bouncer; returns its key.
    pub fn bouncer(&self, name: &str) -> String {
        let v: Value = serde_json::from_str(&self.crowd(&["bouncers", "add", name, "-o", "json"])).expect("json");
        v["api_key"].as_str().expect("api_key").to_owned()
    }

    /// Adds a validated machine and logs it in; returns its token.
    pub fn machine(&self, name: &str) -> String {
        self.crowd(&["machines", "add", name, "--password", "s3cret-pw"]);
        let a = self.send(
            "POST",
            "/v1/watchers/login",
            &[],
            Some(&format!(r#"{{"machine_id":"{name}","password":"s3cret-pw","scenarios":["crowdsecurity/ssh-bf"]}}"#)),
        );
        assert_eq!(a.status, 200, "login: {}", a.body);
        a.json()["token"].as_str().expect("token").to_owned()
    }

    /// One request; `body` is sent as JSON.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        let uri = format!("{}{path}", self.url);
        let mut req = ureq::http::Request::builder().method(method).uri(&uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let has_ct = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_ct {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.unwrap_or("").to_owned()).expect("request");
        let mut resp = self.agent.run(req).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_string().unwrap_or_default();
        Answer { status: resp.status().as_u16(), body, content_type }
    }

    /// `GET` with a bouncer key.
    pub fn get(&self, path: &str, key: &str) -> Answer {
        self.send("GET", path, &[("X-Api-Key", key)], None)
    }

    /// A request with a raw body sent from `source` (another loopback address), by hand.
    pub fn raw_from(&self, source: &str, request: &str) -> String {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        let src: SocketAddr = format!("{source}:0").parse().expect("source");
        sock.bind(&src.into()).expect("bind source");
        sock.connect(&self.addr.into()).expect("connect");
        let mut s: TcpStream = sock.into();
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
