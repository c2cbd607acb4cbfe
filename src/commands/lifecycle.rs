//! Running servers until a signal: handlers registered before any address
//! is announced, one shutdown token for every listener.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use sockit::server::{ServerConfig, Service, TcpServer};
use sockit::tftp::server::{TftpConfig, TftpServer};
use sockit::udp::{DatagramService, UdpServer};

use crate::exit;

type Listener = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Listeners bound one by one, then served together until a signal; the
/// signal handlers are in place before the first address is announced.
pub struct Listeners {
    signals: Signals,
    shutdown: CancellationToken,
    running: Vec<Listener>,
}

impl Listeners {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            signals: Signals::install().context("cannot watch for signals")?,
            shutdown: CancellationToken::new(),
            running: Vec::new(),
        })
    }

    /// Binds a TCP service; returns the bound address to announce.
    pub fn tcp<S: Service>(&mut self, config: ServerConfig, service: S) -> anyhow::Result<SocketAddr> {
        let server = TcpServer::bind(config)?;
        let addr = server.local_addr();
        self.running
            .push(Box::pin(server.run(Arc::new(service), self.shutdown.clone())));
        Ok(addr)
    }

    /// Binds a UDP service; returns the bound address to announce.
    pub fn udp<S: DatagramService>(&mut self, addr: SocketAddr, reuse: bool, service: S) -> anyhow::Result<SocketAddr> {
        let server = UdpServer::bind(addr, reuse)?;
        let addr = server.local_addr();
        self.running
            .push(Box::pin(server.run(Arc::new(service), self.shutdown.clone())));
        Ok(addr)
    }

    /// Binds the TFTP server; returns the bound address to announce.
    pub fn tftp(&mut self, addr: SocketAddr, config: TftpConfig) -> anyhow::Result<SocketAddr> {
        let server = TftpServer::bind(addr, config)?;
        let addr = server.local_addr();
        self.running.push(Box::pin(server.run(self.shutdown.clone())));
        Ok(addr)
    }

    pub async fn serve(self) -> ExitCode {
        serve_all(self.signals, self.shutdown, self.running).await
    }
}

/// SIGINT and SIGTERM, registered up front: a supervisor (or test) that
/// reads the announced address may signal right away.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Cancels `shutdown` on the first signal; true for Ctrl-C (exit 130).
    async fn wait(mut self, shutdown: CancellationToken) -> bool {
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
async fn serve_all(signals: Signals, shutdown: CancellationToken, listeners: Vec<Listener>) -> ExitCode {
    let signal = tokio::spawn(signals.wait(shutdown));
    futures_join_all(listeners).await;
    if signal.await.unwrap_or(false) {
        ExitCode::from(exit::INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    }
}

async fn futures_join_all(listeners: Vec<Listener>) {
    let handles: Vec<_> = listeners.into_iter().map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}
