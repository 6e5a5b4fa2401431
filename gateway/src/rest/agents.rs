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
use crate::error::{ErrorBody, HttpError, store_error};
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
    let agent = state
        .switchboard
        .store()
        .get_agent(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            HttpError::from(actors::ApiError::from(EngineError::UnknownAgent(
                id.to_string(),
            )))
        })?;
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
    Ok(Json(AgentDetail::new(&agent, &view)))
}
