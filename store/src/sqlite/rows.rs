//! Reading rows back into domain records. Every decode failure becomes
//! [`StoreError::Corrupt`] naming the table, the row's key and the column,
//! so one bad row is reported instead of panicking the reader.

use std::fmt::Display;

use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::de::DeserializeOwned;

use super::sqlite_error;
use crate::{Interaction, StoreError};
use engine::Millis;
use engine::agent::{Agent, Role};
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::message::{Sender, StoredMessage};
use engine::session::{Session, SessionState, SessionTimes};

/// A row being decoded, with what an error message needs to name it.
struct RowReader<'row, 'stmt> {
    row: &'row Row<'stmt>,
    table: &'static str,
    key: String,
}

impl<'row, 'stmt> RowReader<'row, 'stmt> {
    fn new(
        row: &'row Row<'stmt>,
        table: &'static str,
        key_column: &'static str,
    ) -> Result<Self, StoreError> {
        let key = match row.get_ref(key_column) {
            Ok(value) => format!("{key_column}={}", describe(value)),
            Err(e) => return Err(corrupt(table, "?", key_column, e)),
        };
        Ok(RowReader { row, table, key })
    }

    /// A reader for a row keyed by a session id, named as the id (not as stored).
    fn for_session(row: &'row Row<'stmt>, table: &'static str) -> Result<Self, StoreError> {
        let stored: i64 = row
            .get("session_id")
            .map_err(|e| corrupt(table, "?", "session_id", e))?;
        let key = format!("session_id={}", session_id_from_sql(stored));
        Ok(RowReader { row, table, key })
    }

    fn corrupt(&self, column: &str, why: impl Display) -> StoreError {
        corrupt(self.table, &self.key, column, why)
    }

    fn get<T: FromSql>(&self, column: &str) -> Result<T, StoreError> {
        self.row.get(column).map_err(|e| self.corrupt(column, e))
    }

    fn u64(&self, column: &str) -> Result<u64, StoreError> {
        let value: i64 = self.get(column)?;
        u64::try_from(value).map_err(|_| self.corrupt(column, format!("negative value {value}")))
    }

    fn u32(&self, column: &str) -> Result<u32, StoreError> {
        let value: i64 = self.get(column)?;
        u32::try_from(value).map_err(|_| self.corrupt(column, format!("out of range: {value}")))
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_str(&text).map_err(|e| self.corrupt(column, e))
    }

    /// A JSON column that may be NULL.
    fn optional_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self.get(column)?;
        text.map(|text| serde_json::from_str(&text).map_err(|e| self.corrupt(column, e)))
            .transpose()
    }

    fn channel(&self, column: &str) -> Result<Channel, StoreError> {
        let name: String = self.get(column)?;
        Channel::parse(&name).map_err(|e| self.corrupt(column, e))
    }

    fn session_id(&self, column: &str) -> Result<SessionId, StoreError> {
        let bits: i64 = self.get(column)?;
        Ok(session_id_from_sql(bits))
    }
}

/// A `sessions` row read by column position ([`SESSION_COLUMN_NAMES`]
/// order), naming its id only when something is wrong: the reports read a
/// day of sessions at a time, where looking columns up by name and
/// formatting every key cost more than the query.
struct SessionRow<'row, 'stmt> {
    row: &'row Row<'stmt>,
}

impl SessionRow<'_, '_> {
    fn corrupt(&self, idx: usize, why: impl Display) -> StoreError {
        let key = match self.row.get::<_, i64>(0) {
            Ok(stored) => format!("session_id={}", session_id_from_sql(stored)),
            Err(_) => "?".to_owned(),
        };
        corrupt("sessions", &key, SESSION_COLUMN_NAMES[idx], why)
    }

    fn get<T: FromSql>(&self, idx: usize) -> Result<T, StoreError> {
        debug_assert_eq!(
            self.row.as_ref().column_name(idx).ok(),
            Some(SESSION_COLUMN_NAMES[idx])
        );
        self.row.get(idx).map_err(|e| self.corrupt(idx, e))
    }

    fn int<T: TryFrom<i64>>(&self, idx: usize) -> Result<T, StoreError> {
        let value: i64 = self.get(idx)?;
        T::try_from(value).map_err(|_| self.corrupt(idx, format!("out of range: {value}")))
    }

    fn optional_json<T: DeserializeOwned>(&self, idx: usize) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self.get(idx)?;
        text.map(|text| serde_json::from_str(&text).map_err(|e| self.corrupt(idx, e)))
            .transpose()
    }
}

fn corrupt(table: &str, key: &str, column: &str, why: impl Display) -> StoreError {
    StoreError::Corrupt {
        what: format!("{table} ({key}), column {column}: {why}"),
    }
}

fn describe(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("<{} byte blob>", b.len()),
    }
}

pub(super) use crate::{
    session_id_from_i64 as session_id_from_sql, session_id_to_i64 as session_id_to_sql,
};

/// A `limit` as SQLite wants it.
pub(super) fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn role_name(role: Role) -> &'static str {
    role.as_str()
}

fn parse_role(name: &str) -> Option<Role> {
    Role::parse(name)
}

pub(super) fn get_customer(
    conn: &Connection,
    id: &CustomerId,
) -> Result<Option<Customer>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT customer_id, display_name, tier, tags, language, last_agent, created_at
             FROM customers WHERE customer_id = ?1",
        )
        .map_err(sqlite_error("reading customers"))?;
    let mut rows = stmt
        .query([id.as_str()])
        .map_err(sqlite_error("reading customers"))?;
    let Some(row) = rows.next().map_err(sqlite_error("reading customers"))? else {
        return Ok(None);
    };
    let r = RowReader::new(row, "customers", "customer_id")?;
    let mut customer = Customer {
        id: id.clone(),
        display_name: r.get("display_name")?,
        tier: r.get("tier")?,
        tags: r.json("tags")?,
        language: r.get("language")?,
        identities: Vec::new(),
        last_agent: r.get::<Option<String>>("last_agent")?.map(AgentId::new),
        created_at: r.get("created_at")?,
    };
    drop(rows);

    let mut stmt = conn
        .prepare_cached(
            "SELECT channel, external_id FROM customer_identities WHERE customer_id = ?1",
        )
        .map_err(sqlite_error("reading customer_identities"))?;
    let mut rows = stmt
        .query([id.as_str()])
        .map_err(sqlite_error("reading customer_identities"))?;
    while let Some(row) = rows
        .next()
        .map_err(sqlite_error("reading customer_identities"))?
    {
        let r = RowReader::new(row, "customer_identities", "external_id")?;
        customer.identities.push(Identity {
            channel: r.channel("channel")?,
            external_id: r.get("external_id")?,
        });
    }
    customer.identities.sort();
    Ok(Some(customer))
}

pub(super) fn find_customer_by_identity(
    conn: &Connection,
    channel: &Channel,
    external_id: &str,
) -> Result<Option<CustomerId>, StoreError> {
    identity_owner(conn, channel, external_id)
}

/// The owner of an identity; shared with the writer, which checks links.
pub(super) fn identity_owner(
    conn: &Connection,
    channel: &Channel,
    external_id: &str,
) -> Result<Option<CustomerId>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT customer_id FROM customer_identities WHERE channel = ?1 AND external_id = ?2",
        )
        .map_err(sqlite_error("reading customer_identities"))?;
    let owner: Option<String> = stmt
        .query_row(params![channel.as_str(), external_id], |row| row.get(0))
        .optional()
        .map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..) => corrupt(
                "customer_identities",
                &format!("channel={channel}, external_id={external_id:?}"),
                "customer_id",
                e,
            ),
            e => sqlite_error("reading customer_identities")(e),
        })?;
    Ok(owner.map(CustomerId::new))
}

/// The columns of `sessions` a record is read from, in this order.
const SESSION_COLUMN_NAMES: [&str; 20] = [
    "session_id",
    "customer_id",
    "channel",
    "state",
    "group_id",
    "agent_id",
    "created_at",
    "queued_at",
    "offered_at",
    "answered_at",
    "first_response_at",
    "wrap_up_at",
    "closed_at",
    "last_seq",
    "transfers",
    "summary",
    "rating",
    "reply_route",
    "sla_group",
    "route",
];

/// [`SESSION_COLUMN_NAMES`] as a `SELECT` list.
const SESSION_COLUMNS: &str = "session_id, customer_id, channel, state, group_id, agent_id,
    created_at, queued_at, offered_at, answered_at, first_response_at, wrap_up_at, closed_at,
    last_seq, transfers, summary, rating, reply_route, sla_group, route";

fn decode_session(row: &Row<'_>) -> Result<Session, StoreError> {
    let r = SessionRow { row };
    let text = |idx| r.get::<String>(idx);
    let time = |idx| r.get::<Option<Millis>>(idx);
    let state_name = text(3)?;
    let state = SessionState::parse(&state_name)
        .ok_or_else(|| r.corrupt(3, format!("unknown state {state_name:?}")))?;
    Ok(Session {
        id: session_id_from_sql(r.get(0)?),
        customer_id: CustomerId::new(text(1)?),
        channel: Channel::parse(&text(2)?).map_err(|e| r.corrupt(2, e))?,
        state,
        group: r.get::<Option<String>>(4)?.map(GroupId::new),
        agent: r.get::<Option<String>>(5)?.map(AgentId::new),
        times: SessionTimes {
            created: time(6)?,
            queued: time(7)?,
            offered: time(8)?,
            answered: time(9)?,
            first_response: time(10)?,
            wrap_up: time(11)?,
            closed: time(12)?,
        },
        last_seq: r.int(13)?,
        transfers: r.int(14)?,
        summary: r.get(15)?,
        rating: r.get(16)?,
        reply_route: r.optional_json(17)?,
        sla_group: r.get::<Option<String>>(18)?.map(GroupId::new),
        route: r.optional_json(19)?.unwrap_or_default(),
    })
}

/// Runs a query and decodes every row with `decode`.
fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    table: &str,
    decode: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let context = format!("reading {table}");
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error(&context))?;
    let mut rows = stmt.query(params).map_err(sqlite_error(&context))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error(&context))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

pub(super) fn get_session(conn: &Connection, id: SessionId) -> Result<Option<Session>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1");
    let mut sessions = collect(
        conn,
        &sql,
        [session_id_to_sql(id)],
        "sessions",
        decode_session,
    )?;
    Ok(sessions.pop())
}

pub(super) fn sessions_of_customer(
    conn: &Connection,
    id: &CustomerId,
    limit: usize,
) -> Result<Vec<Session>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE customer_id = ?1
         ORDER BY created_at DESC, session_id DESC LIMIT ?2"
    );
    collect(
        conn,
        &sql,
        params![id.as_str(), limit_to_sql(limit)],
        "sessions",
        decode_session,
    )
}

pub(super) fn sessions_queued(
    conn: &Connection,
    from: Millis,
    to: Millis,
    after: Option<(Millis, SessionId)>,
    limit: usize,
) -> Result<Vec<Session>, StoreError> {
    // Row values compare lexicographically: the page resumes just after
    // `after` in (queued_at, session_id) order, which the index gives.
    // Strictly after this key; without `after`, after everything before `from`.
    let (after_at, after_id) =
        after.map_or((from - 1, i64::MAX), |(at, id)| (at, session_id_to_sql(id)));
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE queued_at >= ?1 AND queued_at < ?2 AND (queued_at, session_id) > (?3, ?4)
         ORDER BY queued_at, session_id LIMIT ?5"
    );
    collect(
        conn,
        &sql,
        params![from, to, after_at, after_id, limit_to_sql(limit)],
        "sessions",
        decode_session,
    )
}

pub(super) fn open_sessions(conn: &Connection) -> Result<Vec<Session>, StoreError> {
    let sql =
        format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE is_open = 1 ORDER BY session_id");
    collect(conn, &sql, [], "sessions", decode_session)
}

pub(super) fn messages(
    conn: &Connection,
    session: SessionId,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    // Stored seqs are at most i64::MAX (the writer checks), so clamping is exact.
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    collect(
        conn,
        "SELECT session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at
         FROM session_messages WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        params![session_id_to_sql(session), after, limit_to_sql(limit)],
        "session_messages",
        |row| {
            let mut r = RowReader::for_session(row, "session_messages")?;
            r.key = format!("{}, seq={}", r.key, describe_column(row, "seq"));
            let kind: String = r.get("sender_kind")?;
            let sender = match (kind.as_str(), r.get::<Option<String>>("sender_agent")?) {
                ("customer", _) => Sender::Customer,
                ("system", _) => Sender::System,
                ("agent", Some(agent)) => Sender::Agent(AgentId::new(agent)),
                ("supervisor", Some(agent)) => Sender::Supervisor(AgentId::new(agent)),
                (kind, agent) => {
                    return Err(r.corrupt(
                        "sender_kind",
                        format!("bad sender {kind:?} with agent {agent:?}"),
                    ));
                }
            };
            Ok(StoredMessage {
                session_id: r.session_id("session_id")?,
                seq: r.u64("seq")?,
                sender,
                body: r.get("body")?,
                client_message_id: r.get("client_message_id")?,
                channel: r.channel("channel")?,
                at: r.get("at")?,
            })
        },
    )
}

fn describe_column(row: &Row<'_>, column: &str) -> String {
    row.get_ref(column)
        .map(describe)
        .unwrap_or_else(|_| "?".to_owned())
}

pub(super) fn interactions(
    conn: &Connection,
    customer: &CustomerId,
    now: Millis,
    limit: usize,
) -> Result<Vec<Interaction>, StoreError> {
    collect(
        conn,
        "SELECT customer_id, at, session_id, channel, summary FROM customer_interactions
         WHERE customer_id = ?1 AND expires_at > ?2
         ORDER BY at DESC, session_id DESC LIMIT ?3",
        params![customer.as_str(), now, limit_to_sql(limit)],
        "customer_interactions",
        |row| {
            let mut r = RowReader::new(row, "customer_interactions", "customer_id")?;
            r.key = format!("{}, at={}", r.key, describe_column(row, "at"));
            Ok(Interaction {
                customer_id: CustomerId::new(r.get::<String>("customer_id")?),
                at: r.get("at")?,
                session_id: r.session_id("session_id")?,
                channel: r.channel("channel")?,
                summary: r.get("summary")?,
            })
        },
    )
}

const AGENT_COLUMNS: &str =
    "agent_id, display_name, role, skills, groups, languages, capacity, sip";

fn decode_agent(row: &Row<'_>) -> Result<Agent, StoreError> {
    let r = RowReader::new(row, "agents", "agent_id")?;
    let role_name: String = r.get("role")?;
    let role = parse_role(&role_name)
        .ok_or_else(|| r.corrupt("role", format!("unknown role {role_name:?}")))?;
    Ok(Agent {
        id: AgentId::new(r.get::<String>("agent_id")?),
        display_name: r.get("display_name")?,
        role,
        skills: r.json("skills")?,
        groups: r.json("groups")?,
        languages: r.json("languages")?,
        capacity: r.json("capacity")?,
        sip: r.optional_json("sip")?,
    })
}

pub(super) fn list_agents(conn: &Connection) -> Result<Vec<Agent>, StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY agent_id");
    collect(conn, &sql, [], "agents", decode_agent)
}

pub(super) fn get_agent(conn: &Connection, id: &AgentId) -> Result<Option<Agent>, StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ?1");
    Ok(collect(conn, &sql, [id.as_str()], "agents", decode_agent)?.pop())
}

pub(super) fn list_groups(conn: &Connection) -> Result<Vec<SkillGroup>, StoreError> {
    collect(
        conn,
        "SELECT group_id, display_name, sla_threshold_secs, sla_threshold_by_channel,
                sla_target_pct, short_abandon_secs
         FROM skill_groups ORDER BY group_id",
        [],
        "skill_groups",
        |row| {
            let r = RowReader::new(row, "skill_groups", "group_id")?;
            Ok(SkillGroup {
                id: GroupId::new(r.get::<String>("group_id")?),
                display_name: r.get("display_name")?,
                sla_threshold_secs: r.u32("sla_threshold_secs")?,
                sla_threshold_by_channel: r.json("sla_threshold_by_channel")?,
                sla_target_pct: r.get("sla_target_pct")?,
                short_abandon_secs: r.u32("short_abandon_secs")?,
            })
        },
    )
}
