//! The web console's tables: console users (Argon2 hashes and a role), sessions (kept by the
//! SHA-256 of their cookie, with their CSRF token and expiry), the audit record of every change
//! made through the console, and the last usage-metrics report of each bouncer and edge
//! (CrowdSec's `POST /v1/usage-metrics`). No HTTP here: `console/` decides who may do what.
use super::{Result, Store, backend::Val};

/// A console user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsoleUser {
    /// Login name.
    pub name: String,
    /// Argon2 hash of the password.
    #[serde(skip)]
    pub password_hash: String,
    /// `admin` or `viewer`.
    pub role: String,
    /// Created, Unix seconds.
    pub created_at: i64,
}

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// Its user.
    pub user: String,
    /// The user's role now (a changed role takes effect at once).
    pub role: String,
    /// The token every change must carry.
    pub csrf: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// One change made through the console.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    /// Its number.
    pub id: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// Who.
    pub user: String,
    /// What (`ban`, `unban`, `extend`, `allow`, ...).
    pub action: String,
    /// On what, and how.
    pub detail: String,
}

/// The last usage-metrics report of a bouncer or edge (or log processor).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    /// `remediation_components` or `log_processors`.
    pub kind: String,
    /// The bouncer's or machine's name.
    pub name: String,
    /// Its type (`crowd-enforce`, `crowdsec-firewall-bouncer`, ...).
    pub r#type: String,
    /// When it was received, Unix seconds.
    pub received_at: i64,
    /// The component's object as it sent it (JSON).
    pub body: String,
}

impl Store {
    /// Adds a console user or replaces its password and role.
    ///
    /// # Errors
    /// Database errors.
    pub fn console_user_put(&mut self, name: &str, password_hash: &str, role: &str, now: i64) -> Result<()> {
        self.conn.tx(|c| {
            c.exec("DELETE FROM console_users WHERE name = ?1", &[name.into()])?;
            c.exec(
                "INSERT INTO console_users (name, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                &[name.into(), password_hash.into(), role.into(), now.into()],
            )?;
            // A new password ends the user's sessions.
            c.exec("DELETE FROM console_sessions WHERE user_name = ?1", &[name.into()])?;
            Ok(())
        })
    }

    /// A console user by name.
    ///
    /// # Errors
    /// Database errors.
    pub fn console_user(&mut self, name: &str) -> Result<Option<ConsoleUser>> {
        self.conn.one(
            "SELECT name, password_hash, role, created_at FROM console_users WHERE name = ?1",
            &[name.into()],
            |r| {
                Ok(ConsoleUser { name: r.text(0)?, password_hash: r.text(1)?, role: r.text(2)?, created_at: r.int(3)? })
            },
        )
    }

    /// Every console user, by name.
    ///
    /// # Errors
    /// Database errors.
    pub fn console_users(&mut self) -> Result<Vec<ConsoleUser>> {
        self.conn.all("SELECT name, password_hash, role, created_at FROM console_users ORDER BY name", &[], |r| {
            Ok(ConsoleUser { name: r.text(0)?, password_hash: r.text(1)?, role: r.text(2)?, created_at: r.int(3)? })
        })
    }

    /// Deletes a console user and its sessions; whether it existed.
    ///
    /// # Errors
    /// Database errors.
    pub fn console_user_delete(&mut self, name: &str) -> Result<bool> {
        self.conn.tx(|c| {
            c.exec("DELETE FROM console_sessions WHERE user_name = ?1", &[name.into()])?;
            Ok(c.exec("DELETE FROM console_users WHERE name = ?1", &[name.into()])? > 0)
        })
    }

    /// Records a session (by its token's hash).
    ///
    /// # Errors
    /// Database errors.
    pub fn console_session_put(&mut self, token_hash: &str, user: &str, csrf: &str, now: i64, ttl: i64) -> Result<()> {
        self.conn.tx(|c| {
            c.exec("DELETE FROM console_sessions WHERE expires_at <= ?1", &[now.into()])?;
            c.exec(
                "INSERT INTO console_sessions (token_hash, user_name, csrf, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &[token_hash.into(), user.into(), csrf.into(), now.into(), (now + ttl).into()],
            )?;
            Ok(())
        })
    }

    /// The live session with this token hash, with its user's current role.
    ///
    /// # Errors
    /// Database errors.
    pub fn console_session(&mut self, token_hash: &str, now: i64) -> Result<Option<ConsoleSession>> {
        self.conn.one(
            "SELECT s.user_name, u.role, s.csrf, s.expires_at FROM console_sessions s \
             JOIN console_users u ON u.name = s.user_name WHERE s.token_hash = ?1 AND s.expires_at > ?2",
            &[token_hash.into(), now.into()],
            |r| Ok(ConsoleSession { user: r.text(0)?, role: r.text(1)?, csrf: r.text(2)?, expires_at: r.int(3)? }),
        )
    }

    /// Ends a session.
    ///
    /// # Errors
    /// Database errors.
    pub fn console_session_delete(&mut self, token_hash: &str) -> Result<()> {
        self.conn.exec("DELETE FROM console_sessions WHERE token_hash = ?1", &[token_hash.into()])?;
        Ok(())
    }

    /// Records a change made through the console.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit(&mut self, at: i64, user: &str, action: &str, detail: &str) -> Result<()> {
        self.conn.exec(
            "INSERT INTO console_audit (at, user_name, action, detail) VALUES (?1, ?2, ?3, ?4)",
            &[at.into(), user.into(), action.into(), detail.into()],
        )?;
        Ok(())
    }

    /// The latest `limit` changes, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn audit_log(&mut self, limit: i64) -> Result<Vec<AuditRow>> {
        self.conn.all(
            "SELECT id, at, user_name, action, detail FROM console_audit ORDER BY id DESC LIMIT ?1",
            &[limit.into()],
            |r| Ok(AuditRow { id: r.int(0)?, at: r.int(1)?, user: r.text(2)?, action: r.text(3)?, detail: r.text(4)? }),
        )
    }

    /// Keeps a component's latest usage-metrics report.
    ///
    /// # Errors
    /// Database errors.
    pub fn usage_put(&mut self, kind: &str, name: &str, r#type: &str, now: i64, body: &str) -> Result<()> {
        let ps: [Val; 5] = [kind.into(), name.into(), r#type.into(), now.into(), body.into()];
        // One statement: two reports of one component at once cannot both insert.
        self.conn.exec(
            "INSERT INTO usage_metrics (kind, name, type, received_at, body) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (kind, name) DO UPDATE SET type = excluded.type, received_at = excluded.received_at, \
             body = excluded.body",
            &ps,
        )?;
        Ok(())
    }

    /// Every component's latest usage-metrics report, by kind and name.
    ///
    /// # Errors
    /// Database errors.
    pub fn usage(&mut self) -> Result<Vec<UsageRow>> {
        self.conn.all("SELECT kind, name, type, received_at, body FROM usage_metrics ORDER BY kind, name", &[], |r| {
            Ok(UsageRow {
                kind: r.text(0)?,
                name: r.text(1)?,
                r#type: r.text(2)?,
                received_at: r.int(3)?,
                body: r.text(4)?,
            })
        })
    }
}

/// What the console's overview counts in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreOverview {
    /// Active decisions per origin and type.
    pub by_origin: Vec<(String, String, i64)>,
    /// Active decisions per scenario, the largest first (at most 10).
    pub by_scenario: Vec<(String, i64)>,
    /// Alerts per hour (the hour's start, Unix seconds) since the asked time.
    pub alerts_per_hour: Vec<(i64, i64)>,
    /// The sources with the most alerts since the asked time (at most 10).
    pub top_sources: Vec<(String, i64)>,
    /// The latest alerts' bodies (for countries and ASNs).
    pub recent_bodies: Vec<String>,
}

impl Store {
    /// The overview's counts: decisions in force at `now`, alerts since `since`, the bodies of
    /// the latest `recent` alerts.
    ///
    /// # Errors
    /// Database errors.
    pub fn overview(&mut self, now: i64, since: i64, recent: i64) -> Result<StoreOverview> {
        // Decisions in force: simulated ones are recorded only.
        let live = "deleted_at IS NULL AND until > ?1 AND simulated = 0";
        let by_origin = self.conn.all(
            &format!("SELECT origin, type, COUNT(*) FROM decisions WHERE {live} GROUP BY origin, type"),
            &[now.into()],
            |r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)),
        )?;
        let by_scenario = self.conn.all(
            &format!(
                "SELECT scenario, COUNT(*) FROM decisions WHERE {live} GROUP BY scenario ORDER BY 2 DESC LIMIT 10"
            ),
            &[now.into()],
            |r| Ok((r.text(0)?, r.int(1)?)),
        )?;
        let alerts_per_hour = self.conn.all(
            "SELECT created_at / 3600, COUNT(*) FROM alerts WHERE created_at >= ?1 AND deleted_at IS NULL \
             GROUP BY created_at / 3600 ORDER BY 1",
            &[since.into()],
            |r| Ok((r.int(0)? * 3600, r.int(1)?)),
        )?;
        let top_sources = self.conn.all(
            "SELECT value, COUNT(*) FROM alerts WHERE created_at >= ?1 AND deleted_at IS NULL AND value <> '' \
             GROUP BY value ORDER BY 2 DESC LIMIT 10",
            &[since.into()],
            |r| Ok((r.text(0)?, r.int(1)?)),
        )?;
        let recent_bodies = self.conn.all(
            "SELECT body FROM alerts WHERE deleted_at IS NULL ORDER BY id DESC LIMIT ?1",
            &[recent.into()],
            |r| r.text(0),
        )?;
        Ok(StoreOverview { by_origin, by_scenario, alerts_per_hour, top_sources, recent_bodies })
    }

    /// Sets an active decision's end to `until` (a new change number, so bouncers and the maps
    /// take the new end); the decision as it is now, or `None` if it is not active.
    ///
    /// # Errors
    /// Database errors.
    pub fn extend_decision(&mut self, id: i64, until: i64, now: i64) -> Result<Option<super::DecisionRow>> {
        let changed = self.conn.tx(|c| {
            let seq = super::next_change(c)?;
            // Never shorter: an extension of a longer ban leaves it as it is.
            c.exec(
                "UPDATE decisions SET until = CASE WHEN until > ?1 THEN until ELSE ?1 END, seq = ?2 \
                 WHERE id = ?3 AND deleted_at IS NULL AND until > ?4",
                &[until.into(), seq.into(), id.into(), now.into()],
            )
        })?;
        if changed == 0 {
            return Ok(None);
        }
        self.announce();
        self.get(id)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn users_sessions_audit_and_usage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("crowd.db")).unwrap();
        s.console_user_put("ann", "h1", "admin", 100).unwrap();
        s.console_session_put("t1", "ann", "c1", 100, 60).unwrap();
        let got = s.console_session("t1", 120).unwrap().unwrap();
        assert_eq!((got.user.as_str(), got.role.as_str(), got.csrf.as_str()), ("ann", "admin", "c1"));
        assert!(s.console_session("t1", 160).unwrap().is_none(), "expired");
        assert!(s.console_session("t2", 120).unwrap().is_none(), "unknown");
        // A new password ends the sessions; deleting the user too.
        s.console_session_put("t3", "ann", "c3", 100, 60).unwrap();
        s.console_user_put("ann", "h2", "viewer", 101).unwrap();
        assert!(s.console_session("t3", 120).unwrap().is_none());
        assert_eq!(s.console_user("ann").unwrap().unwrap().role, "viewer");
        s.console_session_put("t4", "ann", "c4", 100, 60).unwrap();
        assert!(s.console_user_delete("ann").unwrap());
        assert!(s.console_session("t4", 120).unwrap().is_none());
        s.audit(5, "ann", "ban", "203.0.113.9 4h").unwrap();
        s.audit(6, "bob", "unban", "203.0.113.9").unwrap();
        let log = s.audit_log(10).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].action, "unban", "newest first");
        s.usage_put("remediation_components", "fw", "crowd-enforce", 10, "{}").unwrap();
        s.usage_put("remediation_components", "fw", "crowd-enforce", 20, "{\"a\":1}").unwrap();
        let u = s.usage().unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].received_at, u[0].body.as_str()), (20, "{\"a\":1}"));
    }

    #[test]
    fn overview_counts_and_extension() {
        use crate::store::{NewAlert, NewDecision};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("crowd.db")).unwrap();
        let d = |v: &str, origin: &str| NewDecision {
            origin: origin.into(),
            scenario: "crowdsecurity/ssh-bf".into(),
            scope: "Ip".into(),
            value: v.into(),
            kind: "ban".into(),
            duration_secs: 3600,
            simulated: false,
            reason: String::new(),
            uuid: String::new(),
        };
        let a = NewAlert {
            scenario: "crowdsecurity/ssh-bf".into(),
            scope: "Ip".into(),
            value: "192.0.2.7".into(),
            ..Default::default()
        };
        s.record(Some(&a), &[d("192.0.2.7", "crowdsec")], 7200).unwrap();
        s.record(Some(&a), &[d("192.0.2.8", "cscli")], 7300).unwrap();
        let o = s.overview(7400, 0, 10).unwrap();
        assert_eq!(o.by_scenario, vec![("crowdsecurity/ssh-bf".to_owned(), 2)]);
        assert_eq!(o.alerts_per_hour, vec![(7200, 2)]);
        assert_eq!(o.top_sources, vec![("192.0.2.7".to_owned(), 2)]);
        assert_eq!(o.by_origin.len(), 2);
        let id = s.query(&crate::store::DecisionFilter::default(), 7400).unwrap()[0].id;
        let before = s.last_change().unwrap();
        let got = s.extend_decision(id, 99_999, 7400).unwrap().unwrap();
        assert_eq!(got.until, 99_999);
        assert!(s.last_change().unwrap() > before, "a new change number");
        assert!(s.extend_decision(12345, 1, 7400).unwrap().is_none());
        let got = s.extend_decision(id, 9_000, 7400).unwrap().unwrap();
        assert_eq!(got.until, 99_999, "an extension never shortens");
    }
}
