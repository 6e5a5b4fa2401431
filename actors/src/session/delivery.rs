//! Agents' messages to customers on message platforms. A session whose
//! customer last wrote through a channel account (`Session::reply_route`)
//! stores each agent message together with an outbox entry for that
//! account and a `queued` delivery event; the account's courier sends it
//! and reports back here what became of it (`sent`, `retrying`,
//! `delivered`, `failed` with the platform's reason), each report a stored
//! event the agent sees. Reports arrive after the session may have closed:
//! the Directory then re-activates it from the store, as for a rating.

use engine::EngineError;
use engine::outbox::{ChannelReply, OutboxEntry};
use ractor::ActorRef;
use store::WriteOp;

use super::{SessionActor, SessionActorState, SessionMessage};
use crate::error::ApiError;
use crate::event::{DeliveryReport, DeliveryState, EventKind};

impl SessionActor {
    /// When the customer's latest message came through a channel account,
    /// queues the agent message `seq` for it: the outbox entry goes in the
    /// same write as the message, and a `queued` event follows it.
    pub(super) fn send_through_route(&self, state: &mut SessionActorState, seq: u64, text: String) {
        let Some(route) = state.session.reply_route.clone() else {
            return;
        };
        let reply = ChannelReply {
            session: state.session.id,
            seq,
            to: route.to.clone(),
            text,
            context: route.context.clone(),
        };
        state
            .unwritten_ops
            .push(WriteOp::PutOutbox(OutboxEntry::channel_reply(
                &route,
                &reply,
                engine::now_millis(),
            )));
        state.deliveries.insert(seq, DeliveryState::Queued);
        self.record(
            state,
            EventKind::Delivery(DeliveryReport {
                of: seq,
                account: route.account,
                state: DeliveryState::Queued,
                code: None,
                reason: None,
            }),
        );
    }

    /// Records a courier's report on the agent message `report.of`; the
    /// event's `seq`, or `None` when the report is no news (a state already
    /// reported, one after a final state, a late earlier one).
    pub(super) fn delivery(
        &self,
        myself: &ActorRef<SessionMessage>,
        state: &mut SessionActorState,
        report: DeliveryReport,
    ) -> Result<Option<u64>, ApiError> {
        let Some(last) = state.deliveries.get(&report.of).copied() else {
            return Err(EngineError::Invalid {
                field: "of",
                reason: format!(
                    "message {} of session {} was not sent through a channel account",
                    report.of, state.session.id
                ),
            }
            .into());
        };
        if !last.is_followed_by(report.state) {
            return Ok(None);
        }
        state.deliveries.insert(report.of, report.state);
        let seq = self.record(state, EventKind::Delivery(report));
        self.flush(myself, state);
        Ok(Some(seq))
    }
}
