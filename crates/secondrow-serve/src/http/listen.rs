//! The accept loop both HTTP ports use (the model server's and `secondrow server`'s API): HTTP/1 with a
//! header-read timeout (a connection that does not finish its request head in time, or idles that long
//! between requests, is closed) and a cap on open connections (past it, new ones wait in the kernel's
//! backlog until one closes). Slow or stalled clients therefore hold at most `max_connections` sockets
//! for at most `header_read_timeout` each; a graceful shutdown finishes the requests in flight. Connections
//! may be upgraded (the notebook proxy's WebSockets); an upgraded connection leaves the accept loop's count.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

/// Default [`ConnectionLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ConnectionLimits::max_connections`]: well under the usual 1,024 open files per process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Limits of one listening port.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time a client has to send a whole request head, and the longest idle time between requests.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits { header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT, max_connections: DEFAULT_MAX_CONNECTIONS }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then waits for the requests in
/// flight. Accept errors (out of file descriptors, a connection reset before accept) are logged and the
/// loop goes on after a short pause.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Told to every connection at shutdown; each then finishes its request in flight and closes.
    let (closing, _) = tokio::sync::watch::channel(false);
    let max = limits.max_connections.max(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; Nagle would only hold the last segment back.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        // With upgrades: the API server's notebook proxy joins WebSocket connections to the notebooks.
        let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut close = closing.subscribe();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                r = connection.as_mut() => r,
                _ = close.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection gave its slot back: the requests in flight are finished.
    let _ = slots.acquire_many(u32::try_from(max).unwrap_or(u32::MAX)).await;
    Ok(())
}
