//! The decision stream under concurrent writers (issue #17): every consumer must end holding
//! exactly the store's active bans.
//!
//! Two `crowd api` processes share one store (one PostgreSQL database, or one SQLite file).
//! Writers run at once, for several rounds: CLI processes (`crowd decisions add` and `delete`,
//! one at a time, and `crowd decisions import` of big batches, each one transaction holding low
//! ids for a long time) and agents pushing alerts with decisions through both APIs (and deleting
//! some through them); short-lived decisions expire during the test. The consumers are four
//! bouncers (threads here, each with its own key, polling deltas every 20 ms: two on the first
//! API, one on the second, one alternating between them, as a bouncer behind a load balancer
//! would) and two `crowd enforce` XDP edges, each in network namespaces of its own and reaching
//! its API (root namespace, loopback) through a small TCP forwarder written here. Once the
//! writers are done and the short decisions have expired, each consumer's set of banned values
//! must equal the store's active ban decisions (`GET /v1/decisions`, deduplicated by value), as
//! must a new bouncer's full pull (a control no cursor can cut); the test prints every consumer's
//! missing and extra counts, by writer, and fails with the first few values.
//! A delta cut by decision id alone misses decisions whose transaction commits after one with a
//! higher id (PostgreSQL assigns ids at INSERT). Privileged (namespaces, XDP); documentation
//! addresses only, servers on loopback, packets only inside the namespaces made here.
use std::{
    collections::{BTreeSet, HashSet},
    fs::File,
    hash::Hash,
    net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crowd::{addr::Target, clock::boot_now_ns, enforce::maps::BanMaps};
use crowd_tests::{
    Killed, PinDir, crowd_bin,
    lapi::Api,
    netns::{Link, Netns},
    unique, wait_for,
};
use serde_json::{Value, json};

mod every_consumer_ends_with_the_stores_active_bans {
    #[test]
    fn postgres() {
        crowd_tests::require_root();
        super::stress(crowd_tests::lapi::Api::start_pg());
    }

    #[test]
    fn sqlite() {
        crowd_tests::require_root();
        super::stress(crowd_tests::lapi::Api::start());
    }
}

/// Write phases, each with every writer running at once.
const ROUNDS: u16 = 3;
/// Concurrent `crowd decisions import` processes per round, and decisions in each.
const IMPORTERS: u16 = 2;
const IMPORT_SIZE: u16 = 1000;
/// Concurrent processes adding (and now and then deleting) one decision at a time, and adds each.
const ADDERS: u16 = 4;
const ADDS: u16 = 10;
/// Alerts pushed through each API per round, and decisions in each.
const ALERTS: u16 = 6;
const ALERT_SIZE: u16 = 40;
/// Decisions of the previous round's (or the seed's) import deleted one by one per round.
const DELETES: u16 = 10;
/// Short-lived decisions expire during the test; the rest outlive it.
const SHORT: &str = "3s";
const SHORT_SECS: u64 = 3;
const LONG: &str = "1h";
/// How often a bouncer pulls a delta.
const POLL: Duration = Duration::from_millis(20);
/// How long consumers get to agree with the store once everything has settled.
const SETTLE: Duration = Duration::from_secs(10);
/// The edges' map capacity (per family), above the test's volume.
const MAX_BANS: u32 = 32_768;
/// The port each edge's forwarder listens on, in the edge's server namespace.
const EDGE_PORT: u16 = 8080;
/// A pin directory that never exists: the CLI writers touch no kernel map.
const NO_MAPS: &str = "/sys/fs/bpf/crowd-test-no-maps";

/// Runs the CLI on the shared store; returns stdout (asserts success).
fn cli(api: &Api, args: &[&str]) -> String {
    let out = Command::new(crowd_bin())
        .args(["--pin-dir", NO_MAPS])
        .args(args)
        .arg("--state-dir")
        .arg(&api.state)
        .args(api.db.iter().flat_map(|d| ["--db", d.as_str()]))
        .output()
        .expect("run crowd");
    assert!(out.status.success(), "crowd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Import `k` of round `r` (the seed is round 0), entry `i`: one IPv6 address each.
fn imported(k: u16, r: u16, i: u16) -> String {
    Ipv6Addr::new(0x2001, 0xdb8, 0x1000 + k, r, 0, 0, 0, i).to_string()
}

/// Adder `w`'s `i`-th value (the same in every round, so values come back after deletes): IPv4
/// addresses, IPv6 ranges and a few IPv4 ranges.
fn added(w: u16, i: u16) -> String {
    match i % 10 {
        7 => format!("{}/64", Ipv6Addr::new(0x2001, 0xdb8, 0xfe00 + w, i, 0, 0, 0, 0)),
        9 if w == 0 => format!("198.51.100.{}/28", 16 * (i / 10)),
        _ => format!("203.0.113.{}", w * ADDS + i),
    }
}

/// Decision `i` of alert `j` pushed through API `n` in round `r`.
fn alerted(n: u16, r: u16, j: u16, i: u16) -> String {
    Ipv6Addr::new(0x2001, 0xdb8, 0xa000 + n, r, 0, 0, j, i).to_string()
}

fn alert(source: &str, decisions: Vec<Value>) -> String {
    crowd_tests::lapi::ssh_bf_alert(source, Value::Array(decisions))
}

/// The value a stream or query item bans, if it is a ban on an address or a range.
fn ban_value(d: &Value) -> Option<&str> {
    let scope = d["scope"].as_str()?;
    let on_addresses = scope.eq_ignore_ascii_case("ip") || scope.eq_ignore_ascii_case("range");
    (on_addresses && d["type"] == "ban").then(|| d["value"].as_str()).flatten()
}

/// A bouncer run by a thread here: the values it holds, applied as CrowdSec's bouncers do.
struct Bouncer {
    name: String,
    key: String,
    /// Indexes into the APIs it pulls from, in turn.
    apis: Vec<usize>,
    held: Mutex<HashSet<String>>,
    polls: AtomicUsize,
}

impl Bouncer {
    /// Pulls (a full pull first, then deltas every [`POLL`]) until `stop`.
    fn run(&self, apis: &[&Api], stop: &AtomicBool) {
        let mut turn = 0;
        while !stop.load(Ordering::Relaxed) {
            let path = if turn == 0 { "/v1/decisions/stream?startup=true" } else { "/v1/decisions/stream" };
            self.pull(apis[self.apis[turn % self.apis.len()]], path);
            turn += 1;
            thread::sleep(POLL);
        }
    }

    /// One pull, applied: `deleted` first, then `new`.
    fn pull(&self, api: &Api, path: &str) {
        let a = api.get(path, &self.key);
        assert_eq!(a.status, 200, "{}: GET {path}: {}", self.name, a.body);
        let v = a.json();
        let mut held = self.held.lock().expect("lock");
        for d in v["deleted"].as_array().into_iter().flatten() {
            if let Some(x) = ban_value(d) {
                held.remove(x);
            }
        }
        for d in v["new"].as_array().into_iter().flatten() {
            if let Some(x) = ban_value(d) {
                held.insert(x.to_owned());
            }
        }
        self.polls.fetch_add(1, Ordering::Relaxed);
    }
}

/// A TCP forwarder from `127.0.0.1:port` inside a namespace to an address in the root one.
///
/// A thread that entered the namespace listens there and hands each accepted connection to a
/// dialer thread started from the test's own thread (a new thread inherits its creator's network
/// namespace, and a socket belongs to the namespace of the thread that creates it), which opens
/// the outbound connection; bytes are then copied both ways until either side closes.
struct Forward {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Forward {
    fn start(ns: &Netns, port: u16, to: SocketAddr) -> Forward {
        let stop = Arc::new(AtomicBool::new(false));
        let (conns, inbound) = mpsc::channel::<TcpStream>();
        let (ready, listening) = mpsc::channel();
        let s = stop.clone();
        let listener = ns.spawn(move || {
            let l = TcpListener::bind(("127.0.0.1", port)).expect("bind the forwarder in the edge's namespace");
            l.set_nonblocking(true).expect("nonblocking");
            ready.send(()).expect("ready");
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).expect("blocking");
                        if conns.send(c).is_err() {
                            break;
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        listening.recv_timeout(Duration::from_secs(5)).expect("the forwarder listens");
        let dialer = thread::spawn(move || {
            for client in inbound {
                // Refused: dropping the client makes the edge retry, as with a down API.
                let Ok(server) = TcpStream::connect(to) else { continue };
                for (from, into) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut into) = (from.try_clone().expect("clone"), into.try_clone().expect("clone"));
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Forward { stop, threads: vec![listener, dialer] }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A `crowd enforce` edge; dropped in field order: the process, its forwarder, its pins, its
/// namespaces.
struct Edge {
    name: String,
    _enforce: Killed,
    _forward: Forward,
    pins: PinDir,
    _link: Link,
    log: PathBuf,
}

impl Edge {
    fn start(name: &str, tag: &str, api: &Api, key: &str, logs: &Path) -> Edge {
        let link = Link::new(tag);
        let forward = Forward::start(&link.server, EDGE_PORT, api.addr);
        let pins = PinDir::new();
        let log = logs.join(format!("{name}.log"));
        let child = link
            .server
            .command(crowd_bin())
            .arg("--pin-dir")
            .arg(pins.path())
            .args(["enforce", "--iface", &link.server_if, "--max-bans", &MAX_BANS.to_string()])
            .args(["--max-ranges", "1024", "--max-allow", "1024"])
            .args(["--lapi", &format!("http://127.0.0.1:{EDGE_PORT}"), "--key", key])
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("edge log"))
            .spawn()
            .expect("start crowd enforce");
        Edge { name: name.to_owned(), _enforce: Killed(child), _forward: forward, pins, _link: link, log }
    }

    /// The targets the edge's maps ban now (entries past their expiry are absent for the program).
    fn bans(&self) -> Result<HashSet<Target>, String> {
        let maps = BanMaps::open(&self.pins.settings).map_err(|e| e.to_string())?;
        let now = boot_now_ns();
        let all = maps.bans().map_err(|e| e.to_string())?;
        Ok(all.into_iter().filter(|b| !b.ban.is_expired(now)).map(|b| b.target).collect())
    }

    /// Its log's warnings and errors: how many, and the last few.
    fn warnings(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let bad: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
        format!(
            "{} warnings or errors{}",
            bad.len(),
            bad[bad.len().saturating_sub(3)..].iter().map(|l| format!("\n  {l}")).collect::<String>()
        )
    }
}

/// Sets the flag when dropped, so that threads polling it stop even when the test fails.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The store's active ban values (query mode lists every active decision).
fn active_bans(api: &Api, key: &str) -> HashSet<String> {
    let a = api.get("/v1/decisions", key);
    assert_eq!(a.status, 200, "GET /v1/decisions: {}", a.body);
    a.json().as_array().into_iter().flatten().filter_map(ban_value).map(str::to_owned).collect()
}

/// One consumer against the store: (name, holds, missing, extra), sorted.
struct Diff {
    name: String,
    holds: usize,
    missing: Vec<String>,
    extra: Vec<String>,
}

fn diff<T: Eq + Hash + ToString>(name: &str, store: &HashSet<T>, held: &HashSet<T>) -> Diff {
    let sorted = |v: HashSet<&T>| v.into_iter().map(ToString::to_string).collect::<BTreeSet<_>>().into_iter().collect();
    Diff {
        name: name.to_owned(),
        holds: held.len(),
        missing: sorted(store.difference(held).collect()),
        extra: sorted(held.difference(store).collect()),
    }
}

/// Which writer made a value (see [`imported`], [`added`], [`alerted`]).
fn writer_of(v: &str) -> &'static str {
    if v.starts_with("2001:db8:100") {
        "imported"
    } else if v.starts_with("2001:db8:a00") {
        "alerted"
    } else {
        "added"
    }
}

/// ` (imported 12, added 1, alerted 3)`, or nothing for none.
fn by_writer(v: &[String]) -> String {
    let kinds = ["imported", "added", "alerted"];
    let counts: Vec<String> = kinds
        .iter()
        .map(|k| (k, v.iter().filter(|x| writer_of(x) == *k).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if counts.is_empty() { String::new() } else { format!(" ({})", counts.join(", ")) }
}

/// ` (first: a, b, ...)`, or nothing for none.
fn first(v: &[String]) -> String {
    if v.is_empty() { String::new() } else { format!(" (first: {})", v[..v.len().min(5)].join(", ")) }
}

/// Runs `f` on a thread of `s`; its result is its kind and how long it took.
fn timed<'scope>(
    s: &'scope thread::Scope<'scope, '_>,
    kind: &'static str,
    f: impl FnOnce() + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, (&'static str, Duration)> {
    s.spawn(move || {
        let t = Instant::now();
        f();
        (kind, t.elapsed())
    })
}

/// Runs one round of writers, all at once; returns how many decisions they wrote and deleted,
/// and how long each kind of writer took (the slowest of its kind).
fn round(apis: [&Api; 2], tokens: &[String; 2], r: u16, dir: &Path) -> (usize, usize, String) {
    let files: Vec<PathBuf> = (0..IMPORTERS)
        .map(|k| {
            let entries: Vec<Value> = (0..IMPORT_SIZE)
                .map(|i| json!({"value": imported(k, r, i), "duration": if i % 10 == 3 { SHORT } else { LONG }}))
                .collect();
            let f = dir.join(format!("import-{r}-{k}.json"));
            std::fs::write(&f, Value::from(entries).to_string()).expect("write the import");
            f
        })
        .collect();
    let (written_n, deleted_n) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (written, deleted) = (&written_n, &deleted_n);
    let took = thread::scope(|s| {
        let mut writers = Vec::new();
        for f in &files {
            writers.push(timed(s, "import", move || {
                let out = cli(apis[0], &["decisions", "import", "-i", f.to_str().expect("utf-8"), "-o", "json"]);
                let v: Value = serde_json::from_str(&out).expect("import answer");
                written.fetch_add(v["imported"].as_u64().unwrap_or(0) as usize, Ordering::Relaxed);
            }));
        }
        for w in 0..ADDERS {
            writers.push(timed(s, "add", move || {
                for i in 0..ADDS {
                    let d = if i % 3 == 0 { SHORT } else { LONG };
                    cli(apis[0], &["decisions", "add", &added(w, i), "--duration", d]);
                    written.fetch_add(1, Ordering::Relaxed);
                    if i % 5 == 4 {
                        cli(apis[0], &["decisions", "delete", &added(w, i - 2)]);
                        deleted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // Deletes of decisions committed before this round (the previous import, or the seed).
        writers.push(timed(s, "delete", move || {
            for i in 0..DELETES {
                cli(apis[0], &["decisions", "delete", &imported(0, r - 1, i * 7)]);
                deleted.fetch_add(1, Ordering::Relaxed);
            }
        }));
        for (n, (api, token)) in apis.iter().zip(tokens).enumerate() {
            let n = u16::try_from(n).expect("two APIs");
            writers.push(timed(s, "alerts", move || {
                let auth = format!("Bearer {token}");
                let h = [("Authorization", auth.as_str())];
                for j in 0..ALERTS {
                    let ds: Vec<Value> = (0..ALERT_SIZE)
                        .map(|i| {
                            json!({"duration": if i % 4 == 1 { SHORT } else { LONG }, "origin": "crowdsec",
                                   "scenario": "crowdsecurity/ssh-bf", "scope": "Ip", "type": "ban",
                                   "value": alerted(n, r, j, i)})
                        })
                        .collect();
                    let a = api.send("POST", "/v1/alerts", &h, Some(&alert(&alerted(n, r, j, 0), ds)));
                    assert_eq!(a.status, 201, "POST /v1/alerts: {}", a.body);
                    written.fetch_add(usize::from(ALERT_SIZE), Ordering::Relaxed);
                    if j > 0 {
                        // Deleted through the API: one of the previous alert's decisions.
                        let path = format!("/v1/decisions?value={}", alerted(n, r, j - 1, 2));
                        let a = api.send("DELETE", &path, &h, None);
                        assert_eq!(a.status, 200, "DELETE {path}: {}", a.body);
                        deleted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        let mut took: Vec<(&str, Duration)> = Vec::new();
        for w in writers {
            let (kind, t) = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            match took.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, slowest)) => *slowest = (*slowest).max(t),
                None => took.push((kind, t)),
            }
        }
        took.iter().map(|(k, t)| format!("{k} {:.1} s", t.as_secs_f64())).collect::<Vec<_>>().join(", ")
    });
    (written_n.into_inner(), deleted_n.into_inner(), took)
}

fn stress(first_api: Api) {
    let started = Instant::now();
    let backend = if first_api.db.is_some() { "PostgreSQL" } else { "SQLite" };
    // The second API on the same store (no database of its own to drop).
    let second_api = Api::start_in(first_api.state.clone(), None, first_api.db.clone());
    let apis = [&first_api, &second_api];
    let dir = tempfile::tempdir().expect("tempdir");

    // Decisions before anyone pulls, so that full pulls carry some; round 1 deletes some of them.
    let seed: String = (0..IMPORT_SIZE).map(|i| format!("{}\n", imported(0, 0, i))).collect();
    let seed_file = dir.path().join("seed.txt");
    std::fs::write(&seed_file, seed).expect("seed");
    cli(&first_api, &["decisions", "import", "-i", seed_file.to_str().expect("utf-8"), "--duration", LONG]);

    let referee = first_api.bouncer("referee");
    let tokens = [first_api.machine("agent-a"), second_api.machine("agent-b")];
    let bouncers: Vec<Bouncer> = [("b0", vec![0]), ("b1", vec![0]), ("b2", vec![1]), ("b3", vec![0, 1])]
        .into_iter()
        .map(|(name, on)| Bouncer {
            name: name.to_owned(),
            key: first_api.bouncer(name),
            apis: on,
            held: Mutex::new(HashSet::new()),
            polls: AtomicUsize::new(0),
        })
        .collect();
    let tag = unique("ss");
    let edges: Vec<Edge> = (0..2)
        .map(|n| {
            let name = format!("edge{n}");
            let key = first_api.bouncer(&name);
            Edge::start(&name, &format!("{tag}{n}"), apis[n], &key, dir.path())
        })
        .collect();

    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let stop = &stop;
        let pollers: Vec<_> = bouncers.iter().map(|b| s.spawn(move || b.run(&apis, stop))).collect();
        wait_for("every bouncer's first pull", Duration::from_secs(30), POLL, || {
            bouncers.iter().all(|b| b.polls.load(Ordering::Relaxed) > 0)
        });
        wait_for("both edges' first pull", Duration::from_secs(30), Duration::from_millis(50), || {
            let v: Value = serde_json::from_str(&cli(&first_api, &["bouncers", "list", "-o", "json"])).expect("json");
            let pulled =
                |name: &str| v.as_array().into_iter().flatten().any(|b| b["name"] == name && b["last_pull"].is_i64());
            edges.iter().all(|e| pulled(&e.name))
        });
        eprintln!("{backend}: 2 APIs, 4 bouncers, 2 edges ready in {:?}", started.elapsed());

        for r in 1..=ROUNDS {
            let t = Instant::now();
            let (written, deleted, took) = round(apis, &tokens, r, dir.path());
            eprintln!(
                "{backend}: round {r}: {written} decisions written, {deleted} deletes, in {:.1} s ({took})",
                t.elapsed().as_secs_f64()
            );
        }
        // Every short-lived decision was made before now: let them all expire (whole seconds).
        thread::sleep(Duration::from_secs(SHORT_SECS + 2));

        // Then each consumer must come to hold exactly the store's active bans.
        let polls: Vec<usize> = bouncers.iter().map(|b| b.polls.load(Ordering::Relaxed)).collect();
        let deadline = Instant::now() + SETTLE;
        let (store, mut diffs) = loop {
            for (b, p) in bouncers.iter().zip(&pollers) {
                assert!(!p.is_finished(), "bouncer {} stopped pulling (its panic is above)", b.name);
            }
            let store = active_bans(&first_api, &referee);
            let store_targets: HashSet<Target> =
                store.iter().map(|v| v.parse().unwrap_or_else(|e| panic!("store value `{v}`: {e}"))).collect();
            let mut diffs: Vec<Diff> = bouncers
                .iter()
                .map(|b| {
                    let held = b.held.lock().expect("lock").clone();
                    diff(&format!("bouncer {} (API {:?})", b.name, b.apis), &store, &held)
                })
                .collect();
            for (n, e) in edges.iter().enumerate() {
                let held = e.bans().unwrap_or_else(|x| panic!("{}'s maps: {x}", e.name));
                diffs.push(diff(&format!("{} (API [{n}])", e.name), &store_targets, &held));
            }
            let polled = bouncers.iter().zip(&polls).all(|(b, p)| b.polls.load(Ordering::Relaxed) >= p + 3);
            let agree = diffs.iter().all(|d| d.missing.is_empty() && d.extra.is_empty());
            if (agree && polled) || Instant::now() >= deadline {
                break (store, diffs);
            }
            thread::sleep(Duration::from_millis(250));
        };
        // A control: a new bouncer's full pull, which no cursor can cut.
        let late = Bouncer {
            name: "late".into(),
            key: first_api.bouncer("late"),
            apis: vec![0],
            held: Mutex::new(HashSet::new()),
            polls: AtomicUsize::new(0),
        };
        late.pull(&first_api, "/v1/decisions/stream?startup=true");
        diffs.push(diff("bouncer late (full pull)", &store, &late.held.into_inner().expect("lock")));

        eprintln!("{backend}: the store holds {} active ban values", store.len());
        let mut failures = Vec::new();
        for d in &diffs {
            eprintln!(
                "{backend}: {:<25} holds {:>5}, missing {:>5}{}, extra {:>5}{}",
                d.name,
                d.holds,
                d.missing.len(),
                by_writer(&d.missing),
                d.extra.len(),
                by_writer(&d.extra)
            );
            if !d.missing.is_empty() || !d.extra.is_empty() {
                failures.push(format!(
                    "{}: {} missing{}, {} extra{}",
                    d.name,
                    d.missing.len(),
                    first(&d.missing),
                    d.extra.len(),
                    first(&d.extra)
                ));
            }
        }
        for e in &edges {
            eprintln!("{backend}: {}'s log: {}", e.name, e.warnings());
        }
        assert!(
            failures.is_empty(),
            "{backend}: {} of {} consumers do not hold exactly the store's active bans {SETTLE:?} after the last \
             expiry:\n{}",
            failures.len(),
            diffs.len(),
            failures.join("\n")
        );
        eprintln!("{backend}: every consumer holds the store's active bans; {:?} in all", started.elapsed());
    });
}
