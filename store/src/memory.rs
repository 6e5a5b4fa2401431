//! An in-memory [`Store`]: same contract, no durability.
//!
//! For tests that run on a paused clock (a real file's IO happens outside the
//! runtime, so the paused clock would jump past timers while a commit is in
//! flight) and for throwaway demos. It passes the same contract suite as
//! every other backend.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{INTERACTION_TTL_MS, Interaction, Store, StoreError, WriteOp};
use engine::Millis;
use engine::agent::Agent;
use engine::assist::ReplyTemplate;
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::ids::{ArticleId, TemplateId, TicketId};
use engine::kb::Article;
use engine::message::StoredMessage;
use engine::outbox::OutboxEntry;
use engine::session::Session;
use engine::sla::report::{AgentLogEntry, AgentLogKind};
use engine::summary::SessionSummary;
use engine::supervision::AuditEntry;
use engine::ticket::{Ticket, TicketEvent};

#[derive(Default)]
struct Tables {
    customers: HashMap<CustomerId, Customer>,
    identities: HashMap<(Channel, String), CustomerId>,
    sessions: BTreeMap<SessionId, Session>,
    messages: HashMap<SessionId, BTreeMap<u64, StoredMessage>>,
    interactions: HashMap<CustomerId, Vec<Interaction>>,
    agents: BTreeMap<AgentId, Agent>,
    groups: BTreeMap<GroupId, SkillGroup>,
    tickets: HashMap<TicketId, Ticket>,
    ticket_events: HashMap<TicketId, BTreeMap<u64, TicketEvent>>,
    articles: BTreeMap<ArticleId, Article>,
    templates: BTreeMap<TemplateId, ReplyTemplate>,
    summaries: HashMap<SessionId, SessionSummary>,
    outbox: BTreeMap<String, OutboxEntry>,
    /// By (at, id).
    audit: BTreeMap<(Millis, u64), AuditEntry>,
    agent_log: BTreeMap<(Millis, u64), AgentLogEntry>,
}

/// The in-memory backend.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Option<Tables>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            tables: Mutex::new(Some(Tables::default())),
        }
    }

    fn with<T>(
        &self,
        read: impl FnOnce(&mut Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self
            .tables
            .lock()
            .map_err(|_| StoreError::Backend("memory: lock poisoned".into()))?;
        match guard.as_mut() {
            Some(tables) => read(tables),
            None => Err(StoreError::Closed),
        }
    }
}

/// Checks the batch against the tables and against its own earlier ops, so
/// that applying it afterwards cannot fail half-way.
fn validate(tables: &Tables, batch: &[WriteOp]) -> Result<(), StoreError> {
    let mut new_owners: HashMap<(&Channel, &str), &CustomerId> = HashMap::new();
    let mut new_seqs: HashMap<SessionId, Vec<u64>> = HashMap::new();
    let mut new_ticket_seqs: HashMap<&TicketId, Vec<u64>> = HashMap::new();
    let check_identity = |owner: &CustomerId, identity: &Identity| {
        let key = (identity.channel.clone(), identity.external_id.clone());
        match tables.identities.get(&key) {
            Some(existing) if existing != owner => Err(StoreError::IdentityTaken {
                channel: identity.channel.clone(),
                external_id: identity.external_id.clone(),
                owner: existing.clone(),
            }),
            _ => Ok(()),
        }
    };
    for op in batch {
        let links: Vec<(&CustomerId, &Identity)> = match op {
            WriteOp::PutCustomer(customer) => customer
                .identities
                .iter()
                .map(|i| (&customer.id, i))
                .collect(),
            WriteOp::LinkIdentity { customer, identity } => vec![(customer, identity)],
            WriteOp::AppendMessage(message) => {
                let seen = new_seqs.entry(message.session_id).or_default();
                let stored = tables
                    .messages
                    .get(&message.session_id)
                    .is_some_and(|m| m.contains_key(&message.seq));
                if stored || seen.contains(&message.seq) {
                    return Err(StoreError::DuplicateSeq {
                        session: message.session_id,
                        seq: message.seq,
                    });
                }
                seen.push(message.seq);
                vec![]
            }
            WriteOp::AppendTicketEvent(event) => {
                let seen = new_ticket_seqs.entry(&event.ticket_id).or_default();
                let stored = tables
                    .ticket_events
                    .get(&event.ticket_id)
                    .is_some_and(|events| events.contains_key(&event.seq));
                if stored || seen.contains(&event.seq) {
                    return Err(StoreError::DuplicateTicketEvent {
                        ticket: event.ticket_id.clone(),
                        seq: event.seq,
                    });
                }
                seen.push(event.seq);
                vec![]
            }
            _ => vec![],
        };
        for (owner, identity) in links {
            check_identity(owner, identity)?;
            match new_owners.get(&(&identity.channel, identity.external_id.as_str())) {
                Some(earlier) if *earlier != owner => {
                    return Err(StoreError::IdentityTaken {
                        channel: identity.channel.clone(),
                        external_id: identity.external_id.clone(),
                        owner: (*earlier).clone(),
                    });
                }
                _ => {
                    new_owners.insert((&identity.channel, identity.external_id.as_str()), owner);
                }
            }
        }
    }
    Ok(())
}

fn apply(tables: &mut Tables, op: &WriteOp) {
    match op {
        WriteOp::PutCustomer(customer) => {
            for identity in &customer.identities {
                tables.identities.insert(
                    (identity.channel.clone(), identity.external_id.clone()),
                    customer.id.clone(),
                );
            }
            let mut row = customer.clone();
            row.identities.clear();
            tables.customers.insert(customer.id.clone(), row);
        }
        WriteOp::LinkIdentity { customer, identity } => {
            tables.identities.insert(
                (identity.channel.clone(), identity.external_id.clone()),
                customer.clone(),
            );
        }
        WriteOp::PutSession(session) => {
            tables.sessions.insert(session.id, session.clone());
        }
        WriteOp::AppendMessage(message) => {
            tables
                .messages
                .entry(message.session_id)
                .or_default()
                .insert(message.seq, message.clone());
        }
        WriteOp::RecordInteraction(interaction) => {
            let rows = tables
                .interactions
                .entry(interaction.customer_id.clone())
                .or_default();
            rows.retain(|row| (row.at, row.session_id) != (interaction.at, interaction.session_id));
            rows.push(interaction.clone());
        }
        WriteOp::PutAgent(agent) => {
            tables.agents.insert(agent.id.clone(), agent.clone());
        }
        WriteOp::PutGroup(group) => {
            tables.groups.insert(group.id.clone(), group.clone());
        }
        WriteOp::PutTicket(ticket) => {
            tables.tickets.insert(ticket.id.clone(), ticket.clone());
        }
        WriteOp::AppendTicketEvent(event) => {
            tables
                .ticket_events
                .entry(event.ticket_id.clone())
                .or_default()
                .insert(event.seq, event.clone());
        }
        WriteOp::PutArticle(article) => {
            tables.articles.insert(article.id.clone(), article.clone());
        }
        WriteOp::DeleteArticle(id) => {
            tables.articles.remove(id);
        }
        WriteOp::PutTemplate(template) => {
            tables
                .templates
                .insert(template.id.clone(), template.clone());
        }
        WriteOp::DeleteTemplate(id) => {
            tables.templates.remove(id);
        }
        WriteOp::PutSummary(summary) => {
            tables.summaries.insert(summary.session_id, summary.clone());
        }
        WriteOp::PutOutbox(entry) => {
            tables.outbox.insert(entry.id.clone(), entry.clone());
        }
        WriteOp::DeleteOutbox(id) => {
            tables.outbox.remove(id);
        }
        WriteOp::PutAudit(entry) => {
            tables.audit.insert((entry.at, entry.id), entry.clone());
        }
        WriteOp::PutAgentLog(entry) => {
            tables.agent_log.insert((entry.at, entry.id), entry.clone());
        }
    }
}

fn alive(interaction: &Interaction, now: Millis) -> bool {
    interaction.at.saturating_add(INTERACTION_TTL_MS) > now
}

#[async_trait]
impl Store for MemoryStore {
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        self.with(|tables| {
            validate(tables, batch)?;
            batch.iter().for_each(|op| apply(tables, op));
            Ok(())
        })
    }

    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.with(|tables| {
            let Some(mut customer) = tables.customers.get(id).cloned() else {
                return Ok(None);
            };
            customer.identities = tables
                .identities
                .iter()
                .filter(|(_, owner)| *owner == id)
                .map(|((channel, external_id), _)| Identity {
                    channel: channel.clone(),
                    external_id: external_id.clone(),
                })
                .collect();
            customer.identities.sort();
            Ok(Some(customer))
        })
    }

    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        self.with(|tables| {
            Ok(tables
                .identities
                .get(&(channel.clone(), external_id.to_owned()))
                .cloned())
        })
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.with(|tables| Ok(tables.sessions.get(&id).cloned()))
    }

    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        self.with(|tables| {
            let mut sessions: Vec<Session> = tables
                .sessions
                .values()
                .filter(|s| &s.customer_id == id)
                .cloned()
                .collect();
            sessions.sort_by_key(|s| std::cmp::Reverse((s.times.created, s.id)));
            sessions.truncate(limit);
            Ok(sessions)
        })
    }

    async fn open_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.with(|tables| {
            Ok(tables
                .sessions
                .values()
                .filter(|s| !s.state.is_final())
                .cloned()
                .collect())
        })
    }

    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.with(|tables| {
            let Some(messages) = tables.messages.get(&session) else {
                return Ok(Vec::new());
            };
            Ok(messages
                .range(after_seq.saturating_add(1)..)
                .take(limit)
                .map(|(_, m)| m.clone())
                .collect())
        })
    }

    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        self.with(|tables| {
            let mut rows: Vec<Interaction> = tables
                .interactions
                .get(customer)
                .into_iter()
                .flatten()
                .filter(|i| alive(i, now))
                .cloned()
                .collect();
            rows.sort_by_key(|i| std::cmp::Reverse((i.at, i.session_id)));
            rows.truncate(limit);
            Ok(rows)
        })
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.with(|tables| {
            let mut n_purged = 0;
            for rows in tables.interactions.values_mut() {
                let before = rows.len();
                rows.retain(|i| alive(i, now));
                n_purged += (before - rows.len()) as u64;
            }
            Ok(n_purged)
        })
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.with(|tables| Ok(tables.agents.values().cloned().collect()))
    }

    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.with(|tables| Ok(tables.agents.get(id).cloned()))
    }

    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.with(|tables| Ok(tables.groups.values().cloned().collect()))
    }

    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.with(|tables| Ok(tables.tickets.get(id).cloned()))
    }

    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.with(|tables| {
            let mut tickets: Vec<Ticket> = tables
                .tickets
                .values()
                .filter(|ticket| &ticket.customer_id == customer)
                .cloned()
                .collect();
            tickets.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
            tickets.truncate(limit);
            Ok(tickets)
        })
    }

    async fn ticket_events(
        &self,
        ticket: &TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        self.with(|tables| {
            Ok(tables
                .ticket_events
                .get(ticket)
                .into_iter()
                .flat_map(|events| events.range(after_seq.saturating_add(1)..))
                .take(limit)
                .map(|(_, event)| event.clone())
                .collect())
        })
    }

    async fn list_articles(&self) -> Result<Vec<Article>, StoreError> {
        self.with(|tables| Ok(tables.articles.values().cloned().collect()))
    }

    async fn list_templates(&self) -> Result<Vec<ReplyTemplate>, StoreError> {
        self.with(|tables| Ok(tables.templates.values().cloned().collect()))
    }

    async fn get_summary(&self, session: SessionId) -> Result<Option<SessionSummary>, StoreError> {
        self.with(|tables| Ok(tables.summaries.get(&session).cloned()))
    }

    async fn audit_log(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        if since >= until {
            return Ok(Vec::new());
        }
        self.with(|tables| {
            Ok(tables
                .audit
                .range((since, 0)..(until, 0))
                .rev()
                .take(limit)
                .map(|(_, entry)| entry.clone())
                .collect())
        })
    }

    async fn sessions_queued(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, SessionId)>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        self.with(|tables| {
            let mut found: Vec<&Session> = tables
                .sessions
                .values()
                .filter(|s| {
                    s.times.queued.is_some_and(|queued| {
                        (from..to).contains(&queued)
                            && after.is_none_or(|after| (queued, s.id) > after)
                    })
                })
                .collect();
            found.sort_unstable_by_key(|s| (s.times.queued, s.id));
            Ok(found.into_iter().take(limit).cloned().collect())
        })
    }

    async fn agent_log(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, u64)>,
        limit: usize,
    ) -> Result<Vec<AgentLogEntry>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        // A page starts just after `after`'s key, not at `from` again.
        let start = match after {
            Some((at, id)) if (at, id) >= (from, 0) => std::ops::Bound::Excluded((at, id)),
            _ => std::ops::Bound::Included((from, 0)),
        };
        self.with(|tables| {
            Ok(tables
                .agent_log
                .range((start, std::ops::Bound::Excluded((to, 0))))
                .take(limit)
                .map(|(_, entry)| entry.clone())
                .collect())
        })
    }

    async fn agent_activity_before(
        &self,
        agent: &AgentId,
        at: Millis,
    ) -> Result<Option<AgentLogEntry>, StoreError> {
        self.with(|tables| {
            Ok(tables
                .agent_log
                .range(..(at, 0))
                .rev()
                .map(|(_, entry)| entry)
                .find(|entry| {
                    &entry.agent == agent && matches!(entry.kind, AgentLogKind::Activity { .. })
                })
                .cloned())
        })
    }

    async fn outbox_due(&self, now: Millis, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.with(|tables| {
            let mut due: Vec<OutboxEntry> = tables
                .outbox
                .values()
                .filter(|entry| !entry.dead && entry.next_attempt_at <= now)
                .cloned()
                .collect();
            due.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
            due.truncate(limit);
            Ok(due)
        })
    }

    async fn close(&self) -> Result<(), StoreError> {
        let mut guard = self
            .tables
            .lock()
            .map_err(|_| StoreError::Backend("memory: lock poisoned".into()))?;
        *guard = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh_store() -> Box<MemoryStore> {
        Box::new(MemoryStore::new())
    }

    crate::store_contract_tests!(fresh_store());
}
