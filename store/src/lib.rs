//! The `Store` contract: what switchboard persists and how it reads it back,
//! and its backends: [`SqliteStore`] (embedded, the default), [`ScyllaStore`],
//! [`MemoryStore`] (tests) and [`CachedStore`] (a customer cache in front of
//! another backend).
//!
//! The records are `engine`'s domain types; this crate only stores them. It
//! is the one crate below `actors` that performs IO and awaits, so that
//! `engine` does neither.
//!
//! The data model is written CQL-first (partition key, clustering key, TTL) so
//! that a ScyllaDB backend maps onto it one table per table; the embedded
//! [`SqliteStore`] mirrors the same tables:
//!
//! | table | key | holds |
//! |---|---|---|
//! | `customers` | (customer_id) | [`Customer`] without identities |
//! | `customer_identities` | ((channel, external_id)) → customer_id | one person across channels |
//! | `sessions` | (session_id) | every [`Session`] field |
//! | `session_messages` | ((session_id), seq) | [`StoredMessage`] |
//! | `customer_interactions` | ((customer_id), at desc, session_id), TTL 30 days | [`Interaction`] |
//! | `agents` | (agent_id) | [`Agent`] |
//! | `skill_groups` | (group_id) | [`SkillGroup`] |
//! | `tickets` | (ticket_id), by customer newest first | [`Ticket`] |
//! | `ticket_events` | ((ticket_id), seq) | [`TicketEvent`], append-only |
//! | `kb_articles` | (article_id) | [`Article`] |
//! | `reply_templates` | (template_id) | [`ReplyTemplate`] |
//! | `session_summaries` | (session_id) | [`SessionSummary`] |
//! | `webhook_outbox` | (outbox_id), by due time | [`OutboxEntry`] |
//! | `audit_log` | ((day), at desc, id desc) | [`AuditEntry`]: supervisor actions |
//!
//! Records whose fields grow with the product (tickets, articles, templates,
//! summaries, outbox entries) keep their key columns apart and the rest as
//! one JSON `record` column, so adding a field needs no migration.
//!
//! Writes go through one call, [`Store::write`], with a batch of [`WriteOp`]s
//! that is applied atomically: the persistence writer actor collects the ops
//! of many sessions and makes one store round-trip for all of them.
//!
//! Every backend passes the same test suite, `store::contract` (compiled for this
//! crate's tests and, for other crates, with the `contract-tests` feature).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use engine::Millis;
use engine::agent::Agent;
use engine::assist::ReplyTemplate;
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::ids::{ArticleId, TemplateId, TicketId};
use engine::kb::Article;
use engine::message::StoredMessage;
use engine::outbox::OutboxEntry;
use engine::session::Session;
use engine::sla::report::AgentLogEntry;
use engine::summary::SessionSummary;
use engine::supervision::AuditEntry;
use engine::ticket::{Ticket, TicketEvent};

pub mod cache;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod memory;
pub mod scylla;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use cache::CachedStore;
pub use memory::MemoryStore;
pub use scylla::{Replication, ScyllaOptions, ScyllaStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// How long an [`Interaction`] stays visible: the recent cross-channel history
/// an agent sees is the last 30 days.
pub const INTERACTION_TTL_MS: Millis = 30 * 24 * 60 * 60 * 1000;

/// The top bit of a session id, flipped on the way into a store's `i64`.
const SESSION_ID_SIGN_FLIP: u64 = 1 << 63;

/// Session ids are `u64`, SQLite integers and CQL `bigint`s are `i64`:
/// flipping the top bit maps one onto the other keeping the order, so
/// ordering by the stored column stays id order even for ids past `i64::MAX`
/// (which `SessionIdGen` makes from 2039).
pub(crate) fn session_id_to_i64(id: SessionId) -> i64 {
    (id.0 ^ SESSION_ID_SIGN_FLIP) as i64
}

/// The inverse of [`session_id_to_i64`].
pub(crate) fn session_id_from_i64(stored: i64) -> SessionId {
    SessionId(stored as u64 ^ SESSION_ID_SIGN_FLIP)
}

/// The persistence contract every backend implements.
///
/// Object-safe: the rest of the system holds an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies one batch atomically: every op or none. When it returns `Ok`
    /// the batch is durable (it survives the process being killed); an
    /// error other than [`StoreError::OutcomeUnknown`] means none of it is.
    ///
    /// Ops apply in order, so a later op sees an earlier one. The batch fails
    /// as a whole with [`StoreError::IdentityTaken`] when an identity already
    /// belongs to another customer, and with [`StoreError::DuplicateSeq`]
    /// when a message's `(session, seq)` is already stored.
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError>;

    /// [`Store::write`] for a caller that can give the batch away; a backend
    /// that moves the batch to another thread overrides it to skip a copy.
    async fn write_owned(&self, batch: Vec<WriteOp>) -> Result<(), StoreError> {
        self.write(&batch).await
    }

    /// A customer with every identity linked to it (sorted).
    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError>;

    /// Who owns `external_id` on `channel`.
    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError>;

    /// One session.
    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// A customer's sessions, newest first (by creation time, then id), at most `limit`.
    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError>;

    /// Every session that is neither closed nor abandoned, by id: what a node
    /// re-activates when it starts.
    async fn open_sessions(&self) -> Result<Vec<Session>, StoreError>;

    /// A session's messages with `seq > after_seq`, ascending, at most `limit`.
    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;

    /// A customer's interactions that have not expired at `now`, newest first,
    /// at most `limit`.
    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError>;

    /// Deletes interactions expired at `now` (recorded at or before
    /// `now - INTERACTION_TTL_MS`); returns how many. Reads hide expired rows
    /// whether or not they were purged.
    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError>;

    /// Every agent, by id.
    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError>;

    /// One agent.
    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError>;

    /// Every skill group, by id.
    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError>;

    /// One ticket.
    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError>;

    /// A customer's tickets, newest first (by creation time, then id), at most `limit`.
    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError>;

    /// A ticket's history with `seq > after_seq`, ascending, at most `limit`.
    async fn ticket_events(
        &self,
        ticket: &TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TicketEvent>, StoreError>;

    /// Every knowledge-base article, by id.
    async fn list_articles(&self) -> Result<Vec<Article>, StoreError>;

    /// Every reply template, by id.
    async fn list_templates(&self) -> Result<Vec<ReplyTemplate>, StoreError>;

    /// The auto-summary of a session, once written.
    async fn get_summary(&self, session: SessionId) -> Result<Option<SessionSummary>, StoreError>;

    /// Audit entries with `since <= at < until`, newest first, at most `limit`.
    async fn audit_log(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Sessions that first queued at `from <= times.queued < to`, in
    /// `(queued, id)` order, at most `limit`, starting just after `after`
    /// (the last one of the page before): what the reports read.
    async fn sessions_queued(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, SessionId)>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError>;

    /// Agent log entries with `from <= at < to`, in `(at, id)` order, at most
    /// `limit`, starting just after `after` (the last one of the page before).
    async fn agent_log(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, u64)>,
        limit: usize,
    ) -> Result<Vec<AgentLogEntry>, StoreError>;

    /// The agent's last activity entry before `at`: what they were doing then.
    async fn agent_activity_before(
        &self,
        agent: &AgentId,
        at: Millis,
    ) -> Result<Option<AgentLogEntry>, StoreError>;

    /// Outbox entries that are not dead and due at `now` (`next_attempt_at <=
    /// now`), soonest first (then by id), at most `limit`.
    async fn outbox_due(&self, now: Millis, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Finishes queued writes and releases the backend; afterwards every call
    /// fails with [`StoreError::Closed`]. Closing twice is fine.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Drops what this process caches of `customers` (another node of a
    /// cluster changed them); a store without a cache has nothing to drop.
    fn forget_cached(&self, customers: &[CustomerId]) {
        let _ = customers;
    }
}

/// One change in a [`Store::write`] batch. Puts are upserts (CQL `INSERT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WriteOp {
    /// Upserts the customer's profile and links every identity it lists.
    /// Identities linked before and not listed stay linked.
    PutCustomer(Customer),
    /// Links one more identity to a customer; a no-op if it is already theirs.
    LinkIdentity {
        /// The owner.
        customer: CustomerId,
        /// The channel id to link.
        identity: Identity,
    },
    /// Upserts a session record.
    PutSession(Session),
    /// Appends a message; its `(session_id, seq)` must be new.
    AppendMessage(StoredMessage),
    /// Records a contact in the customer's recent history (expires after
    /// [`INTERACTION_TTL_MS`]). Same `(customer, at, session)` overwrites.
    RecordInteraction(Interaction),
    /// Upserts an agent profile.
    PutAgent(Agent),
    /// Upserts a skill group.
    PutGroup(SkillGroup),
    /// Upserts a ticket.
    PutTicket(Ticket),
    /// Appends to a ticket's history; its `(ticket_id, seq)` must be new.
    AppendTicketEvent(TicketEvent),
    /// Upserts an article.
    PutArticle(Article),
    /// Deletes an article; a no-op if there is none.
    DeleteArticle(ArticleId),
    /// Upserts a reply template.
    PutTemplate(ReplyTemplate),
    /// Deletes a reply template; a no-op if there is none.
    DeleteTemplate(TemplateId),
    /// Upserts a session's auto-summary.
    PutSummary(SessionSummary),
    /// Upserts an outbox entry (a new event, or one rescheduled after a failure).
    PutOutbox(OutboxEntry),
    /// Deletes a delivered outbox entry by id; a no-op if there is none.
    DeleteOutbox(String),
    /// Appends a supervisor action to the audit log; the same `(at, id)`
    /// again overwrites it (a retried write).
    PutAudit(AuditEntry),
    /// Appends to an agent's log (what the reports read); the same
    /// `(at, id)` again overwrites it.
    PutAgentLog(AgentLogEntry),
}

/// One contact in a customer's recent cross-channel history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// Whose history.
    pub customer_id: CustomerId,
    /// When it happened; the TTL counts from here.
    pub at: Millis,
    /// The session it was part of.
    pub session_id: SessionId,
    /// The channel it was on.
    pub channel: Channel,
    /// One line for the agent's 360° view.
    pub summary: String,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The identity belongs to another customer; the batch was not written.
    #[error("identity {channel}:{external_id} already belongs to customer `{owner}`")]
    IdentityTaken {
        /// The identity's channel.
        channel: Channel,
        /// The identity's id on that channel.
        external_id: String,
        /// Who owns it.
        owner: CustomerId,
    },
    /// The message's sequence number is already stored; the batch was not written.
    #[error("session {session} already has a message with seq {seq}")]
    DuplicateSeq {
        /// The session.
        session: SessionId,
        /// The sequence number.
        seq: u64,
    },
    /// The ticket event's sequence number is already stored; the batch was not written.
    #[error("ticket {ticket} already has an event with seq {seq}")]
    DuplicateTicketEvent {
        /// The ticket.
        ticket: TicketId,
        /// The sequence number.
        seq: u64,
    },
    /// The backend failed before the batch could reach it, or refused it:
    /// nothing was written. The text says which backend and what it was doing.
    #[error("store backend failed: {0}")]
    Backend(String),
    /// The batch reached the backend, but its answer did not come back (a
    /// request timeout, a connection broken after sending): it may be
    /// written, wholly or in part. Reading it back tells; a resend of a
    /// message with the same client id is de-duplicated.
    #[error("store outcome unknown: {reason}")]
    OutcomeUnknown {
        /// Which backend, what it was doing and what went wrong.
        reason: String,
    },
    /// A stored row does not decode.
    #[error("corrupt row in {what}")]
    Corrupt {
        /// Table, key and what is wrong.
        what: String,
    },
    /// The store was closed.
    #[error("store is closed")]
    Closed,
}
