//! The community server's tables: organisations (enrollment keys, stored hashed), member
//! machines (their egress only as a prefix and an ASN), signals as received, the published
//! lists with commit-ordered change numbers (`cm_seq`, as `change_seq` orders decisions), each
//! member's cursor in them, and the operator's allowlist. No consensus here: the server's
//! engine decides what is listed and hands the changes to [`Store::apply_list`].
use super::{Result, Store, backend::Conn};

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OrgRow {
    /// Name.
    pub name: String,
    /// Whether it has an enrollment key.
    pub has_key: bool,
    /// Created, Unix seconds.
    pub created_at: i64,
}

/// A member machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberRow {
    /// Its login.
    pub machine_id: String,
    /// Argon2 hash of its password.
    #[serde(skip)]
    pub password_hash: String,
    /// Its organisation.
    pub org: String,
    /// An operator's sensor (honeypot) whose reports may list alone.
    pub sensor: bool,
    /// The prefix it last connected from (/24 or /48), empty before its first login.
    pub egress_prefix: String,
    /// That prefix's ASN (0: unknown).
    pub asn: i64,
    /// The scenarios it last said it runs (comma-separated).
    pub scenarios: String,
    /// Registered, Unix seconds.
    pub created_at: i64,
    /// Last login.
    pub last_login: Option<i64>,
    /// Its position in the published changes.
    pub last_seq: i64,
    /// Its last pull.
    pub last_pull: Option<i64>,
}

/// A signal to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSignal {
    /// The reporting machine (the token's subject, never the body's).
    pub machine_id: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// The address or prefix.
    pub value: String,
    /// The scenario.
    pub scenario: String,
    /// When the attack was seen (its `stop_at`), Unix seconds.
    pub at: i64,
    /// Its context, only when the operator keeps it.
    pub context: Option<String>,
}

/// A published entry (or its withdrawal).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EntryRow {
    /// The list: `""` for the community list, else an organisation's name.
    pub list: String,
    /// `Ip` or `Range`.
    pub scope: String,
    /// The address or prefix.
    pub value: String,
    /// The scenario it is published under.
    pub scenario: String,
    /// Expiry, Unix seconds.
    pub until: i64,
    /// Withdrawn.
    pub deleted: bool,
    /// Its change number.
    pub seq: i64,
}

/// An entry to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// `Ip` or `Range`.
    pub scope: String,
    /// The address or prefix.
    pub value: String,
    /// The scenario.
    pub scenario: String,
    /// Expiry, Unix seconds.
    pub until: i64,
}

const MEMBER_COLS: &str = "machine_id, password_hash, org, sensor, egress_prefix, asn, scenarios, created_at, last_login, last_seq, last_pull";
const ENTRY_COLS: &str = "list, scope, value, scenario, until, deleted, seq";

fn member(r: &super::backend::Row<'_>) -> Result<MemberRow> {
    Ok(MemberRow {
        machine_id: r.text(0)?,
        password_hash: r.text(1)?,
        org: r.text(2)?,
        sensor: r.flag(3)?,
        egress_prefix: r.text(4)?,
        asn: r.int(5)?,
        scenarios: r.text(6)?,
        created_at: r.int(7)?,
        last_login: r.opt_int(8)?,
        last_seq: r.int(9)?,
        last_pull: r.opt_int(10)?,
    })
}

fn entry(r: &super::backend::Row<'_>) -> Result<EntryRow> {
    Ok(EntryRow {
        list: r.text(0)?,
        scope: r.text(1)?,
        value: r.text(2)?,
        scenario: r.text(3)?,
        until: r.int(4)?,
        deleted: r.flag(5)?,
        seq: r.int(6)?,
    })
}

/// The advisory lock key of the community servers' leader ("crowdcm" in ASCII).
const LEADER_LOCK: i64 = 0x0063_726f_7764_636d;

fn signal_row(r: &super::backend::Row<'_>) -> Result<NewSignal> {
    Ok(NewSignal {
        machine_id: r.text(0)?,
        scope: r.text(1)?,
        value: r.text(2)?,
        scenario: r.text(3)?,
        at: r.int(4)?,
        context: None,
    })
}

fn next_seq(c: &mut Conn) -> Result<i64> {
    Ok(c.one("UPDATE cm_seq SET n = n + 1 RETURNING n", &[], |r| r.int(0))?.unwrap_or(0))
}

impl Store {
    /// Adds an organisation (its enrollment key hashed, or none); false if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub fn add_org(&mut self, name: &str, key_hash: &str, now: i64) -> Result<bool> {
        let n = self.conn.exec(
            "INSERT INTO cm_orgs (name, key_hash, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            &[name.into(), key_hash.into(), now.into()],
        )?;
        Ok(n == 1)
    }

    /// The organisation whose enrollment key hashes to `key_hash`.
    ///
    /// # Errors
    /// Database errors.
    pub fn org_for_key(&mut self, key_hash: &str) -> Result<Option<String>> {
        if key_hash.is_empty() {
            return Ok(None);
        }
        self.conn.one("SELECT name FROM cm_orgs WHERE key_hash = ?1", &[key_hash.into()], |r| r.text(0))
    }

    /// Every organisation.
    ///
    /// # Errors
    /// Database errors.
    pub fn orgs(&mut self) -> Result<Vec<OrgRow>> {
        self.conn.all("SELECT name, key_hash, created_at FROM cm_orgs ORDER BY name", &[], |r| {
            Ok(OrgRow { name: r.text(0)?, has_key: !r.text(1)?.is_empty(), created_at: r.int(2)? })
        })
    }

    /// Deletes an organisation and its machines; false if there was none.
    ///
    /// # Errors
    /// Database errors.
    pub fn delete_org(&mut self, name: &str) -> Result<bool> {
        self.conn.tx(|c| {
            c.exec("DELETE FROM cm_machines WHERE org = ?1", &[name.into()])?;
            Ok(c.exec("DELETE FROM cm_orgs WHERE name = ?1", &[name.into()])? > 0)
        })
    }

    /// Registers a member machine; false if its id is taken.
    ///
    /// # Errors
    /// Database errors.
    pub fn add_member(
        &mut self,
        machine_id: &str,
        password_hash: &str,
        org: &str,
        sensor: bool,
        now: i64,
    ) -> Result<bool> {
        let n = self.conn.exec(
            "INSERT INTO cm_machines (machine_id, password_hash, org, sensor, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(machine_id) DO NOTHING",
            &[machine_id.into(), password_hash.into(), org.into(), sensor.into(), now.into()],
        )?;
        Ok(n == 1)
    }

    /// One member machine.
    ///
    /// # Errors
    /// Database errors.
    pub fn member(&mut self, machine_id: &str) -> Result<Option<MemberRow>> {
        self.conn.one(
            &format!("SELECT {MEMBER_COLS} FROM cm_machines WHERE machine_id = ?1"),
            &[machine_id.into()],
            member,
        )
    }

    /// Every member machine.
    ///
    /// # Errors
    /// Database errors.
    pub fn members(&mut self) -> Result<Vec<MemberRow>> {
        self.conn.all(&format!("SELECT {MEMBER_COLS} FROM cm_machines ORDER BY id"), &[], member)
    }

    /// Deletes a member machine; false if there was none.
    ///
    /// # Errors
    /// Database errors.
    pub fn delete_member(&mut self, machine_id: &str) -> Result<bool> {
        Ok(self.conn.exec("DELETE FROM cm_machines WHERE machine_id = ?1", &[machine_id.into()])? > 0)
    }

    /// Records a login: where from (prefix and ASN only) and the scenarios it runs.
    ///
    /// # Errors
    /// Database errors.
    pub fn member_login(&mut self, machine_id: &str, prefix: &str, asn: i64, scenarios: &str, now: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE cm_machines SET egress_prefix = ?1, asn = ?2, scenarios = ?3, last_login = ?4 WHERE machine_id = ?5",
            &[prefix.into(), asn.into(), scenarios.into(), now.into(), machine_id.into()],
        )?;
        Ok(())
    }

    /// Records a served pull: the member has every change up to `seq`.
    ///
    /// # Errors
    /// Database errors.
    pub fn member_pulled(&mut self, machine_id: &str, seq: i64, now: i64) -> Result<()> {
        self.conn.exec(
            "UPDATE cm_machines SET last_seq = ?1, last_pull = ?2 WHERE machine_id = ?3",
            &[seq.into(), now.into(), machine_id.into()],
        )?;
        Ok(())
    }

    /// Records a batch of signals in one transaction, stamped `now`, under the next batch
    /// number (commit-ordered, as `change_seq` orders decisions: a reader that has seen batch N
    /// has seen every batch before it, whichever server process wrote them). Returns it.
    ///
    /// # Errors
    /// Database errors (nothing of the batch is kept then).
    pub fn add_signals(&mut self, signals: &[NewSignal], now: i64) -> Result<i64> {
        self.conn.tx(|c| {
            let seq = c.one("UPDATE cm_signal_seq SET n = n + 1 RETURNING n", &[], |r| r.int(0))?.unwrap_or(0);
            for s in signals {
                c.exec(
                    "INSERT INTO cm_signals (machine_id, scope, value, scenario, at, received_at, context, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    &[
                        s.machine_id.as_str().into(),
                        s.scope.as_str().into(),
                        s.value.as_str().into(),
                        s.scenario.as_str().into(),
                        s.at.into(),
                        now.into(),
                        s.context.clone().map_or(super::backend::Val::Null, Into::into),
                        seq.into(),
                    ],
                )?;
            }
            Ok(seq)
        })
    }

    /// Calls `f` on every signal received at or after `since`, in batch order, with the time
    /// it was received and its batch number (the server's engine rebuilds its state from them).
    ///
    /// # Errors
    /// Database errors, or `f`'s.
    pub fn each_signal(&mut self, since: i64, mut f: impl FnMut(NewSignal, i64, i64) -> Result<()>) -> Result<()> {
        self.conn.each(
            "SELECT machine_id, scope, value, scenario, at, received_at, seq FROM cm_signals
             WHERE received_at >= ?1 ORDER BY seq, id",
            &[since.into()],
            |r| f(signal_row(r)?, r.int(5)?, r.int(6)?),
        )
    }

    /// Up to `limit` signals of batches after `after`, in order: (batch, signal, received).
    ///
    /// # Errors
    /// Database errors.
    pub fn signals_after(&mut self, after: i64, limit: i64) -> Result<Vec<(i64, NewSignal, i64)>> {
        self.conn.all(
            "SELECT machine_id, scope, value, scenario, at, received_at, seq FROM cm_signals
             WHERE seq > ?1 ORDER BY seq, id LIMIT ?2",
            &[after.into(), limit.into()],
            |r| Ok((r.int(6)?, signal_row(r)?, r.int(5)?)),
        )
    }

    /// The last signal batch number.
    ///
    /// # Errors
    /// Database errors.
    pub fn signal_seq(&mut self) -> Result<i64> {
        Ok(self.conn.one("SELECT n FROM cm_signal_seq", &[], |r| r.int(0))?.unwrap_or(0))
    }

    /// Whether this connection leads the community servers sharing the store: PostgreSQL's
    /// session advisory lock (held until the connection ends); always on SQLite (one server).
    ///
    /// # Errors
    /// Database errors.
    pub fn try_lead(&mut self) -> Result<bool> {
        if !self.conn.pg() {
            return Ok(true);
        }
        let got = self.conn.one(
            "SELECT CASE WHEN pg_try_advisory_lock(?1) THEN 1::BIGINT ELSE 0::BIGINT END",
            &[LEADER_LOCK.into()],
            |r| r.int(0),
        )?;
        Ok(got == Some(1))
    }

    /// Forgets signals received before `before` (retention); the number forgotten.
    ///
    /// # Errors
    /// Database errors.
    pub fn prune_signals(&mut self, before: i64) -> Result<u64> {
        self.conn.exec("DELETE FROM cm_signals WHERE received_at < ?1", &[before.into()])
    }

    /// Publishes into `list` and withdraws from it, under one change number; returns it (or
    /// the current number when there was nothing to do).
    ///
    /// # Errors
    /// Database errors (nothing is applied then).
    pub fn apply_list(&mut self, list: &str, listed: &[Publish], withdrawn: &[String], now: i64) -> Result<i64> {
        if listed.is_empty() && withdrawn.is_empty() {
            return self.list_seq();
        }
        self.conn.tx(|c| {
            let seq = next_seq(c)?;
            for p in listed {
                c.exec(
                    "INSERT INTO cm_entries (list, scope, value, scenario, until, deleted, seq, changed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)
                     ON CONFLICT(list, value) DO UPDATE SET scope = excluded.scope, scenario = excluded.scenario,
                     until = excluded.until, deleted = 0, seq = excluded.seq, changed_at = excluded.changed_at",
                    &[
                        list.into(),
                        p.scope.as_str().into(),
                        p.value.as_str().into(),
                        p.scenario.as_str().into(),
                        p.until.into(),
                        seq.into(),
                        now.into(),
                    ],
                )?;
            }
            for v in withdrawn {
                c.exec(
                    "UPDATE cm_entries SET deleted = 1, seq = ?1, changed_at = ?4 WHERE list = ?2 AND value = ?3 AND deleted = 0",
                    &[seq.into(), list.into(), v.as_str().into(), now.into()],
                )?;
            }
            Ok(seq)
        })
    }

    /// When `list` last changed (Unix seconds; 0 for never).
    ///
    /// # Errors
    /// Database errors.
    pub fn list_changed_at(&mut self, list: &str) -> Result<i64> {
        Ok(self
            .conn
            .one("SELECT COALESCE(MAX(changed_at), 0) FROM cm_entries WHERE list = ?1", &[list.into()], |r| r.int(0))?
            .unwrap_or(0))
    }

    /// Moves a member machine to another organisation.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_member_org(&mut self, machine_id: &str, org: &str) -> Result<()> {
        self.conn.exec("UPDATE cm_machines SET org = ?1 WHERE machine_id = ?2", &[org.into(), machine_id.into()])?;
        Ok(())
    }

    /// The last change number of the published lists.
    ///
    /// # Errors
    /// Database errors.
    pub fn list_seq(&mut self) -> Result<i64> {
        Ok(self.conn.one("SELECT n FROM cm_seq", &[], |r| r.int(0))?.unwrap_or(0))
    }

    /// Entries of the lists in `lists` changed after `since` (all, withdrawn ones included,
    /// when `since` is 0), up to change `up_to`.
    ///
    /// # Errors
    /// Database errors.
    pub fn list_changes(&mut self, lists: &[String], since: i64, up_to: i64) -> Result<Vec<EntryRow>> {
        let mut out = Vec::new();
        for l in lists {
            out.extend(self.conn.all(
                &format!(
                    "SELECT {ENTRY_COLS} FROM cm_entries WHERE list = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq, id"
                ),
                &[l.into(), since.into(), up_to.into()],
                entry,
            )?);
        }
        Ok(out)
    }

    /// The entries of `list` in force at `now`.
    ///
    /// # Errors
    /// Database errors.
    pub fn list_entries(&mut self, list: &str, now: i64) -> Result<Vec<EntryRow>> {
        self.conn.all(
            &format!("SELECT {ENTRY_COLS} FROM cm_entries WHERE list = ?1 AND deleted = 0 AND until > ?2 ORDER BY id"),
            &[list.into(), now.into()],
            entry,
        )
    }

    /// Saves the consensus' per-organisation state (JSON by organisation) in one transaction.
    ///
    /// # Errors
    /// Database errors.
    pub fn save_org_states(&mut self, states: &[(String, String)], now: i64) -> Result<()> {
        self.conn.tx(|c| {
            for (org, state) in states {
                c.exec(
                    "INSERT INTO cm_org_state (org, state, saved_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(org) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
                    &[org.as_str().into(), state.as_str().into(), now.into()],
                )?;
            }
            Ok(())
        })
    }

    /// The saved per-organisation states: (organisation, JSON).
    ///
    /// # Errors
    /// Database errors.
    pub fn org_states(&mut self) -> Result<Vec<(String, String)>> {
        self.conn.all("SELECT org, state FROM cm_org_state ORDER BY org", &[], |r| Ok((r.text(0)?, r.text(1)?)))
    }

    /// Adds to the operator's allowlist; false if it was there.
    ///
    /// # Errors
    /// Database errors.
    pub fn cm_allow(&mut self, value: &str, reason: &str, now: i64) -> Result<bool> {
        let n = self.conn.exec(
            "INSERT INTO cm_allow (value, reason, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(value) DO NOTHING",
            &[value.into(), reason.into(), now.into()],
        )?;
        Ok(n == 1)
    }

    /// Removes from the operator's allowlist; false if it was not there.
    ///
    /// # Errors
    /// Database errors.
    pub fn cm_disallow(&mut self, value: &str) -> Result<bool> {
        Ok(self.conn.exec("DELETE FROM cm_allow WHERE value = ?1", &[value.into()])? > 0)
    }

    /// The operator's allowlist: (value, reason).
    ///
    /// # Errors
    /// Database errors.
    pub fn cm_allowlist(&mut self) -> Result<Vec<(String, String)>> {
        self.conn.all("SELECT value, reason FROM cm_allow ORDER BY value", &[], |r| Ok((r.text(0)?, r.text(1)?)))
    }
}
