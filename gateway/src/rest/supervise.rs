//! Supervisor control of the live system, each action with its reason in
//! the audit log (docs/supervisor.md):
//!
//! | method and path | what | who |
//! |---|---|---|
//! | `POST /api/v1/sessions/{id}/reassign` | a waiting session to another group or agent | supervisors of its group (and of the target group), admins |
//! | `POST /api/v1/sessions/{id}/priority` | a waiting session's priority | supervisors of its group, admins |
//! | `PUT /api/v1/agents/{id}/presence` | force an agent available, away or offline | supervisors of one of the agent's groups, admins |
//! | `GET /api/v1/audit` | the audit log, newest first | admins |
//!
//! Agents and customers get `403`. A session action is also a `steered`
//! event in the session's history (staff only); a forced presence is pushed
//! to the agent's desktops as a `presence_forced` frame.

use axum::Json;
use axum::extract::{Path, State};
use engine::ids::{AgentId, GroupId};
use engine::supervision::{AuditAction, AuditEntry, ForcedPresence, Steer};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::error::{ErrorBody, HttpError};
use crate::extract::{ApiJson, ApiQuery};
use crate::rest::sessions::parse_session_id;
use crate::rest::types::PresenceRecord;
use crate::state::AppState;
use crate::wire::{Time, WireSession};

/// Where a waiting session goes: a group, an agent, or an agent in a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    /// The group it waits in next. Without it, an `agent`'s group: the
    /// session's own if the agent is a member, else the agent's first
    /// group the caller supervises.
    #[serde(default)]
    pub group: Option<String>,
    /// The one agent it is offered to (a member of `group`).
    #[serde(default)]
    pub agent: Option<String>,
    /// Why (required, at most 500 characters); recorded in the audit log.
    pub reason: String,
}

/// A waiting session's new priority.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reprioritise {
    /// Higher is served first; sessions of equal priority by first queue time.
    pub priority: i32,
    /// Why (required, at most 500 characters).
    pub reason: String,
}

/// An agent's presence as a supervisor sets it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForcePresence {
    /// `available`, `away` or `offline` (refused while the agent holds sessions).
    #[schema(value_type = String, example = "away")]
    pub presence: ForcedPresence,
    /// Why (required, at most 500 characters); the agent's desktop shows it.
    pub reason: String,
}

/// A steered session: the `seq` of its `steered` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Steered {
    /// The session.
    pub session: WireSession,
    /// The `steered` event's place in the session.
    pub seq: u64,
}

/// A forced presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceForced {
    /// The agent's presence now.
    pub presence: PresenceRecord,
    /// The audit entry.
    pub audit: AuditRecord,
}

/// One audited action.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    /// Unique (a decimal string).
    #[schema(value_type = String)]
    pub id: String,
    /// When it took effect.
    pub at: Time,
    /// `supervisor:<agent id>` or `admin:<name>`.
    pub by: String,
    /// `set_presence`, `reassign`, `reprioritise` or `monitor`.
    pub action: String,
    /// `set_presence`: the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `set_presence`: `available`, `away` or `offline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<String>,
    /// Session actions: the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<WireSession>,
    /// Session actions: the group it waited in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_group: Option<String>,
    /// `reassign`: the group it waits in now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_group: Option<String>,
    /// `reassign`: the one agent it is offered to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_agent: Option<String>,
    /// `reprioritise`: the priority before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_priority: Option<i32>,
    /// `reprioritise`: the priority now; `reassign`: the priority kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `monitor`: `listen`, `whisper`, `barge`, or `stop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Why.
    pub reason: String,
}

impl From<&AuditEntry> for AuditRecord {
    fn from(entry: &AuditEntry) -> AuditRecord {
        let mut record = AuditRecord {
            id: entry.id.to_string(),
            at: Time(entry.at),
            by: entry.by.to_string(),
            action: String::new(),
            agent: None,
            presence: None,
            session: None,
            from_group: None,
            to_group: None,
            to_agent: None,
            from_priority: None,
            priority: None,
            mode: None,
            reason: entry.reason.clone(),
        };
        match &entry.action {
            AuditAction::SetPresence { agent, presence } => {
                record.action = "set_presence".into();
                record.agent = Some(agent.to_string());
                record.presence = Some(presence.as_str().into());
            }
            AuditAction::SteerSession {
                session,
                group,
                steer,
            } => {
                record.session = Some(WireSession(*session));
                record.from_group = group.as_ref().map(ToString::to_string);
                match steer {
                    Steer::Reassigned {
                        group,
                        agent,
                        priority,
                    } => {
                        record.action = "reassign".into();
                        record.to_group = Some(group.to_string());
                        record.to_agent = agent.as_ref().map(ToString::to_string);
                        record.priority = Some(*priority);
                    }
                    Steer::Reprioritised { from, to } => {
                        record.action = "reprioritise".into();
                        record.from_priority = Some(*from);
                        record.priority = Some(*to);
                    }
                }
            }
            AuditAction::Monitor { session, mode } => {
                record.action = "monitor".into();
                record.session = Some(WireSession(*session));
                record.mode = Some(mode.map_or("stop", |mode| mode.as_str()).into());
            }
        }
        record
    }
}

/// The audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditRecord>,
}

/// The audit log's window: at most [`MAX_AUDIT_WINDOW_MS`] (31 days).
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// From this time (ms since the Unix epoch, inclusive); default 7 days before `until`.
    pub since: Option<i64>,
    /// Up to this time (exclusive); default now. At most a day ahead.
    pub until: Option<i64>,
    /// At most this many entries (1–1000, default 100).
    pub limit: Option<usize>,
}

/// Most entries one audit request returns.
const MAX_AUDIT_LIMIT: usize = 1000;
/// The audit window without `since`.
const DEFAULT_AUDIT_WINDOW_MS: i64 = 7 * DAY_MS;
/// The longest window one request reads (a ScyllaDB read per day in it).
pub const MAX_AUDIT_WINDOW_MS: i64 = 31 * DAY_MS;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Takes a waiting session out of its queue and queues it in another group,
/// or offers it to one agent only; it keeps its place in line.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/reassign",
    tag = "supervision",
    params(("id" = String, Path, description = "Session id (decimal)")),
    request_body = Reassign,
    responses(
        (status = 200, description = "Queued where asked; a `steered` event is in its history", body = Steered),
        (status = 400, description = "No `group` nor `agent`, no reason, or the agent is not a member of the group (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor of the session's group or of the target group, nor an admin", body = ErrorBody),
        (status = 404, description = "No such session, group or agent", body = ErrorBody),
        (status = 409, description = "The session is not waiting (`invalid_state`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn reassign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<Reassign>,
) -> Result<Json<Steered>, HttpError> {
    let id = parse_session_id(&id)?;
    let overseer = caller.overseer(&state).await?;
    let session = state.switchboard.session(id).await?;
    let from = waiting_group(&session)?.clone();
    overseer.check_group(&from)?;
    let agent = match &request.agent {
        Some(agent) => Some(super::agents::stored_agent(&state, &AgentId::new(agent)).await?),
        None => None,
    };
    let group = match (&request.group, &agent) {
        (Some(group), _) => GroupId::new(group),
        (None, Some(agent)) if agent.groups.contains(&from) => from.clone(),
        (None, Some(agent)) => agent
            .groups
            .iter()
            .find(|group| overseer.oversees(group))
            .cloned()
            .ok_or_else(|| {
                HttpError::forbidden(format!(
                    "agent `{}` is in none of the groups you supervise",
                    agent.id
                ))
            })?,
        (None, None) => {
            return Err(crate::error::invalid_field(
                "group",
                "name a `group`, an `agent`, or both",
            ));
        }
    };
    overseer.check_group(&group)?;
    let steer = actors::SteerRequest::Reassign {
        group,
        agent: agent.map(|agent| agent.id),
    };
    let ack = state
        .switchboard
        .steer_session(overseer.actor, id, from, steer, &request.reason)
        .await?;
    Ok(Json(Steered {
        session: WireSession(id),
        seq: ack.seq,
    }))
}

/// Gives a waiting session another priority in the queue it waits in.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/priority",
    tag = "supervision",
    params(("id" = String, Path, description = "Session id (decimal)")),
    request_body = Reprioritise,
    responses(
        (status = 200, description = "Re-ordered in its queue; a `steered` event is in its history", body = Steered),
        (status = 400, description = "No reason (`invalid`, `details.field` is `reason`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor of the session's group, nor an admin", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "The session is not waiting (`invalid_state`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn reprioritise(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<Reprioritise>,
) -> Result<Json<Steered>, HttpError> {
    let id = parse_session_id(&id)?;
    let overseer = caller.overseer(&state).await?;
    let session = state.switchboard.session(id).await?;
    let group = waiting_group(&session)?.clone();
    overseer.check_group(&group)?;
    let steer = actors::SteerRequest::Priority {
        priority: request.priority,
    };
    let ack = state
        .switchboard
        .steer_session(overseer.actor, id, group, steer, &request.reason)
        .await?;
    Ok(Json(Steered {
        session: WireSession(id),
        seq: ack.seq,
    }))
}

/// Sets an agent's presence: a stuck agent forced away, or logged out.
/// The agent's desktops are told, with the reason.
#[utoipa::path(
    put,
    path = "/api/v1/agents/{id}/presence",
    tag = "supervision",
    params(("id" = String, Path, description = "Agent id (login name)")),
    request_body = ForcePresence,
    responses(
        (status = 200, description = "The agent's presence now, and the audit entry", body = PresenceForced),
        (status = 400, description = "An unknown presence or no reason (`invalid`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor of one of the agent's groups, nor an admin", body = ErrorBody),
        (status = 404, description = "No such agent (`unknown_agent`)", body = ErrorBody),
        (status = 409, description = "Offline refused: the agent holds sessions (`invalid_state`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn force_presence(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ForcePresence>,
) -> Result<Json<PresenceForced>, HttpError> {
    let overseer = caller.overseer(&state).await?;
    let agent = super::agents::stored_agent(&state, &AgentId::new(id)).await?;
    overseer.check_agent(&agent)?;
    let (presence, entry) = state
        .switchboard
        .force_presence(overseer.actor, &agent.id, request.presence, &request.reason)
        .await?;
    tracing::info!(agent_id = %agent.id, by = %entry.by, presence = request.presence.as_str(), "presence set by a supervisor");
    state.platform.notify(
        &actors::Audience::Agent(agent.id.clone()),
        &actors::Notice::PresenceForced {
            presence: presence.clone(),
            by: entry.by.clone(),
            reason: entry.reason.clone(),
        },
    );
    Ok(Json(PresenceForced {
        presence: PresenceRecord::from(&presence),
        audit: AuditRecord::from(&entry),
    }))
}

/// The audit log of supervisor actions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "supervision",
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries in the window, newest first", body = AuditLog),
        (status = 400, description = "A bad window (more than 31 days, `until` more than a day ahead) or limit (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditLog>, HttpError> {
    caller.require_admin()?;
    let now = engine::now_millis();
    let until = query.until.unwrap_or(now + 1);
    if !(0..=now + DAY_MS).contains(&until) {
        return Err(crate::error::invalid_field(
            "until",
            format!("{until}: between 0 and a day from now"),
        ));
    }
    let since = query
        .since
        .unwrap_or_else(|| until.saturating_sub(DEFAULT_AUDIT_WINDOW_MS).max(0));
    if since < 0 {
        return Err(crate::error::invalid_field(
            "since",
            format!("{since}: a time in ms since the Unix epoch, not negative"),
        ));
    }
    if since > until {
        return Err(crate::error::invalid_field(
            "since",
            format!("{since} is after `until` ({until})"),
        ));
    }
    if until - since > MAX_AUDIT_WINDOW_MS {
        return Err(crate::error::invalid_field(
            "since",
            format!(
                "the window is at most 31 days; `since` may be {} at the earliest",
                until - MAX_AUDIT_WINDOW_MS
            ),
        ));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(crate::error::invalid_field(
            "limit",
            format!("{limit}: between 1 and {MAX_AUDIT_LIMIT}"),
        ));
    }
    let entries = state.switchboard.audit_log(since, until, limit).await?;
    Ok(Json(AuditLog {
        entries: entries.iter().map(AuditRecord::from).collect(),
    }))
}

/// The group a session waits in, or `409` when it is not waiting.
fn waiting_group(session: &engine::session::Session) -> Result<&GroupId, HttpError> {
    match (session.state.is_waiting(), session.group.as_ref()) {
        (true, Some(group)) => Ok(group),
        _ => Err(HttpError::new(
            axum::http::StatusCode::CONFLICT,
            "invalid_state",
            format!(
                "session {} is {}: only a waiting session can be reassigned or re-prioritised",
                session.id,
                session.state.as_str()
            ),
        )),
    }
}
