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
    let bind_err = |source| Error::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).map_err(bind_err)?;
    // Best effort: a smaller buffer still works, just with more loss.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into()).map_err(bind_err)?;
    Ok(socket.into())
}

/// The same, for the server's request socket on the runtime.
pub(crate) fn bind_async(addr: SocketAddr) -> Result<UdpSocket, Error> {
    let socket = bind_blocking(addr)?;
    let bind_err = |source| Error::Bind { addr, source };
    socket.set_nonblocking(true).map_err(bind_err)?;
    UdpSocket::from_std(socket).map_err(bind_err)
}
