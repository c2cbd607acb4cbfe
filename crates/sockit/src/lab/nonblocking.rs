//! Non-blocking sockets polled in a loop, the course's first concurrent
//! server without threads:
//!
//! ```python
//! sock.setblocking(False)
//! conn_que = []
//! while True:
//!     try:
//!         conn, addr = sock.accept()
//!         conn.setblocking(False)
//!         conn_que.append(conn)
//!     except BlockingIOError:
//!         pass
//!     for con in list(conn_que):
//!         try:
//!             data = con.recv(1024)
//!             if data: con.send(data)
//!             else: con.close(); conn_que.remove(con)
//!         except BlockingIOError:
//!             pass
//! ```
//!
//! The course's loop spins at 100% CPU when nothing happens; this one
//! sleeps a millisecond after a pass that found no work. Every pass still
//! asks every connection, busy or idle.

use std::io::{self, Read as _};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The nap after a pass with nothing to do.
const IDLE_NAP: Duration = Duration::from_millis(1);

pub fn serve(listener: TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; super::BUF];
    loop {
        let mut busy = false;
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true)?;
                conns.push(stream);
                busy = true;
            }
            Err(e) if super::transient(&e) => {}
            Err(e) => return Err(e),
        }
        conns.retain_mut(|con| match con.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                busy = true;
                super::write_all_nonblocking(con, buf.get(..n).unwrap_or_default()).is_ok()
            }
            Err(e) => matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted),
        });
        if !busy {
            std::thread::sleep(IDLE_NAP);
        }
    }
}
