//! Property tests of the parsers: the signature header and the webhook
//! channel's body never panic, refuse with a clear error, and a valid
//! message round-trips.

use chrono::{DateTime, Utc};
use engine::channel::Channel;
use engine::secret::Secret;
use proptest::prelude::*;

use crate::adapter::{ChannelAccount, ChannelAdapter, InboundRequest};
use crate::limits::InboundLimits;
use crate::signature;
use crate::webhook::{WebhookAdapter, WebhookSettings};

const SECRET: &str = "0123456789abcdef";
const NOW: i64 = 1_700_000_000;

fn adapter() -> WebhookAdapter {
    WebhookAdapter::new(
        ChannelAccount {
            kind: "webhook".into(),
            name: "p".into(),
            channel: Channel::Sms,
        },
        Secret::from(SECRET),
        WebhookSettings::default(),
        InboundLimits {
            max_text_chars: 4000,
        },
        String::new(),
    )
    .unwrap()
}

fn signed(body: &[u8]) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                signature::HEADER.into(),
                signature::header_value(SECRET, NOW, body),
            ),
        ],
        body: body.to_vec(),
        received_at: DateTime::from_timestamp(NOW, 0).unwrap(),
    }
}

proptest! {
    #[test]
    fn any_header_is_accepted_or_refused_without_panicking(header in ".{0,200}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = signature::verify(SECRET, Some(&header), &body, NOW, 300);
    }

    #[test]
    fn any_signed_body_parses_or_is_a_400_naming_a_field(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(err) = adapter().receive(&signed(&body)) {
            prop_assert_eq!(err.status(), 400, "{}", err);
            prop_assert!(err.field().is_some_and(|field| !field.is_empty()), "{}", err);
        }
    }

    #[test]
    fn any_signed_json_object_parses_or_is_a_400_naming_a_field(
        keys in prop::collection::vec(prop::sample::select(vec!["id", "from", "text", "sent_at", "display_name", "messages", "x"]), 0..6),
        values in prop::collection::vec(prop_oneof![
            Just(serde_json::json!("a")),
            Just(serde_json::json!("")),
            Just(serde_json::json!("2023-11-14T22:13:20Z")),
            Just(serde_json::json!(5)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!([])),
            Just(serde_json::json!([{"id": "m"}])),
        ], 6),
    ) {
        let object: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .zip(values)
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        let body = serde_json::Value::Object(object).to_string();
        if let Err(err) = adapter().receive(&signed(body.as_bytes())) {
            prop_assert_eq!(err.status(), 400, "{}", err);
            prop_assert!(err.field().is_some_and(|field| !field.is_empty()), "{}", err);
        }
    }

    #[test]
    fn a_valid_message_round_trips(
        id in "[ -~]{1,128}",
        from in "[^\\s]{1,40}",
        text in "\\PC{0,50}[a-z]",
        name in proptest::option::of("[A-Za-z ]{0,20}[A-Z]"),
        secs in 0i64..4_000_000_000,
    ) {
        let sent_at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        let mut message = serde_json::json!({"id": id, "from": from, "text": text, "sent_at": sent_at.to_rfc3339()});
        if let Some(name) = &name {
            message["display_name"] = serde_json::json!(name);
        }
        let received = adapter().receive(&signed(message.to_string().as_bytes())).unwrap();
        prop_assert_eq!(received.messages.len(), 1);
        let parsed = &received.messages[0];
        prop_assert_eq!(&parsed.platform_message_id, &id);
        prop_assert_eq!(&parsed.external_id, &from);
        prop_assert_eq!(&parsed.text, &text);
        prop_assert_eq!(&parsed.display_name, &name);
        prop_assert_eq!(parsed.sent_at, sent_at);
    }
}
