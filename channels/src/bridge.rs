//! Out-of-process adapters (kind `bridge`): a program of its own, in any
//! language, speaks for a platform and talks to switchboard over one
//! WebSocket, `/api/v1/channels/<name>/bridge`, authenticated by the
//! account's `secret` (`Authorization: Bearer <secret>`).
//!
//! ```toml
//! [[channels]]
//! kind = "bridge"
//! name = "line"
//! channel = "line"
//! secret = "…"                          # the channel token, 16 characters or more
//! settings = { ack_timeout_ms = 10000 } # how long a `deliver` waits for its answer
//! ```
//!
//! This module holds what is not IO: the frames both ways (read and
//! checked here, written here) and the account's connection slot, through
//! which [`BridgeAdapter::deliver`] pushes a `deliver` frame to the
//! connected adapter and waits for its answer. The gateway serves the
//! socket and takes the adapter's messages into the runtime.
//!
//! Adapter → switchboard (one JSON object per text frame):
//!
//! ```json
//! {"type": "message", "id": "m-1", "from": "U4af4980629", "text": "hi", "sent_at": "2026-01-05T10:00:00Z", "display_name": "Li Wei", "context": "opaque"}
//! {"type": "delivered", "delivery_id": "reply-7-3", "platform_id": "p-99"}
//! {"type": "failed", "delivery_id": "reply-7-3", "code": "blocked", "reason": "the user blocked the bot", "retry": false}
//! {"type": "receipt", "delivery_id": "reply-7-3", "status": "delivered"}
//! ```
//!
//! switchboard → adapter:
//!
//! ```json
//! {"type": "ack", "id": "m-1", "session": "7412286335123456000", "seq": 1, "duplicate": false}
//! {"type": "error", "id": "m-1", "code": "invalid", "field": "sent_at", "message": "…", "retry": false}
//! {"type": "deliver", "delivery_id": "reply-7-3", "to": "U4af4980629", "text": "hello", "context": "opaque"}
//! ```
//!
//! One connection per account: a new one replaces the one before (closed
//! by the gateway with code 4009), because an adapter that was killed and
//! restarted reconnects before the server can tell its old connection is
//! dead, and must not be locked out until then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine::secret::Secret;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::adapter::{
    Accepted, ChannelAccount, ChannelAdapter, Delivery, DeliveryFailure, InboundMessage,
    InboundRequest, OutboundMessage, PlatformAnswer, Receipt, Received,
};
use crate::error::ChannelError;
use crate::limits::{self, InboundLimits};
use crate::receipts::{WireReceipt, short};
use crate::registry::{self, ChannelConfig};

/// Longest `context` an adapter may attach to a message, in bytes: it is
/// stored with the session's reply route and sent back with each reply.
pub const MAX_CONTEXT_BYTES: usize = 1024;

/// The kind's own keys, `settings = { … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeSettings {
    /// How long a `deliver` waits for the adapter's `delivered` or `failed`
    /// before the outbox retries it.
    pub ack_timeout_ms: u64,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings {
            ack_timeout_ms: 10_000,
        }
    }
}

/// What the adapter says of one `deliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryAnswer {
    /// The platform took it.
    Delivered {
        /// The platform's id for the sent message, if the adapter gives one.
        platform_id: Option<String>,
    },
    /// The platform did not take it.
    Failed {
        /// The platform's error code.
        code: String,
        /// The platform's reason, shown to the agent.
        reason: String,
        /// Worth trying again later (the outbox retries it with backoff);
        /// false: the agent sees it failed.
        retry: bool,
    },
}

/// One frame the adapter sent, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterFrame {
    /// A customer message to take in; answered with an `ack` once durable.
    Message(InboundMessage),
    /// The answer to a `deliver`.
    Answer {
        /// The `delivery_id` of the `deliver` it answers.
        delivery_id: String,
        /// What became of it.
        answer: DeliveryAnswer,
    },
    /// A later report on a delivered reply (it reached the device, or not).
    Receipt(Receipt),
}

/// A frame the adapter sent that is refused; nothing of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRefusal {
    /// The frame's `id` (a message) or `delivery_id`, when it has one as a
    /// string, so the adapter can tell which frame was refused.
    pub id: Option<String>,
    /// Why, naming the field.
    pub error: ChannelError,
}

/// An adapter connection as the gateway serves it: where the `deliver`s
/// for it come from.
#[derive(Debug)]
pub struct BridgeConnection {
    /// Tells this connection's answers from a replaced one's.
    pub id: u64,
    /// The replies to push, in the order the outbox delivers them. Ends
    /// (`None`) when a newer connection replaced this one.
    pub deliveries: mpsc::UnboundedReceiver<OutboundMessage>,
}

/// The connected adapter, as [`BridgeAdapter::deliver`] reaches it.
struct Slot {
    connection_id: u64,
    deliveries: mpsc::UnboundedSender<OutboundMessage>,
    /// The `deliver`s pushed and not yet answered, by delivery id. Dropped
    /// with the slot, so that a replaced or closed connection's waiting
    /// deliveries are retried at once.
    waiting: HashMap<String, oneshot::Sender<DeliveryAnswer>>,
}

/// One account of kind `bridge`.
pub struct BridgeAdapter {
    account: ChannelAccount,
    secret: Secret,
    settings: BridgeSettings,
    limits: InboundLimits,
    /// The adapter connected now, if one is.
    slot: Mutex<Option<Slot>>,
    /// The id of the last connection attached.
    n_connections: AtomicU64,
}

impl std::fmt::Debug for BridgeAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeAdapter")
            .field("account", &self.account)
            .field("settings", &self.settings)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// A message frame as sent; every field optional here so that a missing
/// one is named.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMessage {
    #[serde(rename = "type")]
    _type: String,
    id: Option<String>,
    from: Option<String>,
    text: Option<String>,
    sent_at: Option<String>,
    display_name: Option<String>,
    context: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDelivered {
    #[serde(rename = "type")]
    _type: String,
    delivery_id: String,
    #[serde(default)]
    platform_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFailed {
    #[serde(rename = "type")]
    _type: String,
    delivery_id: String,
    code: String,
    reason: String,
    retry: bool,
}

/// The frames switchboard sends, as written on the socket.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    Ack {
        id: &'a str,
        session: &'a str,
        seq: u64,
        duplicate: bool,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
        message: &'a str,
        retry: bool,
    },
    Deliver {
        delivery_id: &'a str,
        to: &'a str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        context: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        image_url: Option<&'a str>,
    },
}

impl ServerFrame<'_> {
    fn text(&self) -> String {
        // A tagged enum of strings and numbers always serializes.
        serde_json::to_string(self).expect("a server frame serializes")
    }
}

impl BridgeAdapter {
    /// The adapter of one `[[channels]]` entry of kind `bridge`.
    pub fn new(
        account: ChannelAccount,
        secret: Secret,
        settings: BridgeSettings,
        limits: InboundLimits,
    ) -> BridgeAdapter {
        BridgeAdapter {
            account,
            secret,
            settings,
            limits,
            slot: Mutex::new(None),
            n_connections: AtomicU64::new(0),
        }
    }

    /// For the registry: checks the entry; errors name the key.
    pub(crate) fn build(
        account: ChannelAccount,
        entry: &ChannelConfig,
        limits: InboundLimits,
    ) -> Result<Arc<dyn ChannelAdapter>, (String, String)> {
        if entry.secret.len() < 16 {
            return Err((
                "secret".into(),
                "must be at least 16 characters: the token the adapter connects with".into(),
            ));
        }
        if !entry.base_url.is_empty() {
            return Err((
                "base_url".into(),
                "is not used by kind `bridge`: replies go to the connected adapter; remove it"
                    .into(),
            ));
        }
        let settings: BridgeSettings = registry::kind_settings(entry)?;
        if settings.ack_timeout_ms == 0 {
            return Err((
                "settings.ack_timeout_ms".into(),
                "must be greater than 0".into(),
            ));
        }
        Ok(Arc::new(BridgeAdapter::new(
            account,
            entry.secret.clone(),
            settings,
            limits,
        )))
    }

    /// Whether `token` is the account's secret, compared in constant time
    /// (for tokens of the secret's length).
    pub fn authorizes(&self, token: &str) -> bool {
        let expected = self.secret.expose().as_bytes();
        let given = token.as_bytes();
        if expected.len() != given.len() {
            return false;
        }
        expected
            .iter()
            .zip(given)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    /// Makes a new adapter connection the account's one; the one before,
    /// if any, sees its deliveries end and its unanswered `deliver`s are
    /// retried.
    pub fn attach(&self) -> BridgeConnection {
        let id = self.n_connections.fetch_add(1, Ordering::Relaxed) + 1;
        let (sender, deliveries) = mpsc::unbounded_channel();
        let slot = Slot {
            connection_id: id,
            deliveries: sender,
            waiting: HashMap::new(),
        };
        *self.slot.lock().expect("bridge slot") = Some(slot);
        BridgeConnection { id, deliveries }
    }

    /// Connection `connection_id` is gone; nothing if a newer one replaced it.
    pub fn detach(&self, connection_id: u64) {
        let mut slot = self.slot.lock().expect("bridge slot");
        if slot
            .as_ref()
            .is_some_and(|slot| slot.connection_id == connection_id)
        {
            *slot = None;
        }
    }

    /// Whether an adapter is connected now.
    pub fn is_connected(&self) -> bool {
        self.slot.lock().expect("bridge slot").is_some()
    }

    /// Hands the adapter's answer to the `deliver` waiting for it. False
    /// when none waits (it timed out and will be retried, or the
    /// connection was replaced): the answer is dropped.
    pub fn answer_delivery(
        &self,
        connection_id: u64,
        delivery_id: &str,
        answer: DeliveryAnswer,
    ) -> bool {
        let mut slot = self.slot.lock().expect("bridge slot");
        let Some(slot) = slot
            .as_mut()
            .filter(|slot| slot.connection_id == connection_id)
        else {
            return false;
        };
        match slot.waiting.remove(delivery_id) {
            Some(waiter) => waiter.send(answer).is_ok(),
            None => false,
        }
    }

    /// Reads one text frame from the adapter; a refusal names the field.
    pub fn read_frame(&self, text: &str) -> Result<AdapterFrame, FrameRefusal> {
        let refuse = |id: Option<String>, error: ChannelError| FrameRefusal { id, error };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|err| {
            refuse(
                None,
                ChannelError::malformed("frame", format!("not JSON: {err}")),
            )
        })?;
        let Some(object) = value.as_object() else {
            return Err(refuse(
                None,
                ChannelError::malformed("frame", "must be a JSON object with a `type`"),
            ));
        };
        let id_key = match object.get("type").and_then(|kind| kind.as_str()) {
            Some("message") => "id",
            _ => "delivery_id",
        };
        let id = object
            .get(id_key)
            .and_then(|id| id.as_str())
            .map(str::to_owned);
        let frame = match object.get("type") {
            Some(serde_json::Value::String(kind)) => match kind.as_str() {
                "message" => self.message(value).map(AdapterFrame::Message),
                "delivered" => delivered(value),
                "failed" => failed(value),
                "receipt" => receipt(value).map(AdapterFrame::Receipt),
                other => Err(ChannelError::malformed(
                    "type",
                    format!("`{other}` is not one of message, delivered, failed, receipt"),
                )),
            },
            Some(_) => Err(ChannelError::malformed("type", "must be a string")),
            None => Err(ChannelError::malformed("type", "is missing")),
        };
        frame.map_err(|error| refuse(id, error))
    }

    /// A message frame, every field checked like the webhook channel's.
    fn message(&self, value: serde_json::Value) -> Result<InboundMessage, ChannelError> {
        let wire: WireMessage = fields(value)?;
        let required = |value: Option<String>, name: &str| {
            value.ok_or_else(|| ChannelError::malformed(name, "is missing"))
        };
        let id = required(wire.id, "id")?;
        let from = required(wire.from, "from")?;
        let text = required(wire.text, "text")?;
        let sent_at = required(wire.sent_at, "sent_at")?;
        limits::check_message_id("id", &id)?;
        limits::check_external_id("from", &from)?;
        self.limits.check_text("text", &text)?;
        if let Some(name) = &wire.display_name {
            limits::check_display_name("display_name", name)?;
        }
        if let Some(context) = &wire.context
            && context.len() > MAX_CONTEXT_BYTES
        {
            return Err(ChannelError::malformed(
                "context",
                format!(
                    "{} bytes is over the limit of {MAX_CONTEXT_BYTES}",
                    context.len()
                ),
            ));
        }
        let sent_at = DateTime::parse_from_rfc3339(&sent_at)
            .map_err(|err| {
                ChannelError::malformed("sent_at", format!("not an RFC 3339 time: {err}"))
            })?
            .with_timezone(&Utc);
        Ok(InboundMessage {
            external_id: from,
            text,
            platform_message_id: id,
            display_name: wire.display_name,
            sent_at,
            reply_context: wire.context,
        })
    }

    /// The `ack` frame of a durable message.
    pub fn ack_frame(accepted: &Accepted) -> String {
        ServerFrame::Ack {
            id: &accepted.platform_message_id,
            session: &accepted.session,
            seq: accepted.seq,
            duplicate: accepted.duplicate,
        }
        .text()
    }

    /// The `error` frame of a refused frame (`retry: false`: sending it
    /// again as it is will not help).
    pub fn refusal_frame(refusal: &FrameRefusal) -> String {
        ServerFrame::Error {
            id: refusal.id.as_deref(),
            code: refusal.error.code(),
            field: refusal.error.field(),
            message: &refusal.error.to_string(),
            retry: false,
        }
        .text()
    }

    /// The `error` frame of a message (or receipt) the runtime could not
    /// take: `code` is the REST API's; `retry` says whether sending it
    /// again later may succeed.
    pub fn error_frame(id: Option<&str>, code: &str, message: &str, retry: bool) -> String {
        ServerFrame::Error {
            id,
            code,
            field: None,
            message,
            retry,
        }
        .text()
    }

    /// The `deliver` frame of a reply.
    pub fn deliver_frame(message: &OutboundMessage) -> String {
        ServerFrame::Deliver {
            delivery_id: &message.delivery_id,
            to: &message.external_id,
            text: &message.text,
            context: message.reply_context.as_deref(),
            image_url: message.image_url.as_deref(),
        }
        .text()
    }
}

/// A frame's fields as `T` reads them; the error names the field.
fn fields<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ChannelError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let reason = err.into_inner().to_string();
        let missing = reason
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name.to_string(),
            (".", None) => "frame".to_string(),
            (path, _) => path.to_string(),
        };
        ChannelError::malformed(field, reason)
    })
}

fn delivered(value: serde_json::Value) -> Result<AdapterFrame, ChannelError> {
    let wire: WireDelivered = fields(value)?;
    limits::check_message_id("delivery_id", &wire.delivery_id)?;
    Ok(AdapterFrame::Answer {
        delivery_id: wire.delivery_id,
        answer: DeliveryAnswer::Delivered {
            platform_id: wire.platform_id.as_deref().map(short),
        },
    })
}

fn failed(value: serde_json::Value) -> Result<AdapterFrame, ChannelError> {
    let wire: WireFailed = fields(value)?;
    limits::check_message_id("delivery_id", &wire.delivery_id)?;
    if wire.code.trim().is_empty() {
        return Err(ChannelError::malformed("code", "must not be empty"));
    }
    Ok(AdapterFrame::Answer {
        delivery_id: wire.delivery_id,
        answer: DeliveryAnswer::Failed {
            code: short(&wire.code),
            reason: short(&wire.reason),
            retry: wire.retry,
        },
    })
}

fn receipt(value: serde_json::Value) -> Result<Receipt, ChannelError> {
    let wire: WireReceipt = fields(value)?;
    wire.checked("")
}

#[async_trait]
impl ChannelAdapter for BridgeAdapter {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    /// Refused: a bridge account's adapter sends its messages over the socket.
    fn receive(&self, _request: &InboundRequest) -> Result<Received, ChannelError> {
        Err(ChannelError::Unsupported(format!(
            "a bridge account takes messages over its WebSocket, /api/v1/channels/{}/bridge",
            self.account.name
        )))
    }

    /// The acks as one JSON array of `ack` frames; the socket sends each
    /// as its own frame ([`BridgeAdapter::ack_frame`]).
    fn answer(&self, accepted: &[Accepted]) -> PlatformAnswer {
        let frames: Vec<String> = accepted.iter().map(BridgeAdapter::ack_frame).collect();
        PlatformAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: format!("[{}]", frames.join(",")).into_bytes(),
        }
    }

    /// Pushes a `deliver` frame to the connected adapter and waits up to
    /// `settings.ack_timeout_ms` for its answer. No adapter connected, no
    /// answer in time, or the connection lost meanwhile: retried later.
    async fn deliver(&self, message: OutboundMessage) -> Result<Delivery, DeliveryFailure> {
        let delivery_id = message.delivery_id.clone();
        let (waiter, answered) = oneshot::channel();
        {
            let mut slot = self.slot.lock().expect("bridge slot");
            let Some(connected) = slot.as_mut() else {
                return Err(DeliveryFailure::Retry {
                    reason: format!(
                        "the bridge adapter of account `{}` is not connected",
                        self.account.name
                    ),
                });
            };
            if connected.deliveries.send(message).is_err() {
                // The socket task ended and has not detached yet.
                *slot = None;
                return Err(DeliveryFailure::Retry {
                    reason: format!(
                        "the bridge adapter of account `{}` disconnected",
                        self.account.name
                    ),
                });
            }
            // A second attempt at the same delivery replaces the first's waiter.
            connected.waiting.insert(delivery_id.clone(), waiter);
        }
        let timeout = Duration::from_millis(self.settings.ack_timeout_ms);
        let answer = match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                return Err(DeliveryFailure::Retry {
                    reason: format!(
                        "the bridge adapter of account `{}` disconnected before answering",
                        self.account.name
                    ),
                });
            }
            Err(_) => {
                let mut slot = self.slot.lock().expect("bridge slot");
                if let Some(connected) = slot.as_mut()
                    && connected
                        .waiting
                        .get(&delivery_id)
                        .is_some_and(|waiter| waiter.is_closed())
                {
                    connected.waiting.remove(&delivery_id);
                }
                return Err(DeliveryFailure::Retry {
                    reason: format!(
                        "no answer from the bridge adapter within {} ms",
                        self.settings.ack_timeout_ms
                    ),
                });
            }
        };
        match answer {
            DeliveryAnswer::Delivered { platform_id } => Ok(Delivery {
                platform_message_id: platform_id,
            }),
            DeliveryAnswer::Failed {
                reason,
                retry: true,
                ..
            } => Err(DeliveryFailure::Retry { reason }),
            DeliveryAnswer::Failed {
                code,
                reason,
                retry: false,
            } => Err(DeliveryFailure::Refused { code, reason }),
        }
    }

    fn as_bridge(&self) -> Option<&BridgeAdapter> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use engine::channel::Channel;

    use super::*;
    use crate::adapter::ReceiptStatus;

    fn adapter(ack_timeout_ms: u64) -> BridgeAdapter {
        BridgeAdapter::new(
            ChannelAccount {
                kind: "bridge".into(),
                name: "line".into(),
                channel: Channel::Sms,
            },
            Secret::from("bridge-token-0123456789"),
            BridgeSettings { ack_timeout_ms },
            InboundLimits { max_text_chars: 10 },
        )
    }

    fn reply(delivery_id: &str) -> OutboundMessage {
        OutboundMessage {
            delivery_id: delivery_id.into(),
            external_id: "U1".into(),
            text: "hello".into(),
            image_url: None,
            seq: 3,
            reply_context: Some("ctx".into()),
        }
    }

    #[test]
    fn only_the_accounts_token_is_authorized() {
        let adapter = adapter(100);
        assert!(adapter.authorizes("bridge-token-0123456789"));
        for wrong in ["", "bridge-token-012345678", "bridge-token-0123456780", "x"] {
            assert!(!adapter.authorizes(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn the_http_route_is_refused_naming_the_socket() {
        let request = InboundRequest {
            method: "POST".into(),
            query: String::new(),
            headers: Vec::new(),
            body: b"{}".to_vec(),
            received_at: Utc::now(),
        };
        let err = adapter(100).receive(&request).unwrap_err();
        assert_eq!((err.status(), err.code()), (415, "unsupported"));
        assert_eq!(
            err.to_string(),
            "unsupported: a bridge account takes messages over its WebSocket, /api/v1/channels/line/bridge"
        );
    }

    #[tokio::test]
    async fn a_delivery_without_an_adapter_or_an_answer_is_retried() {
        let adapter = adapter(100);
        assert_eq!(
            adapter.deliver(reply("reply-1-3")).await.unwrap_err(),
            DeliveryFailure::Retry {
                reason: "the bridge adapter of account `line` is not connected".into()
            }
        );
        let mut connection = adapter.attach();
        assert_eq!(
            adapter.deliver(reply("reply-1-3")).await.unwrap_err(),
            DeliveryFailure::Retry {
                reason: "no answer from the bridge adapter within 100 ms".into()
            }
        );
        let pushed = connection.deliveries.recv().await.unwrap();
        assert_eq!(
            BridgeAdapter::deliver_frame(&pushed),
            r#"{"type":"deliver","delivery_id":"reply-1-3","to":"U1","text":"hello","context":"ctx"}"#
        );
        // A late answer finds nobody waiting.
        assert!(!adapter.answer_delivery(
            connection.id,
            "reply-1-3",
            DeliveryAnswer::Delivered { platform_id: None }
        ));
        adapter.detach(connection.id);
        assert!(!adapter.is_connected());
    }

    #[tokio::test]
    async fn answers_become_deliveries_refusals_or_retries() {
        let adapter = Arc::new(adapter(10_000));
        let mut connection = adapter.attach();
        for (answer, expected) in [
            (
                DeliveryAnswer::Delivered {
                    platform_id: Some("p-1".into()),
                },
                Ok(Delivery {
                    platform_message_id: Some("p-1".into()),
                }),
            ),
            (
                DeliveryAnswer::Failed {
                    code: "rate".into(),
                    reason: "slow down".into(),
                    retry: true,
                },
                Err(DeliveryFailure::Retry {
                    reason: "slow down".into(),
                }),
            ),
            (
                DeliveryAnswer::Failed {
                    code: "blocked".into(),
                    reason: "the user blocked the bot".into(),
                    retry: false,
                },
                Err(DeliveryFailure::Refused {
                    code: "blocked".into(),
                    reason: "the user blocked the bot".into(),
                }),
            ),
        ] {
            let delivering = tokio::spawn({
                let adapter = adapter.clone();
                async move { adapter.deliver(reply("reply-2-5")).await }
            });
            let pushed = connection.deliveries.recv().await.unwrap();
            assert!(adapter.answer_delivery(connection.id, &pushed.delivery_id, answer));
            assert_eq!(delivering.await.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn a_newer_connection_replaces_the_older_and_its_waiting_deliveries_are_retried() {
        let adapter = Arc::new(adapter(10_000));
        let mut first = adapter.attach();
        let delivering = tokio::spawn({
            let adapter = adapter.clone();
            async move { adapter.deliver(reply("reply-3-1")).await }
        });
        first.deliveries.recv().await.unwrap();
        let second = adapter.attach();
        assert_eq!(
            delivering.await.unwrap().unwrap_err(),
            DeliveryFailure::Retry {
                reason: "the bridge adapter of account `line` disconnected before answering".into()
            }
        );
        // The first connection's deliveries end; its answers and detach change nothing.
        assert!(first.deliveries.recv().await.is_none());
        assert!(!adapter.answer_delivery(
            first.id,
            "reply-3-1",
            DeliveryAnswer::Delivered { platform_id: None }
        ));
        adapter.detach(first.id);
        assert!(adapter.is_connected());
        adapter.detach(second.id);
        assert!(!adapter.is_connected());
    }

    fn check(frame: &str, expected: Result<AdapterFrame, (Option<&str>, &str, &str)>) {
        match (adapter(100).read_frame(frame), expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{frame}"),
            (Err(refusal), Err((id, field, message))) => {
                assert_eq!(refusal.id.as_deref(), id, "{frame}");
                assert_eq!(refusal.error.field(), Some(field), "{frame}");
                assert_eq!(refusal.error.to_string(), message, "{frame}");
            }
            (got, expected) => panic!("{frame}: got {got:?}, expected {expected:?}"),
        }
    }

    const MESSAGE: &str = r#"{"type":"message","id":"m1","from":"U1","text":"hi","sent_at":"2023-11-14T22:13:20Z","context":"g-7"}"#;

    #[test]
    fn frames_are_read_or_refused_naming_the_field() {
        check(
            MESSAGE,
            Ok(AdapterFrame::Message(InboundMessage {
                external_id: "U1".into(),
                text: "hi".into(),
                platform_message_id: "m1".into(),
                display_name: None,
                sent_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                reply_context: Some("g-7".into()),
            })),
        );
        check(
            r#"{"type":"delivered","delivery_id":"reply-1-2","platform_id":"p9"}"#,
            Ok(AdapterFrame::Answer {
                delivery_id: "reply-1-2".into(),
                answer: DeliveryAnswer::Delivered {
                    platform_id: Some("p9".into()),
                },
            }),
        );
        check(
            r#"{"type":"failed","delivery_id":"reply-1-2","code":"blocked","reason":"no","retry":false}"#,
            Ok(AdapterFrame::Answer {
                delivery_id: "reply-1-2".into(),
                answer: DeliveryAnswer::Failed {
                    code: "blocked".into(),
                    reason: "no".into(),
                    retry: false,
                },
            }),
        );
        check(
            r#"{"type":"receipt","delivery_id":"reply-1-2","status":"delivered"}"#,
            Ok(AdapterFrame::Receipt(Receipt {
                delivery_id: "reply-1-2".into(),
                status: ReceiptStatus::Delivered,
            })),
        );
        check(
            &MESSAGE.replace("\"text\":\"hi\",", ""),
            Err((Some("m1"), "text", "invalid `text`: is missing")),
        );
        check(
            &MESSAGE.replace("2023-11-14T22:13:20Z", "today"),
            Err((
                Some("m1"),
                "sent_at",
                "invalid `sent_at`: not an RFC 3339 time: premature end of input",
            )),
        );
        check(
            &MESSAGE.replace("hi", "far too long"),
            Err((
                Some("m1"),
                "text",
                "field `text`: 12 characters is over the limit of 10 (limits.max_body_chars)",
            )),
        );
        check(
            &MESSAGE.replace("\"g-7\"", &format!("\"{}\"", "c".repeat(1025))),
            Err((
                Some("m1"),
                "context",
                "invalid `context`: 1025 bytes is over the limit of 1024",
            )),
        );
        check(
            &MESSAGE.replace("\"from\"", "\"sender\""),
            Err((
                Some("m1"),
                "sender",
                "invalid `sender`: unknown field `sender`, expected one of `type`, `id`, `from`, `text`, `sent_at`, `display_name`, `context`",
            )),
        );
        check(
            r#"{"type":"failed","delivery_id":"reply-1-2","code":"x","reason":"y"}"#,
            Err((
                Some("reply-1-2"),
                "retry",
                "invalid `retry`: missing field `retry`",
            )),
        );
        check(
            r#"{"type":"hello"}"#,
            Err((
                None,
                "type",
                "invalid `type`: `hello` is not one of message, delivered, failed, receipt",
            )),
        );
        check(
            "[1]",
            Err((
                None,
                "frame",
                "invalid `frame`: must be a JSON object with a `type`",
            )),
        );
        check(
            "{",
            Err((
                None,
                "frame",
                "invalid `frame`: not JSON: EOF while parsing an object at line 1 column 1",
            )),
        );
    }

    #[test]
    fn server_frames_are_written_as_documented() {
        let accepted = Accepted {
            platform_message_id: "m1".into(),
            session: "42".into(),
            seq: 3,
            duplicate: true,
        };
        assert_eq!(
            BridgeAdapter::ack_frame(&accepted),
            r#"{"type":"ack","id":"m1","session":"42","seq":3,"duplicate":true}"#
        );
        let refusal = adapter(100)
            .read_frame(&MESSAGE.replace("\"U1\"", "\"\""))
            .unwrap_err();
        assert_eq!(
            BridgeAdapter::refusal_frame(&refusal),
            r#"{"type":"error","id":"m1","code":"invalid","field":"from","message":"invalid `from`: must be 1 to 256 characters, not blank","retry":false}"#
        );
        assert_eq!(
            BridgeAdapter::error_frame(Some("m1"), "store_unavailable", "down", true),
            r#"{"type":"error","id":"m1","code":"store_unavailable","message":"down","retry":true}"#
        );
    }
}
