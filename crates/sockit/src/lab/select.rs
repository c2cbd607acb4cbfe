//! select(2), the course's first event loop:
//!
//! ```python
//! inputs = [server]
//! while True:
//!     readable, writeable, exceptional = select.select(inputs, [], [])
//!     for sock in readable:
//!         if sock == server:
//!             conn, addr = server.accept(); inputs.append(conn)
//!         else:
//!             data = sock.recv(1024)
//!             if data: sock.send(data)
//!             else: inputs.remove(sock); sock.close()
//! ```
//!
//! Its limit is in the fd_set: a bit per descriptor, FD_SETSIZE (1024) of
//! them. A connection whose descriptor is 1024 or more cannot be watched,
//! so this server closes it at once and says so; the course's Python
//! raises `ValueError: filedescriptor out of range in select()`.

use std::io::{self, Read as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::select::{FD_SETSIZE, FdSet, select};

pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; super::BUF];
    let mut refused = 0u64;
    loop {
        // select() rewrites the set: it is built again on every call.
        let ready: Vec<bool>;
        let listener_ready;
        {
            let mut readable = FdSet::new();
            readable.insert(listener.as_fd());
            for conn in &conns {
                readable.insert(conn.as_fd());
            }
            select(None, &mut readable, None, None, None).map_err(io::Error::from)?;
            listener_ready = readable.contains(listener.as_fd());
            ready = conns.iter().map(|c| readable.contains(c.as_fd())).collect();
        }
        let mut index = 0;
        conns.retain_mut(|conn| {
            let is_ready = ready.get(index).copied().unwrap_or(false);
            index += 1;
            if !is_ready {
                return true;
            }
            match conn.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => super::write_all_nonblocking(conn, buf.get(..n).unwrap_or_default()).is_ok(),
                Err(e) => matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted),
            }
        });
        if listener_ready {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if usize::try_from(stream.as_raw_fd()).map_or(true, |fd| fd >= FD_SETSIZE) {
                            refused += 1;
                            if refused.is_power_of_two() {
                                tracing::warn!(
                                    refused,
                                    "select cannot watch descriptors at or above FD_SETSIZE (1024); connection closed"
                                );
                            }
                            continue;
                        }
                        stream.set_nonblocking(true)?;
                        conns.push(stream);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if super::transient(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}
