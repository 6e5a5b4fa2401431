//! Errors that name the thing that was wrong.

use thiserror::Error;

/// An input the engine refuses. Each variant names the offending value so that
/// the gateway can turn it into a clear error frame or HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// A channel name that is neither built in nor configured as a custom channel.
    #[error("unknown channel `{0}`")]
    UnknownChannel(String),
    /// A channel name that is not a valid identifier.
    #[error("invalid channel name `{0}`: use 1-32 characters of a-z, 0-9, `_` or `-`")]
    InvalidChannelName(String),
    /// An agent id that is not configured.
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    /// A skill group that is not configured.
    #[error("unknown skill group `{0}`")]
    UnknownGroup(String),
    /// A customer id that does not exist.
    #[error("unknown customer `{0}`")]
    UnknownCustomer(String),
    /// A session id that does not exist.
    #[error("unknown session `{0}`")]
    UnknownSession(u64),
    /// A field with an invalid value.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field, as the user wrote it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}
