//! The one way the binary learns it should stop: SIGINT (Ctrl-C) or SIGTERM (what `kill`, systemd and
//! container runtimes send). `secondrow run` cancels its run on it; `serve` and `server` stop accepting
//! connections, finish the requests in flight and exit 0.

use std::future::Future;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Installs the SIGINT and SIGTERM handlers now (a signal that arrives before the future is first polled
/// is not lost) and returns a future that resolves at the first of them. A handler that cannot be
/// installed is never awaited. Call it inside the tokio runtime.
pub fn requested() -> impl Future<Output = ()> + Send + 'static {
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        tokio::select! {
            _ = recv(term) => tracing::info!("SIGTERM received"),
            _ = recv(int) => tracing::info!("SIGINT received"),
        }
    }
}

async fn recv(signal: Option<Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
