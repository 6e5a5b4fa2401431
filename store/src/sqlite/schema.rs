//! The SQLite schema, versioned with `PRAGMA user_version`, and the
//! connection set-up shared by the writer and the readers.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{SqliteOptions, sqlite_error};
use crate::StoreError;

/// The schema this build writes and reads.
pub(super) const SCHEMA_VERSION: i64 = 9;

/// Version 1. Each table mirrors its CQL counterpart: the CQL partition and
/// clustering keys are the primary key, `WITHOUT ROWID` keeps rows clustered
/// by it, and secondary indexes stand in for the CQL lookup tables. (Version 4
/// rebuilds `session_messages` as an append-ordered log: `message_log.rs`.)
pub(super) const SCHEMA_V1: &str = "
CREATE TABLE customers (
    customer_id  TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    tier         TEXT NOT NULL,
    tags         TEXT NOT NULL,   -- JSON array of strings
    language     TEXT NOT NULL,
    last_agent   TEXT,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE customer_identities (
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    PRIMARY KEY (channel, external_id)
) WITHOUT ROWID;
CREATE INDEX customer_identities_by_customer ON customer_identities (customer_id);

CREATE TABLE sessions (
    session_id        INTEGER PRIMARY KEY,  -- SessionId with the top bit flipped (rows.rs)
    customer_id       TEXT NOT NULL,
    channel           TEXT NOT NULL,
    state             TEXT NOT NULL,
    is_open           INTEGER NOT NULL,     -- neither closed nor abandoned
    group_id          TEXT,
    agent_id          TEXT,
    created_at        INTEGER,
    queued_at         INTEGER,
    offered_at        INTEGER,
    answered_at       INTEGER,
    first_response_at INTEGER,
    wrap_up_at        INTEGER,
    closed_at         INTEGER,
    last_seq          INTEGER NOT NULL,
    transfers         INTEGER NOT NULL,
    summary           TEXT
);
-- CQL: sessions_by_customer ((customer_id), created_at desc, session_id desc)
CREATE INDEX sessions_by_customer ON sessions (customer_id, created_at DESC, session_id DESC);
CREATE INDEX sessions_open ON sessions (session_id) WHERE is_open = 1;

CREATE TABLE session_messages (
    session_id        INTEGER NOT NULL,
    seq               INTEGER NOT NULL,
    sender_kind       TEXT NOT NULL,        -- customer | agent | supervisor | system
    sender_agent      TEXT,
    body              TEXT NOT NULL,
    client_message_id TEXT,
    channel           TEXT NOT NULL,
    at                INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

CREATE TABLE customer_interactions (
    customer_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    session_id  INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    summary     TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,           -- CQL: USING TTL 2592000
    PRIMARY KEY (customer_id, at DESC, session_id DESC)
) WITHOUT ROWID;
CREATE INDEX customer_interactions_by_expiry ON customer_interactions (expires_at);

CREATE TABLE agents (
    agent_id     TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    skills       TEXT NOT NULL,   -- JSON object skill -> proficiency
    groups       TEXT NOT NULL,   -- JSON array of group ids
    languages    TEXT NOT NULL,   -- JSON array
    capacity     TEXT NOT NULL    -- JSON {limits, exclusive}
) WITHOUT ROWID;

CREATE TABLE skill_groups (
    group_id                 TEXT PRIMARY KEY,
    display_name             TEXT NOT NULL,
    sla_threshold_secs       INTEGER NOT NULL,
    sla_threshold_by_channel TEXT NOT NULL,  -- JSON object channel -> secs
    sla_target_pct           REAL NOT NULL,
    short_abandon_secs       INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Version 2: the customer's satisfaction score on the session record.
pub(super) const SCHEMA_V2: &str = "
ALTER TABLE sessions ADD COLUMN rating INTEGER;  -- 1..=5, NULL until rated
";

/// Opens a connection to `path` with the options every connection shares.
pub(super) fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let context = || format!("opening {}", path.display());
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error(&context()))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(sqlite_error("setting busy_timeout"))?;
    let journal_mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite_error("setting journal_mode"))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "sqlite: {} does not support WAL (journal_mode is {journal_mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
        .map_err(sqlite_error("setting synchronous"))?;
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(sqlite_error("setting foreign_keys"))?;
    Ok(conn)
}

/// v5: an agent's SIP phone credentials (hashed), JSON, NULL until set.
const SCHEMA_V5: &str = "ALTER TABLE agents ADD COLUMN sip TEXT;";

/// v6: where agents' replies go, the session's channel account route
/// (JSON `ReplyRoute`), NULL when replies go only to the customer's sockets.
const SCHEMA_V6: &str = "ALTER TABLE sessions ADD COLUMN reply_route TEXT;";

/// v7: the group a contact counts in for its SLA figures
/// (`Session::sla_group`), NULL until it queues and on older rows (which
/// count in `group_id`).
const SCHEMA_V7: &str = "ALTER TABLE sessions ADD COLUMN sla_group TEXT;";

/// v8: the audit log of supervisor actions (JSON `AuditEntry`), by time.
/// `id` is minted like a session id and stored the same way.
const SCHEMA_V8: &str = "
CREATE TABLE audit_log (
    at     INTEGER NOT NULL,
    id     INTEGER NOT NULL,
    record TEXT NOT NULL,         -- JSON AuditEntry
    PRIMARY KEY (at, id)
) WITHOUT ROWID;
";

/// v9: what the historical reports read (docs/reports.md): sessions by the
/// time they first queued, the routing steps each waited in (JSON
/// `Vec<RouteStep>`, NULL before it queued and on older rows), and the
/// agents' log (JSON `AgentLogEntry`) by time and, for what an agent was
/// doing when a report's window starts, by agent.
const SCHEMA_V9: &str = "
ALTER TABLE sessions ADD COLUMN route TEXT;
CREATE INDEX sessions_by_queued ON sessions (queued_at, session_id) WHERE queued_at IS NOT NULL;
CREATE TABLE agent_log (
    at       INTEGER NOT NULL,
    id       INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    kind     TEXT NOT NULL,       -- activity
    record   TEXT NOT NULL,       -- JSON AgentLogEntry
    PRIMARY KEY (at, id)
) WITHOUT ROWID;
CREATE INDEX agent_log_by_agent ON agent_log (agent_id, kind, at DESC, id DESC);
";

/// Creates the schema on a new database, upgrades an older one step by step,
/// accepts a current one, and refuses one written by a newer build.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sqlite_error("starting schema migration"))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_error("reading user_version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "sqlite: schema version {version} is newer than this build's {SCHEMA_VERSION}"
        )));
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)
            .map_err(sqlite_error("creating schema v1"))?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)
            .map_err(sqlite_error("upgrading schema to v2"))?;
    }
    if version < 3 {
        tx.execute_batch(super::records::SCHEMA_V3)
            .map_err(sqlite_error("upgrading schema to v3"))?;
    }
    if version < 4 {
        super::message_log::upgrade_to_v4(&tx)?;
    }
    if version < 5 {
        tx.execute_batch(SCHEMA_V5)
            .map_err(sqlite_error("upgrading schema to v5"))?;
    }
    if version < 6 {
        tx.execute_batch(SCHEMA_V6)
            .map_err(sqlite_error("upgrading schema to v6"))?;
    }
    if version < 7 {
        tx.execute_batch(SCHEMA_V7)
            .map_err(sqlite_error("upgrading schema to v7"))?;
    }
    if version < 8 {
        tx.execute_batch(SCHEMA_V8)
            .map_err(sqlite_error("upgrading schema to v8"))?;
    }
    if version < 9 {
        tx.execute_batch(SCHEMA_V9)
            .map_err(sqlite_error("upgrading schema to v9"))?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite_error("setting user_version"))?;
    }
    tx.commit()
        .map_err(sqlite_error("committing schema migration"))
}
