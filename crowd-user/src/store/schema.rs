//! The store's schema as a list of forward migrations, written once (SQLite's words) and
//! translated for PostgreSQL (SQLite keeps the version in `PRAGMA user_version`, PostgreSQL in
//! `crowd_schema`).

/// Each migration brings the schema from version N to N+1.
pub const MIGRATIONS: [&str; 8] = [
    "
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        scenario TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        events_count INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER REFERENCES alerts(id) ON DELETE SET NULL,
        origin TEXT NOT NULL,
        scenario TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        type TEXT NOT NULL,
        until INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        deleted_at INTEGER,
        simulated INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX decisions_active ON decisions(deleted_at, until);
    CREATE INDEX decisions_value ON decisions(value);
    ",
    // The Local API: address bounds for containment look-ups, CrowdSec's origin names, uuids,
    // full alert bodies, bouncers, machines and server secrets.
    "
    ALTER TABLE decisions ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
    ALTER TABLE decisions ADD COLUMN start_ip BLOB;
    ALTER TABLE decisions ADD COLUMN end_ip BLOB;
    CREATE INDEX decisions_bounds ON decisions(scope, start_ip);
    UPDATE decisions SET origin = 'crowdsec' WHERE origin = 'crowd';
    UPDATE decisions SET origin = 'cscli' WHERE origin = 'manual';
    ALTER TABLE alerts ADD COLUMN machine_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE alerts ADD COLUMN body TEXT NOT NULL DEFAULT '';
    CREATE INDEX alerts_value ON alerts(value);
    CREATE TABLE bouncers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL,
        ip_address TEXT NOT NULL DEFAULT '',
        type TEXT NOT NULL DEFAULT '',
        version TEXT NOT NULL DEFAULT '',
        auth_type TEXT NOT NULL DEFAULT 'api-key',
        last_pull INTEGER,
        last_id INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX bouncers_key ON bouncers(key_hash);
    CREATE TABLE machines (
        id INTEGER PRIMARY KEY,
        machine_id TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        ip_address TEXT NOT NULL DEFAULT '',
        scenarios TEXT NOT NULL DEFAULT '',
        validated INTEGER NOT NULL DEFAULT 0,
        last_heartbeat INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
    // Commit-ordered change numbers: every transaction that adds or ends decisions takes the next
    // number from `change_seq` (its row lock, held to the commit, orders writers) and stamps its
    // rows with it, so a stream cursor on `seq` never passes a row that commits later. Existing
    // rows keep their id as number (bouncers' id cursors stay valid).
    "
    ALTER TABLE decisions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    UPDATE decisions SET seq = id;
    CREATE INDEX decisions_seq ON decisions(seq);
    CREATE TABLE change_seq (n INTEGER NOT NULL);
    INSERT INTO change_seq (n) SELECT COALESCE(MAX(id), 0) FROM decisions;
    ALTER TABLE bouncers RENAME COLUMN last_id TO last_seq;
    ",
    // Deleted alerts are kept, marked: SQLite would hand a deleted newest alert's id to the next
    // one (CrowdSec's ids are never reused; a noted `cscli alerts inspect N` must not change).
    "
    ALTER TABLE alerts ADD COLUMN deleted_at INTEGER;
    ",
    // The community server (`crowd community serve`): organisations and their enrollment keys,
    // member machines (egress kept only as a prefix and ASN), signals as received, the published
    // lists with their own commit-ordered change numbers, and the operator's allowlist.
    "
    CREATE TABLE cm_orgs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    CREATE INDEX cm_orgs_key ON cm_orgs(key_hash);
    CREATE TABLE cm_machines (
        id INTEGER PRIMARY KEY,
        machine_id TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        org TEXT NOT NULL,
        sensor INTEGER NOT NULL DEFAULT 0,
        egress_prefix TEXT NOT NULL DEFAULT '',
        asn INTEGER NOT NULL DEFAULT 0,
        scenarios TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        last_login INTEGER,
        last_seq INTEGER NOT NULL DEFAULT 0,
        last_pull INTEGER
    );
    CREATE TABLE cm_signals (
        id INTEGER PRIMARY KEY,
        machine_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        scenario TEXT NOT NULL,
        at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        context TEXT,
        seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX cm_signals_received ON cm_signals(received_at);
    CREATE INDEX cm_signals_seq ON cm_signals(seq);
    CREATE TABLE cm_signal_seq (n INTEGER NOT NULL);
    INSERT INTO cm_signal_seq (n) VALUES (0);
    CREATE TABLE cm_entries (
        id INTEGER PRIMARY KEY,
        list TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        scenario TEXT NOT NULL,
        until INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        seq INTEGER NOT NULL,
        changed_at INTEGER NOT NULL DEFAULT 0,
        UNIQUE (list, value)
    );
    CREATE INDEX cm_entries_seq ON cm_entries(seq);
    CREATE INDEX cm_entries_list_seq ON cm_entries(list, seq);
    CREATE TABLE cm_seq (n INTEGER NOT NULL);
    INSERT INTO cm_seq (n) VALUES (0);
    CREATE TABLE cm_allow (
        value TEXT PRIMARY KEY,
        reason TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    CREATE TABLE cm_org_state (
        org TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        saved_at INTEGER NOT NULL
    );
    ",
    // The web console: its users (Argon2 hashes, a role), their sessions (the cookie's SHA-256,
    // never the cookie) with each session's CSRF token, the record of every change made through
    // it; and the usage metrics bouncers and edges report (the last report of each).
    "
    CREATE TABLE console_users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE console_sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE console_audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE usage_metrics (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL DEFAULT '',
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    );
    ",
    // An alert's decisions (the console's alert page, the alert filters by decision); the counts
    // of decisions in force by origin, type and scenario (the console's overview, `/metrics`)
    // and of alerts by hour and source read from indexes alone (at 1M decisions: 0.4 s instead
    // of 2.5 s each); the allowlist every process's decisions are checked against when they are
    // recorded.
    "
    CREATE INDEX decisions_alert ON decisions(alert_id);
    CREATE INDEX decisions_counts ON decisions(deleted_at, until, simulated, origin, type, scenario);
    CREATE INDEX alerts_created ON alerts(created_at, deleted_at, value);
    CREATE TABLE allowlist (
        value TEXT PRIMARY KEY,
        reason TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    ",
    // Commit-ordered alert numbers, as `change_seq` orders decisions: the community member
    // shares alerts after a cursor on `seq`, which never passes an alert that commits later
    // (ids are handed out at insert on PostgreSQL). Existing alerts keep their id as number
    // (a saved cursor, an id, stays valid).
    "
    ALTER TABLE alerts ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    UPDATE alerts SET seq = id;
    CREATE INDEX alerts_seq ON alerts(seq);
    CREATE TABLE alert_seq (n INTEGER NOT NULL);
    INSERT INTO alert_seq (n) SELECT COALESCE(MAX(id), 0) FROM alerts;
    ",
];

/// A migration in PostgreSQL's words: the same statements with BIGSERIAL ids, BIGINT numbers
/// and BYTEA bytes (the SQLite text above is the one schema; this is its only translation).
#[must_use]
pub fn for_postgres(sql: &str) -> String {
    sql.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY").replace("INTEGER", "BIGINT").replace("BLOB", "BYTEA")
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_words() {
        for m in super::MIGRATIONS {
            let pg = super::for_postgres(m);
            assert!(!pg.contains("INTEGER") && !pg.contains("BLOB"), "{pg}");
        }
        assert!(super::for_postgres(super::MIGRATIONS[0]).contains("id BIGSERIAL PRIMARY KEY"));
    }
}
