//! The public listener with a connection cap.
//!
//! Every accepted connection holds a permit until its socket closes (an
//! upgraded WebSocket keeps the permit of the TCP connection it came from).
//! At the cap a new connection gets `503` with a JSON body and is closed; the
//! server goes on serving the others. The cap sits below the process's
//! open-file limit (see `Config::connection_cap`), so `accept` never fails
//! with "too many open files" because of clients alone.
//!
//! Health checks stay answerable at the cap: a refused connection whose
//! request is `GET /healthz` gets `200 ok`, and `GET /readyz` gets `503 at
//! the connection cap` (true: the server takes no new clients), instead of
//! the refusal. With `limits.max_connections_per_address` set, one source
//! address may hold at most that many connections; past it a connection is
//! refused the same way with the code `too_many_connections_from_address`.
//! Connections that never send a request are closed by the HTTP layer's
//! header-read timeout (`crate::serve`), so they cannot hold the cap.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{error, warn};

/// Refused connections being answered at once; past this they are dropped
/// without an answer, so a flood cannot use up descriptors.
const MAX_REFUSING: usize = 256;

/// TCP keepalive: first probe after this much silence ...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// ... then one probe this often.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a refused connection may take to send its request line (a
/// health probe sends it at once): short, so silent connections at the cap
/// do not hold the refusal permits for long.
const REFUSAL_READ: Duration = Duration::from_millis(250);

/// How long a refused client may take to read its answer and close.
const REFUSAL_ANSWER: Duration = Duration::from_millis(500);

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The server holds `limits.max_connections`.
    Cap,
    /// This source address holds `limits.max_connections_per_address`.
    Address,
}

impl Refusal {
    /// What `/readyz` says when refused.
    fn not_ready(self) -> &'static str {
        match self {
            Refusal::Cap => "at the connection cap",
            Refusal::Address => "this address is at limits.max_connections_per_address",
        }
    }

    /// The JSON body of any other refused request.
    fn body(self) -> &'static str {
        match self {
            Refusal::Cap => {
                r#"{"code":"too_many_connections","message":"the server is at its connection limit; retry later"}"#
            }
            Refusal::Address => {
                r#"{"code":"too_many_connections_from_address","message":"this address holds as many connections as limits.max_connections_per_address allows; close one or retry later"}"#
            }
        }
    }
}

/// Counts shared with the rest of the server.
#[derive(Debug)]
pub struct ConnectionGauge {
    permits: Arc<Semaphore>,
    cap: usize,
    refused: AtomicU64,
    /// Connections held per source address, when they are limited.
    per_address: Option<AddressCounts>,
}

/// Connections per source address, with their limit.
#[derive(Debug)]
struct AddressCounts {
    limit: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl ConnectionGauge {
    /// A gauge for at most `cap` connections, and at most `per_address`
    /// from one source address (0: no per-address limit).
    pub fn new(cap: usize, per_address: usize) -> Arc<ConnectionGauge> {
        Arc::new(ConnectionGauge {
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            refused: AtomicU64::new(0),
            per_address: (per_address > 0).then(|| AddressCounts {
                limit: per_address,
                held: Arc::default(),
            }),
        })
    }

    /// Takes a slot for one connection from `peer`, or says why not.
    fn admit(&self, peer: IpAddr) -> Result<Admission, Refusal> {
        let address_slot = match &self.per_address {
            None => None,
            Some(counts) => {
                let mut held = counts
                    .held
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                let n_held = held.entry(peer).or_insert(0);
                if *n_held >= counts.limit {
                    return Err(Refusal::Address);
                }
                *n_held += 1;
                Some(AddressSlot {
                    held: counts.held.clone(),
                    peer,
                })
            }
        };
        // On failure the address slot, already taken, is given back by its drop.
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Cap)?;
        Ok(Admission {
            _permit: permit,
            _address_slot: address_slot,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.cap - self.permits.available_permits()
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// A `TcpListener` that holds every connection to the cap.
pub struct CappedListener {
    inner: TcpListener,
    gauge: Arc<ConnectionGauge>,
    refusing: Arc<Semaphore>,
}

impl CappedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, gauge: Arc<ConnectionGauge>) -> CappedListener {
        CappedListener {
            inner,
            gauge,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }

    fn refuse(&self, mut stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
        let refused = self.gauge.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if refused.is_power_of_two() {
            match refusal {
                Refusal::Cap => {
                    warn!(%peer, cap = self.gauge.cap, refused, "connection refused: at the connection cap")
                }
                Refusal::Address => {
                    warn!(%peer, refused, "connection refused: the address is at limits.max_connections_per_address")
                }
            }
        }
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return; // Dropping closes it: already answering as many as we allow.
        };
        tokio::spawn(async move {
            let _permit = permit;
            let mut request = [0u8; 1024];
            // The request line says whether this is a health check; a client
            // that sends nothing in time gets the refusal.
            let n_read =
                tokio::time::timeout(REFUSAL_READ, read_request_line(&mut stream, &mut request))
                    .await
                    .unwrap_or(Ok(0))
                    .unwrap_or(0);
            let response = refusal_response(&request[..n_read], refusal);
            // Answer, then read what the client sent until it closes, so the
            // close is a clean FIN rather than a reset that could hide the answer.
            let answer = async {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                io::Result::Ok(())
            };
            // A client that neither reads nor closes loses its answer after a while.
            let _ = tokio::time::timeout(REFUSAL_ANSWER, answer).await;
        });
    }
}

/// Reads into `buf` until it holds a whole request line (or is full, or
/// the client stops sending); returns how much was read.
async fn read_request_line(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut n_read = 0;
    while n_read < buf.len() && !buf[..n_read].contains(&b'\n') {
        let n = stream.read(&mut buf[n_read..]).await?;
        if n == 0 {
            break;
        }
        n_read += n;
    }
    Ok(n_read)
}

/// The answer to a refused connection that sent `request` (its first bytes).
fn refusal_response(request: &[u8], refusal: Refusal) -> String {
    let request_line = request
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default();
    let mut words = request_line.split(|byte| *byte == b' ');
    let method = words.next();
    // The path without its query: `/healthz?probe=1` is a health check too.
    let path = words
        .next()
        .and_then(|target| target.split(|byte| *byte == b'?').next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET" | b"HEAD"), Some(b"/healthz")) => {
            ("200 OK", "text/plain; charset=utf-8", "ok")
        }
        (Some(b"GET" | b"HEAD"), Some(b"/readyz")) => (
            "503 Service Unavailable",
            "text/plain; charset=utf-8",
            refusal.not_ready(),
        ),
        _ => (
            "503 Service Unavailable",
            "application/json",
            refusal.body(),
        ),
    };
    // A HEAD answer has the length of the body it would have, and no body.
    let sent_body = if method == Some(b"HEAD") { "" } else { body };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{sent_body}",
        body.len()
    )
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => match self.gauge.admit(peer.ip()) {
                    Ok(admission) => {
                        // Latency over batching: chat frames are small and interactive.
                        let _ = stream.set_nodelay(true);
                        // A peer that vanished (no FIN, no RST) is found by the
                        // kernel, so its connection does not hold a permit forever.
                        let keepalive = socket2::TcpKeepalive::new()
                            .with_time(KEEPALIVE_IDLE)
                            .with_interval(KEEPALIVE_INTERVAL);
                        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
                        return (
                            CappedStream {
                                stream,
                                _admission: admission,
                            },
                            peer,
                        );
                    }
                    Err(refusal) => self.refuse(stream, peer, refusal),
                },
                Err(err) if is_per_connection(&err) => {}
                Err(err) => {
                    // Out of descriptors or buffers: back off instead of spinning.
                    error!(error = %err, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection's place under the cap (and under its address's limit).
struct Admission {
    _permit: OwnedSemaphorePermit,
    _address_slot: Option<AddressSlot>,
}

/// One connection counted against its source address; given back on drop.
struct AddressSlot {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(n_held) = held.get_mut(&self.peer) {
            *n_held -= 1;
            if *n_held == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

/// A connection that gives its permit back when it closes.
pub struct CappedStream {
    stream: TcpStream,
    _admission: Admission,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: &str, refusal: Refusal, expected_status: &str, expected_body: &str) {
        let response = refusal_response(request.as_bytes(), refusal);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {expected_status}\r\n")),
            "{request:?}: {response}"
        );
        assert!(response.ends_with(expected_body), "{request:?}: {response}");
    }

    #[test]
    fn refusals_answer_health_checks() {
        check(
            "GET /healthz HTTP/1.1\r\n",
            Refusal::Cap,
            "200 OK",
            "\r\n\r\nok",
        );
        check(
            "HEAD /healthz HTTP/1.1\r\n",
            Refusal::Address,
            "200 OK",
            "content-length: 2\r\n\r\n",
        );
        check(
            "GET /healthz?probe=1 HTTP/1.1\r\n",
            Refusal::Cap,
            "200 OK",
            "\r\n\r\nok",
        );
        check(
            "GET /readyz HTTP/1.1\r\n",
            Refusal::Cap,
            "503 Service Unavailable",
            "at the connection cap",
        );
        check(
            "GET /readyz HTTP/1.1\r\n",
            Refusal::Address,
            "503 Service Unavailable",
            "at limits.max_connections_per_address",
        );
        check(
            "GET /healthz/x HTTP/1.1\r\n",
            Refusal::Cap,
            "503 Service Unavailable",
            "}",
        );
        check(
            "POST /healthz HTTP/1.1\r\n",
            Refusal::Cap,
            "503 Service Unavailable",
            "}",
        );
        check(
            "",
            Refusal::Cap,
            "503 Service Unavailable",
            Refusal::Cap.body(),
        );
        check(
            "GET /api/v1/me HTTP/1.1\r\n",
            Refusal::Address,
            "503 Service Unavailable",
            Refusal::Address.body(),
        );
    }

    #[test]
    fn per_address_slots_are_counted_and_given_back() {
        let gauge = ConnectionGauge::new(10, 2);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let first = gauge.admit(one).unwrap();
        let _second = gauge.admit(one).unwrap();
        assert_eq!(gauge.admit(one).err(), Some(Refusal::Address));
        let _other = gauge.admit(two).unwrap();
        assert_eq!(gauge.open(), 3);
        drop(first);
        assert!(gauge.admit(one).is_ok());
        assert_eq!(gauge.open(), 2, "the admission above was dropped at once");
    }

    #[test]
    fn the_cap_refuses_and_gives_back_the_address_slot() {
        let gauge = ConnectionGauge::new(1, 1);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let _held = gauge.admit(one).unwrap();
        assert_eq!(gauge.admit(two).err(), Some(Refusal::Cap));
        let counts = gauge.per_address.as_ref().unwrap();
        assert_eq!(counts.held.lock().unwrap().get(&two), None);
    }
}
