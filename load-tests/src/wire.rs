//! The public protocol as the generator sees it: frames it sends (built as
//! text, no allocation beyond the string), frames it reads (one struct with
//! the fields any of them may carry), message stamps, and connecting from a
//! chosen 127.0.0.x source address.
//!
//! Everything here follows PROTOCOL.md; nothing comes from the server's code.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A connected socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server frame: every field any frame the generator reads may carry.
#[derive(Debug, Default, Deserialize)]
pub struct Incoming {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default)]
    pub client_message_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub duplicate: Option<bool>,
    /// `welcome` (agent): the sessions offered to the agent.
    #[serde(default)]
    pub offers: Vec<SessionRef>,
}

/// A session named in a list (`welcome`'s `offers`).
#[derive(Debug, Default, Deserialize)]
pub struct SessionRef {
    pub session: String,
}

/// The nodes to try, in order, after losing `current`: the others, rotated
/// by `spread` so that the clients of a dead node spread over the
/// survivors, then `current` itself (it may be back).
pub fn failover_order(nodes: &[SocketAddr], current: SocketAddr, spread: usize) -> Vec<SocketAddr> {
    let mut others: Vec<SocketAddr> = nodes.iter().copied().filter(|n| *n != current).collect();
    if !others.is_empty() {
        let by = spread % others.len();
        others.rotate_left(by);
    }
    others.push(current);
    others
}

/// Connects to the first of `order` that answers, going round it every
/// 100 ms until `timeout`; answers the socket and the node it reached.
pub async fn connect_any(
    order: &[SocketAddr],
    source: IpAddr,
    path_and_query: &str,
    timeout: Duration,
) -> Result<(Socket, SocketAddr)> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut last_error = None;
        for addr in order {
            let endpoint = Endpoint { addr: *addr };
            // A node that accepts but never answers the upgrade is skipped.
            let attempt = tokio::time::timeout(
                Duration::from_secs(5),
                connect(&endpoint, source, path_and_query),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no upgrade from {addr} within 5 s")));
            match attempt {
                Ok(socket) => return Ok((socket, *addr)),
                Err(err) => last_error = Some(err),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let err = last_error.unwrap_or_else(|| anyhow::anyhow!("no node to connect to"));
            return Err(err.context(format!("no node answered within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Incoming {
    /// Parses a text frame; an unreadable one is a protocol error of the server.
    pub fn parse(text: &str) -> Result<Incoming> {
        serde_json::from_str(text).with_context(|| format!("unreadable server frame: {text}"))
    }
}

/// Nanoseconds since the Unix epoch: the stamp carried in message bodies, so
/// that a receiver in another process can measure end-to-end latency (all
/// processes run on one machine and read the same clock).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
}

/// Microseconds from `stamp_ns` to now (0 if the clock stepped back).
pub fn micros_since(stamp_ns: u64) -> u64 {
    now_ns().saturating_sub(stamp_ns) / 1_000
}

/// A customer message body: `lt <send stamp>`.
pub fn customer_body(stamp_ns: u64) -> String {
    format!("lt {stamp_ns}")
}

/// An agent's reply body: `re <customer's stamp> <reply stamp>`.
pub fn reply_body(customer_stamp_ns: u64, stamp_ns: u64) -> String {
    format!("re {customer_stamp_ns} {stamp_ns}")
}

/// The stamp of a customer body (`lt <stamp>`).
pub fn customer_stamp(body: &str) -> Option<u64> {
    body.strip_prefix("lt ")?.parse().ok()
}

/// The two stamps of a reply body (`re <customer stamp> <reply stamp>`).
pub fn reply_stamps(body: &str) -> Option<(u64, u64)> {
    let (first, second) = body.strip_prefix("re ")?.split_once(' ')?;
    Some((first.parse().ok()?, second.parse().ok()?))
}

/// `hello`, optionally with `last_seq` per session.
pub fn hello(request_id: &str, last_seq: &[(String, u64)]) -> String {
    let mut seqs = String::new();
    for (idx, (session, seq)) in last_seq.iter().enumerate() {
        if idx > 0 {
            seqs.push(',');
        }
        seqs.push_str(&format!("\"{session}\":{seq}"));
    }
    format!(r#"{{"type":"hello","request_id":"{request_id}","last_seq":{{{seqs}}}}}"#)
}

/// A customer `message`.
pub fn customer_message(client_message_id: &str, body: &str) -> String {
    format!(r#"{{"type":"message","client_message_id":"{client_message_id}","body":"{body}"}}"#)
}

/// An agent `message` to `session`.
pub fn agent_message(session: &str, client_message_id: &str, body: &str) -> String {
    format!(
        r#"{{"type":"message","session":"{session}","client_message_id":"{client_message_id}","body":"{body}"}}"#
    )
}

/// A request about one session (`accept`, `reject`, `wrap_up`, `close`, `leave`).
pub fn session_request(kind: &str, session: &str) -> String {
    format!(r#"{{"type":"{kind}","session":"{session}"}}"#)
}

/// `accept`, with a `request_id` that names it: an error to it says which
/// request failed.
pub fn accept(session: &str) -> String {
    format!(r#"{{"type":"accept","session":"{session}","request_id":"{ACCEPT_REQUEST}{session}"}}"#)
}

/// The `request_id` prefix of [`accept`].
pub const ACCEPT_REQUEST: &str = "accept-";

/// `presence` `available`.
pub fn available() -> String {
    r#"{"type":"presence","state":"available"}"#.to_string()
}

/// Where the generator connects and from which local addresses.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port` of the server's public listener.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// `http://host:port`.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Opens a WebSocket to `path` (with `?token=`), from `source`, with small
/// buffers, and answers `Err` on a refused upgrade naming the HTTP status.
pub async fn connect(endpoint: &Endpoint, source: IpAddr, path_and_query: &str) -> Result<Socket> {
    let socket = TcpSocket::new_v4().context("failed to create a socket")?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("failed to bind source address {source}"))?;
    let stream = socket
        .connect(endpoint.addr)
        .await
        .with_context(|| format!("failed to connect to {}", endpoint.addr))?;
    stream.set_nodelay(true).ok();
    let url = format!("ws://{}{}", endpoint.addr, path_and_query);
    let request = url.into_client_request().context("bad websocket url")?;
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (socket, _) = tokio_tungstenite::client_async_with_config(
        request,
        MaybeTlsStream::Plain(stream),
        Some(config),
    )
    .await
    .map_err(|err| match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            anyhow::anyhow!("upgrade refused: http {}", response.status().as_u16())
        }
        other => anyhow::Error::new(other).context("websocket handshake failed"),
    })?;
    Ok(socket)
}

/// Sends one text frame.
pub async fn send(socket: &mut Socket, text: String) -> Result<()> {
    socket
        .send(Message::text(text))
        .await
        .context("failed to send a frame")
}

/// The next text frame, or `None` when the server closed. Pings are answered
/// by tungstenite itself.
pub async fn next_text(socket: &mut Socket) -> Result<Option<String>> {
    loop {
        match socket.next().await {
            None => return Ok(None),
            Some(Err(err)) => return Err(anyhow::Error::new(err).context("socket failed")),
            Some(Ok(Message::Text(text))) => return Ok(Some(text.as_str().to_string())),
            Some(Ok(Message::Close(frame))) => {
                if let Some(frame) = frame {
                    bail!("server closed the socket: {} {}", frame.code, frame.reason);
                }
                return Ok(None);
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Waits for a frame of `kind`, answering `Err` on an `error` frame, a close
/// or `timeout`. Frames of other kinds before it are handed to `other`.
pub async fn expect(
    socket: &mut Socket,
    kind: &str,
    timeout: Duration,
    mut other: impl FnMut(Incoming),
) -> Result<Incoming> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = tokio::time::timeout_at(deadline, next_text(socket))
            .await
            .with_context(|| format!("no `{kind}` within {timeout:?}"))??
            .with_context(|| format!("server closed before `{kind}`"))?;
        let frame = Incoming::parse(&text)?;
        if frame.kind == kind {
            return Ok(frame);
        }
        if frame.kind == "error" {
            bail!(
                "error frame while waiting for `{kind}`: {} {}",
                frame.code.unwrap_or_default(),
                frame.message.unwrap_or_default()
            );
        }
        other(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_bodies() {
        assert_eq!(customer_stamp(&customer_body(42)), Some(42));
        assert_eq!(reply_stamps(&reply_body(42, 43)), Some((42, 43)));
        assert_eq!(customer_stamp("hello"), None);
        assert_eq!(reply_stamps("re 1"), None);
    }

    #[test]
    fn frames_are_json_the_protocol_accepts() {
        let frames = [
            hello("h", &[("17".into(), 3), ("18".into(), 0)]),
            customer_message("c-1", &customer_body(1)),
            agent_message("17", "a-1", &reply_body(1, 2)),
            session_request("leave", "17"),
            accept("17"),
            available(),
        ];
        for frame in frames {
            let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
            assert!(value["type"].is_string(), "{frame}");
        }
        let hello: serde_json::Value =
            serde_json::from_str(&hello("h", &[("17".into(), 3)])).unwrap();
        assert_eq!(hello["last_seq"]["17"], 3);
        let accept: serde_json::Value = serde_json::from_str(&accept("17")).unwrap();
        assert_eq!(accept["request_id"], "accept-17");
    }

    #[test]
    fn a_dead_nodes_clients_spread_over_the_others_and_try_it_last() {
        let nodes: Vec<SocketAddr> = (1..=3)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .collect();
        let firsts: Vec<SocketAddr> = (0..4)
            .map(|spread| failover_order(&nodes, nodes[2], spread)[0])
            .collect();
        assert_eq!(firsts, [nodes[0], nodes[1], nodes[0], nodes[1]]);
        assert_eq!(
            failover_order(&nodes, nodes[2], 1),
            [nodes[1], nodes[0], nodes[2]]
        );
        assert_eq!(failover_order(&nodes[..1], nodes[0], 5), [nodes[0]]);
    }

    #[test]
    fn an_agents_welcome_names_its_offers() {
        let welcome = Incoming::parse(
            r#"{"type":"welcome","agent":{"id":"a"},"presence":{"state":"away","reason":"moved to another cluster node"},"sessions":[],"offers":[{"session":"17","state":"queued"}]}"#,
        )
        .unwrap();
        assert_eq!(welcome.offers.len(), 1);
        assert_eq!(welcome.offers[0].session, "17");
    }
}
