//! The baseline (`loadgen relay`): a bare WebSocket relay with switchboard's
//! framing and nothing else. No actors, no store, no routing rules, no
//! limits: a customer's message is acknowledged at once and forwarded to the
//! agent holding the session, sessions go to the least busy available agent,
//! and tokens are read, not verified. Whatever switchboard costs beyond this
//! is the price of durability, routing and supervision.
//!
//! It speaks the subset of PROTOCOL.md the scenarios use: `hello`, `message`,
//! `leave`, `ping` for customers; `hello`, `presence`, `accept`, `message`,
//! `wrap_up`, `close`, `ping` for agents; and `POST /api/v1/visitors`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

type Tx = mpsc::UnboundedSender<String>;

#[derive(Default)]
struct Session {
    customer: String,
    agent: Option<String>,
    seq: u64,
    assigned: bool,
    /// Events the agent has not been sent yet (before the offer).
    backlog: Vec<String>,
}

struct Agent {
    tx: Tx,
    available: bool,
    active: u32,
}

#[derive(Default)]
struct Inner {
    agents: HashMap<String, Agent>,
    customers: HashMap<String, (Option<Tx>, Option<u64>)>,
    sessions: HashMap<u64, Session>,
    waiting: VecDeque<u64>,
}

/// The relay's shared state.
pub struct Relay {
    capacity: u32,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

impl Relay {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves the relay on `listen`; prints `relay listening on http://ADDR`.
pub async fn serve(listen: SocketAddr, capacity: u32) -> Result<()> {
    let relay = Arc::new(Relay {
        capacity,
        next_id: AtomicU64::new(1),
        inner: Mutex::new(Inner::default()),
    });
    let app = Router::new()
        .route("/ws/customer", get(customer_upgrade))
        .route("/ws/agent", get(agent_upgrade))
        .route("/api/v1/visitors", post(visitor))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(relay);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    println!("relay listening on http://{}", listener.local_addr()?);
    // As switchboard does: small frames must not wait for Nagle.
    let listener = listener.tap_io(|stream| {
        // A socket that refuses the option still works, only slower.
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await.context("relay failed")
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

/// The `sub` of a `v1.<claims>.<signature>` token, unverified.
fn subject(token: &str) -> Option<String> {
    let claims = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value["sub"].as_str().map(str::to_string)
}

async fn visitor(State(relay): State<Arc<Relay>>) -> Response {
    let n = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let customer_id = format!("web:v{n}");
    let token = crate::target::mint(
        "relay-does-not-verify-tokens-0000",
        &customer_id,
        "customer",
    );
    // `mint` makes tokens valid for a day; times are ms since the Unix epoch (PROTOCOL.md §2).
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_millis() + 86_400_000);
    let body = serde_json::json!({
        "customer_id": customer_id, "visitor_id": format!("v{n}"), "token": token, "expires_at": expires_at as u64
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn customer_upgrade(
    State(relay): State<Arc<Relay>>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    accept(relay, query, upgrade, false)
}

async fn agent_upgrade(
    State(relay): State<Arc<Relay>>,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    accept(relay, query, upgrade, true)
}

/// Upgrades a customer's or agent's socket named by its token's subject.
fn accept(
    relay: Arc<Relay>,
    query: TokenQuery,
    upgrade: WebSocketUpgrade,
    is_agent: bool,
) -> Response {
    let Some(id) = subject(&query.token) else {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    };
    small(upgrade).on_upgrade(move |socket| connection(relay, socket, id, is_agent))
}

/// The same small socket buffers switchboard uses.
fn small(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    client_message_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

async fn connection(relay: Arc<Relay>, socket: WebSocket, id: String, is_agent: bool) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    });
    if is_agent {
        relay.lock().agents.insert(
            id.clone(),
            Agent {
                tx: tx.clone(),
                available: false,
                active: 0,
            },
        );
    } else {
        relay.lock().customers.entry(id.clone()).or_default().0 = Some(tx.clone());
    }
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Frame = match serde_json::from_str(text.as_str()) {
            Ok(frame) => frame,
            Err(_) => {
                let _ =
                    tx.send(r#"{"type":"error","code":"bad_json","message":"not json"}"#.into()); // writer gone means the socket is closing
                continue;
            }
        };
        if is_agent {
            agent_frame(&relay, &id, &tx, frame);
        } else {
            customer_frame(&relay, &id, &tx, frame);
        }
    }
    if is_agent {
        relay.lock().agents.remove(&id);
    } else if let Some(customer) = relay.lock().customers.get_mut(&id) {
        customer.0 = None;
    }
    writer.abort();
}

fn reply(tx: &Tx, kind: &str, request_id: &Option<String>) {
    let text = match request_id {
        Some(id) => format!(r#"{{"type":"{kind}","request_id":{}}}"#, json(id)),
        None => format!(r#"{{"type":"{kind}"}}"#),
    };
    let _ = tx.send(text); // a closed socket's writer is gone; nothing to tell
}

fn json(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

fn now_ms() -> u64 {
    crate::wire::now_ns() / 1_000_000
}

fn customer_frame(relay: &Relay, id: &str, tx: &Tx, frame: Frame) {
    match frame.kind.as_str() {
        "hello" => {
            let text = format!(
                r#"{{"type":"welcome","request_id":{},"customer":{{"id":{},"display_name":"Visitor","tier":"standard"}},"channel":"web","sessions":[]}}"#,
                json(frame.request_id.as_deref().unwrap_or("")),
                json(id)
            );
            let _ = tx.send(text); // see `reply`
        }
        "message" => {
            let (Some(cmid), Some(body)) = (frame.client_message_id, frame.body) else {
                return reply(tx, "error", &frame.request_id);
            };
            let mut inner = relay.lock();
            let open = inner.customers.get(id).and_then(|c| c.1);
            let session_id = match open {
                Some(session_id) => session_id,
                None => {
                    let session_id = relay.next_id.fetch_add(1, Ordering::Relaxed);
                    inner.sessions.insert(
                        session_id,
                        Session {
                            customer: id.to_string(),
                            ..Session::default()
                        },
                    );
                    inner.customers.entry(id.to_string()).or_default().1 = Some(session_id);
                    inner.waiting.push_back(session_id);
                    session_id
                }
            };
            let session = inner
                .sessions
                .get_mut(&session_id)
                .expect("open session exists");
            session.seq += 1;
            let seq = session.seq;
            let event = format!(
                r#"{{"type":"message","session":"{session_id}","seq":{seq},"at":{},"body":{},"channel":"web","client_message_id":{},"sender":"customer"}}"#,
                now_ms(),
                json(&body),
                json(&cmid)
            );
            let ack = format!(
                r#"{{"type":"ack","client_message_id":{},"session":"{session_id}","seq":{seq},"duplicate":false}}"#,
                json(&cmid)
            );
            let _ = tx.send(ack); // see `reply`
            let _ = tx.send(event.clone()); // see `reply`
            let agent = session.agent.clone();
            match agent.and_then(|agent| inner.agents.get(&agent).map(|a| a.tx.clone())) {
                Some(agent_tx) => {
                    let _ = agent_tx.send(event); // see `reply`
                }
                None => {
                    if let Some(session) = inner.sessions.get_mut(&session_id) {
                        session.backlog.push(event);
                    }
                }
            }
            dispatch(relay, &mut inner);
        }
        "leave" => {
            let mut inner = relay.lock();
            let session_id = frame.session.and_then(|s| s.parse::<u64>().ok());
            if let Some(mut session) = session_id.and_then(|s| inner.sessions.remove(&s)) {
                let session_id = session_id.expect("parsed above");
                session.seq += 1;
                let kind = if session.assigned {
                    "closed"
                } else {
                    "abandoned"
                };
                let event = format!(
                    r#"{{"type":"{kind}","session":"{session_id}","seq":{},"at":{}}}"#,
                    session.seq,
                    now_ms()
                );
                inner.waiting.retain(|waiting| *waiting != session_id);
                if let Some(customer) = inner.customers.get_mut(id) {
                    customer.1 = None;
                }
                if let Some(agent) = session.agent.and_then(|agent| inner.agents.get_mut(&agent)) {
                    agent.active = agent.active.saturating_sub(1);
                    let _ = agent.tx.send(event.clone()); // see `reply`
                }
                reply(tx, "ok", &frame.request_id);
                let _ = tx.send(event); // see `reply`
                dispatch(relay, &mut inner);
            } else {
                reply(tx, "ok", &frame.request_id);
            }
        }
        "ping" => reply(tx, "pong", &frame.request_id),
        _ => {}
    }
}

fn agent_frame(relay: &Relay, id: &str, tx: &Tx, frame: Frame) {
    match frame.kind.as_str() {
        "hello" => {
            let text = format!(
                r#"{{"type":"welcome","request_id":{},"agent":{{"id":{},"display_name":"Agent","role":"junior","groups":["default"]}},"presence":{{"state":"offline"}},"sessions":[],"offers":[],"queues":[]}}"#,
                json(frame.request_id.as_deref().unwrap_or("")),
                json(id)
            );
            let _ = tx.send(text); // see `reply`
        }
        "presence" => {
            let mut inner = relay.lock();
            if let Some(agent) = inner.agents.get_mut(id) {
                agent.available = true;
            }
            let _ = tx.send(r#"{"type":"presence","presence":{"state":"available"}}"#.into()); // see `reply`
            dispatch(relay, &mut inner);
        }
        "accept" => {
            let mut inner = relay.lock();
            let session_id = frame.session.as_deref().and_then(|s| s.parse::<u64>().ok());
            let Some(session) = session_id.and_then(|s| inner.sessions.get_mut(&s)) else {
                return reply(tx, "ok", &frame.request_id);
            };
            session.seq += 1;
            session.assigned = true;
            let event = format!(
                r#"{{"type":"assigned","session":"{}","seq":{},"at":{},"agent_name":"Agent"}}"#,
                session_id.expect("parsed above"),
                session.seq,
                now_ms()
            );
            let customer = session.customer.clone();
            reply(tx, "ok", &frame.request_id);
            let _ = tx.send(event.clone()); // see `reply`
            if let Some(customer_tx) = inner.customers.get(&customer).and_then(|c| c.0.clone()) {
                let _ = customer_tx.send(event); // see `reply`
            }
        }
        "message" => {
            let (Some(cmid), Some(body)) = (frame.client_message_id, frame.body) else {
                return reply(tx, "error", &frame.request_id);
            };
            let mut inner = relay.lock();
            let session_id = frame.session.as_deref().and_then(|s| s.parse::<u64>().ok());
            let Some(session) = session_id.and_then(|s| inner.sessions.get_mut(&s)) else {
                let _ = tx.send(format!(r#"{{"type":"error","code":"unknown_session","message":"unknown session","client_message_id":{}}}"#, json(&cmid))); // see `reply`
                return;
            };
            let session_id = session_id.expect("parsed above");
            session.seq += 1;
            let seq = session.seq;
            let event = format!(
                r#"{{"type":"message","session":"{session_id}","seq":{seq},"at":{},"body":{},"channel":"web","client_message_id":{},"sender":"agent:{id}"}}"#,
                now_ms(),
                json(&body),
                json(&cmid)
            );
            let customer = session.customer.clone();
            let _ = tx.send(format!(
                r#"{{"type":"ack","client_message_id":{},"session":"{session_id}","seq":{seq},"duplicate":false}}"#,
                json(&cmid)
            )); // see `reply`
            let _ = tx.send(event.clone()); // see `reply`
            if let Some(customer_tx) = inner.customers.get(&customer).and_then(|c| c.0.clone()) {
                let _ = customer_tx.send(event); // see `reply`
            }
        }
        "ping" => reply(tx, "pong", &frame.request_id),
        _ => reply(tx, "ok", &frame.request_id),
    }
}

/// Offers waiting sessions to the least busy available agents with room.
fn dispatch(relay: &Relay, inner: &mut Inner) {
    while let Some(&session_id) = inner.waiting.front() {
        let Some((agent_id, agent)) = inner
            .agents
            .iter_mut()
            .filter(|(_, agent)| agent.available && agent.active < relay.capacity)
            .min_by_key(|(_, agent)| agent.active)
        else {
            return;
        };
        agent.active += 1;
        let agent_tx = agent.tx.clone();
        let agent_id = agent_id.clone();
        inner.waiting.pop_front();
        let Some(session) = inner.sessions.get_mut(&session_id) else {
            continue;
        };
        session.agent = Some(agent_id.clone());
        for event in session.backlog.drain(..) {
            let _ = agent_tx.send(event); // see `reply`
        }
        session.seq += 1;
        let offer = format!(
            r#"{{"type":"offer","session":"{session_id}","seq":{},"at":{},"agent":{},"deadline":0,"channel":"web","group":"default"}}"#,
            session.seq,
            now_ms(),
            json(&agent_id)
        );
        let _ = agent_tx.send(offer); // see `reply`
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_comes_from_the_claims() {
        let token = crate::target::mint("0123456789abcdef0123456789abcdef", "web:v7", "customer");
        assert_eq!(subject(&token).as_deref(), Some("web:v7"));
        assert_eq!(subject("garbage"), None);
    }
}
