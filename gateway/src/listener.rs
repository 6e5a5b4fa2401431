//! The public listener with a connection cap.
//!
//! Every accepted connection holds a permit until its socket closes (an
//! upgraded WebSocket keeps the permit of the TCP connection it came from).
//! At the cap a new connection gets `503` with a JSON body and is closed; the
//! server goes on serving the others. The cap sits below the process's
//! open-file limit (see `Config::connection_cap`), so `accept` never fails
//! with "too many open files" because of clients alone.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{error, warn};

/// Refused connections being answered at once; past this they are dropped
/// without an answer, so a flood cannot use up descriptors.
const MAX_REFUSING: usize = 64;

/// TCP keepalive: first probe after this much silence ...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// ... then one probe this often.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

const REFUSAL_BODY: &str = r#"{"code":"too_many_connections","message":"the server is at its connection limit; retry later"}"#;

/// Counts shared with the rest of the server.
#[derive(Debug)]
pub struct ConnectionGauge {
    permits: Arc<Semaphore>,
    cap: usize,
    refused: AtomicU64,
}

impl ConnectionGauge {
    /// A gauge for at most `cap` connections.
    pub fn new(cap: usize) -> Arc<ConnectionGauge> {
        Arc::new(ConnectionGauge {
            permits: Arc::new(Semaphore::new(cap)),
            cap,
            refused: AtomicU64::new(0),
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

    fn refuse(&self, mut stream: TcpStream, peer: SocketAddr) {
        let refused = self.gauge.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if refused.is_power_of_two() {
            warn!(%peer, cap = self.gauge.cap, refused, "connection refused: at the connection cap");
        }
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return; // Dropping closes it: already answering as many as we allow.
        };
        tokio::spawn(async move {
            let _permit = permit;
            let response = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
                REFUSAL_BODY.len()
            );
            // Answer, then read what the client sent until it closes, so the
            // close is a clean FIN rather than a reset that could hide the answer.
            let answer = async {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                io::Result::Ok(())
            };
            // A client that neither reads nor closes loses its answer after a second.
            let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
        });
    }
}

impl axum::serve::Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => match self.gauge.permits.clone().try_acquire_owned() {
                    Ok(permit) => {
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
                                _permit: permit,
                            },
                            peer,
                        );
                    }
                    Err(_) => self.refuse(stream, peer),
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

/// A connection that gives its permit back when it closes.
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
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
