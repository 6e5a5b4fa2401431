//! [`ChannelError`]: why a platform's request is refused. Each variant
//! has the HTTP status and stable code the platform is answered with, so a
//! platform's operator can tell a wrong secret from a clock problem from a
//! bad body.

use thiserror::Error;

use crate::signature::SignatureError;

/// A platform's request that is refused; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    /// The signature is missing, malformed or does not match (401).
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    /// The signature's timestamp is too old (a replay) or too far ahead (401).
    #[error("{0}")]
    Timestamp(SignatureError),
    /// The body does not follow the platform's schema (400).
    #[error("invalid `{field}`: {reason}")]
    Malformed {
        /// Where in the body: `from`, `messages[2].sent_at`; `body` for the whole.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A message's text is longer than `limits.max_body_chars` (400).
    #[error(
        "field `{field}`: {n_chars} characters is over the limit of {max_chars} (limits.max_body_chars)"
    )]
    TooLong {
        /// Where in the body.
        field: String,
        /// Its length.
        n_chars: usize,
        /// The limit.
        max_chars: usize,
    },
    /// The request is of a kind this adapter does not take (415): another
    /// content type, a message type it does not read.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl ChannelError {
    /// The HTTP status the platform is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ChannelError::BadSignature(_) | ChannelError::Timestamp(_) => 401,
            ChannelError::Malformed { .. } | ChannelError::TooLong { .. } => 400,
            ChannelError::Unsupported(_) => 415,
        }
    }

    /// The stable error code (as in switchboard's other error answers).
    pub fn code(&self) -> &'static str {
        match self {
            ChannelError::BadSignature(_) => "bad_signature",
            ChannelError::Timestamp(SignatureError::Future { .. }) => "future_timestamp",
            ChannelError::Timestamp(_) => "stale_timestamp",
            ChannelError::Malformed { .. } => "invalid",
            ChannelError::TooLong { .. } => "body_too_long",
            ChannelError::Unsupported(_) => "unsupported",
        }
    }

    /// The field at fault, for errors that have one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ChannelError::Malformed { field, .. } | ChannelError::TooLong { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }

    /// `400 invalid` naming `field`.
    pub fn malformed(field: impl Into<String>, reason: impl Into<String>) -> ChannelError {
        ChannelError::Malformed {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<SignatureError> for ChannelError {
    fn from(err: SignatureError) -> ChannelError {
        match err {
            SignatureError::Stale { .. } | SignatureError::Future { .. } => {
                ChannelError::Timestamp(err)
            }
            other => ChannelError::BadSignature(other),
        }
    }
}
