//! Tickets: opened by a customer for themself or by an agent from a
//! session; read and changed under the rules of [`crate::access::customers`].
//! Every change is pushed at once (`ticket` frames) to the customer's
//! sockets and to every agent watching the ticket.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId, TicketId};
use engine::message::Sender;
use engine::ticket::{NewTicket, Priority, TicketStatus, TicketUpdate};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::access::Caller;
use crate::access::customers::{check_customer, check_ticket};
use crate::auth::Role;
use crate::error::{ErrorBody, HttpError, invalid_field, store_error};
use crate::extract::{ApiJson, ApiQuery};
use crate::rest::require_staff;
use crate::state::AppState;
use crate::wire::platform::{TicketDetail, TicketEventRecord, TicketRecord};

/// Tickets listed when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;
/// The most tickets one request lists.
const MAX_LIMIT: usize = 500;

/// `POST /api/v1/tickets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketBody {
    /// Staff: the session it comes from (its customer is the ticket's, and it
    /// is linked). Customers leave it out or name one of their own.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Supervisors and admins without a session: whose ticket it is.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// One line, 1-200 characters.
    pub subject: String,
    /// Up to 10,000 characters.
    #[serde(default)]
    pub description: String,
    /// `low`, `normal` (default), `high`, `urgent`; staff only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Priority>,
    /// Staff only.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Staff only.
    #[serde(default)]
    pub group: Option<String>,
    /// Labels; staff only.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PATCH /api/v1/tickets/{id}`: every field given changes. Customers may
/// only comment, close, or reopen a solved ticket.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    /// New subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// `open`, `pending`, `solved` or `closed`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Option<TicketStatus>,
    /// `low`, `normal`, `high` or `urgent`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Priority>,
    /// New assignee; `""` unassigns.
    #[serde(default)]
    pub assignee: Option<String>,
    /// New group; `""` clears it.
    #[serde(default)]
    pub group: Option<String>,
    /// The full new tag list.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Links one more session (decimal id).
    #[serde(default)]
    pub link_session: Option<String>,
    /// Adds a comment to the history.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `GET /api/v1/tickets` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketsQuery {
    /// Staff: whose tickets (required). Customers: their own, the default.
    pub customer: Option<String>,
    /// 1-500; default 50.
    pub limit: Option<usize>,
}

fn author(caller: &Caller) -> Sender {
    match caller.role() {
        Role::Customer => Sender::Customer,
        Role::Agent | Role::Supervisor | Role::Admin => {
            Sender::Agent(AgentId::new(caller.claims.sub.as_str()))
        }
    }
}

fn session_id(field: &str, text: &str) -> Result<SessionId, HttpError> {
    text.parse::<u64>()
        .map(SessionId)
        .map_err(|_| invalid_field(field, format!("`{text}` is not a decimal session id")))
}

fn optional(text: Option<String>) -> Option<Option<String>> {
    text.map(|text| Some(text).filter(|t| !t.is_empty()))
}

/// Opens a ticket.
#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    request_body = NewTicketBody,
    responses(
        (status = 201, description = "Opened", body = TicketRecord),
        (status = 400, description = "A field is invalid (`invalid`, `details.field` names it)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not the caller's session or customer (`not_your_customer`), or a customer setting a staff field", body = ErrorBody),
        (status = 404, description = "No such session (`unknown_session`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTicketBody>,
) -> Result<(StatusCode, Json<TicketRecord>), HttpError> {
    let platform = &state.platform;
    let session = match &body.session_id {
        Some(text) => {
            let id = session_id("session_id", text)?;
            let session = platform.store.get_session(id).await.map_err(store_error)?;
            let session = session.ok_or_else(|| {
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_session",
                    format!("unknown session `{text}`"),
                )
            })?;
            caller.check_session_read(&state, &session).await?;
            Some(session)
        }
        None => None,
    };
    let customer = match (caller.customer_id(), &session, &body.customer_id) {
        (Some(me), _, _) => {
            let staff_field = [
                ("priority", body.priority.is_some()),
                ("assignee", body.assignee.is_some()),
                ("group", body.group.is_some()),
                ("tags", !body.tags.is_empty()),
                (
                    "customer_id",
                    body.customer_id
                        .as_deref()
                        .is_some_and(|c| c != me.as_str()),
                ),
            ]
            .into_iter()
            .find(|(_, set)| *set);
            if let Some((field, _)) = staff_field {
                return Err(HttpError::forbidden(format!(
                    "customers may not set `{field}`"
                )));
            }
            me
        }
        (None, Some(session), _) => session.customer_id.clone(),
        (None, None, Some(customer)) => {
            require_staff(&caller, &state).await?;
            let customer = CustomerId::new(customer);
            check_customer(&caller, &state, &customer).await?;
            customer
        }
        (None, None, None) => {
            return Err(invalid_field(
                "session_id",
                "staff open a ticket from a session (`session_id`) or for a customer (`customer_id`)",
            ));
        }
    };
    if platform
        .store
        .get_customer(&customer)
        .await
        .map_err(store_error)?
        .is_none()
    {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_customer",
            format!("unknown customer `{customer}`"),
        ));
    }
    let new = NewTicket {
        subject: body.subject,
        description: body.description,
        priority: body.priority,
        assignee: body.assignee.filter(|a| !a.is_empty()).map(AgentId::new),
        group: body.group.filter(|g| !g.is_empty()).map(GroupId::new),
        tags: body.tags,
        session: session.map(|s| s.id),
    };
    let ticket = platform.open_ticket(customer, new, author(&caller)).await?;
    // Desktop usage (docs/reports.md): an agent or supervisor opened it.
    if let Ok(Some(profile)) = caller.agent_profile(&state).await {
        let action = engine::sla::report::UsageAction::TicketCreated;
        state
            .switchboard
            .note_usage(&profile.id, action, profile.role);
    }
    Ok((StatusCode::CREATED, Json(TicketRecord::from(&ticket))))
}

/// A customer's tickets, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    params(TicketsQuery),
    responses(
        (status = 200, description = "Tickets, newest first", body = Vec<TicketRecord>),
        (status = 400, description = "Bad `limit`, or staff without `customer` (`invalid`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a customer the caller serves (`not_your_customer`)", body = ErrorBody),
        (status = 404, description = "A customer asked for another customer's tickets (`unknown_customer`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TicketsQuery>,
) -> Result<Json<Vec<TicketRecord>>, HttpError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid_field("limit", format!("must be 1 to {MAX_LIMIT}")));
    }
    let customer = match (query.customer, caller.customer_id()) {
        (Some(customer), _) => CustomerId::new(customer),
        (None, Some(me)) => me,
        (None, None) => {
            return Err(invalid_field(
                "customer",
                "staff name the customer whose tickets to list",
            ));
        }
    };
    check_customer(&caller, &state, &customer).await?;
    let tickets = state
        .platform
        .store
        .tickets_of_customer(&customer, limit)
        .await
        .map_err(store_error)?;
    Ok(Json(tickets.iter().map(TicketRecord::from).collect()))
}

/// A ticket and its history.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket and every change, in order", body = TicketDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Staff without access (`not_your_ticket`)", body = ErrorBody),
        (status = 404, description = "No such ticket, or another customer's (`unknown_ticket`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TicketDetail>, HttpError> {
    let id = TicketId::new(id);
    let ticket = state.platform.load_ticket(&id).await?;
    check_ticket(&caller, &state, &ticket).await?;
    let events = state
        .platform
        .store
        .ticket_events(&id, 0, actors::platform::tickets::MAX_EVENTS)
        .await
        .map_err(store_error)?;
    Ok(Json(TicketDetail {
        ticket: TicketRecord::from(&ticket),
        events: events.iter().map(TicketEventRecord::from).collect(),
    }))
}

/// Changes a ticket; the change is pushed to the customer and to watching agents.
#[utoipa::path(
    patch,
    path = "/api/v1/tickets/{id}",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id")),
    request_body = TicketPatch,
    responses(
        (status = 200, description = "The ticket after the change, and the new history entries", body = TicketDetail),
        (status = 400, description = "A field is invalid, a customer set a staff field, or the ticket is closed (`invalid`, `details.field`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Staff without access (`not_your_ticket`)", body = ErrorBody),
        (status = 404, description = "No such ticket, or another customer's (`unknown_ticket`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn update_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<TicketPatch>,
) -> Result<Json<TicketDetail>, HttpError> {
    let update = TicketUpdate {
        subject: patch.subject,
        description: patch.description,
        status: patch.status,
        priority: patch.priority,
        assignee: optional(patch.assignee).map(|a| a.map(AgentId::new)),
        group: optional(patch.group).map(|g| g.map(GroupId::new)),
        tags: patch.tags,
        link_session: patch
            .link_session
            .as_deref()
            .map(|s| session_id("link_session", s))
            .transpose()?,
        comment: patch.comment,
    };
    let is_customer = caller.role() == Role::Customer;
    let check_update = update.clone();
    let (ticket, events) = state
        .platform
        .update_ticket(
            &TicketId::new(id),
            update,
            author(&caller),
            async |ticket| {
                check_ticket(&caller, &state, ticket).await?;
                if is_customer {
                    check_update
                        .check_customer_may(ticket)
                        .map_err(crate::error::engine_invalid)?;
                }
                Ok::<(), HttpError>(())
            },
        )
        .await?;
    Ok(Json(TicketDetail {
        ticket: TicketRecord::from(&ticket),
        events: events.iter().map(TicketEventRecord::from).collect(),
    }))
}
