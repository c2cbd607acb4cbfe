//! A process per connection, the course's multi-process server:
//!
//! ```python
//! while True:
//!     newSocket, destAddr = serSocket.accept()
//!     client = Process(target=dealWithClient, args=(newSocket, destAddr))
//!     client.start()
//!     newSocket.close()   # the child has its own copy
//! ```
//!
//! Python forks. Forking a multi-threaded Rust program is unsafe, so this
//! does what inetd does instead: the accepted socket becomes the standard
//! input and output of a new `sockit lab echo-stdio` process, which
//! echoes one to the other. The parent then closes its copy, as the
//! course's does.

use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The program each connection runs: a path and its arguments.
#[derive(Debug, Clone)]
pub struct Child {
    pub program: PathBuf,
    pub args: Vec<String>,
}

pub fn serve(listener: TcpListener, child: &Child) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let input = OwnedFd::from(stream);
                let output = input.try_clone()?;
                let spawned = Command::new(&child.program)
                    .args(&child.args)
                    .stdin(Stdio::from(input))
                    .stdout(Stdio::from(output))
                    .stderr(Stdio::null())
                    .spawn();
                match spawned {
                    // Reaped by a thread of its own, so no zombie is left.
                    Ok(mut process) => {
                        std::thread::spawn(move || process.wait());
                    }
                    Err(e) => tracing::warn!(error = %e, "no process for a client"),
                }
            }
            Err(e) if super::transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The child's side: echo standard input to standard output until it ends.
pub fn echo_stdio() -> io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut buf = [0u8; super::BUF];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(buf.get(..n).unwrap_or_default())?;
        output.flush()?;
    }
}
