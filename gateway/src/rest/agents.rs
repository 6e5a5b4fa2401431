//! Agent profiles and live presence.
//!
//! Every staff member may list the profiles (an agent needs them to transfer
//! a session to a colleague); the live state of one agent is for the agent
//! themself, supervisors of a group the agent belongs to, and admins.

use axum::Json;
use axum::extract::{Path, State};
use engine::EngineError;
use engine::ids::AgentId;

use crate::access::Caller;
use crate::auth::Role;
use crate::error::{ErrorBody, HttpError, invalid_field, store_error};
use crate::extract::ApiJson;
use crate::rest::require_staff;
use crate::rest::types::{AgentDetail, AgentList, AgentProfile};
use crate::state::AppState;

/// Every agent's profile, by id.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    responses(
        (status = 200, description = "Every agent", body = AgentList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Customers may not list agents", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<AgentList>, HttpError> {
    require_staff(&caller, &state).await?;
    let agents = state
        .switchboard
        .store()
        .list_agents()
        .await
        .map_err(store_error)?;
    Ok(Json(AgentList {
        agents: agents.iter().map(AgentProfile::from).collect(),
    }))
}

/// One agent's profile, presence and sessions.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "agents",
    params(("id" = String, Path, description = "Agent id (login name)")),
    responses(
        (status = 200, description = "The agent now", body = AgentDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not the caller, nor an agent of a group the caller supervises", body = ErrorBody),
        (status = 404, description = "No such agent (`unknown_agent`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentDetail>, HttpError> {
    let id = AgentId::new(id);
    let caller_profile = require_staff(&caller, &state).await?;
    let is_self = caller.agent_id().as_ref() == Some(&id);
    if caller.role() == Role::Agent && !is_self {
        return Err(HttpError::forbidden("agents may read only their own state"));
    }
    let agent = stored_agent(&state, &id).await?;
    if caller.role() == Role::Supervisor && !is_self {
        let supervised = caller_profile
            .as_ref()
            .is_some_and(|me| agent.groups.iter().any(|group| me.groups.contains(group)));
        if !supervised {
            return Err(HttpError::forbidden(format!(
                "agent `{id}` is in none of the groups you supervise"
            )));
        }
    }
    let view = state.switchboard.agent_view(&id).await?;
    let phone = state
        .phones
        .as_ref()
        .map(|phones| phones.is_registered(id.as_str()));
    Ok(Json(AgentDetail::new(&agent, &view, phone)))
}

/// A new SIP phone password for an agent.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SipPassword {
    /// At least 8 characters; stored only as digest hashes for `voice.realm`.
    pub password: String,
}

/// Sets an agent's SIP phone password (admins): the agent's phone registers
/// as `sip:<agent id>@…` with it (docs/voice.md). Only its digest hashes
/// (MD5 and SHA-256, for `voice.realm`) are stored.
#[utoipa::path(
    put,
    path = "/api/v1/agents/{id}/sip-password",
    tag = "agents",
    params(("id" = String, Path, description = "Agent id (login name)")),
    request_body = SipPassword,
    responses(
        (status = 204, description = "Set; the phone registers with it from now on"),
        (status = 400, description = "The password is too short or has control characters (`invalid`, `details.field` is `password`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such agent (`unknown_agent`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_sip_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<SipPassword>,
) -> Result<axum::http::StatusCode, HttpError> {
    caller.require_admin()?;
    crate::import::check_sip_password(&request.password)
        .map_err(|reason| invalid_field("password", reason))?;
    let id = AgentId::new(id);
    let mut agent = stored_agent(&state, &id).await?;
    let realm = &state.config.voice.realm;
    agent.sip = Some(voice::sip::credentials(
        id.as_str(),
        realm,
        &request.password,
    ));
    state
        .switchboard
        .write(vec![store::WriteOp::PutAgent(agent)])
        .await
        .map_err(|err| HttpError::from(actors::ApiError::from(err)))?;
    tracing::info!(agent_id = %id, by = %caller.claims.sub, "SIP password set");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The agent's stored profile, or 404 `unknown_agent`.
pub(crate) async fn stored_agent(
    state: &AppState,
    id: &AgentId,
) -> Result<engine::agent::Agent, HttpError> {
    state
        .switchboard
        .store()
        .get_agent(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            HttpError::from(actors::ApiError::from(EngineError::UnknownAgent(
                id.to_string(),
            )))
        })
}
