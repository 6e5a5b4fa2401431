//! Skill groups and their live queues.

use axum::Json;
use axum::extract::{Path, State};
use engine::EngineError;
use engine::ids::GroupId;

use crate::access::Caller;
use crate::error::{ErrorBody, HttpError, store_error};
use crate::rest::require_staff;
use crate::rest::types::{GroupDetail, GroupList, GroupProfile, QueueRecord};
use crate::state::AppState;

/// Every skill group, by id.
#[utoipa::path(
    get,
    path = "/api/v1/groups",
    tag = "groups",
    responses(
        (status = 200, description = "Every group", body = GroupList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Customers may not list groups", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<GroupList>, HttpError> {
    require_staff(&caller, &state).await?;
    let groups = state
        .switchboard
        .store()
        .list_groups()
        .await
        .map_err(store_error)?;
    Ok(Json(GroupList {
        groups: groups.iter().map(GroupProfile::from).collect(),
    }))
}

/// One group's profile and its queue now. Members of the group (agents and
/// supervisors) and admins.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "Group id, as routing rules name it")),
    responses(
        (status = 200, description = "The group and its queue", body = GroupDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a member of the group", body = ErrorBody),
        (status = 404, description = "No such group (`unknown_group`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GroupDetail>, HttpError> {
    let id = GroupId::new(id);
    caller.check_group_read(&state, &id).await?;
    let groups = state
        .switchboard
        .store()
        .list_groups()
        .await
        .map_err(store_error)?;
    let group = groups.iter().find(|group| group.id == id).ok_or_else(|| {
        HttpError::from(actors::ApiError::from(EngineError::UnknownGroup(
            id.to_string(),
        )))
    })?;
    let view = state.switchboard.group_view(&id).await?;
    Ok(Json(GroupDetail {
        group: GroupProfile::from(group),
        queue: QueueRecord::from(&view),
    }))
}
