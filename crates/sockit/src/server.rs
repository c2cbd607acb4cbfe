//! The one TCP server skeleton every TCP service runs in.
//!
//! It owns accepting: a connection permit is taken *before* `accept`, so a
//! full server leaves new peers in the kernel's backlog instead of accepting
//! and dropping them; one address may hold only `max_per_peer` connections
//! (more are closed at once), so no single host can take every slot;
//! accept errors (EMFILE) back off instead of spinning;
//! each connection is a task with a tracing span; the auth layer runs under
//! the handshake deadline before the service sees the stream; shutdown stops
//! accepting, then waits (bounded) for connections to drain. Services own
//! what happens *on* a connection and must never block.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::Error;
use crate::auth::{self, Auth};
use crate::stream::Stream;
use crate::tls::Acceptor;

/// Listen backlog. Backlogs of 5-128 drop SYNs under a burst of connects,
/// and each dropped SYN costs the client a 1 s retransmit; 1024 absorbs a
/// burst of 1,000 connects.
pub const DEFAULT_BACKLOG: u32 = 1024;
/// Concurrent connections. Each costs two fds at most in the file service
/// (socket + file); 1024 stays far below the 20,000-fd process limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time a peer has to answer the auth challenge: a real client answers in
/// a round trip, so 10 s only matters to the idle and the hostile.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one address may hold at once: enough for a classroom
/// behind one NAT, and a bound on what one host can take of the 1,024.
pub const DEFAULT_MAX_PER_PEER: usize = 64;
/// Longest silence from a peer mid-session before the connection is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest a request header may take to arrive once it has begun. A header
/// is at most 64 KiB; a client that trickles it a byte at a time under the
/// idle timeout (a slowloris) is cut off here.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Slowest a body may arrive, in bytes per second averaged over
/// [`RATE_WINDOW`]: a transfer that trickles slower holds its slot for
/// nothing. 0 turns the check off.
pub const DEFAULT_MIN_RATE: u64 = 1024;
/// The span over which [`DEFAULT_MIN_RATE`] is judged.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// How long shutdown waits for in-flight connections before dropping them.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub backlog: u32,
    pub reuse_address: bool,
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub min_rate: u64,
    /// The span over which `min_rate` is judged ([`RATE_WINDOW`]).
    pub rate_window: Duration,
    pub drain_timeout: Duration,
    /// `None` only when the user said `--insecure-no-auth`.
    pub auth: Option<Auth>,
    /// TLS on every connection (`--tls`), before auth and the service.
    pub tls: Option<Acceptor>,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr, auth: Option<Auth>) -> Self {
        Self {
            listen,
            backlog: DEFAULT_BACKLOG,
            reuse_address: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            min_rate: DEFAULT_MIN_RATE,
            rate_window: RATE_WINDOW,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            auth,
            tls: None,
        }
    }
}

/// What a service learns about the connection it serves.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub peer: SocketAddr,
    /// Longest wait for this peer.
    pub idle_timeout: Duration,
    /// Longest a request header may take once begun.
    pub request_timeout: Duration,
    /// Slowest a body may arrive (bytes/s over `rate_window`); 0: any.
    pub min_rate: u64,
    pub rate_window: Duration,
    /// Cancelled when the server shuts down: finish or abandon the current
    /// request, then return.
    pub shutdown: CancellationToken,
}

/// A TCP service: what runs on one (already authenticated) connection.
pub trait Service: Send + Sync + 'static {
    fn serve<S>(&self, stream: S, ctx: ConnContext) -> impl Future<Output = Result<(), Error>> + Send
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static;
}

#[derive(Debug)]
pub struct TcpServer {
    listener: TcpListener,
    config: ServerConfig,
    local_addr: SocketAddr,
    stats: Option<Arc<crate::stats::Listener>>,
}

impl TcpServer {
    /// Binds with the configured backlog and SO_REUSEADDR. Must be called
    /// inside a tokio runtime.
    pub fn bind(config: ServerConfig) -> Result<Self, Error> {
        let addr = config.listen;
        let bind_err = |source| Error::Bind { addr, source };
        let socket =
            socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(bind_err)?;
        socket.set_reuse_address(config.reuse_address).map_err(bind_err)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(bind_err)?;
        }
        socket.set_nonblocking(true).map_err(bind_err)?;
        socket.bind(&addr.into()).map_err(bind_err)?;
        let backlog = i32::try_from(config.backlog).unwrap_or(i32::MAX);
        socket.listen(backlog).map_err(bind_err)?;
        Self::with_listener(config, socket.into())
    }

    /// Serves on a listener the service manager bound (socket activation);
    /// its backlog and address are the manager's.
    pub fn from_std(config: ServerConfig, listener: std::net::TcpListener) -> Result<Self, Error> {
        Self::with_listener(config, listener)
    }

    fn with_listener(config: ServerConfig, listener: std::net::TcpListener) -> Result<Self, Error> {
        let addr = config.listen;
        let bind_err = |source| Error::Bind { addr, source };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(listener).map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self {
            listener,
            config,
            local_addr,
            stats: None,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reports connections and their bytes to `listener`.
    pub fn with_stats(mut self, listener: Arc<crate::stats::Listener>) -> Self {
        self.stats = Some(listener);
        self
    }

    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run<Svc: Service>(self, service: Arc<Svc>, shutdown: CancellationToken) {
        let Self {
            listener,
            config,
            local_addr,
            stats,
        } = self;
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let per_peer = PerPeer::new(config.max_per_peer);
        let tracker = TaskTracker::new();
        let auth = config.auth.clone().map(Arc::new);
        let mut backoff = Duration::from_millis(5);
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = shutdown.cancelled() => break,
            };
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(5);
                    a
                }
                Err(e) => {
                    // Out of fds or memory: wait for connections to close
                    // rather than spin on the error.
                    tracing::warn!(error = %e, "accept failed; backing off {}ms", backoff.as_millis());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let Some(peer_slot) = per_peer.take(peer.ip()) else {
                // Closed at once: this host holds its share of the slots.
                tracing::debug!(%peer, "refused: too many connections from this address");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let ctx = ConnContext {
                peer,
                idle_timeout: config.idle_timeout,
                request_timeout: config.request_timeout,
                min_rate: config.min_rate,
                rate_window: config.rate_window,
                // A child token per connection: every clone of one token
                // shares one lock, which each waiting connection would take
                // on every wake-up; children are cancelled with the parent.
                shutdown: shutdown.child_token(),
            };
            // Debug level: an enabled span is entered and left on every
            // poll, a measurable cost per request on a busy echo server.
            // Events that matter at info carry `peer` themselves, and
            // services open an info span per request where that is cheap.
            let span = tracing::debug_span!("conn", %peer);
            let service = service.clone();
            let auth = auth.clone();
            let handshake_timeout = config.handshake_timeout;
            let tls = config.tls.clone();
            let stats = stats.clone();
            tracker.spawn(
                async move {
                    let _permit = permit;
                    let _peer_slot = peer_slot;
                    tracing::debug!("accepted");
                    let _open = stats.as_ref().map(|s| Open::new(Arc::clone(s)));
                    let result = serve_one(
                        stream,
                        ctx,
                        service,
                        tls.as_ref(),
                        auth.as_deref(),
                        handshake_timeout,
                        stats,
                    )
                    .await;
                    match result {
                        Ok(()) => tracing::debug!("closed"),
                        Err(e) if e.is_disconnect() => tracing::debug!(error = %e, "peer went away"),
                        Err(e) => tracing::info!(%peer, error = %error_chain(&e), "connection ended with an error"),
                    }
                }
                .instrument(span),
            );
        }
        drop(listener);
        tracker.close();
        tracing::info!(addr = %local_addr, open = tracker.len(), "stopped accepting; draining");
        if tokio::time::timeout(config.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(open = tracker.len(), "drain timeout passed; dropping open connections");
        }
    }
}

async fn serve_one<Svc: Service>(
    tcp: TcpStream,
    ctx: ConnContext,
    service: Arc<Svc>,
    tls: Option<&Acceptor>,
    auth: Option<&Auth>,
    handshake_timeout: Duration,
    stats: Option<Arc<crate::stats::Listener>>,
) -> Result<(), Error> {
    // TLS first, under the same deadline as the auth handshake: a peer that
    // stalls mid-handshake holds its slot no longer than one that stays mute.
    let mut stream = match tls {
        Some(acceptor) => match tokio::time::timeout(handshake_timeout, crate::tls::accept(tcp, acceptor)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::info!(peer = %ctx.peer, error = %e, "closing");
                return Ok(());
            }
            Err(_) => {
                tracing::info!(peer = %ctx.peer, "no TLS handshake in time; closing");
                return Ok(());
            }
        },
        None => Stream::Plain(tcp),
    };
    if let Some(auth) = auth {
        // Inside TLS the handshake is bound to the channel, both ways.
        let shake = tokio::time::timeout(handshake_timeout, auth::accept_on(&mut stream, auth)).await;
        match shake {
            Ok(Ok(())) => {}
            Ok(Err(Error::AuthFailed)) => {
                tracing::warn!(peer = %ctx.peer, "authentication failed; closing");
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                tracing::info!(peer = %ctx.peer, "no answer to the auth challenge in time; closing");
                return Ok(());
            }
        }
    }
    match stats {
        Some(listener) => service.serve(crate::stats::Counted::new(stream, listener), ctx).await,
        None => service.serve(stream, ctx).await,
    }
}

/// A connection counted open in its listener's figures until dropped.
struct Open(Arc<crate::stats::Listener>);

impl Open {
    fn new(listener: Arc<crate::stats::Listener>) -> Self {
        listener.opened();
        Self(listener)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.closed();
    }
}

/// Connections held per address, bounded.
#[derive(Debug, Clone)]
struct PerPeer {
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's share of its address's count; given back on drop.
#[derive(Debug)]
struct PeerSlot {
    ip: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerPeer {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            held: Arc::default(),
        }
    }

    fn take(&self, ip: IpAddr) -> Option<PeerSlot> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            ip,
            held: Arc::clone(&self.held),
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// `err: cause: cause` on one line, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        s.push_str(": ");
        s.push_str(&e.to_string());
        source = e.source();
    }
    s
}
