//! Who may see a customer (profile with identities, 360° view) and their
//! tickets; the same rules as for sessions (`crate::access`):
//!
//! - a customer sees only their own (another customer's answers `404`, as
//!   for an id that does not exist);
//! - an agent sees a customer while a session of theirs is offered or
//!   assigned to them (or in wrap-up), and the tickets assigned to them;
//! - a supervisor also sees customers with a recent session in one of their
//!   groups, and the tickets of their groups;
//! - an admin sees everything.

use axum::http::StatusCode;
use engine::ids::CustomerId;
use engine::session::SessionState;
use engine::ticket::Ticket;

use crate::access::Caller;
use crate::auth::Role;
use crate::error::{HttpError, store_error};
use crate::state::AppState;

/// Sessions of a customer looked at for an agent's or supervisor's right to see them.
const RECENT_SESSIONS: usize = 20;

fn unknown_customer(customer: &CustomerId) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "unknown_customer",
        format!("unknown customer `{customer}`"),
    )
}

fn unknown_ticket(ticket: &Ticket) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "unknown_ticket",
        format!("unknown ticket `{}`", ticket.id),
    )
}

/// May `caller` see `customer`'s profile, 360° view and tickets?
pub async fn check_customer(
    caller: &Caller,
    state: &AppState,
    customer: &CustomerId,
) -> Result<(), HttpError> {
    let agent = match caller.role() {
        Role::Admin => return Ok(()),
        Role::Customer if caller.customer_id().as_ref() == Some(customer) => return Ok(()),
        Role::Customer => return Err(unknown_customer(customer)),
        Role::Agent | Role::Supervisor => caller.agent_id(),
    };
    let profile = caller.agent_profile(state).await?;
    let sessions = state
        .platform
        .store
        .sessions_of_customer(customer, RECENT_SESSIONS)
        .await
        .map_err(store_error)?;
    let serving = sessions.iter().any(|session| {
        session.agent.is_some()
            && session.agent == agent
            && matches!(
                session.state,
                SessionState::Offered | SessionState::Assigned | SessionState::WrapUp
            )
    });
    let supervised = caller.role() == Role::Supervisor
        && sessions.iter().any(|session| {
            matches!((&profile, &session.group), (Some(p), Some(g)) if p.groups.contains(g))
        });
    match serving || supervised {
        true => Ok(()),
        false => Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "not_your_customer",
            format!(
                "customer `{customer}` has no session offered or assigned to you{}",
                match caller.role() {
                    Role::Supervisor => ", nor a recent one in a group you supervise",
                    _ => "",
                }
            ),
        )),
    }
}

/// May `caller` see (and, staff, change) `ticket`?
pub async fn check_ticket(
    caller: &Caller,
    state: &AppState,
    ticket: &Ticket,
) -> Result<(), HttpError> {
    match caller.role() {
        Role::Admin => return Ok(()),
        Role::Customer if caller.customer_id().as_ref() == Some(&ticket.customer_id) => {
            return Ok(());
        }
        Role::Customer => return Err(unknown_ticket(ticket)),
        Role::Agent | Role::Supervisor => {}
    }
    if ticket.assignee.is_some() && ticket.assignee == caller.agent_id() {
        return Ok(());
    }
    if caller.role() == Role::Supervisor {
        let profile = caller.agent_profile(state).await?;
        if matches!((&profile, &ticket.group), (Some(p), Some(g)) if p.groups.contains(g)) {
            return Ok(());
        }
    }
    check_customer(caller, state, &ticket.customer_id)
        .await
        .map_err(|err| match err.body.code {
            "not_your_customer" => HttpError::new(
                StatusCode::FORBIDDEN,
                "not_your_ticket",
                format!(
                    "ticket {} is not assigned to you and its customer has no session offered or assigned to you",
                    ticket.id
                ),
            ),
            _ => err,
        })
}
