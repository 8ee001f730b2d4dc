//! The store: alerts, decisions, bouncers and machines in SQLite (bundled). The only module
//! that speaks SQL.
//!
//! Decisions live here; the XDP maps are a cache of the active ones, which the daemon
//! reconciles at start and periodically (`crate::reconcile`). Times are Unix seconds passed in
//! by the caller. The schema is versioned (`PRAGMA user_version`) and migrated forward on open
//! (`schema.rs`). Decision queries for the Local API are in `decisions.rs`, alerts in
//! `alerts.rs`, bouncers, machines and secrets in `auth.rs`.
mod alerts;
mod auth;
mod decisions;
mod schema;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use schema::MIGRATIONS;

pub use alerts::{AlertFilter, AlertRow};
pub use auth::{BouncerRow, MachineRow};
pub use decisions::{AddrMatch, Cursor, DecisionFilter, StreamPart};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
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
fn backfill_bounds(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String, String)> = {
        let mut st = tx.prepare("SELECT id, scope, value FROM decisions")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?
    };
    for (id, scope, value) in rows {
        let (a, b) = bounds(&scope, &value);
        tx.execute(
            "UPDATE decisions SET start_ip = ?1, end_ip = ?2, uuid = ?3 WHERE id = ?4",
            params![a, b, uuid::Uuid::new_v4().to_string(), id],
        )?;
    }
    Ok(())
}

/// The database.
pub struct Store {
    conn: Connection,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DecisionRow> {
    Ok(DecisionRow {
        id: r.get(0)?,
        alert_id: r.get(1)?,
        origin: r.get(2)?,
        scenario: r.get(3)?,
        scope: r.get(4)?,
        value: r.get(5)?,
        kind: r.get(6)?,
        until: r.get(7)?,
        created_at: r.get(8)?,
        deleted_at: r.get(9)?,
        simulated: r.get::<_, i64>(10)? != 0,
        reason: r.get(11)?,
        uuid: r.get(12)?,
    })
}

const COLS: &str =
    "id, alert_id, origin, scenario, scope, value, type, until, created_at, deleted_at, simulated, reason, uuid";

impl Store {
    /// Opens (creating) the database at `path` and migrates it.
    ///
    /// # Errors
    /// SQLite errors; [`StoreError::TooNew`].
    pub fn open(path: &Path) -> Result<Store> {
        Store::init(Connection::open(path)?)
    }

    /// An in-memory store (tests, replay).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn memory() -> Result<Store> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL's recommended setting: commits do not wait for fsync (the WAL is synced at
        // checkpoints); a power cut may lose the last commits, never the database.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut s = Store { conn };
        s.migrate()?;
        Ok(s)
    }

    /// The schema version.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn version(&self) -> Result<i64> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&mut self) -> Result<()> {
        let v = self.version()?;
        let latest = MIGRATIONS.len() as i64;
        if v > latest {
            return Err(StoreError::TooNew(v, latest));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(v).unwrap_or(0)) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            if i == 1 {
                backfill_bounds(&tx)?;
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// A change counter: moves whenever another connection (another process, the CLI) commits.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self.conn.pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// The highest decision id.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn max_decision_id(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM decisions", [], |r| r.get(0))?)
    }

    /// Records an alert and its decisions in one transaction; returns the decisions' ids.
    ///
    /// # Errors
    /// SQLite errors (nothing is recorded).
    pub fn record(&mut self, alert: Option<&NewAlert>, decisions: &[NewDecision], now: i64) -> Result<Vec<i64>> {
        self.record_alert(alert, decisions, now).map(|(_, ids)| ids)
    }

    /// [`Store::record`], also returning the alert's id.
    ///
    /// # Errors
    /// SQLite errors (nothing is recorded).
    pub fn record_alert(
        &mut self,
        alert: Option<&NewAlert>,
        decisions: &[NewDecision],
        now: i64,
    ) -> Result<(Option<i64>, Vec<i64>)> {
        let tx = self.conn.transaction()?;
        let alert_id = match alert {
            Some(a) => {
                tx.execute(
                    "INSERT INTO alerts (scenario, scope, value, events_count, created_at, machine_id, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        a.scenario,
                        a.scope,
                        a.value,
                        i64::try_from(a.events_count).unwrap_or(i64::MAX),
                        now,
                        a.machine_id,
                        a.body
                    ],
                )?;
                Some(tx.last_insert_rowid())
            }
            None => None,
        };
        let mut ids = Vec::with_capacity(decisions.len());
        let mut st = tx.prepare_cached(
            "INSERT INTO decisions (alert_id, origin, scenario, scope, value, type, until, created_at, simulated,
                                    reason, uuid, start_ip, end_ip)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for d in decisions {
            let (start, end) = bounds(&d.scope, &d.value);
            let uuid = if d.uuid.is_empty() { uuid::Uuid::new_v4().to_string() } else { d.uuid.clone() };
            st.execute(params![
                alert_id,
                d.origin,
                d.scenario,
                d.scope,
                d.value,
                d.kind,
                now.saturating_add(i64::try_from(d.duration_secs).unwrap_or(i64::MAX)),
                now,
                i64::from(d.simulated),
                d.reason,
                uuid,
                start,
                end
            ])?;
            ids.push(tx.last_insert_rowid());
        }
        drop(st);
        tx.commit()?;
        Ok((alert_id, ids))
    }

    /// Decisions in force at `now` (not deleted, not expired).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn active(&self, now: i64) -> Result<Vec<DecisionRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM decisions WHERE deleted_at IS NULL AND until > ?1 ORDER BY id"
        ))?;
        Ok(st.query_map([now], row)?.collect::<rusqlite::Result<_>>()?)
    }

    /// How many decisions each value has had (profiles' `GetDecisionsCount`: repeat offenders).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn decision_counts(&self) -> Result<std::collections::HashMap<String, u64>> {
        let mut st = self.conn.prepare("SELECT value, COUNT(*) FROM decisions GROUP BY value")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (v, n) = r?;
            out.insert(v, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// One decision by id.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn get(&self, id: i64) -> Result<Option<DecisionRow>> {
        Ok(self.conn.query_row(&format!("SELECT {COLS} FROM decisions WHERE id = ?1"), [id], row).optional()?)
    }

    /// Deletes (marks deleted) the active decisions matching `value` (an address or range as
    /// stored), or `id`, or all when both are `None`; returns them.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn delete(&mut self, value: Option<&str>, id: Option<i64>, now: i64) -> Result<Vec<DecisionRow>> {
        let tx = self.conn.transaction()?;
        let rows: Vec<DecisionRow> = {
            let mut st = tx.prepare(&format!(
                "SELECT {COLS} FROM decisions WHERE deleted_at IS NULL AND until > ?1 AND (?2 IS NULL OR value = ?2) AND (?3 IS NULL OR id = ?3)"
            ))?;
            st.query_map(params![now, value, id], row)?.collect::<rusqlite::Result<_>>()?
        };
        for r in &rows {
            tx.execute("UPDATE decisions SET deleted_at = ?1 WHERE id = ?2", params![now, r.id])?;
        }
        tx.commit()?;
        Ok(rows)
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
        let s = Store::open(&p).unwrap();
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
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crowd.db");
        Connection::open(&p).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Store::open(&p), Err(StoreError::TooNew(99, _))));
    }
}
