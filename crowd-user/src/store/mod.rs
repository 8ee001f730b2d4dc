//! The store: alerts, decisions, bouncers and machines in SQLite (bundled, the default) or
//! PostgreSQL (one store shared by many agents). The only module that speaks SQL; the backends
//! are in `backend.rs`.
//!
//! Decisions live here; the XDP maps are a cache of the active ones, which the daemon
//! reconciles at start and periodically (`crate::reconcile`). Times are Unix seconds passed in
//! by the caller. The schema is versioned (`PRAGMA user_version`) and migrated forward on open
//! (`schema.rs`). Decision queries for the Local API are in `decisions.rs`, alerts in
//! `alerts.rs`, bouncers, machines and secrets in `auth.rs`; the change feed other processes'
//! commits raise is `changes.rs`.
mod alerts;
pub mod allowlist;
mod auth;
mod backend;
pub mod changes;
mod community;
mod console;
mod decisions;
mod schema;

use std::path::{Path, PathBuf};

use backend::{Conn, Row, Val};
use schema::MIGRATIONS;

pub use alerts::{AlertFilter, AlertRow};
pub use auth::{BouncerRow, MachineRow};
pub use community::{EntryRow, MemberRow, NewSignal, OrgRow, Publish};
pub use console::{AuditRow, ConsoleSession, ConsoleUser, UsageRow};
pub use decisions::{AddrMatch, Cursor, DecisionFilter, StreamPart};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("store (PostgreSQL): {0}")]
    Pg(String),
    /// The store's file could not be made private (named).
    #[error("store file `{0}`: {1}")]
    File(PathBuf, std::io::Error),
    /// The database is newer than this crowd.
    #[error("store schema version {0} is newer than this crowd understands ({1}): upgrade crowd")]
    TooNew(i64, i64),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A decision to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDecision {
    /// CrowdSec's origin names: `crowdsec` (this host's scenarios), `cscli` (manual),
    /// `cscli-import`, `CAPI`, `lists`, ...
    pub origin: String,
    /// The scenario (or `manual`).
    pub scenario: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// Address or range.
    pub value: String,
    /// `ban`.
    pub kind: String,
    /// Seconds.
    pub duration_secs: u64,
    /// Recorded only.
    pub simulated: bool,
    /// Free text.
    pub reason: String,
    /// A uuid to keep (decisions relayed from elsewhere); empty makes a new one.
    pub uuid: String,
}

/// A stored decision.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DecisionRow {
    /// Id.
    pub id: i64,
    /// The alert it came from.
    pub alert_id: Option<i64>,
    /// Origin.
    pub origin: String,
    /// Scenario.
    pub scenario: String,
    /// Scope.
    pub scope: String,
    /// Value.
    pub value: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Expiry, Unix seconds.
    pub until: i64,
    /// Creation, Unix seconds.
    pub created_at: i64,
    /// Deletion, Unix seconds.
    pub deleted_at: Option<i64>,
    /// Recorded only.
    pub simulated: bool,
    /// Free text.
    pub reason: String,
    /// A stable identifier (v4 uuid).
    pub uuid: String,
}

/// An alert to record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAlert {
    /// Scenario.
    pub scenario: String,
    /// Scope.
    pub scope: String,
    /// Value.
    pub value: String,
    /// Events in the bucket.
    pub events_count: u64,
    /// The machine (agent) that sent it; empty for this host's own.
    pub machine_id: String,
    /// The whole alert as CrowdSec's JSON (served back by `GET /v1/alerts`); may be empty.
    pub body: String,
}

/// Where a store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user:pass@127.0.0.1/crowd`).
    Postgres(String),
}

impl Location {
    /// `--db URL` when given (a `postgres://` or `postgresql://` URL, or a SQLite path), else
    /// `crowd.db` in the state directory.
    #[must_use]
    pub fn new(state_dir: &Path, db: Option<&str>) -> Location {
        match db {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Location::Postgres(u.to_owned())
            }
            Some(p) => Location::Sqlite(p.into()),
            None => Location::Sqlite(state_dir.join("crowd.db")),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            // Never print the password.
            Location::Postgres(u) => match (u.find("://"), u.rfind('@')) {
                (Some(a), Some(b)) if b > a => write!(f, "{}://…@{}", &u[..a], &u[b + 1..]),
                _ => write!(f, "{u}"),
            },
        }
    }
}

/// The address bounds stored beside an `Ip` or `Range` decision (`None` for other scopes or
/// values that are not addresses).
fn bounds(scope: &str, value: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    if !scope.eq_ignore_ascii_case("ip") && !scope.eq_ignore_ascii_case("range") {
        return (None, None);
    }
    match value.parse::<crate::addr::Target>() {
        Ok(t) => {
            let (a, b) = crate::addr::bounds(&t);
            (Some(a), Some(b))
        }
        Err(_) => (None, None),
    }
}

/// Fills the bounds and uuids of decisions recorded before schema version 2.
fn backfill_bounds(c: &mut Conn) -> Result<()> {
    let rows = c.all("SELECT id, scope, value FROM decisions", &[], |r| Ok((r.int(0)?, r.text(1)?, r.text(2)?)))?;
    for (id, scope, value) in rows {
        let (a, b) = bounds(&scope, &value);
        c.exec(
            "UPDATE decisions SET start_ip = ?1, end_ip = ?2, uuid = ?3 WHERE id = ?4",
            &[a.into(), b.into(), uuid::Uuid::new_v4().to_string().into(), id.into()],
        )?;
    }
    Ok(())
}

/// Takes the next change number inside a writing transaction, before it writes any decision.
/// The `change_seq` row stays locked until the transaction ends (PostgreSQL's row lock; SQLite's
/// single writer), so numbers are handed out in commit order and gapless: once number N is
/// visible, every change numbered below N is committed. Stream cursors ([`Cursor`]) count in
/// these numbers, not in ids (PostgreSQL hands ids out at insert, and transactions commit in any
/// order). Writers of decisions wait for each other for the length of their transactions.
fn next_change(c: &mut Conn) -> Result<i64> {
    Ok(c.one("UPDATE change_seq SET n = n + 1 RETURNING n", &[], |r| r.int(0))?.unwrap_or(0))
}

/// Takes the next alert number inside a writing transaction (as [`next_change`] for decisions:
/// the `alert_seq` row stays locked until the commit, so numbers are visible in order).
fn next_alert(c: &mut Conn) -> Result<i64> {
    Ok(c.one("UPDATE alert_seq SET n = n + 1 RETURNING n", &[], |r| r.int(0))?.unwrap_or(0))
}

/// The database.
pub struct Store {
    conn: Conn,
    /// Notifications counted so far (PostgreSQL's change counter).
    seen: i64,
}

fn row(r: &Row<'_>) -> Result<DecisionRow> {
    Ok(DecisionRow {
        id: r.int(0)?,
        alert_id: r.opt_int(1)?,
        origin: r.text(2)?,
        scenario: r.text(3)?,
        scope: r.text(4)?,
        value: r.text(5)?,
        kind: r.text(6)?,
        until: r.int(7)?,
        created_at: r.int(8)?,
        deleted_at: r.opt_int(9)?,
        simulated: r.flag(10)?,
        reason: r.text(11)?,
        uuid: r.text(12)?,
    })
}

const COLS: &str =
    "id, alert_id, origin, scenario, scope, value, type, until, created_at, deleted_at, simulated, reason, uuid";

/// The channel PostgreSQL stores announce their changes on.
const CHANNEL: &str = "crowd_changes";

impl Store {
    /// Gives back the memory SQLite holds for this connection (its page cache), after a long
    /// read such as a full pull; nothing on PostgreSQL.
    pub fn release_memory(&mut self) {
        if let Conn::Lite(c) = &self.conn {
            let _ = c.execute_batch("PRAGMA shrink_memory");
        }
    }

    /// Opens (creating) the SQLite database at `path` and migrates it.
    ///
    /// # Errors
    /// SQLite errors; [`StoreError::TooNew`].
    pub fn open(path: &Path) -> Result<Store> {
        // Private before SQLite opens it: its WAL and SHM files take the database file's mode.
        crate::private::file(path).map_err(|e| StoreError::File(path.to_owned(), e))?;
        let s = Store::init(Conn::Lite(rusqlite::Connection::open(path)?))?;
        for side in ["-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(side);
            let p = PathBuf::from(p);
            crate::private::tighten_file(&p).map_err(|e| StoreError::File(p, e))?;
        }
        Ok(s)
    }

    /// Opens the store at `loc` and migrates it.
    ///
    /// # Errors
    /// Connection errors; [`StoreError::TooNew`].
    pub fn open_at(loc: &Location) -> Result<Store> {
        match loc {
            Location::Sqlite(p) => Store::open(p),
            Location::Postgres(url) => {
                let client = postgres::Client::connect(url, postgres::NoTls)?;
                Store::init(Conn::Pg(Box::new(client)))
            }
        }
    }

    /// An in-memory SQLite store (tests, replay).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn memory() -> Result<Store> {
        Store::init(Conn::Lite(rusqlite::Connection::open_in_memory()?))
    }

    fn init(conn: Conn) -> Result<Store> {
        if let Conn::Lite(c) = &conn {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "journal_mode", "WAL")?;
            // WAL's recommended setting: commits do not wait for fsync (the WAL is synced at
            // checkpoints); a power cut may lose the last commits, never the database.
            c.pragma_update(None, "synchronous", "NORMAL")?;
            c.pragma_update(None, "foreign_keys", "ON")?;
        }
        let mut s = Store { conn, seen: 0 };
        s.migrate()?;
        Ok(s)
    }

    /// True on PostgreSQL.
    #[must_use]
    pub fn is_pg(&self) -> bool {
        self.conn.pg()
    }

    /// The schema version.
    ///
    /// # Errors
    /// Database errors.
    pub fn version(&mut self) -> Result<i64> {
        match &mut self.conn {
            Conn::Lite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
            c @ Conn::Pg(_) => {
                let has = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'crowd_schema' \
                           AND table_schema = current_schema()";
                if c.one(has, &[], |r| r.int(0))? == Some(0) {
                    c.batch("CREATE TABLE crowd_schema (version BIGINT NOT NULL)")?;
                }
                Ok(c.one("SELECT COALESCE(MAX(version), 0) FROM crowd_schema", &[], |r| r.int(0))?.unwrap_or(0))
            }
        }
    }

    fn migrate(&mut self) -> Result<()> {
        let v = self.version()?;
        let pg = self.is_pg();
        let steps: Vec<std::borrow::Cow<'static, str>> =
            MIGRATIONS.iter().map(|m| if pg { schema::for_postgres(m).into() } else { (*m).into() }).collect();
        let latest = steps.len() as i64;
        if v > latest {
            return Err(StoreError::TooNew(v, latest));
        }
        for (i, sql) in steps.iter().enumerate().skip(usize::try_from(v).unwrap_or(0)) {
            self.conn.tx(|c| {
                c.batch(sql.as_ref())?;
                if i == 1 {
                    backfill_bounds(c)?;
                }
                let next = i as i64 + 1;
                match c {
                    Conn::Lite(l) => l.pragma_update(None, "user_version", next)?,
                    Conn::Pg(_) => {
                        c.exec("DELETE FROM crowd_schema", &[])?;
                        c.exec("INSERT INTO crowd_schema (version) VALUES (?1)", &[next.into()])?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Tells other PostgreSQL connections that decisions changed (SQLite needs nothing).
    fn announce(&mut self) {
        if self.is_pg() {
            let _ = self.conn.batch(&format!("NOTIFY {CHANNEL}"));
        }
    }

    /// Starts listening for other connections' changes (PostgreSQL; a no-op on SQLite).
    ///
    /// # Errors
    /// Database errors.
    pub fn listen(&mut self) -> Result<()> {
        if self.is_pg() {
            self.conn.batch(&format!("LISTEN {CHANNEL}"))?;
        }
        Ok(())
    }

    /// A change counter: moves whenever another connection (another process, the CLI) commits
    /// (SQLite's `data_version`; on PostgreSQL, the notifications received after [`Store::listen`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn data_version(&mut self) -> Result<i64> {
        match &mut self.conn {
            Conn::Lite(c) => Ok(c.pragma_query_value(None, "data_version", |r| r.get(0))?),
            Conn::Pg(c) => {
                use postgres::fallible_iterator::FallibleIterator;
                // A short wait, not `iter()`: the client's runtime only reads the socket while
                // something waits on it.
                let n = c.notifications().timeout_iter(std::time::Duration::from_millis(5)).count()?;
                self.seen += i64::try_from(n).unwrap_or(0);
                Ok(self.seen)
            }
        }
    }

    /// The newest committed change number: every decision added or ended with a number up to
    /// it is visible now (see [`next_change`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn last_change(&mut self) -> Result<i64> {
        Ok(self.conn.one("SELECT n FROM change_seq", &[], |r| r.int(0))?.unwrap_or(0))
    }

    /// Records an alert and its decisions in one transaction; returns the decisions' ids.
    ///
    /// # Errors
    /// Database errors (nothing is recorded).
    pub fn record(&mut self, alert: Option<&NewAlert>, decisions: &[NewDecision], now: i64) -> Result<Vec<i64>> {
        self.record_alert(alert, decisions, now).map(|(_, ids)| ids)
    }

    /// [`Store::record`], also returning the alert's id.
    ///
    /// # Errors
    /// Database errors (nothing is recorded).
    pub fn record_alert(
        &mut self,
        alert: Option<&NewAlert>,
        decisions: &[NewDecision],
        now: i64,
    ) -> Result<(Option<i64>, Vec<i64>)> {
        // The allowlist wins: a decision on an allowlisted address, or a range holding one, is
        // not recorded, whoever made it (detection, an agent, the CLI, the community).
        let allowed = self.allowlist_nets()?;
        if !allowed.is_empty() {
            let kept: Vec<NewDecision> = decisions
                .iter()
                .filter(|d| allowlist::holding(&allowed, &d.scope, &d.value).is_none())
                .cloned()
                .collect();
            if kept.len() != decisions.len() {
                tracing::info!(
                    refused = decisions.len() - kept.len(),
                    "decisions on allowlisted addresses not recorded"
                );
                return self.write_alert(alert, &kept, now);
            }
        }
        self.write_alert(alert, decisions, now)
    }

    fn write_alert(
        &mut self,
        alert: Option<&NewAlert>,
        decisions: &[NewDecision],
        now: i64,
    ) -> Result<(Option<i64>, Vec<i64>)> {
        let out = self.conn.tx(|c| {
            let alert_id = match alert {
                Some(a) => {
                    let aseq = next_alert(c)?;
                    c.one(
                    "INSERT INTO alerts (scenario, scope, value, events_count, created_at, machine_id, body, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                    &[
                        a.scenario.as_str().into(),
                        a.scope.as_str().into(),
                        a.value.as_str().into(),
                        i64::try_from(a.events_count).unwrap_or(i64::MAX).into(),
                        now.into(),
                        a.machine_id.as_str().into(),
                        a.body.as_str().into(),
                        aseq.into(),
                    ],
                    |r| r.int(0),
                )?
                }
                None => None,
            };
            let mut ids = Vec::with_capacity(decisions.len());
            let seq = if decisions.is_empty() { 0 } else { next_change(c)? };
            for d in decisions {
                let (start, end) = bounds(&d.scope, &d.value);
                let uuid = if d.uuid.is_empty() { uuid::Uuid::new_v4().to_string() } else { d.uuid.clone() };
                let id = c.one(
                    "INSERT INTO decisions (alert_id, origin, scenario, scope, value, type, until, created_at, simulated,
                                            reason, uuid, start_ip, end_ip, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) RETURNING id",
                    &[
                        alert_id.into(),
                        d.origin.as_str().into(),
                        d.scenario.as_str().into(),
                        d.scope.as_str().into(),
                        d.value.as_str().into(),
                        d.kind.as_str().into(),
                        now.saturating_add(i64::try_from(d.duration_secs).unwrap_or(i64::MAX)).into(),
                        now.into(),
                        d.simulated.into(),
                        d.reason.as_str().into(),
                        uuid.into(),
                        start.into(),
                        end.into(),
                        seq.into(),
                    ],
                    |r| r.int(0),
                )?;
                ids.extend(id);
            }
            Ok((alert_id, ids))
        })?;
        if !decisions.is_empty() {
            self.announce();
        }
        Ok(out)
    }

    /// Decisions in force at `now` (not deleted, not expired).
    ///
    /// # Errors
    /// Database errors.
    pub fn active(&mut self, now: i64) -> Result<Vec<DecisionRow>> {
        self.conn.all(
            &format!("SELECT {COLS} FROM decisions WHERE deleted_at IS NULL AND until > ?1 ORDER BY id"),
            &[now.into()],
            row,
        )
    }

    /// Active decisions per (origin, type).
    ///
    /// # Errors
    /// Database errors.
    pub fn active_counts(&mut self, now: i64) -> Result<Vec<(String, String, i64)>> {
        self.conn.all(
            "SELECT origin, type, COUNT(*) FROM decisions WHERE deleted_at IS NULL AND until > ?1 GROUP BY origin, type",
            &[now.into()],
            |r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)),
        )
    }

    /// Community decisions in force per list: `community` (origin `CAPI`, the consensus list) and
    /// each blocklist's name (origin `lists`, stored as scenario `lists:<name>`).
    ///
    /// # Errors
    /// Database errors.
    pub fn list_counts(&mut self, now: i64) -> Result<Vec<(String, i64)>> {
        let rows = self.conn.all(
            "SELECT origin, scenario, COUNT(*) FROM decisions WHERE deleted_at IS NULL AND until > ?1 \
             AND origin IN ('CAPI', 'lists') GROUP BY origin, scenario",
            &[now.into()],
            |r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)),
        )?;
        let mut lists: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for (origin, scenario, n) in rows {
            let name = if origin == "CAPI" {
                "community".to_owned()
            } else {
                scenario.strip_prefix("lists:").unwrap_or(&scenario).to_owned()
            };
            *lists.entry(name).or_default() += n;
        }
        Ok(lists.into_iter().collect())
    }

    /// How many decisions each value has had (profiles' `GetDecisionsCount`: repeat offenders).
    ///
    /// # Errors
    /// Database errors.
    pub fn decision_counts(&mut self) -> Result<std::collections::HashMap<String, u64>> {
        let rows = self.conn.all("SELECT value, COUNT(*) FROM decisions GROUP BY value", &[], |r| {
            Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0)))
        })?;
        Ok(rows.into_iter().collect())
    }

    /// One decision by id.
    ///
    /// # Errors
    /// Database errors.
    pub fn get(&mut self, id: i64) -> Result<Option<DecisionRow>> {
        self.conn.one(&format!("SELECT {COLS} FROM decisions WHERE id = ?1"), &[id.into()], row)
    }

    /// Deletes (marks deleted) the active decisions matching `value` (an address or range as
    /// stored), or `id`, or all when both are `None`; returns them.
    ///
    /// # Errors
    /// Database errors.
    pub fn delete(&mut self, value: Option<&str>, id: Option<i64>, now: i64) -> Result<Vec<DecisionRow>> {
        let f = DecisionFilter { value: value.map(str::to_owned), id, simulated: true, ..DecisionFilter::default() };
        self.delete_matching(&f, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(value: &str, secs: u64) -> NewDecision {
        NewDecision {
            origin: "crowdsec".into(),
            scenario: "crowd/ssh-bf".into(),
            scope: "Ip".into(),
            value: value.into(),
            kind: "ban".into(),
            duration_secs: secs,
            simulated: false,
            reason: String::new(),
            uuid: String::new(),
        }
    }

    #[test]
    fn migrations_run_once_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crowd.db");
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len() as i64);
        s.record(None, &[ban("192.0.2.1", 3600)], 1000).unwrap();
        drop(s);
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.active(1001).unwrap().len(), 1, "decisions survive a restart");
    }

    #[test]
    fn record_active_expire_delete() {
        let mut s = Store::memory().unwrap();
        let alert = NewAlert {
            scenario: "crowd/ssh-bf".into(),
            scope: "Ip".into(),
            value: "192.0.2.1".into(),
            events_count: 6,
            ..NewAlert::default()
        };
        let ids = s.record(Some(&alert), &[ban("192.0.2.1", 100), ban("198.51.100.0/24", 10)], 1000).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(s.get(ids[0]).unwrap().unwrap().alert_id, Some(1));
        assert_eq!(s.active(1005).unwrap().len(), 2);
        assert_eq!(s.active(1010).unwrap().len(), 1, "the 10 s one expired");
        let gone = s.delete(Some("192.0.2.1"), None, 1020).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(s.active(1021).unwrap().is_empty());
        assert_eq!(s.get(ids[0]).unwrap().unwrap().deleted_at, Some(1020));
    }

    #[test]
    fn sql_looking_values_are_data() {
        let mut s = Store::memory().unwrap();
        s.record(None, &[ban("1.2.3.4'); DROP TABLE decisions; --", 100)], 0).unwrap();
        assert_eq!(s.active(1).unwrap()[0].value, "1.2.3.4'); DROP TABLE decisions; --");
    }

    #[test]
    fn version_2_stores_keep_their_decisions_and_bouncer_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crowd.db");
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(MIGRATIONS[1]).unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
        c.execute_batch(
            "INSERT INTO decisions (origin, scenario, scope, value, type, until, created_at)
               VALUES ('cscli', 'manual', 'Ip', '192.0.2.1', 'ban', 100, 0),
                      ('cscli', 'manual', 'Ip', '192.0.2.2', 'ban', 100, 0);
             INSERT INTO bouncers (name, key_hash, last_pull, last_id, created_at) VALUES ('fw', 'h', 5, 2, 0);",
        )
        .unwrap();
        drop(c);
        let mut s = Store::open(&p).unwrap();
        assert_eq!(s.last_change().unwrap(), 2, "existing ids become change numbers");
        let b = s.bouncer_for("h", "", 6).unwrap().unwrap();
        assert_eq!(b.last_seq, 2, "the bouncer's id cursor is its change cursor");
        s.record(None, &[ban("192.0.2.3", 100)], 1).unwrap();
        assert_eq!(s.last_change().unwrap(), 3);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crowd.db");
        rusqlite::Connection::open(&p).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Store::open(&p), Err(StoreError::TooNew(99, _))));
    }
}
