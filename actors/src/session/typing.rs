//! Typing indicators: published to the other party straight away, never
//! stored, and without a `seq` of their own.

use engine::EngineError;
use engine::message::Sender;
use engine::session::SessionState;

use super::{SessionActor, SessionActorState, Typist};
use crate::error::ApiError;
use crate::event::{Audience, Event, EventKind};

impl SessionActor {
    /// The customer's typing goes to the assigned agent (nobody, before one
    /// accepted); the assigned agent's typing goes to the customer.
    pub(super) fn typing(&self, state: &SessionActorState, typist: Typist) -> Result<(), ApiError> {
        let session = &state.session;
        let (sender, audience) = match typist {
            Typist::Customer(customer) => {
                if customer != session.customer_id {
                    return Err(EngineError::UnknownSession(session.id.0).into());
                }
                let assigned =
                    matches!(session.state, SessionState::Assigned | SessionState::WrapUp);
                match session.agent.clone().filter(|_| assigned) {
                    Some(agent) => (Sender::Customer, Audience::Agent(agent)),
                    None => return Ok(()),
                }
            }
            Typist::Agent(agent) => {
                self.check_assigned(state, &agent, "type")?;
                let audience = Audience::Customer(session.customer_id.clone());
                (Sender::Agent(agent), audience)
            }
        };
        let event = Event {
            session: session.id,
            seq: self.published_seq(state),
            at: crate::clock::now(),
            kind: EventKind::Typing { sender },
        };
        self.shared.hub.publish_ephemeral(&audience, &event);
        Ok(())
    }
}
