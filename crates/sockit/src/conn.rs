//! A framed connection over any `AsyncRead + AsyncWrite`: the buffer the
//! frame decoder cuts from, with a deadline on every wait for the peer.
//!
//! `next_event` is cancel-safe (all state is in the buffer and decoder), so
//! a server can race it against shutdown.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use sockit_proto::exec::{Opening, classify};
use sockit_proto::frame::{self, FrameDecoder, FrameEvent, FrameLimits, Header};

use crate::Error;
use crate::error::deadline;

/// Read size: 256 KiB. Buffers of 64 KiB and up bring loopback transfers
/// close to the copy ceiling; more only adds memory per connection.
pub const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
pub struct FramedConn<S> {
    stream: S,
    buf: BytesMut,
    decoder: FrameDecoder,
    /// Longest wait for the peer to send or accept bytes.
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FramedConn<S> {
    pub fn new(stream: S, limits: FrameLimits, timeout: Duration) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(limits),
            timeout,
        }
    }

    /// The next frame event; `None` when the peer closed cleanly between frames.
    pub async fn next_event(&mut self) -> Result<Option<FrameEvent>, Error> {
        loop {
            if let Some(ev) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(ev));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let n = deadline(self.timeout, "waiting for the peer", async {
                self.stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(Error::io("reading from the peer"))
            })
            .await?;
            if n == 0 {
                if self.decoder.is_idle() && self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(Error::Closed {
                    op: if self.decoder.is_idle() {
                        "sending a header"
                    } else {
                        "sending a body"
                    },
                });
            }
        }
    }

    /// Between requests: waits until the next request's first bytes tell a
    /// frame from a classic client's bare command line. 1-3 bytes followed
    /// by `pause` of silence are a short command. `None` on a clean close.
    pub async fn opening(&mut self, max_header_len: u32, pause: Duration) -> Result<Option<Opening>, Error> {
        loop {
            if let decided @ (Opening::Framed | Opening::RawCommand) = classify(&self.buf, max_header_len, false) {
                return Ok(Some(decided));
            }
            let wait = if self.buf.is_empty() { self.timeout } else { pause };
            match tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await {
                Err(_) if self.buf.is_empty() => {
                    return Err(Error::Timeout {
                        op: "waiting for the peer",
                        after: wait,
                    });
                }
                Ok(Ok(0)) if self.buf.is_empty() => return Ok(None),
                Err(_) | Ok(Ok(0)) => return Ok(Some(classify(&self.buf, max_header_len, true))),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Error::io("reading from the peer")(e)),
            }
        }
    }

    /// Takes a classic client's raw request: what is buffered plus whatever
    /// follows until `pause` of silence, at most `max` bytes.
    pub async fn take_raw(&mut self, pause: Duration, max: usize) -> Result<Bytes, Error> {
        while self.buf.len() < max {
            match tokio::time::timeout(pause, self.stream.read_buf(&mut self.buf)).await {
                Err(_) | Ok(Ok(0)) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Error::io("reading from the peer")(e)),
            }
        }
        let take = self.buf.len().min(max);
        Ok(self.buf.split_to(take).freeze())
    }

    /// Resolves once the peer has closed its side (or the connection broke).
    /// Bytes that arrive meanwhile stay buffered for the next request, up to
    /// [`READ_CHUNK`]; past that it stops reading and just waits.
    pub async fn closed(&mut self) {
        while self.buf.len() < READ_CHUNK {
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        std::future::pending::<()>().await;
    }

    /// The next event, which must be a header; a clean close is an error
    /// naming `op`.
    pub async fn expect_header(&mut self, op: &'static str) -> Result<(Header, u64), Error> {
        // A previous frame with an empty body still owes its `End`.
        if !self.decoder.is_idle() && self.decoder.body_remaining() == 0 {
            self.skip_body().await?;
        }
        match self.next_event().await? {
            Some(FrameEvent::Header { header, body_len }) => Ok((header, body_len)),
            None => Err(Error::Closed { op }),
            Some(_) => Err(Error::Protocol(format!("expected a header while {op}"))),
        }
    }

    /// Reads a whole body of `len` bytes into memory, refusing more than `max`.
    pub async fn read_body(&mut self, len: u64, max: u64) -> Result<Vec<u8>, Error> {
        if len > max {
            return Err(Error::Protocol(format!(
                "body of {len} bytes exceeds the {max}-byte limit"
            )));
        }
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(READ_CHUNK));
        loop {
            match self.next_event().await? {
                Some(FrameEvent::Body(b)) => out.extend_from_slice(&b),
                Some(FrameEvent::End) => return Ok(out),
                _ => return Err(Error::Closed { op: "sending a body" }),
            }
        }
    }

    /// Reads and discards the rest of the current body.
    pub async fn skip_body(&mut self) -> Result<(), Error> {
        while !self.decoder.is_idle() {
            match self.next_event().await? {
                Some(FrameEvent::Body(_)) => {}
                Some(FrameEvent::End) => return Ok(()),
                _ => return Err(Error::Closed { op: "sending a body" }),
            }
        }
        Ok(())
    }

    pub async fn write_header(&mut self, header: &Header) -> Result<(), Error> {
        let bytes = frame::header_bytes(header);
        self.write_all(&bytes).await
    }

    /// Writes raw bytes (a body) with the peer deadline.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        deadline(self.timeout, "sending to the peer", async {
            self.stream
                .write_all(bytes)
                .await
                .map_err(Error::io("sending to the peer"))
        })
        .await
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        deadline(self.timeout, "sending to the peer", async {
            self.stream.flush().await.map_err(Error::io("sending to the peer"))
        })
        .await
    }

    /// Half-closes the write side: the peer reads end-of-stream.
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        self.stream
            .shutdown()
            .await
            .map_err(Error::io("closing the connection"))
    }
}
