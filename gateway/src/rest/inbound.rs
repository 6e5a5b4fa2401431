//! `POST /api/v1/inbound`: intake for channels that need no socket — SMS,
//! email and WeChat adapters, webhooks, load generators. The body is the
//! engine's envelope; the answer is the message's ack once it is durable.
//!
//! The caller is a channel adapter, a trusted server-side process that holds
//! an **admin token** (`switchboard token --role admin --sub <adapter name>`):
//! it speaks for any customer on its channel, so it needs the same trust as
//! an admin. Customers and agents are refused with `403`.

use axum::Json;
use axum::extract::State;
use channels::InboundLimits;
use channels::limits;
use chrono::{DateTime, Utc};
use engine::channel::Channel;
use engine::envelope::Envelope;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::error::{ErrorBody, HttpError, invalid_field};
use crate::extract::ApiJson;
use crate::state::AppState;

/// `POST /api/v1/inbound`: one customer message, normalised by its channel's
/// adapter (the engine's envelope).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "channel": "wechat",
    "customer_id": "12345",
    "message": "我的订单何时发货?",
    "timestamp": "2023-10-01T10:00:00Z",
}))]
pub struct InboundMessage {
    /// A built-in channel: `web`, `app`, `phone`, `wechat`, `qq`, `sms` or
    /// `email`. A well-formed name the engine has not registered (the
    /// server registers the built-in ones) is `unknown_channel`.
    pub channel: String,
    /// The customer's id *on that channel* (WeChat openid, phone number,
    /// email address), 1-256 characters. The first message of an unknown id
    /// creates a customer `<channel>:<customer_id>`.
    pub customer_id: String,
    /// The text, 1 to `limits.max_body_chars` characters.
    pub message: String,
    /// When the customer sent it, as the channel reports it (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
    /// The adapter's own id for this message, 1-128 bytes: a resend with the
    /// same id (after a timeout, a retried webhook) is stored once and
    /// answered with the first ack and `duplicate: true`.
    #[serde(default)]
    pub client_message_id: Option<String>,
    /// The sender's name as the channel knows it; used when the customer is new.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// The ack of an inbound message: it is durable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboundAck {
    /// The session it joined (opened if the customer had none); decimal string.
    #[schema(example = "7412286335123456000")]
    pub session: String,
    /// Its sequence number in the session.
    pub seq: u64,
    /// It had been stored before (same `client_message_id`); nothing new was stored.
    pub duplicate: bool,
    /// The customer the channel identity belongs to.
    #[schema(example = "wechat:12345")]
    pub customer_id: String,
}

/// Takes one customer message from a channel adapter: resolves the channel
/// identity to a customer (creating one), opens a session if the customer
/// has none (routing it), and answers once the message is durable.
#[utoipa::path(
    post,
    path = "/api/v1/inbound",
    tag = "inbound",
    request_body = InboundMessage,
    responses(
        (status = 200, description = "Durable; its session and `seq`", body = InboundAck),
        (status = 400, description = "A field is invalid (`invalid`, `details.field` names it), the message is too long (`body_too_long`) or the channel is not registered (`unknown_channel`)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 413, description = "The body is over `limits.max_http_body_bytes` (`too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`invalid`)", body = ErrorBody),
        (status = 409, description = "The customer's session ended at the same moment (`invalid_state`); nothing was stored: resend and the message opens a new session", body = ErrorBody),
        (status = 429, description = "The customer opened too many sessions this hour (`too_many_sessions`)", body = ErrorBody),
        (status = 503, description = "The store or the engine failed; nothing was stored (`store_unavailable`, `unavailable`): resend with the same `client_message_id`", body = ErrorBody),
        (status = 504, description = "The message went to the store but the outcome did not come back (`outcome_unknown`); it may be stored: resend with the same `client_message_id`, the answer then says `duplicate: true` if it was; or the request was not answered within `limits.request_timeout_ms` (`request_timeout`), with the same advice", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn inbound(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<InboundMessage>,
) -> Result<Json<InboundAck>, HttpError> {
    caller.require_admin()?;
    let envelope = validate(request, state.config.limits.max_body_chars)?;
    let intake = state.switchboard.intake(envelope).await.map_err(|err| {
        let unknown_channel = err.code() == "unknown_channel";
        let error = HttpError::from(err);
        match unknown_channel {
            true => error.with_details(serde_json::json!({ "field": "channel" })),
            false => error,
        }
    })?;
    Ok(Json(InboundAck {
        session: intake.ack.session.to_string(),
        seq: intake.ack.seq,
        duplicate: intake.ack.duplicate,
        customer_id: intake.customer.to_string(),
    }))
}

/// The envelope, or the first field at fault. The lengths are the ones
/// every channel adapter checks too (`channels::limits`).
fn validate(request: InboundMessage, max_body_chars: usize) -> Result<Envelope, HttpError> {
    let channel = Channel::parse(&request.channel).map_err(|err| invalid_field("channel", err))?;
    limits::check_external_id("customer_id", &request.customer_id)?;
    let text_limits = InboundLimits {
        max_text_chars: max_body_chars,
    };
    text_limits.check_text("message", &request.message)?;
    if let Some(id) = &request.client_message_id {
        limits::check_message_id("client_message_id", id)?;
    }
    if let Some(name) = &request.display_name {
        limits::check_display_name("display_name", name)?;
    }
    Ok(Envelope {
        channel,
        customer_id: request.customer_id,
        message: request.message,
        timestamp: request.timestamp,
        client_message_id: request.client_message_id,
        display_name: request.display_name,
    })
}
