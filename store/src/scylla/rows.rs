//! One struct per CQL table row, and the mapping between rows and domain
//! records both ways. Rows bind to `INSERT`s by column name and decode from
//! `SELECT`s by column name, so a statement's column order never matters.
//!
//! CQL reads an empty collection back as `null`, so collection columns are
//! `Option`s here and an absent one decodes as empty. A value that does not
//! decode becomes [`StoreError::Corrupt`] naming the table, the key and the column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use scylla::{DeserializeRow, SerializeRow};

use crate::{Interaction, StoreError, session_id_from_i64, session_id_to_i64};
use engine::Millis;
use engine::agent::{Agent, Capacity, Role};
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::message::{Sender, StoredMessage};
use engine::session::{Session, SessionState, SessionTimes};

/// `customers`: the profile; identities live in their own tables.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct CustomerRow {
    pub customer_id: String,
    pub display_name: String,
    pub tier: String,
    pub tags: Option<Vec<String>>,
    pub language: String,
    pub last_agent: Option<String>,
    pub created_at: i64,
}

/// `customer_identities` (claimed with a lightweight transaction) and
/// `identities_by_customer` (the reverse index) share this row.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct IdentityRow {
    pub channel: String,
    pub external_id: String,
    pub customer_id: String,
}

/// `sessions`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SessionRow {
    pub session_id: i64,
    pub customer_id: String,
    pub channel: String,
    pub state: String,
    pub group_id: Option<String>,
    pub agent_id: Option<String>,
    pub created_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub offered_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub wrap_up_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub last_seq: i64,
    pub transfers: i32,
    pub summary: Option<String>,
    pub rating: Option<i8>,
}

/// `session_reply_route`: where agents' replies go, JSON `ReplyRoute`, or
/// null when replies go only to the customer's sockets.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SessionRouteRow {
    pub session_id: i64,
    pub record: Option<String>,
}

/// `session_sla_group`: the group a contact counts in for its SLA figures
/// (`Session::sla_group`), or null (older sessions count in `group_id`).
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SessionSlaGroupRow {
    pub session_id: i64,
    pub group_id: Option<String>,
}

/// `session_steps`: the routing steps the session waited in, JSON
/// `Vec<RouteStep>`, or null for none.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SessionStepsRow {
    pub session_id: i64,
    pub record: Option<String>,
}

/// `sessions_by_queued_day`: sessions by the UTC day they first queued
/// ([`crate::scylla::platform::utc_day`]), what the reports read.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SessionByQueuedDayRow {
    pub day: i64,
    pub queued_at: i64,
    pub session_id: i64,
}

/// `sessions_by_customer`: a customer's sessions, newest first.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct SessionByCustomerRow {
    pub customer_id: String,
    pub created_at: i64,
    pub session_id: i64,
}

/// `open_sessions`: what a starting node re-activates, spread over buckets.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct OpenSessionRow {
    pub bucket: i32,
    pub session_id: i64,
}

/// `session_messages`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct MessageRow {
    pub session_id: i64,
    pub seq: i64,
    pub sender_kind: String,
    pub sender_agent: Option<String>,
    pub body: String,
    pub client_message_id: Option<String>,
    pub channel: String,
    pub at: i64,
}

/// `customer_interactions`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct InteractionRow {
    pub customer_id: String,
    pub at: i64,
    pub session_id: i64,
    pub channel: String,
    pub summary: String,
}

/// `interactions_by_day`: the expiry index `purge_expired` walks.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct InteractionByDayRow {
    pub day: i64,
    pub at: i64,
    pub customer_id: String,
    pub session_id: i64,
}

/// `agents`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct AgentRow {
    pub agent_id: String,
    pub display_name: String,
    pub role: String,
    pub skills: Option<BTreeMap<String, i32>>,
    pub groups: Option<Vec<String>>,
    pub languages: Option<Vec<String>>,
    pub capacity_limits: Option<BTreeMap<String, i32>>,
    pub capacity_exclusive: Option<BTreeSet<String>>,
}

/// `agent_sip`: an agent's SIP credentials as JSON, or null for none.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct AgentSipRow {
    pub agent_id: String,
    pub record: Option<String>,
}

/// `skill_groups`.
#[derive(Debug, Clone, PartialEq, SerializeRow, DeserializeRow)]
pub(super) struct GroupRow {
    pub group_id: String,
    pub display_name: String,
    pub sla_threshold_secs: i32,
    pub sla_threshold_by_channel: Option<BTreeMap<String, i32>>,
    pub sla_target_pct: f64,
    pub short_abandon_secs: i32,
}

/// How many `open_sessions` partitions there are: enough to spread a million
/// open sessions, few enough to read them all at start-up.
pub(super) const OPEN_SESSION_BUCKETS: i32 = 16;

/// One day in milliseconds: the partition width of `interactions_by_day`.
pub(super) const DAY_MS: Millis = 24 * 60 * 60 * 1000;

pub(super) fn open_session_bucket(id: SessionId) -> i32 {
    (id.0 % OPEN_SESSION_BUCKETS as u64) as i32
}

/// The `interactions_by_day` partition of an interaction recorded at `at`.
pub(super) fn interaction_day(at: Millis) -> i64 {
    at.div_euclid(DAY_MS)
}

/// [`StoreError::Corrupt`] naming the table, the key and the column.
pub(super) fn corrupt(
    table: &str,
    key: impl Display,
    column: &str,
    why: impl Display,
) -> StoreError {
    StoreError::Corrupt {
        what: format!("{table} ({key}), column {column}: {why}"),
    }
}

fn channel(
    table: &str,
    key: impl Display,
    column: &str,
    name: &str,
) -> Result<Channel, StoreError> {
    Channel::parse(name).map_err(|e| corrupt(table, key, column, e))
}

fn non_negative<T: TryFrom<i64>>(
    table: &str,
    key: impl Display,
    column: &str,
    value: i64,
) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| corrupt(table, key, column, format!("out of range: {value}")))
}

fn clamp_i32(value: impl Into<i64>) -> i32 {
    i32::try_from(value.into()).unwrap_or(i32::MAX)
}

pub(super) fn customer_to_row(customer: &Customer) -> CustomerRow {
    CustomerRow {
        customer_id: customer.id.as_str().to_owned(),
        display_name: customer.display_name.clone(),
        tier: customer.tier.clone(),
        tags: Some(customer.tags.clone()),
        language: customer.language.clone(),
        last_agent: customer.last_agent.as_ref().map(|a| a.as_str().to_owned()),
        created_at: customer.created_at,
    }
}

/// A customer from its row and its identity rows (sorted, as the contract says).
pub(super) fn customer_from_row(
    row: CustomerRow,
    identities: Vec<IdentityRow>,
) -> Result<Customer, StoreError> {
    let key = format!("customer_id={:?}", row.customer_id);
    let mut identities = identities
        .into_iter()
        .map(|identity| {
            Ok(Identity {
                channel: channel("identities_by_customer", &key, "channel", &identity.channel)?,
                external_id: identity.external_id,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    identities.sort();
    Ok(Customer {
        id: CustomerId::new(row.customer_id),
        display_name: row.display_name,
        tier: row.tier,
        tags: row.tags.unwrap_or_default(),
        language: row.language,
        identities,
        last_agent: row.last_agent.map(AgentId::new),
        created_at: row.created_at,
    })
}

pub(super) fn identity_to_row(customer: &CustomerId, identity: &Identity) -> IdentityRow {
    IdentityRow {
        channel: identity.channel.as_str().to_owned(),
        external_id: identity.external_id.clone(),
        customer_id: customer.as_str().to_owned(),
    }
}

pub(super) fn session_to_row(session: &Session) -> SessionRow {
    let times = &session.times;
    SessionRow {
        session_id: session_id_to_i64(session.id),
        customer_id: session.customer_id.as_str().to_owned(),
        channel: session.channel.as_str().to_owned(),
        state: session.state.as_str().to_owned(),
        group_id: session.group.as_ref().map(|g| g.as_str().to_owned()),
        agent_id: session.agent.as_ref().map(|a| a.as_str().to_owned()),
        created_at: times.created,
        queued_at: times.queued,
        offered_at: times.offered,
        answered_at: times.answered,
        first_response_at: times.first_response,
        wrap_up_at: times.wrap_up,
        closed_at: times.closed,
        last_seq: i64::try_from(session.last_seq).unwrap_or(i64::MAX),
        transfers: clamp_i32(session.transfers),
        summary: session.summary.clone(),
        rating: session.rating.map(|r| i8::try_from(r).unwrap_or(i8::MAX)),
    }
}

pub(super) fn session_route_to_row(session: &Session) -> SessionRouteRow {
    SessionRouteRow {
        session_id: session_id_to_i64(session.id),
        record: session
            .reply_route
            .as_ref()
            .map(|route| serde_json::to_string(route).expect("a route serializes")),
    }
}

pub(super) fn session_sla_group_to_row(session: &Session) -> SessionSlaGroupRow {
    SessionSlaGroupRow {
        session_id: session_id_to_i64(session.id),
        group_id: session.sla_group.as_ref().map(|g| g.as_str().to_owned()),
    }
}

pub(super) fn session_steps_to_row(session: &Session) -> SessionStepsRow {
    SessionStepsRow {
        session_id: session_id_to_i64(session.id),
        record: (!session.route.is_empty())
            .then(|| serde_json::to_string(&session.route).expect("steps serialize")),
    }
}

/// The `sessions_by_queued_day` row of a session that queued.
pub(super) fn session_by_queued_day_row(session: &Session) -> Option<SessionByQueuedDayRow> {
    let queued_at = session.times.queued?;
    Some(SessionByQueuedDayRow {
        day: super::platform::utc_day(queued_at),
        queued_at,
        session_id: session_id_to_i64(session.id),
    })
}

/// Puts the steps of `row` (a row of `session_steps`) on the session.
pub(super) fn add_session_steps(
    session: &mut Session,
    row: SessionStepsRow,
) -> Result<(), StoreError> {
    session.route = row
        .record
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                corrupt(
                    "session_steps",
                    format!("session_id={}", session.id),
                    "record",
                    e,
                )
            })
        })
        .transpose()?
        .unwrap_or_default();
    Ok(())
}

/// Puts the SLA group of `row` (a row of `session_sla_group`) on the session.
pub(super) fn add_session_sla_group(session: &mut Session, row: SessionSlaGroupRow) {
    session.sla_group = row.group_id.map(GroupId::new);
}

/// Puts the route of `row` (a row of `session_reply_route`) on the session.
pub(super) fn add_session_route(
    session: &mut Session,
    row: SessionRouteRow,
) -> Result<(), StoreError> {
    session.reply_route = row
        .record
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                corrupt(
                    "session_reply_route",
                    format!("session_id={}", session.id),
                    "record",
                    e,
                )
            })
        })
        .transpose()?;
    Ok(())
}

pub(super) fn session_from_row(row: SessionRow) -> Result<Session, StoreError> {
    let id = session_id_from_i64(row.session_id);
    let key = format!("session_id={id}");
    let table = "sessions";
    let state = SessionState::parse(&row.state).ok_or_else(|| {
        corrupt(
            table,
            &key,
            "state",
            format!("unknown state {:?}", row.state),
        )
    })?;
    let rating = row
        .rating
        .map(|r| non_negative::<u8>(table, &key, "rating", r.into()))
        .transpose()?;
    Ok(Session {
        id,
        customer_id: CustomerId::new(row.customer_id),
        channel: channel(table, &key, "channel", &row.channel)?,
        state,
        group: row.group_id.map(GroupId::new),
        // Read from `session_sla_group` (`add_session_sla_group`).
        sla_group: None,
        agent: row.agent_id.map(AgentId::new),
        times: SessionTimes {
            created: row.created_at,
            queued: row.queued_at,
            offered: row.offered_at,
            answered: row.answered_at,
            first_response: row.first_response_at,
            wrap_up: row.wrap_up_at,
            closed: row.closed_at,
        },
        last_seq: non_negative(table, &key, "last_seq", row.last_seq)?,
        transfers: non_negative(table, &key, "transfers", row.transfers.into())?,
        summary: row.summary,
        rating,
        // Read from `session_reply_route` (`add_session_route`).
        reply_route: None,
        // Read from `session_steps` (`add_session_steps`).
        route: Vec::new(),
    })
}

pub(super) fn session_by_customer_row(session: &Session) -> SessionByCustomerRow {
    SessionByCustomerRow {
        customer_id: session.customer_id.as_str().to_owned(),
        created_at: session.times.created.unwrap_or(0),
        session_id: session_id_to_i64(session.id),
    }
}

pub(super) fn open_session_row(id: SessionId) -> OpenSessionRow {
    OpenSessionRow {
        bucket: open_session_bucket(id),
        session_id: session_id_to_i64(id),
    }
}

pub(super) fn message_to_row(message: &StoredMessage) -> MessageRow {
    let (sender_kind, sender_agent) = match &message.sender {
        Sender::Customer => ("customer", None),
        Sender::Agent(agent) => ("agent", Some(agent.as_str().to_owned())),
        Sender::Supervisor(agent) => ("supervisor", Some(agent.as_str().to_owned())),
        Sender::System => ("system", None),
    };
    MessageRow {
        session_id: session_id_to_i64(message.session_id),
        seq: i64::try_from(message.seq).unwrap_or(i64::MAX),
        sender_kind: sender_kind.to_owned(),
        sender_agent,
        body: message.body.clone(),
        client_message_id: message.client_message_id.clone(),
        channel: message.channel.as_str().to_owned(),
        at: message.at,
    }
}

pub(super) fn message_from_row(row: MessageRow) -> Result<StoredMessage, StoreError> {
    let session_id = session_id_from_i64(row.session_id);
    let key = format!("session_id={session_id}, seq={}", row.seq);
    let table = "session_messages";
    let sender = match (row.sender_kind.as_str(), row.sender_agent) {
        ("customer", _) => Sender::Customer,
        ("system", _) => Sender::System,
        ("agent", Some(agent)) => Sender::Agent(AgentId::new(agent)),
        ("supervisor", Some(agent)) => Sender::Supervisor(AgentId::new(agent)),
        (kind, agent) => {
            return Err(corrupt(
                table,
                &key,
                "sender_kind",
                format!("{kind:?} with sender_agent {agent:?}"),
            ));
        }
    };
    Ok(StoredMessage {
        session_id,
        seq: non_negative(table, &key, "seq", row.seq)?,
        sender,
        body: row.body,
        client_message_id: row.client_message_id,
        channel: channel(table, &key, "channel", &row.channel)?,
        at: row.at,
    })
}

pub(super) fn interaction_to_row(interaction: &Interaction) -> InteractionRow {
    InteractionRow {
        customer_id: interaction.customer_id.as_str().to_owned(),
        at: interaction.at,
        session_id: session_id_to_i64(interaction.session_id),
        channel: interaction.channel.as_str().to_owned(),
        summary: interaction.summary.clone(),
    }
}

pub(super) fn interaction_by_day_row(interaction: &Interaction) -> InteractionByDayRow {
    InteractionByDayRow {
        day: interaction_day(interaction.at),
        at: interaction.at,
        customer_id: interaction.customer_id.as_str().to_owned(),
        session_id: session_id_to_i64(interaction.session_id),
    }
}

pub(super) fn interaction_from_row(row: InteractionRow) -> Result<Interaction, StoreError> {
    let session_id = session_id_from_i64(row.session_id);
    let key = format!(
        "customer_id={:?}, at={}, session_id={session_id}",
        row.customer_id, row.at
    );
    Ok(Interaction {
        channel: channel("customer_interactions", &key, "channel", &row.channel)?,
        customer_id: CustomerId::new(row.customer_id),
        at: row.at,
        session_id,
        summary: row.summary,
    })
}

pub(super) fn agent_to_row(agent: &Agent) -> AgentRow {
    AgentRow {
        agent_id: agent.id.as_str().to_owned(),
        display_name: agent.display_name.clone(),
        role: agent.role.as_str().to_owned(),
        skills: Some(
            agent
                .skills
                .iter()
                .map(|(skill, level)| (skill.clone(), i32::from(*level)))
                .collect(),
        ),
        groups: Some(agent.groups.iter().map(|g| g.as_str().to_owned()).collect()),
        languages: Some(agent.languages.clone()),
        capacity_limits: Some(
            agent
                .capacity
                .limits
                .iter()
                .map(|(channel, limit)| (channel.as_str().to_owned(), i32::from(*limit)))
                .collect(),
        ),
        capacity_exclusive: Some(
            agent
                .capacity
                .exclusive
                .iter()
                .map(|channel| channel.as_str().to_owned())
                .collect(),
        ),
    }
}

pub(super) fn agent_sip_to_row(agent: &Agent) -> Result<AgentSipRow, StoreError> {
    let record = agent
        .sip
        .as_ref()
        .map(|sip| {
            serde_json::to_string(sip).map_err(|e| {
                StoreError::Backend(format!("scylla: encoding agent sip credentials: {e}"))
            })
        })
        .transpose()?;
    Ok(AgentSipRow {
        agent_id: agent.id.as_str().to_owned(),
        record,
    })
}

/// Puts the credentials of `sip` (a row of `agent_sip`) on the agent.
pub(super) fn add_agent_sip(agent: &mut Agent, sip: AgentSipRow) -> Result<(), StoreError> {
    agent.sip = sip
        .record
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                corrupt(
                    "agent_sip",
                    format!("agent_id={:?}", sip.agent_id),
                    "record",
                    e,
                )
            })
        })
        .transpose()?;
    Ok(())
}

pub(super) fn agent_from_row(row: AgentRow) -> Result<Agent, StoreError> {
    let key = format!("agent_id={:?}", row.agent_id);
    let table = "agents";
    let role = Role::parse(&row.role)
        .ok_or_else(|| corrupt(table, &key, "role", format!("unknown role {:?}", row.role)))?;
    let skills = row
        .skills
        .unwrap_or_default()
        .into_iter()
        .map(|(skill, level)| {
            Ok((
                skill,
                non_negative::<u8>(table, &key, "skills", level.into())?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let limits = row
        .capacity_limits
        .unwrap_or_default()
        .into_iter()
        .map(|(name, limit)| {
            Ok((
                channel(table, &key, "capacity_limits", &name)?,
                non_negative::<u16>(table, &key, "capacity_limits", limit.into())?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    let exclusive = row
        .capacity_exclusive
        .unwrap_or_default()
        .iter()
        .map(|name| channel(table, &key, "capacity_exclusive", name))
        .collect::<Result<_, StoreError>>()?;
    Ok(Agent {
        id: AgentId::new(row.agent_id),
        display_name: row.display_name,
        role,
        skills,
        groups: row
            .groups
            .unwrap_or_default()
            .into_iter()
            .map(GroupId::new)
            .collect(),
        languages: row.languages.unwrap_or_default(),
        capacity: Capacity { limits, exclusive },
        // Read from `agent_sip` (`add_agent_sip`).
        sip: None,
    })
}

pub(super) fn group_to_row(group: &SkillGroup) -> GroupRow {
    GroupRow {
        group_id: group.id.as_str().to_owned(),
        display_name: group.display_name.clone(),
        sla_threshold_secs: clamp_i32(group.sla_threshold_secs),
        sla_threshold_by_channel: Some(
            group
                .sla_threshold_by_channel
                .iter()
                .map(|(channel, secs)| (channel.as_str().to_owned(), clamp_i32(*secs)))
                .collect(),
        ),
        sla_target_pct: group.sla_target_pct,
        short_abandon_secs: clamp_i32(group.short_abandon_secs),
    }
}

pub(super) fn group_from_row(row: GroupRow) -> Result<SkillGroup, StoreError> {
    let key = format!("group_id={:?}", row.group_id);
    let table = "skill_groups";
    let by_channel = row
        .sla_threshold_by_channel
        .unwrap_or_default()
        .into_iter()
        .map(|(name, secs)| {
            Ok((
                channel(table, &key, "sla_threshold_by_channel", &name)?,
                non_negative::<u32>(table, &key, "sla_threshold_by_channel", secs.into())?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(SkillGroup {
        sla_threshold_secs: non_negative(
            table,
            &key,
            "sla_threshold_secs",
            row.sla_threshold_secs.into(),
        )?,
        short_abandon_secs: non_negative(
            table,
            &key,
            "short_abandon_secs",
            row.short_abandon_secs.into(),
        )?,
        id: GroupId::new(row.group_id),
        display_name: row.display_name,
        sla_threshold_by_channel: by_channel,
        sla_target_pct: row.sla_target_pct,
    })
}
