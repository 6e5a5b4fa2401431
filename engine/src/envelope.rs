//! The unified message envelope: what every channel adapter produces.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;

/// One inbound customer message, normalised. The product brief's example
/// deserializes as-is:
/// `{"channel":"wechat","customer_id":"12345","message":"我的订单何时发货?","timestamp":"2023-10-01T10:00:00Z"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Where the message came from.
    pub channel: Channel,
    /// The customer's id *on that channel* (WeChat openid, phone number, web
    /// visitor id); resolved to one customer through `customer_identities`.
    pub customer_id: String,
    /// The text. Attachments are links inside it for now.
    pub message: String,
    /// When the customer sent it, as the channel reports it.
    pub timestamp: DateTime<Utc>,
    /// The sender's own id for this message, so that a resend after a
    /// reconnect is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    /// A display name the channel knows for the sender, used when the customer is new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_briefs_example_deserializes_as_is() {
        let json = r#"{"channel":"wechat","customer_id":"12345","message":"我的订单何时发货?","timestamp":"2023-10-01T10:00:00Z"}"#;
        let envelope: Envelope = serde_json::from_str(json).unwrap();
        assert_eq!(envelope.channel, Channel::Wechat);
        assert_eq!(envelope.customer_id, "12345");
        assert_eq!(envelope.message, "我的订单何时发货?");
        assert_eq!(envelope.timestamp.timestamp(), 1_696_154_400);
        assert_eq!(envelope.client_message_id, None);
        // And it serializes back to the same JSON.
        assert_eq!(serde_json::to_string(&envelope).unwrap(), json);
    }

    #[test]
    fn bad_envelopes_name_the_field() {
        for (json, expected) in [
            (
                r#"{"channel":"wechat","message":"x","timestamp":"2023-10-01T10:00:00Z"}"#,
                "missing field `customer_id`",
            ),
            (
                r#"{"channel":"No Such","customer_id":"1","message":"x","timestamp":"2023-10-01T10:00:00Z"}"#,
                "invalid channel name `No Such`",
            ),
            (
                r#"{"channel":"web","customer_id":"1","message":"x","timestamp":"yesterday"}"#,
                "input contains invalid characters",
            ),
            (
                r#"{"channel":"web","customer_id":"1","message":"x","timestamp":"2023-10-01T10:00:00Z","extra":1}"#,
                "unknown field `extra`",
            ),
        ] {
            let err = serde_json::from_str::<Envelope>(json)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }
}
