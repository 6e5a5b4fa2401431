//! Schema version 4: `session_messages` becomes an append-ordered log.
//!
//! Up to version 3 the table was `WITHOUT ROWID`, clustered by
//! `(session_id, seq)` like its CQL partition. With many sessions appending in
//! turn, every append then lands on its own B-tree page and a commit writes one
//! WAL frame per session. From version 4 rows are stored in rowid (commit)
//! order, so a commit's messages fill a few consecutive pages, and a unique
//! index on `(session_id, seq)` keeps the duplicate-seq check and serves
//! `messages(session, after_seq, limit)` in seq order.

use std::time::Instant;

use rusqlite::Transaction;

use super::sqlite_error;
use crate::StoreError;

/// Above this many rows the migration logs when it starts and ends, since
/// copying takes seconds and the store is not open meanwhile.
const LOG_ROWS_ABOVE: i64 = 100_000;

/// Version 4: rebuilds `session_messages` as an append-ordered log with a
/// `(session_id, seq)` index. Existing rows are copied in session order (their
/// old clustering, so history reads of old sessions stay local); the index is
/// built after the copy, in one pass.
const SCHEMA_V4: &str = "
CREATE TABLE session_messages_log (
    message_id        INTEGER PRIMARY KEY,  -- rowid: commit order
    session_id        INTEGER NOT NULL,
    seq               INTEGER NOT NULL,
    sender_kind       TEXT NOT NULL,        -- customer | agent | system
    sender_agent      TEXT,
    body              TEXT NOT NULL,
    client_message_id TEXT,
    channel           TEXT NOT NULL,
    at                INTEGER NOT NULL
);
INSERT INTO session_messages_log
    (session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at)
    SELECT session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at
    FROM session_messages ORDER BY session_id, seq;
DROP TABLE session_messages;
ALTER TABLE session_messages_log RENAME TO session_messages;
-- CQL clustering key ((session_id), seq): a seq is written once.
CREATE UNIQUE INDEX session_messages_by_seq ON session_messages (session_id, seq);
";

/// Upgrades a version-3 `session_messages` inside the migration transaction.
pub(super) fn upgrade_to_v4(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let n_messages: i64 = tx
        .query_row("SELECT count(*) FROM session_messages", [], |row| {
            row.get(0)
        })
        .map_err(sqlite_error("counting session_messages"))?;
    let started = Instant::now();
    let log_progress = n_messages > LOG_ROWS_ABOVE;
    if log_progress {
        tracing::info!(
            n_messages,
            "sqlite: migrating session_messages to schema v4 (append-ordered log)"
        );
    }
    tx.execute_batch(SCHEMA_V4)
        .map_err(sqlite_error("upgrading schema to v4"))?;
    if log_progress {
        tracing::info!(
            n_messages,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sqlite: session_messages migrated to schema v4"
        );
    }
    Ok(())
}
