//! The data platform's tables (tickets, their events, articles, templates,
//! summaries, the webhook outbox): key columns plus one JSON `record`.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::rows::{limit_to_sql, session_id_to_sql};
use super::sqlite_error;
use crate::{StoreError, WriteOp};
use engine::Millis;
use engine::assist::ReplyTemplate;
use engine::ids::{AgentId, CustomerId, SessionId, TicketId};
use engine::kb::Article;
use engine::outbox::OutboxEntry;
use engine::sla::report::AgentLogEntry;
use engine::summary::SessionSummary;
use engine::supervision::AuditEntry;
use engine::ticket::{Ticket, TicketEvent};

/// Version 3: the data platform's tables.
pub(super) const SCHEMA_V3: &str = "
CREATE TABLE tickets (
    ticket_id   TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    record      TEXT NOT NULL      -- JSON Ticket
) WITHOUT ROWID;
-- CQL: tickets_by_customer ((customer_id), created_at desc, ticket_id desc)
CREATE INDEX tickets_by_customer ON tickets (customer_id, created_at DESC, ticket_id DESC);

CREATE TABLE ticket_events (
    ticket_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    record    TEXT NOT NULL,       -- JSON TicketEvent
    PRIMARY KEY (ticket_id, seq)
) WITHOUT ROWID;

CREATE TABLE kb_articles (
    article_id TEXT PRIMARY KEY,
    record     TEXT NOT NULL       -- JSON Article
) WITHOUT ROWID;

CREATE TABLE reply_templates (
    template_id TEXT PRIMARY KEY,
    record      TEXT NOT NULL      -- JSON ReplyTemplate
) WITHOUT ROWID;

CREATE TABLE session_summaries (
    session_id INTEGER PRIMARY KEY,
    record     TEXT NOT NULL       -- JSON SessionSummary
);

CREATE TABLE webhook_outbox (
    outbox_id       TEXT PRIMARY KEY,
    next_attempt_at INTEGER NOT NULL,
    dead            INTEGER NOT NULL,
    record          TEXT NOT NULL  -- JSON OutboxEntry
) WITHOUT ROWID;
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, outbox_id) WHERE dead = 0;
";

fn encode(value: &impl Serialize, table: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("sqlite: encoding a {table} record: {e}")))
}

fn execute(
    conn: &Connection,
    table: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(sqlite_error(&format!("writing {table}")))
}

/// Applies one of the data platform's ops (and the audit log's); `false` if `op` is not one.
pub(super) fn apply(conn: &Connection, op: &WriteOp) -> Result<bool, StoreError> {
    match op {
        WriteOp::PutTicket(ticket) => execute(
            conn,
            "tickets",
            "INSERT OR REPLACE INTO tickets (ticket_id, customer_id, created_at, record)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                ticket.id.as_str(),
                ticket.customer_id.as_str(),
                ticket.created_at,
                encode(ticket, "tickets")?
            ],
        )?,
        WriteOp::AppendTicketEvent(event) => {
            let seq = i64::try_from(event.seq).map_err(|_| {
                StoreError::Backend(format!("sqlite: ticket seq {} exceeds i64", event.seq))
            })?;
            let inserted = execute(
                conn,
                "ticket_events",
                "INSERT INTO ticket_events (ticket_id, seq, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (ticket_id, seq) DO NOTHING",
                params![
                    event.ticket_id.as_str(),
                    seq,
                    encode(event, "ticket_events")?
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::DuplicateTicketEvent {
                    ticket: event.ticket_id.clone(),
                    seq: event.seq,
                });
            }
            inserted
        }
        WriteOp::PutArticle(article) => execute(
            conn,
            "kb_articles",
            "INSERT OR REPLACE INTO kb_articles (article_id, record) VALUES (?1, ?2)",
            params![article.id.as_str(), encode(article, "kb_articles")?],
        )?,
        WriteOp::DeleteArticle(id) => execute(
            conn,
            "kb_articles",
            "DELETE FROM kb_articles WHERE article_id = ?1",
            [id.as_str()],
        )?,
        WriteOp::PutTemplate(template) => execute(
            conn,
            "reply_templates",
            "INSERT OR REPLACE INTO reply_templates (template_id, record) VALUES (?1, ?2)",
            params![template.id.as_str(), encode(template, "reply_templates")?],
        )?,
        WriteOp::DeleteTemplate(id) => execute(
            conn,
            "reply_templates",
            "DELETE FROM reply_templates WHERE template_id = ?1",
            [id.as_str()],
        )?,
        WriteOp::PutSummary(summary) => execute(
            conn,
            "session_summaries",
            "INSERT OR REPLACE INTO session_summaries (session_id, record) VALUES (?1, ?2)",
            params![
                session_id_to_sql(summary.session_id),
                encode(summary, "session_summaries")?
            ],
        )?,
        WriteOp::PutAudit(entry) => execute(
            conn,
            "audit_log",
            "INSERT OR REPLACE INTO audit_log (at, id, record) VALUES (?1, ?2, ?3)",
            params![
                entry.at,
                session_id_to_sql(SessionId(entry.id)),
                encode(entry, "audit_log")?
            ],
        )?,
        WriteOp::PutAgentLog(entry) => execute(
            conn,
            "agent_log",
            "INSERT OR REPLACE INTO agent_log (at, id, agent_id, kind, record)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                entry.at,
                session_id_to_sql(SessionId(entry.id)),
                entry.agent.as_str(),
                entry.kind.name(),
                encode(entry, "agent_log")?
            ],
        )?,
        WriteOp::PutOutbox(entry) => execute(
            conn,
            "webhook_outbox",
            "INSERT OR REPLACE INTO webhook_outbox (outbox_id, next_attempt_at, dead, record)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                entry.id,
                entry.next_attempt_at,
                entry.dead,
                encode(entry, "webhook_outbox")?
            ],
        )?,
        WriteOp::DeleteOutbox(id) => execute(
            conn,
            "webhook_outbox",
            "DELETE FROM webhook_outbox WHERE outbox_id = ?1",
            [id.as_str()],
        )?,
        _ => return Ok(false),
    };
    Ok(true)
}

/// Decodes the `record` column of every row `sql` returns (key first, record second).
fn records<T: DeserializeOwned>(
    conn: &Connection,
    table: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let context = format!("reading {table}");
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error(&context))?;
    let mut rows = stmt.query(params).map_err(sqlite_error(&context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error(&context))? {
        let key: rusqlite::types::Value = row.get(0).map_err(sqlite_error(&context))?;
        let record: String = row.get(1).map_err(sqlite_error(&context))?;
        let value = serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
            what: format!("{table} ({key:?}), column record: {e}"),
        })?;
        out.push(value);
    }
    Ok(out)
}

pub(super) fn get_ticket(conn: &Connection, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
    let sql = "SELECT ticket_id, record FROM tickets WHERE ticket_id = ?1";
    Ok(records(conn, "tickets", sql, [id.as_str()])?.pop())
}

pub(super) fn tickets_of_customer(
    conn: &Connection,
    customer: &CustomerId,
    limit: usize,
) -> Result<Vec<Ticket>, StoreError> {
    let sql = "SELECT ticket_id, record FROM tickets WHERE customer_id = ?1
               ORDER BY created_at DESC, ticket_id DESC LIMIT ?2";
    records(
        conn,
        "tickets",
        sql,
        params![customer.as_str(), limit_to_sql(limit)],
    )
}

pub(super) fn ticket_events(
    conn: &Connection,
    ticket: &TicketId,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<TicketEvent>, StoreError> {
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let sql = "SELECT seq, record FROM ticket_events WHERE ticket_id = ?1 AND seq > ?2
               ORDER BY seq LIMIT ?3";
    records(
        conn,
        "ticket_events",
        sql,
        params![ticket.as_str(), after, limit_to_sql(limit)],
    )
}

pub(super) fn list_articles(conn: &Connection) -> Result<Vec<Article>, StoreError> {
    let sql = "SELECT article_id, record FROM kb_articles ORDER BY article_id";
    records(conn, "kb_articles", sql, [])
}

pub(super) fn list_templates(conn: &Connection) -> Result<Vec<ReplyTemplate>, StoreError> {
    let sql = "SELECT template_id, record FROM reply_templates ORDER BY template_id";
    records(conn, "reply_templates", sql, [])
}

pub(super) fn get_summary(
    conn: &Connection,
    session: SessionId,
) -> Result<Option<SessionSummary>, StoreError> {
    let record: Option<String> = conn
        .prepare_cached("SELECT record FROM session_summaries WHERE session_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([session_id_to_sql(session)], |row| row.get(0))
                .optional()
        })
        .map_err(sqlite_error("reading session_summaries"))?;
    record
        .map(|record| {
            serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
                what: format!("session_summaries ({session}), column record: {e}"),
            })
        })
        .transpose()
}

pub(super) fn outbox_due(
    conn: &Connection,
    now: Millis,
    limit: usize,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let sql = "SELECT outbox_id, record FROM webhook_outbox
               WHERE dead = 0 AND next_attempt_at <= ?1
               ORDER BY next_attempt_at, outbox_id LIMIT ?2";
    records(
        conn,
        "webhook_outbox",
        sql,
        params![now, limit_to_sql(limit)],
    )
}

pub(super) fn audit_log(
    conn: &Connection,
    since: Millis,
    until: Millis,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let sql = "SELECT at, record FROM audit_log WHERE at >= ?1 AND at < ?2
               ORDER BY at DESC, id DESC LIMIT ?3";
    records(
        conn,
        "audit_log",
        sql,
        params![since, until, limit_to_sql(limit)],
    )
}

pub(super) fn agent_log(
    conn: &Connection,
    from: Millis,
    to: Millis,
    after: Option<(Millis, u64)>,
    limit: usize,
) -> Result<Vec<AgentLogEntry>, StoreError> {
    // Strictly after this key; without `after`, after everything before `from`.
    let (after_at, after_id) = after.map_or((from - 1, i64::MAX), |(at, id)| {
        (at, session_id_to_sql(SessionId(id)))
    });
    let sql = "SELECT at, record FROM agent_log
               WHERE at >= ?1 AND at < ?2 AND (at, id) > (?3, ?4)
               ORDER BY at, id LIMIT ?5";
    records(
        conn,
        "agent_log",
        sql,
        params![from, to, after_at, after_id, limit_to_sql(limit)],
    )
}

pub(super) fn agent_activity_before(
    conn: &Connection,
    agent: &AgentId,
    at: Millis,
) -> Result<Option<AgentLogEntry>, StoreError> {
    let sql = "SELECT at, record FROM agent_log
               WHERE agent_id = ?1 AND kind = 'activity' AND at < ?2
               ORDER BY at DESC, id DESC LIMIT 1";
    let mut found = records(conn, "agent_log", sql, params![agent.as_str(), at])?;
    Ok(found.pop())
}
