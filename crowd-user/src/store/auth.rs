//! Who may talk to the Local API: bouncers (API keys, stored as SHA-512 hex like CrowdSec's),
//! machines (agents: a password hash and a validation flag), and server secrets (the JWT key).
use super::{Result, Row, Store};

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
    /// The last change number ([`super::Cursor::last_seq`]) it was sent.
    #[serde(skip)]
    pub last_seq: i64,
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

const BOUNCER_COLS: &str = "id, name, key_hash, ip_address, type, version, auth_type, last_pull, last_seq, created_at";

fn bouncer(r: &Row<'_>) -> Result<BouncerRow> {
    Ok(BouncerRow {
        id: r.int(0)?,
        name: r.text(1)?,
        key_hash: r.text(2)?,
        ip_address: r.text(3)?,
        kind: r.text(4)?,
        version: r.text(5)?,
        auth_type: r.text(6)?,
        last_pull: r.opt_int(7)?,
        last_seq: r.int(8)?,
        created_at: r.int(9)?,
    })
}

const MACHINE_COLS: &str = "machine_id, password_hash, ip_address, scenarios, validated, last_heartbeat, created_at";

fn machine(r: &Row<'_>) -> Result<MachineRow> {
    Ok(MachineRow {
        machine_id: r.text(0)?,
        password_hash: r.text(1)?,
        ip_address: r.text(2)?,
        scenarios: r.text(3)?,
        validated: r.flag(4)?,
        last_heartbeat: r.opt_int(5)?,
        created_at: r.int(6)?,
    })
}

impl Store {
    /// Adds a bouncer; `false` if the name is taken.
    ///
    /// # Errors
    /// Database errors.
    pub fn add_bouncer(&mut self, name: &str, key_hash: &str, now: i64) -> Result<bool> {
        let n = self.conn.exec(
            "INSERT INTO bouncers (name, key_hash, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            &[name.into(), key_hash.into(), now.into()],
        )?;
        Ok(n == 1)
    }

    /// Every bouncer, by name.
    ///
    /// # Errors
    /// Database errors.
    pub fn bouncers(&mut self) -> Result<Vec<BouncerRow>> {
        self.conn.all(&format!("SELECT {BOUNCER_COLS} FROM bouncers ORDER BY name"), &[], bouncer)
    }

    /// Deletes a bouncer and the `<name>@<ip>` rows its key made; how many rows went.
    ///
    /// # Errors
    /// Database errors.
    pub fn delete_bouncer(&mut self, name: &str) -> Result<usize> {
        let hash = self.conn.one("SELECT key_hash FROM bouncers WHERE name = ?1", &[name.into()], |r| r.text(0))?;
        let Some(hash) = hash else { return Ok(0) };
        Ok(usize::try_from(self.conn.exec("DELETE FROM bouncers WHERE key_hash = ?1", &[hash.into()])?).unwrap_or(0))
    }

    /// The bouncer a key identifies, seen from `ip`. CrowdSec's identity is (key, address): the
    /// first request records the address; the same key from another address gets its own row
    /// `<name>@<ip>`, with its own stream position. `None`: no such key.
    ///
    /// # Errors
    /// Database errors.
    pub fn bouncer_for(&mut self, key_hash: &str, ip: &str, now: i64) -> Result<Option<BouncerRow>> {
        let rows = self.conn.all(
            &format!("SELECT {BOUNCER_COLS} FROM bouncers WHERE key_hash = ?1 ORDER BY id"),
            &[key_hash.into()],
            bouncer,
        )?;
        if let Some(b) = rows.iter().find(|b| b.ip_address == ip) {
            return Ok(Some(b.clone()));
        }
        let Some(b) = rows.into_iter().min_by_key(|b| (!b.ip_address.is_empty(), b.id)) else { return Ok(None) };
        if b.ip_address.is_empty() {
            self.conn.exec("UPDATE bouncers SET ip_address = ?1 WHERE id = ?2", &[ip.into(), b.id.into()])?;
            return Ok(Some(BouncerRow { ip_address: ip.to_owned(), ..b }));
        }
        let base = b.name.split('@').next().unwrap_or(&b.name).to_owned();
        let name = format!("{base}@{ip}");
        self.conn.exec(
            "INSERT INTO bouncers (name, key_hash, ip_address, type, version, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(name) DO NOTHING",
            &[name.as_str().into(), key_hash.into(), ip.into(), b.kind.into(), b.version.into(), now.into()],
        )?;
        self.conn.one(&format!("SELECT {BOUNCER_COLS} FROM bouncers WHERE name = ?1"), &[name.into()], bouncer)
    }

    /// The bouncer a verified client certificate names: `<cn>@<ip>`, made on first sight.
    ///
    /// # Errors
    /// Database errors.
    pub fn tls_bouncer(&mut self, cn: &str, ip: &str, now: i64) -> Result<Option<BouncerRow>> {
        let name = format!("{cn}@{ip}");
        self.conn.exec(
            "INSERT INTO bouncers (name, key_hash, ip_address, auth_type, created_at) VALUES (?1, ?2, ?3, 'tls', ?4)
             ON CONFLICT(name) DO NOTHING",
            &[name.as_str().into(), format!("tls:{cn}").into(), ip.into(), now.into()],
        )?;
        self.conn.one(
            &format!("SELECT {BOUNCER_COLS} FROM bouncers WHERE name = ?1 AND auth_type = 'tls'"),
            &[name.into()],
            bouncer,
        )
    }

    /// Records a bouncer's User-Agent.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_bouncer_agent(&mut self, id: i64, kind: &str, version: &str) -> Result<()> {
        self.conn.exec(
            "UPDATE bouncers SET type = ?1, version = ?2 WHERE id = ?3",
            &[kind.into(), version.into(), id.into()],
        )?;
        Ok(())
    }

    /// Records a served stream pull.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_bouncer_pull(&mut self, id: i64, cursor: super::Cursor) -> Result<()> {
        self.conn.exec(
            "UPDATE bouncers SET last_pull = ?1, last_seq = ?2 WHERE id = ?3",
            &[cursor.last_pull.into(), cursor.last_seq.into(), id.into()],
        )?;
        Ok(())
    }

    /// Adds or replaces a machine.
    ///
    /// # Errors
    /// Database errors.
    pub fn upsert_machine(&mut self, id: &str, password_hash: &str, validated: bool, ip: &str, now: i64) -> Result<()> {
        let keep = if self.is_pg() { "GREATEST(machines.validated, ?3)" } else { "max(validated, ?3)" };
        self.conn.exec(
            &format!(
                "INSERT INTO machines (machine_id, password_hash, validated, ip_address, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(machine_id) DO UPDATE SET password_hash = ?2, validated = {keep}, ip_address = ?4"
            ),
            &[id.into(), password_hash.into(), validated.into(), ip.into(), now.into()],
        )?;
        Ok(())
    }

    /// One machine.
    ///
    /// # Errors
    /// Database errors.
    pub fn machine(&mut self, id: &str) -> Result<Option<MachineRow>> {
        self.conn.one(&format!("SELECT {MACHINE_COLS} FROM machines WHERE machine_id = ?1"), &[id.into()], machine)
    }

    /// Every machine.
    ///
    /// # Errors
    /// Database errors.
    pub fn machines(&mut self) -> Result<Vec<MachineRow>> {
        self.conn.all(&format!("SELECT {MACHINE_COLS} FROM machines ORDER BY machine_id"), &[], machine)
    }

    /// Validates a machine; `false` if unknown.
    ///
    /// # Errors
    /// Database errors.
    pub fn validate_machine(&mut self, id: &str) -> Result<bool> {
        Ok(self.conn.exec("UPDATE machines SET validated = 1 WHERE machine_id = ?1", &[id.into()])? == 1)
    }

    /// Deletes a machine; `false` if unknown.
    ///
    /// # Errors
    /// Database errors.
    pub fn delete_machine(&mut self, id: &str) -> Result<bool> {
        Ok(self.conn.exec("DELETE FROM machines WHERE machine_id = ?1", &[id.into()])? == 1)
    }

    /// Records a login (its scenarios and address) or a heartbeat.
    ///
    /// # Errors
    /// Database errors.
    pub fn touch_machine(&mut self, id: &str, scenarios: Option<&str>, ip: &str, now: i64) -> Result<()> {
        match scenarios {
            Some(sc) => self.conn.exec(
                "UPDATE machines SET last_heartbeat = ?1, ip_address = ?2, scenarios = ?3 WHERE machine_id = ?4",
                &[now.into(), ip.into(), sc.into(), id.into()],
            )?,
            None => self.conn.exec(
                "UPDATE machines SET last_heartbeat = ?1, ip_address = ?2 WHERE machine_id = ?3",
                &[now.into(), ip.into(), id.into()],
            )?,
        };
        Ok(())
    }

    /// A named secret, made by `make` and kept the first time it is asked for.
    ///
    /// # Errors
    /// Database errors.
    pub fn secret(&mut self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        let get = "SELECT value FROM secrets WHERE name = ?1";
        if let Some(v) = self.conn.one(get, &[name.into()], |r| r.text(0))? {
            return Ok(v);
        }
        self.conn.exec(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
            &[name.into(), make().into()],
        )?;
        Ok(self.conn.one(get, &[name.into()], |r| r.text(0))?.unwrap_or_default())
    }

    /// Replaces (or makes) a named secret, and tells other connections (a running API reloads
    /// its token key on any change).
    ///
    /// # Errors
    /// Database errors.
    pub fn replace_secret(&mut self, name: &str, value: &str) -> Result<()> {
        self.conn.exec(
            "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            &[name.into(), value.into()],
        )?;
        self.announce();
        Ok(())
    }

    /// A named secret, if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub fn get_secret(&mut self, name: &str) -> Result<Option<String>> {
        self.conn.one("SELECT value FROM secrets WHERE name = ?1", &[name.into()], |r| r.text(0))
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
        s.replace_secret("jwt", "three").unwrap();
        assert_eq!(s.get_secret("jwt").unwrap().as_deref(), Some("three"));
        assert_eq!(s.secret("jwt", || "four".into()).unwrap(), "three");
        assert_eq!(s.get_secret("nope").unwrap(), None);
    }
}
