//! The store's schema as a list of forward migrations, one list per backend with the same steps
//! (SQLite keeps the version in `PRAGMA user_version`, PostgreSQL in `crowd_schema`).

/// Each migration brings the schema from version N to N+1.
pub const MIGRATIONS: [&str; 2] = [
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
];

/// The same migrations for PostgreSQL (BIGSERIAL ids, BIGINT numbers, BYTEA bounds).
pub const MIGRATIONS_PG: [&str; 2] = [
    "
    CREATE TABLE alerts (
        id BIGSERIAL PRIMARY KEY,
        scenario TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        events_count BIGINT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE decisions (
        id BIGSERIAL PRIMARY KEY,
        alert_id BIGINT REFERENCES alerts(id) ON DELETE SET NULL,
        origin TEXT NOT NULL,
        scenario TEXT NOT NULL,
        scope TEXT NOT NULL,
        value TEXT NOT NULL,
        type TEXT NOT NULL,
        until BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        deleted_at BIGINT,
        simulated BIGINT NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX decisions_active ON decisions(deleted_at, until);
    CREATE INDEX decisions_value ON decisions(value);
    ",
    "
    ALTER TABLE decisions ADD COLUMN uuid TEXT NOT NULL DEFAULT '';
    ALTER TABLE decisions ADD COLUMN start_ip BYTEA;
    ALTER TABLE decisions ADD COLUMN end_ip BYTEA;
    CREATE INDEX decisions_bounds ON decisions(scope, start_ip);
    UPDATE decisions SET origin = 'crowdsec' WHERE origin = 'crowd';
    UPDATE decisions SET origin = 'cscli' WHERE origin = 'manual';
    ALTER TABLE alerts ADD COLUMN machine_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE alerts ADD COLUMN body TEXT NOT NULL DEFAULT '';
    CREATE INDEX alerts_value ON alerts(value);
    CREATE TABLE bouncers (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL,
        ip_address TEXT NOT NULL DEFAULT '',
        type TEXT NOT NULL DEFAULT '',
        version TEXT NOT NULL DEFAULT '',
        auth_type TEXT NOT NULL DEFAULT 'api-key',
        last_pull BIGINT,
        last_id BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX bouncers_key ON bouncers(key_hash);
    CREATE TABLE machines (
        id BIGSERIAL PRIMARY KEY,
        machine_id TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        ip_address TEXT NOT NULL DEFAULT '',
        scenarios TEXT NOT NULL DEFAULT '',
        validated BIGINT NOT NULL DEFAULT 0,
        last_heartbeat BIGINT,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ",
];
