//! `POST /api/v1/channels/{name}/inbound`: what a platform posts to one
//! `[[channels]]` account. No token: the account's adapter authenticates
//! the platform (the webhook channel by its signature). Each customer
//! message goes into the runtime as `POST /api/v1/inbound` takes it in, and
//! the platform is answered only once every one of them is durable.
//!
//! The platform's message id is the message's `client_message_id`, so a
//! platform that retries (it did not get the answer) gets the same acks
//! back with `duplicate: true`, and each message is stored once. When one
//! message of a batch fails in the runtime, the ones before it are stored:
//! the error answer tells the platform to retry the whole batch, and those
//! come back as duplicates.

use actors::{ApiError, DeliveryReport, DeliveryState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use channels::{Accepted, ChannelAdapter, InboundRequest, PlatformAnswer, Receipt, ReceiptStatus};
use engine::envelope::Envelope;
use engine::outbox::ChannelReply;
use engine::session::ReplyRoute;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use utoipa::ToSchema;

use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// One customer message as the webhook channel (kind `webhook`) takes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "m-1001",
    "from": "+8613800000001",
    "text": "我的订单何时发货?",
    "sent_at": "2026-01-05T10:00:00Z",
    "display_name": "Li Wei",
}))]
pub struct WebhookChannelMessage {
    /// The platform's id for the message, 1-128 bytes: a retry with the
    /// same id is stored once and answered with `duplicate: true`.
    pub id: String,
    /// The customer's id on the platform, 1-256 characters; with the
    /// account's channel, the identity that finds the customer.
    pub from: String,
    /// The text, 1 to `limits.max_body_chars` characters.
    pub text: String,
    /// When the customer sent it (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: String,
    /// The sender's name, used when the customer is new.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// 1 to 100 messages in one request, taken in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookChannelBatch {
    /// The messages.
    pub messages: Vec<WebhookChannelMessage>,
}

/// The body of a webhook channel request: one message or a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum WebhookChannelBody {
    /// One message.
    One(WebhookChannelMessage),
    /// Several.
    Batch(WebhookChannelBatch),
}

/// The webhook channel's answer: every message of the request is durable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelAcks {
    /// One entry per message, in the request's order.
    pub accepted: Vec<ChannelAck>,
}

/// One durable message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelAck {
    /// The platform's id for the message.
    pub id: String,
    /// The session it joined (opened if the customer had none); decimal string.
    #[schema(example = "7412286335123456000")]
    pub session: String,
    /// Its sequence number in the session.
    pub seq: u64,
    /// It had been stored before (a platform retry); nothing new was stored.
    pub duplicate: bool,
}

/// Takes a platform's request for account `name`: the account's adapter
/// checks and parses it, each customer message is resolved to a customer
/// (created if new), joins their session (opened and routed if they had
/// none), and the answer comes once all are durable. The body and answer
/// shown are the webhook channel's (docs/channels.md); other kinds answer
/// as their platform expects.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{name}/inbound",
    tag = "channels",
    params(("name" = String, Path, description = "The `[[channels]]` account's name")),
    request_body(content = WebhookChannelBody, description = "Signed with `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.\" + body)>`"),
    responses(
        (status = 200, description = "Every message is durable; its session and `seq`", body = ChannelAcks),
        (status = 400, description = "The body does not follow the schema (`invalid`, `details.field` names the field, e.g. `messages[2].from`), a text is too long (`body_too_long`) or the account's channel is not registered (`unknown_channel`); nothing was stored", body = ErrorBody),
        (status = 401, description = "The signature is missing or does not match (`bad_signature`), or its timestamp is too old (`stale_timestamp`: a replay) or too far ahead (`future_timestamp`); nothing was stored", body = ErrorBody),
        (status = 404, description = "No `[[channels]]` account has this name (`unknown_channel_account`)", body = ErrorBody),
        (status = 409, description = "A customer's session ended at the same moment (`invalid_state`): retry", body = ErrorBody),
        (status = 413, description = "The body is over `limits.max_http_body_bytes` (`too_large`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported`)", body = ErrorBody),
        (status = 429, description = "A customer opened too many sessions this hour (`too_many_sessions`)", body = ErrorBody),
        (status = 503, description = "The store or the engine failed (`store_unavailable`, `unavailable`): retry the request; messages stored before the failure come back as duplicates", body = ErrorBody),
        (status = 504, description = "A message went to the store but the outcome did not come back (`outcome_unknown`), or the request took over `limits.request_timeout_ms` (`request_timeout`): retry the request", body = ErrorBody),
    ),
    security(()),
)]
pub async fn channel_inbound(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let Some(adapter) = state.channels.get(&name) else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_channel_account",
            format!("no [[channels]] account is named `{name}`"),
        ));
    };
    let answered = receive(&state, adapter.as_ref(), method, uri, headers, body).await;
    let account = adapter.account();
    let outcome = match &answered {
        Ok(_) => "accepted",
        Err(error) => error.body.code,
    };
    metrics::counter!(
        REQUESTS_TOTAL,
        "account" => account.name.clone(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
    answered
}

/// A platform's check of the account's URL (WeChat's server URL check:
/// `GET` with `signature`, `timestamp`, `nonce`, `echostr`): the account's
/// adapter answers it at once, storing nothing. Kinds without one answer
/// as they answer any request they cannot read.
#[utoipa::path(
    get,
    path = "/api/v1/channels/{name}/inbound",
    tag = "channels",
    params(("name" = String, Path, description = "The `[[channels]]` account's name")),
    responses(
        (status = 200, description = "The platform's check is answered as it expects (WeChat: the `echostr`, as text)"),
        (status = 401, description = "The check's signature does not match (`bad_signature`)", body = ErrorBody),
        (status = 404, description = "No `[[channels]]` account has this name (`unknown_channel_account`)", body = ErrorBody),
        (status = 415, description = "The account's kind takes no `GET` (`unsupported`)", body = ErrorBody),
    ),
    security(()),
)]
pub async fn channel_check(
    state: State<AppState>,
    name: Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    channel_inbound(state, name, method, uri, headers, Bytes::new()).await
}

/// Requests a platform sent to an account, by outcome (`accepted` or the
/// error code).
pub const REQUESTS_TOTAL: &str = "switchboard_channel_requests_total";
/// Customer messages an account took in (duplicates not counted).
pub const MESSAGES_TOTAL: &str = "switchboard_channel_messages_total";

/// Registers an account's series at zero, so that its panels show 0 from
/// start.
pub fn register_series(account: &channels::ChannelAccount) {
    metrics::counter!(
        REQUESTS_TOTAL,
        "account" => account.name.clone(),
        "outcome" => "accepted"
    )
    .increment(0);
    metrics::counter!(
        MESSAGES_TOTAL,
        "account" => account.name.clone(),
        "channel" => account.channel.to_string(),
        "direction" => "in"
    )
    .increment(0);
}

/// Reads the request with the account's adapter and takes its messages in.
async fn receive(
    state: &AppState,
    adapter: &dyn ChannelAdapter,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let request = InboundRequest {
        method: method.to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .filter_map(|(key, value)| Some((key.to_string(), value.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
        received_at: chrono::Utc::now(),
    };
    let received = adapter.receive(&request)?;
    if let Some(answer) = received.immediate_answer {
        return Ok(platform_answer(answer));
    }
    let account = adapter.account();
    for notice in &received.notices {
        info!(account = %account.name, external_id = %notice.external_id, what = %notice.what, "platform notice");
        metrics::counter!(NOTICES_TOTAL, "account" => account.name.clone(), "what" => notice.what.clone())
            .increment(1);
    }
    // Receipts first: they report on replies stored before this request.
    for receipt in &received.receipts {
        record_receipt(state, &account.name, receipt).await?;
    }
    let channel = &account.channel;
    let mut accepted = Vec::with_capacity(received.messages.len());
    // One at a time, in the platform's order: two messages of one customer
    // keep their order in the session.
    for message in received.messages {
        // A retry of a message acknowledged lately: its session may have
        // closed since, and a new one must not take the message again.
        if let Some(mut again) = state
            .recent_channel_acks
            .get(&account.name, &message.platform_message_id)
        {
            again.duplicate = true;
            accepted.push(again);
            continue;
        }
        // Agents' replies go back through this account, to this sender.
        let route = ReplyRoute {
            account: account.name.clone(),
            to: message.external_id.clone(),
            context: message.reply_context,
        };
        let envelope = Envelope {
            channel: channel.clone(),
            customer_id: message.external_id,
            message: message.text,
            timestamp: message.sent_at,
            client_message_id: Some(message.platform_message_id.clone()),
            display_name: message.display_name,
        };
        let intake = state.switchboard.intake_via(envelope, Some(route)).await?;
        if !intake.ack.duplicate {
            metrics::counter!(
                MESSAGES_TOTAL,
                "account" => adapter.account().name.clone(),
                "channel" => channel.to_string(),
                "direction" => "in"
            )
            .increment(1);
        }
        let ack = Accepted {
            platform_message_id: message.platform_message_id,
            session: intake.ack.session.to_string(),
            seq: intake.ack.seq,
            duplicate: intake.ack.duplicate,
        };
        state.recent_channel_acks.insert(&account.name, ack.clone());
        accepted.push(ack);
    }
    Ok(platform_answer(adapter.answer(&accepted)))
}

/// Records a platform's receipt on a reply in the reply's session. A
/// receipt for a delivery id switchboard never made is logged and
/// dropped: the platform gains nothing from a retry. Bridge accounts'
/// receipts come this way too (`channel_bridge`).
pub(crate) async fn record_receipt(
    state: &AppState,
    account: &str,
    receipt: &Receipt,
) -> Result<(), HttpError> {
    let Some((session, seq)) = ChannelReply::parse_delivery_id(&receipt.delivery_id) else {
        warn!(account, delivery_id = %receipt.delivery_id, "a receipt for an unknown delivery id; dropped");
        return Ok(());
    };
    let (delivery_state, code, reason) = match &receipt.status {
        ReceiptStatus::Delivered => (DeliveryState::Delivered, None, None),
        ReceiptStatus::Failed { code, reason } => (
            DeliveryState::Failed,
            Some(code.clone()),
            Some(reason.clone()),
        ),
    };
    let report = DeliveryReport {
        of: seq,
        account: account.to_owned(),
        state: delivery_state,
        code,
        reason,
    };
    match state.switchboard.report_delivery(session, report).await {
        Ok(()) => Ok(()),
        // Not a reply of this account's: nothing to record.
        Err(err @ ApiError::Invalid(_)) => {
            warn!(account, delivery_id = %receipt.delivery_id, error = %err, "a receipt that matches no reply; dropped");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Platform events without a message (follows, unfollows), by account and kind.
pub const NOTICES_TOTAL: &str = "switchboard_channel_notices_total";

/// The adapter's answer as an HTTP response.
fn platform_answer(answer: PlatformAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (status, [(CONTENT_TYPE, answer.content_type)], answer.body).into_response()
}
