//! The customer's satisfaction rating: a stored event with the next `seq`,
//! and the score on the session record. It arrives after wrap-up started,
//! often after the session closed and its actor stopped; the Directory then
//! re-activates the session from the store, and the actor stops again once
//! the rating is durable.

use engine::EngineError;
use engine::ids::CustomerId;
use engine::session::{SessionEvent, check_score};
use ractor::ActorRef;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::error::ApiError;
use crate::event::EventKind;

impl SessionActor {
    /// Records the rating; returns its `seq` (never a duplicate: a second
    /// rating is refused by the session's state machine).
    pub(super) fn rate(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        customer: CustomerId,
        score: u8,
        comment: Option<String>,
    ) -> Result<(u64, bool), ApiError> {
        // Another customer learns nothing, not even that the session exists.
        if customer != state.session.customer_id {
            return Err(EngineError::UnknownSession(state.session.id.0).into());
        }
        let score = check_score(score)?;
        let effects = state
            .session
            .apply(SessionEvent::Rate { score }, crate::clock::now())?;
        self.run_effects(state, effects);
        let seq = self.record(state, EventKind::Rated { score, comment });
        self.flush(myself, state);
        Ok((seq, false))
    }
}
