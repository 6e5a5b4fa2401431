//! How long what a customer sends may be, the same on every way in:
//! `POST /api/v1/inbound` and every channel adapter check these.

use crate::error::ChannelError;

/// Longest id of a customer on a channel (phone number, openid), in characters.
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;
/// Longest message id given by a sender (`client_message_id`, a platform's
/// message id), in bytes, as on the sockets.
pub const MAX_MESSAGE_ID_BYTES: usize = 128;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The limits that come from the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// `limits.max_body_chars`: the longest message text, in characters.
    pub max_text_chars: usize,
}

impl InboundLimits {
    /// Checks a message's text: not blank, at most `max_text_chars`.
    pub fn check_text(&self, field: &str, text: &str) -> Result<(), ChannelError> {
        if text.trim().is_empty() {
            return Err(ChannelError::malformed(field, "must not be empty"));
        }
        let n_chars = text.chars().count();
        if n_chars > self.max_text_chars {
            return Err(ChannelError::TooLong {
                field: field.to_string(),
                n_chars,
                max_chars: self.max_text_chars,
            });
        }
        Ok(())
    }
}

/// Checks a customer's id on a channel.
pub fn check_external_id(field: &str, id: &str) -> Result<(), ChannelError> {
    if id.trim().is_empty() || id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(ChannelError::malformed(
            field,
            format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} characters, not blank"),
        ));
    }
    Ok(())
}

/// Checks a sender's message id.
pub fn check_message_id(field: &str, id: &str) -> Result<(), ChannelError> {
    if id.is_empty() || id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(ChannelError::malformed(
            field,
            format!("must be 1 to {MAX_MESSAGE_ID_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Checks a display name.
pub fn check_display_name(field: &str, name: &str) -> Result<(), ChannelError> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ChannelError::malformed(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters, not blank"),
        ));
    }
    Ok(())
}
