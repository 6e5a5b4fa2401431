//! [`Switchboard`]: the one handle the gateway (and tests, and the demo) use.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use engine::EngineError;
use engine::agent::Agent;
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::envelope::Envelope;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::presence::{Presence, PresenceRequest};
use engine::routing::{Contact, RoutePlan, RuleError, RuleSet, Step};
use engine::session::{ReplyRoute, Session, check_score};
use engine::sla::SlaTally;
use ractor::{Actor, ActorRef, RpcReplyPort};
use store::{Store, StoreError, WriteOp};

use crate::agent::{AgentMessage, AgentView};
use crate::directory::{DirectoryMessage, DirectoryStats};
use crate::error::ApiError;
use crate::event::{Audience, DeliveryReport, Event};
use crate::group::{GroupMessage, GroupView, QueueStatus};
use crate::root::{RootArgs, RootMessage, RootSupervisor};
use crate::session::{Ack, SessionMessage, TransferTarget, Typist};
use crate::shared::{RuntimeConfig, Shared};
use crate::store_writer::write_and_wait;

mod call;
mod remote;
mod reports;
mod submit;
mod supervise;

pub use call::{CallSession, CallStart};
pub use reports::ReportScope;

pub use submit::PendingAck;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`Switchboard::intake`] did with an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// The customer the channel identity resolved to (created if it was new).
    pub customer: CustomerId,
    /// The message's ack: its session and `seq`, and whether it was a resend.
    pub ack: Ack,
}

/// A running switchboard: cheap to clone, safe to share.
#[derive(Clone)]
pub struct Switchboard {
    shared: Arc<Shared>,
    root: ActorRef<RootMessage>,
}

impl Switchboard {
    /// Starts the actor system over `store`, with the agents and groups the
    /// store holds. Open sessions from an earlier run are resumed.
    pub async fn start(
        store: Arc<dyn Store>,
        rules: RuleSet,
        channels: ChannelRegistry,
        config: RuntimeConfig,
    ) -> Result<Switchboard, ApiError> {
        Switchboard::start_with_peers(store, rules, channels, config, None).await
    }

    /// [`Switchboard::start`] as a member of a cluster: the actors `peers`
    /// place here run here, messages for the others go to their nodes
    /// (`crate::remote`), and only the open sessions of this node's share
    /// are resumed.
    pub async fn start_with_peers(
        store: Arc<dyn Store>,
        rules: RuleSet,
        channels: ChannelRegistry,
        config: RuntimeConfig,
        peers: Option<Arc<dyn crate::remote::Peers>>,
    ) -> Result<Switchboard, ApiError> {
        let groups = store.list_groups().await?;
        rules
            .validate(
                &|name| groups.iter().any(|g| g.id.as_str() == name),
                &channels,
            )
            .map_err(|err| EngineError::Invalid {
                field: "rules",
                reason: err.to_string(),
            })?;
        let shared_out = Arc::new(OnceLock::new());
        let args = RootArgs {
            store,
            rules,
            channels,
            config,
            shared_out: shared_out.clone(),
            peers,
        };
        let (root, _) = Actor::spawn(None, RootSupervisor, args)
            .await
            .map_err(|err| ApiError::Unavailable(format!("switchboard start-up failed: {err}")))?;
        let shared = shared_out
            .get()
            .cloned()
            .ok_or_else(|| ApiError::Unavailable("switchboard start-up".into()))?;
        Ok(Switchboard { shared, root })
    }

    /// Writes agents, groups and customers (set-up and demo data), durably,
    /// straight to `store`: for offline set-up (`switchboard import`, the
    /// demo seed) before or without a running switchboard. Agents and
    /// groups take effect at the next start. A running system writes
    /// through [`Switchboard::write`] instead.
    pub async fn seed(
        store: &dyn Store,
        agents: Vec<Agent>,
        groups: Vec<SkillGroup>,
        customers: Vec<Customer>,
    ) -> Result<(), ApiError> {
        let mut ops: Vec<WriteOp> = groups.into_iter().map(WriteOp::PutGroup).collect();
        ops.extend(agents.into_iter().map(WriteOp::PutAgent));
        ops.extend(customers.into_iter().map(WriteOp::PutCustomer));
        store.write(&ops).await?;
        Ok(())
    }

    /// A customer message from any channel. Resolves the channel identity to
    /// one customer (creating a customer for an unknown identity), opens a
    /// session if the customer has none, and returns the ack once the
    /// message is durable. Resending with the same `client_message_id`
    /// returns the first ack (`duplicate: true`) and stores nothing.
    pub async fn customer_message(&self, envelope: Envelope) -> Result<Ack, ApiError> {
        self.intake(envelope).await.map(|intake| intake.ack)
    }

    /// [`Switchboard::customer_message`], also saying which customer the
    /// channel identity resolved to (channel adapters and webhooks answer
    /// with it).
    pub async fn intake(&self, envelope: Envelope) -> Result<Intake, ApiError> {
        self.intake_via(envelope, None).await
    }

    /// [`Switchboard::intake`] of a message that came through a channel
    /// account (`route`): agents' replies in its session go back through
    /// that account until the customer writes from elsewhere.
    pub async fn intake_via(
        &self,
        envelope: Envelope,
        route: Option<ReplyRoute>,
    ) -> Result<Intake, ApiError> {
        self.shared.channels.check(&envelope.channel)?;
        if envelope.customer_id.is_empty() {
            return Err(EngineError::Invalid {
                field: "customer_id",
                reason: "must not be empty".into(),
            }
            .into());
        }
        let customer = self.resolve_customer(&envelope).await?;
        let Envelope {
            channel,
            message,
            client_message_id,
            ..
        } = envelope;
        let ack = self
            .submit_from(customer.clone(), channel, message, client_message_id, route)
            .await?
            .ack()
            .await?;
        Ok(Intake { customer, ack })
    }

    /// A message from a customer the caller already authenticated (the
    /// gateway's token names the customer), so no channel identity is
    /// resolved. Otherwise as [`Switchboard::customer_message`]: the
    /// customer's open session or a new one, the ack once durable, and the
    /// first ack again for a resent `client_message_id`.
    pub async fn customer_message_as(
        &self,
        customer: &CustomerId,
        channel: Channel,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<Ack, ApiError> {
        self.shared.channels.check(&channel)?;
        // No store read here, on the hot path: a new session's actor loads
        // the customer and refuses to start (unknown_customer) without one.
        self.message_from(customer.clone(), channel, body, client_message_id)
            .await
    }

    /// Delivers a message of a known customer to their open session, opening
    /// one if they have none.
    async fn message_from(
        &self,
        customer: CustomerId,
        channel: Channel,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<Ack, ApiError> {
        self.submit_from(customer, channel, body, client_message_id, None)
            .await?
            .ack()
            .await
    }

    async fn resolve_customer(&self, envelope: &Envelope) -> Result<CustomerId, ApiError> {
        self.customer_by_identity(
            &envelope.channel,
            &envelope.customer_id,
            envelope.display_name.as_deref(),
        )
        .await
    }

    /// The customer who owns `external_id` on `channel`, or a new one made
    /// for it (named `display_name`, else the id).
    async fn customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
        display_name: Option<&str>,
    ) -> Result<CustomerId, ApiError> {
        let store = &self.shared.store;
        if let Some(id) = store
            .find_customer_by_identity(channel, external_id)
            .await?
        {
            return Ok(id);
        }
        let id = CustomerId::new(format!("{channel}:{external_id}"));
        let mut customer = Customer::new(id.clone(), display_name.unwrap_or(external_id));
        customer.created_at = crate::clock::now();
        customer.identities.push(Identity {
            channel: channel.clone(),
            external_id: external_id.to_owned(),
        });
        write_and_wait(&self.shared.writer, vec![WriteOp::PutCustomer(customer)]).await?;
        Ok(id)
    }

    /// The customer leaves: a waiting session is abandoned, an assigned one closed.
    pub async fn customer_leave(
        &self,
        customer: &CustomerId,
        session: SessionId,
    ) -> Result<(), ApiError> {
        let record = self
            .call_session(session, |reply| SessionMessage::Snapshot { reply })
            .await?;
        if &record.customer_id != customer {
            return Err(EngineError::UnknownSession(session.0).into());
        }
        self.call_session(session, |reply| SessionMessage::Close {
            agent: None,
            summary: None,
            reply,
        })
        .await?
    }

    /// The agent changes presence.
    pub async fn set_presence(
        &self,
        agent: &AgentId,
        request: PresenceRequest,
    ) -> Result<Presence, ApiError> {
        self.call_agent(agent, |reply| AgentMessage::SetPresence { request, reply })
            .await?
    }

    /// The agent accepts an offer; returns once the assignment is durable.
    pub async fn accept(&self, agent: &AgentId, session: SessionId) -> Result<(), ApiError> {
        self.call_agent(agent, |reply| AgentMessage::Accept { session, reply })
            .await?
    }

    /// The agent rejects an offer; the session goes to the next agent.
    pub async fn reject(&self, agent: &AgentId, session: SessionId) -> Result<(), ApiError> {
        self.call_agent(agent, |reply| AgentMessage::Reject { session, reply })
            .await?
    }

    /// A message from the assigned agent; ack once durable.
    pub async fn agent_message(
        &self,
        agent: &AgentId,
        session: SessionId,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<Ack, ApiError> {
        self.submit_agent_message(agent, session, body, client_message_id)
            .await?
            .ack()
            .await
    }

    /// The assigned agent transfers the session to a group, or to one agent
    /// (who is offered it in their first group, and only them).
    pub async fn transfer(
        &self,
        agent: &AgentId,
        session: SessionId,
        target: TransferTarget,
    ) -> Result<(), ApiError> {
        let step = match target {
            TransferTarget::Group { group } => {
                if !self.shared.groups.contains_key(&group) {
                    return Err(EngineError::UnknownGroup(group.to_string()).into());
                }
                Step::to_group(group, 0)
            }
            TransferTarget::Agent { agent: to } => {
                let profile = self
                    .shared
                    .store
                    .get_agent(&to)
                    .await?
                    .ok_or_else(|| EngineError::UnknownAgent(to.to_string()))?;
                let group =
                    profile
                        .groups
                        .first()
                        .cloned()
                        .ok_or_else(|| EngineError::Invalid {
                            field: "to",
                            reason: format!("agent `{to}` belongs to no skill group"),
                        })?;
                Step::to_agent(group, to, 0)
            }
        };
        let agent = agent.clone();
        self.call_session(session, |reply| SessionMessage::Transfer {
            agent,
            step,
            reply,
        })
        .await?
    }

    /// The assigned agent ends the conversation and starts notes.
    pub async fn wrap_up(
        &self,
        agent: &AgentId,
        session: SessionId,
        summary: Option<String>,
    ) -> Result<(), ApiError> {
        let agent = agent.clone();
        self.call_session(session, |reply| SessionMessage::WrapUp {
            agent,
            summary,
            reply,
        })
        .await?
    }

    /// The assigned agent closes the session.
    pub async fn close(
        &self,
        agent: &AgentId,
        session: SessionId,
        summary: Option<String>,
    ) -> Result<(), ApiError> {
        let agent = Some(agent.clone());
        self.call_session(session, |reply| SessionMessage::Close {
            agent,
            summary,
            reply,
        })
        .await?
    }

    /// The customer is typing in `session`: the assigned agent sees
    /// [`EventKind::Typing`](crate::EventKind::Typing). Nothing is stored; before an
    /// agent accepted there is nobody to tell and this does nothing. Another
    /// customer's session is an unknown session.
    pub async fn customer_typing(
        &self,
        customer: &CustomerId,
        session: SessionId,
    ) -> Result<(), ApiError> {
        self.typing(session, Typist::Customer(customer.clone()))
            .await
    }

    /// The agent is typing in `session`, which must be assigned to them: the
    /// customer sees [`EventKind::Typing`](crate::EventKind::Typing). Nothing is stored.
    pub async fn agent_typing(&self, agent: &AgentId, session: SessionId) -> Result<(), ApiError> {
        self.typing(session, Typist::Agent(agent.clone())).await
    }

    async fn typing(&self, session: SessionId, typist: Typist) -> Result<(), ApiError> {
        self.call_session(session, |reply| SessionMessage::Typing { typist, reply })
            .await?
    }

    /// The customer rates the conversation: `score` 1 (worst) to 5 (best),
    /// allowed once the session is in wrap-up or closed (also long after it
    /// closed), and only once (`invalid_state` the second time). The rating
    /// is an event with the session's next `seq`
    /// ([`EventKind::Rated`](crate::EventKind::Rated), published to the customer and the
    /// agent who handled it) and the record's `rating`; the ack comes once
    /// it is durable. Another customer's session is an unknown session.
    pub async fn rate(
        &self,
        customer: &CustomerId,
        session: SessionId,
        score: u8,
        comment: Option<String>,
    ) -> Result<Ack, ApiError> {
        check_score(score)?;
        let customer = customer.clone();
        self.call_session(session, |reply| SessionMessage::Rate {
            customer,
            score,
            comment,
            reply,
        })
        .await?
    }

    /// Records what became of an agent's message sent through a channel
    /// account (the account's courier reports it). Ok once durable, or at
    /// once when the report is no news (that state was reported already,
    /// or the delivery reached a final state before).
    pub async fn report_delivery(
        &self,
        session: SessionId,
        report: DeliveryReport,
    ) -> Result<(), ApiError> {
        self.call_session(session, |reply| SessionMessage::Delivery { report, reply })
            .await?
    }

    /// Resolves when a session's write with outbox entries (an agent's
    /// reply to a channel account) has become durable since the last call.
    pub async fn outbox_written(&self) {
        self.shared.outbox_written.notified().await
    }

    /// Events of every session of `customer`, from now on.
    pub fn subscribe_customer(&self, customer: &CustomerId) -> crate::event::Subscription {
        self.shared.hub.subscribe(
            Audience::Customer(customer.clone()),
            self.shared.config.subscriber_buffer,
        )
    }

    /// The end (`closed` or `abandoned` event) of every session, from now on,
    /// with room for `capacity` unread ones; when the subscriber falls further
    /// behind, it misses ends (they are not replayed).
    pub fn subscribe_ended(&self, capacity: usize) -> crate::event::Subscription {
        self.shared.hub.subscribe(Audience::Ended, capacity)
    }

    /// Events for `agent` (offers, their sessions' messages), from now on.
    pub fn subscribe_agent(&self, agent: &AgentId) -> crate::event::Subscription {
        self.shared.hub.subscribe(
            Audience::Agent(agent.clone()),
            self.shared.config.subscriber_buffer,
        )
    }

    /// Everything durable in `session` after `after_seq`, in order: what a
    /// reconnecting client missed.
    pub async fn history(
        &self,
        session: SessionId,
        after_seq: u64,
    ) -> Result<Vec<Event>, ApiError> {
        let messages = self
            .shared
            .store
            .messages(session, after_seq, usize::MAX)
            .await?;
        Ok(messages.iter().map(Event::from_stored).collect())
    }

    /// The session record as stored. Its `last_seq` is as of the last state
    /// change; `history` (or `live_session`) gives the latest messages.
    pub async fn session(&self, session: SessionId) -> Result<Session, ApiError> {
        self.shared
            .store
            .get_session(session)
            .await?
            .ok_or_else(|| EngineError::UnknownSession(session.0).into())
    }

    /// The live record of an active session (activating it if passivated).
    pub async fn live_session(&self, session: SessionId) -> Result<Session, ApiError> {
        self.call_session(session, |reply| SessionMessage::Snapshot { reply })
            .await
    }

    /// Where a waiting session stands: its group, place in line, how many
    /// wait, and the estimated wait ([`engine::wait`], docs/sla.md). `None`
    /// when the session is not waiting in a queue (not yet routed, being
    /// answered, assigned, closed). It does not check who asks: a customer
    /// endpoint checks that the session is theirs.
    pub async fn queue_status(&self, session: SessionId) -> Result<Option<QueueStatus>, ApiError> {
        // The stored record names the group without waking the session (a
        // waiting one may be passivated, and asking must not keep it
        // running); the group says whether it still waits there.
        let record = self.session(session).await?;
        let Some(group) = record.group.filter(|_| record.state.is_waiting()) else {
            return Ok(None);
        };
        self.call_group(&group, |reply| GroupMessage::Status { session, reply })
            .await
    }

    /// Whether this node runs `group`'s actor now (always, when alone).
    pub fn runs_group(&self, group: &GroupId) -> bool {
        self.shared.elsewhere(|p| p.group(group)).is_none()
    }

    /// Whether this node is one of a cluster's.
    pub fn clustered(&self) -> bool {
        self.shared.peers.is_some()
    }

    /// Whether this node delivers the outbox now (always, when alone; in a
    /// cluster, one node with the `workers` role).
    pub fn delivers_outbox(&self) -> bool {
        self.shared
            .peers
            .as_deref()
            .is_none_or(|peers| peers.delivers_outbox())
    }

    /// Whether this node runs `agent`'s actor now (always, when alone).
    pub fn runs_agent(&self, agent: &AgentId) -> bool {
        self.shared.elsewhere(|p| p.agent(agent)).is_none()
    }

    /// A group's queue.
    pub async fn group_view(&self, group: &GroupId) -> Result<GroupView, ApiError> {
        self.call_group(group, |reply| GroupMessage::View { reply })
            .await
    }

    /// An agent's live state.
    pub async fn agent_view(&self, agent: &AgentId) -> Result<AgentView, ApiError> {
        self.call_agent(agent, |reply| AgentMessage::View { reply })
            .await
    }

    /// Directory counts: live and open sessions, restarts.
    pub async fn stats(&self) -> Result<DirectoryStats, ApiError> {
        self.call_directory(|reply| DirectoryMessage::Stats { reply })
            .await
    }

    /// Replaces the routing rules after validating them; on error the old rules stay.
    pub async fn reload_rules(&self, rules: RuleSet) -> Result<(), RuleError> {
        let groups = self.shared.store.list_groups().await.unwrap_or_default();
        rules.validate(
            &|name| groups.iter().any(|g| g.id.as_str() == name),
            &self.shared.channels,
        )?;
        *self.shared.rules.write().expect("rules lock") = Arc::new(rules);
        Ok(())
    }

    /// Each group's contacts since start (entered, answered, within the
    /// threshold, abandoned), for a live wallboard's service level.
    pub fn sla_tallies(&self) -> HashMap<GroupId, SlaTally> {
        self.shared.sla.lock().expect("sla tally lock").clone()
    }

    /// Each group's contacts minute by minute over the last hour, for the
    /// wallboard's rolling service level and sparkline; with the time
    /// they are read at (the handle's clock).
    pub fn sla_windows(&self) -> (HashMap<GroupId, engine::sla::SlaWindow>, engine::Millis) {
        let windows = self.shared.sla_windows.lock().expect("sla window lock");
        (windows.clone(), crate::clock::now())
    }

    /// The rule a contact would be routed by now, with its plan; `None`
    /// when no rule matches (the fallback group takes it).
    pub fn route_plan(&self, contact: &Contact) -> Option<RoutePlan> {
        self.shared.rules().route(contact)
    }

    /// The file name of the rules in force.
    pub fn rules_file_name(&self) -> String {
        self.shared.rules().file_name().to_string()
    }

    /// The store, for reads the handle does not wrap.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Makes `ops` durable through the StoreWriter: one atomic batch, group
    /// committed with the actors' own writes and ordered after everything
    /// sent to the writer before it. Every runtime write from outside the
    /// actors (the data platform, REST) goes here, never straight to the
    /// store. A store answer that never came is
    /// [`StoreError::OutcomeUnknown`] (the batch may be stored; it becomes
    /// [`ApiError::OutcomeUnknown`] through `From`, as a session's writes
    /// do); any other failure stored nothing.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        write_and_wait(&self.shared.writer, ops).await
    }

    /// Reports session events to `encoder` from now on (the data platform
    /// sets it once; a second call changes nothing).
    pub fn report_session_events(&self, encoder: Arc<dyn crate::platform::EventEncoder>) {
        let _ = self.shared.events.set(encoder);
    }

    /// This node's id (part of every id it mints).
    pub fn node_id(&self) -> u8 {
        self.shared.config.node_id
    }

    /// Waits until everything sent to the StoreWriter so far is durable: the
    /// events of every request that was acknowledged or is in flight. For a
    /// graceful shutdown, before the sockets close.
    pub async fn flush(&self) -> Result<(), ApiError> {
        write_and_wait(&self.shared.writer, Vec::new()).await?;
        Ok(())
    }

    /// Stops every actor after everything sent to the writer is durable.
    pub async fn shutdown(self) {
        // A failed flush leaves nothing more to do than stop.
        let _ = self.flush().await;
        self.root
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
            .await
            .ok();
    }

    /// Test hook: what the actors share.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Test hook: makes a session's actor panic mid-conversation.
    #[cfg(test)]
    pub(crate) async fn crash_session(&self, session: SessionId) -> Result<(), ApiError> {
        let actor = self.session_actor(session).await?;
        actor
            .cast(SessionMessage::Panic)
            .map_err(|_| ApiError::Unavailable(format!("session {session}")))
    }

    async fn session_actor(
        &self,
        session: SessionId,
    ) -> Result<ActorRef<SessionMessage>, ApiError> {
        self.call_directory(|reply| DirectoryMessage::Session { session, reply })
            .await?
    }

    /// Calls `session`'s actor, here or on its node (`crate::remote`).
    async fn call_session<T: Send + 'static>(
        &self,
        session: SessionId,
        message: impl FnOnce(RpcReplyPort<T>) -> SessionMessage,
    ) -> Result<T, ApiError> {
        self.shared
            .call_session(session, message, CALL_TIMEOUT)
            .await
    }

    /// Calls `agent`'s actor, here or on its node.
    async fn call_agent<T: Send + 'static>(
        &self,
        agent: &AgentId,
        message: impl FnOnce(RpcReplyPort<T>) -> AgentMessage,
    ) -> Result<T, ApiError> {
        self.shared.call_agent(agent, message, CALL_TIMEOUT).await
    }

    /// Calls `group`'s actor, here or on its node.
    async fn call_group<T: Send + 'static>(
        &self,
        group: &GroupId,
        message: impl FnOnce(RpcReplyPort<T>) -> GroupMessage,
    ) -> Result<T, ApiError> {
        self.shared.call_group(group, message, CALL_TIMEOUT).await
    }

    async fn call_directory<T: Send + 'static>(
        &self,
        message: impl FnOnce(RpcReplyPort<T>) -> DirectoryMessage,
    ) -> Result<T, ApiError> {
        call(self.shared.directory(), message).await
    }
}

/// Calls a local actor, waiting at most the handle's call timeout.
async fn call<M: ractor::Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    message: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, ApiError> {
    crate::shared::call_actor(actor, message, CALL_TIMEOUT).await
}
