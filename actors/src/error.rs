//! Errors of the in-process API, each naming what was wrong.

use engine::EngineError;
use engine::ids::{AgentId, SessionId};
use engine::presence::AgentError;
use engine::session::TransitionError;
use engine::store::StoreError;
use thiserror::Error;

/// Why a request to the switchboard failed.
#[derive(Debug, Clone, Error)]
pub enum ApiError {
    /// Bad input: unknown channel, agent, group, customer or session, or an invalid field.
    #[error(transparent)]
    Invalid(#[from] EngineError),
    /// The session is not offered or assigned to this agent.
    #[error("session {session} is not assigned to agent {agent}")]
    NotYourSession {
        /// The agent.
        agent: AgentId,
        /// The session.
        session: SessionId,
    },
    /// The session's state does not allow it.
    #[error(transparent)]
    State(#[from] TransitionError),
    /// The agent's presence or capacity does not allow it.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The store failed; nothing was acknowledged.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The actor that owns the request stopped before answering (shutdown or a crash it will recover from); retry.
    #[error("{0} is unavailable; retry")]
    Unavailable(String),
}

impl<T> From<ractor::MessagingErr<T>> for ApiError {
    fn from(err: ractor::MessagingErr<T>) -> Self {
        ApiError::Unavailable(format!("actor ({err})"))
    }
}
