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
use sockit::stats::{Snapshot, Stats};
use sockit::tftp::server::{TftpConfig, TftpServer};
use sockit::udp::{DatagramService, UdpServer};
use sockit::web::WebService;
use sockit_proto::auth::Key;

use sockit::activation;
use sockit::privileges::{self, Identity};

use crate::UsageError;
use crate::cli::RunAsArgs;
use crate::exit;

type Listener = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Listeners bound one by one, then served together until a signal; the
/// signal handlers are in place before the first address is announced.
pub struct Listeners {
    /// Who to become once every port is bound (`--user`).
    run_as: Option<Identity>,
    signals: Signals,
    shutdown: CancellationToken,
    running: Vec<Listener>,
    /// Where every listener and transfer reports (the dashboard, --stats).
    stats: Stats,
}

impl Listeners {
    /// Call before any served folder is opened: folders made from here on
    /// are made for the `--user` the server will become.
    pub fn new(run_as: &RunAsArgs) -> anyhow::Result<Self> {
        let run_as = match &run_as.user {
            Some(user) => {
                let identity =
                    privileges::lookup(user, run_as.group.as_deref()).map_err(|e| UsageError(e.to_string()))?;
                privileges::will_run_as(&identity);
                Some(identity)
            }
            None => None,
        };
        Ok(Self {
            run_as,
            signals: Signals::install().context("cannot watch for signals")?,
            shutdown: CancellationToken::new(),
            running: Vec::new(),
            stats: Stats::new(),
        })
    }

    /// The figures every listener started here reports to.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Prints every listener's figures and the transfers in progress to
    /// stderr, every `every` (`serve --stats`).
    pub fn report_stats(&mut self, every: std::time::Duration) {
        let stats = self.stats.clone();
        self.task(
            async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    for line in stats_lines(&stats.snapshot()) {
                        eprintln!("sockit: stats: {line}");
                    }
                }
            },
            async {},
        );
    }

    /// Binds a TCP service and announces it:
    /// `listening on tcp ADDR (SERVICE, auth: …[, DETAILS][, tls: …])`.
    pub fn tcp<S: Service>(
        &mut self,
        config: ServerConfig,
        service: S,
        name: &str,
        details: &str,
    ) -> anyhow::Result<SocketAddr> {
        let auth = match &config.auth {
            Some(a) => format!("hmac-{}", a.digest.name()),
            None => "off".to_owned(),
        };
        let tls = config
            .tls
            .as_ref()
            .map(|t| format!(", tls: {}", t.fingerprint()))
            .unwrap_or_default();
        let server = bind_tcp(config, name)?;
        let addr = server.local_addr();
        let server = server.with_stats(self.stats.listener(name, "tcp", addr));
        self.running
            .push(Box::pin(server.run(Arc::new(service), self.shutdown.clone())));
        crate::outln!(
            "listening on tcp {addr} ({name}, auth: {auth}{}{tls})",
            with_comma(details)
        )?;
        Ok(addr)
    }

    /// Binds the web front end and announces it, then prints the address a
    /// user opens (`web: http://ADDR/#token=…`), as a QR code too with
    /// `qr`. Open uploads are kept for a resume once its connections have
    /// drained.
    pub fn web(
        &mut self,
        config: ServerConfig,
        service: WebService,
        details: &str,
        key: Option<&Key>,
        qr: bool,
    ) -> anyhow::Result<SocketAddr> {
        let auth = if key.is_some() { "token" } else { "off" };
        let (scheme, tls) = match &config.tls {
            Some(t) => ("https", format!(", tls: {}", t.fingerprint())),
            None => ("http", String::new()),
        };
        let server = bind_tcp(config, "web")?;
        let addr = server.local_addr();
        let server = server.with_stats(self.stats.listener("web", "tcp", addr));
        let shutdown = self.shutdown.clone();
        let sweeper = service.clone();
        let service = Arc::new(service);
        self.running.push(Box::pin(async move {
            let sweeping = tokio::spawn(sweeper.sweep_uploads());
            server.run(Arc::clone(&service), shutdown).await;
            sweeping.abort();
            service.shutdown().await;
        }));
        crate::outln!(
            "listening on tcp {addr} (web, auth: {auth}{}{tls})",
            with_comma(details)
        )?;
        let url = sockit::web::web_url(scheme, addr, key);
        crate::outln!("web: {url}")?;
        if qr {
            crate::output::write_str(&qr_code(&url))?;
        }
        Ok(addr)
    }

    /// Binds a UDP service and announces it (UDP services have no auth:
    /// there is no connection to hold a handshake).
    pub fn udp<S: DatagramService>(
        &mut self,
        addr: SocketAddr,
        reuse: bool,
        service: S,
        name: &str,
    ) -> anyhow::Result<SocketAddr> {
        let server = match activation::take_udp(service_key(name), addr) {
            Some(socket) => UdpServer::from_std(socket),
            None => UdpServer::bind(addr, reuse),
        }
        .map_err(|e| bind_error(e.into(), addr))?;
        let bound = server.local_addr();
        let server = server.with_stats(self.stats.listener(name, "udp", bound));
        self.running
            .push(Box::pin(server.run(Arc::new(service), self.shutdown.clone())));
        crate::outln!("listening on udp {bound} ({name}, auth: none)")?;
        Ok(bound)
    }

    /// Binds the TFTP server and announces it.
    pub fn tftp(&mut self, addr: SocketAddr, mut config: TftpConfig, details: &str) -> anyhow::Result<SocketAddr> {
        config.stats = self.stats.clone();
        let server = match activation::take_udp("tftp", addr) {
            Some(socket) => TftpServer::from_std(socket, config),
            None => TftpServer::bind(addr, config),
        }
        .map_err(|e| bind_error(e.into(), addr))?;
        let bound = server.local_addr();
        self.running.push(Box::pin(server.run(self.shutdown.clone())));
        crate::outln!("listening on udp {bound} (tftp, auth: none{})", with_comma(details))?;
        Ok(bound)
    }

    /// Runs a service that is not a listener skeleton (a broadcast log, an
    /// IPMSG node) until shutdown; `stop` runs then, for a goodbye.
    pub fn task<F, S>(&mut self, run: F, stop: S)
    where
        F: Future<Output = ()> + Send + 'static,
        S: Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.running.push(Box::pin(async move {
            tokio::select! {
                () = run => {}
                () = shutdown.cancelled() => stop.await,
            }
        }));
    }

    /// The announcement for a listener that [`Listeners::task`] runs.
    pub fn announce(proto: &str, addr: SocketAddr, name: &str) -> anyhow::Result<()> {
        crate::outln!("listening on {proto} {addr} ({name}, auth: none)")?;
        Ok(())
    }

    /// Gives up root if asked (every port is bound by now), then serves
    /// until a signal. Nothing has been served before the switch.
    pub async fn serve(self) -> anyhow::Result<ExitCode> {
        if let Some(identity) = &self.run_as {
            privileges::drop_to(identity).context("refusing to serve as root")?;
            tracing::info!(user = %identity.user, uid = identity.uid, gid = identity.gid, "running as");
        }
        activation::close_unused();
        activation::notify_ready();
        Ok(serve_all(self.signals, self.shutdown, self.running).await)
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
        activation::notify_stopping();
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

/// `serve --stats` lines: one per listener, one per transfer in progress.
fn stats_lines(snapshot: &Snapshot) -> Vec<String> {
    use crate::output::human_bytes;
    let mut lines: Vec<String> = snapshot
        .listeners
        .iter()
        .map(|l| {
            format!(
                "{} {} {}: {} open, {} in all, {} in, {} out",
                l.service,
                l.proto,
                l.addr,
                l.open,
                l.total,
                human_bytes(l.bytes_in),
                human_bytes(l.bytes_out)
            )
        })
        .collect();
    for t in &snapshot.transfers {
        let of = t.size.map(|s| format!(" of {}", human_bytes(s))).unwrap_or_default();
        let peer = t.peer.as_deref().map(|p| format!(" with {p}")).unwrap_or_default();
        lines.push(format!(
            "{} {}{peer}: {}{of}, {}/s",
            t.kind,
            t.name,
            human_bytes(t.done),
            human_bytes(t.bytes_per_second)
        ));
    }
    lines
}

/// A URL as a QR code in text, two modules per character cell, for a
/// phone's camera pointed at the terminal.
pub fn qr_code(url: &str) -> String {
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => {
            let art = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build();
            format!("{art}\n")
        }
        Err(e) => format!("(no QR code: {e})\n"),
    }
}

/// `, DETAILS`, or nothing for none.
fn with_comma(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(", {details}")
    }
}

/// The TCP listener for service `name`: the one the service manager
/// handed over for it, or a new one.
fn bind_tcp(config: ServerConfig, name: &str) -> anyhow::Result<TcpServer> {
    let listen = config.listen;
    match activation::take_tcp(service_key(name), listen) {
        Some(listener) => TcpServer::from_std(config, listener),
        None => TcpServer::bind(config),
    }
    .map_err(|e| bind_error(e.into(), listen))
}

/// The name an inherited socket is matched by: the service's first word
/// (`echo` for "echo, upper").
fn service_key(name: &str) -> &str {
    name.split([',', ' ']).next().unwrap_or(name)
}

/// A bind failure with the hint that fits it: a privileged port needs
/// root, a port in use belongs to another program.
fn bind_error(err: anyhow::Error, addr: SocketAddr) -> anyhow::Error {
    let kind = err
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>().map(std::io::Error::kind));
    match kind {
        Some(std::io::ErrorKind::PermissionDenied) if addr.port() < 1024 => {
            err.context("ports below 1024 need root (or CAP_NET_BIND_SERVICE); pick a port from 1024 up")
        }
        Some(std::io::ErrorKind::AddrInUse) => {
            err.context("another program (or a server still closing) has this address")
        }
        Some(std::io::ErrorKind::AddrNotAvailable) => err.context("no interface of this machine has this address"),
        _ => err,
    }
}
