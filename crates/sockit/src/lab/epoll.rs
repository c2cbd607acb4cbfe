//! epoll(7), level- or edge-triggered, the course's last event loop:
//!
//! ```python
//! epoll = select.epoll()
//! epoll.register(s.fileno(), select.EPOLLIN | select.EPOLLET)
//! while True:
//!     for fd, events in epoll.poll():
//!         if fd == s.fileno():
//!             conn, addr = s.accept()
//!             epoll.register(conn.fileno(), select.EPOLLIN | select.EPOLLET)
//!         elif events & select.EPOLLIN:
//!             data = conns[fd].recv(1024)
//!             ...
//! ```
//!
//! The kernel keeps the interest list and reports only the descriptors
//! that are ready: no scan of idle connections.
//! - Level-triggered (`epoll`): a descriptor with unread data is reported
//!   again on every wait, so one read per wake-up is enough.
//! - Edge-triggered (`epoll-et`, EPOLLET): reported once per arrival, so
//!   the handler must read until EAGAIN. The course's snippet reads once;
//!   with more than 1024 bytes waiting, its client would stall.

use std::collections::HashMap;
use std::io::{self, Read as _};
use std::net::{TcpListener, TcpStream};

use rustix::event::epoll::{self, EventData, EventFlags};

/// The key for the listener in the event data; clients count from 1.
const LISTENER: u64 = 0;

pub fn serve(listener: TcpListener, edge: bool) -> io::Result<()> {
    let trigger = if edge { EventFlags::ET } else { EventFlags::empty() };
    listener.set_nonblocking(true)?;
    let poller = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &poller,
        &listener,
        EventData::new_u64(LISTENER),
        EventFlags::IN | trigger,
    )?;
    let mut conns: HashMap<u64, TcpStream> = HashMap::new();
    let mut next_key = LISTENER + 1;
    let mut events = Vec::with_capacity(1024);
    let mut buf = [0u8; super::BUF];
    loop {
        events.clear();
        epoll::wait(&poller, rustix::buffer::spare_capacity(&mut events), None)?;
        for event in &events {
            let key = event.data.u64();
            if key == LISTENER {
                // Edge-triggered, every waiting connection must be taken
                // now; level-triggered, it does no harm.
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true)?;
                            epoll::add(&poller, &stream, EventData::new_u64(next_key), EventFlags::IN | trigger)?;
                            conns.insert(next_key, stream);
                            next_key += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if super::transient(&e) => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&key) else { continue };
            let keep = if edge {
                drain(conn, &mut buf)
            } else {
                super::echo_once(conn, &mut buf)
            };
            if !keep {
                // Closing the socket also takes it off the interest list.
                conns.remove(&key);
            }
        }
    }
}

/// Edge-triggered: read and echo until EAGAIN.
fn drain(conn: &mut TcpStream, buf: &mut [u8]) -> bool {
    loop {
        match conn.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                if super::write_all_nonblocking(conn, buf.get(..n).unwrap_or_default()).is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
