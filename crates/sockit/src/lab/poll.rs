//! poll(2): select without the fd_set's ceiling, the course's
//! `select.poll()`:
//!
//! ```python
//! poller = select.poll()
//! poller.register(server, select.POLLIN)
//! while True:
//!     for fd, event in poller.poll():
//!         ...   # accept, or recv and send back
//! ```
//!
//! Any number of descriptors, but the kernel still walks the whole list on
//! every call, and so does the loop.

use std::io::{self, Read as _};
use std::net::{TcpListener, TcpStream};

use rustix::event::{PollFd, PollFlags};

pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; super::BUF];
    loop {
        let (listener_ready, ready): (bool, Vec<bool>) = {
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(&listener, PollFlags::IN));
            fds.extend(conns.iter().map(|c| PollFd::new(c, PollFlags::IN)));
            rustix::event::poll(&mut fds, None)?;
            let mut flags = fds.iter().map(|f| !f.revents().is_empty());
            (flags.next().unwrap_or(false), flags.collect())
        };
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
