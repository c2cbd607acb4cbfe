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

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::select::{FD_SETSIZE, FdSet, select};

pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; super::BUF];
    let refused = std::cell::Cell::new(0u64);
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
        super::echo_ready(&mut conns, &ready, &mut buf);
        if listener_ready {
            super::accept_waiting(&listener, &mut conns, |stream| {
                let fits = usize::try_from(stream.as_raw_fd()).is_ok_and(|fd| fd < FD_SETSIZE);
                if !fits {
                    let n = refused.get() + 1;
                    refused.set(n);
                    if n.is_power_of_two() {
                        tracing::warn!(
                            refused = n,
                            "select cannot watch descriptors at or above FD_SETSIZE (1024); connection closed"
                        );
                    }
                }
                fits
            })?;
        }
    }
}
