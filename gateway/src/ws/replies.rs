//! Answers to client requests, shared by both endpoints: `ack` for a stored
//! message, `ok` for other requests, `error` frames with the engine's codes,
//! and a guard that counts open sockets by kind.

use std::sync::atomic::{AtomicUsize, Ordering};

use actors::{Ack, ApiError};

use crate::config::LimitsConfig;
use crate::error::classify;
use crate::state::AppState;
use crate::wire::WireSession;
use crate::ws::frames::{FrameError, Reply};
use crate::ws::link::{Flow, Link};

/// Longest client message id, in bytes.
const MAX_CLIENT_MESSAGE_ID_BYTES: usize = 128;

/// Replies to one request, echoing its `request_id`.
#[derive(Clone)]
pub struct Replier {
    request_id: Option<String>,
    /// When the request was read, for the ack latency.
    received: std::time::Instant,
}

impl Replier {
    /// For a frame with this `request_id`.
    pub fn new(request_id: Option<String>) -> Replier {
        Replier {
            request_id,
            received: std::time::Instant::now(),
        }
    }

    /// `ok`, or the error.
    pub async fn result(&self, link: &mut Link, result: Result<(), ApiError>) -> Flow {
        match result {
            Ok(()) => {
                link.send(&Reply::Ok {
                    request_id: self.request_id.clone(),
                })
                .await
            }
            Err(err) => self.error(link, err, None).await,
        }
    }

    /// Nothing on success (typing indicators), the error otherwise.
    pub async fn quiet_result(&self, link: &mut Link, result: Result<(), ApiError>) -> Flow {
        match result {
            Ok(()) => Flow::Continue,
            Err(err) => self.error(link, err, None).await,
        }
    }

    /// `ack` for a stored message, or the error naming the message.
    pub async fn ack(
        &self,
        link: &mut Link,
        client_message_id: String,
        result: Result<Ack, ApiError>,
    ) -> Flow {
        match result {
            Ok(ack) => {
                metrics::histogram!("switchboard_ack_latency_seconds")
                    .record(self.received.elapsed().as_secs_f64());
                link.send(&Reply::Ack {
                    request_id: self.request_id.clone(),
                    client_message_id,
                    session: WireSession(ack.session),
                    seq: ack.seq,
                    duplicate: ack.duplicate,
                })
                .await
            }
            Err(err) => self.error(link, err, Some(client_message_id)).await,
        }
    }

    /// An error frame for an engine error; the connection stays open.
    pub async fn error(
        &self,
        link: &mut Link,
        err: ApiError,
        client_message_id: Option<String>,
    ) -> Flow {
        let (_, code) = classify(&err);
        link.reply(&Reply::Error {
            request_id: self.request_id.clone(),
            client_message_id,
            code,
            message: err.to_string(),
        })
        .await
    }

    /// An error frame with a code of the gateway's own (not an engine error).
    pub async fn refuse(&self, link: &mut Link, code: &'static str, message: String) -> Flow {
        link.reply(&Reply::Error {
            request_id: self.request_id.clone(),
            client_message_id: None,
            code,
            message,
        })
        .await
    }

    /// Answer to `ping`.
    pub async fn pong(&self, link: &mut Link) -> Flow {
        link.send(&Reply::Pong {
            request_id: self.request_id.clone(),
        })
        .await
    }

    /// A message frame's own limits: a client id, a non-empty body within
    /// `limits.max_body_chars`.
    pub fn check_message(
        &self,
        client_message_id: &str,
        body: &str,
        limits: &LimitsConfig,
    ) -> Result<(), FrameError> {
        let invalid = |message: String| FrameError {
            code: "invalid_frame",
            message,
            request_id: self.request_id.clone(),
        };
        if client_message_id.is_empty() || client_message_id.len() > MAX_CLIENT_MESSAGE_ID_BYTES {
            return Err(invalid(format!(
                "field `client_message_id`: must be 1 to {MAX_CLIENT_MESSAGE_ID_BYTES} bytes"
            )));
        }
        if body.trim().is_empty() {
            return Err(invalid("field `body`: must not be empty".into()));
        }
        let n_chars = body.chars().count();
        if n_chars > limits.max_body_chars {
            return Err(FrameError {
                code: "body_too_long",
                message: format!(
                    "field `body`: {n_chars} characters is over the limit of {}",
                    limits.max_body_chars
                ),
                request_id: self.request_id.clone(),
            });
        }
        Ok(())
    }
}

/// Counts a socket as open for as long as it lives.
pub struct SocketGuard {
    state: AppState,
    counter: fn(&AppState) -> &AtomicUsize,
}

impl SocketGuard {
    /// A customer socket.
    pub fn customer(state: &AppState) -> SocketGuard {
        SocketGuard::new(state, |state| &state.n_customer_sockets)
    }

    /// An agent socket.
    pub fn agent(state: &AppState) -> SocketGuard {
        SocketGuard::new(state, |state| &state.n_agent_sockets)
    }

    fn new(state: &AppState, counter: fn(&AppState) -> &AtomicUsize) -> SocketGuard {
        counter(state).fetch_add(1, Ordering::Relaxed);
        SocketGuard {
            state: state.clone(),
            counter,
        }
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        (self.counter)(&self.state).fetch_sub(1, Ordering::Relaxed);
    }
}
