//! Serving the public listener's connections: HTTP/1.1 through hyper with a
//! header-read timeout, upgrades to WebSocket, graceful shutdown.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never
//! fires there: a connection that sends nothing, or sends its request head a
//! byte at a time, would hold its place under the connection cap for ever.
//! Here every connection must send a whole request head within
//! `limits.http_header_timeout_ms` of connecting or of its previous response
//! (an idle keep-alive connection is closed after that long). A connection
//! that upgrades to a WebSocket leaves this layer; the socket's own ping and
//! idle timeout (`crate::ws::link`) take over.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::listener::CappedListener;

/// Serves `app` on `listener` until `stop` is cancelled, then lets every
/// request in flight finish (idle connections close at once) and returns
/// once they have.
pub async fn serve(
    mut listener: CappedListener,
    app: Router,
    header_timeout: Duration,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = stop.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                // Timeouts, resets and malformed requests: the client's doing.
                debug!(%peer, error = %err, "connection ended");
            }
        });
    }
    connections.close();
    connections.wait().await;
}
