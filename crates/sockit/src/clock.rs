//! The time services: the seeds' UDP strftime service, RFC 867 daytime and
//! RFC 868 time, over TCP (answer on connect, then close) and UDP.
//!
//! Formats live in `sockit_proto::clock`; this module reads the clock.

use std::net::SocketAddr;

use chrono::Local;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use sockit_proto::clock::{REPLY_ALLOWANCE, daytime, error_text, format_request, rfc868};

use crate::Error;
use crate::error::deadline;
use crate::server::{ConnContext, Service};
use crate::udp::DatagramService;

/// Which time protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeProtocol {
    /// The seeds' service: request = strftime format, reply = local time.
    Strftime,
    /// RFC 867: a human-readable line.
    Daytime,
    /// RFC 868: 32-bit seconds since 1900.
    Rfc868,
}

#[derive(Debug, Clone, Copy)]
pub struct TimeService {
    pub protocol: TimeProtocol,
}

impl TimeService {
    fn answer(&self, request: &[u8], limit: usize) -> Vec<u8> {
        let now = Local::now();
        match self.protocol {
            TimeProtocol::Strftime => match format_request(request, &now, limit) {
                Ok(text) => text.into_bytes(),
                Err(e) => error_text(&e).into_bytes(),
            },
            TimeProtocol::Daytime => daytime(&now).into_bytes(),
            TimeProtocol::Rfc868 => rfc868(now.timestamp()).to_vec(),
        }
    }
}

impl DatagramService for TimeService {
    fn reply(&self, request: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
        Some(self.answer(request, self.reply_limit(request.len())))
    }

    /// These protocols answer an empty datagram, so a reply may exceed its
    /// request, but never [`REPLY_ALLOWANCE`] bytes beyond a tiny one.
    fn reply_limit(&self, request_len: usize) -> usize {
        request_len.max(REPLY_ALLOWANCE)
    }
}

impl Service for TimeService {
    /// TCP daytime and time answer on connect and close (RFC 867, 868).
    async fn serve<S>(&self, mut stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let reply = self.answer(b"", REPLY_ALLOWANCE);
        deadline(ctx.idle_timeout, "sending to the peer", async {
            stream
                .write_all(&reply)
                .await
                .map_err(Error::io("sending to the peer"))?;
            stream.shutdown().await.map_err(Error::io("closing"))
        })
        .await
    }
}
