//! A thread per connection, the course's multi-threaded server:
//!
//! ```python
//! while True:
//!     newSocket, destAddr = serSocket.accept()
//!     client = Thread(target=dealWithClient, args=(newSocket, destAddr))
//!     client.start()
//! ```
//!
//! Simple and concurrent; each client costs a thread and its stack.

use std::io;
use std::net::TcpListener;

pub fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let spawned = std::thread::Builder::new()
                    .name("lab-echo".into())
                    .stack_size(64 * 1024)
                    .spawn(move || super::echo_blocking(stream));
                if let Err(e) = spawned {
                    // Out of threads: this client is dropped, the server goes on.
                    tracing::warn!(error = %e, "no thread for a client");
                }
            }
            Err(e) if super::transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
}
