//! One WebSocket connection: the checks every incoming frame passes (size,
//! rate, JSON), writes with a timeout, close codes, and the loop that feeds a
//! [`Handler`] with client frames, session events, notices, its own pushes
//! and ticks.
//!
//! Close codes (a client's own close is answered with its code): 1001 server shutting down; 1007 invalid UTF-8;
//! 1008 flood (too many frames refused for rate); 1009 message above
//! `limits.max_ws_message_bytes`; 4008 the client fell more than
//! `limits.outbound_backlog` events behind (it reconnects and resumes from
//! its last `seq`; nothing is lost); 4000 nothing heard from the client (no
//! frame, no pong to the server's pings) for `limits.idle_timeout_ms`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::Event;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt as _;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use tracing::Instrument as _;
use tracing::debug;

use crate::config::LimitsConfig;
use crate::error::HttpError;
use crate::rate::{RateLimiter, Verdict};
use crate::state::AppState;
use crate::wire::platform::notice_frame;
use crate::ws::frames::{ClientFrame, FrameError, Reply, to_text};
use crate::ws::replies::Replier;

/// Close code: the server is going away.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: a text frame was not valid UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code: flood.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code: message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: the client fell too far behind; reconnect and resume.
pub const CLOSE_BACKLOG: u16 = 4008;
/// Close code: nothing heard from the client (no frame, no pong) for `limits.idle_timeout_ms`.
pub const CLOSE_IDLE: u16 = 4000;

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

/// The data platform's pushes to this socket (`ticket`, `customer_view`).
pub type Notices = actors::Subscription<actors::Notice>;

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// The connection is finished (already closed or dropped).
    Stop,
}

/// The protocol of one endpoint (customer or agent).
pub trait Handler: Send + 'static {
    /// A client frame that passed size, rate and JSON checks.
    fn on_frame(
        &mut self,
        link: &mut Link,
        frame: ClientFrame,
    ) -> impl Future<Output = Flow> + Send;
    /// A session event for this connection's audience.
    fn on_event(&mut self, link: &mut Link, event: Event) -> impl Future<Output = Flow> + Send;
    /// A data-platform push (`ticket`, `customer_view`) for this connection's
    /// audience: sent as its frame unless the handler knows it is stale.
    fn on_notice(
        &mut self,
        link: &mut Link,
        notice: Arc<actors::Notice>,
    ) -> impl Future<Output = Flow> + Send {
        async move { link.send(&notice_frame(&notice)).await }
    }
    /// Events are held back until this is true (the client's first frame),
    /// so that a `hello` replay comes before any live event.
    fn wants_events(&self) -> bool;
    /// What the connection pushes of its own, besides events and notices
    /// (the agent socket: the agent's phone registering or not).
    type Push: Send;
    /// Waits for the next push (held back like events); a handler without
    /// pushes never resolves.
    fn next_push(&mut self) -> impl Future<Output = Self::Push> + Send {
        std::future::pending()
    }
    /// Sends a push that [`Handler::next_push`] returned.
    fn on_push(&mut self, link: &mut Link, push: Self::Push) -> impl Future<Output = Flow> + Send;
}

/// The largest frame the server itself sends is a message of
/// `max_body_chars` (up to 4 bytes each) with its envelope; this is room enough.
const OUTGOING_FRAME_BYTES: usize = 64 * 1024;

/// Upgrades to a socket served by the handler `start` builds once the
/// upgrade is done (with the subscription it reads events from), tracked for
/// shutdown and logged in `span`. Refused with 503 while shutting down.
pub fn serve<H: Handler>(
    state: &AppState,
    upgrade: WebSocketUpgrade,
    span: tracing::Span,
    start: impl FnOnce(&AppState) -> (H, actors::Subscription, Notices) + Send + 'static,
) -> Result<Response, HttpError> {
    if !state.is_ready() {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "server is shutting down",
        ));
    }
    let limits = state.config.limits.clone();
    let state = state.clone();
    let upgraded = configure(upgrade, &limits).on_upgrade(move |socket| {
        let (handler, events, notices) = start(&state);
        let link = Link::new(socket, &limits);
        state
            .sockets
            .track_future(run(state.clone(), link, handler, events, notices).instrument(span))
    });
    Ok(upgraded.into_response())
}

/// The socket's read chunk. Client frames are small (a chat message); a
/// larger frame still arrives whole, the buffer grows for it. Every idle
/// connection keeps this much, so it is kept small (BENCHMARKS.md, memory
/// per connected session).
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// Frames of one batch of events wait in the write buffer up to this size,
/// then go out in one write. A socket that never batches keeps only its
/// largest frame's worth (the buffer grows on demand).
const WRITE_BATCH_BYTES: usize = 16 * 1024;

/// The most events one batch takes before it flushes, so one busy session
/// cannot hold back this socket's acks and frames for long.
const MAX_EVENTS_PER_FLUSH: usize = 32;

/// Applies the socket limits of `limits` to an upgrade request.
pub fn configure(upgrade: WebSocketUpgrade, limits: &LimitsConfig) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_write_buffer_size(limits.max_ws_message_bytes.max(OUTGOING_FRAME_BYTES) * 2)
        .max_message_size(limits.max_ws_message_bytes)
        .max_frame_size(limits.max_ws_message_bytes)
}

/// The socket and its per-connection limits.
pub struct Link {
    socket: WebSocket,
    rate: RateLimiter,
    max_frame_bytes: usize,
    write_timeout: Duration,
    idle_timeout: Duration,
    /// When the client last sent anything (a frame, a pong).
    last_heard: Instant,
    /// False once the socket failed or was closed: nothing more is sent.
    open: bool,
    /// Acks of messages handed to their session in this turn of the loop,
    /// moved to the loop's set of pending acks after it.
    deferred: Vec<DeferredAck>,
    /// Frames are buffered, not flushed one by one, until [`Link::uncork`]:
    /// a batch of events goes out in one write.
    corked: bool,
}

/// An ack that arrives once its message is durable.
pub type DeferredAck = Pin<Box<dyn Future<Output = ReadyAck> + Send>>;

/// A durable message's ack (or its error), ready to send.
pub struct ReadyAck {
    replier: Replier,
    client_message_id: String,
    result: Result<actors::Ack, actors::ApiError>,
}

/// Acks in flight per socket; past it the socket reads no further frame
/// until one is answered (back-pressure on a client that outruns the store).
const MAX_PENDING_ACKS: usize = 64;

/// What one read produced.
enum Incoming {
    Frame(ClientFrame),
    Handled,
    Closed,
    /// Too many frames refused for rate in a row: close with 1008 once the
    /// acks of messages already accepted are sent.
    Flood,
}

/// How long a flood close waits for the acks of messages it accepted
/// before it closes anyway (the client then resends them, §3 of PROTOCOL.md).
const FLOOD_ACK_FLUSH: Duration = Duration::from_secs(5);

impl Link {
    /// Wraps an upgraded socket.
    pub fn new(socket: WebSocket, limits: &LimitsConfig) -> Link {
        Link {
            socket,
            rate: RateLimiter::new(
                limits.messages_per_second,
                limits.message_burst,
                limits.flood_close_after,
                Instant::now(),
            ),
            max_frame_bytes: limits.max_frame_bytes,
            write_timeout: Duration::from_millis(limits.write_timeout_ms),
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
            last_heard: Instant::now(),
            open: true,
            deferred: Vec::new(),
            corked: false,
        }
    }

    /// From now on frames wait in the write buffer (up to
    /// `WRITE_BATCH_BYTES`) until [`Link::uncork`].
    fn cork(&mut self) {
        self.corked = true;
    }

    /// Sends what waits in the write buffer; `flow` is the batch's own.
    async fn uncork(&mut self, flow: Flow) -> Flow {
        self.corked = false;
        if flow == Flow::Stop || !self.open {
            return Flow::Stop;
        }
        let flushed = tokio::time::timeout(self.write_timeout, self.socket.flush()).await;
        self.written(flushed)
    }

    /// The flow after a write with a timeout: on failure or timeout the
    /// connection is dropped.
    fn written(
        &mut self,
        result: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>,
    ) -> Flow {
        match result {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(err)) => {
                debug!(error = %err, "socket write failed");
                self.open = false;
                Flow::Stop
            }
            Err(_) => {
                debug!("socket write timed out; dropping the connection");
                self.open = false;
                Flow::Stop
            }
        }
    }

    /// Sends a frame; on failure or timeout the connection is dropped and
    /// `Flow::Stop` returned.
    pub async fn send<T: Serialize>(&mut self, frame: &T) -> Flow {
        if !self.open {
            return Flow::Stop;
        }
        let message = Message::Text(to_text(frame).into());
        let write = async {
            match self.corked {
                true => self.socket.feed(message).await,
                false => self.socket.send(message).await,
            }
        };
        let written = tokio::time::timeout(self.write_timeout, write).await;
        self.written(written)
    }

    /// Answers a message once `pending` resolves (it is durable), without
    /// holding up this socket's events and frames meanwhile. Messages
    /// submitted one after the other are still stored in that order.
    pub fn defer_ack(
        &mut self,
        replier: Replier,
        client_message_id: String,
        pending: actors::PendingAck,
    ) {
        self.deferred.push(Box::pin(async move {
            ReadyAck {
                result: pending.ack().await,
                replier,
                client_message_id,
            }
        }));
    }

    /// Sends an error frame for a refused client frame.
    pub async fn send_error(&mut self, err: FrameError) -> Flow {
        self.reply(&Reply::error(err)).await
    }

    /// Sends a reply; error frames are counted by code.
    pub async fn reply(&mut self, reply: &Reply) -> Flow {
        if let Reply::Error { code, .. } = reply {
            metrics::counter!("switchboard_errors_total", "code" => *code, "api" => "socket")
                .increment(1);
        }
        self.send(reply).await
    }

    /// Sends a close frame, then reads (and drops) what the client still
    /// sends until it answers the close, for at most a second: dropping the
    /// socket with unread data would reset the connection and the client
    /// could lose the close frame and its code.
    pub async fn close(&mut self, code: u16, reason: &str) -> Flow {
        if self.open {
            debug!(code, reason, "closing socket");
            self.open = false;
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let sent = tokio::time::timeout(
                self.write_timeout,
                self.socket.send(Message::Close(Some(frame))),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                return Flow::Stop; // The peer is gone or not reading: nothing more to do.
            }
            let answer = async {
                while let Some(Ok(message)) = self.socket.recv().await {
                    if let Message::Close(_) = message {
                        break;
                    }
                }
            };
            // A peer that never answers the close is dropped after the handshake time.
            let _ = tokio::time::timeout(CLOSE_HANDSHAKE, answer).await;
        }
        Flow::Stop
    }

    async fn receive(&mut self) -> Incoming {
        let message = match self.socket.recv().await {
            None => return Incoming::Closed,
            Some(Ok(message)) => message,
            Some(Err(err)) => return self.read_failed(err).await,
        };
        self.last_heard = Instant::now();
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                if let Some(refused) = self.admit().await {
                    return refused;
                }
                return self.refuse_binary().await;
            }
            Message::Close(_) => {
                // The library queued the answer to the client's close; send it
                // so the client sees a clean close with its own code.
                self.open = false;
                let _ = tokio::time::timeout(CLOSE_HANDSHAKE, self.socket.flush()).await;
                return Incoming::Closed;
            }
            Message::Ping(_) | Message::Pong(_) => return Incoming::Handled,
        };
        if let Some(refused) = self.admit().await {
            return refused;
        }
        if text.len() > self.max_frame_bytes {
            let err = FrameError {
                code: "frame_too_large",
                message: format!(
                    "frame of {} bytes is over the limit of {} bytes; it was not processed",
                    text.len(),
                    self.max_frame_bytes
                ),
                request_id: None,
            };
            return handled(self.send_error(err).await);
        }
        match ClientFrame::parse(text.as_str()) {
            Ok(frame) => Incoming::Frame(frame),
            Err(err) => handled(self.send_error(err).await),
        }
    }

    /// Pings the client, or closes the socket if it has been silent (not
    /// even answering pings) for longer than the idle timeout.
    async fn heartbeat(&mut self) -> Flow {
        if self.last_heard.elapsed() > self.idle_timeout {
            return self.close(CLOSE_IDLE, "no answer to pings").await;
        }
        if !self.open {
            return Flow::Stop;
        }
        match tokio::time::timeout(
            self.write_timeout,
            self.socket.send(Message::Ping(Default::default())),
        )
        .await
        {
            Ok(Ok(())) => Flow::Continue,
            _ => {
                self.open = false;
                Flow::Stop
            }
        }
    }

    /// Rate check for one data frame: a refused frame gets an error frame
    /// and is not processed; a flood closes the connection.
    async fn admit(&mut self) -> Option<Incoming> {
        match self.rate.check(Instant::now()) {
            Verdict::Allow => None,
            Verdict::Refuse => {
                let retry_ms = self.rate.retry_after().as_millis();
                let err = FrameError {
                    code: "rate_limited",
                    message: format!(
                        "too many frames; this one was not processed, resend it in {retry_ms} ms"
                    ),
                    request_id: None,
                };
                Some(handled(self.send_error(err).await))
            }
            Verdict::Close => Some(Incoming::Flood),
        }
    }

    async fn refuse_binary(&mut self) -> Incoming {
        let err = FrameError {
            code: "binary_not_supported",
            message: "binary frames are not part of the protocol; send JSON text frames".into(),
            request_id: None,
        };
        handled(self.send_error(err).await)
    }

    async fn read_failed(&mut self, err: axum::Error) -> Incoming {
        use tungstenite::error::{CapacityError, Error};
        let inner = err.into_inner();
        match inner.downcast_ref::<Error>() {
            Some(Error::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                let reason = format!("message of {size} bytes is over {max_size}");
                self.close(CLOSE_TOO_BIG, &reason).await;
            }
            Some(Error::Utf8(_)) => {
                self.close(CLOSE_INVALID_DATA, "text frame is not valid UTF-8")
                    .await;
            }
            Some(Error::Protocol(protocol)) => {
                let reason = protocol.to_string();
                self.close(1002, &reason).await;
            }
            _ => {
                debug!(error = %inner, "socket read failed");
                self.open = false;
            }
        }
        Incoming::Closed
    }
}

/// Ticks every `period`, the first one `period` from now.
fn interval(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Sends the ack (or error) of every message already handed to its session,
/// as each becomes durable, for at most [`FLOOD_ACK_FLUSH`]: a client closed
/// for flooding still learns which of its messages were stored.
async fn send_pending_acks(link: &mut Link, pending: &mut FuturesUnordered<DeferredAck>) {
    let flush = async {
        while let Some(ready) = pending.next().await {
            let flow = ready
                .replier
                .ack(link, ready.client_message_id, ready.result)
                .await;
            if flow == Flow::Stop {
                return;
            }
        }
    };
    if tokio::time::timeout(FLOOD_ACK_FLUSH, flush).await.is_err() {
        debug!("acks still pending at a flood close; the client resends those messages");
    }
}

/// A client frame that was answered with an error and is not processed.
fn handled(flow: Flow) -> Incoming {
    match flow {
        Flow::Continue => Incoming::Handled,
        Flow::Stop => Incoming::Closed,
    }
}

/// Serves one connection until the client leaves, the server shuts down,
/// or a limit closes it.
pub async fn run<H: Handler>(
    state: AppState,
    mut link: Link,
    mut handler: H,
    mut events: actors::Subscription,
    mut notices: Notices,
) {
    debug!("socket open");
    let mut ping = interval(Duration::from_millis(state.config.limits.ping_interval_ms));
    let mut pending: FuturesUnordered<DeferredAck> = FuturesUnordered::new();
    loop {
        // Acks first, then events, then the client's next frame: a client
        // that keeps sending must not hold back what it is waiting for.
        let flow = tokio::select! {
            biased;
            _ = state.close_sockets.cancelled() => {
                link.close(CLOSE_GOING_AWAY, "server shutting down").await
            }
            Some(ready) = pending.next(), if !pending.is_empty() => {
                ready.replier.ack(&mut link, ready.client_message_id, ready.result).await
            }
            event = events.recv(), if handler.wants_events() => match event {
                Some(event) => {
                    // The events already waiting go out in one write.
                    link.cork();
                    let mut flow = handler.on_event(&mut link, Arc::unwrap_or_clone(event)).await;
                    let mut n_events = 1;
                    while flow == Flow::Continue && n_events < MAX_EVENTS_PER_FLUSH && handler.wants_events() {
                        let Ok(event) = events.try_recv() else { break };
                        flow = handler.on_event(&mut link, Arc::unwrap_or_clone(event)).await;
                        n_events += 1;
                    }
                    link.uncork(flow).await
                }
                None => {
                    link.close(CLOSE_BACKLOG, "too far behind; reconnect and resume from your last seq").await
                }
            },
            Some(notice) = notices.recv(), if handler.wants_events() => handler.on_notice(&mut link, notice).await,
            push = handler.next_push(), if handler.wants_events() => handler.on_push(&mut link, push).await,
            incoming = link.receive(), if pending.len() < MAX_PENDING_ACKS => match incoming {
                Incoming::Frame(frame) => handler.on_frame(&mut link, frame).await,
                Incoming::Handled => Flow::Continue,
                Incoming::Closed => Flow::Stop,
                Incoming::Flood => {
                    pending.extend(link.deferred.drain(..));
                    send_pending_acks(&mut link, &mut pending).await;
                    link.close(CLOSE_POLICY, "flood: too many frames").await
                }
            },
            _ = ping.tick() => link.heartbeat().await,
        };
        pending.extend(link.deferred.drain(..));
        if flow == Flow::Stop {
            debug!("socket done");
            return;
        }
    }
}
