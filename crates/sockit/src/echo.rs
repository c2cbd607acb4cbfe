//! Echo (RFC 862) over TCP and UDP, with the seeds' upper-case variant.
//!
//! TCP echo streams: each read is answered as it arrives, so a message of
//! any size passes through in bounded memory. UDP echo answers each datagram
//! with at most as many bytes as it carried.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use sockit_proto::echo::{Upper, upper_datagram};

use crate::Error;
use crate::error::deadline;
use crate::server::{ConnContext, Service};
use crate::udp::DatagramService;

/// Read size for TCP echo: one socket buffer's worth.
const ECHO_CHUNK: usize = 64 * 1024;

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
        let mut buf = vec![0u8; ECHO_CHUNK];
        let mut upper = self.upper.then(Upper::new);
        let mut out = Vec::new();
        loop {
            let n = tokio::select! {
                r = deadline(ctx.idle_timeout, "waiting for the peer", async {
                    stream.read(&mut buf).await.map_err(Error::io("reading from the peer"))
                }) => r?,
                () = ctx.shutdown.cancelled() => return Ok(()),
            };
            let input = buf.get(..n).unwrap_or_default();
            out.clear();
            match upper.as_mut() {
                Some(u) if n == 0 => u.finish(&mut out),
                Some(u) => u.push(input, &mut out),
                None => out.extend_from_slice(input),
            }
            deadline(ctx.idle_timeout, "sending to the peer", async {
                stream.write_all(&out).await.map_err(Error::io("sending to the peer"))
            })
            .await?;
            if n == 0 {
                // The peer finished sending: finish ours too (half-close).
                let _ = stream.shutdown().await;
                return Ok(());
            }
        }
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
