//! The customer 360° view, assembled from the cached profile and history and
//! the store's sessions, tickets and summaries.

use engine::customer::Customer;
use engine::ids::CustomerId;
use engine::session::Session;
use engine::summary::SessionSummary;
use engine::ticket::Ticket;
use store::{Interaction, StoreError};

use super::Platform;

/// Interactions in the view (the last 30 days, newest first).
pub const VIEW_INTERACTIONS: usize = 50;
/// Sessions in the view.
pub const VIEW_SESSIONS: usize = 10;
/// Tickets in the view.
pub const VIEW_TICKETS: usize = 20;

/// The customer 360° view: profile, identities, the last 30 days on every
/// channel, recent sessions, tickets and the last summary. Domain values
/// as stored; what each reader may see of them is the gateway's records'
/// rule, after [`CustomerView::for_staff`].
#[derive(Debug, Clone)]
pub struct CustomerView {
    /// Built for staff (agents, supervisors, admins) rather than for the
    /// customer: a customer's view has no `last_summary`, and its records
    /// leave out staff facts.
    pub for_staff: bool,
    /// Profile, tier, tags and identities on every channel.
    pub customer: Customer,
    /// The last 30 days across channels, newest first.
    pub interactions: Vec<Interaction>,
    /// Recent sessions, newest first.
    pub sessions: Vec<Session>,
    /// Tickets, newest first.
    pub tickets: Vec<Ticket>,
    /// The newest auto-summary among the recent sessions (staff only).
    pub last_summary: Option<SessionSummary>,
}

impl Platform {
    /// The view of `customer` for staff or for the customer themself, or
    /// `None` if there is no such customer.
    pub async fn customer_view(
        &self,
        customer: &CustomerId,
        for_staff: bool,
    ) -> Result<Option<CustomerView>, StoreError> {
        let store = &self.store;
        let Some(profile) = store.get_customer(customer).await? else {
            return Ok(None);
        };
        let now = engine::now_millis();
        let (interactions, sessions, tickets) = tokio::try_join!(
            store.interactions(customer, now, VIEW_INTERACTIONS),
            store.sessions_of_customer(customer, VIEW_SESSIONS),
            store.tickets_of_customer(customer, VIEW_TICKETS),
        )?;
        // Summaries start as the agent's wrap-up note: staff only, like
        // `closed.summary` (PROTOCOL.md §2).
        let mut last_summary = None;
        for session in sessions.iter().filter(|s| for_staff && s.state.is_final()) {
            if let Some(summary) = store.get_summary(session.id).await? {
                last_summary = Some(summary);
                break;
            }
        }
        Ok(Some(CustomerView {
            for_staff,
            customer: profile,
            interactions,
            sessions,
            tickets,
            last_summary,
        }))
    }
}
