//! Errors of the in-process API, each naming what was wrong, and the stable
//! codes the gateway maps them to.

use engine::EngineError;
use engine::ids::{AgentId, SessionId};
use engine::presence::AgentError;
use engine::session::TransitionError;
use store::StoreError;
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
    /// The store failed; nothing was stored. A store answer whose outcome
    /// is unknown is [`ApiError::OutcomeUnknown`] instead.
    #[error("store: {0}")]
    Store(StoreError),
    /// The actor that owns the request stopped before answering (shutdown or a crash it will recover from); retry.
    #[error("{0} is unavailable; retry")]
    Unavailable(String),
    /// A message went to the store, but whether it is stored is not known
    /// (no answer in time, the store's answer was lost, or its session
    /// stopped before it heard back):
    /// resend it with the same client message id, which is de-duplicated.
    #[error("{0}; it may or may not be stored: resend it with the same client message id")]
    OutcomeUnknown(String),
    /// A rate limit refused the request; the message says when to try again.
    #[error("limit `{what}` reached: {message}")]
    Limited {
        /// Which limit, as a stable snake_case name (`sessions_per_customer`).
        what: &'static str,
        /// What was counted and when the next request is allowed.
        message: String,
    },
    /// The node that runs the actor refused the request: its code and text,
    /// as that node's error said them (see [`ApiError::from_remote`]).
    #[error("{message}")]
    Remote {
        /// One of the codes of [`ApiError::code`].
        code: &'static str,
        /// The other node's error text.
        message: String,
    },
}

/// Every code [`ApiError::code`] gives, for errors that crossed from
/// another node.
const CODES: [&str; 14] = [
    "unknown_channel",
    "unknown_agent",
    "unknown_group",
    "unknown_customer",
    "unknown_session",
    "invalid",
    "not_your_session",
    "invalid_state",
    "agent_unavailable",
    "store_unavailable",
    "unavailable",
    "outcome_unknown",
    "limited",
    "too_many_sessions",
];

impl ApiError {
    /// A stable snake_case code for the kind of failure, for wire error frames
    /// and metrics; the display text is for people and may change.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | `unknown_channel`, `unknown_agent`, `unknown_group`, `unknown_customer`, `unknown_session` | no such thing (or not the caller's: a customer gets `unknown_session` for another customer's session) |
    /// | `invalid` | a field has a bad value |
    /// | `not_your_session` | the agent does not hold (or was not offered) the session |
    /// | `invalid_state` | the session's state does not allow it |
    /// | `agent_unavailable` | the agent's presence or capacity does not allow it |
    /// | `store_unavailable` | the store failed; nothing was acknowledged; retry |
    /// | `unavailable` | an actor stopped before answering; nothing was stored; retry |
    /// | `outcome_unknown` | a message may or may not be stored; resend it with the same client message id |
    /// | `limited` | a rate limit; see the variant's `what` |
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(err) => match err {
                EngineError::UnknownChannel(_) => "unknown_channel",
                EngineError::UnknownAgent(_) => "unknown_agent",
                EngineError::UnknownGroup(_) => "unknown_group",
                EngineError::UnknownCustomer(_) => "unknown_customer",
                EngineError::UnknownSession(_) => "unknown_session",
                EngineError::InvalidChannelName(_) | EngineError::Invalid { .. } => "invalid",
            },
            ApiError::NotYourSession { .. } => "not_your_session",
            ApiError::State(_) => "invalid_state",
            ApiError::Agent(AgentError::NotOffered { .. }) => "not_your_session",
            ApiError::Agent(_) => "agent_unavailable",
            ApiError::Store(_) => "store_unavailable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::OutcomeUnknown(_) => "outcome_unknown",
            ApiError::Limited { .. } => "limited",
            ApiError::Remote { code, .. } => code,
        }
    }

    /// The error another node answered with: its code (an unknown code,
    /// from a newer node, reads as `unavailable`) and its text. The per-
    /// customer session limit stays [`ApiError::Limited`], so that callers
    /// tell it apart as they do here.
    pub fn from_remote(error: crate::remote::RemoteError) -> ApiError {
        if error.code == "too_many_sessions" {
            return ApiError::Limited {
                what: "sessions_per_customer",
                message: error.message,
            };
        }
        let code = CODES
            .iter()
            .find(|code| **code == error.code)
            .copied()
            .unwrap_or("unavailable");
        ApiError::Remote {
            code,
            message: error.message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::OutcomeUnknown { reason } => ApiError::OutcomeUnknown(reason),
            other => ApiError::Store(other),
        }
    }
}

impl<T> From<ractor::MessagingErr<T>> for ApiError {
    fn from(err: ractor::MessagingErr<T>) -> Self {
        ApiError::Unavailable(format!("actor ({err})"))
    }
}

#[cfg(test)]
mod tests {
    use engine::channel::Channel;

    use super::*;

    fn check(err: ApiError, code: &str, text: &str) {
        assert_eq!((err.code(), err.to_string().as_str()), (code, text));
    }

    #[test]
    fn every_variant_has_a_stable_code_and_a_lowercase_message() {
        let ann = AgentId::new("ann");
        let cases: Vec<(ApiError, &str, &str)> = vec![
            (
                EngineError::UnknownChannel("fax".into()).into(),
                "unknown_channel",
                "unknown channel `fax`",
            ),
            (
                EngineError::InvalidChannelName("F X".into()).into(),
                "invalid",
                "invalid channel name `F X`: use 1-32 characters of a-z, 0-9, `_` or `-`",
            ),
            (
                EngineError::UnknownAgent("zed".into()).into(),
                "unknown_agent",
                "unknown agent `zed`",
            ),
            (
                EngineError::UnknownGroup("nope".into()).into(),
                "unknown_group",
                "unknown skill group `nope`",
            ),
            (
                EngineError::UnknownCustomer("c9".into()).into(),
                "unknown_customer",
                "unknown customer `c9`",
            ),
            (
                EngineError::UnknownSession(7).into(),
                "unknown_session",
                "unknown session `7`",
            ),
            (
                EngineError::Invalid {
                    field: "score",
                    reason: "must be 1 to 5, got 9".into(),
                }
                .into(),
                "invalid",
                "invalid `score`: must be 1 to 5, got 9",
            ),
            (
                ApiError::NotYourSession {
                    agent: ann.clone(),
                    session: SessionId(7),
                },
                "not_your_session",
                "session 7 is not assigned to agent ann",
            ),
            (
                TransitionError {
                    session: SessionId(7),
                    state: "closed",
                    event: "rate again",
                }
                .into(),
                "invalid_state",
                "session 7: cannot rate again while closed",
            ),
            (
                AgentError::NotOffered {
                    agent: ann.clone(),
                    session: SessionId(7),
                }
                .into(),
                "not_your_session",
                "session 7 is not offered to agent ann",
            ),
            (
                AgentError::NoCapacity {
                    agent: ann.clone(),
                    channel: Channel::Phone,
                    presence: "away",
                }
                .into(),
                "agent_unavailable",
                "agent ann cannot take a phone session now (away)",
            ),
            (
                AgentError::SessionsOpen {
                    agent: ann,
                    n_sessions: 2,
                }
                .into(),
                "agent_unavailable",
                "agent ann still holds 2 session(s); close or transfer them first",
            ),
            (
                StoreError::Closed.into(),
                "store_unavailable",
                "store: store is closed",
            ),
            (
                StoreError::OutcomeUnknown {
                    reason: "scylla: writing a batch: request timed out".into(),
                }
                .into(),
                "outcome_unknown",
                "scylla: writing a batch: request timed out; it may or may not be stored: \
                 resend it with the same client message id",
            ),
            (
                ApiError::Unavailable("session 7".into()),
                "unavailable",
                "session 7 is unavailable; retry",
            ),
            (
                ApiError::OutcomeUnknown("session 7 did not answer in time".into()),
                "outcome_unknown",
                "session 7 did not answer in time; it may or may not be stored: \
                 resend it with the same client message id",
            ),
            (
                ApiError::Limited {
                    what: "sessions_per_customer",
                    message: "customer `plain` opened 30 new sessions within the last hour; \
                              the next is allowed in 60 s"
                        .into(),
                },
                "limited",
                "limit `sessions_per_customer` reached: customer `plain` opened 30 new sessions \
                 within the last hour; the next is allowed in 60 s",
            ),
        ];
        for (err, code, text) in cases {
            check(err, code, text);
        }
    }
}
