//! The Session actor: one conversation.
//!
//! It owns the session's sequence counter, state machine ([`engine::session`]),
//! routing plan and step timers, and the de-duplication of resent messages.
//! Every message and state change gets the next `seq`, goes to the StoreWriter,
//! and is acknowledged and published only once it is durable. On start it
//! rehydrates from the store, so a restart after a panic or a re-activation
//! after passivation continues where the last durable event left off.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use engine::channel::Channel;
use engine::customer::Customer;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::message::Sender;
use engine::routing::{Contact, PlanCursor, RoutePlan, Step};
use engine::session::{
    ReplyRoute, Session, SessionEffect, SessionEvent, SessionState, TransitionError,
};
use engine::{EngineError, Millis};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster_derive::RactorMessage;
use serde::{Deserialize, Serialize};
use store::StoreError;
use tracing::{debug, info, warn};

use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::event::{
    CallControl, CallEnd, CallEvent, DeliveryReport, DeliveryState, Event, EventKind,
};
use crate::group::GroupMessage;
use crate::shared::Shared;

/// A message accepted into a session: durable, with its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The session it belongs to.
    pub session: SessionId,
    /// Its sequence number.
    pub seq: u64,
    /// It had been stored before (same client message id); nothing new was stored.
    pub duplicate: bool,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum TransferTarget {
    /// Any eligible agent of this group.
    Group {
        /// The group.
        group: GroupId,
    },
    /// This agent, waiting in one of their groups.
    Agent {
        /// The agent.
        agent: AgentId,
    },
}

/// What a supervisor asks of a waiting session (see `steering.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SteerRequest {
    /// Out of its queue, into `group`'s (for `agent` only, if set).
    Reassign {
        /// The group.
        group: GroupId,
        /// The one agent to offer it to, a member of `group`.
        agent: Option<AgentId>,
    },
    /// Another priority where it waits.
    Priority {
        /// Higher is served first.
        priority: i32,
    },
}

/// Who is typing, as the caller authenticated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Typist {
    /// The session's customer; anyone else is told the session is unknown.
    Customer(CustomerId),
    /// The agent the session is assigned to.
    Agent(AgentId),
}

mod call;
mod delivery;
mod durability;
mod monitoring;
mod rating;
mod response;
mod steering;
mod steps;
mod typing;

/// Replies sent once a write is durable.
type Waiter = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Messages of a Session actor.
#[derive(RactorMessage)]
pub enum SessionMessage {
    /// A customer message; the reply is the ack, sent once durable.
    CustomerMessage {
        /// Text.
        body: String,
        /// The client's id for de-duplication.
        client_message_id: Option<String>,
        /// The channel it came on.
        channel: Channel,
        /// The channel account it came through, where agents' replies now
        /// go; `None` from a socket or the plain inbound API.
        route: Option<ReplyRoute>,
        /// Reply port.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// A message from the assigned agent.
    AgentMessage {
        /// The sender.
        agent: AgentId,
        /// Text.
        body: String,
        /// The client's id for de-duplication.
        client_message_id: Option<String>,
        /// Reply port.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// An Agent actor reserved capacity for this session's offer.
    Offered {
        /// The agent.
        agent: AgentId,
        /// Accept by.
        deadline: Millis,
        /// The group that offered: an offer from a group the session has
        /// left (it overflowed meanwhile) is withdrawn.
        group: GroupId,
    },
    /// The offer to `agent` ended without accept (rejected, timed out, busy).
    OfferLapsed {
        /// The agent.
        agent: AgentId,
    },
    /// `agent` accepted (the Agent actor already moved the offer to its sessions).
    Accept {
        /// The agent.
        agent: AgentId,
        /// The agent's name, shown to the customer.
        display_name: String,
        /// Reply once durable.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// The assigned agent hands the session on.
    Transfer {
        /// The agent.
        agent: AgentId,
        /// Where the session waits next (a group, or one agent within one of their groups).
        step: Step,
        /// Reply once durable.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// The assigned agent ends the conversation and writes notes.
    WrapUp {
        /// The agent.
        agent: AgentId,
        /// Notes.
        summary: Option<String>,
        /// Reply once durable.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// The agent closes the session, or the customer leaves (`agent: None`).
    Close {
        /// The agent, or `None` for the customer.
        agent: Option<AgentId>,
        /// Notes.
        summary: Option<String>,
        /// Reply once durable.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// A step's timeout passed.
    StepTimeout {
        /// Which step it was armed for; stale timers are ignored.
        step_idx: usize,
    },
    /// The group lost its queue (restart): enqueue again if waiting.
    Requeue,
    /// A write finished.
    Durable {
        /// The highest sequence number the write carried.
        seq: u64,
        /// The outcome.
        result: Result<(), StoreError>,
    },
    /// Someone is typing: tell the other party, without storing anything.
    Typing {
        /// Who.
        typist: Typist,
        /// Ok once published (or when there is nobody to tell yet).
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// The customer rates the conversation, in wrap-up or closed, once.
    Rate {
        /// Who claims to be the session's customer.
        customer: CustomerId,
        /// 1 to 5.
        score: u8,
        /// What the customer wrote with it.
        comment: Option<String>,
        /// The ack of the `Rated` event, once durable.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// Periodic check whether the session has been idle long enough to stop.
    PassivationCheck,
    /// The current record.
    Snapshot {
        /// Reply port.
        reply: RpcReplyPort<Session>,
    },
    /// A phone call came in as this new session (see `call.rs`).
    StartCall {
        /// The caller's number.
        from: String,
        /// The caller's IVR digits; `""` for none.
        digits: String,
        /// The ack of the call's first event, once durable.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// Something happened to the call.
    CallEvent {
        /// What.
        event: CallEvent,
        /// Its ack, once durable.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// The call ended: records it (with the talk time) and ends the
    /// session as the call's end means (see `call.rs`).
    EndCall {
        /// Who ended it.
        by: CallEnd,
        /// Its ack, once durable.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// The assigned agent holds, resumes or hangs up the call (desktop or phone).
    AgentCall {
        /// Who asks; must hold the session.
        agent: AgentId,
        /// What.
        control: CallControl,
        /// Its ack, once durable.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// The call was open when the process stopped: end it as dropped.
    DropCall,
    /// What became of an agent's message sent through a channel account
    /// (see `delivery.rs`); ignored when it is no news.
    Delivery {
        /// The report.
        report: DeliveryReport,
        /// Ok once durable, or at once when it was no news.
        reply: RpcReplyPort<Result<(), ApiError>>,
    },
    /// A supervisor moves the waiting session or changes its priority
    /// (see `steering.rs`); refused unless it is queued or offered.
    Steer {
        /// Who asks (authorised by the caller).
        by: engine::supervision::Actor,
        /// What.
        request: SteerRequest,
        /// Why (checked by the caller).
        reason: String,
        /// The group the caller saw it waiting in (and authorised `by`
        /// for): refused when it waits elsewhere by now.
        seen_in: GroupId,
        /// The ack of the `steered` event, once durable (with its audit entry).
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// A supervisor starts following the session live, changes how, or
    /// stops (`mode` none); see `monitoring.rs`.
    Monitor {
        /// The supervisor (authorised by the caller).
        by: AgentId,
        /// How; none to stop.
        mode: Option<engine::supervision::MonitorMode>,
        /// To start or change: the group the caller saw the session in (and
        /// authorised `by` for); refused when it is elsewhere by now.
        seen_in: Option<GroupId>,
        /// The ack of the `monitored` event, once durable with its audit entry.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// A supervisor following in `whisper` or `barge` mode writes a note
    /// only the agent sees.
    Whisper {
        /// The supervisor.
        by: AgentId,
        /// Text.
        body: String,
        /// The supervisor's id for de-duplication.
        client_message_id: Option<String>,
        /// The ack, once durable.
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    },
    /// The check of the reply owed since `since` is due (`response.rs`).
    ResponseCheck {
        /// When the wait began; a check for an answered wait does nothing.
        since: Millis,
    },
    /// The reply owed now, if any: (first or next, due).
    ResponseStatus {
        /// Reply port.
        reply: RpcReplyPort<Option<(engine::routing::ResponseKind, Millis)>>,
    },
    /// Test hook: panic in the handler, as a bug would.
    #[cfg(test)]
    Panic,
}

/// How a Session actor starts.
pub enum SessionStart {
    /// A brand-new session (first message about to arrive); boxed to keep the enum small.
    New(Box<Session>),
    /// An existing session, loaded from the store after its actor failed:
    /// a waiting one enqueues again (its queue entry points at a dead actor).
    Rehydrate(SessionId),
    /// An existing session, loaded from the store because something is
    /// sent to it after it was passivated: a waiting one's queue entry is
    /// still in its group, so it only restores its routing plan.
    Reactivate(SessionId),
}

/// The Session actor; config only.
pub struct SessionActor {
    /// Shared context.
    pub shared: Arc<Shared>,
}

/// The Session actor's state.
pub struct SessionActorState {
    session: Session,
    customer: Arc<Customer>,
    contact: Option<Arc<Contact>>,
    /// Where it is in its routing plan, while it waits (and after).
    plan: Option<PlanCursor>,
    /// client message id → seq, for messages stored or in flight.
    client_ids: HashMap<String, u64>,
    /// seq → replies waiting for that write to be durable.
    waiters: BTreeMap<u64, Vec<Waiter>>,
    /// Events recorded but not yet sent to the writer.
    unwritten: Vec<Event>,
    /// Events written but not yet durable, published when they are.
    unpublished: BTreeMap<u64, Event>,
    /// Last time anything happened, for passivation.
    last_activity: Millis,
    /// The record as last known durable, so that a plain message does not
    /// rewrite the `sessions` row; `None` until the first write. Every write
    /// carries the record until one that carried it is durable: a write
    /// after a failed one must not store events the stored record contradicts.
    written: Option<Session>,
    /// One entry per write in flight, oldest first (the StoreWriter answers
    /// in order): the record it carried, if any.
    records_in_flight: VecDeque<Option<Session>>,
    /// Started by [`SessionStart::Reactivate`]: a waiting session's queue
    /// entry survived, so it is not enqueued again.
    reactivated: bool,
    /// When it last entered a queue (its last `queued` event), as read back
    /// by [`SessionActor::rehydrate`]; none for a transferred session. A
    /// session taken over from another node re-arms its step's timeout
    /// from it (the timer of the actor before is gone with that node).
    step_entered: Option<Millis>,
    /// This actor is in [`Shared::open_sessions`] as its customer's open
    /// session: it adds itself once, with the first customer message it
    /// takes, and removes itself when the session ends or passivates.
    ///
    /// [`Shared::open_sessions`]: crate::shared::Shared::open_sessions
    in_open_sessions: bool,
    /// A phone call (its first event is the call's start): never its
    /// customer's open chat session.
    call: bool,
    /// The session as the SLA figures last saw it: each recorded event
    /// compares the session with it ([`engine::sla::changes`]).
    sla_seen: engine::sla::SlaPoint,
    /// SLA changes by the seq of the event that made them, counted when
    /// that event is durable.
    sla_pending: VecDeque<(u64, Vec<engine::sla::SlaChange>)>,
    /// The call's end is recorded (the session may go on, in wrap-up).
    call_ended: bool,
    /// The call's talk time: connected to an agent, segment by segment.
    call_clock: call::TalkClock,
    /// The agent holds the caller (the caller hears hold audio).
    call_held: bool,
    /// The last reported state of each agent message on its way to a
    /// channel account, by the message's `seq`.
    deliveries: HashMap<u64, DeliveryState>,
    /// What supervisors did to its routing, as read back from the history
    /// (a restored plan follows it).
    steered: steering::Steered,
    /// Supervisors following the session live, and how (read back from
    /// the history on restart).
    monitors: HashMap<AgentId, engine::supervision::MonitorMode>,
    /// The agent reply the customer waits for, if any (see `response.rs`).
    owed: Option<response::Owed>,
    /// The timer of its check, cancelled when the wait ends.
    owed_check: Option<tokio::task::AbortHandle>,
    /// Store writes besides the events (an agent reply's outbox entry),
    /// sent with them by the next flush.
    unwritten_ops: Vec<store::WriteOp>,
    /// When this idle actor took itself out of `open_sessions` to passivate:
    /// it stops [`PASSIVATION_GRACE`] later if nothing happened meanwhile.
    uncached_at: Option<Millis>,
    /// A write failed, so memory ran ahead of the store. The writes still
    /// in flight are answered and published as their outcome comes; new
    /// work is refused meanwhile; then the actor fails and restarts from
    /// the store.
    failed: Option<StoreError>,
}

impl Actor for SessionActor {
    type Msg = SessionMessage;
    type State = SessionActorState;
    type Arguments = SessionStart;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        start: SessionStart,
    ) -> Result<Self::State, ActorProcessingErr> {
        let store = &self.shared.store;
        let reactivated = matches!(start, SessionStart::Reactivate(_));
        let (session, stored) = match start {
            SessionStart::New(session) => (*session, false),
            SessionStart::Rehydrate(id) | SessionStart::Reactivate(id) => {
                // Everything written before this point (by an earlier
                // incarnation, too) is durable before we read it back.
                crate::store_writer::write_and_wait(&self.shared.writer, Vec::new()).await?;
                let session = store
                    .get_session(id)
                    .await?
                    .ok_or(EngineError::UnknownSession(id.0))?;
                (session, true)
            }
        };
        let customer = store
            .get_customer(&session.customer_id)
            .await?
            .ok_or_else(|| EngineError::UnknownCustomer(session.customer_id.to_string()))?;
        let mut state = SessionActorState {
            customer: Arc::new(customer),
            contact: None,
            plan: None,
            client_ids: HashMap::new(),
            waiters: BTreeMap::new(),
            unwritten: Vec::new(),
            unpublished: BTreeMap::new(),
            last_activity: crate::clock::now(),
            written: stored.then(|| session.clone()),
            records_in_flight: VecDeque::new(),
            sla_seen: engine::sla::SlaPoint::of(&session),
            sla_pending: VecDeque::new(),
            session,
            reactivated,
            step_entered: None,
            in_open_sessions: false,
            call: false,
            call_ended: false,
            call_clock: call::TalkClock::default(),
            call_held: false,
            deliveries: HashMap::new(),
            unwritten_ops: Vec::new(),
            steered: steering::Steered::default(),
            monitors: HashMap::new(),
            owed: None,
            owed_check: None,
            uncached_at: None,
            failed: None,
        };
        if state.session.last_seq > 0 || state.session.state != SessionState::New {
            self.rehydrate(&mut state).await?;
        }
        let check_every = self
            .shared
            .config
            .passivate_after
            .min(self.shared.config.passivate_waiting_after)
            .min(Duration::from_secs(60))
            .max(Duration::from_millis(10));
        myself.send_interval(check_every, || SessionMessage::PassivationCheck);
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A waiting session that lost its actor (crash, restart) takes its
        // place in line again; an offer in flight is treated as lapsed.
        match state.session.state {
            SessionState::Offered => {
                if let Some(agent) = state.session.agent.clone() {
                    self.lapse_offer(&myself, state, agent)?;
                }
                // Back in line: its plan again, so that the step's timer
                // still finds a step to settle (or, taken over from a dead
                // node past its step's deadline, it overflows now).
                if state.session.state == SessionState::Queued {
                    self.restore_plan(state)?;
                }
            }
            SessionState::Queued if state.reactivated => self.restore_plan(state)?,
            SessionState::Queued | SessionState::Routing | SessionState::Transferred => {
                self.requeue(&myself, state)?
            }
            _ => {}
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(
            message,
            SessionMessage::PassivationCheck | SessionMessage::Durable { .. }
        ) {
            state.last_activity = crate::clock::now();
        }
        let message = match state.failed {
            Some(_) => match self.while_failed(state, message) {
                Some(message) => message,
                None => return Ok(()),
            },
            None => message,
        };
        match message {
            SessionMessage::CustomerMessage {
                body,
                client_message_id,
                channel,
                route,
                reply,
            } => {
                let result =
                    self.customer_message(&myself, state, body, client_message_id, channel, route);
                if result.is_ok() && !state.in_open_sessions {
                    // Open, and taking its customer's messages: the next one
                    // comes straight here.
                    self.shared
                        .open_sessions
                        .insert(state.session.customer_id.clone(), myself.clone());
                    state.in_open_sessions = true;
                }
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::AgentMessage {
                agent,
                body,
                client_message_id,
                reply,
            } => {
                let result = self.agent_message(&myself, state, agent, body, client_message_id);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::Offered {
                agent,
                deadline,
                group,
            } => {
                let from_its_group = state.session.group.as_ref() == Some(&group);
                // Offered to another agent already, by the group it waits
                // in: that group does not know of the earlier offer any more
                // (it restarted, or took over from a node that died, and
                // read its queue back), so the earlier offer lapses and this
                // one stands.
                if from_its_group
                    && state.session.state == SessionState::Offered
                    && let Some(earlier) = state.session.agent.clone()
                    && earlier != agent
                {
                    info!(session_id = %state.session.id, agent_id = %earlier, "an offer the group no longer knows of lapses for a new one");
                    self.tell_agent(
                        &earlier,
                        AgentMessage::Withdraw {
                            session: state.session.id,
                        },
                    );
                    self.lapse_offer(&myself, state, earlier)?;
                }
                // (The lapse above may have moved it on to its next step.)
                if from_its_group
                    && state.session.state == SessionState::Offered
                    && state.session.agent.as_ref() == Some(&agent)
                {
                    // The same offer again (a restarted group): it stands.
                } else if state.session.state == SessionState::Queued
                    && state.session.group.as_ref() == Some(&group)
                {
                    let effects = state.session.apply(
                        SessionEvent::Offer {
                            agent: agent.clone(),
                        },
                        crate::clock::now(),
                    )?;
                    self.run_effects(state, effects);
                    self.record(
                        state,
                        EventKind::Offered {
                            agent: agent.clone(),
                            deadline,
                        },
                    );
                    self.flush(&myself, state);
                } else {
                    // The session left the queue meanwhile: give the capacity back.
                    self.tell_agent(
                        &agent,
                        AgentMessage::Withdraw {
                            session: state.session.id,
                        },
                    );
                }
            }
            SessionMessage::OfferLapsed { agent } => {
                if state.session.state == SessionState::Offered
                    && state.session.agent.as_ref() == Some(&agent)
                {
                    self.lapse_offer(&myself, state, agent)?;
                }
            }
            SessionMessage::Accept {
                agent,
                display_name,
                reply,
            } => {
                let result = self.accept(&myself, state, agent, display_name);
                self.reply_unit_when_durable(state, result, reply);
            }
            SessionMessage::Transfer { agent, step, reply } => {
                let result = self.transfer(&myself, state, agent, step);
                self.reply_unit_when_durable(state, result, reply);
            }
            SessionMessage::WrapUp {
                agent,
                summary,
                reply,
            } => {
                let result = self
                    .check_assigned(state, &agent, "wrap up")
                    .and_then(|()| {
                        // Wrapping up a call that is still up hangs it up.
                        if state.session.state == SessionState::Assigned {
                            self.end_call_with_session(state, CallEnd::Agent);
                        }
                        let effects = state
                            .session
                            .apply(SessionEvent::WrapUp { summary }, crate::clock::now())?;
                        self.run_effects(state, effects);
                        // Wrapped up: no reply is owed any more.
                        self.answered(state);
                        Ok(self.record(state, EventKind::WrapUp))
                    });
                let result = result.inspect(|_| self.flush(&myself, state));
                self.reply_unit_when_durable(state, result, reply);
            }
            SessionMessage::Close {
                agent,
                summary,
                reply,
            } => {
                let result = self.close(&myself, state, agent, summary);
                self.reply_unit_when_durable(state, result, reply);
            }
            SessionMessage::StepTimeout { step_idx } => {
                self.step_timed_out(&myself, state, step_idx)?
            }
            SessionMessage::Requeue => {
                if matches!(
                    state.session.state,
                    SessionState::Queued | SessionState::Offered
                ) {
                    self.rejoin_queue(state)?;
                }
            }
            SessionMessage::Typing { typist, reply } => {
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(self.typing(state, typist));
            }
            SessionMessage::StartCall {
                from,
                digits,
                reply,
            } => {
                let result = self.start_call(&myself, state, from, digits);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::CallEvent { event, reply } => {
                let result = self.call_event(&myself, state, event);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::EndCall { by, reply } => {
                let result = self.end_call(&myself, state, by);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::AgentCall {
                agent,
                control,
                reply,
            } => {
                let result = self.agent_call(&myself, state, &agent, control);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::Delivery { report, reply } => {
                match self.delivery(&myself, state, report) {
                    Ok(Some(seq)) => self.reply_unit_when_durable(state, Ok(seq), reply),
                    // No news: nothing stored, nothing to wait for.
                    Ok(None) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            SessionMessage::DropCall => {
                if let Err(err) = self.drop_call(&myself, state) {
                    warn!(session_id = %state.session.id, error = %err, "an open call found at start could not be ended");
                }
            }
            SessionMessage::Rate {
                customer,
                score,
                comment,
                reply,
            } => {
                let result = self.rate(&myself, state, customer, score, comment);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::Steer {
                by,
                request,
                reason,
                seen_in,
                reply,
            } => {
                let result = self
                    .steer(&myself, state, by, request, reason, seen_in)
                    .map(|seq| (seq, false));
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::Monitor {
                by,
                mode,
                seen_in,
                reply,
            } => {
                let result = self
                    .monitor(&myself, state, by, mode, seen_in)
                    .map(|seq| (seq, false));
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::Whisper {
                by,
                body,
                client_message_id,
                reply,
            } => {
                let result = self.whisper(&myself, state, by, body, client_message_id);
                self.reply_when_durable(state, result, reply);
            }
            SessionMessage::ResponseCheck { since } => self.check_response(&myself, state, since),
            SessionMessage::ResponseStatus { reply } => {
                // The caller may have given up waiting.
                let _ = reply.send(Self::owed_now(state));
            }
            SessionMessage::Durable { seq, result } => self.durable(&myself, state, seq, result)?,
            SessionMessage::PassivationCheck => self.maybe_passivate(&myself, state),
            SessionMessage::Snapshot { reply } => {
                // The caller may have gone away; nothing to do then.
                let _ = reply.send(state.session.clone());
            }
            #[cfg(test)]
            SessionMessage::Panic => panic!("session {} panicked on purpose", state.session.id),
        }
        Ok(())
    }
}

impl SessionActor {
    /// Loads the message history so that sequence numbers continue and resent
    /// client ids are recognised, and rebuilds the routing context. Events
    /// an earlier incarnation could not tell stored or not are published
    /// now if the store holds them.
    async fn rehydrate(&self, state: &mut SessionActorState) -> Result<(), ActorProcessingErr> {
        let id = state.session.id;
        let messages = self.shared.store.messages(id, 0, usize::MAX).await?;
        let maybe_stored = self
            .shared
            .maybe_stored
            .lock()
            .expect("no panic while holding the lock")
            .remove(&id)
            .unwrap_or_default();
        let mut first_customer_message = None;
        let mut digits = String::new();
        let mut transferred = false;
        let mut owed = response::OwedSoFar::default();
        for message in &messages {
            state.session.last_seq = state.session.last_seq.max(message.seq);
            if let Some(client_id) = &message.client_message_id {
                state.client_ids.insert(client_id.clone(), message.seq);
            }
            if first_customer_message.is_none() && message.sender == Sender::Customer {
                first_customer_message = Some(message.body.clone());
            }
            if message.sender != Sender::System {
                owed.follow(&Event::from_stored(message).kind, message.at);
                continue;
            }
            let kind = Event::from_stored(message).kind;
            owed.follow(&kind, message.at);
            state.steered.follow(&kind);
            monitoring::follow(&mut state.monitors, &kind);
            match kind {
                EventKind::Call(CallEvent::Started { digits: keyed, .. }) if message.seq == 1 => {
                    state.call = true;
                    digits = keyed;
                }
                EventKind::Call(event) => self.track_call(state, &event, message.at),
                EventKind::Transferred { .. } => {
                    self.call_transferred(state, message.at);
                    transferred = true;
                }
                EventKind::Delivery(report) => {
                    state.deliveries.insert(report.of, report.state);
                }
                EventKind::Queued { .. } => state.step_entered = Some(message.at),
                // A whisper's id is in its JSON, not the row's column.
                EventKind::Whisper {
                    client_message_id: Some(client_id),
                    ..
                } => {
                    state.client_ids.insert(client_id, message.seq);
                }
                _ => {}
            }
        }
        if transferred {
            // Its plan was the transfer's, not the rules' that a restored
            // plan follows: no step timeout is re-armed from the rules.
            state.step_entered = None;
        }
        // After the history is read, so that a call's events also reach the
        // call's holder (`state.call` is known by now).
        for message in messages
            .iter()
            .filter(|message| maybe_stored.contains(&message.seq))
        {
            self.publish(state, &Event::from_stored(message));
        }
        state.contact = Some(Arc::new(Contact {
            channel: state.session.channel.clone(),
            customer: (*state.customer).clone(),
            message: first_customer_message.unwrap_or_default(),
            digits,
            at: state
                .session
                .times
                .created
                .unwrap_or_else(crate::clock::now),
        }));
        if let Some((kind, since, breached)) = owed.waiting()
            && !state.session.state.is_final()
        {
            self.owe(state, kind, since, breached);
        }
        debug!(session_id = %id, last_seq = state.session.last_seq, n_messages = messages.len(), "session rehydrated");
        Ok(())
    }

    fn customer_message(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        body: String,
        client_message_id: Option<String>,
        channel: Channel,
        route: Option<ReplyRoute>,
    ) -> Result<(u64, bool), ApiError> {
        if state.session.state.is_final() {
            return Err(ApiError::State(engine::session::TransitionError {
                session: state.session.id,
                state: state.session.state.as_str(),
                event: "add a customer message",
            }));
        }
        if let Some(seq) = client_message_id
            .as_ref()
            .and_then(|id| state.client_ids.get(id))
        {
            return Ok((*seq, true));
        }
        // Replies go where the customer last wrote from.
        state.session.reply_route = route;
        let kind = EventKind::Message {
            sender: Sender::Customer,
            body: body.clone(),
            client_message_id,
            channel: channel.clone(),
        };
        let seq = self.record(state, kind);
        if state.session.state == SessionState::New {
            state.contact = Some(Arc::new(Contact {
                channel,
                customer: (*state.customer).clone(),
                message: body,
                digits: String::new(),
                at: crate::clock::now(),
            }));
            self.route(state)?;
        }
        // After routing: the reply's target depends on the group.
        let at = state
            .unwritten
            .iter()
            .rev()
            .find(|event| event.seq == seq)
            .map_or_else(crate::clock::now, |event| event.at);
        self.customer_wrote(state, at);
        self.flush(myself, state);
        Ok((seq, false))
    }

    fn agent_message(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        agent: AgentId,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<(u64, bool), ApiError> {
        // A supervisor following the session writes to the customer (barge
        // mode; in another mode they hear why not).
        if state.monitors.contains_key(&agent) && state.session.agent.as_ref() != Some(&agent) {
            return self.barge(myself, state, agent, body, client_message_id);
        }
        self.check_assigned(state, &agent, "reply")?;
        if let Some(seq) = client_message_id
            .as_ref()
            .and_then(|id| state.client_ids.get(id))
        {
            return Ok((*seq, true));
        }
        let effects = state
            .session
            .apply(SessionEvent::AgentReplied, crate::clock::now())?;
        self.run_effects(state, effects);
        self.answered(state);
        let seq = self.write_to_customer(state, Sender::Agent(agent), body, client_message_id);
        self.flush(myself, state);
        Ok((seq, false))
    }

    /// Records a message from the contact centre (an agent's reply, a
    /// supervisor barging in) and sends it on through the customer's channel
    /// account when they wrote through one; its `seq`.
    pub(super) fn write_to_customer(
        &self,
        state: &mut SessionActorState,
        sender: Sender,
        body: String,
        client_message_id: Option<String>,
    ) -> u64 {
        let channel = state.session.channel.clone();
        let seq = self.record(
            state,
            EventKind::Message {
                sender,
                body: body.clone(),
                client_message_id,
                channel,
            },
        );
        self.send_through_route(state, seq, body);
        seq
    }

    /// The agent holds the session and may `action` it. The agent who held
    /// a session that has just ended (the customer left while the agent's
    /// request was on its way) hears `invalid_state`, not `not_your_session`.
    pub(super) fn check_assigned(
        &self,
        state: &SessionActorState,
        agent: &AgentId,
        action: &'static str,
    ) -> Result<(), ApiError> {
        let session = &state.session;
        let held = session.agent.as_ref() == Some(agent);
        if held && matches!(session.state, SessionState::Assigned | SessionState::WrapUp) {
            Ok(())
        } else if held && session.state.is_final() {
            Err(TransitionError {
                session: session.id,
                state: session.state.as_str(),
                event: action,
            }
            .into())
        } else {
            Err(ApiError::NotYourSession {
                agent: agent.clone(),
                session: state.session.id,
            })
        }
    }

    fn lapse_offer(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        agent: AgentId,
    ) -> Result<(), ApiError> {
        let now = crate::clock::now();
        let effects = state.session.apply(SessionEvent::OfferLapsed, now)?;
        self.run_effects(state, effects);
        // Stamped before the group hears of it and offers the next agent.
        self.record_at(
            state,
            EventKind::OfferLapsed {
                agent: agent.clone(),
            },
            now,
        );
        if let Some(group) = state.session.group.clone() {
            self.tell_group(
                &group,
                GroupMessage::OfferLapsed {
                    session: state.session.id,
                    agent,
                },
            );
        }
        self.flush(myself, state);
        self.overflow_if_due(myself, state)
    }

    fn accept(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        agent: AgentId,
        display_name: String,
    ) -> Result<u64, ApiError> {
        let effects = state.session.apply(
            SessionEvent::Accept {
                agent: agent.clone(),
            },
            crate::clock::now(),
        )?;
        self.run_effects(state, effects);
        if let Some(cursor) = &mut state.plan {
            cursor.answered();
        }
        if let Some(group) = state.session.group.clone() {
            self.tell_group(
                &group,
                GroupMessage::Answered {
                    session: state.session.id,
                },
            );
        }
        let seq = self.record(
            state,
            EventKind::Assigned {
                agent,
                display_name,
            },
        );
        // The first reply is owed from now; the agent hears when it is due.
        let at = state
            .unwritten
            .last()
            .map_or_else(crate::clock::now, |event| event.at);
        self.accepted(state, at);
        self.flush(myself, state);
        Ok(seq)
    }

    fn transfer(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        agent: AgentId,
        step: Step,
    ) -> Result<u64, ApiError> {
        self.check_assigned(state, &agent, "transfer")?;
        let now = crate::clock::now();
        let effects = state.session.apply(SessionEvent::Transfer, now)?;
        // Stamped before the effects release the agent.
        let seq = self.record_at(state, EventKind::Transferred { from: agent }, now);
        self.call_transferred(state, now);
        self.run_effects(state, effects);
        self.start_plan(state, RoutePlan::single(step))?;
        let seq = seq.max(state.session.last_seq);
        self.flush(myself, state);
        Ok(seq)
    }

    fn close(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        agent: Option<AgentId>,
        summary: Option<String>,
    ) -> Result<u64, ApiError> {
        let now = crate::clock::now();
        // An agent holding an offer must hear that it is gone: the session
        // forgets the agent when the customer leaves.
        let offered_to = match state.session.state {
            SessionState::Offered => state.session.agent.clone(),
            _ => None,
        };
        let effects = match &agent {
            Some(agent) => {
                self.check_assigned(state, agent, "close")?;
                state.session.apply(SessionEvent::Close { summary }, now)?
            }
            None if matches!(
                state.session.state,
                SessionState::Assigned | SessionState::WrapUp
            ) =>
            {
                state.session.apply(SessionEvent::Close { summary }, now)?
            }
            None => state.session.apply(SessionEvent::CustomerLeft, now)?,
        };
        // A call still up ends with its session: hung up by whoever closed it.
        self.end_call_with_session(
            state,
            if agent.is_some() {
                CallEnd::Agent
            } else {
                CallEnd::Caller
            },
        );
        // The end is stamped with the instant the engine applied it, before
        // the effects release the agent: the agent's next offer is later.
        if let (SessionState::Abandoned, Some(agent)) = (state.session.state, offered_to) {
            self.record_at(state, EventKind::OfferLapsed { agent }, now);
        }
        let kind = if state.session.state == SessionState::Abandoned {
            EventKind::Abandoned
        } else {
            EventKind::Closed {
                summary: state.session.summary.clone(),
            }
        };
        let seq = self.record_at(state, kind, now);
        self.run_effects(state, effects);
        state.owed = None;
        response::cancel_check(state);
        self.flush(myself, state);
        Ok(seq)
    }

    fn run_effects(&self, state: &SessionActorState, effects: Vec<SessionEffect>) {
        for effect in effects {
            match effect {
                SessionEffect::LeaveQueue(group) => self.tell_group(
                    &group,
                    GroupMessage::Leave {
                        session: state.session.id,
                    },
                ),
                SessionEffect::WithdrawOffer(agent) => self.tell_agent(
                    &agent,
                    AgentMessage::Withdraw {
                        session: state.session.id,
                    },
                ),
                SessionEffect::ReleaseAgent(agent) => self.tell_agent(
                    &agent,
                    AgentMessage::Release {
                        session: state.session.id,
                    },
                ),
            }
        }
    }
}

/// Stop reason of a session that closed or was abandoned.
pub const STOP_ENDED: &str = "ended";
/// Stop reason of a session that was idle long enough.
pub const STOP_PASSIVATED: &str = "passivated";

/// How long a passivating session's actor keeps running after it took itself
/// out of `open_sessions`: a caller that took it from there just before
/// (a lookup and a send, no await between) still reaches a running actor,
/// whose message is then taken and cancels the passivation.
pub(crate) const PASSIVATION_GRACE: std::time::Duration = std::time::Duration::from_millis(100);
