//! Who may talk to the Local API: bouncers (API keys, stored as SHA-512 hex like CrowdSec's),
//! machines (agents: a password hash and a validation flag), and server secrets (the JWT key).
use rusqlite::{OptionalExtension, params};

use super::{Result, Store};

/// A bouncer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BouncerRow {
    /// Row id.
    pub id: i64,
    /// Name (`<name>@<ip>` for a shared key seen from another address).
    pub name: String,
    /// SHA-512 hex of the key.
    #[serde(skip)]
    pub key_hash: String,
    /// The address it pulls from (recorded at its first request).
    pub ip_address: String,
    /// From its User-Agent (`crowdsec-firewall-bouncer`).
    #[serde(rename = "type")]
    pub kind: String,
    /// From its User-Agent.
    pub version: String,
    /// `api-key`.
    pub auth_type: String,
    /// Its last stream pull (Unix seconds).
    pub last_pull: Option<i64>,
    /// The last decision id it was sent.
    #[serde(skip)]
    pub last_id: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// A machine (an agent that pushes alerts).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MachineRow {
    /// Login.
    pub machine_id: String,
    /// Argon2 PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Last seen from.
    pub ip_address: String,
    /// The scenarios it said it runs, comma-separated.
    pub scenarios: String,
    /// May log in.
    pub validated: bool,
    /// Unix seconds.
    pub last_heartbeat: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

const BOUNCER_COLS: &str = "id, name, key_hash, ip_address, type, version, auth_type, last_pull, last_id, created_at";

fn bouncer(r: &rusqlite::Row<'_>) -> rusqlite::Result<BouncerRow> {
    Ok(BouncerRow {
        id: r.get(0)?,
        name: r.get(1)?,
        key_hash: r.get(2)?,
        ip_address: r.get(3)?,
        kind: r.get(4)?,
        version: r.get(5)?,
        auth_type: r.get(6)?,
        last_pull: r.get(7)?,
        last_id: r.get(8)?,
        created_at: r.get(9)?,
    })
}

const MACHINE_COLS: &str = "machine_id, password_hash, ip_address, scenarios, validated, last_heartbeat, created_at";

fn machine(r: &rusqlite::Row<'_>) -> rusqlite::Result<MachineRow> {
    Ok(MachineRow {
        machine_id: r.get(0)?,
        password_hash: r.get(1)?,
        ip_address: r.get(2)?,
        scenarios: r.get(3)?,
        validated: r.get::<_, i64>(4)? != 0,
        last_heartbeat: r.get(5)?,
        created_at: r.get(6)?,
    })
}

impl Store {
    /// Adds a bouncer; `false` if the name is taken.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn add_bouncer(&mut self, name: &str, key_hash: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT INTO bouncers (name, key_hash, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            params![name, key_hash, now],
        )?;
        Ok(n == 1)
    }

    /// Every bouncer, by name.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn bouncers(&self) -> Result<Vec<BouncerRow>> {
        let mut st = self.conn.prepare_cached(&format!("SELECT {BOUNCER_COLS} FROM bouncers ORDER BY name"))?;
        Ok(st.query_map([], bouncer)?.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a bouncer and the `<name>@<ip>` rows its key made; how many rows went.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn delete_bouncer(&mut self, name: &str) -> Result<usize> {
        let hash: Option<String> =
            self.conn.query_row("SELECT key_hash FROM bouncers WHERE name = ?1", [name], |r| r.get(0)).optional()?;
        let Some(hash) = hash else { return Ok(0) };
        Ok(self.conn.execute("DELETE FROM bouncers WHERE key_hash = ?1", [hash])?)
    }

    /// The bouncer a key identifies, seen from `ip`. CrowdSec's identity is (key, address): the
    /// first request records the address; the same key from another address gets its own row
    /// `<name>@<ip>`, with its own stream position. `None`: no such key.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn bouncer_for(&mut self, key_hash: &str, ip: &str, now: i64) -> Result<Option<BouncerRow>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {BOUNCER_COLS} FROM bouncers WHERE key_hash = ?1 ORDER BY (ip_address = ?2) DESC, (ip_address = '') DESC, id"
        ))?;
        let Some(b) = st.query_row(params![key_hash, ip], bouncer).optional()? else { return Ok(None) };
        drop(st);
        if b.ip_address == ip {
            return Ok(Some(b));
        }
        if b.ip_address.is_empty() {
            self.conn.execute("UPDATE bouncers SET ip_address = ?1 WHERE id = ?2", params![ip, b.id])?;
            return Ok(Some(BouncerRow { ip_address: ip.to_owned(), ..b }));
        }
        let base = b.name.split('@').next().unwrap_or(&b.name).to_owned();
        let name = format!("{base}@{ip}");
        self.conn.execute(
            "INSERT INTO bouncers (name, key_hash, ip_address, type, version, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(name) DO NOTHING",
            params![name, key_hash, ip, b.kind, b.version, now],
        )?;
        Ok(self
            .conn
            .query_row(&format!("SELECT {BOUNCER_COLS} FROM bouncers WHERE name = ?1"), [name], bouncer)
            .optional()?)
    }

    /// Records a bouncer's User-Agent.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn set_bouncer_agent(&mut self, id: i64, kind: &str, version: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE bouncers SET type = ?1, version = ?2 WHERE id = ?3 AND (type != ?1 OR version != ?2)",
            params![kind, version, id],
        )?;
        Ok(())
    }

    /// Records a served stream pull.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn set_bouncer_pull(&mut self, id: i64, cursor: super::Cursor) -> Result<()> {
        self.conn.execute(
            "UPDATE bouncers SET last_pull = ?1, last_id = ?2 WHERE id = ?3",
            params![cursor.last_pull, cursor.last_id, id],
        )?;
        Ok(())
    }

    /// Adds or replaces a machine.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn upsert_machine(&mut self, id: &str, password_hash: &str, validated: bool, ip: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO machines (machine_id, password_hash, validated, ip_address, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(machine_id) DO UPDATE SET password_hash = ?2, validated = max(validated, ?3), ip_address = ?4",
            params![id, password_hash, i64::from(validated), ip, now],
        )?;
        Ok(())
    }

    /// One machine.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn machine(&self, id: &str) -> Result<Option<MachineRow>> {
        Ok(self
            .conn
            .query_row(&format!("SELECT {MACHINE_COLS} FROM machines WHERE machine_id = ?1"), [id], machine)
            .optional()?)
    }

    /// Every machine.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn machines(&self) -> Result<Vec<MachineRow>> {
        let mut st = self.conn.prepare(&format!("SELECT {MACHINE_COLS} FROM machines ORDER BY machine_id"))?;
        Ok(st.query_map([], machine)?.collect::<rusqlite::Result<_>>()?)
    }

    /// Validates a machine; `false` if unknown.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn validate_machine(&mut self, id: &str) -> Result<bool> {
        Ok(self.conn.execute("UPDATE machines SET validated = 1 WHERE machine_id = ?1", [id])? == 1)
    }

    /// Deletes a machine; `false` if unknown.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn delete_machine(&mut self, id: &str) -> Result<bool> {
        Ok(self.conn.execute("DELETE FROM machines WHERE machine_id = ?1", [id])? == 1)
    }

    /// Records a login (its scenarios and address) or a heartbeat.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn touch_machine(&mut self, id: &str, scenarios: Option<&str>, ip: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE machines SET last_heartbeat = ?1, ip_address = ?2, scenarios = COALESCE(?3, scenarios) WHERE machine_id = ?4",
            params![now, ip, scenarios, id],
        )?;
        Ok(())
    }

    /// A named secret, made by `make` and kept the first time it is asked for.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn secret(&mut self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        if let Some(v) =
            self.conn.query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| r.get(0)).optional()?
        {
            return Ok(v);
        }
        let v = make();
        self.conn.execute(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            params![name, v],
        )?;
        Ok(self.conn.query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_key_gets_one_row_per_address() {
        let mut s = Store::memory().unwrap();
        assert!(s.add_bouncer("fw", "h1", 0).unwrap());
        assert!(!s.add_bouncer("fw", "h2", 0).unwrap(), "names are unique");
        let a = s.bouncer_for("h1", "192.0.2.1", 1).unwrap().unwrap();
        assert_eq!((a.name.as_str(), a.ip_address.as_str()), ("fw", "192.0.2.1"));
        let b = s.bouncer_for("h1", "192.0.2.2", 2).unwrap().unwrap();
        assert_eq!(b.name, "fw@192.0.2.2");
        assert_ne!(a.id, b.id);
        assert_eq!(s.bouncer_for("h1", "192.0.2.1", 3).unwrap().unwrap().id, a.id);
        assert_eq!(s.bouncer_for("h1", "192.0.2.2", 3).unwrap().unwrap().id, b.id);
        assert!(s.bouncer_for("nope", "192.0.2.1", 3).unwrap().is_none());
        assert_eq!(s.delete_bouncer("fw").unwrap(), 2);
        assert!(s.bouncer_for("h1", "192.0.2.1", 4).unwrap().is_none());
    }

    #[test]
    fn secrets_are_made_once() {
        let mut s = Store::memory().unwrap();
        let a = s.secret("jwt", || "one".into()).unwrap();
        let b = s.secret("jwt", || "two".into()).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("one", "one"));
    }
}
