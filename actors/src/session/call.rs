//! A session that is a phone call: it starts with the call (no customer
//! message), carries the caller's IVR digits into routing, records what
//! happens to the call, and is never its customer's open chat session —
//! the same customer's chat messages go to a session of their own.

use std::sync::Arc;

use engine::Millis;
use engine::ids::AgentId;
use engine::routing::Contact;
use engine::session::{SessionEvent, SessionState, TransitionError};
use ractor::ActorRef;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::error::ApiError;
use crate::event::{CallControl, CallEnd, CallEvent, EventKind};

impl SessionActor {
    /// The call came in: records it and routes the session, with the
    /// caller's digits in the contact. Once per session.
    pub(super) fn start_call(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        from: String,
        digits: String,
    ) -> Result<(u64, bool), ApiError> {
        if state.session.state != SessionState::New {
            return Err(TransitionError {
                session: state.session.id,
                state: state.session.state.as_str(),
                event: "start a call",
            }
            .into());
        }
        state.call = true;
        let seq = self.record(
            state,
            EventKind::Call(CallEvent::Started {
                from,
                digits: digits.clone(),
            }),
        );
        state.contact = Some(Arc::new(Contact {
            channel: state.session.channel.clone(),
            customer: (*state.customer).clone(),
            message: String::new(),
            digits,
            at: crate::clock::now(),
        }));
        self.route(state)?;
        self.flush(myself, state);
        Ok((seq, false))
    }

    /// Records what happened to the call (ringing, answered, digits, hold
    /// and its end, the last two as [`SessionActor::agent_call`] and
    /// [`SessionActor::end_call`] do). A hold or resume that changes nothing
    /// is answered as a duplicate and not recorded.
    pub(super) fn call_event(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        event: CallEvent,
    ) -> Result<(u64, bool), ApiError> {
        match event {
            CallEvent::Ended { by, .. } => return self.end_call(myself, state, by),
            CallEvent::Started { .. } => {
                return Err(self.call_refused(state, "record a second call start"));
            }
            _ => {}
        }
        if !state.call || state.call_ended || state.session.state.is_final() {
            return Err(self.call_refused(state, "record a call event"));
        }
        if let CallEvent::Answered { agent } = &event {
            // Only the agent who has the session answers it: a phone picked
            // up after a transfer or an end is too late.
            if state.session.state != SessionState::Assigned {
                return Err(self.call_refused(state, "answer a call"));
            }
            self.check_assigned(state, agent, "answer a call")?;
        }
        let unchanged = match event {
            CallEvent::Held => state.call_held,
            CallEvent::Resumed => !state.call_held,
            _ => false,
        };
        if unchanged {
            return Ok((state.session.last_seq, true));
        }
        let now = crate::clock::now();
        self.track_call(state, &event, now);
        let seq = self.record_at(state, EventKind::Call(event), now);
        self.flush(myself, state);
        Ok((seq, false))
    }

    /// The call ended: records who ended it and the talk time, then ends
    /// the session as that means. A waiting call is abandoned; a connected
    /// one goes to wrap-up (the agent writes notes, then closes); one in
    /// wrap-up or already over stays as it is. A second end is a duplicate.
    pub(super) fn end_call(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        by: CallEnd,
    ) -> Result<(u64, bool), ApiError> {
        if !state.call {
            return Err(self.call_refused(state, "end a call"));
        }
        if state.call_ended {
            return Ok((state.session.last_seq, true));
        }
        let now = crate::clock::now();
        let mut seq = self.record_call_end(state, by, now);
        match state.session.state {
            SessionState::Assigned => {
                let effects = state
                    .session
                    .apply(SessionEvent::WrapUp { summary: None }, now)?;
                self.run_effects(state, effects);
                seq = self.record_at(state, EventKind::WrapUp, now);
            }
            SessionState::WrapUp => {}
            _ if state.session.state.is_final() => {}
            _ => seq = self.close(myself, state, None, None)?,
        }
        self.flush(myself, state);
        Ok((seq, false))
    }

    /// The assigned agent holds, resumes or hangs up the call.
    pub(super) fn agent_call(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        agent: &AgentId,
        control: CallControl,
    ) -> Result<(u64, bool), ApiError> {
        if !state.call || state.call_ended {
            return Err(self.call_refused(state, "control a call"));
        }
        self.check_assigned(state, agent, "control a call")?;
        match control {
            CallControl::HangUp => self.end_call(myself, state, CallEnd::Agent),
            CallControl::Hold | CallControl::Resume
                if state.session.state != SessionState::Assigned =>
            {
                Err(self.call_refused(state, "hold or resume a call"))
            }
            CallControl::Hold => self.call_event(myself, state, CallEvent::Held),
            CallControl::Resume => self.call_event(myself, state, CallEvent::Resumed),
        }
    }

    /// Records the call's end if it is a call still up (an agent wrapping
    /// up or closing a live call hangs it up; so does the customer leaving).
    pub(super) fn end_call_with_session(&self, state: &mut SessionActorState, by: CallEnd) {
        if state.call && !state.call_ended {
            self.record_call_end(state, by, crate::clock::now());
        }
    }

    fn record_call_end(&self, state: &mut SessionActorState, by: CallEnd, now: Millis) -> u64 {
        let ended = CallEvent::Ended {
            by,
            talk_ms: state.call_clock.talk_ms(now),
        };
        self.track_call(state, &ended, now);
        self.record_at(state, EventKind::Call(ended), now)
    }

    /// What a call event changes in the session's view of its call (also
    /// applied to the stored history when the session starts again).
    pub(super) fn track_call(&self, state: &mut SessionActorState, event: &CallEvent, at: Millis) {
        match event {
            CallEvent::Answered { .. } => state.call_clock.connected(at),
            CallEvent::Held => state.call_held = true,
            CallEvent::Resumed => state.call_held = false,
            CallEvent::Ended { .. } => {
                state.call_clock.disconnected(at);
                state.call_ended = true;
            }
            CallEvent::Started { .. } | CallEvent::Ringing { .. } | CallEvent::Digits { .. } => {}
        }
    }

    /// The session was transferred: the agent's leg is gone, the caller waits again.
    pub(super) fn call_transferred(&self, state: &mut SessionActorState, at: Millis) {
        state.call_clock.disconnected(at);
        state.call_held = false;
    }

    fn call_refused(&self, state: &SessionActorState, event: &'static str) -> ApiError {
        TransitionError {
            session: state.session.id,
            state: if state.call {
                state.session.state.as_str()
            } else {
                "not a call"
            },
            event,
        }
        .into()
    }

    /// The call was found open when the process started: the process that
    /// held its media is gone. Records the drop, then ends the session as a
    /// caller's hang-up does (abandoned while waiting, closed once assigned,
    /// its agent freed).
    pub(super) fn drop_call(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
    ) -> Result<(), ApiError> {
        if state.session.state.is_final() {
            return Ok(());
        }
        // Connected until the process stopped: when that was is not known,
        // so the talk time counts up to now.
        self.end_call_with_session(state, CallEnd::Dropped);
        // An agent's wrap-up note stays; otherwise the record says why.
        let summary = (state.session.state != SessionState::WrapUp)
            .then(|| "call dropped: the process holding it stopped".to_owned());
        self.close(myself, state, None, summary)?;
        Ok(())
    }
}

/// A call's talk time: the agent legs it was connected through, one after
/// another (a transfer ends one, the next answer starts the next).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TalkClock {
    /// Talk time of the segments that ended.
    before_ms: u64,
    /// The current segment's start, while connected.
    connected_at: Option<Millis>,
}

impl TalkClock {
    fn connected(&mut self, at: Millis) {
        self.connected_at.get_or_insert(at);
    }

    fn disconnected(&mut self, at: Millis) {
        if let Some(since) = self.connected_at.take() {
            self.before_ms += (at - since).max(0) as u64;
        }
    }

    fn talk_ms(&self, now: Millis) -> u64 {
        self.before_ms
            + self
                .connected_at
                .map_or(0, |since| (now - since).max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::TalkClock;

    #[test]
    fn talk_time_adds_up_the_connected_segments() {
        let mut clock = TalkClock::default();
        assert_eq!(clock.talk_ms(1_000), 0, "never connected");
        clock.connected(1_000);
        clock.connected(1_500); // a second answer of the same leg changes nothing
        assert_eq!(clock.talk_ms(4_000), 3_000);
        clock.disconnected(4_000); // transferred
        clock.disconnected(4_500);
        assert_eq!(clock.talk_ms(9_000), 3_000, "waiting again is not talk");
        clock.connected(10_000);
        assert_eq!(clock.talk_ms(12_000), 5_000);
    }
}
