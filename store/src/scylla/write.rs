//! `Store::write` on ScyllaDB: a batch is planned (pure, unit-tested), then
//! written in three steps — identity claims, conditional appends of messages
//! per session and of ticket events per ticket, one logged batch for the
//! rest — and a contract failure in the first two gives back what they took,
//! so the batch fails as a whole.

use std::collections::BTreeMap;

use futures_util::future::{join, join_all};
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use super::outcome::{keep_worst, write_error};
use super::platform::{self, PlatformPlan, PlatformUpsert, TicketEventRow};
use super::read::{self, all_rows, rows, with_serial_read};
use super::rows::{
    self, AgentRow, AgentSipRow, CustomerRow, GroupRow, IdentityRow, InteractionByDayRow,
    InteractionRow, MessageRow, OpenSessionRow, SessionByCustomerRow, SessionByQueuedDayRow,
    SessionRouteRow, SessionRow, SessionSlaGroupRow, SessionStepsRow,
};
use super::{ScyllaStore, backend_error};
use crate::{INTERACTION_TTL_MS, StoreError, WriteOp, session_id_from_i64};
use engine::Millis;
use engine::channel::Channel;
use engine::customer::Identity;
use engine::ids::{CustomerId, SessionId, TicketId};

/// A row of the logged batch (step 3), with the statement that writes it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Upsert {
    Customer(CustomerRow),
    IdentityByCustomer(IdentityRow),
    Session(SessionRow),
    SessionRoute(SessionRouteRow),
    SessionSlaGroup(SessionSlaGroupRow),
    SessionSteps(SessionStepsRow),
    SessionByQueuedDay(SessionByQueuedDayRow),
    SessionByCustomer(SessionByCustomerRow),
    OpenSession(OpenSessionRow),
    ClosedSession(OpenSessionRow),
    Interaction(InteractionRow),
    InteractionByDay(InteractionByDayRow),
    InteractionDay(i64),
    Agent(AgentRow),
    AgentSip(AgentSipRow),
    Group(GroupRow),
    /// Tickets, articles, templates, summaries, the outbox (`platform.rs`).
    Platform(PlatformUpsert),
}

/// The values bound to one statement of a batch.
pub(super) type BoundRow = Box<dyn SerializeRow + Send + Sync>;

/// What one `write` call does, decided before any request is sent.
#[derive(Debug, Default, PartialEq)]
pub(super) struct WritePlan {
    /// Identities to claim, each once, in the order the batch names them.
    pub claims: Vec<IdentityRow>,
    /// Messages to append, per session, in batch order.
    pub messages: BTreeMap<SessionId, Vec<MessageRow>>,
    /// Ticket events to append, per ticket, in batch order.
    pub ticket_events: BTreeMap<TicketId, Vec<TicketEventRow>>,
    /// Everything else; one row per key (a later op on the same key wins,
    /// as a later op in the batch sees an earlier one).
    pub upserts: Vec<Upsert>,
}

/// The rows of one session record.
struct SessionRows {
    session: SessionRow,
    reply_route: SessionRouteRow,
    sla_group: SessionSlaGroupRow,
    steps: SessionStepsRow,
    by_queued_day: Option<SessionByQueuedDayRow>,
}

/// Plans `batch`, failing early on conflicts inside the batch itself: one
/// identity given to two customers, one `(session, seq)` or `(ticket, seq)`
/// appended twice.
pub(super) fn plan(batch: &[WriteOp]) -> Result<WritePlan, StoreError> {
    let mut plan = WritePlan::default();
    let mut owners: BTreeMap<(Channel, String), CustomerId> = BTreeMap::new();
    let mut customers: BTreeMap<String, CustomerRow> = BTreeMap::new();
    let mut sessions: BTreeMap<SessionId, SessionRows> = BTreeMap::new();
    let mut session_ids: Vec<SessionId> = Vec::new();
    let mut interactions: BTreeMap<(String, i64, i64), InteractionRow> = BTreeMap::new();
    let mut agents: BTreeMap<String, (AgentRow, AgentSipRow)> = BTreeMap::new();
    let mut groups: BTreeMap<String, GroupRow> = BTreeMap::new();
    let mut platform = PlatformPlan::default();
    let mut claim = |plan: &mut WritePlan, customer: &CustomerId, identity: &Identity| {
        let key = (identity.channel.clone(), identity.external_id.clone());
        match owners.get(&key) {
            Some(owner) if owner == customer => Ok(()),
            Some(owner) => Err(StoreError::IdentityTaken {
                channel: identity.channel.clone(),
                external_id: identity.external_id.clone(),
                owner: owner.clone(),
            }),
            None => {
                owners.insert(key, customer.clone());
                let row = rows::identity_to_row(customer, identity);
                plan.upserts.push(Upsert::IdentityByCustomer(row.clone()));
                plan.claims.push(row);
                Ok(())
            }
        }
    };
    for op in batch {
        match op {
            WriteOp::PutCustomer(customer) => {
                for identity in &customer.identities {
                    claim(&mut plan, &customer.id, identity)?;
                }
                customers.insert(
                    customer.id.as_str().to_owned(),
                    rows::customer_to_row(customer),
                );
            }
            WriteOp::LinkIdentity { customer, identity } => {
                claim(&mut plan, customer, identity)?;
            }
            WriteOp::PutSession(session) => {
                let rows = SessionRows {
                    session: rows::session_to_row(session),
                    reply_route: rows::session_route_to_row(session),
                    sla_group: rows::session_sla_group_to_row(session),
                    steps: rows::session_steps_to_row(session),
                    by_queued_day: rows::session_by_queued_day_row(session),
                };
                if sessions.insert(session.id, rows).is_none() {
                    session_ids.push(session.id);
                }
            }
            WriteOp::AppendMessage(message) => {
                let appended = plan.messages.entry(message.session_id).or_default();
                let seq = i64::try_from(message.seq).unwrap_or(i64::MAX);
                if appended.iter().any(|row| row.seq == seq) {
                    return Err(StoreError::DuplicateSeq {
                        session: message.session_id,
                        seq: message.seq,
                    });
                }
                appended.push(rows::message_to_row(message));
            }
            WriteOp::RecordInteraction(interaction) => {
                let row = rows::interaction_to_row(interaction);
                interactions.insert((row.customer_id.clone(), row.at, row.session_id), row);
            }
            WriteOp::PutAgent(agent) => {
                let rows = (rows::agent_to_row(agent), rows::agent_sip_to_row(agent)?);
                agents.insert(agent.id.as_str().to_owned(), rows);
            }
            WriteOp::PutGroup(group) => {
                groups.insert(group.id.as_str().to_owned(), rows::group_to_row(group));
            }
            WriteOp::PutTicket(_)
            | WriteOp::AppendTicketEvent(_)
            | WriteOp::PutArticle(_)
            | WriteOp::DeleteArticle(_)
            | WriteOp::PutTemplate(_)
            | WriteOp::DeleteTemplate(_)
            | WriteOp::PutSummary(_)
            | WriteOp::PutOutbox(_)
            | WriteOp::DeleteOutbox(_)
            | WriteOp::PutAudit(_)
            | WriteOp::PutAgentLog(_) => platform.add(op)?,
        }
    }
    plan.upserts
        .extend(customers.into_values().map(Upsert::Customer));
    for id in session_ids {
        let SessionRows {
            session: row,
            reply_route,
            sla_group,
            steps,
            by_queued_day,
        } = sessions.remove(&id).expect("listed when inserted");
        let session = rows::session_from_row(row.clone())?;
        plan.upserts
            .push(Upsert::SessionByCustomer(rows::session_by_customer_row(
                &session,
            )));
        let index = rows::open_session_row(session.id);
        plan.upserts.push(if session.state.is_final() {
            Upsert::ClosedSession(index)
        } else {
            Upsert::OpenSession(index)
        });
        plan.upserts.push(Upsert::Session(row));
        plan.upserts.push(Upsert::SessionRoute(reply_route));
        plan.upserts.push(Upsert::SessionSlaGroup(sla_group));
        plan.upserts.push(Upsert::SessionSteps(steps));
        plan.upserts
            .extend(by_queued_day.map(Upsert::SessionByQueuedDay));
    }
    let mut days = Vec::new();
    for row in interactions.into_values() {
        let interaction = rows::interaction_from_row(row.clone())?;
        let by_day = rows::interaction_by_day_row(&interaction);
        if !days.contains(&by_day.day) {
            days.push(by_day.day);
        }
        plan.upserts.push(Upsert::InteractionByDay(by_day));
        plan.upserts.push(Upsert::Interaction(row));
    }
    plan.upserts
        .extend(days.into_iter().map(Upsert::InteractionDay));
    for (agent, sip) in agents.into_values() {
        plan.upserts.push(Upsert::Agent(agent));
        plan.upserts.push(Upsert::AgentSip(sip));
    }
    plan.upserts.extend(groups.into_values().map(Upsert::Group));
    let (ticket_events, platform_upserts) = platform.finish();
    plan.ticket_events = ticket_events;
    plan.upserts
        .extend(platform_upserts.into_iter().map(Upsert::Platform));
    Ok(plan)
}

impl Upsert {
    /// The name of the statement that writes this row (in [`super::statements::ALL`])
    /// and its bound values.
    pub(super) fn parts(&self) -> (&'static str, BoundRow) {
        match self {
            Upsert::Customer(row) => ("insert_customer", Box::new(row.clone())),
            Upsert::IdentityByCustomer(row) => {
                ("insert_identity_by_customer", Box::new(row.clone()))
            }
            Upsert::Session(row) => ("insert_session", Box::new(row.clone())),
            Upsert::SessionRoute(row) => ("insert_session_reply_route", Box::new(row.clone())),
            Upsert::SessionSlaGroup(row) => ("insert_session_sla_group", Box::new(row.clone())),
            Upsert::SessionSteps(row) => ("insert_session_steps", Box::new(row.clone())),
            Upsert::SessionByQueuedDay(row) => {
                ("insert_session_by_queued_day", Box::new(row.clone()))
            }
            Upsert::SessionByCustomer(row) => ("insert_session_by_customer", Box::new(row.clone())),
            Upsert::OpenSession(row) => ("insert_open_session", Box::new(row.clone())),
            Upsert::ClosedSession(row) => ("delete_open_session", Box::new(row.clone())),
            Upsert::Interaction(row) => ("insert_interaction", Box::new(row.clone())),
            Upsert::InteractionByDay(row) => ("insert_interaction_by_day", Box::new(row.clone())),
            Upsert::InteractionDay(day) => ("insert_interaction_day", Box::new((*day,))),
            Upsert::Agent(row) => ("insert_agent", Box::new(row.clone())),
            Upsert::AgentSip(row) => ("insert_agent_sip", Box::new(row.clone())),
            Upsert::Group(row) => ("insert_group", Box::new(row.clone())),
            Upsert::Platform(row) => row.parts(),
        }
    }

    fn bind(&self, statements: &super::statements::Prepared) -> (PreparedStatement, BoundRow) {
        let (name, values) = self.parts();
        let statement = statements
            .get(name)
            .expect("every upsert names a prepared statement");
        (statement.clone(), values)
    }
}

/// Whether a lightweight transaction was applied (its `[applied]` column).
/// An answer that does not say leaves the outcome unknown.
pub(super) fn applied(result: QueryResult, context: &str) -> Result<bool, StoreError> {
    let unknown = |err: String| StoreError::OutcomeUnknown {
        reason: format!("scylla: {context}: {err}"),
    };
    let rows = result
        .into_rows_result()
        .map_err(|err| unknown(err.to_string()))?;
    let first: Option<Row> = rows
        .maybe_first_row()
        .map_err(|err| unknown(err.to_string()))?;
    match first.and_then(|row| row.columns.into_iter().next().flatten()) {
        Some(CqlValue::Boolean(applied)) => Ok(applied),
        other => Err(unknown(format!(
            "no [applied] column in the answer ({other:?})"
        ))),
    }
}

pub(super) async fn write(store: &ScyllaStore, batch: &[WriteOp]) -> Result<(), StoreError> {
    let plan = plan(batch)?;
    let claimed = claim_identities(store, &plan.claims).await;
    let claimed = match claimed {
        Ok(claimed) => claimed,
        Err((err, claimed)) => {
            release_identities(store, &claimed).await;
            return Err(err);
        }
    };
    let (mut messages, mut ticket_events) = join(
        append_messages(store, &plan.messages),
        platform::append_ticket_events(store, &plan.ticket_events),
    )
    .await;
    let mut failure = messages.failure.take();
    if let Some(err) = ticket_events.failure.take() {
        keep_worst(&mut failure, err);
    }
    // A failed batch takes back what it wrote, so that the answer "nothing
    // was written" is true; one that may be written (an unknown outcome)
    // keeps it, since part of it may be stored anyway.
    let written = match failure {
        Some(err) => Err(err),
        None => write_upserts(store, &plan.upserts).await,
    };
    if let Err(err) = written {
        if !matches!(err, StoreError::OutcomeUnknown { .. }) {
            join(
                remove_messages(store, &messages.appended),
                platform::remove_ticket_events(store, &ticket_events.appended),
            )
            .await;
            release_identities(store, &claimed).await;
        }
        return Err(err);
    }
    Ok(())
}

/// What the conditional appends of step 2 did: the rows they appended
/// (taken back if the batch fails) and the first failure.
#[derive(Debug)]
pub(super) struct Appended<'p, R> {
    pub appended: Vec<&'p R>,
    pub failure: Option<StoreError>,
}

impl<R> Default for Appended<'_, R> {
    fn default() -> Self {
        Appended {
            appended: Vec::new(),
            failure: None,
        }
    }
}

/// Step 1. On failure, returns the error and the claims this call made.
async fn claim_identities<'p>(
    store: &ScyllaStore,
    claims: &'p [IdentityRow],
) -> Result<Vec<&'p IdentityRow>, (StoreError, Vec<&'p IdentityRow>)> {
    let statement = &store.statements.claim_identity;
    let results = join_all(claims.iter().map(|row| async move {
        let outcome = store
            .session
            .execute_unpaged(statement, row)
            .await
            .map_err(write_error("claiming an identity", false))
            .and_then(|result| applied(result, "claiming an identity"));
        (row, outcome)
    }))
    .await;
    let mut claimed = Vec::new();
    let mut failure = None;
    for (row, outcome) in results {
        match outcome {
            Ok(true) => claimed.push(row),
            Ok(false) => {
                // Taken: by this customer already (an earlier write or a
                // retried claim) is fine; by anyone else fails the batch.
                let owner = read::identity_owner(
                    store,
                    &row.channel,
                    &row.external_id,
                    Some(store.options.serial_consistency),
                )
                .await;
                match owner {
                    Ok(Some(owner)) if owner.as_str() == row.customer_id => {}
                    Ok(Some(owner)) => {
                        failure.get_or_insert(identity_taken(row, owner));
                    }
                    Ok(None) => {
                        failure.get_or_insert(StoreError::Backend(format!(
                            "scylla: identity {}:{} was taken and released while claiming it; retry",
                            row.channel, row.external_id
                        )));
                    }
                    Err(err) => {
                        failure.get_or_insert(err);
                    }
                }
            }
            Err(err) => keep_worst(&mut failure, err),
        }
    }
    match failure {
        None => Ok(claimed),
        Some(err) => Err((err, claimed)),
    }
}

fn identity_taken(row: &IdentityRow, owner: CustomerId) -> StoreError {
    match Channel::parse(&row.channel) {
        Ok(channel) => StoreError::IdentityTaken {
            channel,
            external_id: row.external_id.clone(),
            owner,
        },
        Err(err) => StoreError::Backend(format!("scylla: {err}")),
    }
}

/// Gives back claims made by a batch that failed. Best effort: a claim that
/// cannot be released stays with the customer, who may use it later.
async fn release_identities(store: &ScyllaStore, claimed: &[&IdentityRow]) {
    let statement = &store.statements.release_identity;
    let releases = claimed.iter().map(|row| async move {
        let values = (&row.channel, &row.external_id, &row.customer_id);
        if let Err(err) = store.session.execute_unpaged(statement, values).await {
            tracing::warn!(channel = %row.channel, external_id = %row.external_id, error = %err,
                "scylla: could not release an identity claimed by a failed batch");
        }
    });
    join_all(releases).await;
}

/// Step 2 for messages: one conditional batch per session. Returns what
/// this call appended and the first failure.
async fn append_messages<'p>(
    store: &ScyllaStore,
    messages: &'p BTreeMap<SessionId, Vec<MessageRow>>,
) -> Appended<'p, MessageRow> {
    let results = join_all(
        messages
            .iter()
            .map(|(session, rows)| append_session_messages(store, *session, rows)),
    )
    .await;
    let mut outcome = Appended::default();
    for (result, rows) in results.into_iter().zip(messages.values()) {
        match result {
            Ok(()) => outcome.appended.extend(rows),
            Err(err) => keep_worst(&mut outcome.failure, err),
        }
    }
    outcome
}

async fn append_session_messages(
    store: &ScyllaStore,
    session: SessionId,
    messages: &[MessageRow],
) -> Result<(), StoreError> {
    let context = "appending messages";
    let mut batch = Batch::new(BatchType::Unlogged);
    for _ in messages {
        batch.append_statement(store.statements.append_message.clone());
    }
    batch.set_is_idempotent(false);
    let result = store
        .session
        .batch(&batch, messages)
        .await
        .map_err(write_error(context, false))?;
    if applied(result, context)? {
        return Ok(());
    }
    // Not applied: some seq is already stored. Rows identical to ours are an
    // earlier attempt of this very write (a retry); anything else is a duplicate.
    let low = messages.iter().map(|m| m.seq).min().unwrap_or(0);
    let high = messages.iter().map(|m| m.seq).max().unwrap_or(0);
    let statement = with_serial_read(
        &store.statements.select_message_range,
        Some(store.options.serial_consistency),
    );
    let stored: Vec<MessageRow> = rows(
        store,
        &statement,
        (rows_session_id(messages), low, high),
        "reading session_messages",
    )
    .await?;
    let all_ours = messages.iter().all(|ours| stored.contains(ours));
    if all_ours {
        return Ok(());
    }
    let duplicate = messages
        .iter()
        .find(|ours| stored.iter().any(|row| row.seq == ours.seq && row != *ours))
        .or_else(|| messages.first());
    Err(StoreError::DuplicateSeq {
        session,
        seq: duplicate.map_or(0, |row| u64::try_from(row.seq).unwrap_or(0)),
    })
}

fn rows_session_id(messages: &[MessageRow]) -> i64 {
    messages.first().map_or(0, |m| m.session_id)
}

/// Takes back messages appended by a batch that failed elsewhere.
async fn remove_messages(store: &ScyllaStore, appended: &[&MessageRow]) {
    let statement = &store.statements.remove_message;
    let removals = appended.iter().map(|row| async move {
        if let Err(err) = store
            .session
            .execute_unpaged(statement, (row.session_id, row.seq))
            .await
        {
            tracing::warn!(session_id = %session_id_from_i64(row.session_id), seq = row.seq, error = %err,
                "scylla: could not remove a message appended by a failed batch");
        }
    });
    join_all(removals).await;
}

/// Step 3: one logged batch (atomic across partitions), or a single
/// statement when there is one row.
async fn write_upserts(store: &ScyllaStore, upserts: &[Upsert]) -> Result<(), StoreError> {
    let context = "writing a batch";
    match upserts {
        [] => Ok(()),
        [single] => {
            let (statement, values) = single.bind(&store.statements);
            store
                .session
                .execute_unpaged(&statement, values)
                .await
                .map_err(write_error(context, true))?;
            Ok(())
        }
        many => {
            let mut batch = Batch::new(BatchType::Logged);
            let mut values = Vec::with_capacity(many.len());
            for upsert in many {
                let (statement, row) = upsert.bind(&store.statements);
                batch.append_statement(statement);
                values.push(row);
            }
            batch.set_is_idempotent(true);
            store
                .session
                .batch(&batch, values)
                .await
                .map_err(write_error(context, true))?;
            Ok(())
        }
    }
}

/// Deletes the interactions expired at `now`, found through the expiry
/// index, and returns how many.
pub(super) async fn purge_expired(store: &ScyllaStore, now: Millis) -> Result<u64, StoreError> {
    let statements = &store.statements;
    let cutoff = now.saturating_sub(INTERACTION_TTL_MS);
    let days: Vec<(i64,)> = all_rows(
        store,
        &statements.select_interaction_days,
        (rows::interaction_day(cutoff),),
        "reading interaction_days",
    )
    .await?;
    let mut purged = 0u64;
    for (day,) in days {
        let expired: Vec<InteractionByDayRow> = all_rows(
            store,
            &statements.select_interactions_by_day,
            (day, cutoff),
            "reading interactions_by_day",
        )
        .await?;
        for chunk in expired.chunks(64) {
            let deletes = chunk.iter().map(|row| {
                store.session.execute_unpaged(
                    &statements.delete_interaction,
                    (&row.customer_id, row.at, row.session_id),
                )
            });
            for result in join_all(deletes).await {
                result.map_err(backend_error("deleting customer_interactions"))?;
            }
        }
        purged += expired.len() as u64;
        store
            .session
            .execute_unpaged(&statements.delete_interactions_by_day, (day, cutoff))
            .await
            .map_err(backend_error("deleting interactions_by_day"))?;
        let day_over = (day + 1) * rows::DAY_MS - 1 <= cutoff;
        if day_over {
            store
                .session
                .execute_unpaged(&statements.delete_interaction_day, (day,))
                .await
                .map_err(backend_error("deleting interaction_days"))?;
        }
    }
    Ok(purged)
}
