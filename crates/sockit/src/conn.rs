//! A framed connection over any `AsyncRead + AsyncWrite`: the buffer the
//! frame decoder cuts from, with a deadline on every wait for the peer.
//!
//! Beyond the idle deadline (silence), a server's connection keeps a pace:
//! a request header must arrive whole within the request deadline once it
//! has begun, and a body must average at least `min_rate` bytes/s over
//! each rate window (a minute by default). A peer that trickles a byte just under the idle
//! deadline (a slowloris) is cut off instead of holding a slot.
//!
//! `next_event` is cancel-safe (all state is in the buffer and decoder), so
//! a server can race it against shutdown.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use sockit_proto::exec::{Opening, classify};
use sockit_proto::frame::{self, FrameDecoder, FrameEvent, FrameLimits, Header};

use crate::Error;
use crate::error::deadline;
use crate::server::RATE_WINDOW;

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
    pace: Pace,
    /// When the header now arriving began.
    header_since: Option<Instant>,
    /// The body rate window: its start and the bytes in it.
    window: (Instant, u64),
}

/// How fast a server expects requests to arrive.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Longest a request header may take once its first byte is in.
    pub request_timeout: Duration,
    /// Slowest a body may average over `rate_window`; 0: any.
    pub min_rate: u64,
    pub rate_window: Duration,
}

impl<S> FramedConn<S> {
    pub fn new(stream: S, limits: FrameLimits, timeout: Duration) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(limits),
            timeout,
            pace: Pace {
                request_timeout: timeout,
                min_rate: 0,
                rate_window: RATE_WINDOW,
            },
            header_since: None,
            window: (Instant::now(), 0),
        }
    }

    /// Holds the peer to `pace` (servers; a client waits as long as its
    /// timeout allows).
    #[must_use]
    pub fn with_pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }
}

/// What a reading half takes from its connection and gives back: bytes
/// already read, and where the frame decoder stands.
#[derive(Debug)]
pub struct ReadState {
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FramedConn<S> {
    /// A reading and a writing connection over this one's stream, for a
    /// client that pipelines: it writes requests while it reads replies.
    /// Give the reader's [`FramedConn::into_read_state`] back with
    /// [`Self::rejoin`] afterwards.
    #[allow(clippy::type_complexity)]
    pub fn split(
        &mut self,
    ) -> (
        FramedConn<tokio::io::ReadHalf<&mut S>>,
        FramedConn<tokio::io::WriteHalf<&mut S>>,
    ) {
        let (read, write) = tokio::io::split(&mut self.stream);
        let state = ReadState {
            buf: std::mem::take(&mut self.buf),
            decoder: self.decoder.clone(),
        };
        let mut reader = FramedConn::new(read, FrameLimits::default(), self.timeout).with_pace(self.pace);
        reader.buf = state.buf;
        reader.decoder = state.decoder;
        let writer = FramedConn::new(write, FrameLimits::default(), self.timeout).with_pace(self.pace);
        (reader, writer)
    }

    /// Takes back what a reading half read past.
    pub fn rejoin(&mut self, state: ReadState) {
        self.buf = state.buf;
        self.decoder = state.decoder;
    }
}

impl<S: AsyncRead + Unpin> FramedConn<S> {
    /// This reading half's buffered bytes and frame position.
    pub fn into_read_state(self) -> ReadState {
        ReadState {
            buf: self.buf,
            decoder: self.decoder,
        }
    }

    /// The next frame event; `None` when the peer closed cleanly between frames.
    pub async fn next_event(&mut self) -> Result<Option<FrameEvent>, Error> {
        loop {
            if let Some(ev) = self.decoder.decode(&mut self.buf)? {
                if matches!(ev, FrameEvent::Header { .. }) {
                    self.header_since = None;
                    self.window = (Instant::now(), 0);
                }
                return Ok(Some(ev));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let (wait, op) = self.next_wait()?;
            let n = deadline(wait, op, async {
                self.stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(Error::io("reading from the peer"))
            })
            .await?;
            if !self.decoder.is_idle() {
                self.check_rate(n as u64)?;
            }
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

    /// How long the next read may wait, and what a timeout is called: the
    /// idle deadline, or less while a header is arriving.
    fn next_wait(&mut self) -> Result<(Duration, &'static str), Error> {
        let header_arriving = self.decoder.is_idle() && !self.buf.is_empty();
        if !header_arriving {
            return Ok((self.timeout, "waiting for the peer"));
        }
        let since = *self.header_since.get_or_insert_with(Instant::now);
        let left = self.pace.request_timeout.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Err(Error::Timeout {
                op: "sending a request header",
                after: self.pace.request_timeout,
            });
        }
        if left < self.timeout {
            Ok((left, "sending a request header"))
        } else {
            Ok((self.timeout, "waiting for the peer"))
        }
    }

    /// Counts body bytes; once a rate window has passed, a body that
    /// averaged less than the minimum rate ends the connection.
    fn check_rate(&mut self, n: u64) -> Result<(), Error> {
        if self.pace.min_rate == 0 {
            return Ok(());
        }
        let (start, bytes) = &mut self.window;
        *bytes += n;
        let elapsed = start.elapsed();
        if elapsed < self.pace.rate_window {
            return Ok(());
        }
        let needed = (self.pace.min_rate as f64 * elapsed.as_secs_f64()) as u64;
        if *bytes < needed {
            return Err(Error::TooSlow {
                min_rate: self.pace.min_rate,
            });
        }
        self.window = (Instant::now(), 0);
        Ok(())
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

    /// Whether the next frame's whole header is already here, so reading
    /// it will not wait for the peer.
    pub fn header_buffered(&self) -> bool {
        let Some(prefix) = self.buf.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok()) else {
            return false;
        };
        let len = u64::from(u32::from_le_bytes(prefix));
        self.decoder.is_idle() && self.buf.len() as u64 >= 4 + len
    }

    /// Bytes of the current frame's body not read yet.
    pub fn body_remaining(&self) -> u64 {
        self.decoder.body_remaining()
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
}

impl<S: AsyncWrite + Unpin> FramedConn<S> {
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
