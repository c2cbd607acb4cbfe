//! Echo (RFC 862) over TCP and UDP, with the seeds' upper-case variant.
//!
//! TCP echo streams: each read is answered as it arrives, so a message of
//! any size passes through in bounded memory. UDP echo answers each datagram
//! with at most as many bytes as it carried.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use sockit_proto::echo::{Upper, upper_datagram};

use crate::Error;
use crate::server::{ConnContext, Service};
use crate::udp::DatagramService;

/// Read size while a connection is quiet: it lives inside the connection's
/// task, so every idle connection carries it. 128 bytes holds a typed
/// word or a benchmark's 64-byte message; anything longer fills it, and the
/// connection switches to the streaming buffer.
const QUIET_READ: usize = 128;
/// Read size while data streams (a read filled the quiet buffer): one
/// socket buffer's worth, given back once reads are small again.
const STREAM_READ: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, Default)]
pub struct Echo {
    /// Answer in upper case (Unicode-aware), like the seeds' `msg.upper()`.
    pub upper: bool,
}

impl Service for Echo {
    async fn serve<S>(&self, mut stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // One cancellation waiter and one idle timer for the connection's
        // life: building them per read (a fresh `timeout`, a fresh
        // `cancelled()` registration) costs more than the echo itself.
        let cancelled = ctx.shutdown.cancelled();
        tokio::pin!(cancelled);
        let mut idle = Idle::new(ctx.idle_timeout);
        let sleep = tokio::time::sleep(ctx.idle_timeout);
        tokio::pin!(sleep);

        let mut quiet = [0u8; QUIET_READ];
        let mut streaming: Vec<u8> = Vec::new();
        let mut upper = self.upper.then(Upper::new);
        let mut out = Vec::new();
        loop {
            let buf: &mut [u8] = if streaming.is_empty() {
                &mut quiet
            } else {
                &mut streaming
            };
            let capacity = buf.len();
            let n = tokio::select! {
                biased;
                r = stream.read(buf) => r.map_err(Error::io("reading from the peer"))?,
                () = &mut cancelled => return Ok(()),
                () = &mut sleep => {
                    idle.check(sleep.as_mut(), "waiting for the peer")?;
                    continue;
                }
            };
            idle.touch();
            let read = if streaming.is_empty() {
                quiet.get(..n)
            } else {
                streaming.get(..n)
            };
            let input = read.unwrap_or_default();
            let data: &[u8] = match upper.as_mut() {
                Some(u) => {
                    out.clear();
                    if n == 0 {
                        u.finish(&mut out);
                    } else {
                        u.push(input, &mut out);
                    }
                    &out
                }
                None => input,
            };
            let mut sent = 0;
            while sent < data.len() {
                let rest = data.get(sent..).unwrap_or_default();
                // `write` (unlike `write_all`) is safe to abandon when the
                // timer wins the race: it either wrote or did nothing.
                tokio::select! {
                    biased;
                    r = stream.write(rest) => {
                        let w = r.map_err(Error::io("sending to the peer"))?;
                        if w == 0 {
                            return Err(Error::Closed { op: "receiving its echo" });
                        }
                        sent += w;
                        idle.touch();
                    }
                    () = &mut cancelled => return Ok(()),
                    () = &mut sleep => idle.check(sleep.as_mut(), "sending to the peer")?,
                }
            }
            if n == 0 {
                // The peer finished sending: finish ours too (half-close).
                let _ = stream.shutdown().await;
                return Ok(());
            }
            if n == capacity && streaming.is_empty() {
                streaming = vec![0u8; STREAM_READ];
            } else if n < QUIET_READ && !streaming.is_empty() {
                streaming = Vec::new();
            }
        }
    }
}

/// A connection's idle deadline, kept as "last activity" so that activity
/// costs a clock read, not a timer update; the one timer is re-armed only
/// when it fires early.
struct Idle {
    after: Duration,
    last: Instant,
}

impl Idle {
    fn new(after: Duration) -> Self {
        Self {
            after,
            last: Instant::now(),
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// The timer fired: a timeout if nothing happened since, else re-arm.
    fn check(&self, sleep: std::pin::Pin<&mut tokio::time::Sleep>, op: &'static str) -> Result<(), Error> {
        if self.last.elapsed() >= self.after {
            return Err(Error::Timeout { op, after: self.after });
        }
        sleep.reset(self.last + self.after);
        Ok(())
    }
}

impl DatagramService for Echo {
    fn reply(&self, request: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
        Some(if self.upper {
            upper_datagram(request)
        } else {
            request.to_vec()
        })
    }
}
