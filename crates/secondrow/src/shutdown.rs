//! The one way the binary learns it should stop: SIGINT (Ctrl-C) or SIGTERM (what `kill`, systemd and
//! container runtimes send). `secondrow run` cancels its run on it; `serve` and `server` stop accepting
//! connections, finish the requests in flight and exit 0.

use std::future::Future;

use secondrow_engine::CancellationToken;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;

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

/// A token cancelled at the first SIGINT or SIGTERM, after `note` (when given) is printed to stderr; abort the
/// returned task once the work it guards has ended.
pub fn cancel_on_signal(note: Option<&'static str>) -> (CancellationToken, JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let stop = requested();
    let task = tokio::spawn(async move {
        stop.await;
        if let Some(note) = note {
            eprintln!("{note}");
        }
        on_signal.cancel();
    });
    (cancel, task)
}

async fn recv(signal: Option<Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
