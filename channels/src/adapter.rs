//! The SDK: what a channel adapter is given, what it gives back, and the
//! [`ChannelAdapter`] trait itself.
//!
//! An adapter knows one platform's wire format and nothing else: it does no
//! routing and stores nothing. The gateway hands it each HTTP request the
//! platform sends ([`InboundRequest`]), takes the customer messages it finds
//! ([`Received`]) into the runtime, and once every one of them is durable
//! answers the platform with what [`ChannelAdapter::answer`] says.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine::channel::Channel;
use thiserror::Error;

use crate::bridge::BridgeAdapter;
use crate::error::ChannelError;

/// Which account of which platform an adapter speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAccount {
    /// The adapter kind (`webhook`, later `wechat`, `qq`): which code reads the platform.
    pub kind: String,
    /// The account's unique name (`sms-gw`), the `{name}` in
    /// `/api/v1/channels/{name}/inbound`. Two accounts of one kind differ by name.
    pub name: String,
    /// The channel its customers' messages arrive on: their identities are
    /// `<channel>:<id on the platform>`, and routing rules see this channel.
    pub channel: Channel,
}

/// One HTTP request from a platform, as received. Headers keep their
/// order; names compare case-insensitively through [`InboundRequest::header`].
#[derive(Debug, Clone)]
pub struct InboundRequest {
    /// `POST`, or `GET` for platforms that verify a URL first.
    pub method: String,
    /// The query string without `?`; empty when there is none.
    pub query: String,
    /// Every header, name and value; a value that is not UTF-8 is left out.
    pub headers: Vec<(String, String)>,
    /// The body's bytes exactly as received: signatures are over these.
    pub body: Vec<u8>,
    /// When the request arrived; signature timestamps are checked against it.
    pub received_at: DateTime<Utc>,
}

impl InboundRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One customer message found in a platform's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The customer's id on the platform (phone number, openid): with the
    /// account's channel, the identity that finds the customer.
    pub external_id: String,
    /// The text.
    pub text: String,
    /// The platform's id for the message: a platform retrying a request
    /// sends it again, and the runtime stores the message once.
    pub platform_message_id: String,
    /// The sender's name as the platform knows it, for a new customer.
    pub display_name: Option<String>,
    /// When the customer sent it, as the platform says.
    pub sent_at: DateTime<Utc>,
    /// What the adapter needs to reply to this message, opaque to
    /// switchboard (a QQ group's id and the message id a passive reply
    /// cites); kept with the session's reply route and handed back in
    /// [`OutboundMessage::reply_context`]. `None` when a reply needs only
    /// the customer's id.
    pub reply_context: Option<String>,
}

/// A platform's report on a delivery made earlier (a delivery receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The [`OutboundMessage::delivery_id`] it reports on.
    pub delivery_id: String,
    /// What became of it.
    pub status: ReceiptStatus,
}

/// What a platform reports of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// It reached the customer's device.
    Delivered,
    /// It was taken but could not reach the customer.
    Failed {
        /// The platform's error code.
        code: String,
        /// The platform's reason.
        reason: String,
    },
}

/// Something a platform reports that carries no customer message (a
/// follow, an unfollow): acknowledged, counted and logged, not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The customer's id on the platform.
    pub external_id: String,
    /// What happened, in the platform's words (`subscribe`, `unsubscribe`).
    pub what: String,
}

/// What a request held.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// The customer messages, in the platform's order; may be none (a
    /// delivery receipt, a verification request).
    pub messages: Vec<InboundMessage>,
    /// An answer the platform needs at once and that depends on nothing
    /// stored (a URL verification echo); `None`: answer with
    /// [`ChannelAdapter::answer`] once the messages are durable.
    pub immediate_answer: Option<PlatformAnswer>,
    /// Delivery receipts: the platform reports on agents' messages.
    pub receipts: Vec<Receipt>,
    /// Events without a message (follows, unfollows).
    pub notices: Vec<Notice>,
}

/// An HTTP answer to a platform, exactly as it expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformAnswer {
    /// 200 in the usual case.
    pub status: u16,
    /// `application/json`, `text/plain`, …
    pub content_type: String,
    /// The body's bytes.
    pub body: Vec<u8>,
}

/// One inbound message made durable, for [`ChannelAdapter::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The platform's id for the message.
    pub platform_message_id: String,
    /// The session it joined, as a decimal string.
    pub session: String,
    /// Its sequence number in the session.
    pub seq: u64,
    /// It had been stored before (a platform retry); nothing new was stored.
    pub duplicate: bool,
}

/// An agent's message to deliver to a customer on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// A stable id for this delivery: the same on every retry, so the
    /// platform (or the adapter) can drop a second copy.
    pub delivery_id: String,
    /// The customer's id on the platform.
    pub external_id: String,
    /// The text.
    pub text: String,
    /// The agent's message is one image link (`https://…/x.png`): a
    /// platform that sends images sends it as an image, others send `text`.
    pub image_url: Option<String>,
    /// The message's `seq` in its session: increasing per session, the
    /// same on every retry (QQ's `msg_seq` for a passive reply).
    pub seq: u64,
    /// The [`InboundMessage::reply_context`] of the customer's latest
    /// message on this account.
    pub reply_context: Option<String>,
}

/// A delivery the platform took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The platform's id for the sent message, when it gives one.
    pub platform_message_id: Option<String>,
}

/// A delivery the platform did not take.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryFailure {
    /// Worth trying again later (the platform is down, a timeout, a rate limit).
    #[error("delivery failed for now: {reason}")]
    Retry {
        /// What happened, for the log and the agent.
        reason: String,
    },
    /// Trying again will not help (outside the platform's reply window, a
    /// blocked user); shown to the agent as the platform's reason.
    #[error("delivery refused by the platform ({code}): {reason}")]
    Refused {
        /// The platform's error code.
        code: String,
        /// The platform's reason.
        reason: String,
    },
    /// This adapter does not deliver (yet).
    #[error("channel account `{0}` does not deliver replies")]
    NotSupported(String),
}

/// A platform adapter: reads what one account of a platform sends, and
/// sends agents' messages back. One value per configured account.
#[async_trait]
pub trait ChannelAdapter: Send + Sync + 'static {
    /// The account it speaks for.
    fn account(&self) -> &ChannelAccount;

    /// Verifies a request from the platform (signature, timestamp) and
    /// parses it into customer messages. Pure: it stores nothing, so a
    /// refused request leaves no trace, and every message of an accepted
    /// one has already passed every check (lengths included).
    fn receive(&self, request: &InboundRequest) -> Result<Received, ChannelError>;

    /// The answer once every message of a request is durable.
    fn answer(&self, accepted: &[Accepted]) -> PlatformAnswer;

    /// Delivers an agent's message to the customer on the platform. The
    /// outbox calls it, again with the same `delivery_id` after a
    /// [`DeliveryFailure::Retry`].
    async fn deliver(&self, message: OutboundMessage) -> Result<Delivery, DeliveryFailure>;

    /// The account's out-of-process adapter connection, for kind `bridge`
    /// only: the gateway serves its WebSocket through it.
    fn as_bridge(&self) -> Option<&BridgeAdapter> {
        None
    }
}
