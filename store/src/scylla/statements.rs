//! Every CQL statement the backend runs, prepared once at connect.
//!
//! Idempotence is marked per statement, because it decides whether the
//! driver may retry or speculatively repeat a request: plain upserts, deletes
//! and reads are idempotent (a repeat writes the same cells with the same
//! client timestamp); lightweight transactions (`IF …`) are not, since a
//! repeat of an applied one reports "not applied". The backend recognises its
//! own earlier write in that case instead (see `write.rs` and `platform.rs`).

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::backend_error;
use crate::StoreError;

/// One statement: its text and whether a repeat is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cql {
    /// The statement text.
    pub text: &'static str,
    /// May the driver send it twice?
    pub idempotent: bool,
}

const fn idempotent(text: &'static str) -> Cql {
    Cql {
        text,
        idempotent: true,
    }
}

const fn conditional(text: &'static str) -> Cql {
    Cql {
        text,
        idempotent: false,
    }
}

macro_rules! statements {
    ($( $(#[$doc:meta])* $name:ident = $cql:expr; )*) => {
        /// The prepared statements.
        pub(super) struct Prepared {
            $( $(#[$doc])* pub $name: PreparedStatement, )*
        }

        /// Every statement by name, in declaration order (tests check the text).
        pub const ALL: &[(&str, Cql)] = &[ $( (stringify!($name), $cql), )* ];

        impl Prepared {
            pub(super) async fn prepare(session: &Session) -> Result<Prepared, StoreError> {
                Ok(Prepared {
                    $( $name: prepare(session, stringify!($name), $cql).await?, )*
                })
            }

            /// The statement called `name` in [`ALL`].
            pub(super) fn get(&self, name: &str) -> Option<&PreparedStatement> {
                match name {
                    $( stringify!($name) => Some(&self.$name), )*
                    _ => None,
                }
            }
        }
    };
}

statements! {
    /// Upserts a customer's profile.
    insert_customer = idempotent(
        "INSERT INTO customers (customer_id, display_name, tier, tags, language, last_agent, created_at) \
         VALUES (:customer_id, :display_name, :tier, :tags, :language, :last_agent, :created_at)");
    select_customer = idempotent(
        "SELECT customer_id, display_name, tier, tags, language, last_agent, created_at \
         FROM customers WHERE customer_id = ?");
    /// Claims an identity for a customer: exactly one owner wins.
    claim_identity = conditional(
        "INSERT INTO customer_identities (channel, external_id, customer_id) \
         VALUES (:channel, :external_id, :customer_id) IF NOT EXISTS");
    /// Gives back a claim this batch made when the batch fails.
    release_identity = conditional(
        "DELETE FROM customer_identities WHERE channel = ? AND external_id = ? IF customer_id = ?");
    select_identity_owner = idempotent(
        "SELECT customer_id FROM customer_identities WHERE channel = ? AND external_id = ?");
    insert_identity_by_customer = idempotent(
        "INSERT INTO identities_by_customer (customer_id, channel, external_id) \
         VALUES (:customer_id, :channel, :external_id)");
    select_identities_of_customer = idempotent(
        "SELECT channel, external_id, customer_id FROM identities_by_customer WHERE customer_id = ?");
    insert_session = idempotent(
        "INSERT INTO sessions (session_id, customer_id, channel, state, group_id, agent_id, \
         created_at, queued_at, offered_at, answered_at, first_response_at, wrap_up_at, closed_at, \
         last_seq, transfers, summary, rating) \
         VALUES (:session_id, :customer_id, :channel, :state, :group_id, :agent_id, \
         :created_at, :queued_at, :offered_at, :answered_at, :first_response_at, :wrap_up_at, :closed_at, \
         :last_seq, :transfers, :summary, :rating)");
    select_session = idempotent(
        "SELECT session_id, customer_id, channel, state, group_id, agent_id, \
         created_at, queued_at, offered_at, answered_at, first_response_at, wrap_up_at, closed_at, \
         last_seq, transfers, summary, rating FROM sessions WHERE session_id = ?");
    insert_session_reply_route = idempotent(
        "INSERT INTO session_reply_route (session_id, record) VALUES (:session_id, :record)");
    select_session_reply_route = idempotent(
        "SELECT session_id, record FROM session_reply_route WHERE session_id = ?");
    insert_session_sla_group = idempotent(
        "INSERT INTO session_sla_group (session_id, group_id) VALUES (:session_id, :group_id)");
    select_session_sla_group = idempotent(
        "SELECT session_id, group_id FROM session_sla_group WHERE session_id = ?");
    insert_session_steps = idempotent(
        "INSERT INTO session_steps (session_id, record) VALUES (:session_id, :record)");
    select_session_steps = idempotent(
        "SELECT session_id, record FROM session_steps WHERE session_id = ?");
    insert_session_by_queued_day = idempotent(
        "INSERT INTO sessions_by_queued_day (day, queued_at, session_id) \
         VALUES (:day, :queued_at, :session_id)");
    /// One day's page, after `(queued_at, session_id)` and before the end.
    select_sessions_by_queued_day = idempotent(
        "SELECT day, queued_at, session_id FROM sessions_by_queued_day \
         WHERE day = ? AND (queued_at, session_id) > (?, ?) AND (queued_at, session_id) < (?, ?) \
         LIMIT ?");
    insert_session_by_customer = idempotent(
        "INSERT INTO sessions_by_customer (customer_id, created_at, session_id) \
         VALUES (:customer_id, :created_at, :session_id)");
    select_sessions_of_customer = idempotent(
        "SELECT session_id FROM sessions_by_customer WHERE customer_id = ? LIMIT ?");
    insert_open_session = idempotent(
        "INSERT INTO open_sessions (bucket, session_id) VALUES (:bucket, :session_id)");
    delete_open_session = idempotent(
        "DELETE FROM open_sessions WHERE bucket = :bucket AND session_id = :session_id");
    select_open_sessions = idempotent(
        "SELECT session_id FROM open_sessions WHERE bucket = ?");
    /// Appends a message; with the others of its session in one conditional batch.
    append_message = conditional(
        "INSERT INTO session_messages (session_id, seq, sender_kind, sender_agent, body, \
         client_message_id, channel, at) \
         VALUES (:session_id, :seq, :sender_kind, :sender_agent, :body, :client_message_id, :channel, :at) \
         IF NOT EXISTS");
    /// Takes back a message this batch appended when another part of it failed.
    remove_message = conditional(
        "DELETE FROM session_messages WHERE session_id = ? AND seq = ? IF EXISTS");
    select_messages = idempotent(
        "SELECT session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at \
         FROM session_messages WHERE session_id = ? AND seq > ? LIMIT ?");
    select_message_range = idempotent(
        "SELECT session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at \
         FROM session_messages WHERE session_id = ? AND seq >= ? AND seq <= ?");
    insert_interaction = idempotent(
        "INSERT INTO customer_interactions (customer_id, at, session_id, channel, summary) \
         VALUES (:customer_id, :at, :session_id, :channel, :summary)");
    select_interactions = idempotent(
        "SELECT customer_id, at, session_id, channel, summary FROM customer_interactions \
         WHERE customer_id = ? AND at > ? LIMIT ?");
    delete_interaction = idempotent(
        "DELETE FROM customer_interactions WHERE customer_id = ? AND at = ? AND session_id = ?");
    insert_interaction_by_day = idempotent(
        "INSERT INTO interactions_by_day (day, at, customer_id, session_id) \
         VALUES (:day, :at, :customer_id, :session_id)");
    select_interactions_by_day = idempotent(
        "SELECT day, at, customer_id, session_id FROM interactions_by_day WHERE day = ? AND at <= ?");
    delete_interactions_by_day = idempotent(
        "DELETE FROM interactions_by_day WHERE day = ? AND at <= ?");
    insert_interaction_day = idempotent(
        "INSERT INTO interaction_days (shard, day) VALUES (0, :day)");
    select_interaction_days = idempotent(
        "SELECT day FROM interaction_days WHERE shard = 0 AND day <= ?");
    delete_interaction_day = idempotent(
        "DELETE FROM interaction_days WHERE shard = 0 AND day = ?");
    insert_agent = idempotent(
        "INSERT INTO agents (agent_id, display_name, role, skills, groups, languages, \
         capacity_limits, capacity_exclusive) \
         VALUES (:agent_id, :display_name, :role, :skills, :groups, :languages, \
         :capacity_limits, :capacity_exclusive)");
    select_agents = idempotent(
        "SELECT agent_id, display_name, role, skills, groups, languages, capacity_limits, \
         capacity_exclusive FROM agents");
    select_agent = idempotent(
        "SELECT agent_id, display_name, role, skills, groups, languages, capacity_limits, \
         capacity_exclusive FROM agents WHERE agent_id = ?");
    /// An agent's SIP credentials; a null record removes them.
    insert_agent_sip = idempotent(
        "INSERT INTO agent_sip (agent_id, record) VALUES (:agent_id, :record)");
    select_agent_sips = idempotent("SELECT agent_id, record FROM agent_sip");
    select_agent_sip = idempotent("SELECT agent_id, record FROM agent_sip WHERE agent_id = ?");
    insert_group = idempotent(
        "INSERT INTO skill_groups (group_id, display_name, sla_threshold_secs, \
         sla_threshold_by_channel, sla_target_pct, short_abandon_secs) \
         VALUES (:group_id, :display_name, :sla_threshold_secs, :sla_threshold_by_channel, \
         :sla_target_pct, :short_abandon_secs)");
    select_groups = idempotent(
        "SELECT group_id, display_name, sla_threshold_secs, sla_threshold_by_channel, \
         sla_target_pct, short_abandon_secs FROM skill_groups");
    insert_ticket = idempotent(
        "INSERT INTO tickets (ticket_id, customer_id, created_at, record) \
         VALUES (:ticket_id, :customer_id, :created_at, :record)");
    select_ticket = idempotent(
        "SELECT ticket_id, customer_id, created_at, record FROM tickets WHERE ticket_id = ?");
    /// With `insert_ticket`, in the same logged batch.
    insert_ticket_by_customer = idempotent(
        "INSERT INTO tickets_by_customer (customer_id, created_at, ticket_id, record) \
         VALUES (:customer_id, :created_at, :ticket_id, :record)");
    select_tickets_of_customer = idempotent(
        "SELECT ticket_id, customer_id, created_at, record FROM tickets_by_customer \
         WHERE customer_id = ? LIMIT ?");
    /// Appends a ticket event; with the others of its ticket in one conditional batch.
    append_ticket_event = conditional(
        "INSERT INTO ticket_events (ticket_id, seq, record) VALUES (:ticket_id, :seq, :record) \
         IF NOT EXISTS");
    /// Takes back a ticket event this batch appended when another part of it failed.
    remove_ticket_event = conditional(
        "DELETE FROM ticket_events WHERE ticket_id = ? AND seq = ? IF EXISTS");
    select_ticket_events = idempotent(
        "SELECT ticket_id, seq, record FROM ticket_events WHERE ticket_id = ? AND seq > ? LIMIT ?");
    /// Which seqs are taken, after a conditional append was not applied.
    select_ticket_event_seqs = idempotent(
        "SELECT seq FROM ticket_events WHERE ticket_id = ? AND seq >= ? AND seq <= ?");
    insert_article = idempotent(
        "INSERT INTO kb_articles (bucket, article_id, record) \
         VALUES (:bucket, :article_id, :record)");
    delete_article = idempotent(
        "DELETE FROM kb_articles WHERE bucket = :bucket AND article_id = :article_id");
    select_articles = idempotent(
        "SELECT bucket, article_id, record FROM kb_articles WHERE bucket = ?");
    insert_template = idempotent(
        "INSERT INTO reply_templates (bucket, template_id, record) \
         VALUES (:bucket, :template_id, :record)");
    delete_template = idempotent(
        "DELETE FROM reply_templates WHERE bucket = :bucket AND template_id = :template_id");
    select_templates = idempotent(
        "SELECT bucket, template_id, record FROM reply_templates WHERE bucket = ?");
    insert_summary = idempotent(
        "INSERT INTO session_summaries (session_id, record) VALUES (:session_id, :record)");
    select_summary = idempotent(
        "SELECT session_id, record FROM session_summaries WHERE session_id = ?");
    insert_audit = idempotent(
        "INSERT INTO audit_log (day, at, id, record) VALUES (:day, :at, :id, :record)");
    select_audit = idempotent(
        "SELECT day, at, id, record FROM audit_log WHERE day = ? AND at >= ? AND at < ? LIMIT ?");
    insert_agent_log = idempotent(
        "INSERT INTO agent_log (day, at, id, record) VALUES (:day, :at, :id, :record)");
    /// One day's page, after `(at, id)` and before the end.
    select_agent_log = idempotent(
        "SELECT day, at, id, record FROM agent_log \
         WHERE day = ? AND (at, id) > (?, ?) AND (at, id) < (?, ?) LIMIT ?");
    insert_agent_activity = idempotent(
        "INSERT INTO agent_activity_by_agent (agent_id, at, id, record) \
         VALUES (:agent_id, :at, :id, :record)");
    select_agent_activity_before = idempotent(
        "SELECT agent_id, at, id, record FROM agent_activity_by_agent \
         WHERE agent_id = ? AND at < ? LIMIT 1");
    insert_outbox = idempotent(
        "INSERT INTO webhook_outbox (bucket, outbox_id, next_attempt_at, dead, record) \
         VALUES (:bucket, :outbox_id, :next_attempt_at, :dead, :record)");
    delete_outbox = idempotent(
        "DELETE FROM webhook_outbox WHERE bucket = :bucket AND outbox_id = :outbox_id");
    select_outbox = idempotent(
        "SELECT bucket, outbox_id, next_attempt_at, dead, record FROM webhook_outbox \
         WHERE bucket = ?");
}

async fn prepare(session: &Session, name: &str, cql: Cql) -> Result<PreparedStatement, StoreError> {
    let mut statement = session
        .prepare(cql.text)
        .await
        .map_err(backend_error(&format!("preparing {name}")))?;
    statement.set_is_idempotent(cql.idempotent);
    Ok(statement)
}
