//! A fixed pool of threads taking connections from a queue, as
//! socketserver's servers do when given a pool:
//!
//! ```python
//! server = socketserver.ThreadingTCPServer(("127.0.0.1", 8080), Handler)
//! server.serve_forever()
//! ```
//!
//! (ThreadingTCPServer itself starts a thread per request; a pool bounds
//! them.) At most `workers` clients are served at once; the others wait
//! in the queue until a worker is free.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};

/// Workers in the pool.
pub const DEFAULT_WORKERS: usize = 64;

pub fn serve(listener: TcpListener, workers: usize) -> io::Result<()> {
    let (queue, jobs) = mpsc::channel::<TcpStream>();
    let jobs = Arc::new(Mutex::new(jobs));
    for _ in 0..workers.max(1) {
        let jobs = Arc::clone(&jobs);
        std::thread::Builder::new()
            .name("lab-pool".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                loop {
                    // The lock is held only to take the next connection.
                    let next = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
                    match next {
                        Ok(stream) => {
                            let _ = super::echo_blocking(stream);
                        }
                        Err(()) => return,
                    }
                }
            })?;
    }
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if queue.send(stream).is_err() {
                    return Err(io::Error::other("every worker has stopped"));
                }
            }
            Err(e) if super::transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
}
