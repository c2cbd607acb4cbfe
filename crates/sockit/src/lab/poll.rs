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

use std::io;
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
        super::echo_ready(&mut conns, &ready, &mut buf);
        if listener_ready {
            super::accept_waiting(&listener, &mut conns, |_| true)?;
        }
    }
}
