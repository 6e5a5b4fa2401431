//! Ticket writes: one at a time per ticket, durable with their history and
//! their outbox entries in one batch through the StoreWriter, then pushed
//! at once to the customer's sockets and to every agent watching the ticket.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use engine::EngineError;
use engine::ids::{AgentId, CustomerId, TicketId, TicketIdGen};
use engine::message::Sender;
use engine::ticket::{NewTicket, Ticket, TicketEvent, TicketUpdate};
use store::{StoreError, WriteOp};
use thiserror::Error;

use super::outbox::PlatformEvent;
use super::{Notice, Platform};
use crate::event::Audience;

/// History entries returned with a ticket.
pub const MAX_EVENTS: usize = 1_000;

const N_LOCKS: usize = 64;

/// Why a ticket could not be read or changed.
#[derive(Debug, Error)]
pub enum TicketError {
    /// No ticket has this id.
    #[error("unknown ticket `{0}`")]
    Unknown(TicketId),
    /// The change is not valid (a field, or the ticket's state).
    #[error(transparent)]
    Invalid(EngineError),
    /// The store failed; an unknown outcome is [`StoreError::OutcomeUnknown`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ticket ids, write order and watchers.
pub struct TicketDesk {
    ids: Mutex<TicketIdGen>,
    /// Two changes to one ticket must not both read the same `last_seq`.
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Agents watching each ticket, with how many of their sockets do.
    watchers: Mutex<HashMap<TicketId, HashMap<AgentId, usize>>>,
}

impl TicketDesk {
    /// A desk for node `node` (part of every ticket id).
    pub fn new(node: u8) -> Self {
        TicketDesk {
            ids: Mutex::new(TicketIdGen::new(node)),
            locks: (0..N_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            watchers: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, id: &TicketId) -> &tokio::sync::Mutex<()> {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        &self.locks[hasher.finish() as usize % N_LOCKS]
    }

    fn watchers(&self) -> std::sync::MutexGuard<'_, HashMap<TicketId, HashMap<AgentId, usize>>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more socket of `agent` watches `ticket`.
    pub fn watch(&self, agent: &AgentId, ticket: &TicketId) {
        *self
            .watchers()
            .entry(ticket.clone())
            .or_default()
            .entry(agent.clone())
            .or_default() += 1;
    }

    /// One socket of `agent` stops watching `ticket`.
    pub fn unwatch(&self, agent: &AgentId, ticket: &TicketId) {
        let mut watchers = self.watchers();
        let Some(agents) = watchers.get_mut(ticket) else {
            return;
        };
        if let Some(count) = agents.get_mut(agent) {
            *count -= 1;
            if *count == 0 {
                agents.remove(agent);
            }
        }
        if agents.is_empty() {
            watchers.remove(ticket);
        }
    }

    /// Agents watching `ticket` now.
    pub fn watching(&self, ticket: &TicketId) -> Vec<AgentId> {
        self.watchers()
            .get(ticket)
            .map(|agents| agents.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl Platform {
    /// Opens a ticket for `customer`.
    pub async fn open_ticket(
        &self,
        customer: CustomerId,
        new: NewTicket,
        author: Sender,
    ) -> Result<Ticket, TicketError> {
        let now = engine::now_millis();
        let id = self
            .desk
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next(now);
        let (ticket, created) =
            Ticket::open(id, customer, new, author, now).map_err(TicketError::Invalid)?;
        self.commit(&ticket, vec![created], "ticket.created")
            .await?;
        Ok(ticket)
    }

    /// Changes ticket `id` after `check` allowed it on the current record
    /// (the caller's access rules, in the caller's error type).
    pub async fn update_ticket<E: From<TicketError>>(
        &self,
        id: &TicketId,
        update: TicketUpdate,
        author: Sender,
        check: impl AsyncFnOnce(&Ticket) -> Result<(), E>,
    ) -> Result<(Ticket, Vec<TicketEvent>), E> {
        let _in_order = self.desk.lock_for(id).lock().await;
        let mut ticket = self.load_ticket(id).await?;
        check(&ticket).await?;
        let events = ticket
            .apply(update, author, engine::now_millis())
            .map_err(TicketError::Invalid)?;
        if !events.is_empty() {
            self.commit(&ticket, events.clone(), "ticket.updated")
                .await?;
        }
        Ok((ticket, events))
    }

    /// A ticket, or [`TicketError::Unknown`].
    pub async fn load_ticket(&self, id: &TicketId) -> Result<Ticket, TicketError> {
        self.store
            .get_ticket(id)
            .await?
            .ok_or_else(|| TicketError::Unknown(id.clone()))
    }

    /// Writes the ticket, its new events and their outbox entries in one
    /// batch, then pushes the change.
    async fn commit(
        &self,
        ticket: &Ticket,
        events: Vec<TicketEvent>,
        event_type: &str,
    ) -> Result<(), TicketError> {
        let mut ops = vec![WriteOp::PutTicket(ticket.clone())];
        ops.extend(events.iter().cloned().map(WriteOp::AppendTicketEvent));
        let reported = PlatformEvent::Ticket {
            event_type,
            ticket,
            events: &events,
        };
        ops.extend(
            self.outbox
                .entries_for(&reported, engine::now_millis())
                .into_iter()
                .map(WriteOp::PutOutbox),
        );
        self.write(ops).await?;
        self.outbox.wake();
        let kind = event_type.to_owned();
        let n_events = events.len() as u64;
        let notice = Notice::Ticket {
            ticket: Box::new(ticket.clone()),
            events,
        };
        self.notify(&Audience::Customer(ticket.customer_id.clone()), &notice);
        let mut agents = self.desk.watching(&ticket.id);
        if let Some(assignee) = &ticket.assignee
            && !agents.contains(assignee)
        {
            agents.push(assignee.clone());
        }
        for agent in agents {
            self.notify(&Audience::Agent(agent), &notice);
        }
        metrics::counter!("switchboard_ticket_changes_total", "kind" => kind).increment(n_events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_are_counted_per_socket() {
        let desk = TicketDesk::new(0);
        let (li, chen) = (AgentId::new("li.na"), AgentId::new("chen.jie"));
        let ticket = TicketId::new("T-1");
        desk.watch(&li, &ticket);
        desk.watch(&li, &ticket);
        desk.watch(&chen, &ticket);
        desk.unwatch(&li, &ticket);
        let mut watching = desk.watching(&ticket);
        watching.sort();
        assert_eq!(watching, vec![chen.clone(), li.clone()]);
        desk.unwatch(&li, &ticket);
        desk.unwatch(&chen, &ticket);
        assert!(desk.watching(&ticket).is_empty());
        assert!(desk.watchers().is_empty());
        desk.unwatch(&chen, &ticket);
    }
}
