//! Commit order on PostgreSQL, through crowd's own store code: a writer whose transaction
//! commits after a later writer's (its id taken first, its commit last) must still reach the
//! stream's deltas and the daemon's change feed. A test-only trigger makes one insert sleep
//! inside its transaction, so the interleaving happens every run rather than by chance.
use std::time::Duration;

use crowd::store::{Cursor, DecisionFilter, Location, NewDecision, Store, StreamPart};

/// A PostgreSQL database made for one test, dropped after it.
struct TestDb {
    name: String,
    url: String,
}

fn admin() -> postgres::Client {
    let url = format!("{}/postgres", crowd_tests::lapi::pg_server());
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"))
}

impl TestDb {
    fn new() -> TestDb {
        let name = crowd_tests::unique("crowd_o_").to_lowercase();
        admin().batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        TestDb { url: format!("{}/{name}", crowd_tests::lapi::pg_server()), name }
    }
    fn store(&self) -> Store {
        Store::open_at(&Location::Postgres(self.url.clone())).expect("open store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn ban(value: &str) -> NewDecision {
    NewDecision {
        origin: "cscli".into(),
        scenario: "manual".into(),
        scope: "Ip".into(),
        value: value.into(),
        kind: "ban".into(),
        duration_secs: 3600,
        ..NewDecision::default()
    }
}

fn now() -> i64 {
    crowd::clock::unix_now()
}

/// Both halves of a delta pull: (new values, deleted values, next cursor).
fn pull(s: &mut Store, since: Option<Cursor>) -> (Vec<String>, Vec<String>, Cursor) {
    let (f, t) = (DecisionFilter::default(), now());
    let (mut new, mut del) = (Vec::new(), Vec::new());
    let c = s.stream(&f, since, None, t, 3600, StreamPart::New, |r| new.push(r.value.clone())).unwrap();
    s.stream(&f, since, Some(c.last_seq), t, 3600, StreamPart::Deleted, |r| del.push(r.value.clone())).unwrap();
    (new, del, c)
}

/// Pulls deltas every 20 ms while `busy` writers run, then once more; returns every value seen
/// as new and as deleted.
fn follow(s: &mut Store, mut c: Cursor, busy: Vec<std::thread::JoinHandle<()>>) -> (Vec<String>, Vec<String>) {
    let (mut new, mut del) = (Vec::new(), Vec::new());
    loop {
        let done = busy.iter().all(std::thread::JoinHandle::is_finished);
        let (n, d, next) = pull(s, Some(c));
        new.extend(n);
        del.extend(d);
        c = next;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in busy {
        h.join().expect("writer");
    }
    (new, del)
}

#[test]
fn a_late_commit_is_never_skipped_by_a_delta_cursor() {
    let db = TestDb::new();
    let mut reader = db.store();
    // 192.0.2.1's insert sleeps a second inside its transaction (after its id is taken), its
    // deletion three (longer than the two seconds a window on deletion times overlaps).
    admin_of(&db)
        .batch_execute(
            "CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN
           IF NEW.value = '192.0.2.1' THEN PERFORM pg_sleep(CASE TG_OP WHEN 'INSERT' THEN 1 ELSE 3 END); END IF;
           RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON decisions FOR EACH ROW EXECUTE FUNCTION slow();",
        )
        .expect("trigger");
    let (new, _, c) = pull(&mut reader, None);
    assert!(new.is_empty());

    // The slow writer starts first; a fast one starts while it sleeps.
    let url = db.url.clone();
    let slow = std::thread::spawn(move || {
        Store::open_at(&Location::Postgres(url)).unwrap().record(None, &[ban("192.0.2.1")], now()).unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let url = db.url.clone();
    let fast = std::thread::spawn(move || {
        Store::open_at(&Location::Postgres(url)).unwrap().record(None, &[ban("192.0.2.2")], now()).unwrap();
    });
    let (mut new, _) = follow(&mut reader, c, vec![slow, fast]);
    new.sort();
    assert_eq!(new, ["192.0.2.1", "192.0.2.2"], "every committed decision reaches the deltas, once");

    // The same for deletions: the slow one's deletion time is read before the fast one's.
    let (_, _, c) = pull(&mut reader, Some(Cursor { last_seq: 0, last_pull: now() }));
    let deleter = |v: &'static str, url: String| {
        std::thread::spawn(move || {
            Store::open_at(&Location::Postgres(url)).unwrap().delete(Some(v), None, now()).unwrap();
        })
    };
    let slow = deleter("192.0.2.1", db.url.clone());
    std::thread::sleep(Duration::from_millis(300));
    let fast = deleter("192.0.2.2", db.url.clone());
    let (_, mut del) = follow(&mut reader, c, vec![slow, fast]);
    del.sort();
    del.dedup();
    assert_eq!(del, ["192.0.2.1", "192.0.2.2"], "every deletion reaches the deltas");
}

fn admin_of(db: &TestDb) -> postgres::Client {
    postgres::Client::connect(&db.url, postgres::NoTls).expect("connect")
}
