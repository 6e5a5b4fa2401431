//! A session that is a phone call: it starts with the call (no customer
//! message), carries the caller's IVR digits into routing, records what
//! happens to the call, and is never its customer's open chat session —
//! the same customer's chat messages go to a session of their own.

use std::sync::Arc;

use engine::routing::Contact;
use engine::session::{SessionState, TransitionError};
use ractor::ActorRef;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::error::ApiError;
use crate::event::{CallEnd, CallEvent, EventKind};

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

    /// Records what happened to the call (ringing, answered, hold, digits,
    /// its end). A call's end after the session ended is still recorded: the
    /// caller may hang up after the agent closed the session.
    pub(super) fn call_event(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        event: CallEvent,
    ) -> Result<(u64, bool), ApiError> {
        let ended = matches!(event, CallEvent::Ended { .. });
        if !state.call || state.call_ended || (state.session.state.is_final() && !ended) {
            return Err(TransitionError {
                session: state.session.id,
                state: if state.call {
                    state.session.state.as_str()
                } else {
                    "not a call"
                },
                event: "record a call event",
            }
            .into());
        }
        state.call_ended |= ended;
        let seq = self.record(state, EventKind::Call(event));
        self.flush(myself, state);
        Ok((seq, false))
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
        if state.call && !state.call_ended {
            // Connected until the process stopped: when that was is not
            // known, so the talk time counts up to now.
            let talk_ms = state
                .session
                .times
                .answered
                .map_or(0, |answered| (crate::clock::now() - answered).max(0) as u64);
            state.call_ended = true;
            self.record(
                state,
                EventKind::Call(CallEvent::Ended {
                    by: CallEnd::Dropped,
                    talk_ms,
                }),
            );
        }
        // An agent's wrap-up note stays; otherwise the record says why.
        let summary = (state.session.state != SessionState::WrapUp)
            .then(|| "call dropped: the process holding it stopped".to_owned());
        self.close(myself, state, None, summary)?;
        Ok(())
    }
}
