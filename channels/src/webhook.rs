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
//!
//! Replies go out the same way ([`WebhookAdapter::deliver`]): a signed `POST`
//! to `base_url` of `{"delivery_id", "to", "text"}` with `Idempotency-Key:
//! <delivery_id>`. A 2xx answer is a delivery (its JSON `id`, if any, the
//! platform's id); 408, 429, 5xx, no answer within `settings.timeout_ms`
//! are worth a retry; another 4xx is a refusal with the platform's reason.
//! The outbox calls it for each agent reply to a customer of the account
//! (docs/channels.md, "Replies and their delivery").

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine::secret::Secret;
use serde::Deserialize;

use crate::adapter::{
    Accepted, ChannelAccount, ChannelAdapter, Delivery, DeliveryFailure, InboundMessage,
    InboundRequest, OutboundMessage, PlatformAnswer, Receipt, Received,
};
use crate::error::ChannelError;
use crate::limits::{self, InboundLimits};
use crate::receipts::{WireReceipt, short};
use crate::registry::{self, ChannelConfig};
use crate::signature;

/// The most messages one request may carry.
pub const MAX_BATCH: usize = 100;

/// The kind's own keys, `settings = { … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// How far a signature's `t` may be from the receive time, either way.
    pub tolerance_secs: u64,
    /// One delivery to `base_url` may take this long.
    pub timeout_ms: u64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            tolerance_secs: 300,
            timeout_ms: 10_000,
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
    /// Where replies are posted; empty: this account takes messages in only.
    base_url: String,
    client: reqwest::Client,
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
    /// The adapter of one `[[channels]]` entry of kind `webhook`; replies
    /// go to `base_url` (empty: none). Fails only when the HTTP client
    /// cannot be built (its TLS backend does not start).
    pub fn new(
        account: ChannelAccount,
        secret: Secret,
        settings: WebhookSettings,
        limits: InboundLimits,
        base_url: String,
    ) -> Result<WebhookAdapter, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()?;
        Ok(WebhookAdapter {
            account,
            secret,
            settings,
            limits,
            base_url,
            client,
        })
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
        let settings: WebhookSettings = registry::kind_settings(entry)?;
        for (key, value) in [
            ("settings.tolerance_secs", settings.tolerance_secs),
            ("settings.timeout_ms", settings.timeout_ms),
        ] {
            if value == 0 {
                return Err((key.into(), "must be greater than 0".into()));
            }
        }
        let adapter = WebhookAdapter::new(
            account,
            entry.secret.clone(),
            settings,
            limits,
            entry.base_url.clone(),
        )
        .map_err(|err| {
            (
                "base_url".to_string(),
                format!("cannot build the HTTP client: {err}"),
            )
        })?;
        Ok(Arc::new(adapter))
    }

    /// What a verified body holds (messages or receipts), each checked.
    fn parse(&self, body: &[u8]) -> Result<Received, ChannelError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|err| ChannelError::malformed("body", format!("not JSON: {err}")))?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(ChannelError::malformed(
                "body",
                "must be a JSON object: one message, {\"messages\": [...]} or {\"receipts\": [...]}",
            ));
        };
        if let Some(receipts) = object.remove("receipts") {
            if let Some(other) = object.keys().next() {
                return Err(ChannelError::malformed(
                    other.as_str(),
                    "a receipts request holds `receipts` only",
                ));
            }
            return Ok(Received {
                receipts: receipts_of(receipts)?,
                ..Received::default()
            });
        }
        Ok(Received {
            messages: self.messages(object)?,
            ..Received::default()
        })
    }

    /// The messages of a body that is one message or a batch.
    fn messages(
        &self,
        mut object: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<InboundMessage>, ChannelError> {
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
            reply_context: None,
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
        self.parse(&request.body)
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

    /// A signed `POST` to `base_url` (see the module doc).
    async fn deliver(&self, message: OutboundMessage) -> Result<Delivery, DeliveryFailure> {
        if self.base_url.is_empty() {
            return Err(DeliveryFailure::NotSupported(self.account.name.clone()));
        }
        let body = serde_json::json!({
            "delivery_id": message.delivery_id,
            "to": message.external_id,
            "text": message.text,
        })
        .to_string();
        let t = Utc::now().timestamp();
        let sent = self
            .client
            .post(&self.base_url)
            .header("content-type", "application/json")
            .header("idempotency-key", &message.delivery_id)
            .header(
                signature::HEADER,
                signature::header_value(self.secret.expose(), t, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let response = sent.map_err(|err| DeliveryFailure::Retry {
            reason: format!("no answer from the platform: {err}"),
        })?;
        let status = response.status().as_u16();
        // The answer's body is only read for its id or reason; one that
        // cannot be read changes nothing about the outcome.
        let text = response.text().await.unwrap_or_default();
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let field = |name: &str| answer.get(name).and_then(|value| value.as_str());
        match status {
            200..=299 => Ok(Delivery {
                platform_message_id: field("id").map(str::to_owned),
            }),
            408 | 429 | 500..=599 => Err(DeliveryFailure::Retry {
                reason: format!("the platform answered {status}: {}", short(&text)),
            }),
            _ => Err(DeliveryFailure::Refused {
                code: field("code")
                    .map(str::to_owned)
                    .unwrap_or_else(|| status.to_string()),
                reason: field("message")
                    .map(str::to_owned)
                    .unwrap_or_else(|| short(&text)),
            }),
        }
    }
}

/// `{"receipts": [...]}`: 1 to [`MAX_BATCH`] receipts, each checked.
fn receipts_of(value: serde_json::Value) -> Result<Vec<Receipt>, ChannelError> {
    let serde_json::Value::Array(items) = value else {
        return Err(ChannelError::malformed("receipts", "must be an array"));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ChannelError::malformed(
            "receipts",
            format!("must hold 1 to {MAX_BATCH} receipts, not {}", items.len()),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(idx, item)| {
            let at = format!("receipts[{idx}]");
            let wire: WireReceipt = serde_path_to_error::deserialize(item).map_err(|err| {
                let path = err.path().to_string();
                let reason = err.into_inner().to_string();
                match path.as_str() {
                    "." => ChannelError::malformed(at.clone(), reason),
                    path => ChannelError::malformed(format!("{at}.{path}"), reason),
                }
            })?;
            wire.checked(&format!("{at}."))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use engine::channel::Channel;

    use super::*;
    use crate::adapter::ReceiptStatus;
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
            String::new(),
        )
        .unwrap()
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

    #[test]
    fn receipts_report_on_replies_and_are_checked_like_messages() {
        let body = r#"{"receipts":[{"delivery_id":"reply-7-3","status":"delivered"},{"delivery_id":"reply-7-5","status":"failed","code":"blocked","reason":"the user blocked the number"}]}"#;
        let received = adapter().receive(&signed(body)).unwrap();
        assert!(received.messages.is_empty());
        assert_eq!(
            received.receipts,
            [
                Receipt {
                    delivery_id: "reply-7-3".into(),
                    status: ReceiptStatus::Delivered,
                },
                Receipt {
                    delivery_id: "reply-7-5".into(),
                    status: ReceiptStatus::Failed {
                        code: "blocked".into(),
                        reason: "the user blocked the number".into(),
                    },
                },
            ]
        );
        for (body, field) in [
            (r#"{"receipts":[]}"#, "receipts"),
            (r#"{"receipts":{}}"#, "receipts"),
            (
                r#"{"receipts":[{"delivery_id":"d","status":"lost"}]}"#,
                "receipts[0].status",
            ),
            (r#"{"receipts":[{"status":"delivered"}]}"#, "receipts[0]"),
            (
                r#"{"receipts":[{"delivery_id":"d","status":"delivered"}],"messages":[]}"#,
                "messages",
            ),
        ] {
            match adapter().receive(&signed(body)) {
                Err(ChannelError::Malformed { field: got, .. }) => {
                    assert_eq!(got, field, "{body}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        // Unsigned receipts are refused like unsigned messages.
        let body = r#"{"receipts":[{"delivery_id":"d","status":"delivered"}]}"#;
        assert!(matches!(
            adapter().receive(&request(body, None)),
            Err(ChannelError::BadSignature(_))
        ));
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
            reply_context: None,
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
                "invalid `body`: must be a JSON object: one message, {\"messages\": [...]} or {\"receipts\": [...]}",
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

    fn reply() -> OutboundMessage {
        OutboundMessage {
            delivery_id: "d1".into(),
            external_id: "+861".into(),
            text: "hello".into(),
            image_url: None,
            seq: 7,
            reply_context: None,
        }
    }

    #[tokio::test]
    async fn an_account_without_base_url_does_not_deliver() {
        let failure = adapter().deliver(reply()).await.unwrap_err();
        assert_eq!(
            failure.to_string(),
            "channel account `sms-gw` does not deliver replies"
        );
    }

    /// A platform that answers one request with `status` and `body`, and
    /// hands back the request it got (head and body as text).
    async fn platform(
        status: u16,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/replies", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if rest.len() >= length || n == 0 {
                        break;
                    }
                }
            }
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        (url, task)
    }

    fn delivering(base_url: String) -> WebhookAdapter {
        WebhookAdapter::new(
            adapter().account.clone(),
            Secret::from(SECRET),
            WebhookSettings::default(),
            InboundLimits { max_text_chars: 10 },
            base_url,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_reply_is_a_signed_post_and_the_answer_says_what_happened() {
        let (url, request) = platform(200, r#"{"id":"p-77"}"#).await;
        let delivery = delivering(url).deliver(reply()).await.unwrap();
        assert_eq!(delivery.platform_message_id.as_deref(), Some("p-77"));
        let request = request.await.unwrap();
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /replies HTTP/1.1"), "{head}");
        assert!(head.contains("idempotency-key: d1"), "{head}");
        assert_eq!(body, r#"{"delivery_id":"d1","text":"hello","to":"+861"}"#);
        let signature = head
            .lines()
            .find_map(|line| line.strip_prefix("x-switchboard-signature: "))
            .expect("signed");
        let t: i64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
        signature::verify(SECRET, Some(signature), body.as_bytes(), t, 1).unwrap();

        let (url, _) = platform(503, "down for maintenance").await;
        let failure = delivering(url).deliver(reply()).await.unwrap_err();
        assert_eq!(
            failure,
            DeliveryFailure::Retry {
                reason: "the platform answered 503: down for maintenance".into()
            }
        );
        let (url, _) = platform(
            403,
            r#"{"code":"outside_window","message":"the customer wrote over 48 hours ago"}"#,
        )
        .await;
        let failure = delivering(url).deliver(reply()).await.unwrap_err();
        assert_eq!(
            failure,
            DeliveryFailure::Refused {
                code: "outside_window".into(),
                reason: "the customer wrote over 48 hours ago".into()
            }
        );
        // Nobody listens: worth a retry.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let failure = delivering(url).deliver(reply()).await.unwrap_err();
        assert!(
            matches!(&failure, DeliveryFailure::Retry { reason } if reason.starts_with("no answer from the platform")),
            "{failure:?}"
        );
    }
}
