//! Sessions and their history.
//!
//! What `GET /api/v1/sessions` lists, newest first:
//! - a customer: their own sessions, open or not;
//! - an agent: open sessions offered or assigned to them;
//! - a supervisor: open sessions of their groups, and those offered or assigned to them;
//! - an admin: every open session.
//!
//! With `?customer=<id>` (staff), the customer's sessions, open or not, that
//! the caller may read. The same rules as
//! [`crate::access::Caller::check_session_read`], applied to many sessions
//! with one profile read.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::ids::{CustomerId, SessionId};
use engine::session::Session;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access::Caller;
use crate::auth::Role;
use crate::error::{ErrorBody, HttpError, invalid_field, store_error};
use crate::extract::ApiQuery;
use crate::rest::types::{QueuePlace, SessionDetail, SessionList};
use crate::state::AppState;
use crate::wire::event::{Viewer, event_frame};
use crate::wire::records::SessionRecord;

/// Sessions listed when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// The most sessions one request lists.
pub const MAX_LIMIT: usize = 1000;
/// The most of one customer's sessions read to find those a staff member may see.
const MAX_CUSTOMER_SCAN: usize = 10_000;

/// `GET /api/v1/sessions` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    /// Staff: only this customer's sessions (open or not). Customers may
    /// give only their own id.
    pub customer: Option<String>,
    /// 1-1000; default 100.
    pub limit: Option<usize>,
}

/// The sessions the caller may read, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(SessionsQuery),
    responses(
        (status = 200, description = "Sessions, newest first", body = SessionList),
        (status = 400, description = "Bad `limit` (`invalid`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "A customer asked for another customer's sessions", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SessionsQuery>,
) -> Result<Json<SessionList>, HttpError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid_field("limit", format!("must be 1 to {MAX_LIMIT}")));
    }
    let store = state.switchboard.store();
    if let Some(me) = caller.customer_id() {
        if query
            .customer
            .as_deref()
            .is_some_and(|asked| asked != me.as_str())
        {
            return Err(HttpError::forbidden(
                "customers see only their own sessions",
            ));
        }
        let sessions = store
            .sessions_of_customer(&me, limit + 1)
            .await
            .map_err(store_error)?;
        return Ok(Json(page(sessions, limit, Viewer::Customer)));
    }
    let profile = crate::rest::require_staff(&caller, &state).await?;
    let candidates = match &query.customer {
        Some(customer) => store
            .sessions_of_customer(&CustomerId::new(customer), MAX_CUSTOMER_SCAN)
            .await
            .map_err(store_error)?,
        None => {
            let mut open = store.open_sessions().await.map_err(store_error)?;
            // Ids grow with creation time: newest first, as for one customer.
            open.sort_unstable_by_key(|session| std::cmp::Reverse(session.id));
            open
        }
    };
    let visible = candidates
        .into_iter()
        .filter(|session| caller.may_read(profile.as_ref(), session))
        .take(limit + 1)
        .collect();
    Ok(Json(page(visible, limit, Viewer::Staff)))
}

/// One session with its messages and state changes, in `seq` order, and
/// its place in line while it waits. Customers do not see offers (they are
/// between the engine and agents).
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id (decimal string)")),
    responses(
        (status = 200, description = "The session and its events", body = SessionDetail),
        (status = 400, description = "The id is not a decimal number", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Staff: not offered or assigned to the caller, nor in a group they supervise (`not_your_session`)", body = ErrorBody),
        (status = 404, description = "No such session, or (customers) not theirs (`unknown_session`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, HttpError> {
    let id = parse_session_id(&id)?;
    let session = state.switchboard.session(id).await?;
    caller.check_session_read(&state, &session).await?;
    let queue = match session.state.is_waiting() {
        true => state.switchboard.queue_status(id).await?,
        false => None,
    };
    let events = state.switchboard.history(id, 0).await?;
    let viewer = match caller.role() {
        Role::Customer => Viewer::Customer,
        Role::Agent | Role::Supervisor | Role::Admin => Viewer::Staff,
    };
    // Listening is silent: agents do not see who monitored (supervisors
    // and admins do).
    let hides_monitoring = caller.role() == Role::Agent;
    let events = events
        .iter()
        .filter(|event| {
            !(hides_monitoring && matches!(event.kind, actors::EventKind::Monitored { .. }))
        })
        .filter_map(|event| event_frame(event, viewer))
        .collect();
    Ok(Json(SessionDetail {
        session: SessionRecord::new(&session, viewer),
        queue: queue.as_ref().map(|status| QueuePlace::new(status, viewer)),
        events,
    }))
}

/// A session id from the path: a decimal `u64`.
pub(crate) fn parse_session_id(text: &str) -> Result<SessionId, HttpError> {
    text.parse::<u64>().map(SessionId).map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("invalid session id `{text}`: must be a decimal number"),
        )
    })
}

/// At most `limit` of `sessions`, saying whether there were more.
fn page(mut sessions: Vec<Session>, limit: usize, viewer: Viewer) -> SessionList {
    let truncated = sessions.len() > limit;
    sessions.truncate(limit);
    SessionList {
        sessions: sessions
            .iter()
            .map(|session| SessionRecord::new(session, viewer))
            .collect(),
        truncated,
    }
}
