//! The generic signed webhook channel (kind `webhook`): any platform (an SMS
//! gateway, a LINE or Telegram bridge, a company's own app) posts customer
//! messages as signed JSON.
//!
//! One message:
//!
//! ```json
//! {"id": "m-1001", "from": "+8613800000001", "text": "hello", "sent_at": "2026-01-05T10:00:00Z", "display_name": "Li Wei"}
//! ```
//!
//! or a batch of 1 to [`MAX_BATCH`] of them, `{"messages": [ … ]}`. `id` is
//! the platform's id for the message (a retry with the same id is stored
//! once), `from` the customer's id on the platform, `display_name` optional.
//!
//! The body is signed as switchboard signs its own outbound webhooks
//! ([`crate::signature`]): `X-Switchboard-Signature: t=<unix seconds>,v1=<hex>`,
//! refused when `t` is more than `settings.tolerance_secs` (300) away from
//! the receive time.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine::secret::Secret;
use serde::Deserialize;

use crate::adapter::{
    Accepted, ChannelAccount, ChannelAdapter, Delivery, DeliveryFailure, InboundMessage,
    InboundRequest, OutboundMessage, PlatformAnswer, Received,
};
use crate::error::ChannelError;
use crate::limits::{self, InboundLimits};
use crate::registry::ChannelConfig;
use crate::signature;

/// The most messages one request may carry.
pub const MAX_BATCH: usize = 100;

/// The kind's own keys, `settings = { … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// How far a signature's `t` may be from the receive time, either way.
    pub tolerance_secs: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            tolerance_secs: 300,
        }
    }
}

/// One account of the webhook channel.
#[derive(Debug)]
pub struct WebhookAdapter {
    account: ChannelAccount,
    secret: Secret,
    settings: WebhookSettings,
    limits: InboundLimits,
}

/// A message as posted; every field optional here so that a missing one is
/// named by its path (`messages[2].from`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    id: Option<String>,
    from: Option<String>,
    text: Option<String>,
    sent_at: Option<String>,
    display_name: Option<String>,
}

impl WebhookAdapter {
    /// The adapter of one `[[channels]]` entry of kind `webhook`.
    pub fn new(
        account: ChannelAccount,
        secret: Secret,
        settings: WebhookSettings,
        limits: InboundLimits,
    ) -> WebhookAdapter {
        WebhookAdapter {
            account,
            secret,
            settings,
            limits,
        }
    }

    /// For the registry: checks the entry; errors name the key.
    pub(crate) fn build(
        account: ChannelAccount,
        entry: &ChannelConfig,
        limits: InboundLimits,
    ) -> Result<Arc<dyn ChannelAdapter>, (String, String)> {
        if entry.secret.len() < 16 {
            return Err(("secret".into(), "must be at least 16 characters".into()));
        }
        let settings: WebhookSettings = serde_path_to_error::deserialize(toml::Value::Table(
            entry.settings.clone(),
        ))
        .map_err(|err| {
            let path = err.path().to_string();
            let key = match path.as_str() {
                "." => "settings".to_string(),
                path => format!("settings.{path}"),
            };
            (key, err.into_inner().message().trim().to_string())
        })?;
        if settings.tolerance_secs == 0 {
            return Err((
                "settings.tolerance_secs".into(),
                "must be greater than 0".into(),
            ));
        }
        Ok(Arc::new(WebhookAdapter::new(
            account,
            entry.secret.clone(),
            settings,
            limits,
        )))
    }

    /// The messages of a verified body, each checked.
    fn parse(&self, body: &[u8]) -> Result<Vec<InboundMessage>, ChannelError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|err| ChannelError::malformed("body", format!("not JSON: {err}")))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(ChannelError::malformed(
                "body",
                "must be a JSON object: one message, or {\"messages\": [...]}",
            ));
        };
        let Some(batch) = object.remove("messages") else {
            let one = self.message(serde_json::Value::Object(object), "")?;
            return Ok(vec![one]);
        };
        if let Some(other) = object.keys().next() {
            return Err(ChannelError::malformed(
                other.as_str(),
                "a batch holds `messages` only",
            ));
        }
        let serde_json::Value::Array(items) = batch else {
            return Err(ChannelError::malformed("messages", "must be an array"));
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(ChannelError::malformed(
                "messages",
                format!("must hold 1 to {MAX_BATCH} messages, not {}", items.len()),
            ));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(idx, item)| self.message(item, &format!("messages[{idx}].")))
            .collect()
    }

    /// One message; `at` prefixes the field names in errors.
    fn message(&self, value: serde_json::Value, at: &str) -> Result<InboundMessage, ChannelError> {
        let field = |name: &str| format!("{at}{name}");
        let wire: WireMessage = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let reason = err.into_inner().to_string();
            match path.as_str() {
                "." => ChannelError::malformed(at.trim_end_matches('.').to_string(), reason),
                path => ChannelError::malformed(field(path), reason),
            }
        })?;
        let required = |value: Option<String>, name: &str| {
            value.ok_or_else(|| ChannelError::malformed(field(name), "is missing"))
        };
        let id = required(wire.id, "id")?;
        let from = required(wire.from, "from")?;
        let text = required(wire.text, "text")?;
        let sent_at = required(wire.sent_at, "sent_at")?;
        limits::check_message_id(&field("id"), &id)?;
        limits::check_external_id(&field("from"), &from)?;
        self.limits.check_text(&field("text"), &text)?;
        if let Some(name) = &wire.display_name {
            limits::check_display_name(&field("display_name"), name)?;
        }
        let sent_at = DateTime::parse_from_rfc3339(&sent_at)
            .map_err(|err| {
                ChannelError::malformed(field("sent_at"), format!("not an RFC 3339 time: {err}"))
            })?
            .with_timezone(&Utc);
        Ok(InboundMessage {
            external_id: from,
            text,
            platform_message_id: id,
            display_name: wire.display_name,
            sent_at,
        })
    }
}

#[async_trait]
impl ChannelAdapter for WebhookAdapter {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn receive(&self, request: &InboundRequest) -> Result<Received, ChannelError> {
        let is_json = request
            .header("content-type")
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ChannelError::Unsupported(
                "the body must be `Content-Type: application/json`".into(),
            ));
        }
        // The signature first: nothing of an unsigned body is read.
        signature::verify(
            self.secret.expose(),
            request.header(signature::HEADER),
            &request.body,
            request.received_at.timestamp(),
            self.settings.tolerance_secs,
        )?;
        Ok(Received {
            messages: self.parse(&request.body)?,
            immediate_answer: None,
        })
    }

    /// `200 {"accepted": [{"id", "session", "seq", "duplicate"}]}`, in the
    /// request's order.
    fn answer(&self, accepted: &[Accepted]) -> PlatformAnswer {
        let accepted: Vec<serde_json::Value> = accepted
            .iter()
            .map(|one| {
                serde_json::json!({
                    "id": one.platform_message_id,
                    "session": one.session,
                    "seq": one.seq,
                    "duplicate": one.duplicate,
                })
            })
            .collect();
        PlatformAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: serde_json::json!({ "accepted": accepted })
                .to_string()
                .into_bytes(),
        }
    }

    async fn deliver(&self, _message: OutboundMessage) -> Result<Delivery, DeliveryFailure> {
        Err(DeliveryFailure::NotSupported(self.account.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use engine::channel::Channel;

    use super::*;
    use crate::signature::SignatureError;

    const SECRET: &str = "0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn adapter() -> WebhookAdapter {
        WebhookAdapter::new(
            ChannelAccount {
                kind: "webhook".into(),
                name: "sms-gw".into(),
                channel: Channel::Sms,
            },
            Secret::from(SECRET),
            WebhookSettings::default(),
            InboundLimits { max_text_chars: 10 },
        )
    }

    fn request(body: &str, signature: Option<String>) -> InboundRequest {
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if let Some(signature) = signature {
            headers.push(("x-switchboard-signature".to_string(), signature));
        }
        InboundRequest {
            method: "POST".into(),
            query: String::new(),
            headers,
            body: body.as_bytes().to_vec(),
            received_at: DateTime::from_timestamp(NOW, 0).unwrap(),
        }
    }

    fn signed(body: &str) -> InboundRequest {
        request(
            body,
            Some(signature::header_value(SECRET, NOW, body.as_bytes())),
        )
    }

    fn message(id: &str, from: &str, text: &str) -> InboundMessage {
        InboundMessage {
            external_id: from.into(),
            text: text.into(),
            platform_message_id: id.into(),
            display_name: None,
            sent_at: DateTime::parse_from_rfc3339("2023-11-14T22:13:20Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn check(body: &str, expected: Result<Vec<InboundMessage>, (&str, &str)>) {
        let got = adapter()
            .receive(&signed(body))
            .map(|received| received.messages);
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{body}"),
            (Err(err), Err((field, message))) => {
                assert_eq!(err.field(), Some(field), "{body}: {err}");
                assert_eq!(err.to_string(), message, "{body}");
                assert_eq!(err.status(), 400);
            }
            (got, expected) => panic!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    const ONE: &str = r#"{"id":"m1","from":"+861","text":"hi","sent_at":"2023-11-14T22:13:20Z"}"#;

    #[test]
    fn bodies_become_messages_or_name_the_field_at_fault() {
        check(ONE, Ok(vec![message("m1", "+861", "hi")]));
        let mut named = message("m2", "+862", "你好");
        named.display_name = Some("Li Wei".into());
        check(
            r#"{"id":"m2","from":"+862","text":"你好","sent_at":"2023-11-15T06:13:20+08:00","display_name":"Li Wei"}"#,
            Ok(vec![named]),
        );
        check(
            &format!(
                r#"{{"messages":[{ONE},{}]}}"#,
                ONE.replace("m1", "m3").replace("hi", "again")
            ),
            Ok(vec![
                message("m1", "+861", "hi"),
                message("m3", "+861", "again"),
            ]),
        );
        check(
            "{\"id\": ",
            Err((
                "body",
                "invalid `body`: not JSON: EOF while parsing a value at line 1 column 7",
            )),
        );
        check(
            "[1]",
            Err((
                "body",
                "invalid `body`: must be a JSON object: one message, or {\"messages\": [...]}",
            )),
        );
        check(
            r#"{"id":"m1","text":"hi","sent_at":"2023-11-14T22:13:20Z"}"#,
            Err(("from", "invalid `from`: is missing")),
        );
        check(
            &format!(r#"{{"messages":[{ONE},{{"id":"m2","from":"+8","text":"x"}}]}}"#),
            Err((
                "messages[1].sent_at",
                "invalid `messages[1].sent_at`: is missing",
            )),
        );
        check(
            r#"{"id":"m1","from":5,"text":"hi","sent_at":"2023-11-14T22:13:20Z"}"#,
            Err((
                "from",
                "invalid `from`: invalid type: integer `5`, expected a string",
            )),
        );
        check(
            &ONE.replace("\"text\"", "\"txt\""),
            Err((
                "txt",
                "invalid `txt`: unknown field `txt`, expected one of `id`, `from`, `text`, `sent_at`, `display_name`",
            )),
        );
        check(
            &ONE.replace("2023-11-14T22:13:20Z", "yesterday"),
            Err((
                "sent_at",
                "invalid `sent_at`: not an RFC 3339 time: premature end of input",
            )),
        );
        check(
            &ONE.replace("hi", "   "),
            Err(("text", "invalid `text`: must not be empty")),
        );
        check(
            &ONE.replace("hi", "eleven chars"),
            Err((
                "text",
                "field `text`: 12 characters is over the limit of 10 (limits.max_body_chars)",
            )),
        );
        check(
            &ONE.replace("m1", &"x".repeat(129)),
            Err(("id", "invalid `id`: must be 1 to 128 bytes")),
        );
        check(
            r#"{"messages":[]}"#,
            Err((
                "messages",
                "invalid `messages`: must hold 1 to 100 messages, not 0",
            )),
        );
        let many = vec![ONE; 101].join(",");
        check(
            &format!(r#"{{"messages":[{many}]}}"#),
            Err((
                "messages",
                "invalid `messages`: must hold 1 to 100 messages, not 101",
            )),
        );
        check(
            &format!(r#"{{"messages":[{ONE}],"id":"m1"}}"#),
            Err(("id", "invalid `id`: a batch holds `messages` only")),
        );
        check(
            r#"{"messages":[1]}"#,
            Err((
                "messages[0]",
                "invalid `messages[0]`: invalid type: integer `1`, expected struct WireMessage",
            )),
        );
    }

    #[test]
    fn unsigned_or_unreadable_requests_are_refused_before_parsing() {
        let adapter = adapter();
        // A bad signature on a malformed body is a bad signature: nothing is read.
        let wrong = request(
            "{",
            Some(signature::header_value("another secret!!", NOW, b"{")),
        );
        let err = adapter.receive(&wrong).unwrap_err();
        assert_eq!(err, ChannelError::BadSignature(SignatureError::Mismatch));
        assert_eq!((err.status(), err.code()), (401, "bad_signature"));

        let missing = adapter.receive(&request(ONE, None)).unwrap_err();
        assert_eq!(missing, ChannelError::BadSignature(SignatureError::Missing));

        let old = request(
            ONE,
            Some(signature::header_value(SECRET, NOW - 301, ONE.as_bytes())),
        );
        let err = adapter.receive(&old).unwrap_err();
        assert_eq!((err.status(), err.code()), (401, "stale_timestamp"));
        let ahead = request(
            ONE,
            Some(signature::header_value(SECRET, NOW + 301, ONE.as_bytes())),
        );
        let err = adapter.receive(&ahead).unwrap_err();
        assert_eq!((err.status(), err.code()), (401, "future_timestamp"));

        let mut text = signed(ONE);
        text.headers[0].1 = "text/plain".into();
        let err = adapter.receive(&text).unwrap_err();
        assert_eq!((err.status(), err.code()), (415, "unsupported"));
        let mut charset = signed(ONE);
        charset.headers[0].1 = "application/json; charset=utf-8".into();
        assert!(adapter.receive(&charset).is_ok());
    }

    #[test]
    fn the_answer_lists_each_message_with_its_session() {
        let answer = adapter().answer(&[Accepted {
            platform_message_id: "m1".into(),
            session: "42".into(),
            seq: 3,
            duplicate: true,
        }]);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(
            String::from_utf8(answer.body).unwrap(),
            r#"{"accepted":[{"duplicate":true,"id":"m1","seq":3,"session":"42"}]}"#
        );
    }

    #[tokio::test]
    async fn delivery_is_not_built_yet_and_says_so() {
        let failure = adapter()
            .deliver(OutboundMessage {
                delivery_id: "d1".into(),
                external_id: "+861".into(),
                text: "hello".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "channel account `sms-gw` does not deliver replies"
        );
    }
}
