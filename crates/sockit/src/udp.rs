//! The one UDP server skeleton: a socket, a loop, a bound on every reply.
//!
//! A UDP peer's address can be forged, so a reply is capped by what the
//! service declares for a request of that size (echo: never more than it
//! received). The skeleton drops, and logs, any reply over the cap: a
//! service bug must not turn the server into an amplifier.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Largest datagram read: the UDP maximum, so nothing is cut silently.
pub const MAX_DATAGRAM: usize = 65_535;

/// A UDP service: one reply (or none) per datagram, computed without blocking.
pub trait DatagramService: Send + Sync + 'static {
    /// The reply to `request` from `peer`, if any.
    fn reply(&self, request: &[u8], peer: SocketAddr) -> Option<Vec<u8>>;

    /// The largest reply allowed for a request of `request_len` bytes.
    fn reply_limit(&self, request_len: usize) -> usize {
        request_len
    }
}

#[derive(Debug)]
pub struct UdpServer {
    socket: UdpSocket,
    local_addr: SocketAddr,
    stats: Option<std::sync::Arc<crate::stats::Listener>>,
}

impl UdpServer {
    /// Binds (SO_REUSEADDR as asked). Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, reuse_address: bool) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind { addr, source };
        let socket =
            socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None).map_err(bind_err)?;
        socket.set_reuse_address(reuse_address).map_err(bind_err)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(bind_err)?;
        }
        socket.bind(&addr.into()).map_err(bind_err)?;
        Self::from_std(socket.into())
    }

    /// Serves on a socket the service manager bound (socket activation).
    pub fn from_std(socket: std::net::UdpSocket) -> Result<Self, Error> {
        let addr = socket
            .local_addr()
            .map_err(Error::io("reading an inherited socket's address"))?;
        let bind_err = |source| Error::Bind { addr, source };
        socket.set_nonblocking(true).map_err(bind_err)?;
        let socket = UdpSocket::from_std(socket).map_err(bind_err)?;
        Ok(Self {
            socket,
            local_addr: addr,
            stats: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reports requests and their bytes to `listener`.
    pub fn with_stats(mut self, listener: std::sync::Arc<crate::stats::Listener>) -> Self {
        self.stats = Some(listener);
        self
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run<S: DatagramService>(self, service: Arc<S>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let received = tokio::select! {
                r = self.socket.recv_from(&mut buf) => r,
                () = shutdown.cancelled() => break,
            };
            let (n, peer) = match received {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors from earlier sends surface here; they are
                    // about some other peer, so keep serving.
                    tracing::debug!(error = %e, "udp receive failed");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            if let Some(stats) = &self.stats {
                // A datagram is an exchange: counted, never open.
                stats.opened();
                stats.closed();
                stats.received(n);
            }
            let request = buf.get(..n).unwrap_or_default();
            let Some(reply) = service.reply(request, peer) else {
                continue;
            };
            let limit = service.reply_limit(n);
            if reply.len() > limit {
                tracing::warn!(%peer, len = reply.len(), limit, "reply over its bound; dropped");
                continue;
            }
            match self.socket.send_to(&reply, peer).await {
                Ok(sent) => {
                    if let Some(stats) = &self.stats {
                        stats.sent(sent);
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "udp send failed"),
            }
        }
    }
}
