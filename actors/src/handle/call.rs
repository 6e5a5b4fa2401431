//! Phone calls through the handle: a call is a session of its own on
//! `phone`, opened by the call rather than by a message, whose caller is
//! recognised by number like any channel identity.

use std::sync::atomic::{AtomicU64, Ordering};

use engine::channel::Channel;
use engine::customer::Customer;
use engine::ids::{AgentId, CustomerId, SessionId};
use store::WriteOp;

use super::{Switchboard, call};
use crate::directory::DirectoryMessage;
use crate::error::ApiError;
use crate::event::{Audience, CallControl, CallEnd, CallEvent, Subscription};
use crate::session::SessionMessage;

/// A call as it comes in, for [`Switchboard::start_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStart {
    /// The caller's number (P-Asserted-Identity, else From): the customer's
    /// `phone` identity. `""` for a withheld number: the call is then a new
    /// customer of its own, with no identity to be found by.
    pub number: String,
    /// The caller's name as signalled, for a customer the call creates.
    pub display_name: Option<String>,
    /// What the caller keyed in the IVR menu (`contact.digits` in rules).
    pub digits: String,
}

/// The session a call became.
#[derive(Debug)]
pub struct CallSession {
    /// The session.
    pub session: SessionId,
    /// The `seq` of its first event, the call's start.
    pub seq: u64,
    /// Every durable event of the session from its first on (offers to
    /// ring, the agent's hang-up or hold from the desktop, transfers, the
    /// end): what the holder of the call's legs acts on. Taken before the
    /// call is routed, so no offer is missed.
    pub events: Subscription,
}

impl Switchboard {
    /// A call came in: finds the caller by number (or creates them; an
    /// anonymous caller is a new customer every time), opens
    /// a session of its own for the call (a caller's open chat is left
    /// alone), records the call's start and routes it by the same rules as
    /// every contact, with `contact.digits`. Returns once the start is
    /// durable, with the customer.
    pub async fn start_call(
        &self,
        start: CallStart,
    ) -> Result<(CustomerId, CallSession), ApiError> {
        let customer = if start.number.is_empty() {
            self.anonymous_caller(start.display_name.as_deref()).await?
        } else {
            self.customer_by_identity(
                &Channel::Phone,
                &start.number,
                start.display_name.as_deref(),
            )
            .await?
        };
        let actor = self
            .call_directory(|reply| DirectoryMessage::OpenCall {
                customer: customer.clone(),
                reply,
            })
            .await??;
        let session = call(&actor, |reply| SessionMessage::Snapshot { reply })
            .await?
            .id;
        let events = self.subscribe_call(session);
        let started = call(&actor, |reply| SessionMessage::StartCall {
            from: start.number,
            digits: start.digits,
            reply,
        })
        .await
        .and_then(|result| result);
        let ack = match started {
            Ok(ack) => ack,
            Err(err) => {
                // The caller is refused; a session that got as far as a
                // queue must not wait there for nobody. Best effort: an
                // actor that is gone left nothing queued to end.
                let _ = actor.cast(SessionMessage::DropCall);
                return Err(err);
            }
        };
        Ok((
            customer,
            CallSession {
                session: ack.session,
                seq: ack.seq,
                events,
            },
        ))
    }

    /// Records what happened to a call (ringing, answered, digits; hold,
    /// resume and the end as [`Switchboard::call_control`] and
    /// [`Switchboard::end_call`] do) in its session's history; returns the
    /// event's `seq` once durable.
    pub async fn call_event(&self, session: SessionId, event: CallEvent) -> Result<u64, ApiError> {
        let ack = self
            .call_session(session, |reply| SessionMessage::CallEvent { event, reply })
            .await??;
        Ok(ack.seq)
    }

    /// A customer for one call whose number is withheld: `phone:anonymous-…`,
    /// unique (start time and a counter), without identities, so two
    /// anonymous callers are never one customer and never share its limits.
    async fn anonymous_caller(&self, display_name: Option<&str>) -> Result<CustomerId, ApiError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let now = crate::clock::now();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = CustomerId::new(format!("phone:anonymous-{:x}-{}-{n}", now, self.node_id()));
        let mut customer = Customer::new(id.clone(), display_name.unwrap_or("Anonymous caller"));
        customer.created_at = now;
        self.write(vec![WriteOp::PutCustomer(customer)]).await?;
        Ok(id)
    }

    /// The call ended (`by` the caller, the agent, or lost): records it with
    /// the talk time and ends the session accordingly — a waiting call is
    /// abandoned, a connected one goes to wrap-up. Ending an ended call
    /// does nothing. Returns the last `seq` once durable.
    pub async fn end_call(&self, session: SessionId, by: CallEnd) -> Result<u64, ApiError> {
        let ack = self
            .call_session(session, |reply| SessionMessage::EndCall { by, reply })
            .await??;
        Ok(ack.seq)
    }

    /// The assigned agent holds, resumes or hangs up a call (from the
    /// desktop, or from their phone through the voice crate). The session
    /// records it; the call's holder hears of it on [`Audience::Call`] and
    /// acts. A hold of a held call is a no-op.
    pub async fn call_control(
        &self,
        agent: &AgentId,
        session: SessionId,
        control: CallControl,
    ) -> Result<u64, ApiError> {
        let agent = agent.clone();
        let ack = self
            .call_session(session, |reply| SessionMessage::AgentCall {
                agent,
                control,
                reply,
            })
            .await??;
        Ok(ack.seq)
    }

    /// Every durable event of `session` from now on, if it is a call.
    pub fn subscribe_call(&self, session: SessionId) -> Subscription {
        self.shared.hub.subscribe(
            Audience::Call(session),
            self.shared.config.subscriber_buffer,
        )
    }
}
