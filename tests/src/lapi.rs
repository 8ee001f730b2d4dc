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
    /// `--db` for every command (a PostgreSQL database made for this test).
    pub db: Option<String>,
    child: Child,
    _dir: Option<tempfile::TempDir>,
    agent: ureq::Agent,
    pg_name: Option<String>,
}

/// The PostgreSQL server tests use (`cargo xtask setup` starts Debian's on loopback and makes
/// the `crowd` role); `CROWD_TEST_PG` overrides it. No database in the URL: each test makes one.
pub fn pg_server() -> String {
    std::env::var("CROWD_TEST_PG").unwrap_or_else(|_| "postgres://crowd:crowd@127.0.0.1:5432".into())
}

/// A connection to the test server's `postgres` database (to make and drop test databases).
pub fn pg_admin() -> postgres::Client {
    let url = format!("{}/postgres", pg_server());
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e} (`cargo xtask setup` starts it)"))
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
    /// Starts `crowd api` in a new temporary state directory (SQLite).
    pub fn start() -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        Api::start_in(state, Some(dir), None)
    }

    /// Starts `crowd api` (SQLite) with extra arguments.
    pub fn start_with(extra: &[&str]) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        Api::launch(state, Some(dir), None, extra)
    }

    /// Starts `crowd api` on a new PostgreSQL database (dropped with the `Api`).
    pub fn start_pg() -> Api {
        let name = crate::unique("crowd_t_").to_lowercase();
        pg_admin().batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().to_owned();
        let mut api = Api::start_in(state, Some(dir), Some(format!("{}/{name}", pg_server())));
        api.pg_name = Some(name);
        api
    }

    /// Starts `crowd api` (SQLite) on `state` with extra arguments.
    pub fn start_in_with(state: PathBuf, dir: Option<tempfile::TempDir>, extra: &[&str]) -> Api {
        Api::launch(state, dir, None, extra)
    }

    /// Starts `crowd api` on `state` (or the `db` URL).
    pub fn start_in(state: PathBuf, dir: Option<tempfile::TempDir>, db: Option<String>) -> Api {
        Api::launch(state, dir, db, &[])
    }

    fn launch(state: PathBuf, dir: Option<tempfile::TempDir>, db: Option<String>, extra: &[&str]) -> Api {
        // A free port can be taken by a parallel test before `crowd api` binds it (its API or
        // metrics port): a start that exits before listening is tried again on new ports.
        let mut dir = dir;
        for attempt in 1.. {
            match Api::try_launch(state.clone(), dir.take(), db.clone(), extra) {
                Ok(api) => return api,
                Err((d, why)) if attempt < 4 => {
                    eprintln!("crowd api did not start ({why}): trying other ports");
                    dir = d;
                }
                Err((_, why)) => panic!("{why}"),
            }
        }
        unreachable!()
    }

    #[allow(clippy::type_complexity)]
    fn try_launch(
        state: PathBuf,
        dir: Option<tempfile::TempDir>,
        db: Option<String>,
        extra: &[&str],
    ) -> Result<Api, (Option<tempfile::TempDir>, String)> {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(crowd_bin())
            .args(["api", "--listen", &addr.to_string(), "--state-dir"])
            .arg(&state)
            .args(db.iter().flat_map(|d| ["--db", d.as_str()]))
            // Each API its own metrics port, unless the test names one.
            .args(if extra.contains(&"--metrics-listen") {
                vec![]
            } else {
                vec!["--metrics-listen".to_owned(), format!("127.0.0.1:{}", free_port())]
            })
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
        let mut api = Api { url: format!("http://{addr}"), addr, state, db, child, _dir: dir, agent, pg_name: None };
        let t = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(st)) = api.child.try_wait() {
                let why = format!("crowd api exited ({st}) before listening on {addr}");
                let dir = api._dir.take();
                return Err((dir, why));
            }
            assert!(t.elapsed() < Duration::from_secs(10), "crowd api did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(api)
    }

    /// Runs the crowd CLI on this API's store; returns stdout (asserts success).
    pub fn crowd(&self, args: &[&str]) -> String {
        let out = Command::new(crowd_bin())
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .args(self.db.iter().flat_map(|d| ["--db", d.as_str()]))
            .output()
            .expect("run crowd");
        assert!(out.status.success(), "crowd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the store holds about bouncers, as text (the SQLite file, or the PostgreSQL rows).
    pub fn stored_bouncers(&self) -> String {
        match &self.db {
            // The database and its write-ahead log (recent rows may be only there).
            None => ["crowd.db", "crowd.db-wal"]
                .iter()
                .filter_map(|f| std::fs::read(self.state.join(f)).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect(),
            Some(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                let rows =
                    c.query("SELECT name || ' ' || key_hash || ' ' || ip_address FROM bouncers", &[]).expect("query");
                rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
            }
        }
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
        self.try_send(method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Api::send`], with transport errors returned (a server may close the connection on a
    /// body it refuses before reading all of it).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Answer, ureq::Error> {
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
        let mut resp = self.agent.run(req)?;
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_string().unwrap_or_default();
        Ok(Answer { status: resp.status().as_u16(), body, content_type })
    }
    /// An agent (its `token`) pushes an ssh-bf alert on `ip`, made now, without decisions (the
    /// API's profiles decide), as CrowdSec's agent does.
    pub fn push_ssh_bf(&self, token: &str, ip: &str) {
        let now = chrono::Utc::now().to_rfc3339();
        let alert = serde_json::json!([{"capacity": 5, "decisions": [], "events": [], "events_count": 6,
            "labels": null, "leakspeed": "10s", "message": "ssh-bf", "remediation": true,
            "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "4441dcff", "scenario_version": "0.1",
            "simulated": false, "source": {"ip": ip, "range": "", "scope": "Ip", "value": ip},
            "start_at": now, "stop_at": now}]);
        let a =
            self.send("POST", "/v1/alerts", &[("Authorization", &format!("Bearer {token}"))], Some(&alert.to_string()));
        assert_eq!(a.status, 201, "{}", a.body);
    }

    /// `GET` with a bouncer key.
    pub fn get(&self, path: &str, key: &str) -> Answer {
        self.send("GET", path, &[("X-Api-Key", key)], None)
    }

    /// A request with a raw body sent from `source` (another loopback address), by hand.
    pub fn raw_from(&self, source: &str, request: &str) -> String {
        self.raw_bytes_from(source, request.as_bytes())
    }

    /// [`Api::raw_from`] with a binary request.
    pub fn raw_bytes_from(&self, source: &str, request: &[u8]) -> String {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        let src: SocketAddr = format!("{source}:0").parse().expect("source");
        sock.bind(&src.into()).expect("bind source");
        sock.connect(&self.addr.into()).expect("connect");
        let mut s: TcpStream = sock.into();
        s.write_all(request).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

impl Api {
    /// Sends SIGTERM and waits up to `limit` for the process to exit; its status if it did.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(name) = &self.pg_name {
            let _ = pg_admin().batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (setup installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A self-signed CA `<name>.pem`/`<name>.key` in `dir` (EC P-256, two days).
pub fn make_ca(dir: &std::path::Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A certificate `<name>.pem`/`<name>.key` for `subject`, signed by CA `ca`, with extensions `ext`.
pub fn issue(dir: &std::path::Path, ca: &str, name: &str, subject: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// An ssh-bf alert from `source` as a CrowdSec agent pushes it (`POST /v1/alerts` body), carrying
/// `decisions` (`null`: none, so the API's profiles decide).
pub fn ssh_bf_alert(source: &str, decisions: Value) -> String {
    serde_json::json!([{
        "capacity": 5, "decisions": decisions, "events": [], "events_count": 6, "labels": null,
        "leakspeed": "10s", "message": format!("Ip {source} performed 'crowdsecurity/ssh-bf'"),
        "remediation": true, "scenario": "crowdsecurity/ssh-bf", "scenario_hash": "4441dcff",
        "scenario_version": "0.1", "simulated": false,
        "source": {"ip": source, "range": "", "scope": "Ip", "value": source},
        "start_at": "2026-11-28T09:50:32.025353849+01:00", "stop_at": "2026-11-28T09:50:32.055534398+01:00"
    }])
    .to_string()
}
