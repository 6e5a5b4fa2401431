//! `GET /api/v1/channels/{name}/bridge`: the WebSocket of an out-of-process
//! adapter (a `[[channels]]` account of kind `bridge`), authenticated by
//! the account's secret, `Authorization: Bearer <secret>`. The frames are
//! `channels::bridge`'s (docs/channels.md shows each).
//!
//! - A `message` frame is taken in as `POST /api/v1/channels/{name}/inbound`
//!   takes a webhook message, and answered with `ack` only once durable.
//!   Frames are handled one at a time in the order they arrive, so a
//!   customer's messages keep their order and the acks come in that order.
//!   The message's `id` is its `client_message_id`: an adapter that resends
//!   every message it has no ack for after a reconnect gets
//!   `duplicate: true` for those already stored.
//! - Agents' replies to the account's customers are pushed as `deliver`
//!   frames by the outbox's courier (`ChannelAdapter::deliver`); the
//!   adapter answers each with `delivered` or `failed`. A reply without an
//!   answer stays in the outbox and is pushed again (the adapter drops a
//!   second copy by `delivery_id`). When an adapter connects, the outbox
//!   is woken so that what is due goes out at once.
//!
//! One connection per account: a new one replaces the older, which is
//! closed with [`CLOSE_REPLACED`]. Pings, the idle timeout (4000), the
//! write timeout and the message size limit are the customer and agent
//! sockets' (`limits.*`); shutdown closes with 1001.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use channels::bridge::{AdapterFrame, BridgeAdapter};
use channels::{Accepted, ChannelAdapter, InboundMessage};
use engine::envelope::Envelope;
use engine::session::ReplyRoute;
use tracing::{Instrument as _, debug, info, warn};

use crate::error::{HttpError, classify};
use crate::rest::channel_inbound::{MESSAGES_TOTAL, REQUESTS_TOTAL, record_receipt};
use crate::state::AppState;
use crate::ws::link::{CLOSE_GOING_AWAY, CLOSE_IDLE, configure};

/// Close code: a newer connection of the same account replaced this one.
pub const CLOSE_REPLACED: u16 = 4009;

/// 1 while an account's adapter is connected, 0 otherwise.
pub const BRIDGE_CONNECTED: &str = "switchboard_channel_bridge_connected";

/// Registers a bridge account's gauge at 0, so its panel shows it from start.
pub fn register_series(account: &channels::ChannelAccount) {
    metrics::gauge!(BRIDGE_CONNECTED, "account" => account.name.clone()).set(0.0);
}

/// Checks the account, its kind and the token, in that order, then
/// upgrades: `404 unknown_channel_account`, `409 not_a_bridge`, `401
/// unauthorized`, `400 invalid` (not a WebSocket upgrade), `503
/// unavailable` (shutting down).
pub async fn upgrade(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HttpError> {
    let Some(adapter) = state.channels.get(&name).cloned() else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "unknown_channel_account",
            format!("no [[channels]] account is named `{name}`"),
        ));
    };
    let Some(bridge) = adapter.as_bridge() else {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "not_a_bridge",
            format!(
                "account `{name}` is of kind `{}`; only accounts of kind `bridge` take an adapter over a WebSocket",
                adapter.account().kind
            ),
        ));
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !token.is_some_and(|token| bridge.authorizes(token)) {
        return Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("`Authorization: Bearer <token>` must hold the `secret` of account `{name}`"),
        ));
    }
    let upgrade = upgrade.map_err(|rejection| {
        HttpError::bad_request(format!(
            "this endpoint takes a WebSocket upgrade: {rejection}"
        ))
    })?;
    if !state.is_ready() {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "server is shutting down",
        ));
    }
    let span = tracing::info_span!("bridge_socket", account = %name);
    let tracked = state.clone();
    let upgraded = configure(upgrade, &state.config.limits).on_upgrade(move |socket| {
        tracked
            .sockets
            .track_future(serve(state, adapter, socket).instrument(span))
    });
    Ok(upgraded.into_response())
}

/// Serves one adapter connection until it leaves, is replaced, goes
/// silent, or the server shuts down.
async fn serve(state: AppState, adapter: Arc<dyn ChannelAdapter>, socket: WebSocket) {
    let Some(bridge) = adapter.as_bridge() else {
        return; // Checked before the upgrade.
    };
    let account = adapter.account().name.clone();
    let mut connection = bridge.attach();
    metrics::gauge!(BRIDGE_CONNECTED, "account" => account.clone()).set(1.0);
    info!(connection = connection.id, "bridge adapter connected");
    // Replies waiting in the outbox go out now, those backing off after
    // failing while no adapter was connected too.
    state.platform.outbox.hurry(&format!(
        "{}{account}",
        engine::outbox::CHANNEL_ENDPOINT_PREFIX
    ));

    let limits = &state.config.limits;
    let mut link = BridgeLink {
        socket,
        write_timeout: Duration::from_millis(limits.write_timeout_ms),
    };
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    let ping_every = Duration::from_millis(limits.ping_interval_ms);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let close = loop {
        tokio::select! {
            biased;
            _ = state.close_sockets.cancelled() => break Some((CLOSE_GOING_AWAY, "server shutting down")),
            delivery = connection.deliveries.recv() => match delivery {
                Some(message) => {
                    if !link.send(BridgeAdapter::deliver_frame(&message)).await {
                        break None;
                    }
                }
                None => break Some((CLOSE_REPLACED, "replaced by a newer connection of this account")),
            },
            received = link.socket.recv() => {
                last_heard = Instant::now();
                let text = match received {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let frame = BridgeAdapter::error_frame(None, "unsupported", "binary frames are not part of the protocol; send JSON text frames", false);
                        if !link.send(frame).await {
                            break None;
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // The library answers the adapter's close; flush it out.
                    Some(Ok(Message::Close(_))) => {
                        let _ = tokio::time::timeout(link.write_timeout, futures_util::SinkExt::flush(&mut link.socket)).await;
                        break None;
                    }
                    Some(Err(err)) => {
                        debug!(error = %err, "bridge socket read failed");
                        break None;
                    }
                    None => break None,
                };
                let answer = on_text(&state, bridge, connection.id, text.as_str()).await;
                if let Some(answer) = answer && !link.send(answer).await {
                    break None;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_timeout {
                    break Some((CLOSE_IDLE, "no answer to pings"));
                }
                if !link.send_message(Message::Ping(Default::default())).await {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        debug!(code, reason, "closing bridge socket");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // The adapter may already be gone: nothing more to do then.
        let _ = link.send_message(Message::Close(Some(frame))).await;
    }
    bridge.detach(connection.id);
    let connected = if bridge.is_connected() { 1.0 } else { 0.0 };
    metrics::gauge!(BRIDGE_CONNECTED, "account" => account).set(connected);
    info!(connection = connection.id, "bridge adapter disconnected");
}

/// The socket with its write timeout.
struct BridgeLink {
    socket: WebSocket,
    write_timeout: Duration,
}

impl BridgeLink {
    /// Sends a text frame; false when the connection failed or timed out.
    async fn send(&mut self, text: String) -> bool {
        self.send_message(Message::Text(text.into())).await
    }

    async fn send_message(&mut self, message: Message) -> bool {
        let sent = tokio::time::timeout(self.write_timeout, self.socket.send(message)).await;
        matches!(sent, Ok(Ok(())))
    }
}

/// Handles one text frame; the frame to answer with, if any.
async fn on_text(
    state: &AppState,
    bridge: &BridgeAdapter,
    connection_id: u64,
    text: &str,
) -> Option<String> {
    let account = &bridge.account().name;
    match bridge.read_frame(text) {
        Err(refusal) => {
            debug!(id = refusal.id.as_deref().unwrap_or(""), error = %refusal.error, "bridge frame refused");
            count_request(account, refusal.error.code());
            Some(BridgeAdapter::refusal_frame(&refusal))
        }
        Ok(AdapterFrame::Message(message)) => Some(take_in(state, bridge, message).await),
        Ok(AdapterFrame::Answer {
            delivery_id,
            answer,
        }) => {
            if !bridge.answer_delivery(connection_id, &delivery_id, answer) {
                // Its wait timed out (or it came on a replaced connection):
                // the reply is pushed again and the adapter answers again.
                debug!(
                    delivery_id,
                    "an answer for a delivery nobody waits for; dropped"
                );
            }
            None
        }
        Ok(AdapterFrame::Receipt(receipt)) => {
            match record_receipt(state, account, &receipt).await {
                Ok(()) => None,
                Err(err) => Some(BridgeAdapter::error_frame(
                    Some(&receipt.delivery_id),
                    err.body.code,
                    &err.body.message,
                    true,
                )),
            }
        }
    }
}

/// Takes a customer message into the runtime: its `ack` once durable, or
/// the error frame.
async fn take_in(state: &AppState, bridge: &BridgeAdapter, message: InboundMessage) -> String {
    let account = bridge.account();
    let id = message.platform_message_id.clone();
    // Agents' replies go back through this account, to this sender.
    let route = ReplyRoute {
        account: account.name.clone(),
        to: message.external_id.clone(),
        context: message.reply_context,
    };
    let envelope = Envelope {
        channel: account.channel.clone(),
        customer_id: message.external_id,
        message: message.text,
        timestamp: message.sent_at,
        client_message_id: Some(id.clone()),
        display_name: message.display_name,
    };
    match state.switchboard.intake_via(envelope, Some(route)).await {
        Ok(intake) => {
            count_request(&account.name, "accepted");
            if !intake.ack.duplicate {
                metrics::counter!(
                    MESSAGES_TOTAL,
                    "account" => account.name.clone(),
                    "channel" => account.channel.to_string(),
                    "direction" => "in"
                )
                .increment(1);
            }
            BridgeAdapter::ack_frame(&Accepted {
                platform_message_id: id,
                session: intake.ack.session.to_string(),
                seq: intake.ack.seq,
                duplicate: intake.ack.duplicate,
            })
        }
        Err(err) => {
            let (status, code) = classify(&err);
            warn!(id, code, error = %err, "a bridge message was not taken in");
            count_request(&account.name, code);
            // A conflict, a limit or an outage may pass; a refusal will not.
            let retry = !status.is_client_error()
                || matches!(status, StatusCode::CONFLICT | StatusCode::TOO_MANY_REQUESTS);
            BridgeAdapter::error_frame(Some(&id), code, &err.to_string(), retry)
        }
    }
}

/// Counts one message frame of `account` by outcome, as the HTTP route
/// counts requests.
fn count_request(account: &str, outcome: &str) {
    metrics::counter!(
        REQUESTS_TOTAL,
        "account" => account.to_owned(),
        "outcome" => outcome.to_owned()
    )
    .increment(1);
}
