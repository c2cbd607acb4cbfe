//! TFTP over tokio: the server (a listener that gives every transfer its own
//! socket, a new TID) and the client. The protocol itself is
//! `sockit_proto::tftp`; [`drive`] is the thin loop that runs one transfer
//! machine against a socket and a file.
//!
//! - [`server`]: `TftpServer`, reads and writes through the Sandbox.
//! - [`client`]: `get` and `put`.
//! - [`drive`]: the transfer loop both use (a blocking thread per transfer).

pub mod client;
pub mod drive;
mod pktinfo;
pub mod server;

use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};
use tokio::net::UdpSocket;

use crate::Error;

/// Socket buffers asked for: a window of 16 blocks of 64 KiB is 1 MiB, and
/// the default buffer (about 200 KiB) would drop most of it, which is why
/// windowed transfers at large block sizes collapse elsewhere. The kernel
/// caps this at net.core.rmem_max / wmem_max.
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// A blocking UDP socket with large buffers, bound to `addr`: what a
/// transfer's thread uses.
pub(crate) fn bind_blocking(addr: SocketAddr) -> Result<std::net::UdpSocket, Error> {
    Ok(socket(addr, false)?.into())
}

/// A socket bound to `addr`; with `shared`, other sockets may bind the same
/// address too (SO_REUSEADDR), as single-port mode's transfers do.
fn socket(addr: SocketAddr, shared: bool) -> Result<Socket, Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).map_err(bind_err)?;
    // Best effort: a smaller buffer still works, just with more loss.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    if shared {
        socket.set_reuse_address(true).map_err(bind_err)?;
    }
    socket.bind(&addr.into()).map_err(bind_err)?;
    Ok(socket)
}

/// The server's request socket on the runtime: it learns the address each
/// request was sent to (see [`pktinfo`]).
pub(crate) fn bind_requests(addr: SocketAddr, shared: bool) -> Result<UdpSocket, Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let socket = socket(addr, shared)?;
    pktinfo::enable(&socket, addr.is_ipv6()).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    UdpSocket::from_std(socket.into()).map_err(bind_err)
}

/// A request socket handed over by the service manager: it gets the same
/// settings as one bound here.
pub(crate) fn adopt_requests(socket: std::net::UdpSocket) -> Result<UdpSocket, Error> {
    let addr = socket
        .local_addr()
        .map_err(Error::io("reading an inherited socket's address"))?;
    let bind_err = |source| Error::Bind { addr, source };
    let socket = Socket::from(socket);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    pktinfo::enable(&socket, addr.is_ipv6()).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    UdpSocket::from_std(socket.into()).map_err(bind_err)
}

/// A datagram and who sent it.
pub(crate) type Stray = (Vec<u8>, SocketAddr);

/// A transfer's socket in single-port mode: bound to the listening address
/// and port beside the request socket, and connected to the peer, so the
/// kernel hands it every datagram from that peer (a connected socket is the
/// better match) while new requests still reach the request socket.
///
/// Between bind and connect it is an unconnected socket on the listening
/// port and may receive other peers' requests; those are returned, for the
/// listener to handle.
pub(crate) fn bind_connected(local: SocketAddr, peer: SocketAddr) -> Result<(std::net::UdpSocket, Vec<Stray>), Error> {
    let socket: std::net::UdpSocket = socket(local, true)?.into();
    socket
        .connect(peer)
        .map_err(Error::io("connecting a transfer socket"))?;
    let mut strays = Vec::new();
    socket
        .set_nonblocking(true)
        .map_err(Error::io("setting a transfer socket"))?;
    let mut buf = vec![0u8; crate::udp::MAX_DATAGRAM];
    // Bounded: only what arrived in the moment before connect.
    for _ in 0..64 {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from != peer => strays.push((buf.get(..n).unwrap_or_default().to_vec(), from)),
            // The peer's own repeated request: its transfer is this one.
            Ok(_) => {}
            Err(_) => break,
        }
    }
    socket
        .set_nonblocking(false)
        .map_err(Error::io("setting a transfer socket"))?;
    Ok((socket, strays))
}
