//! A session's messages as they are stored and replayed, and who wrote them:
//! the records the [`summary`](crate::summary) and [`ticket`](crate::ticket)
//! logic reads, kept here so that `engine` needs no store to use them.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::channel::Channel;
use crate::ids::{AgentId, SessionId};

/// A message of a session, as stored and replayed to a reconnecting client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Its place in the session; acks and resumes use it.
    pub seq: u64,
    /// Who wrote it.
    pub sender: Sender,
    /// The text.
    pub body: String,
    /// The sender's own id for it, kept so that a resend after a restart is
    /// still recognised.
    pub client_message_id: Option<String>,
    /// The channel it came in on or went out to (a session may move channels).
    pub channel: Channel,
    /// When the engine accepted it.
    pub at: Millis,
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The customer.
    Customer,
    /// An agent.
    Agent(AgentId),
    /// A supervisor who barged into the conversation (docs/supervisor.md):
    /// the customer sees it marked as the supervisor's.
    Supervisor(AgentId),
    /// The engine itself (queue position, transfer notices).
    System,
}
