//! Messages handed to their session without waiting for durability, so a
//! connection can go on (deliver events, read the next frame) while the
//! store commits. The message is in the session actor's mailbox when
//! `submit_*` returns: messages one caller submits one after the other are
//! stored in that order; the [`PendingAck`] resolves once it is durable.

use engine::channel::Channel;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::session::ReplyRoute;
use ractor::MessagingErr;
use ractor::concurrency::{OneshotReceiver, oneshot};

use super::{CALL_TIMEOUT, Switchboard};
use crate::directory::DirectoryMessage;
use crate::error::ApiError;
use crate::remote::{RemoteCall, SessionCall};
use crate::session::{Ack, SessionMessage};

/// The ack of a submitted message, once it is durable.
pub struct PendingAck {
    receiver: OneshotReceiver<Result<Ack, ApiError>>,
}

impl PendingAck {
    /// Waits for the ack (at most the handle's call timeout). The message
    /// is with its session by now, and its write may be with the store: an
    /// answer that does not come is [`ApiError::OutcomeUnknown`], never a
    /// claim that nothing was stored.
    pub async fn ack(self) -> Result<Ack, ApiError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ApiError::OutcomeUnknown(
                "the session stopped before it heard whether the message was stored".into(),
            )),
            Err(_) => Err(ApiError::OutcomeUnknown(format!(
                "the store did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl Switchboard {
    /// [`Switchboard::customer_message_as`], returning once the message is
    /// queued in its session (opening one if needed) rather than durable.
    pub async fn submit_customer_message(
        &self,
        customer: &CustomerId,
        channel: Channel,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<PendingAck, ApiError> {
        self.shared.channels.check(&channel)?;
        self.submit_from(customer.clone(), channel, body, client_message_id, None)
            .await
    }

    /// Puts a message of `customer` (channel already checked) in their open
    /// session's mailbox, opening a session if they have none. `route`: the
    /// channel account it came through, where agents' replies go.
    pub(super) async fn submit_from(
        &self,
        customer: CustomerId,
        channel: Channel,
        body: String,
        client_message_id: Option<String>,
        route: Option<ReplyRoute>,
    ) -> Result<PendingAck, ApiError> {
        let (sender, receiver) = oneshot();
        let mut message = SessionMessage::CustomerMessage {
            body,
            client_message_id,
            channel: channel.clone(),
            route,
            reply: sender.into(),
        };
        // In a cluster the customer's node knows their open session: the
        // message goes there, sent before this returns.
        if let Some((node, peers)) = self.shared.elsewhere(|p| p.customer(&customer)) {
            let Some((call, replier)) = SessionCall::split(message) else {
                unreachable!("a customer message has a reply port");
            };
            let call = RemoteCall::OpenSession {
                customer,
                channel,
                call,
            };
            crate::remote::answer_later(peers.call(node, call), replier);
            return Ok(PendingAck { receiver });
        }
        // The open session's actor as it last said, if it still runs; a
        // session that ended took itself out before its end was told.
        if let Some(session) = self.shared.open_sessions.get(&customer) {
            match session.send_message(message) {
                Ok(()) => return Ok(PendingAck { receiver }),
                // It stopped meanwhile (passivated, failed): ask the Directory.
                Err(MessagingErr::SendErr(returned)) => message = returned,
                Err(_) => return Err(ApiError::Unavailable("session stopped".into())),
            }
        }
        // The Directory finds or opens the session and hands it the message
        // (or the node that runs it, in a cluster); what goes wrong reaches
        // the ack.
        self.shared
            .directory()
            .cast(DirectoryMessage::OpenSessionHere {
                customer,
                channel,
                message,
            })
            .map_err(|_| ApiError::Unavailable("directory stopped".into()))?;
        Ok(PendingAck { receiver })
    }

    /// [`Switchboard::agent_message`], returning once the message is queued
    /// in its session rather than durable.
    pub async fn submit_agent_message(
        &self,
        agent: &AgentId,
        session: SessionId,
        body: String,
        client_message_id: Option<String>,
    ) -> Result<PendingAck, ApiError> {
        let (sender, receiver) = oneshot();
        let message = SessionMessage::AgentMessage {
            agent: agent.clone(),
            body,
            client_message_id,
            reply: sender.into(),
        };
        if let Some((node, peers)) = self.shared.elsewhere(|p| p.session(session)) {
            crate::remote::call_session_elsewhere(peers, node, session, message)?;
            return Ok(PendingAck { receiver });
        }
        let actor = self.session_actor(session).await?;
        actor
            .send_message(message)
            .map_err(|_| ApiError::Unavailable(format!("session {} stopped", session.0)))?;
        Ok(PendingAck { receiver })
    }
}
