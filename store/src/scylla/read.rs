//! The read side: one prepared statement per query, decoded through `rows.rs`.

use futures_util::TryStreamExt;
use futures_util::future::try_join_all;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;

use super::platform::utc_day;
use super::rows::{
    self, AgentRow, AgentSipRow, CustomerRow, GroupRow, IdentityRow, InteractionRow, MessageRow,
    OPEN_SESSION_BUCKETS, SessionByQueuedDayRow, SessionRouteRow, SessionRow, SessionSlaGroupRow,
    SessionStepsRow,
};
use super::{ScyllaStore, SerialConsistency, backend_error};
use crate::{INTERACTION_TTL_MS, Interaction, StoreError, session_id_from_i64, session_id_to_i64};
use engine::Millis;
use engine::agent::Agent;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::message::StoredMessage;
use engine::session::Session;

/// Sessions fetched at once when a query yields many ids.
const FETCH_CONCURRENCY: usize = 64;

/// A `LIMIT` bind value. CQL refuses `LIMIT 0` ("LIMIT must be strictly
/// positive"), so a read asked for at most 0 rows answers without a query.
pub(super) fn limit_to_cql(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

/// Every row of one page-less query (a single partition with a `LIMIT`, or a key).
pub(super) async fn rows<R>(
    store: &ScyllaStore,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    context: &str,
) -> Result<Vec<R>, StoreError>
where
    R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
{
    let result = store
        .session
        .execute_unpaged(statement, values)
        .await
        .map_err(backend_error(context))?
        .into_rows_result()
        .map_err(backend_error(context))?;
    result
        .rows::<R>()
        .map_err(backend_error(context))?
        .collect::<Result<Vec<R>, _>>()
        .map_err(|err| StoreError::Corrupt {
            what: format!("{context}: {err}"),
        })
}

/// Every row of a query that may span pages.
pub(super) async fn all_rows<R>(
    store: &ScyllaStore,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    context: &str,
) -> Result<Vec<R>, StoreError>
where
    R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata> + 'static,
{
    store
        .session
        .execute_iter(statement.clone(), values)
        .await
        .map_err(backend_error(context))?
        .rows_stream::<R>()
        .map_err(backend_error(context))?
        .try_collect()
        .await
        .map_err(backend_error(context))
}

pub(super) async fn get_customer(
    store: &ScyllaStore,
    id: &CustomerId,
) -> Result<Option<Customer>, StoreError> {
    let statements = &store.statements;
    let found: Vec<CustomerRow> = rows(
        store,
        &statements.select_customer,
        (id.as_str(),),
        "reading customers",
    )
    .await?;
    let Some(row) = found.into_iter().next() else {
        return Ok(None);
    };
    let identities: Vec<IdentityRow> = all_rows(
        store,
        &statements.select_identities_of_customer,
        (id.as_str(),),
        "reading identities_by_customer",
    )
    .await?;
    rows::customer_from_row(row, identities).map(Some)
}

/// Who owns an identity; `serial` reads the outcome of claims in flight
/// (a Paxos read), for the writer's conflict checks.
pub(super) async fn identity_owner(
    store: &ScyllaStore,
    channel: &str,
    external_id: &str,
    serial: Option<SerialConsistency>,
) -> Result<Option<CustomerId>, StoreError> {
    let statement = with_serial_read(&store.statements.select_identity_owner, serial);
    let found: Vec<(String,)> = rows(
        store,
        &statement,
        (channel, external_id),
        "reading customer_identities",
    )
    .await?;
    Ok(found.into_iter().next().map(|(id,)| CustomerId::new(id)))
}

/// `statement` reading at the serial level, when asked.
pub(super) fn with_serial_read(
    statement: &PreparedStatement,
    serial: Option<SerialConsistency>,
) -> PreparedStatement {
    let mut statement = statement.clone();
    if let Some(serial) = serial {
        statement.set_consistency(match serial {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        });
    }
    statement
}

pub(super) async fn get_session(
    store: &ScyllaStore,
    id: SessionId,
) -> Result<Option<Session>, StoreError> {
    let found: Vec<SessionRow> = rows(
        store,
        &store.statements.select_session,
        (session_id_to_i64(id),),
        "reading sessions",
    )
    .await?;
    let Some(row) = found.into_iter().next() else {
        return Ok(None);
    };
    let mut session = rows::session_from_row(row)?;
    // The records beside the sessions row, read side by side.
    let key = (session_id_to_i64(id),);
    let (routes, sla_groups, steps) = futures_util::try_join!(
        rows::<SessionRouteRow>(
            store,
            &store.statements.select_session_reply_route,
            key,
            "reading session_reply_route",
        ),
        rows::<SessionSlaGroupRow>(
            store,
            &store.statements.select_session_sla_group,
            key,
            "reading session_sla_group",
        ),
        rows::<SessionStepsRow>(
            store,
            &store.statements.select_session_steps,
            key,
            "reading session_steps",
        ),
    )?;
    if let Some(route) = routes.into_iter().next() {
        rows::add_session_route(&mut session, route)?;
    }
    if let Some(sla_group) = sla_groups.into_iter().next() {
        rows::add_session_sla_group(&mut session, sla_group);
    }
    if let Some(steps) = steps.into_iter().next() {
        rows::add_session_steps(&mut session, steps)?;
    }
    Ok(Some(session))
}

/// Day by day from `from`'s UTC day: each day's index rows after `after`,
/// then the sessions they name, until `limit` are found.
pub(super) async fn sessions_queued(
    store: &ScyllaStore,
    from: Millis,
    to: Millis,
    after: Option<(Millis, SessionId)>,
    limit: usize,
) -> Result<Vec<Session>, StoreError> {
    let mut found = Vec::new();
    if from >= to || limit == 0 {
        return Ok(found);
    }
    // Strictly after this key; without `after`, after everything before `from`.
    let (mut after_at, mut after_id) = match after {
        Some((at, id)) if at >= from => (at, session_id_to_i64(id)),
        _ => (from - 1, i64::MAX),
    };
    let mut day = utc_day(after_at.max(from));
    while day <= utc_day(to - 1) && found.len() < limit {
        let wanted = limit_to_cql(limit - found.len());
        let page: Vec<SessionByQueuedDayRow> = rows(
            store,
            &store.statements.select_sessions_by_queued_day,
            (day, after_at, after_id, to, i64::MIN, wanted),
            "reading sessions_by_queued_day",
        )
        .await?;
        let ids: Vec<i64> = page.iter().map(|row| row.session_id).collect();
        found.extend(get_sessions(store, ids).await?);
        if page.len() < usize::try_from(wanted).unwrap_or(usize::MAX) {
            day += 1;
            after_at = i64::MIN;
            after_id = i64::MIN;
        } else if let Some(last) = page.last() {
            after_at = last.queued_at;
            after_id = last.session_id;
        }
    }
    Ok(found)
}

/// The sessions with these ids that exist, in the order given.
async fn get_sessions(store: &ScyllaStore, ids: Vec<i64>) -> Result<Vec<Session>, StoreError> {
    let mut sessions = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(FETCH_CONCURRENCY) {
        let fetched = try_join_all(
            chunk
                .iter()
                .map(|id| get_session(store, session_id_from_i64(*id))),
        )
        .await?;
        sessions.extend(fetched.into_iter().flatten());
    }
    Ok(sessions)
}

pub(super) async fn sessions_of_customer(
    store: &ScyllaStore,
    id: &CustomerId,
    limit: usize,
) -> Result<Vec<Session>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let found: Vec<(i64,)> = rows(
        store,
        &store.statements.select_sessions_of_customer,
        (id.as_str(), limit_to_cql(limit)),
        "reading sessions_by_customer",
    )
    .await?;
    let mut ids: Vec<i64> = Vec::with_capacity(found.len());
    for (session_id,) in found {
        if !ids.contains(&session_id) {
            ids.push(session_id);
        }
    }
    get_sessions(store, ids).await
}

pub(super) async fn open_sessions(store: &ScyllaStore) -> Result<Vec<Session>, StoreError> {
    let buckets = try_join_all((0..OPEN_SESSION_BUCKETS).map(|bucket| {
        all_rows::<(i64,)>(
            store,
            &store.statements.select_open_sessions,
            (bucket,),
            "reading open_sessions",
        )
    }))
    .await?;
    let ids = buckets.into_iter().flatten().map(|(id,)| id).collect();
    let mut sessions: Vec<Session> = get_sessions(store, ids)
        .await?
        .into_iter()
        .filter(|session| !session.state.is_final())
        .collect();
    sessions.sort_by_key(|session| session.id);
    Ok(sessions)
}

pub(super) async fn messages(
    store: &ScyllaStore,
    session: SessionId,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let found: Vec<MessageRow> = all_rows(
        store,
        &store.statements.select_messages,
        (session_id_to_i64(session), after, limit_to_cql(limit)),
        "reading session_messages",
    )
    .await?;
    found.into_iter().map(rows::message_from_row).collect()
}

pub(super) async fn interactions(
    store: &ScyllaStore,
    customer: &CustomerId,
    now: Millis,
    limit: usize,
) -> Result<Vec<Interaction>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Not expired at `now`: recorded after `now - TTL`, as the contract says;
    // ScyllaDB's own TTL (from the write) removes the row later still.
    let cutoff = now.saturating_sub(INTERACTION_TTL_MS);
    let found: Vec<InteractionRow> = rows(
        store,
        &store.statements.select_interactions,
        (customer.as_str(), cutoff, limit_to_cql(limit)),
        "reading customer_interactions",
    )
    .await?;
    found.into_iter().map(rows::interaction_from_row).collect()
}

pub(super) async fn list_agents(store: &ScyllaStore) -> Result<Vec<Agent>, StoreError> {
    let found: Vec<AgentRow> =
        all_rows(store, &store.statements.select_agents, (), "reading agents").await?;
    let mut agents = found
        .into_iter()
        .map(rows::agent_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let sips: Vec<AgentSipRow> = all_rows(
        store,
        &store.statements.select_agent_sips,
        (),
        "reading agent_sip",
    )
    .await?;
    let mut sips: std::collections::HashMap<String, AgentSipRow> = sips
        .into_iter()
        .map(|row| (row.agent_id.clone(), row))
        .collect();
    for agent in &mut agents {
        if let Some(sip) = sips.remove(agent.id.as_str()) {
            rows::add_agent_sip(agent, sip)?;
        }
    }
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(agents)
}

pub(super) async fn get_agent(
    store: &ScyllaStore,
    id: &AgentId,
) -> Result<Option<Agent>, StoreError> {
    let found: Vec<AgentRow> = rows(
        store,
        &store.statements.select_agent,
        (id.as_str(),),
        "reading agents",
    )
    .await?;
    let Some(mut agent) = found
        .into_iter()
        .next()
        .map(rows::agent_from_row)
        .transpose()?
    else {
        return Ok(None);
    };
    let sip: Vec<AgentSipRow> = rows(
        store,
        &store.statements.select_agent_sip,
        (id.as_str(),),
        "reading agent_sip",
    )
    .await?;
    if let Some(sip) = sip.into_iter().next() {
        rows::add_agent_sip(&mut agent, sip)?;
    }
    Ok(Some(agent))
}

pub(super) async fn list_groups(store: &ScyllaStore) -> Result<Vec<SkillGroup>, StoreError> {
    let found: Vec<GroupRow> = all_rows(
        store,
        &store.statements.select_groups,
        (),
        "reading skill_groups",
    )
    .await?;
    let mut groups = found
        .into_iter()
        .map(rows::group_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(groups)
}
