//! The customer 360° view, assembled from the cached profile and history and
//! the store's sessions, tickets and summaries.

use engine::ids::CustomerId;
use store::StoreError;

use super::Platform;
use super::wire::{CustomerView, InteractionRecord, SummaryRecord, TicketRecord};
use crate::wire::event::Viewer;
use crate::wire::records::{CustomerRecord, SessionRecord};

/// Interactions in the view (the last 30 days, newest first).
pub const VIEW_INTERACTIONS: usize = 50;
/// Sessions in the view.
pub const VIEW_SESSIONS: usize = 10;
/// Tickets in the view.
pub const VIEW_TICKETS: usize = 20;

/// The view of `customer` as `viewer` may see it (their session records
/// follow [`Viewer`]), or `None` if there is no such customer.
pub async fn customer_view(
    platform: &Platform,
    customer: &CustomerId,
    viewer: Viewer,
) -> Result<Option<CustomerView>, StoreError> {
    let store = &platform.store;
    let Some(profile) = store.get_customer(customer).await? else {
        return Ok(None);
    };
    let now = engine::now_millis();
    let (interactions, sessions, tickets) = tokio::try_join!(
        store.interactions(customer, now, VIEW_INTERACTIONS),
        store.sessions_of_customer(customer, VIEW_SESSIONS),
        store.tickets_of_customer(customer, VIEW_TICKETS),
    )?;
    // Summaries start as the agent's wrap-up note, and the last agent is a
    // routing fact: staff only, like `closed.summary` (PROTOCOL.md §2).
    let staff = viewer == Viewer::Staff;
    let mut last_summary = None;
    for session in sessions.iter().filter(|s| staff && s.state.is_final()) {
        if let Some(summary) = store.get_summary(session.id).await? {
            last_summary = Some(SummaryRecord::from(&summary));
            break;
        }
    }
    Ok(Some(CustomerView {
        customer: CustomerRecord {
            last_agent: CustomerRecord::from(&profile).last_agent.filter(|_| staff),
            ..CustomerRecord::from(&profile)
        },
        interactions: interactions
            .iter()
            .map(|row| InteractionRecord::new(row, viewer))
            .collect(),
        sessions: sessions
            .iter()
            .map(|session| SessionRecord::new(session, viewer))
            .collect(),
        tickets: tickets.iter().map(TicketRecord::from).collect(),
        last_summary,
    }))
}
