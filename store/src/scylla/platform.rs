//! The data platform's tables on ScyllaDB: tickets and their history,
//! knowledge-base articles, reply templates, session summaries and the
//! webhook outbox.
//!
//! As on SQLite, a row keeps its key columns apart and the rest of the
//! record as one JSON `record` column, so a new field needs no migration.
//! The ops join the write steps of `write.rs`:
//!
//! ```text
//!  AppendTicketEvent ──▶ step 2, beside the messages: one conditional batch per ticket
//!  every other op    ──▶ step 3: the logged batch (upserts and deletes, one row per key)
//! ```
//!
//! `kb_articles` and `reply_templates` keep all their rows in one partition
//! ([`LIST_BUCKET`]): they hold hundreds of rows and are only ever listed
//! whole. `webhook_outbox` is spread over [`OUTBOX_BUCKETS`] partitions by a
//! stable hash of the entry id, and `outbox_due` reads every partition and
//! filters and orders on the client. That stays cheap because the outbox is
//! small while deliveries work: a delivered entry is deleted, so the table
//! holds what is in flight plus the dead entries an operator has not cleared.
//!
//! A ticket event is appended only if its `(ticket, seq)` is new, even when
//! the stored event is identical to it: that is the contract, and it keeps
//! a ticket change from being written twice. The price is the step-3 gap
//! of `scylla.rs`: a batch whose logged batch fails after its events were
//! appended leaves them stored ahead of the ticket record, so a change
//! numbered from that record (`last_seq + 1`) fails as a duplicate until the
//! record is written past them.
//!
//! `tickets_by_customer` holds a copy of the whole record, written in the
//! same logged batch as `tickets`, so a customer's tickets are one partition
//! read. Its key (customer, creation time) is fixed when a ticket is opened:
//! no [`engine::ticket::TicketUpdate`] changes either, so an upsert never
//! leaves a stale index row behind.

use std::collections::BTreeMap;
use std::fmt::Display;

use futures_util::future::{join_all, try_join_all};
use scylla::statement::batch::{Batch, BatchType};
use scylla::{DeserializeRow, SerializeRow};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ScyllaStore;
use super::outcome::{keep_worst, write_error};
use super::read::{all_rows, limit_to_cql, rows, with_serial_read};
use super::rows::corrupt;
use super::write::{Appended, BoundRow, applied};
use crate::{StoreError, WriteOp, session_id_from_i64, session_id_to_i64};
use engine::Millis;
use engine::assist::ReplyTemplate;
use engine::ids::{AgentId, CustomerId, SessionId, TicketId};
use engine::kb::Article;
use engine::outbox::OutboxEntry;
use engine::sla::report::{AgentLogEntry, AgentLogKind};
use engine::summary::SessionSummary;
use engine::supervision::AuditEntry;
use engine::ticket::{Ticket, TicketEvent};

/// The one partition of `kb_articles` and of `reply_templates`.
pub(super) const LIST_BUCKET: i32 = 0;

/// How many `webhook_outbox` partitions there are. Changing it, or
/// [`outbox_bucket`], strands the entries already stored in the partitions
/// their ids no longer hash to: that needs a migration that moves them.
pub(super) const OUTBOX_BUCKETS: i32 = 4;

/// `tickets` and `tickets_by_customer` share this row.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct TicketRow {
    pub ticket_id: String,
    pub customer_id: String,
    pub created_at: i64,
    /// JSON [`Ticket`].
    pub record: String,
}

/// `ticket_events`, appended with `INSERT … IF NOT EXISTS`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct TicketEventRow {
    pub ticket_id: String,
    pub seq: i64,
    /// JSON [`TicketEvent`].
    pub record: String,
}

/// `kb_articles`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct ArticleRow {
    pub bucket: i32,
    pub article_id: String,
    /// JSON [`Article`].
    pub record: String,
}

/// The key of a `kb_articles` row being deleted.
#[derive(Debug, Clone, PartialEq, SerializeRow)]
pub(super) struct ArticleKey {
    pub bucket: i32,
    pub article_id: String,
}

/// `reply_templates`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct TemplateRow {
    pub bucket: i32,
    pub template_id: String,
    /// JSON [`ReplyTemplate`].
    pub record: String,
}

/// The key of a `reply_templates` row being deleted.
#[derive(Debug, Clone, PartialEq, SerializeRow)]
pub(super) struct TemplateKey {
    pub bucket: i32,
    pub template_id: String,
}

/// `session_summaries`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SummaryRow {
    pub session_id: i64,
    /// JSON [`SessionSummary`].
    pub record: String,
}

/// `audit_log`: partitioned by UTC day ([`audit_day`]).
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct AuditRow {
    pub day: i64,
    pub at: i64,
    pub id: i64,
    /// JSON [`AuditEntry`].
    pub record: String,
}

/// The day partition of time `at` (`audit_log`, `agent_log`,
/// `sessions_by_queued_day`): days since the Unix epoch (UTC).
pub(super) fn utc_day(at: Millis) -> i64 {
    at.div_euclid(24 * 60 * 60 * 1000)
}

/// `agent_log`: partitioned by UTC day ([`utc_day`]).
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct AgentLogRow {
    pub day: i64,
    pub at: i64,
    pub id: i64,
    /// JSON [`AgentLogEntry`].
    pub record: String,
}

/// `agent_activity_by_agent`: an agent's activity entries, newest first.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct AgentActivityRow {
    pub agent_id: String,
    pub at: i64,
    pub id: i64,
    /// JSON [`AgentLogEntry`].
    pub record: String,
}

/// `webhook_outbox`. `next_attempt_at` and `dead` repeat the record's fields
/// so that `outbox_due` filters and orders without decoding every entry.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct OutboxRow {
    pub bucket: i32,
    pub outbox_id: String,
    pub next_attempt_at: i64,
    pub dead: bool,
    /// JSON [`OutboxEntry`].
    pub record: String,
}

/// The key of a `webhook_outbox` row being deleted.
#[derive(Debug, Clone, PartialEq, SerializeRow)]
pub(super) struct OutboxKey {
    pub bucket: i32,
    pub outbox_id: String,
}

/// The `webhook_outbox` partition of an entry: 32-bit FNV-1a of its id,
/// the same on every node and in every build (std's hasher is seeded per
/// process, so it cannot place rows).
pub(super) fn outbox_bucket(id: &str) -> i32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    (hash % OUTBOX_BUCKETS.unsigned_abs()) as i32
}

fn encode(value: &impl Serialize, table: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("scylla: encoding a {table} record: {e}")))
}

fn decode<T: DeserializeOwned>(
    table: &str,
    key: impl Display,
    record: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(record).map_err(|e| corrupt(table, key, "record", e))
}

pub(super) fn ticket_row(ticket: &Ticket) -> Result<TicketRow, StoreError> {
    Ok(TicketRow {
        ticket_id: ticket.id.as_str().to_owned(),
        customer_id: ticket.customer_id.as_str().to_owned(),
        created_at: ticket.created_at,
        record: encode(ticket, "tickets")?,
    })
}

/// A ticket from a `tickets` or `tickets_by_customer` row.
pub(super) fn ticket_from_row(table: &str, row: &TicketRow) -> Result<Ticket, StoreError> {
    decode(
        table,
        format_args!("ticket_id={:?}", row.ticket_id),
        &row.record,
    )
}

pub(super) fn ticket_event_row(event: &TicketEvent) -> Result<TicketEventRow, StoreError> {
    let seq = i64::try_from(event.seq).map_err(|_| {
        StoreError::Backend(format!(
            "scylla: ticket {} seq {} exceeds bigint",
            event.ticket_id, event.seq
        ))
    })?;
    Ok(TicketEventRow {
        ticket_id: event.ticket_id.as_str().to_owned(),
        seq,
        record: encode(event, "ticket_events")?,
    })
}

pub(super) fn ticket_event_from_row(row: &TicketEventRow) -> Result<TicketEvent, StoreError> {
    let key = format_args!("ticket_id={:?}, seq={}", row.ticket_id, row.seq);
    decode("ticket_events", key, &row.record)
}

pub(super) fn article_row(article: &Article) -> Result<ArticleRow, StoreError> {
    Ok(ArticleRow {
        bucket: LIST_BUCKET,
        article_id: article.id.as_str().to_owned(),
        record: encode(article, "kb_articles")?,
    })
}

pub(super) fn article_from_row(row: &ArticleRow) -> Result<Article, StoreError> {
    let key = format_args!("article_id={:?}", row.article_id);
    decode("kb_articles", key, &row.record)
}

pub(super) fn template_row(template: &ReplyTemplate) -> Result<TemplateRow, StoreError> {
    Ok(TemplateRow {
        bucket: LIST_BUCKET,
        template_id: template.id.as_str().to_owned(),
        record: encode(template, "reply_templates")?,
    })
}

pub(super) fn template_from_row(row: &TemplateRow) -> Result<ReplyTemplate, StoreError> {
    let key = format_args!("template_id={:?}", row.template_id);
    decode("reply_templates", key, &row.record)
}

pub(super) fn summary_row(summary: &SessionSummary) -> Result<SummaryRow, StoreError> {
    Ok(SummaryRow {
        session_id: session_id_to_i64(summary.session_id),
        record: encode(summary, "session_summaries")?,
    })
}

pub(super) fn summary_from_row(row: &SummaryRow) -> Result<SessionSummary, StoreError> {
    let key = format_args!("session_id={}", session_id_from_i64(row.session_id));
    decode("session_summaries", key, &row.record)
}

pub(super) fn audit_row(entry: &AuditEntry) -> Result<AuditRow, StoreError> {
    Ok(AuditRow {
        day: utc_day(entry.at),
        at: entry.at,
        id: session_id_to_i64(SessionId(entry.id)),
        record: encode(entry, "audit_log")?,
    })
}

pub(super) fn audit_from_row(row: &AuditRow) -> Result<AuditEntry, StoreError> {
    let key = format_args!("at={} id={}", row.at, session_id_from_i64(row.id));
    decode("audit_log", key, &row.record)
}

pub(super) fn agent_log_row(entry: &AgentLogEntry) -> Result<AgentLogRow, StoreError> {
    Ok(AgentLogRow {
        day: utc_day(entry.at),
        at: entry.at,
        id: session_id_to_i64(SessionId(entry.id)),
        record: encode(entry, "agent_log")?,
    })
}

fn decode_agent_log(
    table: &str,
    at: i64,
    id: i64,
    record: &str,
) -> Result<AgentLogEntry, StoreError> {
    let key = format_args!("at={at} id={}", session_id_from_i64(id));
    decode(table, key, record)
}

pub(super) fn outbox_row(entry: &OutboxEntry) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        bucket: outbox_bucket(&entry.id),
        outbox_id: entry.id.clone(),
        next_attempt_at: entry.next_attempt_at,
        dead: entry.dead,
        record: encode(entry, "webhook_outbox")?,
    })
}

pub(super) fn outbox_from_row(row: &OutboxRow) -> Result<OutboxEntry, StoreError> {
    let key = format_args!("outbox_id={:?}", row.outbox_id);
    decode("webhook_outbox", key, &row.record)
}

/// A row of the logged batch (step 3) from the data platform's ops.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PlatformUpsert {
    Ticket(TicketRow),
    TicketByCustomer(TicketRow),
    Article(ArticleRow),
    DeletedArticle(ArticleKey),
    Template(TemplateRow),
    DeletedTemplate(TemplateKey),
    Summary(SummaryRow),
    Outbox(OutboxRow),
    DeletedOutbox(OutboxKey),
    Audit(AuditRow),
    AgentLog(AgentLogRow),
    AgentActivity(AgentActivityRow),
}

impl PlatformUpsert {
    /// The name of the statement that writes this row and its bound values.
    pub(super) fn parts(&self) -> (&'static str, BoundRow) {
        match self {
            PlatformUpsert::Ticket(row) => ("insert_ticket", Box::new(row.clone())),
            PlatformUpsert::TicketByCustomer(row) => {
                ("insert_ticket_by_customer", Box::new(row.clone()))
            }
            PlatformUpsert::Article(row) => ("insert_article", Box::new(row.clone())),
            PlatformUpsert::DeletedArticle(key) => ("delete_article", Box::new(key.clone())),
            PlatformUpsert::Template(row) => ("insert_template", Box::new(row.clone())),
            PlatformUpsert::DeletedTemplate(key) => ("delete_template", Box::new(key.clone())),
            PlatformUpsert::Summary(row) => ("insert_summary", Box::new(row.clone())),
            PlatformUpsert::Outbox(row) => ("insert_outbox", Box::new(row.clone())),
            PlatformUpsert::DeletedOutbox(key) => ("delete_outbox", Box::new(key.clone())),
            PlatformUpsert::Audit(row) => ("insert_audit", Box::new(row.clone())),
            PlatformUpsert::AgentLog(row) => ("insert_agent_log", Box::new(row.clone())),
            PlatformUpsert::AgentActivity(row) => ("insert_agent_activity", Box::new(row.clone())),
        }
    }
}

/// The data platform's part of a write plan. One entry per key, the later
/// op winning: every statement of a logged batch has the same timestamp,
/// and at equal timestamps a delete beats an insert whatever their order.
#[derive(Debug, Default)]
pub(super) struct PlatformPlan {
    tickets: BTreeMap<String, TicketRow>,
    ticket_events: BTreeMap<TicketId, Vec<TicketEventRow>>,
    /// `None`: deleted.
    articles: BTreeMap<String, Option<ArticleRow>>,
    /// `None`: deleted.
    templates: BTreeMap<String, Option<TemplateRow>>,
    summaries: BTreeMap<i64, SummaryRow>,
    /// `None`: deleted.
    outbox: BTreeMap<String, Option<OutboxRow>>,
    audit: BTreeMap<(i64, i64), AuditRow>,
    agent_log: BTreeMap<(i64, i64), AgentLogRow>,
    agent_activity: BTreeMap<(String, i64, i64), AgentActivityRow>,
}

impl PlatformPlan {
    /// Adds one of the data platform's ops; fails on a `(ticket, seq)`
    /// appended twice in the batch.
    pub(super) fn add(&mut self, op: &WriteOp) -> Result<(), StoreError> {
        match op {
            WriteOp::PutTicket(ticket) => {
                self.tickets
                    .insert(ticket.id.as_str().to_owned(), ticket_row(ticket)?);
            }
            WriteOp::AppendTicketEvent(event) => {
                let row = ticket_event_row(event)?;
                let appended = self
                    .ticket_events
                    .entry(event.ticket_id.clone())
                    .or_default();
                if appended.iter().any(|earlier| earlier.seq == row.seq) {
                    return Err(StoreError::DuplicateTicketEvent {
                        ticket: event.ticket_id.clone(),
                        seq: event.seq,
                    });
                }
                appended.push(row);
            }
            WriteOp::PutArticle(article) => {
                self.articles
                    .insert(article.id.as_str().to_owned(), Some(article_row(article)?));
            }
            WriteOp::DeleteArticle(id) => {
                self.articles.insert(id.as_str().to_owned(), None);
            }
            WriteOp::PutTemplate(template) => {
                self.templates.insert(
                    template.id.as_str().to_owned(),
                    Some(template_row(template)?),
                );
            }
            WriteOp::DeleteTemplate(id) => {
                self.templates.insert(id.as_str().to_owned(), None);
            }
            WriteOp::PutSummary(summary) => {
                let row = summary_row(summary)?;
                self.summaries.insert(row.session_id, row);
            }
            WriteOp::PutOutbox(entry) => {
                self.outbox
                    .insert(entry.id.clone(), Some(outbox_row(entry)?));
            }
            WriteOp::DeleteOutbox(id) => {
                self.outbox.insert(id.clone(), None);
            }
            WriteOp::PutAudit(entry) => {
                let row = audit_row(entry)?;
                self.audit.insert((row.at, row.id), row);
            }
            WriteOp::PutAgentLog(entry) => {
                let row = agent_log_row(entry)?;
                if matches!(entry.kind, AgentLogKind::Activity { .. }) {
                    let agent_id = entry.agent.as_str().to_owned();
                    self.agent_activity.insert(
                        (agent_id.clone(), row.at, row.id),
                        AgentActivityRow {
                            agent_id,
                            at: row.at,
                            id: row.id,
                            record: row.record.clone(),
                        },
                    );
                }
                self.agent_log.insert((row.at, row.id), row);
            }
            WriteOp::PutCustomer(_)
            | WriteOp::LinkIdentity { .. }
            | WriteOp::PutSession(_)
            | WriteOp::AppendMessage(_)
            | WriteOp::RecordInteraction(_)
            | WriteOp::PutAgent(_)
            | WriteOp::PutGroup(_) => {
                return Err(StoreError::Backend(
                    "scylla: a core op was planned as a data-platform op".into(),
                ));
            }
        }
        Ok(())
    }

    /// The ticket events to append (step 2) and the rows of the logged batch
    /// (step 3), in a fixed order.
    pub(super) fn finish(self) -> (BTreeMap<TicketId, Vec<TicketEventRow>>, Vec<PlatformUpsert>) {
        let mut upserts = Vec::new();
        for row in self.tickets.into_values() {
            upserts.push(PlatformUpsert::TicketByCustomer(row.clone()));
            upserts.push(PlatformUpsert::Ticket(row));
        }
        for (article_id, row) in self.articles {
            upserts.push(match row {
                Some(row) => PlatformUpsert::Article(row),
                None => PlatformUpsert::DeletedArticle(ArticleKey {
                    bucket: LIST_BUCKET,
                    article_id,
                }),
            });
        }
        for (template_id, row) in self.templates {
            upserts.push(match row {
                Some(row) => PlatformUpsert::Template(row),
                None => PlatformUpsert::DeletedTemplate(TemplateKey {
                    bucket: LIST_BUCKET,
                    template_id,
                }),
            });
        }
        upserts.extend(self.summaries.into_values().map(PlatformUpsert::Summary));
        for (outbox_id, row) in self.outbox {
            upserts.push(match row {
                Some(row) => PlatformUpsert::Outbox(row),
                None => PlatformUpsert::DeletedOutbox(OutboxKey {
                    bucket: outbox_bucket(&outbox_id),
                    outbox_id,
                }),
            });
        }
        upserts.extend(self.audit.into_values().map(PlatformUpsert::Audit));
        upserts.extend(self.agent_log.into_values().map(PlatformUpsert::AgentLog));
        upserts.extend(
            self.agent_activity
                .into_values()
                .map(PlatformUpsert::AgentActivity),
        );
        (self.ticket_events, upserts)
    }
}

/// Step 2 for ticket events, run beside the messages: one conditional batch
/// per ticket. Returns what this call appended and the first failure.
pub(super) async fn append_ticket_events<'p>(
    store: &ScyllaStore,
    events: &'p BTreeMap<TicketId, Vec<TicketEventRow>>,
) -> Appended<'p, TicketEventRow> {
    let results = join_all(
        events
            .iter()
            .map(|(ticket, rows)| append_events_of_ticket(store, ticket, rows)),
    )
    .await;
    let mut outcome = Appended::default();
    for (result, rows) in results.into_iter().zip(events.values()) {
        match result {
            Ok(()) => outcome.appended.extend(rows),
            Err(err) => keep_worst(&mut outcome.failure, err),
        }
    }
    outcome
}

async fn append_events_of_ticket(
    store: &ScyllaStore,
    ticket: &TicketId,
    events: &[TicketEventRow],
) -> Result<(), StoreError> {
    let context = "appending ticket_events";
    let mut batch = Batch::new(BatchType::Unlogged);
    for _ in events {
        batch.append_statement(store.statements.append_ticket_event.clone());
    }
    batch.set_is_idempotent(false);
    let result = store
        .session
        .batch(&batch, events)
        .await
        .map_err(write_error(context, false))?;
    if applied(result, context)? {
        return Ok(());
    }
    // Not applied: some seq of ours is stored already. Unlike a message, a
    // stored event identical to ours is a duplicate too (the contract says
    // the seq must be new), so a ticket change is never written twice.
    let low = events.iter().map(|e| e.seq).min().unwrap_or(0);
    let high = events.iter().map(|e| e.seq).max().unwrap_or(0);
    let statement = with_serial_read(
        &store.statements.select_ticket_event_seqs,
        Some(store.options.serial_consistency),
    );
    let stored_rows: Vec<(i64,)> = rows(
        store,
        &statement,
        (ticket.as_str(), low, high),
        "reading ticket_events",
    )
    .await?;
    let stored: Vec<i64> = stored_rows.into_iter().map(|(seq,)| seq).collect();
    match taken_seq(events, &stored) {
        Some(seq) => Err(StoreError::DuplicateTicketEvent {
            ticket: ticket.clone(),
            seq,
        }),
        // The row in the way is gone again (a failed batch took back its
        // append meanwhile): nothing is known to be wrong with ours.
        None => Err(StoreError::Backend(format!(
            "scylla: an event of ticket {ticket} was stored and removed while appending; retry"
        ))),
    }
}

/// The first of `ours`, in batch order, whose seq is among the `stored`
/// ones (read at the serial level after a conditional append was not applied).
pub(super) fn taken_seq(ours: &[TicketEventRow], stored: &[i64]) -> Option<u64> {
    ours.iter()
        .find(|row| stored.contains(&row.seq))
        .map(|row| u64::try_from(row.seq).unwrap_or(0))
}

/// Takes back ticket events appended by a batch that failed elsewhere.
pub(super) async fn remove_ticket_events(store: &ScyllaStore, appended: &[&TicketEventRow]) {
    let statement = &store.statements.remove_ticket_event;
    let removals = appended.iter().map(|row| async move {
        if let Err(err) = store
            .session
            .execute_unpaged(statement, (&row.ticket_id, row.seq))
            .await
        {
            tracing::warn!(ticket_id = %row.ticket_id, seq = row.seq, error = %err,
                "scylla: could not remove a ticket event appended by a failed batch");
        }
    });
    join_all(removals).await;
}

pub(super) async fn get_ticket(
    store: &ScyllaStore,
    id: &TicketId,
) -> Result<Option<Ticket>, StoreError> {
    let found: Vec<TicketRow> = rows(
        store,
        &store.statements.select_ticket,
        (id.as_str(),),
        "reading tickets",
    )
    .await?;
    found
        .first()
        .map(|row| ticket_from_row("tickets", row))
        .transpose()
}

pub(super) async fn tickets_of_customer(
    store: &ScyllaStore,
    customer: &CustomerId,
    limit: usize,
) -> Result<Vec<Ticket>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let found: Vec<TicketRow> = all_rows(
        store,
        &store.statements.select_tickets_of_customer,
        (customer.as_str(), limit_to_cql(limit)),
        "reading tickets_by_customer",
    )
    .await?;
    found
        .iter()
        .map(|row| ticket_from_row("tickets_by_customer", row))
        .collect()
}

pub(super) async fn ticket_events(
    store: &ScyllaStore,
    ticket: &TicketId,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<TicketEvent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let found: Vec<TicketEventRow> = all_rows(
        store,
        &store.statements.select_ticket_events,
        (ticket.as_str(), after, limit_to_cql(limit)),
        "reading ticket_events",
    )
    .await?;
    found.iter().map(ticket_event_from_row).collect()
}

pub(super) async fn list_articles(store: &ScyllaStore) -> Result<Vec<Article>, StoreError> {
    let found: Vec<ArticleRow> = all_rows(
        store,
        &store.statements.select_articles,
        (LIST_BUCKET,),
        "reading kb_articles",
    )
    .await?;
    let mut articles = found
        .iter()
        .map(article_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    // The clustering order is already by id; sorting keeps the contract
    // whatever a row's record says.
    articles.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(articles)
}

pub(super) async fn list_templates(store: &ScyllaStore) -> Result<Vec<ReplyTemplate>, StoreError> {
    let found: Vec<TemplateRow> = all_rows(
        store,
        &store.statements.select_templates,
        (LIST_BUCKET,),
        "reading reply_templates",
    )
    .await?;
    let mut templates = found
        .iter()
        .map(template_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    templates.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(templates)
}

pub(super) async fn get_summary(
    store: &ScyllaStore,
    session: SessionId,
) -> Result<Option<SessionSummary>, StoreError> {
    let found: Vec<SummaryRow> = rows(
        store,
        &store.statements.select_summary,
        (session_id_to_i64(session),),
        "reading session_summaries",
    )
    .await?;
    found.first().map(summary_from_row).transpose()
}

pub(super) async fn outbox_due(
    store: &ScyllaStore,
    now: Millis,
    limit: usize,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let buckets = try_join_all((0..OUTBOX_BUCKETS).map(|bucket| {
        all_rows::<OutboxRow>(
            store,
            &store.statements.select_outbox,
            (bucket,),
            "reading webhook_outbox",
        )
    }))
    .await?;
    due_rows(buckets.into_iter().flatten().collect(), now, limit)
        .iter()
        .map(outbox_from_row)
        .collect()
}

/// The rows of [`outbox_due`], from every bucket's rows: not dead, due at
/// `now`, soonest first then by id, at most `limit`.
pub(super) fn due_rows(mut all: Vec<OutboxRow>, now: Millis, limit: usize) -> Vec<OutboxRow> {
    all.retain(|row| !row.dead && row.next_attempt_at <= now);
    all.sort_by(|a, b| (a.next_attempt_at, &a.outbox_id).cmp(&(b.next_attempt_at, &b.outbox_id)));
    all.truncate(limit);
    all
}

/// Newest first: the day partitions from `until`'s back to `since`'s, each
/// read until `limit` entries are found.
pub(super) async fn audit_log(
    store: &ScyllaStore,
    since: Millis,
    until: Millis,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut found = Vec::new();
    if since >= until {
        return Ok(found);
    }
    let mut day = utc_day(until - 1);
    while day >= utc_day(since) && found.len() < limit {
        let wanted = limit_to_cql(limit - found.len());
        let page: Vec<AuditRow> = rows(
            store,
            &store.statements.select_audit,
            (day, since, until, wanted),
            "reading audit_log",
        )
        .await?;
        for row in &page {
            found.push(audit_from_row(row)?);
        }
        day -= 1;
    }
    Ok(found)
}

/// Day by day from `from`'s UTC day, each day's entries after `after`,
/// until `limit` are found.
pub(super) async fn agent_log(
    store: &ScyllaStore,
    from: Millis,
    to: Millis,
    after: Option<(Millis, u64)>,
    limit: usize,
) -> Result<Vec<AgentLogEntry>, StoreError> {
    let mut found = Vec::new();
    if from >= to || limit == 0 {
        return Ok(found);
    }
    // Strictly after this key; without `after`, after everything before `from`.
    let (mut after_at, mut after_id) = match after {
        Some((at, id)) if at >= from => (at, session_id_to_i64(SessionId(id))),
        _ => (from - 1, i64::MAX),
    };
    let mut day = utc_day(after_at.max(from));
    while day <= utc_day(to - 1) && found.len() < limit {
        let wanted = limit_to_cql(limit - found.len());
        let page: Vec<AgentLogRow> = rows(
            store,
            &store.statements.select_agent_log,
            (day, after_at, after_id, to, i64::MIN, wanted),
            "reading agent_log",
        )
        .await?;
        for row in &page {
            found.push(decode_agent_log("agent_log", row.at, row.id, &row.record)?);
        }
        if page.len() < usize::try_from(wanted).unwrap_or(usize::MAX) {
            day += 1;
            after_at = i64::MIN;
            after_id = i64::MIN;
        } else if let Some(last) = page.last() {
            after_at = last.at;
            after_id = last.id;
        }
    }
    Ok(found)
}

/// The newest row of the agent's partition before `at`.
pub(super) async fn agent_activity_before(
    store: &ScyllaStore,
    agent: &AgentId,
    at: Millis,
) -> Result<Option<AgentLogEntry>, StoreError> {
    let found: Vec<AgentActivityRow> = rows(
        store,
        &store.statements.select_agent_activity_before,
        (agent.as_str(), at),
        "reading agent_activity_by_agent",
    )
    .await?;
    found
        .first()
        .map(|row| decode_agent_log("agent_activity_by_agent", row.at, row.id, &row.record))
        .transpose()
}
