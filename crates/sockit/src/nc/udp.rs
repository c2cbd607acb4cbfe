//! UDP sessions: a connected peer (`-u HOST PORT`), or a listener that
//! answers its first peer (`-u -l`) or many peers on one socket (`-u -l -k`).
//! Each input chunk is one datagram; each datagram received is one message.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::answer::{Answerer, Schedule, until};
use super::{CloseReason, Control, IdleClock, MAX_UDP_PEERS, NcEvent, NcOptions, PeerId, Session, quit_deadline};
use crate::Error;
use crate::udp::MAX_DATAGRAM;

/// Sends to the first of `addrs` (UDP cannot tell which answers) from the
/// source address, and reports replies until a deadline or an ICMP error.
pub async fn connect(addrs: &[SocketAddr], opts: &NcOptions, session: Session) -> Result<CloseReason, Error> {
    let Some(&target) = addrs.first() else {
        return Err(Error::Usage("no address to send to".into()));
    };
    let socket = bind(opts.source.unwrap_or_else(|| unspecified(target)))?;
    socket.connect(target).await.map_err(|source| Error::Connect {
        addr: target.to_string(),
        source,
    })?;
    run_connected(socket, target, opts, session).await
}

/// Runs a session on a socket already connected to `target`.
pub async fn run_connected(
    socket: UdpSocket,
    target: SocketAddr,
    opts: &NcOptions,
    session: Session,
) -> Result<CloseReason, Error> {
    let local = socket.local_addr().map_err(Error::io("reading the local address"))?;
    session
        .emit(NcEvent::Connected {
            id: 1,
            peer: target,
            local,
        })
        .await;
    Ok(run(&socket, Some(target), opts, session).await)
}

/// Binds a UDP socket (SO_REUSEADDR, so a restarted listener rebinds at once).
pub fn bind(addr: SocketAddr) -> Result<UdpSocket, Error> {
    bind_one(addr, false)
}

/// A listener's socket. With `dual`, `[::]` takes IPv4 too, and a host
/// without IPv6 gets `0.0.0.0` instead.
pub fn bind_listener(addr: SocketAddr, dual: bool) -> Result<UdpSocket, Error> {
    match bind_one(addr, dual) {
        Err(e) if dual && super::no_ipv6(&e) => bind_one(SocketAddr::from(([0, 0, 0, 0], addr.port())), false),
        bound => bound,
    }
}

fn bind_one(addr: SocketAddr, dual: bool) -> Result<UdpSocket, Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(!dual).map_err(bind_err)?;
    }
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    UdpSocket::from_std(socket.into()).map_err(bind_err)
}

/// Joins each multicast group on the interface the routing table picks
/// for it, so the socket receives what is sent to the group.
pub fn join(socket: &UdpSocket, groups: &[IpAddr]) -> Result<(), Error> {
    for group in groups {
        let joined = match group {
            IpAddr::V4(g) if g.is_multicast() => socket.join_multicast_v4(*g, Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(g) if g.is_multicast() => socket.join_multicast_v6(g, 0),
            other => {
                return Err(Error::Usage(format!(
                    "{other} is not a multicast group (224.0.0.0/4, ff00::/8)"
                )));
            }
        };
        joined.map_err(|source| Error::Io {
            op: "joining the multicast group",
            source,
        })?;
    }
    Ok(())
}

/// Listens on `socket`: without `-k` only the first peer is heard and
/// answered; with `-k` every peer is, and input goes to the newest (or to
/// all of them with `--broadcast-to-all`).
pub async fn serve(socket: UdpSocket, opts: &NcOptions, session: Session) -> Result<CloseReason, Error> {
    if let Ok(addr) = socket.local_addr() {
        session.emit(NcEvent::Listening(addr)).await;
    }
    Ok(run(&socket, None, opts, session).await)
}

/// Peers heard from, newest last, at most [`MAX_UDP_PEERS`].
#[derive(Debug, Default)]
struct Peers {
    known: VecDeque<(SocketAddr, PeerId)>,
    next_id: PeerId,
}

impl Peers {
    /// The peer's id, and whether it is new.
    fn note(&mut self, addr: SocketAddr) -> (PeerId, bool) {
        if let Some(pos) = self.known.iter().position(|(a, _)| *a == addr) {
            // Move it to the back: it is now the newest to speak.
            if let Some(entry) = self.known.remove(pos) {
                let id = entry.1;
                self.known.push_back(entry);
                return (id, false);
            }
        }
        self.next_id += 1;
        if self.known.len() >= MAX_UDP_PEERS {
            self.known.pop_front();
        }
        self.known.push_back((addr, self.next_id));
        (self.next_id, true)
    }

    fn id_of(&self, addr: SocketAddr) -> Option<PeerId> {
        self.known.iter().find(|(a, _)| *a == addr).map(|(_, id)| *id)
    }

    fn addr_of(&self, id: PeerId) -> Option<SocketAddr> {
        self.known.iter().find(|(_, i)| *i == id).map(|(a, _)| *a)
    }

    fn forget(&mut self, id: PeerId) -> Option<SocketAddr> {
        let pos = self.known.iter().position(|(_, i)| *i == id)?;
        self.known.remove(pos).map(|(a, _)| a)
    }
}

/// Sending a datagram, and counting and reporting it.
struct Outbound<'a> {
    socket: &'a UdpSocket,
    connected: Option<SocketAddr>,
    events: &'a tokio::sync::mpsc::Sender<NcEvent>,
    stats: &'a super::Stats,
    activity: &'a AtomicU64,
    report_sent: bool,
}

impl Outbound<'_> {
    /// Sends `data` to `peer`. A connected peer's port that refuses ends
    /// the session (the reason, reported); other failures are logged.
    async fn send(&self, peer: SocketAddr, id: PeerId, data: Bytes) -> Result<(), CloseReason> {
        let sent = match self.connected {
            Some(_) => self.socket.send(&data).await,
            None => self.socket.send_to(&data, peer).await,
        };
        match sent {
            Ok(_) => {
                self.activity.fetch_add(1, Ordering::Relaxed);
                self.stats.sent(data.len());
                if self.report_sent {
                    let _ = self.events.send(NcEvent::Sent { id, peer, data }).await;
                }
                Ok(())
            }
            Err(e) if self.connected.is_some() && e.kind() == io::ErrorKind::ConnectionRefused => {
                let reason = CloseReason::Error("connection refused (nothing listens on that port)".into());
                let _ = self
                    .events
                    .send(NcEvent::Closed {
                        id: 1,
                        peer,
                        reason: reason.clone(),
                    })
                    .await;
                Err(reason)
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "udp send failed");
                Ok(())
            }
        }
    }
}

async fn run(socket: &UdpSocket, connected: Option<SocketAddr>, opts: &NcOptions, session: Session) -> CloseReason {
    let Session {
        mut input,
        events,
        stats,
        mut control,
    } = session;
    let mut peers = Peers::default();
    if let Some(peer) = connected {
        peers.note(peer);
    }
    let activity = AtomicU64::new(0);
    let mut idle = IdleClock::new(opts.timeout, &activity);
    let mut input_open = true;
    let mut quit_at: Option<Instant> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // One answering state for the socket: each datagram is a message, and
    // a rule's reply goes back to the datagram's sender.
    let mut answerer = opts.auto_reply.clone().map(Answerer::new);
    let mut schedule: Schedule<(SocketAddr, Bytes)> = Schedule::default();
    let out = Outbound {
        socket,
        connected,
        events: &events,
        stats: &stats,
        activity: &activity,
        report_sent: opts.report_sent,
    };
    loop {
        let has_peer = !peers.known.is_empty();
        let next_due = schedule.next_due();
        tokio::select! {
            received = recv(socket, connected, &mut buf), if !schedule.is_full() => match received {
                Ok((n, from)) => {
                    let id = match (opts.keep_listening || connected.is_some(), peers.known.front()) {
                        // Without -k the first peer is the only one heard.
                        (false, Some(&(first, id))) if first == from => id,
                        (false, Some(_)) => continue,
                        _ => {
                            let (id, new) = peers.note(from);
                            if new && connected.is_none() {
                                let local = socket.local_addr().unwrap_or(from);
                                let _ = events.send(NcEvent::Connected { id, peer: from, local }).await;
                            }
                            id
                        }
                    };
                    activity.fetch_add(1, Ordering::Relaxed);
                    stats.received(n);
                    let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    let planned = answerer.as_mut().and_then(|a| a.datagram(&data));
                    if opts.report_received {
                        let _ = events.send(NcEvent::Received { id, peer: from, data }).await;
                    }
                    if let Some(plan) = planned {
                        if opts.report_answers {
                            let _ = events.send(NcEvent::Answered { id, peer: from, rule: plan.rule }).await;
                        }
                        // `close` has no connection to close here.
                        if let Some(bytes) = plan.bytes {
                            schedule.push(plan.delay, (from, bytes));
                        }
                    }
                }
                Err(e) if connected.is_some() && e.kind() == io::ErrorKind::ConnectionRefused => {
                    let reason = CloseReason::Error("connection refused (nothing listens on that port)".into());
                    if let Some(peer) = connected {
                        let _ = events.send(NcEvent::Closed { id: 1, peer, reason: reason.clone() }).await;
                    }
                    return reason;
                }
                Err(e) => {
                    // An ICMP error about an earlier send to some peer.
                    tracing::debug!(error = %e, "udp receive failed");
                }
            },
            chunk = input.recv(), if input_open && has_peer => match chunk {
                Some(data) => {
                    let targets: Vec<SocketAddr> = if opts.broadcast_to_all {
                        peers.known.iter().map(|(a, _)| *a).collect()
                    } else {
                        peers.known.back().map(|(a, _)| *a).into_iter().collect()
                    };
                    for peer in targets {
                        let id = peers.id_of(peer).unwrap_or(0);
                        if let Err(reason) = out.send(peer, id, data.clone()).await {
                            return reason;
                        }
                    }
                }
                None => {
                    input_open = false;
                    let _ = events.send(NcEvent::InputDone).await;
                    quit_at = opts.quit_after_eof.map(|q| Instant::now() + q);
                }
            },
            () = until(next_due), if next_due.is_some() => {
                if let Some((peer, data)) = schedule.pop() {
                    let id = peers.id_of(peer).unwrap_or(0);
                    if let Err(reason) = out.send(peer, id, data).await {
                        return reason;
                    }
                }
            },
            order = super::tcp::recv_control(control.as_mut()) => match order {
                Some(Control::SendTo(id, data)) => {
                    if let Some(peer) = peers.addr_of(id) {
                        if let Err(reason) = out.send(peer, id, data).await {
                            return reason;
                        }
                    }
                }
                Some(Control::Disconnect(id)) => {
                    if let Some(peer) = peers.forget(id) {
                        let _ = events.send(NcEvent::Closed { id, peer, reason: CloseReason::Disconnected }).await;
                    }
                }
                None => control = None,
            },
            () = quit_deadline(quit_at) => return CloseReason::QuitAfterEof,
            expired = idle.expired(&activity) => if expired {
                return CloseReason::Idle;
            },
        }
    }
}

async fn recv(socket: &UdpSocket, connected: Option<SocketAddr>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match connected {
        Some(peer) => socket.recv(buf).await.map(|n| (n, peer)),
        None => socket.recv_from(buf).await,
    }
}

fn unspecified(target: SocketAddr) -> SocketAddr {
    let ip = if target.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}
