//! The durable half of a session: every event gets the next `seq`, goes to
//! the StoreWriter with the session record, and is acknowledged and published
//! only once the write is durable. Also passivation and the casts to groups
//! and agents.

use std::sync::Arc;

use engine::outbox::OutboxEntry;
use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use store::{Interaction, StoreError, WriteOp};
use tracing::{debug, info, warn};

use super::{
    Ack, PASSIVATION_GRACE, STOP_ENDED, STOP_PASSIVATED, SessionActor, SessionActorState,
    SessionMessage, Waiter,
};
use engine::ids::{AgentId, GroupId};
use engine::message::Sender;
use engine::session::{Session, SessionState};

use crate::agent::AgentMessage;
use crate::error::ApiError;
use crate::event::{Audience, CallEvent, Event, EventKind};
use crate::group::GroupMessage;
use crate::shared::millis;
use crate::store_writer::StoreWriterMessage;

impl SessionActor {
    /// Gives `kind` the next sequence number; it is written by the next flush.
    pub(super) fn record(&self, state: &mut SessionActorState, kind: EventKind) -> u64 {
        self.record_at(state, kind, crate::clock::now())
    }

    /// [`Self::record`] stamped `at`: the instant the engine applied what
    /// the event reports, when that came before other effects.
    pub(super) fn record_at(
        &self,
        state: &mut SessionActorState,
        kind: EventKind,
        at: engine::Millis,
    ) -> u64 {
        state.session.last_seq += 1;
        let seq = state.session.last_seq;
        if let EventKind::Message {
            client_message_id: Some(id),
            ..
        } = &kind
        {
            state.client_ids.insert(id.clone(), seq);
        }
        self.note_sla(state, seq);
        state.unwritten.push(Event {
            session: state.session.id,
            seq,
            at,
            kind,
        });
        seq
    }

    /// Sends every recorded event, and the session record if anything but its
    /// `last_seq` changed since the record last known durable, to the
    /// StoreWriter in one request; `Durable` comes back when it is committed.
    /// The messages are the truth for `seq` (rehydration takes the highest
    /// stored one), so a plain message costs one row, not two. Until a write
    /// carrying a changed record is durable, every write carries it: should
    /// that write fail, one sent after it never stores events that the
    /// stored record contradicts (an agent's message in a session stored as
    /// offered).
    pub(super) fn flush(&self, myself: &ActorRef<SessionMessage>, state: &mut SessionActorState) {
        let channel = state.session.channel.clone();
        let mut ops: Vec<WriteOp> =
            Vec::with_capacity(state.unwritten.len() + state.unwritten_ops.len() + 3);
        self.report_events(state);
        for event in state.unwritten.drain(..) {
            ops.push(WriteOp::AppendMessage(event.to_stored(&channel)));
            state.unpublished.insert(event.seq, event);
        }
        // In the same batch as the events that caused them (an agent's
        // reply and its outbox entry are stored together or not at all).
        let to_outbox = !state.unwritten_ops.is_empty();
        ops.append(&mut state.unwritten_ops);
        // A closed session re-activated for its rating has closed before,
        // and so has one whose closing write is in flight.
        let last_sent = state.records_in_flight.iter().rev().flatten().next();
        let closed_before = last_sent
            .or(state.written.as_ref())
            .is_some_and(|sent| sent.state.is_final());
        let record = state
            .written
            .as_ref()
            .is_none_or(|written| !same_record(written, &state.session))
            .then(|| state.session.clone());
        if let Some(record) = &record {
            ops.push(WriteOp::PutSession(record.clone()));
        }
        state.records_in_flight.push_back(record);
        if state.session.state.is_final() && !closed_before {
            ops.extend(self.closing_ops(state));
        }
        let seq = state.session.last_seq;
        let myself = myself.clone();
        let shared = to_outbox.then(|| self.shared.clone());
        let done: crate::store_writer::Completion = Box::new(move |result| {
            if let Some(shared) = shared
                && result.is_ok()
            {
                shared.outbox_written.notify_one();
            }
            // A stopped session needs no news: its next incarnation reads the store.
            let _ = myself.cast(SessionMessage::Durable { seq, result });
        });
        // The writer outlives every session; if it is gone the system is shutting down.
        let _ = self
            .shared
            .writer
            .cast(StoreWriterMessage::Write { ops, done });
    }

    /// Adds the outbox entries of the integration events among the events
    /// about to be written (`message.created`, `session.assigned`,
    /// `session.transferred`), for the endpoints that want them.
    fn report_events(&self, state: &mut SessionActorState) {
        let Some(encoder) = self.shared.events.get() else {
            return;
        };
        let now = engine::now_millis();
        for event in &state.unwritten {
            let event_type = match &event.kind {
                EventKind::Message { sender, .. } if *sender != Sender::System => "message.created",
                EventKind::Assigned { .. } => "session.assigned",
                EventKind::ResponseBreached { .. } => "sla.breached",
                EventKind::Transferred { .. } => "session.transferred",
                _ => continue,
            };
            if !encoder.wants(event_type) {
                continue;
            }
            let reported = crate::platform::PlatformEvent::Session {
                event_type,
                session: &state.session,
                event,
            };
            state.unwritten_ops.extend(
                encoder
                    .entries_for(&reported, now)
                    .into_iter()
                    .map(WriteOp::PutOutbox),
            );
        }
    }

    /// What closing writes besides the session: the customer's cross-channel
    /// history entry, the session-ended job (summary and webhooks), and the
    /// customer's last agent, for sticky routing next time.
    pub(super) fn closing_ops(&self, state: &mut SessionActorState) -> Vec<WriteOp> {
        let session = &state.session;
        let summary = session
            .summary
            .clone()
            .unwrap_or_else(|| session.state.as_str().to_owned());
        let mut ops = vec![WriteOp::RecordInteraction(Interaction {
            customer_id: session.customer_id.clone(),
            at: session.times.closed.unwrap_or_else(crate::clock::now),
            session_id: session.id,
            channel: session.channel.clone(),
            summary,
        })];
        // The summary and the `session.*` webhooks are made off the hot path
        // from this job, which a crash after this write does not lose.
        ops.push(WriteOp::PutOutbox(OutboxEntry::session_ended(
            session.id,
            session.state == SessionState::Abandoned,
            engine::now_millis(),
        )));
        if let Some(agent) = session
            .agent
            .clone()
            .filter(|_| session.times.answered.is_some())
        {
            let mut customer = (*state.customer).clone();
            customer.last_agent = Some(agent);
            ops.push(WriteOp::PutCustomer(customer.clone()));
            state.customer = Arc::new(customer);
        }
        ops
    }

    /// A write up to `seq` finished. A failed one is answered, and the
    /// actor fails once no write is in flight any more: a write sent after
    /// the failed one may well be stored, and its callers and subscribers
    /// hear so before the actor restarts from the store.
    ///
    /// A write with an unknown outcome may be stored: its callers hear
    /// that (and resend with the same client id, which the next incarnation
    /// recognises), and its events are left to the next incarnation, which
    /// publishes those the store holds ([`Shared::maybe_stored`]).
    ///
    /// [`Shared::maybe_stored`]: crate::shared::Shared::maybe_stored
    pub(super) fn durable(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        seq: u64,
        result: Result<(), StoreError>,
    ) -> Result<(), ActorProcessingErr> {
        // The writer answers in order: this is the oldest write in flight.
        let record = state.records_in_flight.pop_front().flatten();
        match result {
            Ok(()) => {
                if record.is_some() {
                    state.written = record;
                }
                self.stored(myself, state, seq)
            }
            Err(err) => {
                let not_published: Vec<u64> = state
                    .unpublished
                    .range(..=seq)
                    .map(|(seq, _)| *seq)
                    .collect();
                state.unpublished.retain(|event_seq, _| *event_seq > seq);
                if matches!(err, StoreError::OutcomeUnknown { .. }) {
                    self.shared
                        .maybe_stored
                        .lock()
                        .expect("no panic while holding the lock")
                        .entry(state.session.id)
                        .or_default()
                        .extend(not_published);
                }
                // Not known to be stored: neither published nor acknowledged.
                self.notify_waiters(state, seq, Err(err.clone()));
                warn!(session_id = %state.session.id, seq, error = %err, "session write failed; restarting from the store once the writes in flight are answered");
                state.failed.get_or_insert(err);
            }
        }
        match &state.failed {
            // Memory ran ahead of the store; start again from what is durable.
            Some(err) if state.unpublished.is_empty() => {
                if state.written.is_none()
                    && let Some(group) = state.session.group.clone()
                {
                    // Never stored: no next incarnation will take this
                    // place in line, so nobody may be offered it.
                    self.tell_group(
                        &group,
                        GroupMessage::Leave {
                            session: state.session.id,
                        },
                    );
                }
                Err(Box::new(err.clone()))
            }
            _ => Ok(()),
        }
    }

    /// A write up to `seq` is durable: its events are published and its
    /// callers answered.
    fn stored(&self, myself: &ActorRef<SessionMessage>, state: &mut SessionActorState, seq: u64) {
        let published: Vec<u64> = state
            .unpublished
            .range(..=seq)
            .map(|(seq, _)| *seq)
            .collect();
        for event_seq in published {
            let event = state.unpublished.remove(&event_seq).expect("listed above");
            while let Some((sla_seq, _)) = state.sla_pending.front()
                && *sla_seq <= event_seq
            {
                let (_, changes) = state.sla_pending.pop_front().expect("looked at");
                crate::metrics::record_sla(&self.shared, &state.session.channel, &changes);
            }
            self.publish(state, &event);
        }
        // After a failed write the store, not memory, says whether it ended.
        let ended = state.session.state.is_final()
            && state.failed.is_none()
            && state.unwritten.is_empty()
            && state.unpublished.is_empty();
        if ended {
            // Before anyone hears that the session ended: the customer's next
            // message must open a new session, not reach this one.
            self.shared
                .open_sessions
                .remove(&state.session.customer_id, myself.get_id());
            // The directory lives as long as the system.
            let _ =
                self.shared
                    .directory()
                    .cast(crate::directory::DirectoryMessage::SessionEnded {
                        session: state.session.id,
                        customer: state.session.customer_id.clone(),
                    });
        }
        self.notify_waiters(state, seq, Ok(()));
        if ended {
            info!(session_id = %state.session.id, state = state.session.state.as_str(), "session ended");
            myself.stop(Some(STOP_ENDED.to_owned()));
        }
    }

    /// What a session does with `message` after a write failed, until it
    /// restarts: requests are refused (nothing is stored), an offer is
    /// given back, and what needs no answer is left to the restarted
    /// session, which re-enters its queue or lapses its offer from what
    /// the store holds. Write outcomes and reads go on as usual (`Some`).
    pub(super) fn while_failed(
        &self,
        state: &SessionActorState,
        message: SessionMessage,
    ) -> Option<SessionMessage> {
        let session = state.session.id;
        let refusal = || {
            ApiError::Unavailable(format!(
                "session {session} (recovering from a failed write)"
            ))
        };
        // In every arm below: a caller that gave up needs no answer.
        match message {
            SessionMessage::CustomerMessage { reply, .. }
            | SessionMessage::AgentMessage { reply, .. }
            | SessionMessage::Rate { reply, .. }
            | SessionMessage::StartCall { reply, .. }
            | SessionMessage::CallEvent { reply, .. }
            | SessionMessage::EndCall { reply, .. }
            | SessionMessage::AgentCall { reply, .. }
            | SessionMessage::Steer { reply, .. }
            | SessionMessage::Monitor { reply, .. }
            | SessionMessage::Whisper { reply, .. } => {
                let _ = reply.send(Err(refusal()));
            }
            SessionMessage::DropCall => {
                tracing::warn!(session_id = %session, "a dropped call arrived while its session recovers from a failed write; it stays open");
            }
            SessionMessage::Accept { reply, .. }
            | SessionMessage::Transfer { reply, .. }
            | SessionMessage::WrapUp { reply, .. }
            | SessionMessage::Close { reply, .. }
            | SessionMessage::Delivery { reply, .. }
            | SessionMessage::Typing { reply, .. } => {
                let _ = reply.send(Err(refusal()));
            }
            SessionMessage::Offered { agent, .. } => {
                self.tell_agent(&agent, AgentMessage::Withdraw { session });
            }
            SessionMessage::OfferLapsed { .. }
            | SessionMessage::ResponseCheck { .. }
            | SessionMessage::StepTimeout { .. }
            | SessionMessage::Requeue
            | SessionMessage::PassivationCheck => {}
            message @ (SessionMessage::Durable { .. }
            | SessionMessage::Snapshot { .. }
            | SessionMessage::ResponseStatus { .. }) => {
                return Some(message);
            }
            #[cfg(test)]
            message @ SessionMessage::Panic => return Some(message),
        }
        None
    }

    /// Answers everyone waiting for writes up to `seq`.
    fn notify_waiters(
        &self,
        state: &mut SessionActorState,
        seq: u64,
        result: Result<(), StoreError>,
    ) {
        let done: Vec<u64> = state.waiters.range(..=seq).map(|(seq, _)| *seq).collect();
        for waiter_seq in done {
            for waiter in state.waiters.remove(&waiter_seq).unwrap_or_default() {
                waiter(result.clone());
            }
        }
    }

    /// The highest `seq` already published: every event up to it is durable
    /// and was sent to subscribers. An ephemeral event carries it, so that a
    /// client that remembers the last `seq` it saw never skips a stored event
    /// that is still in flight.
    pub(super) fn published_seq(&self, state: &SessionActorState) -> u64 {
        let first_pending = state
            .unpublished
            .keys()
            .next()
            .copied()
            .or_else(|| state.unwritten.first().map(|event| event.seq));
        first_pending.map_or(state.session.last_seq, |seq| seq - 1)
    }

    /// What changed in the SLA figures since the last recorded event, kept
    /// to be counted when event `seq` is durable.
    fn note_sla(&self, state: &mut SessionActorState, seq: u64) {
        let seen = &state.sla_seen;
        let session = &state.session;
        if seen.is_at(session) {
            return;
        }
        let groups = &self.shared.groups;
        let changes = engine::sla::changes(seen, session, |id| groups.get(id).map(|g| &**g));
        state.sla_seen = engine::sla::SlaPoint::of(session);
        if !changes.is_empty() {
            state.sla_pending.push_back((seq, changes));
        }
    }

    /// Sends a durable event to the customer and to the agents concerned.
    pub(super) fn publish(&self, state: &SessionActorState, event: &Event) {
        crate::metrics::record_event(event, &state.session.channel);
        let hub = &self.shared.hub;
        let to_customer = !matches!(
            event.kind,
            EventKind::Offered { .. }
                | EventKind::OfferLapsed { .. }
                | EventKind::Delivery(_)
                | EventKind::Steered { .. }
                | EventKind::Monitored { .. }
                | EventKind::Whisper { .. }
                | EventKind::ResponseBreached { .. }
        );
        if to_customer {
            hub.publish(
                &Audience::Customer(state.session.customer_id.clone()),
                event,
            );
        }
        let agent = match &event.kind {
            EventKind::Offered { agent, .. }
            | EventKind::OfferLapsed { agent }
            | EventKind::Assigned { agent, .. }
            | EventKind::Call(CallEvent::Ringing { agent } | CallEvent::Answered { agent }) => {
                Some(agent)
            }
            EventKind::Transferred { from } => Some(from),
            // Silent: the agent is not told live that someone reads along
            // (it is in the session's history for staff).
            EventKind::Monitored { .. } => None,
            _ => state.session.agent.as_ref(),
        };
        if let Some(agent) = agent {
            hub.publish(&Audience::Agent(agent.clone()), event);
        }
        // Supervisors following the session live see all of it (a monitor
        // who is also the agent above gets it once: sockets drop repeats).
        for supervisor in state.monitors.keys().filter(|s| Some(*s) != agent) {
            hub.publish(&Audience::Agent(supervisor.clone()), event);
        }
        // One who just stopped still hears that they did.
        if let EventKind::Monitored {
            by: engine::supervision::Actor::Supervisor(supervisor),
            mode: None,
        } = &event.kind
        {
            hub.publish(&Audience::Agent(supervisor.clone()), event);
        }
        if state.call {
            hub.publish(&Audience::Call(state.session.id), event);
        }
        if matches!(event.kind, EventKind::Closed { .. } | EventKind::Abandoned) {
            // A subscriber that falls behind misses ends rather than being
            // dropped: what follows an end is best-effort (see `Audience::Ended`).
            hub.publish_ephemeral(&Audience::Ended, event);
        }
    }

    pub(super) fn reply_when_durable(
        &self,
        state: &mut SessionActorState,
        result: Result<(u64, bool), ApiError>,
        reply: RpcReplyPort<Result<Ack, ApiError>>,
    ) {
        let session = state.session.id;
        match result {
            Err(err) => {
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(Err(err));
            }
            Ok((seq, duplicate)) => {
                let waiter: Waiter = Box::new(move |result| {
                    // As above: a caller that left needs no answer.
                    let _ = reply.send(
                        result
                            .map(|()| Ack {
                                session,
                                seq,
                                duplicate,
                            })
                            .map_err(ApiError::from),
                    );
                });
                self.wait_for(state, seq, waiter);
            }
        }
    }

    pub(super) fn reply_unit_when_durable(
        &self,
        state: &mut SessionActorState,
        result: Result<u64, ApiError>,
        reply: RpcReplyPort<Result<(), ApiError>>,
    ) {
        match result {
            Err(err) => {
                // The caller may have given up waiting; nothing to do then.
                let _ = reply.send(Err(err));
            }
            Ok(seq) => {
                let waiter: Waiter = Box::new(move |result| {
                    // As above: a caller that left needs no answer.
                    let _ = reply.send(result.map_err(ApiError::from));
                });
                self.wait_for(state, seq, waiter);
            }
        }
    }

    /// Runs `waiter` once `seq` is durable: now if it already is.
    pub(super) fn wait_for(&self, state: &mut SessionActorState, seq: u64, waiter: Waiter) {
        let pending = state.unpublished.contains_key(&seq)
            || state.unwritten.iter().any(|event| event.seq == seq);
        if pending {
            state.waiters.entry(seq).or_default().push(waiter);
        } else {
            waiter(Ok(()));
        }
    }

    pub(super) fn maybe_passivate(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) {
        let idle_ms = crate::clock::now() - state.last_activity;
        // A closed one is here only because something re-activated it (a
        // rating, a read). A waiting one keeps its queue entry in the group,
        // which re-activates it to offer it; its step timeout is delivered
        // through the Directory. Offered and routing sessions keep their
        // actor: something is about to happen to them.
        let idle_enough = match state.session.state {
            SessionState::Assigned
            | SessionState::WrapUp
            | SessionState::New
            | SessionState::Closed
            | SessionState::Abandoned => idle_ms >= millis(self.shared.config.passivate_after),
            SessionState::Queued => idle_ms >= millis(self.shared.config.passivate_waiting_after),
            _ => false,
        };
        let quiet =
            state.unwritten.is_empty() && state.unpublished.is_empty() && state.waiters.is_empty();
        if !(idle_enough && quiet) {
            return;
        }
        let now = crate::clock::now();
        match state.uncached_at {
            // Out of `open_sessions` for the grace, and nothing came since.
            Some(at) if state.last_activity <= at && now - at >= millis(PASSIVATION_GRACE) => {
                debug!(session_id = %state.session.id, idle_ms, "session passivated");
                myself.stop(Some(STOP_PASSIVATED.to_owned()));
            }
            // The grace runs; its check is on its way.
            Some(at) if state.last_activity <= at => {}
            _ => {
                // First out of `open_sessions`, so that the customer's next
                // message asks the Directory, which starts the session
                // again; the stop follows the grace, so that a message sent
                // through the entry just before is still taken.
                self.shared
                    .open_sessions
                    .remove(&state.session.customer_id, myself.get_id());
                state.in_open_sessions = false;
                state.uncached_at = Some(now);
                myself.send_after(PASSIVATION_GRACE, || SessionMessage::PassivationCheck);
            }
        }
    }

    pub(super) fn tell_group(&self, group: &GroupId, message: GroupMessage) {
        self.shared.tell_group(group, message);
    }

    pub(super) fn tell_agent(&self, agent: &AgentId, message: AgentMessage) {
        self.shared.tell_agent(agent, message);
    }
}

/// Equal but for `last_seq`. Destructured whole, so that a field added to
/// [`Session`] cannot be left out of the comparison (and never written).
fn same_record(a: &Session, b: &Session) -> bool {
    let Session {
        id,
        customer_id,
        channel,
        state,
        group,
        sla_group,
        agent,
        times,
        last_seq: _,
        transfers,
        summary,
        rating,
        reply_route,
        route,
    } = a;
    *id == b.id
        && *customer_id == b.customer_id
        && *channel == b.channel
        && *state == b.state
        && *times == b.times
        && *group == b.group
        && *agent == b.agent
        && *transfers == b.transfers
        && *summary == b.summary
        && *rating == b.rating
        && *reply_route == b.reply_route
        && *sla_group == b.sla_group
        && *route == b.route
}
