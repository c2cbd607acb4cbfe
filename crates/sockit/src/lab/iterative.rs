//! One client at a time: accept, echo until that client leaves, then
//! accept the next. The course's first server:
//!
//! ```python
//! while True:
//!     conn, addr = sock.accept()
//!     while True:
//!         data = conn.recv(1024)
//!         if not data: break
//!         conn.send(data)
//!     conn.close()
//! ```
//!
//! A second client connects (the kernel completes its handshake into the
//! backlog) but hears nothing until the first one closes.

use std::io;
use std::net::TcpListener;

pub fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept() {
            // A client that fails only ends its own turn.
            Ok((stream, _)) => {
                let _ = super::echo_blocking(stream);
            }
            Err(e) if super::transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
}
