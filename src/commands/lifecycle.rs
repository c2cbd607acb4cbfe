//! Running servers until a signal: handlers registered before any address
//! is announced, one shutdown token for every listener.

use std::future::Future;
use std::process::ExitCode;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::exit;

/// SIGINT and SIGTERM, registered up front: a supervisor (or test) that
/// reads the announced address may signal right away.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Cancels `shutdown` on the first signal; true for Ctrl-C (exit 130).
    pub async fn wait(mut self, shutdown: CancellationToken) -> bool {
        let interrupted = tokio::select! {
            _ = self.interrupt.recv() => true,
            _ = self.terminate.recv() => false,
        };
        tracing::info!("shutting down");
        shutdown.cancel();
        interrupted
    }
}

/// Runs every listener until a signal, then waits for all to drain.
pub async fn serve_all(
    signals: Signals,
    shutdown: CancellationToken,
    listeners: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
) -> ExitCode {
    let signal = tokio::spawn(signals.wait(shutdown));
    futures_join_all(listeners).await;
    if signal.await.unwrap_or(false) {
        ExitCode::from(exit::INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

async fn futures_join_all(listeners: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>) {
    let handles: Vec<_> = listeners.into_iter().map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}
